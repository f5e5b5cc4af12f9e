// Key-value state machine: apply throughput of small puts, txns and
// increments, local reads, compaction, snapshot and restore, at 1M keys.
//
// KvStateMachine (src/kv/) alone, single-threaded, no Raft: each workload's
// commands are encoded up front (encoding is the proposer's work) into one
// contiguous buffer, as entries read back from a log segment, and handed to
// apply() one by one, as the node runtime hands it committed entries. Keys
// are 16 B ("key/" + 12 digits), values --value-bytes (64). A workload's
// commands exist only while it runs, so the heap holds little else than
// the store being measured.
//
// Apply workloads, each on a fresh store, --keys commands (1M):
//   - put new, ascending: every put creates a key, in key order (appends at
//     the right edge of the B+tree).
//   - put new, random order: every put creates a key, at a random place.
//   - put overwrite, random: puts to the keys of a store already holding
//     them all, in random order (history grows by one version per put).
//   - put with session: put new ascending, each from one client session
//     with its sequence number (the exactly-once bookkeeping included).
//   - txn compare-and-put: per key, "if version == 0 then put".
//   - increment: --keys increments spread over 1,000 counters.
// Goal: >= 200,000 small puts/s applied.
//
// On the store left by "put new, random order" (1M keys):
//   - range, one key: point reads of random keys through range().
//   - range, 100 keys: scans of 100 consecutive keys from a random one.
//   - snapshot: snapshot() of the whole state, its size, and restore().
//   - compaction: after overwriting every key once more, compacting at the
//     revision in between (drops 1M versions).
// The heap holding the 1M keys is printed (after a full GC: scripts/bench.mjs
// passes --expose-gc).
//
// The machine is shared: rates are also given per CPU-second of this
// process (process.cpuUsage), which other processes' load distorts less
// than wall time.
//
// A run fails if the store does not hold what the workload wrote (revision
// and key count checked after each run, values spot-checked).
//
// Flags: --keys N (1000000) --runs N (3) --value-bytes N (64) --json

import {
  type KvCommand,
  type KvResult,
  KvError,
  KvStateMachine,
  type RangeRequest,
  rangeRequest,
  encodeCommand,
} from '../src/kv/index.js';
import { Random } from '../src/sim/random.js';
import {
  type Summary,
  checkFlags,
  gc,
  heapUsed,
  intArg,
  latency,
  loadNow,
  machine,
  mib,
  now,
  out,
  parseArgs,
  progress,
  range,
  runMain,
  si,
  summarize,
  table,
} from './harness.js';

const enc = new TextEncoder();

function keyOf(i: number): Uint8Array {
  return enc.encode(`key/${String(i).padStart(12, '0')}`);
}

function valueOf(i: number, bytes: number): Uint8Array {
  const v = new Uint8Array(bytes);
  const s = String(i);
  for (let j = 0; j < bytes; j++) v[j] = j < s.length ? s.charCodeAt(j) : 0x2e;
  return v;
}

function putCmd(key: Uint8Array, value: Uint8Array, time: number, seq = 0): Uint8Array {
  const cmd: KvCommand = {
    op: { type: 'put', request: { key, value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } },
    time,
    ...(seq > 0 ? { session: { clientId: 'bench-client', seq, lowestUnackedSeq: seq } } : {}),
  };
  return encodeCommand(cmd);
}

function rangeReq(key: Uint8Array, rangeEnd: Uint8Array, limit = 0): RangeRequest {
  return rangeRequest({ key, rangeEnd, limit, serializable: true });
}

function shuffled(n: number, seed: number): number[] {
  return new Random(seed).shuffle(Array.from({ length: n }, (_, i) => i));
}

interface Workload {
  readonly name: string;
  /** Builds the store the workload starts from (untimed). */
  readonly setup: () => KvStateMachine;
  /** Encodes the workload's commands (untimed). */
  readonly commands: () => Uint8Array[];
  /** Checks the store after the run; throws if the work was not done. */
  readonly verify: (sm: KvStateMachine, ok: number) => void;
}

/** Commands as views into one buffer, as a log segment read back holds them. */
function log(commands: Iterable<Uint8Array>): Uint8Array[] {
  const parts = [...commands];
  const buf = new Uint8Array(parts.reduce((n, c) => n + c.length, 0));
  let at = 0;
  return parts.map((c) => {
    buf.set(c, at);
    at += c.length;
    return buf.subarray(at - c.length, at);
  });
}

interface Timing {
  /** Operations per second of wall time. */
  readonly wall: number;
  /** Operations per CPU-second of this process. */
  readonly cpu: number;
}

function timed(ops: number, run: () => void): Timing {
  const c0 = process.cpuUsage();
  const t0 = now();
  run();
  const wallMs = now() - t0;
  const c = process.cpuUsage(c0);
  return { wall: (ops / wallMs) * 1000, cpu: (ops / ((c.user + c.system) / 1000)) * 1000 };
}

function applyAll(sm: KvStateMachine, commands: readonly Uint8Array[]): { timing: Timing; ok: number } {
  let ok = 0;
  const first = sm.appliedIndex + 1;
  const timing = timed(commands.length, () => {
    for (let i = 0; i < commands.length; i++) {
      const r: KvResult = sm.apply(commands[i]!, first + i);
      if (!(r instanceof KvError)) ok++;
    }
  });
  return { timing, ok };
}

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(`benchmark run did not do its work: ${what}`);
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  checkFlags(args, ['keys', 'runs', 'value-bytes', 'json']);
  const n = intArg(args, 'keys', 1_000_000);
  const runs = intArg(args, 'runs', 3);
  const valueBytes = intArg(args, 'value-bytes', 64);
  const json = args.get('json') === true;
  const head = json ? progress : out;
  head(`key-value state machine: ${si(n)} keys of 16 B, values of ${valueBytes} B, ${runs} runs per workload`);
  head(`  ${machine()}`);

  // Keys are made when needed: a million Uint8Arrays held throughout would weigh on every GC measured.
  const indexes = Array.from({ length: n }, (_, i) => i);
  const values = Array.from({ length: Math.min(n, 4096) }, (_, i) => valueOf(i, valueBytes));
  const value = (i: number) => values[i % values.length]!;
  const order = shuffled(n, 7);
  const T = 1_700_000_000_000;
  const ascending = () => log(indexes.map((i) => putCmd(keyOf(i), value(i), T)));
  const random = () => log(order.map((i) => putCmd(keyOf(i), value(i), T)));
  const withSession = () => log(indexes.map((i) => putCmd(keyOf(i), value(i), T, i + 1)));
  const cas = () =>
    log(
      indexes.map((i) => {
        const k = keyOf(i);
        return encodeCommand({
          op: {
            type: 'txn',
            request: {
              compare: [{ result: 0, target: 0, key: k, rangeEnd: new Uint8Array(0), targetUnion: { version: 0 } }],
              success: [{ requestPut: { key: k, value: value(i), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } }],
              failure: [],
            },
          },
          time: T,
        });
      }),
    );
  const counters = 1000;
  const incs = () =>
    log(indexes.map((i) => encodeCommand({ op: { type: 'increment', request: { key: keyOf(i % counters), delta: 1 } }, time: T })));

  const empty = () => new KvStateMachine();
  const load = () => {
    const sm = new KvStateMachine();
    applyAll(sm, random());
    return sm;
  };
  const newKeys = (sm: KvStateMachine, ok: number) => {
    expect(ok === n, `${ok} of ${n} commands succeeded`);
    expect(sm.revision === n + 1 && sm.keyCount === n, `revision ${sm.revision}, ${sm.keyCount} keys`);
    const probe = sm.range(rangeReq(keyOf(n >> 1), new Uint8Array(0)));
    expect(probe.kvs.length === 1 && probe.kvs[0]!.value.length === valueBytes, 'a key reads back');
  };
  const workloads: Workload[] = [
    { name: 'put new, ascending', setup: empty, commands: ascending, verify: newKeys },
    { name: 'put new, random order', setup: empty, commands: random, verify: newKeys },
    {
      name: 'put overwrite, random',
      setup: load,
      commands: random,
      verify: (sm, ok) => {
        expect(ok === n && sm.revision === 2 * n + 1 && sm.keyCount === n, `revision ${sm.revision}, ${sm.keyCount} keys`);
        expect(sm.range(rangeReq(keyOf(0), new Uint8Array(0))).kvs[0]!.version === 2, 'a key has version 2');
      },
    },
    {
      name: 'put with session',
      setup: empty,
      commands: withSession,
      verify: (sm, ok) => {
        newKeys(sm, ok);
        expect(sm.sessionCount === 1, 'one session');
      },
    },
    { name: 'txn compare-and-put', setup: empty, commands: cas, verify: newKeys },
    {
      name: 'increment (1,000 keys)',
      setup: empty,
      commands: incs,
      verify: (sm, ok) => {
        expect(ok === n && sm.revision === n + 1 && sm.keyCount === Math.min(n, counters), `revision ${sm.revision}`);
        const v = new TextDecoder().decode(sm.range(rangeReq(keyOf(0), new Uint8Array(0))).kvs[0]!.value);
        expect(Number(v) === Math.ceil(n / counters), `counter 0 is ${v}`);
      },
    },
  ];

  const rows: string[][] = [];
  const results: Record<string, { wall: Summary; cpu: Summary }> = {};
  const record = (name: string, timings: Timing[], per = true) => {
    const wall = summarize(timings.map((t) => t.wall));
    const cpu = summarize(timings.map((t) => t.cpu));
    rows.push([name, range(wall), range(cpu), per ? latency(1000 / cpu.median) : '']);
    results[name] = { wall, cpu };
  };
  for (const w of workloads) {
    progress(`${w.name}: encoding`);
    let commands: Uint8Array[] | undefined = w.commands();
    // Warm-up (JIT): a slice, not measured.
    applyAll(new KvStateMachine(), commands.slice(0, Math.min(n, 50_000)));
    const timings: Timing[] = [];
    for (let r = 0; r < runs; r++) {
      progress(`${w.name}: run ${r + 1}/${runs}`);
      const sm = w.setup();
      gc();
      const { timing, ok } = applyAll(sm, commands);
      w.verify(sm, ok);
      timings.push(timing);
    }
    commands = undefined;
    record(w.name, timings);
  }

  // Reads, snapshot and compaction on a 1M-key store.
  gc();
  const heapBefore = heapUsed();
  const sm = load();
  gc();
  const heap = heapUsed() - heapBefore;
  const rng = new Random(11);
  const reads = Math.min(n, 200_000);
  const point: Timing[] = [];
  const scan: Timing[] = [];
  for (let r = 0; r < runs; r++) {
    progress(`reads: run ${r + 1}/${runs}`);
    const probes = Array.from({ length: reads }, () => rangeReq(keyOf(rng.int(n)), new Uint8Array(0)));
    let found = 0;
    point.push(
      timed(reads, () => {
        for (const q of probes) found += sm.range(q).kvs.length;
      }),
    );
    expect(found === reads, `${found} of ${reads} point reads found their key`);
    const scans = Math.max(1, reads >> 4);
    const starts = Array.from({ length: scans }, () => {
      const from = rng.int(Math.max(1, n - 100));
      return rangeReq(keyOf(from), keyOf(Math.min(n - 1, from + 100)));
    });
    let got = 0;
    scan.push(
      timed(scans, () => {
        for (const q of starts) got += sm.range(q).kvs.length;
      }),
    );
    expect(got === scans * Math.min(100, n - 1), `${got} keys found by ${scans} scans of 100`);
  }
  record(`range, one key (${si(n)} keys)`, point);
  record(`range, 100 keys (${si(n)} keys)`, scan);

  const snapMs: number[] = [];
  const restoreMs: number[] = [];
  let snapBytes = 0;
  for (let r = 0; r < runs; r++) {
    progress(`snapshot: run ${r + 1}/${runs}`);
    gc();
    let t0 = now();
    let snap: Uint8Array | undefined = sm.snapshot();
    snapMs.push(now() - t0);
    snapBytes = snap.length;
    const copy = new KvStateMachine();
    gc();
    t0 = now();
    copy.restore(snap, sm.appliedIndex);
    restoreMs.push(now() - t0);
    snap = undefined;
    expect(copy.keyCount === n && copy.revision === sm.revision && copy.hash() === sm.hash(), 'the restored copy equals the original');
  }
  const snapS = summarize(snapMs);
  const restoreS = summarize(restoreMs);

  progress('compaction');
  const mid = sm.revision;
  applyAll(sm, random());
  const compactCmd = encodeCommand({ op: { type: 'compact', request: { revision: mid + 1, physical: false } }, time: T });
  gc();
  const sizeBefore = sm.sizeBytes;
  const t0 = now();
  const cr = sm.apply(compactCmd, sm.appliedIndex + 1);
  const compactMs = now() - t0;
  expect(!(cr instanceof KvError) && sm.sizeBytes < sizeBefore && sm.compactRevision === mid + 1, 'compaction dropped history');

  if (json) {
    out(JSON.stringify({ keys: n, valueBytes, rates: results, heapBytes: heap, snapshot: { bytes: snapBytes, ms: snapS, restoreMs: restoreS }, compactMs }, null, 2));
    return;
  }
  out('');
  out(table(['workload', 'ops/s (wall) median (min–max)', 'ops per CPU-second', 'CPU per op'], rows));
  out(`heap holding ${si(n)} keys (one version each): ${mib(heap)} (${Math.round(heap / n)} B per key)`);
  out(
    `snapshot of ${si(n)} keys: ${mib(snapBytes)}, snapshot() ${range(snapS, (x) => `${x.toFixed(0)} ms`)}, ` +
      `restore() ${range(restoreS, (x) => `${x.toFixed(0)} ms`)}`,
  );
  out(`compaction dropping ${si(n)} old versions of ${si(n)} keys: ${compactMs.toFixed(0)} ms`);
  const put = results['put new, random order']!;
  out(
    `goal: >= 200k small puts/s applied (put new, random order, the slowest put): ` +
      `${put.cpu.median >= 200_000 ? 'met' : 'MISSED'} per CPU-second (${si(put.cpu.median)}/s), ` +
      `${put.wall.median >= 200_000 ? 'met' : 'missed'} in wall time (${si(put.wall.median)}/s)`,
  );
  out(loadNow());
}

runMain(main);
