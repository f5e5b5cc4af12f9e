#!/usr/bin/env node
// `npm run bench -- <name> [flags]`: runs the benchmark dist/bench/<name>.js
// (built from bench/<name>.ts by `npm run build`). With no name, lists the
// benchmarks. Flags after the name go to the benchmark (e.g. --runs 3).
//
//   npm run bench                       list the benchmarks
//   npm run bench -- core               run one
//   npm run bench -- core --runs 3      pass flags to it
//   npm run bench -- core --help        what it measures, and its flags
//   npm run bench -- --profile core --runs 1 --batches 256
//                                       run it under `node --cpu-prof` and
//                                       print the top functions by self time
//
// Benchmarks run in a child node with --expose-gc, so that they can collect
// garbage between runs and measure the heap.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const distDir = join(root, 'dist', 'bench');
const srcDir = join(root, 'bench');
/** Modules in bench/ that are helpers, not benchmarks. */
const HELPERS = new Set(['harness', 'rawdisk']);

function fail(msg, code = 2) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(code);
}

/** The benchmarks that exist in source or in dist, with the first line of their header comment. */
function benchmarks() {
  const names = new Set();
  for (const [dir, ext] of [
    [srcDir, '.ts'],
    [distDir, '.js'],
  ]) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      if (f.endsWith(ext) && !f.endsWith('.d.ts')) names.add(basename(f, ext));
    }
  }
  return [...names]
    .filter((n) => !HELPERS.has(n))
    .sort()
    .map((name) => {
      const file = existsSync(join(srcDir, `${name}.ts`)) ? join(srcDir, `${name}.ts`) : join(distDir, `${name}.js`);
      const first = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith('// '));
      return { name, about: first ? first.slice(3).replace(/:.*$/, '') : '', built: existsSync(join(distDir, `${name}.js`)) };
    });
}

function usage(list) {
  const rows = list.map((b) => `  ${b.name.padEnd(8)} ${b.about}${b.built ? '' : '  (not built: run npm run build)'}`);
  return (
    'usage: npm run bench -- [--profile] <name> [flags]\n\n' +
    `benchmarks:\n${rows.join('\n') || '  (none found in bench/)'}\n\n` +
    'Each benchmark documents its flags at the top of bench/<name>.ts; see docs/bench.md.\n'
  );
}

const argv = process.argv.slice(2);
let profile = false;
while (argv[0] === '--profile') {
  profile = true;
  argv.shift();
}
const [name, ...rest] = argv;
const list = benchmarks();

if (name === undefined || name === '--help' || name === '-h' || name === 'help' || name === 'list') {
  process.stdout.write(usage(list));
  process.exit(0);
}
if (name.startsWith('-')) fail(`expected a benchmark name before flags, got "${name}"\n\n${usage(list)}`);
const bench = list.find((b) => b.name === name);
if (!bench) {
  fail(`unknown benchmark "${name}"; available: ${list.map((b) => b.name).join(', ') || 'none'}\n\n${usage(list)}`);
}
if (rest.includes('--help') || rest.includes('-h')) {
  // A benchmark documents itself in its header comment.
  const file = existsSync(join(srcDir, `${name}.ts`)) ? join(srcDir, `${name}.ts`) : join(distDir, `${name}.js`);
  const header = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('//')) break;
    header.push(line.replace(/^\/\/ ?/, ''));
  }
  process.stdout.write(`${header.join('\n')}\n`);
  process.exit(0);
}
const script = join(distDir, `${name}.js`);
if (!existsSync(script)) fail(`${relative(root, script)} does not exist: run \`npm run build\` first`);
const source = join(srcDir, `${name}.ts`);
if (existsSync(source) && statSync(source).mtimeMs > statSync(script).mtimeMs) {
  process.stderr.write(`bench: warning: bench/${name}.ts is newer than its build; run \`npm run build\`\n`);
}

const nodeFlags = ['--expose-gc'];
let profDir;
if (profile) {
  profDir = join(tmpdir(), 'raftkv-bench-profiles', `${name}-${Date.now()}`);
  mkdirSync(profDir, { recursive: true });
  nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${profDir}`);
}
const r = spawnSync(process.execPath, [...nodeFlags, script, ...rest], { stdio: 'inherit', cwd: root });
if (r.error) fail(`could not run ${script}: ${r.error.message}`, 1);
if (profile && r.status === 0) {
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  for (const f of files) process.stdout.write(summarizeProfile(join(profDir, f)));
}
process.exit(r.status ?? 1);

// ---------------------------------------------------------------------------
// CPU profile summary: self and total time per function, mapped back to the
// TypeScript source through the source maps that tsc writes next to dist/.

function summarizeProfile(file) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const maps = new Map();
  const keyOf = new Map();
  const key = (n) => {
    let k = keyOf.get(n.id);
    if (k === undefined) {
      const cf = n.callFrame;
      const fn = cf.functionName || '(anonymous)';
      k = cf.url ? `${fn}  ${location(cf.url, cf.lineNumber, cf.columnNumber, maps)}` : fn;
      keyOf.set(n.id, k);
    }
    return k;
  };
  const self = new Map();
  const total = new Map();
  const perFile = new Map();
  let all = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0;
    const id = prof.samples[i];
    const n = byId.get(id);
    if (!n) continue;
    all += dt;
    const k = key(n);
    self.set(k, (self.get(k) ?? 0) + dt);
    const f = k.includes('  ') ? k.split('  ')[1].replace(/:\d+$/, '') : k;
    perFile.set(f, (perFile.get(f) ?? 0) + dt);
    const seen = new Set();
    for (let p = id; p !== undefined; p = parent.get(p)) {
      const pk = key(byId.get(p));
      if (seen.has(pk)) continue;
      seen.add(pk);
      total.set(pk, (total.get(pk) ?? 0) + dt);
    }
  }
  const pct = (x) => `${((x / all) * 100).toFixed(1).padStart(5)}%`;
  const top = (m, n) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `  ${pct(v)}  ${k}`)
      .join('\n');
  const totals = new Map([...total].filter(([k]) => /src\/(raft|storage)\//.test(k)));
  return (
    `\nprofile ${file} (${(all / 1e6).toFixed(1)} s sampled)\n` +
    `\ntop functions by self time:\n${top(self, 30)}\n` +
    `\nsrc/raft and src/storage functions by total time (self + callees):\n${top(totals, 20)}\n` +
    `\nby file (self time):\n${top(perFile, 15)}\n` +
    `\nOpen the .cpuprofile in Chrome DevTools (Performance tab) for the call tree.\n`
  );
}

/** "src/raft/log.ts:123" for a dist/ URL and 0-based line/column, via its source map when present. */
function location(url, line, col, maps) {
  let path = url;
  try {
    if (url.startsWith('file://')) path = fileURLToPath(url);
  } catch {
    /* keep the url */
  }
  if (!path.startsWith(root)) return `${url.replace(/^node:/, 'node:')}:${line + 1}`;
  let m = maps.get(path);
  if (m === undefined) {
    m = loadMap(path);
    maps.set(path, m);
  }
  if (m) {
    const seg = m.lookup(line, col);
    if (seg) return `${relative(root, seg.source)}:${seg.line + 1}`;
  }
  return `${relative(root, path)}:${line + 1}`;
}

function loadMap(path) {
  const mapPath = `${path}.map`;
  if (!existsSync(mapPath)) return null;
  const sm = JSON.parse(readFileSync(mapPath, 'utf8'));
  const sources = sm.sources.map((s) => resolve(dirname(mapPath), sm.sourceRoot ?? '', s));
  const lines = decodeMappings(sm.mappings);
  return {
    lookup(line, col) {
      const segs = lines[line];
      if (!segs || segs.length === 0) return null;
      let best = segs[0];
      for (const s of segs) if (s[0] <= col) best = s;
      return best.length >= 4 ? { source: sources[best[1]], line: best[2] } : null;
    },
  };
}

/** Decodes a source map's VLQ "mappings" into [genCol, srcIdx, srcLine, srcCol] per generated line. */
function decodeMappings(mappings) {
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const val = new Map([...B64].map((c, i) => [c, i]));
  const out = [];
  let src = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const line of mappings.split(';')) {
    const segs = [];
    let genCol = 0;
    for (const seg of line.split(',')) {
      if (!seg) continue;
      const fields = [];
      let shift = 0;
      let acc = 0;
      for (const ch of seg) {
        const d = val.get(ch);
        acc += (d & 31) << shift;
        if (d & 32) {
          shift += 5;
        } else {
          fields.push(acc & 1 ? -(acc >>> 1) : acc >>> 1);
          acc = 0;
          shift = 0;
        }
      }
      genCol += fields[0];
      if (fields.length >= 4) {
        src += fields[1];
        srcLine += fields[2];
        srcCol += fields[3];
        segs.push([genCol, src, srcLine, srcCol]);
      } else {
        segs.push([genCol]);
      }
    }
    out.push(segs);
  }
  return out;
}
