// Real Redis deployments for the topology tests, started from Debian's redis-server,
// redis-cli and openssl on free ports in throwaway directories: a TLS-only server, a
// primary + replica watched by one Sentinel, and a three-master Redis Cluster. Never the
// machine's own Redis; every process is SIGKILLed and every directory removed by `stop()`,
// and by lib/processes.js at exit (also on SIGINT/SIGTERM) if a test dies before `stop()`.

import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { killOnExit, removeNow, removeOnExit } from './processes.js';
import { freePort, until } from './redis.js';

const run = promisify(execFile);

const TOOLS = {
  'redis-server': ['--version'],
  'redis-cli': ['--version'],
  openssl: ['version'],
};

/**
 * Whether redis-server, redis-cli and openssl are installed; with CI=true a missing one is
 * an error, not a skip (as `redisAvailable` in lib/redis.js).
 */
export function topologyToolsAvailable() {
  const missing = Object.entries(TOOLS)
    .filter(([tool, args]) => spawnSync(tool, args, { stdio: 'ignore' }).status !== 0)
    .map(([tool]) => tool);
  if (missing.length && process.env.CI === 'true') throw new Error(`${missing.join(', ')} required when CI=true`);
  return missing.length === 0;
}

function tempDir(name) {
  return removeOnExit(mkdtempSync(join(tmpdir(), `chat-${name}-`)));
}

/** Spawns one redis-server; its log goes to `<dir>/<name>.log` (kept in failures' messages). */
function spawnRedis(dir, name, args) {
  const logfile = join(dir, `${name}.log`);
  const proc = killOnExit(spawn('redis-server', [...args, '--logfile', logfile], { stdio: 'ignore' }));
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    proc,
    logfile,
    exited,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** `redis-cli -p port args…` (with TLS when `tls` is `{ca}`); resolves with the trimmed stdout. */
export async function redisCli(port, args, { tls } = {}) {
  const base = ['-h', '127.0.0.1', '-p', String(port)];
  if (tls) base.push('--tls', '--cacert', tls.ca);
  const { stdout } = await run('redis-cli', [...base, ...args.map(String)], { timeout: 5000 });
  return stdout.trim();
}

/** `INFO section` parsed into an object. */
export async function redisInfo(port, section, options) {
  const text = await redisCli(port, ['INFO', section], options);
  return Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((line) => line.includes(':') && !line.startsWith('#'))
      .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]),
  );
}

async function answersPing(port, options) {
  try {
    return (await redisCli(port, ['PING'], options)) === 'PONG';
  } catch {
    return false;
  }
}

function makeStop(servers, dir) {
  let stopping = null;
  return () => {
    stopping ??= (async () => {
      await Promise.all(servers.map((server) => server.kill()));
      removeNow(dir);
    })();
    return stopping;
  };
}

/** Waits until `server` answers PING on `port`; the error carries the end of its log. */
async function startedOrExplain(server, port, options, what) {
  try {
    await until(async () => server.alive() && answersPing(port, options), 10000, what);
  } catch (error) {
    let log = '';
    try {
      log = readFileSync(server.logfile, 'utf8').slice(-2000);
    } catch {
      // no log yet
    }
    throw new Error(`${error.message} (alive: ${server.alive()})\n${log}`);
  }
}

// ---------------------------------------------------------------------------------------
// TLS

async function openssl(dir, args) {
  await run('openssl', args, { cwd: dir, timeout: 20000 });
}

/**
 * A throwaway CA and a server certificate it signs (SAN IP:127.0.0.1, DNS:localhost), P-256
 * keys, in `dir`. Returns `{ca, cert, key}` paths.
 */
async function makeCertificates(dir) {
  writeFileSync(
    join(dir, 'openssl.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = chat-server test CA',
      '[ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '[server]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1, DNS:localhost',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(dir, ['req', '-config', 'openssl.cnf', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-extensions', 'ca']);
  await openssl(dir, ['req', '-config', 'openssl.cnf', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  await openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'openssl.cnf', '-extensions', 'server']);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

/**
 * A redis-server that speaks only TLS (`--port 0`), its certificate signed by a throwaway CA.
 * Returns `{port, url, ca, cli(args), stop()}`; `url` is `rediss://127.0.0.1:PORT`.
 */
export async function startTlsRedis() {
  const dir = tempDir('redis-tls');
  const servers = [];
  const stop = makeStop(servers, dir);
  try {
    const { ca, cert, key } = await makeCertificates(dir);
    const port = await freePort();
    const server = spawnRedis(dir, 'redis-tls', [
      '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
      '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', ca,
      '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--dir', dir,
    ]);
    servers.push(server);
    const tls = { ca };
    await startedOrExplain(server, port, { tls }, `TLS redis-server on ${port}`);
    return { port, ca, url: `rediss://127.0.0.1:${port}`, cli: (args) => redisCli(port, args, { tls }), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// Sentinel

/**
 * A primary, one replica of it and one Sentinel monitoring it as `mymaster` (quorum 1,
 * down after 1 s). Returns `{url, service, primaryPort, replicaPort, sentinelPort,
 * cli(port, args), masterAddr(), waitForReplicaSync(), killPrimary(), waitForFailover(),
 * stop()}`; `url` is `redis-sentinel://127.0.0.1:SENTINEL/?service=mymaster`.
 */
export async function startSentinel({ service = 'mymaster' } = {}) {
  const dir = tempDir('redis-sentinel');
  const servers = [];
  const stop = makeStop(servers, dir);
  try {
    const [primaryPort, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()];
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    const primaryDir = join(dir, 'primary');
    const replicaDir = join(dir, 'replica');
    for (const sub of [primaryDir, replicaDir]) mkdirSync(sub);
    const primary = spawnRedis(dir, 'primary', ['--port', String(primaryPort), ...common, '--dir', primaryDir, '--repl-diskless-sync-delay', '0']);
    servers.push(primary);
    await startedOrExplain(primary, primaryPort, {}, `primary redis-server on ${primaryPort}`);
    const replica = spawnRedis(dir, 'replica', ['--port', String(replicaPort), ...common, '--dir', replicaDir, '--replicaof', '127.0.0.1', String(primaryPort)]);
    servers.push(replica);
    await startedOrExplain(replica, replicaPort, {}, `replica redis-server on ${replicaPort}`);
    await until(async () => (await redisInfo(replicaPort, 'replication')).master_link_status === 'up', 10000, 'the replica to sync with the primary');

    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        'sentinel resolve-hostnames no',
        `sentinel monitor ${service} 127.0.0.1 ${primaryPort} 1`,
        `sentinel down-after-milliseconds ${service} 1000`,
        `sentinel failover-timeout ${service} 5000`,
        '',
      ].join('\n'),
    );
    const sentinel = spawnRedis(dir, 'sentinel', [conf, '--sentinel']);
    servers.push(sentinel);
    await startedOrExplain(sentinel, sentinelPort, {}, `redis-sentinel on ${sentinelPort}`);

    const cli = (port, args) => redisCli(port, args);
    /** `[host, port]` of the primary as Sentinel names it. */
    const masterAddr = async () => {
      const [host, port] = (await cli(sentinelPort, ['SENTINEL', 'get-master-addr-by-name', service])).split(/\r?\n/);
      return [host, Number(port)];
    };
    // Sentinel learns the replica from the primary's INFO: until it has, it could not fail over.
    await until(async () => {
      const replicas = await cli(sentinelPort, ['SENTINEL', 'replicas', service]);
      return replicas.includes(String(replicaPort)) && !/s_down|disconnected/.test(replicas);
    }, 15000, 'Sentinel to know the replica');

    return {
      service,
      primaryPort,
      replicaPort,
      sentinelPort,
      url: `redis-sentinel://127.0.0.1:${sentinelPort}/?service=${service}`,
      cli,
      masterAddr,
      /** Resolves once the replica has every write the primary had when this was called. */
      async waitForReplicaSync(ms = 10000) {
        const target = Number((await redisInfo(primaryPort, 'replication')).master_repl_offset);
        await until(async () => Number((await redisInfo(replicaPort, 'replication')).slave_repl_offset) >= target, ms, `the replica to reach offset ${target}`);
      },
      /** SIGKILLs the primary (no shutdown, no last save). */
      killPrimary: () => primary.kill(),
      /** Polls Sentinel until it names the replica as primary, and the replica says it is one. */
      async waitForFailover(ms = 20000) {
        await until(async () => (await masterAddr())[1] === replicaPort, ms, `Sentinel to promote the replica on ${replicaPort}`);
        await until(async () => (await redisInfo(replicaPort, 'replication')).role === 'master', ms, 'the replica to take the master role');
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// Redis Cluster

/**
 * A Redis Cluster of `count` masters (no replicas), created with `redis-cli --cluster
 * create`, `cluster_state:ok` on every master. Returns `{ports, url, masters(), cli(port,
 * args), stop()}`; `url` is `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,…`.
 */
export async function startRedisCluster({ count = 3 } = {}) {
  const dir = tempDir('redis-cluster');
  const servers = [];
  const stop = makeStop(servers, dir);
  try {
    const ports = [];
    for (let index = 0; index < count; index += 1) {
      // The cluster bus port is set explicitly: the default (port + 10000) may be taken or past 65535.
      const [port, busPort] = [await freePort(), await freePort()];
      ports.push(port);
      const server = spawnRedis(dir, `node-${port}`, [
        '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--dir', dir,
      ]);
      servers.push(server);
    }
    await Promise.all(servers.map((server, index) => startedOrExplain(server, ports[index], {}, `cluster redis-server on ${ports[index]}`)));
    await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20000 });
    const cli = (port, args) => redisCli(port, args);
    for (const port of ports) {
      await until(async () => {
        const info = await cli(port, ['CLUSTER', 'INFO']);
        return /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${count}\\b`).test(info);
      }, 15000, `cluster_state:ok on ${port}`);
    }
    return {
      ports,
      url: `redis-cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`,
      cli,
      /** The masters as `{port, cli(args)}`. */
      masters: () => ports.map((port) => ({ port, cli: (args) => cli(port, args) })),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
