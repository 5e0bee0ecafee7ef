//! The emulated client: drives one allocation's tasks through Nomad's states and events, one
//! lifecycle step apart (received and set up, started, then the scripted end), and kills them when
//! the allocation is told to stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::control::Outcome;
use super::records::AllocRecord;
use super::scheduler;
use super::shared::Shared;
use super::state::Txn;
use super::task_events::{TaskEvent, TaskState};
use super::wire::now_nanos;

/// The restart reason under `RestartPolicy.Attempts = 0`.
const NO_RESTARTS: &str = "Policy allows no restarts";
/// The restart reason for an error the task runner cannot recover from.
const UNRECOVERABLE: &str = "Error was unrecoverable";
/// The kill signal (SIGINT, Nomad's default); a task killed by it reports `128 + 2`.
const KILL_SIGNAL: i64 = 2;
/// The client's `max_kill_timeout` (Nomad's default, `command/agent/config.go`): a task's
/// `kill_timeout` above it is cut to it (`NewDriverHandle`,
/// `client/allocrunner/taskrunner/driver_handle.go`, and `TaskEvent.SetKillTimeout`,
/// `nomad/structs/structs.go`, which reports the cut value in `Killing`).
pub(crate) const MAX_KILL_TIMEOUT_NANOS: i64 = 30_000_000_000;
/// raw_exec's exit code of a signalled process is this plus the signal (bash's encoding,
/// `exitSignalBase` in `drivers/shared/executor/executor.go`).
const EXIT_SIGNAL_BASE: i64 = 128;

/// Why a wait ended.
enum Wake {
    Elapsed,
    StopRequested,
    Gone,
}

/// Starts the client of `alloc_id`, which plays `outcome`.
pub(crate) fn run(shared: &Arc<Shared>, alloc_id: String, outcome: Outcome) {
    let task_shared = shared.clone();
    shared.spawn(async move { drive(&task_shared, &alloc_id, outcome).await });
}

async fn drive(shared: &Arc<Shared>, alloc_id: &str, outcome: Outcome) {
    let step = shared.options.step;
    match wait(shared, alloc_id, Some(step)).await {
        Wake::Elapsed => shared.write(|txn| receive(txn, alloc_id)),
        Wake::StopRequested => return kill(shared, alloc_id).await,
        Wake::Gone => return,
    }
    match wait(shared, alloc_id, Some(step)).await {
        Wake::Elapsed => {}
        Wake::StopRequested => return kill(shared, alloc_id).await,
        Wake::Gone => return,
    }
    if let Outcome::SetupFailure { message } = &outcome {
        shared.write(|txn| fail_setup(txn, alloc_id, message));
        return;
    }
    shared.write(|txn| start(txn, alloc_id));
    if outcome == Outcome::Worker {
        return play(shared, alloc_id).await;
    }
    let run_for = match outcome {
        Outcome::Exit { after, .. }
        | Outcome::Signalled { after, .. }
        | Outcome::Lost { after } => Some(after.max(step)),
        _ => None,
    };
    match wait(shared, alloc_id, run_for).await {
        Wake::Elapsed => {}
        Wake::StopRequested => return kill(shared, alloc_id).await,
        Wake::Gone => return,
    }
    match outcome {
        Outcome::Exit { code, .. } => shared.write(|txn| exit(txn, alloc_id, code.into())),
        Outcome::Signalled { signal, .. } => {
            shared.write(|txn| signalled(txn, alloc_id, signal.into()))
        }
        Outcome::Lost { .. } => scheduler::lose_node(shared, alloc_id).await,
        _ => {}
    }
}

/// The task is played by the runner: it exits with the runner's code, unless it is stopped first.
async fn play(shared: &Arc<Shared>, alloc_id: &str) {
    let dispatched = shared.read(|store| {
        let child = store.allocs.get(alloc_id).map(|a| a.job_id.clone())?;
        // Recent children are at the end.
        store
            .dispatches
            .iter()
            .rev()
            .find(|d| d.child_id == child)
            .cloned()
    });
    let (Some(runner), Some(dispatched)) = (shared.options.runner.clone(), dispatched) else {
        shared.write(|txn| exit(txn, alloc_id, 0));
        return;
    };
    let task = (runner.0)(dispatched);
    tokio::select! {
        code = task => shared.write(|txn| exit(txn, alloc_id, code.into())),
        wake = wait(shared, alloc_id, None) => match wake {
            Wake::StopRequested => kill(shared, alloc_id).await,
            Wake::Elapsed | Wake::Gone => {}
        },
    }
}

/// Waits `duration` (`None`: for ever) unless the allocation is told to stop or disappears.
async fn wait(shared: &Shared, alloc_id: &str, duration: Option<Duration>) -> Wake {
    let deadline = duration.map(|d| Instant::now() + d);
    let woken = shared
        .wait_until(
            |store| {
                store
                    .allocs
                    .get(alloc_id)
                    .is_none_or(|alloc| alloc.desired_status != "run")
            },
            deadline,
        )
        .await;
    if !woken {
        return Wake::Elapsed;
    }
    if shared.read(|store| store.allocs.contains_key(alloc_id)) {
        Wake::StopRequested
    } else {
        Wake::Gone
    }
}

/// Applies a client update to every task of the allocation, then sets the client status.
fn client_update(
    txn: &mut Txn,
    alloc_id: &str,
    mut task: impl FnMut(&AllocRecord, &str, &mut TaskState),
    client_status: &str,
    client_description: &str,
) {
    txn.update_alloc(alloc_id, |alloc| {
        let mut states = alloc.task_states.take().unwrap_or_default();
        for spec in &alloc.tasks {
            let state = states
                .entry(spec.name.clone())
                .or_insert_with(TaskState::pending);
            task(alloc, &spec.name, state);
        }
        alloc.task_states = Some(states);
        alloc.client_status = client_status.into();
        alloc.client_description = client_description.into();
    });
}

fn receive(txn: &mut Txn, alloc_id: &str) {
    let update = |alloc: &AllocRecord, name: &str, state: &mut TaskState| {
        state.events.push(TaskEvent::received());
        state.events.push(TaskEvent::task_setup());
        let docker = alloc
            .tasks
            .iter()
            .any(|t| t.name == name && t.driver == "docker");
        if docker {
            state.events.push(TaskEvent::driver("Downloading image"));
        }
    };
    client_update(txn, alloc_id, update, "pending", "No tasks have started");
}

fn start(txn: &mut Txn, alloc_id: &str) {
    let update = |_: &AllocRecord, _: &str, state: &mut TaskState| {
        state.state = "running";
        state.started_at = Some(now_nanos());
        state.events.push(TaskEvent::started());
    };
    client_update(txn, alloc_id, update, "running", "Tasks are running");
}

fn finish(state: &mut TaskState, failed: bool) {
    state.state = "dead";
    state.failed = failed;
    state.finished_at = Some(now_nanos());
}

fn exit(txn: &mut Txn, alloc_id: &str, code: i64) {
    let update = |_: &AllocRecord, _: &str, state: &mut TaskState| {
        state.events.push(TaskEvent::terminated(code, 0));
        if code != 0 {
            state.events.push(TaskEvent::not_restarting(NO_RESTARTS));
        }
        finish(state, code != 0);
    };
    if code == 0 {
        client_update(
            txn,
            alloc_id,
            update,
            "complete",
            "All tasks have completed",
        );
    } else {
        client_update(txn, alloc_id, update, "failed", "Failed tasks");
    }
}

/// The task's process was killed by `signal`: raw_exec's universal executor reports exit code
/// `128 + signal` and the signal, never `OOMKilled` (`UniversalExecutor.wait`,
/// `drivers/shared/executor/executor.go`); the task runner emits them in `Terminated`
/// (`emitExitResultEvent`, `client/allocrunner/taskrunner/task_runner.go`), and a non-zero exit
/// fails the task.
fn signalled(txn: &mut Txn, alloc_id: &str, signal: i64) {
    let update = |_: &AllocRecord, _: &str, state: &mut TaskState| {
        state
            .events
            .push(TaskEvent::terminated(EXIT_SIGNAL_BASE + signal, signal));
        state.events.push(TaskEvent::not_restarting(NO_RESTARTS));
        finish(state, true);
    };
    client_update(txn, alloc_id, update, "failed", "Failed tasks");
}

fn fail_setup(txn: &mut Txn, alloc_id: &str, message: &str) {
    let update = |_: &AllocRecord, _: &str, state: &mut TaskState| {
        state.events.push(TaskEvent::driver_failure(message));
        state.events.push(TaskEvent::not_restarting(UNRECOVERABLE));
        finish(state, true);
    };
    client_update(txn, alloc_id, update, "failed", "Failed tasks");
}

/// The client kills the tasks: `Killing`, then one step later `Terminated` (for a started task)
/// and `Killed`; the tasks are dead but not failed, so the allocation is `complete`.
async fn kill(shared: &Shared, alloc_id: &str) {
    let (status, description) = shared.read(|store| {
        let alloc = store.allocs.get(alloc_id);
        let status = alloc.map_or("pending", |a| a.client_status.as_str());
        let description = alloc.map_or("", |a| a.client_description.as_str());
        (status.to_string(), description.to_string())
    });
    let killing = |alloc: &AllocRecord, name: &str, state: &mut TaskState| {
        let timeout = alloc
            .tasks
            .iter()
            .find(|t| t.name == name)
            .map_or(5_000_000_000, |t| t.kill_timeout);
        state
            .events
            .push(TaskEvent::killing(timeout.min(MAX_KILL_TIMEOUT_NANOS)));
    };
    shared.write(|txn| client_update(txn, alloc_id, killing, &status, &description));
    shared.step().await;
    let killed = |_: &AllocRecord, _: &str, state: &mut TaskState| {
        if state.started_at.is_some() {
            state.events.push(TaskEvent::terminated(
                EXIT_SIGNAL_BASE + KILL_SIGNAL,
                KILL_SIGNAL,
            ));
        }
        state.events.push(TaskEvent::killed());
        finish(state, false);
    };
    shared.write(|txn| {
        client_update(
            txn,
            alloc_id,
            killed,
            "complete",
            "All tasks have completed",
        )
    });
}
