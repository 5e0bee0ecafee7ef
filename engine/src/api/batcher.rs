//! Group commit for concurrent requests: each request is queued with a one-shot channel for its own
//! answer, and a task of the batcher's own applies whatever is waiting as one batch. The next batch
//! is whatever arrived while the previous one was applied, so an idle batcher adds no delay and a
//! busy one makes larger batches.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

/// Most requests in one batch.
pub const MAX_BATCH: usize = 1024;

type Pending<Req, Resp> = (Req, oneshot::Sender<Resp>);
type Apply<Req, Resp> = Arc<dyn Fn(Vec<Req>) -> BoxFuture<'static, Vec<Resp>> + Send + Sync>;

/// The batch a request belonged to failed as a whole (its task panicked): the request may or may not
/// have been applied.
#[derive(Debug, thiserror::Error)]
#[error("the batch of this request failed")]
pub struct BatchFailed;

/// Applies requests in batches, on a task started by the first request; the task ends when the
/// batcher is dropped and the last batch is answered.
pub struct Batcher<Req, Resp> {
    apply: Apply<Req, Resp>,
    queue: OnceLock<mpsc::UnboundedSender<Pending<Req, Resp>>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// A batcher that applies a batch with `apply`, which answers every request, in order.
    pub fn new<F, Fut>(apply: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        Batcher {
            apply: Arc::new(move |requests| Box::pin(apply(requests))),
            queue: OnceLock::new(),
        }
    }

    /// Queues `request` for the next batch and waits for its answer. Must run in a Tokio runtime.
    pub async fn submit(&self, request: Req) -> Result<Resp, BatchFailed> {
        let queue = self.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::unbounded_channel();
            tokio::spawn(run(waiting, Arc::clone(&self.apply)));
            queue
        });
        let (answer, answered) = oneshot::channel();
        queue.send((request, answer)).map_err(|_| BatchFailed)?;
        answered.await.map_err(|_| BatchFailed)
    }
}

/// Takes whatever is waiting, applies it, answers each request, and starts over.
async fn run<Req: Send + 'static, Resp: Send + 'static>(
    mut waiting: mpsc::UnboundedReceiver<Pending<Req, Resp>>,
    apply: Apply<Req, Resp>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (requests, answers): (Vec<Req>, Vec<oneshot::Sender<Resp>>) = batch.drain(..).unzip();
        // A batch runs as a task of its own, so that a panic fails its requests and not the batcher.
        match tokio::spawn(apply(requests)).await {
            Ok(responses) => {
                for (answer, response) in answers.into_iter().zip(responses) {
                    let _ = answer.send(response);
                }
            }
            Err(e) => tracing::error!(error = %e, "a batch failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};

    use tokio::sync::Notify;

    use super::*;

    /// Polls `future` once: a submitted request is queued by its first poll.
    fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn requests_that_arrive_during_a_batch_form_the_next_one_and_get_their_own_answers() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Notify::new());
        let batcher = {
            let (sizes, gate) = (Arc::clone(&sizes), Arc::clone(&gate));
            Batcher::new(move |requests: Vec<u32>| {
                let (sizes, gate) = (Arc::clone(&sizes), Arc::clone(&gate));
                async move {
                    sizes.lock().unwrap().push(requests.len());
                    if requests == [0] {
                        gate.notified().await;
                    }
                    requests.into_iter().map(|r| r * 10).collect::<Vec<_>>()
                }
            })
        };
        let mut first = Box::pin(batcher.submit(0));
        assert!(poll_once(first.as_mut()).is_pending());
        let deadline = Instant::now() + Duration::from_secs(10);
        while sizes.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the first batch starts");
            tokio::task::yield_now().await;
        }
        // The first batch is being applied: these five wait together for the next one.
        let mut others: Vec<_> = (1..=5).map(|r| Box::pin(batcher.submit(r))).collect();
        for other in &mut others {
            assert!(poll_once(other.as_mut()).is_pending());
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap(), 0);
        for (r, other) in (1..=5).zip(others) {
            assert_eq!(other.await.unwrap(), r * 10);
        }
        assert_eq!(*sizes.lock().unwrap(), vec![1, 5]);
    }

    #[tokio::test]
    async fn a_panicking_batch_fails_its_own_requests_only() {
        let batcher = Batcher::new(|requests: Vec<i32>| async move {
            assert!(requests.iter().all(|&r| r >= 0), "a negative request");
            requests
        });
        assert!(batcher.submit(-1).await.is_err());
        assert_eq!(batcher.submit(7).await.unwrap(), 7);
    }
}
