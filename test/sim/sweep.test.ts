// The simulator's seed sweep, through the CLI as a user runs it: 2000 seeds
// with every kind of fault, each checked after every event. Plus
// determinism: one seed, one trace.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Simulator } from '../../src/sim/index.js';

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
