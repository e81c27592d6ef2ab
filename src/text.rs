//! Small text helpers shared by the commands that print tables.

/// `text` on one line (newlines shown as ` / `, control characters such as ESC dropped, so a
/// component's output cannot drive the terminal), cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
