//! The tools razar answers in an agent's tool loop (DESIGN §9.2): `read_file` of one file under
//! the component's `sources`.
//!
//! Bounds: the loop answers at most [`MAX_TOOL_ROUNDS`] replies that ask for tools (the reply
//! after that must submit a patch), at most [`MAX_CALLS_PER_ROUND`] calls in one reply, at most
//! [`READ_FILE_CAP`] bytes of one file, and at most [`READ_BUDGET`] bytes over the whole loop.
//! Paths go through the repair pipeline's checks ([`crate::repair::paths::check`]): relative,
//! no `..`, under `sources`, no symlink leaving them, a regular file. A refused or failed call
//! is answered with an `error: …` text, never by ending the round: the model may correct itself.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Replies asking for tools answered in one round; the reply after the last must submit.
pub const MAX_TOOL_ROUNDS: u32 = 4;
/// Tool calls answered in one reply; further calls in the same reply get an error text.
pub const MAX_CALLS_PER_ROUND: usize = 8;
/// Bytes of one file a `read_file` returns.
pub const READ_FILE_CAP: u64 = 64 * 1024;
/// Bytes all `read_file` calls of one round return together.
pub const READ_BUDGET: u64 = 256 * 1024;

/// The name of the one tool razar answers.
pub const READ_FILE: &str = "read_file";

/// The `read_file` tool's argument schema.
pub fn read_file_parameters() -> Value {
    json!({
        "type": "object",
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "description": "A file under the component's `sources`, relative to the root, as in the failure context."}
        }
    })
}

/// Answers tool calls for one component during one round.
pub struct Tools {
    root: PathBuf,
    sources: Vec<PathBuf>,
    budget: u64,
    /// Calls answered so far, with the path asked for (for the journal and tests).
    pub calls: Vec<String>,
}

impl Tools {
    /// Tools over `sources` (absolute paths under `root`).
    pub fn new(root: &Path, sources: &[PathBuf]) -> Tools {
        Tools { root: root.to_path_buf(), sources: sources.to_vec(), budget: READ_BUDGET, calls: Vec::new() }
    }

    /// The answer to one call of tool `name` with `arguments` (a JSON object, or a JSON text
    /// of one): the file's text, or `error: …`.
    pub fn call(&mut self, name: &str, arguments: &Value) -> String {
        if name != READ_FILE {
            return format!("error: unknown tool {name:?}; the tools are submit_patch and read_file");
        }
        let parsed;
        let args = match arguments {
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(v) => {
                    parsed = v;
                    &parsed
                }
                Err(e) => return format!("error: the arguments are not JSON ({e})"),
            },
            other => other,
        };
        let Some(path) = args.get("path").and_then(Value::as_str) else {
            return "error: `path` is required (a string)".into();
        };
        self.calls.push(path.to_owned());
        self.read(path)
    }

    fn read(&mut self, path: &str) -> String {
        let rel = Path::new(path.trim());
        let abs = match crate::repair::paths::check(&self.root, &self.sources, rel) {
            Ok(abs) => abs,
            Err(reason) => return format!("error: {reason}"),
        };
        if self.budget == 0 {
            return format!("error: {READ_BUDGET} bytes were read in this round already; submit the patch now");
        }
        let file = match std::fs::File::open(&abs) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return format!("error: {path}: no such file"),
            Err(e) => return format!("error: {path}: cannot read: {e}"),
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut content = Vec::new();
        if let Err(e) = file.take(READ_FILE_CAP.min(self.budget)).read_to_end(&mut content) {
            return format!("error: {path}: cannot read: {e}");
        }
        self.budget -= content.len() as u64;
        let mut text = String::from_utf8_lossy(&content).into_owned();
        if (content.len() as u64) < size {
            text.push_str(&format!("\n[razar: truncated, {} of {size} bytes shown]", content.len()));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Tools) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("svc")).unwrap();
        std::fs::write(root.join("svc/app.py"), "print(1/0)\n").unwrap();
        std::fs::write(root.join("svc/big.txt"), "x".repeat(100 * 1024)).unwrap();
        std::fs::write(root.join("secret.txt"), "top secret").unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), root.join("svc/link.txt")).unwrap();
        let tools = Tools::new(&root, &[root.join("svc")]);
        (dir, tools)
    }

    #[test]
    fn reads_a_source_file_from_object_or_text_arguments() {
        let (_d, mut t) = setup();
        assert_eq!(t.call(READ_FILE, &json!({"path": "svc/app.py"})), "print(1/0)\n");
        assert_eq!(t.call(READ_FILE, &json!("{\"path\": \"./svc/app.py\"}")), "print(1/0)\n");
        assert_eq!(t.calls, ["svc/app.py", "./svc/app.py"]);
    }

    #[test]
    fn refuses_paths_outside_sources_with_a_reason() {
        let (_d, mut t) = setup();
        for (path, says) in [
            ("secret.txt", "not under the component's `sources`"),
            ("svc/../secret.txt", "`..`"),
            ("/etc/passwd", "absolute"),
            ("svc/link.txt", "symlink outside"),
            ("svc", "not a regular file"),
            ("svc/missing.py", "no such file"),
        ] {
            let answer = t.call(READ_FILE, &json!({"path": path}));
            assert!(answer.starts_with("error: ") && answer.contains(says), "{path}: {answer}");
            assert!(!answer.contains("top secret"));
        }
        assert!(t.call("run_shell", &json!({})).contains("unknown tool"));
        assert!(t.call(READ_FILE, &json!({"file": "svc/app.py"})).contains("`path` is required"));
        assert!(t.call(READ_FILE, &json!("{not json")).contains("not JSON"));
    }

    #[test]
    fn caps_one_file_and_the_whole_round() {
        let (_d, mut t) = setup();
        let first = t.call(READ_FILE, &json!({"path": "svc/big.txt"}));
        assert!(first.starts_with(&"x".repeat(READ_FILE_CAP as usize)));
        assert!(first.ends_with(&format!("[razar: truncated, {READ_FILE_CAP} of {} bytes shown]", 100 * 1024)));
        for _ in 0..3 {
            t.call(READ_FILE, &json!({"path": "svc/big.txt"}));
        }
        assert!(t.call(READ_FILE, &json!({"path": "svc/app.py"})).contains("submit the patch now"));
    }
}
