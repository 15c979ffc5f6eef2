// Moderation and administration (PROTOCOL.md, "Moderation and administration"): `user:report`
// (validation, not_in_chat, the last partner within 120 s, idempotency), a reporter and the
// reported never meet again, bans from distinct reporters (distinct users on distinct
// addresses: three tabs of one person are one), every effect of a ban and the refusals while
// it holds, the admin API (token, reports, bans, disconnect, drain, metrics, refusal to start
// with a short token), on one node in memory and on two nodes sharing a private Redis, and no
// client address stored or shown in clear.
//
// The server trusts 127.0.0.1 (this process) as its proxy: each person is a distinct client
// address through `X-Forwarded-For`, on REST and on the socket (lib/moderation.js).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  ADMIN_TOKEN,
  admin,
  adminUrl,
  assertBannedAnswer,
  connectFrom,
  createFrom,
  expectBanned,
  forwardedFor,
  leave,
  meet,
  moderatedFor,
  nextAddress,
  nextIpv6Net,
  person,
  report,
  reportOk,
  reportedBy,
  search,
  startModerated,
} from './lib/moderation.js';
import { redisAvailable, startRedis } from './lib/redis.js';
import { dumpRedis } from './lib/resp.js';
import {
  RFC3339_UTC,
  api,
  assertAckError,
  connectRefused,
  emitAck,
  eventually,
  expectNone,
  startServer,
  waitFor,
  waitForArgs,
} from './lib/server.js';

const available = redisAvailable();

const REPORT_KEYS = ['createdAt', 'details', 'id', 'reason', 'reportedId', 'reporterId', 'roomId'];
const BAN_KEYS = ['createdAt', 'id', 'reason', 'source', 'until', 'userId'];
const BAN_SECS = 900;

/** The distinct nodes among `nodes` (on memory the "two nodes" are one server). */
function distinct(nodes) {
  return [...new Set(nodes)];
}

/** One text from `from` to `to`, received and acked. */
async function relay(from, to, content) {
  const ack = await emitAck(from.socket, 'chat:message', { type: 'text', content });
  assert.equal(ack.ok, true, `chat:message: ${JSON.stringify(ack)}`);
  const [message, reply] = await waitForArgs(to.socket, 'chat:message', undefined, (payload) => payload.id === ack.message.id);
  assert.equal(message.content, content);
  reply();
  await waitFor(from.socket, 'message:delivered', undefined, (payload) => payload.id === ack.message.id);
}

async function assertSessionGone(nodes, token, context) {
  for (const node of distinct(nodes)) {
    const me = await api(node.url, 'GET', '/api/guest/me', { token });
    assert.equal(me.status, 404, `${context}: GET /api/guest/me on ${node.url}: ${me.status} ${JSON.stringify(me.body)}`);
    assert.deepEqual(me.body, { error: { code: 'session_not_found', message: 'Guest session not found' } }, context);
    const refused = await connectRefused(node.url, ['websocket'], { auth: { token }, extraHeaders: forwardedFor(nextAddress()) });
    assert.equal(refused.message, 'Guest session not found', `${context}: a socket with the dead token on ${node.url}`);
  }
}

/**
 * A and B (not in a chat) each have a chat with a newcomer (on `nodeA` and `nodeB`), so that
 * no "the partner just left" rule applies between them any more.
 */
async function otherPartners(a, b, nodeA = a.node, nodeB = b.node) {
  const c = await person(nodeA);
  await meet(a, c);
  await leave(c, a);
  const d = await person(nodeB);
  await meet(b, d);
  await leave(d, b);
}

/**
 * A reports B; after each has had another partner (so that no "just left" rule keeps them
 * apart, only the report), the two search alone together and are not paired; newcomers are
 * paired with each of them. A on `nodes[0]`, B on `nodes[1]`.
 */
async function neverRematched(nodes) {
  const [first, second] = nodes;
  const a = await person(first);
  const b = await person(second);
  await meet(a, b);
  await reportOk(a, { reason: 'spam' });
  // The chat itself goes on after a report.
  await relay(b, a, 'still here');
  await relay(a, b, 'not for long');
  await leave(a, b);
  await otherPartners(a, b, second, first);
  // Alone together in the queue (the reporter first, then the reported; then both ways).
  await search(a);
  await search(b);
  await expectNone(a.socket, 'match:found', 500);
  await expectNone(b.socket, 'match:found', 0);
  const e = await person(first);
  await search(e);
  const foundE = await waitFor(e.socket, 'match:found');
  assert.ok([a.user.id, b.user.id].includes(foundE.partner.id), 'the newcomer meets one of the two');
  const [met, other] = foundE.partner.id === a.user.id ? [a, b] : [b, a];
  assert.equal((await waitFor(met.socket, 'match:found')).partner.id, e.user.id);
  const f = await person(second);
  await search(f);
  assert.equal((await waitFor(f.socket, 'match:found')).partner.id, other.user.id, 'the next newcomer meets the other');
  assert.equal((await waitFor(other.socket, 'match:found')).partner.id, f.user.id);
}

/**
 * Three distinct reporters ban B: B's session was created through `nodes[0]` from an IPv4
 * address (with a deviceId) and connected to `nodes[1]` from an IPv6 one; the reporters are
 * on `nodes[1]`, `nodes[0]`, `nodes[0]` (the last report, the one that bans, is made on the
 * node B's socket is not on). Every effect of the ban and every refusal while it holds, on
 * every node. Resolves `{target, banned, created, connected, device}`.
 */
async function banEffects(nodes, { banSecs = BAN_SECS } = {}) {
  const [first, second] = nodes;
  const created = nextAddress();
  const net = nextIpv6Net();
  const connected = net.address('b');
  const device = `device-${Date.now()}-${Math.random().toString(16).slice(2)}`;
  const target = await person(second, { createOn: first, address: created, connectAddress: connected, profile: { deviceId: device }, transports: ['polling'] });
  const reporters = [await person(second), await person(first), await person(first)];

  // Two distinct reporters: not yet.
  await reportedBy(target, reporters.slice(0, 2));
  await leave(reporters[1], target);
  await expectNone(target.socket, 'session:banned', 300);
  assert.equal(target.socket.connected, true, 'two reports do not ban');

  // The third (through nodes[0], while B's socket is on nodes[1]).
  const roomId = await meet(target, reporters[2]);
  await reportOk(reporters[2], { reason: 'harassment', details: 'the third distinct reporter' });
  const banned = await expectBanned(target, { banSecs });
  assert.deepEqual(await waitFor(reporters[2].socket, 'room:closed'), { roomId, reason: 'partner_banned' });
  const me = await api(first.url, 'GET', '/api/guest/me', { token: reporters[2].token });
  assert.equal(me.body.user.inChat, false, 'the partner is out of the chat');
  assert.equal(me.body.user.connectedUser, null);
  assertAckError(assert, await emitAck(reporters[2].socket, 'chat:message', { type: 'text', content: 'hello?' }), 'not_in_chat', 'the partner after partner_banned');
  for (const reporter of reporters) assert.equal(reporter.socket.connected, true, 'reporters stay connected');

  // The session ended: its token no longer works anywhere.
  await assertSessionGone(nodes, target.token, 'the banned session');

  // While the ban holds, on every node.
  for (const node of distinct(nodes)) {
    assertBannedAnswer(await createFrom(node, created), banned.until, `POST /api/guest on ${node.url} from the address B was created from`);
    assertBannedAnswer(await createFrom(node, connected), banned.until, `… from the address B connected from`);
    assertBannedAnswer(await createFrom(node, net.address('ffff:1')), banned.until, `… from another address in B's IPv6 /64`);
    assertBannedAnswer(await createFrom(node, nextAddress(), { deviceId: device }), banned.until, `… with B's deviceId from a fresh address`);
    const elsewhere = nextAddress();
    const fresh = await createFrom(node, elsewhere, { deviceId: `${device}-other` });
    assert.equal(fresh.status, 201, `another address and device are not banned: ${JSON.stringify(fresh.body)}`);
    for (const [address, transports] of [[created, ['websocket']], [connected, ['polling']], [net.address('7'), ['websocket']]]) {
      const refused = await connectRefused(node.url, transports, { auth: { token: fresh.body.token }, extraHeaders: forwardedFor(address) });
      assert.equal(refused.message, 'Banned', `a fresh session's socket from banned ${address} over ${transports} on ${node.url}`);
    }
    const { socket } = await connectFrom(node, fresh.body.token, elsewhere);
    socket.close();
  }
  assert.notEqual((await createFrom(first, nextIpv6Net().address('b'))).status, 403, 'another IPv6 /64 is not banned');
  return { target, banned, created, connected, device };
}

// ---------------------------------------------------------------------------------------

describe('moderation on one node (memory)', () => {
  test('user:report is validated (invalid_input, nothing filed) while the chat goes on', async (t) => {
    const server = await moderatedFor(t);
    const a = await person(server);
    const b = await person(server);
    await meet(a, b);
    const bad = [
      { reason: 'bogus' },
      { reason: 'Spam' },
      { reason: '' },
      {},
      { details: 'no reason' },
      { reason: 5 },
      { reason: 'spam', details: 'x'.repeat(501) },
      { reason: 'spam', details: 'é'.repeat(501) },
      { reason: 'spam', details: 5 },
      { reason: 'spam', details: { text: 'nested' } },
      'spam',
      42,
      ['spam'],
      null,
      undefined,
    ];
    for (const payload of bad) {
      assertAckError(assert, await report(a, payload), 'invalid_input', `user:report ${JSON.stringify(payload)}`);
    }
    // Without an ack: an `error` event names the event.
    a.socket.emit('user:report', { reason: 'bogus' });
    const error = await waitFor(a.socket, 'error');
    assert.equal(error.event, 'user:report');
    assert.equal(error.code, 'invalid_input');
    assert.equal(typeof error.message, 'string');
    assert.equal(a.socket.connected, true, 'bad input never closes the connection');
    await relay(a, b, 'the chat goes on');
    await relay(b, a, 'indeed');

    // Nothing was filed: once each has had another partner, A and B may meet again.
    await leave(a, b);
    await otherPartners(a, b);
    await meet(a, b);
    // 500 characters (not bytes) are valid details; null details are none.
    await reportOk(a, { reason: 'other', details: 'é'.repeat(500) });
    await reportOk(b, { reason: 'underage', details: null });
  });

  test('no partner to report: not_in_chat (never in a chat, searching)', async (t) => {
    const server = await moderatedFor(t);
    const a = await person(server);
    assertAckError(assert, await report(a, { reason: 'spam' }), 'not_in_chat', 'never in a chat');
    await search(a);
    assertAckError(assert, await report(a, { reason: 'harassment', details: 'anyone' }), 'not_in_chat', 'searching');
    a.socket.emit('user:report', { reason: 'spam' });
    const error = await waitFor(a.socket, 'error');
    assert.deepEqual([error.event, error.code], ['user:report', 'not_in_chat']);
  });

  test('the last partner can be reported after the room closed (leave, next, disconnect)', async (t) => {
    const server = await moderatedFor(t, { CHAT__CHAT__RECONNECT_GRACE_SECS: '1' });
    const a = await person(server);
    const b = await person(server);
    await meet(a, b);
    await leave(b, a);
    const byA = await reportOk(a, { reason: 'spam' });
    const byB = await reportOk(b, { reason: 'other', details: 'the one who left reports too' });
    assert.notEqual(byA, byB, 'two reports, two ids');

    // match:next: the one left behind reports the one who moved on.
    const c = await person(server);
    const d = await person(server);
    const roomCD = await meet(c, d);
    assert.equal((await emitAck(c.socket, 'match:next', {})).ok, true);
    assert.deepEqual(await waitFor(d.socket, 'room:closed'), { roomId: roomCD, reason: 'partner_left' });
    await reportOk(d, { reason: 'nudity' });
    await reportOk(c, { reason: 'spam' }); // searching again, but C's last room closed just now
    assert.equal((await emitAck(c.socket, 'match:cancel')).ok, true);

    // The partner ended their session (DELETE /api/guest/me): still reportable.
    const h = await person(server);
    const k = await person(server);
    const roomHK = await meet(h, k);
    assert.equal((await api(server.url, 'DELETE', '/api/guest/me', { token: k.token })).status, 204);
    assert.deepEqual(await waitFor(h.socket, 'room:closed'), { roomId: roomHK, reason: 'partner_left' });
    await reportOk(h, { reason: 'spam', details: 'then ran away' });

    // The partner's socket dropped and the grace ran out.
    const e = await person(server);
    const f = await person(server);
    const roomEF = await meet(e, f);
    f.socket.close();
    assert.equal((await waitFor(e.socket, 'partner:disconnected')).graceSecs, 1);
    assert.deepEqual(await waitFor(e.socket, 'room:closed', 5000), { roomId: roomEF, reason: 'partner_disconnected' });
    await reportOk(e, { reason: 'harassment' });

    // Once in a new chat, the report is about the new partner (a new report).
    const g = await person(server);
    await meet(a, g);
    const aboutG = await reportOk(a, { reason: 'spam' });
    assert.notEqual(aboutG, byA, 'the current partner, not the last one');
  });

  test('a repeat report answers the first reportId and counts once; three tabs of one person are one reporter', async (t) => {
    const server = await moderatedFor(t);
    const target = await person(server);

    // Three sessions (tabs) from ONE address report the target.
    const shared = nextAddress();
    const tabs = [];
    for (let index = 0; index < 3; index += 1) tabs.push(await person(server, { address: shared }));
    await reportedBy(target, tabs);
    await leave(tabs[2], target);
    await expectNone(target.socket, 'session:banned', 300);

    // A second reporter reports three times: one report, one id, counted once.
    const repeat = await person(server);
    await meet(target, repeat);
    const first = await reportOk(repeat, { reason: 'spam' });
    assert.equal(await reportOk(repeat, { reason: 'other', details: 'again' }), first, 'the same partner again: the same id');
    await leave(repeat, target);
    assert.equal(await reportOk(repeat, { reason: 'nudity' }), first, 'after the room closed: still the same id');
    await expectNone(target.socket, 'session:banned', 300);
    assert.equal(target.socket.connected, true, 'one address of tabs + one repeated reporter: two, not a ban');
    assert.equal((await api(server.url, 'GET', '/api/guest/me', { token: target.token })).status, 200);

    // A third distinct reporter (user and address): the ban.
    const third = await person(server);
    await meet(target, third);
    await reportOk(third, { reason: 'spam' });
    await expectBanned(target, { banSecs: 86_400 }); // the default BAN_SECS
  });

  test('a reporter and the reported are never matched again', async (t) => {
    const server = await moderatedFor(t);
    await neverRematched([server, server]);
  });

  test('three distinct reporters ban: every effect, every refusal while it holds', async (t) => {
    const server = await moderatedFor(t, { CHAT__MODERATION__BAN_SECS: String(BAN_SECS) });
    await banEffects([server, server]);
  });

  test('REPORTS_TO_BAN and REPORT_WINDOW_SECS are honoured, and a ban ends after BAN_SECS', async (t) => {
    const server = await moderatedFor(t, {
      CHAT__MODERATION__REPORTS_TO_BAN: '2',
      CHAT__MODERATION__REPORT_WINDOW_SECS: '2',
      CHAT__MODERATION__BAN_SECS: '2',
    });
    const target = await person(server);
    const [early, late, last] = [await person(server), await person(server), await person(server)];
    await meet(target, early);
    await reportOk(early);
    const reportedAt = Date.now();
    await leave(early, target);
    // The first report leaves the 2 s window: a deliberate wait, not a hope.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, reportedAt + 2300 - Date.now())));
    await meet(target, late);
    await reportOk(late);
    await leave(late, target);
    await expectNone(target.socket, 'session:banned', 300);
    await meet(target, last);
    await reportOk(last);
    const banned = await expectBanned(target, { banSecs: 2, slack: 2 });
    assertBannedAnswer(await createFrom(server, target.address), banned.until, 'while the 2 s ban holds');
    await eventually(async () => (await createFrom(server, target.address)).status === 201, 5000, 'a new session from the address once the ban ran out');
    assert.ok(Date.now() >= Date.parse(banned.until) - 1000, 'not before the ban ended');
  });
});

// ---------------------------------------------------------------------------------------

describe('the admin API (memory)', () => {
  let server;
  before(async () => {
    server = await startModerated({ CHAT__MODERATION__BAN_SECS: String(BAN_SECS) });
  });
  after(() => server?.stop());

  test('its own listener; every request needs the admin token (401 otherwise)', async () => {
    const base = await adminUrl(server);
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(base, server.url, 'not the main port');
    const requests = [
      ['GET', '/admin/reports'],
      ['GET', '/admin/bans'],
      ['POST', '/admin/bans', { userId: 'guest_00000000-0000-0000-0000-000000000000' }],
      ['DELETE', '/admin/bans/ban_00000000-0000-0000-0000-000000000000'],
      ['POST', '/admin/users/guest_00000000-0000-0000-0000-000000000000/disconnect'],
      ['POST', '/admin/drain'],
      ['GET', '/metrics'],
    ];
    const wrong = [null, 'wrong', `${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1), ADMIN_TOKEN.toUpperCase()];
    for (const [method, path, json] of requests) {
      for (const token of wrong) {
        const answer = await admin(server, method, path, { token, json });
        assert.equal(answer.status, 401, `${method} ${path} with token ${JSON.stringify(token)}: ${answer.status} ${JSON.stringify(answer.body)}`);
        assert.equal(typeof answer.body?.error?.code, 'string', `${method} ${path}: the REST error shape: ${JSON.stringify(answer.body)}`);
        assert.equal(typeof answer.body.error.message, 'string');
      }
      const basic = await admin(server, method, path, { token: null, json, headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` } });
      assert.equal(basic.status, 401, `${method} ${path} with Basic auth`);
    }
    // Nothing happened: the unauthenticated drain drained nothing.
    assert.equal((await api(server.url, 'GET', '/readyz')).status, 200);
    assert.equal((await createFrom(server, nextAddress())).status, 201);

    const bans = await admin(server, 'GET', '/admin/bans');
    assert.equal(bans.status, 200, JSON.stringify(bans.body));
    assert.deepEqual(bans.body, { bans: [] });
    const metrics = await admin(server, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(metrics.body, /^# (HELP|TYPE) /m);
    // The admin API is not on the main port.
    const leaked = await api(server.url, 'GET', '/admin/bans', { token: ADMIN_TOKEN });
    assert.equal(leaked.status, 404, `GET /admin/bans on the main port: ${leaked.status}`);
  });

  test('GET /admin/reports: newest first, paged, refused reports not filed', async () => {
    const before = await admin(server, 'GET', '/admin/reports?limit=100');
    assert.equal(before.status, 200, JSON.stringify(before.body));
    const known = new Set(before.body.reports.map((entry) => entry.id));
    const filed = [];
    for (const [reason, details] of [['spam', 'first'], ['harassment', null], ['other', 'third']]) {
      const reporter = await person(server);
      const reported = await person(server);
      const roomId = await meet(reporter, reported);
      assertAckError(assert, await report(reporter, { reason: 'bogus', details: 'refused' }), 'invalid_input', 'a bad reason');
      assertAckError(assert, await report(reporter, { reason, details: 'y'.repeat(501) }), 'invalid_input', 'long details');
      const id = await reportOk(reporter, details === null ? { reason } : { reason, details });
      filed.push({ id, reporterId: reporter.user.id, reportedId: reported.user.id, reason, details, roomId });
    }
    const all = await admin(server, 'GET', '/admin/reports?limit=100');
    assert.equal(all.status, 200);
    assert.deepEqual(Object.keys(all.body).sort(), ['nextCursor', 'reports']);
    const fresh = all.body.reports.filter((entry) => !known.has(entry.id));
    assert.equal(fresh.length, 3, `exactly the three valid reports were filed: ${JSON.stringify(fresh)}`);
    for (const entry of fresh) {
      assert.deepEqual(Object.keys(entry).sort(), REPORT_KEYS, JSON.stringify(entry));
      assert.match(entry.createdAt, RFC3339_UTC);
    }
    const newestFirst = [...filed].reverse();
    assert.deepEqual(fresh.map(({ createdAt, ...rest }) => rest), newestFirst, 'newest first, as filed');
    for (let index = 1; index < all.body.reports.length; index += 1) {
      assert.ok(Date.parse(all.body.reports[index - 1].createdAt) >= Date.parse(all.body.reports[index].createdAt), 'newest first');
    }
    // Paging: two, then the rest.
    const total = all.body.reports.length;
    const page = await admin(server, 'GET', '/admin/reports?limit=2');
    assert.equal(page.status, 200);
    assert.equal(page.body.reports.length, 2);
    assert.equal(typeof page.body.nextCursor, 'string', JSON.stringify(page.body));
    const rest = await admin(server, 'GET', `/admin/reports?limit=100&cursor=${encodeURIComponent(page.body.nextCursor)}`);
    assert.equal(rest.status, 200, JSON.stringify(rest.body));
    assert.equal(rest.body.nextCursor, null);
    assert.deepEqual([...page.body.reports, ...rest.body.reports].map((entry) => entry.id), all.body.reports.map((entry) => entry.id), `${total} reports over two pages, none twice`);
    const defaults = await admin(server, 'GET', '/admin/reports');
    assert.equal(defaults.status, 200);
    assert.ok(defaults.body.reports.length <= 50);
  });

  test('POST /admin/bans has a ban\'s effects; DELETE lifts it', async () => {
    const a = await person(server, { profile: { deviceId: `admin-banned-${Date.now()}` } });
    const b = await person(server);
    const roomId = await meet(a, b);
    const made = await admin(server, 'POST', '/admin/bans', { json: { userId: a.user.id, secs: 120, reason: 'operator says so' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const { ban } = made.body;
    assert.deepEqual(Object.keys(made.body), ['ban']);
    assert.deepEqual(Object.keys(ban).sort(), BAN_KEYS, JSON.stringify(ban));
    assert.match(ban.id, /^ban_/);
    assert.equal(ban.userId, a.user.id);
    assert.equal(ban.reason, 'operator says so');
    assert.equal(ban.source, 'admin');
    assert.match(ban.createdAt, RFC3339_UTC);
    assert.match(ban.until, RFC3339_UTC);
    assert.ok(Math.abs(Date.parse(ban.until) - (Date.now() + 120_000)) < 30_000, `until ≈ now + 120 s: ${ban.until}`);
    const banned = await expectBanned(a, { banSecs: 120, reason: 'operator says so' });
    assert.equal(Date.parse(banned.until), Date.parse(ban.until), 'the socket is told the ban\'s until');
    assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'partner_banned' });
    await assertSessionGone([server], a.token, 'a session banned by an operator');
    assertBannedAnswer(await createFrom(server, a.address), ban.until, 'POST /api/guest from the banned address');
    assertBannedAnswer(await createFrom(server, nextAddress(), { deviceId: a.user.deviceId }), ban.until, 'POST /api/guest with the banned deviceId');
    const listed = await admin(server, 'GET', '/admin/bans');
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.bans.find((entry) => entry.id === ban.id), ban, 'GET /admin/bans lists it as made');

    const lifted = await admin(server, 'DELETE', `/admin/bans/${ban.id}`);
    assert.equal(lifted.status, 204, JSON.stringify(lifted.body));
    assert.equal(lifted.body, '');
    assert.ok(!(await admin(server, 'GET', '/admin/bans')).body.bans.some((entry) => entry.id === ban.id), 'no longer in force');
    const back = await createFrom(server, a.address, { deviceId: a.user.deviceId });
    assert.equal(back.status, 201, `lifted: ${JSON.stringify(back.body)}`);
    const { socket } = await connectFrom(server, back.body.token, a.address);
    socket.close();

    // Without secs: BAN_SECS; without reason: some reason.
    const c = await person(server);
    const plain = await admin(server, 'POST', '/admin/bans', { json: { userId: c.user.id } });
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
    assert.ok(Math.abs(Date.parse(plain.body.ban.until) - (Date.now() + BAN_SECS * 1000)) < 30_000, `until ≈ now + BAN_SECS: ${plain.body.ban.until}`);
    assert.equal(typeof plain.body.ban.reason, 'string');
    await expectBanned(c, { banSecs: BAN_SECS });
    assert.equal((await admin(server, 'DELETE', `/admin/bans/${plain.body.ban.id}`)).status, 204);

    // Refusals.
    const unknown = await admin(server, 'POST', '/admin/bans', { json: { userId: 'guest_00000000-0000-4000-8000-000000000000' } });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.code, 'session_not_found');
    for (const json of [{}, { userId: 5 }, { userId: c.user.id, secs: 'long' }, { userId: c.user.id, secs: -1 }]) {
      const answer = await admin(server, 'POST', '/admin/bans', { json });
      assert.equal(answer.status, 400, `POST /admin/bans ${JSON.stringify(json)}: ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, 'invalid_input');
    }
  });

  test('a ban while the user\'s socket is away (reconnect grace) closes the room with partner_banned', async () => {
    const a = await person(server);
    const b = await person(server);
    const roomId = await meet(a, b);
    a.socket.close();
    await waitFor(b.socket, 'partner:disconnected');
    const made = await admin(server, 'POST', '/admin/bans', { json: { userId: a.user.id, secs: 60 } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'partner_banned' });
    await assertSessionGone([server], a.token, 'banned while away');
    assert.equal((await admin(server, 'DELETE', `/admin/bans/${made.body.ban.id}`)).status, 204);
  });

  test('POST /admin/users/{id}/disconnect ends the session; the partner gets partner_left', async () => {
    const a = await person(server);
    const b = await person(server);
    const roomId = await meet(a, b);
    const answer = await admin(server, 'POST', `/admin/users/${a.user.id}/disconnect`);
    assert.equal(answer.status, 204, JSON.stringify(answer.body));
    assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'partner_left' });
    await waitFor(a.socket, 'disconnect');
    await expectNone(a.socket, 'session:banned', 0);
    await assertSessionGone([server], a.token, 'a session ended by an operator');
    assert.equal((await createFrom(server, a.address)).status, 201, 'a disconnect is no ban');
    const unknown = await admin(server, 'POST', `/admin/users/${a.user.id}/disconnect`);
    assert.equal(unknown.status, 404, `the ended session is unknown now: ${JSON.stringify(unknown.body)}`);
  });

  test('POST /admin/drain: /readyz 503 draining, no new sessions or sockets, chats go on', async (t) => {
    const drained = await moderatedFor(t);
    const a = await person(drained);
    const b = await person(drained);
    await meet(a, b);
    const waiting = (await createFrom(drained, nextAddress())).body;
    const answer = await admin(drained, 'POST', '/admin/drain');
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const ready = await api(drained.url, 'GET', '/readyz');
    assert.equal(ready.status, 503, JSON.stringify(ready.body));
    assert.equal(ready.body.draining, true, JSON.stringify(ready.body));
    const created = await createFrom(drained, nextAddress());
    assert.equal(created.status, 503, JSON.stringify(created.body));
    assert.equal(created.body.error.code, 'draining');
    assert.equal(typeof created.body.error.message, 'string');
    await connectRefused(drained.url, ['websocket'], { auth: { token: waiting.token }, extraHeaders: forwardedFor(nextAddress()) });
    await connectRefused(drained.url, ['polling'], { auth: { token: waiting.token }, extraHeaders: forwardedFor(nextAddress()) });
    // The chat already on it goes on.
    assert.equal(a.socket.connected && b.socket.connected, true);
    await relay(a, b, 'still chatting on a draining node');
    await relay(b, a, 'yes');
    assert.equal((await admin(drained, 'GET', '/admin/bans')).status, 200, 'the admin API still answers');
  });

  test('a token under 32 bytes, or none, with CHAT__ADMIN__PORT stops the server at start (exit 2)', async () => {
    for (const env of [{ CHAT__ADMIN__PORT: '0', CHAT__ADMIN__TOKEN: '0123456789' }, { CHAT__ADMIN__PORT: '0' }]) {
      let error = null;
      try {
        const started = await startServer(env);
        await started.stop();
      } catch (caught) {
        error = caught;
      }
      assert.ok(error, `the server started with ${JSON.stringify(env)}`);
      assert.deepEqual(error.exit, { code: 2, signal: null }, `exit with ${JSON.stringify(env)}: ${error.message}`);
      assert.match(error.stderr + error.stdout, /admin/i, 'the reason names the admin setting');
    }
  });
});

// ---------------------------------------------------------------------------------------

/** The address needles no stored key or value, and no admin answer, may hold. */
const LEAK_V4 = '10.77.88.99';
const LEAK_V6_HOST = '2001:db8:7e57:42::99';
const LEAKS = [
  Buffer.from(LEAK_V4),
  Buffer.from('2001:db8:7e57:42'),
  Buffer.from('2001:0db8:7e57:0042'),
  Buffer.from([10, 77, 88, 99]), // the address as bytes
  Buffer.from('20010db87e570042', 'hex'), // the /64 as bytes
  Buffer.from('0a4d5863', 'ascii'), // as hex text
  Buffer.from('20010db87e570042', 'ascii'),
];

function leaksIn(data) {
  const buffer = Buffer.isBuffer(data) ? data : Buffer.from(typeof data === 'string' ? data : JSON.stringify(data));
  return LEAKS.filter((needle) => buffer.includes(needle)).map((needle) => needle.toString('latin1'));
}

describe('moderation on two nodes sharing Redis', { skip: !available && 'redis-server is not installed' }, () => {
  let redis;
  let nodes;

  before(async () => {
    redis = await startRedis();
    nodes = [];
    for (let index = 0; index < 2; index += 1) {
      // At the deployments' log level, so that the logs can be searched for addresses too.
      nodes.push(await startModerated({ REDIS_URL: redis.url, CHAT__MODERATION__BAN_SECS: String(BAN_SECS), RUST_LOG: 'info' }));
    }
  });

  after(async () => {
    await Promise.all((nodes ?? []).map((node) => node.stop()));
    await redis?.stop();
  });

  test('reporters on different nodes count together; the ban made on node 0 ends the socket on node 1', async () => {
    for (const node of nodes) assert.deepEqual((await api(node.url, 'GET', '/readyz')).body, { storage: 'redis', redis: 'up' });
    await banEffects(nodes);
  });

  test('reports across nodes: after the room closed on the other node, and the same id after moving node', async () => {
    const a = await person(nodes[0]);
    const b = await person(nodes[1]);
    const roomId = await meet(a, b);
    const first = await reportOk(a, { reason: 'spam' });
    // A's socket drops and comes back on node 1 within the grace: the chat goes on, the report is the same.
    a.socket.close();
    await waitFor(b.socket, 'partner:disconnected');
    const { socket } = await connectFrom(nodes[1], a.token, a.address);
    a.socket = socket;
    await waitFor(b.socket, 'partner:reconnected');
    assert.equal(await reportOk(a, { reason: 'other', details: 'from the other node' }), first, 'the same partner from another node: the same id');
    // B closes the room on node 1; A, now on node 1 too, and B report each other.
    await leave(b, a);
    assert.equal(await reportOk(a, { reason: 'nudity' }), first, 'after the room closed: the same id');
    const byB = await reportOk(b, { reason: 'harassment' });
    assert.notEqual(byB, first);
    const listed = await admin(nodes[0], 'GET', '/admin/reports?limit=100');
    const between = listed.body.reports.filter((entry) => entry.roomId === roomId);
    assert.deepEqual(between.map((entry) => [entry.reporterId, entry.reportedId]).sort(), [[a.user.id, b.user.id], [b.user.id, a.user.id]].sort(), 'one report each way');

    // C on node 0 meets D on node 1; D leaves through node 1: C reports D through node 0.
    const c = await person(nodes[0]);
    const d = await person(nodes[1]);
    await meet(c, d);
    await leave(d, c);
    await reportOk(c, { reason: 'spam' });
  });

  test('an operator bans and disconnects through the node the user is not on', async () => {
    const a = await person(nodes[1]);
    const b = await person(nodes[0]);
    const roomId = await meet(a, b);
    const made = await admin(nodes[0], 'POST', '/admin/bans', { json: { userId: a.user.id, secs: 60, reason: 'cross-node operator ban' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    await expectBanned(a, { banSecs: 60, reason: 'cross-node operator ban' });
    assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId, reason: 'partner_banned' });
    await assertSessionGone(nodes, a.token, 'banned through the other node');
    assertBannedAnswer(await createFrom(nodes[1], a.address), made.body.ban.until, 'the address, on the user\'s node');

    const c = await person(nodes[0]);
    const roomBC = await meet(b, c);
    const ended = await admin(nodes[1], 'POST', `/admin/users/${c.user.id}/disconnect`);
    assert.equal(ended.status, 204, JSON.stringify(ended.body));
    await waitFor(c.socket, 'disconnect');
    assert.deepEqual(await waitFor(b.socket, 'room:closed'), { roomId: roomBC, reason: 'partner_left' });
    await assertSessionGone(nodes, c.token, 'disconnected through the other node');
  });

  test('a reporter and the reported, on different nodes, are never matched again', async () => {
    await neverRematched(nodes);
  });

  test('an admin lift through one node lets the banned address in on both nodes at once', async () => {
    const target = await person(nodes[1], { createOn: nodes[0] });
    const reporters = [await person(nodes[0]), await person(nodes[1]), await person(nodes[0])];
    await reportedBy(target, reporters, { reason: 'spam' });
    const banned = await expectBanned(target, { banSecs: BAN_SECS });
    let ban = null;
    for (const node of nodes) {
      const listed = await admin(node, 'GET', '/admin/bans');
      assert.equal(listed.status, 200, JSON.stringify(listed.body));
      const entry = listed.body.bans.find((candidate) => candidate.userId === target.user.id);
      assert.ok(entry, `the ban is listed on ${node.url}: ${JSON.stringify(listed.body)}`);
      assert.deepEqual(Object.keys(entry).sort(), BAN_KEYS);
      assert.equal(entry.source, 'reports');
      assert.equal(Date.parse(entry.until), Date.parse(banned.until));
      ban ??= entry;
      assert.deepEqual(entry, ban, 'both nodes list the same ban');
      assertBannedAnswer(await createFrom(node, target.address), banned.until, `banned on ${node.url}`);
    }
    const reports = await admin(nodes[1], 'GET', '/admin/reports?limit=100');
    const against = reports.body.reports.filter((entry) => entry.reportedId === target.user.id);
    assert.deepEqual(against.map((entry) => entry.reporterId).sort(), reporters.map((reporter) => reporter.user.id).sort(), 'node 1 lists the reports made on both nodes');

    const lifted = await admin(nodes[0], 'DELETE', `/admin/bans/${ban.id}`);
    assert.equal(lifted.status, 204, JSON.stringify(lifted.body));
    // At once: no retry, on the other node first.
    for (const node of [nodes[1], nodes[0]]) {
      const back = await createFrom(node, target.address);
      assert.equal(back.status, 201, `a new session from the lifted address on ${node.url}: ${JSON.stringify(back.body)}`);
      const { socket } = await connectFrom(node, back.body.token, target.address);
      socket.close();
      const listed = await admin(node, 'GET', '/admin/bans');
      assert.ok(!listed.body.bans.some((entry) => entry.id === ban.id), `no longer listed on ${node.url}`);
    }
  });

  test('no client address in clear: not in any Redis key or value, nor in what the admin API answers', async () => {
    const target = await person(nodes[1], { createOn: nodes[0], address: LEAK_V4, connectAddress: LEAK_V6_HOST });
    const reporters = [await person(nodes[0]), await person(nodes[1]), await person(nodes[1])];
    await reportedBy(target, reporters, { reason: 'nudity' });
    const banned = await expectBanned(target, { banSecs: BAN_SECS });
    // Refusals from the banned address and /64 (they reach the rate limits and the ban checks too).
    for (const node of nodes) {
      assertBannedAnswer(await createFrom(node, LEAK_V4), banned.until, 'the banned IPv4 address');
      assertBannedAnswer(await createFrom(node, '2001:db8:7e57:42::1234'), banned.until, 'the banned /64');
    }
    const fresh = (await createFrom(nodes[0], nextAddress())).body;
    assert.equal((await connectRefused(nodes[1].url, ['websocket'], { auth: { token: fresh.token }, extraHeaders: forwardedFor(LEAK_V6_HOST) })).message, 'Banned');

    // Every key and every value in Redis.
    const entries = await dumpRedis(redis.port);
    assert.ok(entries.length > 0, 'the nodes store their data in this Redis');
    const found = [];
    for (const { key, type, parts } of entries) {
      for (const needle of leaksIn(key)) found.push(`key ${key.toString('latin1')} (${type}) holds ${needle}`);
      for (const part of parts) {
        for (const needle of leaksIn(part)) found.push(`${type} ${key.toString('latin1')} holds ${needle} in ${JSON.stringify(part.toString('latin1').slice(0, 120))}`);
      }
    }

    // What the admin API and the metrics show.
    const made = await admin(nodes[0], 'POST', '/admin/bans', { json: { userId: reporters[0].user.id, secs: 60, reason: 'leak check' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    for (const needle of leaksIn(made.body)) found.push(`POST /admin/bans answers ${needle}`);
    for (const node of nodes) {
      for (const path of ['/admin/reports?limit=100', '/admin/bans', '/metrics']) {
        const answer = await admin(node, 'GET', path);
        assert.equal(answer.status, 200, `${path} on ${node.url}`);
        for (const needle of leaksIn(answer.body)) found.push(`admin ${path} on ${node.url} answers ${needle}`);
      }
      for (const needle of leaksIn((await api(node.url, 'GET', '/metrics')).body)) found.push(`/metrics on the main port of ${node.url} shows ${needle}`);
      // The logs (RUST_LOG=info), as far as the harness keeps them.
      for (const needle of leaksIn(node.stdout() + node.stderr())) found.push(`the log of ${node.url} shows ${needle}`);
    }
    assert.deepEqual(found, [], `addresses in clear:\n${found.join('\n')}`);
  });
});
