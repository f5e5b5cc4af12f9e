// Server throughput and latency: a 3-member raftkv cluster against a 3-member etcd cluster, same load.
//
// Each run starts a fresh 3-member raftkv cluster (`raftkv serve`, through
// src/cli/localCluster.ts), drives it through every point, stops it, then
// does the same with a fresh 3-member etcd cluster (/usr/bin/etcd, or
// --etcd PATH). The two never run at the same time: on 2 cores they would
// compete. Both get the same flags, as one would write them for etcd: --name,
// --data-dir (a temp dir on the real disk, --dir to choose), client and peer
// URLs on free 127.0.0.1 ports, --initial-cluster, --initial-cluster-token,
// --initial-cluster-state new, and each server's default heartbeat (100 ms),
// election timeout (1000 ms) and snapshot count (raftkv's 10000, as the
// issue specifies; etcd 3.4's is 100000). --snapshot-count N gives both the
// same one, for a like-for-like comparison.
//
// The load generator is one child process (forked from this file), so its
// event loop is not the one reading the members' logs. Like etcd's
// `benchmark` tool (tools/benchmark: --clients over --conns), a point's
// N clients are N concurrent request loops, each with one request in flight,
// sharing --conns HTTP/2 connections (3: connection j goes first to member
// j mod 3, so load enters through every member; a point with fewer clients
// than conns uses one connection per client). Requests go through
// src/client's RaftKvClient, which speaks etcd's wire, with exactly-once
// metadata off (etcd has none; --systems raftkv-eo adds raftkv with it on).
//
// Points (--points, op:clients):
//   put:1,16,64,256   Put of a --value-bytes (256) value to a random key of
//                     8 bytes out of --keys (100000), as `benchmark put`
//   range-l:64        linearizable Range of one existing key (ReadIndex)
//   range-s:64        serializable Range of the same key (local read)
// Each point runs --warmup s (1) and then --seconds s (5). Throughput counts
// the calls that completed inside the measured window; p50/p99 are over
// those calls' latencies (send to answer, at the client). Server CPU is the
// CPU time of all 3 members (from /proc) over the whole point, per call; it
// says what a call costs a cluster beyond what the client sees.
//
// Every figure is the median over --runs (3) runs. Printed: a table with
// raftkv and etcd side by side and raftkv/etcd; written: a JSON file
// (bench/results/server-<date>.json, or --out PATH), also printed on stdout
// with --json.
//
// --profile-dir DIR runs the raftkv members under `node --cpu-prof` and
// leaves their .cpuprofile files in DIR (use with --systems raftkv).
//
// Flags: --runs N (3) --seconds S (5) --warmup S (1) --points LIST
// (put:1,put:16,put:64,put:256,range-l:64,range-s:64) --conns N (3)
// --value-bytes N (256) --keys N (100000) --systems LIST (raftkv,etcd;
// also raftkv-eo) --etcd PATH (/usr/bin/etcd) --snapshot-count N (each
// server's default) --dir PATH --out PATH --json --profile-dir DIR

import { type ChildProcess, fork, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { LocalCluster, freePort } from '../src/cli/localCluster.js';
import { RaftKvClient } from '../src/client/index.js';
import {
  FlagError,
  type Summary,
  checkFlags,
  intArg,
  latency,
  loadNow,
  machine,
  numArg,
  out,
  parseArgs,
  percentile,
  progress,
  range,
  runMainAsync,
  si,
  strArg,
  summarize,
  table,
} from './harness.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SELF), '..', '..');
const LOAD_CHILD = '--load-child';
const RANGE_KEY = 'bench/range-key';

type Op = 'put' | 'range-l' | 'range-s';
type SystemName = 'raftkv' | 'raftkv-eo' | 'etcd';
const OPS: readonly Op[] = ['put', 'range-l', 'range-s'];
const SYSTEMS: readonly SystemName[] = ['raftkv', 'raftkv-eo', 'etcd'];

interface Point {
  readonly op: Op;
  readonly clients: number;
}

/** What the parent asks the load child to run. */
interface LoadSpec extends Point {
  readonly endpoints: readonly string[];
  readonly conns: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly exactlyOnce: boolean;
}

/** What the load child answers. */
interface LoadResult {
  /** Calls completed inside the measured window, per second. */
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Calls completed over the whole point, warm-up included (for CPU per call). */
  readonly totalCalls: number;
  readonly errors: number;
  readonly firstError: string | undefined;
  /** The load generator's own CPU time per call, µs. */
  readonly clientCpuUsPerCall: number;
}

interface Sample extends LoadResult {
  /** CPU time of all members over the point, per call, µs. */
  readonly serverCpuUsPerCall: number;
}

// ---------------------------------------------------------------------------
// The load child: runs one point at a time on request.

function loadChild(): void {
  process.on('message', (spec: LoadSpec) => {
    runLoad(spec).then(
      (r) => process.send!({ result: r }),
      (e: unknown) => process.send!({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
    );
  });
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  return xs.map((_, i) => xs[(i + by) % xs.length]!);
}

async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const conns = Math.min(spec.conns, spec.clients);
  const clients = Array.from(
    { length: conns },
    (_, j) => new RaftKvClient({ endpoints: rotate(spec.endpoints, j), exactlyOnce: spec.exactlyOnce, timeoutMs: 10_000 }),
  );
  const value = new Uint8Array(spec.valueBytes).fill(0x76);
  // 8-byte keys, as etcd's `benchmark put` (--key-size 8).
  const keys = Array.from({ length: spec.keys }, (_, i) => Buffer.from(`k${String(i).padStart(7, '0')}`));
  const rangeKey = Buffer.from(RANGE_KEY);
  if (spec.op !== 'put') await clients[0]!.put(rangeKey, value);
  const call: (c: RaftKvClient) => Promise<unknown> =
    spec.op === 'put'
      ? (c) => c.put(keys[Math.floor(Math.random() * keys.length)]!, value)
      : (c) => c.get(rangeKey, { serializable: spec.op === 'range-s' });

  let lat = new Float64Array(1 << 16);
  let measured = 0;
  let total = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const windowStart = t0 + spec.warmupMs;
  const windowEnd = windowStart + spec.measureMs;
  const loop = async (c: RaftKvClient): Promise<void> => {
    for (;;) {
      const start = performance.now();
      if (start >= windowEnd) return;
      try {
        await call(c);
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
        continue;
      }
      const end = performance.now();
      total++;
      if (end >= windowStart && end < windowEnd) {
        if (measured === lat.length) {
          const grown = new Float64Array(lat.length * 2);
          grown.set(lat);
          lat = grown;
        }
        lat[measured++] = end - start;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.clients }, (_, w) => loop(clients[w % conns]!)));
  const c = process.cpuUsage(cpu0);
  for (const client of clients) client.close();
  if (measured === 0) throw new Error(`no ${spec.op} call completed in the window (${errors} errors; first: ${firstError})`);
  const sorted = Array.from(lat.subarray(0, measured).sort());
  return {
    opsPerSec: measured / (spec.measureMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    totalCalls: total,
    errors,
    firstError,
    clientCpuUsPerCall: (c.user + c.system) / total,
  };
}

// ---------------------------------------------------------------------------
// The clusters

interface Cluster {
  readonly endpoints: readonly string[];
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

async function startRaftkv(dataDir: string, profileDir: string | undefined, serverFlags: readonly string[]): Promise<Cluster> {
  const nodeArgs = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  const cluster = await LocalCluster.create({ size: 3, dataDir, token: 'bench-server', nodeArgs, extraFlags: serverFlags });
  cluster.startAll();
  try {
    await cluster.waitAllHealthy(30_000);
  } catch (e) {
    await cluster.stopAll();
    throw e;
  }
  return {
    endpoints: cluster.endpoints,
    pids: cluster.members.map((m) => m.process!.pid!),
    stop: () => cluster.stopAll(10_000),
  };
}

async function startEtcd(bin: string, dataDir: string, serverFlags: readonly string[]): Promise<Cluster> {
  const members = [];
  for (let i = 1; i <= 3; i++) {
    members.push({ name: `e${i}`, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const logs = members.map(() => '');
  const procs: ChildProcess[] = members.map((m, i) => {
    const p = spawn(
      bin,
      [
        '--name', m.name,
        '--data-dir', join(dataDir, m.name),
        '--listen-client-urls', m.client,
        '--advertise-client-urls', m.client,
        '--listen-peer-urls', m.peer,
        '--initial-advertise-peer-urls', m.peer,
        '--initial-cluster', initialCluster,
        '--initial-cluster-token', 'bench-server',
        '--initial-cluster-state', 'new',
        ...serverFlags,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: Buffer): void => {
      logs[i] = (logs[i] + d.toString()).slice(-20_000);
    };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    return p;
  });
  const stop = async (): Promise<void> => {
    await Promise.all(
      procs.map((p) => {
        if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
        return exited.then(() => clearTimeout(timer));
      }),
    );
  };
  const deadline = Date.now() + 30_000;
  for (let i = 0; i < members.length; i++) {
    for (;;) {
      const p = procs[i]!;
      if (p.exitCode !== null || p.signalCode !== null) {
        await stop();
        throw new Error(`etcd member ${members[i]!.name} exited:\n${logs[i]}`);
      }
      try {
        const res = await fetch(`${members[i]!.client}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200 && (await res.text()).includes('"true"')) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`etcd member ${members[i]!.name} not healthy after 30 s:\n${logs[i]}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { endpoints: members.map((m) => m.client), pids: procs.map((p) => p.pid!), stop };
}

/** User + system CPU time of a process so far, ms (from /proc/<pid>/stat; clock ticks of 10 ms). */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function clusterCpuMs(c: Cluster): number {
  return c.pids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
}

// ---------------------------------------------------------------------------
// The parent: clusters one at a time, the load child, the table.

class LoadGenerator {
  private constructor(private readonly child: ChildProcess) {}

  static start(): LoadGenerator {
    return new LoadGenerator(fork(SELF, [LOAD_CHILD], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  run(spec: LoadSpec): Promise<LoadResult> {
    return new Promise((ok, fail) => {
      const onExit = (code: number | null): void => fail(new Error(`load generator exited (${code})`));
      this.child.once('exit', onExit);
      this.child.once('message', (m: { result?: LoadResult; error?: string }) => {
        this.child.off('exit', onExit);
        if (m.result) ok(m.result);
        else fail(new Error(`load generator: ${m.error}`));
      });
      this.child.send(spec);
    });
  }

  stop(): void {
    this.child.kill();
  }
}

function parsePoints(v: string): Point[] {
  return v.split(',').map((s) => {
    const [op, n] = s.split(':');
    const clients = Number(n);
    if (!OPS.includes(op as Op) || !Number.isSafeInteger(clients) || clients < 1) {
      throw new FlagError(`--points: "${s}" is not op:clients with op one of ${OPS.join(', ')}`);
    }
    return { op: op as Op, clients };
  });
}

function parseSystems(v: string): SystemName[] {
  const names = v.split(',');
  for (const n of names) if (!SYSTEMS.includes(n as SystemName)) throw new FlagError(`--systems: unknown "${n}"; known: ${SYSTEMS.join(', ')}`);
  return names as SystemName[];
}

const pointName = (p: Point): string => `${p.op}@${p.clients}`;

interface PointSummary {
  readonly opsPerSec: Summary;
  readonly p50Ms: Summary;
  readonly p99Ms: Summary;
  readonly serverCpuUsPerCall: Summary;
  readonly clientCpuUsPerCall: Summary;
  readonly errors: number;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  checkFlags(args, ['runs', 'seconds', 'warmup', 'points', 'conns', 'value-bytes', 'keys', 'systems', 'etcd', 'snapshot-count', 'dir', 'out', 'json', 'profile-dir']);
  const runs = intArg(args, 'runs', 3);
  const measureMs = numArg(args, 'seconds', 5) * 1000;
  const warmupMs = numArg(args, 'warmup', 1) * 1000;
  const points = parsePoints(strArg(args, 'points') ?? 'put:1,put:16,put:64,put:256,range-l:64,range-s:64');
  const conns = intArg(args, 'conns', 3);
  const valueBytes = intArg(args, 'value-bytes', 256);
  const keys = intArg(args, 'keys', 100_000);
  if (keys > 10_000_000) throw new FlagError('--keys must be at most 10000000 (keys are 8 bytes: "k" and 7 digits)');
  const systems = parseSystems(strArg(args, 'systems') ?? 'raftkv,etcd');
  const etcdBin = strArg(args, 'etcd') ?? '/usr/bin/etcd';
  if (systems.includes('etcd') && !existsSync(etcdBin)) throw new FlagError(`${etcdBin} does not exist: run scripts/install-deps.sh or pass --etcd PATH`);
  const snapshotCount = args.has('snapshot-count') ? intArg(args, 'snapshot-count', 0) : undefined;
  /** Flags both servers get beyond the cluster's own. */
  const serverFlags = snapshotCount === undefined ? [] : ['--snapshot-count', String(snapshotCount)];
  const baseDir = strArg(args, 'dir') ?? tmpdir();
  const json = args.get('json') === true;
  const profileDir = strArg(args, 'profile-dir');
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
  const started = new Date();
  const outPath = strArg(args, 'out') ?? join(ROOT, 'bench', 'results', `server-${started.toISOString().slice(0, 16).replace(':', '-')}.json`);

  const head = json ? progress : out;
  head(`server: ${systems.join(' vs ')}, 3 members each, one cluster at a time`);
  const where = machine();
  head(where);
  head(
    `${runs} runs x ${points.length} points, ${warmupMs / 1000} s warm-up + ${measureMs / 1000} s each; ` +
      `${valueBytes} B values, ${keys} keys of 8 B, clients over ${conns} connections; ` +
      `snapshot count: ${snapshotCount ?? "each server's default (raftkv 10000, etcd 100000)"}\n`,
  );

  const samples = new Map<string, Sample[]>(); // `${system} ${point}`
  const load = LoadGenerator.start();
  try {
    for (let run = 1; run <= runs; run++) {
      for (const system of systems) {
        const dataDir = mkdtempSync(join(baseDir, `raftkv-bench-server-${system}-`));
        try {
          const cluster = system === 'etcd' ? await startEtcd(etcdBin, dataDir, serverFlags) : await startRaftkv(dataDir, profileDir, serverFlags);
          try {
            for (const p of points) {
              const cpu0 = clusterCpuMs(cluster);
              const r = await load.run({
                ...p,
                endpoints: cluster.endpoints,
                conns,
                warmupMs,
                measureMs,
                valueBytes,
                keys,
                exactlyOnce: system === 'raftkv-eo',
              });
              const serverCpuUsPerCall = ((clusterCpuMs(cluster) - cpu0) * 1000) / r.totalCalls;
              const key = `${system} ${pointName(p)}`;
              samples.set(key, [...(samples.get(key) ?? []), { ...r, serverCpuUsPerCall }]);
              progress(
                `run ${run} ${system.padEnd(9)} ${pointName(p).padEnd(11)} ${si(r.opsPerSec).padStart(6)} ops/s  ` +
                  `p50 ${latency(r.p50Ms)}  p99 ${latency(r.p99Ms)}  server ${serverCpuUsPerCall.toFixed(0)} µs/call` +
                  (r.errors > 0 ? `  ${r.errors} errors (first: ${r.firstError})` : ''),
              );
            }
          } finally {
            await cluster.stop();
          }
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    load.stop();
  }

  const summary = (system: SystemName, p: Point): PointSummary | undefined => {
    const xs = samples.get(`${system} ${pointName(p)}`);
    if (!xs) return undefined;
    return {
      opsPerSec: summarize(xs.map((x) => x.opsPerSec)),
      p50Ms: summarize(xs.map((x) => x.p50Ms)),
      p99Ms: summarize(xs.map((x) => x.p99Ms)),
      serverCpuUsPerCall: summarize(xs.map((x) => x.serverCpuUsPerCall)),
      clientCpuUsPerCall: summarize(xs.map((x) => x.clientCpuUsPerCall)),
      errors: xs.reduce((s, x) => s + x.errors, 0),
    };
  };
  const results = points.map((p) => {
    const bySystem = Object.fromEntries(systems.map((s) => [s, summary(s, p)!]));
    const raftkv = bySystem.raftkv;
    const etcd = bySystem.etcd;
    const ratio =
      raftkv && etcd
        ? {
            opsPerSec: raftkv.opsPerSec.median / etcd.opsPerSec.median,
            p50Ms: raftkv.p50Ms.median / etcd.p50Ms.median,
            p99Ms: raftkv.p99Ms.median / etcd.p99Ms.median,
          }
        : undefined;
    return { op: p.op, clients: p.clients, systems: bySystem, raftkvOverEtcd: ratio };
  });

  const report = {
    benchmark: 'server',
    date: started.toISOString(),
    machine: where,
    config: { runs, warmupMs, measureMs, conns, valueBytes, keys, systems, etcd: etcdBin, snapshotCount: snapshotCount ?? null },
    results,
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, `${JSON.stringify(report, null, 2)}\n`);
  if (json) {
    out(JSON.stringify(report, null, 2));
    return;
  }

  const x = (n: number | undefined): string => (n === undefined ? '–' : `${n.toFixed(2)}x`);
  const header = ['point'];
  for (const s of systems) header.push(`${s} ops/s`);
  header.push('ratio');
  for (const s of systems) header.push(`${s} p50`);
  for (const s of systems) header.push(`${s} p99`);
  header.push('p99 ratio');
  out(`\nmedians over ${runs} runs; ops/s with (min–max); ratio = raftkv/etcd\n`);
  out(
    table(
      header,
      results.map((r) => [
        pointName(r),
        ...systems.map((s) => range(r.systems[s]!.opsPerSec)),
        x(r.raftkvOverEtcd?.opsPerSec),
        ...systems.map((s) => latency(r.systems[s]!.p50Ms.median)),
        ...systems.map((s) => latency(r.systems[s]!.p99Ms.median)),
        x(r.raftkvOverEtcd?.p99Ms),
      ]),
    ),
  );
  out('CPU per call, µs (median): server = all 3 members, client = the load generator\n');
  out(
    table(
      ['point', ...systems.flatMap((s) => [`${s} server`, `${s} client`])],
      results.map((r) => [
        pointName(r),
        ...systems.flatMap((s) => [r.systems[s]!.serverCpuUsPerCall.median.toFixed(0), r.systems[s]!.clientCpuUsPerCall.median.toFixed(0)]),
      ]),
    ),
  );
  const errors = results.flatMap((r) => systems.map((s) => [`${s} ${pointName(r)}`, r.systems[s]!.errors] as const)).filter(([, n]) => n > 0);
  if (errors.length > 0) out(`calls that failed: ${errors.map(([k, n]) => `${k}: ${n}`).join(', ')}\n`);
  const goal = results.find((r) => r.op === 'put' && r.clients === 64)?.raftkvOverEtcd;
  if (goal) {
    const met = goal.opsPerSec >= 1 && goal.p99Ms <= 1;
    out(`goal (put@64: >= 1.0x etcd's throughput, p99 no worse): ${met ? 'met' : 'missed'} (${x(goal.opsPerSec)} throughput, ${x(goal.p99Ms)} p99)`);
  }
  out(`results written to ${outPath}`);
  out(loadNow());
}

if (process.argv[2] === LOAD_CHILD) loadChild();
else runMainAsync(main);
