// The write-ahead log: Raft's durable state (Figure 2: currentTerm, votedFor,
// log[]), appended to segment files and replayed on start.
//
// Writing. Each append() is one batch: a Ready's snapshot marker, entries and
// hard state. Batches go out as one write() followed by one fdatasync, and
// batches that arrive while a sync is running wait and go out together in the
// next one (group commit). A batch's callback runs only after the fdatasync
// covering it returned: nothing is reported durable before it is.
//
// Segments. A segment is preallocated with zeros (in the background, for the
// next segment, before it is needed: an fdatasync into allocated blocks is
// about twice as fast as one that grows the file). It begins with a header
// naming the format, cluster and member, then the hard state and the latest
// snapshot marker, so that any suffix of the segments replays on its own. A
// full segment ends with a seal record naming its successor.
//
// Recovery. Replay reads every segment in order. The only damage a crash can
// cause is at the end of the last segment, in the write that was in flight:
// such a torn tail is cut off and reported. Damage anywhere else, or a valid
// record after the damage, means synced data was lost: the log refuses to
// open, naming the file, offset and index.

import type { Entry, HardState } from '../raft/types.js';
import { StorageInvariantError, WalClosedError, WalCorruptionError, WalIdentityError, WalWriteError } from './errors.js';
import { type FileHandle, type FileSystem, joinPath } from './fs.js';
import {
  FRAME_HEADER_BYTES,
  MalformedRecordError,
  RECORD_ENTRY,
  RECORD_HARD_STATE,
  RECORD_HEADER,
  RECORD_FLUSH,
  RECORD_SEAL,
  RECORD_SNAPSHOT,
  RecordEncoder,
  type SnapshotMarker,
  WAL_VERSION,
  decodePayload,
  entryIndexTerm,
  padded,
} from './record.js';
import {
  type SegmentFile,
  isTornFrame,
  listSegments,
  scanOpen,
  scanTail,
  segmentFileName,
} from './segment.js';

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

export interface WalOptions {
  readonly fs: FileSystem;
  /** The directory holding the segments (created if missing). */
  readonly dir: string;
  /**
   * The cluster and member this log belongs to: a log of another is
   * refused. Required unless `readOnly`; a read-only open without them
   * takes them from the first segment.
   */
  readonly clusterId?: string;
  readonly memberId?: number;
  /** Segment size; default 64 MiB. */
  readonly segmentBytes?: number;
  /**
   * Replay without changing anything on disk (`raftkv wal verify`): a torn
   * tail is reported but not cut, leftovers are reported but not removed,
   * and the log cannot be appended to.
   */
  readonly readOnly?: boolean;
}

/** One durable step: everything a Ready asks to persist. */
export interface WalBatch {
  /** A snapshot marker (written before the entries); see SnapshotMarker. */
  readonly snapshot?: Omit<SnapshotMarker, 'type'>;
  /** Entries to append; an index at or below the last one truncates the log there first. */
  readonly entries: readonly Entry[];
  readonly hardState?: HardState;
}

/**
 * Where a record is: segment sequence number and byte offset, packed in one
 * number (seq * 2^32 + offset) so an index of positions is a flat array.
 */
export type Position = number;
const TWO_32 = 2 ** 32;
export const packPosition = (seq: number, offset: number): Position => seq * TWO_32 + offset;
export const positionSeq = (p: Position): number => Math.floor(p / TWO_32);
export const positionOffset = (p: Position): number => p % TWO_32;

/** What replay hands to the caller, record by record, in log order. */
export interface ReplayVisitor {
  /** An entry; `payload` is the record (a view: decode what you keep). */
  entry(index: number, term: number, payload: Uint8Array, position: Position): void;
  hardState(hs: HardState): void;
  snapshot(marker: SnapshotMarker): void;
}

/** What recovery found and did. */
export interface RecoveryReport {
  readonly segments: number;
  readonly records: number;
  readonly bytes: number;
  /** A crash's torn write, cut off the end of the last segment. */
  readonly tornTail?: { readonly file: string; readonly offset: number; readonly bytes: number };
  /** Leftovers of interrupted segment creation: removed (read-only: that recovery would remove). */
  readonly leftovers: readonly string[];
}

export type AppendCallback = (err: Error | undefined, positions: readonly Position[]) => void;

interface Pending {
  readonly batch: WalBatch;
  readonly done: AppendCallback;
  positions: Position[];
}

interface OpenSegment {
  readonly seq: number;
  readonly firstIndex: number;
  readonly path: string;
  readonly fd: FileHandle;
  /** Where the next record goes. */
  offset: number;
  /** Where the header, hard state and marker end: a segment with nothing past this is "empty". */
  readonly dataStart: number;
  /**
   * Created sparse (a new log's first segment, or a rollover found no
   * preallocated one ready): left as soon as one is ready (see flush).
   */
  readonly sparse: boolean;
}

/** Where replay is, from record to record and segment to segment (see Wal.replayRecord). */
interface ReplayState {
  readonly visitor: ReplayVisitor;
  /** The segment being read. */
  segment: SegmentFile | undefined;
  sawHeader: boolean;
  sealed: boolean;
  /** The size the segment was preallocated to, from its header. */
  preallocated: number;
  records: number;
  /** The index of the last entry replayed (or of the snapshot the log restarted after). */
  lastIndex: number;
  sawEntry: boolean;
  /** The damage that stopped the segment's scan. */
  error: WalCorruptionError | undefined;
}

/** Where scanFrom is: the segment, and whether its scan met a seal or the visitor stopped it. */
interface ReadScan {
  seq: number;
  readonly visit: (payload: Uint8Array, position: Position) => boolean;
  sealed: boolean;
  stopped: boolean;
}

/** A segment being preallocated in the background for the next rollover. */
interface Preparing {
  readonly path: string;
  readonly fd: FileHandle;
  ready: boolean;
}

const TEMP_SUFFIX = '.tmp';
/** Replay reads big chunks; reading old entries back for a follower, small ones, starting smaller still. */
const REPLAY_CHUNK_BYTES = 4 << 20;
const READ_CHUNK_BYTES = 64 << 10;
const READ_FIRST_BYTES = 4 << 10;

export class Wal {
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly segmentBytes: number;
  private readonly encoder = new RecordEncoder(4096);
  /** For a segment's header records and its seal (written out at once: the file system copies them). */
  private readonly segmentEncoder = new RecordEncoder(512);
  private segments: SegmentFile[] = [];
  private current!: OpenSegment;
  private preparing: Preparing | undefined;
  private tempCounter = 0;
  private queue: Pending[] = [];
  private syncing = false;
  private failure: Error | undefined;
  private closed = false;
  /** The buffer entries are read back into (one per log: reads are frequent and short). */
  private readBuffer: Uint8Array | undefined;
  /** Read handles of segments, opened on demand. */
  private readers = new Map<number, FileHandle>();
  /** The last entry index written (synced or not), the hard state and snapshot marker last written. */
  private lastIndex = 0;
  private hardState: HardState | undefined;
  private marker: SnapshotMarker | undefined;
  /** Batches written and fdatasyncs issued, for metrics and tests. */
  stats = { batches: 0, syncs: 0, bytes: 0 };
  private readonly readOnly: boolean;
  /** Whose log this is: from the options, or (read-only) from the first segment header. */
  private owner: { clusterId: string; memberId: number } | undefined;

  private constructor(options: WalOptions) {
    this.fs = options.fs;
    this.dir = options.dir;
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.readOnly = options.readOnly ?? false;
    if (options.clusterId !== undefined && options.memberId !== undefined) {
      this.owner = { clusterId: options.clusterId, memberId: options.memberId };
    } else if (!this.readOnly) {
      throw new StorageInvariantError('a write-ahead log opened for writing needs its cluster id and member id');
    }
  }

  /** The cluster and member the log belongs to (undefined for an empty log opened read-only). */
  get identity(): { readonly clusterId: string; readonly memberId: number } | undefined {
    return this.owner;
  }

  /**
   * Opens the log in `dir`, creating it if empty, and replays it into
   * `visitor`. Throws WalCorruptionError or WalIdentityError if the log
   * cannot be trusted; nothing is modified in that case.
   */
  static open(options: WalOptions, visitor: ReplayVisitor): { wal: Wal; report: RecoveryReport } {
    const wal = new Wal(options);
    const report = wal.replay(visitor);
    return { wal, report };
  }

  private path(name: string): string {
    return joinPath(this.dir, name);
  }

  // -------------------------------------------------------------------------
  // Recovery

  private replay(visitor: ReplayVisitor): RecoveryReport {
    const fs = this.fs;
    const readOnly = this.readOnly;
    if (!readOnly) fs.mkdirp(this.dir);
    const leftovers: string[] = [];
    for (const name of fs.list(this.dir)) {
      if (name.endsWith(TEMP_SUFFIX)) {
        if (!readOnly) fs.remove(this.path(name));
        leftovers.push(name);
      }
    }
    let segments = listSegments(fs, this.dir);
    for (let i = 1; i < segments.length; i++) {
      if (segments[i]!.seq !== segments[i - 1]!.seq + 1) {
        throw new WalCorruptionError(
          { file: segments[i]!.name, offset: 0 },
          `segment ${segments[i - 1]!.seq + 1} is missing between ${segments[i - 1]!.name} and ${segments[i]!.name}`,
        );
      }
    }
    let bytes = 0;
    /** One buffer for every segment: as big as the largest (up to a chunk), allocated once. */
    let chunk: Uint8Array | undefined;
    let tornTail: RecoveryReport['tornTail'];
    let last: { segment: SegmentFile; end: number; sealed: boolean } | undefined;
    const state: ReplayState = {
      visitor,
      segment: undefined,
      sawHeader: false,
      sealed: false,
      preallocated: 0,
      records: 0,
      lastIndex: 0,
      sawEntry: false,
      error: undefined,
    };
    // The visitor is a method: a closure made per replay (or per segment)
    // would be compiled again by V8 for every replay that gets hot.
    const visit = this.replayRecord.bind(this, state);

    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      const isLast = i === segments.length - 1;
      const path = this.path(segment.name);
      let fd: FileHandle | undefined = fs.open(path, false);
      state.segment = segment;
      state.sealed = false;
      state.sawHeader = false;
      state.preallocated = 0;
      state.error = undefined;
      try {
        const size = Math.min(REPLAY_CHUNK_BYTES, Math.max(fs.size(fd), FRAME_HEADER_BYTES));
        if (chunk === undefined || chunk.length < size) chunk = new Uint8Array(Math.min(REPLAY_CHUNK_BYTES, Math.max(size, 2 * (chunk?.length ?? 0))));
        const scan = scanOpen(fs, fd, chunk, visit);
        const { sealed, sawHeader, preallocated, lastIndex } = state;
        if (state.error) throw state.error;
        bytes += scan.end;
        if (!sawHeader) {
          // The header is the first thing written to a segment, synced with the
          // first batch that goes into it. Without one, this is a rollover that
          // a crash interrupted: only acceptable at the very end.
          if (!isLast || (scan.stop !== 'zero' && scan.stop !== 'eof')) {
            throw new WalCorruptionError({ file: segment.name, offset: 0 }, 'the segment header is missing or damaged');
          }
          // An interrupted rollover leaves nothing valid in the file; a
          // zeroed header in front of records is damage to synced data.
          const { syncedAfter } = scanTail(fs, fd, 0, scan.fileSize);
          if (syncedAfter !== undefined) {
            throw new WalCorruptionError(
              { file: segment.name, offset: 0 },
              `the segment header is missing or damaged, yet records after it were synced (at offset ${syncedAfter})`,
            );
          }
          fs.close(fd);
          fd = undefined;
          if (!readOnly) {
            fs.remove(path);
            fs.syncDir(this.dir);
          }
          leftovers.push(segment.name);
          segments = segments.slice(0, i);
          break;
        }
        if (!isLast) {
          if (!sealed) {
            throw new WalCorruptionError(
              { file: segment.name, offset: scan.end, index: lastIndex + 1 },
              `${describeStop(scan.stop)} before the end of a sealed segment`,
            );
          }
        } else {
          // A crash never shrinks a preallocated file: a shorter one was cut
          // by something else, unless the cut fell in the zeros past the data.
          if (scan.fileSize < preallocated && scan.stop !== 'zero') {
            throw new WalCorruptionError(
              { file: segment.name, offset: scan.end, index: lastIndex + 1 },
              `the file is ${scan.fileSize} bytes but was preallocated to ${preallocated}: it was cut short, and records at its end may be lost`,
            );
          }
          if (scan.stop !== 'eof') tornTail = this.judgeTail(segment, fd, scan.end, scan.stop, scan.fileSize, lastIndex + 1);
        }
        last = { segment, end: scan.end, sealed };
      } finally {
        if (fd !== undefined) fs.close(fd);
      }
    }

    this.segments = segments;
    this.lastIndex = state.lastIndex;
    const report = { segments: this.segments.length, records: state.records, bytes, ...(tornTail ? { tornTail } : {}), leftovers };
    if (readOnly) return report;
    if (!last) {
      this.startSegment(0, 1, undefined);
    } else if (last.sealed) {
      // A crash came after the seal but before the next segment was durable
      // (recovery removed what there was of it): start that segment now.
      this.startSegment(last.segment.seq + 1, state.lastIndex + 1, undefined);
    } else {
      const seg = last.segment;
      if (tornTail) this.zeroTail(seg, last.end, tornTail.offset + tornTail.bytes);
      const fd = fs.open(this.path(seg.name), true);
      this.current = { seq: seg.seq, firstIndex: seg.firstIndex, path: this.path(seg.name), fd, offset: last.end, dataStart: last.end, sparse: false };
    }
    this.prepareNext();
    return report;
  }

  /**
   * Replays one record of segment `s.segment` at `offset`: checks it
   * follows from what came before, and hands it to the visitor. Returns
   * false to stop the scan, with the damage in `s.error`.
   */
  private replayRecord(s: ReplayState, payload: Uint8Array, offset: number): boolean {
    const segment = s.segment!;
    const at = (index = s.lastIndex + 1) => ({ file: segment.name, offset, index });
    try {
      if (!s.sawHeader) {
        s.preallocated = this.checkHeader(segment, payload, offset);
        s.sawHeader = true;
        return true;
      }
      if (s.sealed) throw new WalCorruptionError(at(), 'a record follows the seal');
      s.records++;
      switch (payload[0]) {
        case RECORD_ENTRY: {
          const { index, term } = entryIndexTerm(payload);
          // Only the first entry replayed may start anywhere (the
          // segments before it were released after a snapshot).
          if (s.sawEntry && index > s.lastIndex + 1) {
            throw new WalCorruptionError(at(index), `entry ${index} follows entry ${s.lastIndex}: the log has a gap`);
          }
          if (index < 1) throw new WalCorruptionError(at(index), 'entry index 0');
          s.lastIndex = index;
          s.sawEntry = true;
          s.visitor.entry(index, term, payload, packPosition(segment.seq, offset));
          break;
        }
        case RECORD_HARD_STATE:
        case RECORD_SNAPSHOT: {
          const r = decodePayload(payload);
          if (r.type === 'hardState') {
            this.hardState = r.hardState;
            s.visitor.hardState(r.hardState);
          } else if (r.type === 'snapshot') {
            this.marker = r;
            s.visitor.snapshot(r);
            if (r.reset) s.lastIndex = r.index;
          }
          break;
        }
        case RECORD_FLUSH:
          break;
        case RECORD_SEAL: {
          const r = decodePayload(payload);
          if (r.type !== 'seal' || r.nextSeq !== segment.seq + 1) {
            throw new WalCorruptionError(at(), 'the seal names the wrong next segment');
          }
          s.sealed = true;
          break;
        }
        default:
          decodePayload(payload); // throws on unknown types
          throw new WalCorruptionError(at(), `unexpected record type ${payload[0]}`);
      }
    } catch (err) {
      if (err instanceof MalformedRecordError) s.error = new WalCorruptionError(at(), err.message);
      else if (err instanceof WalCorruptionError || err instanceof WalIdentityError) s.error = err as WalCorruptionError;
      else throw err;
      return false;
    }
    return true;
  }

  /** Checks a segment's header against the log's owner and the file name; returns the preallocated size. */
  private checkHeader(segment: SegmentFile, payload: Uint8Array, offset: number): number {
    const loc = { file: segment.name, offset };
    if (payload[0] !== RECORD_HEADER) throw new WalCorruptionError(loc, 'the segment does not start with a header');
    const h = decodePayload(payload);
    if (h.type !== 'header') throw new WalCorruptionError(loc, 'bad header');
    if (h.version !== WAL_VERSION) {
      throw new WalIdentityError(segment.name, `format version ${h.version}, this build reads version ${WAL_VERSION}`);
    }
    this.owner ??= { clusterId: h.clusterId, memberId: h.memberId };
    if (h.clusterId !== this.owner.clusterId) {
      throw new WalIdentityError(segment.name, `it belongs to cluster "${h.clusterId}", not "${this.owner.clusterId}"`);
    }
    if (h.memberId !== this.owner.memberId) {
      throw new WalIdentityError(segment.name, `it belongs to member ${h.memberId}, not ${this.owner.memberId}`);
    }
    if (h.seq !== segment.seq || h.firstIndex !== segment.firstIndex) {
      throw new WalCorruptionError(loc, `the header says segment ${h.seq} from index ${h.firstIndex}, the name disagrees`);
    }
    return h.segmentBytes;
  }

  /**
   * Decides whether the bytes after the last good record of the last segment
   * are a torn write (cut off and reported) or damage to synced data (refuse).
   */
  private judgeTail(
    segment: SegmentFile,
    fd: FileHandle,
    end: number,
    stop: string,
    fileSize: number,
    /** The index the damaged record would hold, if it is an entry. */
    index: number,
  ): RecoveryReport['tornTail'] {
    const at = { file: segment.name, offset: end, index };
    const { syncedAfter, dirtyEnd } = scanTail(this.fs, fd, end, fileSize);
    if (syncedAfter !== undefined) {
      throw new WalCorruptionError(
        at,
        `${describeStop(stop)}, yet a later write was synced after it (a record at offset ${syncedAfter}): synced data is damaged`,
      );
    }
    if (stop === 'checksum' && !isTornFrame(this.fs, fd, end, fileSize)) {
      throw new WalCorruptionError(at, 'checksum mismatch in a record that was written whole');
    }
    if (stop === 'length' || stop === 'padding') {
      throw new WalCorruptionError(at, describeStop(stop));
    }
    return dirtyEnd > end ? { file: segment.name, offset: end, bytes: dirtyEnd - end } : undefined;
  }

  /** Zeros a torn tail, so a later crash cannot make its leftovers look like records. */
  private zeroTail(segment: SegmentFile, from: number, to: number): void {
    const fd = this.fs.open(this.path(segment.name), true);
    try {
      this.fs.write(fd, new Uint8Array(to - from), from);
      this.fs.fsync(fd);
    } finally {
      this.fs.close(fd);
    }
  }

  // -------------------------------------------------------------------------
  // Segments

  /** Creates segment `seq` (from a preallocated file, if one is given) and writes its header records. */
  private startSegment(seq: number, firstIndex: number, prepared: Preparing | undefined): void {
    const name = segmentFileName(seq, firstIndex);
    const path = this.path(name);
    let fd: FileHandle;
    if (prepared) {
      this.fs.rename(prepared.path, path);
      fd = prepared.fd;
    } else {
      fd = this.fs.create(path);
      this.fs.truncate(fd, this.segmentBytes);
      this.fs.fsync(fd);
    }
    this.fs.syncDir(this.dir);
    this.segments.push({ seq, firstIndex, name });
    const enc = this.segmentEncoder;
    enc.reset();
    const owner = this.owner!;
    enc.header({ clusterId: owner.clusterId, memberId: owner.memberId, seq, firstIndex, segmentBytes: this.segmentBytes });
    if (this.hardState) enc.hardState(this.hardState);
    // A copy for replay's sake: it changes nothing in the log.
    if (this.marker) enc.snapshot({ ...this.marker, reset: false });
    // Written now, synced with the first batch that goes into the segment.
    this.fs.write(fd, enc.bytes(), 0);
    this.current = { seq, firstIndex, path, fd, offset: enc.length, dataStart: enc.length, sparse: prepared === undefined };
  }

  /** Seals the current segment durably and moves to the next. */
  private rollover(): void {
    const old = this.current;
    const enc = this.segmentEncoder;
    enc.reset();
    enc.seal(old.seq + 1);
    this.fs.write(old.fd, enc.bytes(), old.offset);
    this.fs.fsync(old.fd);
    this.fs.close(old.fd);
    // A preallocation still under way is not abandoned (it cannot be
    // stopped, and a second one beside it would halve both): this segment
    // is created sparse, and the preallocated file serves the next rollover.
    const prepared = this.preparing?.ready ? this.preparing : undefined;
    if (prepared) this.preparing = undefined;
    this.startSegment(old.seq + 1, this.lastIndex + 1, prepared);
    this.prepareNext();
  }

  /** Preallocates the next segment in the background. */
  private prepareNext(): void {
    if (this.preparing || this.closed) return;
    const path = this.path(`${segmentFileName(this.current.seq + 1, 0)}.${this.tempCounter++}${TEMP_SUFFIX}`);
    const fd = this.fs.create(path);
    const p: Preparing = { path, fd, ready: false };
    this.preparing = p;
    this.fs.allocate(fd, this.segmentBytes, this.prepared.bind(this, p));
  }

  /** The preallocation of `p` ended. */
  private prepared(p: Preparing, err?: Error): void {
    if (this.closed || err) {
      // Not needed any more (or failed: rollover will create one directly).
      this.discard(p);
      return;
    }
    p.ready = true;
  }

  private discard(p: Preparing): void {
    if (this.preparing === p) this.preparing = undefined;
    try {
      this.fs.close(p.fd);
      this.fs.remove(p.path);
    } catch {
      // best effort; open() removes leftovers
    }
  }

  // -------------------------------------------------------------------------
  // Writing

  /**
   * Appends a batch. `done` runs once it is durable (or with the error that
   * stopped it). Batches complete in the order they were appended.
   */
  append(batch: WalBatch, done: AppendCallback): void {
    if (this.readOnly) {
      done(new WalClosedError('opened read-only'), []);
      return;
    }
    if (this.closed || this.failure) {
      const err = this.failure ?? new WalClosedError('closed');
      done(err instanceof WalWriteError ? new WalClosedError(err.message) : err, []);
      return;
    }
    this.queue.push({ batch, done, positions: [] });
    if (!this.syncing) this.flush();
  }

  private static estimate(batch: WalBatch): number {
    let n = 256;
    for (const e of batch.entries) n += FRAME_HEADER_BYTES + padded(18 + e.data.byteLength);
    return n;
  }

  private flush(): void {
    const items = this.queue;
    this.queue = [];
    const enc = this.encoder;
    enc.reset();
    try {
      // A sparse segment makes every small fdatasync also allocate blocks
      // (20% slower for 4 KiB entries, see docs/bench.md): move to the
      // preallocated one once it is ready, rather than write into the sparse
      // one until it is full. (Its unused rest takes no disk space.)
      if (this.current.sparse && this.preparing?.ready) this.rollover();
      for (const item of items) {
        const start = this.current.offset + enc.length;
        if (start > this.current.dataStart && start + Wal.estimate(item.batch) > this.segmentBytes) {
          this.writeOut();
          this.rollover();
        }
        this.encode(item);
      }
      // Marks where this flush ends: recovery tells a write torn by a crash
      // (damage with only this flush's records after it) from damage to
      // synced data (a later flush's records after it).
      enc.flushEnd(this.stats.syncs);
      this.writeOut();
    } catch (err) {
      this.fail(new WalWriteError(this.current.path, err as Error), items);
      return;
    }
    this.syncing = true;
    this.stats.syncs++;
    this.fs.datasync(this.current.fd, this.synced.bind(this, items));
  }

  /** The fdatasync covering `items` returned. */
  private synced(items: Pending[], err?: Error): void {
    if (err) {
      this.syncing = false;
      this.fail(new WalWriteError(this.current.path, err), items);
      return;
    }
    // Still "syncing" while the callbacks run: what they append (the next
    // Ready's batch, typically) queues, and goes out in one flush after.
    try {
      for (const item of items) item.done(undefined, item.positions);
    } finally {
      this.syncing = false;
      if (this.queue.length > 0 && !this.closed && !this.failure) this.flush();
    }
  }

  private encode(item: Pending): void {
    const enc = this.encoder;
    const { batch } = item;
    const base = this.current.offset;
    const seq = this.current.seq;
    if (batch.snapshot) {
      const s = batch.snapshot;
      enc.snapshot(s);
      this.marker = { type: 'snapshot', ...s };
      if (s.reset) this.lastIndex = s.index;
    }
    for (const e of batch.entries) {
      item.positions.push(packPosition(seq, base + enc.entry(e)));
      this.lastIndex = e.index;
    }
    if (batch.hardState) {
      enc.hardState(batch.hardState);
      this.hardState = batch.hardState;
    }
    this.stats.batches++;
  }

  private writeOut(): void {
    if (this.encoder.length === 0) return;
    this.fs.write(this.current.fd, this.encoder.bytes(), this.current.offset);
    this.current.offset += this.encoder.length;
    this.stats.bytes += this.encoder.length;
    this.encoder.reset();
  }

  /**
   * A write or sync failed: after a failed fsync the page cache may have
   * dropped the data, so no later write can be trusted either (PostgreSQL's
   * "fsyncgate"). Everything waiting fails; the member must restart.
   */
  private fail(err: WalWriteError, items: Pending[]): void {
    this.failure = err;
    const waiting = [...items, ...this.queue];
    this.queue = [];
    for (const item of waiting) item.done(err, []);
  }

  // -------------------------------------------------------------------------
  // Reading back and releasing

  private reader(seq: number): FileHandle {
    let fd = this.readers.get(seq);
    if (fd === undefined) {
      const segment = this.segments.find((s) => s.seq === seq);
      if (!segment) throw new WalClosedError(`segment ${seq} was released`);
      fd = this.fs.open(this.path(segment.name), false);
      this.readers.set(seq, fd);
    }
    return fd;
  }

  /**
   * Reads records in log order from `position`, across segments, calling
   * `visit` with each payload (a view: copy what you keep) until it returns
   * false or the log ends.
   */
  scanFrom(position: Position, visit: (payload: Uint8Array, position: Position) => boolean): void {
    const scan: ReadScan = { seq: positionSeq(position), visit, sealed: false, stopped: false };
    const record = this.readRecord.bind(this, scan);
    let offset = positionOffset(position);
    for (;;) {
      scan.sealed = false;
      this.readBuffer ??= new Uint8Array(READ_CHUNK_BYTES);
      scanOpen(this.fs, this.reader(scan.seq), this.readBuffer, record, offset, READ_FIRST_BYTES);
      if (scan.stopped || !scan.sealed) return;
      scan.seq++;
      offset = 0;
    }
  }

  /** scanFrom's visitor: passes records on, and notes a seal (the log goes on in the next segment). */
  private readRecord(scan: ReadScan, payload: Uint8Array, at: number): boolean {
    if (payload[0] === RECORD_SEAL) {
      scan.sealed = true;
      return false;
    }
    if (!scan.visit(payload, packPosition(scan.seq, at))) {
      scan.stopped = true;
      return false;
    }
    return true;
  }

  /**
   * Deletes the segments whose entries all lie at or below `index` (already
   * covered by a snapshot), up to but excluding segment `keepFromSeq`. The
   * current segment is never deleted.
   */
  release(index: number, keepFromSeq = Infinity): string[] {
    const removed: string[] = [];
    while (this.segments.length > 1 && this.segments[1]!.firstIndex - 1 <= index) {
      const s = this.segments[0]!;
      if (s.seq === this.current.seq || s.seq >= keepFromSeq) break;
      const fd = this.readers.get(s.seq);
      if (fd !== undefined) {
        this.fs.close(fd);
        this.readers.delete(s.seq);
      }
      this.fs.remove(this.path(s.name));
      this.segments.shift();
      removed.push(s.name);
    }
    if (removed.length > 0) this.fs.syncDir(this.dir);
    return removed;
  }

  /** The segment files, oldest first. */
  segmentFiles(): readonly SegmentFile[] {
    return this.segments;
  }

  /** Stops writing. Batches not yet durable fail; call after the last callback for a clean stop. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiting = this.queue;
    this.queue = [];
    for (const item of waiting) item.done(new WalClosedError('closed'), []);
    for (const fd of this.readers.values()) this.fs.close(fd);
    this.readers.clear();
    // Read-only logs never open a segment for writing.
    if (this.current !== undefined) {
      try {
        this.fs.close(this.current.fd);
      } catch {
        // already closed by a failure
      }
    }
    // One still being allocated is discarded when its allocation ends.
    if (this.preparing?.ready) this.discard(this.preparing);
  }
}

function describeStop(stop: string): string {
  switch (stop) {
    case 'zero':
      return 'zeroed bytes';
    case 'truncated':
      return 'a record cut short';
    case 'checksum':
      return 'checksum mismatch';
    case 'length':
      return 'impossible record length';
    case 'padding':
      return "non-zero bytes in a record's padding";
    default:
      return stop;
  }
}
