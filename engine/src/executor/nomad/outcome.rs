//! Reading an attempt's outcome from its child job's allocations, exactly as
//! `reference/nomad-api.md` §3.4 says.
//!
//! Swath registers its workers with no restart and no reschedule, so one dispatch is one execution,
//! except that Nomad replaces an allocation whose node was lost whatever the policy says. Swath
//! never lets an attempt run twice: a child with a lost allocation is reported [`AttemptOutcome::Lost`]
//! (the orchestrator stops it and starts a new attempt, and the replacement's reports are refused
//! because they carry the old attempt's token).

use super::models::{AllocListStub, TaskEvent};
use crate::executor::AttemptOutcome;

/// `ClientDescription` of an allocation stopped by the group's `max_run_duration`.
const MAX_RUN_DURATION_EXCEEDED: &str = "allocation exceeded max_run_duration";

/// The outcome of a child whose allocations are `allocs`, if it has any.
pub fn outcome_of_allocations(allocs: &[AllocListStub]) -> Option<AttemptOutcome> {
    if allocs.iter().any(|a| a.client_status == "lost") {
        return Some(AttemptOutcome::Lost);
    }
    let latest = allocs.iter().max_by_key(|a| a.create_index)?;
    Some(match latest.client_status.as_str() {
        "pending" | "unknown" => AttemptOutcome::Pending,
        "running" => AttemptOutcome::Running,
        "complete" => complete(latest),
        "failed" => failed(latest),
        other => AttemptOutcome::Failed(format!("allocation {} is {other:?}", latest.id)),
    })
}

/// The outcome of a child with no allocation, from its job status (`None`: Nomad does not know it).
pub fn outcome_without_allocations(job_status: Option<&str>) -> AttemptOutcome {
    match job_status {
        None => AttemptOutcome::Unknown,
        Some("dead") => AttemptOutcome::Failed("the job ended before it was placed".into()),
        Some(_) => AttemptOutcome::Pending,
    }
}

fn events(alloc: &AllocListStub) -> impl Iterator<Item = &TaskEvent> {
    alloc
        .task_states
        .iter()
        .flat_map(|states| states.values())
        .flat_map(|state| state.events.iter().flatten())
}

/// The last `Terminated` event of the allocation's tasks.
fn last_terminated(alloc: &AllocListStub) -> Option<&TaskEvent> {
    events(alloc).filter(|e| e.kind == "Terminated").last()
}

/// The exit code of a `Terminated` event: `Details.exit_code`, else the flat `ExitCode`.
fn exit_code(event: &TaskEvent) -> i32 {
    event
        .detail("exit_code")
        .and_then(|c| c.parse().ok())
        .unwrap_or(event.exit_code as i32)
}

fn complete(alloc: &AllocListStub) -> AttemptOutcome {
    let killed = events(alloc).any(|e| e.kind == "Killing" || e.kind == "Killed");
    if alloc.desired_status == "stop" || killed {
        return AttemptOutcome::Failed(format!("allocation {} was stopped", alloc.id));
    }
    if alloc.client_description == MAX_RUN_DURATION_EXCEEDED {
        return AttemptOutcome::Failed(format!(
            "allocation {} exceeded its max_run_duration",
            alloc.id
        ));
    }
    match last_terminated(alloc) {
        Some(event) => AttemptOutcome::Exited(exit_code(event)),
        None => AttemptOutcome::Failed(format!(
            "allocation {} completed without a Terminated event",
            alloc.id
        )),
    }
}

/// The signal that ended the task of a `Terminated` event, if one did: `Details.signal`, which
/// Nomad always sets (`SetSignal`, `nomad/structs/structs.go`), as a number or, for some drivers,
/// a signal name (`SetSignalText`); `0` or empty means none.
fn signal_of(event: &TaskEvent) -> Option<&str> {
    event
        .detail("signal")
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "0")
}

/// Whether a `Terminated` event says the task was killed for its memory: `Details.oom_killed`
/// (set by drivers that know, like docker; raw_exec's universal executor never sets it,
/// `drivers/shared/executor/executor.go`), or exit code 137 (SIGKILL) with an exit message that
/// names the OOM killer (docker's `OOM Killed`, `drivers/docker/handle.go`).
fn oom_killed(event: &TaskEvent, code: i32) -> bool {
    if event.detail("oom_killed") == Some("true") {
        return true;
    }
    let names_oom = |text: &str| {
        let text = text.to_ascii_lowercase();
        text.contains("oom") || text.contains("out of memory")
    };
    code == 137
        && (event.detail("exit_message").is_some_and(names_oom)
            || names_oom(&event.display_message))
}

fn failed(alloc: &AllocListStub) -> AttemptOutcome {
    if let Some(event) = last_terminated(alloc) {
        let code = exit_code(event);
        if oom_killed(event, code) {
            return AttemptOutcome::Failed(format!(
                "killed for exceeding its memory (exit code {code})"
            ));
        }
        // A task killed by a signal (the OOM killer, a node's shutdown, an operator's `kill`)
        // did not fail by itself: raw_exec reports it as exit code `128 + signal` with `Signal`
        // set (`UniversalExecutor.wait`, `drivers/shared/executor/executor.go`), which is no exit
        // code of the worker's. It is an external failure, worth a retry.
        if let Some(signal) = signal_of(event) {
            return AttemptOutcome::Failed(format!(
                "killed by signal {signal} (reported as exit code {code})"
            ));
        }
        return AttemptOutcome::Exited(code);
    }
    // No Terminated event: the task never ran (driver, setup or validation failure).
    let cause = events(alloc)
        .filter(|e| e.kind != "Not Restarting")
        .last()
        .or_else(|| events(alloc).last());
    AttemptOutcome::Failed(match cause {
        Some(e) if e.display_message.is_empty() => format!("{} (no exit code)", e.kind),
        Some(e) => format!("{}: {} (no exit code)", e.kind, e.display_message),
        None => format!("allocation {} failed without any task event", alloc.id),
    })
}

/// Why a child waits to be placed, read from its evaluations as Nomad's JSON: the latest
/// evaluation with `FailedTGAllocs` (the one the scheduler completed, or the `blocked` one that
/// took its place) names per task group how many nodes were evaluated, filtered out by a
/// constraint or exhausted on a resource (`nomad/structs/structs.go` `AllocMetric`). `None` when
/// no evaluation says a placement failed.
pub fn placement_failure(evals: &[serde_json::Value]) -> Option<String> {
    use serde_json::Value;
    let counts = |value: &Value| -> String {
        value
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}: {}", v.as_u64().unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let failed = evals
        .iter()
        .filter(|e| {
            e["FailedTGAllocs"]
                .as_object()
                .is_some_and(|groups| !groups.is_empty())
        })
        .max_by_key(|e| e["ModifyIndex"].as_u64().unwrap_or(0))?;
    let groups = failed["FailedTGAllocs"].as_object()?;
    let mut parts = Vec::new();
    for (group, metric) in groups {
        let mut part = format!(
            "group {group}: {} nodes evaluated",
            metric["NodesEvaluated"].as_u64().unwrap_or(0)
        );
        let filtered = metric["NodesFiltered"].as_u64().unwrap_or(0);
        if filtered > 0 {
            part.push_str(&format!(", {filtered} filtered"));
            let by = counts(&metric["ConstraintFiltered"]);
            if !by.is_empty() {
                part.push_str(&format!(" by constraint ({by})"));
            }
        }
        let exhausted = metric["NodesExhausted"].as_u64().unwrap_or(0);
        if exhausted > 0 {
            part.push_str(&format!(", {exhausted} exhausted"));
            let by = counts(&metric["DimensionExhausted"]);
            if !by.is_empty() {
                part.push_str(&format!(" ({by})"));
            }
        }
        parts.push(part);
    }
    Some(format!("Nomad cannot place it: {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(json: serde_json::Value) -> AllocListStub {
        serde_json::from_value(json).unwrap()
    }

    fn event(kind: &str, details: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"Type": kind, "DisplayMessage": format!("{kind} happened"), "Details": details, "ExitCode": 0})
    }

    fn with_events(client: &str, desired: &str, events: Vec<serde_json::Value>) -> AllocListStub {
        alloc(serde_json::json!({
            "ID": "a1", "ClientStatus": client, "DesiredStatus": desired, "CreateIndex": 5,
            "TaskStates": {"worker": {"State": "dead", "Failed": client == "failed", "Events": events}}
        }))
    }

    #[test]
    fn exit_codes_come_from_the_last_terminated_event() {
        let a = with_events(
            "failed",
            "run",
            vec![
                event("Started", serde_json::json!({})),
                event(
                    "Terminated",
                    serde_json::json!({"exit_code": "2", "signal": "0"}),
                ),
                event("Not Restarting", serde_json::json!({"fails_task": "true"})),
            ],
        );
        assert_eq!(
            outcome_of_allocations(&[a]),
            Some(AttemptOutcome::Exited(2))
        );
        let ok = with_events(
            "complete",
            "run",
            vec![event("Terminated", serde_json::json!({"exit_code": "0"}))],
        );
        assert_eq!(
            outcome_of_allocations(&[ok]),
            Some(AttemptOutcome::Exited(0))
        );
    }

    #[test]
    fn the_flat_exit_code_is_read_when_details_lack_it() {
        let mut e = event("Terminated", serde_json::json!({}));
        e["ExitCode"] = 7.into();
        let a = with_events("failed", "run", vec![e]);
        assert_eq!(
            outcome_of_allocations(&[a]),
            Some(AttemptOutcome::Exited(7))
        );
    }

    #[test]
    fn a_failure_without_terminated_event_has_no_exit_code() {
        let a = with_events(
            "failed",
            "run",
            vec![
                event("Received", serde_json::json!({})),
                event("Driver Failure", serde_json::json!({})),
                event("Not Restarting", serde_json::json!({})),
            ],
        );
        match outcome_of_allocations(&[a]) {
            Some(AttemptOutcome::Failed(m)) => assert!(m.starts_with("Driver Failure"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stopped_killed_and_timed_out_allocations_are_failures() {
        let stopped = with_events(
            "complete",
            "stop",
            vec![event("Terminated", serde_json::json!({"exit_code": "0"}))],
        );
        let killed = with_events(
            "complete",
            "run",
            vec![
                event("Killing", serde_json::json!({})),
                event("Killed", serde_json::json!({})),
            ],
        );
        let mut timed_out = with_events(
            "complete",
            "run",
            vec![event("Terminated", serde_json::json!({"exit_code": "0"}))],
        );
        timed_out.client_description = MAX_RUN_DURATION_EXCEEDED.into();
        for a in [stopped, killed, timed_out] {
            assert!(matches!(
                outcome_of_allocations(&[a]),
                Some(AttemptOutcome::Failed(_))
            ));
        }
    }

    #[test]
    fn oom_and_signals_are_failures_not_exit_codes() {
        let oom = with_events(
            "failed",
            "run",
            vec![event(
                "Terminated",
                serde_json::json!({"exit_code": "137", "oom_killed": "true"}),
            )],
        );
        let signalled = with_events(
            "failed",
            "run",
            vec![event(
                "Terminated",
                serde_json::json!({"exit_code": "0", "signal": "9"}),
            )],
        );
        for a in [oom, signalled] {
            assert!(matches!(
                outcome_of_allocations(&[a]),
                Some(AttemptOutcome::Failed(_))
            ));
        }
    }

    /// raw_exec's report of a worker killed by SIGKILL, exactly as `UniversalExecutor.wait` and
    /// `emitExitResultEvent` build it.
    fn raw_exec_killed(signal: i32) -> serde_json::Value {
        let code = 128 + signal;
        let mut e = event(
            "Terminated",
            serde_json::json!({"exit_code": code.to_string(), "signal": signal.to_string(), "oom_killed": "false"}),
        );
        e["ExitCode"] = code.into();
        e["DisplayMessage"] = format!("Exit Code: {code}, Signal: {signal}").into();
        e
    }

    #[test]
    fn a_raw_exec_kill_is_a_failure_not_the_exit_code_128_plus_signal() {
        for signal in [9, 15, 2] {
            let a = with_events(
                "failed",
                "run",
                vec![
                    raw_exec_killed(signal),
                    event("Not Restarting", serde_json::json!({})),
                ],
            );
            match outcome_of_allocations(&[a]) {
                Some(AttemptOutcome::Failed(m)) => {
                    assert!(m.contains(&format!("signal {signal}")), "{m}")
                }
                other => panic!("signal {signal}: {other:?}"),
            }
        }
        // A worker that exits 137 by itself (no signal) keeps its exit code.
        let exited = with_events(
            "failed",
            "run",
            vec![event(
                "Terminated",
                serde_json::json!({"exit_code": "137", "signal": "0", "oom_killed": "false"}),
            )],
        );
        assert_eq!(
            outcome_of_allocations(&[exited]),
            Some(AttemptOutcome::Exited(137))
        );
    }

    #[test]
    fn an_oom_is_recognised_from_exit_137_and_the_exit_message() {
        let mut e = event(
            "Terminated",
            serde_json::json!({"exit_code": "137", "signal": "0", "exit_message": "OOM Killed"}),
        );
        e["DisplayMessage"] = "Exit Code: 137, Exit Message: \"OOM Killed\"".into();
        let a = with_events("failed", "run", vec![e]);
        match outcome_of_allocations(&[a]) {
            Some(AttemptOutcome::Failed(m)) => assert!(m.contains("memory"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_latest_allocation_decides_and_a_lost_one_means_lost() {
        let mut old = with_events("failed", "stop", vec![]);
        old.create_index = 3;
        let mut new = with_events("running", "run", vec![]);
        new.create_index = 9;
        assert_eq!(
            outcome_of_allocations(&[new.clone(), old]),
            Some(AttemptOutcome::Running)
        );
        let mut lost = with_events("lost", "stop", vec![]);
        lost.create_index = 3;
        assert_eq!(
            outcome_of_allocations(&[new, lost]),
            Some(AttemptOutcome::Lost)
        );
        assert_eq!(outcome_of_allocations(&[]), None);
    }

    #[test]
    fn a_child_without_allocations_is_pending_ended_or_unknown() {
        assert_eq!(
            outcome_without_allocations(Some("pending")),
            AttemptOutcome::Pending
        );
        assert_eq!(outcome_without_allocations(None), AttemptOutcome::Unknown);
        assert!(matches!(
            outcome_without_allocations(Some("dead")),
            AttemptOutcome::Failed(_)
        ));
    }

    #[test]
    fn a_placement_failure_names_the_filtered_and_exhausted_nodes() {
        let evals = vec![
            serde_json::json!({"ModifyIndex": 5, "Status": "complete", "FailedTGAllocs": null}),
            serde_json::json!({
                "ModifyIndex": 9,
                "Status": "blocked",
                "FailedTGAllocs": {"worker": {
                    "NodesEvaluated": 10,
                    "NodesFiltered": 8,
                    "ConstraintFiltered": {"${attr.platform.aws.instance-type} = hm.xlarge": 8},
                    "NodesExhausted": 2,
                    "DimensionExhausted": {"memory": 2}
                }}
            }),
        ];
        assert_eq!(
            placement_failure(&evals).unwrap(),
            "Nomad cannot place it: group worker: 10 nodes evaluated, 8 filtered by constraint \
             (${attr.platform.aws.instance-type} = hm.xlarge: 8), 2 exhausted (memory: 2)"
        );
        assert_eq!(placement_failure(&evals[..1]), None);
    }
}
