//! Exponential backoff with jitter, shared by catalogue requests and job retries.

use std::time::Duration;

/// The delay after failed attempt `attempt` (counted from 1): a random value between half and all
/// of `base * 2^(attempt-1)`, capped at `max`. The jitter spreads retries of many failures apart.
pub fn jittered(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let ceiling = exp.min(max);
    let half = ceiling / 2;
    half + ceiling.saturating_sub(half).mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_stays_capped() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..100 {
            let d1 = jittered(base, max, 1);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = jittered(base, max, 3);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            assert!(jittered(base, max, 30) <= max);
        }
    }
}
