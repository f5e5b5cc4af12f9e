// Where each live log entry is on disk, and its term, in little memory.
//
// Terms change rarely along a log, so they are kept as runs (first index of
// the run, term): term(i) is a binary search. Positions are kept sparsely:
// the position of the first entry of every "extent" (a stretch of entries
// written one after another, with no truncation between them) and of every
// STRIDE-th entry. Entries of an extent lie in increasing file order with
// only non-entry records between them, so any entry is found by scanning
// forward from the nearest known position at or before it, in the same
// extent. A truncation (a follower replacing a conflicting suffix, §5.3)
// ends an extent: the replacing entries are written later in the file.
//
// About 0.25 bytes per entry, against 8+ for a position per entry: a log of
// ten million entries indexes in a few megabytes.
//
// Reading entries back also teaches the index where a few of them are
// (learn()): reads tend to resume where an earlier one stopped (the next
// committed entries to apply, the next append to a follower catching up),
// and then start right there instead of up to STRIDE - 1 entries before.

import { StorageInvariantError } from './errors.js';
import type { Position } from './wal.js';

export const STRIDE = 32;
/** Positions learnt by reading, kept at once; the oldest is forgotten first. */
const LEARNT_SLOTS = 8;

/** The last position in `starts` (ascending) that is <= `i`, or -1. */
function floorSearch(starts: readonly number[], i: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid]! <= i) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

export class LogIndex {
  /** The first entry held; entries below it are compacted. */
  first = 1;
  /** The last entry held; first - 1 when there are none. */
  last = 0;
  private runStarts: number[] = [0];
  private runTerms: number[] = [0];
  private extentStarts: number[] = [];
  private extentPositions: Position[] = [];
  /** sparse[k - sparseHead] is the position of entry k * STRIDE. */
  private sparse: Position[] = [];
  private sparseHead = 0;
  /** The next append starts a new extent. */
  private extentBroken = true;
  /** learntIndexes[k]'s record is at learntPositions[k] (-1: the slot is empty). */
  private readonly learntIndexes: number[] = new Array<number>(LEARNT_SLOTS).fill(-1);
  private readonly learntPositions: Position[] = new Array<Position>(LEARNT_SLOTS).fill(0);
  private learntNext = 0;

  /** The term of entry i, for i in [first - 1, last]. */
  term(i: number): number {
    return this.runTerms[floorSearch(this.runStarts, i)]!;
  }

  /** Appends entry `index` (at most last + 1; lower truncates first). */
  append(index: number, term: number, position: Position): void {
    if (index <= this.last) this.truncate(index);
    if (index !== this.last + 1) throw new StorageInvariantError(`log index: entry ${index} after ${this.last}`);
    if (this.runTerms[this.runTerms.length - 1] !== term) {
      this.runStarts.push(index);
      this.runTerms.push(term);
    }
    if (this.extentBroken) {
      this.extentStarts.push(index);
      this.extentPositions.push(position);
      this.extentBroken = false;
    }
    if (index % STRIDE === 0) {
      const k = index / STRIDE;
      if (this.sparse.length === 0) this.sparseHead = k;
      // Slots for strides the log skipped (after a reset) stay empty.
      while (this.sparseHead + this.sparse.length < k) this.sparse.push(-1);
      this.sparse.push(position);
    }
    this.last = index;
  }

  /** Drops entries from `index` on. */
  truncate(index: number): void {
    if (index > this.last) return;
    while (this.runStarts.length > 1 && this.runStarts[this.runStarts.length - 1]! >= index) {
      this.runStarts.pop();
      this.runTerms.pop();
    }
    while (this.extentStarts.length > 0 && this.extentStarts[this.extentStarts.length - 1]! >= index) {
      this.extentStarts.pop();
      this.extentPositions.pop();
    }
    const keep = Math.ceil(index / STRIDE) - this.sparseHead;
    if (keep < this.sparse.length) this.sparse.length = Math.max(0, keep);
    this.forgetLearnt(index, Infinity);
    this.last = index - 1;
    this.extentBroken = true;
  }

  /** Empties the log, which now starts after a snapshot at (index, term). */
  reset(index: number, term: number): void {
    this.first = index + 1;
    this.last = index;
    this.runStarts = [index];
    this.runTerms = [term];
    this.extentStarts = [];
    this.extentPositions = [];
    this.sparse = [];
    this.sparseHead = 0;
    this.extentBroken = true;
    this.forgetLearnt(-Infinity, Infinity);
  }

  /** Forgets entries up to and including `index`; term(index) still answers. */
  compact(index: number): void {
    if (index < this.first) return;
    if (index > this.last) throw new StorageInvariantError(`log index: compact ${index} beyond last ${this.last}`);
    if (index === this.last) {
      // Nothing left: forget every position too. The segments holding them
      // may now be released, so the next entry must start a new extent
      // rather than be sought from a position before it.
      this.reset(index, this.term(index));
      return;
    }
    this.first = index + 1;
    let runs = 0;
    while (runs + 1 < this.runStarts.length && this.runStarts[runs + 1]! <= index) runs++;
    if (runs > 0) {
      this.runStarts.splice(0, runs);
      this.runTerms.splice(0, runs);
    }
    let extents = 0;
    while (extents + 1 < this.extentStarts.length && this.extentStarts[extents + 1]! <= this.first) extents++;
    if (extents > 0) {
      this.extentStarts.splice(0, extents);
      this.extentPositions.splice(0, extents);
    }
    const drop = Math.min(this.sparse.length, Math.floor(this.first / STRIDE) - this.sparseHead);
    if (drop > 0) {
      this.sparse.splice(0, drop);
      this.sparseHead += drop;
    }
    // Their segments may be released now.
    this.forgetLearnt(-Infinity, this.first - 1);
  }

  /**
   * Compacts up to `index` (at least first - 1) and records that entry
   * `snapshotIndex` (the snapshot recovery starts from) has term `term`:
   * after old segments were released, the term just before the first
   * retained entry is known only from the snapshot.
   */
  compactTo(index: number, term: number, snapshotIndex: number): void {
    this.compact(index);
    if (snapshotIndex === this.first - 1) {
      this.runStarts[0] = snapshotIndex;
      this.runTerms[0] = term;
    }
  }

  /**
   * A known position at or before entry i in i's extent: scan forward from
   * it, counting entries, to reach i, and no further than `extentEnd`.
   * With `learnt` false, only the positions recorded at append (what
   * releasing segments relies on: a learnt position may be forgotten).
   */
  seek(i: number, learnt = true): { index: number; position: Position; extentEnd: number } {
    if (i < this.first || i > this.last) throw new StorageInvariantError(`log index: ${i} outside [${this.first}, ${this.last}]`);
    const e = floorSearch(this.extentStarts, i);
    if (e < 0) throw new StorageInvariantError(`log index: no extent holds ${i}`);
    const start = this.extentStarts[e]!;
    /** Past this, the extent's records in the file were replaced by later ones. */
    const extentEnd = this.extentStarts[e + 1] ?? this.last + 1;
    let index = start;
    let position = this.extentPositions[e]!;
    const k = Math.floor(i / STRIDE);
    const slot = k - this.sparseHead;
    if (k * STRIDE >= start && slot >= 0 && slot < this.sparse.length && this.sparse[slot]! >= 0) {
      index = k * STRIDE;
      position = this.sparse[slot]!;
    }
    if (learnt) {
      // A learnt entry at or after `index` and at or before i is in i's extent too.
      for (let s = 0; s < LEARNT_SLOTS; s++) {
        const j = this.learntIndexes[s]!;
        if (j > index && j <= i) {
          index = j;
          position = this.learntPositions[s]!;
        }
      }
    }
    return { index, position, extentEnd };
  }

  /** Entry i (a live one) was read back at `position`: later reads from i on may start there. */
  learn(i: number, position: Position): void {
    if (i < this.first || i > this.last) return;
    for (let s = 0; s < LEARNT_SLOTS; s++) if (this.learntIndexes[s] === i) return;
    this.learntIndexes[this.learntNext] = i;
    this.learntPositions[this.learntNext] = position;
    this.learntNext = (this.learntNext + 1) % LEARNT_SLOTS;
  }

  /** Forgets the learnt positions of entries in [from, to]: truncated, or compacted away. */
  private forgetLearnt(from: number, to: number): void {
    for (let s = 0; s < LEARNT_SLOTS; s++) {
      const j = this.learntIndexes[s]!;
      if (j >= from && j <= to) this.learntIndexes[s] = -1;
    }
  }
}
