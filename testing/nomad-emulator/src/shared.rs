//! The state every part of the emulator shares: the store behind one lock, the index watch that
//! wakes blocking queries and lifecycle drivers, the control journal, the emulated nodes and the
//! background tasks (aborted on shutdown).

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::control::Control;
use super::nodes::EmulatedNode;
use super::state::{Store, Txn};
use super::EmulatorOptions;

/// An emulated client node: its ID and what it reports.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: String,
    pub name: String,
    pub spec: EmulatedNode,
}

/// The emulator's shared state.
pub(crate) struct Shared {
    store: Mutex<Store>,
    index: watch::Sender<u64>,
    control: Mutex<Control>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<JoinSet<()>>,
    pub options: EmulatorOptions,
    /// The client nodes, in the order the scheduler tries them.
    pub nodes: Vec<Node>,
}

impl Shared {
    /// A new, empty emulator state.
    pub fn new(options: EmulatorOptions) -> Self {
        let store = Store::new();
        let nodes = options
            .nodes
            .iter()
            .map(|spec| Node {
                id: uuid::Uuid::new_v4().to_string(),
                name: spec.name.clone(),
                spec: spec.clone(),
            })
            .collect();
        Shared {
            index: watch::channel(store.index).0,
            store: Mutex::new(store),
            control: Mutex::new(Control::default()),
            shutdown: watch::channel(false).0,
            tasks: Mutex::new(JoinSet::new()),
            options,
            nodes,
        }
    }

    /// Reads the store.
    pub fn read<R>(&self, read: impl FnOnce(&Store) -> R) -> R {
        read(&self.store.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes to the store in one transaction; waiters are woken when it wrote anything.
    pub fn write<R>(&self, write: impl FnOnce(&mut Txn) -> R) -> R {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut txn = Txn::new(&mut store);
        let result = write(&mut txn);
        let written = txn.written();
        drop(store);
        if let Some(index) = written {
            self.index.send_replace(index);
        }
        result
    }

    /// The control journal.
    pub fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `task` in the background until it ends or the emulator shuts down.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Waits one lifecycle step.
    pub async fn step(&self) {
        tokio::time::sleep(self.options.step).await;
    }

    /// Waits until `ready` holds on the store, re-checking after every write. Returns false if
    /// `deadline` passed first.
    pub async fn wait_until(
        &self,
        mut ready: impl FnMut(&Store) -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        let mut changes = self.index.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        loop {
            changes.borrow_and_update();
            if self.read(&mut ready) {
                return true;
            }
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => return false,
                _ = shutdown.wait_for(|down| *down) => return false,
            }
        }
    }

    /// Resolves when the emulator shuts down.
    pub async fn shut_down(&self) {
        let mut shutdown = self.shutdown.subscribe();
        let _ = shutdown.wait_for(|down| *down).await;
    }

    /// Stops background tasks and wakes every waiter.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
    }
}
