//! Files in Redis: a file's bytes and metadata under its own tag (`{<prefix>f:<file>}`), and
//! its room's index under the room's tag (`{<prefix>r:<room>}`): the ids by expiry, their
//! sizes and the sum of those sizes, so the room's live bytes are bounded across every node.
//!
//! A script may only touch keys of one tag, so an upload takes three steps:
//!
//! 1. **reserve** (room tag, one script): drop the entries of expired files from the index,
//!    then take the file's size from the room's budget and index it, or refuse it (nothing
//!    written) when the room's live bytes would pass [`FileLimits::max_room_bytes`];
//! 2. **write** the file's keys (file tag); on an error the reservation is given back;
//! 3. **confirm** the index still lists it: if the room's files were deleted in between (a
//!    `chat:clear`, the room closing), that delete could not see the file's keys yet, so the
//!    upload deletes them itself — as if it came just before the delete.
//!
//! Deleting a room's files empties its index in one script first and then deletes exactly the
//! files it listed: an upload reserved after that keeps its file and a fresh budget. The
//! sum is taken down when files expire (at the room's next reservation) or go with their
//! room, so the budget frees as files go. A crash between steps leaves at worst an index
//! entry or a file that expires on its own.
//!
//! [`FileLimits::max_room_bytes`]: crate::FileLimits::max_room_bytes

use std::collections::BTreeSet;
use std::sync::LazyLock;

use chat_domain::{FileId, RoomId, Timestamp};
use fred::prelude::{HashesInterface, KeysInterface};
use fred::types::Value;
use fred::types::scripts::Script;
use futures_util::future::try_join_all;

use super::scripts::PUT_FILE;
use super::{RedisStore, records};
use crate::{FileRefusal, StorageError, StoreResult, StoredFile};

/// The room file scripts' common part: `purge` drops the index entries of files expired at
/// `now` (taking their sizes off the sum) and returns the sum; `settle` stores the sum and
/// lets the index live as long as its longest-lived file (or deletes it when empty).
///
/// KEYS (of every room file script): expiries, sizes, sum.
const ROOM_INDEX: &str = r#"
local function purge(now)
  local total = tonumber(redis.call('GET', KEYS[3]) or '0')
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, id in ipairs(gone) do
    total = total - tonumber(redis.call('HGET', KEYS[2], id) or '0')
    redis.call('HDEL', KEYS[2], id)
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
  if total < 0 then total = 0 end
  return total
end
local function settle(total, now)
  if redis.call('ZCARD', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
    return
  end
  redis.call('SET', KEYS[3], string.format('%d', total))
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local ttl = math.max(math.floor(tonumber(last[2]) - now), 1)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl)) end
end
"#;

/// Takes a file's size from its room's byte budget and indexes it under the room, unless the
/// room's live files would then pass the bound: the check and the take are one step, so
/// uploads through several nodes at once never pass it together. A file indexed already is
/// left as it is.
///
/// KEYS: expiries, sizes, sum. ARGV: file id, size, expiry ms, now ms, bound (`''`: none).
/// Returns {1, the room's bytes} when indexed, {0, the room's bytes} when refused.
pub(super) static RESERVE_ROOM_FILE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{ROOM_INDEX}{}",
        r#"
local now = tonumber(ARGV[4])
local total = purge(now)
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  local size = tonumber(ARGV[2])
  if ARGV[5] ~= '' and total + size > tonumber(ARGV[5]) then
    settle(total, now)
    return { 0, total }
  end
  total = total + size
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
settle(total, now)
return { 1, total }
"#
    ))
});

/// Gives a file's size back to its room's budget and drops it from the index (a file whose
/// write failed after [`RESERVE_ROOM_FILE`]). Returns 1 if it was indexed.
///
/// KEYS: expiries, sizes, sum. ARGV: file id, now ms.
pub(super) static RELEASE_ROOM_FILE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{ROOM_INDEX}{}",
        r#"
local now = tonumber(ARGV[2])
local total = purge(now)
local size = redis.call('HGET', KEYS[2], ARGV[1])
if size then
  total = total - tonumber(size)
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1])
end
settle(total, now)
if size then return 1 end
return 0
"#
    ))
});

/// Empties a room's file index at once and returns the ids it held, so that the caller
/// deletes exactly those files: a file indexed afterwards has a fresh budget and survives.
///
/// KEYS: expiries, sizes, sum, the older versions' set of ids. ARGV: now ms. Returns {the
/// ids of files live at now (with those of the older set), the ids of expired ones}.
pub(super) static CLAIM_ROOM_FILES: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('TYPE', KEYS[4]).ok == 'set' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do table.insert(live, id) end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return { live, expired }
"#,
    )
});

impl RedisStore {
    /// Stores a file (if `only_if_absent`, only when it is not there yet) and indexes it
    /// under its room, refusing it when the room's live bytes would pass `room_limit`
    /// (`None`: no bound). Returns whether the file's keys were written.
    pub(super) async fn store_file(
        &self,
        file: &StoredFile,
        only_if_absent: bool,
        room_limit: Option<u64>,
    ) -> StoreResult<bool> {
        let meta = &file.meta;
        let now = Timestamp::now();
        let [expiries, sizes, sum, _] = self.keys.room_files(&meta.room_id);
        let index = vec![expiries, sizes.clone(), sum];
        let id = Value::from(meta.file_id.as_str());
        let args = vec![
            id.clone(),
            Value::from(file.bytes.len() as i64),
            Value::from(meta.expires_at.as_millis()),
            Value::from(now.as_millis()),
            Value::from(room_limit.map_or_else(String::new, |limit| limit.to_string())),
        ];
        let reserved: Vec<i64> = self.run(&RESERVE_ROOM_FILE, index.clone(), args).await?;
        if reserved.first() != Some(&1) {
            let limit = room_limit.unwrap_or_default();
            return Err(StorageError::FileRefused(FileRefusal::RoomFull { limit }));
        }
        let file_keys = vec![
            self.keys.file_bytes(&meta.file_id),
            self.keys.file_meta(&meta.file_id),
        ];
        // Measured now, after the reservation: the keys' TTL starts when they are written.
        let ttl = (meta.expires_at.as_millis() - Timestamp::now().as_millis()).max(1);
        let args = vec![
            Value::Bytes(file.bytes.clone()),
            Value::from(records::encode_meta(meta)?),
            Value::from(ttl),
            Value::from(if only_if_absent { "1" } else { "0" }),
        ];
        let written: i64 = match self.run(&PUT_FILE, file_keys.clone(), args).await {
            Ok(written) => written,
            Err(error) => {
                // Best effort: a reservation that stays expires with the file it was for.
                let args = vec![id, Value::from(Timestamp::now().as_millis())];
                let _: StoreResult<i64> = self.run(&RELEASE_ROOM_FILE, index, args).await;
                return Err(error);
            }
        };
        let listed: bool = self
            .pool
            .hexists(&sizes, meta.file_id.as_str())
            .await
            .map_err(crate::error::redis)?;
        if !listed {
            let _: i64 = self
                .pool
                .del(file_keys)
                .await
                .map_err(crate::error::redis)?;
        }
        Ok(written == 1)
    }

    /// Deletes every file of `room`; returns how many had not expired yet.
    pub(super) async fn delete_files_of_room(&self, room: &RoomId) -> StoreResult<u64> {
        let index = self.keys.room_files(room).to_vec();
        let args = vec![Value::from(Timestamp::now().as_millis())];
        let claimed: Vec<Vec<String>> = self.run(&CLAIM_ROOM_FILES, index, args).await?;
        let ids = |at: usize| -> BTreeSet<FileId> {
            claimed
                .get(at)
                .into_iter()
                .flatten()
                .filter_map(|id| FileId::parse(id))
                .collect()
        };
        let (live, expired) = (ids(0), ids(1));
        // An expired file's keys may outlive its expiry by a few milliseconds (their TTL
        // starts when they are written): deleted, not counted.
        let deleted = try_join_all(live.iter().chain(expired.difference(&live)).map(|id| {
            let keys = vec![self.keys.file_meta(id), self.keys.file_bytes(id)];
            let counts = live.contains(id);
            async move {
                let existed: i64 = if counts {
                    self.pool
                        .exists(keys[0].clone())
                        .await
                        .map_err(crate::error::redis)?
                } else {
                    0
                };
                let _: i64 = self.pool.del(keys).await.map_err(crate::error::redis)?;
                Ok::<_, StorageError>(u64::from(existed > 0))
            }
        }))
        .await?;
        Ok(deleted.into_iter().sum())
    }
}
