//! Spawns the HTTP API on a random loopback port over a test's database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use swath_engine::api::{router_with, ApiState};
use swath_engine::attempt::failure::AttemptBackoff;
use swath_engine::config::Settings;

/// A running API; stops when dropped.
pub struct TestApi {
    /// `http://127.0.0.1:<port>/api/v1`.
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The API over `pool` with the default job types and a 30 s retry backoff.
pub async fn spawn_api(pool: &PgPool) -> TestApi {
    spawn_api_with(pool, &Settings::default()).await
}

/// The API over `pool` with the job types, storage locations, tokens and retry cap of `settings`, and
/// a 30 s retry backoff.
pub async fn spawn_api_with(pool: &PgPool, settings: &Settings) -> TestApi {
    spawn_api_full(pool, settings, None).await
}

/// Like [`spawn_api_with`], stopping the attempts of cancelled jobs through `executor`.
pub async fn spawn_api_full(
    pool: &PgPool,
    settings: &Settings,
    executor: Option<Arc<dyn swath_engine::executor::Executor>>,
) -> TestApi {
    let state = ApiState {
        pool: pool.clone(),
        registry: Arc::new(settings.registry().unwrap()),
        backoff: AttemptBackoff {
            base: Duration::from_secs(30),
            max: Duration::from_secs(600),
        },
        tasks: settings.task_locations(),
        timeliness_target_hours: settings.timeliness_target_hours,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let app = router_with(state, settings.operator_api(executor));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    TestApi { base, task }
}
