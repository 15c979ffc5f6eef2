// Connection section of the contract: authentication (auth, query, header), the refusals,
// connection:established, one socket per session, reconnects, and both transports plus the
// upgrade. Also the generic error forms (ack / `error` event) and robustness to bad input.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  TRANSPORTS,
  USER_ID,
  UUID,
  api,
  assertAckError,
  connect,
  connectRefused,
  createGuest,
  decodeJwt,
  emitAck,
  openSocket,
  serverFor,
  signJwt,
  startServer,
  transportName,
  waitFor,
  waitForArgs,
  waitForUpgrade,
} from './lib/server.js';

for (const transports of TRANSPORTS) {
  describe(`connection over ${transportName(transports)}`, () => {
    let server;
    before(async () => {
      server = await startServer();
    });
    after(() => server?.stop());

    test('connection:established carries the session, the user is online', async () => {
      const guest = await createGuest(server.url, { username: 'Conn_Tester-1' });
      const { socket, established } = await connect(server.url, guest.token, transports);
      assert.deepEqual(Object.keys(established).sort(), ['isGuest', 'sessionId', 'socketId', 'userId', 'username']);
      assert.equal(established.userId, guest.user.id);
      assert.match(established.userId, USER_ID);
      assert.equal(established.username, 'Conn_Tester-1');
      assert.equal(established.sessionId, guest.user.sessionId);
      assert.match(established.sessionId, UUID);
      assert.equal(established.isGuest, true);
      assert.equal(typeof established.socketId, 'string');
      assert.equal(established.socketId, socket.id, 'socketId is the Socket.IO id the client sees');
      if (transports.length > 1) {
        assert.equal(socket.io.engine.transport.name, 'websocket', 'upgraded to websocket');
      } else {
        assert.equal(socket.io.engine.transport.name, transports[0]);
      }
      const me = await api(server.url, 'GET', '/api/guest/me', { token: guest.token });
      assert.equal(me.status, 200);
      assert.equal(me.body.user.isOnline, true);
      assert.equal(me.body.user.socketId, socket.id);
      assert.ok(me.body.user.connectedAt, 'connectedAt is set while connected');
      const beat = await emitAck(socket, 'presence:heartbeat');
      assert.equal(beat.ok, true, 'events flow over the transport');
      socket.close();
    });

    if (transports.length > 1) {
      test('the upgrade event switches the live transport to websocket', async () => {
        const guest = await createGuest(server.url);
        const socket = openSocket(server.url, { auth: { token: guest.token }, transports });
        const upgraded = waitForUpgrade(socket);
        await waitFor(socket, 'connection:established');
        await upgraded;
        assert.equal(socket.io.engine.transport.name, 'websocket');
        const ack = await emitAck(socket, 'presence:heartbeat');
        assert.equal(ack.ok, true, 'events flow after the upgrade');
        socket.close();
      });
    }

    test('the token is also accepted from ?token= and from an Authorization header', async () => {
      const viaQuery = await createGuest(server.url);
      const q = await connect(server.url, undefined, transports, { query: { token: viaQuery.token } });
      assert.equal(q.established.userId, viaQuery.user.id);
      const viaHeader = await createGuest(server.url);
      const h = await connect(server.url, undefined, transports, { extraHeaders: { Authorization: `Bearer ${viaHeader.token}` } });
      assert.equal(h.established.userId, viaHeader.user.id);
      q.socket.close();
      h.socket.close();
    });

    test('refusals carry the exact contract messages', async () => {
      const guest = await createGuest(server.url);
      const now = Math.floor(Date.now() / 1000);
      const claims = decodeJwt(guest.token);
      assert.equal(claims.sub, guest.user.id);
      assert.equal(claims.sid, guest.user.sessionId);

      const refused = async (options, what) => (await connectRefused(server.url, transports, options)).message;

      assert.equal(await refused({}, 'no token'), 'Authentication required');
      assert.equal(await refused({ auth: { token: '' } }), 'Authentication required');
      assert.equal(await refused({ auth: { token: 'garbage' } }), 'Invalid token');
      const [head, body, signature] = guest.token.split('.');
      const flipped = signature[5] === 'A' ? 'B' : 'A';
      const badSignature = `${head}.${body}.${signature.slice(0, 5)}${flipped}${signature.slice(6)}`;
      assert.equal(await refused({ auth: { token: badSignature } }), 'Invalid token', 'tampered signature');
      const other = await createGuest(server.url);
      const swappedBody = `${head}.${other.token.split('.')[1]}.${signature}`;
      assert.equal(await refused({ auth: { token: swappedBody } }), 'Invalid token', 'claims of another token');
      const live = { sub: guest.user.id, sid: guest.user.sessionId, iat: now, exp: now + 600 };
      assert.equal(await refused({ auth: { token: signJwt(live, { alg: 'none' }) } }), 'Invalid token', 'alg none');
      assert.equal(await refused({ auth: { token: signJwt(live, { alg: 'HS512' }) } }), 'Invalid token', 'another algorithm');
      assert.equal(await refused({ auth: { token: signJwt(live, { secret: 'another-secret-of-at-least-32-bytes!!' }) } }), 'Invalid token', 'another key');
      // A token minted with the server's own secret must be accepted: proves the checks above
      // refused for the reason claimed.
      const minted = await connect(server.url, signJwt(live), transports);
      assert.equal(minted.established.userId, guest.user.id);
      minted.socket.close();
      const expired = signJwt({ ...live, iat: now - 100, exp: now - 10 });
      assert.equal(await refused({ auth: { token: expired } }), 'Token has expired');
      const unknownSession = signJwt({ ...live, sid: '00000000-0000-4000-8000-000000000000' });
      assert.equal(await refused({ auth: { token: unknownSession } }), 'Guest session not found', 'unknown session id');
      const deleted = await createGuest(server.url);
      const gone = await api(server.url, 'DELETE', '/api/guest/me', { token: deleted.token });
      assert.equal(gone.status, 204);
      assert.equal(await refused({ auth: { token: deleted.token } }), 'Guest session not found', 'deleted session');
      // Also through the header and query paths.
      assert.equal(await refused({ query: { token: 'garbage' } }), 'Invalid token');
      assert.equal(await refused({ extraHeaders: { Authorization: `Bearer ${expired}` } }), 'Token has expired');
    });

    test('a second socket of the same session replaces the first', async () => {
      const guest = await createGuest(server.url);
      const first = await connect(server.url, guest.token, transports);
      const second = await connect(server.url, guest.token, transports);
      assert.deepEqual(await waitFor(first.socket, 'session:replaced'), {});
      const [reason] = await waitForArgs(first.socket, 'disconnect');
      assert.equal(reason, 'io server disconnect');
      assert.equal(first.socket.connected, false);
      assert.equal(second.established.userId, guest.user.id);
      assert.notEqual(second.established.socketId, first.established.socketId);
      const ack = await emitAck(second.socket, 'presence:heartbeat');
      assert.equal(ack.ok, true);
      const me = await api(server.url, 'GET', '/api/guest/me', { token: guest.token });
      assert.equal(me.body.user.isOnline, true, 'still online through the newer socket');
      assert.equal(me.body.user.socketId, second.socket.id);
      second.socket.close();
    });

    test('a replaced socket reconnects by hand and takes the session back', async () => {
      const guest = await createGuest(server.url);
      const a = await connect(server.url, guest.token, transports, { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
      const b = await connect(server.url, guest.token, transports);
      await waitFor(a.socket, 'session:replaced');
      const [reason] = await waitForArgs(a.socket, 'disconnect');
      assert.equal(reason, 'io server disconnect', 'a server-side disconnect, which socket.io-client does not retry');
      a.socket.connect();
      const again = await waitFor(a.socket, 'connection:established');
      assert.equal(again.userId, guest.user.id);
      assert.equal(again.socketId, a.socket.id);
      assert.notEqual(again.socketId, a.established.socketId);
      assert.deepEqual(await waitFor(b.socket, 'session:replaced'), {});
      const [reasonB] = await waitForArgs(b.socket, 'disconnect');
      assert.equal(reasonB, 'io server disconnect');
      assert.equal((await emitAck(a.socket, 'presence:heartbeat')).ok, true);
      a.socket.close();
    });

    test('a dropped transport reconnects by itself', async () => {
      const guest = await createGuest(server.url);
      const a = await connect(server.url, guest.token, transports, { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100 });
      a.socket.io.engine.close();
      const [reason] = await waitForArgs(a.socket, 'disconnect');
      assert.notEqual(reason, 'io server disconnect');
      const again = await waitFor(a.socket, 'connection:established');
      assert.equal(again.userId, guest.user.id);
      assert.notEqual(again.socketId, a.established.socketId);
      if (transports.length > 1) await waitForUpgrade(a.socket);
      assert.equal((await emitAck(a.socket, 'presence:heartbeat')).ok, true);
      const me = await api(server.url, 'GET', '/api/guest/me', { token: guest.token });
      assert.equal(me.body.user.isOnline, true, 'online again after the reconnect');
      assert.equal(me.body.user.socketId, a.socket.id);
      a.socket.close();
    });

    test('unknown events fail with invalid_input, by ack or by an `error` event', async () => {
      const guest = await createGuest(server.url);
      const { socket } = await connect(server.url, guest.token, transports);
      assertAckError(assert, await emitAck(socket, 'no:such-event', { a: 1 }), 'invalid_input', 'unknown event with ack');
      socket.emit('no:such-event', { a: 1 });
      const error = await waitFor(socket, 'error');
      assert.equal(error.event, 'no:such-event');
      assert.equal(error.code, 'invalid_input');
      assert.equal(typeof error.message, 'string');
      socket.emit('chat:message', { type: 'text', content: 'hi' });
      const notInChat = await waitFor(socket, 'error');
      assert.deepEqual({ event: notInChat.event, code: notInChat.code }, { event: 'chat:message', code: 'not_in_chat' });
      assert.equal(socket.connected, true);
      socket.close();
    });

    test('an event over maxPayload may break its own transport, nothing else', async (t) => {
      const server = await serverFor(t, { CHAT__LIMITS__MAX_PAYLOAD_BYTES: String(256 * 1024) });
      const bystander = await createGuest(server.url);
      const other = await connect(server.url, bystander.token, transports);
      const guest = await createGuest(server.url);
      const { socket } = await connect(server.url, guest.token, transports);
      // 300 KiB: over the limit; 200 KiB: under it, read whole and judged by its own rules.
      const under = await emitAck(socket, 'chat:message', { type: 'text', content: 'u'.repeat(200 * 1024) });
      assert.equal(under.ok, false, 'a 200 KiB event under a 256 KiB maxPayload is answered');
      assert.ok(['not_in_chat', 'too_large'].includes(under.error.code), `judged by the event's rules: ${JSON.stringify(under)}`);
      const outcome = await emitAck(socket, 'chat:message', { type: 'text', content: 'o'.repeat(300 * 1024) }, 3000).catch((error) => ({ lost: error.message }));
      if (!outcome.lost) assert.equal(outcome.ok, false, `an oversized event is never accepted: ${JSON.stringify(outcome)}`);
      assert.equal((await api(server.url, 'GET', '/healthz')).status, 200, 'the server lives');
      assert.equal((await emitAck(other.socket, 'presence:heartbeat')).ok, true, 'other clients are unaffected');
      const again = await connect(server.url, guest.token, transports);
      assert.equal(again.established.userId, guest.user.id, 'the sender can connect again');
    });

    test('bad payloads on every event get answers and never close the connection', async (t) => {
      // A server of its own without the event rate limit: this sends ~150 events at once.
      const server = await serverFor(t, { CHAT__RATE__EVENTS_PER_SEC: '100000' });
      const guest = await createGuest(server.url);
      const { socket } = await connect(server.url, guest.token, transports);
      const events = [
        'presence:heartbeat', 'presence:online', 'stats:request', 'users:online:request', 'match:cancel',
        'chat:message', 'message:delivered', 'chat:typing', 'chat:leave', 'chat:clear',
        'webrtc:offer', 'webrtc:answer', 'webrtc:ice-candidate', 'webrtc:call-end', 'webrtc:call-reject',
        'match:search', 'match:next',
      ];
      const payloads = [null, 42, 'text', [1, 2, 3], true, { nested: { deep: [null] } }, { id: 'msg_1_x', isOnline: 'yes', limit: -1, filters: 7 }];
      for (const event of events) {
        const acks = await Promise.all(payloads.map((payload) => emitAck(socket, event, payload)));
        payloads.forEach((payload, index) => {
          const ack = acks[index];
          assert.equal(typeof ack, 'object', `${event}(${JSON.stringify(payload)}) answered ${JSON.stringify(ack)}`);
          assert.equal(typeof ack.ok, 'boolean', `${event}(${JSON.stringify(payload)}) answered ${JSON.stringify(ack)}`);
          if (!ack.ok) assert.equal(typeof ack.error.code, 'string');
        });
        // Binary and several arguments, too.
        const binary = await emitAck(socket, event, Buffer.from([1, 2, 3]));
        assert.equal(typeof binary.ok, 'boolean', `${event}(binary) answered ${JSON.stringify(binary)}`);
      }
      assert.equal(socket.connected, true);
      assert.equal((await emitAck(socket, 'presence:heartbeat')).ok, true);
      const health = await api(server.url, 'GET', '/healthz');
      assert.equal(health.status, 200);
      socket.close();
    });
  });
}
