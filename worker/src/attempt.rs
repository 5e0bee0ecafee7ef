//! One attempt, from the task to the result.
//!
//! 1. Fetch the task; report `started` (a 409 means another run of this attempt is ahead, or the
//!    attempt is over: this run stops and exits 0).
//! 2. `pre_processing`: check every input name (one plain directory name: nothing is staged
//!    unless all are), stage every input into `<work root>/<uid>/inputs/<name>`, write the
//!    parameter file.
//! 3. `processing`: run the scientific code (Docker or a process) with the flavor's limits and the
//!    task's deadline; classify its exit code with the job type's table. The runtime holds the work
//!    directory to the flavor's scratch disk: past it the code is stopped and the attempt fails
//!    with an internal error `disk` (Nomad only places by `ephemeral_disk`, it does not enforce
//!    it).
//! 4. `post_processing`: check and upload the products (see [`crate::products`]), then report the
//!    result (products, return code, software version) or the error.
//!
//! The work directory is removed in every case. The exit code tells the executor what to do:
//! 0 when the attempt is finished (reported), 2 when it should be retried.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::time::Duration;

use swath_domain::attempt::AttemptFailure;
use swath_domain::exit_codes::ExitClass;
use swath_domain::job::OutputProduct;
use swath_domain::protocol::{AttemptTask, ResultReport};
use swath_domain::template::TaskInput;
use swath_domain::JobStatus;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::orchestrator::{Orchestrator, ProtocolError};
use crate::outcome::Outcome;
use crate::products::{delete_replaced, find_products, planned_products, upload_products};
use crate::runtime::{RunOutcome, RunSpec, Runtime, CONTAINER_WORK_DIR};
use crate::workdir::WorkDir;
use swath_storage::stage;

/// Parallel downloads and uploads per attempt.
pub const TRANSFER_PARALLELISM: usize = 8;
/// The parameter file, inside the work directory.
pub const PARAMETERS_FILE: &str = "parameters.json";

/// How a run of the scientific code ended, before it is reported.
struct Ran {
    class: ExitClass,
    return_code: Option<i32>,
    software_version: Option<String>,
    failure: Option<AttemptFailure>,
}

fn protocol_failure(e: ProtocolError) -> AttemptFailure {
    match e {
        ProtocolError::Unavailable(m) => AttemptFailure::external("orchestrator", m),
        other => AttemptFailure::internal("orchestrator", other.to_string()),
    }
}

/// Runs the attempt `config` names with `runtime`; `cancel` fires on SIGTERM.
pub async fn run_attempt(
    config: &WorkerConfig,
    runtime: &dyn Runtime,
    cancel: CancellationToken,
) -> Outcome {
    let orchestrator = match Orchestrator::new(config) {
        Ok(o) => o,
        Err(e) => return Outcome::Failed(protocol_failure(e)),
    };
    let task = match orchestrator.task().await {
        Ok(t) => t,
        Err(ProtocolError::Conflict(m)) => return Outcome::Superseded(m),
        Err(e) => return Outcome::Failed(protocol_failure(e)),
    };
    // Every line logged from here on names the job's type too (the span is the caller's).
    tracing::Span::current().record("job_type", task.task.job_type.as_str());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    match orchestrator
        .status(
            JobStatus::Started,
            format!("worker on {} ({})", host.trim(), runtime.name()),
        )
        .await
    {
        Ok(_) => {}
        Err(ProtocolError::Conflict(m)) => return Outcome::Superseded(m),
        Err(e) => return Outcome::Failed(protocol_failure(e)),
    }
    let work = match WorkDir::create(&config.work_root, task.uid) {
        Ok(w) => w,
        Err(e) => return report_failure(&orchestrator, e).await,
    };
    let ran = match prepare_and_run(&orchestrator, &task, work.path(), runtime, cancel).await {
        Ok(ran) => ran,
        Err(e) => return report_failure(&orchestrator, e).await,
    };
    let outcome = finish(&orchestrator, &task, work.path(), ran).await;
    drop(work);
    outcome
}

/// Stages the inputs and runs the code.
async fn prepare_and_run(
    orchestrator: &Orchestrator,
    task: &AttemptTask,
    work: &Path,
    runtime: &dyn Runtime,
    cancel: CancellationToken,
) -> Result<Ran, AttemptFailure> {
    check_input_names(&task.task.inputs)?;
    status(orchestrator, JobStatus::PreProcessing, "staging inputs").await?;
    let inputs = work.join("inputs");
    for input in &task.task.inputs {
        let dest = inputs.join(&input.name);
        let staged = stage(&input.source, &dest, TRANSFER_PARALLELISM, input.required)
            .await
            .map_err(AttemptFailure::from)?;
        tracing::info!(input = %input.name, objects = staged.objects, bytes = staged.bytes, "input staged");
    }
    for dir in ["outputs", "logs"] {
        std::fs::create_dir_all(work.join(dir)).map_err(|e| {
            AttemptFailure::internal("work directory", format!("cannot create {dir}: {e}"))
        })?;
    }
    let parameters = serde_json::to_vec_pretty(&task.task.parameters)
        .map_err(|e| AttemptFailure::internal("parameters", e.to_string()))?;
    std::fs::write(work.join(PARAMETERS_FILE), parameters).map_err(|e| {
        AttemptFailure::internal(
            "work directory",
            format!("cannot write the parameters: {e}"),
        )
    })?;

    status(
        orchestrator,
        JobStatus::Processing,
        format!("running {}", task.task.image),
    )
    .await?;
    // The work directory as the code sees it (the runtime also sets SWATH_WORK to it).
    let inside = if runtime.name() == "docker" {
        CONTAINER_WORK_DIR.to_string()
    } else {
        work.display().to_string()
    };
    let spec = RunSpec {
        // Unique per attempt across orchestrators sharing an engine: job ids are per database.
        name: format!(
            "swath-{}-{}-{}",
            task.task.job_id,
            task.task.attempt,
            &task.uid.simple().to_string()[..12]
        ),
        image: task.task.image.clone(),
        // `{params}` in the command names the parameter file.
        command: task
            .task
            .command
            .iter()
            .map(|a| a.replace("{params}", &format!("{inside}/{PARAMETERS_FILE}")))
            .collect(),
        env: BTreeMap::from([(
            "SWATH_PARAMETERS".to_string(),
            format!("{inside}/{PARAMETERS_FILE}"),
        )]),
        work_dir: work.to_path_buf(),
        network: task.task.network,
        cpus: f64::from(task.cpus),
        memory_mb: task.memory_mb,
        deadline: Duration::from_secs(task.task.timeout_secs),
        // Nomad places by the flavor's disk but does not enforce it: the runtime does.
        disk_mb: task.disk_mb,
        user: None,
    };
    let report = runtime
        .run(&spec, cancel)
        .await
        .map_err(AttemptFailure::from)?;
    let software_version = report.software_version.clone();
    let ran = |class, return_code, failure| Ran {
        class,
        return_code,
        software_version: software_version.clone(),
        failure,
    };
    Ok(match report.outcome {
        RunOutcome::Exited { code } => {
            let code = i32::try_from(code).unwrap_or(i32::MAX);
            ran(task.task.exit_codes.classify(code), Some(code), None)
        }
        RunOutcome::DeadlineExceeded => ran(
            ExitClass::ExternalError,
            None,
            Some(AttemptFailure::external(
                "deadline",
                format!("killed after its deadline of {} s", task.task.timeout_secs),
            )),
        ),
        RunOutcome::OutOfMemory => ran(
            ExitClass::InternalError,
            None,
            Some(AttemptFailure::internal(
                "out of memory",
                format!("killed for using more than {} MiB", task.memory_mb),
            )),
        ),
        RunOutcome::Cancelled => ran(
            ExitClass::ExternalError,
            None,
            Some(AttemptFailure::external(
                "cancelled",
                "stopped by the executor (SIGTERM)",
            )),
        ),
    })
}

/// Refuses any input name that is not one plain directory name (empty, `.`, `..`, absolute, or
/// more than one path component): inputs are staged into `inputs/<name>`, and a name must never
/// reach outside it. Internal error `inputs`, naming the input.
pub fn check_input_names(inputs: &[TaskInput]) -> Result<(), AttemptFailure> {
    for input in inputs {
        let name = input.name.as_str();
        let path = Path::new(name);
        let why = if name.is_empty() {
            "is empty"
        } else if name == "." || name == ".." {
            "is `.` or `..`"
        } else if path.is_absolute() {
            "is absolute"
        } else if name.contains('\0') {
            "holds a NUL character"
        } else if name.contains('/')
            || path.components().count() != 1
            || !matches!(path.components().next(), Some(Component::Normal(_)))
        {
            "has more than one path component"
        } else {
            continue;
        };
        return Err(AttemptFailure::internal(
            "inputs",
            format!(
                "input name {name:?} (from {}) {why}: an input is staged into inputs/<name>, one directory name",
                input.source
            ),
        ));
    }
    Ok(())
}

/// Uploads the products of a successful run and reports the result.
async fn finish(orchestrator: &Orchestrator, task: &AttemptTask, work: &Path, ran: Ran) -> Outcome {
    if let Err(e) = status(orchestrator, JobStatus::PostProcessing, "uploading outputs").await {
        return Outcome::Failed(e);
    }
    let mut report = ResultReport {
        outcome: ran.class,
        return_code: ran.return_code,
        products: Vec::new(),
        software_version: ran.software_version,
        failure: ran.failure,
    };
    if ran.class == ExitClass::Success {
        match upload(orchestrator, task, work).await {
            Ok(products) => report.products = products,
            Err(Stop::Failed(e)) => return report_failure(orchestrator, e).await,
            Err(Stop::Refused(m)) => return Outcome::Superseded(m),
        }
    }
    match orchestrator.result(&report).await {
        Ok(answer) => {
            tracing::info!(outcome = ?ran.class, status = %answer.status, products = report.products.len(), "result reported");
            Outcome::Classified(ran.class)
        }
        Err(ProtocolError::Conflict(m)) => Outcome::Superseded(m),
        Err(e) => Outcome::Failed(protocol_failure(e)),
    }
}

/// Why the upload of a successful run's products stopped.
enum Stop {
    /// The attempt failed: it is reported.
    Failed(AttemptFailure),
    /// The orchestrator refused the products (another job holds one: the job has failed): nothing
    /// was uploaded and nothing more is reported.
    Refused(String),
}

/// Checks the products the code wrote, reserves them with the orchestrator (nothing is uploaded
/// before every product is the job's), uploads and commits them, then deletes the products they
/// replaced at another path.
async fn upload(
    orchestrator: &Orchestrator,
    task: &AttemptTask,
    work: &Path,
) -> Result<Vec<OutputProduct>, Stop> {
    let outputs = &task.task.outputs;
    let found = find_products(work, outputs).map_err(Stop::Failed)?;
    let planned = planned_products(&found, outputs).map_err(Stop::Failed)?;
    let reserved = if planned.is_empty() {
        Vec::new()
    } else {
        match orchestrator.reserve_products(planned).await {
            Ok(answer) => answer.products,
            Err(ProtocolError::Conflict(m)) => {
                tracing::error!(reason = %m, "the orchestrator refused the products; nothing is uploaded");
                return Err(Stop::Refused(m));
            }
            Err(e) => return Err(Stop::Failed(protocol_failure(e))),
        }
    };
    let products = upload_products(
        &found,
        outputs,
        task.uid,
        task.task.attempt,
        TRANSFER_PARALLELISM,
    )
    .await
    .map_err(Stop::Failed)?;
    let replaced: Vec<(String, String)> = reserved
        .into_iter()
        .filter_map(|r| r.replaces.map(|old| (r.path, old)))
        .collect();
    delete_replaced(&replaced, outputs).await;
    Ok(products)
}

async fn status(
    orchestrator: &Orchestrator,
    to: JobStatus,
    message: impl Into<String>,
) -> Result<(), AttemptFailure> {
    orchestrator
        .status(to, message)
        .await
        .map(|_| ())
        .map_err(protocol_failure)
}

/// Reports `error` as the attempt's result; the outcome is the error's (retry for an external one).
async fn report_failure(orchestrator: &Orchestrator, error: AttemptFailure) -> Outcome {
    let report = ResultReport::failed(error.clone());
    tracing::error!(error = %error, "attempt failed");
    match orchestrator.result(&report).await {
        Ok(_) | Err(ProtocolError::Conflict(_)) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot report the failure; the executor's exit code will")
        }
    }
    Outcome::Failed(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> TaskInput {
        TaskInput {
            name: name.into(),
            source: "s3://eodata/x".into(),
            required: true,
        }
    }

    #[test]
    fn input_names_are_one_plain_directory_name() {
        let fine = [input("l1c"), input("S2A_MSIL1C_X.SAFE"), input("aux dem")];
        assert!(check_input_names(&fine).is_ok());
        for (name, words) in [
            ("", "is empty"),
            (".", "`.` or `..`"),
            ("..", "`.` or `..`"),
            ("/tmp/x", "is absolute"),
            ("a/b", "more than one path component"),
            ("../x", "more than one path component"),
            ("a/", "more than one path component"),
            ("a\0b", "NUL"),
        ] {
            let inputs = [input("l1c"), input(name)];
            let error = check_input_names(&inputs).unwrap_err();
            let AttemptFailure::Internal { subtype, message } = &error else {
                panic!("{error}");
            };
            assert_eq!(subtype, "inputs");
            assert!(message.contains(&format!("{name:?}")), "{message}");
            assert!(message.contains(words), "{name:?}: {message}");
        }
    }
}
