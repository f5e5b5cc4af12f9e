// Shared helpers for the benchmarks in bench/: repeated runs, summary
// statistics (median/min/max), a small argument parser, heap sampling and
// plain-text formatting.
//
// Benchmarks are programs, not tests: they print numbers and never fail on a
// threshold (a noisy 2-core machine would make such a test flaky). They fail
// only when a run did not do its work (e.g. a node did not apply every
// entry), so a number can never come from a run that did nothing.

import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new RangeError('summarize: no samples');
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

/**
 * The p-th percentile (0..100) of `sorted` (ascending), nearest rank: the
 * smallest sample with at least p% of the samples at or below it.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile: no samples');
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** The median of `samples`. */
export function median(samples: readonly number[]): number {
  return summarize(samples).median;
}

/** Runs the garbage collector if node was started with --expose-gc (scripts/bench.mjs does). */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

export function hasGc(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === 'function';
}

/** V8's used heap, in bytes. Cheap enough to call every few thousand iterations. */
export function heapUsed(): number {
  return getHeapStatistics().used_heap_size;
}

/**
 * Tracks the peak of heapUsed() over a run. Sample it from the benchmark's
 * loop every so often; it is a lower bound on the true peak (the heap may
 * peak between samples).
 */
export class HeapPeak {
  peak = 0;
  sample(): void {
    const h = heapUsed();
    if (h > this.peak) this.peak = h;
  }
}

/**
 * Measures CPU time against wall time: cpu() then stop() gives this
 * process's CPU time (user + system, all threads) over the wall time, as a
 * fraction. Well below 1 on a single-threaded benchmark means the process
 * was waiting for a core (another process was running): that run is noisy.
 * GC helper threads can push it a little above 1.
 */
export function cpuMeter(): { stop(): number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return {
    stop() {
      const c = process.cpuUsage(c0);
      const wall = performance.now() - t0;
      return (c.user + c.system) / 1000 / wall;
    },
  };
}

export function pct(x: number): string {
  return Number.isNaN(x) ? '–' : `${(x * 100).toFixed(0)}%`;
}

/** Milliseconds since an arbitrary origin (monotonic). */
export function now(): number {
  return performance.now();
}

// ---------------------------------------------------------------------------
// Arguments: `--name value` or `--flag`, e.g. `npm run bench -- core --runs 3`.

/** A bad flag: reported in one line, without a stack trace. */
export class FlagError extends Error {}

/** Runs a benchmark's main; bad flags end in a one-line message (exit status 2), not a stack trace. */
export function runMain(main: () => void): void {
  try {
    main();
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    process.stderr.write(`${e.message}\n`);
    process.exitCode = 2;
  }
}

/**
 * runMain for a benchmark that waits on the disk: bad flags end in a
 * one-line message (exit status 2); any other error (a run that did not do
 * its work) prints its stack and exits with status 1.
 */
export function runMainAsync(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    if (e instanceof FlagError) {
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}

export function parseArgs(argv: readonly string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new FlagError(`unexpected argument "${a}" (flags look like --runs 5)`);
    const eq = a.indexOf('=');
    if (eq > 0) {
      out.set(a.slice(2, eq), a.slice(eq + 1));
    } else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) {
      out.set(a.slice(2), argv[++i]!);
    } else {
      out.set(a.slice(2), true);
    }
  }
  return out;
}

/** Throws on a flag the benchmark does not know (a typo would otherwise be ignored silently). */
export function checkFlags(args: Map<string, string | true>, known: readonly string[]): void {
  for (const k of args.keys()) {
    if (!known.includes(k)) throw new FlagError(`unknown flag --${k}; known: ${known.map((f) => `--${f}`).join(' ')}`);
  }
}

export function intArg(args: Map<string, string | true>, name: string, dflt: number): number {
  const v = args.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v === true || !Number.isSafeInteger(n) || n < 1) throw new FlagError(`--${name} must be a positive integer, got ${String(v)}`);
  return n;
}

/** A positive number, fractions allowed (e.g. --seconds 0.5). */
export function numArg(args: Map<string, string | true>, name: string, dflt: number): number {
  const v = args.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v === true || !Number.isFinite(n) || n <= 0) throw new FlagError(`--${name} must be a positive number, got ${String(v)}`);
  return n;
}

/** A string flag's value (an error if given without one). */
export function strArg(args: Map<string, string | true>, name: string): string | undefined {
  const v = args.get(name);
  if (v === true) throw new FlagError(`--${name} needs a value`);
  return v;
}

export function intListArg(args: Map<string, string | true>, name: string, dflt: readonly number[]): number[] {
  const v = args.get(name);
  if (v === undefined) return [...dflt];
  if (v === true) throw new FlagError(`--${name} needs a comma-separated list of integers`);
  return v.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 1) throw new FlagError(`--${name}: "${s}" is not a positive integer`);
    return n;
  });
}

// ---------------------------------------------------------------------------
// Formatting

/** 1234567 -> "1.23M", 12345 -> "12.3k". */
export function si(n: number, digits = 3): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toPrecision(digits)}G`;
  if (a >= 1e6) return `${(n / 1e6).toPrecision(digits)}M`;
  if (a >= 1e3) return `${(n / 1e3).toPrecision(digits)}k`;
  return n.toPrecision(digits);
}

export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(0)} MiB`;
}

/** Bytes per second as MB/s (10^6, as disks are rated). */
export function mbps(bytesPerSec: number): string {
  return `${(bytesPerSec / 1e6).toFixed(0)} MB/s`;
}

/** A latency in milliseconds, as µs below 1 ms. */
export function latency(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`;
}

export function secs(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 1000).toFixed(2)} s`;
}

/** "median (min–max)" of a summary, each value formatted by `f`. */
export function range(s: Summary, f: (n: number) => string = si): string {
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** A plain-text table with left-aligned first column and right-aligned others. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

/** One line describing where and when the numbers were taken. */
export function machine(): string {
  const c = cpus();
  const model = c[0]?.model.trim() ?? 'unknown CPU';
  return (
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · node ${process.version} · ` +
    `${availableParallelism()} cores (${model}) · ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM · ` +
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}` +
    (hasGc() ? '' : ' · (no --expose-gc: heap numbers include garbage)')
  );
}

/** The load average now, to print at the end of a benchmark: high means other work shared the cores. */
export function loadNow(): string {
  return `load average at the end: ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} (1, 5, 15 min) on ${availableParallelism()} cores`;
}

export function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

/** Progress to stderr (keeps stdout clean for the results). */
export function progress(s: string): void {
  process.stderr.write(`  ${s}\n`);
}
