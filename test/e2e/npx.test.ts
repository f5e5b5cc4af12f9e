// `npx raftkv ...` from the repository root, as the README and issue 5 say a
// user runs it after `npm ci`: npm runs package.json's bin
// (dist/src/cli/main.js) through the shell, which needs the file to be
// executable (scripts/bin-mode.mjs sets that after the build).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('npx raftkv from the repository root', () => {
  it('runs the command: the bin is executable after the build', () => {
    assert.ok((statSync(new URL('../../../dist/src/cli/main.js', import.meta.url)).mode & 0o111) !== 0, 'dist/src/cli/main.js is not executable');
    const r = spawnSync('npx', ['--no', 'raftkv', 'serve', '--help'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `npx raftkv serve --help exited ${r.status}: ${r.stderr}`);
    assert.match(r.stdout, /usage: raftkv serve/);
  });
});
