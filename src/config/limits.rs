//! Caps on a config file before it is parsed: its size and how deeply it nests. A parser given
//! 200 KB of `[[[…` recurses for seconds (or overflows its stack); razar refuses such a file
//! at once, naming the file and the limit.

use std::io::Read;
use std::path::Path;

/// Largest config file razar reads (a thousand-component stack is well under 1 MiB).
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Deepest nesting of lists and objects razar accepts (a real config nests fewer than 10).
pub const MAX_DEPTH: usize = 64;

/// Reads `file` whole if it is at most [`MAX_BYTES`]. `Err` is the message for the operator.
pub fn read_capped(file: &Path) -> Result<String, std::io::Error> {
    let f = std::fs::File::open(file)?;
    let mut text = String::new();
    f.take(MAX_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than the {} MiB limit for a config file", MAX_BYTES / (1024 * 1024)),
        ));
    }
    Ok(text)
}

/// Checks that `text` nests at most [`MAX_DEPTH`] levels: `[`/`{` outside strings and
/// comments, plus, for YAML, block indentation and `- - ` on one line. Quotes are tracked within
/// a line (a quoted YAML scalar spanning lines is rare in a config, and a parser meets at most a
/// few levels more than counted). It may overcount odd plain scalars such as `a[b`.
pub fn check_depth(text: &str, yaml: bool) -> Result<(), String> {
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let mut line_extra = 0usize;
        if yaml {
            let content = line.trim_start_matches(' ');
            // Block indentation: each level indents by at least one column.
            line_extra = line.len() - content.len();
            let mut rest = content;
            while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
                line_extra += 1;
                rest = r.trim_start();
            }
        }
        let mut quote: Option<char> = None;
        let mut escaped = false;
        for c in line.chars() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q == '"' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '"' => quote = Some('"'),
                    '\'' if yaml => quote = Some('\''),
                    '#' if yaml => break,
                    '[' | '{' => depth += 1,
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            if depth + line_extra > MAX_DEPTH {
                return Err(format!(
                    "nested more than {MAX_DEPTH} levels deep (line {}); razar refuses deeper files",
                    n + 1
                ));
            }
        }
        if depth + line_extra > MAX_DEPTH {
            return Err(format!(
                "nested more than {MAX_DEPTH} levels deep (line {}); razar refuses deeper files",
                n + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_configs_pass_and_deep_ones_are_refused_fast() {
        let json = r#"{"components": [{"name": "a", "command": ["sh", "-c", "echo [[[[ {{{{"],
            "health_check": {"http": {"url": "http://x/"}}}]}"#;
        check_depth(json, false).unwrap();
        let yaml = "components:\n  - name: a\n    command: \"echo [[[[[[\" # [[[[[\n    depends_on: [b, c]\n";
        check_depth(yaml, true).unwrap();
        let started = std::time::Instant::now();
        let deep = "[".repeat(200 * 1024);
        let err = check_depth(&deep, true).unwrap_err();
        assert!(err.contains("64 levels"), "{err}");
        check_depth(&deep, false).unwrap_err();
        check_depth(&"{\"a\":".repeat(100), false).unwrap_err();
        check_depth(&"- ".repeat(100), true).unwrap_err();
        let indented: String = (0..100).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        check_depth(&indented, true).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        std::fs::write(&p, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        let err = read_capped(&p).unwrap_err();
        assert!(err.to_string().contains("4 MiB limit"), "{err}");
        std::fs::write(&p, "{}").unwrap();
        assert_eq!(read_capped(&p).unwrap(), "{}");
    }
}
