//! Worker reports of concurrent requests, checked and applied in groups: one statement checks the
//! tokens of all the requests waiting, and one applies the status changes of all the reports waiting
//! (see [`crate::db::status_batch`]). Each request still gets its own answer, the one it would have
//! had alone. Attempts already checked are remembered ([`KnownAttempts`]), so that most reports need
//! only their change.

use sqlx::PgPool;

use super::batcher::{BatchFailed, Batcher};
use super::known::KnownAttempts;
use super::ApiError;
use crate::db::jobs::JobHead;
use crate::db::status_batch::{ChangeChain, JobState};
use crate::db::tokens::{heads_for_tokens, PresentedToken, TokenCheck};
use crate::db::DbError;
use crate::pipeline::transitions::apply_chains;

type Checked = Result<(TokenCheck, Option<JobHead>), DbError>;

/// The batchers of the worker API, and the attempts it knows.
pub struct Reports {
    tokens: Batcher<PresentedToken, Checked>,
    changes: Batcher<ChangeChain, Result<JobState, DbError>>,
    /// Attempts whose token was checked, and where their jobs stand.
    pub known: KnownAttempts,
}

impl Reports {
    /// Batchers over `pool`; their tasks start with the first request.
    pub fn new(pool: PgPool) -> Self {
        let tokens = {
            let pool = pool.clone();
            Batcher::new(move |presented: Vec<PresentedToken>| {
                let pool = pool.clone();
                async move { check_all(&pool, presented).await }
            })
        };
        let changes = Batcher::new(move |chains: Vec<ChangeChain>| {
            let pool = pool.clone();
            async move { apply_chains(&pool, &chains).await }
        });
        Reports {
            tokens,
            changes,
            known: KnownAttempts::default(),
        }
    }

    /// Checks a token and reads the job's head, with the requests waiting at the same time.
    pub async fn check(
        &self,
        presented: PresentedToken,
    ) -> Result<(TokenCheck, Option<JobHead>), ApiError> {
        Ok(self.tokens.submit(presented).await.map_err(internal)??)
    }

    /// Applies a chain of status changes, with the reports waiting at the same time.
    pub async fn apply(&self, chain: ChangeChain) -> Result<JobState, ApiError> {
        Ok(self.changes.submit(chain).await.map_err(internal)??)
    }
}

fn internal(e: BatchFailed) -> ApiError {
    ApiError::Internal(e.into())
}

/// The checks of `presented` in one statement; one by one if it fails, so that each request gets
/// its own error.
async fn check_all(pool: &PgPool, presented: Vec<PresentedToken>) -> Vec<Checked> {
    match heads_for_tokens(pool, &presented).await {
        Ok(checks) => checks.into_iter().map(Ok).collect(),
        Err(e) if presented.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut checks = Vec::with_capacity(presented.len());
            for one in presented {
                let check = heads_for_tokens(pool, std::slice::from_ref(&one)).await;
                checks.push(check.map(|mut c| c.remove(0)));
            }
            checks
        }
    }
}
