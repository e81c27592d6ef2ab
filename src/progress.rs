//! Boot progress on a terminal: a board of the components still on their way — what starts,
//! what waits on whom and why — redrawn in place below the log lines. Log lines written while
//! the board is shown erase it first (see [`BoardWriter`]), so the two never overlap. Off a
//! terminal there is no board: the timestamped log lines are the progress.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::state::{ComponentState, ComponentStatus as S};

/// The board's place on the terminal.
#[derive(Debug, Default)]
pub struct Board {
    /// Lines of the board currently on screen (0: nothing to erase).
    drawn: Mutex<usize>,
}

impl Board {
    /// A board when stderr is a terminal, else `None`.
    pub fn for_stderr() -> Option<Arc<Board>> {
        std::io::stderr().is_terminal().then(|| Arc::new(Board::default()))
    }

    /// Replaces what is on screen with `lines`.
    pub fn draw(&self, lines: &[String]) {
        let mut drawn = self.lock();
        let mut out = std::io::stderr().lock();
        let _ = out.write_all(erase(*drawn).as_bytes());
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
        *drawn = lines.len();
    }

    /// Erases the board; it stays away until the next `draw`.
    pub fn clear(&self) {
        self.draw(&[]);
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.drawn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Escape sequence that moves up over `lines` lines and clears to the end of the screen.
fn erase(lines: usize) -> String {
    if lines == 0 { String::new() } else { format!("\x1b[{lines}F\x1b[J") }
}

/// The tracing writer while a board is shown: each log line erases the board first (the next
/// redraw puts it back below the line).
#[derive(Clone)]
pub struct BoardWriter(pub Arc<Board>);

pub struct BoardLine<'a> {
    _drawn: MutexGuard<'a, usize>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BoardWriter {
    type Writer = BoardLine<'a>;

    fn make_writer(&'a self) -> BoardLine<'a> {
        let mut drawn = self.0.lock();
        let _ = std::io::stderr().write_all(erase(*drawn).as_bytes());
        *drawn = 0;
        BoardLine { _drawn: drawn }
    }
}

impl Write for BoardLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The terminal's size (columns, rows), with a conservative fallback.
pub fn terminal_size() -> (usize, usize) {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills the winsize struct it is given and reads nothing else.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 { (usize::from(ws.ws_col), usize::from(ws.ws_row)) } else { (80, 24) }
}

/// The board for `components`, at most `rows` lines of at most `cols` characters. Pure.
pub fn render(components: &[ComponentState], elapsed_secs: f64, cols: usize, rows: usize) -> Vec<String> {
    let count = |f: &dyn Fn(S) -> bool| components.iter().filter(|c| f(c.state)).count();
    let ready = count(&|s| matches!(s, S::Healthy | S::Completed));
    let starting = count(&|s| matches!(s, S::Starting));
    let waiting = count(&|s| matches!(s, S::Pending | S::Backoff | S::Unhealthy));
    let failed = count(&|s| matches!(s, S::Failed | S::Blocked | S::Quarantined));
    let mut lines = vec![fit(
        &format!(
            "razar: {ready}/{} ready, {starting} starting, {waiting} waiting, {failed} failed or blocked ({elapsed_secs:.1}s)",
            components.len()
        ),
        cols,
    )];
    let width = components.iter().map(|c| c.id.len()).max().unwrap_or(0).min(24);
    let busy = components
        .iter()
        .filter(|c| matches!(c.state, S::Starting | S::Pending | S::Backoff | S::Unhealthy | S::Healing));
    let budget = rows.saturating_sub(2).max(1);
    let shown: Vec<&ComponentState> = busy.collect();
    for c in shown.iter().take(budget) {
        let detail = match c.state {
            S::Starting => {
                let probe = c.probe.as_ref().and_then(|p| {
                    p.last_output.as_ref().map(|o| format!(" — {}: {}", p.kind, o.lines().next().unwrap_or("")))
                });
                format!("starting (attempt {}){}", c.attempts, probe.unwrap_or_default())
            }
            S::Backoff => format!("retrying: {}", c.last_error.as_deref().unwrap_or("failed")),
            S::Healing => format!("healing (repair agents at work): {}", c.last_error.as_deref().unwrap_or("failed")),
            _ => c.waiting_for.clone().unwrap_or_else(|| c.state.as_str().to_owned()),
        };
        lines.push(fit(&format!("  {:<width$}  {detail}", c.id), cols));
    }
    if shown.len() > budget {
        lines.push(fit(&format!("  … and {} more", shown.len() - budget), cols));
    }
    lines
}

fn fit(line: &str, cols: usize) -> String {
    let line: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.chars().count() < cols.max(2) {
        return line;
    }
    let mut cut: String = line.chars().take(cols.max(2) - 2).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ProbeState;

    fn comp(id: &str, state: S) -> ComponentState {
        ComponentState { attempts: 1, ..ComponentState::new(id, state) }
    }

    #[test]
    fn the_board_says_what_starts_and_who_waits_for_whom() {
        let mut api = comp("api", S::Starting);
        api.probe = Some(ProbeState {
            kind: "http".into(),
            last_result: Some("fail".into()),
            last_output: Some("connection refused".into()),
        });
        let mut worker = comp("worker", S::Pending);
        worker.waiting_for = Some("waiting for api healthy (http …: connection refused, 3 probes)".into());
        let lines = render(&[comp("db", S::Healthy), api, worker], 1.25, 120, 24);
        assert_eq!(lines[0], "razar: 1/3 ready, 1 starting, 1 waiting, 0 failed or blocked (1.2s)");
        assert_eq!(lines[1], "  api     starting (attempt 1) — http: connection refused");
        assert!(lines[2].starts_with("  worker  waiting for api healthy"), "{lines:?}");
        assert_eq!(lines.len(), 3, "ready components are counted, not listed");
    }

    #[test]
    fn the_board_fits_the_terminal() {
        let many: Vec<ComponentState> = (0..50).map(|i| comp(&format!("c{i}"), S::Pending)).collect();
        let lines = render(&many, 0.0, 30, 10);
        assert_eq!(lines.len(), 10);
        assert!(lines.iter().all(|l| l.chars().count() < 30), "{lines:?}");
        assert!(lines.last().unwrap().contains("and 42 more"));
    }
}
