#!/usr/bin/env node
// A long run of the real-process kill test (test/e2e/kill.test.ts): many
// more SIGKILL/recover rounds than the default suite's 15, on a seed of its
// own each time unless one is given. Run after `npm run build`:
//
//   node scripts/kill-soak.mjs [rounds=500] [seed=random]
//
// A failing run prints the round, what went wrong and where it kept the data
// directory; KILL_SEED=<seed> KILL_ROUNDS=<n> replays the same kill choices
// (the kill moments themselves depend on the machine's timing).

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const rounds = process.argv[2] ?? process.env.KILL_ROUNDS ?? '500';
const seed = process.argv[3] ?? process.env.KILL_SEED ?? String(1 + Math.floor(Math.random() * 1e6));
if (!existsSync('dist/test/e2e/kill.test.js')) {
  process.stderr.write('dist/test/e2e/kill.test.js is missing: run `npm run build` first\n');
  process.exit(2);
}
process.stdout.write(`kill soak: ${rounds} rounds, seed ${seed}\n`);
const r = spawnSync(
  process.execPath,
  ['--test', '--test-reporter=spec', '--test-name-pattern=survives', 'dist/test/e2e/kill.test.js'],
  { stdio: 'inherit', env: { ...process.env, KILL_ROUNDS: rounds, KILL_SEED: seed } },
);
process.exit(r.status ?? 1);
