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
  /** Replaces the whole state with a snapshot's, taken at log index `index`. */
  restore(data: Uint8Array, index: number): void;
}
