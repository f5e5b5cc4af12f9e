// Linearizable reads without writing to the log (diss. §6.4).
//
// ReadIndex: the leader records its commit index as the read index, then
// confirms it is still the leader by a round of heartbeats acknowledged by a
// quorum. The round must be sent after the read arrived: an older round only
// proves leadership at an earlier moment, when a newer leader may already
// have been elected. Reads that arrive before the next round share it, so
// concurrent reads cost one round together.
//
// Lease (diss. §6.4.1, opt-in): with CheckQuorum, a follower that heard from
// the leader ignores vote requests for an election timeout. So once a quorum
// acknowledged a round sent at tick s, no other leader can be elected before
// s + electionTimeout (measured on clocks that run at about the same rate);
// the leader serves reads locally until then, less a safety margin for
// clock drift.

import type { NodeId } from './types.js';

export type ReadOnlyOption = 'safe' | 'leaseBased';

export interface ReadRequest {
  /** The caller's request context, handed back with the read state. */
  readonly context: Uint8Array;
  /** The node that asked: the leader itself, or a follower that forwarded the request. */
  readonly from: NodeId;
  /** The leader's commit index when the request arrived. */
  readonly index: number;
  /** The heartbeat round that must be acknowledged by a quorum before answering. */
  readonly round: number;
}

export class ReadOnly {
  /** The last heartbeat round sent in this term. */
  private round = 0;
  /** When each unconfirmed round was sent (leader ticks). */
  private readonly roundSentAt = new Map<number, number>();
  /** Reads waiting for their round, in round order. */
  private pending: ReadRequest[] = [];
  /** Whether a read is waiting for a round that has not been sent yet. */
  private roundWanted = false;
  /** Reads may be served locally while the leader's tick count is below this. */
  private leaseExpiresAt = -Infinity;
  /** Set once a leadership transfer began: the target may be elected without waiting out the lease. */
  private leaseRevoked = false;

  constructor(readonly option: ReadOnlyOption) {}

  /** Queues a read for the next heartbeat round (which the caller must then send). */
  add(context: Uint8Array, from: NodeId, index: number): void {
    this.pending.push({ context, from, index, round: this.round + 1 });
    this.roundWanted = true;
  }

  /** Whether a read waits for a round that has not been sent. */
  get wantsRound(): boolean {
    return this.roundWanted;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Starts a new heartbeat round sent at `tick`; returns its number. */
  startRound(tick: number): number {
    this.round++;
    this.roundSentAt.set(this.round, tick);
    this.roundWanted = false;
    return this.round;
  }

  /**
   * A quorum has acknowledged every round up to `quorumRound`: release the
   * reads waiting for those rounds, and extend the lease to `leaseTicks`
   * after the moment that round was sent.
   */
  confirm(quorumRound: number, leaseTicks: number): ReadRequest[] {
    const sentAt = this.roundSentAt.get(quorumRound);
    if (sentAt !== undefined) {
      this.leaseExpiresAt = Math.max(this.leaseExpiresAt, sentAt + leaseTicks);
      for (const r of this.roundSentAt.keys()) if (r <= quorumRound) this.roundSentAt.delete(r);
    }
    let n = 0;
    while (n < this.pending.length && this.pending[n]!.round <= quorumRound) n++;
    if (n === 0) return [];
    const released = this.pending.slice(0, n);
    this.pending = this.pending.slice(n);
    return released;
  }

  leaseValid(tick: number): boolean {
    return !this.leaseRevoked && tick < this.leaseExpiresAt;
  }

  /**
   * Ends the lease for the rest of the term (a ReadOnly lives for one term).
   * Used once a TimeoutNow was sent: even if the transfer is abandoned, a
   * delayed TimeoutNow can still make its target campaign past followers'
   * stickiness.
   */
  revokeLease(): void {
    this.leaseRevoked = true;
  }

  /** Every read still waiting, e.g. to fail them when leadership is lost. */
  pendingReads(): readonly ReadRequest[] {
    return this.pending;
  }
}
