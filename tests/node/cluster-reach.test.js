// What reaches a socket on another node: a session deleted or expired through any node ends
// its socket wherever it is, and during a Redis outage an event for a partner on another
// node fails for its sender with `unavailable` instead of being lost.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { redisAvailable, startRedis } from './lib/redis.js';
import { api, assertAckError, connect, createGuest, emitAck, eventually, expectNone, startServer, waitFor } from './lib/server.js';

const available = redisAvailable();
const skip = !available && 'redis-server is not installed';

async function startCluster(redis, count, env = {}) {
  const nodes = [];
  for (let index = 0; index < count; index += 1) {
    nodes.push(await startServer({ REDIS_URL: redis.url, ...env }));
  }
  return nodes;
}

async function userOn(node) {
  const guest = await createGuest(node.url, {});
  const { socket } = await connect(node.url, guest.token, ['websocket']);
  return { ...guest, socket, node };
}

async function pairAcross(first, second) {
  const a = await userOn(first);
  const b = await userOn(second);
  assert.equal((await emitAck(a.socket, 'match:search', {})).ok, true);
  await waitFor(a.socket, 'match:searching');
  const found = Promise.all([waitFor(a.socket, 'match:found'), waitFor(b.socket, 'match:found')]);
  assert.equal((await emitAck(b.socket, 'match:search', {})).ok, true);
  await found;
  return { a, b };
}

describe('sessions ended through another node', { skip }, () => {
  let redis;
  let nodes;

  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(redis, 3);
  });

  after(async () => {
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  test('DELETE /api/guest/me through another node disconnects the socket where it is', async () => {
    const { a, b } = await pairAcross(nodes[0], nodes[1]);
    const disconnected = waitFor(a.socket, 'disconnect');
    const closed = waitFor(b.socket, 'room:closed');
    const deleted = await api(nodes[2].url, 'DELETE', '/api/guest/me', { token: a.token });
    assert.equal(deleted.status, 204);
    await disconnected;
    assert.equal((await closed).reason, 'partner_left');
    assert.equal(b.socket.connected, true);
    b.socket.close();
  });
});

describe('sessions expiring on any node', { skip }, () => {
  let redis;
  let nodes;

  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(redis, 3, { CHAT__SESSION__TTL_SECS: '3' });
  });

  after(async () => {
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  test('an idle socket gets session:expired and is disconnected, whichever node swept it', async () => {
    // Six idle users, two per node: the sweep hands each expired id to one node at random.
    const users = [];
    for (let index = 0; index < 6; index += 1) users.push(await userOn(nodes[index % 3]));
    const ended = users.map(async (user) => {
      await waitFor(user.socket, 'session:expired', 15000);
      await waitFor(user.socket, 'disconnect', 5000);
    });
    await Promise.all(ended);
  });
});

describe('a cross-node chat during a Redis outage', { skip }, () => {
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

  test('events for the partner on the other node fail with unavailable, by ack and webrtc:error', async () => {
    const { a, b } = await pairAcross(nodes[0], nodes[1]);
    await redis.kill();
    for (const node of nodes) {
      await eventually(async () => (await api(node.url, 'GET', '/readyz')).body.redis === 'down', 10000, 'redis down');
    }
    const message = await emitAck(a.socket, 'chat:message', { type: 'text', content: 'anyone?', clientId: 'c1' });
    assertAckError(assert, message, 'unavailable', 'chat:message');
    assert.equal(message.error.message, 'Connected user is not available');
    assertAckError(assert, await emitAck(a.socket, 'chat:typing', { isTyping: true }), 'unavailable', 'chat:typing');
    const webrtcError = waitFor(a.socket, 'webrtc:error');
    assertAckError(assert, await emitAck(a.socket, 'webrtc:offer', { offer: { type: 'offer', sdp: 'v=0\r\n' }, type: 'audio' }), 'unavailable', 'webrtc:offer');
    assert.deepEqual(await webrtcError, { message: 'Connected user is not available' });
    await expectNone(a.socket, 'message:sent', 200);
    a.socket.close();
    b.socket.close();
  });
});
