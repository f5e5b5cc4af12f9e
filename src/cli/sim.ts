// `raftkv sim`: run the deterministic simulator for one seed (with a
// summary, or the full trace), or sweep a range of seeds on all cores. A
// failure prints the seed, the violated property, the events that led to
// it, and a shrunk reproduction; the exit status is then 1.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import {
  type FaultKind,
  type SimOptions,
  type SimResult,
  type TraceRecord,
  DEFAULT_OPTIONS,
  FAULT_KINDS,
  Simulator,
  TICK_US,
  describeFaults,
  describeSwarm,
  formatRecord,
  parseFaults,
} from '../sim/index.js';
import { type FlagSpec, UsageError, formatHelp, parseFlags } from './args.js';

export const SIM_FLAGS: Record<string, FlagSpec> = {
  seed: { kind: 'integer', help: 'run one seed', default: '1' },
  seeds: { kind: 'string', help: 'sweep a range of seeds, e.g. 1-1000' },
  nodes: { kind: 'integer', help: 'nodes in the cluster, 1 to 9 (default: the seed picks)' },
  ticks: { kind: 'integer', help: 'length of each run in ticks', default: String(DEFAULT_OPTIONS.ticks) },
  faults: { kind: 'string', help: `all, none, or a comma-separated list of: ${FAULT_KINDS.join(', ')}`, default: 'all' },
  clients: { kind: 'integer', help: 'concurrent clients (default: the seed picks)' },
  keys: { kind: 'integer', help: 'keys the clients use (default: the seed picks)' },
  reads: { kind: 'string', help: 'read mode: safe (ReadIndex) or lease (default: the seed picks)' },
  storage: { kind: 'string', help: 'wal (the production write-ahead log over a crashable in-memory disk) or memory', default: 'wal' },
  'no-swarm': { kind: 'boolean', help: 'every allowed kind of fault in every seed (default: each seed turns on a random subset)' },
  trace: { kind: 'boolean', help: 'print every event (one seed only)' },
  quiet: { kind: 'boolean', help: 'print only failures and the final line' },
  workers: { kind: 'integer', help: 'worker threads for a sweep', default: 'the number of cores' },
  'keep-going': { kind: 'boolean', help: 'in a sweep, continue after a failure' },
  'no-shrink': { kind: 'boolean', help: 'do not shrink a failure' },
  json: { kind: 'boolean', help: 'print the result as JSON (one seed only)' },
  help: { kind: 'boolean', help: 'show this help' },
};

const USAGE = 'usage: raftkv sim [--seed N | --seeds A-B] [--nodes N] [--ticks N] [--faults all|none|list] [--trace]';

/** The options a sweep hands to each run (everything but the seed). */
export type RunOptions = Omit<SimOptions, 'seed' | 'onTrace'>;

export function parseRange(spec: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(spec);
  if (!m) throw new UsageError(`sim: --seeds must look like 1-1000, got "${spec}"`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (to < from) throw new UsageError(`sim: --seeds range ${spec} is empty`);
  return [from, to];
}

export async function simCommand(argv: readonly string[]): Promise<number> {
  const f = parseFlags(argv, SIM_FLAGS, 'sim');
  if (f.help) {
    process.stdout.write(formatHelp(USAGE, SIM_FLAGS));
    return 0;
  }
  let faults: Set<FaultKind>;
  try {
    faults = parseFaults((f.faults as string | undefined) ?? 'all');
  } catch (e) {
    throw new UsageError(`sim: ${(e as Error).message}`);
  }
  const nodes = f.nodes as number | undefined;
  if (nodes !== undefined && (nodes < 1 || nodes > 9)) throw new UsageError(`sim: --nodes must be 1 to 9, got ${nodes}`);
  const ticks = (f.ticks as number | undefined) ?? DEFAULT_OPTIONS.ticks;
  if (ticks < 1) throw new UsageError(`sim: --ticks must be positive, got ${ticks}`);
  const reads = f.reads as string | undefined;
  if (reads !== undefined && reads !== 'safe' && reads !== 'lease') {
    throw new UsageError(`sim: --reads must be safe or lease, got "${reads}"`);
  }
  const storage = f.storage as string | undefined;
  if (storage !== undefined && storage !== 'wal' && storage !== 'memory') {
    throw new UsageError(`sim: --storage must be wal or memory, got "${storage}"`);
  }
  for (const k of ['clients', 'keys', 'workers'] as const) {
    const v = f[k] as number | undefined;
    if (v !== undefined && v < 1) throw new UsageError(`sim: --${k} must be at least 1, got ${v}`);
  }
  const run: RunOptions = {
    ...DEFAULT_OPTIONS,
    ticks,
    faults,
    ...(nodes !== undefined ? { nodes } : {}),
    ...(f.clients !== undefined ? { clients: f.clients as number } : {}),
    ...(f.keys !== undefined ? { keys: f.keys as number } : {}),
    ...(reads !== undefined ? { readOnly: reads === 'lease' ? 'leaseBased' : 'safe' } : {}),
    ...(f['no-swarm'] === true ? { swarm: false } : {}),
    ...(storage !== undefined ? { storage: storage as 'wal' | 'memory' } : {}),
  };
  if (f.seeds !== undefined) {
    if (f.seed !== undefined) throw new UsageError('sim: give --seed or --seeds, not both');
    if (f.trace || f.json) throw new UsageError('sim: --trace and --json need a single --seed');
    const [from, to] = parseRange(f.seeds as string);
    return sweep(from, to, run, {
      quiet: f.quiet === true,
      workers: (f.workers as number | undefined) ?? availableParallelism(),
      keepGoing: f['keep-going'] === true,
      shrink: f['no-shrink'] !== true,
    });
  }
  const seed = (f.seed as number | undefined) ?? 1;
  const options: SimOptions = {
    ...run,
    seed,
    ...(f.trace ? { onTrace: (rec: TraceRecord) => process.stdout.write(`${formatRecord(rec)}\n`) } : {}),
  };
  const started = performance.now();
  const result = new Simulator(options).run();
  const elapsed = performance.now() - started;
  if (f.json) {
    process.stdout.write(`${JSON.stringify(jsonResult(result), null, 2)}\n`);
  } else if (!f.quiet || result.violation) {
    process.stdout.write(summary(result, elapsed));
  }
  if (result.violation) {
    process.stdout.write(failureReport(result));
    if (f['no-shrink'] !== true) process.stdout.write(shrinkReport(result));
    return 1;
  }
  return 0;
}

/** The command line that reproduces a run. */
export function reproduce(o: SimOptions): string {
  const parts = [`npm run sim -- --seed ${o.seed}`];
  if (o.nodes !== undefined) parts.push(`--nodes ${o.nodes}`);
  parts.push(`--ticks ${o.ticks}`, `--faults ${describeFaults(o.faults)}`);
  if (o.clients !== undefined) parts.push(`--clients ${o.clients}`);
  if (o.keys !== undefined) parts.push(`--keys ${o.keys}`);
  if (o.readOnly !== undefined) parts.push(`--reads ${o.readOnly === 'leaseBased' ? 'lease' : 'safe'}`);
  if (o.swarm === false) parts.push('--no-swarm');
  if (o.storage === 'memory') parts.push('--storage memory');
  return parts.join(' ');
}

function count(obj: Record<string, number>): string {
  const entries = Object.entries(obj).sort((a, b) => b[1] - a[1]);
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(', ') : 'none';
}

export function summary(r: SimResult, elapsedMs: number): string {
  const s = r.stats;
  const o = r.options;
  const leaders = r.leadersByTerm.map(([t, id]) => `${t}:n${id}`).join(' ');
  const lines = [
    `seed ${r.seed} · ${r.swarm.nodes} nodes · ${o.ticks} ticks · faults ${describeFaults(o.faults)}`,
    `scenario:        ${describeSwarm(r.swarm)}`,
    `elections:       ${s.elections} started, ${s.leadersElected} leaders elected`,
    `leaders by term: ${leaders || 'none'}`,
    `commits:         commit index ${s.committed}, ${s.entriesApplied} entries applied across nodes`,
    `faults injected: ${count(s.faults)}`,
    `messages:        ${s.messagesSent} sent, ${s.messagesDelivered} delivered, ${s.messagesDropped} dropped`,
    `  by type:       ${count(s.messagesByType)}`,
    `clients:         ${s.clientOps} operations, ${s.clientOpsCompleted} completed, ${s.readsServed} reads served, ${s.sessionsExpired} sessions expired; linearizability ${s.linearizability}`,
    `snapshots:       ${s.snapshotsTaken} taken by the nemesis, ${s.snapshotsInstalled} installed; ${s.confChangesApplied} conf changes applied`,
    `after the heal:  ${s.leaderAfterHealUs === undefined ? 'no leader yet' : `a leader committed after ${(s.leaderAfterHealUs / TICK_US).toFixed(1)} ticks`}`,
    `events:          ${s.events} in ${(elapsedMs / 1000).toFixed(2)} s (${Math.round(s.events / Math.max(elapsedMs, 1e-3))}k events/s)`,
    `trace hash:      ${r.traceHash}`,
    `result:          ${r.violation ? `FAILED (${r.violation.property})` : 'ok: every invariant held'}`,
  ];
  return `${lines.join('\n')}\n`;
}

export function failureReport(r: SimResult): string {
  const v = r.violation!;
  const lines = [
    '',
    `FAILED seed ${r.seed}: ${v.property} at ${(v.time / 1000).toFixed(3)} ms (event ${v.event})`,
    ...v.detail.split('\n').map((l) => `  ${l}`),
    `reproduce: ${reproduce({ ...r.options, nodes: r.swarm.nodes })}`,
    `events leading to it (last ${Math.min(r.recent.length, 60)}):`,
    ...r.recent.slice(-60).map((rec) => `  ${formatRecord(rec)}`),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Looks for a smaller run that fails the same way: without each kind of
 * fault in turn, with one client, one key, fewer ticks. Each choice draws
 * from its own random stream, so removing one fault often keeps the rest of
 * the scenario; when it does not, the search simply moves on.
 */
export function shrink(r: SimResult): { options: SimOptions; result: SimResult; runs: number } {
  const property = r.violation!.property;
  let best: SimOptions = { ...r.options, nodes: r.swarm.nodes, clients: r.swarm.clients, keys: r.swarm.keys, onTrace: undefined };
  let bestResult = r;
  let runs = 0;
  const tryRun = (o: SimOptions): boolean => {
    runs++;
    const res = new Simulator(o).run();
    if (res.violation?.property === property) {
      best = o;
      bestResult = res;
      return true;
    }
    return false;
  };
  for (const fault of FAULT_KINDS) {
    if (!best.faults.has(fault)) continue;
    const fewer = new Set(best.faults);
    fewer.delete(fault);
    tryRun({ ...best, faults: fewer });
  }
  if ((best.clients ?? 1) > 1) tryRun({ ...best, clients: 1 });
  if ((best.keys ?? 1) > 1) tryRun({ ...best, keys: 1 });
  for (let i = 0; i < 4 && best.ticks > 200; i++) {
    if (!tryRun({ ...best, ticks: Math.floor(best.ticks / 2) })) break;
  }
  return { options: best, result: bestResult, runs };
}

function shrinkReport(r: SimResult): string {
  const { options, result, runs } = shrink(r);
  const v = result.violation!;
  const lines = [
    '',
    `shrunk (${runs} runs): ${reproduce(options)}`,
    `  fails with ${v.property} at ${(v.time / 1000).toFixed(3)} ms after ${v.event} events: ${v.detail.split('\n')[0]}`,
  ];
  if (result !== r) {
    lines.push(`events leading to it in the shrunk run (last 40):`);
    lines.push(...result.recent.slice(-40).map((rec) => `  ${formatRecord(rec)}`));
  }
  return `${lines.join('\n')}\n`;
}

function jsonResult(r: SimResult): unknown {
  return {
    seed: r.seed,
    options: { ...r.options, faults: [...r.options.faults], onTrace: undefined },
    swarm: r.swarm,
    stats: r.stats,
    traceHash: r.traceHash,
    leadersByTerm: r.leadersByTerm,
    violation: r.violation,
  };
}

// ---------------------------------------------------------------------------
// Sweeps

export interface SweepOutcome {
  readonly seed: number;
  readonly events: number;
  readonly hash: string;
  /** The linearizability check ran out of budget (inconclusive, not a failure). */
  readonly undecided: boolean;
  readonly violation?: { property: string; detail: string };
}

interface SweepSettings {
  quiet: boolean;
  workers: number;
  keepGoing: boolean;
  shrink: boolean;
}

/** Runs seeds from..to on worker threads; returns the exit status. */
export async function sweep(from: number, to: number, run: RunOptions, s: SweepSettings): Promise<number> {
  const total = to - from + 1;
  const started = performance.now();
  const failures: SweepOutcome[] = [];
  let done = 0;
  let events = 0;
  let undecided = 0;
  let next = from;
  let lastProgress = 0;
  const chunk = Math.max(1, Math.min(50, Math.ceil(total / (s.workers * 8))));
  const workerCount = Math.min(s.workers, total);
  const workerUrl = new URL('./simWorker.js', import.meta.url);
  const stopEarly = () => !s.keepGoing && failures.length > 0;

  await new Promise<void>((resolve, reject) => {
    let alive = workerCount;
    for (let w = 0; w < workerCount; w++) {
      const worker = new Worker(workerUrl, { workerData: run });
      const feed = () => {
        if (next > to || stopEarly()) {
          void worker.terminate();
          return;
        }
        const a = next;
        const b = Math.min(to, next + chunk - 1);
        next = b + 1;
        worker.postMessage({ from: a, to: b });
      };
      worker.on('message', (batch: SweepOutcome[]) => {
        for (const o of batch) {
          done++;
          events += o.events;
          if (o.undecided) undecided++;
          if (o.violation) {
            failures.push(o);
            process.stdout.write(`seed ${o.seed} FAILED: ${o.violation.property}: ${o.violation.detail.split('\n')[0]}\n`);
          }
        }
        const now = performance.now();
        if (!s.quiet && process.stderr.isTTY && now - lastProgress > 1000) {
          lastProgress = now;
          process.stderr.write(`\r${done}/${total} seeds, ${failures.length} failed, ${((now - started) / 1000).toFixed(0)} s `);
        }
        feed();
      });
      worker.on('error', reject);
      worker.on('exit', () => {
        alive--;
        if (alive === 0) resolve();
      });
      feed();
    }
  });
  if (!s.quiet && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const secs = (performance.now() - started) / 1000;
  const rate = Math.round(events / secs / 1000);
  process.stdout.write(
    `swept ${done} of ${total} seeds (${from}-${to}, faults ${describeFaults(run.faults)}, ${run.ticks} ticks) in ${secs.toFixed(1)} s: ` +
      `${failures.length} failed; ${events} events (${rate}k events/s)` +
      (undecided > 0 ? `; linearizability undecided (search budget) in ${undecided} seeds` : '') +
      '\n',
  );
  if (failures.length === 0) return 0;
  // Re-run the first failure here for the full report.
  const first = failures.sort((a, b) => a.seed - b.seed)[0]!;
  const result = new Simulator({ ...run, seed: first.seed }).run();
  if (result.violation) {
    process.stdout.write(failureReport(result));
    if (s.shrink) process.stdout.write(shrinkReport(result));
  }
  return 1;
}
