//! The emulated state store: the tables, one Raft-like index and the per-table indexes (what
//! Nomad's blocking queries compare against), and the write transaction that keeps job status,
//! summaries and the parent's children counts right.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::records::{AllocRecord, EvalRecord, GroupSummary, JobKey, JobRecord};
use super::wire::now_nanos;
use super::Dispatched;

/// The Raft index of the last write to each table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tables {
    pub jobs: u64,
    pub job_summary: u64,
    pub allocs: u64,
    pub evals: u64,
}

/// Everything the emulated servers store.
#[derive(Debug)]
pub(crate) struct Store {
    pub index: u64,
    pub tables: Tables,
    pub jobs: BTreeMap<JobKey, JobRecord>,
    pub allocs: BTreeMap<String, AllocRecord>,
    pub evals: BTreeMap<String, EvalRecord>,
    /// Children created by dispatch, in order (never garbage-collected).
    pub dispatches: Vec<Dispatched>,
    /// The allocation IDs of each job (an index: lookups by job stay cheap with many jobs).
    alloc_ids: BTreeMap<JobKey, BTreeSet<String>>,
    /// The evaluation IDs of each job.
    eval_ids: BTreeMap<JobKey, BTreeSet<String>>,
    /// The child dispatched with each (namespace, parent, idempotency token).
    tokens: HashMap<(String, String, String), String>,
}

impl Store {
    /// An empty store whose index is 1, as on a new cluster.
    pub fn new() -> Self {
        Store {
            index: 1,
            tables: Tables::default(),
            jobs: BTreeMap::new(),
            allocs: BTreeMap::new(),
            evals: BTreeMap::new(),
            dispatches: Vec::new(),
            alloc_ids: BTreeMap::new(),
            eval_ids: BTreeMap::new(),
            tokens: HashMap::new(),
        }
    }

    /// The child of `parent` dispatched with `token` in `namespace`, if it still exists.
    pub fn child_with_token(
        &self,
        namespace: &str,
        parent: &str,
        token: &str,
    ) -> Option<&JobRecord> {
        let key = (namespace.to_string(), parent.to_string(), token.to_string());
        let child = self.tokens.get(&key)?;
        self.jobs.get(&(namespace.to_string(), child.clone()))
    }

    /// Removes an allocation (garbage collection).
    pub fn remove_alloc(&mut self, id: &str) {
        if let Some(alloc) = self.allocs.remove(id) {
            let key = (alloc.namespace, alloc.job_id);
            if let Some(ids) = self.alloc_ids.get_mut(&key) {
                ids.remove(id);
            }
        }
    }

    /// Removes an evaluation (garbage collection).
    pub fn remove_eval(&mut self, id: &str) {
        if let Some(eval) = self.evals.remove(id) {
            let key = (eval.namespace, eval.job_id);
            if let Some(ids) = self.eval_ids.get_mut(&key) {
                ids.remove(id);
            }
        }
    }

    /// The allocations of a job, by allocation ID.
    pub fn job_allocs<'a>(
        &'a self,
        namespace: &'a str,
        job_id: &'a str,
    ) -> impl Iterator<Item = &'a AllocRecord> + 'a {
        self.alloc_ids
            .get(&(namespace.to_string(), job_id.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.allocs.get(id))
    }

    /// The evaluations of a job, by evaluation ID.
    pub fn job_evals<'a>(
        &'a self,
        namespace: &'a str,
        job_id: &'a str,
    ) -> impl Iterator<Item = &'a EvalRecord> + 'a {
        self.eval_ids
            .get(&(namespace.to_string(), job_id.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.evals.get(id))
    }

    /// Nomad's `getJobStatus`.
    fn computed_status(&self, job: &JobRecord) -> &'static str {
        let periodic = job.spec.get("Periodic").is_some_and(Value::is_object);
        if job.job_type() == "system" || job.is_parameterized() || periodic {
            return if job.stop { "dead" } else { "running" };
        }
        let mut seen = false;
        for alloc in self.job_allocs(&job.namespace, &job.id) {
            seen = true;
            if !alloc.is_terminal() {
                return "running";
            }
        }
        for eval in self.job_evals(&job.namespace, &job.id) {
            seen = true;
            if !eval.is_terminal() {
                return "pending";
            }
        }
        if seen {
            "dead"
        } else {
            "pending"
        }
    }
}

/// One write: every change made through it gets the same new index, allocated on first use.
pub(crate) struct Txn<'a> {
    pub store: &'a mut Store,
    index: Option<u64>,
}

impl<'a> Txn<'a> {
    /// A write on `store`.
    pub fn new(store: &'a mut Store) -> Self {
        Txn { store, index: None }
    }

    /// The index of this write.
    pub fn index(&mut self) -> u64 {
        if let Some(index) = self.index {
            return index;
        }
        self.store.index += 1;
        self.index = Some(self.store.index);
        self.store.index
    }

    /// The index of this write if anything was written.
    pub fn written(&self) -> Option<u64> {
        self.index
    }

    /// Stores a new or updated job (status recomputed, the parent's children counts kept right).
    pub fn put_job(&mut self, mut job: JobRecord) {
        let index = self.index();
        let key = (job.namespace.clone(), job.id.clone());
        if let Some(old) = self.store.jobs.get(&key) {
            job.status = old.status.clone();
        }
        job.modify_index = index;
        self.store.tables.jobs = index;
        self.store.tables.job_summary = index;
        if !job.parent_id.is_empty() && !job.idempotency_token.is_empty() {
            let token = (
                job.namespace.clone(),
                job.parent_id.clone(),
                job.idempotency_token.clone(),
            );
            self.store.tokens.insert(token, job.id.clone());
        }
        self.store.jobs.insert(key.clone(), job);
        self.refresh_job_status(&key);
    }

    /// Deletes a job and its summary; its allocations and evaluations stay until GC.
    pub fn delete_job(&mut self, key: &JobKey) {
        let Some(job) = self.store.jobs.remove(key) else {
            return;
        };
        let token = (
            job.namespace.clone(),
            job.parent_id.clone(),
            job.idempotency_token.clone(),
        );
        if self.store.tokens.get(&token) == Some(&job.id) {
            self.store.tokens.remove(&token);
        }
        let index = self.index();
        self.store.tables.jobs = index;
        self.store.tables.job_summary = index;
        // A deleted child counts as dead in its parent's summary for good: a pending or running
        // one moves to `Dead`, a dead one stays counted there (nomad/state/state_store.go
        // `DeleteJobTxn`), so garbage collection never lowers `Children.Dead`.
        if !job.parent_id.is_empty() && job.status != "dead" {
            self.move_child(&(job.namespace, job.parent_id), &job.status, "dead");
        }
    }

    /// Recomputes a job's status; a change bumps the job's `ModifyIndex` and, for a child, moves
    /// it between the parent's `Children` counts.
    pub fn refresh_job_status(&mut self, key: &JobKey) {
        let Some(job) = self.store.jobs.get(key) else {
            return;
        };
        let status = self.store.computed_status(job);
        if job.status == status {
            return;
        }
        let index = self.index();
        let job = self.store.jobs.get_mut(key).expect("the job exists");
        let old = std::mem::replace(&mut job.status, status.to_string());
        job.modify_index = index;
        let parent = (job.namespace.clone(), job.parent_id.clone());
        self.store.tables.jobs = index;
        if !parent.1.is_empty() {
            self.move_child(&parent, &old, status);
        }
    }

    fn move_child(&mut self, parent: &JobKey, from: &str, to: &str) {
        if !self.store.jobs.contains_key(parent) {
            return;
        }
        let index = self.index();
        let parent = self.store.jobs.get_mut(parent).expect("the parent exists");
        let children = &mut parent.summary.children;
        if let Some(count) = children.count_mut(from) {
            *count -= 1;
        }
        if let Some(count) = children.count_mut(to) {
            *count += 1;
        }
        parent.summary.modify_index = index;
        self.store.tables.job_summary = index;
    }

    /// Changes a job's summary counts for one task group.
    pub fn update_group_summary(
        &mut self,
        key: &JobKey,
        group: &str,
        change: impl FnOnce(&mut GroupSummary),
    ) {
        let Some(job) = self.store.jobs.get(key) else {
            return;
        };
        let mut summary = job.summary.groups.get(group).copied().unwrap_or_default();
        change(&mut summary);
        if job.summary.groups.get(group) == Some(&summary) {
            return;
        }
        let index = self.index();
        let job = self.store.jobs.get_mut(key).expect("the job exists");
        job.summary.groups.insert(group.to_string(), summary);
        job.summary.modify_index = index;
        self.store.tables.job_summary = index;
    }

    /// Stores a new allocation (counted as `Starting` while its client status is `pending`).
    pub fn insert_alloc(&mut self, mut alloc: AllocRecord) {
        let index = self.index();
        alloc.create_index = index;
        alloc.modify_index = index;
        alloc.alloc_modify_index = index;
        let key = (alloc.namespace.clone(), alloc.job_id.clone());
        let (group, status) = (alloc.task_group.clone(), alloc.client_status.clone());
        self.store
            .alloc_ids
            .entry(key.clone())
            .or_default()
            .insert(alloc.id.clone());
        self.store.allocs.insert(alloc.id.clone(), alloc);
        self.store.tables.allocs = index;
        self.update_group_summary(&key, &group, |s| {
            if let Some(count) = s.count_mut(&status) {
                *count += 1;
            }
        });
        self.refresh_job_status(&key);
    }

    /// Changes an allocation; a client status change moves it between the summary counts. Returns
    /// false when the allocation no longer exists.
    pub fn update_alloc(&mut self, id: &str, change: impl FnOnce(&mut AllocRecord)) -> bool {
        if !self.store.allocs.contains_key(id) {
            return false;
        }
        let index = self.index();
        let alloc = self
            .store
            .allocs
            .get_mut(id)
            .expect("the allocation exists");
        let before = alloc.client_status.clone();
        let desired_before = alloc.desired_status.clone();
        change(alloc);
        alloc.modify_index = index;
        alloc.modify_time = now_nanos();
        if alloc.desired_status != desired_before {
            alloc.alloc_modify_index = index;
        }
        let after = alloc.client_status.clone();
        let key = (alloc.namespace.clone(), alloc.job_id.clone());
        let group = alloc.task_group.clone();
        self.store.tables.allocs = index;
        if before != after {
            self.update_group_summary(&key, &group, |s| {
                if let Some(count) = s.count_mut(&before) {
                    *count = count.saturating_sub(1);
                }
                if let Some(count) = s.count_mut(&after) {
                    *count += 1;
                }
            });
        }
        self.refresh_job_status(&key);
        true
    }

    /// Stores a new evaluation.
    pub fn insert_eval(&mut self, mut eval: EvalRecord) {
        let index = self.index();
        let now = now_nanos();
        eval.create_index = index;
        eval.modify_index = index;
        eval.create_time = now;
        eval.modify_time = now;
        let key = (eval.namespace.clone(), eval.job_id.clone());
        self.store
            .eval_ids
            .entry(key.clone())
            .or_default()
            .insert(eval.id.clone());
        self.store.evals.insert(eval.id.clone(), eval);
        self.store.tables.evals = index;
        self.refresh_job_status(&key);
    }

    /// Changes an evaluation. Returns false when it no longer exists.
    pub fn update_eval(&mut self, id: &str, change: impl FnOnce(&mut EvalRecord)) -> bool {
        if !self.store.evals.contains_key(id) {
            return false;
        }
        let index = self.index();
        let eval = self.store.evals.get_mut(id).expect("the evaluation exists");
        change(eval);
        eval.modify_index = index;
        eval.modify_time = now_nanos();
        let key = (eval.namespace.clone(), eval.job_id.clone());
        self.store.tables.evals = index;
        self.refresh_job_status(&key);
        true
    }
}
