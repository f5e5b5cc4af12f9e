// RawNode: the application's handle on the Raft state machine, in the shape
// of etcd-io/raft's RawNode. The application calls tick() on a timer, step()
// for each message from a peer, and propose()/readIndex()/... for requests;
// then, whenever hasReady(), it takes a Ready, handles it and calls advance().
//
// Handling a Ready:
//   1. Send `messages` (they may go before the writes below are durable).
//   2. Persist `snapshot` (if any), then `entries`, then `hardState`; sync to
//      disk when `mustSync`.
//   3. Send `messagesAfterPersist` (votes and acknowledgements: they promise
//      that the writes of step 2 are durable).
//   4. Install `snapshot` into the state machine if present, then apply
//      `committedEntries` in order (calling applyConfChange for conf-change
//      entries), and serve the reads in `readStates` once applied; tell the
//      callers of `droppedProposals` that their forwarded proposals were refused.
//   5. advance(ready).
// step() may be called between ready() and advance() (e.g. while the disk
// write is in flight); ready() may not be called again until advance().

import { encodeConfChange, validateConfChange } from './confchange.js';
import { InvalidMessageError, UsageError } from './errors.js';
import { Raft, type RaftConfig } from './raft.js';
import {
  type ConfChange,
  type ConfState,
  type DroppedProposal,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SoftState,
  NONE,
} from './types.js';
import type { ProgressState } from './progress.js';

export interface Ready {
  /** Set when leader or role changed since the last Ready. */
  readonly softState: SoftState | undefined;
  /** Set when term, vote or commit changed: persist it. */
  readonly hardState: HardState | undefined;
  /** Entries to append to stable storage (may overwrite a conflicting suffix). */
  readonly entries: readonly Entry[];
  /** A snapshot from the leader to persist and install. */
  readonly snapshot: Snapshot | undefined;
  /** Entries committed since the last Ready: apply them after persisting this Ready. */
  readonly committedEntries: readonly Entry[];
  /** Messages that may be sent at once, before the writes are durable (diss. §10.2.1). */
  readonly messages: readonly Message[];
  /** Messages to send only after hardState, entries and snapshot are durable (Figure 2). */
  readonly messagesAfterPersist: readonly Message[];
  /** Reads confirmed: serve each once the applied index reaches its index. */
  readonly readStates: readonly ReadState[];
  /**
   * Proposals this node forwarded to the leader and that were refused there
   * (a transfer under way, no leader, ...): not in the log; tell their callers.
   */
  readonly droppedProposals: readonly DroppedProposal[];
  /** Whether the writes must be synced to disk (term, vote or entries changed). */
  readonly mustSync: boolean;
}

/**
 * The empty list a Ready carries for each empty field (Ready's lists are
 * read-only). Not frozen: V8 iterates a frozen array with for-of through
 * the generic iterator protocol, an object per step.
 */
const NOTHING: readonly never[] = [];

export interface ProgressStatus {
  readonly matchIndex: number;
  readonly nextIndex: number;
  readonly state: ProgressState;
  readonly paused: boolean;
  readonly inflight: number;
  readonly recentActive: boolean;
  readonly isLearner: boolean;
  readonly pendingSnapshot: number;
}

export interface Status {
  readonly id: NodeId;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly leadTransferee: NodeId;
  readonly confState: ConfState;
  /** The leader's view of every member; undefined on other nodes. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | undefined;
}

/**
 * The initial state of a brand-new cluster's members: a committed entry
 * adding each voter, as if a leader of term 1 had proposed them, and a hard
 * state of term 1 that commits them. Every initial member writes the same
 * entries, so they agree; a member that joins later learns the
 * configuration from the log (or a snapshot) like anything else.
 */
export function bootstrapState(voters: readonly NodeId[]): {
  entries: Entry[];
  hardState: HardState;
  changes: ConfChange[];
} {
  if (voters.length === 0) throw new UsageError('bootstrap needs at least one voter');
  if (new Set(voters).size !== voters.length) throw new UsageError(`duplicate voter ids in ${voters.join(',')}`);
  const changes: ConfChange[] = voters.map((id) => ({ transition: 'auto', changes: [{ type: 'addNode', nodeId: id }] }));
  const entries: Entry[] = changes.map((cc, i) => ({ term: 1, index: i + 1, type: 'confChange', data: encodeConfChange(cc) }));
  return { entries, hardState: { term: 1, vote: NONE, commit: entries.length }, changes };
}

export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private inFlight: Ready | undefined;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = config.storage.initialState().hardState;
  }

  get id(): NodeId {
    return this.raft.id;
  }

  /**
   * Writes the initial configuration of a brand-new cluster into the log
   * (see bootstrapState) through the first Ready. Storage must be empty.
   * Where crashes matter, prefer writing bootstrapState() to storage before
   * creating the node: a crash tearing that first Ready would otherwise
   * leave the member without a configuration.
   */
  bootstrap(voters: readonly NodeId[]): void {
    const r = this.raft;
    if (r.raftLog.lastIndex() !== 0 || r.term !== 0) {
      throw new UsageError('can only bootstrap an empty node (its storage already holds state)');
    }
    const { entries, changes } = bootstrapState(voters);
    r.becomeFollower(1, NONE);
    r.raftLog.append(entries);
    // Committed by construction: every initial member writes the same entries.
    r.raftLog.committed = entries.length;
    // Apply them now so the node knows its voters; the application applies
    // them again when they come out as committed entries, which changes nothing.
    for (const cc of changes) r.applyConfChange(cc);
  }

  /** Advances the logical clock by one tick (heartbeats, election timeouts). */
  tick(): void {
    this.raft.tick();
  }

  /** Campaigns to become leader now (PreVote first if enabled). */
  campaign(): void {
    this.raft.hup(this.raft.preVote ? 'preElection' : 'election');
  }

  /** Proposes data to be appended to the log. Throws ProposalDroppedError when refused. */
  propose(data: Uint8Array): void {
    this.raft.propose([data]);
  }

  /** Proposes several commands at once (one message to the leader when forwarded). */
  proposeBatch(data: readonly Uint8Array[]): void {
    if (data.length === 0) return;
    this.raft.propose(data);
  }

  /** Proposes a membership change. Apply it with applyConfChange once committed. */
  proposeConfChange(cc: ConfChange): void {
    validateConfChange(cc);
    this.raft.propose([{ type: 'confChange', data: encodeConfChange(cc) }]);
  }

  /** Applies a committed membership change; returns the resulting configuration. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Feeds a message from a peer. */
  step(m: Message): void {
    if (m.to !== this.raft.id) {
      throw new InvalidMessageError(`message for node ${m.to} delivered to node ${this.raft.id}`);
    }
    if (m.term === 0 && m.type !== 'MsgProp' && m.type !== 'MsgReadIndex' && m.type !== 'MsgPropResp') {
      throw new InvalidMessageError(`${m.type} from ${m.from} carries no term`);
    }
    if (!Number.isSafeInteger(m.term) || m.term < 0 || !Number.isSafeInteger(m.from) || m.from <= 0) {
      throw new InvalidMessageError(`${m.type} has an invalid term or sender`);
    }
    this.raft.step(m);
  }

  /**
   * Requests a linearizable read. The answer arrives as a ReadState with
   * this context; serve the read once applied >= its index.
   */
  readIndex(context: Uint8Array): void {
    this.raft.readIndex(context);
  }

  /** Asks the leader to hand leadership to `transferee` (diss. §3.10). */
  transferLeader(transferee: NodeId): void {
    this.raft.transferLeader(transferee);
  }

  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.reportSnapshot(id, ok);
  }

  hasReady(): boolean {
    if (this.inFlight) return false;
    const r = this.raft;
    if (r.hasPendingFlush() || r.hasOutput()) return true;
    // The soft and hard state compared field by field (asked after every event: no objects).
    const ps = this.prevSoftState;
    if (r.lead !== ps.lead || r.state !== ps.state) return true;
    const ph = this.prevHardState;
    if (r.term !== ph.term || r.vote !== ph.vote || r.raftLog.committed !== ph.commit) return true;
    const log = r.raftLog;
    return log.unstable.nextSnapshot() !== undefined || log.unstable.hasNextEntries() || log.hasNextCommittedEnts();
  }

  /** Takes everything that is ready. Call advance(ready) when done with it. */
  ready(): Ready {
    if (this.inFlight) throw new UsageError('ready() called again before advance() of the previous Ready');
    const r = this.raft;
    r.flush();
    const log = r.raftLog;
    // Compared field by field; new objects only for what changed.
    const softChanged = r.lead !== this.prevSoftState.lead || r.state !== this.prevSoftState.state;
    const ph = this.prevHardState;
    const hardChanged = r.term !== ph.term || r.vote !== ph.vote || log.committed !== ph.commit;
    const ss = softChanged ? r.softState() : this.prevSoftState;
    const hs = hardChanged ? r.hardState() : ph;
    const entries = log.unstable.nextEntries();
    const snapshot = log.unstable.nextSnapshot();
    const committedEntries = log.nextCommittedEnts();
    // Early sending relies on our term being durable already. A Ready that
    // changes term or vote (e.g. a single voter that elected itself within
    // it) holds every message back: a leader whose term is not on disk could
    // restart, win the same term again and write different entries at the
    // same (index, term) that a learner already received.
    const termOrVoteChanged = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
    // The Ready takes over the node's lists; an empty one is left where it
    // is and the Ready gets a shared empty list (a Ready is made after every
    // event that changes anything: most of its lists are empty).
    const msgs: readonly Message[] = r.msgs.length > 0 ? r.msgs : NOTHING;
    const after: readonly Message[] = r.msgsAfterPersist.length > 0 ? r.msgsAfterPersist : NOTHING;
    const readStates: readonly ReadState[] = r.readStates.length > 0 ? r.readStates : NOTHING;
    const droppedProposals: readonly DroppedProposal[] = r.droppedProposals.length > 0 ? r.droppedProposals : NOTHING;
    if (msgs.length > 0) r.msgs = [];
    if (after.length > 0) r.msgsAfterPersist = [];
    if (readStates.length > 0) r.readStates = [];
    if (droppedProposals.length > 0) r.droppedProposals = [];
    const rd: Ready = {
      softState: softChanged ? ss : undefined,
      hardState: hardChanged ? hs : undefined,
      entries,
      snapshot,
      committedEntries,
      messages: termOrVoteChanged ? NOTHING : msgs,
      messagesAfterPersist: !termOrVoteChanged || msgs.length === 0 ? after : after.length === 0 ? msgs : msgs.concat(after),
      readStates,
      droppedProposals,
      mustSync: entries.length > 0 || snapshot !== undefined || termOrVoteChanged,
    };
    // Hand these out exactly once.
    log.unstable.acceptInProgress();
    if (committedEntries.length > 0) log.acceptApplying(committedEntries[committedEntries.length - 1]!.index);
    if (softChanged) this.prevSoftState = ss;
    if (hardChanged) this.prevHardState = hs;
    this.inFlight = rd;
    return rd;
  }

  /** Reports that a Ready was persisted and its committed entries applied. */
  advance(rd: Ready): void {
    if (rd !== this.inFlight) throw new UsageError('advance() called with a Ready that is not the one in flight');
    this.inFlight = undefined;
    const r = this.raft;
    if (rd.snapshot) r.onSnapshotPersisted(rd.snapshot.metadata.index);
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      r.onPersisted(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      r.onApplied(rd.committedEntries);
    }
  }

  /** Whether a Ready was handed out and not yet advanced. */
  get readyInFlight(): boolean {
    return this.inFlight !== undefined;
  }

  status(): Status {
    const r = this.raft;
    let progress: Map<NodeId, ProgressStatus> | undefined;
    if (r.state === 'leader') {
      progress = new Map();
      r.prs.visit((id, pr) => {
        progress!.set(id, {
          matchIndex: pr.matchIndex,
          nextIndex: pr.nextIndex,
          state: pr.state,
          paused: pr.isPaused(),
          inflight: pr.inflights.count,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
          pendingSnapshot: pr.pendingSnapshot,
        });
      });
    }
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      firstIndex: r.raftLog.firstIndex(),
      lastIndex: r.raftLog.lastIndex(),
      lastTerm: r.raftLog.lastTerm(),
      leadTransferee: r.leadTransferee,
      confState: r.prs.confState(),
      progress,
    };
  }
}
