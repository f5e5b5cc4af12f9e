// What a user of the node runtime supplies: a deterministic state machine fed
// the committed log in order (Figure 2: "apply log[lastApplied] to state
// machine"), which can serialize itself for a snapshot and be replaced by one.
// The key-value store (src/kv/) is one; a replicated counter is another
// (examples/counter.ts).

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
   * Contract: result() must be a snapshot of the state at the call to
   * beginSnapshot() (restore() of it gives that state; the bytes may
   * differ from what snapshot() would have returned, e.g. a machine that
   * adds what changed to its last snapshot), although apply() (and
   * restore()) run between the steps: capture a consistent view at the call (cheaply: a
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
   * join them (tens of megabytes copied and allocated again). Leading
   * parts that are the very objects of the last snapshot's (never changed
   * since) are not written again (storage/snapshot.ts, "prefix").
   */
  parts?(): readonly Uint8Array[];
}
