// The simulator's seed sweep, through the CLI as a user runs it: 2000 seeds
// with every kind of fault, each checked after every event. Plus
// determinism: one seed, one trace.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Simulator } from '../../src/sim/index.js';
import { TICK_US } from '../../src/sim/options.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('2000 seeds with all faults hold every invariant', () => {
  const r = spawnSync(process.execPath, [cli, 'sim', '--seeds', '1-2000', '--faults', 'all', '--quiet'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `sweep failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /swept 2000 of 2000 seeds .*: 0 failed/);
});

test('the same seed reproduces the same run, event for event', () => {
  for (const seed of [3, 77, 1234]) {
    const a = new Simulator({ seed, ticks: 1500 }).run();
    const b = new Simulator({ seed, ticks: 1500 }).run();
    assert.equal(a.traceHash, b.traceHash);
    assert.equal(a.stats.events, b.stats.events);
    assert.deepEqual(a.leadersByTerm, b.leadersByTerm);
  }
  const c = new Simulator({ seed: 3, ticks: 1500 }).run();
  const d = new Simulator({ seed: 4, ticks: 1500 }).run();
  assert.notEqual(c.traceHash, d.traceHash, 'different seeds should give different runs');
});

test('a single-seed run prints its summary and trace hash', () => {
  const r = spawnSync(process.execPath, [cli, 'sim', '--seed', '7', '--nodes', '5', '--ticks', '3000', '--faults', 'all'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const part of ['elections:', 'leaders by term:', 'commits:', 'faults injected:', 'messages:', 'trace hash:']) {
    assert.ok(r.stdout.includes(part), `summary lacks "${part}":\n${r.stdout}`);
  }
});

test('bad flags are refused with a message naming them', () => {
  const cases: [string[], RegExp][] = [
    [['sim', '--bogus'], /unknown flag --bogus/],
    [['sim', '--nodes', '12'], /--nodes must be 1 to 9/],
    [['sim', '--faults', 'crash,meteor'], /unknown fault "meteor"/],
    [['sim', '--seeds', '9-3'], /range 9-3 is empty/],
    [['sim', '--ticks', 'many'], /--ticks must be an integer/],
  ];
  for (const [args, pattern] of cases) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${args.join(' ')} should exit 2`);
    assert.match(r.stderr, pattern);
  }
});

test('a run not settled at its last tick goes on until a leader commits and clients are answered, or the bound passes', () => {
  // Seed 4 at 20 ticks: the heal at tick 12, no leader yet at tick 20.
  const r = new Simulator({ seed: 4, ticks: 20 }).run();
  assert.equal(r.violation, undefined);
  assert.equal(r.stats.liveness, 'ok');
  assert.ok(r.endTime > 20 * TICK_US, `ended at ${r.endTime} µs`);
  assert.equal(r.endTime, 12 * TICK_US + r.stats.leaderAfterHealUs!, 'it stops as soon as liveness settles');
  // A settled run ends on its last tick.
  const settled = new Simulator({ seed: 5, ticks: 600 }).run();
  assert.equal(settled.stats.liveness, 'ok');
  assert.ok(settled.endTime <= 600 * TICK_US);
});

test('some seeds draw a session TTL short enough that sessions expire, and every invariant still holds', () => {
  let expired = 0;
  let short = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const r = new Simulator({ seed }).run();
    assert.equal(r.violation, undefined, `seed ${seed}: ${r.violation?.property}: ${r.violation?.detail}`);
    if (r.swarm.sessionTtlUs <= 2_000_000) short++;
    expired += r.stats.sessionsExpired;
  }
  assert.ok(short > 0 && short < 12, `${short} of 12 seeds drew a short TTL`);
  assert.ok(expired > 0, 'sessions expired');
});

// Seeds the 100,000-seed soak (`npm run soak`) once failed, each for a
// reason since fixed; they must stay green.
// - 15294: a lagging node answered a client's new session registration
//   with an old registration entry (src/sim/workload.ts, a simulator bug).
// - 7664: a voter stepped through terms 4, 5 and 24 in one Ready; its grant
//   in term 5 went out after the write of term 24, which the checker did
//   not count as a durable vote (src/sim/checker.ts onVoteGranted).
// - 2599: the nemesis took a snapshot while a leader's snapshot was being
//   installed, one storage now refuses as out of date (src/sim/node.ts
//   takes snapshots only between writes, as src/node does).
// - 54412: one entry per message and one message in flight, with 10 ms disk
//   writes: a voter 330 entries behind at the heal needed 456 ticks to catch
//   up, past the fixed bound of 400; the bound now allows for the catch-up.
// - 62015: the configuration shrank to one voter; the four removed members,
//   never told, kept answering with stale leader hints, and a client chose
//   among them at random for 37 tries; a client now tries each node once
//   before trying any again (src/sim/workload.ts).
test('seeds the soak once failed hold every invariant', () => {
  for (const [seed, nodes] of [
    [15294, 5],
    [7664, 9],
    [2599, 3],
    [54412, 4],
    [62015, 5],
    [36417, 5], // 41 elections after the heal (the liveness bound's comment in simulator.ts)
  ] as const) {
    const r = new Simulator({ seed, nodes, ticks: 2000 }).run();
    assert.equal(r.violation, undefined, `seed ${seed}: ${r.violation?.property}: ${r.violation?.detail}`);
  }
});
