// Many nodes as one service: three chat-server processes on one private Redis.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { redisAvailable, startRedis } from './lib/redis.js';
import {
  api,
  connect,
  createGuest,
  emitAck,
  eventually,
  guestOnline,
  startServer,
  waitFor,
  waitForArgs,
} from './lib/server.js';

const available = redisAvailable();

async function startCluster(redis, count, env = {}) {
  const nodes = [];
  for (let index = 0; index < count; index += 1) {
    nodes.push(await startServer({ REDIS_URL: redis.url, CHAT__STATS__BROADCAST_INTERVAL_MS: '100', ...env }));
  }
  return nodes;
}

/** A guest created on `createOn`, connected to `node`. */
async function userOn(node, createOn = node) {
  const guest = await createGuest(createOn.url, {});
  const { socket, established } = await connect(node.url, guest.token, ['websocket']);
  return { ...guest, socket, established, node };
}

async function pairAcross(first, second) {
  const a = await userOn(first);
  const b = await userOn(second);
  assert.equal((await emitAck(a.socket, 'match:search', {})).ok, true);
  await waitFor(a.socket, 'match:searching');
  assert.equal((await emitAck(b.socket, 'match:search', {})).ok, true);
  const [foundA, foundB] = await Promise.all([waitFor(a.socket, 'match:found'), waitFor(b.socket, 'match:found')]);
  return { a, b, foundA, foundB };
}

describe('three nodes on one Redis', { skip: !available && 'redis-server is not installed' }, () => {
  let redis;
  let nodes;

  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(redis, 3, { CHAT__WEBRTC__CALL_TIMEOUT_SECS: '1', CHAT__CHAT__RECONNECT_GRACE_SECS: '3' });
  });

  after(async () => {
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  test('each node says it runs on Redis', async () => {
    for (const node of nodes) {
      const ready = await api(node.url, 'GET', '/readyz');
      assert.deepEqual(ready.body, { storage: 'redis', redis: 'up' });
    }
  });

  test('a session created on one node connects on another, and stats count every node', async () => {
    const before = (await api(nodes[2].url, 'GET', '/api/stats')).body.stats.onlineUsers;
    const user = await userOn(nodes[1], nodes[0]);
    assert.equal(user.established.userId, user.user.id);
    await eventually(async () => (await api(nodes[2].url, 'GET', '/api/stats')).body.stats.onlineUsers === before + 1, 5000, 'node 2 to count a user online on node 1');
    const online = await api(nodes[0].url, 'GET', '/api/users/online?limit=100');
    assert.ok(online.body.users.some((entry) => entry.id === user.user.id), 'the online list of node 0 shows a user of node 1');
    user.socket.close();
  });

  test('the whole life of a chat across nodes', async () => {
    const { a, b, foundA, foundB } = await pairAcross(nodes[0], nodes[1]);
    assert.equal(foundA.roomId, foundB.roomId);
    assert.equal(foundA.partner.id, b.user.id);
    assert.equal(foundB.partner.id, a.user.id);
    assert.notEqual(foundA.initiator, foundB.initiator, 'exactly one initiator');

    // Messages both ways with receipts.
    const ack = await emitAck(a.socket, 'chat:message', { type: 'text', content: 'hello from node 0', clientId: 'c1' });
    assert.equal(ack.ok, true);
    const [message, reply] = await waitForArgs(b.socket, 'chat:message');
    assert.equal(message.id, ack.message.id);
    assert.equal(message.senderId, a.user.id);
    assert.equal(typeof reply, 'function', 'the server asks for an ack');
    reply();
    const delivered = await waitFor(a.socket, 'message:delivered');
    assert.equal(delivered.id, ack.message.id);
    const back = await emitAck(b.socket, 'chat:message', { type: 'text', content: 'hi from node 1' });
    const [received] = await waitForArgs(a.socket, 'chat:message');
    assert.equal(received.id, back.message.id);
    assert.equal((await emitAck(a.socket, 'message:delivered', { id: back.message.id })).confirmed, true);
    await waitFor(b.socket, 'message:delivered', undefined, (payload) => payload.id === back.message.id);

    // Typing.
    a.socket.emit('chat:typing', { isTyping: true });
    assert.deepEqual(await waitFor(b.socket, 'chat:typing'), { from: a.user.id, isTyping: true });

    // A file uploaded through a third node, sent as a message.
    const form = new FormData();
    form.append('file', new Blob([Buffer.from('\x89PNG\r\n\x1a\nrest-of-image', 'latin1')]), 'pic.png');
    const upload = await api(nodes[2].url, 'POST', '/api/files', { token: a.token, body: form });
    assert.equal(upload.status, 201, JSON.stringify(upload.body));
    assert.equal(upload.body.file.fileType, 'image');
    assert.equal((await emitAck(a.socket, 'chat:message', { type: 'file', content: { fileId: upload.body.file.fileId } })).ok, true);
    const [fileMessage, fileAck] = await waitForArgs(b.socket, 'chat:message');
    fileAck();
    const download = await fetch(nodes[2].url + fileMessage.content.fileUrl);
    assert.equal(download.status, 200);
    assert.equal(download.headers.get('content-type'), 'image/png');

    // Call signaling, then an unanswered call times out for both.
    const offer = { type: 'offer', sdp: 'v=0\r\n' };
    assert.equal((await emitAck(a.socket, 'webrtc:offer', { offer, type: 'video' })).ok, true);
    const incoming = await waitFor(b.socket, 'webrtc:offer');
    assert.deepEqual(incoming.offer, offer);
    assert.equal(incoming.from, a.user.id);
    assert.equal((await emitAck(b.socket, 'webrtc:answer', { answer: { type: 'answer', sdp: 'v=0\r\n' } })).ok, true);
    assert.equal((await waitFor(a.socket, 'webrtc:answer')).from, b.user.id);
    assert.equal((await emitAck(b.socket, 'webrtc:ice-candidate', { candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 } })).ok, true);
    assert.equal((await waitFor(a.socket, 'webrtc:ice-candidate')).from, b.user.id);
    assert.equal((await emitAck(a.socket, 'webrtc:call-end')).ok, true);
    await waitFor(b.socket, 'webrtc:call-end');
    assert.equal((await emitAck(b.socket, 'webrtc:offer', { offer, type: 'audio' })).ok, true);
    await waitFor(a.socket, 'webrtc:offer');
    const [timeoutA, timeoutB] = await Promise.all([waitFor(a.socket, 'webrtc:call-timeout', 5000), waitFor(b.socket, 'webrtc:call-timeout', 5000)]);
    assert.equal(timeoutA.from, b.user.id);
    assert.equal(timeoutB.from, b.user.id);

    // A drops and comes back on the third node within the grace period: the chat goes on.
    a.socket.close();
    assert.equal((await waitFor(b.socket, 'partner:disconnected')).graceSecs, 3);
    const { socket: again } = await connect(nodes[2].url, a.token, ['websocket']);
    await waitFor(b.socket, 'partner:reconnected');
    const later = await emitAck(b.socket, 'chat:message', { type: 'text', content: 'welcome back' });
    assert.equal(later.ok, true, JSON.stringify(later));
    const [welcome, welcomeAck] = await waitForArgs(again, 'chat:message');
    assert.equal(welcome.id, later.message.id);
    welcomeAck();
    await waitFor(b.socket, 'message:delivered', undefined, (payload) => payload.id === later.message.id);

    // Next: the old room closes for the partner, and its file is gone.
    assert.equal((await emitAck(again, 'match:next', {})).ok, true);
    assert.equal((await waitFor(b.socket, 'room:closed')).reason, 'partner_left');
    const gone = await fetch(nodes[2].url + fileMessage.content.fileUrl);
    assert.ok([403, 404].includes(gone.status), `the file of the closed room is gone (${gone.status})`);
    await emitAck(again, 'match:cancel');
    again.close();
    b.socket.close();
  });

  test('a second socket of the session on another node replaces the first', async () => {
    const first = await userOn(nodes[0]);
    const { socket: second } = await connect(nodes[1].url, first.token, ['websocket']);
    await waitFor(first.socket, 'session:replaced');
    await waitFor(first.socket, 'disconnect');
    assert.equal(second.connected, true);
    second.close();
  });

  test('many searchers at once on three nodes are each paired exactly once', async () => {
    const count = 30;
    const users = await Promise.all(Array.from({ length: count }, (_, index) => userOn(nodes[index % 3])));
    const found = users.map((user) => waitFor(user.socket, 'match:found', 15000));
    await Promise.all(users.map((user) => emitAck(user.socket, 'match:search', {})));
    const results = await Promise.all(found);
    const partnerOf = new Map(results.map((payload, index) => [users[index].user.id, payload.partner.id]));
    assert.equal(partnerOf.size, count);
    for (const [user, partner] of partnerOf) {
      assert.notEqual(user, partner);
      assert.equal(partnerOf.get(partner), user, 'pairs are symmetric');
    }
    const initiators = results.filter((payload) => payload.initiator).length;
    assert.equal(initiators, count / 2, 'one initiator per pair');
    for (const user of users) user.socket.close();
  });
});

describe('surviving a Redis outage', { skip: !available && 'redis-server is not installed' }, () => {
  let redis;
  let nodes;

  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(redis, 2);
  });

  after(async () => {
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  test('chats and new sessions go on while Redis is down, and the nodes rejoin when it returns', async () => {
    // A chat on each node.
    const pairs = [await pairAcross(nodes[0], nodes[0]), await pairAcross(nodes[1], nodes[1])];
    const created = [];
    await redis.kill();
    for (const node of nodes) {
      await eventually(async () => (await api(node.url, 'GET', '/readyz')).body.storage === 'memory', 10000, 'memory mode');
    }
    for (const { a, b } of pairs) {
      const ack = await emitAck(a.socket, 'chat:message', { type: 'text', content: 'during the outage' });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      const [message, reply] = await waitForArgs(b.socket, 'chat:message');
      assert.equal(message.id, ack.message.id);
      reply();
      await waitFor(a.socket, 'message:delivered');
    }
    for (const node of nodes) {
      const guest = await createGuest(node.url, {});
      created.push({ node, guest });
      assert.equal((await api(node.url, 'GET', '/api/guest/me', { token: guest.token })).status, 200);
    }
    // Matching among a node's own users still works.
    const local = await pairAcross(nodes[1], nodes[1]);
    assert.equal(local.foundA.roomId, local.foundB.roomId);

    await redis.restart();
    for (const node of nodes) {
      await eventually(async () => {
        const ready = (await api(node.url, 'GET', '/readyz')).body;
        return ready.storage === 'redis' && ready.redis === 'up';
      }, 15000, 'redis mode again');
    }
    // Sessions created during the outage are in Redis: every node knows them.
    for (const { guest } of created) {
      for (const node of nodes) {
        const me = await api(node.url, 'GET', '/api/guest/me', { token: guest.token });
        assert.equal(me.status, 200, `session created during the outage is known to ${node.url}`);
      }
    }
    // The chats go on.
    for (const { a, b } of [...pairs, local]) {
      const ack = await emitAck(b.socket, 'chat:message', { type: 'text', content: 'after the outage' });
      assert.equal(ack.ok, true);
      await waitFor(a.socket, 'chat:message', undefined, (message) => message.id === ack.message.id);
    }
    for (const { a, b } of [...pairs, local]) {
      a.socket.close();
      b.socket.close();
    }
  });
});
