// The stall a snapshot costs the member: the longest synchronous piece of
// work, before (snapshot(): the whole store at once) and after
// (beginSnapshot() and its steps, each run between processing passes), on
// the server benchmark's store: puts of 256 B values to 100,000 random keys.
// Also the write that follows either way (DiskStorage.createSnapshot: file,
// checksum, fsync), which still runs at once.
//
// The heap is large and the snapshot allocates as much again, so V8's full
// collections land in the slices now and then (hundreds of ms on a loaded
// machine, with or without snapshots): each slice is also reported without
// the GC pauses that overlapped it (perf_hooks 'gc' entries).
//
// Usage: node dist/bench/snapshotSlices.js [puts ...] (default 100000 300000)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

import { encodeCommand } from '../src/kv/command.js';
import { KvStateMachine } from '../src/kv/stateMachine.js';
import { DiskStorage } from '../src/storage/diskStorage.js';
import { NodeFileSystem } from '../src/storage/nodeFs.js';
import { Random } from '../src/sim/random.js';

const RUNS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function build(puts: number): KvStateMachine {
  const sm = new KvStateMachine();
  const rnd = new Random(puts);
  const value = new Uint8Array(256).fill(120);
  for (let i = 1; i <= puts; i++) {
    const key = Buffer.from(`k${String(rnd.int(100_000)).padStart(7, '0')}`);
    const op = { type: 'put', request: { key, value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } } as const;
    sm.apply(encodeCommand({ op, time: 1 }), i);
  }
  return sm;
}

const gcPauses: [number, number][] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push([e.startTime, e.startTime + e.duration]);
}).observe({ entryTypes: ['gc'] });

/** Slices as [start, end], to be measured once the GC entries are in. */
let slices: [number, number][] = [];

function timed<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const r = f();
  const t1 = performance.now();
  slices.push([t0, t1]);
  return [r, t1 - t0];
}

/** The longest of `slices`, [with GC pauses, without them]. */
async function longestSlice(of: [number, number][]): Promise<[number, number]> {
  await new Promise((resolve) => setTimeout(resolve, 20)); // the observer's entries arrive asynchronously
  let withGc = 0;
  let withoutGc = 0;
  for (const [a, b] of of) {
    let gc = 0;
    for (const [x, y] of gcPauses) gc += Math.max(0, Math.min(b, y) - Math.max(a, x));
    withGc = Math.max(withGc, b - a);
    withoutGc = Math.max(withoutGc, b - a - gc);
  }
  return [withGc, withoutGc];
}

for (const puts of process.argv.length > 2 ? process.argv.slice(2).map(Number) : [100_000, 300_000]) {
  const sm = build(puts);
  const before: number[] = [];
  const beforeNoGc: number[] = [];
  const longest: number[] = [];
  const longestNoGc: number[] = [];
  const begin: number[] = [];
  const steps: number[] = [];
  const total: number[] = [];
  const write: number[] = [];
  let bytes = 0;
  for (let run = 0; run < RUNS; run++) {
    slices = [];
    const [sync] = timed(() => sm.snapshot());
    bytes = sync.length;
    const [b, bNoGc] = await longestSlice(slices);
    before.push(b);
    beforeNoGc.push(bNoGc);
    slices = [];
    const t0 = performance.now();
    const [enc, beginMs] = timed(() => sm.beginSnapshot());
    let max = beginMs;
    let n = 0;
    for (;;) {
      const [done, stepMs] = timed(() => enc.step());
      n++;
      max = Math.max(max, stepMs);
      if (done) break;
    }
    const [data, resultMs] = timed(() => enc.result());
    total.push(performance.now() - t0);
    if (Buffer.compare(data, sync) !== 0) throw new Error('the incremental snapshot differs from snapshot()');
    const [l, lNoGc] = await longestSlice(slices);
    if (Math.abs(l - Math.max(max, resultMs)) > 0.01) throw new Error('slices miscounted');
    longest.push(l);
    longestNoGc.push(lNoGc);
    begin.push(beginMs);
    steps.push(n);
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-snapbench-'));
    const storage = DiskStorage.open({ fs: new NodeFileSystem(), dir, clusterId: 'bench', memberId: 1 });
    const { entries, hardState } = { entries: [{ index: 1, term: 1, type: 'normal' as const, data: new Uint8Array(0) }], hardState: { term: 1, vote: 0, commit: 1 } };
    await new Promise<void>((resolve, reject) => storage.save({ entries, hardState }, (err) => (err ? reject(err) : resolve())));
    const confState = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    write.push(timed(() => storage.createSnapshot(1, confState, data))[1]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    storage.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (xs: number[]) => median(xs).toFixed(1);
  console.log(
    `${puts} puts, snapshot ${(bytes / 1e6).toFixed(1)} MB: before, snapshot() at once ${f(before)} ms (${f(beforeNoGc)} without GC); ` +
      `after, longest slice ${f(longest)} ms (${f(longestNoGc)} without GC; begin ${f(begin)} ms, ${median(steps)} steps, ${f(total)} ms in all); ` +
      `createSnapshot (write + fsync, both) ${f(write)} ms   [median of ${RUNS}]`,
  );
}
