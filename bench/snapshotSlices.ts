// The stall a snapshot costs the member: the longest synchronous piece of
// work, before (snapshot(): the whole store at once) and after
// (beginSnapshot() and its steps, each run between processing passes; the
// parts() go to storage as they are, as the node does), on
// the server benchmark's store: puts of 256 B values to 100,000 random keys.
// Also the write that follows either way: before, the file written and
// fsynced at once (the former SnapshotStore.save, replicated below: the
// file image by concatenation, checksum, write, fsync, rename, directory
// fsync); after, DiskStorage.createSnapshot, which returns at once and
// writes the file in steps from fdatasync callbacks (the longest step and
// the time until done are reported too).
//
// The heap is large and the snapshot allocates as much again, so V8's full
// collections land in the slices now and then (hundreds of ms on a loaded
// machine, with or without snapshots): each slice is also reported without
// the GC pauses that overlapped it (perf_hooks 'gc' entries).
//
// Usage: node dist/bench/snapshotSlices.js [puts ...] (default 100000 300000)

import * as nodeFs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

import { encodeCommand } from '../src/kv/command.js';
import type { Snapshot } from '../src/raft/types.js';
import { crc32c } from '../src/storage/crc.js';
import { KvStateMachine } from '../src/kv/stateMachine.js';
import { DiskStorage } from '../src/storage/diskStorage.js';
import type { FileHandle } from '../src/storage/fs.js';
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

/** The disk, with each fdatasync callback's synchronous work timed (the snapshot write's steps run in them). */
class TimedFs extends NodeFileSystem {
  callbacks: number[] = [];
  override datasync(fd: FileHandle, done: (err?: Error) => void): void {
    super.datasync(fd, (err) => {
      const t0 = performance.now();
      done(err);
      this.callbacks.push(performance.now() - t0);
    });
  }
}

/** The write as it was before: SnapshotStore.save and encodeSnapshotFile as of commit 6815dce, on node:fs. */
function writeAtOnce(dir: string, snap: Snapshot): void {
  const meta = new TextEncoder().encode(JSON.stringify(snap.metadata));
  const out = new Uint8Array(16 + meta.length + snap.data.length);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode('RKVSNAP1'), 0);
  view.setUint32(12, meta.length, true);
  out.set(meta, 16);
  out.set(snap.data, 16 + meta.length);
  view.setUint32(8, crc32c(out.subarray(12)), true);
  const path = join(dir, 'before.snap');
  const fd = nodeFs.openSync(`${path}.tmp`, 'wx+');
  try {
    let done = 0;
    while (done < out.length) done += nodeFs.writeSync(fd, out, done, out.length - done, done);
    nodeFs.fsyncSync(fd);
  } finally {
    nodeFs.closeSync(fd);
  }
  nodeFs.renameSync(`${path}.tmp`, path);
  const dirFd = nodeFs.openSync(dir, 'r');
  nodeFs.fsyncSync(dirFd);
  nodeFs.closeSync(dirFd);
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
  const writeBefore: number[] = [];
  const writeAfter: number[] = [];
  const writeBeforeNoGc: number[] = [];
  const writeAfterNoGc: number[] = [];
  const writeStep: number[] = [];
  const writeTotal: number[] = [];
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
    // As the node does: the parts go to storage as they are.
    const [parts, partsMs] = timed(() => enc.parts());
    max = Math.max(max, partsMs);
    total.push(performance.now() - t0);
    const data = Buffer.concat(parts);
    if (Buffer.compare(data, sync) !== 0) throw new Error('the incremental snapshot differs from snapshot()');
    const [l, lNoGc] = await longestSlice(slices);
    if (Math.abs(l - max) > 0.01) throw new Error('slices miscounted');
    longest.push(l);
    longestNoGc.push(lNoGc);
    begin.push(beginMs);
    steps.push(n);
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-snapbench-'));
    const fs = new TimedFs();
    const storage = DiskStorage.open({ fs, dir, clusterId: 'bench', memberId: 1 });
    const { entries, hardState } = { entries: [{ index: 1, term: 1, type: 'normal' as const, data: new Uint8Array(0) }], hardState: { term: 1, vote: 0, commit: 1 } };
    await new Promise<void>((resolve, reject) => storage.save({ entries, hardState }, (err) => (err ? reject(err) : resolve())));
    const confState = { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    // After first: the write before allocates the file image, whose collection would land in what follows.
    fs.callbacks = [];
    const w0 = performance.now();
    let durable!: () => void;
    const written = new Promise<void>((resolve) => (durable = resolve));
    slices = [];
    timed(() =>
      storage.createSnapshot(1, confState, data, (err) => {
        if (err) throw err;
        durable();
      }),
    );
    await written;
    writeTotal.push(performance.now() - w0);
    writeStep.push(Math.max(...fs.callbacks));
    const [a, aNoGc] = await longestSlice(slices);
    writeAfter.push(a);
    writeAfterNoGc.push(aNoGc);
    slices = [];
    timed(() => writeAtOnce(dir, { metadata: { index: 1, term: 1, confState }, data }));
    const [b2, b2NoGc] = await longestSlice(slices);
    writeBefore.push(b2);
    writeBeforeNoGc.push(b2NoGc);
    storage.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (xs: number[]) => median(xs).toFixed(1);
  console.log(
    `${puts} puts, snapshot ${(bytes / 1e6).toFixed(1)} MB: before, snapshot() at once ${f(before)} ms (${f(beforeNoGc)} without GC); ` +
      `after, longest slice ${f(longest)} ms (${f(longestNoGc)} without GC; begin ${f(begin)} ms, ${median(steps)} steps, ${f(total)} ms in all); ` +
      `snapshot write: before, at once ${f(writeBefore)} ms (${f(writeBeforeNoGc)} without GC); ` +
      `after, createSnapshot ${f(writeAfter)} ms (${f(writeAfterNoGc)} without GC), ` +
      `longest step ${f(writeStep)} ms, durable after ${f(writeTotal)} ms   [median of ${RUNS}]`,
  );
}
