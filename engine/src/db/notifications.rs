//! Wake-ups from PostgreSQL notifications (`LISTEN`), for the loops that wait for the database to
//! change instead of polling it.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;

/// A listener on one notification channel, or nothing when it could not be opened (the loop then
/// runs on its timer only).
pub struct Notifications {
    channel: &'static str,
    listener: Option<PgListener>,
}

impl Notifications {
    /// Listens on `channel`; a failure is logged and leaves the caller on its timer.
    pub async fn listen(pool: &PgPool, channel: &'static str) -> Notifications {
        let listener = match PgListener::connect_with(pool).await {
            Ok(mut l) => l.listen(channel).await.map(|()| l),
            Err(e) => Err(e),
        };
        let listener = listener
            .map_err(|e| {
                tracing::warn!(channel, error = %e, "cannot listen for notifications; running on a timer only")
            })
            .ok();
        Notifications { channel, listener }
    }

    /// Resolves when a notification arrives. If the listener failed (it reconnects on the next
    /// call), it resolves after `retry` instead; without a listener it never resolves.
    pub async fn notified(&mut self, retry: Duration) {
        match self.listener.as_mut() {
            Some(l) => {
                if let Err(e) = l.recv().await {
                    tracing::warn!(channel = self.channel, error = %e, "notification listener failed; it reconnects");
                    tokio::time::sleep(retry).await;
                }
            }
            None => std::future::pending().await,
        }
    }
}
