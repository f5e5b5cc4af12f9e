// The production Storage: what the Raft core reads its stable log through,
// backed by the write-ahead log and the snapshot files.
//
// Layout of a data directory:
//   <dir>/wal/   the segments (see wal.ts)
//   <dir>/snap/  the newest snapshots (see snapshot.ts)
//
// Memory stays bounded whatever the log's length: a tail cache (64 MiB by
// default) holds the newest entries, which is what a leader sends to
// followers that keep up; older entries are read back from the segments on
// demand, through a sparse index (logIndex.ts).
//
// save() persists one Ready: the snapshot file first (so the log never
// points at a missing snapshot), then the log records in one group-committed
// write. Only when that write is durable do the entries become visible
// through the Storage interface, and the callback runs: the caller then
// advances the core.

import { LogCompactedError, LogUnavailableError, SnapshotOutOfDateError } from '../raft/errors.js';
import { limitSize, type InitialState, type Storage } from '../raft/storage.js';
import {
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
  type SnapshotMetadata,
  EMPTY_HARD_STATE,
  EMPTY_SNAPSHOT,
  ENTRY_OVERHEAD_BYTES,
  entryBytes,
} from '../raft/types.js';
import {
  SnapshotCorruptionError,
  SnapshotMissingError,
  type SnapshotWriteError,
  StorageInvariantError,
  WalClosedError,
  WalCorruptionError,
} from './errors.js';
import { type ByteParts, joinParts, partsLength, partsOf } from './bytes.js';
import { type FileLock, type FileSystem, joinPath } from './fs.js';
import { LogIndex, STRIDE } from './logIndex.js';
import { RECORD_ENTRY, type SnapshotMarker, decodeEntryRecord, entryIndex } from './record.js';
import {
  DEFAULT_SNAPSHOT_WRITE_CHUNK_BYTES,
  DEFAULT_SNAPSHOTS_KEPT,
  MAX_PREFIX_DEPTH,
  type SnapshotFile,
  type SnapshotFileWrite,
  type SnapshotPrefix,
  SnapshotStore,
  snapshotFileName,
} from './snapshot.js';
import { type Position, type RecoveryReport, Wal, positionSeq } from './wal.js';

export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

export interface DiskStorageOptions {
  readonly fs: FileSystem;
  /** The member's data directory. */
  readonly dir: string;
  /** Whose data this is; required unless read-only (see WalOptions). */
  readonly clusterId?: string;
  readonly memberId?: number;
  readonly segmentBytes?: number;
  /** Bytes of newest entries kept in memory; default 64 MiB. */
  readonly cacheBytes?: number;
  /** Snapshot files kept; default 3. */
  readonly snapshotsKept?: number;
  /** Bytes of a snapshot written per step of its background write (createSnapshot); default 4 MiB. */
  readonly snapshotWriteChunkBytes?: number;
  /** Recover without changing anything on disk, and refuse writes (`raftkv wal verify`). */
  readonly readOnly?: boolean;
}

/** One Ready's worth of durable state. */
export interface SaveBatch {
  readonly hardState?: HardState | undefined;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot | undefined;
}

export interface StorageRecovery extends RecoveryReport {
  /** The snapshot recovery started from (0 if none). */
  readonly snapshotIndex: number;
  /** Damaged snapshots passed over for an older one. */
  readonly skippedSnapshots: readonly { readonly name: string; readonly reason: string }[];
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly hardState: HardState;
}

type Callback = (err?: Error) => void;

/** A snapshot whose data, given in parts, is joined the first time it is read. */
function joinedWhenRead(metadata: SnapshotMetadata, parts: readonly Uint8Array[]): Snapshot {
  let joined: Uint8Array | undefined;
  return {
    metadata,
    get data(): Uint8Array {
      joined ??= joinParts(parts);
      return joined;
    },
  };
}

/** Parts up to this size that are not the same object are compared byte by byte (headers encoded again). */
const COMPARED_PART_BYTES = 64 * 1024;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length || a.length > COMPARED_PART_BYTES) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Our own snapshot whose file is in place: the next one's file may hold only what follows the bytes the two share. */
interface OwnSnapshotFile {
  readonly name: string;
  /** Its data, in the parts createSnapshot was given. */
  readonly parts: readonly Uint8Array[];
  /** How many files back its own prefix reaches (0: a whole file). */
  readonly depth: number;
  /** The size of the whole file its chain starts with, and the bytes of the chain's files after it (this one's included). */
  readonly wholeBytes: number;
  readonly addedBytes: number;
}

/** A snapshot of our own, waiting for its file to be written. */
interface WaitingSnapshot {
  readonly snap: Snapshot;
  readonly parts: readonly Uint8Array[];
  readonly done: Callback | undefined;
}

export class DiskStorage implements Storage {
  private readonly wal: Wal;
  private readonly snaps: SnapshotStore;
  private readonly index = new LogIndex();
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot = EMPTY_SNAPSHOT;
  /** Newest entries: cache[cacheHead..] hold indexes cacheFirst.. */
  private cache: Entry[] = [];
  private cacheHead = 0;
  private cacheFirst = 1;
  private cacheBytes = 0;
  private readonly cacheLimit: number;
  /** The newest snapshot marker known durable in the log, and how far the log may be released. */
  private durableMarkerIndex = 0;
  private releaseWanted = 0;
  /** The durable marker old snapshot files were last pruned for: pruning again changes nothing. */
  private prunedFor = -1;
  readonly recovery: StorageRecovery;
  /** During recovery: the index before the first retained entry, while its term is unknown. */
  private gapBase: number | undefined;
  private readonly readOnly: boolean;
  private readonly snapshotWriteChunkBytes: number;
  /**
   * Our own snapshot whose file is being written (createSnapshot), with the
   * callbacks waiting for it (its own, and those of older snapshots it
   * made unnecessary); then those waiting their turn.
   */
  private snapshotWrite: { readonly write: SnapshotFileWrite; readonly dones: Callback[] } | undefined;
  private snapshotsWaiting: WaitingSnapshot[] = [];
  /** Our newest snapshot whose file was written (since open, and since the last snapshot from the leader). */
  private lastOwnFile: OwnSnapshotFile | undefined;
  /** The newest snapshot from the leader appended to the log (save), durable or not. */
  private installedIndex = 0;
  /** The data directory's lock (open), released by close(). */
  private lock: FileLock | undefined;

  private constructor(options: DiskStorageOptions) {
    this.cacheLimit = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.readOnly = options.readOnly ?? false;
    this.snapshotWriteChunkBytes = options.snapshotWriteChunkBytes ?? DEFAULT_SNAPSHOT_WRITE_CHUNK_BYTES;
    this.snaps = new SnapshotStore(
      options.fs,
      joinPath(options.dir, 'snap'),
      options.snapshotsKept ?? DEFAULT_SNAPSHOTS_KEPT,
      this.readOnly,
    );
    // Replay only indexes entries; the newest (what the cache will hold) are
    // read back once at the end. Decoding and copying every entry of a long
    // log to keep the last 64 MiB of them was most of the replay's work.
    const replay: Replay = { markers: [], sawEntry: false, tail: new TailSizes(this.cacheLimit) };
    const { markers, tail } = replay;
    const { wal, report } = Wal.open(
      {
        fs: options.fs,
        dir: joinPath(options.dir, 'wal'),
        ...(options.clusterId !== undefined ? { clusterId: options.clusterId } : {}),
        ...(options.memberId !== undefined ? { memberId: options.memberId } : {}),
        ...(options.segmentBytes !== undefined ? { segmentBytes: options.segmentBytes } : {}),
        readOnly: this.readOnly,
      },
      {
        // Methods, bound: closures made per open would be compiled again by V8 for every open.
        entry: this.replayEntry.bind(this, replay),
        hardState: this.replayHardState.bind(this),
        snapshot: this.replayMarker.bind(this, replay),
      },
    );
    this.wal = wal;
    const chosen = this.chooseSnapshot(markers);
    let newestMarker = 0;
    for (const m of markers) newestMarker = Math.max(newestMarker, m.index);
    const orphans = this.snaps.removeOrphans(newestMarker);
    this.snap = chosen.snapshot;
    const s = this.snap.metadata.index;
    if (s > 0) {
      if (this.index.last < s) {
        this.index.reset(s, this.snap.metadata.term);
      } else if (this.gapBase === s) {
        // The log resumes right after the snapshot, which gives the term before it.
        this.index.compactTo(s, this.snap.metadata.term, s);
      } else if (this.gapBase !== undefined) {
        // Entries from before the snapshot survive in the segments: keep them
        // as the retention margin (a slightly slow follower gets entries, not
        // a snapshot), all but the first, whose predecessor's term is unknown.
        this.index.compact(this.index.first);
      }
      this.durableMarkerIndex = s;
    }
    this.fillCache(tail.from());
    if (this.hardState.commit > this.index.last) {
      throw new WalCorruptionError(
        { file: 'wal', offset: 0, index: this.index.last },
        `the log ends at index ${this.index.last} but index ${this.hardState.commit} was committed: entries are missing`,
      );
    }
    if (this.hardState.commit < s) this.hardState = { ...this.hardState, commit: s };
    this.recovery = {
      ...report,
      leftovers: [...report.leftovers, ...orphans],
      snapshotIndex: s,
      skippedSnapshots: chosen.skipped,
      firstIndex: this.index.first,
      lastIndex: this.index.last,
      hardState: this.hardState,
    };
  }

  /**
   * Opens (or creates) the storage in `options.dir` and recovers it. Throws
   * a StorageError naming the damage if it cannot be trusted.
   */
  static open(options: DiskStorageOptions): DiskStorage {
    // One writer per directory: a second member started on it by mistake
    // would append between the first one's records and remove its files.
    let lock: FileLock | undefined;
    if (!options.readOnly && options.fs.lock !== undefined) {
      options.fs.mkdirp(options.dir);
      lock = options.fs.lock(joinPath(options.dir, 'LOCK'));
    }
    try {
      const storage = new DiskStorage(options);
      storage.lock = lock;
      return storage;
    } catch (e) {
      lock?.release();
      throw e;
    }
  }

  /** Replay found an entry record at `position`. */
  private replayEntry(replay: Replay, index: number, term: number, payload: Uint8Array, position: Position): void {
    if ((!replay.sawEntry && index > this.index.last + 1) || index < this.index.first) {
      // What came before this entry is in released segments: the log as
      // far as replay knows starts here. (An entry below the known start
      // is a truncation there: everything known after it goes.) The term
      // before it is learnt from a snapshot marker or the snapshot.
      this.index.reset(index - 1, 0);
      replay.tail.clear();
      this.gapBase = index - 1;
    }
    replay.sawEntry = true;
    this.index.append(index, term, position);
    replay.tail.add(index, payload.length - ENTRY_RECORD_HEADER_BYTES + ENTRY_OVERHEAD_BYTES);
  }

  private replayHardState(hs: HardState): void {
    this.hardState = hs;
  }

  private replayMarker(replay: Replay, m: SnapshotMarker): void {
    replay.markers.push(m);
    this.applyMarker(m.index, m.term, m.reset);
    if (m.reset) replay.tail.clear();
  }

  /**
   * A snapshot marker: a snapshot installed from the leader replaces the log
   * (§7); one of our own leaves it as it is.
   */
  private applyMarker(index: number, term: number, reset: boolean): void {
    if (reset) {
      this.index.reset(index, term);
      this.cacheReset(index + 1);
      this.gapBase = undefined;
    } else if (index === this.gapBase) {
      // The entry before the first retained one: now its term is known.
      this.index.compactTo(index, term, index);
      this.gapBase = undefined;
    }
  }

  /**
   * The newest snapshot named by a marker in the log that reads back whole
   * and from which the log continues; damaged ones are skipped (and
   * reported) as long as an older one plus the log covers the gap.
   */
  private chooseSnapshot(markers: readonly SnapshotMarker[]): {
    snapshot: Snapshot;
    skipped: { name: string; reason: string }[];
  } {
    const skipped: { name: string; reason: string }[] = [];
    const files = this.snaps.list();
    const seen = new Set<string>();
    for (let k = markers.length - 1; k >= 0; k--) {
      const m = markers[k]!;
      const key = `${m.term}/${m.index}`;
      if (seen.has(key)) continue;
      seen.add(key);
      // The log must hold every entry after this snapshot.
      const covered =
        m.index >= this.index.first - 1 &&
        (m.index > this.index.last || m.index === this.gapBase || this.index.term(m.index) === m.term);
      if (!covered) break;
      const file: SnapshotFile | undefined = files.find((f) => f.index === m.index && f.term === m.term);
      if (!file) {
        skipped.push({ name: `${m.term}-${m.index}`, reason: 'file missing' });
        continue;
      }
      try {
        return { snapshot: this.snaps.load(file), skipped };
      } catch (err) {
        if (!(err instanceof SnapshotCorruptionError)) throw err;
        skipped.push({ name: file.name, reason: err.reason });
      }
    }
    if (this.index.first <= 1) return { snapshot: EMPTY_SNAPSHOT, skipped };
    throw new SnapshotMissingError(
      `the log starts at index ${this.index.first} and no usable snapshot covers the entries before it` +
        (skipped.length > 0 ? ` (skipped: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')})` : ''),
    );
  }

  // -------------------------------------------------------------------------
  // The tail cache

  private cacheLength(): number {
    return this.cache.length - this.cacheHead;
  }

  private cacheReset(first: number): void {
    this.cache = [];
    this.cacheHead = 0;
    this.cacheFirst = first;
    this.cacheBytes = 0;
  }

  /** After replay: reads the newest entries, from `from` on, back into the cache. */
  private fillCache(from: number): void {
    const first = Math.max(from, this.index.first);
    this.cacheReset(first);
    if (first <= this.index.last) {
      for (const e of this.readEntries(first, this.index.last + 1, Infinity).entries) this.cacheAppend(e);
    }
  }

  private cacheAppend(e: Entry): void {
    const at = e.index - this.cacheFirst;
    if (at < 0 || at > this.cacheLength()) {
      this.cacheReset(e.index);
    } else if (at < this.cacheLength()) {
      // Truncation: drop the conflicting suffix.
      for (let k = this.cacheHead + at; k < this.cache.length; k++) this.cacheBytes -= entryBytes(this.cache[k]!);
      this.cache.length = this.cacheHead + at;
    }
    this.cache.push(e);
    this.cacheBytes += entryBytes(e);
    while (this.cacheBytes > this.cacheLimit && this.cacheLength() > 1) {
      this.cacheBytes -= entryBytes(this.cache[this.cacheHead]!);
      this.cache[this.cacheHead++] = undefined as unknown as Entry;
      this.cacheFirst++;
    }
    if (this.cacheHead > 1024 && this.cacheHead * 2 > this.cache.length) {
      this.cache = this.cache.slice(this.cacheHead);
      this.cacheHead = 0;
    }
  }

  private cacheTrimFront(first: number): void {
    while (this.cacheFirst < first && this.cacheLength() > 0) {
      this.cacheBytes -= entryBytes(this.cache[this.cacheHead]!);
      this.cache[this.cacheHead++] = undefined as unknown as Entry;
      this.cacheFirst++;
    }
    if (this.cacheLength() === 0) this.cacheReset(Math.max(first, this.cacheFirst));
  }

  // -------------------------------------------------------------------------
  // Storage (read by the core)

  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  getHardState(): HardState {
    return this.hardState;
  }

  firstIndex(): number {
    return this.index.first;
  }

  lastIndex(): number {
    return this.index.last;
  }

  term(i: number): number {
    if (i < this.index.first - 1) throw new LogCompactedError(i, this.index.first);
    if (i > this.index.last) throw new LogUnavailableError(i, this.index.last);
    return this.index.term(i);
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.index.first) throw new LogCompactedError(lo, this.index.first);
    if (hi > this.index.last + 1) throw new LogUnavailableError(hi - 1, this.index.last);
    if (lo >= hi) return [];
    if (lo >= this.cacheFirst) {
      const from = this.cacheHead + lo - this.cacheFirst;
      return limitSize(this.cache.slice(from, from + hi - lo), maxBytes);
    }
    // Older than the cache: read back from the segments.
    const diskEnd = Math.min(hi, this.cacheFirst);
    const read = this.readEntries(lo, diskEnd, maxBytes);
    const out = read.entries;
    let size = read.bytes;
    if (out.length === diskEnd - lo && diskEnd < hi && size <= maxBytes) {
      for (const e of this.cache.slice(this.cacheHead, this.cacheHead + hi - diskEnd)) {
        size += entryBytes(e);
        if (size > maxBytes) break;
        out.push(e);
      }
    }
    return out;
  }

  /**
   * Reads entries [lo, hi) from disk, in order, as long as they fit in
   * `maxBytes` (at least one). `bytes` counts the entry that did not fit,
   * if one did not.
   */
  private readEntries(lo: number, hi: number, maxBytes: number): DiskRead {
    const r: DiskRead = { next: lo, end: lo, expected: lo, entries: [], bytes: 0, maxBytes, full: false, lastSeen: 0, lastSeenAt: 0 };
    // A method, bound: a closure made per read would be compiled again by V8 for every read that gets hot.
    const visit = this.readRecord.bind(this, r);
    // Extent by extent: past an extent's end its records were superseded.
    while (!r.full && r.next < hi) {
      const start = this.index.seek(r.next);
      r.end = Math.min(hi, start.extentEnd);
      r.expected = start.index;
      r.lastSeen = 0;
      this.wal.scanFrom(start.position, visit);
      if (!r.full && r.expected < r.end) throw new StorageInvariantError(`entry ${r.expected} not found on disk`);
      if (r.lastSeen > 0) this.index.learn(r.lastSeen, r.lastSeenAt);
      r.next = r.end;
    }
    return r;
  }

  /** readEntries' visitor, for the record at `position`. */
  private readRecord(r: DiskRead, payload: Uint8Array, position: Position): boolean {
    if (payload[0] !== RECORD_ENTRY) return true;
    const index = entryIndex(payload);
    if (index !== r.expected) {
      throw new StorageInvariantError(`reading entry ${r.expected} at position ${position} found entry ${index}`);
    }
    r.expected++;
    // Entries before the first wanted are only counted, not decoded.
    if (index < r.next) return true;
    if (index === r.next) this.index.learn(index, position);
    r.lastSeen = index;
    r.lastSeenAt = position;
    r.bytes += payload.length - ENTRY_RECORD_HEADER_BYTES + ENTRY_OVERHEAD_BYTES;
    if (r.entries.length > 0 && r.bytes > r.maxBytes) {
      r.full = true;
      return false;
    }
    r.entries.push(decodeEntryRecord(payload));
    return r.expected < r.end;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  snapshotIndex(): number {
    return this.snap.metadata.index;
  }

  // -------------------------------------------------------------------------
  // Writing

  /**
   * Persists one Ready's snapshot, entries and hard state. `done` runs once
   * they are durable and visible through the Storage interface, in the
   * order save() was called.
   */
  save(batch: SaveBatch, done: (err?: Error) => void): void {
    if (this.readOnly) {
      done(new WalClosedError('opened read-only'));
      return;
    }
    const snap = batch.snapshot && batch.snapshot.metadata.index > 0 ? batch.snapshot : undefined;
    if (snap) {
      if (snap.metadata.index <= this.snap.metadata.index) {
        done(new SnapshotOutOfDateError(snap.metadata.index, this.snap.metadata.index));
        return;
      }
      // The file first: the log must never name a snapshot that is not on disk.
      this.snaps.save(snap);
      this.installedIndex = snap.metadata.index;
    }
    this.wal.append(
      {
        // A snapshot in a Ready always replaces the log: the core keeps its
        // log instead when it already has the snapshot's last entry.
        ...(snap ? { snapshot: { ...snap.metadata, reset: true } } : {}),
        entries: batch.entries,
        ...(batch.hardState ? { hardState: batch.hardState } : {}),
      },
      // A method, bound: a closure made per save would be compiled again by V8 now and then.
      this.saved.bind(this, batch, snap, done),
    );
    if (snap) this.supersedeSnapshotWrites();
  }

  /** The log append of save(batch) completed: make what it wrote visible. */
  private saved(
    batch: SaveBatch,
    snap: Snapshot | undefined,
    done: (err?: Error) => void,
    err: Error | undefined,
    positions: readonly Position[],
  ): void {
    if (err) {
      done(err);
      return;
    }
    if (snap) {
      this.snap = snap;
      this.applyMarker(snap.metadata.index, snap.metadata.term, true);
      this.durableMarkerIndex = Math.max(this.durableMarkerIndex, snap.metadata.index);
    }
    const entries = batch.entries;
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      if (e.index < this.index.first) continue; // already covered by the snapshot
      this.index.append(e.index, e.term, positions[k]!);
      this.cacheAppend(e);
    }
    if (batch.hardState) this.hardState = batch.hardState;
    this.releaseSegments();
    done();
  }

  /**
   * Records a snapshot of the state machine at applied index `i`. It is the
   * current snapshot at once (snapshot() returns it: its data is in
   * memory, which is all a leader needs to send it); its file is written
   * in the background (SnapshotStore.newWrite: a snapshot of tens of
   * megabytes took the member seconds to write and fsync at once), and
   * only once the file is durable and in place is the marker appended that
   * makes recovery start from it: the log never names a file that is not
   * whole on disk. `done` runs once the marker is durable, or with the
   * error (SnapshotWriteError, or the log's).
   *
   * Until then the log is not released: compact() forgets entries at once
   * but deletes segments only up to a durable marker, so a crash meanwhile
   * recovers from the previous snapshot and the log.
   *
   * One file is written at a time. A snapshot taken while another's file
   * is being written waits; when several wait, only the newest is written
   * and the others' callbacks run with its (its marker covers them). A
   * snapshot from the leader (save) supersedes them all: the writes stop,
   * and their callbacks run once its marker is durable. close() stops
   * them with WalClosedError. `data` may come in parts (a snapshot encoded
   * in chunks): they are written and checksummed as they are, and joined
   * only if the snapshot's `data` is read (to send it to a follower).
   */
  createSnapshot(i: number, confState: ConfState, data: ByteParts, done?: Callback): Snapshot {
    this.checkWritable();
    // A snapshot from the leader already in the log replaces it: a marker of
    // ours after it, at a lower index, would name entries it dropped.
    const newest = Math.max(this.snap.metadata.index, this.installedIndex);
    if (i <= newest) throw new SnapshotOutOfDateError(i, newest);
    if (i > this.index.last) throw new StorageInvariantError(`snapshot index ${i} is beyond the last index ${this.index.last}`);
    const metadata = { index: i, term: this.term(i), confState };
    const parts = partsOf(data);
    const snap: Snapshot = data instanceof Uint8Array ? { metadata, data } : joinedWhenRead(metadata, parts);
    this.snap = snap;
    this.snapshotsWaiting.push({ snap, parts, done });
    if (!this.snapshotWrite) this.writeNextSnapshot();
    return snap;
  }

  /**
   * Starts the file of the newest waiting snapshot (if any); the older
   * waiting ones need none. If its data starts with the data of our last
   * snapshot whose file is written (the same parts, or equal small ones),
   * the file may hold only the rest and name that one as its prefix
   * (snapshot.ts; sharedWithLastFile says when).
   */
  private writeNextSnapshot(): void {
    const waiting = this.snapshotsWaiting;
    if (waiting.length === 0) return;
    this.snapshotsWaiting = [];
    const { snap, parts } = waiting[waiting.length - 1]!;
    const dones: Callback[] = [];
    for (const w of waiting) if (w.done) dones.push(w.done);
    const name = snapshotFileName(snap.metadata.term, snap.metadata.index);
    const bytes = partsLength(parts);
    const shared = this.sharedWithLastFile(parts, bytes);
    const file: OwnSnapshotFile = shared
      ? { name, parts, depth: shared.last.depth + 1, wholeBytes: shared.last.wholeBytes, addedBytes: shared.last.addedBytes + bytes - shared.prefix.bytes }
      : { name, parts, depth: 0, wholeBytes: bytes, addedBytes: 0 };
    const write = this.snaps.newWrite(
      snap,
      this.snapshotWriteChunkBytes,
      this.snapshotFileWritten.bind(this, snap, file, dones),
      shared ? parts.slice(shared.parts) : parts,
      shared?.prefix,
    );
    // Set before the write starts: a failure at once calls back into snapshotFileWritten.
    this.snapshotWrite = { write, dones };
    write.start();
  }

  /**
   * The leading parts `parts` (`partsBytes` in all) shares with our last written snapshot, if a
   * file of the rest may follow it: the chain stays within
   * MAX_PREFIX_DEPTH, and its files after the whole one hold no more bytes
   * than it does (so the files of a chain take at most twice the space of
   * a whole one, and a whole one is written again as the store grows).
   */
  private sharedWithLastFile(parts: readonly Uint8Array[], partsBytes: number): { parts: number; prefix: SnapshotPrefix; last: OwnSnapshotFile } | undefined {
    const last = this.lastOwnFile;
    if (last === undefined || last.depth >= MAX_PREFIX_DEPTH) return undefined;
    let n = 0;
    let bytes = 0;
    while (n < parts.length && n < last.parts.length && sameBytes(parts[n]!, last.parts[n]!)) bytes += parts[n++]!.length;
    const added = partsBytes - bytes;
    return bytes > 0 && last.addedBytes + added <= last.wholeBytes ? { parts: n, prefix: { file: last.name, bytes }, last } : undefined;
  }

  /** The file of our own snapshot `snap` is durable and in place (or failed): name it in the log. */
  private snapshotFileWritten(snap: Snapshot, file: OwnSnapshotFile, dones: Callback[], err: SnapshotWriteError | undefined): void {
    this.snapshotWrite = undefined;
    if (err) {
      for (const done of dones) done(err);
    } else {
      this.lastOwnFile = file;
      this.wal.append(
        { snapshot: { ...snap.metadata, reset: false }, entries: [] },
        this.markerWritten.bind(this, snap.metadata.index, dones),
      );
    }
    this.writeNextSnapshot();
  }

  /** The marker of our own snapshot at `i` is durable (or failed to be written). */
  private markerWritten(i: number, dones: readonly Callback[], err?: Error): void {
    if (!err) {
      this.durableMarkerIndex = Math.max(this.durableMarkerIndex, i);
      this.releaseSegments();
    }
    for (const done of dones) done(err);
  }

  /**
   * A snapshot from the leader was just appended to the log: it is newer
   * than all of ours (save() checks), so their files are not needed. Their
   * callbacks run once the log is durable up to here, i.e. once a snapshot
   * newer than theirs is.
   */
  private supersedeSnapshotWrites(): void {
    this.lastOwnFile = undefined; // ours are older now, and may be pruned
    const dones = this.dropSnapshotWrites(true);
    if (dones.length > 0) this.wal.append({ entries: [] }, this.supersededDurable.bind(this, dones));
  }

  private supersededDurable(dones: readonly Callback[], err?: Error): void {
    for (const done of dones) done(err);
  }

  /** Stops our snapshot writes (see SnapshotFileWrite.abandon); returns the callbacks that were waiting for them. */
  private dropSnapshotWrites(removeFile: boolean): Callback[] {
    const dones = [...(this.snapshotWrite?.dones ?? [])];
    this.snapshotWrite?.write.abandon(removeFile);
    this.snapshotWrite = undefined;
    for (const w of this.snapshotsWaiting) if (w.done) dones.push(w.done);
    this.snapshotsWaiting = [];
    return dones;
  }

  /**
   * Discards entries up to and including `compactIndex`, which a snapshot
   * must cover. Segments wholly below it are deleted once the snapshot's
   * marker is durable in the log (before that, recovery still needs them).
   */
  compact(compactIndex: number): void {
    this.checkWritable();
    if (compactIndex < this.index.first) return;
    if (compactIndex > this.snap.metadata.index) {
      throw new StorageInvariantError(`compact ${compactIndex} is beyond the snapshot at ${this.snap.metadata.index}`);
    }
    this.index.compact(compactIndex);
    this.cacheTrimFront(this.index.first);
    this.releaseWanted = Math.max(this.releaseWanted, compactIndex);
    this.releaseSegments();
  }

  /** Deletes what the newest durable snapshot marker made unnecessary: old segments and snapshots. */
  private releaseSegments(): void {
    const upTo = Math.min(this.releaseWanted, this.durableMarkerIndex);
    if (upTo > 0) {
      // Reading the oldest live entry back starts from a known position at or
      // before it (logIndex.ts), possibly in a segment of compacted entries:
      // that segment must stay. Any later read starts at or after it.
      // (Not from a learnt position: that may be forgotten, and the read then starts earlier.)
      const keepFrom = this.index.last >= this.index.first ? positionSeq(this.index.seek(this.index.first, false).position) : Infinity;
      this.wal.release(upTo, keepFrom);
    }
    if (this.prunedFor !== this.durableMarkerIndex) {
      this.snaps.prune(this.durableMarkerIndex);
      this.prunedFor = this.durableMarkerIndex;
    }
  }

  private checkWritable(): void {
    if (this.readOnly) throw new WalClosedError('opened read-only');
  }

  /** The cluster and member this data belongs to (undefined for an empty directory opened read-only). */
  get identity(): { readonly clusterId: string; readonly memberId: number } | undefined {
    return this.wal.identity;
  }

  segmentFiles(): readonly string[] {
    return this.wal.segmentFiles().map((s) => s.name);
  }

  walStats(): Wal['stats'] {
    return this.wal.stats;
  }

  /**
   * Stops writing. A snapshot file being written is abandoned (the next
   * open removes it), and its callbacks, like those of log writes not yet
   * durable, run with WalClosedError.
   */
  close(): void {
    const dones = this.dropSnapshotWrites(false);
    this.wal.close();
    this.lock?.release();
    this.lock = undefined;
    const err = new WalClosedError('closed');
    for (const done of dones) done(err);
  }
}

/** A read of entries from disk, as it goes (see DiskStorage.readEntries). */
interface DiskRead {
  /** The first entry wanted from the extent being read, and the end of what is wanted from it. */
  next: number;
  end: number;
  /** The index the next entry record must have. */
  expected: number;
  readonly entries: Entry[];
  bytes: number;
  readonly maxBytes: number;
  /** An entry did not fit in maxBytes: the read is over. */
  full: boolean;
  /** The last entry looked at, and where: the next read likely starts there (LogIndex.learn). */
  lastSeen: number;
  lastSeenAt: Position;
}

/** What the constructor's replay gathers besides the index. */
interface Replay {
  readonly markers: SnapshotMarker[];
  sawEntry: boolean;
  readonly tail: TailSizes;
}

/** The bytes of an entry record's payload before the data: type, index, term, entry type (record.ts). */
const ENTRY_RECORD_HEADER_BYTES = 18;

/**
 * During replay: the sizes of the newest entries, in groups of STRIDE
 * entries, enough to know where the newest `limit` bytes of the log begin
 * without keeping the entries themselves. A truncation drops the groups
 * after it (the group it falls in keeps its old size: a slight
 * overestimate, which only starts the cache a little earlier).
 */
class TailSizes {
  private groups: number[] = [];
  private bytes: number[] = [];
  private head = 0;
  private total = 0;

  constructor(private readonly limit: number) {}

  clear(): void {
    this.groups = [];
    this.bytes = [];
    this.head = 0;
    this.total = 0;
  }

  add(index: number, size: number): void {
    const g = Math.floor(index / STRIDE);
    while (this.groups.length > this.head && this.groups[this.groups.length - 1]! > g) {
      this.total -= this.bytes.pop()!;
      this.groups.pop();
    }
    if (this.groups.length > this.head && this.groups[this.groups.length - 1] === g) {
      this.bytes[this.bytes.length - 1]! += size;
    } else {
      this.groups.push(g);
      this.bytes.push(size);
    }
    this.total += size;
    // Forget the oldest groups while the newer ones alone fill the cache.
    while (this.groups.length - this.head > 1 && this.total - this.bytes[this.head]! >= this.limit) {
      this.total -= this.bytes[this.head]!;
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.groups.length) {
      this.groups = this.groups.slice(this.head);
      this.bytes = this.bytes.slice(this.head);
      this.head = 0;
    }
  }

  /** The first index of the newest entries that fill the cache (1 if none). */
  from(): number {
    return this.groups.length > this.head ? Math.max(1, this.groups[this.head]! * STRIDE) : 1;
  }
}
