// The whole life of a chat on one server, as two people live it: match, messages both ways
// with receipts, a file and a voice note, a call and its hang-up, then "next" to a new
// partner, after which the old room's files are gone.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TRANSPORTS, api, emitAck, guestOnline, matchPair, serverFor, transportName, waitFor, waitForArgs } from './lib/server.js';

const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(64, 7)]);
const OGG = Buffer.concat([Buffer.from('OggS', 'latin1'), Buffer.alloc(12, 0), Buffer.from('OpusHead', 'latin1'), Buffer.alloc(200, 1)]);

async function upload(url, token, bytes, filename, duration) {
  const form = new FormData();
  form.append('file', new Blob([bytes]), filename);
  if (duration !== undefined) form.append('duration', String(duration));
  const response = await api(url, 'POST', '/api/files', { token, body: form });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.file;
}

/** Sends a chat:message from `from` to `to`, checks its relay and its receipt. */
async function sendAndConfirm(from, to, payload) {
  const ack = await emitAck(from.socket, 'chat:message', payload);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const [message, reply] = await waitForArgs(to.socket, 'chat:message', undefined, (received) => received.id === ack.message.id);
  assert.equal(message.senderId, from.user.id);
  assert.equal(message.status, 'delivered');
  reply();
  const delivered = await waitFor(from.socket, 'message:delivered', undefined, (receipt) => receipt.id === ack.message.id);
  assert.equal(typeof delivered.deliveredAt, 'string');
  return message;
}

for (const transports of TRANSPORTS) {
  describe(`the life of a chat over ${transportName(transports)}`, () => {
    test('match, talk, share, call, hang up, next: the old room leaves nothing behind', async (t) => {
      const server = await serverFor(t);
      const { a, b, foundA, foundB } = await matchPair(server.url, transports);
      assert.equal(foundA.roomId, foundB.roomId);

      await sendAndConfirm(a, b, { type: 'text', content: 'hi there', clientId: 'a-1' });
      await sendAndConfirm(b, a, { type: 'text', content: 'hello!', clientId: 'b-1' });

      const image = await upload(server.url, a.token, PNG, 'holiday.png');
      assert.equal(image.fileType, 'image');
      const imageMessage = await sendAndConfirm(a, b, { type: 'file', content: { fileId: image.fileId } });
      const seen = await fetch(server.url + imageMessage.content.fileUrl);
      assert.equal(seen.status, 200);
      assert.deepEqual(Buffer.from(await seen.arrayBuffer()), PNG);

      const voice = await upload(server.url, b.token, OGG, 'note.ogg', 2.5);
      assert.equal(voice.fileType, 'voice');
      const voiceMessage = await sendAndConfirm(b, a, { type: 'voice', content: { fileId: voice.fileId } });
      assert.equal(voiceMessage.content.duration, 2.5);
      assert.equal((await fetch(server.url + voiceMessage.content.fileUrl)).status, 200);

      const [caller, callee] = foundA.initiator ? [a, b] : [b, a];
      const offer = { type: 'offer', sdp: 'v=0\r\n' };
      assert.equal((await emitAck(caller.socket, 'webrtc:offer', { offer, type: 'video' })).ok, true);
      assert.equal((await waitFor(callee.socket, 'webrtc:offer')).from, caller.user.id);
      assert.equal((await emitAck(callee.socket, 'webrtc:answer', { answer: { type: 'answer', sdp: 'v=0\r\n' } })).ok, true);
      await waitFor(caller.socket, 'webrtc:answer');
      assert.equal((await emitAck(caller.socket, 'webrtc:call-end')).ok, true);
      assert.equal((await waitFor(callee.socket, 'webrtc:call-end')).from, caller.user.id);

      // A skips to someone new; B is told; A meets C, not B.
      const c = await guestOnline(server.url, transports);
      assert.equal((await emitAck(c.socket, 'match:search', {})).ok, true);
      await waitFor(c.socket, 'match:searching');
      assert.equal((await emitAck(a.socket, 'match:next', {})).ok, true);
      const closed = await waitFor(b.socket, 'room:closed');
      assert.deepEqual(closed, { roomId: foundA.roomId, reason: 'partner_left' });
      const [newFoundA, foundC] = await Promise.all([waitFor(a.socket, 'match:found'), waitFor(c.socket, 'match:found')]);
      assert.equal(newFoundA.partner.id, c.user.id);
      assert.equal(foundC.partner.id, a.user.id);
      assert.notEqual(newFoundA.roomId, foundA.roomId);

      for (const fileUrl of [imageMessage.content.fileUrl, voiceMessage.content.fileUrl]) {
        const gone = await fetch(server.url + fileUrl);
        assert.ok([403, 404].includes(gone.status), `the old room's file is gone (${gone.status})`);
      }
      const stats = (await api(server.url, 'GET', '/api/stats')).body.stats;
      assert.equal(stats.usersInChat, 2);
      assert.equal(stats.connectedUsers, 1);
    });
  });
}
