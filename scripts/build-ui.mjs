#!/usr/bin/env node
// Builds the visualiser into dist/ui/ (index.html, app.js, app.css): type-
// checks the page's DOM code (tsconfig.ui.json), then bundles
// src/ui/web/main.ts, the simulator and src/raft with esbuild into one
// minified script (Node-only dependencies replaced by src/ui/web/shims/).
// No external URLs: the page works offline, from file://
// too (sandbox mode). Fails loudly: any error exits non-zero.

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'ui');
const started = Date.now();

// The compiler's bin (TypeScript's package exports do not expose the path).
const tsPackage = createRequire(import.meta.url).resolve('typescript/package.json');
const tsc = join(dirname(tsPackage), JSON.parse(readFileSync(tsPackage, 'utf8')).bin.tsc);
const check = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.ui.json')], { stdio: 'inherit' });
if (check.status !== 0) {
  console.error('build-ui: the page does not type-check (tsconfig.ui.json)');
  process.exit(check.status ?? 1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await esbuild.build({
  entryPoints: [
    { in: join(root, 'src/ui/web/main.ts'), out: 'app' },
    { in: join(root, 'src/ui/web/app.css'), out: 'app' },
  ],
  outdir: out,
  bundle: true,
  format: 'iife',
  // The page may reach Node-only code only by mistake: on platform 'browser'
  // an import of a Node built-in fails to resolve, failing the build.
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  // src/storage/crc.ts (reached through the simulator's disks) uses a native
  // CRC and Node's Buffer for long records: the page gets JavaScript stand-ins.
  inject: [join(root, 'src/ui/web/shims/buffer.ts')],
  plugins: [
    {
      name: 'browser-shims',
      setup(b) {
        b.onResolve({ filter: /^@node-rs\/crc32$/ }, () => ({ path: join(root, 'src/ui/web/shims/crc32.ts') }));
      },
    },
  ],
});
if (result.errors.length > 0) process.exit(1);

writeFileSync(
  join(out, 'index.html'),
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>raftkv visualiser</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="app.css">
</head>
<body>
<noscript>The raftkv visualiser needs JavaScript.</noscript>
<script src="app.js"></script>
</body>
</html>
`,
);

const sizes = Object.entries(result.metafile.outputs)
  .filter(([file]) => !file.endsWith('.map'))
  .map(([file, o]) => `${file.split('/').pop()} ${(o.bytes / 1024).toFixed(0)} KiB`);
console.log(`build-ui: dist/ui/ (${sizes.join(', ')}) in ${Date.now() - started} ms`);
