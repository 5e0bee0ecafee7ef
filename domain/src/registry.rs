//! The registry of job types: a name -> [`JobTemplate`] map built once at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::flavor::WorkerFlavor;
use crate::template::JobTemplate;

/// A registry that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two job types share a name.
    #[error("job type {0:?} is registered twice")]
    Duplicate(String),
    /// A job type needs a flavor that the flavor table does not define.
    #[error("job type {job_type:?} needs worker flavor {flavor:?}, which is not in the flavor table (known: {known})")]
    UnknownFlavor {
        /// The job type.
        job_type: String,
        /// The missing flavor.
        flavor: String,
        /// The flavors that exist.
        known: String,
    },
    /// A job type has an invalid spec.
    #[error("job type {job_type:?}: {problem}")]
    InvalidSpec {
        /// The job type.
        job_type: String,
        /// What is wrong.
        problem: String,
    },
}

/// Job types by name.
#[derive(Debug, Clone, Default)]
pub struct JobTypeRegistry {
    types: BTreeMap<String, Arc<dyn JobTemplate>>,
}

impl JobTypeRegistry {
    /// Builds a registry, checking names, specs and flavors.
    pub fn new(
        job_types: impl IntoIterator<Item = Arc<dyn JobTemplate>>,
        flavors: &[WorkerFlavor],
    ) -> Result<Self, RegistryError> {
        let mut types = BTreeMap::new();
        for job_type in job_types {
            let spec = job_type.spec();
            let invalid = |problem: &str| RegistryError::InvalidSpec {
                job_type: spec.name.clone(),
                problem: problem.to_string(),
            };
            if spec.name.is_empty()
                || !spec
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(invalid(
                    "the name must be non-empty lower-case letters, digits and '_'",
                ));
            }
            if spec.max_attempts < 1 {
                return Err(invalid("max_attempts must be at least 1"));
            }
            if spec.image.trim().is_empty() || spec.command.is_empty() {
                return Err(invalid("image and command must be set"));
            }
            if spec.processing_timeout.is_zero() {
                return Err(invalid("processing_timeout must be positive"));
            }
            if !flavors.iter().any(|f| f.name == spec.worker_flavor) {
                return Err(RegistryError::UnknownFlavor {
                    job_type: spec.name.clone(),
                    flavor: spec.worker_flavor.clone(),
                    known: flavors
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            job_type
                .exit_codes()
                .validate()
                .map_err(|e| invalid(&e.to_string()))?;
            let name = spec.name.clone();
            if types.insert(name.clone(), job_type).is_some() {
                return Err(RegistryError::Duplicate(name));
            }
        }
        for job_type in types.values() {
            if let Some(missing) = job_type
                .child_job_types()
                .into_iter()
                .find(|child| !types.contains_key(child))
            {
                return Err(RegistryError::InvalidSpec {
                    job_type: job_type.spec().name.clone(),
                    problem: format!("its children's job type {missing:?} is not registered"),
                });
            }
        }
        Ok(JobTypeRegistry { types })
    }

    /// `enabled` followed by the job types their jobs create as children (and theirs), each once:
    /// the job types an instance that runs `enabled` must configure and dispatch.
    pub fn with_children<'a>(&self, enabled: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        let mut pending: Vec<String> = enabled.into_iter().cloned().collect();
        pending.reverse();
        while let Some(name) = pending.pop() {
            if all.contains(&name) {
                continue;
            }
            if let Some(job_type) = self.get(&name) {
                let mut children = job_type.child_job_types();
                children.reverse();
                pending.extend(children);
            }
            all.push(name);
        }
        all
    }

    /// The job type called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn JobTemplate>> {
        self.types.get(name)
    }

    /// Every job type, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn JobTemplate>> {
        self.types.values()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.types.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavor::default_flavors;
    use crate::types::builtin_job_types;

    #[test]
    fn children_types_run_with_their_parents_once() {
        let registry = JobTypeRegistry::new(
            builtin_job_types(&Default::default()).unwrap(),
            &default_flavors(),
        )
        .unwrap();
        let enabled = [
            "fsc_rlie".to_string(),
            "rlie_s1".to_string(),
            "fsc_rlie".to_string(),
        ];
        assert_eq!(
            registry.with_children(&enabled),
            vec![
                "fsc_rlie",
                "fsc_rlie_quicklook",
                "fsc_rlie_check",
                "rlie_s1"
            ]
        );
        assert_eq!(
            registry.with_children(&["test_job".to_string()]),
            vec!["test_job"]
        );
        let without_children: Vec<_> = builtin_job_types(&Default::default())
            .unwrap()
            .into_iter()
            .filter(|t| t.spec().name == "fsc_rlie")
            .collect();
        let err = JobTypeRegistry::new(without_children, &default_flavors()).unwrap_err();
        assert!(err.to_string().contains("fsc_rlie_quicklook"), "{err}");
    }
}
