//! The Nomad executor: each attempt is a dispatch of the parameterized batch job of its worker
//! flavor (`reference/nomad-api.md`).
//!
//! - The parents are registered at start-up and again whenever Nomad says one is missing or
//!   stopped (re-registering an unchanged job is a no-op in Nomad; registering a stopped one
//!   without `Stop` starts it again).
//! - Dispatch carries the idempotency token `<uid>-<attempt>`: an orchestrator that dispatched and
//!   died before recording it gets the same child back when the job is dispatched again.
//! - A child Nomad answered but does not know, never seen by this executor, is dispatched again
//!   with the same token before it is called vanished (the same-token race: `nomad/fsm.go` drops
//!   a replayed dispatch at apply time while `Job.Dispatch` still answers its ID).
//! - A second allocation of a child (`nomad alloc stop` migrates it to a replacement) is a second
//!   run of the same attempt: the child is stopped and the first allocation gives the outcome.
//! - Outcomes are read from the child's allocations (§3.4, see [`outcome`]); [`Executor::changed`]
//!   is a blocking query on the parents' summaries, so that the tracking loop wakes when a child
//!   changes instead of polling.
//! - Capacity is a cap of children per flavor not yet ended (`Children` of the parent's summary):
//!   Nomad itself queues what its nodes cannot place, the cap keeps the queue short.

pub mod client;
pub mod hcl;
pub mod models;
pub mod outcome;
pub mod spec;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::select_all;
use swath_domain::flavor::WorkerFlavor;

use self::client::{Blocking, NomadClient, NomadError};
use self::spec::{parent_job_id, worker_job, WorkerJobSettings};
use super::{AttemptOutcome, DispatchRequest, Executor, ExecutorError};

/// How long [`Executor::changed`] waits when it cannot block on Nomad (an error, or an answer
/// without an index).
const UNWATCHABLE_BACKOFF: Duration = Duration::from_secs(2);

/// Prefix of the references of Nomad attempts: `nomad/<child job ID>`.
const REFERENCE_PREFIX: &str = "nomad/";

/// How to reach Nomad and what to register there. `Debug` hides the token and the user info of
/// the URLs.
#[derive(Clone, PartialEq)]
pub struct NomadConfig {
    /// The agent's address, e.g. `http://127.0.0.1:4646`.
    pub address: url::Url,
    /// ACL token (secret).
    pub token: Option<String>,
    /// Region, when not the agent's own.
    pub region: Option<String>,
    /// The worker jobs.
    pub jobs: WorkerJobSettings,
    /// Children per flavor that may be dispatched and not yet ended.
    pub max_in_flight: u32,
    /// Whether stopped children are also purged from Nomad at once (else Nomad's GC removes them).
    pub purge_on_stop: bool,
    /// Timeout of one request (a blocking query gets its wait on top).
    pub request_timeout: Duration,
    /// Longest wait of a blocking query.
    pub watch_wait: Duration,
}

impl std::fmt::Debug for NomadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `Discovery`'s `Debug` hides any credential in the workers' URL.
        let jobs = &self.jobs;
        f.debug_struct("NomadConfig")
            .field("address", &crate::config::redact_url(self.address.as_str()))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("region", &self.region)
            .field("jobs", &jobs)
            .field("max_in_flight", &self.max_in_flight)
            .field("purge_on_stop", &self.purge_on_stop)
            .field("request_timeout", &self.request_timeout)
            .field("watch_wait", &self.watch_wait)
            .finish()
    }
}

/// Runs attempts as Nomad dispatches.
pub struct NomadExecutor {
    client: NomadClient,
    config: NomadConfig,
    flavors: Vec<WorkerFlavor>,
    registered: tokio::sync::Mutex<HashSet<String>>,
    summary_indexes: std::sync::Mutex<HashMap<String, u64>>,
    /// Children this executor dispatched and has not yet seen in Nomad, with their request, by
    /// child ID: one that Nomad does not know may be the same-token race's dropped child.
    unconfirmed: std::sync::Mutex<HashMap<String, DispatchRequest>>,
    /// Child IDs Nomad answered that never existed, and the child the attempt's token names.
    aliases: std::sync::Mutex<HashMap<String, String>>,
    /// Children stopped because a second allocation ran their attempt again.
    superseded: std::sync::Mutex<HashSet<String>>,
}

impl std::fmt::Debug for NomadExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NomadExecutor")
            .field("client", &self.client)
            .field("flavors", &self.flavors.len())
            .finish()
    }
}

fn unavailable(e: NomadError) -> ExecutorError {
    ExecutorError::Unavailable(e.to_string())
}

impl NomadExecutor {
    /// An executor for `flavors` on the cluster `config` describes.
    pub fn new(config: NomadConfig, flavors: Vec<WorkerFlavor>) -> NomadExecutor {
        let client = NomadClient::new(
            config.address.clone(),
            config.token.clone(),
            config.jobs.namespace.clone(),
            config.region.clone(),
            config.request_timeout,
        );
        NomadExecutor {
            client,
            config,
            flavors,
            registered: tokio::sync::Mutex::new(HashSet::new()),
            summary_indexes: std::sync::Mutex::new(HashMap::new()),
            unconfirmed: std::sync::Mutex::new(HashMap::new()),
            aliases: std::sync::Mutex::new(HashMap::new()),
            superseded: std::sync::Mutex::new(HashSet::new()),
        }
    }

    /// The jobs this executor registers, one per flavor.
    pub fn worker_jobs(&self) -> Vec<serde_json::Value> {
        self.flavors
            .iter()
            .map(|f| worker_job(&self.config.jobs, f))
            .collect()
    }

    /// Registers the parent job of every flavor.
    pub async fn register_all(&self) -> Result<(), ExecutorError> {
        for flavor in &self.flavors {
            self.register(flavor).await?;
        }
        Ok(())
    }

    async fn register(&self, flavor: &WorkerFlavor) -> Result<(), ExecutorError> {
        let mut registered = self.registered.lock().await;
        self.client
            .register(&worker_job(&self.config.jobs, flavor))
            .await
            .map_err(|e| match e {
                e if e.is_permanent() => ExecutorError::Refused(e.to_string()),
                e => unavailable(e),
            })?;
        registered.insert(flavor.name.clone());
        tracing::info!(job = %parent_job_id(&self.config.jobs, flavor), namespace = %self.client.namespace(), "worker job registered in Nomad");
        Ok(())
    }

    async fn ensure_registered(&self, flavor: &WorkerFlavor) -> Result<(), ExecutorError> {
        if self.registered.lock().await.contains(&flavor.name) {
            return Ok(());
        }
        self.register(flavor).await
    }

    fn flavor(&self, name: &str) -> Result<&WorkerFlavor, ExecutorError> {
        self.flavors.iter().find(|f| f.name == name).ok_or_else(|| {
            ExecutorError::Refused(format!("no Nomad worker job for flavor {name:?}"))
        })
    }

    /// Children of `flavor` dispatched and not yet ended.
    async fn in_flight(&self, flavor: &WorkerFlavor) -> Result<usize, ExecutorError> {
        let parent = parent_job_id(&self.config.jobs, flavor);
        let (summary, _) = self
            .client
            .summary(&parent, None)
            .await
            .map_err(unavailable)?;
        let Some(summary) = summary else {
            self.registered.lock().await.remove(&flavor.name);
            return Ok(0);
        };
        let children = summary.children.unwrap_or_default();
        Ok((children.pending + children.running) as usize)
    }

    async fn dispatch_once(
        &self,
        parent: &str,
        request: &DispatchRequest,
    ) -> Result<String, NomadError> {
        let meta = BTreeMap::from([
            ("job_id".to_string(), request.job_id.to_string()),
            ("attempt".to_string(), request.attempt.to_string()),
            ("job_type".to_string(), request.job_type.clone()),
        ]);
        let response = self
            .client
            .dispatch(
                parent,
                &meta,
                request.worker_token.as_bytes(),
                &request.idempotency_token,
            )
            .await?;
        Ok(response.dispatched_job_id)
    }

    /// Dispatches `request` to the parent of `flavor`, registering the parent again when Nomad
    /// says it is missing or stopped; returns the child ID Nomad answered.
    async fn dispatch_to_parent(
        &self,
        flavor: &WorkerFlavor,
        request: &DispatchRequest,
    ) -> Result<String, ExecutorError> {
        let parent = parent_job_id(&self.config.jobs, flavor);
        match self.dispatch_once(&parent, request).await {
            Err(e) if e.is_missing_parent() || e.is_stopped_parent() => {
                // Someone purged or stopped the parent: register it again (which clears `Stop`),
                // then dispatch.
                tracing::warn!(job = %parent, error = %e, "the worker job is gone or stopped in Nomad; registering it again");
                self.register(flavor).await?;
                self.dispatch_once(&parent, request).await
            }
            other => other,
        }
        .map_err(|e| {
            if e.is_permanent() {
                ExecutorError::Refused(e.to_string())
            } else {
                unavailable(e)
            }
        })
    }

    /// The child a recorded child ID stands for (itself unless Nomad answered it in a race).
    fn resolve(&self, recorded: &str) -> String {
        self.aliases
            .lock()
            .expect("aliases lock")
            .get(recorded)
            .cloned()
            .unwrap_or_else(|| recorded.to_string())
    }

    /// The outcome of `child` as its allocations (else its job) show it.
    async fn child_outcome(&self, child: &str) -> Result<AttemptOutcome, ExecutorError> {
        let mut allocations = self.client.allocations(child).await.map_err(unavailable)?;
        let lost = allocations.iter().any(|a| a.client_status == "lost");
        if allocations.len() > 1 && !lost {
            // A second allocation of one dispatch, not a lost node's replacement: `nomad alloc
            // stop` migrates the allocation to a replacement whatever the reschedule policy
            // (`nomad/alloc_endpoint.go` `Stop`, `scheduler/reconciler/filters.go`). That is a
            // second run of the same attempt: the child is stopped (once), and the attempt's
            // outcome is the first allocation's (the replacement's worker is refused the spent
            // bootstrap secret and exits 0 as superseded, which says nothing of the attempt).
            allocations.sort_by_key(|a| a.create_index);
            allocations.truncate(1);
            let first = self
                .superseded
                .lock()
                .expect("superseded children lock")
                .insert(child.to_string());
            if first {
                tracing::warn!(child = %child, allocation = %allocations[0].id, "a second allocation of a dispatched child (alloc stop?): stopping the child so the attempt does not run twice");
                if let Err(e) = self.client.stop(child, self.config.purge_on_stop).await {
                    self.superseded
                        .lock()
                        .expect("superseded children lock")
                        .remove(child);
                    return Err(unavailable(e));
                }
            }
        }
        if let Some(outcome) = outcome::outcome_of_allocations(&allocations) {
            return Ok(outcome);
        }
        let job = self.client.job(child).await.map_err(unavailable)?;
        Ok(outcome::outcome_without_allocations(
            job.as_ref().map(|j| j.status.as_str()),
        ))
    }
}

#[async_trait]
impl Executor for NomadExecutor {
    fn name(&self) -> &'static str {
        "nomad"
    }

    async fn pending_reason(&self, reference: &str) -> Option<String> {
        let child = self.resolve(reference.strip_prefix(REFERENCE_PREFIX)?);
        match self.client.evaluations(&child).await {
            Ok(evals) => outcome::placement_failure(&evals),
            Err(e) => {
                tracing::debug!(child, error = %e, "cannot read the evaluations of a waiting child");
                None
            }
        }
    }

    async fn capacity(&self) -> Result<BTreeMap<String, usize>, ExecutorError> {
        let mut free = BTreeMap::new();
        for flavor in &self.flavors {
            let used = self.in_flight(flavor).await?;
            free.insert(
                flavor.name.clone(),
                (self.config.max_in_flight as usize).saturating_sub(used),
            );
        }
        Ok(free)
    }

    async fn dispatch(&self, request: &DispatchRequest) -> Result<String, ExecutorError> {
        let flavor = self.flavor(&request.flavor.name)?;
        self.ensure_registered(flavor).await?;
        if self.in_flight(flavor).await? >= self.config.max_in_flight as usize {
            return Err(ExecutorError::Unavailable(format!(
                "flavor {} has {} attempts in flight already",
                flavor.name, self.config.max_in_flight
            )));
        }
        let child = self.dispatch_to_parent(flavor, request).await?;
        self.unconfirmed
            .lock()
            .expect("unconfirmed children lock")
            .insert(child.clone(), request.clone());
        Ok(format!("{REFERENCE_PREFIX}{child}"))
    }

    async fn outcome(&self, reference: &str) -> Result<AttemptOutcome, ExecutorError> {
        let Some(recorded) = reference.strip_prefix(REFERENCE_PREFIX) else {
            return Ok(AttemptOutcome::Unknown);
        };
        let child = self.resolve(recorded);
        let outcome = self.child_outcome(&child).await?;
        if outcome != AttemptOutcome::Unknown {
            self.unconfirmed
                .lock()
                .expect("unconfirmed children lock")
                .remove(recorded);
            return Ok(outcome);
        }
        // Nomad does not know a child it answered: the same-token race, if this executor
        // dispatched it and never saw it. Dispatch again with the same token; the answer names
        // the child that does exist (or creates it if none does: nothing ran the attempt yet).
        let Some(request) = self
            .unconfirmed
            .lock()
            .expect("unconfirmed children lock")
            .remove(recorded)
        else {
            return Ok(AttemptOutcome::Unknown);
        };
        let flavor = self.flavor(&request.flavor.name)?;
        let again = match self.dispatch_to_parent(flavor, &request).await {
            Ok(again) => again,
            Err(e) => {
                self.unconfirmed
                    .lock()
                    .expect("unconfirmed children lock")
                    .insert(recorded.to_string(), request);
                return Err(e);
            }
        };
        if again == child {
            return Ok(AttemptOutcome::Unknown);
        }
        tracing::warn!(job_id = request.job_id, attempt = request.attempt, answered = %recorded, child = %again, "Nomad answered a dispatch with a child it dropped; following the child its idempotency token names");
        self.aliases
            .lock()
            .expect("aliases lock")
            .insert(recorded.to_string(), again.clone());
        self.child_outcome(&again).await
    }

    async fn stop(&self, reference: &str) -> Result<(), ExecutorError> {
        let Some(recorded) = reference.strip_prefix(REFERENCE_PREFIX) else {
            return Ok(());
        };
        self.unconfirmed
            .lock()
            .expect("unconfirmed children lock")
            .remove(recorded);
        let child = self.resolve(recorded);
        self.client
            .stop(&child, self.config.purge_on_stop)
            .await
            .map_err(unavailable)
    }

    async fn changed(&self) {
        let waits = self.flavors.iter().map(|flavor| {
            let parent = parent_job_id(&self.config.jobs, flavor);
            let index = self
                .summary_indexes
                .lock()
                .expect("summary indexes lock")
                .get(&parent)
                .copied()
                .unwrap_or(0);
            let blocking = Blocking {
                index,
                wait: self.config.watch_wait,
            };
            Box::pin(async move {
                let answer = self.client.summary(&parent, Some(blocking)).await;
                (parent, index, answer)
            })
        });
        let waits: Vec<_> = waits.collect();
        if waits.is_empty() {
            return std::future::pending().await;
        }
        let ((parent, seen, answer), _, _) = select_all(waits).await;
        match answer {
            Ok((summary, index)) => {
                if summary.is_none() {
                    // The parent is missing (purged, or not yet registered): the next dispatch
                    // registers it again. The 404's index is kept, so the watch still blocks.
                    if let Some(flavor) = self
                        .flavors
                        .iter()
                        .find(|f| parent_job_id(&self.config.jobs, f) == parent)
                    {
                        self.registered.lock().await.remove(&flavor.name);
                    }
                }
                self.summary_indexes
                    .lock()
                    .expect("summary indexes lock")
                    .insert(parent, index);
                if index == 0 {
                    // No index to block on (Nomad always sends one, at least 1): a query on index
                    // 0 would be answered at once, so back off instead of spinning.
                    tracing::warn!("Nomad answered without X-Nomad-Index; looking again shortly");
                    tokio::time::sleep(UNWATCHABLE_BACKOFF).await;
                } else if index <= seen {
                    // The wait ran out with no change: a quiet cluster; let the caller look anyway.
                    tracing::debug!("no change in Nomad within the blocking wait");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch Nomad; looking again shortly");
                tokio::time::sleep(UNWATCHABLE_BACKOFF).await;
            }
        }
    }
}
