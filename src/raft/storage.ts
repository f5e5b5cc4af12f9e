// The storage interface the core reads its stable log through, and an
// in-memory implementation (used by tests, the simulator, and as the
// in-memory index in front of the write-ahead log).

import {
  LogCompactedError,
  LogUnavailableError,
  RaftInvariantError,
  SnapshotOutOfDateError,
} from './errors.js';
import {
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  entryBytes,
} from './types.js';

export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

/**
 * Read access to what this node has persisted. The core never writes
 * through it: the application persists each Ready and then updates storage.
 * Methods throw LogCompactedError / LogUnavailableError for indexes outside
 * the stored range.
 */
export interface Storage {
  /** The persisted hard state and the configuration as of the latest snapshot. */
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at most maxBytes of them but always at least one
   * when the range is non-empty, in a new array the caller may keep and
   * extend.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of entry i, for i in [firstIndex() - 1, lastIndex()]. */
  term(i: number): number;
  /** The index of the first entry still available (the snapshot's index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  /** The most recent snapshot; may throw SnapshotTemporarilyUnavailableError. */
  snapshot(): Snapshot;
}

/** Takes entries from the front of `ents` while their total stays within maxBytes (at least one). */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entryBytes(ents[0]!);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entryBytes(ents[n]!);
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

/**
 * Storage backed by arrays. Position 0 of `ents` is a placeholder for the
 * snapshot's last entry (its index and term), as in etcd-io/raft, so that
 * term(firstIndex - 1) always answers.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot;
  private ents: Entry[];

  constructor() {
    this.snap = { metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE }, data: new Uint8Array(0) };
    this.ents = [{ term: 0, index: 0, type: 'normal', data: new Uint8Array(0) }];
  }

  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  getHardState(): HardState {
    return this.hardState;
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  term(i: number): number {
    const offset = this.offset();
    if (i < offset) throw new LogCompactedError(i, offset + 1);
    if (i - offset >= this.ents.length) throw new LogUnavailableError(i, this.lastIndex());
    return this.ents[i - offset]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new LogCompactedError(lo, offset + 1);
    if (hi > this.lastIndex() + 1) throw new LogUnavailableError(hi - 1, this.lastIndex());
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** The stored snapshot, without the side effects a subclass's snapshot() may have. */
  latestSnapshot(): Snapshot {
    return this.snap;
  }

  snapshotIndex(): number {
    return this.snap.metadata.index;
  }

  /** Replaces the log with a snapshot received from the leader (§7). */
  applySnapshot(snap: Snapshot): void {
    const index = snap.metadata.index;
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError(index, this.snap.metadata.index);
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index, type: 'normal', data: new Uint8Array(0) }];
  }

  /**
   * Records a snapshot of the state machine taken at applied index `i`.
   * The log is not compacted: call compact() for that (typically a little
   * below i, so slightly slow followers still get entries).
   */
  createSnapshot(i: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapshotOutOfDateError(i, this.snap.metadata.index);
    if (i > this.lastIndex()) {
      throw new RaftInvariantError(`snapshot index ${i} is beyond the last index ${this.lastIndex()}`);
    }
    this.snap = { metadata: { index: i, term: this.term(i), confState }, data };
    return this.snap;
  }

  /** Discards entries up to and including `compactIndex` (which must be covered by a snapshot or applied). */
  compact(compactIndex: number): void {
    const offset = this.offset();
    if (compactIndex <= offset) return; // already compacted
    if (compactIndex > this.lastIndex()) {
      throw new RaftInvariantError(`compact ${compactIndex} is out of bound (last index ${this.lastIndex()})`);
    }
    const i = compactIndex - offset;
    const head: Entry = { term: this.ents[i]!.term, index: compactIndex, type: 'normal', data: new Uint8Array(0) };
    // In place: shift the kept entries down, the compacted one becoming the placeholder.
    this.ents.copyWithin(0, i);
    this.ents.length -= i;
    this.ents[0] = head;
  }

  /**
   * Appends entries, replacing any stored suffix they conflict with: the
   * new entries are the truth from the current leader.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // wholly compacted already
    // Skip the part that is already compacted.
    const skip = first > entries[0]!.index ? first - entries[0]!.index : 0;
    const start = entries[0]!.index + skip;
    const offset = this.offset();
    const at = start - offset;
    if (at > this.ents.length) {
      throw new RaftInvariantError(`missing log entry [last: ${this.lastIndex()}, append at: ${start}]`);
    }
    this.ents.length = at; // truncate any conflicting suffix
    for (let k = skip; k < entries.length; k++) this.ents.push(entries[k]!);
  }
}
