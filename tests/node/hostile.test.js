// Slow and hostile clients against the real binary, with its memory watched (VmRSS of the
// spawned process): a chat partner that stops reading while the other floods, and a thousand
// connections that never send a Socket.IO CONNECT. Each test shows the well-behaved clients
// keep being served, and is bounded in time.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';

import WebSocket from 'ws';

import { emitAck, guestOnline, matchPair, serverFor, waitFor } from './lib/server.js';

/** Resident memory of a process, in MiB. */
function rssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB$/m);
  assert.ok(line, 'VmRSS in /proc/PID/status');
  return Number(line[1]) / 1024;
}

/** A heartbeat acked within a second: the socket is served. */
async function served(socket) {
  const started = Date.now();
  const ack = await emitAck(socket, 'presence:heartbeat', undefined, 2000);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  return Date.now() - started;
}

test('a partner that stops reading is disconnected while the flooding one is served, memory bounded', async (t) => {
  const server = await serverFor(t, { CHAT__RATE__EVENTS_PER_SEC: '100000' });
  const { a, b } = await matchPair(server.url, ['websocket']);
  const bystander = await guestOnline(server.url, ['websocket']);
  // B's client stops reading its TCP socket: the server's writes to it pile up.
  const bSocket = b.socket.io.engine.transport.ws._socket;
  assert.ok(bSocket && typeof bSocket.pause === 'function', 'the raw TCP socket of B');
  bSocket.pause();
  const before = rssMiB(server.proc.pid);
  let peak = before;
  let sent = 0;
  const text = 'x'.repeat(1900);
  const started = Date.now();
  let gone = null;
  const disconnected = waitFor(a.socket, 'partner:disconnected', 15000).then((payload) => {
    gone = payload;
  });
  while (gone === null) {
    assert.ok(Date.now() - started < 15000, `B was not disconnected after ${sent} messages`);
    for (let i = 0; i < 200; i += 1) {
      a.socket.emit('chat:message', { type: 'text', content: text });
      sent += 1;
    }
    // The flooder itself is served between bursts, and so is everyone else.
    await served(a.socket);
    await served(bystander.socket);
    peak = Math.max(peak, rssMiB(server.proc.pid));
  }
  await disconnected;
  assert.equal(typeof gone.graceSecs, 'number');
  const latency = await served(a.socket);
  await served(bystander.socket);
  const after = rssMiB(server.proc.pid);
  t.diagnostic(
    `B dropped after ${sent} messages (${(sent * 1.9) | 0} KiB) in ${Date.now() - started} ms; ` +
      `RSS before ${before.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB, after ${after.toFixed(1)} MiB; ` +
      `heartbeat after ${latency} ms`,
  );
  assert.ok(peak - before < 64, `RSS grew by ${(peak - before).toFixed(1)} MiB`);
  bSocket.destroy();
});

/**
 * Opens 500 bare TCP connections that never send a byte and 500 Engine.IO WebSockets that read
 * their OPEN packet and never send a Socket.IO CONNECT; resolves once the server has closed
 * them all, with the RSS while they were open and how long after the last opened they went.
 */
async function halfOpenRound(server, bystander) {
  const closed = [];
  const opened = [];
  for (let i = 0; i < 500; i += 1) {
    const socket = net.connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume(); // read (and drop) what comes, so the server's close is seen
    closed.push(new Promise((resolve) => socket.once('close', () => resolve('tcp'))));
  }
  const wsUrl = `ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`;
  for (let i = 0; i < 500; i += 1) {
    const ws = new WebSocket(wsUrl);
    ws.on('error', () => {});
    opened.push(new Promise((resolve) => ws.once('message', (data) => resolve(String(data)))));
    closed.push(new Promise((resolve) => ws.once('close', () => resolve('ws'))));
  }
  const openPackets = await Promise.all(opened);
  const started = Date.now();
  assert.ok(openPackets.every((packet) => packet.startsWith('0{"sid":')), 'every WebSocket got its OPEN packet');
  const open = rssMiB(server.proc.pid);
  // Served while they are open.
  await served(bystander.socket);
  const counts = { tcp: 0, ws: 0 };
  for (const promise of closed) {
    promise.then((kind) => {
      counts[kind] += 1;
    });
  }
  let timer;
  await Promise.race([
    Promise.all(closed),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`not all closed within 8 s: ${counts.tcp} TCP, ${counts.ws} WebSocket of 500 each`)),
        8000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  const elapsed = Date.now() - started;
  await served(bystander.socket);
  return { open, elapsed };
}

test('a thousand connections that never send CONNECT are closed after connectTimeout, memory returns', async (t) => {
  const server = await serverFor(t, {
    CHAT__LIMITS__CONNECT_TIMEOUT_MS: '1000',
    CHAT__SERVER__CLIENT_REQUEST_TIMEOUT_MS: '1000',
    CHAT__RATE__HANDSHAKES_PER_10S: '0',
  });
  const bystander = await guestOnline(server.url, ['websocket']);
  await served(bystander.socket);
  const before = rssMiB(server.proc.pid);
  const first = await halfOpenRound(server, bystander);
  const afterFirst = rssMiB(server.proc.pid);
  // Two more rounds reuse what the first freed. The allocator keeps freed pages (RSS need not
  // drop) and spreads over per-thread arenas (it may still grow a little), but had anything
  // of the connections stayed behind, each round would add as much as the first did.
  const second = await halfOpenRound(server, bystander);
  const third = await halfOpenRound(server, bystander);
  const afterThird = rssMiB(server.proc.pid);
  t.diagnostic(
    `1000 half-open connections closed ${first.elapsed}, ${second.elapsed}, ${third.elapsed} ms after the last opened; ` +
      `RSS before ${before.toFixed(1)} MiB, with the first 1000 ${first.open.toFixed(1)} MiB, after them ${afterFirst.toFixed(1)} MiB, ` +
      `with the second ${second.open.toFixed(1)} MiB, with the third ${third.open.toFixed(1)} MiB, after ${afterThird.toFixed(1)} MiB`,
  );
  for (const round of [first, second, third]) assert.ok(round.elapsed < 4000, `closed after ${round.elapsed} ms`);
  const firstGrowth = afterFirst - before;
  assert.ok(firstGrowth < 32, `RSS grew by ${firstGrowth.toFixed(1)} MiB`);
  assert.ok(
    afterThird - afterFirst < Math.max(firstGrowth, 4),
    `two more rounds added ${(afterThird - afterFirst).toFixed(1)} MiB, the first ${firstGrowth.toFixed(1)} MiB`,
  );
});
