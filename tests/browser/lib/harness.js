// Browser test harness: starts the real `chat-server` binary, drives Debian's Chromium with
// playwright-core, and waits on page state (never fixed sleeps).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join as joinPath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const SERVER_BIN = process.env.CHAT_SERVER_BIN;
export const JWT_SECRET = 'browser-suite-secret-0123456789abcdef-0123';
export const SCREENSHOTS = joinPath(here, '..', 'screenshots');
/** Default time one wait may take. */
export const TIMEOUT = 15_000;

/**
 * Why the suite cannot run on this machine (null when it can). Locally a missing Chromium or
 * server binary skips the suite with a notice; with CI=true nothing is skipped: the tests run
 * and fail with this reason.
 */
export const skipReason = (() => {
  const missing = [];
  if (!SERVER_BIN) missing.push('CHAT_SERVER_BIN is not set (make test-browser sets it)');
  if (!existsSync(CHROMIUM_BIN)) missing.push(`no Chromium at ${CHROMIUM_BIN} (apt-get install -y chromium, or set CHROMIUM_BIN)`);
  if (missing.length === 0) return null;
  const reason = missing.join('; ');
  if (process.env.CI === 'true') {
    console.log(`# browser tests cannot run: ${reason}. CI=true, so they fail instead of skipping.`);
    return null;
  }
  console.log(`# browser tests skipped: ${reason}`);
  return reason;
})();

/** The flags the brief requires; without the background-networking ones Chromium's connections are refused here. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Spawns `$CHAT_SERVER_BIN` on a free loopback port with an empty STUN list (host candidates
 * only) plus `env`, and waits for `listening on http://127.0.0.1:PORT storage=memory`.
 */
export async function startServer(env = {}) {
  if (!SERVER_BIN) throw new Error('CHAT_SERVER_BIN is not set: point it at target/debug/chat-server (make test-browser does)');
  const proc = spawn(SERVER_BIN, [], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: '0',
      HOST: '127.0.0.1',
      JWT_SECRET,
      CHAT__WEBRTC__STUN_URLS: '',
      CHAT__RATE__SESSIONS_PER_MINUTE: '10000',
      CHAT__SERVER__SHUTDOWN_GRACE_SECS: '2',
      RUST_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-64 * 1024);
  });
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    });
  });
  const listening = new Promise((resolve, reject) => {
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      const found = /^listening on http:\/\/127\.0\.0\.1:(\d+) storage=(?:memory|redis)\s*$/m.exec(stdout);
      if (found) resolve(Number(found[1]));
    });
    proc.once('error', (error) => reject(new Error(`could not spawn ${SERVER_BIN}: ${error.message}`)));
    exited.then(({ code, signal }) => reject(new Error(`chat-server exited (${code ?? signal}) before listening\n${stdout}\n${stderr}`)));
  });
  const port = await withTimeout(listening, 20_000, 'the "listening on" line').catch((error) => {
    proc.kill('SIGKILL');
    throw error;
  });
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    stderr: () => stderr,
    /** SIGTERM; resolves once the process is gone. */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return withTimeout(exited, 15_000, 'chat-server to exit').catch(() => proc.kill('SIGKILL'));
    },
  };
}

/** Launches Chromium with the brief's flags. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`no Chromium at ${CHROMIUM_BIN}: apt-get install -y chromium (or set CHROMIUM_BIN)`);
  return chromium.launch({ executablePath: CHROMIUM_BIN, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/**
 * A new browser context (its own storage, so its own guest) with one page, recording CSP
 * violations, receipt marks and uncaught errors from outside the page's own code. Other
 * `options` go to `browser.newContext` (locale, timezoneId, extraHTTPHeaders, …).
 */
export async function openPage(browser, { viewport = { width: 1000, height: 760 }, ...options } = {}) {
  const context = await browser.newContext({ viewport, permissions: ['camera', 'microphone'], ...options });
  await context.addInitScript(() => {
    window.__csp = [];
    window.__receipts = [];
    document.addEventListener('securitypolicyviolation', (event) => window.__csp.push(`${event.violatedDirective}: ${event.blockedURI}`));
    window.__marks = [];
    // A receipt's text is replaced on each change: the removed text node holds the old mark.
    new MutationObserver((records) => {
      for (const record of records) {
        if (!record.target.classList?.contains('receipt')) continue;
        const item = record.target.closest('.message');
        for (const node of record.removedNodes) window.__marks.push({ clientId: item?.dataset.clientId, mark: node.textContent });
      }
    }).observe(document, { subtree: true, childList: true });
    new MutationObserver((records) => {
      for (const record of records) {
        const item = record.target;
        // The old value is exact; the current one is read when the observer runs, possibly
        // after several changes (two receipts in one polling payload).
        window.__receipts.push({ clientId: item.dataset.clientId, from: record.oldValue, now: item.dataset.status });
      }
    }).observe(document, { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ['data-status'] });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  return { context, page, errors };
}

/** Waits until `document.body.dataset.phase` is `phase`. */
export async function waitPhase(page, phase, timeout = TIMEOUT) {
  await page.waitForFunction((wanted) => document.body.dataset.phase === wanted, phase, { timeout }).catch(async (error) => {
    const now = await page.evaluate(() => document.body.dataset.phase).catch(() => '?');
    throw new Error(`phase stayed "${now}" instead of "${phase}": ${error.message}`);
  });
}

/** Opens the page, joins as a guest with `profile`, and waits to be connected in the lobby. */
export async function join(page, url, profile = {}, query = '') {
  await page.goto(`${url}/${query}`);
  await waitPhase(page, 'join');
  if (profile.username) await page.fill('#join-username', profile.username);
  if (profile.gender) await page.selectOption('#join-gender', profile.gender);
  if (profile.language) await page.fill('#join-language', profile.language);
  if (profile.location) await page.fill('#join-location', profile.location);
  await page.click('#join-button');
  await waitPhase(page, 'idle');
  await page.locator('#connection[data-state="connected"]').waitFor();
}

export function text(page, selector) {
  return page.locator(selector).innerText();
}

/** Waits until the element's text matches `pattern`. */
export async function waitText(page, selector, pattern, timeout = TIMEOUT) {
  await page
    .waitForFunction(
      ([sel, source, flags]) => new RegExp(source, flags).test(document.querySelector(sel)?.textContent ?? ''),
      [selector, pattern.source, pattern.flags],
      { timeout },
    )
    .catch(async (error) => {
      const now = await page.evaluate((sel) => document.querySelector(sel)?.textContent, selector).catch(() => '?');
      throw new Error(`${selector} text ${JSON.stringify(now)} never matched ${pattern}: ${error.message}`);
    });
}

/**
 * The statuses one outgoing message went through, in order (consecutive repeats dropped),
 * e.g. ['pending', 'sent', 'delivered'], and the receipt marks it showed, e.g. ['…', '✓', '✓✓'].
 */
export async function receiptHistory(page, clientId) {
  return page.evaluate((id) => {
    const entries = window.__receipts.filter((entry) => entry.clientId === id);
    const statuses = entries.map((entry) => entry.from).filter(Boolean);
    if (entries.length) statuses.push(entries[entries.length - 1].now);
    const item = [...document.querySelectorAll('.message.mine')].find((element) => element.dataset.clientId === id);
    const mark = item?.querySelector('.receipt')?.textContent;
    const marks = window.__marks.filter((entry) => entry.clientId === id).map((entry) => entry.mark);
    marks.push(mark);
    return {
      statuses: statuses.filter((status, index) => status !== statuses[index - 1]),
      marks: marks.filter((shown, index) => shown !== marks[index - 1]),
    };
  }, clientId);
}

/** Saves a screenshot under tests/browser/screenshots/ (gitignored). */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = joinPath(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** A small valid PNG (an RGB gradient), built here so the suite ships no binary fixture. */
export function makePng(width = 96, height = 64) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([length, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x += 1) row.set([(x * 255) / width, (y * 255) / height, 160], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Asserts the page hit no CSP violation and threw nothing uncaught. */
export async function assertClean({ page, errors }, who) {
  const csp = await page.evaluate(() => window.__csp).catch(() => []);
  assert.deepEqual(csp, [], `${who}: Content-Security-Policy violations`);
  assert.deepEqual(errors, [], `${who}: uncaught errors in the page`);
}
