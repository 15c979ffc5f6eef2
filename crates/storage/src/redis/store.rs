//! [`SessionStore`] for [`RedisStore`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chat_domain::{FileId, GuestUser, RoomId, Stats, Timestamp, UserId};
use fred::prelude::{KeysInterface, SortedSetsInterface};
use fred::types::Value;

use futures_util::future::try_join_all;

use super::keys::PARTITIONS;
use super::scripts::{DELETE_SESSION, PATCH_SESSION, RATE_HIT, STATS, SWEEP};
use super::{KEY_TTL_GRACE, RedisStore, SWEEP_BATCH, millis, records};
use crate::{
    FileMeta, Health, OnlinePage, RateDecision, SessionPatch, SessionStore, StorageError,
    StorageMode, StoreResult, StoredFile,
};

#[async_trait]
impl SessionStore for RedisStore {
    fn health(&self) -> Health {
        Health {
            mode: StorageMode::Redis,
            redis_up: self.is_connected(),
        }
    }

    async fn create(&self, user: &GuestUser) -> StoreResult<()> {
        self.put_session_replicated(user).await
    }

    async fn get(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        let Some(json) = self.raw_session(id).await? else {
            return Ok(None);
        };
        let user = records::decode_session(&json)?;
        Ok(self.is_live(&user, Timestamp::now()).then_some(user))
    }

    async fn update(&self, id: &UserId, patch: SessionPatch) -> StoreResult<Option<GuestUser>> {
        // One script reads, patches and writes the session with its indexes: one round trip.
        let touch = patch
            .touch
            .map_or_else(String::new, |at| at.as_millis().to_string());
        let args = vec![
            Value::from(id.as_str()),
            Value::from(records::encode_patch(&patch)?),
            Value::from(Timestamp::now().as_millis()),
            Value::from(touch),
            Value::from(millis(self.config.session_ttl)),
            Value::from(millis(KEY_TTL_GRACE)),
        ];
        let json: Option<String> = self
            .run(&PATCH_SESSION, self.keys.session_and_indexes(id), args)
            .await?;
        json.as_deref().map(records::decode_session).transpose()
    }

    async fn delete(&self, id: &UserId) -> StoreResult<Option<GuestUser>> {
        let args = vec![Value::from(id.as_str())];
        let old: Option<String> = self
            .run(&DELETE_SESSION, self.keys.session_and_indexes(id), args)
            .await?;
        let Some(json) = old else {
            return Ok(None);
        };
        let user = records::decode_session(&json)?;
        Ok(self.is_live(&user, Timestamp::now()).then_some(user))
    }

    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<Vec<UserId>> {
        // Every partition at once (on a cluster, each on its own shard).
        let swept =
            try_join_all((0..PARTITIONS).map(|partition| self.sweep_partition(partition, now)))
                .await?;
        Ok(swept.into_iter().flatten().collect())
    }

    async fn stats(&self, now: Timestamp) -> StoreResult<Stats> {
        let active_since = now.minus(Stats::ACTIVE_WINDOW);
        let args = vec![
            Value::from(now.as_millis()),
            Value::from(active_since.as_millis()),
        ];
        // Each partition counts its own (O(log n) per change, O(partitions) per read).
        let counts: Vec<Vec<u64>> = try_join_all((0..PARTITIONS).map(|partition| {
            self.run::<Vec<u64>>(&STATS, self.keys.indexes(partition), args.clone())
        }))
        .await?;
        let mut totals = [0u64; 5];
        for partition in &counts {
            if partition.len() != totals.len() {
                return Err(StorageError::Corrupt(format!(
                    "stats script returned {} values",
                    partition.len()
                )));
            }
            for (total, count) in totals.iter_mut().zip(partition) {
                *total += count;
            }
        }
        let [
            total_users,
            online_users,
            active_users,
            available_users,
            users_in_chat,
        ] = totals;
        Ok(Stats {
            total_users,
            online_users,
            active_users,
            available_users,
            connected_users: users_in_chat / 2,
            users_in_chat,
        })
    }

    async fn online_users(&self, limit: usize, cursor: Option<&str>) -> StoreResult<OnlinePage> {
        let limit = limit.max(1);
        let start = cursor.map_or_else(|| "-".to_owned(), |cursor| format!("({cursor}"));
        // The smallest ids after the cursor of every partition hold the smallest of all; one
        // more than asked tells whether a next page exists.
        let wanted = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let pages: Vec<Vec<String>> = try_join_all((0..PARTITIONS).map(|partition| {
            let key = self.keys.online(partition);
            let call = self.pool.zrangebylex::<Vec<String>, _, _, _>(
                key,
                start.clone(),
                "+",
                Some((0, wanted)),
            );
            self.timed("zrangebylex", call)
        }))
        .await?;
        let mut ids: Vec<String> = pages.into_iter().flatten().collect();
        ids.sort_unstable();
        ids.truncate(limit + 1);
        let next_cursor = (ids.len() > limit).then(|| ids[limit - 1].clone());
        ids.truncate(limit);
        let sessions: Vec<Option<String>> = try_join_all(ids.iter().map(|id| {
            let key = UserId::parse(id).map(|id| self.keys.session(&id));
            async move {
                match key {
                    Some(key) => {
                        self.timed("get", self.pool.get::<Option<String>, _>(key))
                            .await
                    }
                    None => Ok(None),
                }
            }
        }))
        .await?;
        let now = Timestamp::now();
        let mut users = Vec::with_capacity(limit);
        for json in sessions.iter().flatten() {
            // A session that expired but was not swept yet is skipped, not an error.
            let user = records::decode_session(json)?;
            if self.is_live(&user, now) && user.is_online {
                users.push(user.public());
            }
        }
        Ok(OnlinePage { users, next_cursor })
    }

    async fn hit_rate_limit(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> StoreResult<RateDecision> {
        let window_ms = millis(window).max(1);
        let reply: Vec<i64> = self
            .run(
                &RATE_HIT,
                vec![self.keys.rate(key)],
                vec![Value::from(window_ms)],
            )
            .await?;
        let &[hits, left] = reply.as_slice() else {
            return Err(StorageError::Corrupt(format!(
                "rate script returned {} values",
                reply.len()
            )));
        };
        let hits = u32::try_from(hits).unwrap_or(u32::MAX);
        Ok(RateDecision {
            allowed: hits <= limit,
            remaining: limit.saturating_sub(hits),
            retry_after: Duration::from_millis(u64::try_from(left).unwrap_or(0)),
        })
    }

    async fn put_file(&self, file: StoredFile) -> StoreResult<()> {
        let limit = self.config.files.max_room_bytes;
        self.store_file(&file, false, Some(limit)).await.map(drop)
    }

    async fn file_meta(&self, id: &FileId) -> StoreResult<Option<FileMeta>> {
        let json: Option<Bytes> = self
            .timed("get", self.pool.get(self.keys.file_meta(id)))
            .await?;
        let Some(json) = json else {
            return Ok(None);
        };
        let meta = records::decode_meta(&json)?;
        Ok((meta.expires_at > Timestamp::now()).then_some(meta))
    }

    async fn get_file(&self, id: &FileId) -> StoreResult<Option<StoredFile>> {
        let keys = vec![self.keys.file_meta(id), self.keys.file_bytes(id)];
        let values: Vec<Option<Bytes>> = self.timed("mget", self.pool.mget(keys)).await?;
        let [Some(json), Some(bytes)] =
            <[Option<Bytes>; 2]>::try_from(values).unwrap_or([None, None])
        else {
            return Ok(None);
        };
        let meta = records::decode_meta(&json)?;
        Ok((meta.expires_at > Timestamp::now()).then_some(StoredFile { meta, bytes }))
    }

    async fn delete_room_files(&self, room: &RoomId) -> StoreResult<u64> {
        self.delete_files_of_room(room).await
    }
}

impl RedisStore {
    /// Removes partition `partition`'s sessions that expired at `now`, in batches.
    async fn sweep_partition(&self, partition: usize, now: Timestamp) -> StoreResult<Vec<UserId>> {
        let mut expired = Vec::new();
        loop {
            let args = vec![
                Value::from(now.as_millis()),
                Value::from(SWEEP_BATCH as i64),
                Value::from(self.keys.session_prefix(partition)),
            ];
            let batch: Vec<String> = self.run(&SWEEP, self.keys.indexes(partition), args).await?;
            let full = batch.len() == SWEEP_BATCH;
            expired.extend(batch.iter().filter_map(|id| UserId::parse(id)));
            if !full {
                return Ok(expired);
            }
        }
    }
}
