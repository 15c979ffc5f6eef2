// Seeded randomized fault injection against real processes: three chat-server nodes on one
// private redis-server, users driven by the real socket.io-client, faults by signals (SIGKILL
// a node and restart it on a new port, SIGKILL Redis and start it again on the same port,
// SIGSTOP/SIGCONT a node). The world, the model and the invariants are in lib/chaos.js.
//
//   CHAOS_SEED=<n>        one seed (replays a failing run's schedule)
//   CHAOS_SEEDS=<a,b,..>  or a count <n> (seeds 1..n); default: the CI set below
//   CHAOS_STEPS=<n>       steps per seed (default 40)
//   CHAOS_FAULTS=kill,redis,pause   the fault kinds (default: all, see CI_FAULTS; empty: none)
//   CHAOS_VERBOSE=1       prints every schedule, passing or not
//   CHAOS_SUMMARY=<file>  appends the totals as one JSON line (make soak reads it)
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';

import { FAULT_KINDS, World, describeOp, schedule } from './lib/chaos.js';
import { redisAvailable } from './lib/redis.js';

const available = redisAvailable();
const CI_SEEDS = [1, 2, 3, 4];

function seeds() {
  if (process.env.CHAOS_SEED) return [Number(process.env.CHAOS_SEED)];
  const spec = process.env.CHAOS_SEEDS;
  if (!spec) return CI_SEEDS;
  if (/^\d+$/.test(spec)) return Array.from({ length: Number(spec) }, (_, index) => index + 1);
  return spec.split(',').map(Number);
}

const STEPS = Number(process.env.CHAOS_STEPS ?? 40);
// Every fault kind runs by default. (`redis` found a defect, fixed since: a searcher queued
// on a node during a Redis outage was written back and paired when Redis returned empty, but
// its match:found was dropped while its node had not recorded it in the directory again;
// replay: CHAOS_SEED=1 CHAOS_STEPS=12.)
export const CI_FAULTS = FAULT_KINDS;
const FAULTS = process.env.CHAOS_FAULTS === undefined
  ? CI_FAULTS
  : process.env.CHAOS_FAULTS.split(',').map((kind) => kind.trim()).filter(Boolean);
for (const kind of FAULTS) if (!FAULT_KINDS.includes(kind)) throw new Error(`CHAOS_FAULTS: unknown kind ${kind} (known: ${FAULT_KINDS.join(', ')})`);

const totals = { seeds: 0, steps: 0, ops: {}, faults: {}, acks: {}, violations: [] };

function add(into, from) {
  for (const [key, value] of Object.entries(from)) into[key] = (into[key] ?? 0) + value;
}

async function runSeed(seed) {
  const steps = schedule(seed, STEPS, FAULTS);
  const world = new World();
  const lines = [];
  const started = Date.now();
  let failure = null;
  try {
    await world.start();
    for (let index = 0; index < steps.length; index += 1) {
      const op = steps[index];
      world.stepNo = index;
      const at = ((Date.now() - started) / 1000).toFixed(3).padStart(8);
      const line = `#${String(index).padEnd(4)} t=${at}s  ${describeOp(op)}`;
      try {
        const result = await world.apply(op);
        lines.push(`${line}  -> ${result}`);
        const quiet = index % 8 === 7 || index === steps.length - 1;
        await world.settle({ quiet });
      } catch (error) {
        if (lines.length <= index) lines.push(`${line}  -> ${error.message.split('\n')[0]}`);
        failure = { step: index, error };
        break;
      }
    }
  } finally {
    await world.shutdown();
    totals.seeds += 1;
    totals.steps += lines.length;
    add(totals.ops, world.tally.ops);
    add(totals.faults, world.tally.faults);
    add(totals.acks, world.tally.acks);
  }
  if (process.env.CHAOS_VERBOSE) console.log(`seed ${seed}:\n${lines.join('\n')}`);
  if (failure) {
    const invariant = failure.error.invariant ?? 'the harness itself (not an invariant)';
    totals.violations.push({ seed, step: failure.step, invariant, detail: failure.error.detail ?? failure.error.message });
    const rest = steps.slice(lines.length).map((op, offset) => `#${String(lines.length + offset).padEnd(4)} (not run) ${describeOp(op)}`);
    assert.fail([
      `chaos seed ${seed} broke "${invariant}" at step ${failure.step}`,
      `  ${failure.error.detail ?? failure.error.stack}`,
      `replay: CHAOS_SEED=${seed} CHAOS_STEPS=${STEPS} CHAOS_FAULTS=${FAULTS.join(',')} node --test chaos.test.js`,
      'schedule:',
      ...lines.map((l) => `  ${l}`),
      ...rest.map((l) => `  ${l}`),
    ].join('\n'));
  }
  return { seconds: (Date.now() - started) / 1000, tally: world.tally };
}

describe('chaos: seeded faults against three real nodes on one Redis', { skip: !available && 'redis-server is not installed' }, () => {
  after(() => {
    const summary = [
      `chaos summary: ${totals.seeds} seeds, ${totals.steps} steps, faults ${FAULTS.join(',') || 'none'}`,
      `  operations: ${JSON.stringify(totals.ops)}`,
      `  faults:     ${JSON.stringify(totals.faults)}`,
      `  answers:    ${JSON.stringify(totals.acks)}`,
      `  violations: ${totals.violations.length}${totals.violations.map((v) => `\n    seed ${v.seed} step ${v.step}: ${v.invariant}: ${v.detail}`).join('')}`,
    ].join('\n');
    console.log(summary);
    if (process.env.CHAOS_SUMMARY) appendFileSync(process.env.CHAOS_SUMMARY, `${JSON.stringify(totals)}\n`);
  });

  for (const seed of seeds()) {
    test(`seed ${seed}: ${STEPS} steps`, { timeout: 60000 + STEPS * 8000 }, async () => {
      await runSeed(seed);
    });
  }
});
