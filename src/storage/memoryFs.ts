// An in-memory disk that behaves like a real one across a crash: it keeps
// what was synced and, optionally, part of what was not. Every write and
// sync is counted, so a test can take the disk image a crash would leave at
// any point of a workload; the simulator crashes whole members with it.
//
// The model (POSIX, as ext4 and xfs behave):
// - a write lands in the page cache; fsync/fdatasync makes the file's data
//   durable (fdatasync: what was written before the call, once it returns);
// - creating, renaming or removing a file is durable only once its
//   directory is synced;
// - after a crash, each file holds its synced content, plus (if the crash
//   is "torn") some prefix of the writes made since, the last of them
//   possibly cut short.

import type { FileHandle, FileSystem } from './fs.js';

type PendingOp =
  | { readonly kind: 'write'; readonly position: number; readonly data: Uint8Array }
  | { readonly kind: 'truncate'; readonly length: number };

/** A buffer and how many Bytes hold it. */
interface Store {
  buf: Uint8Array;
  holders: number;
}

/**
 * A file's bytes: its logical length, and a buffer holding its first
 * `filled` bytes; the rest, up to the length, are zeros without being
 * stored (a preallocated segment is mostly zeros until written). Copies
 * share the buffer until one of them changes (a crash image copies every
 * file twice, and most are never written again: sealed segments,
 * snapshots).
 */
class Bytes {
  private store: Store = { buf: EMPTY, holders: 1 };
  length = 0;
  /** Bytes from here to `length` are zeros (whatever the buffer holds there). */
  private filled = 0;

  /** `spares`: where buffers come from and go back to. */
  constructor(private readonly spares: SpareBuffers) {}

  /** A copy of `from` (sharing its buffer until either changes). */
  static copyOf(from: Bytes, spares: SpareBuffers): Bytes {
    const b = new Bytes(spares);
    b.store = from.store;
    b.store.holders++;
    b.length = from.length;
    b.filled = from.filled;
    return b;
  }

  /**
   * Lets go of the buffer (the file is gone): copies sharing it need not
   * copy it any more, and when none is left it serves another file.
   */
  release(): void {
    if (--this.store.holders === 0) this.spares.give(this.store.buf);
    this.store = { buf: EMPTY, holders: 1 };
    this.length = 0;
    this.filled = 0;
  }

  /** Copies bytes [position, position + out.length) into `out` (the caller keeps within the length). */
  read(out: Uint8Array, position: number): void {
    const stored = Math.max(0, Math.min(out.length, this.filled - position));
    if (stored > 0) out.set(this.store.buf.subarray(position, position + stored));
    if (stored < out.length) out.fill(0, stored);
  }

  /** The whole content, as a new array. */
  copy(): Uint8Array {
    const out = new Uint8Array(this.length);
    this.read(out, 0);
    return out;
  }

  /**
   * Makes the buffer this file's own, at least `n` bytes long. A growing
   * buffer doubles, or grows at once to the file's length when the file was
   * extended ahead of its data (a preallocated segment fills up to it).
   */
  private writable(n: number): void {
    const { buf, holders } = this.store;
    if (holders === 1 && n <= buf.length) return;
    const grown = Math.max(buf.length * 2, 4096, Math.min(this.length, PREALLOCATED_UP_TO));
    const next = this.spares.take(Math.max(n, holders > 1 ? buf.length : grown));
    next.set(buf.subarray(0, this.filled));
    if (holders > 1) {
      this.store.holders--;
      this.store = { buf: next, holders: 1 };
    } else {
      this.spares.give(buf);
      this.store.buf = next;
    }
  }

  apply(op: PendingOp): void {
    if (op.kind === 'truncate') {
      // Growing adds zeros past `filled`; shrinking forgets what was cut.
      this.length = op.length;
      if (this.filled > op.length) this.filled = op.length;
      return;
    }
    const end = op.position + op.data.length;
    this.writable(end);
    const buf = this.store.buf;
    if (op.position > this.filled) buf.fill(0, this.filled, op.position);
    buf.set(op.data, op.position);
    if (end > this.filled) this.filled = end;
    if (end > this.length) this.length = end;
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Buffers of files that are gone, by size, for files to come: a
 * simulated member creates a segment file every few writes, and a fresh
 * zeroed buffer for each costs more than the writes. What a buffer holds
 * does not matter: Bytes reads only what was written into it.
 */
class SpareBuffers {
  private static readonly SMALLEST = 4096;
  /** Spares kept of each size. */
  private static readonly PER_SIZE = 4;
  private readonly bySize = new Map<number, Uint8Array[]>();

  /** A buffer of `size` bytes, a spare if there is one. */
  take(size: number): Uint8Array {
    return this.bySize.get(size)?.pop() ?? new Uint8Array(size);
  }

  give(buf: Uint8Array): void {
    if (buf.length < SpareBuffers.SMALLEST) return;
    let list = this.bySize.get(buf.length);
    if (!list) {
      list = [];
      this.bySize.set(buf.length, list);
    }
    if (list.length < SpareBuffers.PER_SIZE) list.push(buf);
  }
}
/** A file extended ahead of its data gets a buffer of its whole length at its first write, up to this. */
const PREALLOCATED_UP_TO = 1 << 20;

/**
 * Copies of written data, kept until synced (a crash may keep a prefix of
 * them), cut from shared slabs: a typed array of its own costs about 1 µs
 * above 64 bytes (V8 allocates its bytes off the heap), a slice of a slab a
 * tenth of that.
 */
class CopyPool {
  private static readonly SLAB_BYTES = 64 * 1024;
  private slab = EMPTY;
  private used = 0;

  copy(data: Uint8Array): Uint8Array {
    const n = data.length;
    if (n > CopyPool.SLAB_BYTES / 8) return new Uint8Array(data);
    if (this.used + n > this.slab.length) {
      this.slab = new Uint8Array(CopyPool.SLAB_BYTES);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + n);
    out.set(data);
    this.used += (n + 7) & ~7;
    return out;
  }
}

/** The unit a disk writes atomically. */
export const SECTOR_BYTES = 512;

class Inode {
  /** What a crash keeps for certain. */
  durable: Bytes;
  /** What reads see. */
  current: Bytes;
  /** Changes since the last sync, oldest first. */
  pending: PendingOp[] = [];

  constructor(readonly spares: SpareBuffers) {
    this.durable = new Bytes(spares);
    this.current = new Bytes(spares);
  }

  /** The file is gone (no name, durable or not, and no open handle): its buffers may serve others. */
  release(): void {
    this.durable.release();
    this.current.release();
  }

  /** Makes the first `count` pending changes durable. */
  syncPending(count: number): void {
    for (let i = 0; i < count; i++) this.durable.apply(this.pending[i]!);
    this.pending.splice(0, count);
  }
}

export interface CrashOptions {
  /**
   * What survives of the unsynced writes: 'none' (only what was synced),
   * or 'torn' (a random prefix of them, the last one cut at a random sector boundary).
   */
  readonly unsynced: 'none' | 'torn';
  /** A source of numbers in [0, 1); required for 'torn'. */
  readonly random?: () => number;
}

export interface MemoryFsOptions {
  /**
   * Runs a datasync completion later. Tests leave the default (completions
   * queue until runPending()); the simulator schedules them as events.
   */
  readonly defer?: (complete: () => void) => void;
}

/** An error as node:fs would raise it. */
export class MemoryFsError extends Error {
  constructor(
    readonly code: 'ENOENT' | 'EEXIST' | 'EBADF' | 'EROFS',
    path: string,
  ) {
    super(`${code}: ${path}`);
    this.name = 'MemoryFsError';
  }
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export class MemoryFileSystem implements FileSystem {
  /** Names as reads see them. */
  private names = new Map<string, Inode>();
  /** Names as a crash would leave them. */
  private durableNames = new Map<string, Inode>();
  private dirs = new Set<string>(['/']);
  private handles = new Map<FileHandle, { inode: Inode; path: string; writable: boolean }>();
  private nextHandle = 3;
  private readonly copies = new CopyPool();
  private readonly spares = new SpareBuffers();
  private queued: (() => void)[] = [];
  private readonly defer: (complete: () => void) => void;
  /** The `defer` option given, which a crash image inherits (without one, each disk queues its own completions). */
  private readonly givenDefer: ((complete: () => void) => void) | undefined;
  /** Writes, truncations and syncs so far: the points a crash can fall between. */
  operations = 0;
  /** Bytes written and syncs, for tests and benchmarks. */
  bytesWritten = 0;
  syncs = 0;
  /** Called after every write, truncation or sync, with the operation count. */
  onOperation: ((count: number) => void) | undefined;
  /** Once set, every call fails as a dead disk would (after a simulated power cut). */
  private frozen = false;
  /** Bumped by a crash: syncs begun before it never complete. */
  private epoch = 0;

  constructor(options: MemoryFsOptions = {}) {
    this.givenDefer = options.defer;
    this.defer = options.defer ?? ((complete) => this.queued.push(complete));
  }

  /** Runs the queued datasync completions (with the default `defer`); returns how many ran. */
  runPending(): number {
    let n = 0;
    while (this.queued.length > 0) {
      const batch = this.queued;
      this.queued = [];
      for (const complete of batch) {
        complete();
        n++;
      }
    }
    return n;
  }

  /** Runs the oldest queued datasync completion (with the default `defer`); false if none was queued. */
  runNext(): boolean {
    const complete = this.queued.shift();
    complete?.();
    return complete !== undefined;
  }

  private counted(): void {
    this.operations++;
    this.onOperation?.(this.operations);
  }

  private handle(fd: FileHandle) {
    const h = this.handles.get(fd);
    if (!h) throw new MemoryFsError('EBADF', String(fd));
    return h;
  }

  private checkAlive(path: string): void {
    if (this.frozen) throw new MemoryFsError('EROFS', path);
  }

  mkdirp(path: string): void {
    this.checkAlive(path);
    let p = path.replace(/\/+$/, '') || '/';
    while (!this.dirs.has(p)) {
      this.dirs.add(p);
      p = parentOf(p);
    }
  }

  list(dir: string): string[] {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const out: string[] = [];
    for (const name of this.names.keys()) {
      if (name.startsWith(prefix) && !name.slice(prefix.length).includes('/')) out.push(name.slice(prefix.length));
    }
    return out.sort();
  }

  exists(path: string): boolean {
    return this.names.has(path) || this.dirs.has(path);
  }

  open(path: string, writable: boolean): FileHandle {
    this.checkAlive(path);
    const inode = this.names.get(path);
    if (!inode) throw new MemoryFsError('ENOENT', path);
    const fd = this.nextHandle++;
    this.handles.set(fd, { inode, path, writable });
    return fd;
  }

  create(path: string): FileHandle {
    this.checkAlive(path);
    if (this.names.has(path)) throw new MemoryFsError('EEXIST', path);
    if (!this.dirs.has(parentOf(path))) throw new MemoryFsError('ENOENT', parentOf(path));
    const inode = new Inode(this.spares);
    this.names.set(path, inode);
    const fd = this.nextHandle++;
    this.handles.set(fd, { inode, path, writable: true });
    return fd;
  }

  close(fd: FileHandle): void {
    this.handles.delete(fd);
  }

  size(fd: FileHandle): number {
    return this.handle(fd).inode.current.length;
  }

  read(fd: FileHandle, buf: Uint8Array, position: number): number {
    const { current } = this.handle(fd).inode;
    const n = Math.max(0, Math.min(buf.length, current.length - position));
    if (n > 0) current.read(n === buf.length ? buf : buf.subarray(0, n), position);
    return n;
  }

  private change(fd: FileHandle, op: PendingOp): void {
    const h = this.handle(fd);
    this.checkAlive(h.path);
    if (!h.writable) throw new MemoryFsError('EBADF', h.path);
    h.inode.current.apply(op);
    h.inode.pending.push(op);
    this.counted();
  }

  write(fd: FileHandle, data: Uint8Array, position: number): void {
    // Copy: the caller may reuse its buffer, the disk must not see that.
    this.change(fd, { kind: 'write', position, data: this.copies.copy(data) });
    this.bytesWritten += data.length;
  }

  truncate(fd: FileHandle, length: number): void {
    this.change(fd, { kind: 'truncate', length });
  }

  fsync(fd: FileHandle): void {
    const h = this.handle(fd);
    this.checkAlive(h.path);
    h.inode.syncPending(h.inode.pending.length);
    this.syncs++;
    this.counted();
  }

  datasync(fd: FileHandle, done: (err?: Error) => void): void {
    const h = this.handle(fd);
    const inode = h.inode;
    // What fdatasync promises: the writes made before the call.
    const upTo = inode.pending.length;
    const marker = inode.pending[upTo - 1];
    // Methods, bound: closures made per call would be compiled again by V8 now and then.
    this.defer(this.datasynced.bind(this, inode, marker, this.epoch, done));
  }

  /** A datasync of `inode` covering its pending changes up to `marker` completes. */
  private datasynced(inode: Inode, marker: PendingOp | undefined, epoch: number, done: (err?: Error) => void): void {
    // The machine is off, or restarted since: the call never returns.
    if (this.frozen || epoch !== this.epoch) return;
    // Later syncs may already have made some of these durable.
    const at = marker === undefined ? -1 : inode.pending.indexOf(marker);
    inode.syncPending(at + 1);
    this.syncs++;
    this.counted();
    done();
  }

  allocate(fd: FileHandle, length: number, done: (err?: Error) => void): void {
    this.defer(this.allocated.bind(this, fd, length, this.epoch, done));
  }

  private allocated(fd: FileHandle, length: number, epoch: number, done: (err?: Error) => void): void {
    if (this.frozen || epoch !== this.epoch) return;
    if (this.size(fd) < length) this.truncate(fd, length);
    this.fsync(fd);
    done();
  }

  rename(from: string, to: string): void {
    this.checkAlive(from);
    const inode = this.names.get(from);
    if (!inode) throw new MemoryFsError('ENOENT', from);
    this.names.delete(from);
    this.names.set(to, inode);
    this.counted();
  }

  remove(path: string): void {
    this.checkAlive(path);
    const inode = this.names.get(path);
    if (!inode) return;
    this.names.delete(path);
    this.counted();
    if (this.isGone(inode)) inode.release();
  }

  /** Whether nothing refers to `inode` any more: no name (durable or not) and no open handle. */
  private isGone(inode: Inode): boolean {
    for (const i of this.names.values()) if (i === inode) return false;
    for (const i of this.durableNames.values()) if (i === inode) return false;
    for (const h of this.handles.values()) if (h.inode === inode) return false;
    return true;
  }

  syncDir(dir: string): void {
    this.checkAlive(dir);
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const inDir = (name: string) => name.startsWith(prefix) && name.indexOf('/', prefix.length) === -1;
    const dropped: Inode[] = [];
    for (const [name, inode] of this.durableNames) {
      // (Deleting the current key while iterating a Map is safe.)
      if (!this.names.has(name) && inDir(name)) {
        this.durableNames.delete(name);
        dropped.push(inode);
      }
    }
    for (const [name, inode] of this.names) if (inDir(name)) this.durableNames.set(name, inode);
    for (const inode of dropped) if (this.isGone(inode)) inode.release();
    this.syncs++;
    this.counted();
  }

  /**
   * The disk a crash at this moment would leave, as a new file system; this
   * one is untouched. Files keep their synced content and, if torn, a random
   * prefix of the unsynced writes, the last one cut at a sector boundary.
   */
  crashImage(options: CrashOptions = { unsynced: 'none' }): MemoryFileSystem {
    const image = new MemoryFileSystem(this.givenDefer ? { defer: this.givenDefer } : {});
    image.dirs = new Set(this.dirs);
    this.survivors(options, image.spares, image.names, image.durableNames);
    return image;
  }

  /** The files a crash now would leave (see crashImage), into `names` and `durableNames`, their buffers from `spares`. */
  private survivors(options: CrashOptions, spares: SpareBuffers, names: Map<string, Inode>, durableNames: Map<string, Inode>): void {
    const copies = new Map<Inode, Inode>();
    for (const [name, inode] of this.durableNames) {
      let copy = copies.get(inode);
      if (!copy) {
        copy = new Inode(spares);
        copy.durable = Bytes.copyOf(inode.durable, spares);
        if (options.unsynced === 'torn' && inode.pending.length > 0) {
          const random = options.random;
          if (!random) throw new Error('a torn crash needs a random source');
          const keep = Math.floor(random() * (inode.pending.length + 1));
          for (let i = 0; i < keep; i++) copy.durable.apply(inode.pending[i]!);
          // Disks write whole sectors atomically: a write is cut at a sector boundary.
          const next = inode.pending[keep];
          if (next && next.kind === 'write') {
            const firstCut = Math.floor(next.position / SECTOR_BYTES) * SECTOR_BYTES + SECTOR_BYTES;
            const end = next.position + next.data.length;
            const cuts = Math.ceil((end - firstCut) / SECTOR_BYTES);
            if (cuts > 0) {
              const cut = firstCut + Math.floor(random() * cuts) * SECTOR_BYTES;
              copy.durable.apply({ kind: 'write', position: next.position, data: next.data.subarray(0, cut - next.position) });
            }
          }
        }
        copy.current = Bytes.copyOf(copy.durable, spares);
        copies.set(inode, copy);
      }
      names.set(name, copy);
      durableNames.set(name, copy);
    }
  }

  /** Crashes in place: what crashImage would return replaces this disk's contents. Open handles die. */
  crash(options: CrashOptions = { unsynced: 'none' }): void {
    const names = new Map<string, Inode>();
    const durableNames = new Map<string, Inode>();
    this.survivors(options, this.spares, names, durableNames);
    // The files as they were are gone: the survivors need not copy the buffers they share when written.
    for (const inode of new Set([...this.names.values(), ...this.durableNames.values()])) inode.release();
    this.names = names;
    this.durableNames = durableNames;
    this.handles.clear();
    this.queued = [];
    this.epoch++;
    this.frozen = false;
  }

  /** Stops the disk as a power cut would: later calls fail, pending syncs never complete. */
  freeze(): void {
    this.frozen = true;
  }

  /** A file's current bytes (tests: to damage a file, to compare). */
  peek(path: string): Uint8Array {
    const inode = this.names.get(path);
    if (!inode) throw new MemoryFsError('ENOENT', path);
    return inode.current.copy();
  }

  /** Replaces a file's bytes, durably (tests: to damage a file). */
  poke(path: string, bytes: Uint8Array): void {
    const inode = this.names.get(path);
    if (!inode) throw new MemoryFsError('ENOENT', path);
    inode.current = new Bytes(inode.spares);
    inode.current.apply({ kind: 'write', position: 0, data: bytes });
    inode.durable = Bytes.copyOf(inode.current, inode.spares);
    inode.pending = [];
  }
}
