//! `docs/quarantine_log.md`: the human-readable quarantine log, a Markdown table appended to
//! one row at a time.
//!
//! Invariants: a row is one `write(2)` to a file opened for appending, under an exclusive
//! advisory lock, so two razar processes never interleave rows and never both add a header.
//! The file is never rewritten: an operator's own text above the table is kept as it is. A row
//! only continues a table when the file's last block (the lines after its last blank line) is
//! that table; otherwise (a fresh file, the upstream file whose table is followed by a blank
//! line, a note typed under the table) a table header is appended first, once. Every cell is
//! escaped by [`escape_cell`], so no error text can end a row, add a column or inject HTML.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::clock;
use crate::fsutil::{self, FsError};

/// The table's header row.
pub const TABLE_HEADER: &str = "| Timestamp (UTC) | Component | Action | Details |";
/// The delimiter row under [`TABLE_HEADER`].
pub const TABLE_DELIMITER: &str = "| --- | --- | --- | --- |";

/// What a fresh log starts with.
const PREAMBLE: &str = "# Quarantine Log

Components that razar could not heal, and components an operator set aside, are quarantined:
razar does not start them until they are released. Each quarantined component has a JSON file
in `quarantine/`; this log records every quarantine, release and diagnostic, newest last.
Release a component with `razar quarantine release <component> --note \"…\"`.

";

/// The `Action` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quarantined,
    Released,
    Diagnostic,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Quarantined => "quarantined",
            Action::Released => "released",
            Action::Diagnostic => "diagnostic",
        }
    }
}

/// The Markdown log file.
#[derive(Debug, Clone)]
pub struct MarkdownLog {
    path: PathBuf,
}

impl MarkdownLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        MarkdownLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row stamped with the current time, adding the preamble or the table
    /// header first when the file needs them.
    pub fn append(&self, component: &str, action: Action, details: &str) -> Result<(), FsError> {
        let row = row(clock::epoch(), component, action, details);
        if let Some(dir) = self.path.parent() {
            fsutil::ensure_dir(dir)?;
        }
        let append = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(crate::fsutil::PRIVATE_FILE)
                .open(&self.path)?;
            // Bounded: another process holding the lock must not stall the boot that quarantines.
            let locked = crate::fsutil::lock_bounded(&f);
            // Read under the lock: the decision "header or not" must see every earlier row.
            let mut existing = Vec::new();
            f.read_to_end(&mut existing)?;
            let bytes = to_append(&String::from_utf8_lossy(&existing), &row);
            f.write_all(bytes.as_bytes())?;
            if locked { f.unlock() } else { Ok(()) }
        };
        append().map_err(|e| FsError::new("appending to", &self.path, e))
    }
}

/// One table row, newline-terminated, every cell escaped.
pub fn row(epoch: f64, component: &str, action: Action, details: &str) -> String {
    format!(
        "| {} | {} | {} | {} |\n",
        clock::human(epoch),
        escape_cell(component),
        action.as_str(),
        escape_cell(details)
    )
}

/// Makes `text` safe as one table cell and renders it as written:
///
/// - leading and trailing whitespace is trimmed (it would be lost or misread anyway);
/// - CR LF, CR and LF become `<br>` (a raw newline would end the row);
/// - `\`, `|`, `` ` `` and `<` get a backslash (`|` would add a column; a backtick would open a
///   code span in which escapes stop working; `<` would start raw HTML such as `<module>`);
/// - other control characters (escape sequences, NUL) are dropped; tabs become spaces.
pub fn escape_cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("<br>");
            }
            '\n' => out.push_str("<br>"),
            '\\' | '|' | '`' | '<' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The bytes to append to a log whose current contents are `existing` so that `row` ends up
/// in a well-formed table. Pure, so the header decision is tested without files.
pub fn to_append(existing: &str, row: &str) -> String {
    if existing.trim().is_empty() {
        return format!("{PREAMBLE}{TABLE_HEADER}\n{TABLE_DELIMITER}\n{row}");
    }
    let mut out = String::new();
    if !existing.ends_with('\n') {
        out.push('\n');
    }
    if !ends_in_table(existing) {
        // A table must follow a blank line to be a table and not a paragraph continuation.
        if !existing.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(TABLE_HEADER);
        out.push('\n');
        out.push_str(TABLE_DELIMITER);
        out.push('\n');
    }
    out.push_str(row);
    out
}

/// True when the file's last block (the lines after its last blank line, with no blank line
/// after it) is a quarantine table: our header, a delimiter row, then table rows.
fn ends_in_table(existing: &str) -> bool {
    let lines: Vec<&str> = existing.lines().collect();
    let start = lines.iter().rposition(|l| l.trim().is_empty()).map_or(0, |i| i + 1);
    let block = &lines[start..];
    let squash = |l: &str| l.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    match block {
        [header, delimiter, rows @ ..] => {
            squash(header) == squash(TABLE_HEADER)
                && delimiter.trim().starts_with('|')
                && delimiter.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
                && rows.iter().all(|r| r.trim_start().starts_with('|'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upstream quarantine log, or `None` (the test is skipped) when absent.
    fn upstream(test: &str) -> Option<String> {
        let path = crate::testutil::upstream(test, "docs/quarantine_log.md")?;
        Some(std::fs::read_to_string(path).unwrap())
    }

    /// Splits a row into its cells the way a GFM table parser does: on `|` not preceded by `\`.
    fn cells(row: &str) -> Vec<String> {
        let inner = row.trim_end_matches('\n').trim().strip_prefix('|').unwrap().strip_suffix('|').unwrap();
        let mut cells = vec![String::new()];
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    cells.last_mut().unwrap().push(c);
                    if let Some(n) = chars.next() {
                        cells.last_mut().unwrap().push(n);
                    }
                }
                '|' => cells.push(String::new()),
                c => cells.last_mut().unwrap().push(c),
            }
        }
        cells.into_iter().map(|c| c.trim().to_owned()).collect()
    }

    #[test]
    fn cells_cannot_break_the_table() {
        let nasty = "  a | b\nline2\r\nline3\rline4 `code | x` C:\\path\\ <module> \x1b[31mred\ttab  ";
        let r = row(0.0, "web", Action::Quarantined, nasty);
        assert_eq!(r.matches('\n').count(), 1, "one line: {r:?}");
        assert!(r.ends_with(" |\n"));
        let c = cells(&r);
        assert_eq!(c.len(), 4, "{c:?}");
        assert_eq!(c[0], "1970-01-01 00:00:00");
        assert_eq!(c[1], "web");
        assert_eq!(c[2], "quarantined");
        assert_eq!(c[3], "a \\| b<br>line2<br>line3<br>line4 \\`code \\| x\\` C:\\\\path\\\\ \\<module> [31mred tab");
    }

    #[test]
    fn escape_keeps_plain_text_and_trims() {
        assert_eq!(escape_cell("dependency: circular import"), "dependency: circular import");
        assert_eq!(escape_cell("  \n padded \r\n"), "padded");
        assert_eq!(escape_cell("a\\|b"), "a\\\\\\|b");
        assert_eq!(escape_cell("x\r\n\r\ny"), "x<br><br>y");
        assert_eq!(escape_cell(""), "");
    }

    #[test]
    fn fresh_log_gets_preamble_and_header_once() {
        let first = to_append("", "| r1 |\n");
        assert!(first.starts_with("# Quarantine Log\n"), "{first}");
        assert!(first.ends_with(&format!("\n\n{TABLE_HEADER}\n{TABLE_DELIMITER}\n| r1 |\n")), "{first}");
        let second = to_append(&first, "| r2 |\n");
        assert_eq!(second, "| r2 |\n", "rows continue the table");
    }

    #[test]
    fn upstream_log_gets_a_header_before_the_first_row_only() {
        // The upstream file ends its table with a blank line, after which a row would no
        // longer belong to it; a table without any header at all must get one too.
        let Some(upstream) = upstream("quarantine::markdown::upstream_log_gets_a_header_before_the_first_row_only")
        else {
            return;
        };
        let without_table = format!("{}\n", upstream[..upstream.find(TABLE_HEADER).unwrap()].trim_end());
        for (existing, expected_prefix) in [(upstream.as_str(), ""), (without_table.as_str(), "\n")] {
            let added = to_append(existing, "| r1 |\n");
            assert_eq!(added, format!("{expected_prefix}{TABLE_HEADER}\n{TABLE_DELIMITER}\n| r1 |\n"));
            let both = format!("{existing}{added}");
            assert_eq!(to_append(&both, "| r2 |\n"), "| r2 |\n");
        }
    }

    #[test]
    fn table_with_text_after_it_gets_a_new_header() {
        let existing = format!("# Log\n\n{TABLE_HEADER}\n{TABLE_DELIMITER}\n| a | b | c | d |\nA note.");
        assert_eq!(to_append(&existing, "| r |\n"), format!("\n\n{TABLE_HEADER}\n{TABLE_DELIMITER}\n| r |\n"));
        let open = format!("{TABLE_HEADER}\n|---|---|---|---|\n| a | b | c | d |");
        assert_eq!(to_append(&open, "| r |\n"), "\n| r |\n", "a missing final newline is added");
    }

    #[test]
    fn append_writes_the_upstream_file_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs/quarantine_log.md");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let Some(upstream) = upstream("quarantine::markdown::append_writes_the_upstream_file_in_place") else {
            return;
        };
        std::fs::write(&path, &upstream).unwrap();
        let log = MarkdownLog::new(&path);
        log.append("web", Action::Quarantined, "boom | bang").unwrap();
        log.append("web", Action::Released, "fixed").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&upstream), "upstream text kept as is");
        let tail: Vec<&str> = text[upstream.len()..].lines().collect();
        assert_eq!(tail.len(), 4, "{tail:?}");
        assert_eq!(tail[0], TABLE_HEADER);
        assert!(tail[2].ends_with("| web | quarantined | boom \\| bang |"), "{}", tail[2]);
        assert!(tail[3].ends_with("| web | released | fixed |"), "{}", tail[3]);
    }

    #[test]
    fn append_creates_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = MarkdownLog::new(dir.path().join("docs/quarantine_log.md"));
        log.append("db", Action::Diagnostic, "{\"k\": 1}").unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(text.starts_with("# Quarantine Log\n"));
        assert_eq!(text.matches(TABLE_HEADER).count(), 1);
        assert!(text.ends_with("| db | diagnostic | {\"k\": 1} |\n"), "{text}");
    }

    #[test]
    fn a_lock_held_by_another_process_delays_a_row_only_briefly() {
        let dir = tempfile::tempdir().unwrap();
        let log = MarkdownLog::new(dir.path().join("docs/quarantine_log.md"));
        log.append("web", Action::Quarantined, "first").unwrap();
        let hostile = std::fs::File::open(log.path()).unwrap();
        hostile.lock().unwrap();
        let started = std::time::Instant::now();
        log.append("web", Action::Released, "second").unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "took {:?}", started.elapsed());
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(
            text.contains("| web | quarantined | first |") && text.contains("| web | released | second |"),
            "{text}"
        );
    }
}
