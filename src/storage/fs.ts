// The file system the storage layer runs on, as an interface, so that the
// same write-ahead log runs over the real disk in production and over a
// recording, crashable in-memory disk in the crash-consistency tests and the
// simulator.
//
// Everything is synchronous except `datasync`, the one slow call on the hot
// path: it completes through a callback so that a server keeps serving while
// the disk flushes, and so that batches arriving meanwhile can be coalesced
// into the next write (group commit).

/** An open file. */
export type FileHandle = number;

export interface FileSystem {
  /** Creates a directory and its parents; no error if it exists. */
  mkdirp(path: string): void;
  /** Names in a directory, sorted; [] if it does not exist. */
  list(dir: string): string[];
  exists(path: string): boolean;
  /** Opens an existing file for reading (and writing, if `writable`). */
  open(path: string, writable: boolean): FileHandle;
  /** Creates a new, empty file for writing; fails if it exists. */
  create(path: string): FileHandle;
  close(fd: FileHandle): void;
  size(fd: FileHandle): number;
  /** Reads up to buf.length bytes at `position`; returns how many were read (fewer only at the end). */
  read(fd: FileHandle, buf: Uint8Array, position: number): number;
  /** Writes all of `data` at `position` into the page cache: not durable until synced. */
  write(fd: FileHandle, data: Uint8Array, position: number): void;
  /** Cuts or extends (with zeros) the file to `length` bytes; not durable until synced. */
  truncate(fd: FileHandle, length: number): void;
  /** fsync: the file's data and metadata reach the disk before this returns. */
  fsync(fd: FileHandle): void;
  /**
   * fdatasync in the background: the data written so far reaches the disk,
   * then `done` runs (with an error if the disk refused). Calls on one file
   * complete in the order they were made.
   */
  datasync(fd: FileHandle, done: (err?: Error) => void): void;
  /**
   * Extends the file to `length` bytes of real zeros in the background, so
   * that later writes into it need no block allocation (an fdatasync into a
   * preallocated file is about twice as fast as one that grows the file),
   * then makes that durable and runs `done`.
   */
  allocate(fd: FileHandle, length: number, done: (err?: Error) => void): void;
  /** Renames a file (atomically replacing `to`); durable once the directory is synced. */
  rename(from: string, to: string): void;
  /** Removes a file; no error if it does not exist. Durable once the directory is synced. */
  remove(path: string): void;
  /** Makes the directory's entries (files created, renamed, removed) durable. */
  syncDir(dir: string): void;
  /**
   * Takes `path` as this process's lock (created if missing); throws
   * DataDirLockedError while another live process holds it. A disk that
   * only one process can see (the simulator's) needs none.
   */
  lock?(path: string): FileLock;
}

/** A lock held by this process until released (or until the process dies). */
export interface FileLock {
  release(): void;
}

export function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** Reads a whole file (small files: snapshots, tests). */
export function readWholeFile(fs: FileSystem, path: string): Uint8Array {
  const fd = fs.open(path, false);
  try {
    const buf = new Uint8Array(fs.size(fd));
    let done = 0;
    while (done < buf.length) {
      const n = fs.read(fd, buf.subarray(done), done);
      if (n === 0) break;
      done += n;
    }
    return done === buf.length ? buf : buf.subarray(0, done);
  } finally {
    fs.close(fd);
  }
}
