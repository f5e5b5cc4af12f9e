// Simulator speed: events/s and seeds/s of a seed sweep, and what that means
// for a 100,000-seed soak.
//
// 1. In process, single thread: seeds 1..N (default 100) at the default 2000
//    ticks with all faults, run the way a sweep worker runs them
//    (src/cli/simWorker.ts: default options, traceBuffer 1). Median over runs.
//    Same-run references: the same seeds with no faults (what the faults
//    cost), and N seeds spread over 1..100,000 (whether seeds 1..N are
//    representative of the soak's range).
// 2. End to end: `node dist/src/cli/main.js sim --seeds 1-400 --quiet`
//    (worker threads, one per core), wall time, median over runs. As same-run
//    references: the same command with --workers 1 (the speed-up of 2
//    workers over 1), and a probe of how many cores two busy threads actually
//    get just before each run (on a shared machine another tenant may hold
//    one, and then no sweep can scale).
// 3. The extrapolated wall time of `npm run soak` (100,000 seeds on 2 worker
//    threads), goal under an hour: from 2 x the single-thread rates (what 2
//    free cores give) and from the CLI's rate as measured.
//
// Failing seeds are left out of the numbers and listed (a failing run stops
// early and would make the simulator look fast).
//
// Flags: --seeds N (100) --runs N (3) --ticks N (2000) --cli-seeds N (400)
// --cli-runs N (3) --no-cli --no-references --soak N (100000) --json
// (--no-references also skips the --workers 1 runs and the core probe)

import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { DEFAULT_OPTIONS, Simulator, type SimOptions } from '../src/sim/index.js';
import {
  type Summary,
  runMain,
  checkFlags,
  cpuMeter,
  loadNow,
  pct,
  intArg,
  machine,
  now,
  out,
  parseArgs,
  progress,
  range,
  secs,
  si,
  summarize,
  table,
} from './harness.js';

interface SweepRun {
  readonly ms: number;
  readonly seeds: number;
  readonly events: number;
  readonly eventsPerSec: number;
  readonly seedsPerSec: number;
  /** Seeds that failed: left out of the numbers above (a failing run stops early and would look fast). */
  readonly failed: readonly string[];
  /** CPU time over wall time (see cpuMeter). */
  readonly cpu: number;
}

/** Runs the given seeds one after another on this thread, as a sweep worker does. */
function sweep(seeds: readonly number[], options: Omit<SimOptions, 'seed'>): SweepRun {
  // No forced GC here: a full GC before a sweep makes it ~25% slower (V8
  // probably shrinks its young generation, which then has to grow again).
  let events = 0;
  let ms = 0;
  let ok = 0;
  const failed: string[] = [];
  const meter = cpuMeter();
  for (const seed of seeds) {
    const t0 = now();
    const r = new Simulator({ ...options, seed, traceBuffer: 1 }).run();
    const dt = now() - t0;
    if (r.violation) {
      failed.push(`${seed} (${r.violation.property})`);
      continue;
    }
    ms += dt;
    ok++;
    events += r.stats.events;
  }
  const cpu = meter.stop();
  if (ok === 0) throw new Error('every seed failed: nothing to measure');
  return { ms, seeds: ok, events, eventsPerSec: (events / ms) * 1000, seedsPerSec: (ok / ms) * 1000, failed, cpu };
}

interface CliRun {
  /** Wall time of the whole command, node startup included. */
  readonly wallMs: number;
  /** The sweep's own time, from its final line. */
  readonly sweptMs: number;
  readonly events: number;
  readonly swept: number;
  /** "seed N FAILED: ..." lines: the sweep stopped early (and shrank the failure), so its time is not comparable. */
  readonly failures: readonly string[];
}

function runCli(seeds: number, workers?: number): CliRun {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const extra = workers === undefined ? [] : ['--workers', String(workers)];
  const t0 = now();
  const r = spawnSync(process.execPath, [cli, 'sim', '--seeds', `1-${seeds}`, '--quiet', ...extra], { encoding: 'utf8' });
  const wallMs = now() - t0;
  // "swept 400 of 400 seeds (...) in 18.2 s: 0 failed; 12345 events (678k events/s)"
  const m = /swept (\d+) of (\d+) seeds .* in ([\d.]+) s: (\d+) failed; (\d+) events/.exec(r.stdout);
  if (!m) throw new Error(`unexpected output from raftkv sim (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  if (Number(m[1]) !== seeds && Number(m[4]) === 0) throw new Error(`raftkv sim swept only ${m[1]} of ${seeds} seeds:\n${r.stdout}`);
  // A failure stops the sweep early and adds a shrink: the timing is then not comparable.
  const failures = r.stdout.split('\n').filter((l) => /^seed \d+ FAILED/.test(l));
  return { wallMs, sweptMs: Number(m[3]) * 1000, events: Number(m[5]), swept: Number(m[1]), failures };
}

function cpuRange(xs: readonly SweepRun[]): string {
  const s = summarize(xs.map((x) => x.cpu));
  return `${pct(s.min)}–${pct(s.max)}`;
}

function hours(ms: number): string {
  const m = ms / 60_000;
  return m < 90 ? `${m.toFixed(0)} min` : `${(m / 60).toFixed(1)} h`;
}

/**
 * How many cores this process can actually use right now: the same busy
 * loop on 1 worker thread, then on `n` at once. On a shared machine another
 * tenant may hold a core, and then no sweep can scale, whatever its code.
 */
function probeCores(n: number): number {
  const code = `
    const { workerData } = require('node:worker_threads');
    let x = 0;
    for (let i = 0; i < 2e8; i++) x = (x + i * 7) % 1000003;
    const done = new Int32Array(workerData);
    Atomics.add(done, 0, x >= 0 ? 1 : 0);
    Atomics.notify(done, 0);`;
  const run = (k: number): number => {
    const sab = new SharedArrayBuffer(4);
    const done = new Int32Array(sab);
    const t0 = now();
    const ws = Array.from({ length: k }, () => new Worker(code, { eval: true, workerData: sab }));
    // Wait synchronously (Atomics) so that nothing else runs on this thread meanwhile.
    for (let v = Atomics.load(done, 0); v < k; v = Atomics.load(done, 0)) Atomics.wait(done, 0, v, 1000);
    const ms = now() - t0;
    for (const w of ws) void w.terminate();
    return ms;
  };
  run(1); // warm-up: worker start-up, JIT
  const t1 = run(1);
  const tn = run(n);
  return (n * t1) / tn;
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  checkFlags(args, ['seeds', 'runs', 'ticks', 'cli-seeds', 'cli-runs', 'soak', 'no-cli', 'no-references', 'json']);
  const nSeeds = intArg(args, 'seeds', 100);
  const runs = intArg(args, 'runs', 3);
  const ticks = intArg(args, 'ticks', DEFAULT_OPTIONS.ticks);
  const cliSeeds = intArg(args, 'cli-seeds', 400);
  const cliRuns = intArg(args, 'cli-runs', 3);
  const soak = intArg(args, 'soak', 100_000);
  const doCli = args.get('no-cli') !== true;
  const refs = args.get('no-references') !== true;
  const workers = availableParallelism();

  const all: Omit<SimOptions, 'seed'> = { ...DEFAULT_OPTIONS, ticks };
  const none: Omit<SimOptions, 'seed'> = { ...DEFAULT_OPTIONS, ticks, faults: new Set() };
  const first = Array.from({ length: nSeeds }, (_, i) => i + 1);
  const step = Math.max(1, Math.floor(soak / nSeeds));
  const spread = Array.from({ length: nSeeds }, (_, i) => 1 + i * step);

  // With --json, stdout carries only the JSON; the header goes to stderr.
  const head = args.get('json') === true ? progress : out;
  head(`simulator speed: ${nSeeds} seeds x ${ticks} ticks, all faults, single thread, ${runs} runs`);
  head(`  ${machine()}`);

  progress('warm-up (10 seeds)');
  sweep(first.slice(0, 10), all);

  const mainRuns: SweepRun[] = [];
  const noFaults: SweepRun[] = [];
  const spreadRuns: SweepRun[] = [];
  for (let r = 0; r < runs; r++) {
    const a = sweep(first, all);
    mainRuns.push(a);
    let line = `run ${r + 1}/${runs}: seeds 1-${nSeeds} ${secs(a.ms)} (${si(a.eventsPerSec)} events/s)`;
    if (refs) {
      const s = sweep(spread, all);
      spreadRuns.push(s);
      const n = sweep(first, none);
      noFaults.push(n);
      line += `, spread ${secs(s.ms)}, no faults ${secs(n.ms)}`;
    }
    progress(line);
  }

  // The CLI: `workers` threads, and (as the same-run reference) 1 thread, on the same seeds,
  // with a probe of how many cores the machine gives two busy threads just before.
  const cli: CliRun[] = [];
  const cli1: CliRun[] = [];
  const cores: number[] = [];
  if (doCli) {
    for (let r = 0; r < cliRuns; r++) {
      if (refs) cores.push(probeCores(workers));
      const c = runCli(cliSeeds);
      cli.push(c);
      let line =
        `cli run ${r + 1}/${cliRuns}: sim --seeds 1-${cliSeeds} --quiet: ${secs(c.wallMs)} wall` +
        (c.failures.length ? ` FAILED: ${c.failures.join('; ')}` : '');
      if (refs) {
        const c1 = runCli(cliSeeds, 1);
        cli1.push(c1);
        line += `; --workers 1: ${secs(c1.wallMs)}${c1.failures.length ? ' (FAILED)' : ''}; cores available: ${cores[r]!.toFixed(2)}`;
      }
      progress(line);
    }
  }

  const ev = summarize(mainRuns.map((x) => x.eventsPerSec));
  const sps = summarize(mainRuns.map((x) => x.seedsPerSec));
  const eventsPerSeed = mainRuns[0]!.events / mainRuns[0]!.seeds;
  const rows: string[][] = [
    [`seeds 1-${nSeeds}, all faults`, range(ev), range(sps, (n) => n.toFixed(2)), si(eventsPerSeed), '1.00', cpuRange(mainRuns)],
  ];
  let spreadS: Summary | undefined;
  if (refs) {
    spreadS = summarize(spreadRuns.map((x) => x.seedsPerSec));
    // Ratios pair each reference with the main sweep of the same run.
    const ratio = (xs: SweepRun[]) => summarize(xs.map((x, i) => x.seedsPerSec / mainRuns[i]!.seedsPerSec)).median.toFixed(2);
    rows.push([
      `${nSeeds} seeds spread over 1-${si(soak)}`,
      range(summarize(spreadRuns.map((x) => x.eventsPerSec))),
      range(spreadS, (n) => n.toFixed(2)),
      si(spreadRuns[0]!.events / spreadRuns[0]!.seeds),
      ratio(spreadRuns),
      cpuRange(spreadRuns),
    ]);
    rows.push([
      `seeds 1-${nSeeds}, no faults`,
      range(summarize(noFaults.map((x) => x.eventsPerSec))),
      range(summarize(noFaults.map((x) => x.seedsPerSec)), (n) => n.toFixed(2)),
      si(noFaults[0]!.events / noFaults[0]!.seeds),
      ratio(noFaults),
      cpuRange(noFaults),
    ]);
  }

  const failures = new Set<string>();
  for (const x of [...mainRuns, ...spreadRuns, ...noFaults]) for (const f of x.failed) failures.add(f);
  const cliFailures = new Set<string>();
  for (const c of [...cli, ...cli1]) for (const f of c.failures) cliFailures.add(f);
  const clean = (xs: CliRun[]) => xs.filter((c) => c.failures.length === 0);
  const cliWall = clean(cli).length ? summarize(clean(cli).map((c) => c.wallMs)) : undefined;
  const cli1Wall = clean(cli1).length ? summarize(clean(cli1).map((c) => c.wallMs)) : undefined;
  // Speed-up of `workers` threads over 1, paired within each run.
  const pairs = cli.map((c, i) => [c, cli1[i]] as const).filter(([a, b]) => b && !a.failures.length && !b.failures.length);
  const speedup = pairs.length ? summarize(pairs.map(([a, b]) => b!.wallMs / a.wallMs)) : undefined;
  const coresS = cores.length ? summarize(cores) : undefined;

  // Soak estimates, in ms.
  const soakInProcess = (soak / (2 * sps.median)) * 1000;
  const soakSpread = spreadS ? (soak / (2 * spreadS.median)) * 1000 : undefined;
  const soakOneWorkerX2 = cli1Wall ? ((cli1Wall.median / cliSeeds) * soak) / 2 : undefined;
  const soakMeasured = cliWall ? (cliWall.median / cliSeeds) * soak : undefined;

  if (args.get('json') === true) {
    out(
      JSON.stringify(
        {
          machine: machine(),
          seeds: nSeeds,
          ticks,
          runs,
          eventsPerSec: ev,
          seedsPerSec: sps,
          eventsPerSeed,
          spreadSeedsPerSec: spreadS,
          failedSeeds: [...failures],
          cli: cli.length
            ? { seeds: cliSeeds, workers, wallMs: cliWall, oneWorkerWallMs: cli1Wall, speedup, coresAvailable: coresS, failures: [...cliFailures] }
            : undefined,
          soak: { seeds: soak, inProcessX2Ms: soakInProcess, spreadX2Ms: soakSpread, oneWorkerX2Ms: soakOneWorkerX2, measuredMs: soakMeasured },
        },
        null,
        2,
      ),
    );
    return;
  }

  out('');
  out(
    table(['single thread, in process', 'events/s median (min–max)', 'seeds/s', 'events/seed', 'seeds/s vs main', 'cpu/wall'], rows),
  );
  out('cpu/wall: process CPU time over wall time, lowest–highest run (well below 100%: the run waited for a core).');
  if (failures.size > 0) {
    out(`FAILING SEEDS (left out of the numbers above; each is a bug to look at): ${[...failures].join(', ')}`);
  }
  if (cliWall) {
    out('');
    out(`raftkv sim --seeds 1-${cliSeeds} --quiet, end to end (node start-up included), median (min–max) of ${cli.length}:`);
    out(`  ${workers} workers (the default): ${range(cliWall, secs)}, ${(cliSeeds / (cliWall.median / 1000)).toFixed(2)} seeds/s`);
    if (cli1Wall && speedup) {
      out(`  --workers 1:           ${range(cli1Wall, secs)}, ${(cliSeeds / (cli1Wall.median / 1000)).toFixed(2)} seeds/s`);
      out(`  speed-up of ${workers} workers over 1: ${speedup.median.toFixed(2)}x (${speedup.min.toFixed(2)}–${speedup.max.toFixed(2)})`);
    }
    if (coresS) {
      out(
        `  cores available to ${workers} busy threads (probe just before each run): ${coresS.median.toFixed(2)} ` +
          `(${coresS.min.toFixed(2)}–${coresS.max.toFixed(2)})`,
      );
    }
  }
  if (cliFailures.size > 0) out(`CLI SWEEP FAILURES (those runs stopped early and shrank; left out): ${[...cliFailures].join(' | ')}`);

  out('');
  out(`soak of ${si(soak)} seeds on 2 worker threads (npm run soak; goal: under an hour):`);
  const row = (label: string, ms: number, note = '') => out(`  ${label.padEnd(54)} ${hours(ms).padStart(7)}${note}`);
  row(`2 x the in-process rate, seeds 1-${nSeeds}`, soakInProcess);
  if (soakSpread !== undefined) row(`2 x the in-process rate, seeds spread over 1-${si(soak)}`, soakSpread);
  if (soakOneWorkerX2 !== undefined) row(`2 x the CLI's 1-worker rate, seeds 1-${cliSeeds}`, soakOneWorkerX2);
  if (soakMeasured !== undefined) {
    row(`the CLI's ${workers}-worker rate as measured`, soakMeasured, coresS ? ` (${coresS.median.toFixed(2)} cores available)` : '');
  }
  const withTwoCores = Math.max(soakInProcess, soakSpread ?? 0, soakOneWorkerX2 ?? 0);
  const verdict = (ms: number) => (ms < 3_600_000 ? `MET (${hours(ms)})` : `NOT MET (${hours(ms)})`);
  out(`  goal with 2 free cores (slowest of the 2 x estimates): ${verdict(withTwoCores)}`);
  if (soakMeasured !== undefined) out(`  goal at the rate measured on this machine:             ${verdict(soakMeasured)}`);
  out(loadNow());
}

runMain(main);
