// Upload bounds (PROTOCOL.md, "Uploads are bounded"): per room CHAT__FILES__MAX_ROOM_BYTES
// (413 too_large), per user CHAT__RATE__UPLOADS_PER_MINUTE (429 rate_limited with
// Retry-After), per node in memory CHAT__FILES__MAX_TOTAL_BYTES (503 unavailable); on one node,
// then the room and user bounds across two nodes on one private Redis. Small bounds via env.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { redisAvailable, startRedis } from './lib/redis.js';
import { pairAcross } from './lib/scenarios.js';
import { api, emitAck, matchPair, serverFor, startServer, waitFor } from './lib/server.js';

const KB = 1000;

/** POST /api/files of `size` bytes of text (a document). */
async function upload(url, token, size) {
  const form = new FormData();
  form.append('file', new Blob([Buffer.alloc(size, 'a')], { type: 'text/plain' }), 'note.txt');
  return api(url, 'POST', '/api/files', { token, body: form });
}

/** Uploads and expects 201; returns the file. */
async function stored(url, token, size) {
  const response = await upload(url, token, size);
  assert.equal(response.status, 201, `${size} bytes: ${JSON.stringify(response.body)}`);
  assert.equal(response.body.file.fileSize, size);
  return response.body.file;
}

/** Uploads and expects the contract's error shape with `status` and `code`. */
async function refused(url, token, size, status, code) {
  const response = await upload(url, token, size);
  assert.equal(response.status, status, `${size} bytes: ${JSON.stringify(response.body)}`);
  assert.equal(response.body.error.code, code);
  assert.equal(typeof response.body.error.message, 'string');
  return response;
}

/** Each file downloads whole through its own URL. */
async function allDownloadable(url, files) {
  for (const file of files) {
    const response = await fetch(url + file.fileUrl);
    assert.equal(response.status, 200, file.fileUrl);
    assert.equal((await response.arrayBuffer()).byteLength, file.fileSize);
  }
}

const SMALL = { CHAT__FILES__MAX_BYTES: String(100 * KB) };

describe('upload bounds on one node', () => {
  test('a room holds at most FILES__MAX_ROOM_BYTES of live files (413), freed by chat:clear', async (t) => {
    const server = await serverFor(t, { ...SMALL, CHAT__FILES__MAX_ROOM_BYTES: String(250 * KB) });
    const { a, b } = await matchPair(server.url, ['websocket']);
    const kept = [await stored(server.url, a.token, 100 * KB), await stored(server.url, b.token, 100 * KB)];
    // Both members' uploads count against the room.
    await refused(server.url, a.token, 60 * KB, 413, 'too_large');
    kept.push(await stored(server.url, b.token, 50 * KB));
    await refused(server.url, a.token, 1, 413, 'too_large');
    await allDownloadable(server.url, kept);
    // Another room has its own budget.
    const other = await matchPair(server.url, ['websocket']);
    await stored(server.url, other.a.token, 100 * KB);

    assert.deepEqual(await emitAck(a.socket, 'chat:clear'), { ok: true, deletedFiles: 3 });
    await waitFor(b.socket, 'chat:cleared');
    await stored(server.url, a.token, 100 * KB);
    await stored(server.url, b.token, 100 * KB);
    await stored(server.url, a.token, 50 * KB);
  });

  test('each user uploads at most RATE__UPLOADS_PER_MINUTE a minute (429 with Retry-After)', async (t) => {
    const server = await serverFor(t, { ...SMALL, CHAT__RATE__UPLOADS_PER_MINUTE: '3' });
    const { a, b } = await matchPair(server.url, ['websocket']);
    await stored(server.url, a.token, 10);
    await refused(server.url, a.token, 100 * KB + 1, 413, 'too_large'); // a refused attempt counts too
    await stored(server.url, a.token, 10);
    const limited = await refused(server.url, a.token, 10, 429, 'rate_limited');
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${limited.headers.get('retry-after')}`);
    // The partner's allowance is their own.
    for (let round = 0; round < 3; round += 1) await stored(server.url, b.token, 10);
    await refused(server.url, b.token, 10, 429, 'rate_limited');
  });

  test('a node holds at most FILES__MAX_TOTAL_BYTES in memory (503 until files go)', async (t) => {
    const server = await serverFor(t, {
      ...SMALL,
      CHAT__FILES__MAX_ROOM_BYTES: String(100 * KB),
      CHAT__FILES__MAX_TOTAL_BYTES: String(250 * KB),
    });
    const pairs = [];
    for (let index = 0; index < 3; index += 1) pairs.push(await matchPair(server.url, ['websocket']));
    const kept = [await stored(server.url, pairs[0].a.token, 100 * KB), await stored(server.url, pairs[1].a.token, 100 * KB)];
    await refused(server.url, pairs[2].a.token, 100 * KB, 503, 'unavailable');
    kept.push(await stored(server.url, pairs[2].a.token, 50 * KB));
    await refused(server.url, pairs[2].b.token, 1, 503, 'unavailable');
    await allDownloadable(server.url, kept);
    // Other requests are served meanwhile.
    assert.equal((await api(server.url, 'GET', '/healthz')).status, 200);
    // A room whose files go gives their memory back.
    assert.equal((await emitAck(pairs[0].a.socket, 'chat:leave')).ok, true);
    await waitFor(pairs[0].b.socket, 'room:closed');
    await stored(server.url, pairs[2].b.token, 50 * KB);
    // 200 kB in memory now: the next refusal is the room's own bound.
    await refused(server.url, pairs[2].b.token, 1, 413, 'too_large');
    await allDownloadable(server.url, kept.slice(1));
  });
});

describe('upload bounds across two nodes on one Redis', { skip: !redisAvailable() && 'redis-server is not installed' }, () => {
  let redis;
  let nodes;

  before(async () => {
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      ...SMALL,
      CHAT__FILES__MAX_ROOM_BYTES: String(150 * KB),
      // Smaller than what the test uploads through node 0: in Redis mode only the node's
      // memory copies are bounded by it, uploads are not refused.
      CHAT__FILES__MAX_TOTAL_BYTES: String(100 * KB),
      CHAT__RATE__UPLOADS_PER_MINUTE: '3',
    };
    nodes = [await startServer(env), await startServer(env)];
  });

  after(async () => {
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  test('the room bound and the user limit count uploads through every node', async () => {
    const { a, b } = await pairAcross(nodes[0], nodes[1]);

    const first = await stored(nodes[0].url, a.token, 100 * KB);
    // Node 1 counts node 0's upload: the room's total lives in Redis.
    await refused(nodes[1].url, b.token, 100 * KB, 413, 'too_large');
    const second = await stored(nodes[1].url, b.token, 50 * KB);
    await refused(nodes[0].url, a.token, 1, 413, 'too_large');
    // B's fourth attempt, through either node, is over B's allowance of 3.
    await refused(nodes[0].url, b.token, 1, 413, 'too_large');
    await refused(nodes[0].url, b.token, 1, 429, 'rate_limited');
    await allDownloadable(nodes[0].url, [first, second]);
    await allDownloadable(nodes[1].url, [first, second]);

    // Past node 0's memory bound (100 kB copied already), another room's upload through
    // node 0 is still stored in Redis and served by both nodes.
    const { a: c, b: d } = await pairAcross(nodes[0], nodes[0]);
    const third = await stored(nodes[0].url, c.token, 100 * KB);
    await allDownloadable(nodes[1].url, [third]);
    await allDownloadable(nodes[0].url, [third]);
    for (const user of [a, b, c, d]) user.socket.close();
  });
});
