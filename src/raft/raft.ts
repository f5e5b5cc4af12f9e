// The Raft state machine: elections, replication, commitment, reads,
// leadership transfer, snapshots and membership, as a pure function of the
// messages and ticks it is given. No clock, no I/O, no unseeded randomness:
// the application (or the simulator) drives it through RawNode.
//
// Section numbers refer to the Raft paper (§) and Ongaro's dissertation
// (diss. §).

import { applyChange, decodeConfChange, leavesJoint, restoreConfState } from './confchange.js';
import {
  DROP_REASONS,
  type DropReason,
  InvalidConfChangeError,
  InvalidConfigError,
  ProposalDroppedError,
  RaftInvariantError,
  SnapshotTemporarilyUnavailableError,
} from './errors.js';
import { RaftLog } from './log.js';
import { type Progress, ProgressTracker, describeConfig, emptyTrackerConfig } from './progress.js';
import { ReadOnly, type ReadOnlyOption } from './readOnly.js';
import type { Storage } from './storage.js';
import {
  type ConfChange,
  type ConfState,
  type DroppedProposal,
  type Entry,
  type EntryType,
  type HardState,
  type Logger,
  type Message,
  type MessageType,
  type MutableMessage,
  type NodeId,
  type RandomSource,
  type ReadState,
  type Snapshot,
  type SoftState,
  type StateType,
  NONE,
  SILENT_LOGGER,
  blankMessage,
  canSendBeforePersist,
  entryBytes,
  payloadBytes,
  withFields,
} from './types.js';

export interface RaftConfig {
  /** This node's id (> 0). */
  readonly id: NodeId;
  /**
   * Ticks without hearing from a leader before a follower campaigns. The
   * actual timeout is randomized in [electionTick, 2 * electionTick) (§5.2).
   */
  readonly electionTick: number;
  /** Ticks between a leader's heartbeats. Must be well below electionTick. */
  readonly heartbeatTick: number;
  readonly storage: Storage;
  /** The source of the election timeout's randomness (seeded in the simulator). */
  readonly random: RandomSource;
  /** The index the state machine has already applied, if it survives restarts. */
  readonly applied?: number;
  /** Upper bound on the bytes of entries in one append message. Default 1 MiB. */
  readonly maxSizePerMsg?: number;
  /** Upper bound on the bytes of committed entries handed out in one Ready. Default 64 MiB. */
  readonly maxCommittedSizePerReady?: number;
  /** Leader refuses proposals while its uncommitted payload exceeds this. 0 (default): no limit. */
  readonly maxUncommittedEntriesBytes?: number;
  /** Append messages in flight to one follower. Default 256. */
  readonly maxInflightMsgs?: number;
  /** Bytes in flight to one follower; 0 (default): no byte limit. */
  readonly maxInflightBytes?: number;
  /** A leader that cannot hear a quorum for an election timeout steps down. Default true. */
  readonly checkQuorum?: boolean;
  /** Run a PreVote round before a real election (diss. §9.6). Default true. */
  readonly preVote?: boolean;
  /** How reads are confirmed: 'safe' (ReadIndex, default) or 'leaseBased' (requires checkQuorum). */
  readonly readOnlyOption?: ReadOnlyOption;
  /**
   * Ticks the leader's lease falls short of the election timeout, to absorb
   * clock drift between members. Default max(2, electionTick / 5).
   */
  readonly leaseSafetyMarginTicks?: number;
  /** Followers refuse proposals instead of forwarding them to the leader. */
  readonly disableProposalForwarding?: boolean;
  /** A leader removed from the configuration steps down once the removal applies. Default true. */
  readonly stepDownOnRemoval?: boolean;
  readonly logger?: Logger;
}

type CampaignType = 'preElection' | 'election' | 'transfer';

/** What proposals carry before they get a term and an index. */
export interface ProposedEntry {
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** A proposal: a bare Uint8Array stands for a normal entry's data (the common case, one object less). */
export type Proposal = ProposedEntry | Uint8Array;

interface PendingRead {
  readonly context: Uint8Array;
  readonly from: NodeId;
}

const EMPTY_DATA = new Uint8Array(0);

export class Raft {
  readonly id: NodeId;
  /** currentTerm (Figure 2). */
  term = 0;
  /** votedFor in the current term (Figure 2). */
  vote: NodeId = NONE;
  readonly raftLog: RaftLog;
  readonly prs: ProgressTracker;
  state: StateType = 'follower';
  isLearner = false;
  /** The leader of the current term, when known. */
  lead: NodeId = NONE;
  /** During a leadership transfer: its target. */
  leadTransferee: NodeId = NONE;
  /**
   * The index of the latest conf change proposed by this leader. A new one
   * is refused until the log is applied up to it: one change at a time.
   */
  pendingConfIndex = 0;
  /** Payload bytes appended by this leader and not yet applied. */
  uncommittedSize = 0;
  readOnly: ReadOnly;
  /** Reads confirmed, for the application to serve once applied >= index. */
  readStates: ReadState[] = [];
  /** Proposals this node forwarded that were refused: their callers are told through the Ready. */
  droppedProposals: DroppedProposal[] = [];
  /** Messages that may be sent before this node's pending writes are durable. */
  msgs: Message[] = [];
  /** Messages that may only be sent once this node's pending writes are durable. */
  msgsAfterPersist: Message[] = [];

  /**
   * Followers: ticks since the last valid message from the leader (or vote
   * granted). Leaders: ticks since the last CheckQuorum.
   */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /** Ticks since this node started: the leader's clock for leases. */
  tickCount = 0;

  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly readOnlyOption: ReadOnlyOption;
  readonly leaseTicks: number;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly disableProposalForwarding: boolean;
  readonly stepDownOnRemoval: boolean;

  /** Read requests received before this leader committed an entry of its term. */
  private pendingReadIndexMessages: PendingRead[] = [];
  /** Appends to all followers are due (new entries or a new commit index); sent at the next flush. */
  private pendingBroadcast = false;
  private readonly random: RandomSource;
  readonly logger: Logger;

  constructor(c: RaftConfig) {
    validateConfig(c);
    this.id = c.id;
    this.electionTimeout = c.electionTick;
    this.heartbeatTimeout = c.heartbeatTick;
    this.checkQuorum = c.checkQuorum ?? true;
    this.preVote = c.preVote ?? true;
    this.readOnlyOption = c.readOnlyOption ?? 'safe';
    this.leaseTicks = c.electionTick - (c.leaseSafetyMarginTicks ?? Math.max(2, Math.ceil(c.electionTick / 5)));
    this.maxMsgSize = c.maxSizePerMsg ?? 1024 * 1024;
    this.maxUncommittedSize = c.maxUncommittedEntriesBytes || Infinity;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.stepDownOnRemoval = c.stepDownOnRemoval ?? true;
    this.random = c.random;
    this.logger = c.logger ?? SILENT_LOGGER;
    this.readOnly = new ReadOnly(this.readOnlyOption);
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? 64 * 1024 * 1024);
    this.prs = new ProgressTracker(c.maxInflightMsgs ?? 256, c.maxInflightBytes ?? 0);

    const { hardState, confState } = c.storage.initialState();
    const restored = restoreConfState(this.prs, this.raftLog.lastIndex(), confState);
    this.switchToConfig(restored.config, restored.progress);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    if (c.applied !== undefined && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, NONE);
    this.logger.info('raft: started', {
      id: this.id,
      config: describeConfig(this.prs.config),
      term: this.term,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      lastIndex: this.raftLog.lastIndex(),
      lastTerm: this.raftLog.lastTerm(),
    });
  }

  private loadState(hs: HardState): void {
    if (hs.commit > this.raftLog.lastIndex()) {
      throw new RaftInvariantError(
        `node ${this.id}: persisted commit ${hs.commit} is beyond the last index ${this.raftLog.lastIndex()}: was the log truncated or lost?`,
      );
    }
    // A commit below the snapshot is stale (the hard state written after a
    // snapshot was lost in a crash): the snapshot itself proves its index committed.
    if (hs.commit > this.raftLog.committed) this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, state: this.state };
  }

  // -------------------------------------------------------------------------
  // Sending

  private send(fields: Partial<Message> & { type: MessageType; to: NodeId }): void {
    // Forwarded requests carry no term (the leader handles them whatever
    // term they were sent in); vote messages carry the term they ask about
    // (for PreVote, the future term); everything else our current term.
    const isForward = fields.type === 'MsgProp' || fields.type === 'MsgReadIndex' || fields.type === 'MsgPropResp';
    const isVote =
      fields.type === 'MsgVote' ||
      fields.type === 'MsgPreVote' ||
      fields.type === 'MsgVoteResp' ||
      fields.type === 'MsgPreVoteResp';
    const term = isForward ? 0 : isVote ? fields.term! : this.term;
    this.emit(withFields(blankMessage(fields.type, this.id, fields.to, term), fields));
  }

  /** A message of our current term to fill in (for the hot paths: appends, heartbeats and their answers). */
  private newMessage(type: MessageType, to: NodeId): MutableMessage {
    return blankMessage(type, this.id, to, this.term);
  }

  private emit(m: Message): void {
    if (canSendBeforePersist(m.type)) this.msgs.push(m);
    else this.msgsAfterPersist.push(m);
  }

  /**
   * Sends an append (or a snapshot) to `to` if its flow control allows.
   * With sendIfEmpty false nothing is sent when there are no new entries.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.nextIndex - 1;
    const prevTerm = this.raftLog.termOrUndefined(prevIndex);
    // The entries the follower needs were compacted: send a snapshot.
    if (prevTerm === undefined) return this.maybeSendSnapshot(to, pr);
    let entries: Entry[] = [];
    // When the window is full, send only an empty append: if every message in
    // it was lost, its answer is what unblocks replication.
    if (pr.state !== 'replicate' || !pr.inflights.full()) {
      if (pr.nextIndex < this.raftLog.firstIndex()) return this.maybeSendSnapshot(to, pr);
      entries = this.raftLog.entries(pr.nextIndex, this.maxMsgSize);
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    const m = this.newMessage('MsgApp', to);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = entries;
    m.commit = this.raftLog.committed;
    this.emit(m);
    // Bytes in flight matter only under a byte limit.
    let bytes = 0;
    if (this.prs.maxInflightBytes > 0) for (const e of entries) bytes += entryBytes(e);
    pr.sentEntries(entries.length, bytes);
    // The follower commits at most up to the last entry this message covers.
    pr.sentCommit = Math.max(pr.sentCommit, Math.min(this.raftLog.committed, prevIndex + entries.length));
    return true;
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    // Do not push a snapshot at a node we have not heard from: it may be down.
    if (!pr.recentActive) return false;
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot();
    } catch (e) {
      // Storage is producing one: try again at the next chance to send.
      if (e instanceof SnapshotTemporarilyUnavailableError) return false;
      throw e;
    }
    if (snapshot.metadata.index === 0) {
      throw new RaftInvariantError(`node ${this.id}: need a non-empty snapshot to send to ${to}`);
    }
    pr.becomeSnapshot(snapshot.metadata.index);
    this.logger.info('raft: sending snapshot', { to, index: snapshot.metadata.index, term: snapshot.metadata.term });
    this.send({ type: 'MsgSnap', to, snapshot });
    return true;
  }

  private sendHeartbeat(to: NodeId, round: number): void {
    const pr = this.prs.progress.get(to)!;
    // Never tell a follower to commit beyond what it is known to hold: its
    // log past matchIndex may still differ from ours.
    const commit = Math.min(pr.matchIndex, this.raftLog.committed);
    const m = this.newMessage('MsgHeartbeat', to);
    m.commit = commit;
    m.round = round;
    this.emit(m);
    pr.sentCommit = Math.max(pr.sentCommit, commit);
  }

  /** Sends each follower its new entries, or the new commit index if it has not been sent it. */
  private bcastAppend(): void {
    const committed = this.raftLog.committed;
    // A loop rather than prs.visit(closure): V8 optimizes a closure made per call again now and then.
    for (const id of this.prs.ids()) {
      if (id !== this.id) this.maybeSendAppend(id, this.prs.progress.get(id)!.sentCommit < committed);
    }
  }

  /** Starts a heartbeat round: it asserts leadership and confirms pending reads (diss. §6.4). */
  private bcastHeartbeat(): void {
    const round = this.readOnly.startRound(this.tickCount);
    const self = this.prs.progress.get(this.id);
    if (self) self.roundAcked = round;
    for (const id of this.prs.ids()) if (id !== this.id) this.sendHeartbeat(id, round);
    this.confirmReads();
  }

  /**
   * Sends what was deferred while handling a batch of input: appends for new
   * entries or a new commit index, and a heartbeat round for waiting reads.
   * Deferring lets many proposals share one message per follower.
   */
  flush(): void {
    if (this.state !== 'leader') {
      this.pendingBroadcast = false;
      return;
    }
    if (this.pendingBroadcast) {
      this.pendingBroadcast = false;
      this.bcastAppend();
    }
    if (this.readOnly.wantsRound) this.bcastHeartbeat();
  }

  /** Whether flush() would send something. */
  hasPendingFlush(): boolean {
    return this.state === 'leader' && (this.pendingBroadcast || this.readOnly.wantsRound);
  }

  // -------------------------------------------------------------------------
  // State transitions

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const next = this.raftLog.lastIndex() + 1;
    const persisted = this.raftLog.persistedLastIndex();
    for (const id of this.prs.ids()) {
      const pr = this.prs.progress.get(id)!;
      pr.reset(next);
      // Our own log counts towards a quorum only once it is durable (diss. §10.2.1).
      if (id === this.id) pr.matchIndex = persisted;
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.pendingBroadcast = false;
    this.readOnly = new ReadOnly(this.readOnlyOption);
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    const wasLeader = this.state === 'leader';
    this.reset(term);
    this.lead = lead;
    this.state = 'follower';
    if (wasLeader) this.logger.info('raft: stepped down', { id: this.id, term });
  }

  private becomeCandidate(): void {
    if (this.state === 'leader') throw new RaftInvariantError('invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = 'candidate';
    this.logger.info('raft: became candidate', { id: this.id, term: this.term });
  }

  private becomePreCandidate(): void {
    if (this.state === 'leader') throw new RaftInvariantError('invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither its term nor its vote (diss. §9.6).
    this.prs.resetVotes();
    this.lead = NONE;
    this.state = 'preCandidate';
    this.logger.info('raft: became pre-candidate', { id: this.id, term: this.term });
  }

  private becomeLeader(): void {
    if (this.state === 'follower') throw new RaftInvariantError('invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = 'leader';
    const self = this.prs.progress.get(this.id);
    if (self) {
      // The leader trivially replicates to itself.
      self.becomeReplicate();
      self.recentActive = true;
    }
    // A conf change may be among the unapplied entries; refuse new ones until
    // everything up to here is applied, rather than scanning the log for one.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // §8: an empty entry of the new term, so that earlier entries can be
    // committed (§5.4.2) and reads served (diss. §6.4) without waiting for a client.
    if (!this.appendEntry([EMPTY_DATA])) {
      throw new RaftInvariantError('empty entry was dropped');
    }
    this.logger.info('raft: became leader', { id: this.id, term: this.term });
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.random.int(this.electionTimeout);
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /** Whether this node may campaign: it is a voter and not installing a snapshot. */
  promotable(): boolean {
    const pr = this.prs.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasNextOrInProgressSnapshot();
  }

  // -------------------------------------------------------------------------
  // Ticks

  tick(): void {
    this.tickCount++;
    if (this.state === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.preVote ? 'preElection' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        if (!this.prs.quorumActive()) {
          // A leader that cannot hear a quorum steps down, so a partitioned
          // leader stops serving.
          this.logger.warn('raft: stepping down, quorum is not active', { id: this.id, term: this.term });
          this.becomeFollower(this.term, NONE);
          return;
        }
        this.prs.visit((id, pr) => {
          if (id !== this.id) pr.recentActive = false;
        });
      }
      // A transfer not finished within an election timeout is abandoned (diss. §3.10).
      if (this.leadTransferee !== NONE) {
        this.logger.info('raft: leadership transfer timed out', { id: this.id, transferee: this.leadTransferee });
        this.abortLeaderTransfer();
        this.maybeAutoLeave();
      }
    }
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  // -------------------------------------------------------------------------
  // Elections

  /** Starts an election unless this node is leader or may not campaign. */
  hup(t: CampaignType): void {
    if (this.state === 'leader') return;
    if (!this.promotable()) {
      this.logger.warn('raft: cannot campaign, not promotable', { id: this.id });
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      // Our configuration may be about to change: campaigning under the old
      // one could count the wrong voters.
      this.logger.warn('raft: cannot campaign, conf changes pending apply', { id: this.id, term: this.term });
      return;
    }
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    const log = this.raftLog;
    if (log.applied >= log.committed) return false;
    let lo = Math.max(log.applied + 1, log.firstIndex());
    const hi = log.committed + 1;
    while (lo < hi) {
      const page = log.slice(lo, hi, 8 * 1024 * 1024);
      for (const e of page) if (e.type === 'confChange') return true;
      lo += page.length;
    }
    return false;
  }

  private campaign(t: CampaignType): void {
    let voteType: MessageType;
    let term: number;
    if (t === 'preElection') {
      this.becomePreCandidate();
      voteType = 'MsgPreVote';
      // PreVote asks about the next term without adopting it (diss. §9.6).
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = 'MsgVote';
      term = this.term;
    }
    const respType: MessageType = voteType === 'MsgPreVote' ? 'MsgPreVoteResp' : 'MsgVoteResp';
    if (this.poll(this.id, respType, true) === 'won') {
      // A single voter wins at once.
      if (t === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.prs.config.voters.ids()) {
      if (id === this.id) continue;
      this.send({
        type: voteType,
        to: id,
        term,
        index: lastIndex,
        logTerm: lastTerm,
        force: t === 'transfer',
        ...this.commitInfo(),
      });
    }
  }

  /** Our commit index and the term of the entry there, for vote messages. */
  private commitInfo(): { commit: number; commitTerm: number } {
    const commit = this.raftLog.committed;
    return { commit, commitTerm: this.raftLog.termOrUndefined(commit) ?? 0 };
  }

  /**
   * Adopts another node's commit index when our log holds the entry at it
   * with the same term: by Log Matching our log then equals the committed
   * log up to there. Vote messages carry commit indexes for this.
   *
   * Configuration changes take effect when applied (as in etcd-io/raft), so
   * a node may campaign under an old configuration until it learns that the
   * new one committed. Without this, elections can stall forever: say the
   * leader applied its own removal and stepped down, and the only remaining
   * voter still counts it as a voter but never learned the commit; the old
   * leader, whose log is longer, refuses its vote and never campaigns. (The
   * liveness problem of apply-time changes, etcd-io/etcd#12359.)
   */
  private learnCommit(m: Message): void {
    // A leader needs no help: it commits these entries with the first entry
    // of its own term, and its commit index only ever moves by counting
    // replicas of such entries (§5.4.2).
    if (this.state === 'leader') return;
    if (m.commit > this.raftLog.committed && m.commitTerm > 0 && this.raftLog.matchTerm(m.commit, m.commitTerm)) {
      this.logger.info('raft: learned commit index from a vote message', { id: this.id, from: m.from, commit: m.commit });
      this.raftLog.commitTo(m.commit);
    }
  }

  private poll(id: NodeId, t: MessageType, granted: boolean): 'won' | 'lost' | 'pending' {
    this.prs.recordVote(id, granted);
    const { result } = this.prs.tallyVotes();
    if (id !== this.id) {
      this.logger.debug('raft: vote received', { id: this.id, from: id, type: t, granted, term: this.term });
    }
    return result;
  }

  private handleVoteRequest(m: Message): void {
    const respType: MessageType = m.type === 'MsgPreVote' ? 'MsgPreVoteResp' : 'MsgVoteResp';
    // We can vote if we already voted for this candidate (a repeated request),
    // if we have not voted and know of no leader in this term, or for a
    // PreVote about a future term (a pre-vote records nothing).
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === 'MsgPreVote' && m.term > this.term);
    // §5.4.1: only for a candidate whose log is at least as up to date as ours.
    if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
      // Learners vote too: one may have been promoted without knowing it yet.
      this.send({ type: respType, to: m.from, term: m.term, ...this.commitInfo() });
      if (m.type === 'MsgVote') {
        // Granting a vote resets the election timer; refusing one does not.
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true, ...this.commitInfo() });
    }
  }

  /**
   * Leader stickiness (diss. §4.2.3): a node that heard from a live leader
   * within the election timeout ignores vote requests, so a node that
   * rejoins after a partition cannot depose a healthy leader. With lease
   * reads a node that just started also waits an election timeout: it may
   * have acknowledged a lease before it crashed.
   */
  private inLease(): boolean {
    if (!this.checkQuorum) return false;
    if (this.lead !== NONE && this.electionElapsed < this.electionTimeout) return true;
    return this.readOnlyOption === 'leaseBased' && this.tickCount < this.electionTimeout;
  }

  // -------------------------------------------------------------------------
  // Messages

  step(m: Message): void {
    if (m.type === 'MsgVote' || m.type === 'MsgPreVote' || m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp') {
      this.learnCommit(m);
    }
    if (m.term === 0) {
      // A forwarded request (MsgProp, MsgReadIndex): no term to check.
    } else if (m.term > this.term) {
      if ((m.type === 'MsgVote' || m.type === 'MsgPreVote') && !m.force && this.inLease()) {
        this.logger.debug('raft: ignoring vote request within lease', {
          id: this.id,
          from: m.from,
          type: m.type,
          term: this.term,
          remainingTicks: this.electionTimeout - this.electionElapsed,
        });
        return;
      }
      if (m.type === 'MsgPreVote') {
        // A PreVote never changes our term.
      } else if (m.type === 'MsgPreVoteResp' && !m.reject) {
        // A granted pre-vote carries the term we asked about, not one to adopt:
        // we move to it only when we win the pre-election.
      } else {
        // §5.1: a higher term makes us a follower of that term.
        const lead = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap' ? m.from : NONE;
        // Adopting a vote request's term does not restart our election
        // timer: only granting the vote does (handleVoteRequest). Otherwise
        // a candidate with a stale log, campaigning again and again, would
        // keep every up-to-date node from ever timing out.
        const keepTimer = m.type === 'MsgVote' && this.state !== 'leader';
        const elapsed = this.electionElapsed;
        this.becomeFollower(m.term, lead);
        if (keepTimer) this.electionElapsed = elapsed;
      }
    } else if (m.term < this.term) {
      if (m.type === 'MsgHeartbeat' || m.type === 'MsgApp') {
        // A leader of an older term is still around, perhaps cut off while we
        // moved on. Tell it our term (§5.1: "reply false if term <
        // currentTerm"): it steps down. Our vote requests may never reach it:
        // with CheckQuorum or PreVote they are ignored or carry no new term,
        // and while a configuration change is half applied we may not even
        // count it as a voter. (etcd-io/raft answers only with CheckQuorum or
        // PreVote on; the simulator found a leader stuck forever without.)
        this.send({ type: 'MsgAppResp', to: m.from });
      } else if (m.type === 'MsgPreVote' || m.type === 'MsgVote') {
        // Refuse with our term (§5.1: "reply false if term < currentTerm"),
        // so the candidate catches up. Silence could stall elections: a
        // candidate whose vote requests only we can answer would keep
        // campaigning at terms below ours, while we campaign among voters
        // that exclude it (our configurations can differ while a change
        // is being applied).
        const type = m.type === 'MsgPreVote' ? 'MsgPreVoteResp' : 'MsgVoteResp';
        this.send({ type, to: m.from, term: this.term, reject: true, ...this.commitInfo() });
      }
      // Anything else from an older term is stale: ignore it.
      return;
    }

    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      this.handleVoteRequest(m);
      return;
    }
    if (m.type === 'MsgPropResp') {
      this.onForwardedProposalRefused(m);
      return;
    }
    switch (this.state) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'MsgProp':
        this.appendProposal(m.entries, m.from);
        return;
      case 'MsgReadIndex':
        this.handleReadIndex(m.context ?? EMPTY_DATA, m.from);
        return;
      case 'MsgTransferLeader':
        this.handleTransferLeader(m.transferee, false);
        return;
    }
    const pr = this.prs.progress.get(m.from);
    if (!pr) {
      this.logger.debug('raft: no progress for sender', { id: this.id, from: m.from, type: m.type });
      return;
    }
    switch (m.type) {
      case 'MsgAppResp':
        this.handleAppendResponse(m, pr);
        break;
      case 'MsgHeartbeatResp':
        this.handleHeartbeatResponse(m, pr);
        break;
      default:
        // Votes already handled; MsgApp/MsgHeartbeat/MsgSnap of our own term
        // cannot come from another leader (Election Safety).
        break;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      // The follower's hint lets us skip a whole term (or more) per round
      // trip instead of one entry (§5.3, end): find where our log may match
      // a log with term m.logTerm at index m.rejectHint.
      let nextProbeIndex = m.rejectHint;
      if (m.logTerm > 0) nextProbeIndex = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrTo(m.index, nextProbeIndex)) {
        this.logger.debug('raft: append rejected, backing off', {
          id: this.id,
          from: m.from,
          rejected: m.index,
          next: pr.nextIndex,
        });
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    // Also act when a probing follower confirms its current matchIndex: that
    // moves it back to pipelined replication.
    if (!pr.maybeUpdate(m.index) && !(pr.matchIndex === m.index && pr.state === 'probe')) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.matchIndex + 1 >= this.raftLog.firstIndex()) {
      // Caught up far enough to continue with entries, whatever the
      // snapshot's fate: stop sending snapshots.
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      // Everyone learns the new commit index at the next flush.
    } else if (oldPaused) {
      // The follower was paused and may have missed the commit index.
      this.sendAppend(m.from);
    }
    // The window may have room for several messages now.
    while (this.maybeSendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.leadTransferee && pr.matchIndex === this.raftLog.lastIndex()) {
      this.logger.info('raft: transferee caught up, sending TimeoutNow', { id: this.id, to: m.from });
      this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    // If every message in a full window was lost, free one slot so that an
    // append can get through and be answered.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.matchIndex < this.raftLog.lastIndex() || pr.state === 'probe') this.sendAppend(m.from);
    if (m.round > pr.roundAcked) {
      pr.roundAcked = m.round;
      this.confirmReads();
    }
  }

  /**
   * Commits what a quorum of voters has persisted, counting replicas only
   * for entries of the current term (§5.4.2, Figure 8).
   */
  private maybeCommit(): boolean {
    const wasCommittedInTerm = this.committedEntryInCurrentTerm();
    if (!this.raftLog.maybeCommit(this.prs.committed(), this.term)) return false;
    this.pendingBroadcast = true;
    if (!wasCommittedInTerm) this.releasePendingReadIndexMessages();
    return true;
  }

  private stepCandidate(m: Message): void {
    const myRespType: MessageType = this.state === 'preCandidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
    switch (m.type) {
      case 'MsgProp':
        this.refuseForwarded(m.from, m.entries, 'no-leader', `node ${this.id} is ${this.state}`);
        return;
      case 'MsgApp':
        // A leader of our term exists: it won this election.
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case 'MsgHeartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'MsgSnap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myRespType: {
        const result = this.poll(m.from, m.type, !m.reject);
        if (result === 'won' && !this.promotable()) {
          // Defense in depth (see switchToConfig): never lead without being a voter.
          this.becomeFollower(this.term, NONE);
        } else if (result === 'won') {
          if (this.state === 'preCandidate') this.campaign('election');
          else this.becomeLeader();
        } else if (result === 'lost') {
          // A rejected PreVote carries a term we already adopted if it was higher.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      default:
        // MsgTimeoutNow while campaigning already; stale responses.
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'MsgProp':
        // Forwarded to us by a node that thought we lead: pass it on.
        if (this.lead === NONE || this.disableProposalForwarding) {
          this.refuseForwarded(m.from, m.entries, this.lead === NONE ? 'no-leader' : 'not-leader');
          return;
        }
        this.send({ type: 'MsgProp', to: this.lead, entries: m.entries });
        return;
      case 'MsgApp':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case 'MsgHeartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'MsgSnap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'MsgTransferLeader':
        if (this.lead !== NONE) this.send({ type: 'MsgTransferLeader', to: this.lead, transferee: m.transferee });
        return;
      case 'MsgTimeoutNow':
        // The leader chose us: campaign now, without PreVote (we are not
        // recovering from a partition) and past followers' stickiness.
        this.logger.info('raft: received TimeoutNow, campaigning', { id: this.id, term: this.term, from: m.from });
        this.hup('transfer');
        return;
      case 'MsgReadIndex':
        if (this.lead !== NONE) this.send({ type: 'MsgReadIndex', to: this.lead, context: m.context });
        return;
      case 'MsgReadIndexResp':
        this.readStates.push({ index: m.index, context: m.context ?? EMPTY_DATA });
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit index matches the leader already.
      this.acknowledgeAppend(m.from, this.raftLog.committed);
      return;
    }
    const last = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (last !== undefined) {
      this.acknowledgeAppend(m.from, last);
      return;
    }
    // Our log does not match at prevLogIndex. Hint the largest (index, term)
    // we have with index <= prevLogIndex and term <= prevLogTerm: the leader
    // can skip every index beyond it (§5.3, end).
    const [hintIndex, hintTerm] = this.raftLog.findConflictByTerm(
      Math.min(m.index, this.raftLog.lastIndex()),
      m.logTerm,
    );
    this.logger.debug('raft: rejecting append', {
      id: this.id,
      from: m.from,
      prevIndex: m.index,
      prevTerm: m.logTerm,
      hintIndex,
      hintTerm,
    });
    this.send({ type: 'MsgAppResp', to: m.from, index: m.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm });
  }

  /** Tells the leader our log matches its log up to `index`. */
  private acknowledgeAppend(to: NodeId, index: number): void {
    const resp = this.newMessage('MsgAppResp', to);
    resp.index = index;
    this.emit(resp);
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    const resp = this.newMessage('MsgHeartbeatResp', m.from);
    resp.round = m.round;
    this.emit(resp);
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    if (this.restore(s)) {
      this.logger.info('raft: restored snapshot', { id: this.id, index: s.metadata.index, term: s.metadata.term });
      this.acknowledgeAppend(m.from, this.raftLog.lastIndex());
    } else {
      this.acknowledgeAppend(m.from, this.raftLog.committed);
    }
  }

  /** Installs a snapshot from the leader (§7). Returns false when it is ignored. */
  private restore(s: Snapshot): boolean {
    const { index, term, confState } = s.metadata;
    // Never go back: a snapshot at or below the commit index adds nothing.
    if (index <= this.raftLog.committed) return false;
    if (this.state !== 'follower') {
      // Defense in depth: only followers get snapshots from a leader.
      this.logger.warn('raft: non-follower received a snapshot', { id: this.id, state: this.state });
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    // Entries handed out for applying are still being applied: their
    // configuration changes must meet the configuration they were written
    // for, not the snapshot's. Decline; the leader sends the snapshot again.
    if (this.raftLog.applying > this.raftLog.applied) {
      this.logger.info('raft: declining snapshot while entries are being applied', {
        id: this.id,
        index,
        applying: this.raftLog.applying,
        applied: this.raftLog.applied,
      });
      return false;
    }
    // A snapshot whose configuration does not include us cannot be used.
    const members = [confState.voters, confState.learners, confState.votersOutgoing];
    if (!members.some((ids) => ids.includes(this.id))) {
      this.logger.warn('raft: snapshot configuration does not include this node', { id: this.id, index });
      return false;
    }
    // If our log already holds the snapshot's last entry, keep the entries
    // after it: just commit up to the snapshot (§7).
    if (this.raftLog.matchTerm(index, term)) {
      this.raftLog.commitTo(index);
      return false;
    }
    this.raftLog.restore(s);
    // The snapshot's configuration replaces ours: rebuild it from empty.
    this.prs.install(emptyTrackerConfig(), new Map());
    const restored = restoreConfState(this.prs, this.raftLog.lastIndex(), confState);
    this.switchToConfig(restored.config, restored.progress);
    return true;
  }

  // -------------------------------------------------------------------------
  // Proposals

  /** Proposes entries through this node: appended if leader, forwarded if follower. */
  propose(entries: readonly Proposal[]): void {
    switch (this.state) {
      case 'leader':
        this.appendProposal(entries, NONE);
        return;
      case 'follower':
        if (this.lead === NONE) throw new ProposalDroppedError('no-leader');
        if (this.disableProposalForwarding) throw new ProposalDroppedError('not-leader');
        this.send({
          type: 'MsgProp',
          to: this.lead,
          entries: entries.map((e) =>
            e instanceof Uint8Array
              ? { term: 0, index: 0, type: 'normal', data: e }
              : { term: 0, index: 0, type: e.type, data: e.data },
          ),
        });
        return;
      default:
        throw new ProposalDroppedError('no-leader', `node ${this.id} is ${this.state}`);
    }
  }

  /**
   * Appends proposals as leader, proposed here (`from` NONE) or forwarded by
   * `from`. A refusal throws for a local caller, and goes back to the node
   * that forwarded it otherwise (never dropped without telling the caller).
   */
  private appendProposal(entries: readonly Proposal[], from: NodeId): void {
    const local = from === NONE;
    const refuse = (reason: DropReason, detail?: string): void => {
      if (local) throw new ProposalDroppedError(reason, detail);
      this.refuseForwarded(from, entries as readonly Entry[], reason, detail);
    };
    if (entries.length === 0) return;
    if (!this.prs.progress.has(this.id)) return refuse('removed');
    if (this.leadTransferee !== NONE) return refuse('transferring', `to ${this.leadTransferee}`);
    let accepted = entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e instanceof Uint8Array || e.type !== 'confChange') continue;
      const problem = this.confChangeProblem(e);
      if (problem) {
        if (local) return refuse(problem.reason, problem.detail);
        // Keep the rest of a forwarded batch: replace the refused change with
        // a no-op, and tell its proposer.
        if (accepted === entries) accepted = entries.slice();
        (accepted as Proposal[])[i] = EMPTY_DATA;
        this.refuseForwarded(from, [e as Entry], problem.reason, problem.detail);
      } else {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      }
    }
    if (!this.appendEntry(accepted)) refuse('uncommitted-limit');
  }

  /** Sends refused forwarded proposals back to the node that forwarded them (MsgPropResp). */
  private refuseForwarded(to: NodeId, entries: readonly Entry[], reason: DropReason, detail?: string): void {
    this.logger.debug('raft: refusing forwarded proposal', { id: this.id, to, reason, detail, entries: entries.length });
    if (entries.length === 0 || to === this.id) return;
    this.send({ type: 'MsgPropResp', to, entries, reject: true, context: new TextEncoder().encode(reason) });
  }

  /** Proposals this node forwarded were refused: hand them to the application (Ready.droppedProposals). */
  private onForwardedProposalRefused(m: Message): void {
    const text = m.context ? new TextDecoder().decode(m.context) : '';
    const reason = DROP_REASONS.find((r) => r === text) ?? 'no-leader';
    for (const e of m.entries) this.droppedProposals.push({ type: e.type, data: e.data, reason });
  }

  private confChangeProblem(e: ProposedEntry): { reason: DropReason; detail: string } | undefined {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch (err) {
      return { reason: 'conf-change-invalid', detail: (err as Error).message };
    }
    const joint = this.prs.config.voters.isJoint;
    const leave = leavesJoint(cc);
    if (this.pendingConfIndex > this.raftLog.applied) {
      return {
        reason: 'conf-change-pending',
        detail: `possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.raftLog.applied})`,
      };
    }
    if (joint && !leave) return { reason: 'conf-change-invalid', detail: 'must transition out of joint config first' };
    if (!joint && leave) return { reason: 'conf-change-invalid', detail: 'not in joint state; refusing empty conf change' };
    // Try it on the current configuration: with one change at a time, that
    // is the configuration it will be applied to. A change that cannot apply
    // (e.g. removing every voter) must not reach the log, where every member
    // would fail on it.
    try {
      applyChange(this.prs, this.raftLog.lastIndex(), cc);
    } catch (err) {
      if (!(err instanceof InvalidConfChangeError)) throw err;
      return { reason: 'conf-change-invalid', detail: err.message };
    }
    return undefined;
  }

  /** Appends entries of the current term to the leader's log. False if over the uncommitted limit. */
  private appendEntry(proposed: readonly Proposal[]): boolean {
    const last = this.raftLog.lastIndex();
    const term = this.term;
    const ents: Entry[] = new Array<Entry>(proposed.length);
    for (let i = 0; i < proposed.length; i++) {
      const p = proposed[i]!;
      ents[i] =
        p instanceof Uint8Array
          ? { term, index: last + 1 + i, type: 'normal', data: p }
          : { term, index: last + 1 + i, type: p.type, data: p.data };
    }
    if (this.maxUncommittedSize !== Infinity) {
      const size = payloadBytes(ents);
      // Empty entries are always accepted, and so is anything when nothing is
      // uncommitted, so one large proposal cannot be refused forever.
      if (this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > this.maxUncommittedSize) return false;
      this.uncommittedSize += size;
    }
    this.raftLog.append(ents);
    // Our own copy counts only once persisted (see onPersisted); the
    // followers get the entries at the next flush.
    this.pendingBroadcast = true;
    return true;
  }

  // -------------------------------------------------------------------------
  // Reads (diss. §6.4)

  /** Requests a read index for `context`, locally or through the leader. */
  readIndex(context: Uint8Array): void {
    if (this.state === 'leader') {
      this.handleReadIndex(context, this.id);
      return;
    }
    if (this.lead === NONE) throw new ProposalDroppedError('no-leader', 'read index needs a leader');
    this.send({ type: 'MsgReadIndex', to: this.lead, context });
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrUndefined(this.raftLog.committed) === this.term;
  }

  private handleReadIndex(context: Uint8Array, from: NodeId): void {
    // A new leader's commit index may lag behind entries committed by its
    // predecessors until it commits an entry of its own term (§8): hold reads till then.
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndexMessages.push({ context, from });
      return;
    }
    this.answerReadIndex(context, from);
  }

  private answerReadIndex(context: Uint8Array, from: NodeId): void {
    const index = this.raftLog.committed;
    if (this.prs.isSingleton()) {
      // No one else can be elected: our commit index is current.
      this.respondToRead(context, from, index);
      return;
    }
    if (
      this.readOnlyOption === 'leaseBased' &&
      this.leadTransferee === NONE &&
      this.readOnly.leaseValid(this.tickCount)
    ) {
      this.respondToRead(context, from, index);
      return;
    }
    // Confirm leadership with a heartbeat round sent after this request arrived.
    this.readOnly.add(context, from, index);
  }

  private releasePendingReadIndexMessages(): void {
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const r of pending) this.answerReadIndex(r.context, r.from);
  }

  /** Answers the reads whose heartbeat round a quorum has acknowledged. */
  private confirmReads(): void {
    const round = this.prs.quorumRound();
    if (!Number.isFinite(round)) return;
    for (const r of this.readOnly.confirm(round, this.leaseTicks)) this.respondToRead(r.context, r.from, r.index);
  }

  private respondToRead(context: Uint8Array, from: NodeId, index: number): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send({ type: 'MsgReadIndexResp', to: from, index, context });
  }

  // -------------------------------------------------------------------------
  // Leadership transfer (diss. §3.10)

  transferLeader(transferee: NodeId): void {
    if (this.state === 'leader') {
      this.handleTransferLeader(transferee, true);
      return;
    }
    if (this.lead === NONE) throw new ProposalDroppedError('no-leader', 'cannot transfer leadership');
    this.send({ type: 'MsgTransferLeader', to: this.lead, transferee });
  }

  private handleTransferLeader(transferee: NodeId, local: boolean): void {
    const pr = this.prs.progress.get(transferee);
    if (!pr || pr.isLearner) {
      // Only a voter can be elected.
      const detail = `${transferee} is not a voter`;
      if (local) throw new ProposalDroppedError('not-leader', detail);
      this.logger.info('raft: ignoring transfer request', { id: this.id, detail });
      return;
    }
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return; // already under way
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return; // already leader
    this.logger.info('raft: starting leadership transfer', { id: this.id, term: this.term, transferee });
    // The transfer must finish within an election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    // Only an up-to-date target can win; bring it up to date first.
    if (pr.matchIndex === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  private sendTimeoutNow(to: NodeId): void {
    // The target campaigns past followers' stickiness, so the lease no longer holds.
    this.readOnly.revokeLease();
    this.send({ type: 'MsgTimeoutNow', to });
  }

  // -------------------------------------------------------------------------
  // Membership (§6)

  applyConfChange(cc: ConfChange): ConfState {
    const r = applyChange(this.prs, this.raftLog.lastIndex(), cc);
    return this.switchToConfig(r.config, r.progress);
  }

  private switchToConfig(config: ProgressTracker['config'], progress: Map<NodeId, Progress>): ConfState {
    this.prs.install(config, progress);
    const cs = this.prs.confState();
    const self = progress.get(this.id);
    this.isLearner = self !== undefined && self.isLearner;
    if ((!self || this.isLearner) && this.state === 'leader') {
      // The configuration that removed (or demoted) us is committed: we no
      // longer count, so we stop leading and the others elect a leader.
      if (this.stepDownOnRemoval) {
        this.logger.info('raft: removed from configuration, stepping down', { id: this.id, term: this.term });
        this.becomeFollower(this.term, NONE);
      }
      return cs;
    }
    if ((this.state === 'candidate' || this.state === 'preCandidate') && !this.promotable()) {
      // We left the voters mid-campaign: the votes we gather would make a
      // leader the configuration does not count, which refuses every
      // proposal while its heartbeats keep anyone else from campaigning.
      this.logger.info('raft: no longer a voter, abandoning the campaign', { id: this.id, term: this.term });
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.state !== 'leader' || cs.voters.length === 0) return cs;
    // The new configuration may commit more (fewer voters), and new members
    // should be probed at once rather than at the next heartbeat.
    if (!this.maybeCommit()) {
      for (const id of this.prs.ids()) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    if (this.leadTransferee !== NONE && !this.prs.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  // -------------------------------------------------------------------------
  // Feedback from the application (through RawNode)

  /** Entries up to (index, term) are durable on this node. */
  onPersisted(index: number, term: number): void {
    this.raftLog.unstable.stableTo(index, term);
    if (this.state !== 'leader' || this.raftLog.termOrUndefined(index) !== term) return;
    // diss. §10.2.1: the leader counts its own log towards commitment only now.
    const self = this.prs.progress.get(this.id);
    if (self && self.maybeUpdate(index)) this.maybeCommit();
  }

  onSnapshotPersisted(index: number): void {
    this.raftLog.unstable.stableSnapTo(index);
    this.raftLog.appliedTo(index);
  }

  /** The application has applied these entries. */
  onApplied(entries: readonly Entry[]): void {
    this.raftLog.appliedTo(Math.max(entries[entries.length - 1]!.index, this.raftLog.applied));
    if (this.state === 'leader' && this.maxUncommittedSize !== Infinity) {
      this.uncommittedSize = Math.max(0, this.uncommittedSize - payloadBytes(entries));
    }
    this.maybeAutoLeave();
  }

  /**
   * Leaves a joint configuration that asked for it, once everything up to
   * the change is applied. Retried on every apply and at every abandoned
   * transfer, since a transfer in progress refuses the proposal.
   */
  private maybeAutoLeave(): void {
    if (this.state !== 'leader' || !this.prs.config.autoLeave) return;
    if (this.raftLog.applied < this.pendingConfIndex) return;
    try {
      // An empty payload: the size limit can never refuse it.
      this.appendProposal([{ type: 'confChange', data: EMPTY_DATA }], NONE);
      this.logger.info('raft: leaving joint configuration automatically', {
        id: this.id,
        config: describeConfig(this.prs.config),
      });
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
      this.logger.debug('raft: not leaving joint configuration yet', { id: this.id, reason: e.reason });
    }
  }

  /** The transport could not reach `id`: probe it again rather than pipelining into the void. */
  reportUnreachable(id: NodeId): void {
    const pr = this.prs.progress.get(id);
    if (this.state !== 'leader' || !pr) return;
    if (pr.state === 'replicate') pr.becomeProbe();
  }

  /** The application finished (or failed) sending a snapshot to `id`. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    const pr = this.prs.progress.get(id);
    if (this.state !== 'leader' || !pr || pr.state !== 'snapshot') return;
    // On failure forget the snapshot; either way probe from where the follower is.
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or a heartbeat response) before the next probe.
    pr.msgAppFlowPaused = true;
  }

  /** Whether this node has messages or reads queued for the application. */
  hasOutput(): boolean {
    return (
      this.msgs.length > 0 || this.msgsAfterPersist.length > 0 || this.readStates.length > 0 || this.droppedProposals.length > 0
    );
  }
}

function validateConfig(c: RaftConfig): void {
  const positiveInt = (v: number, name: string) => {
    if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidConfigError(`${name} must be a positive integer, got ${v}`);
  };
  positiveInt(c.id, 'id');
  positiveInt(c.heartbeatTick, 'heartbeatTick');
  positiveInt(c.electionTick, 'electionTick');
  if (c.electionTick <= c.heartbeatTick) {
    throw new InvalidConfigError(
      `electionTick (${c.electionTick}) must be greater than heartbeatTick (${c.heartbeatTick})`,
    );
  }
  if (c.maxInflightMsgs !== undefined) positiveInt(c.maxInflightMsgs, 'maxInflightMsgs');
  if (c.maxSizePerMsg !== undefined) positiveInt(c.maxSizePerMsg, 'maxSizePerMsg');
  if (c.maxCommittedSizePerReady !== undefined) positiveInt(c.maxCommittedSizePerReady, 'maxCommittedSizePerReady');
  if ((c.readOnlyOption ?? 'safe') === 'leaseBased') {
    if (c.checkQuorum === false) {
      throw new InvalidConfigError('checkQuorum must be enabled when readOnlyOption is leaseBased');
    }
    const margin = c.leaseSafetyMarginTicks ?? Math.max(2, Math.ceil(c.electionTick / 5));
    if (!Number.isSafeInteger(margin) || margin < 1 || margin >= c.electionTick) {
      throw new InvalidConfigError(`leaseSafetyMarginTicks must be in [1, electionTick), got ${margin}`);
    }
  }
  if (!c.random || typeof c.random.int !== 'function') {
    throw new InvalidConfigError('a random source is required (the core has no randomness of its own)');
  }
}
