#!/usr/bin/env node
// Mutation tests: proof that the simulator's checks bite.
//
// Each test/mutants/NN-name.patch introduces one classic Raft bug into
// src/raft (the core) or src/storage (the persistence every simulated member
// runs on). For each patch this script makes a temporary copy of the
// repository (the files `git ls-files -co --exclude-standard` lists, so
// uncommitted work is included; node_modules is symlinked), applies the
// patch there with `git apply`, builds it with the local tsc, and sweeps the
// simulator over seeds 1-200. The sweep must fail: a mutant the simulator
// does not catch "survived", and the script exits non-zero. So does a patch
// that no longer applies or no longer builds (the code it mutates moved:
// update the patch).
//
// Before the mutants, the unmutated copy is swept the same way and must
// pass, so that "caught" means something.
//
// usage: node scripts/mutants.mjs [--seeds A-B] [--timeout SECONDS] [--unit] [--keep] [--no-baseline] [NAME...]
//   NAME       run only the mutants whose file name contains NAME
//   --seeds    the seeds to sweep (default 1-200)
//   --timeout  seconds a sweep may take before it counts as a failure (default 180)
//   --unit     also run the unit and scenario tests (dist/test/unit) on each
//              mutant and report whether they fail; informational only, the
//              verdict is the simulator's
//   --keep     keep the temporary copies (their paths are printed)
//
// Plain Node ESM, no dependencies. Nothing in the repository is modified.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MUTANT_DIR = join(ROOT, 'test', 'mutants');

// ---------------------------------------------------------------------------
// Arguments

const opts = { seeds: '1-200', timeoutSecs: 180, keep: false, baseline: true, unit: false, filters: [] };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) die(`${a} needs a value`);
      return v;
    };
    if (a === '--seeds') opts.seeds = value();
    else if (a === '--timeout') opts.timeoutSecs = Number(value());
    else if (a === '--keep') opts.keep = true;
    else if (a === '--unit') opts.unit = true;
    else if (a === '--no-baseline') opts.baseline = false;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: node scripts/mutants.mjs [--seeds A-B] [--timeout SECONDS] [--unit] [--keep] [--no-baseline] [NAME...]\n',
      );
      process.exit(0);
    } else if (a.startsWith('-')) die(`unknown flag ${a}`);
    else opts.filters.push(a);
  }
  if (!/^\d+-\d+$/.test(opts.seeds)) die(`--seeds must look like 1-200, got "${opts.seeds}"`);
  if (!(opts.timeoutSecs > 0)) die('--timeout must be a positive number of seconds');
}

function die(msg) {
  process.stderr.write(`mutants: ${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Helpers

// Git must act on the temporary copy, never on a repository named by the
// environment (e.g. when run from a git hook).
const gitEnv = { ...process.env };
for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_PREFIX']) delete gitEnv[k];

function run(cmd, args, cwd, extra = {}) {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...extra });
}

function output(r) {
  return `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}`.trim();
}

function indent(text, lines = 40) {
  const all = text.split('\n');
  const shown = all.length > lines ? [...all.slice(0, lines), `... (${all.length - lines} more lines)`] : all;
  return shown.map((l) => `    ${l}`).join('\n');
}

/** The repository's files: tracked and untracked, minus what .gitignore excludes. */
function repoFiles() {
  const r = run('git', ['ls-files', '-co', '--exclude-standard', '-z'], ROOT, { env: gitEnv });
  if (r.status !== 0) die(`git ls-files failed:\n${output(r)}`);
  // A tracked file deleted in the work tree is still listed: skip it.
  return r.stdout.split('\0').filter((f) => f !== '' && existsSync(join(ROOT, f)));
}

/** The code the simulator proves, which a mutant may patch: the core and the storage. */
const MUTABLE = ['src/raft/', 'src/storage/'];

/** The files a patch touches (from its diff headers), to check it stays in MUTABLE. */
function patchedPaths(text) {
  const paths = new Set();
  for (const line of text.split('\n')) {
    const m = /^(?:---|\+\+\+) (?:[ab]\/)?(\S+)/.exec(line);
    if (m && m[1] !== '/dev/null') paths.add(m[1]);
  }
  return [...paths];
}

/** The "# ..." lines before the diff: the first one names the bug. */
function patchSummary(text) {
  const first = text.split('\n').find((l) => l.startsWith('#'));
  return first ? first.replace(/^#\s*/, '').replace(/^Mutant:\s*/i, '') : '';
}

/**
 * Copies the repository's files once, so that the baseline and every
 * mutant start from the same snapshot even if the work tree changes while
 * this runs.
 */
function makePristine(base, files) {
  const dir = join(base, 'pristine');
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  return dir;
}

function makeCopy(base, name, pristine) {
  const dir = join(base, name);
  cpSync(pristine, dir, { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

function build(dir) {
  const tsc = join(ROOT, 'node_modules', '.bin', process.platform === 'win32' ? 'tsc.cmd' : 'tsc');
  return run(tsc, ['-p', '.'], dir);
}

/** Runs the unit and scenario tests in `dir`; returns "pass", "N failing" or "-". */
function unitTests(dir) {
  if (!existsSync(join(dir, 'dist', 'test', 'unit'))) return '-';
  const r = run(process.execPath, ['--test', '--test-reporter=tap', 'dist/test/unit'], dir, {
    timeout: opts.timeoutSecs * 1000,
    killSignal: 'SIGKILL',
  });
  if (r.status === 0) return 'pass';
  const m = /^# fail (\d+)$/m.exec(r.stdout ?? '');
  return m ? `${m[1]} failing` : 'fail';
}

/**
 * Sweeps the seeds in `dir`. Returns { status, failure?: { seed, property, detail }, text }.
 * The sweep prints "seed N FAILED: property: detail" for each failing seed
 * it ran and stops early; every seed below a failure has been handed out
 * and finishes, so the lowest failing seed it reports is the first one.
 */
function sweep(dir) {
  const r = run(
    process.execPath,
    ['dist/src/cli/main.js', 'sim', '--seeds', opts.seeds, '--quiet', '--no-shrink'],
    dir,
    { timeout: opts.timeoutSecs * 1000, killSignal: 'SIGKILL' },
  );
  const text = output(r);
  let failure;
  for (const m of (r.stdout ?? '').matchAll(/^seed (\d+) FAILED: ([\w-]+): (.*)$/gm)) {
    const f = { seed: Number(m[1]), property: m[2], detail: m[3] };
    if (!failure || f.seed < failure.seed) failure = f;
  }
  return { status: r.status, signal: r.signal, timedOut: r.error?.code === 'ETIMEDOUT', failure, text };
}

// ---------------------------------------------------------------------------
// Main

let patches = existsSync(MUTANT_DIR) ? readdirSync(MUTANT_DIR).filter((f) => f.endsWith('.patch')).sort() : [];
if (opts.filters.length > 0) patches = patches.filter((p) => opts.filters.some((f) => p.includes(f)));
if (patches.length === 0) die(opts.filters.length ? `no mutant matches ${opts.filters.join(', ')}` : `no patches in ${MUTANT_DIR}`);
if (!existsSync(join(ROOT, 'node_modules', '.bin', 'tsc'))) die('node_modules/.bin/tsc is missing: run npm install first');

const files = repoFiles();
const base = mkdtempSync(join(tmpdir(), 'raftkv-mutants-'));
const cleanup = () => {
  if (!opts.keep) rmSync(base, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

const rows = [];
let bad = 0;
let baselineFailed = false;
const started = Date.now();

try {
  const pristine = makePristine(base, files);
  process.stdout.write(
    `mutants: ${patches.length} patches from test/mutants, seeds ${opts.seeds}, a copy of ${files.length} files each\n`,
  );

  if (opts.baseline) {
    const t0 = Date.now();
    const dir = makeCopy(base, 'unmutated', pristine);
    const b = build(dir);
    if (b.status !== 0) {
      process.stdout.write(`the unmutated copy does not build:\n${indent(output(b))}\n`);
      baselineFailed = true;
    } else {
      const s = sweep(dir);
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      if (s.status !== 0) {
        process.stdout.write(
          `the unmutated code already fails the sweep (${secs} s): fix that first, or every mutant is "caught" for nothing\n` +
            `${indent(s.text)}\n`,
        );
        baselineFailed = true;
      } else {
        process.stdout.write(`baseline: the unmutated code passes seeds ${opts.seeds} (${secs} s)\n`);
      }
    }
  }

  for (const patch of baselineFailed ? [] : patches) {
    const name = patch.replace(/\.patch$/, '');
    const t0 = Date.now();
    const row = { name, seed: '-', property: '-', detail: '', secs: '', outcome: 'caught', unit: '' };
    rows.push(row);
    const done = (outcome, message) => {
      row.outcome = outcome;
      row.secs = ((Date.now() - t0) / 1000).toFixed(1);
      if (outcome !== 'caught') bad++;
      if (message) process.stdout.write(`${message}\n`);
      const what = outcome === 'caught' ? `caught at seed ${row.seed}: ${row.property}` : outcome.toUpperCase();
      process.stdout.write(`  ${name}: ${what} (${row.secs} s)\n`);
    };

    const patchPath = join(MUTANT_DIR, patch);
    const text = readFileSync(patchPath, 'utf8');
    row.summary = patchSummary(text);
    const outside = patchedPaths(text).filter((p) => !MUTABLE.some((dir) => p.startsWith(dir)));
    if (outside.length > 0) {
      done('invalid', `mutant ${patch} touches files outside ${MUTABLE.join(' and ')}: ${outside.join(', ')}`);
      continue;
    }
    const dir = makeCopy(base, name, pristine);
    // A repository of its own, so that git apply resolves paths against
    // this copy even if the temporary directory sits inside another repository.
    run('git', ['init', '-q'], dir, { env: gitEnv });
    const a = run('git', ['apply', '--whitespace=nowarn', patchPath], dir, { env: gitEnv });
    if (a.status !== 0) {
      done('did not apply', `mutant ${patch} DOES NOT APPLY (update it to the current source):\n${indent(output(a))}`);
      continue;
    }
    const b = build(dir);
    if (b.status !== 0) {
      done('did not build', `mutant ${patch} applies but DOES NOT BUILD:\n${indent(output(b))}`);
      continue;
    }
    const s = sweep(dir);
    if (opts.unit) row.unit = unitTests(dir);
    if (s.timedOut || s.signal) {
      done('timed out', `mutant ${patch}: the sweep did not finish within ${opts.timeoutSecs} s (${s.signal ?? ''})`);
    } else if (s.status === 0) {
      done('survived', `mutant ${patch} SURVIVED: every seed in ${opts.seeds} passed with the bug in place`);
    } else if (s.status === 1 && s.failure && s.failure.property === 'simulator-error') {
      // The harness itself threw (not a RaftError): that proves nothing about the checks.
      row.seed = String(s.failure.seed);
      row.property = s.failure.property;
      row.detail = s.failure.detail;
      done('crashed the simulator', `mutant ${patch} crashed the simulator instead of violating a property: ${s.failure.detail}`);
    } else if (s.status === 1 && s.failure) {
      row.seed = String(s.failure.seed);
      row.property = s.failure.property;
      row.detail = s.failure.detail;
      done('caught');
    } else {
      done('error', `mutant ${patch}: the sweep exited with status ${s.status} without reporting a failing seed:\n${indent(s.text)}`);
    }
  }
} finally {
  cleanup();
  if (opts.keep) process.stdout.write(`kept the temporary copies in ${base}\n`);
}
if (baselineFailed) process.exit(1);

// ---------------------------------------------------------------------------
// Report

const header = ['mutant', 'result', 'property', 'seconds', ...(opts.unit ? ['unit tests'] : [])];
const table = rows.map((r) => [
  r.name,
  r.outcome === 'caught' ? `caught at seed ${r.seed}` : r.outcome.toUpperCase(),
  r.property,
  r.secs,
  ...(opts.unit ? [r.unit] : []),
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
const line = (cells) => cells.map((c, i) => (i === 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
process.stdout.write(`\n${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
for (const row of table) process.stdout.write(`${line(row)}\n`);
for (const r of rows) {
  process.stdout.write(`\n${r.name}: ${r.summary}`);
  if (r.detail) process.stdout.write(`\n    seed ${r.seed}: ${r.property}: ${r.detail}`);
}
const total = ((Date.now() - started) / 1000).toFixed(1);
const caught = rows.filter((r) => r.outcome === 'caught').length;
process.stdout.write(`\n\n${caught} of ${rows.length} mutants caught in ${total} s${bad ? `; ${bad} NOT caught or broken` : ''}\n`);
process.exit(bad > 0 ? 1 : 0);
