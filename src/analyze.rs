//! Failure-log classification (`razar analyze`, and the Details column of
//! `docs/quarantine_log.md`). Pure: text in, [`Analysis`] out.
//!
//! Each line is matched against a table of known failure patterns, most specific first; a
//! line gets the category of the first pattern it matches. When several categories occur in
//! one log, the verdict follows the cause rather than the symptom: **dependency** (a missing
//! module, package, shared library or command) beats **external** (refused connections, DNS,
//! timeouts, HTTP 5xx), which beats **logic** (tracebacks, panics, assertion failures) — a
//! traceback ending in a refused connection is an external failure. Within the winning
//! category the *last* matching line is the evidence: logs accumulate attempts, and the latest
//! is the one still failing.

use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde::Serialize;

/// The kind of failure a log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Something the component needs is not installed.
    Dependency,
    /// Something outside the component failed or was unreachable.
    External,
    /// The component's own code failed.
    Logic,
    /// No known pattern matched.
    Unknown,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Dependency => "dependency",
            Category::External => "external",
            Category::Logic => "logic",
            Category::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub category: Category,
    /// The matching line (trimmed, at most [`MAX_EVIDENCE`] characters); for `unknown`, the
    /// last non-blank line.
    pub evidence: String,
    /// 1-based line number of the evidence, when there is one.
    pub line: Option<usize>,
    /// What to do about it, in one line.
    pub remediation: String,
}

/// Longest evidence kept, in characters.
pub const MAX_EVIDENCE: usize = 300;

impl Analysis {
    /// One line for a Markdown table cell: `category: evidence — remediation`. The caller
    /// escapes `|`; this never contains a newline.
    pub fn summary(&self) -> String {
        let evidence = if self.evidence.is_empty() { "(empty log)" } else { &self.evidence };
        format!("{}: {} — {}", self.category, evidence, self.remediation)
    }
}

/// Classifies a failure log.
pub fn classify(text: &str) -> Analysis {
    // Per category, the last line that matched and the remediation it produced.
    let mut last: [Option<(usize, String, String)>; 3] = [None, None, None];
    let mut traceback = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let hit = RULES.iter().find_map(|rule| rule.pattern.captures(line).map(|caps| (rule, caps)));
        // A Python traceback's frames are indented; its first unindented line names the
        // exception.
        let mut python_exception = false;
        if line.starts_with("Traceback (most recent call last)") {
            traceback = true;
        } else if traceback && !line.is_empty() && !line.starts_with(char::is_whitespace) {
            traceback = false;
            python_exception = is_python_exception_line(line);
        }
        let (category, remediation) = match hit {
            Some((rule, caps)) => (rule.category, (rule.remediation)(&caps)),
            None if python_exception => (Category::Logic, logic_remediation(line)),
            None => continue,
        };
        let evidence = evidence_of(text, index, line);
        last[category as usize] = Some((index + 1, evidence, remediation));
    }
    match last.into_iter().enumerate().find_map(|(i, hit)| hit.map(|h| (i, h))) {
        Some((i, (line, evidence, remediation))) => {
            let category = [Category::Dependency, Category::External, Category::Logic][i];
            Analysis { category, evidence, line: Some(line), remediation }
        }
        None => {
            let found = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).last();
            Analysis {
                category: Category::Unknown,
                evidence: found.map(|(_, l)| clip(l.trim())).unwrap_or_default(),
                line: found.map(|(i, _)| i + 1),
                remediation: "no known failure pattern: read the whole log (and the probe output in `razar status`), or hand it to an agent with `razar handover`".into(),
            }
        }
    }
}

/// The evidence for a match on `line`: the line itself, plus the message line that follows a
/// Rust panic header (`thread 'main' panicked at src/main.rs:3:5:` puts the message on the
/// next line since Rust 1.73).
fn evidence_of(text: &str, index: usize, line: &str) -> String {
    let trimmed = line.trim();
    if PANIC_HEADER.is_match(trimmed)
        && let Some(next) = text.lines().nth(index + 1).map(str::trim).filter(|l| !l.is_empty())
    {
        return clip(&format!("{trimmed} {next}"));
    }
    clip(trimmed)
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_EVIDENCE) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// The last line of a Python traceback: `ValueError: …`, `mypkg.errors.Boom`, `KeyError: 'x'`.
fn is_python_exception_line(line: &str) -> bool {
    PYTHON_EXCEPTION.is_match(line)
}

fn logic_remediation(line: &str) -> String {
    let name = line.split(':').next().unwrap_or(line).trim();
    format!(
        "the component's own code raised {name}: fix the code or its input (the traceback above names the file and line); `razar handover` can propose a patch"
    )
}

struct Rule {
    category: Category,
    pattern: Regex,
    remediation: fn(&Captures) -> String,
}

fn cap<'a>(caps: &'a Captures, name: &str) -> &'a str {
    caps.name(name).map_or("", |m| m.as_str())
}

static PANIC_HEADER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^thread '[^']*' panicked at [^']*:$").unwrap());

static PYTHON_EXCEPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z_][A-Za-z0-9_]*\.)*[A-Z][A-Za-z0-9_]*(: .*|:)?$").unwrap());

/// Most specific first: within a line the first match decides its category.
static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    use Category::*;
    let rule = |category, pattern: &str, remediation: fn(&Captures) -> String| Rule {
        category,
        pattern: Regex::new(pattern).unwrap_or_else(|e| panic!("analyze pattern {pattern:?}: {e}")),
        remediation,
    };
    vec![
        // Dependency: Python modules and packages.
        rule(Dependency, r"ModuleNotFoundError: No module named '(?P<m>[^']+)'", |c| {
            let m = cap(c, "m");
            let top = m.split('.').next().unwrap_or(m);
            format!(
                "install the Python module `{top}` into the component's environment (add it to its layer in razar_env.yaml)"
            )
        }),
        rule(Dependency, r"(?P<lib>[\w.+-]+\.so(?:\.[\w.]+)?): cannot open shared object file", |c| {
            format!(
                "install the system package that provides the shared library `{}` (e.g. `apt-file search {0}`), or fix LD_LIBRARY_PATH",
                cap(c, "lib")
            )
        }),
        rule(
            Dependency,
            r"(?:No matching distribution found for|Could not find a version that satisfies the requirement) (?P<req>\S+)",
            |c| {
                format!(
                    "the requirement `{}` is not available from the package index: fix its name or version pin in razar_env.yaml, or the index settings",
                    cap(c, "req")
                )
            },
        ),
        rule(Dependency, r"ImportError: cannot import name '(?P<n>[^']+)'(?: from '(?P<m>[^']+)')?", |c| {
            let from = cap(c, "m");
            let module = if from.is_empty() { "its module".to_owned() } else { format!("`{from}`") };
            format!(
                "`{}` is missing from {module}: install the version of the package the component expects (pin it in razar_env.yaml)",
                cap(c, "n")
            )
        }),
        rule(Dependency, r"ImportError: .*", |_| {
            "a Python import failed: install the missing package (or the library it wraps) into the component's environment".into()
        }),
        rule(Dependency, r"Error: Cannot find module '(?P<m>[^']+)'", |c| {
            format!("install the Node.js module `{}` (npm install) in the component's working directory", cap(c, "m"))
        }),
        // Dependency: commands.
        rule(Dependency, r"^(?:\S+: )?(?:line )?\d+: (?P<cmd>[^:]+): (?:not found|command not found)$", |c| {
            command_missing(cap(c, "cmd"))
        }),
        rule(Dependency, r"(?:^|: )(?P<cmd>[^\s:]+): command not found", |c| command_missing(cap(c, "cmd"))),
        rule(Dependency, r"exec: (?P<cmd>[^:]+): not found", |c| command_missing(cap(c, "cmd"))),
        rule(Dependency, r"^env: '?(?P<cmd>[^':]+)'?: No such file or directory", |c| command_missing(cap(c, "cmd"))),
        // External: refused or broken connections.
        rule(External, r"(?i)connection refused|ECONNREFUSED|ConnectionRefusedError", |_| {
            "a service the component connects to is not listening: start it first (declare it in `depends_on` with condition `healthy`) and check the host and port".into()
        }),
        rule(
            External,
            r"(?i)connection reset by peer|ECONNRESET|network is unreachable|no route to host|EHOSTUNREACH",
            |_| {
                "the network path to a service the component uses failed: check the remote service, the network and firewalls, then retry".into()
            },
        ),
        // External: DNS.
        rule(
            External,
            r"(?i)name or service not known|temporary failure in name resolution|nodename nor servname provided|getaddrinfo (?:failed|ENOTFOUND|EAI_AGAIN)|failed to lookup address information|could not resolve host|no such host|NXDOMAIN",
            |_| {
                "a host name did not resolve: check the hostname in the component's config or env and the host's DNS (/etc/resolv.conf)".into()
            },
        ),
        // External: HTTP 5xx (before timeouts: "504 Gateway Timeout" is a server answer).
        rule(
            External,
            r"(?i)\b(?:HTTP(?:/\d(?:\.\d)?)?|status(?: code)?|response code|Server Error:?)[ :=]*(?P<code>5\d\d)\b|\b(?P<code2>5\d\d) (?:Internal Server Error|Not Implemented|Bad Gateway|Service Unavailable|Gateway Time-?out|Server Error)",
            |c| {
                let code = [cap(c, "code"), cap(c, "code2")].into_iter().find(|s| !s.is_empty()).unwrap_or("5xx");
                format!(
                    "an upstream HTTP service answered {code}: check that service's health and logs; the request itself was delivered"
                )
            },
        ),
        // External: timeouts.
        rule(
            External,
            r"(?i)timed out|\btimeout(?:error|exception)\b|ETIMEDOUT|deadline exceeded|\b(?:read|connect|request|socket|pool) ?timeout\b",
            |_| {
                "a call to another service timed out: check that it is up and not overloaded, or raise the client timeout".into()
            },
        ),
        // Logic: panics, assertions, crashes.
        rule(Logic, r"^thread '[^']*' panicked at", |_| {
            "the component panicked: fix the code at the location shown (RUST_BACKTRACE=1 gives the call stack); `razar handover` can propose a patch".into()
        }),
        rule(Logic, r"AssertionError|assertion failed|assertion `[^`]*` failed|Assertion `[^`]*' failed", |_| {
            "an assertion in the component failed: its own invariant was broken; fix the code or the data it was given"
                .into()
        }),
        rule(
            Logic,
            r"^panic: |^goroutine \d+ \[running\]:|^Exception in thread |Uncaught (?:\w+)?(?:Error|Exception)|^(?:TypeError|ReferenceError|RangeError|SyntaxError): ",
            |_| "the component's code threw an unhandled error: fix the code at the location in the stack trace".into(),
        ),
        rule(Logic, r"(?i)segmentation fault|SIGSEGV|core dumped|SIGABRT|double free", |_| {
            "the component crashed: a memory error in the program or a native extension; fix or upgrade it".into()
        }),
    ]
});

fn command_missing(cmd: &str) -> String {
    format!(
        "the command `{}` is not installed or not on PATH: install it, or use its full path in the component's command",
        cmd.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    #[test]
    fn classifies_known_failures() {
        let cases: &[(&str, &str, Category, &str, &str)] = &[
            (
                "python missing module",
                "Traceback (most recent call last):\n  File \"app.py\", line 1, in <module>\n    import requests\nModuleNotFoundError: No module named 'requests'\n",
                Dependency,
                "ModuleNotFoundError: No module named 'requests'",
                "`requests`",
            ),
            (
                "python dotted module",
                "ModuleNotFoundError: No module named 'yaml.cyaml'",
                Dependency,
                "ModuleNotFoundError: No module named 'yaml.cyaml'",
                "`yaml`",
            ),
            (
                "python shared library",
                "Traceback (most recent call last):\n  File \"x.py\", line 2\nImportError: libfoo.so.1: cannot open shared object file: No such file or directory",
                Dependency,
                "ImportError: libfoo.so.1: cannot open shared object file: No such file or directory",
                "`libfoo.so.1`",
            ),
            (
                "elf loader",
                "./server: error while loading shared libraries: libssl.so.3: cannot open shared object file: No such file or directory",
                Dependency,
                "./server: error while loading shared libraries: libssl.so.3: cannot open shared object file: No such file or directory",
                "`libssl.so.3`",
            ),
            (
                "pip no matching distribution",
                "Collecting torch==9.9\nERROR: Could not find a version that satisfies the requirement torch==9.9 (from versions: none)\nERROR: No matching distribution found for torch==9.9",
                Dependency,
                "ERROR: No matching distribution found for torch==9.9",
                "`torch==9.9`",
            ),
            (
                "python cannot import name",
                "ImportError: cannot import name 'soft_unicode' from 'markupsafe' (/v/lib/markupsafe/__init__.py)",
                Dependency,
                "ImportError: cannot import name 'soft_unicode' from 'markupsafe' (/v/lib/markupsafe/__init__.py)",
                "`markupsafe`",
            ),
            ("dash not found", "sh: 1: foo: not found", Dependency, "sh: 1: foo: not found", "`foo`"),
            (
                "bash command not found",
                "starting\nbash: line 1: uvicorn: command not found",
                Dependency,
                "bash: line 1: uvicorn: command not found",
                "`uvicorn`",
            ),
            (
                "bare command not found",
                "frobnicate: command not found",
                Dependency,
                "frobnicate: command not found",
                "`frobnicate`",
            ),
            (
                "env missing",
                "env: 'node': No such file or directory",
                Dependency,
                "env: 'node': No such file or directory",
                "`node`",
            ),
            (
                "node module",
                "Error: Cannot find module 'express'",
                Dependency,
                "Error: Cannot find module 'express'",
                "`express`",
            ),
            (
                "connection refused",
                "requests.exceptions.ConnectionError: HTTPConnectionPool(host='localhost', port=8000): Max retries exceeded (Caused by NewConnectionError('[Errno 111] Connection refused'))",
                External,
                "requests.exceptions.ConnectionError: HTTPConnectionPool(host='localhost', port=8000): Max retries exceeded (Caused by NewConnectionError('[Errno 111] Connection refused'))",
                "depends_on",
            ),
            (
                "python ConnectionRefusedError",
                "Traceback (most recent call last):\n  File \"c.py\", line 3\nConnectionRefusedError: [Errno 111] Connection refused",
                External,
                "ConnectionRefusedError: [Errno 111] Connection refused",
                "not listening",
            ),
            (
                "dns name or service",
                "socket.gaierror: [Errno -2] Name or service not known",
                External,
                "socket.gaierror: [Errno -2] Name or service not known",
                "did not resolve",
            ),
            (
                "dns temporary failure",
                "curl: (6) Could not resolve host: db.internal\npsycopg2.OperationalError: could not translate host name \"db\" to address: Temporary failure in name resolution",
                External,
                "psycopg2.OperationalError: could not translate host name \"db\" to address: Temporary failure in name resolution",
                "did not resolve",
            ),
            (
                "timeout",
                "httpx.ReadTimeout: The read operation timed out",
                External,
                "httpx.ReadTimeout: The read operation timed out",
                "timed out",
            ),
            (
                "python TimeoutError",
                "TimeoutError: [Errno 110] Connection timed out",
                External,
                "TimeoutError: [Errno 110] Connection timed out",
                "timed out",
            ),
            (
                "http 503",
                "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: http://127.0.0.1:9000/v1",
                External,
                "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: http://127.0.0.1:9000/v1",
                "answered 503",
            ),
            (
                "http status 502",
                "upstream returned HTTP 502 while fetching model",
                External,
                "upstream returned HTTP 502 while fetching model",
                "answered 502",
            ),
            ("gateway timeout is 5xx", "504 Gateway Timeout", External, "504 Gateway Timeout", "answered 504"),
            (
                "connect timeout",
                "ERROR connect timeout after 3000ms to 10.0.0.5:5432",
                External,
                "ERROR connect timeout after 3000ms to 10.0.0.5:5432",
                "timed out",
            ),
            (
                "rust panic new format",
                "starting\nthread 'main' panicked at src/main.rs:3:5:\nindex out of bounds: the len is 0 but the index is 0\nnote: run with `RUST_BACKTRACE=1`",
                Logic,
                "thread 'main' panicked at src/main.rs:3:5: index out of bounds: the len is 0 but the index is 0",
                "panicked",
            ),
            (
                "rust panic old format",
                "thread 'worker' panicked at 'called `Option::unwrap()` on a `None` value', src/lib.rs:10:9",
                Logic,
                "thread 'worker' panicked at 'called `Option::unwrap()` on a `None` value', src/lib.rs:10:9",
                "panicked",
            ),
            (
                "rust assert_eq",
                "thread 'main' panicked at src/main.rs:2:5:\nassertion `left == right` failed\n  left: 1\n right: 2",
                Logic,
                "assertion `left == right` failed",
                "assertion",
            ),
            (
                "python AssertionError",
                "Traceback (most recent call last):\n  File \"svc.py\", line 9, in check\n    assert ready, \"not ready\"\nAssertionError: not ready",
                Logic,
                "AssertionError: not ready",
                "assertion",
            ),
            (
                "python ValueError",
                "Traceback (most recent call last):\n  File \"svc.py\", line 4, in <module>\n    int(\"x\")\nValueError: invalid literal for int() with base 10: 'x'",
                Logic,
                "ValueError: invalid literal for int() with base 10: 'x'",
                "raised ValueError",
            ),
            (
                "python bare exception class",
                "Traceback (most recent call last):\n  File \"svc.py\", line 4, in <module>\nmypkg.errors.Boom",
                Logic,
                "mypkg.errors.Boom",
                "raised mypkg.errors.Boom",
            ),
            ("segfault", "Segmentation fault (core dumped)", Logic, "Segmentation fault (core dumped)", "crashed"),
        ];
        for (name, log, category, evidence, remediation) in cases {
            let a = classify(log);
            assert_eq!(a.category, *category, "{name}: {a:?}");
            assert_eq!(a.evidence, *evidence, "{name}");
            assert!(
                a.remediation.contains(remediation),
                "{name}: remediation {:?} lacks {remediation:?}",
                a.remediation
            );
            assert!(a.line.is_some(), "{name}");
        }
    }

    #[test]
    fn dependency_beats_external_beats_logic_with_the_last_occurrence_as_evidence() {
        let log = "\
ModuleNotFoundError: No module named 'first'
Connection refused
AssertionError: boom
ModuleNotFoundError: No module named 'second'
Connection refused again
";
        let a = classify(log);
        assert_eq!(
            (a.category, a.evidence.as_str(), a.line),
            (Dependency, "ModuleNotFoundError: No module named 'second'", Some(4))
        );
        assert!(a.remediation.contains("`second`"));

        let a = classify("AssertionError: x\n[Errno 111] Connection refused\nAssertionError: y\n");
        assert_eq!((a.category, a.line), (External, Some(2)));

        let a = classify("AssertionError: first\nthread 'main' panicked at src/main.rs:1:1:\nlast one\n");
        assert_eq!(a.category, Logic);
        assert_eq!(a.evidence, "thread 'main' panicked at src/main.rs:1:1: last one");
    }

    #[test]
    fn a_panic_caused_by_a_refused_connection_is_external() {
        let log = "thread 'main' panicked at src/main.rs:5:10:\ncalled `Result::unwrap()` on an `Err` value: Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }";
        assert_eq!(classify(log).category, External);
    }

    #[test]
    fn unrecognised_logs_are_unknown_with_their_last_line() {
        let a = classify("all good\nexiting with 3\n\n");
        assert_eq!((a.category, a.evidence.as_str(), a.line), (Unknown, "exiting with 3", Some(2)));
        assert!(!a.remediation.is_empty());
        let empty = classify("");
        assert_eq!((empty.category, empty.evidence.as_str(), empty.line), (Unknown, "", None));
        assert!(empty.summary().starts_with("unknown: (empty log) — "), "{}", empty.summary());
    }

    #[test]
    fn ordinary_words_are_not_failures() {
        for line in [
            "Listening on 0.0.0.0:8000",
            "Processed 503 items",
            "INFO Application startup complete.",
            "Config: timeout_seconds=5",
            "starting with timeout=5s",
            "User-Agent: Mozilla/5.0",
        ] {
            assert_eq!(classify(line).category, Unknown, "{line:?}");
        }
    }

    #[test]
    fn summary_is_one_line_and_evidence_is_bounded() {
        let long = format!("ModuleNotFoundError: No module named 'x' {}", "y".repeat(1000));
        let a = classify(&long);
        assert_eq!(a.evidence.chars().count(), MAX_EVIDENCE + 1, "clipped with an ellipsis");
        let s = a.summary();
        assert!(!s.contains('\n'));
        assert!(s.starts_with("dependency: ModuleNotFoundError: No module named 'x'"), "{s}");
    }
}
