// Snapshot files: the state machine's state at an index, with the
// configuration as of that index (§7).
//
// A snapshot is written to a temporary file, fsynced, renamed into place and
// its directory fsynced, so a crash leaves either the whole new file or none
// of it. The file is checksummed end to end; the newest few are kept, so a
// damaged newest one can fall back to an older one plus the log.
//
// Layout: magic "RKVSNAP1" | crc32c u32 (of everything after it) |
//         meta length u32 | meta (JSON: index, term, confState, prefix?) | data
//
// A file with a "prefix" ({ file, bytes }) holds only the end of its
// snapshot: the data starts with the first `bytes` bytes of the snapshot in
// `file`, an earlier one of this member's, and goes on with the file's own.
// A member's consecutive snapshots mostly start alike (the key-value store
// adds a section of what changed to the last one: kv/snapshot.ts), so one
// is written in a fraction of its size. DiskStorage writes a whole one
// again once the chain's later files would outweigh its whole one, or the
// chain would reach past MAX_PREFIX_DEPTH files. Pruning keeps every file a
// kept one starts from.
//
// The header and the data go out as separate writes, the checksum carried
// from the one into the other: a snapshot of the server's store is tens of
// megabytes, and a file image made by concatenation would copy it once more.

import type { Snapshot, SnapshotMetadata } from '../raft/types.js';
import { PartsCursor } from './bytes.js';
import { crc32c } from './crc.js';
import { SnapshotCorruptionError, SnapshotWriteError } from './errors.js';
import { type FileHandle, type FileSystem, joinPath, readWholeFile } from './fs.js';

const MAGIC = new TextEncoder().encode('RKVSNAP1');
const HEADER_BYTES = MAGIC.length + 8;
const SNAP_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
export const DEFAULT_SNAPSHOTS_KEPT = 3;
/**
 * How much of a snapshot's data one step of a background write writes
 * before it syncs and yields (SnapshotFileWrite): a few milliseconds of
 * checksum and copy into the page cache, and a bound on the dirty pages
 * one write leaves for the WAL's fdatasyncs to wait behind.
 */
export const DEFAULT_SNAPSHOT_WRITE_CHUNK_BYTES = 4 * 1024 * 1024;

/** How many files back a snapshot's prefix may reach (through the prefixes of prefixes) before a whole one is written. */
export const MAX_PREFIX_DEPTH = 32;

/** Where a snapshot file's data starts: with the first `bytes` bytes of the snapshot in `file`. */
export interface SnapshotPrefix {
  readonly file: string;
  readonly bytes: number;
}

/** What one snapshot file holds: its metadata, its own data, and the prefix that data follows, if any. */
export interface SnapshotFileContents extends Snapshot {
  readonly prefix?: SnapshotPrefix;
}

export interface SnapshotFile {
  readonly term: number;
  readonly index: number;
  readonly name: string;
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

export function snapshotFileName(term: number, index: number): string {
  return `${hex16(term)}-${hex16(index)}.snap`;
}

/**
 * The bytes of a snapshot file before its data, the checksum field still
 * zero; `crc` is the checksum of the header's checked part (meta length and
 * meta), to be continued over the data and then set with setHeaderChecksum.
 */
function snapshotHeader(metadata: SnapshotMetadata, prefix?: SnapshotPrefix): { header: Uint8Array; crc: number } {
  const meta = new TextEncoder().encode(JSON.stringify(prefix ? { ...metadata, prefix } : metadata));
  const header = new Uint8Array(HEADER_BYTES + meta.length);
  header.set(MAGIC, 0);
  new DataView(header.buffer).setUint32(MAGIC.length + 4, meta.length, true);
  header.set(meta, HEADER_BYTES);
  return { header, crc: crc32c(header.subarray(MAGIC.length + 4)) };
}

function setHeaderChecksum(header: Uint8Array, crc: number): void {
  new DataView(header.buffer, header.byteOffset).setUint32(MAGIC.length, crc, true);
}

export function decodeSnapshotFile(name: string, bytes: Uint8Array): SnapshotFileContents {
  if (bytes.length < HEADER_BYTES) throw new SnapshotCorruptionError(name, `${bytes.length} bytes is too short`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new SnapshotCorruptionError(name, 'not a raftkv snapshot');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (crc32c(bytes.subarray(MAGIC.length + 4)) !== view.getUint32(MAGIC.length, true)) {
    throw new SnapshotCorruptionError(name, 'checksum mismatch');
  }
  const metaLength = view.getUint32(MAGIC.length + 4, true);
  if (HEADER_BYTES + metaLength > bytes.length) throw new SnapshotCorruptionError(name, 'metadata runs past the end');
  let meta: SnapshotMetadata & { prefix?: SnapshotPrefix };
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + metaLength)));
  } catch {
    throw new SnapshotCorruptionError(name, 'unreadable metadata');
  }
  if (typeof meta?.index !== 'number' || typeof meta?.term !== 'number' || !meta.confState) {
    throw new SnapshotCorruptionError(name, 'incomplete metadata');
  }
  const { prefix, ...metadata } = meta;
  const data = bytes.slice(HEADER_BYTES + metaLength);
  const checked = checkedPrefix(name, prefix);
  return checked === undefined ? { metadata, data } : { metadata, data, prefix: checked };
}

/** A metadata's prefix, if any, checked: the name of a snapshot file and a byte count. */
function checkedPrefix(name: string, prefix: SnapshotPrefix | undefined): SnapshotPrefix | undefined {
  if (prefix === undefined) return undefined;
  if (typeof prefix?.file !== 'string' || !SNAP_NAME.test(prefix.file) || !Number.isSafeInteger(prefix.bytes) || prefix.bytes < 0) {
    throw new SnapshotCorruptionError(name, 'malformed prefix in its metadata');
  }
  return { file: prefix.file, bytes: prefix.bytes };
}

function parseSnapshotFileName(name: string): SnapshotFile | undefined {
  const m = SNAP_NAME.exec(name);
  return m ? { term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16), name } : undefined;
}

/** The prefix named in a snapshot file's header, read without the data (its shape checked; the checksum, which covers the whole file, not). */
function readSnapshotHeader(fs: FileSystem, name: string, path: string): SnapshotPrefix | undefined {
  const fd = fs.open(path, false);
  try {
    const head = new Uint8Array(HEADER_BYTES);
    if (fs.read(fd, head, 0) < HEADER_BYTES) throw new RangeError('short header');
    const metaLength = new DataView(head.buffer).getUint32(MAGIC.length + 4, true);
    const meta = new Uint8Array(metaLength);
    if (fs.read(fd, meta, HEADER_BYTES) < metaLength) throw new RangeError('short metadata');
    return checkedPrefix(name, (JSON.parse(new TextDecoder().decode(meta)) as { prefix?: SnapshotPrefix }).prefix);
  } finally {
    fs.close(fd);
  }
}

/**
 * The data of chain[0], a snapshot file whose data starts with a prefix of
 * chain[1]'s, which starts with one of chain[2]'s... (the last has none),
 * copied once into place: each file's own data goes after its prefix, as
 * far as the files after it in the chain (newer) use it.
 */
function assemble(name: string, chain: readonly SnapshotFileContents[]): Uint8Array {
  const newest = chain[0]!;
  if (newest.prefix === undefined) return newest.data;
  const out = new Uint8Array(newest.prefix.bytes + newest.data.length);
  // Bytes [0, limit) of the snapshot at chain[i] are still to be filled in.
  let limit = out.length;
  for (const file of chain) {
    const start = file.prefix?.bytes ?? 0;
    if (start + file.data.length < limit) {
      throw new SnapshotCorruptionError(name, `a file of its chain holds ${start + file.data.length} bytes, ${limit} were needed`);
    }
    if (limit > start) out.set(file.data.subarray(0, limit - start), start);
    limit = Math.min(limit, start);
  }
  return out;
}

/** (At module level: V8 optimizes a closure made per call again for every call that gets hot.) */
function newestFirst(a: SnapshotFile, b: SnapshotFile): number {
  return b.index - a.index || b.term - a.term;
}

export class SnapshotStore {
  constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    private readonly keep = DEFAULT_SNAPSHOTS_KEPT,
    /** Change nothing on disk (`raftkv wal verify`). */
    private readonly readOnly = false,
  ) {
    if (!readOnly) fs.mkdirp(dir);
  }

  /** The file each snapshot file's data starts in (undefined: none), as far as read or written. */
  private readonly prefixes = new Map<string, string | undefined>();

  /** The snapshot files, newest (highest index) first. */
  list(): SnapshotFile[] {
    const out: SnapshotFile[] = [];
    for (const name of this.fs.list(this.dir)) {
      const file = parseSnapshotFileName(name);
      if (file) out.push(file);
    }
    return out.sort(newestFirst);
  }

  /**
   * Writes a snapshot durably, at once; returns its file name. (A snapshot
   * from the leader, written while its Ready waits anyway; the member's own
   * snapshots go through write(), in the background.)
   */
  save(snap: Snapshot): string {
    const name = snapshotFileName(snap.metadata.term, snap.metadata.index);
    const path = joinPath(this.dir, name);
    const tmp = `${path}.tmp`;
    this.prefixes.set(name, undefined);
    const { header, crc } = snapshotHeader(snap.metadata);
    setHeaderChecksum(header, crc32c(snap.data, crc));
    this.fs.remove(tmp);
    const fd = this.fs.create(tmp);
    try {
      this.fs.write(fd, header, 0);
      this.fs.write(fd, snap.data, header.length);
      this.fs.fsync(fd);
    } finally {
      this.fs.close(fd);
    }
    this.fs.rename(tmp, path);
    this.fs.syncDir(this.dir);
    return name;
  }

  /**
   * A write of a snapshot in the background (see SnapshotFileWrite), to be
   * started; `done` runs once the file is in place and durable, or with a
   * SnapshotWriteError. `parts`: the snapshot's data as consecutive parts,
   * if the caller has them so (then snap.data is not read).
   */
  newWrite(
    snap: Snapshot,
    chunkBytes: number,
    done: (err?: SnapshotWriteError) => void,
    parts?: readonly Uint8Array[],
    prefix?: SnapshotPrefix,
  ): SnapshotFileWrite {
    this.prefixes.set(snapshotFileName(snap.metadata.term, snap.metadata.index), prefix?.file);
    return new SnapshotFileWrite(this.fs, this.dir, snap, chunkBytes, done, parts, prefix);
  }

  /**
   * Reads and checks a snapshot file, and those its data starts with (its
   * prefix, and theirs); throws SnapshotCorruptionError if any is damaged
   * or missing. The data is assembled once, at the end.
   */
  load(file: SnapshotFile): Snapshot {
    const chain: SnapshotFileContents[] = [];
    let at: SnapshotFile = file;
    for (;;) {
      let contents: SnapshotFileContents;
      try {
        contents = this.loadOne(at);
      } catch (err) {
        if (at === file || !(err instanceof SnapshotCorruptionError)) throw err;
        throw new SnapshotCorruptionError(file.name, `its data starts in ${at.name}, which is corrupt: ${err.reason}`);
      }
      chain.push(contents);
      const prefix = contents.prefix;
      if (prefix === undefined) break;
      const base = parseSnapshotFileName(prefix.file);
      const problem =
        chain.length > MAX_PREFIX_DEPTH
          ? `its data starts in a chain of more than ${MAX_PREFIX_DEPTH} files`
          : base === undefined || base.index >= at.index
            ? `its prefix ${prefix.file} is not an earlier snapshot`
            : !this.fs.exists(joinPath(this.dir, prefix.file))
              ? `its first ${prefix.bytes} bytes are in ${prefix.file}, which is missing`
              : undefined;
      if (problem !== undefined) throw new SnapshotCorruptionError(file.name, at === file ? problem : `its data starts in ${at.name}, and ${problem.replace(/^its/, 'that one\'s')}`);
      at = base!;
    }
    return { metadata: chain[0]!.metadata, data: assemble(file.name, chain) };
  }

  /** Reads and checks one file: its own data, and the prefix that data follows. */
  private loadOne(file: SnapshotFile): SnapshotFileContents {
    const contents = decodeSnapshotFile(file.name, readWholeFile(this.fs, joinPath(this.dir, file.name)));
    if (contents.metadata.index !== file.index || contents.metadata.term !== file.term) {
      throw new SnapshotCorruptionError(file.name, `it holds index ${contents.metadata.index} term ${contents.metadata.term}`);
    }
    this.prefixes.set(file.name, contents.prefix?.file);
    return contents;
  }

  /**
   * The file `file`'s data starts in (undefined: none), from its header
   * alone (read once, then remembered); null if the header cannot be read.
   */
  private prefixFileOf(file: SnapshotFile): string | undefined | null {
    if (this.prefixes.has(file.name)) return this.prefixes.get(file.name);
    let prefix: string | undefined | null = null;
    try {
      prefix = readSnapshotHeader(this.fs, file.name, joinPath(this.dir, file.name))?.file;
    } catch {
      // unreadable: null
    }
    if (prefix !== null) this.prefixes.set(file.name, prefix);
    return prefix;
  }

  /**
   * Removes old snapshots: of those the log already names (index at or
   * below `durableIndex`, the newest snapshot marker known durable), the
   * newest `keep` stay; newer ones are not named by the log yet and stay
   * too, or a crash now could leave the log naming a deleted file. So does
   * every file one of those starts with (its prefix, and theirs); if a
   * header cannot be read, every older file.
   */
  prune(durableIndex: number): void {
    const files = this.list();
    const named = files.filter((f) => f.index <= durableIndex);
    if (named.length <= this.keep) return;
    const needed = new Set(files.filter((f) => f.index > durableIndex).map((f) => f.name));
    for (const f of named.slice(0, this.keep)) needed.add(f.name);
    const removed: string[] = [];
    // Newest first: a prefix is always an older file, so one pass follows every chain.
    for (const f of files) {
      if (!needed.has(f.name)) {
        if (f.index <= durableIndex) removed.push(f.name);
        continue;
      }
      const prefix = this.prefixFileOf(f);
      if (prefix === null) return this.removeFiles(removed);
      if (prefix !== undefined) needed.add(prefix);
    }
    this.removeFiles(removed);
  }

  private removeFiles(names: readonly string[]): void {
    if (names.length === 0) return;
    for (const name of names) {
      this.fs.remove(joinPath(this.dir, name));
      this.prefixes.delete(name);
    }
    this.fs.syncDir(this.dir);
  }

  /**
   * On open: removes what a crash (or a failed write: a full disk) while
   * writing a snapshot leaves, snapshots newer than any the log names (it
   * came between the rename and the marker) and temporary files; returns
   * their names (read-only: what it would remove). Only on open: at any
   * other time a temporary file is a write in progress.
   */
  removeOrphans(newestNamed: number): string[] {
    const orphans = [
      ...this.list()
        .filter((f) => f.index > newestNamed)
        .map((f) => f.name),
      ...this.fs.list(this.dir).filter((name) => name.endsWith('.tmp')),
    ];
    if (!this.readOnly && orphans.length > 0) {
      for (const name of orphans) this.fs.remove(joinPath(this.dir, name));
      this.fs.syncDir(this.dir);
    }
    return orphans;
  }
}

/**
 * One snapshot file written in steps, so that the member keeps serving
 * while it is written and synced: each step checksums and writes up to
 * `chunkBytes` of the data into a temporary file, then fdatasyncs it
 * through FileSystem.datasync (off the event loop for the real disk;
 * deferred in the simulator) and continues from the callback. After the
 * data, the header with the checksum of the whole; after its sync, the
 * file is closed, renamed into place and the directory synced, and only
 * then does `done` run: the caller may name the file in the log from then
 * on, never before. A crash at any step leaves a temporary file, which the
 * next open removes (SnapshotStore.list).
 *
 * Syncing each chunk rather than once at the end also keeps a large
 * snapshot from piling up dirty pages that the kernel would flush at the
 * next fdatasync of the log, or throttle a write for (Linux's
 * balance_dirty_pages).
 */
export class SnapshotFileWrite {
  private readonly tmp: string;
  private readonly path: string;
  private readonly header: Uint8Array;
  private crc: number;
  private fd: FileHandle | undefined;
  /** The data, in the parts it came in, read a chunk per step. */
  private readonly data: PartsCursor;
  /** Data bytes written so far. */
  private written = 0;
  /** Set by abandon(): when the pending sync returns, only clean up (removing the temporary file if true). */
  private abandoned: { readonly removeFile: boolean } | undefined;
  private readonly onSynced = this.synced.bind(this);

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    readonly snapshot: Snapshot,
    private readonly chunkBytes: number,
    private readonly done: (err?: SnapshotWriteError) => void,
    parts?: readonly Uint8Array[],
    /** The data starts with these bytes of an earlier snapshot, and `parts` (or the data) are the rest. */
    prefix?: SnapshotPrefix,
  ) {
    this.data = new PartsCursor(parts ?? [snapshot.data]);
    if (!(chunkBytes > 0)) throw new RangeError(`snapshot write chunk must be positive, got ${chunkBytes}`);
    this.path = joinPath(dir, snapshotFileName(snapshot.metadata.term, snapshot.metadata.index));
    this.tmp = `${this.path}.tmp`;
    ({ header: this.header, crc: this.crc } = snapshotHeader(snapshot.metadata, prefix));
  }

  start(): void {
    try {
      this.fs.remove(this.tmp);
      this.fd = this.fs.create(this.tmp);
      this.step();
    } catch (err) {
      this.failed(err as Error);
    }
  }

  /**
   * Stops the write: `done` will not run. The file is left unnamed by the
   * log, so a crash or restart needs nothing from it. With `removeFile`, the
   * temporary file is removed once the pending sync returns (the fd stays
   * open until then: closing it under a running fdatasync could hand its
   * number to another file); without, it is left for the next open to
   * remove (after close(): the next owner of the directory may already be
   * writing a file of the same name).
   */
  abandon(removeFile: boolean): void {
    this.abandoned ??= { removeFile };
  }

  /** Writes the next chunk (and after the last, the header), then syncs. */
  private step(): void {
    const fd = this.fd!;
    let budget = this.chunkBytes;
    while (budget > 0) {
      const chunk = this.data.next(budget);
      if (chunk === undefined) break;
      this.crc = crc32c(chunk, this.crc);
      this.fs.write(fd, chunk, this.header.length + this.written);
      this.written += chunk.length;
      budget -= chunk.length;
    }
    if (this.data.done) {
      setHeaderChecksum(this.header, this.crc);
      this.fs.write(fd, this.header, 0);
    }
    this.fs.datasync(fd, this.onSynced);
  }

  private synced(err?: Error): void {
    if (this.abandoned) {
      this.cleanUp(this.abandoned.removeFile);
      return;
    }
    if (err) {
      this.failed(err);
      return;
    }
    try {
      if (!this.data.done) {
        this.step();
        return;
      }
      const fd = this.fd!;
      this.fd = undefined;
      this.fs.close(fd);
      this.fs.rename(this.tmp, this.path);
      this.fs.syncDir(this.dir);
    } catch (e) {
      this.failed(e as Error);
      return;
    }
    this.done();
  }

  private failed(err: Error): void {
    this.cleanUp(true);
    this.done(new SnapshotWriteError(this.tmp, err));
  }

  /** Best effort: the next open removes temporary files anyway. */
  private cleanUp(removeFile: boolean): void {
    try {
      if (this.fd !== undefined) this.fs.close(this.fd);
    } catch {
      // already closed, or a dead disk
    }
    this.fd = undefined;
    try {
      if (removeFile) this.fs.remove(this.tmp);
    } catch {
      // a dead disk
    }
  }
}
