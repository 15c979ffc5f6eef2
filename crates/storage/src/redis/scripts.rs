//! The Lua scripts that change several keys at once, so each change is atomic (and, for the
//! sweep, so each expired id goes to exactly one caller). Every key a script touches shares
//! one hash tag (see `keys.rs`): a script runs on one slot, as Redis Cluster requires. Keys a
//! script builds from a prefix (the sweep's sessions) carry the declared keys' tag.

use std::sync::LazyLock;

use fred::types::scripts::Script;

/// Writes a session and its index entries.
///
/// KEYS: session, expiries, online, searching, in chat, activity.
/// ARGV: id, JSON, condition (`0`: none; `2`: only if no session is stored; `3`: unless the
/// stored one was active later, i.e. its activity score is above ARGV[9]; `4`: like `3`, and
/// only if one is stored), expiry ms, key TTL ms, online, searching, in chat (`1`/`0`), last
/// seen ms. Returns 1 when written, 0 when the condition failed.
pub(super) static WRITE_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local condition = ARGV[3]
if condition == '2' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if condition == '3' or condition == '4' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    local seen = tonumber(redis.call('ZSCORE', KEYS[6], ARGV[1]))
    if seen ~= nil and seen > tonumber(ARGV[9]) then return 0 end
  elseif condition == '4' then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
if ARGV[6] == '1' then redis.call('ZADD', KEYS[3], 0, ARGV[1]) else redis.call('ZREM', KEYS[3], ARGV[1]) end
if ARGV[7] == '1' then redis.call('SADD', KEYS[4], ARGV[1]) else redis.call('SREM', KEYS[4], ARGV[1]) end
if ARGV[8] == '1' then redis.call('SADD', KEYS[5], ARGV[1]) else redis.call('SREM', KEYS[5], ARGV[1]) end
redis.call('ZADD', KEYS[6], ARGV[9], ARGV[1])
return 1
"#,
    )
});

/// Changes fields of a live session and its index entries in one step (no read round trip,
/// no optimistic retry): the stored JSON is decoded, the patch's fields replace the stored
/// ones, and the result is stored and returned. A session is live while its expiry (the score
/// in the expiries set, `lastSeen` + TTL) is after ARGV[3].
///
/// KEYS: session, expiries, online, searching, in chat, activity.
/// ARGV: id, patch (a JSON object of the session fields to set, in the stored names), now ms,
/// touch ms (`''`: no touch; else the new `lastSeen`, which slides the expiry), session TTL ms,
/// key TTL grace ms. Returns the new JSON, or nil when no live session is stored. A patch
/// with `__onlyIfSocket` applies only while the session's `socketId` is that one, one with
/// `__unlessInChat` only while `inChat` is not true; otherwise the stored JSON is returned
/// unchanged.
pub(super) static PATCH_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local stored = redis.call('GET', KEYS[1])
if not stored then return false end
local now = tonumber(ARGV[3])
local expires = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]))
if expires == nil or expires <= now then return false end
local user = cjson.decode(stored)
local patch = cjson.decode(ARGV[2])
local only = patch['__onlyIfSocket']
if only ~= nil then
  patch['__onlyIfSocket'] = nil
  if user.socketId ~= only then return stored end
end
if patch['__unlessInChat'] ~= nil then
  patch['__unlessInChat'] = nil
  if user.inChat == true then return stored end
end
for field, value in pairs(patch) do user[field] = value end
if ARGV[4] ~= '' then
  expires = tonumber(ARGV[4]) + tonumber(ARGV[5])
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
end
local json = cjson.encode(user)
local key_ttl = math.max(expires - now, 0) + tonumber(ARGV[6])
redis.call('SET', KEYS[1], json, 'PX', string.format('%d', key_ttl))
redis.call('ZADD', KEYS[2], string.format('%d', expires), ARGV[1])
if user.isOnline == true then redis.call('ZADD', KEYS[3], 0, ARGV[1]) else redis.call('ZREM', KEYS[3], ARGV[1]) end
if user.isSearching == true then redis.call('SADD', KEYS[4], ARGV[1]) else redis.call('SREM', KEYS[4], ARGV[1]) end
if user.inChat == true then redis.call('SADD', KEYS[5], ARGV[1]) else redis.call('SREM', KEYS[5], ARGV[1]) end
return json
"#,
    )
});

/// Deletes a session and its index entries; returns the JSON it held (or nil).
///
/// KEYS: session, expiries, online, searching, in chat, activity. ARGV: id, and optionally a
/// last-seen bound in ms: a session active after it (its activity score is above it) is left
/// alone and nil returned.
pub(super) static DELETE_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if ARGV[2] then
  local seen = tonumber(redis.call('ZSCORE', KEYS[6], ARGV[1]))
  if seen ~= nil and seen > tonumber(ARGV[2]) then return false end
end
local old = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return old
"#,
    )
});

/// Removes up to ARGV[2] sessions whose expiry is at or before ARGV[1] (ms) and returns their
/// ids. Atomic, so concurrent sweeps on several nodes never return the same id twice.
///
/// KEYS: expiries, online, searching, in chat, activity. ARGV: now ms, batch size, session key
/// prefix.
pub(super) static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('SREM', KEYS[3], id)
  redis.call('SREM', KEYS[4], id)
  redis.call('ZREM', KEYS[5], id)
  redis.call('DEL', ARGV[3] .. id)
end
return ids
"#,
    )
});

/// The counters: live sessions, online, active, searching, in chat.
///
/// KEYS: expiries, online, searching, in chat, activity. ARGV: now ms, active since ms.
pub(super) static STATS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
return {
  redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf'),
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCOUNT', KEYS[5], ARGV[2], '+inf'),
  redis.call('SCARD', KEYS[3]),
  redis.call('SCARD', KEYS[4])
}
"#,
    )
});

/// Counts a hit in a fixed window that opens at the first hit; returns {hits, ms left}.
///
/// KEYS: counter. ARGV: window ms.
pub(super) static RATE_HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local hits = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return { hits, left }
"#,
    )
});

/// Stores a file's bytes and metadata with a TTL; returns 1, or 0 when ARGV[4] is `1` and the
/// file exists already.
///
/// KEYS: bytes, meta. ARGV: bytes, meta JSON, TTL ms, only if absent.
pub(super) static PUT_FILE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"#,
    )
});

/// Sets the data epoch marker if it is missing and returns its value. A marker that changed (or
/// vanished) since a node last read it means Redis lost its data in between.
///
/// KEYS: epoch. ARGV: a fresh random value.
pub(super) static EPOCH: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"#,
    )
});

/// The name of one of these scripts, for the [`RedisObserver`](super::RedisObserver).
pub(super) fn name_of(script: &Script) -> Option<&'static str> {
    super::observer::find(
        script,
        &[
            (&*WRITE_SESSION, "write_session"),
            (&*PATCH_SESSION, "patch_session"),
            (&*DELETE_SESSION, "delete_session"),
            (&*SWEEP, "sweep"),
            (&*STATS, "stats"),
            (&*RATE_HIT, "rate_hit"),
            (&*PUT_FILE, "put_file"),
            (&*EPOCH, "epoch"),
        ],
    )
}
