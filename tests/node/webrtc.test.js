// WebRTC signaling relay: webrtc:offer / answer / ice-candidate / call-end / call-reject,
// the call timer (webrtc:call-timeout to both, stopped by answer, reject, end or room close),
// and webrtc:error for bad input, outside a chat and while the partner is away.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  RFC3339_UTC,
  TRANSPORTS,
  assertAckError,
  emitAck,
  expectNone,
  guestOnline,
  matchPair,
  serverFor,
  transportName,
  waitFor,
} from './lib/server.js';

const CALL_TIMEOUT_SECS = 1;
const SDP_OFFER = 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n';
const SDP_ANSWER = 'v=0\r\no=- 1234567890 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n';
const OFFER = { offer: { type: 'offer', sdp: SDP_OFFER }, type: 'audio' };
const ANSWER = { answer: { type: 'answer', sdp: SDP_ANSWER } };
const CANDIDATE = { candidate: { candidate: 'candidate:842163049 1 udp 1677729535 127.0.0.1 49203 typ srflx raddr 0.0.0.0 rport 0 generation 0', sdpMid: '0', sdpMLineIndex: 0 } };

async function ok(socket, event, payload) {
  const ack = await emitAck(socket, event, payload);
  assert.deepEqual(ack, { ok: true }, `${event} acked ${JSON.stringify(ack)}`);
}

async function offerReceived(a, b, payload = OFFER) {
  await ok(a.socket, 'webrtc:offer', payload);
  return waitFor(b.socket, 'webrtc:offer');
}

for (const transports of TRANSPORTS) {
  describe(`webrtc over ${transportName(transports)}`, () => {
    const env = { CHAT__WEBRTC__CALL_TIMEOUT_SECS: String(CALL_TIMEOUT_SECS) };

    test('offer, answer and ICE candidates are relayed to the partner', async (t) => {
      const server = await serverFor(t, env);
      const { a, b } = await matchPair(server.url, transports);
      const offer = await offerReceived(a, b, { ...OFFER, type: 'video', from: 'forged' });
      assert.deepEqual(Object.keys(offer).sort(), ['from', 'fromUsername', 'offer', 'timestamp', 'type']);
      assert.deepEqual(offer.offer, OFFER.offer);
      assert.equal(offer.type, 'video');
      assert.equal(offer.from, a.user.id);
      assert.equal(offer.fromUsername, a.user.username);
      assert.match(offer.timestamp, RFC3339_UTC);
      await ok(b.socket, 'webrtc:answer', ANSWER);
      assert.deepEqual(await waitFor(a.socket, 'webrtc:answer'), { answer: ANSWER.answer, from: b.user.id, fromUsername: b.user.username });
      await ok(a.socket, 'webrtc:ice-candidate', CANDIDATE);
      assert.deepEqual(await waitFor(b.socket, 'webrtc:ice-candidate'), { candidate: CANDIDATE.candidate, from: a.user.id });
      await ok(b.socket, 'webrtc:ice-candidate', CANDIDATE);
      assert.deepEqual(await waitFor(a.socket, 'webrtc:ice-candidate'), { candidate: CANDIDATE.candidate, from: b.user.id });
      // An audio offer keeps its type.
      const audio = await offerReceived(b, a);
      assert.equal(audio.type, 'audio');
      assert.equal(audio.from, b.user.id);
      // The answered call never times out.
      await expectNone(a.socket, 'webrtc:call-timeout', CALL_TIMEOUT_SECS * 1000 + 700);
      await expectNone(b.socket, 'webrtc:call-timeout', 0);
    });

    test('call-end and call-reject are relayed as {from, fromUsername}', async (t) => {
      const server = await serverFor(t, env);
      const { a, b } = await matchPair(server.url, transports);
      await offerReceived(a, b);
      await ok(b.socket, 'webrtc:call-reject');
      assert.deepEqual(await waitFor(a.socket, 'webrtc:call-reject'), { from: b.user.id, fromUsername: b.user.username });
      await offerReceived(a, b);
      await ok(a.socket, 'webrtc:call-end');
      assert.deepEqual(await waitFor(b.socket, 'webrtc:call-end'), { from: a.user.id, fromUsername: a.user.username });
    });

    test('an unanswered offer times out for both; answer, reject, end and room close stop the timer', async (t) => {
      const server = await serverFor(t, env);
      // Five rooms at once: one control call left unanswered, four stopped in each way.
      const pairs = [];
      for (let i = 0; i < 5; i += 1) pairs.push(await matchPair(server.url, transports)); // one at a time: they share the queue
      const [control, answered, rejected, ended, closed] = pairs;
      const started = Date.now();
      await Promise.all([control, answered, rejected, ended, closed].map(({ a, b }) => offerReceived(a, b)));
      await ok(answered.b.socket, 'webrtc:answer', ANSWER);
      await ok(rejected.b.socket, 'webrtc:call-reject');
      await ok(ended.a.socket, 'webrtc:call-end');
      await ok(closed.b.socket, 'chat:leave');
      // The control call times out for both sides, the caller named.
      const expected = { from: control.a.user.id, fromUsername: control.a.user.username };
      assert.deepEqual(await waitFor(control.a.socket, 'webrtc:call-timeout', CALL_TIMEOUT_SECS * 1000 + 4000), expected);
      assert.deepEqual(await waitFor(control.b.socket, 'webrtc:call-timeout', 2000), expected);
      assert.ok(Date.now() - started >= CALL_TIMEOUT_SECS * 1000 - 200, 'not before CALL_TIMEOUT_SECS');
      // The others were stopped: their timers were due at the same time as the control's.
      for (const [name, pair] of Object.entries({ answered, rejected, ended, closed })) {
        await expectNone(pair.a.socket, 'webrtc:call-timeout', name === 'answered' ? 400 : 0).catch((error) => {
          throw new Error(`${name}: ${error.message}`);
        });
        await expectNone(pair.b.socket, 'webrtc:call-timeout', 0).catch((error) => {
          throw new Error(`${name}: ${error.message}`);
        });
      }
      await expectNone(control.a.socket, 'webrtc:call-timeout', 200);
    });

    test('malformed signaling fails with webrtc:error "Invalid … format"', async (t) => {
      const server = await serverFor(t, env);
      const { a, b } = await matchPair(server.url, transports);
      const cases = [
        ['webrtc:offer', { offer: { type: 'answer', sdp: SDP_OFFER }, type: 'audio' }, 'invalid_input', 'Invalid offer format'],
        ['webrtc:offer', { offer: { type: 'offer' }, type: 'audio' }, 'invalid_input', 'Invalid offer format'],
        ['webrtc:offer', { offer: 'v=0', type: 'audio' }, 'invalid_input', 'Invalid offer format'],
        ['webrtc:offer', { offer: { type: 'offer', sdp: SDP_OFFER }, type: 'hologram' }, 'invalid_input', 'Invalid offer format'],
        ['webrtc:offer', { offer: { type: 'offer', sdp: 'a'.repeat(64 * 1024 + 1) }, type: 'video' }, 'too_large', 'Invalid offer format'],
        ['webrtc:answer', { answer: { type: 'offer', sdp: SDP_ANSWER } }, 'invalid_input', 'Invalid answer format'],
        ['webrtc:answer', {}, 'invalid_input', 'Invalid answer format'],
        ['webrtc:answer', { answer: { type: 'answer', sdp: 'b'.repeat(64 * 1024 + 1) } }, 'too_large', 'Invalid answer format'],
        ['webrtc:ice-candidate', {}, 'invalid_input', 'Invalid candidate format'],
        ['webrtc:ice-candidate', { candidate: { sdpMid: '0' } }, 'invalid_input', 'Invalid candidate format'],
        ['webrtc:ice-candidate', { candidate: { candidate: 'c'.repeat(5000), sdpMid: '0', sdpMLineIndex: 0 } }, 'too_large', 'Invalid candidate format'],
      ];
      for (const [event, payload, code, message] of cases) {
        const what = `${event} ${JSON.stringify(payload).slice(0, 80)}`;
        assertAckError(assert, await emitAck(a.socket, event, payload), code, what);
        assert.deepEqual(await waitFor(a.socket, 'webrtc:error'), { message }, what);
      }
      // A largest-but-valid SDP (64 KiB) still goes through.
      const big = await offerReceived(a, b, { offer: { type: 'offer', sdp: 's'.repeat(64 * 1024) }, type: 'video' });
      assert.equal(big.offer.sdp.length, 64 * 1024);
      await expectNone(b.socket, 'webrtc:answer', 0);
      await expectNone(b.socket, 'webrtc:ice-candidate', 0);
      assert.equal(a.socket.connected, true);
    });

    test('outside a chat: not_in_chat and webrtc:error "Not connected to user"', async (t) => {
      const server = await serverFor(t, env);
      const guest = await guestOnline(server.url, transports);
      const cases = [
        ['webrtc:offer', OFFER],
        ['webrtc:answer', ANSWER],
        ['webrtc:ice-candidate', CANDIDATE],
        // Membership is judged before the payload.
        ['webrtc:offer', { offer: 5 }],
        ['webrtc:answer', {}],
        ['webrtc:ice-candidate', { candidate: 'x'.repeat(5000) }],
        ['webrtc:call-end', undefined],
        ['webrtc:call-reject', undefined],
      ];
      for (const [event, payload] of cases) {
        assertAckError(assert, await emitAck(guest.socket, event, payload), 'not_in_chat', event);
        assert.deepEqual(await waitFor(guest.socket, 'webrtc:error'), { message: 'Not connected to user' }, event);
      }
      // Without an ack, the failure also comes as an `error` event.
      guest.socket.emit('webrtc:offer', OFFER);
      assert.deepEqual(await waitFor(guest.socket, 'webrtc:error'), { message: 'Not connected to user' });
      const error = await waitFor(guest.socket, 'error');
      assert.deepEqual({ event: error.event, code: error.code }, { event: 'webrtc:offer', code: 'not_in_chat' });
    });

    test('while the partner is away: webrtc:error "Connected user is not available"; a call whose room closes never times out', async (t) => {
      // Here the call timer (3 s) is longer than the grace (1 s).
      const server = await serverFor(t, { CHAT__WEBRTC__CALL_TIMEOUT_SECS: '3', CHAT__CHAT__RECONNECT_GRACE_SECS: '1' });
      const { a, b } = await matchPair(server.url, transports);
      const offered = Date.now();
      await offerReceived(a, b);
      b.socket.io.engine.close();
      await waitFor(a.socket, 'partner:disconnected');
      const ack = await emitAck(a.socket, 'webrtc:ice-candidate', CANDIDATE);
      assert.equal(ack.ok, false, JSON.stringify(ack));
      assert.equal(ack.error.code, 'unavailable');
      assert.deepEqual(await waitFor(a.socket, 'webrtc:error'), { message: 'Connected user is not available' });
      // The grace ends, the room closes; the pending offer never times out.
      assert.equal((await waitFor(a.socket, 'room:closed', 5000)).reason, 'partner_disconnected');
      await expectNone(a.socket, 'webrtc:call-timeout', Math.max(0, offered + 3500 - Date.now()));
    });
  });
}
