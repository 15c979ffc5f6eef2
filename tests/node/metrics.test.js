// `/metrics` after a scripted session on two nodes sharing a private Redis: guests created,
// Socket.IO connected, a match and a chat across the nodes, refusals and rate limits hit.
// The scrape of each node must hold the histograms (socket events, Redis commands,
// cross-node delivery, match wait) with counts where activity happened and buckets that only
// grow, the counters by label, the build info and the process metrics
// (docs/operations.md lists them).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { redisAvailable, startRedis } from './lib/redis.js';
import { pairAcross } from './lib/scenarios.js';
import { api, connectRefused, emitAck, startServer, waitFor, waitForArgs } from './lib/server.js';

const available = redisAvailable();

/** One sample line: `name{labels} value`; labels as an object. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;

/** The samples of a Prometheus text exposition: `[{name, labels, value}]`. */
function parse(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const found = SAMPLE.exec(line);
    assert.ok(found, `a sample line: ${line}`);
    const labels = {};
    for (const pair of (found[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2];
    }
    samples.push({ name: found[1], labels, value: Number(found[3]) });
  }
  return samples;
}

/** Whether `labels` has every pair of `wanted`. */
function matches(labels, wanted) {
  return Object.entries(wanted).every(([key, value]) => labels[key] === value);
}

/** The sum of the samples called `name` whose labels have `wanted` (undefined if none). */
function value(samples, name, wanted = {}) {
  const found = samples.filter((sample) => sample.name === name && matches(sample.labels, wanted));
  return found.length === 0 ? undefined : found.reduce((sum, sample) => sum + sample.value, 0);
}

/**
 * The histogram `name` over the series with `wanted` labels: checks its buckets never shrink
 * as `le` grows and that the `+Inf` bucket is the count; returns `{count, sum}`.
 */
function histogram(samples, name, wanted = {}) {
  // Series of other labels (another event, another command) add up, bucket by bucket.
  const byBound = new Map();
  for (const sample of samples) {
    if (sample.name !== `${name}_bucket` || !matches(sample.labels, wanted)) continue;
    const le = sample.labels.le === '+Inf' ? Infinity : Number(sample.labels.le);
    byBound.set(le, (byBound.get(le) ?? 0) + sample.value);
  }
  const buckets = [...byBound].map(([le, count]) => ({ le, count })).sort((x, y) => x.le - y.le);
  assert.ok(buckets.length > 1, `${name}${JSON.stringify(wanted)} has buckets`);
  for (let index = 1; index < buckets.length; index += 1) {
    assert.ok(buckets[index].count >= buckets[index - 1].count, `${name}${JSON.stringify(wanted)}: buckets grow with le (${JSON.stringify(buckets)})`);
  }
  const count = value(samples, `${name}_count`, wanted);
  assert.equal(buckets.at(-1).le, Infinity, `${name} has a +Inf bucket`);
  assert.equal(buckets.at(-1).count, count, `${name}: the +Inf bucket is the count`);
  return { count, sum: value(samples, `${name}_sum`, wanted) };
}

async function scrape(node) {
  const response = await api(node.url, 'GET', '/metrics');
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parse(response.body);
}

describe('metrics after a session on two nodes', { skip: !available && 'redis-server is not installed' }, () => {
  let redis;
  let nodes;

  before(async () => {
    redis = await startRedis();
    // Four guest sessions a minute per client address, shared by the nodes.
    const env = { REDIS_URL: redis.url, CHAT__RATE__SESSIONS_PER_MINUTE: '4' };
    nodes = [await startServer(env), await startServer(env)];
  });

  after(async () => {
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  test('histograms and counters follow what happened', async () => {
    const fresh = await scrape(nodes[0]);
    for (const [kind, count] of [['sessions', 0], ['events', 0], ['handshakes', 0], ['uploads', 0]]) {
      assert.equal(value(fresh, 'chat_rate_limited_total', { kind }), count, `rate limit ${kind} at 0 from the start`);
    }
    for (const source of ['reports', 'admin']) assert.equal(value(fresh, 'chat_bans_total', { source }), 0);
    assert.equal(value(fresh, 'chat_reports_total'), 0);
    assert.equal(value(fresh, 'chat_slow_client_disconnects_total'), 0);

    // A (node 0) waits in the queue; B (node 1) finds them. They chat both ways.
    const { a, b } = await pairAcross(nodes[0], nodes[1]);
    const ack = await emitAck(a.socket, 'chat:message', { type: 'text', content: 'hello' });
    assert.equal(ack.ok, true);
    const [, reply] = await waitForArgs(b.socket, 'chat:message');
    reply();
    await waitFor(a.socket, 'message:delivered');
    const back = await emitAck(b.socket, 'chat:message', { type: 'text', content: 'hi' });
    assert.equal(back.ok, true);
    await waitFor(a.socket, 'chat:message');
    // Refusals: a socket with a bad token, REST with a bad token, a burst of events past the
    // per-socket bucket, guest sessions past the per-address limit (2 are used above).
    await connectRefused(nodes[0].url, ['websocket'], { auth: { token: 'garbage' } });
    assert.equal((await api(nodes[0].url, 'GET', '/api/guest/me', { token: 'garbage' })).status, 401);
    const burst = await Promise.all(Array.from({ length: 150 }, () => emitAck(a.socket, 'presence:heartbeat', {})));
    assert.ok(burst.some((answer) => answer.ok === false && answer.error.code === 'rate_limited'), 'some heartbeats refused');
    let refused = 0;
    for (let attempt = 0; attempt < 5 && refused === 0; attempt += 1) {
      const created = await api(nodes[1].url, 'POST', '/api/guest', { json: {} });
      if (created.status === 429) refused += 1;
    }
    assert.equal(refused, 1, 'the session limit refused a guest');

    const [first, second] = [await scrape(nodes[0]), await scrape(nodes[1])];
    const both = [...first, ...second];

    // Socket events, by name: each side searched and sent a message.
    for (const samples of [first, second]) {
      for (const event of ['match:search', 'chat:message']) {
        const timed = histogram(samples, 'chat_socket_event_duration_seconds', { event });
        assert.ok(timed.count >= 1 && timed.sum > 0, `${event} timed: ${JSON.stringify(timed)}`);
      }
    }
    assert.ok(histogram(first, 'chat_socket_event_duration_seconds', { event: 'presence:heartbeat' }).count >= 50);
    assert.ok(value(first, 'chat_socket_events_total') >= 150);

    // Redis: the pairing script ran on B's node, session writes on both.
    assert.ok(histogram(second, 'chat_redis_command_duration_seconds', { command: 'search' }).count >= 1);
    for (const samples of [first, second]) {
      assert.ok(histogram(samples, 'chat_redis_command_duration_seconds', { command: 'write_session' }).count >= 1);
      assert.ok(histogram(samples, 'chat_redis_command_duration_seconds').count >= 5);
    }

    // Between nodes: A's match:found and B's message reached node 0, A's message node 1.
    for (const samples of [first, second]) {
      const delivered = histogram(samples, 'chat_bus_delivery_duration_seconds');
      assert.ok(delivered.count >= 1 && delivered.sum >= 0, `cross-node deliveries timed: ${JSON.stringify(delivered)}`);
    }
    assert.equal(value(both, 'chat_bus_dropped_events_total'), 0, 'nothing lost between the nodes');

    // The match: A waited in the queue (node 0); the pair counted once, on B's node.
    const waited = histogram(first, 'chat_match_wait_seconds');
    assert.equal(waited.count, 1);
    assert.ok(waited.sum > 0, `A waited: ${JSON.stringify(waited)}`);
    assert.equal(histogram(second, 'chat_match_wait_seconds').count, 0, 'B did not wait in the queue');
    assert.equal(value(both, 'chat_matches_total'), 1);

    // Counters by label.
    assert.equal(value(both, 'chat_messages_relayed_total'), 2);
    assert.ok(value(both, 'chat_socket_connects_total') >= 2);
    assert.equal(value(first, 'chat_socket_refused_total', { reason: 'auth' }), 1);
    assert.equal(value(first, 'chat_socket_refused_total', { reason: 'banned' }), 0);
    assert.equal(value(first, 'chat_http_refused_total', { reason: 'auth' }), 1);
    assert.equal(value(second, 'chat_http_refused_total', { reason: 'rate_limited' }), 1);
    assert.equal(value(second, 'chat_rate_limited_total', { kind: 'sessions' }), 1);
    assert.ok(value(first, 'chat_rate_limited_total', { kind: 'events' }) >= 1);
    assert.equal(value(both, 'chat_sessions_created_total'), 4);

    // Gauges, build, process.
    for (const samples of [first, second]) {
      assert.equal(value(samples, 'chat_redis_up'), 1);
      assert.equal(value(samples, 'chat_connected_sockets'), 1);
      assert.equal(value(samples, 'chat_local_chats'), 1);
      const build = samples.find((sample) => sample.name === 'chat_build_info');
      assert.match(build?.labels.version ?? '', /^\d+\.\d+\.\d+/);
      assert.equal(build.value, 1);
      assert.ok(value(samples, 'process_resident_memory_bytes') > 1024 * 1024);
      assert.ok(value(samples, 'process_open_fds') > 3);
      assert.ok(value(samples, 'process_cpu_seconds_total') > 0);
      const started = value(samples, 'process_start_time_seconds');
      assert.ok(Math.abs(started - Date.now() / 1000) < 600, `started just now: ${started}`);
    }

    // Every series the dashboard and the alerting rules read is served.
    const served = new Set(both.map((sample) => sample.name));
    for (const file of ['grafana/dashboard.json', 'prometheus/alerts.yml']) {
      const text = readFileSync(new URL(`../../deploy/${file}`, import.meta.url), 'utf8');
      const used = new Set(text.match(/\b(?:chat|process)_[a-z0-9_]+/g));
      assert.ok(used.size > 5, `${file} names metrics`);
      for (const name of used) {
        // A histogram is named by its family in prose, by its series in expressions.
        assert.ok(served.has(name) || served.has(`${name}_bucket`), `${file} reads ${name}, which /metrics does not serve`);
      }
    }
    a.socket.close();
    b.socket.close();
  });
});
