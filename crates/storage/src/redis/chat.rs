//! The chat's shared state in Redis: the search queue (one Lua script pairs atomically), room
//! records, the user → node directory and the bus channels.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{RoomId, Searcher, UserId};
use fred::prelude::{KeysInterface, PubsubInterface};
use fred::types::Value;
use fred::types::scripts::Script;

use crate::chat::{ChatStore, RoomRecord};
use crate::redis::RedisStore;
use crate::{StorageError, StoreResult};

/// How long a room record outlives its last write at most (rooms of crashed nodes go then).
const ROOM_TTL: Duration = Duration::from_secs(24 * 3600);

/// Queues a searcher or pairs it with the oldest compatible one.
///
/// The queue is a list of JSON searchers, oldest first, plus a hash user id → that user's list
/// element, so replacing or cancelling a user's entry needs no scan. Pairing reads the list a
/// page at a time and stops at the first compatible searcher that neither avoids the newcomer
/// nor is avoided by it (such a pair is never made, even when nobody else fits): without
/// filters and avoidance that is the head. Entries whose session's TTL ran out (its score in
/// the expiries set is not after now: the sweep has not ended it yet) are never paired and
/// leave the queue as the walk meets them; a session swept or deleted leaves the queue with
/// its end.
///
/// KEYS: queue, entries, session expiries. ARGV: searcher JSON, searcher id, now ms. Returns
/// the partner's JSON, or nil when queued.
static SEARCH: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local previous = redis.call('HGET', KEYS[2], ARGV[2])
if previous then
  redis.call('LREM', KEYS[1], 0, previous)
  redis.call('HDEL', KEYS[2], ARGV[2])
end
local me = cjson.decode(ARGV[1])
local function value(v) if v == nil or v == cjson.null then return nil end return v end
local function accepts(filters, user)
  for _, field in ipairs({'gender', 'language', 'location'}) do
    local wanted = value(filters[field])
    if wanted ~= nil then
      local actual = value(user[field])
      if actual == nil or string.lower(actual) ~= string.lower(wanted) then return false end
    end
  end
  return true
end
local function avoids(a, b)
  return value(a.avoid) == b.user.id or value(b.avoid) == a.user.id
end
local function take(raw, id)
  redis.call('LREM', KEYS[1], 1, raw)
  redis.call('HDEL', KEYS[2], id)
  return raw
end
local now = tonumber(ARGV[3])
local dead = {}
local function drop_dead()
  for _, entry in ipairs(dead) do take(entry[1], entry[2]) end
end
local start, page_size = 0, 64
while true do
  local page = redis.call('LRANGE', KEYS[1], start, start + page_size - 1)
  for _, raw in ipairs(page) do
    local other = cjson.decode(raw)
    if other.user.id ~= me.user.id then
      local expires = tonumber(redis.call('ZSCORE', KEYS[3], other.user.id))
      if expires ~= nil and expires <= now then
        table.insert(dead, {raw, other.user.id})
      elseif accepts(me.filters, other.user) and accepts(other.filters, me.user) and not avoids(me, other) then
        drop_dead()
        return take(raw, other.user.id)
      end
    end
  end
  if #page < page_size then break end
  start = start + page_size
end
drop_dead()
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return false
"#,
    )
});

/// Takes a user out of the queue. KEYS: queue, entries. ARGV: user id. Returns how many
/// entries went.
static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('LREM', KEYS[1], 0, entry)
"#,
    )
});

/// Opens a room. KEYS: room, first member's room pointer, second's. ARGV: JSON, room id, TTL ms.
static OPEN_ROOM: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 1
"#,
    )
});

/// Opens a room written back after an outage, unless a member is in another open room by
/// now. KEYS: room, first member's room pointer, second's. ARGV: JSON, room id, TTL ms, room
/// key prefix. Returns 1 when opened, 0 when a member is taken.
static OPEN_ROOM_IF_FREE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
for i = 2, 3 do
  local current = redis.call('GET', KEYS[i])
  if current and current ~= ARGV[2] and redis.call('EXISTS', ARGV[4] .. current) == 1 then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 1
"#,
    )
});

/// Puts a searcher back at the end of the queue without pairing it, unless it is queued
/// already (it searched again elsewhere) or in an open room. KEYS: queue, entries, the
/// searcher's room pointer. ARGV: searcher JSON, searcher id, room key prefix. Returns 1 when
/// queued.
static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
local room = redis.call('GET', KEYS[3])
if room and redis.call('EXISTS', ARGV[3] .. room) == 1 then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
"#,
    )
});

/// Closes a room once. KEYS: room, members' room pointers. ARGV: room id. Returns 1 for the
/// caller that closed it, 0 for everyone else.
static CLOSE_ROOM: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
for i = 2, 3 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 1
"#,
    )
});

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|error| StorageError::Corrupt(error.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|error| StorageError::Corrupt(error.to_string()))
}

impl RedisStore {
    /// Publishes `payload` on `node`'s channel.
    pub(crate) async fn publish_to(&self, node: &str, payload: String) -> StoreResult<()> {
        let _: i64 = self
            .pool
            .next()
            .publish(self.keys.node_channel(node), payload)
            .await
            .map_err(crate::error::redis)?;
        Ok(())
    }

    /// Opens `room` unless one of its members is in another open room; returns whether it
    /// opened (the failover write-back of rooms opened during an outage).
    pub(crate) async fn open_room_if_free(&self, room: &RoomRecord) -> StoreResult<bool> {
        let ttl = i64::try_from(ROOM_TTL.as_millis()).unwrap_or(i64::MAX);
        let args = vec![
            Value::from(encode(room)?),
            Value::from(room.room_id.as_str()),
            Value::from(ttl),
            Value::from(self.room_key_prefix(&room.room_id)),
        ];
        let opened: i64 = self
            .run(&OPEN_ROOM_IF_FREE, self.room_keys(room), args)
            .await?;
        Ok(opened == 1)
    }

    /// Puts `searcher` back into the queue without pairing it, unless it is queued already or
    /// in an open room; returns whether it queued (the failover write-back of searchers queued
    /// in memory during an outage).
    pub(crate) async fn requeue(&self, searcher: &Searcher) -> StoreResult<bool> {
        let keys = vec![
            self.keys.queue(),
            self.keys.queue_entries(),
            self.keys.user_room(&searcher.user.id),
        ];
        let args = vec![
            Value::from(encode(searcher)?),
            Value::from(searcher.user.id.as_str()),
            Value::from(self.room_key_prefix(&RoomId::generate())),
        ];
        let queued: i64 = self.run(&REQUEUE, keys, args).await?;
        Ok(queued == 1)
    }

    /// A room's key and its members' room pointers, in the order the room scripts take them.
    fn room_keys(&self, room: &RoomRecord) -> Vec<String> {
        vec![
            self.keys.room(&room.room_id),
            self.keys.user_room(&room.members[0].0),
            self.keys.user_room(&room.members[1].0),
        ]
    }

    /// What precedes a room id in its key: scripts build the key of a room they only know by
    /// the id a member's pointer holds.
    fn room_key_prefix(&self, any: &RoomId) -> String {
        let key = self.keys.room(any);
        key.strip_suffix(any.as_str()).unwrap_or(&key).to_owned()
    }

    async fn room_by_key(&self, key: String) -> StoreResult<Option<RoomRecord>> {
        let raw: Option<String> = self.pool.get(key).await.map_err(crate::error::redis)?;
        raw.as_deref().map(decode).transpose()
    }
}

#[async_trait]
impl ChatStore for RedisStore {
    async fn search(&self, searcher: &Searcher) -> StoreResult<Option<Searcher>> {
        let partner: Option<String> = self
            .run(
                &SEARCH,
                vec![
                    self.keys.queue(),
                    self.keys.queue_entries(),
                    self.keys.expiries(),
                ],
                vec![
                    Value::from(encode(searcher)?),
                    Value::from(searcher.user.id.as_str()),
                    Value::from(chat_domain::Timestamp::now().as_millis()),
                ],
            )
            .await?;
        partner.as_deref().map(decode).transpose()
    }

    async fn cancel_search(&self, user: &UserId) -> StoreResult<bool> {
        let removed: i64 = self
            .run(
                &CANCEL,
                vec![self.keys.queue(), self.keys.queue_entries()],
                vec![Value::from(user.as_str())],
            )
            .await?;
        Ok(removed > 0)
    }

    async fn open_room(&self, room: &RoomRecord) -> StoreResult<()> {
        let keys = self.room_keys(room);
        let ttl = i64::try_from(ROOM_TTL.as_millis()).unwrap_or(i64::MAX);
        let args = vec![
            Value::from(encode(room)?),
            Value::from(room.room_id.as_str()),
            Value::from(ttl),
        ];
        let _: i64 = self.run(&OPEN_ROOM, keys, args).await?;
        Ok(())
    }

    async fn room(&self, id: &RoomId) -> StoreResult<Option<RoomRecord>> {
        self.room_by_key(self.keys.room(id)).await
    }

    async fn room_of(&self, user: &UserId) -> StoreResult<Option<RoomRecord>> {
        let room_id: Option<String> = self
            .pool
            .get(self.keys.user_room(user))
            .await
            .map_err(crate::error::redis)?;
        let Some(room_id) = room_id.as_deref().and_then(RoomId::parse) else {
            return Ok(None);
        };
        let room = self.room(&room_id).await?;
        Ok(room.filter(|room| room.has_member(user)))
    }

    async fn close_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        let keys = self.room_keys(room);
        let closed: i64 = self
            .run(&CLOSE_ROOM, keys, vec![Value::from(room.room_id.as_str())])
            .await?;
        Ok(closed == 1)
    }
}
