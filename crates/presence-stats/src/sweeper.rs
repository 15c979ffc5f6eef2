//! The periodic sweeps of a [`SessionLifecycle`]: connected users gone stale are shown
//! offline, expired sessions are removed. Both are futures that run until their
//! [`CancellationToken`] is cancelled; the caller spawns them (on a
//! [`TaskTracker`](tokio_util::task::TaskTracker), say) and awaits them on shutdown. A sweep
//! under way when the token is cancelled is finished first.

use std::future::Future;
use std::time::Duration;

use chat_domain::{Timestamp, UserId};
use chat_storage::SessionPatch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::SessionLifecycle;

impl SessionLifecycle {
    /// One stale sweep: connected users without activity for the stale period that were not
    /// yet reported are marked offline in the store (each once, until their next activity),
    /// with one poke for all of them. Returns who went offline.
    pub async fn sweep_stale(&self) -> Vec<UserId> {
        let stale = self.inner.tracker.newly_stale();
        for user in &stale {
            let patch = SessionPatch {
                is_online: Some(false),
                ..SessionPatch::default()
            };
            if let Err(error) = self.inner.store.update(user, patch).await {
                tracing::warn!(%error, "could not mark a stale user offline");
            }
        }
        if !stale.is_empty() {
            self.inner.stats.poke();
        }
        stale
    }

    /// How often [`SessionLifecycle::stale_sweeper`] looks: a third of the stale period in
    /// whole seconds, at least one, so a user is shown offline at most a third late.
    pub fn stale_sweep_every(&self) -> Duration {
        let stale_after = self.inner.tracker.stale_after().as_secs();
        Duration::from_secs(stale_after.div_ceil(3).max(1))
    }

    /// Runs [`SessionLifecycle::sweep_stale`] every [`SessionLifecycle::stale_sweep_every`]
    /// until `shutdown` is cancelled.
    pub fn stale_sweeper(
        &self,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let lifecycle = self.clone();
        let every = self.stale_sweep_every();
        async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                lifecycle.sweep_stale().await;
            }
        }
    }

    /// Every `every`, removes expired sessions from the store (with several nodes, each id
    /// is returned to exactly one of them), stops tracking them, awaits `on_expired` with
    /// their ids (the caller closes their sockets and chats), then pokes once. Runs until
    /// `shutdown` is cancelled.
    pub fn expiry_sweeper<F, Fut>(
        &self,
        every: Duration,
        shutdown: CancellationToken,
        on_expired: F,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Fn(Vec<UserId>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let lifecycle = self.clone();
        async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let expired = match lifecycle.inner.store.sweep_expired(Timestamp::now()).await {
                    Ok(expired) => expired,
                    Err(error) => {
                        tracing::warn!(%error, "expiry sweep failed");
                        continue;
                    }
                };
                if expired.is_empty() {
                    continue;
                }
                tracing::info!(count = expired.len(), "sessions expired");
                for user in &expired {
                    lifecycle.ended(user);
                }
                on_expired(expired).await;
                lifecycle.inner.stats.poke();
            }
        }
    }
}
