// The deployment's reverse proxy: Debian's nginx running deploy/nginx/chat.conf (only its
// listen port and upstream servers replaced) in front of two chat-server nodes on one private
// Redis, driven by the real socket.io-client over WebSocket, long-polling and the upgrade.
//
// Every client of these tests sends from its own loopback address (127.0.0.x), so that nginx
// sees many clients: its `hash $remote_addr consistent` sends each to one node, and the nodes
// (which trust 127.0.0.1, the proxy) see each client's address in X-Forwarded-For.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { addressesByNode, agentFrom, metric, nginxAvailable, send, startNginx } from './lib/nginx.js';
import { redisAvailable, startRedis } from './lib/redis.js';
import {
  STATS_KEYS,
  TRANSPORTS,
  closeSockets,
  connect,
  emitAck,
  eventually,
  startServer,
  transportName,
  waitFor,
  waitForArgs,
} from './lib/server.js';

const hasNginx = nginxAvailable();
const hasRedis = redisAvailable();
const skip = (!hasNginx && 'nginx is not installed (apt-get install nginx; .ci/run installs it)') || (!hasRedis && 'redis-server is not installed');
if (skip) console.log(`# notice: proxy tests skipped: ${skip}`);

/** Nodes behind the proxy: the proxy trusted, 3 guest sessions per client address a minute. */
const NODE_ENV = {
  CHAT__SERVER__TRUSTED_PROXIES: '127.0.0.1',
  CHAT__RATE__SESSIONS_PER_MINUTE: '3',
  CHAT__STATS__BROADCAST_INTERVAL_MS: '100',
};

/** Client addresses the probe finds per node; each test takes fresh ones. */
const ADDRESSES_PER_NODE = 10;

describe('two nodes on one Redis behind nginx', { skip }, () => {
  let redis;
  let nodes = [];
  let proxy;
  let pool; // pool[i]: unused client addresses that nginx sends to nodes[i]

  /** A client address nginx routes to `nodes[index]`, not used by any test before. */
  function clientOn(index) {
    const address = pool[index].shift();
    if (!address) throw new Error(`no unused client address left for node ${index}: raise ADDRESSES_PER_NODE`);
    return address;
  }

  /** `POST /api/guest` through the proxy from `address`; asserts 201. */
  async function guestFrom(address, profile = {}) {
    const response = await send(`${proxy.url}/api/guest`, { method: 'POST', json: profile, localAddress: address });
    assert.equal(response.status, 201, `POST /api/guest from ${address}: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body;
  }

  /** Socket.IO connects (from the node's own view, not through the proxy) of every node. */
  const connects = () => Promise.all(nodes.map((node) => metric(node.url, 'chat_socket_connects_total')));

  /**
   * A guest created and connected through the proxy from a fresh address routed to
   * `nodes[index]`; checks with that node's own counter that the socket really is there.
   */
  async function userOn(index, transports) {
    const address = clientOn(index);
    const guest = await guestFrom(address);
    const before = await connects();
    const { socket, established } = await connect(proxy.url, guest.token, transports, { agent: agentFrom(address) });
    assert.equal(established.userId, guest.user.id);
    const afterwards = await connects();
    const grew = afterwards.map((count, node) => count - before[node]);
    assert.deepEqual(grew, nodes.map((_, node) => (node === index ? 1 : 0)), `the socket from ${address} is on node ${index} (connects per node: ${grew})`);
    return { ...guest, socket, address, node: index };
  }

  /** A on node 0 and B on node 1, both through the proxy, matched. */
  async function pairAcrossNodes(transports) {
    const a = await userOn(0, transports);
    const b = await userOn(1, transports);
    assert.equal((await emitAck(a.socket, 'match:search', {})).ok, true);
    await waitFor(a.socket, 'match:searching');
    assert.equal((await emitAck(b.socket, 'match:search', {})).ok, true);
    const [foundA, foundB] = await Promise.all([waitFor(a.socket, 'match:found'), waitFor(b.socket, 'match:found')]);
    assert.equal(foundA.roomId, foundB.roomId);
    assert.equal(foundA.partner.id, b.user.id);
    assert.equal(foundB.partner.id, a.user.id);
    return { a, b, roomId: foundA.roomId };
  }

  before(async () => {
    redis = await startRedis();
    nodes = [await startServer({ REDIS_URL: redis.url, ...NODE_ENV }), await startServer({ REDIS_URL: redis.url, ...NODE_ENV })];
    proxy = await startNginx(nodes.map((node) => `127.0.0.1:${node.port}`));
    pool = await addressesByNode(proxy, nodes.map((node) => node.port), ADDRESSES_PER_NODE);
  });

  after(async () => {
    if (proxy && closeSockets(proxy.url) > 0 && nodes.length) {
      await eventually(async () => (await send(`${nodes[0].url}/api/stats`)).body?.stats?.onlineUsers === 0, 5000, 'every user to be offline').catch(() => {});
    }
    await proxy?.stop();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  // Runs first, right after the nodes said `listening`: a node subscribes to its bus channel
  // before it serves, so what other nodes send its users right away is not lost.
  test('a node receives what other nodes send its users as soon as it is listening', async () => {
    const { a, b } = await pairAcrossNodes(['websocket']);
    try {
      const toNewest = await emitAck(a.socket, 'chat:message', { type: 'text', content: 'to the node started last' });
      assert.equal(toNewest.ok, true, JSON.stringify(toNewest));
      const toOldest = await emitAck(b.socket, 'chat:message', { type: 'text', content: 'to the node started first' });
      assert.equal(toOldest.ok, true, JSON.stringify(toOldest));
      const [atB, atA] = await Promise.allSettled([
        waitFor(b.socket, 'chat:message', undefined, (message) => message.id === toNewest.message.id),
        waitFor(a.socket, 'chat:message', undefined, (message) => message.id === toOldest.message.id),
      ]);
      assert.equal(atB.status, 'fulfilled', `node 1 (started last) lost the message node 0 relayed right after start: ${atB.reason?.message}`);
      assert.equal(atA.status, 'fulfilled', `node 0 lost the message node 1 relayed right after start: ${atA.reason?.message}`);
    } finally {
      a.socket.close();
      b.socket.close();
    }
  });

  test('REST, health and readiness pass through; /metrics stays private', async () => {
    const address = clientOn(0);
    const health = await send(`${proxy.url}/healthz`, { localAddress: address });
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: 'ok' });
    const ready = await send(`${proxy.url}/readyz`, { localAddress: address });
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { storage: 'redis', redis: 'up' });
    const own = await send(`${proxy.url}/nginx-health`, { localAddress: address });
    assert.equal(own.status, 200);
    assert.equal(own.body, 'ok\n');
    assert.equal((await send(`${proxy.url}/metrics`, { localAddress: address })).status, 404, 'the proxy does not serve /metrics');
    assert.equal(await metric(nodes[0].url, 'chat_redis_up'), 1, 'each node serves /metrics itself');

    const guest = await guestFrom(address, { username: 'Proxy_Tester', language: 'en' });
    assert.equal(guest.user.username, 'Proxy_Tester');
    const me = await send(`${proxy.url}/api/guest/me`, { token: guest.token, localAddress: address });
    assert.equal(me.status, 200);
    assert.equal(me.body.user.id, guest.user.id);
    const patched = await send(`${proxy.url}/api/guest/me`, { method: 'PATCH', token: guest.token, json: { location: 'Paris' }, localAddress: address });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.user.location, 'Paris');
    const refreshed = await send(`${proxy.url}/api/guest/refresh`, { method: 'POST', token: guest.token, localAddress: address });
    assert.equal(refreshed.status, 200);
    assert.equal(typeof refreshed.body.token, 'string');
    const stats = await send(`${proxy.url}/api/stats`, { localAddress: address });
    assert.equal(stats.status, 200);
    assert.deepEqual(Object.keys(stats.body.stats).sort(), [...STATS_KEYS].sort());
    const online = await send(`${proxy.url}/api/users/online?limit=5`, { localAddress: address });
    assert.equal(online.status, 200);
    assert.ok(Array.isArray(online.body.users));
    // Errors come from the node, in the contract's shape, not as nginx pages.
    const missing = await send(`${proxy.url}/api/nope`, { localAddress: address });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'not_found');
    const anonymous = await send(`${proxy.url}/api/guest/me`, { localAddress: address });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.error.code, 'auth_required');
    const deleted = await send(`${proxy.url}/api/guest/me`, { method: 'DELETE', token: refreshed.body.token, localAddress: address });
    assert.equal(deleted.status, 204);
  });

  for (const transports of TRANSPORTS) {
    test(`over ${transportName(transports)}: two users on different nodes are matched and chat with receipts`, async () => {
      const { a, b } = await pairAcrossNodes(transports);
      const expected = transports.includes('websocket') ? 'websocket' : 'polling';
      for (const user of [a, b]) assert.equal(user.socket.io.engine.transport.name, expected, 'transport in use');

      const ack = await emitAck(a.socket, 'chat:message', { type: 'text', content: `hello over ${transportName(transports)}`, clientId: 'p1' });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      const [message, reply] = await waitForArgs(b.socket, 'chat:message');
      assert.equal(message.id, ack.message.id);
      assert.equal(message.senderId, a.user.id);
      assert.equal(typeof reply, 'function', 'the server asks for an ack');
      reply();
      const delivered = await waitFor(a.socket, 'message:delivered');
      assert.equal(delivered.id, ack.message.id);

      const back = await emitAck(b.socket, 'chat:message', { type: 'text', content: 'and back' });
      assert.equal(back.ok, true, JSON.stringify(back));
      const [received, receivedAck] = await waitForArgs(a.socket, 'chat:message');
      assert.equal(received.id, back.message.id);
      receivedAck();
      await waitFor(b.socket, 'message:delivered', undefined, (payload) => payload.id === back.message.id);

      a.socket.emit('chat:typing', { isTyping: true });
      assert.deepEqual(await waitFor(b.socket, 'chat:typing'), { from: a.user.id, isTyping: true });

      if (transports.includes('polling')) {
        // Sticky routing: every Engine.IO request of a client went to its one node, and none
        // was refused (a polling request reaching the other node gets 400 "Session ID unknown").
        const log = proxy.accessLog().split('\n').filter((line) => line.includes('/socket.io/'));
        for (const user of [a, b]) {
          const mine = log.filter((line) => line.startsWith(`${user.address} `));
          assert.ok(mine.length >= 2, `the access log shows the polling requests of ${user.address}:\n${log.join('\n')}`);
          for (const line of mine) {
            const [, upstream, status] = line.split(' ');
            assert.equal(upstream, `127.0.0.1:${nodes[user.node].port}`, `request of ${user.address} went to node ${user.node}: ${line}`);
            assert.ok(['200', '101'].includes(status), `request of ${user.address} succeeded: ${line}`);
          }
        }
      }
      assert.equal((await emitAck(a.socket, 'match:next', {})).ok, true);
      assert.equal((await waitFor(b.socket, 'room:closed')).reason, 'partner_left');
      await emitAck(a.socket, 'match:cancel');
      a.socket.close();
      b.socket.close();
    });
  }

  test('files larger than nginx\'s default body limit pass; past FILES__MAX_BYTES the node refuses in its own words', async () => {
    const { a, b } = await pairAcrossNodes(['websocket']);
    // 2 MiB: over nginx's default client_max_body_size (1 MiB), under FILES__MAX_BYTES.
    const png = Buffer.alloc(2 * 1024 * 1024, 7);
    Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').copy(png);
    const form = new FormData();
    form.append('file', new Blob([png]), 'big.png');
    const upload = await send(`${proxy.url}/api/files`, { method: 'POST', token: a.token, form, localAddress: a.address });
    assert.equal(upload.status, 201, JSON.stringify(upload.body));
    assert.equal(upload.body.file.fileSize, png.length);
    assert.equal((await emitAck(a.socket, 'chat:message', { type: 'file', content: { fileId: upload.body.file.fileId } })).ok, true);
    const [message, messageAck] = await waitForArgs(b.socket, 'chat:message');
    messageAck();
    const download = await send(proxy.url + message.content.fileUrl, { localAddress: b.address });
    assert.equal(download.status, 200);
    assert.equal(download.headers['content-type'], 'image/png');
    assert.ok(Buffer.compare(download.body, png) === 0, 'the partner downloads the same bytes through the proxy');

    // One byte over the node's limit (10 MiB): nginx lets it through (11 MiB for /api/files)
    // and the node answers 413 in the contract's error shape.
    const huge = new FormData();
    const bytes = Buffer.alloc(10 * 1024 * 1024 + 1, 7);
    Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').copy(bytes);
    huge.append('file', new Blob([bytes]), 'huge.png');
    const refused = await send(`${proxy.url}/api/files`, { method: 'POST', token: a.token, form: huge, localAddress: a.address });
    assert.equal(refused.status, 413, `status ${refused.status}: ${String(refused.body).slice(0, 200)}`);
    assert.equal(refused.body?.error?.code, 'too_large', `the node's JSON error, not nginx's page: ${String(refused.body).slice(0, 200)}`);
    a.socket.close();
    b.socket.close();
  });

  test('POST /api/guest is limited per client address as forwarded by the proxy, never by what a client claims', async () => {
    const first = clientOn(0);
    // Three sessions a minute per address; a forged X-Forwarded-For buys no new budget: nginx
    // appends the real address and the node takes the right-most untrusted entry.
    for (let i = 1; i <= 3; i += 1) {
      const created = await send(`${proxy.url}/api/guest`, { method: 'POST', headers: { 'x-forwarded-for': `203.0.113.${i}` }, localAddress: first });
      assert.equal(created.status, 201, `session ${i} from ${first}: ${JSON.stringify(created.body)}`);
    }
    const limited = await send(`${proxy.url}/api/guest`, { method: 'POST', headers: { 'x-forwarded-for': '203.0.113.99' }, localAddress: first });
    assert.equal(limited.status, 429, JSON.stringify(limited.body));
    assert.equal(limited.body.error.code, 'rate_limited');
    const retry = Number(limited.headers['retry-after']);
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${limited.headers['retry-after']}`);

    // Another client behind the same proxy, on the same node: the node sees the same peer
    // (nginx, 127.0.0.1) but another forwarded address, so it has its own budget.
    const second = clientOn(0);
    const other = await send(`${proxy.url}/api/guest`, { method: 'POST', localAddress: second });
    assert.equal(other.status, 201, `a second client behind the proxy is not limited: ${JSON.stringify(other.body)}`);

    // The budget is the store's (Redis), so the other node knows it too: a request that its
    // trusted proxy (127.0.0.1) forwards for the first client is refused there as well.
    const elsewhere = await send(`${nodes[1].url}/api/guest`, { method: 'POST', headers: { 'x-forwarded-for': first }, localAddress: '127.0.0.1' });
    assert.equal(elsewhere.status, 429, `node 1 counts the first client's sessions made on node 0: ${JSON.stringify(elsewhere.body)}`);

    // A client that reaches a node directly (not a trusted proxy) cannot claim to be anybody.
    const direct = clientOn(1);
    const claimed = await send(`${nodes[1].url}/api/guest`, { method: 'POST', headers: { 'x-forwarded-for': first }, localAddress: direct });
    assert.equal(claimed.status, 201, `X-Forwarded-For from an untrusted peer is ignored: ${JSON.stringify(claimed.body)}`);
  });
});

describe('a node that does not trust the proxy', { skip }, () => {
  let node;
  let proxy;

  before(async () => {
    node = await startServer({ CHAT__RATE__SESSIONS_PER_MINUTE: '3' }); // no TRUSTED_PROXIES
    proxy = await startNginx([`127.0.0.1:${node.port}`]);
  });

  after(async () => {
    await proxy?.stop();
    await node?.stop();
  });

  test('sees every client as the proxy: X-Forwarded-For is ignored and all share one budget', async () => {
    for (let last = 2; last <= 4; last += 1) {
      const created = await send(`${proxy.url}/api/guest`, { method: 'POST', headers: { 'x-forwarded-for': `198.51.100.${last}` }, localAddress: `127.0.0.${last}` });
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
    const fourth = await send(`${proxy.url}/api/guest`, { method: 'POST', headers: { 'x-forwarded-for': '198.51.100.5' }, localAddress: '127.0.0.5' });
    assert.equal(fourth.status, 429, `a fourth, different client behind the untrusted proxy is limited: ${JSON.stringify(fourth.body)}`);
    assert.equal(fourth.body.error.code, 'rate_limited');
  });
});
