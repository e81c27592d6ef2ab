//! Pure retry rules: the local-attempt backoff of the boot (`min(2^(n-1), 60)` s) and the
//! jittered exponential restart backoff of supervision.

use std::time::Duration;

/// Delay before local attempt `n + 1` after `n` failed attempts (n ≥ 1): `min(2^(n-1), 60)` s.
pub fn local_retry_delay(failed_attempts: u32) -> Duration {
    let exp = failed_attempts.saturating_sub(1).min(6);
    Duration::from_secs((1u64 << exp).min(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_backoff_doubles_to_sixty() {
        let got: Vec<u64> = (1..=9).map(|n| local_retry_delay(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
