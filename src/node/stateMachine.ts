// What a user of the node runtime supplies: a deterministic state machine fed
// the committed log in order (Figure 2: "apply log[lastApplied] to state
// machine"), which can serialize itself for a snapshot and be replaced by one.
// The key-value store (src/kv/) is one; a replicated counter is another
// (examples/counter.ts).

import { PartsCursor, partsLength } from '../storage/bytes.js';
import { SnapshotNotReadyError } from './errors.js';

export interface StateMachine<Result = unknown> {
  /**
   * Applies one committed command. Must be deterministic: every member
   * applies the same commands in the same order and must reach the same
   * state and the same result. `index` is the entry's log index. The
   * command's bytes are shared with the log: read them, never modify them.
   * A command the machine cannot apply should produce an error result, not
   * throw: a throw stops the node (every member would throw on it).
   */
  apply(command: Uint8Array, index: number): Result;
  /** Serializes the state as of the last applied entry. */
  snapshot(): Uint8Array;
  /**
   * Optional: starts serializing the state as of the last applied entry
   * without doing it all at once, for a state too large to encode in one go
   * without stalling the member. The node calls it instead of snapshot() for
   * its periodic snapshots and for a follower that needs one, then calls
   * step() on the task between its processing passes until it returns true,
   * and result() once.
   *
   * Contract: result() must be exactly what snapshot() would have returned
   * at the call to beginSnapshot(), although apply() (and restore()) run
   * between the steps: capture a consistent view at the call (cheaply: a
   * copy of references, with copy-on-write where the machine would mutate
   * them in place), then encode it piece by piece. The node may drop a task
   * at any point without another call (stop, or a newer snapshot from the
   * leader): a task must hold nothing that needs releasing. A throw from
   * beginSnapshot(), step() or result() stops the node, as a throw from
   * snapshot() does.
   */
  beginSnapshot?(): SnapshotTask;
  /** Replaces the whole state with a snapshot's, taken at log index `index`. */
  restore(data: Uint8Array, index: number): void;
}

/** A snapshot being encoded in slices (StateMachine.beginSnapshot). */
export interface SnapshotTask {
  /**
   * Does a bounded slice of the work, a few milliseconds' worth, and
   * returns true once the snapshot is complete (and keeps returning true).
   */
  step(): boolean;
  /** The snapshot's bytes; only once step() has returned true. */
  result(): Uint8Array;
  /**
   * Optional: the same bytes as consecutive parts, only once step() has
   * returned true. The node then hands them to storage as they are, which
   * writes and checksums them part by part: result() would have the task
   * join them (tens of megabytes copied and allocated again).
   */
  parts?(): readonly Uint8Array[];
}

/** Bytes copied per step() of a ByteAssembler: a few milliseconds' worth even into fresh pages. */
export const ASSEMBLY_STEP_BYTES = 1 << 20;

/**
 * Concatenates parts into one array a slice per step(), for the last stage
 * of a SnapshotTask: copying tens of megabytes into a fresh allocation at
 * once (page faults and all) would be the very stall the task avoids.
 */
export class ByteAssembler {
  private readonly out: Uint8Array;
  private readonly cursor: PartsCursor;
  private at = 0;

  constructor(parts: readonly Uint8Array[]) {
    this.out = new Uint8Array(partsLength(parts));
    this.cursor = new PartsCursor(parts);
  }

  /** Copies up to `budget` bytes; true once everything is copied. */
  step(budget = ASSEMBLY_STEP_BYTES): boolean {
    while (budget > 0) {
      const chunk = this.cursor.next(budget);
      if (chunk === undefined) break;
      this.out.set(chunk, this.at);
      this.at += chunk.length;
      budget -= chunk.length;
    }
    return this.cursor.done;
  }

  get done(): boolean {
    return this.cursor.done;
  }

  /** The concatenation; only once step() has returned true. */
  result(): Uint8Array {
    if (!this.done) throw new SnapshotNotReadyError('ByteAssembler');
    return this.out;
  }
}
