// Write-ahead log: appends/s and MB/s of DiskStorage.save on the real disk, against the raw fdatasync rate and bandwidth.
//
// DiskStorage (the production Storage) over NodeFileSystem, default segment
// size (64 MiB) and tail cache. Each save() is one Ready's worth: a batch of
// entries (term 1, consecutive indexes) plus a hard state whose commit index
// trails them, as a leader persists it. Entries of 128 B and 4 KiB, in
// batches of 1, 16, 256 and 4096.
//
// Two modes:
//   - serial: one batch in flight: save, wait for its callback (the batch is
//     durable), save the next. One fdatasync per batch.
//   - concurrent: --window batches (8) submitted without waiting; each
//     callback submits the next. Batches that arrive while an fdatasync runs
//     are written and synced together (group commit): the table shows
//     batches per fdatasync, from storage.walStats(), and the most one
//     fdatasync covered.
// In concurrent mode a callback submits the next batch from setImmediate, as
// a Raft server handles its next Ready on a later turn of the event loop;
// --in-callback submits it from inside the callback instead (a test of the
// log's re-entrancy: a save() made while the log runs its callbacks).
// Each run lasts --seconds (1) and completes what it submitted; the rates
// count entries whose callback ran. "WAL MB/s" counts the bytes the log
// wrote (framing and hard states included), "payload MB/s" the entries' data.
//
// Steady state: before the runs the log is written past its first segment
// (which a new log creates sparse, with ftruncate) into a preallocated one,
// and after each run a snapshot is taken and the log compacted, so old
// segments are deleted and the disk does not fill. Rollovers and the
// background preallocation of the next segment (64 MiB of zeros) happen
// during the runs, as in production; the table counts the segments the log
// moved to in a run and how many it had to create sparse because the
// preallocated one was not ready (seen through a NodeFileSystem subclass:
// a rename is a prepared segment put in place, a truncate a sparse one).
// A reference row (--no-references skips it) measures batch 1 on a
// brand-new log instead, i.e. in the sparse first segment.
//
// Same-run baselines (bench/rawdisk.ts, as bench/fsync.ts prints them),
// measured in every round of runs, twice: just before and just after the
// configurations their goal judges (the disk's rate drifts with other
// tenants' load). Each ratio divides a run by the mean of its round's two:
//   - raw fsync: 4 KiB pwrite + fdatasync into a preallocated file, one at a
//     time. Goal: batch 1 appends/s >= 0.9x this rate.
//   - sequential bandwidth: 256 MiB of 1 MiB pwrites + one fdatasync into a
//     preallocated file (and, as references, into a fresh file, and through
//     the preallocated file in pwrites of the largest batch's payload, each
//     fdatasynced: the log's pattern with nothing else). Goal: the WAL MB/s
//     of large batches (4096 x 4 KiB) >= 80% of the first.
// The goals are printed with whether they were met; a missed goal is not a
// failure (the disk is shared and noisy). A run fails only if it did not do
// its work: a save failed, or the log does not end where it should.
//
// Files go to a new directory under os.tmpdir() (or --dir), removed at the
// end.
//
// Flags: --runs N (5) --seconds S (per run, 1) --batches 1,16,256,4096
// --sizes 128,4096 --modes serial,concurrent --window N (8) --in-callback
// --no-references --dir PATH --json

import * as fs from 'node:fs';
import { join } from 'node:path';
import { EMPTY_CONF_STATE, type Entry } from '../src/raft/index.js';
import { DiskStorage } from '../src/storage/diskStorage.js';
import { NodeFileSystem } from '../src/storage/nodeFs.js';
import {
  type Summary,
  FlagError,
  checkFlags,
  intArg,
  intListArg,
  latency,
  loadNow,
  machine,
  mbps,
  now,
  numArg,
  out,
  parseArgs,
  pct,
  percentile,
  progress,
  range,
  runMainAsync,
  si,
  strArg,
  summarize,
  table,
} from './harness.js';
import { type BandwidthRun, type FsyncRun, Bandwidth, SyncFile, allocated, describeDir, rawFsync, scratchDir, waitPrepared } from './rawdisk.js';

type Mode = 'serial' | 'concurrent';

interface Config {
  readonly mode: Mode;
  readonly size: number;
  readonly batch: number;
}

interface WalRun {
  /** Segments started during the run, and how many of them sparse (no preallocated one was ready). */
  readonly rollovers: number;
  readonly sparseRollovers: number;
  /** Segment preallocations started (each writes a segment of zeros in the background). */
  readonly allocations: number;
  /** The most batches one fdatasync covered. */
  readonly maxBatchesPerSync: number;
  readonly entries: number;
  readonly batches: number;
  readonly ms: number;
  readonly appendsPerSec: number;
  readonly batchesPerSec: number;
  readonly payloadBytesPerSec: number;
  readonly walBytesPerSec: number;
  readonly syncs: number;
  /** Latency of one save(), from the call to its callback, ms. */
  readonly p50: number;
  readonly p99: number;
}

const CLUSTER = 'bench';
const MEMBER = 1;
const CONF = { ...EMPTY_CONF_STATE, voters: [MEMBER] };
const EMPTY = new Uint8Array(0);

/**
 * NodeFileSystem that calls a hook at each fdatasync (to see how many
 * batches each one covers) and counts how segments are started: a rollover
 * renames a preallocated segment into place, or, when none is ready,
 * creates one and truncates it to size (sparse).
 */
class WatchedFs extends NodeFileSystem {
  onDatasync: (() => void) | undefined;
  renames = 0;
  truncates = 0;
  /** Segment preallocations started (each writes a whole segment of zeros). */
  allocations = 0;

  override datasync(fd: number, done: (err?: Error) => void): void {
    this.onDatasync?.();
    super.datasync(fd, done);
  }

  override rename(from: string, to: string): void {
    this.renames++;
    super.rename(from, to);
  }

  override truncate(fd: number, length: number): void {
    this.truncates++;
    super.truncate(fd, length);
  }

  override allocate(fd: number, length: number, done: (err?: Error) => void): void {
    this.allocations++;
    super.allocate(fd, length, done);
  }
}

function openLog(dir: string): { st: DiskStorage; wfs: WatchedFs } {
  const wfs = new WatchedFs();
  return { st: DiskStorage.open({ fs: wfs, dir, clusterId: CLUSTER, memberId: MEMBER }), wfs };
}

function payloadOf(size: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (i * 167 + 13) & 0xff;
  return p;
}

/**
 * Appends batches of `cfg.batch` entries for `seconds`, `window` in flight
 * (1 in serial mode), then waits for every callback.
 */
function walRun(
  { st, wfs }: { st: DiskStorage; wfs: WatchedFs },
  cfg: Config,
  seconds: number,
  window: number,
  payload: Uint8Array,
  inCallback = false,
): Promise<WalRun> {
  const inFlight = cfg.mode === 'serial' ? 1 : window;
  // Concurrent mode submits the next batch on a later turn of the event
  // loop, as a Raft server handles its next Ready (unless --in-callback).
  const deferred = cfg.mode === 'concurrent' && !inCallback;
  let scheduled = 0;
  const stats0 = { ...st.walStats() };
  const fs0 = { renames: wfs.renames, truncates: wfs.truncates, allocations: wfs.allocations };
  const first = st.lastIndex() + 1;
  let next = first;
  let submitted = 0;
  let completed = 0;
  let entries = 0;
  let failure: Error | undefined;
  let stopping = false;
  const lat: number[] = [];
  const limit = seconds * 1000;
  // Batches the log had encoded at each fdatasync: the difference is what that sync covers.
  let synced = stats0.batches;
  let maxBatchesPerSync = 0;
  wfs.onDatasync = () => {
    const b = st.walStats().batches;
    maxBatchesPerSync = Math.max(maxBatchesPerSync, b - synced);
    synced = b;
  };
  return new Promise<WalRun>((resolve, reject) => {
    const t0 = now();
    const finish = (): void => {
      const ms = now() - t0;
      wfs.onDatasync = undefined;
      if (failure) return reject(failure);
      const stats = st.walStats();
      const batches = stats.batches - stats0.batches;
      const syncs = stats.syncs - stats0.syncs;
      const walBytes = stats.bytes - stats0.bytes;
      if (completed !== submitted || batches !== submitted || entries !== submitted * cfg.batch || st.lastIndex() !== next - 1) {
        return reject(
          new Error(
            `run did not do its work: ${completed}/${submitted} saves completed, the log wrote ${batches} batches, ` +
              `ends at ${st.lastIndex()} (expected ${next - 1})`,
          ),
        );
      }
      if (syncs < 1 || walBytes < entries * cfg.size) return reject(new Error(`the log synced ${syncs} times, wrote ${walBytes} bytes`));
      lat.sort((a, b) => a - b);
      const sparseRollovers = wfs.truncates - fs0.truncates;
      resolve({
        rollovers: wfs.renames - fs0.renames + sparseRollovers,
        sparseRollovers,
        allocations: wfs.allocations - fs0.allocations,
        maxBatchesPerSync,
        entries,
        batches,
        ms,
        appendsPerSec: (entries / ms) * 1000,
        batchesPerSec: (batches / ms) * 1000,
        payloadBytesPerSec: ((entries * cfg.size) / ms) * 1000,
        walBytesPerSec: (walBytes / ms) * 1000,
        syncs,
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
      });
    };
    const submit = (): void => {
      const ents = new Array<Entry>(cfg.batch);
      const base = next;
      for (let i = 0; i < cfg.batch; i++) ents[i] = { term: 1, index: base + i, type: 'normal', data: payload };
      next += cfg.batch;
      submitted++;
      const t = now();
      st.save({ entries: ents, hardState: { term: 1, vote: MEMBER, commit: base - 1 } }, (err) => {
        const end = now();
        completed++;
        if (err) failure ??= err;
        else entries += cfg.batch;
        lat.push(end - t);
        if (end - t0 >= limit) stopping = true;
        if (!stopping && !failure) {
          if (deferred) {
            scheduled++;
            setImmediate(() => {
              scheduled--;
              submit();
            });
          } else {
            submit();
          }
        } else if (completed === submitted && scheduled === 0) {
          finish();
        }
      });
    };
    for (let k = 0; k < inFlight; k++) submit();
  });
}

/** Snapshots at the last index and compacts the log, so that its old segments are deleted. */
function release(st: DiskStorage): Promise<void> {
  const i = st.lastIndex();
  if (i <= st.snapshotIndex()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    st.createSnapshot(i, CONF, EMPTY, (err) => {
      if (err) return reject(err);
      st.compact(i);
      resolve();
    });
  });
}

/**
 * Opens a new log in `dir` and writes it past its first segment (created
 * sparse) into a preallocated one; then compacts the first away. Returns the
 * storage and whether the segment it now writes into is preallocated.
 */
async function steadyStorage(dir: string): Promise<{ log: { st: DiskStorage; wfs: WatchedFs }; preallocated: boolean }> {
  const log = openLog(dir);
  const st = log.st;
  const walDir = join(dir, 'wal');
  const big: Config = { mode: 'serial', size: 4096, batch: 1024 };
  const payload = payloadOf(big.size);
  const current = () => join(walDir, st.segmentFiles()[st.segmentFiles().length - 1]!);
  let preallocated = false;
  for (let attempt = 0; attempt < 3 && !preallocated; attempt++) {
    const segments = st.segmentFiles().length;
    while (st.segmentFiles().length === segments) {
      await waitPrepared(walDir);
      await walRun(log, big, 0.001, 1, payload);
    }
    preallocated = allocated(current());
  }
  await release(st);
  await waitPrepared(walDir);
  return { log, preallocated };
}

interface ConfigResult extends Config {
  readonly appendsPerSec: Summary;
  readonly payloadBytesPerSec: Summary;
  readonly walBytesPerSec: Summary;
  readonly batchesPerSync: Summary;
  readonly maxBatchesPerSync: Summary;
  /** Per run, median: segments started, started sparse, preallocations started. */
  readonly rollovers: Summary;
  readonly sparseRollovers: Summary;
  readonly allocations: Summary;
  readonly p50: Summary;
  readonly p99: Summary;
  /** Paired with the round's baselines: batches/s over raw fsync ops/s, WAL bytes/s over the overwrite bandwidth. */
  readonly vsFsync: Summary;
  readonly vsBandwidth: Summary;
}

/** `fsyncs` and `bws`: the round's raw fsync ops/s and overwrite bandwidth (bytes/s), one per run. */
function summarizeConfig(cfg: Config, runs: readonly WalRun[], fsyncs: readonly number[], bws: readonly number[]): ConfigResult {
  return {
    ...cfg,
    appendsPerSec: summarize(runs.map((r) => r.appendsPerSec)),
    payloadBytesPerSec: summarize(runs.map((r) => r.payloadBytesPerSec)),
    walBytesPerSec: summarize(runs.map((r) => r.walBytesPerSec)),
    batchesPerSync: summarize(runs.map((r) => r.batches / r.syncs)),
    maxBatchesPerSync: summarize(runs.map((r) => r.maxBatchesPerSync)),
    rollovers: summarize(runs.map((r) => r.rollovers)),
    sparseRollovers: summarize(runs.map((r) => r.sparseRollovers)),
    allocations: summarize(runs.map((r) => r.allocations)),
    p50: summarize(runs.map((r) => r.p50)),
    p99: summarize(runs.map((r) => r.p99)),
    vsFsync: summarize(runs.map((r, i) => r.batchesPerSec / fsyncs[i]!)),
    vsBandwidth: summarize(runs.map((r, i) => r.walBytesPerSec / bws[i]!)),
  };
}

function sizeName(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`;
}

function ratio(s: Summary): string {
  return `${s.median.toFixed(2)}x (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  checkFlags(args, ['runs', 'seconds', 'batches', 'sizes', 'modes', 'window', 'in-callback', 'no-references', 'dir', 'json']);
  const inCallback = args.get('in-callback') === true;
  const runs = intArg(args, 'runs', 5);
  const seconds = numArg(args, 'seconds', 1);
  const batches = intListArg(args, 'batches', [1, 16, 256, 4096]);
  const sizes = intListArg(args, 'sizes', [128, 4096]);
  const window = intArg(args, 'window', 8);
  const modeArg = args.get('modes') ?? 'serial,concurrent';
  if (modeArg === true) throw new FlagError('--modes needs serial, concurrent or both');
  const modes = modeArg.split(',').map((m) => {
    if (m !== 'serial' && m !== 'concurrent') throw new FlagError(`--modes: unknown mode "${m}" (serial, concurrent)`);
    return m as Mode;
  });
  const refs = args.get('no-references') !== true;
  const json = args.get('json') === true;
  const scratch = scratchDir('wal', strArg(args, 'dir'));

  const head = json ? progress : out;
  head(`write-ahead log: DiskStorage.save over NodeFileSystem, ${runs} runs of ${seconds} s per configuration`);
  head(`  ${machine()}`);
  head(`  ${describeDir(scratch.dir)}`);

  try {
    const configs: Config[] = [];
    for (const mode of modes) for (const size of sizes) for (const batch of batches) configs.push({ mode, size, batch });
    const payloads = new Map(sizes.map((s) => [s, payloadOf(s)]));

    progress('preparing the baseline files and a log in steady state (past its sparse first segment)');
    const syncFile = new SyncFile(join(scratch.dir, 'fsync-preallocated'), 'preallocated');
    const bw = new Bandwidth(scratch.dir, 256 * 1024 * 1024, 1024 * 1024);
    const logDir = join(scratch.dir, 'log');
    const { log, preallocated } = await steadyStorage(logDir);
    const st = log.st;

    progress('warm-up');
    await rawFsync(syncFile, 4096, 0.2);
    for (const cfg of configs) {
      await walRun(log, cfg, 0.1, window, payloads.get(cfg.size)!, inCallback);
      await release(st);
    }

    const fsyncs: FsyncRun[] = [];
    const largest = Math.max(...batches);
    const bwOver: BandwidthRun[] = [];
    const bwFresh: BandwidthRun[] = [];
    /** The largest batch's payload written and fdatasynced at a time, nothing else: the ceiling of any log syncing each such batch. */
    const bareBatchBytes = largest * Math.max(...sizes);
    const bwBare: BandwidthRun[] = [];
    /** Per round: the mean of the two raw fsync runs and of the two overwrite bandwidth runs around the configurations they judge. */
    const roundFsync: number[] = [];
    const roundBw: number[] = [];
    const walRuns = new Map<Config, WalRun[]>(configs.map((c) => [c, []]));
    const freshLog: WalRun[] = [];
    const freshCfg: Config = { mode: 'serial', size: sizes[0]!, batch: 1 };
    // Each round: the configurations the goals judge run between two measurements of their baseline.
    const syncBound = configs.filter((c) => c.mode === 'serial' && c.batch === 1);
    const bwBound = configs.filter((c) => c.mode === 'serial' && c.batch === largest && c.batch > 1);
    const rest = configs.filter((c) => !syncBound.includes(c) && !bwBound.includes(c));
    for (let r = 0; r < runs; r++) {
      const line: string[] = [];
      const runConfig = async (cfg: Config): Promise<void> => {
        await waitPrepared(join(logDir, 'wal'));
        const x = await walRun(log, cfg, seconds, window, payloads.get(cfg.size)!, inCallback);
        walRuns.get(cfg)!.push(x);
        await release(st);
        if (cfg.batch === 1 || cfg.batch === largest) {
          line.push(`${cfg.mode} ${cfg.batch}x${sizeName(cfg.size)} ${si(x.appendsPerSec)}/s ${mbps(x.walBytesPerSec)}`);
        }
      };
      await waitPrepared(join(logDir, 'wal'));
      const f1 = await rawFsync(syncFile, 4096, seconds);
      for (const cfg of syncBound) await runConfig(cfg);
      if (refs) {
        // A brand-new log: batch 1 in its first segment, which is sparse.
        const dir = join(scratch.dir, `fresh-${r}`);
        const fresh = openLog(dir);
        await waitPrepared(join(dir, 'wal'));
        const x = await walRun(fresh, freshCfg, seconds, window, payloads.get(freshCfg.size)!);
        fresh.st.close();
        await waitPrepared(join(dir, 'wal'));
        fs.rmSync(dir, { recursive: true, force: true });
        freshLog.push(x);
        line.push(`new log batch 1 ${si(x.appendsPerSec)}/s`);
      }
      const f2 = await rawFsync(syncFile, 4096, seconds);
      fsyncs.push(f1, f2);
      roundFsync.push((f1.opsPerSec + f2.opsPerSec) / 2);
      const o1 = await bw.run('overwrite');
      const fr = await bw.run('fresh');
      const bare = await bw.runSyncedBatches(bareBatchBytes);
      for (const cfg of bwBound) await runConfig(cfg);
      const o2 = await bw.run('overwrite');
      bwOver.push(o1, o2);
      bwFresh.push(fr);
      bwBare.push(bare);
      roundBw.push((o1.bytesPerSec + o2.bytesPerSec) / 2);
      for (const cfg of rest) await runConfig(cfg);
      line.unshift(
        `raw fsync ${si(f1.opsPerSec)}/s and ${si(f2.opsPerSec)}/s, bandwidth ${mbps(o1.bytesPerSec)} and ${mbps(o2.bytesPerSec)} ` +
          `(fresh file ${mbps(fr.bytesPerSec)}, ${sizeName(bareBatchBytes)} batches each fdatasynced ${mbps(bare.bytesPerSec)})`,
      );
      progress(`run ${r + 1}/${runs}: ${line.join(', ')}`);
    }
    st.close();
    syncFile.close();
    bw.close();

    const results = configs.map((c) => summarizeConfig(c, walRuns.get(c)!, roundFsync, roundBw));
    const freshResult = refs ? summarizeConfig(freshCfg, freshLog, roundFsync, roundBw) : undefined;
    const fsyncS = summarize(fsyncs.map((x) => x.opsPerSec));
    const fsyncP50 = summarize(fsyncs.map((x) => x.p50));
    const overS = summarize(bwOver.map((x) => x.bytesPerSec));
    const freshS = summarize(bwFresh.map((x) => x.bytesPerSec));
    const bareS = summarize(bwBare.map((x) => x.bytesPerSec));
    /** Per round: the bare pattern over the mean of that round's two overwrite runs. */
    const bareVsOver = summarize(bwBare.map((x, i) => x.bytesPerSec / roundBw[i]!));

    // Goals.
    const one = results.filter((r) => r.mode === 'serial' && r.batch === 1);
    const large = results.filter((r) => r.mode === 'serial' && r.batch === largest && r.size === Math.max(...sizes));
    const goals = [
      ...one.map((r) => ({
        goal: `serial batch 1 of ${sizeName(r.size)}: appends/s >= 0.9x the raw 4 KiB write+fdatasync rate`,
        value: r.vsFsync.median,
        met: r.vsFsync.median >= 0.9,
        text: `${ratio(r.vsFsync)}: ${si(r.appendsPerSec.median)}/s against ${si(fsyncS.median)}/s`,
      })),
      ...large.map((r) => ({
        goal: `serial batch ${r.batch} of ${sizeName(r.size)}: WAL MB/s >= 80% of the sequential write bandwidth`,
        value: r.vsBandwidth.median,
        met: r.vsBandwidth.median >= 0.8,
        text:
          `${pct(r.vsBandwidth.median)} (${pct(r.vsBandwidth.min)}–${pct(r.vsBandwidth.max)}): ${mbps(r.walBytesPerSec.median)} ` +
          `against ${mbps(overS.median)} (overwriting preallocated blocks); ${pct(r.walBytesPerSec.median / freshS.median)} of a fresh file's ${mbps(freshS.median)}; ` +
          `the bare pattern (${sizeName(bareBatchBytes)} write + fdatasync, nothing else) reached ${pct(bareVsOver.median)} (${pct(bareVsOver.min)}–${pct(bareVsOver.max)})`,
      })),
    ];

    if (json) {
      out(
        JSON.stringify(
          {
            machine: machine(),
            dir: describeDir(scratch.dir),
            runs,
            seconds,
            window,
            steadyStatePreallocated: preallocated,
            baselines: { fsyncOpsPerSec: fsyncS, fsyncP50Ms: fsyncP50, overwriteBytesPerSec: overS, freshBytesPerSec: freshS, syncedBatches: { batchBytes: bareBatchBytes, bytesPerSec: bareS, vsOverwrite: bareVsOver } },
            results,
            freshLog: freshResult,
            goals,
          },
          null,
          2,
        ),
      );
      return;
    }

    out('');
    out(
      `baselines, median (min–max) of ${runs} rounds: raw 4 KiB write+fdatasync ${range(fsyncS)}/s (p50 ${latency(fsyncP50.median)}); ` +
        `sequential write ${range(overS, mbps)} into preallocated blocks, ${range(freshS, mbps)} into a fresh file, ` +
        `${range(bareS, mbps)} in ${sizeName(bareBatchBytes)} batches each fdatasynced (${pct(bareVsOver.median)} of the first)`,
    );
    out(`the log writes into a preallocated segment after the warm-up: ${preallocated ? 'yes' : 'NO (the rollover found no preallocated segment ready)'}`);
    for (const mode of modes) {
      out('');
      out(
        mode === 'serial'
          ? 'serial: one save() in flight (save, wait for the callback, next):'
          : `concurrent: ${window} saves in flight (each callback submits the next${inCallback ? ', from inside the callback' : ''}); group commit coalesces them:`,
      );
      const rows: [string, ConfigResult][] = results.filter((r) => r.mode === mode).map((r) => [sizeName(r.size), r]);
      if (mode === 'serial' && freshResult) rows.push([`${sizeName(freshResult.size)}, new log`, freshResult]);
      out(
        table(
          ['entry', 'batch', 'appends/s median (min–max)', 'payload MB/s', 'WAL MB/s', 'batches/fdatasync (max)', 'save p50', 'save p99', 'batches/s vs fsync', 'WAL MB/s vs seq', 'new segments (sparse)'],
          rows.map(([label, r]) => [
            label,
            String(r.batch),
            range(r.appendsPerSec),
            mbps(r.payloadBytesPerSec.median),
            mbps(r.walBytesPerSec.median),
            `${r.batchesPerSync.median.toFixed(2)} (${r.maxBatchesPerSync.median})`,
            latency(r.p50.median),
            latency(r.p99.median),
            ratio(r.vsFsync),
            pct(r.vsBandwidth.median),
            r.rollovers.median === 0 ? '' : `${r.rollovers.median} (${r.sparseRollovers.median})`,
          ]),
        ),
      );
    }
    out('appends/s: entries durable per second. WAL MB/s: bytes the log wrote (records, framing, hard states).');
    out('batches/fdatasync: mean over the run, and (max) the most one fdatasync covered; median over runs.');
    out(
      'new segments (sparse): segments the log moved to during a run, median over runs, and (in brackets) how many of them it had to create ' +
        'sparse because the one being preallocated in the background was not ready yet.',
    );
    out('save p50/p99: from save() to its callback, within each run; median over runs.');
    out(
      'vs fsync / vs seq: each run over its round\'s raw fsync rate and preallocated-file bandwidth (the mean of two measurements, ' +
        'taken just before and just after the serial batch-1 runs, and the serial largest-batch runs); median (min–max) over rounds.',
    );
    if (freshResult) out('"new log": batch 1 on a brand-new log, i.e. in its first segment, which is created sparse (ftruncate) rather than preallocated.');
    out('');
    for (const g of goals) out(`goal: ${g.goal}: ${g.met ? 'MET' : 'NOT MET'}: ${g.text}`);
    out(loadNow());
  } finally {
    scratch.remove();
  }
}

runMainAsync(main);
