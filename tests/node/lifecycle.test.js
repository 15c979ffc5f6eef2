// Session lifecycle: expiry without activity (session:expired, partner room:closed
// session_expired), heartbeats keeping a session alive, DELETE /api/guest/me while
// connected, SIGTERM (server:shutdown, exit 0), and event rate limiting.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  TRANSPORTS,
  api,
  connectRefused,
  emitAck,
  eventually,
  expectNone,
  guestOnline,
  matchPair,
  serverFor,
  signJwt,
  startServer,
  transportName,
  waitFor,
  waitForArgs,
} from './lib/server.js';

const TTL_SECS = 3;

for (const transports of TRANSPORTS) {
  describe(`lifecycle over ${transportName(transports)}`, () => {
    test('a session without activity expires; heartbeats keep the other one alive', async (t) => {
      const server = await serverFor(t, { CHAT__SESSION__TTL_SECS: String(TTL_SECS), CHAT__PRESENCE__PING_INTERVAL_MS: '300', CHAT__PRESENCE__PING_TIMEOUT_MS: '2000' });
      const { a, b, roomId } = await matchPair(server.url, transports);
      const lastActivityB = Date.now();
      // B sends heartbeats every 500 ms, as a client does; A sends nothing (Engine.IO pings
      // every 300 ms do not count as activity).
      const beats = [];
      const heartbeat = setInterval(() => beats.push(emitAck(b.socket, 'presence:heartbeat').catch((error) => ({ error: error.message }))), 500);
      t.after(() => clearInterval(heartbeat));
      assert.deepEqual(await waitFor(a.socket, 'session:expired', TTL_SECS * 1000 + 5000), {});
      const [reason] = await waitForArgs(a.socket, 'disconnect');
      assert.equal(reason, 'io server disconnect');
      assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'session_expired' });
      // B lives on well past the time it would have expired without heartbeats.
      const until = lastActivityB + TTL_SECS * 1000 + 2500;
      await expectNone(b.socket, 'session:expired', Math.max(0, until - Date.now()));
      clearInterval(heartbeat);
      for (const beat of await Promise.all(beats)) assert.equal(beat.ok, true, JSON.stringify(beat));
      assert.equal(b.socket.connected, true);
      // Tokens live TTL_SECS from issue (exp = TTL), so by now the original tokens have
      // expired; tokens minted for the same sessions tell which session is still alive.
      const fresh = (guest) => {
        const now = Math.floor(Date.now() / 1000);
        return signJwt({ sub: guest.user.id, sid: guest.user.sessionId, iat: now, exp: now + 600 });
      };
      const meB = await api(server.url, 'GET', '/api/guest/me', { token: fresh(b) });
      assert.equal(meB.status, 200, `B is alive: ${JSON.stringify(meB.body)}`);
      assert.equal(meB.body.user.inChat, false);
      const meA = await api(server.url, 'GET', '/api/guest/me', { token: fresh(a) });
      assert.equal(meA.status, 404);
      assert.equal(meA.body.error.code, 'session_not_found');
      assert.equal((await connectRefused(server.url, transports, { auth: { token: fresh(a) } })).message, 'Guest session not found');
    });

    test('DELETE /api/guest/me disconnects the socket and closes the room for the partner', async (t) => {
      const server = await serverFor(t);
      const { a, b, roomId } = await matchPair(server.url, transports);
      const deleted = await api(server.url, 'DELETE', '/api/guest/me', { token: a.token });
      assert.equal(deleted.status, 204);
      const [reason] = await waitForArgs(a.socket, 'disconnect');
      assert.equal(reason, 'io server disconnect');
      assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'partner_left' });
      assert.equal((await connectRefused(server.url, transports, { auth: { token: a.token } })).message, 'Guest session not found');
      const stats = await api(server.url, 'GET', '/api/stats');
      assert.equal(stats.body.stats.totalUsers, 1);
      assert.equal(stats.body.stats.usersInChat, 0);
    });

    test('SIGTERM: clients get server:shutdown and the process exits 0', async () => {
      const server = await startServer({ CHAT__SERVER__SHUTDOWN_GRACE_SECS: '2' });
      try {
        const lone = await guestOnline(server.url, transports);
        const { a, b } = await matchPair(server.url, transports);
        const exit = server.terminate(15000);
        for (const socket of [lone.socket, a.socket, b.socket]) {
          assert.deepEqual(await waitFor(socket, 'server:shutdown'), {});
          await waitFor(socket, 'disconnect', 10000);
        }
        const { code, signal } = await exit;
        assert.equal(signal, null, 'exited by itself');
        assert.equal(code, 0);
      } finally {
        await server.stop();
      }
    });

    test('a flood gets rate_limited answers, not a closed connection', async (t) => {
      const server = await serverFor(t, { CHAT__RATE__EVENTS_PER_SEC: '5' });
      const guest = await guestOnline(server.url, transports);
      const acks = await Promise.all(Array.from({ length: 50 }, () => emitAck(guest.socket, 'presence:heartbeat')));
      const limited = acks.filter((ack) => ack.ok === false);
      const passed = acks.filter((ack) => ack.ok === true);
      assert.ok(limited.length > 0, 'some events are refused');
      assert.ok(passed.length > 0, 'some events pass');
      for (const ack of limited) assert.equal(ack.error.code, 'rate_limited', JSON.stringify(ack));
      assert.ok(limited.length >= 30, `at 5/s, most of 50 events are refused (${limited.length})`);
      // Without acks the refusals are `error` events.
      for (let i = 0; i < 20; i += 1) guest.socket.emit('stats:request');
      const error = await waitFor(guest.socket, 'error');
      assert.deepEqual({ event: error.event, code: error.code }, { event: 'stats:request', code: 'rate_limited' });
      assert.equal(guest.socket.connected, true);
      // The budget comes back.
      await eventually(async () => (await emitAck(guest.socket, 'presence:heartbeat')).ok === true, 5000, 'a heartbeat to pass again');
      assert.equal(guest.socket.connected, true);
    });
  });
}
