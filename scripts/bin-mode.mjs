#!/usr/bin/env node
// Makes the files package.json names as commands ("bin") executable, after
// the build wrote them (tsc writes 0644). npm sets this mode itself when it
// installs raftkv as a dependency, but not in raftkv's own checkout, where
// `npx raftkv` runs dist/src/cli/main.js directly and the shell needs it.

import { chmodSync, readFileSync, statSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const bins = typeof pkg.bin === 'string' ? [pkg.bin] : Object.values(pkg.bin ?? {});
for (const bin of bins) {
  const path = new URL(`../${bin}`, import.meta.url);
  chmodSync(path, statSync(path).mode | 0o111);
}
