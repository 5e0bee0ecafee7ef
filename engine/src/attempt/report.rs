//! What a worker's reports do to its job: a status report moves the attempt along, a result report
//! ends it (processed, or failed by the retry policy), and a report that is not the worker's to
//! make is refused.
//!
//! | report | job as read | plan |
//! |---|---|---|
//! | status, the job's own status again | any | unchanged (a retry after a lost answer) |
//! | status `started` | `ready` (dispatch not yet recorded) | `ready -> queued -> started` |
//! | status `started` to `post_processing` | any other | that change (the state machine judges) |
//! | status anything else | | refused (400) |
//! | result `success` or `no_product` | `post_processing` | `processed` with the results |
//! | result `success` or `no_product` | any other | refused (409) |
//! | result `internal_error` or `external_error` | `queued` or running | the retry policy's changes |
//! | result `internal_error` or `external_error` | any other | refused (409) |
//!
//! A failed result without an `error` is described by its exit code and the job type's exit-code
//! table. Text with NUL characters, products of a kind the job type does not make and a
//! `no_product` result with products are refused (400).

use swath_domain::attempt::AttemptFailure;
use swath_domain::exit_codes::{ExitClass, ExitCodeTable};
use swath_domain::job::JobResults;
use swath_domain::protocol::{path_in_store, ReportAnswer, ResultReport, StatusReport};
use swath_domain::template::TaskOutput;
use swath_domain::JobStatus;

use super::failure::{plan_failure, AttemptBackoff};
use crate::db::jobs::JobHead;
use crate::db::status::StatusChange;
use crate::db::status_batch::ChangeChain;

/// Why a report is refused; nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The report itself is wrong (400).
    #[error("{0}")]
    Invalid(String),
    /// The report does not fit the job as it is (409).
    #[error("{0}")]
    Conflict(String),
    /// The report cannot be recorded (500).
    #[error("{0}")]
    Internal(String),
}

/// What a report does to a job as it was read.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing: the answer is the job as it is.
    Unchanged(ReportAnswer),
    /// These changes, applied together.
    Change(ChangeChain),
}

/// The changes a result makes, and the results of a processed job.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultPlan {
    /// The changes, applied together.
    pub chain: ChangeChain,
    /// The results the job is processed with (`None` when the attempt failed): the children it
    /// creates are made from them.
    pub processed: Option<JobResults>,
}

/// What a result is checked against: its job type's exit codes and product kinds.
#[derive(Debug, Clone, Copy)]
pub struct ResultRules<'a> {
    /// How its exit codes read, for a failure reported without an error.
    pub exit_codes: &'a ExitCodeTable,
    /// The product kinds it makes.
    pub output_products: &'a [String],
}

/// Refuses text with NUL characters (PostgreSQL cannot store them).
fn no_nul<'a>(texts: impl IntoIterator<Item = &'a String>) -> Result<(), Refusal> {
    match texts.into_iter().any(|t| t.contains('\0')) {
        true => Err(Refusal::Invalid(
            "text fields may not contain NUL characters".into(),
        )),
        false => Ok(()),
    }
}

/// Refuses a status report that is not a worker's to make.
pub fn check_status(report: &StatusReport) -> Result<(), Refusal> {
    if !report.status.is_running() {
        return Err(Refusal::Invalid(format!(
            "workers report started, pre_processing, processing or post_processing, not {}; results go to the result endpoint",
            report.status
        )));
    }
    no_nul(report.message.iter())
}

/// What a worker's status report does to `job` as it was read (the report is checked with
/// [`check_status`] first).
pub fn plan_status(job: &JobHead, report: &StatusReport) -> Plan {
    // The same report again (a retry after a lost answer) is acknowledged, not refused.
    if job.status == report.status {
        return Plan::Unchanged(ReportAnswer {
            status: job.status,
            attempt: job.attempt,
        });
    }
    let mut change = StatusChange::new(job.id, job.status, job.attempt, report.status);
    if let Some(message) = &report.message {
        change = change.message(message.clone());
    }
    // A worker can start before its dispatcher has recorded the dispatch: its start proves that the
    // dispatch happened, so both changes are recorded together (the dispatcher then only adds its
    // reference).
    if job.status == JobStatus::Ready && report.status == JobStatus::Started {
        let queued = StatusChange::new(job.id, JobStatus::Ready, job.attempt, JobStatus::Queued)
            .message("dispatch confirmed by the worker's start");
        return Plan::Change(ChangeChain::new(queued).then(StatusChange {
            from: JobStatus::Queued,
            ..change
        }));
    }
    Plan::Change(ChangeChain::new(change))
}

/// The failure a failed `report` stands for: its error, or else its exit code as the job type's
/// table describes it.
fn reported_failure(report: &ResultReport, exit_codes: &ExitCodeTable) -> AttemptFailure {
    if let Some(failure) = &report.failure {
        // The class is the outcome's, whatever the error was read as.
        return AttemptFailure::of_class(report.outcome, failure.subtype(), failure.message());
    }
    let fallback = match report.outcome {
        ExitClass::ExternalError => "external error",
        _ => "internal error",
    };
    let (subtype, message) = match report.return_code {
        Some(code) => (format!("exit code {code}"), exit_codes.describe(code)),
        None => (fallback.to_string(), "no details".to_string()),
    };
    AttemptFailure::of_class(report.outcome, subtype, message)
}

/// The changes a worker's result makes to `job` as it was read, or why it is refused; `rules` are
/// its job type's (`None` when this instance does not serve it). A failure goes through the retry
/// policy with `backoff`.
pub fn plan_result(
    job: &JobHead,
    report: &ResultReport,
    rules: Option<ResultRules<'_>>,
    backoff: AttemptBackoff,
) -> Result<ResultPlan, Refusal> {
    let id = job.id;
    no_nul(
        report
            .failure
            .iter()
            .flat_map(|f| match f {
                AttemptFailure::Internal { subtype, message }
                | AttemptFailure::External { subtype, message } => [subtype, message],
            })
            .chain(report.software_version.iter()),
    )?;
    no_nul(report.products.iter().flat_map(|p| [&p.kind, &p.path]))?;
    if report
        .products
        .iter()
        .any(|p| p.infos.to_string().contains("\\u0000"))
    {
        return Err(Refusal::Invalid(
            "product infos may not contain NUL characters".into(),
        ));
    }
    let rules = rules.ok_or_else(|| {
        Refusal::Conflict(format!(
            "job type {} is not served by this instance",
            job.job_type
        ))
    })?;
    if report.succeeded() {
        if report.outcome == ExitClass::NoProduct && !report.products.is_empty() {
            return Err(Refusal::Invalid(
                "a no_product result lists no products".into(),
            ));
        }
        let allowed = rules.output_products;
        if let Some(p) = report.products.iter().find(|p| !allowed.contains(&p.kind)) {
            return Err(Refusal::Invalid(format!(
                "product kind {:?} is not one of {}'s ({})",
                p.kind,
                job.job_type,
                allowed.join(", ")
            )));
        }
        if job.status != JobStatus::PostProcessing {
            return Err(Refusal::Conflict(format!(
                "job {id} is {}; a result is reported from post_processing",
                job.status
            )));
        }
        let results = JobResults {
            return_code: report.return_code,
            outcome: Some(report.outcome),
            products: report.products.clone(),
        };
        // Encoded once for the change; the typed results stay with the plan.
        let encoded =
            serde_json::to_value(&results).map_err(|e| Refusal::Internal(e.to_string()))?;
        let chain = ChangeChain::new(
            StatusChange::new(job.id, job.status, job.attempt, JobStatus::Processed)
                .results(encoded, report.software_version.clone())
                .release(),
        );
        return Ok(ResultPlan {
            chain,
            processed: Some(results),
        });
    }
    if !(job.status == JobStatus::Queued || job.status.is_running()) {
        return Err(Refusal::Conflict(format!(
            "job {id} is {}: a failure is reported while the attempt runs",
            job.status
        )));
    }
    let failure = reported_failure(report, rules.exit_codes);
    let mut chain = plan_failure(job, &failure, backoff, None).0;
    // What ran is kept with the failure: a manual retry runs it again.
    chain.first_mut().software_version = report.software_version.clone();
    Ok(ResultPlan {
        chain,
        processed: None,
    })
}

/// The change that ends `job`'s attempt with `failure` when no task can ever be built for it
/// (parameters that fail the job type's checks, an input outside the configured stores): straight
/// to `internal_error`, whatever the retry policy, since no attempt can ever run.
pub fn plan_no_task(job: &JobHead, failure: &AttemptFailure) -> ChangeChain {
    ChangeChain::new(
        StatusChange::new(job.id, job.status, job.attempt, JobStatus::InternalError)
            .error(failure.subtype(), failure.message()),
    )
}

/// Why products given as `(kind, path)` (those of a successful report, or those a worker is about
/// to upload) are refused, if they are: each must be of a kind the attempt's task asked for (its
/// `outputs`) and lie under the task's output prefix for that kind. The reason names the product
/// and the expected prefix.
pub fn refused_paths<'a>(
    products: impl IntoIterator<Item = (&'a str, &'a str)>,
    outputs: &[TaskOutput],
) -> Option<String> {
    for (kind, path) in products {
        let Some(output) = outputs.iter().find(|o| o.kind == kind) else {
            let kinds: Vec<&str> = outputs.iter().map(|o| o.kind.as_str()).collect();
            return Some(format!(
                "product {path:?} is of kind {kind:?}, which the task did not ask for (it asked for {})",
                kinds.join(", ")
            ));
        };
        let prefix = path_in_store(&output.destination_prefix);
        if let Err(why) = under_prefix(path, &prefix) {
            return Some(format!(
                "product {path:?} ({kind}) is not under the task's output prefix {prefix:?}: {why}"
            ));
        }
    }
    None
}

/// `report` with its products refused for `reason`: the attempt ends as an internal error
/// `products`, and nothing is kept to publish.
pub fn with_products_refused(report: &ResultReport, reason: String) -> ResultReport {
    ResultReport {
        return_code: report.return_code,
        software_version: report.software_version.clone(),
        ..ResultReport::failed(AttemptFailure::internal("products", reason))
    }
}

/// Checks that `path` (a product's path in its store) lies strictly under `prefix`, comparing whole
/// segments (so that `FSC_x` is not under `FS`): `path` must be relative, without empty, `.` or
/// `..` segments, backslashes or control characters, so that no normalisation can move it.
fn under_prefix(path: &str, prefix: &str) -> Result<(), &'static str> {
    if path.starts_with('/') {
        return Err("the path is absolute");
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err("the path holds a backslash or control characters");
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err("the path has an empty, `.` or `..` segment");
    }
    let wanted: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if wanted.iter().any(|s| *s == "." || *s == "..") {
        return Err("the prefix itself has a `.` or `..` segment");
    }
    if segments.len() <= wanted.len() || segments[..wanted.len()] != wanted[..] {
        return Err("the path does not start with the prefix's segments");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use swath_domain::job::OutputProduct;

    use super::*;

    fn head(status: JobStatus, attempt: i32) -> JobHead {
        JobHead {
            id: 7,
            job_type: "test".into(),
            status,
            attempt,
            max_attempts: 3,
        }
    }

    fn table() -> ExitCodeTable {
        ExitCodeTable::new([
            (0..=0, ExitClass::Success, "ok"),
            (1..=1, ExitClass::InternalError, "bug"),
            (2..=2, ExitClass::ExternalError, "retry"),
        ])
        .unwrap()
    }

    fn product(kind: &str, path: &str) -> OutputProduct {
        OutputProduct {
            kind: kind.into(),
            path: path.into(),
            size_bytes: Some(1),
            completed_at: None,
            infos: serde_json::json!({}),
            published_at: None,
        }
    }

    fn result(outcome: ExitClass, return_code: Option<i32>) -> ResultReport {
        ResultReport {
            outcome,
            return_code,
            products: Vec::new(),
            software_version: Some("img@sha".into()),
            failure: None,
        }
    }

    /// `(from, to, error subtype, message)` of each change.
    fn steps(chain: &ChangeChain) -> Vec<(JobStatus, JobStatus, Option<String>, Option<String>)> {
        chain
            .changes()
            .iter()
            .map(|c| (c.from, c.to, c.error_subtype.clone(), c.message.clone()))
            .collect()
    }

    fn status(status: JobStatus) -> StatusReport {
        StatusReport {
            status,
            message: Some("working".into()),
        }
    }

    #[test]
    fn status_reports_move_the_attempt_along() {
        use JobStatus::*;
        // The same status again is acknowledged as the job is.
        assert_eq!(
            plan_status(&head(Processing, 2), &status(Processing)),
            Plan::Unchanged(ReportAnswer {
                status: Processing,
                attempt: 2
            })
        );
        let Plan::Change(chain) = plan_status(&head(Started, 1), &status(PreProcessing)) else {
            panic!("a change is planned");
        };
        assert_eq!(
            steps(&chain),
            vec![(Started, PreProcessing, None, Some("working".into()))]
        );
        // A start before the dispatch is recorded records both.
        let Plan::Change(chain) = plan_status(&head(Ready, 1), &status(Started)) else {
            panic!("a change is planned");
        };
        assert_eq!(
            steps(&chain)
                .into_iter()
                .map(|(from, to, ..)| (from, to))
                .collect::<Vec<_>>(),
            vec![(Ready, Queued), (Queued, Started)]
        );
        for refused in [Ready, Processed, InternalError] {
            assert!(matches!(
                check_status(&status(refused)),
                Err(Refusal::Invalid(_))
            ));
        }
        let nul = StatusReport {
            status: Started,
            message: Some("a\0b".into()),
        };
        assert!(matches!(check_status(&nul), Err(Refusal::Invalid(_))));
        assert_eq!(check_status(&status(PostProcessing)), Ok(()));
    }

    #[test]
    fn each_way_a_result_ends_the_attempt() {
        use JobStatus::*;
        let table = table();
        let kinds = ["fsc".to_string()];
        let rules = Some(ResultRules {
            exit_codes: &table,
            output_products: &kinds,
        });
        let mut with_product = result(ExitClass::Success, Some(0));
        with_product.products = vec![product("fsc", "FSC/x")];
        let failed = |outcome, failure| ResultReport {
            failure,
            ..result(outcome, None)
        };
        let storage = Some(AttemptFailure::external("storage", "S3 down"));
        let exhausted = head(Processing, 3);
        // (job, report, changes as (from, to, error subtype))
        type Step = (JobStatus, JobStatus, Option<&'static str>);
        let cases: Vec<(JobHead, ResultReport, Vec<Step>)> = vec![
            (
                head(PostProcessing, 1),
                with_product.clone(),
                vec![(PostProcessing, Processed, None)],
            ),
            (
                head(PostProcessing, 1),
                result(ExitClass::NoProduct, Some(0)),
                vec![(PostProcessing, Processed, None)],
            ),
            (
                head(Processing, 1),
                failed(ExitClass::ExternalError, storage.clone()),
                vec![
                    (Processing, ExternalError, Some("storage")),
                    (ExternalError, Ready, None),
                ],
            ),
            (
                exhausted,
                failed(ExitClass::ExternalError, storage),
                vec![
                    (Processing, ExternalError, Some("storage")),
                    (ExternalError, InternalError, Some("attempts exhausted")),
                ],
            ),
            (
                head(Queued, 1),
                failed(
                    ExitClass::InternalError,
                    Some(AttemptFailure::internal("inputs", "bad name")),
                ),
                vec![(Queued, InternalError, Some("inputs"))],
            ),
            (
                head(Processing, 1),
                result(ExitClass::InternalError, Some(1)),
                vec![(Processing, InternalError, Some("exit code 1"))],
            ),
            (
                head(Started, 1),
                result(ExitClass::InternalError, None),
                vec![(Started, InternalError, Some("internal error"))],
            ),
        ];
        for (job, report, expected) in cases {
            let plan = plan_result(&job, &report, rules, AttemptBackoff::default())
                .unwrap_or_else(|e| panic!("{report:?}: {e}"));
            let seen: Vec<(JobStatus, JobStatus, Option<&str>)> = plan
                .chain
                .changes()
                .iter()
                .map(|c| (c.from, c.to, c.error_subtype.as_deref()))
                .collect();
            assert_eq!(seen, expected, "{report:?}");
            let first = &plan.chain.changes()[0];
            assert_eq!(first.software_version.as_deref(), Some("img@sha"));
            match report.succeeded() {
                true => {
                    let results = plan.processed.expect("a processed job has its results");
                    assert_eq!(results.products, report.products);
                    assert_eq!(results.outcome, Some(report.outcome));
                    assert_eq!(first.results, Some(serde_json::to_value(&results).unwrap()));
                }
                false => assert_eq!(plan.processed, None),
            }
        }
        // An exit code without an error is described by the table.
        let plan = plan_result(
            &head(Processing, 1),
            &result(ExitClass::InternalError, Some(1)),
            rules,
            AttemptBackoff::default(),
        )
        .unwrap();
        assert_eq!(
            plan.chain.changes()[0].message.as_deref(),
            Some("exit code 1: bug")
        );
    }

    #[test]
    fn results_that_are_not_the_workers_to_report_are_refused() {
        use JobStatus::*;
        let table = table();
        let kinds = ["fsc".to_string()];
        let rules = Some(ResultRules {
            exit_codes: &table,
            output_products: &kinds,
        });
        let mut no_product_with_products = result(ExitClass::NoProduct, Some(0));
        no_product_with_products.products = vec![product("fsc", "FSC/x")];
        let mut foreign_kind = result(ExitClass::Success, Some(0));
        foreign_kind.products = vec![product("sws", "SWS/x")];
        let mut nul_path = result(ExitClass::Success, Some(0));
        nul_path.products = vec![product("fsc", "FSC/\0")];
        let mut nul_infos = result(ExitClass::Success, Some(0));
        nul_infos.products = vec![OutputProduct {
            infos: serde_json::json!({"a": "\0"}),
            ..product("fsc", "FSC/x")
        }];
        let nul_error = ResultReport {
            failure: Some(AttemptFailure::internal("x", "a\0b")),
            ..result(ExitClass::InternalError, None)
        };
        // (job, report, refused as a conflict rather than as invalid)
        let (invalid, conflict) = (false, true);
        let cases: Vec<(JobHead, ResultReport, bool)> = vec![
            (head(PostProcessing, 1), no_product_with_products, invalid),
            (head(PostProcessing, 1), foreign_kind, invalid),
            (head(PostProcessing, 1), nul_path, invalid),
            (head(PostProcessing, 1), nul_infos, invalid),
            (head(Processing, 1), nul_error, invalid),
            (
                head(Processing, 1),
                result(ExitClass::Success, Some(0)),
                conflict,
            ),
            (
                head(Ready, 1),
                result(ExitClass::ExternalError, Some(2)),
                conflict,
            ),
            (
                head(Processed, 1),
                result(ExitClass::InternalError, Some(1)),
                conflict,
            ),
        ];
        for (job, report, expected) in cases {
            let refusal =
                plan_result(&job, &report, rules, AttemptBackoff::default()).expect_err("refused");
            let is_conflict = match refusal {
                Refusal::Conflict(_) => true,
                Refusal::Invalid(_) => false,
                Refusal::Internal(_) => panic!("{report:?}: {refusal:?}"),
            };
            assert_eq!(is_conflict, expected, "{report:?}: {refusal:?}");
        }
        let unserved = plan_result(
            &head(PostProcessing, 1),
            &result(ExitClass::Success, Some(0)),
            None,
            AttemptBackoff::default(),
        );
        assert_eq!(
            unserved,
            Err(Refusal::Conflict(
                "job type test is not served by this instance".into()
            ))
        );
    }

    #[test]
    fn a_job_without_a_task_ends_at_once() {
        let chain = plan_no_task(
            &head(JobStatus::Queued, 1),
            &AttemptFailure::internal("params", "no task for job 7: bad"),
        );
        let change = &chain.changes()[0];
        assert_eq!(chain.changes().len(), 1);
        assert_eq!(
            (change.from, change.to, change.error_subtype.as_deref()),
            (JobStatus::Queued, JobStatus::InternalError, Some("params"))
        );
        assert_eq!(change.message.as_deref(), Some("no task for job 7: bad"));
        assert!(!change.release, "as before: the job keeps its claim");
    }

    #[test]
    fn products_must_lie_under_the_tasks_prefix_of_their_kind() {
        let outputs = [TaskOutput {
            kind: "fsc".into(),
            destination_prefix: "s3://hrsi/CLMS/FSC/2021/04/13/".into(),
        }];
        let mut report = result(ExitClass::Success, Some(0));
        assert_eq!(
            refused_paths([("fsc", "CLMS/FSC/2021/04/13/FSC_1")], &outputs),
            None
        );
        let reason = refused_paths([("fsc", "CLMS/FSC/2021/04/14/FSC_1")], &outputs).unwrap();
        assert!(
            reason.contains("not under the task's output prefix"),
            "{reason}"
        );
        report.products = vec![product("sws", "CLMS/FSC/2021/04/13/FSC_1")];
        let reason = refused_paths([("sws", "CLMS/FSC/2021/04/13/FSC_1")], &outputs).unwrap();
        assert!(
            reason.contains("did not ask for (it asked for fsc)"),
            "{reason}"
        );
        let refused = with_products_refused(&report, reason.clone());
        assert_eq!(
            refused.failure,
            Some(AttemptFailure::internal("products", reason))
        );
        assert_eq!(refused.outcome, ExitClass::InternalError);
        assert!(refused.products.is_empty());
        assert_eq!(refused.return_code, Some(0));
    }

    #[test]
    fn a_product_is_under_a_prefix_by_whole_segments_only() {
        let prefix = "hrsi/CLMS/FSC/2021/04/13/";
        assert_eq!(
            under_prefix("hrsi/CLMS/FSC/2021/04/13/FSC_1", prefix),
            Ok(())
        );
        assert_eq!(
            under_prefix("hrsi/CLMS/FSC/2021/04/13/FSC_1/a.tif", prefix),
            Ok(())
        );
        for path in [
            "hrsi/CLMS/FSC/2021/04/13",
            "hrsi/CLMS/FSC/2021/04/13/",
            "hrsi/CLMS/FSC/2021/04/130/FSC_1",
            "hrsi/CLMS/FS/2021/04/13/FSC_1",
            "hrsi/CLMS/FSC/2021/04/13/../14/FSC_1",
            "hrsi/CLMS/FSC/2021/04/13/./FSC_1",
            "hrsi/CLMS/FSC/2021/04/13//FSC_1",
            "/hrsi/CLMS/FSC/2021/04/13/FSC_1",
            "hrsi/CLMS/FSC/2021/04/13/FSC\\..\\x",
            "",
        ] {
            assert!(under_prefix(path, prefix).is_err(), "{path:?}");
        }
        assert!(
            under_prefix("FSC_x/1", "FS").is_err(),
            "not a segment prefix"
        );
        assert!(under_prefix("FS/1", "FS").is_ok());
        assert!(under_prefix("a/../b/1", "a/../b/").is_err());
    }
}
