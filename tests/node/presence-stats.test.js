// presence:heartbeat, presence:online, stats:request → stats:update,
// users:online:request → users:online:update, and the realtime:stats broadcast.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  RFC3339_UTC,
  STATS_KEYS,
  TRANSPORTS,
  api,
  assertAckError,
  assertPublicUser,
  connect,
  createGuest,
  emitAck,
  expectNone,
  forget,
  guestOnline,
  serverFor,
  transportName,
  waitFor,
} from './lib/server.js';

function assertStats(stats, context) {
  assert.deepEqual(Object.keys(stats).sort(), [...STATS_KEYS].sort(), `${context}: Stats keys`);
  for (const key of STATS_KEYS) {
    assert.ok(Number.isInteger(stats[key]) && stats[key] >= 0, `${context}: ${key} is a count, got ${stats[key]}`);
  }
}

for (const transports of TRANSPORTS) {
  describe(`presence and stats over ${transportName(transports)}`, () => {
    test('presence:heartbeat acks {ok, serverTime}', async (t) => {
      const server = await serverFor(t);
      const { socket } = await guestOnline(server.url, transports);
      const before = Date.now();
      const ack = await emitAck(socket, 'presence:heartbeat');
      assert.equal(ack.ok, true);
      assert.match(ack.serverTime, RFC3339_UTC);
      const serverTime = Date.parse(ack.serverTime);
      assert.ok(Math.abs(serverTime - before) < 5000, `serverTime ${ack.serverTime} is now`);
    });

    test('presence:heartbeat refreshes lastSeen', async (t) => {
      const server = await serverFor(t);
      const a = await guestOnline(server.url, transports);
      const observer = await guestOnline(server.url, transports);
      const lastSeenOfA = async () => {
        assert.equal((await emitAck(observer.socket, 'users:online:request', {})).ok, true);
        const users = await waitFor(observer.socket, 'users:online:update');
        const found = users.find((user) => user.id === a.user.id);
        assert.ok(found, 'A is listed online');
        assert.match(found.lastSeen, RFC3339_UTC);
        return Date.parse(found.lastSeen);
      };
      const before = await lastSeenOfA();
      // Make sure the clock moves past `before` at the server's precision.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const beat = await emitAck(a.socket, 'presence:heartbeat');
      assert.equal(beat.ok, true);
      const after = await lastSeenOfA();
      assert.ok(after > before, `lastSeen moved forward (${before} → ${after})`);
      assert.ok(after <= Date.parse(beat.serverTime) + 1000);
    });

    test('presence:online sets the flag', async (t) => {
      const server = await serverFor(t);
      const guest = await guestOnline(server.url, transports);
      const off = await emitAck(guest.socket, 'presence:online', { isOnline: false });
      assert.deepEqual(off, { ok: true, isOnline: false });
      let me = await api(server.url, 'GET', '/api/guest/me', { token: guest.token });
      assert.equal(me.body.user.isOnline, false);
      const on = await emitAck(guest.socket, 'presence:online', { isOnline: true });
      assert.deepEqual(on, { ok: true, isOnline: true });
      me = await api(server.url, 'GET', '/api/guest/me', { token: guest.token });
      assert.equal(me.body.user.isOnline, true);
      assertAckError(assert, await emitAck(guest.socket, 'presence:online', { isOnline: 'no' }), 'invalid_input', 'non-boolean isOnline');
      assertAckError(assert, await emitAck(guest.socket, 'presence:online'), 'invalid_input', 'no payload');
    });

    test('stats:request emits stats:update {stats, timestamp} to this socket', async (t) => {
      const server = await serverFor(t);
      const a = await guestOnline(server.url, transports);
      const b = await guestOnline(server.url, transports);
      await createGuest(server.url); // a live session without a socket
      const ack = await emitAck(a.socket, 'stats:request');
      assert.equal(ack.ok, true);
      const update = await waitFor(a.socket, 'stats:update');
      assert.deepEqual(Object.keys(update).sort(), ['stats', 'timestamp']);
      assert.match(update.timestamp, RFC3339_UTC);
      assertStats(update.stats, 'stats:update');
      assert.equal(update.stats.totalUsers, 3, 'three live sessions');
      assert.equal(update.stats.onlineUsers, 2, 'two with a connected socket');
      assert.equal(update.stats.usersInChat, 0);
      assert.equal(update.stats.connectedUsers, 0);
      await expectNone(b.socket, 'stats:update', 200);
      // The chat counts follow a pairing.
      await emitAck(a.socket, 'match:search', {});
      await emitAck(b.socket, 'match:search', {});
      await waitFor(a.socket, 'match:found');
      await emitAck(b.socket, 'stats:request');
      const inChat = await waitFor(b.socket, 'stats:update');
      assert.equal(inChat.stats.usersInChat, 2);
      assert.equal(inChat.stats.connectedUsers, 1, 'pairs = users in chat / 2');
      assert.equal(inChat.stats.availableUsers, 0);
    });

    test('users:online:request emits users:online:update [PublicUser], honouring limit', async (t) => {
      const server = await serverFor(t);
      const users = [];
      for (let i = 0; i < 3; i += 1) users.push(await guestOnline(server.url, transports, { deviceId: `device-${i}`, language: 'en' }));
      assert.equal((await emitAck(users[0].socket, 'users:online:request', {})).ok, true);
      const all = await waitFor(users[0].socket, 'users:online:update');
      assert.ok(Array.isArray(all), 'an array');
      assert.deepEqual(all.map((user) => user.id).sort(), users.map((user) => user.user.id).sort());
      for (const user of all) {
        assertPublicUser(assert, user, 'users:online:update item');
        assert.equal(user.isOnline, true);
        assert.equal(user.language, 'en');
      }
      assert.equal((await emitAck(users[1].socket, 'users:online:request', { limit: 2 })).ok, true);
      const two = await waitFor(users[1].socket, 'users:online:update');
      assert.equal(two.length, 2, 'limit is honoured');
      assertAckError(assert, await emitAck(users[1].socket, 'users:online:request', { limit: 'x' }), 'invalid_input', 'limit not a number');
    });

    test('realtime:stats is broadcast to everyone within an interval of a change', async (t) => {
      const server = await serverFor(t, { CHAT__STATS__BROADCAST_INTERVAL_MS: '100' });
      const observer = await guestOnline(server.url, transports);
      const first = await waitFor(observer.socket, 'realtime:stats', 3000, (payload) => payload.stats.onlineUsers >= 1);
      assert.deepEqual(Object.keys(first).sort(), ['onlineUsers', 'stats', 'timestamp']);
      assertStats(first.stats, 'realtime:stats');
      assert.match(first.timestamp, RFC3339_UTC);
      assert.ok(Array.isArray(first.onlineUsers));
      for (const user of first.onlineUsers) assertPublicUser(assert, user, 'realtime:stats onlineUsers item');
      const other = await guestOnline(server.url, transports);
      const next = await waitFor(observer.socket, 'realtime:stats', 2000, (payload) => payload.stats.onlineUsers >= 2);
      assert.equal(next.stats.onlineUsers, 2);
      assert.ok(next.onlineUsers.some((user) => user.id === other.user.id), 'the new user is listed');
      // Everyone gets it, the newcomer too.
      await waitFor(other.socket, 'realtime:stats', 2000, (payload) => payload.stats.onlineUsers >= 2);
      // A departure is a change too.
      other.socket.close();
      const after = await waitFor(observer.socket, 'realtime:stats', 2000, (payload) => payload.stats.onlineUsers === 1);
      assert.ok(!after.onlineUsers.some((user) => user.id === other.user.id));
    });

    test('realtime:stats is coalesced (at most one per interval) and quiet without changes', async (t) => {
      const interval = 400;
      const server = await serverFor(t, { CHAT__STATS__BROADCAST_INTERVAL_MS: String(interval) });
      const observer = await guestOnline(server.url, transports);
      await waitFor(observer.socket, 'realtime:stats', 3000, (payload) => payload.stats.onlineUsers === 1);
      // Quiet: nothing changes, nothing is broadcast (3 intervals).
      forget(observer.socket);
      await expectNone(observer.socket, 'realtime:stats', 3 * interval);
      // A burst of 8 changes (connections) inside about one interval.
      const times = [];
      observer.socket.on('realtime:stats', () => times.push(Date.now()));
      const started = Date.now();
      const burst = [];
      for (let i = 0; i < 4; i += 1) burst.push(createGuest(server.url).then((guest) => connect(server.url, guest.token, ['websocket'])));
      await Promise.all(burst);
      const last = await waitFor(observer.socket, 'realtime:stats', 3 * interval + 2000, (payload) => payload.stats.onlineUsers === 5);
      assert.equal(last.stats.onlineUsers, 5);
      const span = Date.now() - started;
      // Allow one extra for the start of the window and one for jitter.
      const allowed = Math.ceil(span / interval) + 2;
      assert.ok(times.length <= allowed, `${times.length} broadcasts in ${span} ms with an interval of ${interval} ms (at most ${allowed})`);
      for (let i = 1; i < times.length; i += 1) {
        assert.ok(times[i] - times[i - 1] >= interval / 2, `broadcasts ${times[i] - times[i - 1]} ms apart (interval ${interval} ms)`);
      }
    });

    test('realtime:stats lists at most 50 online users', async (t) => {
      const server = await serverFor(t, { CHAT__STATS__BROADCAST_INTERVAL_MS: '200' });
      const observer = await guestOnline(server.url, transports);
      const others = [];
      for (let i = 0; i < 54; i += 1) others.push(createGuest(server.url).then((guest) => connect(server.url, guest.token, ['websocket'])));
      await Promise.all(others);
      const big = await waitFor(observer.socket, 'realtime:stats', 5000, (payload) => payload.stats.onlineUsers === 55);
      assert.equal(big.onlineUsers.length, 50, 'capped at 50');
      assert.equal(new Set(big.onlineUsers.map((user) => user.id)).size, 50, 'no duplicates');
    });
  });
}
