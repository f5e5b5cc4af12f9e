// The Raft log: stable entries (in Storage, already persisted) followed by
// unstable ones (appended in memory, not yet durable), plus the commit and
// apply cursors.

import { LogCompactedError, LogUnavailableError, RaftInvariantError } from './errors.js';
import { type Storage, limitSize } from './storage.js';
import { type Entry, type Snapshot, entryBytes } from './types.js';

/** What nextEntries and nextCommittedEnts return when there is nothing (most of the time): one shared list (not frozen: see rawNode.ts). */
const NO_ENTRIES: readonly Entry[] = [];

/**
 * Entries (and possibly a snapshot) not yet known to be persisted. The part
 * already handed to the application in a Ready but not yet acknowledged by
 * advance() is "in progress": it is not handed out again.
 */
export class Unstable {
  /** A snapshot received from the leader, waiting to be persisted. */
  snapshot: Snapshot | undefined = undefined;
  snapshotInProgress = false;
  /** entries[i] has index offset + i. */
  entries: Entry[] = [];
  offset: number;
  /** Entries with index < offsetInProgress have been handed out for persisting. */
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const k = i - this.offset;
    return k < this.entries.length ? this.entries[k]!.term : undefined;
  }

  hasNextEntries(): boolean {
    return this.offsetInProgress < this.offset + this.entries.length;
  }

  /** Entries not yet handed out for persisting. */
  nextEntries(): readonly Entry[] {
    const inProgress = this.offsetInProgress - this.offset;
    if (inProgress >= this.entries.length) return NO_ENTRIES;
    return inProgress === 0 ? this.entries.slice() : this.entries.slice(inProgress);
  }

  nextSnapshot(): Snapshot | undefined {
    return this.snapshot && !this.snapshotInProgress ? this.snapshot : undefined;
  }

  /** Marks everything currently unstable as handed out. */
  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot) this.snapshotInProgress = true;
  }

  /**
   * Entries up to (i, t) are durable: drop them from memory. Ignored when
   * the entry at i no longer has term t (it was overwritten since).
   */
  stableTo(i: number, t: number): void {
    if (i < this.offset) return; // covered by a snapshot, or already stable
    const term = this.maybeTerm(i);
    if (term === undefined || term !== t) return;
    this.entries = this.entries.slice(i + 1 - this.offset);
    this.offset = i + 1;
    if (this.offsetInProgress < this.offset) this.offsetInProgress = this.offset;
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const from = ents[0]!.index;
    if (from === this.offset + this.entries.length) {
      // The common case: a straight append.
      for (const e of ents) this.entries.push(e);
    } else if (from <= this.offset) {
      // The new entries replace everything unstable (and some stable
      // entries too: the application overwrites those when it persists).
      this.entries = ents.slice();
      this.offset = from;
      this.offsetInProgress = from;
    } else {
      // Keep the prefix below `from`, replace the rest.
      this.entries = this.entries.slice(0, from - this.offset);
      for (const e of ents) this.entries.push(e);
      if (this.offsetInProgress > from) this.offsetInProgress = from;
    }
  }

  slice(lo: number, hi: number): Entry[] {
    if (lo > hi || lo < this.offset || hi > this.offset + this.entries.length) {
      throw new RaftInvariantError(
        `unstable.slice[${lo},${hi}) out of bound [${this.offset},${this.offset + this.entries.length}]`,
      );
    }
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known to be stored on a quorum (§5.3). */
  committed: number;
  /** Highest index handed to the application to apply. */
  applying: number;
  /** Highest index the application has applied. applied <= applying <= committed. */
  applied: number;

  constructor(
    readonly storage: Storage,
    /** Cap on the bytes of committed entries handed out in one Ready. */
    readonly maxApplyingBytes: number,
  ) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    // Everything up to the snapshot is committed and applied.
    this.committed = first - 1;
    this.applying = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /** The term of entry i, or undefined when i is compacted or beyond the log. */
  termOrUndefined(i: number): number | undefined {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    // The valid range is [firstIndex - 1, lastIndex]: the entry just before
    // the first is compacted, but its term is kept for matching appends.
    if (i + 1 < this.firstIndex() || i > this.lastIndex()) return undefined;
    return this.storage.term(i);
  }

  term(i: number): number {
    const t = this.termOrUndefined(i);
    if (t !== undefined) return t;
    if (i + 1 < this.firstIndex()) throw new LogCompactedError(i, this.firstIndex());
    throw new LogUnavailableError(i, this.lastIndex());
  }

  matchTerm(i: number, term: number): boolean {
    return this.termOrUndefined(i) === term;
  }

  /**
   * The §5.4.1 up-to-date check: a candidate's log is at least as up to date
   * as ours if its last term is higher, or equal with an index at least ours.
   * Comparing lengths alone would let a node missing committed entries win.
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower side of AppendEntries (§5.3). Returns the index of the
   * last entry the message covered, or undefined when prevLogIndex/prevLogTerm
   * do not match. Only a conflicting suffix is truncated: entries that are
   * already present with matching terms are kept, so a delayed or
   * duplicated message never erases newer entries.
   */
  maybeAppend(prevIndex: number, prevTerm: number, leaderCommit: number, ents: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNewIndex = prevIndex + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new RaftInvariantError(
          `entry ${conflict} conflicts with committed entry (committed ${this.committed})`,
        );
      }
      const from = conflict - (prevIndex + 1);
      this.append(from === 0 ? ents : ents.slice(from));
    }
    // Commit only what this message proved we share with the leader, never
    // our own last index, which may still hold stale entries beyond it.
    this.commitTo(Math.min(leaderCommit, lastNewIndex));
    return lastNewIndex;
  }

  /**
   * The index of the first entry in `ents` that is missing from our log or
   * has a different term there; 0 when all are present.
   */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest (index, term) in our log with index <= `index` and
   * term <= `term`: where our log may match one whose entry at `index` has
   * `term`. Used on both sides of a rejected append to skip whole terms per
   * round trip (§5.3, end). Terms grow along a log, so this is a binary
   * search. A term of 0 in the answer means "unknown" (compacted).
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    const t = this.termOrUndefined(index);
    if (t === undefined) return [index, 0];
    if (t <= term) return [index, t];
    let lo = this.firstIndex() - 1; // its term is always available
    const loTerm = this.term(lo);
    if (loTerm > term) return lo > 0 ? [lo - 1, 0] : [0, 0];
    // Invariant: term(lo) <= term < term(hi).
    let hi = index;
    while (hi - lo > 1) {
      const mid = lo + ((hi - lo) >> 1);
      if (this.term(mid) <= term) lo = mid;
      else hi = mid;
    }
    return [lo, this.term(lo)];
  }

  /** Appends entries (truncating a conflicting unstable/stable suffix). Returns the new last index. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    if (after < this.committed) {
      throw new RaftInvariantError(`after(${after}) is out of range [committed(${this.committed})]`);
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  commitTo(toCommit: number): void {
    if (toCommit <= this.committed) return; // never decrease commit
    if (this.lastIndex() < toCommit) {
      throw new RaftInvariantError(
        `to-commit(${toCommit}) is out of range [last index(${this.lastIndex()})]: was the log corrupted, truncated, or lost?`,
      );
    }
    this.committed = toCommit;
  }

  /**
   * §5.4.2: a leader commits by counting replicas only entries of its
   * current term; earlier entries are committed indirectly with them.
   */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrUndefined(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    if (this.committed < i || i < this.applied) {
      throw new RaftInvariantError(`applied(${i}) is out of range [prev applied(${this.applied}), committed(${this.committed})]`);
    }
    this.applied = i;
    if (this.applying < i) this.applying = i;
  }

  acceptApplying(i: number): void {
    if (this.committed < i) {
      throw new RaftInvariantError(`applying(${i}) is beyond committed(${this.committed})`);
    }
    this.applying = i;
  }

  hasNextOrInProgressSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /**
   * Committed entries ready to apply. None while a snapshot is pending: the
   * state machine must install it first, and applying then resumes from the
   * snapshot's index. Entries may still be unstable: the application applies
   * them only after persisting the Ready that carries them.
   */
  nextCommittedEnts(): readonly Entry[] {
    if (this.hasNextOrInProgressSnapshot()) return NO_ENTRIES;
    const lo = Math.max(this.applying + 1, this.firstIndex());
    const hi = this.committed + 1;
    if (lo >= hi) return NO_ENTRIES;
    return this.slice(lo, hi, this.maxApplyingBytes);
  }

  hasNextCommittedEnts(): boolean {
    if (this.hasNextOrInProgressSnapshot()) return false;
    return this.committed > Math.max(this.applying, this.firstIndex() - 1);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Entries from i on, at most maxBytes of them (at least one if any). */
  entries(i: number, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (i > last) return [];
    return this.slice(i, last + 1, maxBytes);
  }

  /** Entries in [lo, hi), stable then unstable, limited to maxBytes (at least one). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    this.checkOutOfBounds(lo, hi);
    if (lo === hi) return [];
    const offset = this.unstable.offset;
    if (lo >= offset) return limitSize(this.unstable.slice(lo, hi), maxBytes);
    const cut = Math.min(hi, offset);
    const stable = this.storage.entries(lo, cut, maxBytes);
    if (hi <= offset || stable.length < cut - lo) return stable; // done, or the size limit was hit
    // Storage hands us a fresh array (see Storage.entries): extend it in place.
    let size = 0;
    for (const e of stable) size += entryBytes(e);
    for (let i = offset; i < hi; i++) {
      const e = this.unstable.entries[i - offset]!;
      size += entryBytes(e);
      if (size > maxBytes) break;
      stable.push(e);
    }
    return stable;
  }

  private checkOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) throw new RaftInvariantError(`invalid slice ${lo} > ${hi}`);
    const first = this.firstIndex();
    if (lo < first) throw new LogCompactedError(lo, first);
    const last = this.lastIndex();
    if (hi > last + 1) throw new LogUnavailableError(hi - 1, last);
  }

  /** Replaces the whole log with a snapshot (§7: discard the log it supersedes). */
  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /**
   * The last index known durable and consistent with our current log:
   * entries in storage below the first unstable entry. Unstable entries may
   * overwrite part of storage, which is why both bounds apply.
   */
  persistedLastIndex(): number {
    if (this.unstable.snapshot) return 0;
    return Math.min(this.storage.lastIndex(), this.unstable.offset - 1);
  }
}
