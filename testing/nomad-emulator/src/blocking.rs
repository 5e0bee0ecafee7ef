//! Blocking queries: `?index=N&wait=<Go duration>` holds a read until the index its answer carries
//! exceeds N or the wait (default and cap 300 s) runs out, then answers with the current state.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::http::{authorize, ApiRequest, Reply};
use super::shared::Shared;
use super::state::Store;
use super::wire::{parse_go_duration, parse_go_uint};

/// Nomad's `MaxBlockingRPCQueryTime`, also the default wait.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// A read's answer and the index it carries in `X-Nomad-Index`.
pub(crate) struct Answer {
    pub index: u64,
    pub reply: Reply,
}

/// Parses `wait` and `index` as Nomad's HTTP layer does: 400 `Invalid wait time` / `Invalid index`.
fn parse(request: &ApiRequest) -> Result<(u64, Duration), Reply> {
    let mut wait = MAX_WAIT;
    if let Some(text) = request.param("wait") {
        let parsed =
            parse_go_duration(text).ok_or_else(|| Reply::bad_request("Invalid wait time"))?;
        if !parsed.is_zero() {
            wait = parsed.min(MAX_WAIT);
        }
    }
    let mut min_index = 0;
    if let Some(text) = request.param("index") {
        min_index = parse_go_uint(text).ok_or_else(|| Reply::bad_request("Invalid index"))?;
    }
    Ok((min_index, wait))
}

/// Answers a GET with `answer`, blocking as the query asks. The same `answer` computes both the
/// reply and its index, so a blocked read returns exactly when its `X-Nomad-Index` would move.
/// The ACL check comes after the parameters are parsed, as in Nomad. Reads carry `X-Nomad-Index` (at least 1), `X-Nomad-KnownLeader` and `X-Nomad-LastContact`.
pub(crate) async fn read(
    shared: &Arc<Shared>,
    request: &ApiRequest,
    answer: impl Fn(&Store) -> Answer,
) -> Reply {
    let (min_index, wait) = match parse(request) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    if let Err(reply) = authorize(shared, request, None) {
        return reply;
    }
    if min_index > 0 {
        let deadline = Instant::now() + wait;
        shared
            .wait_until(
                |store| answer(store).index.max(1) > min_index,
                Some(deadline),
            )
            .await;
    }
    let Answer { index, reply } = shared.read(&answer);
    reply.with_query_meta(index.max(1))
}
