// A node dies without a word (SIGKILL) among three chat-server processes on one private Redis:
// the survivors notice within CHAT__CLUSTER__NODE_TIMEOUT_SECS, its users show offline, their
// partners hear `partner:disconnected` then `room:closed` (`partner_disconnected`) after the
// grace, unless the user reconnects to a live node in time; `/api/cluster/nodes` lists the
// live nodes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { redisAvailable, startRedis } from './lib/redis.js';
import {
  RFC3339_UTC,
  api,
  connect,
  createGuest,
  emitAck,
  eventually,
  expectNone,
  startServer,
  waitFor,
  waitForArgs,
} from './lib/server.js';

const available = redisAvailable();
const NODE_TIMEOUT_SECS = 2;
const GRACE_SECS = 2;
const ENV = {
  CHAT__CLUSTER__NODE_TIMEOUT_SECS: String(NODE_TIMEOUT_SECS),
  CHAT__CHAT__RECONNECT_GRACE_SECS: String(GRACE_SECS),
  CHAT__STATS__BROADCAST_INTERVAL_MS: '100',
};

/** A guest created and connected on `node`. */
async function userOn(node) {
  const guest = await createGuest(node.url, {});
  const { socket, established } = await connect(node.url, guest.token, ['websocket']);
  return { ...guest, socket, established, node };
}

async function pairAcross(first, second) {
  const a = await userOn(first);
  const b = await userOn(second);
  assert.equal((await emitAck(a.socket, 'match:search', {})).ok, true);
  await waitFor(a.socket, 'match:searching');
  assert.equal((await emitAck(b.socket, 'match:search', {})).ok, true);
  const [foundA] = await Promise.all([waitFor(a.socket, 'match:found'), waitFor(b.socket, 'match:found')]);
  return { a, b, roomId: foundA.roomId };
}

async function liveIds(node) {
  const { status, body } = await api(node.url, 'GET', '/api/cluster/nodes');
  assert.equal(status, 200);
  return body.nodes.map((entry) => entry.id);
}

describe('a node dies without a word', { skip: !available && 'redis-server is not installed' }, () => {
  let redis;
  const nodes = [];

  async function startNode() {
    const node = await startServer({ REDIS_URL: redis.url, ...ENV });
    nodes.push(node);
    return node;
  }

  before(async () => {
    redis = await startRedis();
    for (let index = 0; index < 3; index += 1) await startNode();
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop().catch(() => {})));
    await redis?.stop();
  });

  test('GET /api/cluster/nodes lists every live node', async () => {
    const user = await userOn(nodes[1]);
    await eventually(async () => (await liveIds(nodes[0])).length === 3, 5000, 'three live nodes');
    const { body } = await api(nodes[2].url, 'GET', '/api/cluster/nodes');
    assert.deepEqual(Object.keys(body), ['nodes']);
    for (const entry of body.nodes) {
      assert.deepEqual(Object.keys(entry).sort(), ['id', 'lastSeen', 'sockets', 'startedAt']);
      assert.match(entry.startedAt, RFC3339_UTC);
      assert.match(entry.lastSeen, RFC3339_UTC);
      assert.ok(Number.isInteger(entry.sockets) && entry.sockets >= 0);
    }
    const ids = body.nodes.map((entry) => entry.id);
    assert.deepEqual(ids, [...ids].sort(), 'sorted by id');
    await eventually(async () => {
      const { body: now } = await api(nodes[0].url, 'GET', '/api/cluster/nodes');
      return now.nodes.some((entry) => entry.sockets >= 1);
    }, 5000, 'a node counting its socket');
    user.socket.close();
  });

  test('the partner of a killed node\'s user hears partner:disconnected, then room:closed after the grace', async () => {
    const [first, , third] = nodes;
    const { a, b, roomId } = await pairAcross(first, third);
    const before = (await api(first.url, 'GET', '/api/stats')).body.stats.onlineUsers;

    const killedAt = Date.now();
    await third.kill('SIGKILL');
    const told = await waitFor(a.socket, 'partner:disconnected', (NODE_TIMEOUT_SECS + 2) * 1000);
    const noticedAfter = Date.now() - killedAt;
    assert.deepEqual(told, { graceSecs: GRACE_SECS });
    assert.ok(noticedAfter <= NODE_TIMEOUT_SECS * 1000 + 1000, `noticed after ${noticedAfter} ms`);

    const closed = await waitFor(a.socket, 'room:closed', (GRACE_SECS + 2) * 1000);
    const closedAfter = Date.now() - killedAt - noticedAfter;
    assert.deepEqual(closed, { roomId, reason: 'partner_disconnected' });
    assert.ok(closedAfter >= GRACE_SECS * 1000 - 300, `closed ${closedAfter} ms after the notice`);

    // Bob is offline everywhere; the killed node is gone from the list on every survivor.
    const stats = (await api(first.url, 'GET', '/api/stats')).body.stats;
    assert.equal(stats.onlineUsers, before - 1);
    const { body: me } = await api(first.url, 'GET', '/api/guest/me', { token: b.token });
    assert.equal(me.user?.isOnline ?? me.isOnline, false);
    for (const node of [nodes[0], nodes[1]]) {
      const ids = await liveIds(node);
      assert.equal(ids.length, 2, `${node.url}: ${ids}`);
    }
    a.socket.close();
  });

  test('a user of a killed node who reconnects to a live node within the grace keeps the chat', async () => {
    const doomed = await startNode();
    const [first, second] = nodes;
    await eventually(async () => (await liveIds(first)).length === 3, 5000, 'the new node to be seen');
    const { a, b, roomId } = await pairAcross(first, doomed);

    await doomed.kill('SIGKILL');
    await waitFor(a.socket, 'partner:disconnected', (NODE_TIMEOUT_SECS + 2) * 1000);
    // Bob's client comes back through the proxy, to another node.
    const back = await connect(second.url, b.token, ['websocket']);
    await waitFor(a.socket, 'partner:reconnected');
    await expectNone(a.socket, 'room:closed', (GRACE_SECS + 1) * 1000);

    assert.equal((await emitAck(back.socket, 'chat:message', { type: 'text', content: 'back again' })).ok, true);
    const [message] = await waitForArgs(a.socket, 'chat:message');
    assert.equal(message.roomId ?? roomId, roomId);
    assert.equal((await emitAck(a.socket, 'chat:message', { type: 'text', content: 'welcome back' })).ok, true);
    await waitFor(back.socket, 'chat:message');
    a.socket.close();
    back.socket.close();
  });

  test('a node stopped with SIGTERM runs every disconnect rule for its users before it exits', async () => {
    const leaving = await startNode();
    const [first] = nodes;
    await eventually(async () => (await liveIds(first)).length === 3, 5000, 'the new node to be seen');
    const { a, b, roomId } = await pairAcross(first, leaving);
    const before = (await api(first.url, 'GET', '/api/stats')).body.stats.onlineUsers;

    const told = waitFor(a.socket, 'partner:disconnected', (NODE_TIMEOUT_SECS + 2) * 1000);
    const exit = await leaving.terminate();
    assert.equal(exit.code, 0, 'a clean exit');
    // Bob's disconnect ran on his node before it exited: Alice is told, Bob shows offline.
    assert.deepEqual(await told, { graceSecs: GRACE_SECS });
    const { body: me } = await api(first.url, 'GET', '/api/guest/me', { token: b.token });
    assert.equal(me.user?.isOnline ?? me.isOnline, false);
    await eventually(async () => (await api(first.url, 'GET', '/api/stats')).body.stats.onlineUsers === before - 1, 5000, 'Bob to count offline');
    // The room's grace goes on without the node that stopped: it closes for Alice after it.
    const closed = await waitFor(a.socket, 'room:closed', (NODE_TIMEOUT_SECS + GRACE_SECS + 3) * 1000);
    assert.deepEqual(closed, { roomId, reason: 'partner_disconnected' });
    assert.equal((await liveIds(first)).length, 2, 'the stopped node left the list');
    a.socket.close();
  });

  test('a killed node\'s searcher leaves the queue: a newcomer is not matched with it', async () => {
    const doomed = await startNode();
    const [first] = nodes;
    await eventually(async () => (await liveIds(first)).length === 3, 5000, 'the new node to be seen');
    const carol = await userOn(doomed);
    assert.equal((await emitAck(carol.socket, 'match:search', {})).ok, true);
    await waitFor(carol.socket, 'match:searching');
    await eventually(async () => (await api(first.url, 'GET', '/api/stats')).body.stats.availableUsers === 1, 5000, 'one searcher');

    await doomed.kill('SIGKILL');
    await eventually(
      async () => (await api(first.url, 'GET', '/api/stats')).body.stats.availableUsers === 0,
      (NODE_TIMEOUT_SECS + 2) * 1000,
      'the dead node\'s searcher to leave the queue',
    );
    const erin = await userOn(first);
    assert.equal((await emitAck(erin.socket, 'match:search', {})).ok, true);
    await waitFor(erin.socket, 'match:searching');
    await expectNone(erin.socket, 'match:found', 500);
    erin.socket.close();
  });
});
