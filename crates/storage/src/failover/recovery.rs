//! The background side of [`FailoverStore`](super::FailoverStore): probing Redis during an
//! outage and writing this node's memory back when it answers.
//!
//! Write-back, in two passes, each following the rules in `failover.rs` (what was done in
//! memory mode is written, and an older copy never wins over what other nodes wrote):
//! 1. Without blocking anyone: the marks made so far are taken and written, and, if Redis lost
//!    its data
//!    meanwhile (its epoch marker changed, see [`RedisStore::epoch`](crate::RedisStore::epoch)),
//!    every other live session and file in memory is written where Redis lacks it.
//! 2. With the gate held exclusively (memory writes wait a moment): what was marked during
//!    pass 1 is written the same way, the searchers of the memory queue are put back into the
//!    shared queue, then the store switches to Redis mode.
//!
//! If a pass fails the marks are put back and the task tries again after a backoff, or at once
//! when the pool reconnects. While in Redis mode, a reconnection of the pool (Redis may have
//! restarted between two commands, so that no command failed) triggers the same epoch check
//! and restore.

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
use crate::{ChatStore, SessionStore, StoreResult};

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
            // Redis is likely back: no need to wait for the end of a long backoff, while other
            // nodes that recovered already serve what this one still answers from memory.
            () = reconnected.notified() => {}
        }
        match recover(&shared).await {
            Ok(written) => {
                tracing::info!(
                    sessions = written.sessions,
                    deleted = written.deleted,
                    files = written.files,
                    rooms = written.rooms,
                    searchers = written.searchers,
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
    let mut written = write_back_dirty(shared, lost, false).await?;
    let _exclusive = shared.gate.write().await;
    written += write_back_dirty(shared, false, true).await?;
    shared.remember_epoch(epoch);
    shared.redis_mode.store(true, Ordering::SeqCst);
    Ok(written)
}

/// In Redis mode after a reconnection: restores what Redis lacks if it lost its data.
async fn restore_if_lost(shared: &Shared) -> StoreResult<()> {
    let (lost, epoch) = data_lost(shared).await?;
    if lost {
        let written = write_back(shared, &Dirty::default(), true, false).await?;
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

/// Takes the marks and writes them back (plus everything Redis lacks, if `everything`, and the
/// memory queue, if `requeue`); on failure the marks are put back.
async fn write_back_dirty(
    shared: &Shared,
    everything: bool,
    requeue: bool,
) -> StoreResult<Written> {
    let dirty = mem::take(&mut *shared.dirty());
    let result = write_back(shared, &dirty, everything, requeue).await;
    if result.is_err() {
        shared.dirty().restore(dirty);
    }
    result
}

async fn write_back(
    shared: &Shared,
    dirty: &Dirty,
    everything: bool,
    requeue: bool,
) -> StoreResult<Written> {
    let mut written = write_back_sessions(shared, dirty, everything).await?;
    let (redis, memory) = (&shared.redis, &shared.memory);
    // Files: first the rooms whose files went, then the files stored since.
    for room in &dirty.room_files {
        redis.delete_room_files(room).await?;
    }
    for id in &dirty.files {
        if let Some(file) = memory.get_file(id).await?
            && redis.put_file_if_absent(&file).await?
        {
            written.files += 1;
        }
    }
    for room in dirty.closed_rooms.values() {
        redis.close_room(room).await?;
    }
    for id in &dirty.opened_rooms {
        // Closed again during the outage: nothing to write.
        let Some(room) = memory.room(id).await? else {
            continue;
        };
        if redis.open_room_if_free(&room).await? {
            written.rooms += 1;
        } else {
            tracing::info!(room_id = %room.room_id, "a room opened during the outage lost a member to another room; kept on this node");
            shared.local_rooms().insert(room.room_id);
        }
    }
    // Only under the exclusive gate: a searcher still in the memory queue is then sure to
    // stay unpaired here.
    if requeue {
        for searcher in memory.queued_searchers() {
            if redis.requeue(&searcher).await? {
                written.searchers += 1;
            }
            memory.cancel_search(&searcher.user.id).await?;
        }
    }
    if everything {
        let now = Timestamp::now();
        for file in memory.live_files(now) {
            if redis.put_file_if_absent(&file).await? {
                written.files += 1;
            }
        }
    }
    Ok(written)
}

/// The session part of [`write_back`].
async fn write_back_sessions(
    shared: &Shared,
    dirty: &Dirty,
    everything: bool,
) -> StoreResult<Written> {
    let (redis, memory) = (&shared.redis, &shared.memory);
    let mut written = Written::default();
    // An id marked created or changed that memory no longer holds expired meanwhile: Redis's
    // own sweep deals with it.
    for id in &dirty.created {
        if let Some(user) = memory.get(id).await?
            && redis.put_session_if_newer(&user, true).await?
        {
            written.sessions += 1;
        }
    }
    for id in &dirty.changed {
        // Only where Redis still holds it, unless Redis lost everything.
        if let Some(user) = memory.get(id).await?
            && redis.put_session_if_newer(&user, everything).await?
        {
            written.sessions += 1;
        }
    }
    for (id, last_seen) in &dirty.removed {
        if redis.delete_session_unless_newer(id, *last_seen).await? {
            written.deleted += 1;
        }
    }
    if everything {
        for user in memory.live_sessions(Timestamp::now()) {
            if !dirty.created.contains(&user.id)
                && !dirty.changed.contains(&user.id)
                && redis.put_session_if_absent(&user).await?
            {
                written.sessions += 1;
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
    rooms: usize,
    searchers: usize,
}

impl AddAssign for Written {
    fn add_assign(&mut self, other: Self) {
        self.sessions += other.sessions;
        self.deleted += other.deleted;
        self.files += other.files;
        self.rooms += other.rooms;
        self.searchers += other.searchers;
    }
}
