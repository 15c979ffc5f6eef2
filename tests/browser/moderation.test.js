// Reporting and bans in the page. The report dialog (its labels, focus, Escape, the reason it
// needs and the 500-character limit on details); a report that bans at once
// (CHAT__MODERATION__REPORTS_TO_BAN=1): the reporter is told and moves on (its partner was
// removed: `partner_banned`), the reported user sees the banned screen with the end of the ban
// in their locale, and a new visit from that browser, its device id or its address is refused;
// a Socket.IO connection refused with "Banned"; a report of the partner who just left; and the
// banned screen ending by itself.
//
// Every browser context speaks from its own client address (X-Forwarded-For, believed from
// 127.0.0.1), so a ban of one does not cover the others.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertClean, join, launchBrowser, openPage, screenshot, skipReason, startServer, waitPhase, waitText } from './lib/harness.js';

const BAN_SECS = 3600;
const ADDRESS = {
  alice: '198.51.100.1',
  bob: '198.51.100.2',
  carol: '198.51.100.3',
  dave: '198.51.100.4',
  erin: '198.51.100.5',
  frank: '198.51.100.6',
};
const REASONS = ['Spam or advertising', 'Harassment, threats or hate', 'Nudity or sexual content', 'Seems to be under 18', 'Something else'];

/** A browser context of its own, speaking from `address`; it records what it sends. */
async function visitor(browser, address, options = {}) {
  const who = await openPage(browser, { extraHTTPHeaders: { 'X-Forwarded-For': address }, ...options });
  who.reports = [];
  who.requests = [];
  const report = (payload) => {
    if (String(payload).includes('"user:report"')) who.reports.push(String(payload));
  };
  who.page.on('websocket', (socket) => socket.on('framesent', ({ payload }) => report(payload)));
  who.page.on('request', (request) => {
    who.requests.push({ method: request.method(), path: new URL(request.url()).pathname });
    if (request.method() === 'POST' && request.url().includes('/socket.io/')) report(request.postData() ?? '');
  });
  return who;
}

/** What `who` asked of the API or Socket.IO since `since` requests. */
function calls(who, since) {
  return who.requests.slice(since).filter(({ path }) => path.startsWith('/api/') || path.startsWith('/socket.io/'));
}

async function openReportFromMenu(who) {
  await who.page.click('.more summary');
  await who.page.getByRole('button', { name: 'Report…' }).click();
  await who.page.locator('#report-dialog[open]').waitFor();
}

async function focused(page) {
  return page.evaluate(() => {
    const active = document.activeElement;
    return { id: active?.id ?? '', name: active?.getAttribute('name') ?? '', summary: Boolean(active?.matches('.more summary')) };
  });
}

/** The `datetime` of the banned screen's end time. */
function bannedUntil(page) {
  return page.locator('#banned-ends time').getAttribute('datetime');
}

describe('reports and bans in the page', { skip: skipReason ?? false }, () => {
  let server;
  let browser;
  let alice;
  let bob;
  let carol;
  const extra = [];
  let until;
  let bobSince = 0;

  before(async () => {
    server = await startServer({
      CHAT__MODERATION__REPORTS_TO_BAN: '1',
      CHAT__MODERATION__BAN_SECS: String(BAN_SECS),
      CHAT__SERVER__TRUSTED_PROXIES: '127.0.0.1',
    });
    browser = await launchBrowser();
    alice = await visitor(browser, ADDRESS.alice);
    // Bob reads dates in German, in Berlin: the end of his ban is shown that way.
    bob = await visitor(browser, ADDRESS.bob, { locale: 'de-DE', timezoneId: 'Europe/Berlin' });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the report dialog opens from the "⋯" menu, is labelled, takes the focus and closes with Escape', async () => {
    await join(alice.page, server.url, { username: 'Alice_mod' });
    await join(bob.page, server.url, { username: 'Bob_mod' });
    await alice.page.click('#search-button');
    await waitPhase(alice.page, 'searching');
    await bob.page.click('#search-button');
    await waitPhase(alice.page, 'chat');
    await waitPhase(bob.page, 'chat');

    await openReportFromMenu(alice);
    const dialog = alice.page.getByRole('dialog', { name: 'Report Bob_mod' });
    await dialog.waitFor();
    assert.equal((await focused(alice.page)).name, 'reason', 'the focus is on the first reason');
    for (const label of REASONS) assert.equal(await dialog.getByRole('radio', { name: label }).count(), 1, label);
    const details = dialog.getByRole('textbox', { name: 'Details (optional)' });
    assert.equal(await details.getAttribute('maxlength'), '500');
    assert.equal(await alice.page.locator('#report-details-count').innerText(), '0 / 500 characters');
    await screenshot(alice.page, 'report-01-dialog');

    await alice.page.keyboard.press('Escape');
    await alice.page.locator('#report-dialog').waitFor({ state: 'hidden' });
    assert.equal((await focused(alice.page)).summary, true, 'the focus is back on the menu');
    await waitPhase(bob.page, 'chat');
    assert.deepEqual(alice.reports, [], 'nothing was reported');
  });

  test('a reason is required, and details over 500 characters cannot be sent', async () => {
    await openReportFromMenu(alice);
    await alice.page.click('#report-submit');
    await waitText(alice.page, '#report-error', /Choose what is wrong first/);
    assert.equal((await focused(alice.page)).name, 'reason');

    await alice.page.getByRole('radio', { name: 'Spam or advertising' }).check();
    const details = alice.page.locator('#report-details');
    // Typing stops at 500 characters.
    await details.focus();
    await alice.page.keyboard.insertText('y'.repeat(600));
    assert.equal((await details.inputValue()).length, 500, 'the field takes 500 characters');
    await waitText(alice.page, '#report-details-count', /^500 \/ 500 characters$/);
    // A longer value put there by a script (or an extension) is refused before sending.
    await details.evaluate((field) => {
      field.value = 'z'.repeat(501);
      field.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await waitText(alice.page, '#report-details-count', /^501 \/ 500 characters$/);
    assert.equal(await alice.page.locator('#report-details-count').getAttribute('data-over'), 'true');
    await alice.page.click('#report-submit');
    await waitText(alice.page, '#report-error', /at most 500 characters; these have 501/);
    assert.equal((await focused(alice.page)).id, 'report-details');
    assert.equal(await alice.page.locator('#report-dialog').getAttribute('open'), '', 'the dialog stays open');
    await screenshot(alice.page, 'report-02-too-long');

    await alice.page.click('#report-cancel');
    await alice.page.locator('#report-dialog').waitFor({ state: 'hidden' });
    assert.equal((await focused(alice.page)).summary, true);
    assert.deepEqual(alice.reports, [], 'no user:report was sent');
    assert.equal(await alice.page.evaluate(() => document.body.dataset.phase), 'chat');
    assert.equal(await bob.page.evaluate(() => document.body.dataset.phase), 'chat');
  });

  test('Alice reports Bob: she is told and moves on; Bob is banned at once and sees until when', async () => {
    bobSince = bob.requests.length;
    await openReportFromMenu(alice);
    await alice.page.getByRole('radio', { name: 'Harassment, threats or hate' }).check();
    const words = 'ab'.repeat(250);
    await alice.page.fill('#report-details', words);
    const sentAt = Date.now();
    await alice.page.click('#report-submit');

    // Bob: the banned screen, with the reason and the end of the ban in his locale.
    await waitPhase(bob.page, 'banned');
    assert.equal((await focused(bob.page)).id, 'banned-title');
    assert.equal(await bob.page.locator('#banned-title').innerText(), 'You are banned');
    assert.equal(await bob.page.locator('#banned-reason').innerText(), 'Reason: Harassment, threats or hate.');
    until = await bannedUntil(bob.page);
    assert.ok(Math.abs(Date.parse(until) - (sentAt + BAN_SECS * 1000)) < 30_000, `the ban ends in ${BAN_SECS} s: ${until}`);
    const shown = await bob.page.locator('#banned-ends time').innerText();
    const weekday = new Intl.DateTimeFormat('de-DE', { weekday: 'long', timeZone: 'Europe/Berlin' }).format(Date.parse(until));
    const clockTime = new Intl.DateTimeFormat('de-DE', { hour: '2-digit', minute: '2-digit', timeZone: 'Europe/Berlin' }).format(Date.parse(until));
    assert.ok(shown.includes(weekday) && shown.includes(clockTime), `"${shown}" is in German and Berlin time (${weekday}, ${clockTime})`);
    assert.match(await bob.page.locator('#banned-ends').innerText(), /^It ends on .+ \(in (1 h 0 min|60 min|59 min)\)\.$/);
    await bob.page.locator('#connection[data-state="offline"]').waitFor();
    const stored = await bob.page.evaluate(() => ({ ban: JSON.parse(localStorage.getItem('chat.ban')), session: localStorage.getItem('chat.session.0') }));
    assert.equal(stored.ban?.until, until, 'the ban is remembered');
    assert.equal(stored.session, null, 'the session is forgotten');
    await screenshot(bob.page, 'report-03-banned');

    // Alice: told, her partner was removed (`partner_banned`), and she searches again.
    await waitText(alice.page, '#notice-text', /^Reported\. You will not be matched with this person again\./);
    await waitPhase(alice.page, 'searching');
    assert.equal(await alice.page.locator('#room-ended').getAttribute('data-reason'), 'partner_banned');
    assert.equal(await alice.page.locator('#room-ended-text').textContent(), 'Your partner was removed for breaking the rules.');
    assert.match(await alice.page.locator('#notice-text').innerText(), /They were removed for breaking the rules\.$/);
    assert.ok(await alice.page.evaluate(() => document.body.dataset.reportId), 'the ack carried a report id');
    assert.equal(alice.reports.length, 1, 'one user:report');
    assert.ok(alice.reports[0].includes('"reason":"harassment"') && alice.reports[0].includes(`"details":"${words}"`), alice.reports[0]);
    await screenshot(alice.page, 'report-04-reported');
  });

  test('Bob\'s next visits are refused: remembered, then by the server for his device and his address', async () => {
    // A reload: the remembered ban, and not one request for a session or a socket.
    await bob.page.reload();
    await waitPhase(bob.page, 'banned');
    assert.equal(await bannedUntil(bob.page), until);
    assert.deepEqual(calls(bob, bobSince), [], 'no session and no socket while banned');

    // Without the remembered ban, joining again is refused by the server (403 banned, until).
    await bob.page.evaluate(() => localStorage.removeItem('chat.ban'));
    await bob.page.reload();
    await waitPhase(bob.page, 'join');
    const refused = bob.page.waitForResponse((response) => response.url().endsWith('/api/guest') && response.request().method() === 'POST');
    await bob.page.click('#join-button');
    const response = await refused;
    assert.equal(response.status(), 403);
    const body = await response.json();
    assert.equal(body.error.code, 'banned');
    assert.equal(body.error.message, 'You are banned');
    assert.equal(Date.parse(body.error.until), Date.parse(until));
    await waitPhase(bob.page, 'banned');
    assert.equal(Date.parse(await bannedUntil(bob.page)), Date.parse(until));
    assert.equal(await bob.page.locator('#banned-reason').isHidden(), true, 'a refused session says no reason');
    assert.equal(calls(bob, bobSince).filter(({ path }) => path.startsWith('/socket.io/')).length, 0, 'no socket was opened');

    // Another browser on Bob's address.
    const sameAddress = await visitor(browser, ADDRESS.bob);
    extra.push(sameAddress);
    await sameAddress.page.goto(server.url);
    await waitPhase(sameAddress.page, 'join');
    await sameAddress.page.click('#join-button');
    await waitPhase(sameAddress.page, 'banned');
    assert.equal(Date.parse(await bannedUntil(sameAddress.page)), Date.parse(until));

    // Bob's browser (its device id) from another address.
    const device = await bob.page.evaluate(() => localStorage.getItem('chat.device'));
    assert.ok(device, 'the page keeps a device id');
    const sameDevice = await visitor(browser, ADDRESS.frank);
    extra.push(sameDevice);
    await sameDevice.context.addInitScript((id) => localStorage.setItem('chat.device', id), device);
    await sameDevice.page.goto(server.url);
    await waitPhase(sameDevice.page, 'join');
    await sameDevice.page.click('#join-button');
    await waitPhase(sameDevice.page, 'banned');
    assert.equal(Date.parse(await bannedUntil(sameDevice.page)), Date.parse(until));
  });

  test('Alice, on her own address, is matched with someone new', async () => {
    carol = await visitor(browser, ADDRESS.carol);
    extra.push(carol);
    await join(carol.page, server.url, { username: 'Carol_mod' });
    await carol.page.click('#search-button');
    await waitPhase(alice.page, 'chat');
    await waitPhase(carol.page, 'chat');
    assert.equal(await alice.page.locator('#partner-name').innerText(), 'Carol_mod');
  });

  test('the partner who just left can still be reported from the ended room', async () => {
    await carol.page.click('#next-button');
    await waitPhase(alice.page, 'ended');
    assert.equal(await alice.page.locator('#report-button').isEnabled(), true, 'the menu entry too');
    await alice.page.getByRole('button', { name: 'Report', exact: true }).click();
    await alice.page.getByRole('dialog', { name: 'Report Carol_mod' }).waitFor();
    await alice.page.getByRole('radio', { name: 'Spam or advertising' }).check();
    await alice.page.click('#report-submit');
    await waitText(alice.page, '#notice-text', /^Reported\. You will not be matched with this person again\.$/);
    await waitPhase(alice.page, 'searching');
    // One report bans here: Carol, searching again, is banned too.
    await waitPhase(carol.page, 'banned');
    assert.equal(await carol.page.locator('#banned-reason').innerText(), 'Reason: Spam or advertising.');
    assert.equal(alice.reports.length, 2);
    await alice.page.click('#cancel-button');
    await waitPhase(alice.page, 'idle');
  });

  test('a Socket.IO connection from a banned address shows the banned screen and stops', async () => {
    const dave = await visitor(browser, ADDRESS.dave);
    extra.push(dave);
    await join(dave.page, server.url, { username: 'Dave_mod' });
    // Dave's session was made on a clean address; his next connection comes from Bob's.
    await dave.context.setExtraHTTPHeaders({ 'X-Forwarded-For': ADDRESS.bob });
    const since = dave.requests.length;
    await dave.page.reload();
    await waitPhase(dave.page, 'banned');
    assert.equal(await dave.page.locator('#banned-view').getAttribute('data-state'), 'unknown');
    assert.match(await dave.page.locator('#banned-ends').innerText(), /did not say when the ban ends/);
    await dave.page.locator('#connection[data-state="offline"]').waitFor();
    const socketCalls = calls(dave, since).filter(({ path }) => path.startsWith('/socket.io/')).length;
    await screenshot(dave.page, 'report-05-refused-connection');
    // "Check again": the session is gone, a new one is refused, and now the end is known.
    await dave.page.getByRole('button', { name: 'Check again' }).click();
    await waitPhase(dave.page, 'join');
    await dave.page.click('#join-button');
    await waitPhase(dave.page, 'banned');
    assert.equal(Date.parse(await bannedUntil(dave.page)), Date.parse(until));
    assert.equal(
      calls(dave, since).filter(({ path }) => path.startsWith('/socket.io/')).length,
      socketCalls,
      'no reconnection after "Banned"',
    );
  });

  test('the banned screen ends by itself when the ban is over', async () => {
    const erin = await visitor(browser, ADDRESS.erin);
    extra.push(erin);
    await erin.page.goto(server.url);
    await waitPhase(erin.page, 'join');
    await erin.page.evaluate(() => localStorage.setItem('chat.ban', JSON.stringify({ until: new Date(Date.now() + 3000).toISOString(), reason: 'spam' })));
    const since = erin.requests.length;
    await erin.page.reload();
    await waitPhase(erin.page, 'banned');
    assert.equal(await erin.page.locator('#banned-view').getAttribute('data-state'), 'active');
    assert.match(await erin.page.locator('#banned-ends').innerText(), /\(in [1-3] s\)\.$/);
    await erin.page.locator('#banned-view[data-state="over"]').waitFor({ timeout: 10_000 });
    assert.equal(await erin.page.locator('#banned-title').innerText(), 'Your ban has ended');
    assert.equal((await focused(erin.page)).id, 'banned-again');
    assert.deepEqual(calls(erin, since), [], 'nothing asked of the server while banned');
    await erin.page.click('#banned-again');
    await waitPhase(erin.page, 'join');
    assert.equal(await erin.page.evaluate(() => localStorage.getItem('chat.ban')), null);
    await erin.page.click('#join-button');
    await waitPhase(erin.page, 'idle');
    await erin.page.locator('#connection[data-state="connected"]').waitFor();
  });

  test('nothing broke the page policy and nothing was thrown', async () => {
    await assertClean(alice, 'alice');
    await assertClean(bob, 'bob');
    for (const [index, who] of extra.entries()) await assertClean(who, `visitor ${index}`);
  });
});
