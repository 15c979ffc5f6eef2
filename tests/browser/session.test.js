// The page's life around the chat: its headers, keyboard use on a phone-sized screen, token
// refresh, declined and unanswered calls, a reload within the reconnect grace, a session taken
// over by another tab, a deleted session replaced by a new guest, and server shutdown.
// One server with short timers: tokens live 12 s, unanswered calls time out after 2 s.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { assertClean, join, launchBrowser, openPage, screenshot, skipReason, startServer, waitPhase, waitText } from './lib/harness.js';

const PHONE = { width: 390, height: 800 };

async function me(url, token) {
  const response = await fetch(`${url}/api/guest/me`, { headers: { Authorization: `Bearer ${token}` } });
  return { status: response.status, body: await response.json().catch(() => null) };
}

async function storedSession(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('chat.session.0')));
}

describe('the page around the chat', { skip: skipReason ?? false }, () => {
  let server;
  let browser;
  let alice;
  let bob;

  before(async () => {
    server = await startServer({ CHAT__SESSION__TTL_SECS: '12', CHAT__WEBRTC__CALL_TIMEOUT_SECS: '2', CHAT__CHAT__RECONNECT_GRACE_SECS: '20' });
    browser = await launchBrowser();
    alice = await openPage(browser);
    bob = await openPage(browser, { viewport: PHONE });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the page and its assets come with a strict policy and no inline code', async () => {
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    const policy = page.headers.get('content-security-policy');
    assert.match(policy, /script-src 'self';/);
    assert.match(policy, /style-src 'self';/);
    assert.doesNotMatch(policy, /unsafe/);
    const html = await page.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline script');
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or handler');
    for (const [path, type] of [['/app.js', 'text/javascript'], ['/style.css', 'text/css'], ['/vendor/socket.io.min.js', 'text/javascript']]) {
      const asset = await fetch(`${server.url}${path}`);
      assert.equal(asset.status, 200, path);
      assert.match(asset.headers.get('content-type'), new RegExp(`^${type}`), path);
    }
  });

  test('joining, searching and chatting work from the keyboard on a phone-sized screen', async () => {
    await bob.page.goto(server.url);
    await waitPhase(bob.page, 'join');
    // The username field has the focus: type, then Enter submits the form.
    await bob.page.keyboard.type('Bob_phone');
    await bob.page.keyboard.press('Enter');
    await waitPhase(bob.page, 'idle');
    await bob.page.locator('#connection[data-state="connected"]').waitFor();
    assert.equal(await bob.page.evaluate(() => document.activeElement.id), 'search-button');
    await bob.page.keyboard.press('Enter');
    await waitPhase(bob.page, 'searching');
    await screenshot(bob.page, 'phone-01-searching');

    await join(alice.page, server.url, { username: 'Alice_desk' });
    await alice.page.click('#search-button');
    await waitPhase(bob.page, 'chat');
    await waitPhase(alice.page, 'chat');
    assert.equal(await bob.page.evaluate(() => document.activeElement.id), 'message-input');
    await bob.page.keyboard.type('typed on a phone');
    await bob.page.keyboard.press('Enter');
    await alice.page.locator('.message.theirs', { hasText: 'typed on a phone' }).waitFor();
    await bob.page.locator('.message.mine[data-status="delivered"]').waitFor();
    const overflow = await bob.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling on a phone (overflow ${overflow}px)`);
    await screenshot(bob.page, 'phone-02-chat');
  });

  test('the token is refreshed before it expires; the session stays the same', async () => {
    const before = await storedSession(alice.page);
    const userId = await alice.page.evaluate(() => document.body.dataset.userId);
    // Tokens live 12 s here; the page refreshes at 80% of what is left.
    await alice.page.waitForFunction(() => Number(document.body.dataset.refreshes ?? 0) >= 1, null, { timeout: 20_000 });
    const afterRefresh = await storedSession(alice.page);
    assert.notEqual(afterRefresh.token, before.token);
    assert.ok(Date.parse(afterRefresh.expiresAt) > Date.parse(before.expiresAt));
    const answer = await me(server.url, afterRefresh.token);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.user.id, userId);
    assert.equal(answer.body.user.inChat, true);
  });

  test('a declined call and an unanswered one ("no answer" after the server times it out)', async () => {
    await alice.page.click('#audio-call-button');
    await bob.page.locator('#incoming-call').waitFor();
    assert.match(await bob.page.locator('#call-status').innerText(), /calling you \(audio call\)/);
    await screenshot(bob.page, 'phone-03-incoming-call');
    await bob.page.click('#reject-call');
    await alice.page.locator('.message.system', { hasText: 'Bob_phone declined the call.' }).waitFor();
    await alice.page.locator('#call-panel').waitFor({ state: 'hidden' });

    await alice.page.click('#video-call-button');
    await bob.page.locator('#incoming-call').waitFor();
    await alice.page.locator('.message.system', { hasText: 'No answer.' }).waitFor();
    await bob.page.locator('.message.system', { hasText: 'Missed call.' }).waitFor();
    await bob.page.locator('#call-panel').waitFor({ state: 'hidden' });
    assert.equal(await alice.page.locator('#call-panel').getAttribute('data-outcome'), 'no-answer');
  });

  test('a reload keeps the session and the room; the partner sees "reconnecting", then "back"', async () => {
    const userId = await bob.page.evaluate(() => document.body.dataset.userId);
    await bob.page.goto('about:blank');
    await alice.page.locator('#partner-banner').waitFor();
    assert.match(await alice.page.locator('#partner-banner').innerText(), /Bob_phone lost the connection/);
    assert.equal(await alice.page.locator('#video-call-button').isDisabled(), true, 'no calls while the partner is away');
    await screenshot(alice.page, 'desk-01-partner-reconnecting');

    await bob.page.goto(server.url);
    await waitPhase(bob.page, 'chat');
    assert.equal(await bob.page.evaluate(() => document.body.dataset.userId), userId, 'the same guest after the reload');
    assert.equal(await bob.page.locator('#partner-name').innerText(), 'Alice_desk');
    await alice.page.locator('#partner-banner').waitFor({ state: 'hidden' });
    await alice.page.locator('.message.system', { hasText: 'Bob_phone is back.' }).waitFor();
    await bob.page.locator('#connection[data-state="connected"]').waitFor();
    await bob.page.fill('#message-input', 'back again');
    await bob.page.press('#message-input', 'Enter');
    await alice.page.locator('.message.theirs', { hasText: 'back again' }).waitFor();
    await bob.page.locator('.message.mine[data-status="delivered"]', { hasText: 'back again' }).waitFor();
  });

  test('opening the same session elsewhere disconnects this tab with a clear message', async () => {
    const session = await storedSession(bob.page);
    const other = await openPage(browser);
    await other.context.addInitScript((saved) => localStorage.setItem('chat.session.0', saved), JSON.stringify(session));
    await other.page.goto(server.url);
    await other.page.locator('#connection[data-state="connected"]').waitFor();
    await waitText(bob.page, '#notice-text', /opened in another tab or window/);
    await bob.page.locator('#connection[data-state="offline"]').waitFor();
    await screenshot(bob.page, 'phone-04-session-replaced');
    await other.context.close();
    // "Use it here" takes the session back.
    await bob.page.click('#notice-action');
    await bob.page.locator('#connection[data-state="connected"]').waitFor();
    await waitPhase(bob.page, 'chat');
  });

  test('a session that is gone (deleted) is replaced by a new guest, and the partner is told', async () => {
    const { token } = await storedSession(alice.page);
    const oldId = await alice.page.evaluate(() => document.body.dataset.userId);
    const deleted = await fetch(`${server.url}/api/guest/me`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
    assert.equal(deleted.status, 204);
    await waitPhase(bob.page, 'ended');
    assert.match(await bob.page.locator('#room-ended-text').innerText(), /Alice_desk left the chat/);
    await alice.page.waitForFunction((old) => document.body.dataset.userId && document.body.dataset.userId !== old, oldId);
    await waitText(alice.page, '#notice-text', /you have a new one: you are now Alice_desk/);
    await alice.page.locator('#connection[data-state="connected"]').waitFor();
    await waitPhase(alice.page, 'idle');
    const fresh = await storedSession(alice.page);
    assert.equal((await me(server.url, fresh.token)).status, 200);
    assert.equal((await me(server.url, token)).status === 200, false, 'the old token no longer works');
  });

  test('server shutdown is announced and the page shows it reconnecting, counting attempts', async () => {
    await server.stop();
    await waitText(alice.page, '#notice-text', /server is shutting down/);
    await waitText(alice.page, '#connection-text', /Reconnecting \(attempt \d+\)/);
    await screenshot(alice.page, 'desk-02-server-shutdown');
    await assertClean(alice, 'alice');
    await assertClean(bob, 'bob');
  });
});
