//! Quarantine decisions as pure functions of plain data.

/// Whether a component is quarantined before launch because it failed in too many earlier
/// runs: `cumulative_failures` (the boot history's `component_failures`) at or above
/// `failure_limit` (`--failure-limit`). A limit of 0 turns the rule off.
pub fn should_quarantine_up_front(cumulative_failures: u32, failure_limit: u32) -> bool {
    failure_limit != 0 && cumulative_failures >= failure_limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_front_quarantine_is_at_or_above_the_limit_and_zero_disables() {
        for (failures, limit, want) in [
            (0, 3, false),
            (2, 3, false),
            (3, 3, true),
            (7, 3, true),
            (1, 1, true),
            (0, 1, false),
            (0, 0, false),
            (u32::MAX, 0, false),
        ] {
            assert_eq!(should_quarantine_up_front(failures, limit), want, "failures {failures}, limit {limit}");
        }
    }
}
