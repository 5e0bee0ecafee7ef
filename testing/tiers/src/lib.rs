//! The heavy test tiers and their gates.
//!
//! A plain `cargo test` needs only PostgreSQL. A test that needs more (a Docker engine, Chromium,
//! RabbitMQ, the chaos runs, an independent client such as `awscli`, or `promtool`) starts with
//! `if !swath_test_tiers::enabled(Tier::Docker) { return; }`: it runs when the tier's environment
//! variable is `1`, and otherwise ends at once, saying on the terminal which tier it needs and how
//! to run it. `scripts/test` (the README's test command) installs what every tier needs and sets
//! every variable, so the whole suite runs there.

use std::io::Write;

/// A tier of tests that needs more than PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// A Docker engine and the stand-in image (`scripts/tools-docker.sh`).
    Docker,
    /// Headless Chromium and ChromeDriver (`scripts/tools-browser.sh`).
    Browser,
    /// A RabbitMQ broker on 127.0.0.1:5672 and `rabbitmqctl` (`scripts/services.sh`).
    RabbitMq,
    /// The chaos runs: instances killed and Nomad failing while jobs flow (slow).
    Chaos,
    /// Independent clients the tests compare with: `awscli`, `rclone` (`scripts/tools-storage.sh`).
    Clients,
    /// Prometheus's `promtool`, which checks and tests the alerting rules
    /// (`scripts/tools-prometheus.sh`).
    Prometheus,
}

impl Tier {
    /// Every tier, in the order `scripts/test` lists them.
    pub const ALL: [Tier; 6] = [
        Tier::Docker,
        Tier::Browser,
        Tier::RabbitMq,
        Tier::Chaos,
        Tier::Clients,
        Tier::Prometheus,
    ];

    /// The environment variable that turns the tier on (`1`).
    pub fn variable(self) -> &'static str {
        match self {
            Tier::Docker => "SWATH_TEST_DOCKER",
            Tier::Browser => "SWATH_TEST_BROWSER",
            Tier::RabbitMq => "SWATH_TEST_RABBITMQ",
            Tier::Chaos => "SWATH_TEST_CHAOS",
            Tier::Clients => "SWATH_TEST_CLIENTS",
            Tier::Prometheus => "SWATH_TEST_PROMETHEUS",
        }
    }

    /// What the tier needs, for the message of a skipped test.
    pub fn needs(self) -> &'static str {
        match self {
            Tier::Docker => "a Docker engine and the stand-in image (scripts/tools-docker.sh)",
            Tier::Browser => "headless Chromium (scripts/tools-browser.sh)",
            Tier::RabbitMq => "RabbitMQ on 127.0.0.1:5672 (scripts/services.sh)",
            Tier::Chaos => "time: it kills instances and fails Nomad while jobs flow",
            Tier::Clients => "awscli and rclone (scripts/tools-storage.sh)",
            Tier::Prometheus => "promtool (scripts/tools-prometheus.sh)",
        }
    }
}

/// Whether the tests of `tier` run here: its variable is `1`. When it is not, writes one line to
/// the terminal (not captured by the test harness) naming the test, what it needs and how to run it.
pub fn enabled(tier: Tier) -> bool {
    if std::env::var(tier.variable()).is_ok_and(|v| v == "1") {
        return true;
    }
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    // Straight to the terminal: `eprintln!` output of a passing test is captured and never shown.
    let _ = writeln!(
        std::io::stderr().lock(),
        "skipped {test}: needs {}; set {}=1 to run it (scripts/test sets every tier)",
        tier.needs(),
        tier.variable()
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tier_has_its_own_variable() {
        let mut names: Vec<_> = Tier::ALL.iter().map(|t| t.variable()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Tier::ALL.len());
        assert!(names.iter().all(|n| n.starts_with("SWATH_TEST_")));
    }
}
