// The node runtime: drives the Raft core (RawNode) for real. A timer ticks
// it; messages from the transport step it; proposals and reads go in; and a
// processing pass hands each Ready to the disk, the network and the state
// machine in the order Raft's safety depends on:
//
//   pass:  proposals and reads queued since the last pass -> the core
//          rd = ready()
//          send rd.messages                    (before the write: diss. §10.2.1)
//          storage.save(snapshot, entries, hard state)   -- fdatasync starts --
//          fail rd.droppedProposals            (while the disk syncs, unless
//          apply rd.committedEntries in order   rd carries a snapshot; see
//          note rd.readStates; serve reads      applyCommitted)
//   then:  send rd.messagesAfterPersist        (votes, acks: promise durability)
//          install rd.snapshot, then apply     (if rd carries one)
//          advance(rd); maybe take a snapshot; next pass
//
// One Ready is in flight at a time (RawNode requires it); what arrives while
// the disk syncs accumulates in the core and goes out in the next Ready, so
// under load one fdatasync covers many proposals (group commit). A failed
// write or fsync stops the node for good: after a failed fsync the kernel may
// have dropped the dirty pages, and continuing could acknowledge data that is
// not on disk.
//
// src/sim/node.ts drives the same core the same way in the simulator, where
// the Raft invariants are checked after every event.

import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';

import { decodeConfChange } from '../raft/confchange.js';
import { InvalidMessageError, SnapshotTemporarilyUnavailableError } from '../raft/errors.js';
import { type ProgressStatus, type Ready, RawNode, bootstrapState } from '../raft/rawNode.js';
import type { InitialState, Storage } from '../raft/storage.js';
import type {
  ConfChange,
  ConfChangeSingle,
  ConfState,
  Entry,
  HardState,
  Logger,
  Message,
  NodeId,
  RandomSource,
  Snapshot,
  SoftState,
  StateType,
} from '../raft/types.js';
import { type ByteParts, partsLength } from '../storage/bytes.js';
import { DiskStorage, type StorageRecovery } from '../storage/diskStorage.js';
import { StorageError } from '../storage/errors.js';
import { NodeFileSystem } from '../storage/nodeFs.js';
import type { Transport } from '../transport/types.js';
import { decodeConfContext, decodeEnvelope, decodeNodeSnapshot, encodeConfContext, encodeEnvelope, encodeNodeSnapshot, nodeSnapshotHeader } from './envelope.js';
import { InvalidNodeOptionsError, InvalidRequestError, NodeFailedError, NodeStoppedError, RequestTimeoutError } from './errors.js';
import {
  type NodeClock,
  type NodeLogger,
  type NodeStorage,
  type RaftNodeOptions,
  type ResolvedOptions,
  SILENT_NODE_LOGGER,
  SYSTEM_CLOCK,
  resolveOptions,
} from './options.js';
import { Proposals, type Settle } from './proposals.js';
import { Reads } from './reads.js';
import { type SnapshotTask, type StateMachine } from './stateMachine.js';

/** What the node reports about itself (for the server's status endpoints and the visualiser). */
export interface NodeStatus {
  readonly id: NodeId;
  readonly role: StateType;
  readonly term: number;
  readonly vote: NodeId;
  /** 0 when no leader is known. */
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly snapshotIndex: number;
  readonly leadTransferee: NodeId;
  readonly confState: ConfState;
  /** The leader's view of every member's replication; undefined on other members. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | undefined;
  readonly state: 'running' | 'stopped' | 'failed';
}

/** Counters since the node started. */
export interface NodeMetrics {
  /** Proposals (and membership changes) of this node applied here: their callers got a result. */
  readonly proposalsCommitted: number;
  /** Proposals of this node that failed (refused, overwritten, timed out, stopped). */
  readonly proposalsFailed: number;
  readonly proposalsPending: number;
  readonly readsServed: number;
  readonly readsFailed: number;
  /** ReadIndex requests sent: concurrent reads share one. */
  readonly readIndexRequests: number;
  /** Entries applied (every member's proposals, conf changes and no-ops). */
  readonly appliedEntries: number;
  /** Committed but not yet applied here. */
  readonly applyLag: number;
  readonly snapshotsTaken: number;
  readonly snapshotsInstalled: number;
  readonly leaderChanges: number;
  /** Readies handled, and the writes (each one fdatasync) they needed. */
  readonly readies: number;
  readonly writes: number;
  readonly persistedEntries: number;
  /** Write + fdatasync durations, in milliseconds. */
  readonly fsyncTotalMs: number;
  readonly fsyncMaxMs: number;
  readonly fsyncLastMs: number;
}

/** The events a node emits (the server turns them into logs, metrics and the visualiser's stream). */
export interface NodeEvents {
  leaderChange: [{ leader: NodeId; previous: NodeId; term: number }];
  roleChange: [{ role: StateType; previous: StateType; term: number }];
  /** This member started a (pre-)election. */
  election: [{ term: number; kind: 'preVote' | 'vote' }];
  /** One Ready was made durable: a write and an fdatasync. */
  persisted: [{ durationMs: number; entries: number; hardState: boolean; snapshot: boolean }];
  snapshotTaken: [{ index: number; term: number; bytes: number; compactedTo: number }];
  snapshotInstalled: [{ index: number; term: number; bytes: number }];
  confChangeApplied: [{ index: number; change: ConfChange; confState: ConfState; url: string | undefined }];
  /**
   * This member applied its own removal. A removed follower may never
   * apply it (the leader stops replicating to it); etcd's transport tells
   * such a member instead.
   */
  removed: [{ index: number }];
  /** The node stopped itself; every request failed with this error. */
  fatal: [NodeFailedError];
  stopped: [];
}

interface Transfer extends Settle {
  readonly target: NodeId;
  readonly deadline: number;
}

/** Creates a node: opens (or bootstraps) its storage, starts its transport and its clock. */
export function createNode<Result = unknown>(options: RaftNodeOptions<Result>): Promise<RaftNode<Result>> {
  return RaftNode.create(options);
}

export class RaftNode<Result = unknown> extends EventEmitter<NodeEvents> {
  readonly id: NodeId;
  private readonly options: RaftNodeOptions<Result>;
  private readonly config: ResolvedOptions;
  private readonly storage: NodeStorage;
  private readonly transport: Transport;
  private readonly sm: StateMachine<Result>;
  private readonly clock: NodeClock;
  private readonly logger: NodeLogger;
  private readonly random: RandomSource;
  private raw!: RawNode;
  private readonly proposals: Proposals;
  private readonly reads: Reads;
  private transfers: Transfer[] = [];

  /** The configuration and the peer URLs as of appliedIndex. */
  private confState: ConfState;
  private members = new Map<NodeId, string>();
  private appliedIndex = 0;
  private soft: SoftState = { lead: 0, state: 'follower' };
  /** A Ready's hard state that changed only the commit index: not synced on its own (etcd neither); written with the next write. */
  private unsavedHardState: HardState | undefined;

  /** The snapshot being encoded in slices, if any, and its next step. */
  private snapshotting: PendingSnapshot | undefined;
  private snapshotStep: NodeJS.Immediate | undefined;

  private ticker: unknown;
  private passScheduled = false;
  /** The Ready being written, from ready() until applied and advanced (or failed). */
  private persisting: Ready | undefined;
  private idleWaiters: (() => void)[] = [];
  /** No more ticks, passes or requests: stopping, stopped or failed. */
  private halted = false;
  private stopPromise: Promise<void> | undefined;
  private failedWith: NodeFailedError | undefined;
  /** Snapshot files storage is still writing (createSnapshot's callbacks to come), and stop()s waiting for them. */
  private snapshotFilesWriting = 0;
  private snapshotFileWaiters: Array<() => void> = [];

  private readonly counters = {
    appliedEntries: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    leaderChanges: 0,
    readies: 0,
    writes: 0,
    persistedEntries: 0,
    fsyncTotalMs: 0,
    fsyncMaxMs: 0,
    fsyncLastMs: 0,
  };

  static async create<Result>(options: RaftNodeOptions<Result>): Promise<RaftNode<Result>> {
    const config = resolveOptions(options as RaftNodeOptions<unknown>);
    const storage: NodeStorage =
      options.storage ??
      DiskStorage.open({
        fs: options.fs ?? new NodeFileSystem(),
        dir: options.dataDir!,
        clusterId: options.clusterId ?? 'raftkv',
        memberId: options.memberId ?? options.id,
        ...(options.segmentBytes !== undefined ? { segmentBytes: options.segmentBytes } : {}),
        ...(options.cacheBytes !== undefined ? { cacheBytes: options.cacheBytes } : {}),
      });
    try {
      if (isEmpty(storage)) {
        if (options.initialVoters) {
          // The initial configuration is on disk before the member runs at
          // all: a crash cannot leave it without one (see bootstrapState).
          const { entries, hardState } = bootstrapState(options.initialVoters);
          await new Promise<void>((resolve, reject) =>
            storage.save({ entries, hardState }, (err) => (err ? reject(err) : resolve())),
          );
        } else if (!options.join) {
          throw new InvalidNodeOptionsError(
            'the data directory is empty: give initialVoters to bootstrap a new cluster, or join: true to join a running one',
          );
        }
      }
      const node = new RaftNode(options, config, storage);
      await node.start();
      return node;
    } catch (err) {
      storage.close();
      throw err;
    }
  }

  private constructor(options: RaftNodeOptions<Result>, config: ResolvedOptions, storage: NodeStorage) {
    super();
    this.id = options.id;
    this.options = options;
    this.config = config;
    this.storage = storage;
    this.transport = options.transport;
    this.sm = options.stateMachine;
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.logger = options.logger ?? SILENT_NODE_LOGGER;
    this.random = options.random ?? { int: (n) => randomInt(n) };
    const nonce = this.random.int(0x7fffffff);
    this.proposals = new Proposals(this.id, nonce, config.requestTimeoutMs);
    this.reads = new Reads(
      { readIndex: (context) => this.raw.readIndex(context), leader: () => this.raw.raft.lead },
      nonce,
      config.requestTimeoutMs,
      config.readIndexRetryMs,
    );
    this.confState = storage.initialState().confState;
  }

  /**
   * What opening the data directory found and did: an operator must learn
   * of a torn write cut off the log, of leftovers removed and of damaged
   * snapshots passed over, not only the storage's report.
   */
  private logRecovery(r: StorageRecovery): void {
    const log = this.logger;
    const where = { member: this.id };
    log.info(
      { ...where, segments: r.segments, records: r.records, bytes: r.bytes, snapshotIndex: r.snapshotIndex, firstIndex: r.firstIndex, lastIndex: r.lastIndex, term: r.hardState.term, commit: r.hardState.commit },
      'recovered the log',
    );
    if (r.tornTail) {
      log.warn(
        { ...where, ...r.tornTail },
        `cut a torn write off the end of the log (${r.tornTail.bytes} bytes at offset ${r.tornTail.offset} of ${r.tornTail.file}): a crash or a failed write interrupted it before it was synced, so it was never acknowledged`,
      );
    }
    if (r.leftovers.length > 0) log.warn({ ...where, files: r.leftovers }, 'removed leftovers of interrupted file writes');
    for (const s of r.skippedSnapshots) log.warn({ ...where, file: s.name, reason: s.reason }, 'passed over a damaged snapshot for an older one');
  }

  private async start(): Promise<void> {
    const o = this.options;
    // The state machine comes back from the latest snapshot; the core then
    // replays the committed entries after it.
    const snap = this.storage.snapshot();
    if (snap.metadata.index > 0) {
      const { members, data } = decodeNodeSnapshot(snap.data);
      this.sm.restore(data, snap.metadata.index);
      this.members = members;
      this.appliedIndex = snap.metadata.index;
      this.confState = snap.metadata.confState;
    }
    for (const [id, url] of this.config.peers) this.members.set(id, url);

    const log = this.logger;
    if (this.storage instanceof DiskStorage) this.logRecovery(this.storage.recovery);
    const coreLogger: Logger = {
      debug: (msg, fields) => log.debug({ member: this.id, ...fields }, msg),
      info: (msg, fields) => log.info({ member: this.id, ...fields }, msg),
      warn: (msg, fields) => log.warn({ member: this.id, ...fields }, msg),
    };
    this.raw = new RawNode({
      id: this.id,
      electionTick: this.config.electionTicks,
      heartbeatTick: this.config.heartbeatTicks,
      storage: new CoreStorageView(this.storage, () => this.snapshotForPeer()),
      random: this.random,
      applied: this.appliedIndex,
      preVote: o.preVote ?? true,
      checkQuorum: o.checkQuorum ?? true,
      readOnlyOption: o.readOnlyOption ?? 'safe',
      maxSizePerMsg: o.maxSizePerMsg ?? 1024 * 1024,
      maxInflightMsgs: o.maxInflightMsgs ?? 512,
      maxUncommittedEntriesBytes: o.maxUncommittedEntriesBytes ?? 1024 * 1024 * 1024,
      logger: coreLogger,
    });
    this.soft = this.raw.raft.softState();

    await this.transport.start({
      onMessage: (m) => this.onMessage(m),
      onUnreachable: (id) => this.guard(() => this.raw.reportUnreachable(id)),
      onSnapshotStatus: (id, ok) => this.guard(() => this.raw.reportSnapshot(id, ok)),
    });
    try {
      for (const [id, url] of this.members) if (id !== this.id) this.transport.addPeer(id, url);
    } catch (err) {
      this.halted = true;
      await this.transport.close();
      throw err;
    }

    // Fast-forward the election clock, as etcd does at start: the first
    // election comes within one election timeout rather than two. (A member
    // that rejoins a live cluster disturbs nothing: PreVote and the others'
    // leader stickiness keep it from deposing the leader.)
    for (let i = 1; i < this.config.electionTicks; i++) this.raw.tick();
    this.ticker = this.clock.setInterval(this.onTick, this.config.tickMs);
    this.logger.info(
      {
        member: this.id,
        term: this.raw.raft.term,
        applied: this.appliedIndex,
        snapshotIndex: snap.metadata.index,
        lastIndex: this.storage.lastIndex(),
        voters: this.confState.voters,
      },
      'node started',
    );
    this.schedule();
  }

  // ---------------------------------------------------------------------------
  // Requests

  /**
   * Proposes a command. Resolves with the state machine's result once the
   * entry is committed and applied on this node. Rejects with
   * ProposalDroppedError (no leader, a transfer under way, ...: nothing was
   * written), LeaderChangedError (the entry was overwritten: it will never
   * apply), RequestTimeoutError (outcome unknown), NodeStoppedError or
   * NodeFailedError.
   */
  propose(command: Uint8Array): Promise<Result> {
    if (!(command instanceof Uint8Array)) {
      return Promise.reject(new InvalidRequestError('propose() takes the command as a Uint8Array'));
    }
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return new Promise<Result>((resolve, reject) => {
      const id = this.proposals.add('proposal', { resolve: resolve as (v: unknown) => void, reject }, this.clock.now());
      // Handed to the core at the next pass, together with every proposal made until then.
      this.proposals.enqueue(id, encodeEnvelope(id, command));
      this.schedule();
    });
  }

  /**
   * A linearizable read barrier (diss. §6.4): resolves once this node has
   * applied everything committed before the call, as confirmed by the
   * current leader; reading the local state machine then is linearizable.
   * Concurrent calls share one ReadIndex request. Rejects with
   * ProposalDroppedError('no-leader'), LeaderChangedError,
   * RequestTimeoutError, NodeStoppedError or NodeFailedError.
   */
  readIndex(): Promise<void> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return new Promise<void>((resolve, reject) => {
      this.reads.wait({ resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /**
   * Adds a voter (or a learner) reachable at `url` (handed to every
   * member's transport). Resolves with the configuration once applied here.
   * One change at a time: while one is pending the leader refuses another
   * (ProposalDroppedError 'conf-change-pending').
   */
  addMember(id: NodeId, options: { learner?: boolean; url?: string } = {}): Promise<ConfState> {
    if (this.isMember(id)) return Promise.reject(new InvalidRequestError(`member ${id} is already in the cluster`));
    return this.proposeConfChange({ type: options.learner ? 'addLearner' : 'addNode', nodeId: id }, options.url);
  }

  /** Promotes a learner to voter. */
  promoteMember(id: NodeId): Promise<ConfState> {
    if (!this.confState.learners.includes(id)) {
      return Promise.reject(new InvalidRequestError(`member ${id} is not a learner`));
    }
    return this.proposeConfChange({ type: 'addNode', nodeId: id }, undefined);
  }

  removeMember(id: NodeId): Promise<ConfState> {
    if (!this.isMember(id)) return Promise.reject(new InvalidRequestError(`member ${id} is not in the cluster`));
    return this.proposeConfChange({ type: 'removeNode', nodeId: id }, undefined);
  }

  /** Hands leadership to `target` (diss. §3.10); resolves once this node sees it lead. */
  transferLeadership(target: NodeId): Promise<void> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    if (this.soft.lead === target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      try {
        this.raw.transferLeader(target);
      } catch (err) {
        reject(err as Error);
        return;
      }
      const deadline = this.clock.now() + this.config.requestTimeoutMs;
      this.transfers.push({ target, deadline, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Campaigns now, rather than at the election timeout (tools, tests). */
  campaign(): void {
    this.guard(() => this.raw.campaign());
    this.schedule();
  }

  /**
   * Stops gracefully: no more ticks or requests; the write in flight
   * finishes (and its entries apply); the latest commit index is written;
   * the transport and the storage close. Requests still pending fail with
   * NodeStoppedError. Idempotent.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

  // ---------------------------------------------------------------------------
  // Introspection

  status(): NodeStatus {
    const s = this.raw.status();
    return {
      id: this.id,
      role: s.softState.state,
      term: s.hardState.term,
      vote: s.hardState.vote,
      leader: s.softState.lead,
      commit: s.hardState.commit,
      applied: this.appliedIndex,
      firstIndex: s.firstIndex,
      lastIndex: s.lastIndex,
      lastTerm: s.lastTerm,
      snapshotIndex: this.storage.snapshotIndex(),
      leadTransferee: s.leadTransferee,
      confState: this.confState,
      progress: s.progress,
      state: this.failedWith ? 'failed' : this.halted ? 'stopped' : 'running',
    };
  }

  metrics(): NodeMetrics {
    return {
      ...this.counters,
      proposalsCommitted: this.proposals.committed,
      proposalsFailed: this.proposals.failed,
      proposalsPending: this.proposals.size,
      readsServed: this.reads.served,
      readsFailed: this.reads.failed,
      readIndexRequests: this.reads.requests,
      applyLag: this.raw.raft.raftLog.committed - this.appliedIndex,
    };
  }

  /** Set when the node stopped itself after a fatal error: every request fails with it. */
  get failure(): NodeFailedError | undefined {
    return this.failedWith;
  }

  /** The current term (what status().term says, without building the rest: etcd puts it in every response header). */
  get term(): number {
    return this.raw.raft.term;
  }

  /** The index of the last entry applied to the state machine. */
  get applied(): number {
    return this.appliedIndex;
  }

  /** The leader this node knows of (0: none). */
  get leader(): NodeId {
    return this.soft.lead;
  }

  /**
   * The election timer in ticks: elapsed since its last reset, and the
   * randomized timeout it counts to in this term (§5.2; on a leader the
   * elapsed ticks count towards the CheckQuorum round instead). For the
   * visualiser's shrinking ring.
   */
  electionTimer(): { elapsed: number; timeout: number } {
    const r = this.raw.raft;
    return { elapsed: r.electionElapsed, timeout: r.randomizedElectionTimeout };
  }

  /**
   * The last `max` entries of the log, oldest first, including those not yet
   * durable (for the visualiser). Never reaches below the first index kept
   * after compaction.
   */
  logTail(max: number): Entry[] {
    const log = this.raw.raft.raftLog;
    const last = log.lastIndex();
    const lo = Math.max(log.firstIndex(), last - max + 1);
    return lo > last ? [] : log.slice(lo, last + 1, Number.MAX_SAFE_INTEGER);
  }

  /** Known peer URLs, by member id. */
  peerUrls(): ReadonlyMap<NodeId, string> {
    return this.members;
  }

  // ---------------------------------------------------------------------------
  // Inputs

  private readonly onTick = (): void => {
    this.guard(() => {
      this.raw.tick();
      const now = this.clock.now();
      this.proposals.expire(now);
      this.reads.expire(now);
      this.expireTransfers(now);
    });
    this.schedule();
  };

  private onMessage(m: Message): void {
    this.guard(() => {
      try {
        this.raw.step(m);
      } catch (err) {
        // A malformed message from the network is dropped, not fatal.
        if (!(err instanceof InvalidMessageError)) throw err;
        this.logger.warn({ member: this.id, type: m.type, from: m.from, err }, 'dropping an invalid message');
      }
    });
    this.schedule();
  }

  /** Runs a call into the core; an error there is a broken invariant, so the node stops. */
  private guard(f: () => void): void {
    if (this.halted) return;
    try {
      f();
    } catch (err) {
      this.fail(asFailure(err));
    }
  }

  private refusal(): Error | undefined {
    if (this.failedWith) return this.failedWith;
    if (this.halted) return new NodeStoppedError();
    return undefined;
  }

  private isMember(id: NodeId): boolean {
    return this.confState.voters.includes(id) || this.confState.learners.includes(id);
  }

  private proposeConfChange(change: ConfChangeSingle, url: string | undefined): Promise<ConfState> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return new Promise<ConfState>((resolve, reject) => {
      const what = `conf change ${change.type} ${change.nodeId}`;
      const id = this.proposals.add(what, { resolve: resolve as (v: unknown) => void, reject }, this.clock.now());
      try {
        this.raw.proposeConfChange({ transition: 'auto', changes: [change], context: encodeConfContext(id, url) });
      } catch (err) {
        this.proposals.remove(id);
        reject(err as Error);
        return;
      }
      this.schedule();
    });
  }

  private expireTransfers(now: number): void {
    this.transfers = this.transfers.filter((t) => {
      if (t.deadline > now) return true;
      t.reject(new RequestTimeoutError(`leadership transfer to ${t.target}`, this.config.requestTimeoutMs));
      return false;
    });
  }

  /** Emits an event; a listener's error is logged, never thrown into the loop. */
  private notify<K extends keyof NodeEvents>(event: K, ...args: NodeEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: NodeEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.logger.error({ member: this.id, event, err }, 'an event listener threw');
    }
  }

  // ---------------------------------------------------------------------------
  // The processing pass

  private schedule(): void {
    if (this.passScheduled || this.halted) return;
    this.passScheduled = true;
    setImmediate(this.runPass);
  }

  private readonly runPass = (): void => {
    this.passScheduled = false;
    if (this.halted) return;
    try {
      this.pass();
    } catch (err) {
      this.fail(asFailure(err));
    }
  };

  private pass(): void {
    // Into the core even while a write is in flight: they go out with the next Ready.
    this.proposals.submit((data) => this.raw.proposeBatch(data));
    this.reads.submit(this.clock.now());
    if (this.persisting || !this.raw.hasReady()) return;
    const rd = this.raw.ready();
    this.counters.readies++;
    if (rd.softState) this.onSoftState(rd.softState);
    if (rd.messages.length > 0) this.transport.send(rd.messages);
    this.proposals.track(rd.entries);
    if (rd.snapshot === undefined && rd.entries.length === 0 && !rd.mustSync) {
      // Nothing to make durable but, at most, a new commit index, which Raft
      // can always learn again (Figure 2: commitIndex is volatile state).
      // etcd does not sync it either; it goes out with the next write.
      if (rd.hardState) this.unsavedHardState = rd.hardState;
      this.persisting = rd;
      this.afterPersist(rd, false);
      return;
    }
    const hardState = rd.hardState ?? this.unsavedHardState;
    this.unsavedHardState = undefined;
    const started = this.clock.now();
    this.persisting = rd;
    try {
      this.storage.save({ hardState, entries: rd.entries, snapshot: rd.snapshot }, (err) => {
        if (err) {
          this.persistingEnded();
          this.fail(new NodeFailedError('storage', err));
          return;
        }
        this.recordWrite(rd, hardState !== undefined, this.clock.now() - started);
        if (this.failedWith) {
          this.persistingEnded();
          return;
        }
        this.afterPersist(rd, rd.snapshot === undefined);
      });
    } catch (err) {
      // E.g. the snapshot file could not be written: no callback will come.
      this.persistingEnded();
      throw err;
    }
    if (!rd.snapshot) this.applyCommitted(rd);
  }

  /**
   * Applies the Ready's committed entries and serves the reads they make
   * possible. Called while the Ready's own write is still syncing: committed
   * entries are already durable on a quorum (the leader counts its own log
   * only once durable), so a client may hear the result now, and waiting for
   * an fdatasync of newer, unrelated entries would only add its latency to
   * every answer. etcd's apply loop runs beside the WAL write the same way
   * (etcdserver/raft.go). A Ready carrying a snapshot waits for the write:
   * its entries follow the snapshot, which must be installed first, and a
   * snapshot is taken only after the write, so that it never covers entries
   * missing from the local log.
   */
  private applyCommitted(rd: Ready): void {
    for (const d of rd.droppedProposals) this.proposals.dropped(d);
    for (const e of rd.committedEntries) this.applyEntry(e);
    for (const rs of rd.readStates) this.reads.confirmed(rs);
    this.reads.serve(this.appliedIndex);
  }

  /**
   * The Ready is durable: acknowledge, install a snapshot, apply (unless
   * done while the write synced), advance.
   */
  private afterPersist(rd: Ready, applied: boolean): void {
    try {
      if (rd.messagesAfterPersist.length > 0) this.transport.send(rd.messagesAfterPersist);
      if (rd.snapshot) this.installSnapshot(rd.snapshot);
      if (!applied) this.applyCommitted(rd);
      this.raw.advance(rd);
      if (this.appliedIndex >= this.snapshotDueAt()) this.takeSnapshot(true);
    } catch (err) {
      this.persistingEnded();
      this.fail(asFailure(err));
      return;
    }
    this.persistingEnded();
    this.schedule();
  }

  private persistingEnded(): void {
    this.persisting = undefined;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private recordWrite(rd: Ready, hardState: boolean, durationMs: number): void {
    const c = this.counters;
    c.writes++;
    c.persistedEntries += rd.entries.length;
    c.fsyncTotalMs += durationMs;
    c.fsyncLastMs = durationMs;
    c.fsyncMaxMs = Math.max(c.fsyncMaxMs, durationMs);
    this.notify('persisted', { durationMs, entries: rd.entries.length, hardState, snapshot: rd.snapshot !== undefined });
  }

  private onSoftState(ss: SoftState): void {
    const prev = this.soft;
    this.soft = ss;
    const term = this.raw.raft.term;
    if (ss.state !== prev.state) {
      this.notify('roleChange', { role: ss.state, previous: prev.state, term });
      if (ss.state === 'preCandidate' || ss.state === 'candidate') {
        this.notify('election', { term, kind: ss.state === 'preCandidate' ? 'preVote' : 'vote' });
      }
    }
    if (ss.lead === prev.lead) return;
    this.counters.leaderChanges++;
    this.logger.info({ member: this.id, leader: ss.lead, previous: prev.lead, term }, ss.lead ? 'leader elected' : 'leader lost');
    this.notify('leaderChange', { leader: ss.lead, previous: prev.lead, term });
    this.reads.leaderChanged(ss.lead);
    this.transfers = this.transfers.filter((t) => {
      if (t.target !== ss.lead) return true;
      t.resolve(undefined);
      return false;
    });
  }

  // ---------------------------------------------------------------------------
  // Applying

  private applyEntry(e: Entry): void {
    if (e.type === 'confChange') {
      this.applyConfChange(e);
    } else if (e.data.byteLength > 0) {
      const env = decodeEnvelope(e.data);
      let result: Result;
      try {
        result = this.sm.apply(env.payload, e.index);
      } catch (err) {
        throw new NodeFailedError('state-machine', err as Error);
      }
      this.appliedIndex = e.index;
      this.proposals.applied(env, e.index, result);
    } else {
      // The empty entry a new leader appends (§8): nothing to apply.
      this.appliedIndex = e.index;
      this.proposals.applied(undefined, e.index, undefined);
    }
    this.counters.appliedEntries++;
  }

  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const confState = this.raw.applyConfChange(cc);
    this.confState = confState;
    this.appliedIndex = e.index;
    const { id, url } = decodeConfContext(cc.context);
    let removedSelf = false;
    for (const change of cc.changes) {
      if (change.type === 'removeNode') {
        this.members.delete(change.nodeId);
        if (change.nodeId === this.id) removedSelf = true;
        else this.transport.removePeer(change.nodeId);
      } else if (url !== undefined) {
        this.members.set(change.nodeId, url);
        if (change.nodeId !== this.id) this.transport.addPeer(change.nodeId, url);
      }
    }
    this.logger.info(
      { member: this.id, index: e.index, changes: cc.changes, voters: confState.voters, learners: confState.learners },
      'configuration change applied',
    );
    this.notify('confChangeApplied', { index: e.index, change: cc, confState, url });
    if (removedSelf) this.notify('removed', { index: e.index });
    this.proposals.applied(id, e.index, confState);
  }

  /** A snapshot from the leader replaces the state machine (§7). */
  private installSnapshot(snap: Snapshot): void {
    const { index, term, confState } = snap.metadata;
    const { members, data } = decodeNodeSnapshot(snap.data);
    this.stateMachineCall(() => this.sm.restore(data, index));
    this.appliedIndex = index;
    this.confState = confState;
    // The snapshot's peer URLs win; keep what we know of members it still has.
    const inConf = (id: NodeId) =>
      confState.voters.includes(id) || confState.learners.includes(id) || confState.votersOutgoing.includes(id);
    const next = new Map<NodeId, string>();
    for (const [id, url] of this.members) if (inConf(id)) next.set(id, url);
    for (const [id, url] of members) next.set(id, url);
    for (const id of this.members.keys()) if (!next.has(id) && id !== this.id) this.transport.removePeer(id);
    for (const [id, url] of next) if (id !== this.id && this.members.get(id) !== url) this.transport.addPeer(id, url);
    this.members = next;
    this.proposals.snapshotInstalled(index);
    this.snapshotInstalledOver(index);
    this.counters.snapshotsInstalled++;
    this.logger.info({ member: this.id, index, term, bytes: snap.data.byteLength }, 'snapshot installed');
    this.notify('snapshotInstalled', { index, term, bytes: snap.data.byteLength });
  }

  // ---------------------------------------------------------------------------
  // Snapshots
  //
  // A state machine with beginSnapshot() is snapshotted in slices: the task
  // captures the state at the applied index, one step runs per turn of the
  // event loop (setImmediate, between processing passes, so applying,
  // answering and persisting go on), and the bytes are written when done.
  // etcd gets the same from a bbolt read transaction in a goroutine. Others
  // are snapshotted in one go, as before.

  /**
   * The applied index at which the next automatic snapshot is due: every
   * snapshotCount entries, each member at its own phase. Members apply the
   * same entries at about the same time, so with one phase for all they
   * would all encode and write a snapshot at once, and a leader whose
   * followers are both busy with one cannot commit until one is done (the
   * server benchmark's put p99 went from 34 to 70-90 ms). Member k of n
   * (by id, among voters and learners) snapshots at indexes ≡ k·count/n
   * (mod count), at least count/2 after its last snapshot: from the second
   * snapshot on, exactly every snapshotCount entries, as etcd's flag says.
   */
  private snapshotDueAt(): number {
    const last = this.storage.snapshotIndex();
    const count = this.config.snapshotCount;
    const members = [...this.confState.voters, ...this.confState.learners].sort((a, b) => a - b);
    const rank = Math.max(0, members.indexOf(this.id));
    const phase = Math.floor((rank * count) / Math.max(1, members.length));
    const earliest = last + Math.ceil(count / 2);
    return earliest + ((((phase - earliest) % count) + count) % count);
  }

  /**
   * Snapshots the state machine at the applied index; with `compact`, also
   * discards the log below it but for snapshotCatchUpEntries (etcd keeps the
   * same margin, so a slightly slow follower catches up from the log) once
   * the snapshot is written. One snapshot at a time: while one is being
   * encoded, this only makes sure it will compact.
   */
  private takeSnapshot(compact: boolean): void {
    const running = this.snapshotting;
    if (running) {
      running.compact ||= compact;
      return;
    }
    const index = this.appliedIndex;
    if (index <= this.storage.snapshotIndex()) return;
    const pending: PendingSnapshot = { index, confState: this.confState, members: new Map(this.members), compact, task: undefined };
    if (this.sm.beginSnapshot === undefined) {
      this.writeSnapshot(pending, encodeNodeSnapshot(pending.members, this.stateMachineCall(() => this.sm.snapshot())));
      return;
    }
    pending.task = this.stateMachineCall(() => this.sm.beginSnapshot!());
    this.snapshotting = pending;
    this.snapshotStep = setImmediate(this.runSnapshotStep);
  }

  /**
   * One slice of the snapshot being encoded; then the next, or the write:
   * the member list and the state machine's bytes go to storage as parts,
   * written as they are (no copy of the whole).
   */
  private readonly runSnapshotStep = (): void => {
    this.snapshotStep = undefined;
    const p = this.snapshotting;
    if (p === undefined || this.halted) return;
    try {
      if (p.parts === undefined && this.stateMachineCall(() => p.task!.step())) {
        const task = p.task!;
        const parts = this.stateMachineCall(() => (task.parts ? task.parts() : [task.result()]));
        p.task = undefined;
        p.parts = [nodeSnapshotHeader(p.members), ...parts];
      }
      if (p.parts !== undefined) {
        // Written between Readies only: every entry applied then is durable
        // here, so the snapshot never covers entries missing from the log.
        if (this.persisting) {
          void this.idle().then(this.runSnapshotStep);
          return;
        }
        this.snapshotting = undefined;
        this.writeSnapshot(p, p.parts);
        return;
      }
    } catch (err) {
      this.snapshotting = undefined;
      this.fail(asFailure(err));
      return;
    }
    this.snapshotStep = setImmediate(this.runSnapshotStep);
  };

  /** Writes the node snapshot `data` taken at p.index (unless one as new was installed meanwhile) and compacts the log behind it. */
  private writeSnapshot(p: PendingSnapshot, data: ByteParts): void {
    const { index, compact } = p;
    if (index <= this.storage.snapshotIndex()) {
      this.logger.info({ member: this.id, index, installed: this.storage.snapshotIndex() }, 'snapshot discarded: a newer one was installed');
      return;
    }
    this.snapshotFilesWriting++;
    const snap = this.storage.createSnapshot(index, p.confState, data, (err) => {
      this.snapshotFilesWriting--;
      if (err) this.fail(new NodeFailedError('storage', err));
      if (this.snapshotFilesWriting === 0) for (const w of this.snapshotFileWaiters.splice(0)) w();
    });
    let compactedTo = 0;
    const to = index - this.config.snapshotCatchUpEntries;
    if (compact && to >= this.storage.firstIndex()) {
      this.storage.compact(to);
      compactedTo = to;
    }
    this.counters.snapshotsTaken++;
    const bytes = partsLength(data);
    this.logger.info({ member: this.id, index, bytes, compactedTo }, 'snapshot taken');
    this.notify('snapshotTaken', { index, term: snap.metadata.term, bytes, compactedTo });
  }

  /** A snapshot being encoded is dropped if the leader's just installed is at least as new. */
  private snapshotInstalledOver(index: number): void {
    const p = this.snapshotting;
    if (p === undefined || p.index > index) return;
    this.snapshotting = undefined;
    if (this.snapshotStep !== undefined) clearImmediate(this.snapshotStep);
    this.snapshotStep = undefined;
    this.logger.info({ member: this.id, index: p.index, installed: index }, 'snapshot abandoned: a newer one was installed');
  }

  /** A state machine call; what it throws stops the node (applyEntry inlines the same for the hot path). */
  private stateMachineCall<T>(call: () => T): T {
    try {
      return call();
    } catch (err) {
      throw new NodeFailedError('state-machine', err as Error);
    }
  }

  /**
   * The leader needs a snapshot for a follower (the core asks storage for
   * one). The stored one may be too old: one taken before a member was
   * added does not include it, and that member could not use it (raft
   * ignores a snapshot whose configuration lacks it). Like etcd, the node
   * then answers with one of the current applied state.
   *
   * A state machine snapshotted in slices cannot give one now: one is
   * started (unless one is under way) and the core is told the snapshot is
   * temporarily unavailable, as etcd-io/raft's storage may, and tries again
   * at its next chance to send. Its stored snapshot is used as long as its
   * configuration has every current member: the log after it is kept (the
   * compaction stays snapshotCatchUpEntries behind it).
   *
   * A state machine snapshotted in one go gets a fresh snapshot whenever
   * the stored one is older than the applied index, as before; only between
   * Readies, when the state machine is exactly at appliedIndex and every
   * entry applied is durable here; otherwise the stored one goes.
   */
  private snapshotForPeer(): Snapshot {
    const stored = this.storage.snapshot();
    if (this.halted) return stored;
    try {
      if (this.sm.beginSnapshot === undefined) {
        if (this.persisting || this.raw.readyInFlight) return stored;
        this.takeSnapshot(false);
        return this.storage.snapshot();
      }
      if (stored.metadata.index > 0 && hasEveryMember(stored.metadata.confState, this.confState)) return stored;
      this.takeSnapshot(false);
    } catch (err) {
      this.fail(asFailure(err));
      return stored;
    }
    if (this.snapshotting === undefined) return this.storage.snapshot();
    throw new SnapshotTemporarilyUnavailableError();
  }

  // ---------------------------------------------------------------------------
  // Stopping

  /** Resolves once no write is in flight. */
  private idle(): Promise<void> {
    if (!this.persisting) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private failAll(err: Error): void {
    this.proposals.failAll(err);
    this.reads.failAll(err);
    for (const t of this.transfers) t.reject(err);
    this.transfers = [];
  }

  private async shutdown(): Promise<void> {
    this.halted = true;
    this.clock.clearInterval(this.ticker);
    // A snapshot being encoded is abandoned: the stored one and the log are intact.
    this.snapshotting = undefined;
    if (this.snapshotStep !== undefined) clearImmediate(this.snapshotStep);
    // What is not in the log yet is refused now; what is may still apply with the write in flight.
    this.proposals.failQueued(this.failedWith ?? new NodeStoppedError('the node stopped before the proposal was sent'));
    await this.idle();
    // A snapshot file still being written (storage writes it in steps, off
    // the pass) is finished rather than abandoned, so a restart finds it.
    if (this.snapshotFilesWriting > 0) await new Promise<void>((resolve) => this.snapshotFileWaiters.push(resolve));
    if (!this.failedWith && this.unsavedHardState) {
      // The latest commit index, so that a restart applies everything up to it at once.
      const hardState = this.unsavedHardState;
      this.unsavedHardState = undefined;
      await new Promise<void>((resolve) => {
        const done = (err?: Error): void => {
          if (err) this.logger.warn({ member: this.id, err }, 'could not write the commit index while stopping');
          resolve();
        };
        try {
          this.storage.save({ entries: [], hardState }, done);
        } catch (err) {
          done(err as Error);
        }
      });
    }
    this.failAll(this.failedWith ?? new NodeStoppedError('the node stopped before the request finished; its outcome is unknown'));
    try {
      await this.transport.close();
    } catch (err) {
      this.logger.warn({ member: this.id, err }, 'closing the transport failed');
    }
    this.storage.close();
    this.logger.info({ member: this.id, applied: this.appliedIndex }, 'node stopped');
    this.notify('stopped');
  }

  /**
   * Stops the node for good after an error that makes continuing unsafe: a
   * failed write or fsync (the kernel may have dropped the dirty pages), a
   * state machine that cannot apply a committed entry, a broken invariant.
   */
  private fail(err: NodeFailedError): void {
    if (this.failedWith) return;
    this.failedWith = err;
    this.logger.error({ member: this.id, err, reason: err.reason }, 'fatal error: stopping the node');
    this.failAll(err);
    this.notify('fatal', err);
    void this.stop();
  }
}

/**
 * The core's view of the storage. When the leader needs a snapshot for a
 * follower it asks storage for one: the node answers (snapshotForPeer).
 */
class CoreStorageView implements Storage {
  constructor(
    private readonly storage: NodeStorage,
    private readonly snapshotForPeer: () => Snapshot,
  ) {}
  initialState(): InitialState {
    return this.storage.initialState();
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.storage.entries(lo, hi, maxBytes);
  }
  term(i: number): number {
    return this.storage.term(i);
  }
  firstIndex(): number {
    return this.storage.firstIndex();
  }
  lastIndex(): number {
    return this.storage.lastIndex();
  }
  snapshot(): Snapshot {
    return this.snapshotForPeer();
  }
}

/** A snapshot under way (RaftNode.takeSnapshot): what it was taken at, and the encoding's progress. */
interface PendingSnapshot {
  readonly index: number;
  readonly confState: ConfState;
  /** The peer URLs at `index`. */
  readonly members: ReadonlyMap<NodeId, string>;
  compact: boolean;
  /** The state machine's encoding, until its result is in. */
  task: SnapshotTask | undefined;
  /** Then: the node snapshot's parts (member list, state machine's bytes), waiting to be written between Readies. */
  parts?: readonly Uint8Array[];
}

/** Whether a snapshot with configuration `stored` includes every member of `current`: any of them can restore it. */
function hasEveryMember(stored: ConfState, current: ConfState): boolean {
  const has = new Set([...stored.voters, ...stored.learners, ...stored.votersOutgoing, ...stored.learnersNext]);
  return [current.voters, current.learners, current.votersOutgoing, current.learnersNext].every((ids) => ids.every((id) => has.has(id)));
}

function isEmpty(s: NodeStorage): boolean {
  return s.lastIndex() === 0 && s.snapshotIndex() === 0 && s.initialState().hardState.term === 0;
}

function asFailure(err: unknown): NodeFailedError {
  if (err instanceof NodeFailedError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  return new NodeFailedError(e instanceof StorageError ? 'storage' : 'internal', e);
}
