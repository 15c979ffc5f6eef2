// Test harness: starts the real `chat-server` binary and drives it with the real
// `socket.io-client` 4.x. Every wait is "wait for X, or fail after a timeout with a clear
// message"; nothing sleeps and hopes.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { io } from 'socket.io-client';

import { killOnExit } from './processes.js';

/** The HS256 secret every test server gets, so tests can mint their own tokens. */
export const JWT_SECRET = 'node-protocol-suite-secret-0123456789abcdef';

/** Default time any single wait may take. */
export const TIMEOUT = 5000;

/** The three transport setups every socket test runs over. */
export const TRANSPORTS = [['websocket'], ['polling'], ['polling', 'websocket']];

/** A readable name for a transport setup. */
export function transportName(transports) {
  return transports.length > 1 ? 'polling → websocket upgrade' : transports[0];
}

/** RFC 3339 in UTC (`Z` or `+00:00`), as the contract requires for every timestamp. */
export const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$/;
export const USER_ID = /^guest_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const MESSAGE_ID = /^msg_(\d+)_\S+$/;
export const PUBLIC_USER_KEYS = ['id', 'username', 'isOnline', 'isSearching', 'inChat', 'location', 'gender', 'language', 'lastSeen'];
export const PRIVATE_USER_KEYS = ['sessionId', 'socketId', 'deviceId', 'ip', 'connectedUser', 'connectedAt', 'createdAt'];
export const STATS_KEYS = ['totalUsers', 'onlineUsers', 'activeUsers', 'availableUsers', 'connectedUsers', 'usersInChat'];

/** Sockets opened against each server URL, closed when that server stops. */
const socketsByUrl = new Map();

function remember(url, socket) {
  if (!socketsByUrl.has(url)) socketsByUrl.set(url, new Set());
  socketsByUrl.get(url).add(socket);
}

/** Closes every client socket opened against `url` (they would keep the test process alive). */
export function closeSockets(url) {
  const sockets = socketsByUrl.get(url) ?? new Set();
  for (const socket of sockets) {
    socket.io.reconnection(false);
    socket.close();
  }
  socketsByUrl.delete(url);
  return sockets.size;
}

/**
 * Waits (at most 2 s) until the server counts no connected user, so that SIGTERM does not
 * have to wait out its drain period for clients that are already gone.
 */
async function settled(url) {
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/api/stats`);
      const body = await response.json();
      if (body?.stats?.onlineUsers === 0) return;
    } catch {
      return; // the server is gone or broken: SIGTERM will tell
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Spawns `$CHAT_SERVER_BIN` on a free port with test settings plus `env` overrides and waits
 * for its `listening on http://127.0.0.1:PORT storage=memory` line.
 * Returns `{url, port, proc, stop(), exited, stderr()}`; when the process exits before
 * listening, the error carries `exit` `{code, signal}`, `stdout` and `stderr`.
 */
export async function startServer(env = {}) {
  const bin = process.env.CHAT_SERVER_BIN;
  if (!bin) {
    throw new Error('CHAT_SERVER_BIN is not set: point it at the chat-server binary (make test-node does)');
  }
  const childEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: '0',
    HOST: '127.0.0.1',
    JWT_SECRET,
    CHAT__RATE__SESSIONS_PER_MINUTE: '100000',
    RUST_LOG: 'warn',
    ...env,
  };
  const proc = spawn(bin, [], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  killOnExit(proc);
  let stdout = '';
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    stderr += chunk;
    if (stderr.length > 64 * 1024) stderr = stderr.slice(-32 * 1024);
  });
  proc.stdout.setEncoding('utf8');
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const listening = new Promise((resolve, reject) => {
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      const found = /^listening on http:\/\/127\.0\.0\.1:(\d+) storage=(?:memory|redis)\s*$/m.exec(stdout);
      if (found) resolve(Number(found[1]));
    });
    proc.once('error', (error) => reject(new Error(`could not spawn ${bin}: ${error.message}`)));
    // `close` comes after the last output, so the error has all of it.
    proc.once('close', (code, signal) =>
      reject(Object.assign(new Error(`chat-server exited (code ${code}, signal ${signal}) before listening`), { exit: { code, signal } })),
    );
  });
  let port;
  try {
    port = await withTimeout(listening, 20000, 'the "listening on http://127.0.0.1:PORT storage=memory" line');
  } catch (error) {
    proc.kill('SIGKILL');
    // `exit` ({code, signal}, when it exited by itself), `stdout` and `stderr` let a test
    // judge a refusal to start.
    throw Object.assign(new Error(`${error.message}\nstdout so far:\n${stdout}\nstderr so far:\n${stderr}`), { exit: error.exit, stdout, stderr });
  }
  const url = `http://127.0.0.1:${port}`;
  let stopping = null;
  const server = {
    url,
    port,
    proc,
    exited,
    stderr: () => stderr,
    /** Everything the process printed on stdout so far (e.g. a second `admin listening` line). */
    stdout: () => stdout,
    /**
     * Sends `signal` (default SIGKILL: the node dies without a word, its clients' sockets
     * are cut) and resolves with `{code, signal}` on exit.
     */
    kill(signal = 'SIGKILL', ms = 15000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return withTimeout(exited, ms, `chat-server to exit after ${signal}`);
    },
        /** SIGTERM without closing clients first; resolves with `{code, signal}` on exit. */
    terminate(ms = 15000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return withTimeout(exited, ms, 'chat-server to exit after SIGTERM');
    },
    /** Closes this server's client sockets, sends SIGTERM and waits for the exit. */
    stop() {
      stopping ??= (async () => {
        if (closeSockets(url) > 0) await settled(url);
        try {
          return await server.terminate(15000);
        } catch (error) {
          proc.kill('SIGKILL');
          await exited;
          throw error;
        }
      })();
      return stopping;
    },
  };
  return server;
}

/** Starts a server for one test and stops it when the test ends. */
export async function serverFor(t, env = {}) {
  const server = await startServer(env);
  t.after(() => server.stop());
  return server;
}

// ---------------------------------------------------------------------------------------
// REST

/** `fetch` on the server with JSON handling. Returns `{status, headers, body}`. */
export async function api(url, method, path, { token, json, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(url + path, init);
  const text = await response.text();
  let parsed = text;
  if ((response.headers.get('content-type') ?? '').includes('application/json') && text) {
    parsed = JSON.parse(text);
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** `POST /api/guest`; asserts 201 and returns `{token, user, expiresAt}`. */
export async function createGuest(url, body) {
  const response = await api(url, 'POST', '/api/guest', body === undefined ? {} : { json: body });
  if (response.status !== 201) {
    throw new Error(`POST /api/guest answered ${response.status}: ${JSON.stringify(response.body)}`);
  }
  return response.body;
}

// ---------------------------------------------------------------------------------------
// Tokens

function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

/** Mints a JWT with node:crypto (`alg` HS256/HS384/HS512 or `none`). */
export function signJwt(claims, { secret = JWT_SECRET, alg = 'HS256' } = {}) {
  const head = base64url(JSON.stringify({ alg, typ: 'JWT' }));
  const body = base64url(JSON.stringify(claims));
  if (alg === 'none') return `${head}.${body}.`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  const signature = createHmac(hash, secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

/** The claims of a JWT (no verification). */
export function decodeJwt(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

// ---------------------------------------------------------------------------------------
// Sockets

const RECORDER = Symbol('recorder');

/**
 * Records every event a socket receives (including `connect_error` and `disconnect`), so a
 * test can wait for an event that may already have arrived. Each wait consumes one
 * occurrence, in arrival order.
 */
function record(socket) {
  const recorder = { queue: [], waiters: new Set() };
  const push = (event, args) => {
    const entry = { event, args, at: Date.now() };
    for (const waiter of recorder.waiters) {
      if (waiter.accepts(event, args)) {
        recorder.waiters.delete(waiter);
        waiter.resolve(event, args);
        return;
      }
    }
    recorder.queue.push(entry);
  };
  socket.onAny((event, ...args) => push(event, args));
  socket.on('connect_error', (error) => push('connect_error', [error]));
  socket.on('disconnect', (reason, description) => push('disconnect', [reason, description]));
  socket[RECORDER] = recorder;
  return socket;
}

/** Opens a socket with the suite's defaults (recorded; closed when its server stops). */
export function openSocket(url, options = {}) {
  const socket = io(url, { forceNew: true, reconnection: false, timeout: TIMEOUT, ...options });
  record(socket);
  remember(url, socket);
  return socket;
}

/**
 * Waits for the first of `events` on `socket` (already received and not yet consumed, or
 * coming) that passes `filter`; resolves `{event, args}` (the last argument is the ack
 * function when the server asked for an ack). The occurrence is consumed.
 */
export function waitForFirst(socket, events, ms = TIMEOUT, filter = () => true) {
  const recorder = socket[RECORDER];
  if (!recorder) throw new Error('socket was not opened through the harness');
  const index = recorder.queue.findIndex((entry) => events.includes(entry.event) && filter(...entry.args));
  if (index >= 0) {
    const [entry] = recorder.queue.splice(index, 1);
    return Promise.resolve({ event: entry.event, args: entry.args });
  }
  return new Promise((resolve, reject) => {
    const waiter = {
      accepts: (event, args) => events.includes(event) && filter(...args),
      resolve: (event, args) => {
        clearTimeout(timer);
        resolve({ event, args });
      },
    };
    const timer = setTimeout(() => {
      recorder.waiters.delete(waiter);
      const seen = recorder.queue.map((entry) => entry.event).join(', ') || 'nothing';
      reject(new Error(`timed out after ${ms} ms waiting for ${events.map((e) => `"${e}"`).join(' or ')} on socket ${socket.id ?? '(not connected)'} (unconsumed events: ${seen})`));
    }, ms);
    recorder.waiters.add(waiter);
  });
}

/** Waits for `event` and resolves with all its arguments. */
export async function waitForArgs(socket, event, ms = TIMEOUT, filter = () => true) {
  const { args } = await waitForFirst(socket, [event], ms, filter);
  return args;
}

/** Waits for `event` and resolves with its first argument (the payload). */
export async function waitFor(socket, event, ms = TIMEOUT, filter = () => true) {
  const [payload] = await waitForArgs(socket, event, ms, filter);
  return payload;
}

/** Events received on `socket` and not consumed yet, optionally of one name. */
export function pending(socket, event) {
  return socket[RECORDER].queue.filter((entry) => event === undefined || entry.event === event);
}

/** Drops every recorded, unconsumed event of `socket`. */
export function forget(socket) {
  socket[RECORDER].queue.length = 0;
}

/**
 * Asserts that `event` does not arrive on `socket` during `ms` (and was not received
 * already). Only used after a barrier that makes the event due, so the window is a margin.
 */
export async function expectNone(socket, event, ms = 300) {
  const seen = pending(socket, event);
  if (seen.length) throw new Error(`unexpected "${event}": ${JSON.stringify(seen[0].args[0])}`);
  let error = null;
  try {
    const [payload] = await waitForArgs(socket, event, ms);
    error = new Error(`unexpected "${event}" within ${ms} ms: ${JSON.stringify(payload)}`);
  } catch {
    // nothing came: as expected
  }
  if (error) throw error;
}

/** Emits with an ack and resolves with the ack's answer, or fails after `ms`. */
export async function emitAck(socket, event, payload, ms = TIMEOUT) {
  try {
    const sender = socket.timeout(ms);
    return payload === undefined ? await sender.emitWithAck(event) : await sender.emitWithAck(event, payload);
  } catch (error) {
    throw new Error(`no ack for "${event}" within ${ms} ms (${error.message})`);
  }
}

/**
 * Connects with `token` over `transports` and waits for `connection:established`; with the
 * upgrade setup it also waits until the transport is WebSocket. Resolves `{socket,
 * established}`. Extra socket.io-client options may be given in `options`.
 */
export async function connect(url, token, transports = ['websocket'], options = {}) {
  const socket = openSocket(url, { auth: token === undefined ? undefined : { token }, transports, ...options });
  const upgrading = transports.length > 1 && transports.includes('websocket') ? waitForUpgrade(socket) : null;
  upgrading?.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled
  const { event, args } = await waitForFirst(socket, ['connection:established', 'connect_error']);
  if (event === 'connect_error') {
    socket.close();
    throw new Error(`connect_error: ${args[0].message}`);
  }
  if (upgrading) await upgrading;
  return { socket, established: args[0] };
}

/** Resolves once the socket's Engine.IO connection runs over WebSocket. */
export function waitForUpgrade(socket, ms = TIMEOUT) {
  const engine = socket.io.engine;
  if (engine?.transport?.name === 'websocket') return Promise.resolve();
  let listener;
  const upgraded = new Promise((resolve) => {
    listener = () => resolve();
    engine.once('upgrade', listener);
  });
  return withTimeout(upgraded, ms, 'the upgrade to websocket').finally(() => engine.off('upgrade', listener));
}

/** Tries to connect and resolves with the `connect_error` (fails if it connects instead). */
export async function connectRefused(url, transports, options) {
  const socket = openSocket(url, { transports, ...options });
  const { event, args } = await waitForFirst(socket, ['connection:established', 'connect_error']);
  const connected = socket.connected;
  socket.close();
  if (event !== 'connect_error') throw new Error(`expected a refusal, but connected: ${JSON.stringify(args[0])}`);
  if (connected) throw new Error('expected a refusal, but the socket is connected');
  return args[0];
}

/** A guest with a connected socket: `{token, user, socket, established}`. */
export async function guestOnline(url, transports, profile) {
  const guest = await createGuest(url, profile);
  const { socket, established } = await connect(url, guest.token, transports);
  return { ...guest, socket, established };
}

/**
 * Two guests paired by `match:search`: A searches first (and waits), then B. Resolves
 * `{a, b, foundA, foundB, roomId}`; `a`/`b` are `{token, user, socket}`.
 */
export async function matchPair(url, transports, { profileA, profileB, filtersA, filtersB } = {}) {
  const a = await guestOnline(url, transports, profileA);
  const b = await guestOnline(url, transports, profileB);
  const ackA = await emitAck(a.socket, 'match:search', filtersA ? { filters: filtersA } : {});
  if (!ackA.ok) throw new Error(`match:search of A failed: ${JSON.stringify(ackA)}`);
  await waitFor(a.socket, 'match:searching');
  const ackB = await emitAck(b.socket, 'match:search', filtersB ? { filters: filtersB } : {});
  if (!ackB.ok) throw new Error(`match:search of B failed: ${JSON.stringify(ackB)}`);
  const [foundA, foundB] = await Promise.all([waitFor(a.socket, 'match:found'), waitFor(b.socket, 'match:found')]);
  return { a, b, foundA, foundB, roomId: foundA.roomId };
}

/** Retries `attempt` (async, returns truthy when done) until it succeeds or `ms` pass. */
export async function eventually(attempt, ms = TIMEOUT, what = 'a condition') {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await attempt();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Asserts an ack is the error form with `code`. */
export function assertAckError(assert, ack, code, context = '') {
  assert.equal(typeof ack, 'object', `${context}: ack must be an object, got ${JSON.stringify(ack)}`);
  assert.equal(ack.ok, false, `${context}: expected ok:false, got ${JSON.stringify(ack)}`);
  assert.equal(ack.error?.code, code, `${context}: expected code ${code}, got ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.error.message, 'string', `${context}: error.message must be a string`);
  assert.ok(ack.error.message.length > 0, `${context}: error.message must not be empty`);
}

/** Asserts `user` is a PublicUser: exactly the public keys, never private ones. */
export function assertPublicUser(assert, user, context = 'PublicUser') {
  assert.equal(typeof user, 'object', `${context} must be an object`);
  for (const key of PRIVATE_USER_KEYS) {
    assert.ok(!(key in user), `${context} must not carry ${key}: ${JSON.stringify(user)}`);
  }
  assert.deepEqual(Object.keys(user).sort(), [...PUBLIC_USER_KEYS].sort(), `${context} keys`);
  assert.match(user.id, USER_ID, `${context}.id`);
}
