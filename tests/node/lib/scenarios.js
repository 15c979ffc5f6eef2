// Cross-node scenarios shared by the tests that run several chat-server processes on one
// Redis deployment: two users on different nodes are matched and chat (receipts, typing),
// share a file, call each other; many searchers spread over the nodes are each paired once.
// Each scenario takes the nodes (`{url}` from lib/server.js) and closes the sockets it opened.

import assert from 'node:assert/strict';

import { api, connect, createGuest, emitAck, expectNone, waitFor, waitForArgs } from './server.js';

/** A guest created through `createOn`'s REST and connected to `node`: `{token, user, socket, node}`. */
export async function userOn(node, { transports = ['websocket'], createOn = node, profile = {} } = {}) {
  const guest = await createGuest(createOn.url, profile);
  const { socket, established } = await connect(node.url, guest.token, transports);
  return { ...guest, socket, established, node };
}

/**
 * A pair matched across two nodes: A (on `first`) searches and waits, then B (on `second`).
 * Resolves `{a, b, foundA, foundB, roomId}` after checking the two `match:found` agree.
 */
export async function pairAcross(first, second, { transportsA = ['websocket'], transportsB = ['websocket'] } = {}) {
  const a = await userOn(first, { transports: transportsA });
  const b = await userOn(second, { transports: transportsB });
  assert.equal((await emitAck(a.socket, 'match:search', {})).ok, true);
  await waitFor(a.socket, 'match:searching');
  const found = Promise.all([waitFor(a.socket, 'match:found'), waitFor(b.socket, 'match:found')]);
  assert.equal((await emitAck(b.socket, 'match:search', {})).ok, true);
  const [foundA, foundB] = await found;
  assert.equal(foundA.roomId, foundB.roomId, 'one room for the two');
  assert.equal(foundA.partner.id, b.user.id);
  assert.equal(foundB.partner.id, a.user.id);
  assert.notEqual(foundA.initiator, foundB.initiator, 'exactly one initiator');
  return { a, b, foundA, foundB, roomId: foundA.roomId };
}

function closeAll(...users) {
  for (const user of users) user.socket.close();
}

/**
 * Text both ways across two nodes: the sender's ack and `message:sent`, the recipient asked
 * for an ack, `message:delivered` back once (by ack one way, by the event the other), typing.
 */
export async function chatAcross(first, second, transports = {}) {
  const { a, b, roomId } = await pairAcross(first, second, transports);
  const ack = await emitAck(a.socket, 'chat:message', { type: 'text', content: 'hello across nodes', clientId: 'x1' });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.equal(ack.message.status, 'sent');
  assert.equal(ack.message.clientId, 'x1');
  assert.deepEqual(await waitFor(a.socket, 'message:sent'), { id: ack.message.id, clientId: 'x1', timestamp: ack.message.timestamp });
  const [message, reply] = await waitForArgs(b.socket, 'chat:message');
  assert.equal(message.id, ack.message.id);
  assert.equal(message.roomId, roomId);
  assert.equal(message.senderId, a.user.id);
  assert.equal(message.content, 'hello across nodes');
  assert.equal(message.status, 'delivered');
  assert.equal(typeof reply, 'function', 'the server asks the recipient for an ack');
  reply();
  assert.equal((await waitFor(a.socket, 'message:delivered')).id, ack.message.id);

  const back = await emitAck(b.socket, 'chat:message', { type: 'text', content: 'hello back' });
  assert.equal(back.ok, true, JSON.stringify(back));
  const [received] = await waitForArgs(a.socket, 'chat:message');
  assert.equal(received.id, back.message.id);
  assert.equal(received.senderId, b.user.id);
  assert.deepEqual(await emitAck(a.socket, 'message:delivered', { id: back.message.id }), { ok: true, confirmed: true });
  assert.equal((await waitFor(b.socket, 'message:delivered')).id, back.message.id);
  assert.deepEqual(await emitAck(a.socket, 'message:delivered', { id: back.message.id }), { ok: true, confirmed: false }, 'a receipt counts once');

  a.socket.emit('chat:typing', { isTyping: true });
  assert.deepEqual(await waitFor(b.socket, 'chat:typing'), { from: a.user.id, isTyping: true });
  assert.equal((await emitAck(b.socket, 'chat:typing', { isTyping: false })).ok, true);
  assert.deepEqual(await waitFor(a.socket, 'chat:typing'), { from: b.user.id, isTyping: false });
  await expectNone(a.socket, 'message:delivered', 100);
  await expectNone(b.socket, 'message:delivered', 0);

  assert.equal((await emitAck(b.socket, 'chat:leave')).ok, true);
  assert.equal((await waitFor(a.socket, 'room:closed')).reason, 'partner_left');
  closeAll(a, b);
}

/** One text from `from` to `to`, acked by the recipient; resolves once the sender has the receipt. */
export async function relayOnce(from, to, content) {
  const ack = await emitAck(from.socket, 'chat:message', { type: 'text', content });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const [, reply] = await waitForArgs(to.socket, 'chat:message', undefined, (message) => message.id === ack.message.id);
  reply();
  await waitFor(from.socket, 'message:delivered', undefined, (delivered) => delivered.id === ack.message.id);
}

const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex'), Buffer.alloc(4096, 7)]);

/** A uploads a PNG through its own node's REST; B, on the other node, downloads it from there. */
export async function fileAcross(first, second, transports = {}) {
  const { a, b } = await pairAcross(first, second, transports);
  const form = new FormData();
  form.append('file', new Blob([PNG], { type: 'image/png' }), 'pic.png');
  const upload = await api(first.url, 'POST', '/api/files', { token: a.token, body: form });
  assert.equal(upload.status, 201, JSON.stringify(upload.body));
  assert.equal(upload.body.file.fileType, 'image');
  const sent = await emitAck(a.socket, 'chat:message', { type: 'file', content: { fileId: upload.body.file.fileId } });
  assert.equal(sent.ok, true, JSON.stringify(sent));
  const [message, reply] = await waitForArgs(b.socket, 'chat:message');
  reply();
  assert.equal(message.type, 'file');
  assert.equal(message.content.fileId, upload.body.file.fileId);
  assert.equal(message.content.fileSize, PNG.length);
  const download = await fetch(second.url + message.content.fileUrl);
  assert.equal(download.status, 200, `the partner downloads through its own node (${second.url})`);
  assert.match(download.headers.get('content-type') ?? '', /^image\/png/);
  assert.ok(Buffer.from(await download.arrayBuffer()).equals(PNG), 'the same bytes');
  await waitFor(a.socket, 'message:delivered');
  closeAll(a, b);
}

const SDP = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n';
const CANDIDATE = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 49203 typ host', sdpMid: '0', sdpMLineIndex: 0 };

/** Offer, answer and ICE candidates both ways, then call-end, relayed between two nodes. */
export async function callAcross(first, second, transports = {}) {
  const { a, b, foundA } = await pairAcross(first, second, transports);
  const [caller, callee] = foundA.initiator ? [a, b] : [b, a];
  assert.deepEqual(await emitAck(caller.socket, 'webrtc:offer', { offer: { type: 'offer', sdp: SDP }, type: 'video' }), { ok: true });
  const offer = await waitFor(callee.socket, 'webrtc:offer');
  assert.deepEqual(offer.offer, { type: 'offer', sdp: SDP });
  assert.equal(offer.type, 'video');
  assert.equal(offer.from, caller.user.id);
  assert.equal(offer.fromUsername, caller.user.username);
  assert.deepEqual(await emitAck(callee.socket, 'webrtc:answer', { answer: { type: 'answer', sdp: SDP } }), { ok: true });
  assert.deepEqual(await waitFor(caller.socket, 'webrtc:answer'), { answer: { type: 'answer', sdp: SDP }, from: callee.user.id, fromUsername: callee.user.username });
  for (const [from, to] of [[caller, callee], [callee, caller]]) {
    assert.deepEqual(await emitAck(from.socket, 'webrtc:ice-candidate', { candidate: CANDIDATE }), { ok: true });
    assert.deepEqual(await waitFor(to.socket, 'webrtc:ice-candidate'), { candidate: CANDIDATE, from: from.user.id });
  }
  assert.deepEqual(await emitAck(callee.socket, 'webrtc:call-end'), { ok: true });
  assert.deepEqual(await waitFor(caller.socket, 'webrtc:call-end'), { from: callee.user.id, fromUsername: callee.user.username });
  await expectNone(caller.socket, 'webrtc:error', 0);
  await expectNone(callee.socket, 'webrtc:error', 0);
  closeAll(a, b);
}

/**
 * `count` users, created and connected round robin over `nodes`, all search at once: each
 * gets exactly one `match:found`, partners name each other in one room, one initiator per
 * pair. With `keep`, the sockets stay open and the users are returned (the caller closes them).
 */
export async function manySearchers(nodes, count = 200, { timeout = 20000, keep = false } = {}) {
  assert.equal(count % 2, 0, 'an even number of searchers');
  const users = await Promise.all(Array.from({ length: count }, (_, index) => userOn(nodes[index % nodes.length])));
  const found = users.map((user) => waitFor(user.socket, 'match:found', timeout));
  const acks = await Promise.all(users.map((user) => emitAck(user.socket, 'match:search', {})));
  for (const ack of acks) assert.equal(ack.ok, true, JSON.stringify(ack));
  const results = await Promise.all(found);
  const byId = new Map(users.map((user, index) => [user.user.id, { user, found: results[index] }]));
  assert.equal(byId.size, count);
  let crossNode = 0;
  for (const [id, { user, found: payload }] of byId) {
    const partner = byId.get(payload.partner.id);
    assert.ok(partner, `the partner of ${id} is one of the searchers`);
    assert.notEqual(payload.partner.id, id, 'never paired with oneself');
    assert.equal(partner.found.partner.id, id, 'pairs are symmetric');
    assert.equal(partner.found.roomId, payload.roomId, 'one room per pair');
    assert.notEqual(partner.found.initiator, payload.initiator, 'one initiator per pair');
    if (partner.user.node !== user.node) crossNode += 1;
  }
  assert.equal(new Set(results.map((payload) => payload.roomId)).size, count / 2, 'one room per pair');
  // Exactly one match:found each: nothing more arrives after every pair was made.
  await expectNone(users[0].socket, 'match:found', 300);
  for (const user of users) await expectNone(user.socket, 'match:found', 0);
  if (!keep) closeAll(...users);
  return { users, results, crossNode };
}

/** `GET /readyz` of every node says Redis and up. */
export async function assertReadyOnRedis(nodes) {
  for (const node of nodes) {
    const ready = await api(node.url, 'GET', '/readyz');
    assert.equal(ready.status, 200, `${node.url}/readyz: ${JSON.stringify(ready.body)}`);
    assert.deepEqual(ready.body, { storage: 'redis', redis: 'up' }, `${node.url}/readyz`);
  }
}

/** A session created on one node is known to every other node (it lives in the shared Redis). */
export async function assertSessionShared(nodes, token) {
  for (const node of nodes) {
    const me = await api(node.url, 'GET', '/api/guest/me', { token });
    assert.equal(me.status, 200, `the session is known to ${node.url}: ${JSON.stringify(me.body)}`);
  }
}
