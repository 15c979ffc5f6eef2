//! The background side of [`FailoverStore`](super::FailoverStore): probing Redis during an
//! outage and writing this node's memory back when it answers.
//!
//! Write-back, in two passes:
//! 1. Without blocking anyone: every id dirtied during the outage is written as memory has it
//!    (or deleted from Redis if memory no longer has it), and rooms whose files were deleted
//!    lose them in Redis too. If Redis lost its data meanwhile (its epoch marker changed, see
//!    [`RedisStore::epoch`](crate::RedisStore::epoch)), every other live session and file in
//!    memory is written too, with its remaining TTL, but only where Redis lacks it, so newer
//!    writes of other nodes that recovered first are never overwritten. If Redis kept its data
//!    nothing else is written, so sessions deleted elsewhere during the outage stay deleted.
//! 2. With the gate held exclusively (memory writes wait a moment): what was dirtied during
//!    pass 1 is written the same way, then the store switches to Redis mode.
//!
//! If a pass fails the dirty marks are put back and the task tries again after a backoff.
//! While in Redis mode, a reconnection of the pool (Redis may have restarted between two
//! commands, so that no command failed) triggers the same epoch check and restore.

use std::mem;
use std::ops::AddAssign;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_domain::Timestamp;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Dirty, Shared};
use crate::{SessionStore, StoreResult};

/// The first probe after falling back, and after each success.
const FIRST_PROBE: Duration = Duration::from_millis(100);
/// The longest pause between two probes.
const LONGEST_PROBE: Duration = Duration::from_secs(5);

/// Starts the supervisor and one listener per pool connection on `tasks`; all end when `stop`
/// is cancelled.
pub(super) fn spawn(shared: &Arc<Shared>, stop: &CancellationToken, tasks: &TaskTracker) {
    let reconnected = Arc::new(Notify::new());
    for mut receiver in shared.redis.reconnections() {
        let reconnected = Arc::clone(&reconnected);
        let stop = stop.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    event = receiver.recv() => match event {
                        Ok(_) | Err(RecvError::Lagged(_)) => reconnected.notify_one(),
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        });
    }
    tasks.spawn(supervise(Arc::clone(shared), stop.clone(), reconnected));
}

async fn supervise(shared: Arc<Shared>, stop: CancellationToken, reconnected: Arc<Notify>) {
    let mut delay = FIRST_PROBE;
    loop {
        if shared.redis_mode() {
            tokio::select! {
                () = stop.cancelled() => break,
                () = shared.fell_back.notified() => delay = FIRST_PROBE,
                () = reconnected.notified() => {
                    if let Err(error) = restore_if_lost(&shared).await {
                        let _ = shared.fall_back(error);
                    }
                }
            }
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
        match recover(&shared).await {
            Ok(written) => {
                tracing::info!(
                    sessions = written.sessions,
                    deleted = written.deleted,
                    files = written.files,
                    "Redis is back; memory written back, serving from Redis again"
                );
                delay = FIRST_PROBE;
            }
            Err(error) => {
                tracing::debug!(%error, retry_in = ?delay, "Redis still unavailable");
                delay = (delay * 2).min(LONGEST_PROBE);
            }
        }
    }
    shared.redis.quit().await;
}

/// Probes Redis, writes memory back in two passes, and switches to Redis mode.
async fn recover(shared: &Shared) -> StoreResult<Written> {
    let (lost, epoch) = data_lost(shared).await?;
    let mut written = write_back_dirty(shared, lost).await?;
    let _exclusive = shared.gate.write().await;
    written += write_back_dirty(shared, false).await?;
    shared.remember_epoch(epoch);
    shared.redis_mode.store(true, Ordering::SeqCst);
    Ok(written)
}

/// In Redis mode after a reconnection: restores what Redis lacks if it lost its data.
async fn restore_if_lost(shared: &Shared) -> StoreResult<()> {
    let (lost, epoch) = data_lost(shared).await?;
    if lost {
        let written = write_back(shared, &Dirty::default(), true).await?;
        tracing::info!(
            sessions = written.sessions,
            files = written.files,
            "Redis lost its data; this node's sessions restored"
        );
        shared.remember_epoch(epoch);
    }
    Ok(())
}

/// Whether Redis lost its data since this node last read its epoch, and the current epoch.
async fn data_lost(shared: &Shared) -> StoreResult<(bool, String)> {
    let current = shared.redis.epoch().await?;
    let lost = shared.known_epoch().as_deref() != Some(current.as_str());
    if lost {
        tracing::warn!("Redis lost its data (or was never seen); restoring this node's sessions");
    }
    Ok((lost, current))
}

/// Takes the dirty marks and writes them back (plus everything Redis lacks, if `everything`);
/// on failure the marks are put back.
async fn write_back_dirty(shared: &Shared, everything: bool) -> StoreResult<Written> {
    let dirty = mem::take(&mut *shared.dirty());
    let result = write_back(shared, &dirty, everything).await;
    if result.is_err() {
        let mut current = shared.dirty();
        current.sessions.extend(dirty.sessions);
        current.rooms.extend(dirty.rooms);
    }
    result
}

async fn write_back(shared: &Shared, dirty: &Dirty, everything: bool) -> StoreResult<Written> {
    let mut written = Written::default();
    for id in &dirty.sessions {
        match shared.memory.get(id).await? {
            Some(user) => {
                shared.redis.put_session(&user).await?;
                written.sessions += 1;
            }
            None => {
                shared.redis.delete(id).await?;
                written.deleted += 1;
            }
        }
    }
    for room in &dirty.rooms {
        shared.redis.delete_room_files(room).await?;
    }
    if everything {
        let now = Timestamp::now();
        for user in shared.memory.live_sessions(now) {
            if !dirty.sessions.contains(&user.id)
                && shared.redis.put_session_if_absent(&user).await?
            {
                written.sessions += 1;
            }
        }
        for file in shared.memory.live_files(now) {
            if shared.redis.put_file_if_absent(&file).await? {
                written.files += 1;
            }
        }
    }
    Ok(written)
}

/// What a write-back wrote, for the log.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    sessions: usize,
    deleted: usize,
    files: usize,
}

impl AddAssign for Written {
    fn add_assign(&mut self, other: Self) {
        self.sessions += other.sessions;
        self.deleted += other.deleted;
        self.files += other.files;
    }
}
