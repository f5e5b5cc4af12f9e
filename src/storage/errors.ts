// Typed errors of the storage layer, each with a stable `code`. Messages
// name the file, the byte offset and, where known, the log index, so that an
// operator can find the damage (and `raftkv wal verify` shows the same).

export abstract class StorageError extends Error {
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Where in the log a problem was found. */
export interface Location {
  readonly file: string;
  readonly offset: number;
  /** The log index of the record (for damage: the index the next entry would have), when known. */
  readonly index?: number;
}

function where(loc: Location): string {
  return `${loc.file} at offset ${loc.offset}${loc.index !== undefined ? ` (index ${loc.index})` : ''}`;
}

/**
 * A record that fails its checksum, or a log that does not hold together,
 * anywhere but in the torn tail of the last segment: data that was synced is
 * damaged. The member must not start: serving from a damaged log could
 * forget an entry it acknowledged.
 */
export class WalCorruptionError extends StorageError {
  readonly code = 'WAL_CORRUPT';
  constructor(
    readonly location: Location,
    readonly reason: string,
  ) {
    super(`write-ahead log corrupt: ${where(location)}: ${reason}`);
  }
}

/** The data directory belongs to another member or cluster, or to another format version. */
export class WalIdentityError extends StorageError {
  readonly code = 'WAL_WRONG_IDENTITY';
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`write-ahead log ${file} belongs elsewhere: ${reason}`);
  }
}

/**
 * A write or fdatasync failed. After a failed fsync the kernel may have
 * dropped the dirty pages (the "fsyncgate" lesson), so nothing written since
 * the last good sync can be trusted: the log stops accepting writes and the
 * member must restart and recover from what is on disk.
 */
export class WalWriteError extends StorageError {
  readonly code = 'WAL_WRITE_FAILED';
  constructor(
    readonly file: string,
    override readonly cause: Error,
  ) {
    super(`write-ahead log write to ${file} failed: ${cause.message}`);
  }
}

/** The log was closed, or failed earlier. */
export class WalClosedError extends StorageError {
  readonly code = 'WAL_CLOSED';
  constructor(reason: string) {
    super(`write-ahead log is closed: ${reason}`);
  }
}

/** A snapshot file fails its checksum or cannot be parsed. */
export class SnapshotCorruptionError extends StorageError {
  readonly code = 'SNAPSHOT_CORRUPT';
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`snapshot ${file} corrupt: ${reason}`);
  }
}

/**
 * Writing a snapshot file failed (a write, an fdatasync, the rename or the
 * directory sync). The log never named the file, so recovery is not at
 * stake; but the snapshot is not durable, and after a failed fsync the
 * caller should treat the disk as failing (see WalWriteError).
 */
export class SnapshotWriteError extends StorageError {
  readonly code = 'SNAPSHOT_WRITE_FAILED';
  constructor(
    readonly file: string,
    override readonly cause: Error,
  ) {
    super(`snapshot write to ${file} failed: ${cause.message}`);
  }
}

/** No usable snapshot, and the log does not reach back far enough to do without one. */
export class SnapshotMissingError extends StorageError {
  readonly code = 'SNAPSHOT_MISSING';
  constructor(reason: string) {
    super(`cannot recover: ${reason}`);
  }
}

/** A path given as a data directory holds no raftkv data. */
export class DataDirError extends StorageError {
  readonly code = 'DATA_DIR_INVALID';
  constructor(
    readonly dir: string,
    readonly reason: string,
  ) {
    super(`${dir} is not a raftkv data directory: ${reason}`);
  }
}

/**
 * Another process (a member still running, started twice by mistake) holds
 * the data directory: two writers would interleave their appends and each
 * remove what it takes for the other's leftovers.
 */
export class DataDirLockedError extends StorageError {
  readonly code = 'DATA_DIR_LOCKED';
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(`${dir} is in use by another process (pid ${pid}): one data directory, one member (if no such process is a member, remove ${dir}/LOCK)`);
  }
}

/** The storage layer's own bookkeeping disagrees with itself: a bug, never bad input. */
export class StorageInvariantError extends StorageError {
  readonly code = 'STORAGE_INVARIANT';
}
