// The leader's view of each member (nextIndex, matchIndex, flow control) and
// the configuration those members form.

import { Inflights } from './inflights.js';
import { JointConfig, MajorityConfig, type VoteResult } from './quorum.js';
import type { ConfState, NodeId } from './types.js';

/**
 * How the leader replicates to a follower:
 * - probe: the follower's log position is unknown; send one append at a
 *   time and wait for its answer (nextIndex backs off on rejection).
 * - replicate: the position is known; pipeline appends within the
 *   in-flight window, optimistically advancing nextIndex.
 * - snapshot: the entries the follower needs are compacted; a snapshot is
 *   on its way and nothing else is sent until it is reported.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  /** Highest index known to be replicated on the follower (§5.3 matchIndex). */
  matchIndex = 0;
  /** Index of the next entry to send (§5.3 nextIndex). Invariant: matchIndex < nextIndex. */
  nextIndex: number;
  state: ProgressState = 'probe';
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum. */
  recentActive: boolean;
  /** In probe state: a probe is outstanding, wait for its answer. */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;
  isLearner: boolean;
  /** Highest heartbeat round of the leader's current term this member acknowledged. */
  roundAcked = 0;
  /**
   * The highest commit index this follower can have learned from what we
   * sent it (an append's commit is capped by the entries it carried, a
   * heartbeat's by matchIndex). Broadcasts skip appends that would tell it
   * nothing new.
   */
  sentCommit = 0;

  constructor(nextIndex: number, inflights: Inflights, isLearner: boolean, recentActive: boolean) {
    this.nextIndex = nextIndex;
    this.inflights = inflights;
    this.isLearner = isLearner;
    this.recentActive = recentActive;
  }

  /** Forgets what was learned about the follower: a new term starts from scratch. */
  reset(nextIndex: number): void {
    this.resetState('probe');
    this.matchIndex = 0;
    this.nextIndex = nextIndex;
    this.recentActive = false;
    this.roundAcked = 0;
    this.sentCommit = 0;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      // The snapshot was delivered: probe from just after it.
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.nextIndex = Math.max(this.matchIndex + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.nextIndex = this.matchIndex + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.nextIndex = this.matchIndex + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** Accounts for an append carrying `entries` entries of `bytes` bytes just sent. */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === 'replicate') {
      if (entries > 0) {
        const last = this.nextIndex + entries - 1;
        this.nextIndex = last + 1; // optimistic: assume it will be accepted
        this.inflights.add(last, bytes);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else {
      // Every append in probe state is a probe: wait for its answer (or a heartbeat response).
      this.msgAppFlowPaused = true;
    }
  }

  /**
   * The follower acknowledged entries up to n. Returns false for a stale
   * acknowledgement: matchIndex never goes back.
   */
  maybeUpdate(n: number): boolean {
    if (n <= this.matchIndex) return false;
    this.matchIndex = n;
    if (this.nextIndex < n + 1) this.nextIndex = n + 1;
    this.msgAppFlowPaused = false;
    return true;
  }

  /**
   * The follower rejected an append whose prevLogIndex was `rejected`, and
   * hinted that the logs may match at `matchHint`. Returns false when the
   * rejection is stale (reordered or duplicated), leaving nextIndex alone.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      // Stale if it is about an index already known to match.
      if (rejected <= this.matchIndex) return false;
      this.nextIndex = this.matchIndex + 1;
      this.sentCommit = Math.min(this.sentCommit, this.matchIndex);
      return true;
    }
    // In probe state only the latest probe (at nextIndex - 1) is outstanding.
    if (this.nextIndex - 1 !== rejected) return false;
    this.nextIndex = Math.max(Math.min(rejected, matchHint + 1), this.matchIndex + 1);
    this.msgAppFlowPaused = false;
    // The follower did not take what we sent: it may lack the commit index too.
    this.sentCommit = Math.min(this.sentCommit, this.nextIndex - 1);
    return true;
  }

  /** Whether sending appends to this follower is on hold. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.msgAppFlowPaused;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  toString(): string {
    const paused = this.isPaused() ? ' paused' : '';
    const snap = this.state === 'snapshot' ? ` pendingSnap=${this.pendingSnapshot}` : '';
    const learner = this.isLearner ? ' learner' : '';
    return `${this.state} match=${this.matchIndex} next=${this.nextIndex}${learner}${paused}${snap}`;
  }
}

/** The membership as the leader tracks it. */
export interface TrackerConfig {
  readonly voters: JointConfig;
  readonly learners: ReadonlySet<NodeId>;
  /** Outgoing voters that become learners when the joint configuration is left. */
  readonly learnersNext: ReadonlySet<NodeId>;
  readonly autoLeave: boolean;
}

export function emptyTrackerConfig(): TrackerConfig {
  return { voters: new JointConfig(new MajorityConfig()), learners: new Set(), learnersNext: new Set(), autoLeave: false };
}

export function describeConfig(c: TrackerConfig): string {
  let s = `voters=${c.voters}`;
  if (c.learners.size) s += ` learners=(${[...c.learners].sort(ascending).join(' ')})`;
  if (c.learnersNext.size) s += ` learners_next=(${[...c.learnersNext].sort(ascending).join(' ')})`;
  if (c.autoLeave) s += ' autoleave';
  return s;
}

export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress = new Map<NodeId, Progress>();
  /** Votes received in the current election. */
  readonly votes = new Map<NodeId, boolean>();
  private sortedIds: NodeId[] = [];

  constructor(
    readonly maxInflightMsgs: number,
    readonly maxInflightBytes: number,
  ) {}

  newInflights(): Inflights {
    return new Inflights(this.maxInflightMsgs, this.maxInflightBytes);
  }

  /** Installs a configuration and its progress map (from the Changer). */
  install(config: TrackerConfig, progress: Map<NodeId, Progress>): void {
    this.config = config;
    this.progress = progress;
    this.sortedIds = [...progress.keys()].sort(ascending);
  }

  confState(): ConfState {
    const sorted = (s: Iterable<NodeId>) => [...s].sort(ascending);
    return {
      voters: [...this.config.voters.incoming.ids],
      votersOutgoing: [...this.config.voters.outgoing.ids],
      learners: sorted(this.config.learners),
      learnersNext: sorted(this.config.learnersNext),
      autoLeave: this.config.autoLeave,
    };
  }

  /** Exactly one voter and not joint: that voter alone is a quorum. */
  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && !this.config.voters.isJoint;
  }

  isVoter(id: NodeId): boolean {
    return this.config.voters.has(id);
  }

  /** Every tracked member (voters and learners), in ascending id order. */
  ids(): readonly NodeId[] {
    return this.sortedIds;
  }

  visit(fn: (id: NodeId, pr: Progress) => void): void {
    for (const id of this.sortedIds) fn(id, this.progress.get(id)!);
  }

  /** The highest index replicated on a quorum of voters (joint-aware). */
  committed(): number {
    return this.config.voters.committedValue((id) => this.progress.get(id)?.matchIndex);
  }

  /** The highest heartbeat round acknowledged by a quorum of voters. */
  quorumRound(): number {
    return this.config.voters.committedValue((id) => this.progress.get(id)?.roundAcked);
  }

  /** Whether a quorum of voters was heard from since the last check (CheckQuorum). */
  quorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    for (const id of this.sortedIds) {
      const pr = this.progress.get(id)!;
      if (!pr.isLearner) active.set(id, pr.recentActive);
    }
    return this.config.voters.voteResult(active) === 'won';
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote, keeping the first answer from each voter. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.sortedIds) {
      const pr = this.progress.get(id)!;
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: this.config.voters.voteResult(this.votes) };
  }
}

/** Numeric order for sort() (at module level: V8 optimizes a closure made per call again for every call that gets hot). */
function ascending(a: number, b: number): number {
  return a - b;
}
