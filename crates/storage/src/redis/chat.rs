//! The chat's shared state in Redis: the search queue (in one slot, indexed by filter value;
//! one Lua script pairs atomically), room records (a slot per room) with each member's
//! pointer (the member's slot), and publishing on the bus channels.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{RoomId, Searcher, UserId};
use fred::prelude::{Expiration, KeysInterface, PubsubInterface};
use fred::types::Value;
use fred::types::scripts::Script;
use futures_util::future::try_join_all;

use crate::chat::{ChatStore, RoomRecord};
use crate::redis::RedisStore;
use crate::{SessionStore, StorageError, StoreResult};

/// How long a room record outlives its last write at most (rooms of crashed nodes go then).
const ROOM_TTL: Duration = Duration::from_secs(24 * 3600);

/// The Lua helpers of the queue scripts. The queue (keys in `keys.rs`, all in the queue's
/// slot): entries (hash: id → searcher JSON), memberships (hash: id → its bucket keys,
/// space-separated), expiries (hash: id → the session's expiry as of its search, ms), the
/// arrival counter, and one sorted set per bucket (id scored by arrival).
const QUEUE_LUA: &str = r#"
local entries, memberships, expiries, counter = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function leave(id)
  local buckets = redis.call('HGET', memberships, id)
  if buckets then
    for bucket in string.gmatch(buckets, '%S+') do redis.call('ZREM', bucket, id) end
  end
  redis.call('HDEL', memberships, id)
  redis.call('HDEL', expiries, id)
  return redis.call('HDEL', entries, id)
end
local function join(id, json, expires, buckets)
  local arrival = redis.call('INCR', counter)
  for bucket in string.gmatch(buckets, '%S+') do redis.call('ZADD', bucket, arrival, id) end
  redis.call('HSET', entries, id, json)
  redis.call('HSET', memberships, id, buckets)
  redis.call('HSET', expiries, id, expires)
end
"#;

/// Queues a searcher or pairs it with the oldest compatible one.
///
/// The newcomer's wanted buckets (see [`chat_domain::Searcher::wanted_buckets`]) hold exactly
/// the queued searchers whose filters and profile fit it, so pairing reads only their heads:
/// O(1) in the number of incompatible searchers. Walking a bucket skips only searchers the
/// newcomer avoids or blocks or who avoid or block it (such a pair is never made, even when nobody else fits) and
/// searchers whose session may have run out (the expiry recorded at their search is past):
/// those are never paired here, and are returned so the caller can check them (a session
/// active since then refreshes its entry; one that really expired leaves the queue).
///
/// KEYS: entries, memberships, expiries, counter, then ARGV[5] wanted buckets. ARGV: searcher
/// JSON, id, now ms, the searcher's session expiry ms, how many wanted buckets, the id it
/// avoids (or ''), its own buckets (space-separated keys), the ids it blocks
/// (space-separated; a queued searcher's own blocked list is in its JSON). Returns `{partner JSON or '',
/// ids to check…}`.
static SEARCH: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{QUEUE_LUA}{}",
        r#"
local me, avoided = ARGV[2], ARGV[6]
local blocked = {}
for id in string.gmatch(ARGV[8], '%S+') do blocked[id] = true end
local function blocks_me(other)
  if type(other.blocked) ~= 'table' then return false end
  for _, id in ipairs(other.blocked) do if id == me then return true end end
  return false
end
leave(me)
local now = tonumber(ARGV[3])
local best, best_arrival, best_json = nil, nil, nil
local suspects, noted = {}, {}
for i = 1, tonumber(ARGV[5]) do
  local bucket = KEYS[4 + i]
  local start, done = 0, false
  while not done do
    local page = redis.call('ZRANGE', bucket, start, start + 15, 'WITHSCORES')
    if #page == 0 then break end
    for j = 1, #page, 2 do
      local id, arrival = page[j], tonumber(page[j + 1])
      if best_arrival ~= nil and arrival >= best_arrival then done = true break end
      local expires = tonumber(redis.call('HGET', expiries, id))
      if expires ~= nil and expires <= now then
        if not noted[id] then noted[id] = true table.insert(suspects, id) end
      elseif id ~= avoided and not blocked[id] then
        local json = redis.call('HGET', entries, id)
        if json then
          local other = cjson.decode(json)
          local their = other.avoid
          if (their == nil or their == cjson.null or their ~= me) and not blocks_me(other) then
            best, best_arrival, best_json = id, arrival, json
            done = true
            break
          end
        end
      end
    end
    if #page < 32 then break end
    start = start + 16
  end
end
local answer = {''}
if best then
  leave(best)
  answer[1] = best_json
else
  join(me, ARGV[1], ARGV[4], ARGV[7])
end
for _, id in ipairs(suspects) do table.insert(answer, id) end
return answer
"#
    ))
});

/// Takes a user out of the queue. KEYS: entries, memberships, expiries, counter. ARGV: user
/// id. Returns 1 when they were in it.
static CANCEL: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(format!("{QUEUE_LUA}return leave(ARGV[1])")));

/// Records a later session expiry for a queued user (they were active since their search).
/// KEYS: entries, memberships, expiries, counter. ARGV: user id, expiry ms. Returns 1 when
/// they are still queued.
static REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{QUEUE_LUA}{}",
        r#"
if redis.call('HEXISTS', entries, ARGV[1]) == 0 then return 0 end
redis.call('HSET', expiries, ARGV[1], ARGV[2])
return 1
"#
    ))
});

/// Puts a searcher at the end of the queue without pairing it, unless it is queued already
/// (it searched again elsewhere). KEYS: entries, memberships, expiries, counter. ARGV:
/// searcher JSON, id, expiry ms, own buckets. Returns 1 when queued.
static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{QUEUE_LUA}{}",
        r#"
if redis.call('HEXISTS', entries, ARGV[2]) == 1 then return 0 end
join(ARGV[2], ARGV[1], ARGV[3], ARGV[4])
return 1
"#
    ))
});

/// Deletes a member's room pointer if it still names the room. KEYS: pointer. ARGV: room id.
static CLEAR_POINTER: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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
        let client = self.pool.next();
        let channel = self.keys.node_channel(node);
        let _: i64 = if self.topology == super::RedisTopology::Cluster {
            self.timed("spublish", client.spublish(channel, payload))
                .await
        } else {
            self.timed("publish", client.publish(channel, payload))
                .await
        }?;
        Ok(())
    }

    /// Opens `room` unless one of its members is in another open room; returns whether it
    /// opened (the failover write-back of rooms opened during an outage). The checks and the
    /// writes touch three slots, so they are not one atomic step: a member who joins another
    /// room between them ends up with two rooms, of which the older closes as any room does.
    pub(crate) async fn open_room_if_free(&self, room: &RoomRecord) -> StoreResult<bool> {
        for (member, _) in &room.members {
            if let Some(other) = self.room_of(member).await?
                && other.room_id != room.room_id
            {
                return Ok(false);
            }
        }
        self.open_room(room).await?;
        Ok(true)
    }

    /// Puts `searcher` back into the queue without pairing it, unless it is queued already or
    /// in an open room; returns whether it queued (the failover write-back of searchers queued
    /// in memory during an outage).
    pub(crate) async fn requeue(&self, searcher: &Searcher) -> StoreResult<bool> {
        if self.room_of(&searcher.user.id).await?.is_some() {
            return Ok(false);
        }
        let args = vec![
            Value::from(encode(searcher)?),
            Value::from(searcher.user.id.as_str()),
            Value::from(self.queue_expiry(searcher)),
            Value::from(self.bucket_keys(&searcher.buckets())),
        ];
        let queued: i64 = self.run(&REQUEUE, self.keys.queue().to_vec(), args).await?;
        Ok(queued == 1)
    }

    /// The session expiry of a searcher as of its search (ms).
    fn queue_expiry(&self, searcher: &Searcher) -> i64 {
        searcher
            .user
            .last_seen
            .plus(self.config.session_ttl)
            .as_millis()
    }

    /// The keys of `buckets`, space-separated.
    fn bucket_keys(&self, buckets: &[String]) -> String {
        let keys: Vec<String> = buckets
            .iter()
            .map(|bucket| self.keys.queue_bucket(bucket))
            .collect();
        keys.join(" ")
    }

    /// Checks the queued searchers a search skipped because their session may have run out:
    /// those active since their search get their later expiry recorded; the rest leave the
    /// queue. Returns whether any stays queued.
    async fn check_suspects(&self, suspects: &[String]) -> StoreResult<bool> {
        let mut any_live = false;
        for id in suspects.iter().filter_map(|id| UserId::parse(id)) {
            let session = SessionStore::get(self, &id).await?;
            match session {
                Some(session) => {
                    let expiry = session.last_seen.plus(self.config.session_ttl).as_millis();
                    let args = vec![Value::from(id.as_str()), Value::from(expiry)];
                    let _: i64 = self.run(&REFRESH, self.keys.queue().to_vec(), args).await?;
                    any_live = true;
                }
                None => {
                    self.cancel_search(&id).await?;
                }
            }
        }
        Ok(any_live)
    }

    async fn room_by_key(&self, key: String) -> StoreResult<Option<RoomRecord>> {
        let raw: Option<String> = self.timed("get", self.pool.get(key)).await?;
        raw.as_deref().map(decode).transpose()
    }

    fn room_ttl() -> Expiration {
        Expiration::PX(i64::try_from(ROOM_TTL.as_millis()).unwrap_or(i64::MAX))
    }
}

#[async_trait]
impl ChatStore for RedisStore {
    async fn search(&self, searcher: &Searcher) -> StoreResult<Option<Searcher>> {
        let wanted = searcher.wanted_buckets();
        let mut keys = self.keys.queue().to_vec();
        keys.extend(wanted.iter().map(|bucket| self.keys.queue_bucket(bucket)));
        let args = vec![
            Value::from(encode(searcher)?),
            Value::from(searcher.user.id.as_str()),
            Value::from(chat_domain::Timestamp::now().as_millis()),
            Value::from(self.queue_expiry(searcher)),
            Value::from(wanted.len() as i64),
            Value::from(searcher.avoid.as_ref().map_or("", UserId::as_str)),
            Value::from(self.bucket_keys(&searcher.buckets())),
            Value::from(
                searcher
                    .blocked
                    .iter()
                    .map(UserId::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ];
        // A suspect found live may be the partner after all: search once more then (the
        // newcomer's entry is replaced, so nothing is queued twice).
        for attempt in 0..2 {
            let answer: Vec<String> = self.run(&SEARCH, keys.clone(), args.clone()).await?;
            let (partner, suspects) = answer
                .split_first()
                .ok_or_else(|| StorageError::Corrupt("search script returned nothing".into()))?;
            let refreshed = !suspects.is_empty() && self.check_suspects(suspects).await?;
            if !partner.is_empty() {
                return decode(partner).map(Some);
            }
            if !refreshed || attempt == 1 {
                break;
            }
        }
        Ok(None)
    }

    async fn cancel_search(&self, user: &UserId) -> StoreResult<bool> {
        let removed: i64 = self
            .run(
                &CANCEL,
                self.keys.queue().to_vec(),
                vec![Value::from(user.as_str())],
            )
            .await?;
        Ok(removed > 0)
    }

    async fn open_room(&self, room: &RoomRecord) -> StoreResult<()> {
        // The record first, then the members' pointers (their own slots): a pointer is only
        // trusted when the record it names exists and lists the member.
        let json = encode(room)?;
        let record = self.pool.set(
            self.keys.room(&room.room_id),
            json,
            Some(Self::room_ttl()),
            None,
            false,
        );
        let _: () = self.timed("set", record).await?;
        try_join_all(room.members.iter().map(|(member, _)| {
            let pointer = self.pool.set::<(), _, _>(
                self.keys.user_room(member),
                room.room_id.as_str(),
                Some(Self::room_ttl()),
                None,
                false,
            );
            self.timed("set", pointer)
        }))
        .await?;
        Ok(())
    }

    async fn room(&self, id: &RoomId) -> StoreResult<Option<RoomRecord>> {
        self.room_by_key(self.keys.room(id)).await
    }

    async fn room_of(&self, user: &UserId) -> StoreResult<Option<RoomRecord>> {
        let room_id: Option<String> = self
            .timed("get", self.pool.get(self.keys.user_room(user)))
            .await?;
        let Some(room_id) = room_id.as_deref().and_then(RoomId::parse) else {
            return Ok(None);
        };
        let room = self.room(&room_id).await?;
        Ok(room.filter(|room| room.has_member(user)))
    }

    async fn close_room(&self, room: &RoomRecord) -> StoreResult<bool> {
        // Deleting the record decides who closed it; the pointers follow (a pointer left by a
        // crash names a missing record, which reads as no room, and expires).
        let deleted: i64 = self
            .timed("del", self.pool.del(self.keys.room(&room.room_id)))
            .await?;
        if deleted == 0 {
            return Ok(false);
        }
        try_join_all(room.members.iter().map(|(member, _)| {
            self.run::<i64>(
                &CLEAR_POINTER,
                vec![self.keys.user_room(member)],
                vec![Value::from(room.room_id.as_str())],
            )
        }))
        .await?;
        Ok(true)
    }
}

/// The name of one of the queue's and rooms' scripts, for the
/// [`RedisObserver`](super::RedisObserver).
pub(super) fn script_name(script: &Script) -> Option<&'static str> {
    super::observer::find(
        script,
        &[
            (&*SEARCH, "search"),
            (&*CANCEL, "cancel_search"),
            (&*REFRESH, "refresh_search"),
            (&*REQUEUE, "requeue"),
            (&*CLEAR_POINTER, "clear_room_pointer"),
        ],
    )
}
