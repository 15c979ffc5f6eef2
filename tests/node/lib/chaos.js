// Seeded fault injection against real processes: three `chat-server` nodes on one private
// redis-server, driven by the real socket.io-client. The counterpart of the in-process
// simulation (crates/signaling/tests/simulation.rs): a PRNG makes a schedule of user
// operations and faults, each step is applied to the real cluster, the test waits for the
// system to settle (event-driven waits and polled conditions, never a bare sleep to hope),
// and a model built only from what each client received and from the acks judges the
// invariants. The schedule is a pure function of the seed (operations name users by label
// and nodes by slot; an operation that does not fit the state at run time is still sent and
// its answer judged), so `CHAOS_SEED=<n>` replays it; timings differ between runs.
import { io } from 'socket.io-client';

import { startRedis } from './redis.js';
import { api, startServer } from './server.js';

export const NODE_TIMEOUT_SECS = 2;
export const GRACE_SECS = 2;
/** How long past node timeout + grace a consequence may still be on its way. */
const SLACK_MS = 2500;
const ACK_MS = 4000;
const CONNECT_MS = 4000;
export const ENV = {
  CHAT__CLUSTER__NODE_TIMEOUT_SECS: String(NODE_TIMEOUT_SECS),
  CHAT__CHAT__RECONNECT_GRACE_SECS: String(GRACE_SECS),
  CHAT__STATS__BROADCAST_INTERVAL_MS: '100',
  CHAT__RATE__HANDSHAKES_PER_10S: '0',
  CHAT__RATE__SESSIONS_PER_MINUTE: '100000',
  CHAT__RATE__EVENTS_PER_SEC: '100000',
  CHAT__SERVER__SHUTDOWN_GRACE_SECS: '1',
};
export const FAULT_KINDS = ['kill', 'redis', 'pause'];
const MAX_USERS = 10;

/** mulberry32: a small seeded PRNG; `next()` in [0, 1). */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (list) => list[Math.floor(next() * list.length)],
    chance: (p) => next() < p,
  };
}

const TRANSPORTS = [['websocket'], ['polling'], ['polling', 'websocket']];
const OPS = [
  ['connect', 14], ['search', 16], ['cancel', 3], ['next', 5], ['leave', 4], ['message', 18],
  ['ackMessage', 6], ['typing', 4], ['disconnect', 5], ['reconnect', 6], ['delete', 2],
  ['zombie', 1],
];
const OP_TOTAL = OPS.reduce((sum, [, w]) => sum + w, 0);

/**
 * The schedule of one seed: `steps` entries `{kind, user?, slot?, transport?, seed, ...}`.
 * Faults: `kill` (SIGKILL slot, restart it on a new port), `redisDown`/`redisUp` (an outage
 * over a few steps), `pause` (SIGSTOP slot for `ms`, then SIGCONT).
 */
export function schedule(seed, steps, faults) {
  const rng = prng(seed);
  const out = [];
  let users = 0;
  let outageUntil = -1;
  const conn = new Map();
  const gone = new Set();
  for (let step = 0; step < steps; step += 1) {
    const sub = rng.int(2 ** 31);
    let op;
    if (outageUntil >= 0 && step >= outageUntil) {
      op = { kind: 'redisUp' };
      outageUntil = -1;
    } else if (step > 2 && faults.length && rng.chance(0.07) && (outageUntil < 0 || faults.some((f) => f !== 'redis'))) {
      const kind = rng.pick(outageUntil >= 0 ? faults.filter((f) => f !== 'redis') : faults);
      if (kind === 'kill') op = { kind: 'kill', slot: rng.int(3), rejoin: rng.next() };
      else if (kind === 'pause') op = { kind: 'pause', slot: rng.int(3), ms: 300 + rng.int(700) };
      else {
        op = { kind: 'redisDown' };
        outageUntil = step + 2 + rng.int(5);
      }
    } else if (users < 4 || (users < MAX_USERS && rng.chance(0.08))) {
      op = { kind: 'create', user: users, slot: rng.int(3) };
      users += 1;
    } else {
      let roll = rng.next() * OP_TOTAL;
      let kind = OPS[0][0];
      for (const [name, weight] of OPS) {
        if (roll < weight) {
          kind = name;
          break;
        }
        roll -= weight;
      }
      // Socket operations mostly go to users the schedule believes connected (its own
      // bookkeeping, so the schedule stays a function of the seed); the rest to anyone.
      const online = [...conn.keys()].filter((u) => conn.get(u) !== null && !gone.has(u));
      const needsSocket = !['connect', 'reconnect', 'delete', 'zombie'].includes(kind);
      const user = needsSocket && online.length && rng.chance(0.9) ? rng.pick(online) : rng.int(users);
      op = { kind, user, slot: rng.int(3), transport: rng.int(TRANSPORTS.length) };
      if (kind === 'connect' || kind === 'reconnect') conn.set(user, op.slot);
      if (kind === 'disconnect') conn.set(user, null);
      if (kind === 'delete') gone.add(user);
    }
    if (op.kind === 'kill') for (const [u, s] of conn) if (s === op.slot) conn.set(u, op.rejoin > 0.3 ? (s + 1) % 3 : null);
    op.seed = sub;
    out.push(op);
  }
  if (outageUntil >= 0) out.push({ kind: 'redisUp', seed: 0 });
  return out;
}

/** One line for a step of the schedule. */
export function describeOp(op) {
  const user = op.user === undefined ? '' : ` u${op.user}`;
  switch (op.kind) {
    case 'create': return `create${user} via n${op.slot}`;
    case 'connect': case 'reconnect': return `${op.kind}${user} to n${op.slot} (${TRANSPORTS[op.transport].join('+')})`;
    case 'zombie': case 'delete': return `${op.kind}${user} via n${op.slot}`;
    case 'kill': return `FAULT kill n${op.slot} (SIGKILL), restart it`;
    case 'pause': return `FAULT pause n${op.slot} for ${op.ms} ms (SIGSTOP/SIGCONT)`;
    case 'redisDown': return 'FAULT redis down (SIGKILL)';
    case 'redisUp': return 'FAULT redis up again (same port, empty data)';
    default: return `${op.kind}${user}`;
  }
}

export class Violation extends Error {
  constructor(invariant, detail) {
    super(`${invariant}: ${detail}`);
    this.invariant = invariant;
    this.detail = detail;
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function ackOf(socket, event, payload, ms = ACK_MS) {
  try {
    return await socket.timeout(ms).emitWithAck(event, payload);
  } catch {
    return { timedOut: true };
  }
}

/** The real cluster plus the model. */
export class World {
  constructor({ onLog = () => {} } = {}) {
    this.redis = null;
    this.nodes = [null, null, null];
    this.paused = new Set();
    this.outage = false;
    this.users = [];
    this.rooms = new Map();
    this.sent = new Map();
    this.violations = [];
    this.lastDisruption = 0;
    this.tally = { ops: {}, faults: {}, acks: {} };
    this.onLog = onLog;
    this.stepNo = 0;
    this.redisRestarts = 0;
    this.sockets = new Set();
  }

  count(kind, name) {
    this.tally[kind][name] = (this.tally[kind][name] ?? 0) + 1;
  }

  async start() {
    this.redis = await startRedis();
    for (let slot = 0; slot < 3; slot += 1) await this.startNode(slot);
    await this.eventuallyOk(() => this.checkClusterNodes(), 8000, 'three live nodes listed');
  }

  async startNode(slot) {
    const server = await startServer({ REDIS_URL: this.redis.url, ...ENV });
    this.nodes[slot] = { server, slot, url: server.url, generation: (this.nodes[slot]?.generation ?? 0) + 1 };
  }

  async shutdown() {
    for (const socket of this.sockets) socket.close();
    for (const node of this.nodes) {
      if (!node) continue;
      if (this.paused.has(node.slot)) node.server.proc.kill('SIGCONT');
      await node.server.kill('SIGKILL').catch(() => {});
    }
    await this.redis?.stop().catch(() => {});
  }

  violate(invariant, detail) {
    const violation = new Violation(invariant, detail);
    this.violations.push(violation);
    throw violation;
  }

  /** Polls `check` (throws a Violation while false) until it passes or `ms` pass. */
  async eventuallyOk(check, ms, what) {
    const deadline = Date.now() + ms;
    for (;;) {
      try {
        await check();
        return;
      } catch (error) {
        if (!(error instanceof Violation) || Date.now() >= deadline) {
          if (error instanceof Violation) this.violations.push(error);
          throw error instanceof Violation ? error : new Error(`${what}: ${error.message}`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A Violation without recording it (for polled checks). */
  soft(invariant, detail) {
    throw new Violation(invariant, detail);
  }

  roomOpen(roomId) {
    return roomId != null && !this.rooms.get(roomId)?.closed;
  }

  /** The user's room in the model: the last match:found, unless that room closed since. */
  roomOf(user) {
    return this.roomOpen(user.room) ? user.room : null;
  }

  byId(id) {
    return this.users.find((user) => user.id === id);
  }

  // -------------------------------------------------------------------------------------
  // Sockets and the model

  attach(user, socket, slot) {
    const node = this.nodes[slot];
    const entry = { socket, slot, generation: node.generation, open: true };
    socket.onAny((event, ...args) => {
      if (user.socket !== entry) return; // a replaced socket: what it hears is not the user's
      this.observe(user, entry, event, args);
    });
    socket.on('disconnect', () => {
      entry.open = false;
      if (user.socket === entry) this.away(user);
    });
    return entry;
  }

  away(user) {
    user.socket = null;
    user.awayAt = Date.now();
    user.awayRoom = this.roomOf(user);
  }

  observe(user, entry, event, args) {
    const [payload] = args;
    const now = Date.now();
    if (!['realtime:stats', 'chat:typing', 'message:sent', 'message:delivered'].includes(event)) {
      user.log.push(`${event}${payload?.roomId ? ` ${payload.roomId.slice(5, 13)}` : ''}${payload?.reason ? ` ${payload.reason}` : ''}${payload?.partner ? ` partner=${this.label(payload.partner.id)}` : ''} on n${entry.slot}`);
      if (user.log.length > 12) user.log.shift();
    }
    switch (event) {
      case 'match:found': {
        const current = this.roomOf(user);
        if (current && current !== payload.roomId) user.leftRooms.add(current);
        user.room = payload.roomId;
        user.partner = payload.partner?.id;
        user.foundAt = now;
        if (!this.rooms.has(payload.roomId)) this.rooms.set(payload.roomId, { members: new Set(), closed: false });
        const room = this.rooms.get(payload.roomId);
        room.members.add(user.id);
        room.members.add(payload.partner?.id);
        if (room.members.size > 2) this.violations.push(new Violation('both members of a room see the same room', `${payload.roomId} has members ${[...room.members].map((id) => this.label(id)).join(', ')}`));
        break;
      }
      case 'room:closed': {
        const room = this.rooms.get(payload.roomId) ?? { members: new Set([user.id]), closed: false };
        room.closed = true;
        room.closedAt = now;
        this.rooms.set(payload.roomId, room);
        break;
      }
      case 'chat:message': {
        const ack = args[args.length - 1];
        const room = this.roomOf(user);
        if (payload.roomId !== room || payload.senderId !== user.partner) {
          this.violations.push(new Violation(
            'a chat:message is received only by the sender\'s partner',
            `${user.name} (room ${room}, partner ${this.label(user.partner)}) got ${payload.id} from ${this.label(payload.senderId)} in ${payload.roomId}`,
          ));
        }
        user.received.set(payload.id, { from: payload.senderId, roomId: payload.roomId, at: now });
        if (typeof ack === 'function') user.unacked.push(ack);
        break;
      }
      case 'session:replaced': case 'session:expired': case 'session:banned':
        user.told.push(event);
        break;
      default:
    }
  }

  label(id) {
    const user = this.byId(id);
    return user ? user.name : String(id);
  }

  liveSlots() {
    return [0, 1, 2].filter((slot) => this.nodes[slot] && !this.paused.has(slot));
  }

  async connectUser(user, slot, transports) {
    const node = this.nodes[slot];
    const socket = io(node.url, { forceNew: true, reconnection: false, timeout: CONNECT_MS, transports, auth: { token: user.token } });
    this.sockets.add(socket);
    const entryBefore = user.socket;
    const entry = this.attach(user, socket, slot);
    const outcome = await withTimeout(new Promise((resolve) => {
      socket.once('connection:established', (payload) => resolve({ ok: true, payload }));
      socket.once('connect_error', (error) => resolve({ ok: false, error: error.message }));
    }), CONNECT_MS + 1000, 'connection:established').catch((error) => ({ ok: false, error: error.message }));
    if (!outcome.ok) {
      socket.close();
      return outcome;
    }
    if (entryBefore?.open) user.replacedSockets.push(entryBefore);
    const wasAway = !user.socket && user.awayAt !== undefined;
    user.socket = entry;
    if (wasAway && user.awayRoom && this.roomOpen(user.awayRoom)) {
      // Back after an absence: the grace may or may not have run out; ask the server.
      const awayFor = Date.now() - user.awayAt;
      const me = await api(node.url, 'GET', '/api/guest/me', { token: user.token }).catch(() => null);
      const inChat = me?.status === 200 && me.body.user.inChat && me.body.user.connectedUser === user.partner;
      if (!inChat && me?.status === 200) {
        if (awayFor < GRACE_SECS * 1000 - 300 && !this.outage && this.lastDisruption < user.awayAt) {
          this.violate('a user back within the grace keeps the chat', `${user.name} was away ${awayFor} ms from ${user.awayRoom}, server says not in chat`);
        }
        const room = this.rooms.get(user.awayRoom);
        if (room) {
          room.closed = true;
          room.closedAt = Date.now();
          room.closedByGrace = true;
        }
      }
    }
    user.awayRoom = null;
    return outcome;
  }

  newUser(index) {
    const user = {
      index, name: `u${index}`, id: null, token: null, socket: null, room: null, partner: null,
      deleted: false, deletedAt: 0, deletedVia: null, lost: false, received: new Map(), unacked: [],
      told: [], log: [], leftRooms: new Set(), replacedSockets: [], awayRoom: null,
    };
    this.users[index] = user;
    return user;
  }

  // -------------------------------------------------------------------------------------
  // Steps

  /** Applies one step; returns a short result for the schedule line. */
  async apply(op) {
    const rng = prng(op.seed);
    const user = op.user === undefined ? null : this.users[op.user];
    const slot = op.slot;
    if (op.kind in { kill: 1, pause: 1, redisDown: 1, redisUp: 1 }) this.count('faults', op.kind);
    else this.count('ops', op.kind);
    switch (op.kind) {
      case 'create': {
        const fresh = this.newUser(op.user);
        const response = await api(this.nodes[slot].url, 'POST', '/api/guest', { json: {} });
        if (response.status !== 201) this.violate('a session can be created on any node', `POST /api/guest on n${slot}: ${response.status} ${JSON.stringify(response.body)}`);
        fresh.id = response.body.user.id;
        fresh.token = response.body.token;
        fresh.createdAt = Date.now();
        return fresh.id.slice(0, 14);
      }
      case 'connect': case 'reconnect': {
        if (!user || user.lost) return 'skip';
        if (op.kind === 'reconnect' && user.socket) {
          const old = user.socket;
          const gone = new Promise((resolve) => old.socket.once('disconnect', resolve));
          old.socket.close();
          await gone;
        }
        const outcome = await this.connectUser(user, slot, TRANSPORTS[op.transport]);
        return this.judgeConnect(user, slot, outcome);
      }
      case 'zombie': {
        if (!user?.deleted) return 'skip (not deleted)';
        const target = this.outage ? user.deletedVia : slot;
        if (!this.nodes[target] || this.nodes[target].generation !== user.deletedGeneration && this.outage) return 'skip';
        const probe = { ...user, socket: null, awayRoom: null };
        const outcome = await this.connectUser(probe, target, TRANSPORTS[op.transport]);
        if (outcome.ok) {
          probe.socket?.socket.close();
          this.violate('no deleted session comes back', `${user.name}'s token was accepted by a handshake on n${target} after DELETE`);
        }
        return `refused: ${outcome.error}`;
      }
      case 'search': case 'next': case 'cancel': case 'leave': case 'typing': {
        if (!user?.socket) return 'skip (no socket)';
        const event = { search: 'match:search', next: 'match:next', cancel: 'match:cancel', leave: 'chat:leave', typing: 'chat:typing' }[op.kind];
        const payload = op.kind === 'typing' ? { isTyping: rng.chance(0.5) } : op.kind === 'search' || op.kind === 'next' ? {} : undefined;
        const before = this.roomOf(user);
        const ack = await ackOf(user.socket.socket, event, payload);
        if ((op.kind === 'next' || op.kind === 'leave') && before && ack.ok) user.leftRooms.add(before);
        return this.judgeAck(op.kind, ack);
      }
      case 'message': {
        if (!user?.socket) return 'skip (no socket)';
        const room = this.roomOf(user);
        const partner = room ? this.byId(user.partner) : null;
        const clientId = `c${this.stepNo}`;
        const at = Date.now();
        const ack = await ackOf(user.socket.socket, 'chat:message', { type: 'text', content: `step ${this.stepNo}`, clientId });
        const result = this.judgeAck('message', ack);
        if (ack.ok) {
          this.sent.set(ack.message.id, {
            id: ack.message.id, from: user, to: partner, room, at, step: this.stepNo,
            fromSocket: user.socket, toSocket: partner?.socket ?? null,
            crossNode: partner?.socket ? partner.socket.slot !== user.socket?.slot : null,
            outage: this.outage,
          });
        }
        return `${result}${partner ? ` to ${partner.name}` : ''}`;
      }
      case 'ackMessage': {
        if (!user?.socket || !user.unacked.length) return 'skip (nothing to ack)';
        user.unacked.shift()();
        return 'acked';
      }
      case 'disconnect': {
        if (!user?.socket) return 'skip (no socket)';
        const old = user.socket;
        const gone = new Promise((resolve) => old.socket.once('disconnect', resolve));
        old.socket.close();
        await gone;
        return 'closed';
      }
      case 'delete': {
        if (!user || user.lost) return 'skip';
        const response = await api(this.nodes[slot].url, 'DELETE', '/api/guest/me', { token: user.token });
        if (user.deleted) {
          if (![401, 404].includes(response.status)) this.violate('no deleted session comes back', `a second DELETE of ${user.name} answered ${response.status}`);
          return String(response.status);
        }
        if (response.status !== 204 && !this.outage) this.violate('a live session can be deleted through any node', `DELETE of ${user.name} via n${slot} answered ${response.status}`);
      if (response.status === 204) {
          user.deleted = true;
          user.deletedAt = Date.now();
          user.deletedVia = slot;
          user.deletedGeneration = this.nodes[slot].generation;
          user.deletedInOutage = this.outage;
          const socket = user.socket;
          if (socket) {
            await withTimeout(new Promise((resolve) => (socket.open ? socket.socket.once('disconnect', resolve) : resolve())), (NODE_TIMEOUT_SECS * 1000) + SLACK_MS, 'disconnect')
              .catch(() => this.violate('DELETE /api/guest/me disconnects its socket', `${user.name}'s socket on n${socket.slot} still open`));
          }
          this.lastDisruption = Date.now();
        }
        return String(response.status);
      }
      case 'kill': return this.kill(slot, op.rejoin, rng);
      case 'pause': return this.pause(slot, op.ms, rng);
      case 'redisDown': {
        await this.redis.kill();
        this.outage = true;
        this.lastDisruption = Date.now();
        for (const node of this.nodes) {
          await this.eventuallyOk(async () => {
            const ready = await api(node.url, 'GET', '/readyz');
            if (ready.body?.redis !== 'down') this.soft('a node notices a Redis outage', `n${node.slot} /readyz ${JSON.stringify(ready.body)}`);
          }, 10000, 'redis down');
        }
        return 'all nodes report redis down';
      }
      case 'redisUp': {
        await this.redis.restart();
        this.redisRestarts += 1;
        for (const node of this.nodes) {
          await this.eventuallyOk(async () => {
            const ready = await api(node.url, 'GET', '/readyz');
            if (ready.body?.storage !== 'redis' || ready.body?.redis !== 'up') this.soft('a node rejoins when Redis returns', `n${node.slot} /readyz ${JSON.stringify(ready.body)}`);
          }, 15000, 'redis up');
        }
        this.outage = false;
        this.outageEndedAt = Date.now();
        this.lastDisruption = Date.now();
        return 'all nodes back on redis';
      }
      default:
        throw new Error(`unknown op ${op.kind}`);
    }
  }

  judgeConnect(user, slot, outcome) {
    if (user.deleted) {
      if (outcome.ok) {
        user.socket?.socket.close();
        user.socket = null;
        if (!this.outage || slot === user.deletedVia) this.violate('no deleted session comes back', `${user.name} connected to n${slot} after DELETE`);
        return 'connected (deleted session, during the outage on another node)';
      }
      return `refused: ${outcome.error}`;
    }
    if (!outcome.ok) {
      if (outcome.error === 'Guest session not found' && this.redisRestarts > 0) {
        // Redis restarted empty: a session no node had in memory may be gone. Counted.
        user.lost = true;
        this.count('acks', 'session lost after redis restart');
        return 'session lost (redis restarted empty)';
      }
      this.violate('a live session connects on any live node', `${user.name} to n${slot}: ${outcome.error}`);
    }
    return `established on n${slot}`;
  }

  judgeAck(kind, ack) {
    if (ack.timedOut) this.violate('every event is acknowledged', `${kind}: no ack within ${ACK_MS} ms`);
    const key = ack.ok ? `${kind} ok` : `${kind} ${ack.error?.code}`;
    this.count('acks', key);
    return ack.ok ? 'ok' : ack.error?.code;
  }

  async kill(slot, rejoin, rng) {
    const node = this.nodes[slot];
    const victims = this.users.filter((user) => user.socket?.slot === slot && user.socket.open);
    const drops = victims.map((user) => new Promise((resolve) => (user.socket.open ? user.socket.socket.once('disconnect', resolve) : resolve())));
    await node.server.kill('SIGKILL');
    this.nodes[slot] = null;
    this.killedAt = Date.now();
    this.lastDisruption = Date.now();
    await withTimeout(Promise.all(drops), 8000, 'the killed node\'s sockets to drop')
      .catch(() => this.violate('a killed node\'s sockets drop', `${victims.map((u) => u.name).join(',')}`));
    // The dead node's clients come back through the proxy to a live node (most of them).
    const back = [];
    for (const user of victims) {
      if (rng.next() < 0.2 + rejoin * 0.8) {
        const target = rng.pick([0, 1, 2].filter((s) => s !== slot));
        back.push(`${user.name}→n${target}`);
        this.judgeConnect(user, target, await this.connectUser(user, target, rng.pick(TRANSPORTS)));
      }
    }
    this.nodes[slot] = { generation: node.generation };
    await this.startNode(slot);
    return `killed (${victims.length} sockets), back: ${back.join(' ') || 'none'}; new n${slot} on ${this.nodes[slot].url}`;
  }

  async pause(slot, ms, rng) {
    const node = this.nodes[slot];
    node.server.proc.kill('SIGSTOP');
    this.paused.add(slot);
    this.lastDisruption = Date.now();
    const started = Date.now();
    // While it is stopped: one user elsewhere writes to a partner on the paused node.
    let note = '';
    const senders = this.users.filter((user) => user.socket && user.socket.slot !== slot && this.roomOf(user) && this.byId(user.partner)?.socket?.slot === slot);
    if (senders.length) {
      const sender = rng.pick(senders);
      const partner = this.byId(sender.partner);
      const at = Date.now();
      const ack = await ackOf(sender.socket.socket, 'chat:message', { type: 'text', content: `to a paused node ${this.stepNo}` }, Math.max(500, ms));
      if (!ack.timedOut) {
        const result = this.judgeAck('message', ack);
        note = ` ${sender.name}→${partner.name} ${result}`;
        if (ack.ok) {
          this.sent.set(ack.message.id, {
            id: ack.message.id, from: sender, to: partner, room: this.roomOf(sender), at, step: this.stepNo,
            fromSocket: sender.socket, toSocket: partner.socket, crossNode: true, outage: this.outage,
          });
        }
      } else note = ` ${sender.name}→${partner.name} (ack pending past the pause)`;
    }
    const left = ms - (Date.now() - started);
    // The fault's own duration, not a wait for the system: the node stays stopped this long.
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    node.server.proc.kill('SIGCONT');
    this.paused.delete(slot);
    this.lastDisruption = Date.now();
    return `resumed after ${Date.now() - started} ms${note}`;
  }

  // -------------------------------------------------------------------------------------
  // Invariants

  /** Waits for the consequences of the step, then judges every invariant. */
  async settle({ quiet }) {
    const violation = this.violations.find((v) => !v.reported);
    if (violation) {
      violation.reported = true;
      throw violation;
    }
    const recent = Date.now() - this.lastDisruption < (NODE_TIMEOUT_SECS + GRACE_SECS) * 1000 + SLACK_MS;
    const horizon = recent ? (NODE_TIMEOUT_SECS + GRACE_SECS) * 1000 + SLACK_MS * 2 : 4000;
    // Every open socket answers (this also flushes what its node had queued for it).
    for (const user of this.users) {
      if (!user?.socket?.open) continue;
      const ack = await ackOf(user.socket.socket, 'presence:heartbeat', undefined);
      if (ack.timedOut && user.socket?.open) this.violate('every event is acknowledged', `${user.name}'s heartbeat on n${user.socket.slot} got no ack`);
    }
    await this.eventuallyOk(() => this.checkRooms(), horizon, 'rooms');
    await this.eventuallyOk(() => this.checkDelivery(), horizon, 'delivery');
    await this.eventuallyOk(() => this.checkDeleted(), this.outageEndedAt && Date.now() - this.outageEndedAt < 5000 ? 5000 : 300, 'deleted');
    const again = this.violations.find((v) => !v.reported);
    if (again) {
      again.reported = true;
      throw again;
    }
    if (quiet && !this.outage) {
      await this.eventuallyOk(() => this.checkClusterNodes(), (NODE_TIMEOUT_SECS * 1000) + SLACK_MS * 2, 'cluster nodes');
      await this.eventuallyOk(() => this.checkStats(), (NODE_TIMEOUT_SECS + GRACE_SECS) * 1000 + SLACK_MS * 2, 'stats');
    }
  }

  /** Nobody in two rooms; both members of a room see it; a partner gone is noticed. */
  checkRooms() {
    const now = Date.now();
    const deadline = (NODE_TIMEOUT_SECS + GRACE_SECS) * 1000 + SLACK_MS;
    for (const user of this.users) {
      if (!user || user.deleted || user.lost || !user.socket?.open) continue;
      const room = this.roomOf(user);
      // Rooms this user left (next/leave/found another) must be closed for their other member.
      for (const left of user.leftRooms) {
        if (left === room) continue;
        if (this.roomOpen(left)) {
          const other = [...(this.rooms.get(left)?.members ?? [])].map((id) => this.byId(id)).find((u) => u && u !== user);
          if (other?.socket?.open && this.roomOf(other) === left) {
            this.soft('nobody is in two rooms', `${user.name} is in ${room} but ${other.name} still sees ${left} with ${user.name} open`);
          }
          if (!other?.socket?.open) continue; // nobody of it can hear room:closed; the server closes it
        }
      }
      if (!room) continue;
      const partner = this.byId(user.partner);
      if (!partner) this.soft('both members of a room see the same room', `${user.name}'s partner ${user.partner} is unknown`);
      if (partner.deleted || partner.lost) {
        this.soft('a partner who ended is noticed', `${user.name} still in ${room} with ended ${partner.name}`);
      }
      if (partner.socket?.open) {
        if (this.roomOf(partner) !== room || partner.partner !== user.id) {
          this.soft('both members of a room see the same room', `${user.name} (on n${user.socket.slot}) sees ${room} with ${partner.name} (on n${partner.socket.slot}), who sees ${this.roomOf(partner)} with ${this.label(partner.partner)}; ${user.name} heard [${user.log.join('; ')}], ${partner.name} heard [${partner.log.join('; ')}]`);
        }
      } else if (partner.awayAt !== undefined && now - partner.awayAt > deadline) {
        this.soft('a partner who went away is noticed', `${user.name} still in ${room}; ${partner.name} has been away ${now - partner.awayAt} ms`);
      }
    }
  }

  /** A message whose ack was ok reaches the partner at send time, unless a fault hit the pair. */
  checkDelivery() {
    for (const sent of this.sent.values()) {
      if (sent.done) continue;
      const { to } = sent;
      if (!to) {
        // ok:true without a partner in the model: nobody may receive it but someone's partner.
        sent.done = true;
        continue;
      }
      if (to.received.has(sent.id)) {
        sent.done = true;
        continue;
      }
      const hit =
        !this.roomOpen(sent.room) ||
        sent.from.socket !== sent.fromSocket ||
        to.socket !== sent.toSocket ||
        !sent.toSocket?.open ||
        to.deleted || sent.from.deleted ||
        (this.killedAt && this.killedAt >= sent.at);
      if (hit) {
        sent.done = true;
        sent.exempt = true;
        continue;
      }
      if (this.outage && sent.crossNode) continue; // judged once Redis is back
      this.soft('a message acked ok reaches the partner', `${sent.id} (step ${sent.step}) ${sent.from.name}→${to.name} in ${sent.room}${sent.outage ? ', sent during a Redis outage' : ''}${sent.crossNode ? ', across nodes' : ''} never arrived`);
    }
  }

  async checkDeleted() {
    for (const user of this.users) {
      if (!user?.deleted) continue;
      const slots = this.outage ? [user.deletedVia].filter((s) => this.nodes[s]?.generation === user.deletedGeneration) : this.liveSlots();
      for (const slot of slots) {
        const me = await api(this.nodes[slot].url, 'GET', '/api/guest/me', { token: user.token });
        if (![401, 404].includes(me.status)) this.soft('no deleted session comes back', `GET /api/guest/me of ${user.name} on n${slot} answered ${me.status} (deleted ${Date.now() - user.deletedAt} ms ago via n${user.deletedVia}${user.deletedInOutage ? ' during a Redis outage' : ''})`);
      }
    }
  }

  async checkClusterNodes() {
    for (const node of this.nodes) {
      const { status, body } = await api(node.url, 'GET', '/api/cluster/nodes');
      if (status !== 200 || body.nodes.length !== 3) this.soft('/api/cluster/nodes lists exactly the live nodes', `n${node.slot} lists ${status} ${JSON.stringify(body?.nodes?.map((n) => n.id))}`);
    }
  }

  truth() {
    let online = 0;
    let inChat = 0;
    const ambiguous = [];
    const now = Date.now();
    for (const user of this.users) {
      if (!user || user.deleted || user.lost) continue;
      if (user.socket?.open) {
        online += 1;
        if (this.roomOf(user)) inChat += 1;
      } else if (user.awayRoom && this.roomOpen(user.awayRoom)) {
        const partner = this.byId(user.partner);
        if (partner?.socket?.open) ambiguous.push(user.name); // the partner will hear room:closed
        else if (now - user.awayAt > (NODE_TIMEOUT_SECS + GRACE_SECS) * 1000 + SLACK_MS) {
          const room = this.rooms.get(user.awayRoom);
          room.closed = true;
          room.closedByGrace = true;
        } else ambiguous.push(user.name);
      }
    }
    return { online, inChat, ambiguous };
  }

  async checkStats() {
    const truth = this.truth();
    if (truth.ambiguous.length) this.soft('stats equal the model', `waiting for the rooms of ${truth.ambiguous.join(', ')} to close`);
    for (const node of this.nodes) {
      const { body } = await api(node.url, 'GET', '/api/stats');
      const { onlineUsers, usersInChat } = body.stats;
      if (onlineUsers !== truth.online || usersInChat !== truth.inChat) {
        this.soft('once quiet, /api/stats equals the model on every node', `n${node.slot}: onlineUsers ${onlineUsers} usersInChat ${usersInChat}; model: online ${truth.online} inChat ${truth.inChat}`);
      }
    }
  }
}
