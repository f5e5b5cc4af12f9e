#!/usr/bin/env node
// The default test suite (`npm test`, after the build): unit and scenario
// tests, the simulator's seed sweep, the end-to-end tests with real processes
// (dist/test/e2e: a child appending to the disk is SIGKILLed and recovered),
// then the mutation tests that prove the simulator's checks catch classic
// Raft bugs.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const run = (label, cmd, args) => {
  const started = Date.now();
  process.stdout.write(`\n== ${label}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (r.status !== 0) {
    process.stdout.write(`\n== ${label}: FAILED after ${secs} s\n`);
    process.exit(r.status ?? 1);
  }
  process.stdout.write(`== ${label}: passed in ${secs} s\n`);
};

const suites = ['dist/test/unit', 'dist/test/sim', 'dist/test/e2e'].filter((d) => existsSync(d));
run('unit, scenario, simulator and end-to-end tests', process.execPath, ['--test', '--test-reporter=dot', ...suites]);
if (existsSync('scripts/mutants.mjs')) run('mutation tests', process.execPath, ['scripts/mutants.mjs']);
