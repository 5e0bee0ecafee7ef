//! Declarative exit-code tables: how a job type's scientific code reports its outcome.
//!
//! The original classified return codes in imperative code per job type, with gaps (FSC codes above 207
//! fell through silently, RLIE-S1 ignored the code). Here every code maps to exactly one class: the
//! first matching range wins and anything unmatched is an internal error.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// The outcome class of a return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitClass {
    /// Products were generated.
    Success,
    /// Nothing to produce (e.g. too cloudy), not an error.
    NoProduct,
    /// A bug or unrecoverable input problem; not retried.
    InternalError,
    /// A transient problem outside the code; retried.
    ExternalError,
}

/// One rule of an exit-code table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitCodeRule {
    /// First code of the range.
    pub from: i32,
    /// Last code of the range (inclusive).
    pub to: i32,
    /// Class of every code in the range.
    pub class: ExitClass,
    /// What these codes mean, for operators and logs.
    pub meaning: String,
}

/// An ordered list of rules; unmatched codes are internal errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitCodeTable {
    /// Rules, tried in order.
    pub rules: Vec<ExitCodeRule>,
}

/// A table whose rules overlap, which would make the classification depend on rule order by accident.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExitCodeTableError {
    /// A rule whose range is empty.
    #[error("exit-code rule {from}..={to} ({meaning}) is empty")]
    Empty {
        /// First code.
        from: i32,
        /// Last code.
        to: i32,
        /// The rule's meaning.
        meaning: String,
    },
    /// Two rules share codes.
    #[error("exit-code rules {0} and {1} overlap")]
    Overlap(String, String),
}

impl ExitCodeTable {
    /// Builds a table from `(range, class, meaning)` rows, rejecting empty or overlapping ranges.
    pub fn new(
        rows: impl IntoIterator<Item = (RangeInclusive<i32>, ExitClass, &'static str)>,
    ) -> Result<Self, ExitCodeTableError> {
        let rules: Vec<ExitCodeRule> = rows
            .into_iter()
            .map(|(range, class, meaning)| ExitCodeRule {
                from: *range.start(),
                to: *range.end(),
                class,
                meaning: meaning.to_string(),
            })
            .collect();
        let table = ExitCodeTable { rules };
        table.validate()?;
        Ok(table)
    }

    /// Checks that no rule is empty and no two rules overlap.
    pub fn validate(&self) -> Result<(), ExitCodeTableError> {
        for (i, a) in self.rules.iter().enumerate() {
            if a.from > a.to {
                return Err(ExitCodeTableError::Empty {
                    from: a.from,
                    to: a.to,
                    meaning: a.meaning.clone(),
                });
            }
            for b in &self.rules[i + 1..] {
                if a.from <= b.to && b.from <= a.to {
                    let show = |r: &ExitCodeRule| format!("{}..={} ({})", r.from, r.to, r.meaning);
                    return Err(ExitCodeTableError::Overlap(show(a), show(b)));
                }
            }
        }
        Ok(())
    }

    /// The rule that matches `code`, if any.
    pub fn rule_for(&self, code: i32) -> Option<&ExitCodeRule> {
        self.rules.iter().find(|r| (r.from..=r.to).contains(&code))
    }

    /// The class of `code`: unmatched codes are internal errors.
    pub fn classify(&self, code: i32) -> ExitClass {
        self.rule_for(code)
            .map_or(ExitClass::InternalError, |r| r.class)
    }

    /// A human description of `code`.
    pub fn describe(&self, code: i32) -> String {
        match self.rule_for(code) {
            Some(rule) => format!("exit code {code}: {}", rule.meaning),
            None => format!("exit code {code}: not in the job type's exit-code table"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ExitCodeTable {
        ExitCodeTable::new([
            (0..=0, ExitClass::Success, "ok"),
            (1..=99, ExitClass::InternalError, "bug"),
            (100..=199, ExitClass::ExternalError, "transient"),
            (200..=207, ExitClass::NoProduct, "nothing to do"),
        ])
        .unwrap()
    }

    #[test]
    fn classifies_every_code_and_defaults_to_internal_error() {
        let t = table();
        assert_eq!(t.classify(0), ExitClass::Success);
        assert_eq!(t.classify(42), ExitClass::InternalError);
        assert_eq!(t.classify(100), ExitClass::ExternalError);
        assert_eq!(t.classify(207), ExitClass::NoProduct);
        assert_eq!(t.classify(208), ExitClass::InternalError);
        assert_eq!(t.classify(-1), ExitClass::InternalError);
        assert!(t
            .describe(208)
            .contains("not in the job type's exit-code table"));
        assert_eq!(t.describe(150), "exit code 150: transient");
    }

    #[test]
    fn rejects_overlapping_and_empty_rules() {
        let err = ExitCodeTable::new([
            (0..=10, ExitClass::Success, "a"),
            (10..=20, ExitClass::NoProduct, "b"),
        ])
        .unwrap_err();
        assert!(matches!(err, ExitCodeTableError::Overlap(..)), "{err}");
        #[allow(clippy::reversed_empty_ranges)]
        let err = ExitCodeTable::new([(5..=1, ExitClass::Success, "backwards")]).unwrap_err();
        assert!(matches!(err, ExitCodeTableError::Empty { .. }), "{err}");
    }
}
