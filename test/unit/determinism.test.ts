// The Raft core is a pure, deterministic state machine: no clock, timers,
// unseeded randomness, process access or I/O (docs/raft.md). This file
// scans the core's source for anything that would break that, and checks
// that a seed reproduces a run message for message.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { Message } from '../../src/raft/types.js';
import { ManualCluster } from '../../src/sim/manual.js';

/** src/raft in the source tree, found by walking up from this file (it runs from dist/test/unit). */
function findRaftSourceDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'src', 'raft');
    if (existsSync(join(candidate, 'raft.ts'))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`src/raft/raft.ts not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/**
 * Removes comments, keeping code and string literals (import specifiers are
 * strings). Code inside template-literal substitutions is kept as code.
 */
export function stripComments(src: string): string {
  let out = '';
  let i = 0;
  // A stack of contexts: 'code' (with the brace depth at which a template substitution closes) or 'template'.
  const stack: { kind: 'code' | 'template'; depth: number }[] = [{ kind: 'code', depth: 0 }];
  let depth = 0;
  while (i < src.length) {
    const top = stack[stack.length - 1]!;
    const c = src[i]!;
    const next = src[i + 1];
    if (top.kind === 'template') {
      if (c === '\\') {
        out += src.slice(i, i + 2);
        i += 2;
      } else if (c === '`') {
        out += c;
        stack.pop();
        i++;
      } else if (c === '$' && next === '{') {
        out += '${';
        depth++;
        stack.push({ kind: 'code', depth });
        i += 2;
      } else {
        out += c;
        i++;
      }
      continue;
    }
    if (c === '/' && next === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end === -1 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ''); // keep line numbers
      i = stop;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else if (c === '`') {
      out += c;
      stack.push({ kind: 'template', depth: 0 });
      i++;
    } else if (c === '{') {
      depth++;
      out += c;
      i++;
    } else if (c === '}') {
      if (stack.length > 1 && top.depth === depth) stack.pop(); // end of a template substitution
      depth--;
      out += c;
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const FORBIDDEN: { what: string; re: RegExp }[] = [
  { what: 'Date.now', re: /\bDate\s*\.\s*now\b/ },
  { what: 'new Date', re: /\bnew\s+Date\b/ },
  { what: 'Math.random', re: /\bMath\s*\.\s*random\b/ },
  { what: 'performance.now', re: /\bperformance\s*\.\s*now\b/ },
  { what: 'setTimeout/setInterval/setImmediate', re: /\bset(?:Timeout|Interval|Immediate)\b/ },
  { what: 'process.', re: /\bprocess\s*\./ },
  { what: 'require(', re: /\brequire\s*\(/ },
  { what: 'crypto randomness', re: /\bcrypto\s*\.|\bgetRandomValues\b|\brandomUUID\b/ },
];

/** Module specifiers of static imports/exports, side-effect imports and dynamic imports. */
function importSpecifiers(code: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /\b(?:import|export)\b[^'"`;]*?\bfrom\s*(['"])([^'"]+)\1/g,
    /\bimport\s*(['"])([^'"]+)\1/g,
    /\bimport\s*\(\s*(['"`])([^'"`]+)\1/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) specs.push(m[2]!);
  // A dynamic import of a computed path cannot be checked: forbid it.
  if (/\bimport\s*\(\s*[^'"`\s]/.test(code)) specs.push('<computed dynamic import>');
  return specs;
}

/** Every determinism problem in one source file, as "file:line: what". */
export function problems(file: string, src: string, raftDir: string): string[] {
  const code = stripComments(src);
  const found: string[] = [];
  const lines = code.split('\n');
  lines.forEach((line, k) => {
    for (const { what, re } of FORBIDDEN) if (re.test(line)) found.push(`${file}:${k + 1}: ${what}`);
  });
  for (const spec of importSpecifiers(code)) {
    if (spec.startsWith('node:')) {
      found.push(`${file}: imports the Node.js module ${spec}`);
      continue;
    }
    if (!spec.startsWith('./') && !spec.startsWith('../')) {
      found.push(`${file}: imports ${spec}, a package outside src/raft`);
      continue;
    }
    const target = resolve(raftDir, spec);
    const rel = relative(raftDir, target);
    if (rel.startsWith('..') || rel.includes(sep)) found.push(`${file}: imports ${spec}, outside src/raft`);
  }
  return found;
}

describe('the Raft core is deterministic', () => {
  const raftDir = findRaftSourceDir();
  const files = readdirSync(raftDir)
    .filter((f) => f.endsWith('.ts'))
    .sort();

  it('finds the whole core to scan', () => {
    for (const f of ['types.ts', 'log.ts', 'storage.ts', 'progress.ts', 'inflights.ts', 'quorum.ts', 'confchange.ts', 'readOnly.ts', 'raft.ts', 'rawNode.ts']) {
      assert.ok(files.includes(f), `src/raft/${f} is missing`);
    }
  });

  it('src/raft/*.ts uses no clock, timer, unseeded randomness, process, require, Node.js module or outside import', () => {
    const found: string[] = [];
    let imports = 0;
    for (const f of files) {
      const src = readFileSync(join(raftDir, f), 'utf8');
      imports += importSpecifiers(stripComments(src)).length;
      found.push(...problems(f, src, raftDir));
    }
    assert.deepEqual(found, []);
    assert.ok(imports >= 15, `the import scan saw only ${imports} imports: is it working?`);
  });

  describe('the scanner itself', () => {
    const dir = '/x/src/raft';
    const bad: [string, string][] = [
      ['const t = Date.now();', 'Date.now'],
      ['const d = new Date();', 'new Date'],
      ['const r = Math.random() * 3;', 'Math.random'],
      ['const p = performance.now();', 'performance.now'],
      ['setTimeout(() => {}, 1);', 'setTimeout'],
      ['const h = setInterval(f, 5);', 'setInterval'],
      ['setImmediate(f);', 'setImmediate'],
      ['if (process.env.X) {}', 'process.'],
      ["const fs = require('fs');", 'require('],
      ['const id = crypto.randomUUID();', 'crypto'],
      ["import { readFileSync } from 'node:fs';", 'node:fs'],
      ["import 'node:os';", 'node:os'],
      ["const m = await import('node:fs');", 'node:fs'],
      ["import { Random } from '../sim/random.js';", '../sim/random.js'],
      ["export { x } from '../sim/random.js';", '../sim/random.js'],
      ["import lodash from 'lodash';", 'lodash'],
      ["import { x } from './sub/dir.js';", './sub/dir.js'],
      ['const m = await import(name);', 'computed'],
      ['const s = `${Date.now()}`;', 'Date.now'],
    ];
    for (const [src, what] of bad) {
      it(`catches: ${src}`, () => {
        const found = problems('t.ts', src, dir);
        assert.equal(found.length, 1, `expected one problem (${what}), got ${JSON.stringify(found)}`);
      });
    }

    it('ignores comments, and allows imports within src/raft', () => {
      const src = [
        '// Never call Date.now() or Math.random() here.',
        '/* setTimeout(process.exit) */',
        "import { a } from './log.js';",
        "import type { B } from './types.js';",
        "export * from './errors.js';",
        'const s = `a ${1 + 2} b`; // new Date',
        "const url = 'http://example.com/'; // a string with // inside",
      ].join('\n');
      assert.deepEqual(problems('t.ts', src, dir), []);
      assert.deepEqual(importSpecifiers(stripComments(src)), ['./log.js', './types.js', './errors.js']);
    });
  });
});

/** A serialisable view of a message (byte arrays as plain arrays). */
function serialise(m: Message): string {
  return JSON.stringify(m, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v));
}

/**
 * A run driven only by time: five nodes tick in turn, so who times out
 * first (and so every later message) depends on the seeded election
 * timeouts. Proposals go to whoever leads, and a node crashes and restarts.
 */
function run(seed: number): { messages: string[]; leaders: string[] } {
  const c = ManualCluster.withVoters(5, {}, seed);
  const messages: string[] = [];
  const leaders: string[] = [];
  for (let step = 0; step < 200; step++) {
    for (const id of c.ids()) if (c.node(id).up) c.tick(id);
    for (const m of c.deliver()) messages.push(serialise(m));
    const lead = c.leader();
    if (lead !== undefined) {
      leaders.push(`${step}:${lead}@${c.raw(lead).raft.term}`);
      if (step % 7 === 0) c.propose(lead, `cmd-${step}`);
      if (step === 60) c.crash(lead);
    }
    if (step === 100) for (const id of c.ids()) if (!c.node(id).up) c.restart(id);
  }
  return { messages, leaders };
}

describe('seeded runs are reproducible', () => {
  it('two runs with the same seed send identical message sequences', () => {
    for (const seed of [1, 2, 99]) {
      const a = run(seed);
      const b = run(seed);
      assert.ok(a.messages.length > 500, `seed ${seed}: only ${a.messages.length} messages: the run did too little`);
      assert.ok(new Set(a.leaders.map((l) => l.split('@')[1])).size >= 2, `seed ${seed}: expected a second term after the crash`);
      assert.deepEqual(a.messages, b.messages, `seed ${seed}`);
      assert.deepEqual(a.leaders, b.leaders, `seed ${seed}`);
    }
  });

  it('the seed matters: different seeds give different runs', () => {
    const runs = [1, 2, 3, 4].map((s) => run(s).messages.join('\n'));
    assert.ok(new Set(runs).size > 1, 'four seeds produced the same run: the randomness is not seeded');
  });
});
