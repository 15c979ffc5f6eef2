// Several chat-server processes on Redis as it is deployed (PROTOCOL.md "Many nodes"): a
// TLS-only server (`rediss://` with a private CA), a primary found through Sentinel that
// fails over mid-run (`redis-sentinel://`), and a three-master Redis Cluster
// (`redis-cluster://`, sharded keys and sharded pub/sub). Each topology runs the same
// cross-node scenarios (lib/scenarios.js); plain `redis://` runs them too, as the baseline
// that tells a broken scenario from a broken topology.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startRedis } from './lib/redis.js';
import {
  assertReadyOnRedis,
  assertSessionShared,
  callAcross,
  chatAcross,
  fileAcross,
  manySearchers,
  relayOnce,
} from './lib/scenarios.js';
import { api, connect, createGuest, eventually, startServer } from './lib/server.js';
import { redisCli, startRedisCluster, startSentinel, startTlsRedis, topologyToolsAvailable } from './lib/topology.js';

const skip = !topologyToolsAvailable() && 'redis-server, redis-cli or openssl is not installed';

/** Settings of every node: no handshake limit (hundreds of sockets come from 127.0.0.1). */
const NODE_ENV = { CHAT__RATE__HANDSHAKES_PER_10S: '0' };
const SEARCHERS = 200;

/**
 * The nodes of one describe, started on first use: a node that refuses the topology's URL
 * fails every test that needs nodes with its reason, while the topology's own checks still run.
 */
function lazyNodes(count, env) {
  let starting = null;
  const started = [];
  return {
    get: () => {
      starting ??= (async () => {
        for (let index = 0; index < count; index += 1) started.push(await startServer({ ...NODE_ENV, ...env() }));
        return started;
      })();
      return starting;
    },
    stop: () => Promise.all(started.map((node) => node.stop())),
  };
}

/** The scenarios every topology runs, on `nodes()` (two or three of them). */
function crossNodeScenarios(nodes) {
  test('every node is ready on Redis', async () => {
    await assertReadyOnRedis(await nodes());
  });

  test('chat across nodes (websocket ⇄ polling): messages, acks, receipts, typing', async () => {
    const [first, second] = await nodes();
    await chatAcross(first, second, { transportsA: ['websocket'], transportsB: ['polling'] });
  });

  test('a file uploaded through one node is downloaded by the partner through the other', async () => {
    const [first, second] = await nodes();
    await fileAcross(first, second, { transportsA: ['polling', 'websocket'], transportsB: ['websocket'] });
  });

  test('a call across nodes: offer, answer, ICE both ways, call-end', async () => {
    const all = await nodes();
    await callAcross(all[all.length - 1], all[0], { transportsA: ['websocket'], transportsB: ['polling'] });
  });

  test(`${SEARCHERS} searchers over the nodes are each paired exactly once`, async () => {
    const { crossNode } = await manySearchers(await nodes(), SEARCHERS);
    assert.ok(crossNode > 0, 'some pairs span two nodes');
  });
}

async function assertStaysNotUp(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ready = await api(url, 'GET', '/readyz');
    assert.notEqual(ready.body?.redis, 'up', `/readyz must not say Redis is up: ${JSON.stringify(ready.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A describe over one topology: `start()` before its tests, `count` nodes on `env(topology)`
 * started on first use, everything stopped after. `body({topology, nodes})` declares the tests.
 */
function topologySuite(name, { start, count, env }, body) {
  describe(name, { skip }, () => {
    let topology;
    const nodes = lazyNodes(count, () => env(topology));
    before(async () => {
      topology = await start();
    });
    after(async () => {
      await nodes.stop();
      await topology?.stop();
    });
    body({ topology: () => topology, nodes: nodes.get });
  });
}

topologySuite('plain redis:// (the scenarios\' baseline)', { start: startRedis, count: 2, env: (redis) => ({ CHAT__REDIS__URL: redis.url }) }, ({ nodes }) => {
  crossNodeScenarios(nodes);
});

const tlsEnv = (redis) => ({ CHAT__REDIS__URL: redis.url, CHAT__REDIS__TLS_CA_FILE: redis.ca });
topologySuite('rediss:// on a TLS-only redis-server with a private CA', { start: startTlsRedis, count: 2, env: tlsEnv }, ({ topology, nodes }) => {
  test('the server speaks TLS only', async () => {
    const redis = topology();
    assert.equal(await redis.cli(['PING']), 'PONG');
    const plain = await redisCli(redis.port, ['PING']).then((answer) => answer, (error) => `refused: ${error.message}`);
    assert.notEqual(plain, 'PONG', 'a plaintext client gets no answer');
    assert.match(redis.url, /^rediss:\/\/127\.0\.0\.1:\d+$/);
  });

  crossNodeScenarios(nodes);

  test('redis:// (plaintext) against the TLS port never reports Redis up', async (t) => {
    let node;
    try {
      node = await startServer({ ...NODE_ENV, CHAT__REDIS__URL: `redis://127.0.0.1:${topology().port}` });
    } catch (error) {
      // Refusing to start is fine too, as long as it is a failure exit.
      assert.ok(error.exit && error.exit.code !== 0, `chat-server neither listened nor exited with an error: ${error.message}`);
      return;
    }
    t.after(() => node.stop());
    await assertStaysNotUp(node.url, 3000);
  });

  test('a CA file that does not exist stops chat-server at start (exit 2), naming the file', async () => {
    const error = await startServer({ ...NODE_ENV, ...tlsEnv(topology()), CHAT__REDIS__TLS_CA_FILE: '/nonexistent' }).then(
      async (node) => {
        await node.stop();
        return null;
      },
      (refusal) => refusal,
    );
    assert.ok(error, 'chat-server must not start with a missing CA file');
    assert.equal(error.exit?.code, 2, error.message);
    assert.ok(`${error.stdout}${error.stderr}`.includes('/nonexistent'), `the message names the CA file:\n${error.stderr}`);
  });
});

topologySuite('redis-sentinel:// with a failover mid-run', { start: startSentinel, count: 2, env: (sentinel) => ({ CHAT__REDIS__URL: sentinel.url }) }, ({ topology, nodes }) => {
  test('Sentinel names the primary and knows its replica', async () => {
    const sentinel = topology();
    assert.deepEqual(await sentinel.masterAddr(), ['127.0.0.1', sentinel.primaryPort]);
    assert.match(await sentinel.cli(sentinel.replicaPort, ['ROLE']), /^slave/);
  });

  crossNodeScenarios(nodes);

  test('the primary is SIGKILLed: the nodes follow the promoted replica without a restart', { timeout: 60000 }, async () => {
    const sentinel = topology();
    const all = await nodes();
    const [first, second] = all;
    // A session from before the failover, in Redis and on the replica.
    const earlier = await createGuest(first.url, {});
    await assertSessionShared(all, earlier.token);
    await sentinel.waitForReplicaSync();

    await sentinel.killPrimary();
    await sentinel.waitForFailover();
    for (const node of all) {
      await eventually(async () => {
        const ready = (await api(node.url, 'GET', '/readyz')).body;
        return ready.storage === 'redis' && ready.redis === 'up';
      }, 20000, `${node.url} to be up on the promoted primary`);
    }

    // The earlier session works on both nodes; its token connects.
    await assertSessionShared(all, earlier.token);
    const { socket, established } = await connect(second.url, earlier.token, ['websocket']);
    assert.equal(established.userId, earlier.user.id);
    socket.close();

    // New sessions are created, in the new primary, known to both nodes.
    const keysBefore = Number(await sentinel.cli(sentinel.replicaPort, ['DBSIZE']));
    const fresh = await Promise.all(Array.from({ length: 6 }, (_, index) => createGuest(all[index % all.length].url, {})));
    for (const guest of fresh) await assertSessionShared(all, guest.token);
    assert.ok(Number(await sentinel.cli(sentinel.replicaPort, ['DBSIZE'])) > keysBefore, 'the new sessions are written to the promoted replica');

    // Two users on different nodes are matched and chat, either node searching first.
    await chatAcross(first, second);
    await chatAcross(second, first, { transportsB: ['polling'] });
  });
});

topologySuite('redis-cluster:// on three masters', { start: () => startRedisCluster({ count: 3 }), count: 3, env: (cluster) => ({ CHAT__REDIS__URL: cluster.url }) }, ({ topology, nodes }) => {
  test('the cluster is ok with every slot assigned', async () => {
    for (const master of topology().masters()) {
      const info = await master.cli(['CLUSTER', 'INFO']);
      assert.match(info, /cluster_state:ok/);
      assert.match(info, /cluster_slots_assigned:16384/);
      assert.match(info, /cluster_size:3/);
    }
  });

  crossNodeScenarios(nodes);

  test('a few hundred sessions spread over every master; the bus uses sharded pub/sub only', async (t) => {
    const all = await nodes();
    // 260 sessions through REST, round robin, and 40 more matched and chatting.
    for (let batch = 0; batch < 260; batch += 52) {
      await Promise.all(Array.from({ length: 52 }, (_, index) => createGuest(all[(batch + index) % all.length].url, {})));
    }
    const { users, results } = await manySearchers(all, 40, { keep: true });
    const byId = new Map(users.map((user) => [user.user.id, user]));
    await Promise.all(users.map((user, index) => results[index].initiator && relayOnce(user, byId.get(results[index].partner.id), 'sharded')));

    const masters = topology().masters();
    const sizes = await Promise.all(masters.map(async (master) => Number(await master.cli(['DBSIZE']))));
    const total = sizes.reduce((sum, size) => sum + size, 0);
    const shown = masters.map((master, index) => `${master.port}: ${sizes[index]}`).join(', ');
    t.diagnostic(`keys per master: ${shown}`);
    for (const size of sizes) {
      assert.ok(size > 0, `every master holds keys (${shown})`);
      assert.ok(size <= total * 0.6, `no master holds more than 60% of the keys (${shown})`);
    }
    const channels = await Promise.all(masters.map((master) => master.cli(['PUBSUB', 'CHANNELS'])));
    assert.deepEqual(channels, masters.map(() => ''), 'no classic pub/sub channel on any master');
    const shardChannels = await Promise.all(masters.map((master) => master.cli(['PUBSUB', 'SHARDCHANNELS'])));
    assert.ok(shardChannels.some((list) => list.length > 0), `the bus subscribes sharded channels (${JSON.stringify(shardChannels)})`);
    for (const user of users) user.socket.close();
  });
});
