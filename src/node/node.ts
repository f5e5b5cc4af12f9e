// The node runtime: drives the Raft core (RawNode) for real. A timer ticks
// it; messages from the transport step it; proposals and reads go in; and a
// processing pass hands each Ready to the disk, the network and the state
// machine in the order Raft's safety depends on:
//
//   pass:  proposals and reads queued since the last pass -> the core
//          rd = ready()
//          send rd.messages                    (before the write: diss. §10.2.1)
//          storage.save(snapshot, entries, hard state)   -- fdatasync --
//   then:  send rd.messagesAfterPersist        (votes, acks: promise durability)
//          install rd.snapshot into the state machine
//          fail rd.droppedProposals
//          apply rd.committedEntries in order  (conf changes into the core)
//          note rd.readStates; serve reads whose index is applied
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
import { InvalidMessageError, ProposalDroppedError } from '../raft/errors.js';
import { type ProgressStatus, type Ready, RawNode, bootstrapState } from '../raft/rawNode.js';
import type { InitialState, Storage } from '../raft/storage.js';
import type {
  ConfChange,
  ConfChangeSingle,
  ConfState,
  DroppedProposal,
  Entry,
  HardState,
  Logger,
  Message,
  NodeId,
  RandomSource,
  ReadState,
  Snapshot,
  SoftState,
  StateType,
} from '../raft/types.js';
import { DiskStorage } from '../storage/diskStorage.js';
import { StorageError } from '../storage/errors.js';
import { NodeFileSystem } from '../storage/nodeFs.js';
import type { Transport } from '../transport/types.js';
import {
  type ProposalId,
  decodeConfContext,
  decodeEnvelope,
  decodeNodeSnapshot,
  encodeConfContext,
  encodeEnvelope,
  encodeNodeSnapshot,
} from './envelope.js';
import {
  InvalidNodeOptionsError,
  InvalidRequestError,
  LeaderChangedError,
  NodeFailedError,
  NodeStoppedError,
  RequestTimeoutError,
} from './errors.js';
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
import type { StateMachine } from './stateMachine.js';

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
  readonly snapshotIndex: number;
  readonly leadTransferee: NodeId;
  readonly confState: ConfState;
  /** The leader's view of every member's replication; undefined on other members. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | undefined;
  readonly state: 'running' | 'stopped' | 'failed';
}

/** Counters since the node started. */
export interface NodeMetrics {
  /** Proposals of this node applied here (their callers got a result). */
  proposalsCommitted: number;
  /** Proposals of this node that failed (dropped, overwritten, timed out, stopped). */
  proposalsFailed: number;
  proposalsPending: number;
  readsServed: number;
  readsFailed: number;
  /** ReadIndex requests sent to the core: concurrent reads share one. */
  readIndexRequests: number;
  /** Entries applied (all members' proposals, conf changes and no-ops). */
  appliedEntries: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  leaderChanges: number;
  /** Readies handled, and how many of them needed the disk. */
  readies: number;
  writes: number;
  /** Entries persisted. */
  persistedEntries: number;
  /** Write + fdatasync durations. */
  fsyncTotalMs: number;
  fsyncMaxMs: number;
  fsyncLastMs: number;
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
  /** This member's own removal was applied: it no longer belongs to the cluster (etcd stops such a member). */
  removed: [{ index: number }];
  /** The node stopped itself; every request failed with this error. */
  fatal: [NodeFailedError];
  stopped: [];
}

type Settle = { resolve(value: unknown): void; reject(err: Error): void };

/** A proposal (or conf change) of this node, from propose() until applied or failed. */
interface Pending extends Settle {
  readonly seq: number;
  readonly deadline: number;
  readonly what: string;
  /** The enveloped command, until handed to the core. */
  data: Uint8Array | undefined;
  /** The log index its entry was seen at in this node's log (0: not seen). */
  index: number;
}

/** Reads that share one ReadIndex request (as etcd's linearizableReadLoop batches them). */
interface ReadBatch {
  readonly waiters: Settle[];
  readonly deadline: number;
  /** The leader the request went to: if leadership changes before the answer, it is lost. */
  leader: NodeId;
  /** The read index once confirmed; -1 before. */
  index: number;
  lastRequest: number;
  readonly contexts: string[];
}

interface Transfer extends Settle {
  readonly target: NodeId;
  readonly deadline: number;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** Creates a node: opens (or bootstraps) its storage, starts its transport and its clock. */
export function createNode<Result = unknown>(options: RaftNodeOptions<Result>): Promise<RaftNode<Result>> {
  return RaftNode.create(options);
}

export class RaftNode<Result = unknown> extends EventEmitter<NodeEvents> {
  readonly id: NodeId;
  private readonly options: RaftNodeOptions<Result>;
  private readonly opts: ResolvedOptions;
  private readonly storage: NodeStorage;
  private readonly transport: Transport;
  private readonly sm: StateMachine<Result>;
  private readonly clock: NodeClock;
  private readonly logger: NodeLogger;
  private readonly random: RandomSource;
  private raw!: RawNode;
  /** Distinguishes this process's proposals from those of this member's earlier lives. */
  private readonly nonce: number;

  /** The configuration and the peer URLs as of appliedIndex. */
  private confState: ConfState;
  private members = new Map<NodeId, string>();
  private appliedIndex = 0;
  private soft: SoftState = { lead: 0, state: 'follower' };
  /** A hard state whose only change was the commit index: not synced on its own (etcd neither), written with the next write. */
  private unsavedHardState: HardState | undefined;

  private ticker: unknown;
  private passScheduled = false;
  /** The Ready being written, from ready() until applied and advanced (or failed). */
  private persisting: Ready | undefined;
  private idleWaiters: (() => void)[] = [];
  private halted = false;
  private stopPromise: Promise<void> | undefined;
  /** Set when the node stopped itself: every request fails with it. */
  failure: NodeFailedError | undefined;

  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private proposalQueue: Pending[] = [];
  /** Pending proposals by the index their entry holds in this node's log. */
  private readonly byIndex = new Map<number, Pending>();
  private maxTrackedIndex = 0;

  private readQueue: Settle[] = [];
  private readBatches: ReadBatch[] = [];
  private readonly readByContext = new Map<string, ReadBatch>();
  private readSeq = 0;
  private transfers: Transfer[] = [];

  private readonly counters: Omit<NodeMetrics, 'proposalsPending'> = {
    proposalsCommitted: 0,
    proposalsFailed: 0,
    readsServed: 0,
    readsFailed: 0,
    readIndexRequests: 0,
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
    const resolved = resolveOptions(options as RaftNodeOptions<unknown>);
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
          // The initial configuration is written before the member runs at all:
          // a crash cannot leave it without one (see bootstrapState).
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
      const node = new RaftNode(options, resolved, storage);
      await node.start();
      return node;
    } catch (err) {
      storage.close();
      throw err;
    }
  }

  private constructor(options: RaftNodeOptions<Result>, resolved: ResolvedOptions, storage: NodeStorage) {
    super();
    this.id = options.id;
    this.opts = resolved;
    this.storage = storage;
    this.transport = options.transport;
    this.sm = options.stateMachine;
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.logger = options.logger ?? SILENT_NODE_LOGGER;
    this.random = options.random ?? { int: (n) => randomInt(n) };
    this.nonce = this.random.int(0x7fffffff);
    this.confState = storage.initialState().confState;
    this.options = options;
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
    for (const [id, url] of this.opts.peers) this.members.set(id, url);

    const logger = this.logger;
    const coreLogger: Logger = {
      debug: (msg, fields) => logger.debug({ member: this.id, ...fields }, msg),
      info: (msg, fields) => logger.info({ member: this.id, ...fields }, msg),
      warn: (msg, fields) => logger.warn({ member: this.id, ...fields }, msg),
    };
    this.raw = new RawNode({
      id: this.id,
      electionTick: this.opts.electionTicks,
      heartbeatTick: this.opts.heartbeatTicks,
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
    for (const [id, url] of this.members) if (id !== this.id) this.transport.addPeer(id, url);

    // Fast-forward the election clock, as etcd does at start: the first
    // election comes within one election timeout rather than two. (A member
    // that rejoins a live cluster loses nothing: PreVote and the others'
    // leader stickiness keep it from disturbing the leader.)
    for (let i = 1; i < this.opts.electionTicks; i++) this.raw.tick();
    this.ticker = this.clock.setInterval(this.onTick, this.opts.tickMs);
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
  // Public API

  /**
   * Proposes a command. Resolves with the state machine's result once the
   * entry is committed and applied on this node. Rejects with
   * ProposalDroppedError (no leader, transfer under way, ...; nothing was
   * written), LeaderChangedError (the entry was overwritten: never applied),
   * RequestTimeoutError (outcome unknown), NodeStoppedError or NodeFailedError.
   */
  propose(command: Uint8Array): Promise<Result> {
    if (!(command instanceof Uint8Array)) {
      return Promise.reject(new InvalidRequestError('propose() takes the command as a Uint8Array'));
    }
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return new Promise<Result>((resolve, reject) => {
      const p = this.newPending('proposal', resolve as (v: unknown) => void, reject);
      p.data = encodeEnvelope(this.proposalId(p.seq), command);
      // Handed to the core at the next pass, with every proposal made until then.
      this.proposalQueue.push(p);
      this.schedule();
    });
  }

  /**
   * A linearizable read barrier (diss. §6.4): resolves once this node has
   * applied everything committed before the call, as confirmed by the
   * current leader. Then reading the local state machine is linearizable.
   * Concurrent calls share one ReadIndex request.
   */
  readIndex(): Promise<void> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return new Promise<void>((resolve, reject) => {
      this.readQueue.push({ resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Adds a voter (or a learner), reachable at `url`. Resolves with the configuration once applied here. */
  addMember(id: NodeId, options: { learner?: boolean; url?: string } = {}): Promise<ConfState> {
    const known = this.confState.voters.includes(id) || this.confState.learners.includes(id);
    if (known) return Promise.reject(new InvalidRequestError(`member ${id} is already in the cluster`));
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
    const known = this.confState.voters.includes(id) || this.confState.learners.includes(id);
    if (!known) return Promise.reject(new InvalidRequestError(`member ${id} is not in the cluster`));
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
        reject(err);
        return;
      }
      this.transfers.push({
        target,
        deadline: this.clock.now() + this.opts.requestTimeoutMs,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      this.schedule();
    });
  }

  /** Campaigns now (tests, tools; normally the election timeout does it). */
  campaign(): void {
    if (this.halted) return;
    this.guard(() => this.raw.campaign());
  }

  /**
   * Stops the node gracefully: stops ticking and taking requests, lets the
   * write in flight finish (and its entries apply), writes the latest commit
   * index, then closes the transport and the storage. Requests still
   * pending fail with NodeStoppedError. Idempotent.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

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
      snapshotIndex: this.storage.snapshotIndex(),
      leadTransferee: s.leadTransferee,
      confState: this.confState,
      progress: s.progress,
      state: this.failure ? 'failed' : this.halted ? 'stopped' : 'running',
    };
  }

  metrics(): NodeMetrics {
    return { ...this.counters, proposalsPending: this.pending.size };
  }

  /** The index of the last entry applied to the state machine. */
  get applied(): number {
    return this.appliedIndex;
  }

  /** The leader this node knows of (0: none). */
  get leader(): NodeId {
    return this.soft.lead;
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
      this.expire(this.clock.now());
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

  /** Emits an event; a listener's error is logged, never thrown into the loop. */
  private notify<K extends keyof NodeEvents>(event: K, ...args: NodeEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: NodeEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.logger.error({ member: this.id, event, err }, 'an event listener threw');
    }
  }

  private refusal(): Error | undefined {
    if (this.failure) return this.failure;
    if (this.halted) return new NodeStoppedError();
    return undefined;
  }

  private proposalId(seq: number): ProposalId {
    return { proposer: this.id, nonce: this.nonce, seq };
  }

  private newPending(what: string, resolve: (v: unknown) => void, reject: (e: Error) => void): Pending {
    const seq = ++this.seq;
    const p: Pending = { seq, what, deadline: this.clock.now() + this.opts.requestTimeoutMs, data: undefined, index: 0, resolve, reject };
    this.pending.set(seq, p);
    return p;
  }

  private proposeConfChange(change: ConfChangeSingle, url: string | undefined): Promise<ConfState> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return new Promise<ConfState>((resolve, reject) => {
      const p = this.newPending(`conf change ${change.type} ${change.nodeId}`, resolve as (v: unknown) => void, reject);
      try {
        // One at a time: the core refuses a second until the first is applied.
        this.raw.proposeConfChange({
          transition: 'auto',
          changes: [change],
          context: encodeConfContext(this.proposalId(p.seq), url),
        });
      } catch (err) {
        this.pending.delete(p.seq);
        reject(err as Error);
        return;
      }
      this.schedule();
    });
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
    this.submitProposals();
    this.submitReads();
    if (this.persisting || !this.raw.hasReady()) return;
    const rd = this.raw.ready();
    this.persisting = rd;
    this.counters.readies++;
    if (rd.softState) this.onSoftState(rd.softState);
    if (rd.messages.length > 0) this.transport.send(rd.messages);
    if (rd.entries.length > 0) this.trackProposals(rd.entries);
    if (rd.snapshot === undefined && rd.entries.length === 0 && !rd.mustSync) {
      // Nothing durable to write: at most a new commit index, which Raft
      // can always recompute (Figure 2 lists commitIndex as volatile). etcd
      // does not sync it either; it goes out with the next write.
      if (rd.hardState) this.unsavedHardState = rd.hardState;
      this.afterPersist(rd);
      return;
    }
    const hardState = rd.hardState ?? this.unsavedHardState;
    this.unsavedHardState = undefined;
    const started = this.clock.now();
    this.storage.save({ hardState, entries: rd.entries, snapshot: rd.snapshot }, (err) => {
      if (err) {
        this.persistingEnded();
        this.fail(new NodeFailedError('storage', err));
        return;
      }
      const durationMs = this.clock.now() - started;
      const c = this.counters;
      c.writes++;
      c.persistedEntries += rd.entries.length;
      c.fsyncTotalMs += durationMs;
      c.fsyncLastMs = durationMs;
      c.fsyncMaxMs = Math.max(c.fsyncMaxMs, durationMs);
      this.notify('persisted', { durationMs, entries: rd.entries.length, hardState: hardState !== undefined, snapshot: rd.snapshot !== undefined });
      if (this.failure) {
        this.persistingEnded();
        return;
      }
      this.afterPersist(rd);
    });
  }

  /** The Ready is durable: acknowledge, install, apply, serve reads, advance. */
  private afterPersist(rd: Ready): void {
    try {
      if (rd.messagesAfterPersist.length > 0) this.transport.send(rd.messagesAfterPersist);
      if (rd.snapshot) this.installSnapshot(rd.snapshot);
      for (const d of rd.droppedProposals) this.onDropped(d);
      for (const e of rd.committedEntries) this.applyEntry(e);
      for (const rs of rd.readStates) this.onReadState(rs);
      this.raw.advance(rd);
      this.serveReads();
      if (this.appliedIndex - this.storage.snapshotIndex() >= this.opts.snapshotCount) this.takeSnapshot(true);
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

  private submitProposals(): void {
    if (this.proposalQueue.length === 0) return;
    // Proposals that timed out before reaching the core stay out of the log.
    const batch = this.proposalQueue.filter((p) => this.pending.has(p.seq));
    this.proposalQueue = [];
    if (batch.length === 0) return;
    const data = batch.map((p) => p.data!);
    for (const p of batch) p.data = undefined;
    try {
      this.raw.proposeBatch(data);
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      for (const p of batch) this.failPending(p, err);
    }
  }

  private submitReads(): void {
    if (this.readQueue.length === 0) return;
    const now = this.clock.now();
    const batch: ReadBatch = {
      waiters: this.readQueue,
      deadline: now + this.opts.requestTimeoutMs,
      leader: 0,
      index: -1,
      lastRequest: now,
      contexts: [],
    };
    this.readQueue = [];
    if (this.requestReadIndex(batch)) this.readBatches.push(batch);
  }

  /** Sends (or re-sends) a batch's ReadIndex request; false if the core refused it (the batch failed). */
  private requestReadIndex(batch: ReadBatch): boolean {
    const context = `${this.nonce}:${++this.readSeq}`;
    try {
      this.raw.readIndex(textEncoder.encode(context));
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      this.failReads(batch, err);
      return false;
    }
    this.counters.readIndexRequests++;
    batch.contexts.push(context);
    batch.leader = this.raw.raft.lead;
    batch.lastRequest = this.clock.now();
    this.readByContext.set(context, batch);
    return true;
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
    // A read index request the old leader had not answered is lost with it
    // (etcd answers such reads with ErrLeaderChanged).
    for (const b of this.readBatches) {
      if (b.index < 0 && b.leader !== ss.lead) {
        this.failReads(b, new LeaderChangedError('the read index request went to a leader that lost its leadership'));
      }
    }
    this.readBatches = this.readBatches.filter((b) => b.waiters.length > 0);
    this.transfers = this.transfers.filter((t) => {
      if (t.target !== ss.lead) return true;
      t.resolve(undefined);
      return false;
    });
  }

  // ---------------------------------------------------------------------------
  // Matching proposals to their entries

  /** The pending proposal (of this node, this incarnation) an entry carries, if any. */
  private ownProposal(e: Entry): Pending | undefined {
    if (this.pending.size === 0) return undefined;
    let id: ProposalId | undefined;
    try {
      id = e.type === 'confChange' ? decodeConfContext(decodeConfChange(e.data).context).id : e.data.byteLength > 0 ? decodeEnvelope(e.data) : undefined;
    } catch {
      return undefined; // not ours to judge here; applying it will
    }
    return this.mine(id);
  }

  private mine(id: ProposalId | undefined): Pending | undefined {
    if (!id || id.proposer !== this.id || id.nonce !== this.nonce) return undefined;
    return this.pending.get(id.seq);
  }

  /**
   * Notes where this node's proposals landed in its log. Entries handed out
   * again at an index mean the log was truncated there (a new leader's log
   * won): a proposal whose entry was cut was never committed (committed
   * entries are never truncated, §5.4), so its caller learns at once.
   */
  private trackProposals(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    const cut: Pending[] = [];
    if (this.byIndex.size > 0 && first <= this.maxTrackedIndex) {
      for (const [i, p] of this.byIndex) {
        if (i < first) continue;
        this.byIndex.delete(i);
        p.index = 0;
        cut.push(p);
      }
    }
    for (const e of entries) {
      const p = this.ownProposal(e);
      if (!p) continue;
      p.index = e.index;
      this.byIndex.set(e.index, p);
      this.maxTrackedIndex = Math.max(this.maxTrackedIndex, e.index);
    }
    for (const p of cut) {
      if (p.index === 0 && this.pending.has(p.seq)) {
        this.failPending(p, new LeaderChangedError(`the ${p.what}'s entry was overwritten by a new leader's log`));
      }
    }
  }

  /** An entry at `index` was applied: settles the proposal it carries, if ours, and any other that was expected there. */
  private settleApplied(id: ProposalId | undefined, index: number, value: unknown): void {
    const expected = this.byIndex.get(index);
    if (expected) this.byIndex.delete(index);
    const p = this.mine(id);
    if (expected && expected !== p && this.pending.has(expected.seq)) {
      this.failPending(expected, new LeaderChangedError(`index ${index} holds another entry than the ${expected.what}`));
    }
    if (!p) return;
    this.pending.delete(p.seq);
    this.counters.proposalsCommitted++;
    p.resolve(value);
  }

  private onDropped(d: DroppedProposal): void {
    let id: ProposalId | undefined;
    try {
      id = d.type === 'confChange' ? decodeConfContext(decodeConfChange(d.data).context).id : decodeEnvelope(d.data);
    } catch {
      return;
    }
    const p = this.mine(id);
    if (p) this.failPending(p, new ProposalDroppedError(d.reason, 'refused by the leader'));
  }

  private failPending(p: Pending, err: Error): void {
    if (!this.pending.delete(p.seq)) return;
    if (p.index > 0 && this.byIndex.get(p.index) === p) this.byIndex.delete(p.index);
    this.counters.proposalsFailed++;
    p.reject(err);
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
      this.settleApplied(env, e.index, result);
    } else {
      // The empty entry a new leader appends (§8): nothing to apply.
      this.settleApplied(undefined, e.index, undefined);
    }
    this.appliedIndex = e.index;
    this.counters.appliedEntries++;
  }

  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const confState = this.raw.applyConfChange(cc);
    this.confState = confState;
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
    this.appliedIndex = e.index;
    this.logger.info({ member: this.id, index: e.index, changes: cc.changes, voters: confState.voters, learners: confState.learners }, 'configuration change applied');
    this.notify('confChangeApplied', { index: e.index, change: cc, confState, url });
    if (removedSelf) this.notify('removed', { index: e.index });
    this.settleApplied(id, e.index, confState);
  }

  /** A snapshot from the leader replaces the state machine (§7). */
  private installSnapshot(snap: Snapshot): void {
    const { index, term, confState } = snap.metadata;
    const { members, data } = decodeNodeSnapshot(snap.data);
    try {
      this.sm.restore(data, index);
    } catch (err) {
      throw new NodeFailedError('state-machine', err as Error);
    }
    this.appliedIndex = index;
    this.confState = confState;
    const inConf = (id: NodeId) =>
      confState.voters.includes(id) || confState.learners.includes(id) || confState.votersOutgoing.includes(id);
    const next = new Map<NodeId, string>();
    for (const [id, url] of this.members) if (inConf(id)) next.set(id, url);
    for (const [id, url] of members) next.set(id, url);
    for (const id of this.members.keys()) if (!next.has(id) && id !== this.id) this.transport.removePeer(id);
    for (const [id, url] of next) if (id !== this.id && this.members.get(id) !== url) this.transport.addPeer(id, url);
    this.members = next;
    // The log was replaced: proposals whose entries lay beyond the snapshot
    // are gone (they were not in the leader's log, §5.3). Those at or below
    // it may be in the snapshot or not: they wait for their timeout.
    for (const [i, p] of this.byIndex) {
      this.byIndex.delete(i);
      p.index = 0;
      if (i > index) this.failPending(p, new LeaderChangedError(`the ${p.what}'s entry was replaced by the leader's snapshot`));
    }
    this.counters.snapshotsInstalled++;
    this.logger.info({ member: this.id, index, term, bytes: snap.data.byteLength }, 'snapshot installed');
    this.notify('snapshotInstalled', { index, term, bytes: snap.data.byteLength });
  }

  // ---------------------------------------------------------------------------
  // Snapshots

  /**
   * Snapshots the state machine at the applied index; with `compact`, also
   * discards the log below it but for snapshotCatchUpEntries.
   */
  private takeSnapshot(compact: boolean): void {
    const index = this.appliedIndex;
    if (index <= this.storage.snapshotIndex()) return;
    const data = encodeNodeSnapshot(this.members, this.sm.snapshot());
    const snap = this.storage.createSnapshot(index, this.confState, data, (err) => {
      if (err) this.fail(new NodeFailedError('storage', err));
    });
    let compactedTo = 0;
    const to = index - this.opts.snapshotCatchUpEntries;
    if (compact && to >= this.storage.firstIndex()) {
      this.storage.compact(to);
      compactedTo = to;
    }
    this.counters.snapshotsTaken++;
    this.logger.info({ member: this.id, index, bytes: data.byteLength, compactedTo }, 'snapshot taken');
    this.notify('snapshotTaken', { index, term: snap.metadata.term, bytes: data.byteLength, compactedTo });
  }

  /**
   * The leader needs a snapshot for a follower. Like etcd, answer with one of
   * the current applied state when the stored one is older: one taken before
   * a member was added would not include it, and that member could not use it.
   * Only between Readies, when the state machine is exactly at appliedIndex.
   */
  private snapshotForPeer(): void {
    if (this.halted || this.persisting || this.raw.readyInFlight) return;
    try {
      this.takeSnapshot(false);
    } catch (err) {
      this.fail(asFailure(err));
    }
  }

  // ---------------------------------------------------------------------------
  // Reads

  private onReadState(rs: ReadState): void {
    const batch = this.readByContext.get(textDecoder.decode(rs.context));
    if (!batch) return; // answered already, or failed
    for (const c of batch.contexts) this.readByContext.delete(c);
    batch.index = rs.index;
  }

  private serveReads(): void {
    if (this.readBatches.length === 0) return;
    this.readBatches = this.readBatches.filter((b) => {
      if (b.index < 0 || b.index > this.appliedIndex) return true;
      this.counters.readsServed += b.waiters.length;
      for (const w of b.waiters) w.resolve(undefined);
      return false;
    });
  }

  private failReads(batch: ReadBatch, err: Error): void {
    for (const c of batch.contexts) this.readByContext.delete(c);
    this.counters.readsFailed += batch.waiters.length;
    for (const w of batch.waiters.splice(0)) w.reject(err);
  }

  // ---------------------------------------------------------------------------
  // Deadlines (checked every tick)

  private expire(now: number): void {
    // Deadlines grow with creation order: the oldest come first.
    for (const p of this.pending.values()) {
      if (p.deadline > now) break;
      this.failPending(p, new RequestTimeoutError(p.what, this.opts.requestTimeoutMs));
    }
    for (const b of this.readBatches) {
      if (b.deadline <= now) {
        this.failReads(b, new RequestTimeoutError('read index', this.opts.requestTimeoutMs));
      } else if (b.index < 0 && now - b.lastRequest >= this.opts.readIndexRetryMs) {
        // The request or its answer may have been lost: ask again (etcd does every 500 ms).
        this.requestReadIndex(b);
      }
    }
    this.readBatches = this.readBatches.filter((b) => b.waiters.length > 0);
    this.transfers = this.transfers.filter((t) => {
      if (t.deadline > now) return true;
      t.reject(new RequestTimeoutError(`leadership transfer to ${t.target}`, this.opts.requestTimeoutMs));
      return false;
    });
  }

  // ---------------------------------------------------------------------------
  // Stopping

  /** Resolves once no write is in flight. */
  private idle(): Promise<void> {
    if (!this.persisting) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private rejectAll(err: Error): void {
    for (const p of [...this.pending.values()]) this.failPending(p, err);
    this.proposalQueue = [];
    this.byIndex.clear();
    this.counters.readsFailed += this.readQueue.length;
    for (const w of this.readQueue) w.reject(err);
    this.readQueue = [];
    for (const b of this.readBatches) this.failReads(b, err);
    this.readBatches = [];
    for (const t of this.transfers) t.reject(err);
    this.transfers = [];
  }

  private async shutdown(): Promise<void> {
    this.halted = true;
    this.clock.clearInterval(this.ticker);
    // Requests not yet in the log are refused now; those in it may still apply with the write in flight.
    const stopped = this.failure ?? new NodeStoppedError('the node is stopping');
    for (const p of this.proposalQueue) this.failPending(p, stopped);
    this.proposalQueue = [];
    await this.idle();
    if (!this.failure && this.unsavedHardState) {
      // The latest commit index, so a restart applies everything up to it at once.
      const hardState = this.unsavedHardState;
      this.unsavedHardState = undefined;
      await new Promise<void>((resolve) =>
        this.storage.save({ entries: [], hardState }, (err) => {
          if (err) this.logger.warn({ member: this.id, err }, 'could not write the commit index at stop');
          resolve();
        }),
      );
    }
    this.rejectAll(this.failure ?? new NodeStoppedError('the node stopped before the request finished; its outcome is unknown'));
    try {
      await this.transport.close();
    } catch (err) {
      this.logger.warn({ member: this.id, err }, 'closing the transport failed');
    }
    this.storage.close();
    this.logger.info({ member: this.id, applied: this.appliedIndex }, 'node stopped');
    this.notify('stopped');
  }

  /** Stops the node for good after an error that makes continuing unsafe. */
  private fail(err: NodeFailedError): void {
    if (this.failure) return;
    this.failure = err;
    this.logger.error({ member: this.id, err, reason: err.reason }, 'fatal error: stopping the node');
    this.rejectAll(err);
    this.notify('fatal', err);
    this.stop().catch((e: unknown) => this.logger.error({ member: this.id, err: e }, 'stopping after a fatal error failed'));
  }
}

/**
 * The core's view of the storage. When the leader needs a snapshot for a
 * follower it asks storage for one: the node may first take a fresh one.
 */
class CoreStorageView implements Storage {
  constructor(
    private readonly storage: NodeStorage,
    private readonly onSnapshotRequest: () => void,
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
    this.onSnapshotRequest();
    return this.storage.snapshot();
  }
}

function isEmpty(s: NodeStorage): boolean {
  return s.lastIndex() === 0 && s.snapshotIndex() === 0 && s.initialState().hardState.term === 0;
}

function asFailure(err: unknown): NodeFailedError {
  if (err instanceof NodeFailedError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  return new NodeFailedError(e instanceof StorageError ? 'storage' : 'raft', e);
}
