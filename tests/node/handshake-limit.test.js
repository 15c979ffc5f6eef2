// The handshake limit per client address counts across every node on one Redis: three
// chat-server processes share one allowance of `CHAT__RATE__HANDSHAKES_PER_10S`.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';

import { redisAvailable, startRedis } from './lib/redis.js';
import { connect, connectRefused, createGuest, startServer } from './lib/server.js';

const available = redisAvailable();
const LIMIT = 6;
const REFUSAL = '{"code":4,"message":"Too many handshakes"}';

/** A bare polling handshake from `localAddress`: resolves `{status, body}`. */
function handshake(url, localAddress = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const outgoing = request(`${url}/socket.io/?EIO=4&transport=polling`, { localAddress }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode, body }));
    });
    outgoing.once('error', reject);
    outgoing.end();
  });
}

describe('the handshake limit on three nodes', { skip: !available && 'redis-server is not installed' }, () => {
  let redis;
  const nodes = [];

  before(async () => {
    redis = await startRedis();
    for (let index = 0; index < 3; index += 1) {
      nodes.push(await startServer({ REDIS_URL: redis.url, CHAT__RATE__HANDSHAKES_PER_10S: String(LIMIT) }));
    }
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  test('handshakes from one address spread over the nodes are refused past the limit, on every node', async () => {
    // Sessions are REST: not counted.
    const guests = [];
    for (let index = 0; index < LIMIT; index += 1) guests.push(await createGuest(nodes[0].url, {}));

    // The allowance, spread round-robin over the three nodes and both transports.
    const sockets = [];
    for (let index = 0; index < LIMIT; index += 1) {
      const transports = index % 2 === 0 ? ['websocket'] : ['polling'];
      const { socket } = await connect(nodes[index % 3].url, guests[index].token, transports);
      sockets.push(socket);
    }

    // Past it, each node refuses, as a single node over its own limit does: HTTP 429 with the
    // Engine.IO error, which socket.io-client reports as a transport error.
    const overWebSocket = await connectRefused(nodes[0].url, ['websocket'], { auth: { token: guests[0].token } });
    assert.equal(overWebSocket.message, 'websocket error');
    assert.match(String(overWebSocket.description?.message), /Unexpected server response: 429/);
    const overPolling = await connectRefused(nodes[1].url, ['polling'], { auth: { token: guests[1].token } });
    assert.equal(overPolling.message, 'xhr poll error');
    assert.equal(overPolling.description, 429);
    assert.deepEqual(await handshake(nodes[2].url), { status: 429, body: REFUSAL });

    // Open sessions are never counted, and another address has its own allowance.
    assert.ok(sockets.every((socket) => socket.connected), 'the admitted sockets stay connected');
    const other = await handshake(nodes[2].url, '127.0.0.2');
    assert.equal(other.status, 200, other.body);
    assert.ok(other.body.startsWith('0{'), other.body);

    for (const socket of sockets) socket.close();
  });
});
