//! Task states and the task events a Nomad client emits, with Nomad's messages and `Details` keys.

use std::collections::BTreeMap;

use super::wire::{format_go_duration, now_nanos};

/// `TaskState`: `State` is `pending`, `running` or `dead`.
#[derive(Debug, Clone)]
pub(crate) struct TaskState {
    pub state: &'static str,
    pub failed: bool,
    pub restarts: u64,
    /// Unix nanoseconds, `None` for Go's zero time.
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub events: Vec<TaskEvent>,
}

impl TaskState {
    /// A task the client has received but not started.
    pub fn pending() -> Self {
        TaskState {
            state: "pending",
            failed: false,
            restarts: 0,
            started_at: None,
            finished_at: None,
            events: Vec::new(),
        }
    }
}

/// `TaskEvent`: every field is printed, with its zero value when unset.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskEvent {
    pub kind: &'static str,
    pub time: i64,
    pub message: String,
    pub display_message: String,
    pub details: BTreeMap<String, String>,
    pub fails_task: bool,
    pub restart_reason: String,
    pub driver_error: String,
    pub exit_code: i64,
    pub signal: i64,
    pub kill_timeout: i64,
    pub driver_message: String,
}

impl TaskEvent {
    fn new(kind: &'static str, display_message: impl Into<String>) -> Self {
        TaskEvent {
            kind,
            time: now_nanos(),
            display_message: display_message.into(),
            ..TaskEvent::default()
        }
    }

    fn detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// `Received`.
    pub fn received() -> Self {
        TaskEvent::new("Received", "Task received by client")
    }

    /// `Task Setup` while the task directory is built.
    pub fn task_setup() -> Self {
        let message = "Building Task Directory";
        TaskEvent {
            message: message.into(),
            ..TaskEvent::new("Task Setup", message)
        }
        .detail("message", message)
    }

    /// `Driver` with a driver message (docker pulling its image).
    pub fn driver(message: &str) -> Self {
        TaskEvent {
            driver_message: message.into(),
            ..TaskEvent::new("Driver", message)
        }
        .detail("driver_message", message)
    }

    /// `Started`.
    pub fn started() -> Self {
        TaskEvent::new("Started", "Task started by client")
    }

    /// `Terminated` with an exit code and signal.
    pub fn terminated(exit_code: i64, signal: i64) -> Self {
        let mut display = format!("Exit Code: {exit_code}");
        if signal != 0 {
            display.push_str(&format!(", Signal: {signal}"));
        }
        TaskEvent {
            exit_code,
            signal,
            ..TaskEvent::new("Terminated", display)
        }
        .detail("exit_code", exit_code.to_string())
        .detail("signal", signal.to_string())
        .detail("oom_killed", "false")
    }

    /// `Not Restarting`, which fails the task.
    pub fn not_restarting(reason: &str) -> Self {
        TaskEvent {
            fails_task: true,
            restart_reason: reason.into(),
            ..TaskEvent::new("Not Restarting", reason)
        }
        .detail("restart_reason", reason)
        .detail("fails_task", "true")
    }

    /// `Driver Failure`: the driver could not start the task.
    pub fn driver_failure(error: &str) -> Self {
        TaskEvent {
            driver_error: error.into(),
            ..TaskEvent::new("Driver Failure", error)
        }
        .detail("driver_error", error)
    }

    /// `Killing` with the task's kill timeout in nanoseconds.
    pub fn killing(kill_timeout: i64) -> Self {
        let timeout = format_go_duration(kill_timeout);
        TaskEvent {
            kill_timeout,
            ..TaskEvent::new(
                "Killing",
                format!("Sent interrupt. Waiting {timeout} before force killing"),
            )
        }
        .detail("kill_timeout", timeout)
    }

    /// `Killed`.
    pub fn killed() -> Self {
        TaskEvent::new("Killed", "Task successfully killed")
    }
}
