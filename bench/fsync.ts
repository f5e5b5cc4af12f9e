// Raw disk: the rate of a 4 KiB write + fdatasync, and sequential write bandwidth.
//
// These are the physical limits the write-ahead log is measured against
// (bench/wal.ts measures them again, in the same run, as its baselines):
//
// 1. Durable small writes, one at a time: a 4 KiB pwrite at successive
//    offsets of a preallocated 64 MiB file (blocks already allocated, as the
//    WAL's segments are), each followed by fs.fdatasync (the asynchronous
//    call NodeFileSystem.datasync makes), awaited before the next write.
//    Gives ops/s and the latency of one write + fdatasync (p50, p99), each
//    the median over runs. With one sync per write, no log can do better.
//    References in the same run (skip with --no-references):
//      - sparse: a file only ftruncate'd to size, as the WAL creates a new
//        log's first segment: each fdatasync also allocates blocks;
//      - append: a file that grows with each write: each fdatasync also
//        commits the new file size.
// 2. Sequential write bandwidth: 256 MiB in 1 MiB pwrites and one final
//    fdatasync, timed together:
//      - overwrite: into a preallocated file: what the WAL does in a
//        preallocated segment, the baseline for its large batches;
//      - fresh: into a new file (as `dd conv=fdatasync` measures a disk),
//        where the file system also allocates the blocks: what the WAL pays
//        when it preallocates a segment by writing zeros.
//
// Files go to a new directory under os.tmpdir() (or --dir), removed at the
// end. Medians over --runs, with min-max; MB are 10^6 bytes.
//
// Flags: --runs N (5) --seconds S (per fsync run, 1) --block BYTES (4096)
// --mib N (per bandwidth run, 256) --chunk-kib N (1024) --no-references
// --dir PATH --json

import { type Summary, checkFlags, intArg, latency, loadNow, machine, mbps, numArg, out, parseArgs, progress, range, runMainAsync, si, strArg, summarize, table } from './harness.js';
import { type BandwidthRun, type FileKind, type FsyncRun, Bandwidth, SyncFile, describeDir, rawFsync, scratchDir } from './rawdisk.js';

interface FsyncResult {
  readonly kind: FileKind;
  readonly opsPerSec: Summary;
  readonly p50: Summary;
  readonly p99: Summary;
  readonly ops: number;
  /** Median over runs of this kind's ops/s over the preallocated file's in the same round. */
  readonly vsPreallocated: Summary;
}

interface BandwidthResult {
  readonly kind: 'overwrite' | 'fresh';
  readonly bytesPerSec: Summary;
  readonly syncMs: Summary;
}

const ABOUT: Record<FileKind, string> = {
  preallocated: 'preallocated (zeros, synced)',
  sparse: 'sparse (ftruncate only)',
  append: 'append (file grows)',
};

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  checkFlags(args, ['runs', 'seconds', 'block', 'mib', 'chunk-kib', 'no-references', 'dir', 'json']);
  const runs = intArg(args, 'runs', 5);
  const seconds = numArg(args, 'seconds', 1);
  const block = intArg(args, 'block', 4096);
  const mib = intArg(args, 'mib', 256);
  const chunkKib = intArg(args, 'chunk-kib', 1024);
  const refs = args.get('no-references') !== true;
  const json = args.get('json') === true;
  const scratch = scratchDir('fsync', strArg(args, 'dir'));

  const head = json ? progress : out;
  head(`raw disk: ${block} B write + fdatasync, and sequential write bandwidth; ${runs} runs`);
  head(`  ${machine()}`);
  head(`  ${describeDir(scratch.dir)}`);

  try {
    const kinds: FileKind[] = refs ? ['preallocated', 'sparse', 'append'] : ['preallocated'];
    progress('preparing files');
    const files = new Map<FileKind, SyncFile>(kinds.map((k) => [k, new SyncFile(`${scratch.dir}/fsync-${k}`, k)]));
    const bw = new Bandwidth(scratch.dir, mib * 1024 * 1024, chunkKib * 1024);
    const bwKinds: ('overwrite' | 'fresh')[] = refs ? ['overwrite', 'fresh'] : ['overwrite'];

    progress('warm-up');
    await rawFsync(files.get('preallocated')!, block, Math.min(0.2, seconds));

    const fsyncRuns = new Map<FileKind, FsyncRun[]>(kinds.map((k) => [k, []]));
    const bwRuns = new Map<string, BandwidthRun[]>(bwKinds.map((k) => [k, []]));
    for (let r = 0; r < runs; r++) {
      const line: string[] = [];
      for (const k of kinds) {
        const x = await rawFsync(files.get(k)!, block, seconds);
        fsyncRuns.get(k)!.push(x);
        line.push(`${k} ${si(x.opsPerSec)} ops/s`);
      }
      for (const k of bwKinds) {
        const x = await bw.run(k);
        bwRuns.get(k)!.push(x);
        line.push(`${k} ${mbps(x.bytesPerSec)}`);
      }
      progress(`run ${r + 1}/${runs}: ${line.join(', ')}`);
    }
    for (const f of files.values()) f.close();
    bw.close();

    const pre = fsyncRuns.get('preallocated')!;
    const fsyncResults: FsyncResult[] = kinds.map((kind) => {
      const xs = fsyncRuns.get(kind)!;
      return {
        kind,
        opsPerSec: summarize(xs.map((x) => x.opsPerSec)),
        p50: summarize(xs.map((x) => x.p50)),
        p99: summarize(xs.map((x) => x.p99)),
        ops: xs.reduce((n, x) => n + x.ops, 0),
        vsPreallocated: summarize(xs.map((x, i) => x.opsPerSec / pre[i]!.opsPerSec)),
      };
    });
    const bwResults: BandwidthResult[] = bwKinds.map((kind) => ({
      kind,
      bytesPerSec: summarize(bwRuns.get(kind)!.map((x) => x.bytesPerSec)),
      syncMs: summarize(bwRuns.get(kind)!.map((x) => x.syncMs)),
    }));

    if (json) {
      out(JSON.stringify({ machine: machine(), dir: describeDir(scratch.dir), runs, seconds, block, bandwidthBytes: mib * 2 ** 20, chunkBytes: chunkKib * 1024, fsync: fsyncResults, bandwidth: bwResults }, null, 2));
      return;
    }
    out('');
    out(`${block} B pwrite + fdatasync, one at a time, ${seconds} s per run:`);
    out(
      table(
        ['file', 'ops/s median (min–max)', 'p50 latency', 'p99 latency', 'vs preallocated', 'ops'],
        fsyncResults.map((x) => [
          ABOUT[x.kind],
          range(x.opsPerSec),
          range(x.p50, latency),
          range(x.p99, latency),
          x.kind === 'preallocated' ? '1.00x' : `${x.vsPreallocated.median.toFixed(2)}x`,
          si(x.ops),
        ]),
      ),
    );
    out('latency: one write + fdatasync; p50 and p99 within each run, median (min–max) over runs.');
    out('');
    out(`sequential write: ${mib} MiB in ${chunkKib} KiB pwrites + one fdatasync, timed together:`);
    out(
      table(
        ['file', 'MB/s median (min–max)', 'of which the fdatasync'],
        bwResults.map((x) => [
          x.kind === 'overwrite' ? 'overwrite a preallocated file' : 'fresh file (dd conv=fdatasync)',
          range(x.bytesPerSec, mbps),
          range(x.syncMs, (ms) => `${ms.toFixed(0)} ms`),
        ]),
      ),
    );
    const p = fsyncResults[0]!;
    out(
      `the limit for one fdatasync per write: ${si(p.opsPerSec.median)} writes/s (${latency(p.p50.median)} each at p50); ` +
        `sequential bandwidth: ${mbps(bwResults[0]!.bytesPerSec.median)} into preallocated blocks`,
    );
    out(loadNow());
  } finally {
    scratch.remove();
  }
}

runMainAsync(main);
