// Helpers for the moderation and admin tests: people on their own client addresses (the
// server trusts 127.0.0.1 as its proxy, so `X-Forwarded-For` names the client, on REST and on
// the socket alike), reports, bans and the admin listener.

import assert from 'node:assert/strict';

import {
  RFC3339_UTC,
  api,
  connect,
  emitAck,
  eventually,
  startServer,
  waitFor,
  waitForFirst,
} from './server.js';

/** The admin token of the test servers (≥ 32 bytes). */
export const ADMIN_TOKEN = 'admin-token-of-the-node-suite-0123456789abcdef';

/** Settings every moderation test server gets: 127.0.0.1 (the test process) is a trusted proxy. */
export const MODERATION_ENV = {
  CHAT__SERVER__TRUSTED_PROXIES: '127.0.0.1/32',
  CHAT__RATE__SESSIONS_PER_MINUTE: '100000',
};

/** The same, with the admin listener on a free port. */
export const ADMIN_ENV = { ...MODERATION_ENV, CHAT__ADMIN__PORT: '0', CHAT__ADMIN__TOKEN: ADMIN_TOKEN };

let lastAddress = 0;
let lastNet = 0;

/** A client address no other person of this test process has (10.1.0.0/16 upwards). */
export function nextAddress() {
  lastAddress += 1;
  return `10.${1 + Math.floor(lastAddress / 65536)}.${Math.floor(lastAddress / 256) % 256}.${lastAddress % 256}`;
}

/** An IPv6 /64 of its own (in 2001:db8::/32): `{prefix, address(host)}`. */
export function nextIpv6Net() {
  lastNet += 1;
  const prefix = `2001:db8:${(lastNet >> 16).toString(16)}:${(lastNet & 0xffff).toString(16)}`;
  return { prefix, address: (host = '1') => `${prefix}::${host}` };
}

/** The header a trusted proxy adds for `address`. */
export function forwardedFor(address) {
  return { 'x-forwarded-for': address };
}

/** `POST /api/guest` as the client at `address` (`{status, headers, body}`, not asserted). */
export function createFrom(node, address, profile = {}) {
  return api(node.url, 'POST', '/api/guest', { json: profile, headers: forwardedFor(address) });
}

/** Opens a socket for `token` as the client at `address`: `{socket, established}`. */
export function connectFrom(node, token, address, transports = ['websocket']) {
  return connect(node.url, token, transports, { extraHeaders: forwardedFor(address) });
}

/**
 * A person: a session created through `createOn` from `address`, connected to `node` from
 * `connectAddress` (default: the same address). `{token, user, socket, established, address,
 * connectAddress, node}`.
 */
export async function person(node, { address = nextAddress(), connectAddress = address, createOn = node, profile = {}, transports = ['websocket'] } = {}) {
  const created = await createFrom(createOn, address, profile);
  assert.equal(created.status, 201, `POST /api/guest from ${address}: ${created.status} ${JSON.stringify(created.body)}`);
  const { socket, established } = await connectFrom(node, created.body.token, connectAddress, transports);
  return { ...created.body, socket, established, address, connectAddress, node };
}

/** `match:search` (acked), then `match:searching`. */
export async function search(someone, filters) {
  const ack = await emitAck(someone.socket, 'match:search', filters === undefined ? {} : { filters });
  assert.equal(ack.ok, true, `match:search: ${JSON.stringify(ack)}`);
  await waitFor(someone.socket, 'match:searching');
}

/** `first` searches and waits, then `second` searches: the two must be paired. Resolves the room id. */
export async function meet(first, second) {
  await search(first);
  const found = Promise.all([waitFor(first.socket, 'match:found'), waitFor(second.socket, 'match:found')]);
  await search(second);
  const [foundFirst, foundSecond] = await found;
  assert.equal(foundFirst.partner.id, second.user.id, 'the first meets the second');
  assert.equal(foundSecond.partner.id, first.user.id, 'the second meets the first');
  assert.equal(foundFirst.roomId, foundSecond.roomId);
  return foundFirst.roomId;
}

/** `chat:leave` by `leaver`; both sides see the room close. */
export async function leave(leaver, partner) {
  assert.equal((await emitAck(leaver.socket, 'chat:leave')).ok, true);
  assert.equal((await waitFor(leaver.socket, 'room:closed')).reason, 'left');
  if (partner) assert.equal((await waitFor(partner.socket, 'room:closed')).reason, 'partner_left');
}

/** `user:report` with an ack: the ack. */
export function report(someone, payload) {
  return emitAck(someone.socket, 'user:report', payload);
}

/** `user:report` that must succeed: the report id. */
export async function reportOk(someone, payload = { reason: 'spam' }) {
  const ack = await report(someone, payload);
  assert.equal(ack.ok, true, `user:report ${JSON.stringify(payload)}: ${JSON.stringify(ack)}`);
  assert.deepEqual(Object.keys(ack).sort(), ['ok', 'reportId'], `the ack: ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.reportId, 'string');
  assert.ok(ack.reportId.length > 0);
  return ack.reportId;
}

/**
 * Each of `reporters` in turn meets `target` and reports it; all but the last then leave, so
 * the target is free for the next. Resolves `{ids, roomId}` (the last room).
 */
export async function reportedBy(target, reporters, payload = { reason: 'harassment' }) {
  const ids = [];
  let roomId;
  for (const [index, reporter] of reporters.entries()) {
    roomId = await meet(target, reporter);
    ids.push(await reportOk(reporter, payload));
    if (index < reporters.length - 1) await leave(reporter, target);
  }
  return { ids, roomId };
}

/**
 * Waits for `session:banned` on the banned person's socket, then its disconnect (in that
 * order); checks the payload (`until` RFC 3339, `banSecs` from now give or take `slack`
 * seconds; a reason) and resolves it.
 */
export async function expectBanned(banned, { banSecs, slack = 30, reason } = {}) {
  const first = await waitForFirst(banned.socket, ['session:banned', 'disconnect']);
  assert.equal(first.event, 'session:banned', `session:banned comes before the disconnect (got ${first.event} ${JSON.stringify(first.args)})`);
  const payload = first.args[0];
  assert.deepEqual(Object.keys(payload).sort(), ['reason', 'until'], `session:banned payload ${JSON.stringify(payload)}`);
  assert.match(payload.until, RFC3339_UTC, 'session:banned until');
  const until = Date.parse(payload.until);
  assert.ok(until > Date.now(), `until is in the future: ${payload.until}`);
  if (banSecs !== undefined) {
    const expected = Date.now() + banSecs * 1000;
    assert.ok(Math.abs(until - expected) < slack * 1000, `until ≈ now + ${banSecs} s: ${payload.until}`);
  }
  assert.equal(typeof payload.reason, 'string');
  assert.ok(payload.reason.length > 0, 'a reason');
  if (reason !== undefined) assert.equal(payload.reason, reason);
  await waitFor(banned.socket, 'disconnect');
  assert.equal(banned.socket.connected, false);
  return payload;
}

/** Asserts a REST answer is 403 `banned` "You are banned" with `until` (≈ `until` when given). */
export function assertBannedAnswer(response, until, context) {
  assert.equal(response.status, 403, `${context}: ${response.status} ${JSON.stringify(response.body)}`);
  const error = response.body?.error;
  assert.deepEqual(Object.keys(error ?? {}).sort(), ['code', 'message', 'until'], `${context}: ${JSON.stringify(response.body)}`);
  assert.equal(error.code, 'banned', context);
  assert.equal(error.message, 'You are banned', context);
  assert.match(error.until, RFC3339_UTC, `${context}: until`);
  if (until !== undefined) assert.ok(Math.abs(Date.parse(error.until) - Date.parse(until)) < 1000, `${context}: until ${error.until} is the ban's ${until}`);
}

// ---------------------------------------------------------------------------------------
// Admin

/**
 * The admin listener's base URL from the server's `admin listening on http://ADDRESS` line
 * (waits at most `ms` for it after the main line).
 */
export async function adminUrl(server, ms = 3000) {
  if (server.adminUrl) return server.adminUrl;
  let found = null;
  try {
    await eventually(async () => {
      found = /^admin listening on (http:\/\/\S+?)\/?\s*$/m.exec(server.stdout());
      return found;
    }, ms, 'the "admin listening on http://ADDRESS" line');
  } catch {
    throw new Error(`the server printed no "admin listening on http://ADDRESS" line within ${ms} ms (started with CHAT__ADMIN__PORT=0): is the admin API there? stdout:\n${server.stdout()}`);
  }
  server.adminUrl = found[1];
  return server.adminUrl;
}

/** A request to the admin API of `server`, with the admin token unless `token` is given (null: none). */
export async function admin(server, method, path, { token = ADMIN_TOKEN, json, headers } = {}) {
  return api(await adminUrl(server), method, path, { token: token ?? undefined, json, headers });
}

/** Starts a test server with moderation settings (and the admin listener) plus `env`. */
export function startModerated(env = {}) {
  return startServer({ ...ADMIN_ENV, ...env });
}

/** The same for one test: stopped when it ends. */
export async function moderatedFor(t, env = {}) {
  const server = await startModerated(env);
  t.after(() => server.stop());
  return server;
}
