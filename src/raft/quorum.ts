// Quorum arithmetic: what a majority of a configuration has acknowledged,
// and how an election stands. A joint configuration (§6) needs separate
// majorities of C_old and C_new for both.

import type { NodeId } from './types.js';

export type VoteResult = 'pending' | 'lost' | 'won';

/** Returns a value a node has acknowledged (an index, a heartbeat round), or undefined if none. */
export type AckedValue = (id: NodeId) => number | undefined;

export class MajorityConfig {
  readonly ids: readonly NodeId[];
  private readonly members: ReadonlySet<NodeId>;
  // Scratch space for committedValue, reused to avoid allocating per call.
  private readonly scratch: number[];

  constructor(ids: Iterable<NodeId> = []) {
    this.ids = [...new Set(ids)].sort(ascending);
    this.members = new Set(this.ids);
    this.scratch = new Array<number>(this.ids.length).fill(0);
  }

  get size(): number {
    return this.ids.length;
  }

  has(id: NodeId): boolean {
    return this.members.has(id);
  }

  /**
   * The largest value acknowledged by a majority: sort the members' values
   * descending and take the (n/2 + 1)-th. Members that acknowledged nothing
   * count as 0. An empty configuration imposes no constraint (Infinity), so
   * that a joint configuration with an empty half reduces to the other half.
   */
  committedValue(acked: AckedValue): number {
    const n = this.ids.length;
    if (n === 0) return Infinity;
    const v = this.scratch;
    for (let i = 0; i < n; i++) v[i] = acked(this.ids[i]!) ?? 0;
    // Insertion sort, ascending: n is at most a handful of voters.
    for (let i = 1; i < n; i++) {
      const x = v[i]!;
      let j = i - 1;
      while (j >= 0 && v[j]! > x) {
        v[j + 1] = v[j]!;
        j--;
      }
      v[j + 1] = x;
    }
    // With n ascending values, the one at n - (n/2 + 1) is held by a majority.
    return v[n - (Math.floor(n / 2) + 1)]!;
  }

  /** Won with a majority of granted votes, lost once a majority can no longer be reached. */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const n = this.ids.length;
    if (n === 0) return 'won'; // an empty configuration agrees with anything (see committedValue)
    let granted = 0;
    let missing = 0;
    for (const id of this.ids) {
      const v = votes.get(id);
      if (v === undefined) missing++;
      else if (v) granted++;
    }
    const q = Math.floor(n / 2) + 1;
    if (granted >= q) return 'won';
    if (granted + missing >= q) return 'pending';
    return 'lost';
  }

  toString(): string {
    return `(${this.ids.join(' ')})`;
  }
}

/**
 * A joint configuration: `incoming` is C_new (or the only configuration
 * when not joint), `outgoing` is C_old (empty when not joint).
 */
export class JointConfig {
  constructor(
    readonly incoming: MajorityConfig,
    readonly outgoing: MajorityConfig = new MajorityConfig(),
  ) {}

  get isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  /** Every voter of either half, sorted. */
  ids(): NodeId[] {
    return [...new Set([...this.incoming.ids, ...this.outgoing.ids])].sort(ascending);
  }

  has(id: NodeId): boolean {
    return this.incoming.has(id) || this.outgoing.has(id);
  }

  /** The largest value acknowledged by majorities of both halves. */
  committedValue(acked: AckedValue): number {
    return Math.min(this.incoming.committedValue(acked), this.outgoing.committedValue(acked));
  }

  /** Won only when both halves have won; lost when either has lost. */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const r1 = this.incoming.voteResult(votes);
    const r2 = this.outgoing.voteResult(votes);
    if (r1 === r2) return r1;
    if (r1 === 'lost' || r2 === 'lost') return 'lost';
    return 'pending';
  }

  toString(): string {
    return this.isJoint ? `${this.incoming}&&${this.outgoing}` : this.incoming.toString();
  }
}

/** Numeric order for sort() (at module level: V8 optimizes a closure made per call again for every call that gets hot). */
function ascending(a: number, b: number): number {
  return a - b;
}
