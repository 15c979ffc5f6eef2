// A few REST checks through Node's fetch: guest create/me/patch/refresh/delete, auth
// errors, stats, the paginated online list, ICE servers (with TURN REST credentials),
// health, readiness, metrics and the per-IP session rate limit.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import {
  PUBLIC_USER_KEYS,
  RFC3339_UTC,
  STATS_KEYS,
  USER_ID,
  UUID,
  api,
  assertPublicUser,
  connect,
  createGuest,
  decodeJwt,
  serverFor,
  signJwt,
  startServer,
} from './lib/server.js';

const GUEST_KEYS = [
  'id', 'sessionId', 'username', 'isOnline', 'isSearching', 'inChat', 'connectedUser', 'socketId',
  'location', 'gender', 'language', 'deviceId', 'lastSeen', 'createdAt', 'connectedAt',
];

describe('REST', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.stop());

  test('POST /api/guest with no body, an empty body or a profile', async () => {
    const bare = await api(server.url, 'POST', '/api/guest');
    assert.equal(bare.status, 201, JSON.stringify(bare.body));
    const { token, expiresAt, user } = bare.body;
    assert.equal(typeof token, 'string');
    assert.match(expiresAt, RFC3339_UTC);
    assert.deepEqual(Object.keys(user).sort(), [...GUEST_KEYS].sort());
    assert.match(user.id, USER_ID);
    assert.match(user.sessionId, UUID);
    assert.match(user.username, /^[A-Z][a-z]+[A-Z][A-Za-z]+\d{4}$/, `generated username ${user.username}`);
    assert.equal(user.isOnline, false);
    assert.equal(user.isSearching, false);
    assert.equal(user.inChat, false);
    assert.equal(user.connectedUser, null);
    assert.equal(user.socketId, null);
    assert.equal(user.connectedAt, null);
    assert.match(user.createdAt, RFC3339_UTC);
    assert.match(user.lastSeen, RFC3339_UTC);
    const claims = decodeJwt(token);
    assert.equal(claims.sub, user.id);
    assert.equal(claims.sid, user.sessionId);
    assert.ok(Number.isInteger(claims.iat) && Number.isInteger(claims.exp));
    assert.equal(claims.exp - claims.iat, 7200, 'exp = iat + SESSION__TTL_SECS (default 7200)');
    assert.equal(JSON.parse(Buffer.from(token.split('.')[0], 'base64url')).alg, 'HS256');
    assert.ok(Math.abs(claims.exp * 1000 - Date.parse(expiresAt)) < 2000, 'expiresAt matches exp');

    const empty = await api(server.url, 'POST', '/api/guest', { json: {} });
    assert.equal(empty.status, 201);
    const full = await api(server.url, 'POST', '/api/guest', {
      json: { username: 'Chosen_One-7', gender: 'female', language: 'en', location: 'Paris', deviceId: 'dev-42' },
    });
    assert.equal(full.status, 201);
    assert.equal(full.body.user.username, 'Chosen_One-7');
    assert.equal(full.body.user.gender, 'female');
    assert.equal(full.body.user.language, 'en');
    assert.equal(full.body.user.location, 'Paris');
    assert.equal(full.body.user.deviceId, 'dev-42');
    for (const username of ['ab', 'x'.repeat(25), 'has space', 'semi;colon', 'dot.ted']) {
      const bad = await api(server.url, 'POST', '/api/guest', { json: { username } });
      assert.equal(bad.status, 400, `username ${JSON.stringify(username)}`);
      assert.equal(bad.body.error.code, 'invalid_input');
      assert.equal(typeof bad.body.error.message, 'string');
    }
  });

  test('GET/PATCH /api/guest/me, refresh, delete', async () => {
    const guest = await createGuest(server.url, { username: 'Patchy' });
    const me = await api(server.url, 'GET', '/api/guest/me', { token: guest.token });
    assert.equal(me.status, 200);
    assert.deepEqual(me.body.user.id, guest.user.id);
    assert.equal(me.body.user.sessionId, guest.user.sessionId);
    const patched = await api(server.url, 'PATCH', '/api/guest/me', { token: guest.token, json: { username: 'Renamed_1', location: 'Rome', language: 'it', gender: 'male' } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.user.username, 'Renamed_1');
    assert.equal(patched.body.user.location, 'Rome');
    assert.equal(patched.body.user.language, 'it');
    assert.equal(patched.body.user.gender, 'male');
    const badPatch = await api(server.url, 'PATCH', '/api/guest/me', { token: guest.token, json: { username: 'no spaces allowed' } });
    assert.equal(badPatch.status, 400);
    assert.equal((await api(server.url, 'GET', '/api/guest/me', { token: guest.token })).body.user.username, 'Renamed_1');

    const refreshed = await api(server.url, 'POST', '/api/guest/refresh', { token: guest.token });
    assert.equal(refreshed.status, 200);
    assert.deepEqual(Object.keys(refreshed.body).sort(), ['expiresAt', 'token']);
    assert.match(refreshed.body.expiresAt, RFC3339_UTC);
    assert.equal(decodeJwt(refreshed.body.token).sid, guest.user.sessionId, 'same session');
    const viaNew = await api(server.url, 'GET', '/api/guest/me', { token: refreshed.body.token });
    assert.equal(viaNew.status, 200);
    assert.equal(viaNew.body.user.id, guest.user.id);
    const socket = await connect(server.url, refreshed.body.token, ['websocket']);
    assert.equal(socket.established.userId, guest.user.id);
    socket.socket.close();

    const deleted = await api(server.url, 'DELETE', '/api/guest/me', { token: guest.token });
    assert.equal(deleted.status, 204);
    const gone = await api(server.url, 'GET', '/api/guest/me', { token: refreshed.body.token });
    assert.equal(gone.status, 404);
    assert.deepEqual(gone.body, { error: { code: 'session_not_found', message: 'Guest session not found' } });
  });

  test('auth errors: auth_required, invalid_token, token_expired', async () => {
    const guest = await createGuest(server.url);
    const none = await api(server.url, 'GET', '/api/guest/me');
    assert.equal(none.status, 401);
    assert.deepEqual(none.body, { error: { code: 'auth_required', message: 'Authentication required' } });
    const garbage = await api(server.url, 'GET', '/api/guest/me', { token: 'garbage' });
    assert.equal(garbage.status, 401);
    assert.deepEqual(garbage.body, { error: { code: 'invalid_token', message: 'Invalid token' } });
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: guest.user.id, sid: guest.user.sessionId, iat: now - 100, exp: now - 10 };
    const expired = await api(server.url, 'GET', '/api/guest/me', { token: signJwt(claims) });
    assert.equal(expired.status, 401);
    assert.deepEqual(expired.body, { error: { code: 'token_expired', message: 'Token has expired' } });
    const algNone = await api(server.url, 'GET', '/api/guest/me', { token: signJwt({ ...claims, exp: now + 100 }, { alg: 'none' }) });
    assert.equal(algNone.status, 401);
    assert.equal(algNone.body.error.code, 'invalid_token');
  });

  test('GET /api/stats', async () => {
    const stats = await api(server.url, 'GET', '/api/stats');
    assert.equal(stats.status, 200);
    assert.deepEqual(Object.keys(stats.body).sort(), ['stats', 'timestamp']);
    assert.deepEqual(Object.keys(stats.body.stats).sort(), [...STATS_KEYS].sort());
    assert.match(stats.body.timestamp, RFC3339_UTC);
    assert.ok(stats.body.stats.totalUsers >= 1);
  });

  test('GET /api/webrtc/ice-servers with the default STUN server', async () => {
    const guest = await createGuest(server.url);
    const noAuth = await api(server.url, 'GET', '/api/webrtc/ice-servers');
    assert.equal(noAuth.status, 401);
    const ice = await api(server.url, 'GET', '/api/webrtc/ice-servers', { token: guest.token });
    assert.equal(ice.status, 200);
    assert.ok(Array.isArray(ice.body.iceServers) && ice.body.iceServers.length >= 1);
    assert.ok(Number.isInteger(ice.body.ttl) && ice.body.ttl > 0);
    const urls = ice.body.iceServers.flatMap((entry) => [entry.urls].flat());
    assert.ok(urls.some((url) => url.startsWith('stun:')), `a STUN server: ${JSON.stringify(urls)}`);
  });

  test('health, readiness and metrics', async () => {
    assert.equal((await api(server.url, 'GET', '/healthz')).status, 200);
    const ready = await api(server.url, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.storage, 'memory');
    assert.ok(['up', 'down'].includes(ready.body.redis));
    const metrics = await api(server.url, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type'), /^text\/plain/);
    assert.match(metrics.body, /^# (HELP|TYPE) /m);
    const missing = await api(server.url, 'GET', '/api/nope');
    assert.equal(missing.status, 404);
    assert.equal(typeof missing.body.error.code, 'string');
  });
});

describe('REST with their own servers', () => {
  test('GET /api/users/online pages with nextCursor', async (t) => {
    const server = await serverFor(t);
    const online = [];
    for (let i = 0; i < 5; i += 1) {
      const guest = await createGuest(server.url, { deviceId: `device-${i}` });
      await connect(server.url, guest.token, ['websocket']);
      online.push(guest.user.id);
    }
    await createGuest(server.url); // a session without a socket is not online
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const query = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : '?limit=2';
      const page = await api(server.url, 'GET', `/api/users/online${query}`);
      assert.equal(page.status, 200);
      assert.deepEqual(Object.keys(page.body).sort(), ['nextCursor', 'users']);
      assert.ok(page.body.users.length <= 2);
      for (const user of page.body.users) assertPublicUser(assert, user, 'online user');
      seen.push(...page.body.users.map((user) => user.id));
      cursor = page.body.nextCursor;
      pages += 1;
      assert.ok(pages <= 5, 'pagination ends');
    } while (cursor);
    assert.equal(pages, 3, '5 users in pages of 2');
    assert.deepEqual([...seen].sort(), [...online].sort(), 'every online user exactly once');
    const whole = await api(server.url, 'GET', '/api/users/online');
    assert.equal(whole.body.users.length, 5, 'default limit 50');
    assert.equal(whole.body.nextCursor, null);
    assert.deepEqual(Object.keys(whole.body.users[0]).sort(), [...PUBLIC_USER_KEYS].sort());
    assert.equal((await api(server.url, 'GET', '/api/users/online?limit=1000')).status, 200, 'limit above 100 is capped');
    assert.equal((await api(server.url, 'GET', '/api/users/online?limit=0')).status, 400);
  });

  test('the Engine.IO handshake advertises the configured ping and payload limits', async (t) => {
    const server = await serverFor(t, { CHAT__PRESENCE__PING_INTERVAL_MS: '1234', CHAT__PRESENCE__PING_TIMEOUT_MS: '4321', CHAT__LIMITS__MAX_PAYLOAD_BYTES: '65536' });
    const response = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.equal(text[0], '0', `an OPEN packet: ${text}`);
    const open = JSON.parse(text.slice(1));
    assert.equal(typeof open.sid, 'string');
    assert.deepEqual(open.upgrades, ['websocket']);
    assert.equal(open.pingInterval, 1234);
    assert.equal(open.pingTimeout, 4321);
    assert.equal(open.maxPayload, 65536);
    const defaultServer = await serverFor(t);
    const defaults = JSON.parse((await (await fetch(`${defaultServer.url}/socket.io/?EIO=4&transport=polling`)).text()).slice(1));
    assert.equal(defaults.maxPayload, 1048576, 'maxPayload defaults to 1 MiB');
    // Close both Engine.IO sessions (a CLOSE packet), as a client would.
    for (const [url, sid] of [[server.url, open.sid], [defaultServer.url, defaults.sid]]) {
      const closed = await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '1' });
      assert.equal(closed.status, 200);
      await closed.text();
    }
  });

  test('TURN credentials follow the TURN REST form', async (t) => {
    const server = await serverFor(t, { CHAT__WEBRTC__TURN_URLS: 'turn:127.0.0.1:3478', CHAT__WEBRTC__TURN_SECRET: 's3cret' });
    const guest = await createGuest(server.url);
    const ice = await api(server.url, 'GET', '/api/webrtc/ice-servers', { token: guest.token });
    assert.equal(ice.status, 200, JSON.stringify(ice.body));
    const turn = ice.body.iceServers.find((entry) => [entry.urls].flat().some((url) => url.startsWith('turn:')));
    assert.ok(turn, `a TURN entry: ${JSON.stringify(ice.body)}`);
    assert.deepEqual([turn.urls].flat(), ['turn:127.0.0.1:3478']);
    const [expiry, userId] = turn.username.split(':');
    assert.equal(userId, guest.user.id);
    const now = Date.now() / 1000;
    assert.ok(Number(expiry) > now && Number(expiry) <= now + ice.body.ttl + 5, `expiry ${expiry} within ttl ${ice.body.ttl}`);
    const expected = createHmac('sha1', 's3cret').update(turn.username).digest('base64');
    assert.equal(turn.credential, expected);
  });

  test('POST /api/guest is rate-limited per client address', async (t) => {
    const server = await serverFor(t, { CHAT__RATE__SESSIONS_PER_MINUTE: '3' });
    for (let i = 0; i < 3; i += 1) assert.equal((await api(server.url, 'POST', '/api/guest')).status, 201);
    const limited = await api(server.url, 'POST', '/api/guest');
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'rate_limited');
    const retry = Number(limited.headers.get('retry-after'));
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${limited.headers.get('retry-after')}`);
    // X-Forwarded-For is not believed without trusted proxies.
    const spoofed = await api(server.url, 'POST', '/api/guest', { headers: { 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(spoofed.status, 429);
  });
});
