// chat:message (relay, message:sent, receipts via ack or message:delivered, idempotence,
// validation), chat:typing, chat:leave, chat:clear, the reconnect grace
// (partner:disconnected / partner:reconnected / room:closed partner_disconnected), and
// not_in_chat outside a chat.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  MESSAGE_ID,
  RFC3339_UTC,
  TRANSPORTS,
  api,
  assertAckError,
  connect,
  emitAck,
  expectNone,
  guestOnline,
  matchPair,
  serverFor,
  transportName,
  waitFor,
  waitForArgs,
  waitForUpgrade,
} from './lib/server.js';

const GRACE_SECS = 2;

/** Sends a text from `from` and returns `{ack, received, ackFn}` as seen by `to`. */
async function send(from, to, content, extra = {}) {
  const ack = await emitAck(from.socket, 'chat:message', { type: 'text', content, ...extra });
  assert.equal(ack.ok, true, `chat:message acked ${JSON.stringify(ack)}`);
  const args = await waitForArgs(to.socket, 'chat:message', undefined, (message) => message.id === ack.message.id);
  return { ack, received: args[0], ackFn: args[1] };
}

/** A round trip on each socket: events the server emitted before it have arrived. */
async function barrier(...guests) {
  for (const guest of guests) assert.equal((await emitAck(guest.socket, 'presence:heartbeat')).ok, true);
}

for (const transports of TRANSPORTS) {
  describe(`chat over ${transportName(transports)}`, () => {
    test('chat:message is relayed; the sender gets the ack and message:sent; forged fields are ignored', async (t) => {
      const server = await serverFor(t);
      const { a, b, roomId } = await matchPair(server.url, transports);
      const before = Date.now();
      const ack = await emitAck(a.socket, 'chat:message', {
        type: 'text',
        content: '  hello there  ',
        clientId: 'client-1',
        senderId: b.user.id,
        senderUsername: 'Mallory',
        roomId: 'room_forged',
        id: 'msg_1_forged',
        timestamp: '2000-01-01T00:00:00Z',
        status: 'delivered',
      });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.deepEqual(Object.keys(ack.message).sort(), ['clientId', 'id', 'status', 'timestamp']);
      assert.equal(ack.message.status, 'sent');
      assert.equal(ack.message.clientId, 'client-1');
      const idParts = MESSAGE_ID.exec(ack.message.id);
      assert.ok(idParts, `message id ${ack.message.id} is msg_<unix ms>_<random>`);
      assert.ok(Math.abs(Number(idParts[1]) - before) < 10000, 'the id carries the unix ms');
      assert.match(ack.message.timestamp, RFC3339_UTC);
      const sent = await waitFor(a.socket, 'message:sent');
      assert.deepEqual(sent, { id: ack.message.id, clientId: 'client-1', timestamp: ack.message.timestamp });
      const [message, askAck] = await waitForArgs(b.socket, 'chat:message');
      assert.equal(message.id, ack.message.id);
      assert.equal(message.roomId, roomId);
      assert.equal(message.senderId, a.user.id, 'the sender is the server\'s, not the payload\'s');
      assert.equal(message.senderUsername, a.user.username);
      assert.equal(message.type, 'text');
      assert.equal(message.content, 'hello there', 'trimmed');
      assert.equal(message.status, 'delivered');
      assert.equal(message.timestamp, ack.message.timestamp);
      assert.equal(typeof askAck, 'function', 'the server asks the recipient for an ack');
      // And the other way round.
      const back = await send(b, a, 'hi A');
      assert.equal(back.received.senderId, b.user.id);
      assert.equal(back.received.content, 'hi A');
      await expectNone(a.socket, 'chat:message', 0);
    });

    test('a bare ack confirms delivery; later confirmations change nothing', async (t) => {
      const server = await serverFor(t);
      const { a, b } = await matchPair(server.url, transports);
      const { ack, ackFn } = await send(a, b, 'confirm me by ack');
      ackFn(); // no arguments: counts as a confirmation
      const delivered = await waitFor(a.socket, 'message:delivered');
      assert.deepEqual(Object.keys(delivered).sort(), ['deliveredAt', 'id']);
      assert.equal(delivered.id, ack.message.id);
      assert.match(delivered.deliveredAt, RFC3339_UTC);
      const again = await emitAck(b.socket, 'message:delivered', { id: ack.message.id });
      assert.deepEqual(again, { ok: true, confirmed: false });
      const bySender = await emitAck(a.socket, 'message:delivered', { id: ack.message.id });
      assert.deepEqual(bySender, { ok: true, confirmed: false });
      await barrier(b, a);
      await expectNone(a.socket, 'message:delivered', 300);
      await expectNone(b.socket, 'message:delivered', 0);
    });

    test('message:delivered confirms delivery exactly once; only the recipient can confirm', async (t) => {
      const server = await serverFor(t);
      const { a, b } = await matchPair(server.url, transports);
      const { ack, ackFn } = await send(a, b, 'confirm me by event');
      // The sender confirming its own message is ignored.
      assert.deepEqual(await emitAck(a.socket, 'message:delivered', { id: ack.message.id }), { ok: true, confirmed: false });
      await barrier(a);
      await expectNone(a.socket, 'message:delivered', 200);
      const first = await emitAck(b.socket, 'message:delivered', { id: ack.message.id });
      assert.deepEqual(first, { ok: true, confirmed: true });
      const delivered = await waitFor(a.socket, 'message:delivered');
      assert.equal(delivered.id, ack.message.id);
      assert.match(delivered.deliveredAt, RFC3339_UTC);
      ackFn(); // the late Socket.IO ack is a second confirmation
      assert.deepEqual(await emitAck(b.socket, 'message:delivered', { id: ack.message.id }), { ok: true, confirmed: false });
      await barrier(b, a);
      await expectNone(a.socket, 'message:delivered', 300);
      // Unknown ids confirm nothing (refused as invalid, or answered confirmed:false).
      for (const id of ['not-an-id', 'msg_1_unknown']) {
        const unknown = await emitAck(b.socket, 'message:delivered', { id });
        if (unknown.ok) assert.deepEqual(unknown, { ok: true, confirmed: false }, `unknown id ${id}`);
        else assertAckError(assert, unknown, 'invalid_input', `unknown id ${id}`);
      }
      assertAckError(assert, await emitAck(b.socket, 'message:delivered', {}), 'invalid_input', 'no id');
      await barrier(b, a);
      await expectNone(a.socket, 'message:delivered', 100);
    });

    test('text content is validated: 1 to 2000 characters after trimming', async (t) => {
      const server = await serverFor(t);
      const { a, b } = await matchPair(server.url, transports);
      const fail = async (payload, code, what) => assertAckError(assert, await emitAck(a.socket, 'chat:message', payload), code, what);
      await fail({ type: 'text', content: '' }, 'invalid_input', 'empty');
      await fail({ type: 'text', content: ' \n\t ' }, 'invalid_input', 'blank');
      await fail({ type: 'text', content: 42 }, 'invalid_input', 'a number');
      await fail({ type: 'text' }, 'invalid_input', 'no content');
      await fail({ type: 'sticker', content: 'x' }, 'invalid_input', 'unknown type');
      await fail(undefined, 'invalid_input', 'no payload');
      await fail({ type: 'text', content: 'x'.repeat(2001) }, 'too_large', '2001 characters');
      await fail({ type: 'text', content: '😀'.repeat(2001) }, 'too_large', '2001 emoji');
      await fail({ type: 'text', content: 'y'.repeat(600 * 1024) }, 'too_large', 'a 600 KiB event is read whole, then refused');
      assert.equal(a.socket.connected, true, 'bad input never closes the connection');
      // Limits count Unicode scalar values, not bytes or UTF-16 units, after trimming.
      const euro = await send(a, b, '€'.repeat(2000));
      assert.equal(euro.received.content, '€'.repeat(2000));
      const emoji = await send(a, b, '😀'.repeat(2000));
      assert.equal([...emoji.received.content].length, 2000);
      const padded = await send(a, b, `   ${'z'.repeat(2000)}   `);
      assert.equal(padded.received.content, 'z'.repeat(2000));
      // Without an ack the failure is an `error` event.
      a.socket.emit('chat:message', { type: 'text', content: '   ' });
      const error = await waitFor(a.socket, 'error');
      assert.deepEqual({ event: error.event, code: error.code }, { event: 'chat:message', code: 'invalid_input' });
      assert.equal(typeof error.message, 'string');
    });

    test('chat:typing reaches the partner as {from, isTyping}', async (t) => {
      const server = await serverFor(t);
      const { a, b } = await matchPair(server.url, transports);
      assert.deepEqual(await emitAck(a.socket, 'chat:typing', { isTyping: true }), { ok: true });
      assert.deepEqual(await waitFor(b.socket, 'chat:typing'), { from: a.user.id, isTyping: true });
      assert.equal((await emitAck(a.socket, 'chat:typing', { isTyping: false })).ok, true);
      assert.deepEqual(await waitFor(b.socket, 'chat:typing'), { from: a.user.id, isTyping: false });
      b.socket.emit('chat:typing', { isTyping: true });
      assert.deepEqual(await waitFor(a.socket, 'chat:typing'), { from: b.user.id, isTyping: true });
      assertAckError(assert, await emitAck(a.socket, 'chat:typing', { isTyping: 'yes' }), 'invalid_input', 'non-boolean');
      assertAckError(assert, await emitAck(a.socket, 'chat:typing', {}), 'invalid_input', 'missing');
      await expectNone(a.socket, 'chat:typing', 0);
    });

    test('chat:leave closes the room: partner_left for the partner, left for the leaver', async (t) => {
      const server = await serverFor(t);
      const { a, b, roomId } = await matchPair(server.url, transports);
      assert.equal((await emitAck(a.socket, 'chat:leave')).ok, true);
      assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'partner_left' });
      assert.deepEqual(await waitFor(a.socket, 'room:closed'), { roomId, reason: 'left' });
      for (const guest of [a, b]) {
        const me = await api(server.url, 'GET', '/api/guest/me', { token: guest.token });
        assert.equal(me.body.user.inChat, false);
        assert.equal(me.body.user.connectedUser, null);
        assertAckError(assert, await emitAck(guest.socket, 'chat:message', { type: 'text', content: 'still there?' }), 'not_in_chat', 'after leave');
      }
      assertAckError(assert, await emitAck(a.socket, 'chat:leave'), 'not_in_chat', 'leaving twice');
    });

    test('chat:clear acks {deletedFiles} and tells the partner chat:cleared', async (t) => {
      const server = await serverFor(t);
      const { a, b } = await matchPair(server.url, transports);
      const ack = await emitAck(a.socket, 'chat:clear');
      assert.deepEqual(ack, { ok: true, deletedFiles: 0 });
      assert.deepEqual(await waitFor(b.socket, 'chat:cleared'), {});
      // The chat goes on.
      await send(b, a, 'after clear');
    });

    test('outside a chat every chat:* event fails with not_in_chat', async (t) => {
      const server = await serverFor(t);
      const guest = await guestOnline(server.url, transports);
      const cases = [
        ['chat:message', { type: 'text', content: 'hello?' }],
        // Membership is judged before the payload.
        ['chat:message', { type: 'file', content: 'not-an-object' }],
        ['chat:message', undefined],
        ['chat:typing', { isTyping: true }],
        ['chat:typing', { isTyping: 'yes' }],
        ['chat:leave', undefined],
        ['chat:clear', undefined],
      ];
      for (const [event, payload] of cases) {
        assertAckError(assert, await emitAck(guest.socket, event, payload), 'not_in_chat', event);
      }
      // While merely searching, too.
      assert.equal((await emitAck(guest.socket, 'match:search', {})).ok, true);
      assertAckError(assert, await emitAck(guest.socket, 'chat:message', { type: 'text', content: 'hello?' }), 'not_in_chat', 'searching');
    });

    test('a partner who drops and comes back within the grace period: the chat goes on', async (t) => {
      const server = await serverFor(t, { CHAT__CHAT__RECONNECT_GRACE_SECS: String(GRACE_SECS) });
      const { a, b, roomId } = await matchPair(server.url, transports);
      b.socket.io.engine.close(); // a transport drop, not a leave
      const disconnected = await waitFor(a.socket, 'partner:disconnected');
      assert.deepEqual(disconnected, { graceSecs: GRACE_SECS });
      assertAckError(assert, await emitAck(a.socket, 'chat:message', { type: 'text', content: 'are you there?' }), 'unavailable', 'during the grace');
      const back = await connect(server.url, b.token, transports);
      assert.equal(back.established.userId, b.user.id);
      await waitFor(a.socket, 'partner:reconnected');
      await expectNone(a.socket, 'room:closed', 0);
      const me = await api(server.url, 'GET', '/api/guest/me', { token: b.token });
      assert.equal(me.body.user.inChat, true);
      assert.equal(me.body.user.connectedUser, a.user.id);
      const toB = await send(a, { socket: back.socket }, 'welcome back');
      assert.equal(toB.received.roomId, roomId, 'same room');
      const toA = await send({ socket: back.socket }, a, 'thanks');
      assert.equal(toA.received.senderId, b.user.id);
      assert.equal((await emitAck(back.socket, 'chat:typing', { isTyping: true })).ok, true);
      await waitFor(a.socket, 'chat:typing');
      // The room survives the end of the grace period.
      await expectNone(a.socket, 'room:closed', GRACE_SECS * 1000 + 500);
    });

    test('a partner who does not come back within the grace period: room:closed partner_disconnected', async (t) => {
      const server = await serverFor(t, { CHAT__CHAT__RECONNECT_GRACE_SECS: String(GRACE_SECS) });
      const { a, b, roomId } = await matchPair(server.url, transports);
      const dropped = Date.now();
      b.socket.io.engine.close();
      assert.deepEqual(await waitFor(a.socket, 'partner:disconnected'), { graceSecs: GRACE_SECS });
      const closed = await waitFor(a.socket, 'room:closed', GRACE_SECS * 1000 + 4000);
      assert.deepEqual(closed, { roomId, reason: 'partner_disconnected' });
      assert.ok(Date.now() - dropped >= GRACE_SECS * 1000 - 300, 'not before the grace period ends');
      assertAckError(assert, await emitAck(a.socket, 'chat:message', { type: 'text', content: 'gone?' }), 'not_in_chat', 'after the grace');
      const late = await connect(server.url, b.token, transports);
      const me = await api(server.url, 'GET', '/api/guest/me', { token: b.token });
      assert.equal(me.body.user.inChat, false);
      assertAckError(assert, await emitAck(late.socket, 'chat:message', { type: 'text', content: 'back' }), 'not_in_chat', 'late return');
      if (transports.length > 1) await waitForUpgrade(late.socket);
    });
  });
}
