// Shared helpers for the disk benchmarks (fsync, wal, recovery): a scratch
// directory that is removed afterwards, preallocated files, the raw rate of
// a small write + fdatasync, the sequential write bandwidth, waiting out the
// log's background segment preallocation, and dropping the page cache.
// bench/fsync prints the raw numbers on their own; bench/wal measures them
// again in the same run as its baselines.
//
// Everything goes through node:fs the way src/storage/nodeFs.ts does it:
// writes with fs.writeSync at an explicit offset (pwrite), and the sync with
// the asynchronous fs.fdatasync, which runs on libuv's thread pool.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SEGMENT_BYTES } from '../src/storage/wal.js';
import { FlagError, now, percentile } from './harness.js';

// ---------------------------------------------------------------------------
// The scratch directory

export interface Scratch {
  readonly dir: string;
  /** Removes the directory and everything in it (idempotent). */
  remove(): void;
}

/**
 * A new directory under `parent` (default: os.tmpdir()), removed by
 * remove(), and on exit or Ctrl-C if the benchmark did not get that far.
 */
export function scratchDir(prefix: string, parent: string | undefined): Scratch {
  const base = parent ?? tmpdir();
  if (!fs.existsSync(base) || !fs.statSync(base).isDirectory()) throw new FlagError(`--dir ${base}: not a directory`);
  const dir = fs.mkdtempSync(join(base, `raftkv-bench-${prefix}-`));
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    remove();
    process.kill(process.pid, sig);
  };
  process.once('exit', remove);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return { dir, remove };
}

/** The file system a directory is on, as `df` names it (for the report). */
export function describeDir(dir: string): string {
  try {
    const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n');
    let best = { point: '', text: '' };
    for (const line of mounts) {
      const [dev, point, type] = line.split(' ');
      if (!dev || !point || !type) continue;
      if ((dir === point || dir.startsWith(point.endsWith('/') ? point : `${point}/`)) && point.length >= best.point.length) {
        best = { point, text: `${type} on ${dev} (mounted at ${point})` };
      }
    }
    return best.text ? `${dir}: ${best.text}` : dir;
  } catch {
    return dir;
  }
}

// ---------------------------------------------------------------------------
// Files

/** fdatasync through the same asynchronous call NodeFileSystem.datasync makes. */
export function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

const MIB = 1 << 20;

/** Writes all of `buf` at `position` (pwrite, looping on short writes), as NodeFileSystem.write. */
export function writeAll(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
}

/**
 * Creates `path` with `bytes` of real zeros, synced: the blocks are allocated,
 * as the WAL preallocates its segments (NodeFileSystem.allocate).
 */
export function preallocate(path: string, bytes: number): void {
  const fd = fs.openSync(path, 'w+');
  try {
    const zeros = new Uint8Array(Math.min(bytes, MIB));
    for (let at = 0; at < bytes; at += zeros.length) writeAll(fd, zeros.subarray(0, Math.min(zeros.length, bytes - at)), at);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** How a file for the fsync loop is prepared. */
export type FileKind =
  /** Preallocated with zeros: the WAL's segments (except the very first). */
  | 'preallocated'
  /** ftruncate'd to size, no blocks allocated: what the WAL does for a new log's first segment. */
  | 'sparse'
  /** Empty, growing with each write: every fdatasync also commits the new size. */
  | 'append';

export const FSYNC_FILE_BYTES = 64 * MIB;

/** A file for rawFsync, created once and reused across runs (a fresh one each run for 'append'). */
export class SyncFile {
  private fd: number;
  private offset = 0;
  private runs = 0;

  constructor(
    private readonly path: string,
    readonly kind: FileKind,
    readonly bytes = FSYNC_FILE_BYTES,
  ) {
    this.fd = this.create();
  }

  private create(): number {
    if (this.kind === 'preallocated') {
      preallocate(this.path, this.bytes);
      return fs.openSync(this.path, 'r+');
    }
    const fd = fs.openSync(this.path, 'w+');
    if (this.kind === 'sparse') fs.ftruncateSync(fd, this.bytes);
    fs.fsyncSync(fd);
    return fd;
  }

  /**
   * The file offset for the next write of `n` bytes. A preallocated file is
   * reused from its start when full (its blocks stay allocated); a sparse or
   * growing one is recreated, so that each write still lands on new blocks.
   */
  next(n: number): number {
    if (this.offset + n > this.bytes) {
      if (this.kind === 'preallocated') this.offset = 0;
      else this.recreate();
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  private recreate(): void {
    this.close();
    fs.rmSync(this.path, { force: true });
    this.fd = this.create();
    this.offset = 0;
  }

  /** Before a run: a growing or sparse file starts afresh each run, so runs are alike. */
  startRun(): void {
    if (this.runs++ > 0 && this.kind !== 'preallocated') this.recreate();
  }

  get handle(): number {
    return this.fd;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

export interface FsyncRun {
  readonly ops: number;
  readonly ms: number;
  readonly opsPerSec: number;
  /** Latency of one write + fdatasync, ms. */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Writes `blockBytes` at successive offsets of `file`, each followed by an
 * fdatasync (awaited), for `seconds` (and at least 10 operations): the
 * disk's rate of durable small writes, one at a time.
 */
export async function rawFsync(file: SyncFile, blockBytes: number, seconds: number): Promise<FsyncRun> {
  const block = new Uint8Array(blockBytes);
  for (let i = 0; i < blockBytes; i++) block[i] = (i * 131 + 7) & 0xff;
  file.startRun();
  const lat: number[] = [];
  const limit = seconds * 1000;
  const t0 = now();
  for (;;) {
    const t = now();
    writeAll(file.handle, block, file.next(blockBytes));
    await fdatasync(file.handle);
    const end = now();
    lat.push(end - t);
    if (end - t0 >= limit && lat.length >= 10) break;
  }
  const ms = now() - t0;
  lat.sort((a, b) => a - b);
  if (lat.length === 0) throw new Error('the fsync run did no work');
  return {
    ops: lat.length,
    ms,
    opsPerSec: (lat.length / ms) * 1000,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: lat[lat.length - 1]!,
  };
}

// ---------------------------------------------------------------------------
// Sequential bandwidth

export interface BandwidthRun {
  readonly bytes: number;
  readonly ms: number;
  readonly bytesPerSec: number;
  /** Of ms: the fdatasyncs alone (the rest is copying into the page cache). */
  readonly syncMs: number;
}

/**
 * Sequential write bandwidth: `bytes` written in `chunkBytes` pwrites, then
 * one fdatasync, timed together.
 * - 'overwrite': into a file preallocated once (the blocks exist): what the
 *   WAL does when it writes into a preallocated segment.
 * - 'fresh': into a new, empty file (removed afterwards), as `dd
 *   conv=fdatasync` measures it: the file system also allocates the blocks.
 *   The WAL pays this when it preallocates a segment with zeros.
 */
export class Bandwidth {
  private readonly chunk: Uint8Array;
  private prepared = false;

  constructor(
    private readonly dir: string,
    readonly bytes: number,
    readonly chunkBytes: number,
  ) {
    this.chunk = new Uint8Array(chunkBytes);
    for (let i = 0; i < chunkBytes; i++) this.chunk[i] = (i * 151 + 3) & 0xff;
  }

  private get overwritePath(): string {
    return join(this.dir, 'bandwidth-overwrite');
  }

  /**
   * The log's pattern with nothing else: `batchBytes` pwritten at a time,
   * each followed by an fdatasync, through the preallocated file (no
   * encoding, no rollover, no zeroing). What any log that syncs each batch
   * of that size can reach on this disk.
   */
  async runSyncedBatches(batchBytes: number): Promise<BandwidthRun> {
    const path = this.preparedOverwrite();
    const batch = new Uint8Array(batchBytes);
    for (let i = 0; i < batchBytes; i += this.chunkBytes) batch.set(this.chunk.subarray(0, Math.min(this.chunkBytes, batchBytes - i)), i);
    const fd = fs.openSync(path, 'r+');
    try {
      let syncMs = 0;
      const t0 = now();
      for (let at = 0; at + batchBytes <= this.bytes; at += batchBytes) {
        writeAll(fd, batch, at);
        const s0 = now();
        await fdatasync(fd);
        syncMs += now() - s0;
      }
      const ms = now() - t0;
      const bytes = Math.floor(this.bytes / batchBytes) * batchBytes;
      return { bytes, ms, bytesPerSec: (bytes / ms) * 1000, syncMs };
    } finally {
      fs.closeSync(fd);
    }
  }

  private preparedOverwrite(): string {
    if (!this.prepared) {
      preallocate(this.overwritePath, this.bytes);
      this.prepared = true;
    }
    return this.overwritePath;
  }

  async run(kind: 'overwrite' | 'fresh'): Promise<BandwidthRun> {
    let path: string;
    if (kind === 'overwrite') {
      path = this.preparedOverwrite();
    } else {
      path = join(this.dir, 'bandwidth-fresh');
      fs.rmSync(path, { force: true });
    }
    const fd = fs.openSync(path, kind === 'overwrite' ? 'r+' : 'w+');
    try {
      const t0 = now();
      for (let at = 0; at < this.bytes; at += this.chunkBytes) {
        writeAll(fd, this.chunk.subarray(0, Math.min(this.chunkBytes, this.bytes - at)), at);
      }
      const t1 = now();
      await fdatasync(fd);
      const ms = now() - t0;
      if (fs.fstatSync(fd).size < this.bytes) throw new Error(`bandwidth run wrote ${fs.fstatSync(fd).size} of ${this.bytes} bytes`);
      return { bytes: this.bytes, ms, bytesPerSec: (this.bytes / ms) * 1000, syncMs: ms - (t1 - t0) };
    } finally {
      fs.closeSync(fd);
      if (kind === 'fresh') fs.rmSync(path, { force: true });
    }
  }

  close(): void {
    fs.rmSync(this.overwritePath, { force: true });
  }
}

// ---------------------------------------------------------------------------
// The write-ahead log's background work

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/** Whether a file's blocks are all allocated (not sparse). */
export function allocated(path: string): boolean {
  const s = fs.statSync(path);
  return s.blocks * 512 >= s.size;
}

/**
 * Waits (up to 10 s) until the segment the write-ahead log preallocates in
 * the background (a .tmp file in its directory) is fully written, then
 * fsyncs it, so that a timed run neither competes with that write nor rolls
 * over into a sparse segment. (After close(), the log finishes such a write
 * and then removes the file.)
 */
export async function waitPrepared(walDir: string, segmentBytes = DEFAULT_SEGMENT_BYTES): Promise<void> {
  const deadline = now() + 10_000;
  for (;;) {
    const tmps = fs.readdirSync(walDir).filter((n) => n.endsWith('.tmp'));
    let pending = false;
    for (const n of tmps) {
      try {
        const s = fs.statSync(join(walDir, n));
        if (s.size < segmentBytes || s.blocks * 512 < s.size) {
          pending = true;
          continue;
        }
        // Wait for its writeback (the log's own fsync of it then returns at once).
        const fd = fs.openSync(join(walDir, n), 'r');
        try {
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        // removed meanwhile
      }
    }
    if (!pending || now() > deadline) break;
    await sleep(10);
  }
  await sleep(5); // let the log see its allocation complete
}

// ---------------------------------------------------------------------------
// Page cache

/**
 * Writes dirty pages out, then asks the kernel to drop clean caches
 * (/proc/sys/vm/drop_caches), so the next read comes from the disk. Needs
 * root outside a container; returns why not when it cannot.
 */
export function dropCaches(): { ok: true } | { ok: false; reason: string } {
  try {
    // Only clean pages can be dropped: sync(1) writes the dirty ones out first.
    spawnSync('sync', { stdio: 'ignore' });
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}
