// Recovery: how long DiskStorage.open takes to replay a 1 GiB log, and the memory it holds meanwhile.
//
// Builds a log of about --gib GiB (default 1) once, in a new directory under
// os.tmpdir() (or --dir), in a worker thread (so that the measuring thread
// starts with little memory): entries of --entry-bytes (1024) in saves of
// --batch entries (1024, about 1 MiB each), with a hard state per save, over
// NodeFileSystem with the default segment size (64 MiB). Then opens it
// --runs times (5): DiskStorage.open replays every segment (reading,
// checking each record's CRC, indexing it, keeping the newest entries in the
// tail cache) and judges the end of the last segment.
//
// Measured per open: wall time and CPU time of DiskStorage.open (median,
// min-max), against a raw read of the same files just before (same-run
// baseline: the floor for reading them), and memory, sampled at every read
// the replay makes (a NodeFileSystem whose read() notes
// process.memoryUsage(); replay reads 4 MiB at a time), reported for the
// first open (later ones reuse memory the allocator kept from it):
//   - peak RSS and peak V8 heap above what they were just before the open
//     (after a full GC);
//   - RSS and heap just after the open, after a full GC, with the storage
//     open: what the tail cache (64 MiB of entries by default, --cache-mib)
//     and the index keep;
//   - RSS growth from 25% to 75% of the replay: a replay that kept what
//     it read would grow by about half the log there.
// Checked: the recovered log runs from 1 to the last index written, no torn
// tail, the hard state's commit index, and the data of the first and last
// ten entries (read back through entries()). A run that fails these fails.
//
// Goals: replaying 1 GiB in under 5 s (scaled with --gib); memory bounded:
// the peak RSS growth stays under 4x the tail cache whatever the log's size,
// and RSS grows by less than 16 MiB (noise) + 5% of the bytes replayed from
// 25% to 75% of the replay (a replay that kept what it read would grow by 100%; the tail
// cache is filled at the end, after that span).
//
// Page cache: the log was just written, so every open reads it from the page
// cache, not the disk (the output says so). --drop-caches adds, to every
// round, an open after writing dirty pages out and dropping the page cache
// (echo 3 > /proc/sys/vm/drop_caches; needs root, and is skipped with a
// message when not permitted). That drops every process's cache, so it is
// opt-in.
//
// Flags: --gib G (1, fractions allowed) --runs N (5) --entry-bytes N (1024)
// --batch N (1024) --cache-mib N (DiskStorage's default) --drop-caches
// --dir PATH --json

import * as fs from 'node:fs';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Entry } from '../src/raft/index.js';
import { DEFAULT_CACHE_BYTES, DiskStorage } from '../src/storage/diskStorage.js';
import { NodeFileSystem } from '../src/storage/nodeFs.js';
import { FRAME_HEADER_BYTES, padded } from '../src/storage/record.js';
import {
  type Summary,
  checkFlags,
  gc,
  hasGc,
  intArg,
  loadNow,
  machine,
  mbps,
  mib,
  now,
  numArg,
  out,
  parseArgs,
  progress,
  range,
  runMainAsync,
  secs,
  si,
  strArg,
  summarize,
  table,
} from './harness.js';
import { describeDir, dropCaches, scratchDir, waitPrepared } from './rawdisk.js';

const CLUSTER = 'bench-recovery';
const MEMBER = 1;
const GIB = 2 ** 30;
/** Terms change along the log every this many entries, so the index holds a few term runs. */
const TERM_EVERY = 1 << 18;

interface Sample {
  /** Bytes the replay had read when the sample was taken. */
  readonly read: number;
  readonly rss: number;
  readonly heap: number;
  /** Off-heap memory V8 knows of: ArrayBuffers (entry copies live there) and the like. */
  readonly external: number;
}

/** NodeFileSystem that samples the process's memory at every read (replay reads 4 MiB at a time). */
class SamplingFs extends NodeFileSystem {
  bytesRead = 0;
  reads = 0;
  samples: Sample[] = [];

  override read(fd: number, buf: Uint8Array, position: number): number {
    const n = super.read(fd, buf, position);
    this.bytesRead += n;
    this.reads++;
    const m = process.memoryUsage();
    this.samples.push({ read: this.bytesRead, rss: m.rss, heap: m.heapUsed, external: m.external });
    return n;
  }
}

/** Entry `index`'s data: its index in the first and last 4 bytes, a pattern between. */
/** RSS moves by this much with no cause in the replay (allocator, GC timing). */
const MEMORY_NOISE_BYTES = 16 * 1024 * 1024;

function fill(d: Uint8Array, index: number): void {
  for (let i = 4; i < d.length - 4; i++) d[i] = (index + i) & 0xff;
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  v.setUint32(0, index, true);
  if (d.length >= 8) v.setUint32(d.length - 4, index, true);
}

function checkData(e: Entry, entryBytes: number): void {
  const d = e.data;
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  if (d.length !== entryBytes || v.getUint32(0, true) !== e.index || (d.length >= 8 && v.getUint32(d.length - 4, true) !== e.index)) {
    throw new Error(`entry ${e.index} came back with the wrong data`);
  }
}

interface Built {
  readonly lastIndex: number;
  readonly commit: number;
  readonly segments: number;
  /** Bytes of records in the log (what replay reads up to its end). */
  readonly logBytes: number;
  readonly ms: number;
}

/** Writes the log: `entries` entries of `entryBytes` in saves of `batch`, one save in flight. */
async function build(dir: string, entries: number, entryBytes: number, batch: number): Promise<Built> {
  const st = DiskStorage.open({ fs: new NodeFileSystem(), dir, clusterId: CLUSTER, memberId: MEMBER });
  const t0 = now();
  let next = 1;
  let lastReport = t0;
  await new Promise<void>((resolve, reject) => {
    const submit = (): void => {
      const n = Math.min(batch, entries - next + 1);
      const slab = new Uint8Array(n * entryBytes);
      const ents = new Array<Entry>(n);
      for (let i = 0; i < n; i++) {
        const index = next + i;
        const data = slab.subarray(i * entryBytes, (i + 1) * entryBytes);
        fill(data, index);
        ents[i] = { term: 1 + Math.floor(index / TERM_EVERY), index, type: 'normal', data };
      }
      const last = next + n - 1;
      next += n;
      st.save({ entries: ents, hardState: { term: ents[n - 1]!.term, vote: MEMBER, commit: last } }, (err) => {
        if (err) return reject(err);
        if (now() - lastReport > 2000) {
          lastReport = now();
          progress(`  ${si(last)} of ${si(entries)} entries written`);
        }
        if (next <= entries) submit();
        else resolve();
      });
    };
    submit();
  });
  const ms = now() - t0;
  const lastIndex = st.lastIndex();
  const segments = st.segmentFiles().length;
  st.close();
  await waitPrepared(join(dir, 'wal'));
  if (lastIndex !== entries) throw new Error(`the log ends at ${lastIndex}, ${entries} entries were written`);
  const recordBytes = FRAME_HEADER_BYTES + padded(18 + entryBytes);
  return { lastIndex, commit: lastIndex, segments, logBytes: entries * recordBytes, ms };
}

/**
 * The floor: reads every file of the log (the preallocated tail included)
 * in 4 MiB reads, as replay does, without looking at the bytes.
 */
function rawRead(walDir: string): { ms: number; bytes: number } {
  const buf = new Uint8Array(4 << 20);
  let bytes = 0;
  const t0 = now();
  for (const name of fs.readdirSync(walDir).sort()) {
    const fd = fs.openSync(join(walDir, name), 'r');
    try {
      let at = 0;
      for (let n = fs.readSync(fd, buf, 0, buf.length, 0); n > 0; n = fs.readSync(fd, buf, 0, buf.length, at)) {
        at += n;
        bytes += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return { ms: now() - t0, bytes };
}

interface OpenRun {
  readonly cold: boolean;
  readonly ms: number;
  /** CPU time of the open (all threads, GC helpers included). */
  readonly cpuMs: number;
  /** The raw read of the same files just before (see rawRead), and the open's time over it. */
  readonly rawReadMs: number;
  readonly vsRawRead: number;
  readonly bytesRead: number;
  readonly reads: number;
  readonly records: number;
  /** Above the level just before the open (after a full GC). */
  readonly peakRss: number;
  readonly peakHeap: number;
  readonly peakExternal: number;
  /** After the open and a full GC, with the storage open. */
  readonly retainedRss: number;
  readonly retainedHeap: number;
  readonly retainedExternal: number;
  /** RSS growth from half the bytes replayed to the end of replay. */
  readonly middleRss: number;
  readonly rssBefore: number;
  /** RSS at 25/50/75/100% of the bytes read, above rssBefore. */
  readonly curve: readonly number[];
}

/** Drops the page cache, or throws (it worked a moment ago). */
function mustDrop(): void {
  const d = dropCaches();
  if (!d.ok) throw new Error(`dropping the page cache stopped working: ${d.reason}`);
}

/** One open, after the raw read of the same files; `cold`: each from a dropped page cache. */
async function openOnce(dir: string, built: Built, entryBytes: number, cacheBytes: number | undefined, cold: boolean): Promise<OpenRun> {
  if (cold) mustDrop();
  const raw = rawRead(join(dir, 'wal'));
  if (raw.bytes < built.logBytes) throw new Error(`the raw read found ${raw.bytes} bytes, the log has ${built.logBytes}`);
  if (cold) mustDrop();
  gc();
  const before = process.memoryUsage();
  const sfs = new SamplingFs();
  const c0 = process.cpuUsage();
  const t0 = now();
  const st = DiskStorage.open({
    fs: sfs,
    dir,
    clusterId: CLUSTER,
    memberId: MEMBER,
    ...(cacheBytes !== undefined ? { cacheBytes } : {}),
  });
  const ms = now() - t0;
  const cpu = process.cpuUsage(c0);
  const samples = sfs.samples;
  const reads = sfs.reads;
  const bytesRead = sfs.bytesRead;
  try {
    // Did it do its work?
    const rec = st.recovery;
    if (st.firstIndex() !== 1 || st.lastIndex() !== built.lastIndex) {
      throw new Error(`recovered the log as [${st.firstIndex()}, ${st.lastIndex()}], expected [1, ${built.lastIndex}]`);
    }
    if (rec.tornTail) throw new Error(`recovery cut a torn tail off a cleanly closed log: ${JSON.stringify(rec.tornTail)}`);
    if (st.getHardState().commit !== built.commit) throw new Error(`recovered commit index ${st.getHardState().commit}, expected ${built.commit}`);
    if (bytesRead < built.logBytes) throw new Error(`replay read ${bytesRead} bytes of a ${built.logBytes}-byte log`);
    gc();
    const after = process.memoryUsage();
    const last = st.lastIndex();
    for (const e of st.entries(last - 9, last + 1, Number.MAX_SAFE_INTEGER)) checkData(e, entryBytes);
    const head = st.entries(1, 11, Number.MAX_SAFE_INTEGER);
    if (head.length !== 10) throw new Error(`entries(1, 11) returned ${head.length} entries`);
    for (const e of head) checkData(e, entryBytes);
    const peak = (f: (s: Sample) => number) => Math.max(...samples.map(f));
    const at = (fraction: number): Sample => samples.find((s) => s.read >= fraction * bytesRead) ?? samples[samples.length - 1]!;
    return {
      cold,
      ms,
      cpuMs: (cpu.user + cpu.system) / 1000,
      rawReadMs: raw.ms,
      vsRawRead: ms / raw.ms,
      bytesRead,
      reads,
      records: rec.records,
      peakRss: peak((s) => s.rss) - before.rss,
      peakHeap: peak((s) => s.heap) - before.heapUsed,
      peakExternal: peak((s) => s.external) - before.external,
      retainedRss: after.rss - before.rss,
      retainedHeap: after.heapUsed - before.heapUsed,
      retainedExternal: after.external - before.external,
      middleRss: at(0.75).rss - at(0.25).rss,
      rssBefore: before.rss,
      curve: [0.25, 0.5, 0.75, 1].map((f) => at(f).rss - before.rss),
    };
  } finally {
    st.close();
    // The open started preallocating the next segment in the background; let that finish before the next open.
    await waitPrepared(join(dir, 'wal'));
  }
}

interface Row {
  readonly label: string;
  readonly ms: Summary;
  readonly cpuMs: Summary;
  readonly rawReadMs: Summary;
  readonly vsRawRead: Summary;
  /** The first open in this process (JIT not warmed up), as a server's start is. */
  readonly firstMs: number;
  /** The first open of the row: its memory figures (later opens reuse what the allocator kept, so their RSS growth understates). */
  readonly first: OpenRun;
  readonly rate: Summary;
  readonly peakRss: Summary;
  readonly peakHeap: Summary;
  readonly peakExternal: Summary;
  readonly retainedRss: Summary;
  readonly retainedHeap: Summary;
  readonly retainedExternal: Summary;
  readonly middleRss: Summary;
}

function summarizeRuns(label: string, xs: readonly OpenRun[]): Row {
  return {
    label,
    ms: summarize(xs.map((x) => x.ms)),
    cpuMs: summarize(xs.map((x) => x.cpuMs)),
    rawReadMs: summarize(xs.map((x) => x.rawReadMs)),
    vsRawRead: summarize(xs.map((x) => x.vsRawRead)),
    firstMs: xs[0]!.ms,
    first: xs[0]!,
    rate: summarize(xs.map((x) => (x.bytesRead / x.ms) * 1000)),
    peakRss: summarize(xs.map((x) => x.peakRss)),
    peakHeap: summarize(xs.map((x) => x.peakHeap)),
    peakExternal: summarize(xs.map((x) => x.peakExternal)),
    retainedRss: summarize(xs.map((x) => x.retainedRss)),
    retainedHeap: summarize(xs.map((x) => x.retainedHeap)),
    retainedExternal: summarize(xs.map((x) => x.retainedExternal)),
    middleRss: summarize(xs.map((x) => x.middleRss)),
  };
}

/** A memory figure in MiB (signed: RSS can shrink). */
function mem(n: number): string {
  return `${n <= -0.5 * 2 ** 20 ? '-' : ''}${mib(Math.abs(n))}`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  checkFlags(args, ['gib', 'runs', 'entry-bytes', 'batch', 'cache-mib', 'drop-caches', 'dir', 'json']);
  const gib = numArg(args, 'gib', 1);
  const runs = intArg(args, 'runs', 5);
  const entryBytes = intArg(args, 'entry-bytes', 1024);
  const batch = intArg(args, 'batch', 1024);
  const cacheBytes = args.has('cache-mib') ? intArg(args, 'cache-mib', 64) * 2 ** 20 : undefined;
  const wantCold = args.get('drop-caches') === true;
  const json = args.get('json') === true;
  const scratch = scratchDir('recovery', strArg(args, 'dir'));

  const recordBytes = FRAME_HEADER_BYTES + padded(18 + entryBytes);
  const entries = Math.max(1, Math.round((gib * GIB) / recordBytes));
  const goalMs = 5000 * gib;
  const cacheLimit = cacheBytes ?? DEFAULT_CACHE_BYTES;

  const head = json ? progress : out;
  head(`recovery: DiskStorage.open replaying a ${gib} GiB log (${si(entries)} entries of ${entryBytes} B), ${runs} runs`);
  head(`  ${machine()}`);
  head(`  ${describeDir(scratch.dir)}`);
  if (!hasGc()) head('  (no --expose-gc: memory figures include garbage; run through npm run bench)');

  try {
    const dir = join(scratch.dir, 'log');
    progress(`writing the log (${si(entries)} entries in saves of ${batch})`);
    const built = await buildInWorker({ dir, entries, entryBytes, batch });
    const onDisk = fs.readdirSync(join(dir, 'wal')).reduce((n, f) => n + fs.statSync(join(dir, 'wal', f)).size, 0);
    progress(`written in ${secs(built.ms)} (${mbps((built.logBytes / built.ms) * 1000)}): ${built.segments} segments, ${mib(onDisk)} on disk`);

    let coldNote: string | undefined;
    if (wantCold) {
      const r = dropCaches();
      if (!r.ok) coldNote = `--drop-caches: cannot drop the page cache here (${r.reason}); cold runs skipped`;
    }
    const doCold = wantCold && coldNote === undefined;
    if (coldNote) progress(coldNote);

    const warm: OpenRun[] = [];
    const cold: OpenRun[] = [];
    for (let r = 0; r < runs; r++) {
      const line: string[] = [];
      if (doCold) {
        const x = await openOnce(dir, built, entryBytes, cacheBytes, true);
        cold.push(x);
        line.push(`cold ${secs(x.ms)}`);
      }
      const x = await openOnce(dir, built, entryBytes, cacheBytes, false);
      warm.push(x);
      line.push(`${doCold ? 'warm ' : ''}${secs(x.ms)} (${mbps((x.bytesRead / x.ms) * 1000)}), peak RSS +${mib(x.peakRss)}, heap +${mib(x.peakHeap)}`);
      progress(`run ${r + 1}/${runs}: ${line.join(', ')}`);
    }

    const rows: Row[] = [summarizeRuns('page cache warm', warm)];
    if (doCold) rows.push(summarizeRuns('page cache dropped', cold));
    const memBound = 4 * cacheLimit;
    // Judged on the warm open: after a page-cache drop, RSS also grows by
    // node's own code pages faulting back in, whatever the replay does.
    const peakRss = rows[0]!.first.peakRss;
    const middle = rows[0]!.first.middleRss;
    const middleBound = MEMORY_NOISE_BYTES + 0.05 * (built.logBytes / 2);
    const bounded = peakRss < memBound && middle < middleBound;

    if (json) {
      out(
        JSON.stringify(
          {
            machine: machine(),
            dir: describeDir(scratch.dir),
            gib,
            entries,
            entryBytes,
            logBytes: built.logBytes,
            segments: built.segments,
            cacheBytes: cacheLimit,
            buildMs: built.ms,
            runs: rows,
            firstOpen: rows.map((r) => ({ label: r.label, ...r.first })),
            coldNote,
            goals: { timeMs: goalMs, timeMet: rows.map((r) => ({ [r.label]: r.ms.median < goalMs })), memoryBound: memBound, memoryBounded: bounded },
          },
          null,
          2,
        ),
      );
      return;
    }

    out('');
    out(
      `log: ${si(entries)} entries of ${entryBytes} B, ${mib(built.logBytes)} of records in ${built.segments} segments of 64 MiB ` +
        `(${mib(onDisk)} on disk, the last one preallocated); written in ${secs(built.ms)}; tail cache ${mib(cacheLimit)}`,
    );
    out(
      table(
        ['DiskStorage.open', 'time median (min–max)', 'CPU time', 'replay rate', 'raw read of the files', 'open vs raw read'],
        rows.map((r) => [
          r.label,
          range(r.ms, secs),
          secs(r.cpuMs.median),
          mbps(r.rate.median),
          range(r.rawReadMs, secs),
          `${r.vsRawRead.median.toFixed(1)}x (${r.vsRawRead.min.toFixed(1)}–${r.vsRawRead.max.toFixed(1)})`,
        ]),
      ),
    );
    out(
      'CPU time: of the open, all threads (GC helpers included); well below the wall time, the open waited for a core or the disk. ' +
        'replay rate: bytes the open read over its wall time. raw read: the same files read in 4 MiB reads without parsing, just before each open.',
    );
    out(`the first open of the process (JIT not warmed up, as at a server's start): ${rows.map((r) => `${r.label} ${secs(r.firstMs)}`).join(', ')}`);
    if (!doCold) {
      out(
        'note: the log had just been written, so these opens read it from the page cache, not the disk ' +
          (coldNote ? `(${coldNote})` : '(--drop-caches adds opens after dropping the page cache)'),
      );
    }
    out('');
    out(
      table(
        ['memory, first open', 'RSS before', 'peak RSS', 'peak V8 heap', 'peak off-heap', 'after open (GC): RSS', 'heap', 'off-heap', 'RSS at 25/50/75/100% of the replay'],
        rows.map(({ label, first: f }) => [
          label,
          mib(f.rssBefore),
          `+${mem(f.peakRss)}`,
          `+${mem(f.peakHeap)}`,
          `+${mem(f.peakExternal)}`,
          `+${mem(f.retainedRss)}`,
          `+${mem(f.retainedHeap)}`,
          `+${mem(f.retainedExternal)}`,
          f.curve.map((c) => `+${mem(c)}`).join(' '),
        ]),
      ),
    );
    out(
      'memory: above the level just before the open (after a full GC), sampled at every read (4 MiB) of the replay; of the first open of ' +
        'each kind: later opens reuse memory the allocator kept from it, so their RSS grows less ' +
        `(median peak RSS growth over all opens: ${rows.map((r) => `${r.label} +${mem(r.peakRss.median)}`).join(', ')}).`,
    );
    out('off-heap: ArrayBuffers (the entries read back into the tail cache at the end of the replay hold their data there). "after open": once it returned, after a full GC, storage open.');
    out('');
    for (const r of rows) {
      out(
        `goal: replay ${gib} GiB in under ${secs(goalMs)} (${r.label}): ${r.ms.median < goalMs ? 'MET' : 'NOT MET'}: ` +
          `${secs(r.ms.median)} median (${(r.ms.median / goalMs).toFixed(2)}x the goal), ${secs(r.cpuMs.median)} of CPU`,
      );
    }
    out(
      `goal: memory bounded while replaying (peak RSS growth < ${mib(memBound)}, i.e. 4x the tail cache, and growth from 25% to 75% ` +
        `of the replay < ${mib(middleBound)}, 16 MiB + 5% of the bytes replayed there; first open, page cache warm): ${bounded ? 'MET' : 'NOT MET'}: peak +${mem(peakRss)} for a ` +
        `${mib(built.logBytes)} log, ${mem(middle)} from 25% to 75%; V8 heap peak +${mem(Math.max(...rows.map((r) => r.first.peakHeap)))}`,
    );
    out(loadNow());
  } finally {
    scratch.remove();
  }
}

// ---------------------------------------------------------------------------
// The log is written by a worker thread, so that the memory the writing
// used is returned when it ends and the measuring thread starts small.

interface BuildJob {
  readonly dir: string;
  readonly entries: number;
  readonly entryBytes: number;
  readonly batch: number;
}

function buildInWorker(job: BuildJob): Promise<Built> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: job });
    let result: Built | undefined;
    w.on('message', (m: Built) => {
      result = m;
    });
    w.on('error', reject);
    w.on('exit', (code) => {
      if (result) resolve(result);
      else reject(new Error(`the worker writing the log exited with code ${code}`));
    });
  });
}

if (isMainThread) {
  runMainAsync(main);
} else {
  const job = workerData as BuildJob;
  build(job.dir, job.entries, job.entryBytes, job.batch).then(
    (b) => parentPort!.postMessage(b),
    (err: unknown) => {
      throw err;
    },
  );
}
