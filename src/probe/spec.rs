//! Probe specs as one command-line word (`razar probe SPEC`), both ways: `parse` reads
//! `tcp://HOST:PORT`, `http://…`/`https://…`, `exec:COMMAND` (run by `sh -c`) and `file:PATH`
//! into a [`ProbeKind`]; `render` writes a probe back as the word plus the flags it needs, for
//! exported units that gate on `razar probe`.

use std::path::Path;

use crate::config::ProbeKind;

/// Default accepted status range of an http probe (DESIGN §6).
pub const DEFAULT_STATUS: (u16, u16) = (200, 399);

/// What a SPEC word is.
#[derive(Debug, Clone)]
pub enum Spec {
    /// A probe written out in full.
    Kind(ProbeKind),
    /// A bare word: a component of the config, whose probe is meant.
    Component(String),
}

/// Reads a SPEC word; `status` and `body` apply to http specs only. Relative `file:` paths
/// resolve against `root`.
pub fn parse(spec: &str, status: Option<(u16, u16)>, body: Option<String>, root: &Path) -> Result<Spec, String> {
    let is_http = spec.starts_with("http://") || spec.starts_with("https://");
    if !is_http && (status.is_some() || body.is_some()) {
        return Err("--status and --body apply to http:// and https:// probes only".into());
    }
    if let Some(addr) = spec.strip_prefix("tcp://") {
        let addr = addr.trim_end_matches('/');
        return match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(Spec::Kind(ProbeKind::Tcp(addr.to_owned())))
            }
            _ => Err(format!("{spec:?} is not tcp://HOST:PORT (e.g. tcp://127.0.0.1:5432)")),
        };
    }
    if is_http {
        if spec.len() < 10 {
            return Err(format!("{:?} is not an http:// or https:// URL", crate::redact::url(spec)));
        }
        return Ok(Spec::Kind(ProbeKind::Http {
            url: spec.to_owned(),
            status: status.unwrap_or(DEFAULT_STATUS),
            body,
        }));
    }
    if let Some(cmd) = spec.strip_prefix("exec:") {
        if cmd.trim().is_empty() {
            return Err("exec: needs a command, e.g. exec:'pg_isready -h 127.0.0.1'".into());
        }
        return Ok(Spec::Kind(ProbeKind::Exec(vec!["sh".into(), "-c".into(), cmd.to_owned()])));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        if path.is_empty() {
            return Err("file: needs a path, e.g. file:run/ready".into());
        }
        return Ok(Spec::Kind(ProbeKind::File(root.join(path))));
    }
    if let Some((scheme, _)) = spec.split_once("://") {
        return Err(format!("unknown probe scheme {scheme:?}: use tcp://, http://, https://, exec: or file:"));
    }
    if spec.starts_with("log:") {
        return Err("a log probe matches a component's output while razar runs it; razar probe cannot run one".into());
    }
    match crate::config::ComponentName::new(spec) {
        Ok(_) => Ok(Spec::Component(spec.to_owned())),
        Err(_) => Err(format!(
            "{spec:?} is neither a probe (tcp://HOST:PORT, http(s)://URL, exec:COMMAND, file:PATH) nor a component name"
        )),
    }
}

/// A probe as the words `razar probe` takes: the SPEC word, then `--status`/`--body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub words: Vec<String>,
}

/// Why a probe cannot be written as a SPEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRenderable {
    /// Log probes read the component's output, which only the supervisor running it sees.
    Log,
    /// The URL carries userinfo or a query string, which razar treats as secret.
    SecretUrl,
}

/// `kind` as `razar probe` words, or why it cannot be one. An exec argv becomes one shell
/// command line, each word quoted where the shell would split or expand it.
pub fn render(kind: &ProbeKind) -> Result<Rendered, NotRenderable> {
    let words = match kind {
        ProbeKind::Tcp(addr) => vec![format!("tcp://{addr}")],
        ProbeKind::Http { url, status, body } => {
            if url_has_secret(url) {
                return Err(NotRenderable::SecretUrl);
            }
            let mut w = vec![url.clone()];
            if *status != DEFAULT_STATUS {
                let range =
                    if status.0 == status.1 { status.0.to_string() } else { format!("{}-{}", status.0, status.1) };
                w.extend(["--status".to_owned(), range]);
            }
            if let Some(b) = body {
                w.extend(["--body".to_owned(), b.clone()]);
            }
            w
        }
        ProbeKind::Exec(argv) => {
            let line = match argv.as_slice() {
                [sh, c, script] if sh == "sh" && c == "-c" => script.clone(),
                _ => argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" "),
            };
            vec![format!("exec:{line}")]
        }
        ProbeKind::File(p) => vec![format!("file:{}", p.display())],
        ProbeKind::Log(_) => return Err(NotRenderable::Log),
    };
    Ok(Rendered { words })
}

/// True when `url` has userinfo (`user:pass@`) or a query string.
pub fn url_has_secret(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.contains('@') || rest.contains('?')
}

/// `word` quoted for a POSIX shell: unchanged when it holds only safe characters, else in
/// single quotes (a single quote inside becomes `'\''`).
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '=' | ',' | '+' | '@'));
    if safe { word.to_owned() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(spec: &str) -> ProbeKind {
        match parse(spec, None, None, Path::new("/r")).unwrap() {
            Spec::Kind(k) => k,
            Spec::Component(c) => panic!("{spec} read as component {c}"),
        }
    }

    #[test]
    fn every_scheme_parses_and_renders_back() {
        for spec in ["tcp://127.0.0.1:5432", "http://127.0.0.1:8080/healthz", "exec:pg_isready -h x", "file:/r/ready"] {
            assert_eq!(render(&kind(spec)).unwrap().words, vec![spec.to_owned()], "{spec}");
        }
        assert!(matches!(kind("file:run/ready"), ProbeKind::File(p) if p == Path::new("/r/run/ready")));
        let http = parse("https://h:1/x", Some((204, 204)), Some("ok".into()), Path::new("/")).unwrap();
        let Spec::Kind(http) = http else { panic!() };
        assert_eq!(render(&http).unwrap().words, ["https://h:1/x", "--status", "204", "--body", "ok"]);
    }

    #[test]
    fn bad_specs_say_what_is_allowed() {
        let root = Path::new("/");
        assert!(parse("tcp://nohost", None, None, root).unwrap_err().contains("tcp://HOST:PORT"));
        assert!(parse("udp://h:1", None, None, root).unwrap_err().contains("unknown probe scheme"));
        assert!(parse("tcp://h:1", Some((200, 200)), None, root).unwrap_err().contains("http"));
        assert!(parse("log:ready", None, None, root).unwrap_err().contains("log probe"));
        assert!(parse("a b", None, None, root).unwrap_err().contains("component name"));
        assert!(matches!(parse("api", None, None, root), Ok(Spec::Component(c)) if c == "api"));
    }

    #[test]
    fn argv_exec_probes_are_quoted_for_the_shell() {
        let k = ProbeKind::Exec(vec!["python3".into(), "-c".into(), "print('hi there')".into()]);
        let words = render(&k).unwrap().words;
        assert_eq!(words, [r#"exec:python3 -c 'print('\''hi there'\'')'"#]);
        // The shell reads it back into the same argv.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {}", words[0].trim_start_matches("exec:python3 ")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "-c\nprint('hi there')\n");
    }

    #[test]
    fn secret_urls_and_log_probes_are_not_rendered() {
        let http = |u: &str| ProbeKind::Http { url: u.into(), status: DEFAULT_STATUS, body: None };
        assert_eq!(render(&http("http://u:p@h:1/")), Err(NotRenderable::SecretUrl));
        assert_eq!(render(&http("http://h:1/x?token=1")), Err(NotRenderable::SecretUrl));
        assert!(render(&http("http://h:1/x")).is_ok());
        let re = std::sync::Arc::new(regex::Regex::new("ready").unwrap());
        assert_eq!(render(&ProbeKind::Log(re)), Err(NotRenderable::Log));
    }
}
