//! The periodic sweep of expired sessions.

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{Timestamp, UserId};
use chat_storage::SessionStore;

/// Every `every`, removes expired sessions from the store and hands their ids to
/// `on_expired` (with several nodes, each id to exactly one of them). Stops when the returned
/// handle is aborted or the runtime ends.
pub fn spawn_expiry_sweeper<F>(
    store: Arc<dyn SessionStore>,
    every: Duration,
    on_expired: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Vec<UserId>) + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match store.sweep_expired(Timestamp::now()).await {
                Ok(expired) if !expired.is_empty() => {
                    tracing::info!(count = expired.len(), "sessions expired");
                    on_expired(expired);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "expiry sweep failed"),
            }
        }
    })
}
