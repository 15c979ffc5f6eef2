// Two strangers in two browser contexts of Debian's Chromium, on the page chat-server serves:
// matched, messages both ways with receipts, an image, a file, a voice note, a video call with
// real RTCPeerConnections, hang-up, and "next". Once over WebSocket (after the polling
// upgrade), once forced onto HTTP long-polling (`?transport=polling`), and once with the two
// pages on two different chat-server nodes sharing one private Redis.

import assert from 'node:assert/strict';
import { dirname, join as joinPath } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { redisAvailable, startRedis } from '../node/lib/redis.js';
import {
  assertClean,
  join,
  launchBrowser,
  makePng,
  openPage,
  receiptHistory,
  screenshot,
  skipReason,
  startServer,
  waitPhase,
  waitText,
} from './lib/harness.js';

const DOC_SCREENSHOT = joinPath(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'screenshot.png');

const MODES = [
  { tag: 'websocket', name: 'WebSocket (upgraded from polling)', query: '', transport: 'websocket' },
  { tag: 'polling', name: 'HTTP long-polling only', query: '?transport=polling', transport: 'polling' },
  { tag: 'two-nodes', name: 'WebSocket, each page on its own node of one Redis', query: '', transport: 'websocket', nodes: 2 },
];

/** Sends `text` from `from`; `to` shows it; `from`'s message went pending (…) → sent (✓) → delivered (✓✓). */
async function exchange(from, to, text) {
  await from.page.fill('#message-input', text);
  await waitText(to.page, '#typing', /is typing/);
  await from.page.press('#message-input', 'Enter');
  const mine = from.page.locator('.message.mine').last();
  await mine.locator('.bubble', { hasText: text }).waitFor();
  await to.page.locator('.message.theirs .bubble', { hasText: text }).waitFor();
  await from.page.locator('.message.mine[data-status="delivered"]', { hasText: text }).waitFor();
  const clientId = await mine.getAttribute('data-client-id');
  const history = await receiptHistory(from.page, clientId);
  assert.deepEqual(history, { statuses: ['pending', 'sent', 'delivered'], marks: ['…', '✓', '✓✓'] }, `receipts of "${text}"`);
  assert.equal(await to.page.locator('#typing').innerText(), '', 'the typing indicator clears when the message arrives');
}

for (const mode of MODES) {
  const skip = skipReason ?? (mode.nodes && !redisAvailable() ? 'redis-server is not installed' : false);
  describe(`two strangers in Chromium over ${mode.name}`, { skip }, () => {
    let redis;
    let servers = [];
    const urls = {};
    let browser;
    let alice;
    let bob;
    const sockets = { alice: 0, bob: 0 };
    const shot = (who, name) => screenshot(who.page, `${mode.tag}-${name}`);

    before(async () => {
      if (mode.nodes) {
        redis = await startRedis();
        servers = [await startServer({ REDIS_URL: redis.url }), await startServer({ REDIS_URL: redis.url })];
      } else {
        servers = [await startServer()];
      }
      urls.alice = servers[0].url;
      urls.bob = servers[servers.length - 1].url;
      browser = await launchBrowser();
      alice = await openPage(browser);
      bob = await openPage(browser);
      alice.page.on('websocket', () => (sockets.alice += 1));
      bob.page.on('websocket', () => (sockets.bob += 1));
    });

    after(async () => {
      await browser?.close();
      await Promise.all(servers.map((server) => server.stop()));
      await redis?.stop();
    });

    test('both join as guests, show up in the live counters, and are matched', async () => {
      await join(alice.page, urls.alice, { username: `Alice_${mode.tag}`, gender: 'female', language: 'en', location: 'Paris' }, mode.query);
      await shot(alice, '01-lobby');
      await join(bob.page, urls.bob, { username: `Bob_${mode.tag}`, gender: 'male', language: 'en', location: 'Berlin' }, mode.query);
      for (const who of [alice, bob]) {
        await who.page.locator(`#connection[data-state="connected"][data-transport="${mode.transport}"]`).waitFor();
        await waitText(who.page, '#stat-online', /^2$/);
      }
      assert.match(await alice.page.locator('#connection-text').innerText(), mode.transport === 'polling' ? /long-polling/ : /WebSocket/);

      await alice.page.fill('#filter-language', 'en');
      await alice.page.click('#search-button');
      await waitPhase(alice.page, 'searching');
      await waitText(bob.page, '#stat-searching', /^1$/);
      await shot(alice, '02-searching');
      await bob.page.click('#search-button');
      await waitPhase(alice.page, 'chat');
      await waitPhase(bob.page, 'chat');
      assert.equal(await alice.page.locator('#partner-name').innerText(), `Bob_${mode.tag}`);
      assert.equal(await alice.page.locator('#partner-details').innerText(), 'male · en · Berlin');
      assert.equal(await bob.page.locator('#partner-name').innerText(), `Alice_${mode.tag}`);
      assert.equal(await bob.page.locator('#partner-details').innerText(), 'female · en · Paris');
      await waitText(alice.page, '#stat-in-chat', /^2$/);
      // Alice waited longer, so the match made her the initiator.
      assert.equal(await alice.page.locator('#chat-view').getAttribute('data-initiator'), 'true');
      assert.equal(await bob.page.locator('#chat-view').getAttribute('data-initiator'), 'false');
    });

    test('messages go both ways, each sender sees ✓ then ✓✓, and typing shows', async () => {
      await exchange(alice, bob, 'Hello from Alice');
      await exchange(bob, alice, 'Hi Alice, Bob here');
      await exchange(alice, bob, 'Ça va? Unicode works: naïve café — 你好 👋');
      await shot(bob, '03-chat');
    });

    test('an image shows inline on both sides; another file is a download link', async () => {
      await alice.page.setInputFiles('#file-input', { name: 'gradient.png', mimeType: 'image/png', buffer: makePng(96, 64) });
      const loaded = (selector) => (page) =>
        page.waitForFunction((sel) => {
          const image = [...document.querySelectorAll(sel)].pop();
          return image?.complete && image.naturalWidth === 96 && image.naturalHeight === 64;
        }, selector);
      await loaded('.message.theirs img')(bob.page);
      await loaded('.message.mine img')(alice.page);
      assert.match(await bob.page.locator('.message.theirs img').last().getAttribute('src'), /^\/api\/files\/[^?]+\?u=guest_/);
      await alice.page.locator('.message.mine[data-status="delivered"] img').waitFor();

      const notes = 'meeting notes\nline two\n';
      await bob.page.setInputFiles('#file-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from(notes) });
      const link = alice.page.locator('.message.theirs a.download').last();
      await link.waitFor();
      assert.equal(await link.getAttribute('download'), 'notes.txt');
      assert.match(await link.innerText(), /notes\.txt/);
      const body = await alice.page.evaluate(async (href) => (await fetch(href)).text(), await link.getAttribute('href'));
      assert.equal(body, notes, 'the link downloads the file');
      await bob.page.locator('.message.mine[data-status="delivered"] a.download').waitFor();
    });

    test('a voice note is recorded, uploaded with its duration, and plays on the other side', async () => {
      await bob.page.click('#record-button');
      await bob.page.locator('#record-button[data-recording="true"]').waitFor();
      await bob.page.waitForFunction(() => Number(document.querySelector('#record-button').dataset.elapsed) >= 1.2);
      await bob.page.click('#record-button');
      const audio = alice.page.locator('.message.theirs audio').last();
      await audio.waitFor();
      assert.match(await alice.page.locator('.message.theirs .voice-label').last().innerText(), /Voice note · 0:0[1-3]/);
      await alice.page.waitForFunction(() => {
        const element = [...document.querySelectorAll('.message.theirs audio')].pop();
        return element.readyState >= 1 || element.error;
      });
      assert.equal(await audio.evaluate((element) => element.error?.message ?? null), null, 'the voice note loads');
      await bob.page.locator('.message.mine[data-status="delivered"] audio').waitFor();
    });

    test('a video call: offer from the caller, accepted, media flows both ways, then hang-up', async () => {
      const [caller, callee] = [alice, bob];
      await caller.page.click('#video-call-button');
      await caller.page.locator('#call-panel[data-state="calling"]').waitFor();
      await callee.page.locator('#incoming-call').waitFor();
      assert.match(await callee.page.locator('#call-status').innerText(), /calling you \(video call\)/);
      await shot(callee, '04-incoming-call');
      await callee.page.click('#accept-call');
      for (const who of [caller, callee]) {
        await who.page.locator('#call-panel[data-peer-state="connected"]').waitFor({ timeout: 30_000 });
        await who.page.waitForFunction(
          () => {
            const video = document.querySelector('#remote-video');
            return video.videoWidth > 0 && !video.paused && video.getVideoPlaybackQuality().totalVideoFrames > 10;
          },
          null,
          { timeout: 30_000 },
        );
      }
      assert.match(await caller.page.locator('#call-status').innerText(), /In call with Bob/);

      await caller.page.click('#mute-button');
      assert.equal(await caller.page.locator('#mute-button').getAttribute('aria-pressed'), 'true');
      assert.equal(await caller.page.locator('#mute-button').innerText(), 'Unmute');
      await caller.page.click('#camera-button');
      assert.equal(await caller.page.locator('#camera-button').getAttribute('aria-pressed'), 'true');
      await caller.page.click('#camera-button');
      await caller.page.click('#mute-button');
      assert.equal(await caller.page.locator('#mute-button').getAttribute('aria-pressed'), 'false');

      await shot(caller, '05-video-call');
      await shot(callee, '05-video-call-callee');
      if (mode.tag === 'websocket' && process.env.UPDATE_DOC_SCREENSHOT === '1') {
        // The README's picture: a taller window, so the chat shows under the call.
        await caller.page.setViewportSize({ width: 1000, height: 1000 });
        await caller.page.evaluate(() => document.querySelector('#messages').scrollTo(0, 1e6));
        await caller.page.screenshot({ path: DOC_SCREENSHOT });
        await caller.page.setViewportSize({ width: 1000, height: 760 });
      }

      await callee.page.click('#hangup-button');
      await caller.page.locator('#call-panel').waitFor({ state: 'hidden' });
      await caller.page.locator('.message.system', { hasText: /hung up/ }).waitFor();
      await callee.page.locator('#call-panel').waitFor({ state: 'hidden' });
      assert.equal(await caller.page.locator('#remote-video').evaluate((video) => video.srcObject), null);
    });

    test('"next" ends the room for both: the leaver searches again, the other is told', async () => {
      await alice.page.click('#next-button');
      await waitPhase(alice.page, 'searching');
      await waitPhase(bob.page, 'ended');
      assert.match(await bob.page.locator('#room-ended-text').innerText(), new RegExp(`Alice_${mode.tag} left the chat`));
      assert.equal(await bob.page.locator('#message-input').isDisabled(), true);
      await shot(bob, '06-partner-left');
      await alice.page.click('#cancel-button');
      await waitPhase(alice.page, 'idle');
      await waitText(bob.page, '#stat-in-chat', /^0$/);
    });

    test('nothing broke the page policy, nothing was thrown, and the transport held', async () => {
      await assertClean(alice, 'alice');
      await assertClean(bob, 'bob');
      if (mode.transport === 'polling') assert.deepEqual(sockets, { alice: 0, bob: 0 }, 'no WebSocket was opened');
      else assert.ok(sockets.alice >= 1 && sockets.bob >= 1, 'both upgraded to WebSocket');
    });
  });
}
