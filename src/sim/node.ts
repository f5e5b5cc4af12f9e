// A simulated member: the real Raft core (RawNode) over a simulated disk,
// with the key-value state machine on top. A crash loses everything but the
// disk, and the disk holds only what finished being written: a write in
// flight is lost, or (torn) only a prefix of it survives.
//
// The disk is, by default, the production storage (DiskStorage: the
// write-ahead log, snapshot files, recovery) over the in-memory file system
// that keeps only what was fsynced across a crash and can tear the last
// write at a sector boundary: so the Raft invariants are checked with the
// real storage code underneath, and every restart is a real recovery. The
// 'memory' mode keeps the log in a MemoryStorage instead (faster; what a
// browser without the native checksum runs).

import { decodeConfChange } from '../raft/confchange.js';
import { ProposalDroppedError } from '../raft/errors.js';
import type { ReadOnlyOption } from '../raft/readOnly.js';
import { type Ready, RawNode, bootstrapState } from '../raft/rawNode.js';
import { type InitialState, MemoryStorage, type Storage } from '../raft/storage.js';
import {
  type ConfState,
  type DroppedProposal,
  type Entry,
  type Message,
  type NodeId,
  type Snapshot,
  EMPTY_CONF_STATE,
  hardStateEqual,
} from '../raft/types.js';
import { DiskStorage } from '../storage/diskStorage.js';
import { MemoryFileSystem } from '../storage/memoryFs.js';
import { type ApplyResult, KvStateMachine, decodeEntry, encodeEntry } from './kv.js';
import type { KvInput, KvOutput } from './linearizability.js';
import type { Random } from './random.js';

/** A client's request to a node: register a session, or run an operation in one. */
export interface ClientRequest {
  /** The client's network address. */
  readonly client: number;
  /** Set for a registration; otherwise the session the operation runs in. */
  readonly register: boolean;
  readonly session: number;
  readonly seq: number;
  readonly input: KvInput | undefined;
  /** Distinguishes retries of the same request; for a registration, unique over the client's life. */
  readonly attempt: number;
}

export interface ClientReply {
  readonly client: number;
  readonly seq: number;
  /**
   * For an answer about an operation: the session it ran in. Sequence
   * numbers start over in each session, so a client that started a new
   * session (its old one expired) must not take a late answer from the old
   * one for an answer to the new one.
   */
  readonly opSession?: number;
  readonly from: NodeId;
  readonly output?: KvOutput;
  /** The new session, answering a registration. */
  readonly session?: number;
  /** Answering a registration: the attempt it answers (ClientRequest.attempt, unique per client). */
  readonly registration?: number;
  /** Why the node refused ('no-leader', 'session-expired', ...); the client retries or starts over. */
  readonly error?: string;
  /** The node's idea of the leader, for the client's next try. */
  readonly leaderHint?: NodeId;
}

/** How an entry's command affected the state machine, for the checker. */
export interface AppliedCommand {
  /** session:seq, or undefined for registrations and no-ops. */
  readonly key: string | undefined;
  readonly effect: ApplyResult['kind'] | undefined;
}

/** What a node needs from its surroundings. */
export interface NodeHost {
  send(m: Message): void;
  reply(to: number, r: ClientReply): void;
  onPersisted(node: SimNode, rd: Ready, records: number): void;
  onApplied(node: SimNode, e: Entry, command: AppliedCommand): void;
  onSnapshotInstalled(node: SimNode, index: number): void;
  onReadServed(node: SimNode, index: number): void;
  /** Right after a call into the core that may decide something (see Checker.onDecisions). */
  onDecisions(node: SimNode): void;
  /** A read got its read index; `committedOnArrival` is what was committed cluster-wide when it arrived. */
  onReadIndex(node: SimNode, context: string, index: number, committedOnArrival: number): void;
  /** The highest index known committed anywhere in the cluster. */
  committedIndex(): number;
  /** Completes a disk operation of `node` later (after the disk's latency), or now. */
  scheduleDisk(node: SimNode, complete: () => void): void;
}

/** Where a node keeps its durable state. */
export type StorageParams =
  | { readonly mode: 'memory' }
  /** DiskStorage over a crashable in-memory disk; small segments and caches exercise rollover, release and reads from disk. */
  | { readonly mode: 'wal'; readonly segmentBytes: number; readonly cacheBytes: number };

/** What the node and the checker use of either kind of storage. */
export interface NodeStorage extends Storage {
  snapshotIndex(): number;
  createSnapshot(i: number, confState: ConfState, data: Uint8Array): Snapshot;
  compact(compactIndex: number): void;
}

export interface NodeParams {
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly readOnly: ReadOnlyOption;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly snapshotInterval: number;
  readonly compactionMargin: number;
  readonly sessionTtlUs: number;
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  readonly maxInflightBytes: number;
  readonly storage: StorageParams;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/**
 * The core's view of the node's storage. When the leader needs a snapshot
 * for a follower it asks storage for one; like etcd, the node answers with a
 * snapshot of its current applied state when the stored one is older: a
 * snapshot taken before a member was added would not include it, and that
 * member could never use it.
 */
class CoreStorageView implements Storage {
  constructor(
    private readonly node: SimNode,
    private readonly onSnapshotRequest: () => void,
  ) {}
  initialState(): InitialState {
    return this.node.storage.initialState();
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    return this.node.storage.entries(lo, hi, maxBytes);
  }
  term(i: number): number {
    return this.node.storage.term(i);
  }
  firstIndex(): number {
    return this.node.storage.firstIndex();
  }
  lastIndex(): number {
    return this.node.storage.lastIndex();
  }
  snapshot(): Snapshot {
    this.onSnapshotRequest();
    return this.node.storage.snapshot();
  }
}

export class SimNode {
  /** The durable state: survives crashes (in 'wal' mode, replaced by what recovery finds on the disk). */
  storage: NodeStorage;
  /** The disk under the storage, in 'wal' mode. */
  readonly disk: MemoryFileSystem | undefined;
  /** Complete disk operations at once (while the member is being created), instead of after the disk's latency. */
  private diskImmediate = false;
  private readonly coreStorage: CoreStorageView;
  /** Opens (recovers) the storage on this node's disk, in 'wal' mode. A StorageError here is a storage bug the run reports. */
  private readonly openDisk: (() => DiskStorage) | undefined;
  raw: RawNode | undefined;
  sm: KvStateMachine;
  /** The configuration as of appliedIndex. */
  confState: ConfState = EMPTY_CONF_STATE;
  appliedIndex = 0;
  up = false;
  /** Counts restarts: events of an earlier life (e.g. a write's completion) are ignored. */
  incarnation = 0;
  /** The Ready being written to disk, if any. */
  persisting: Ready | undefined;
  /** The Ready whose committed entries were applied while its write synced (applyWhileSyncing). */
  private appliedEarly: Ready | undefined;
  /** Ticks since this incarnation started: the node's own clock. */
  localTicks = 0;
  private pendingWrites = new Map<string, ClientRequest>();
  /** Reads waiting for their read index, with what was committed cluster-wide when they arrived. */
  private pendingReads = new Map<string, { req: ClientRequest; committedOnArrival: number }>();
  /** Reads whose index is known, waiting for the state machine to catch up. */
  private confirmedReads: { index: number; req: ClientRequest }[] = [];
  private readCounter = 0;

  constructor(
    readonly id: NodeId,
    /** µs between this node's ticks (skewed). */
    readonly tickPeriodUs: number,
    private readonly params: NodeParams,
    private readonly rng: Random,
    private readonly host: NodeHost,
  ) {
    this.sm = new KvStateMachine(params.sessionTtlUs);
    this.coreStorage = new CoreStorageView(this, () => {
      if (this.up && this.raw && !this.raw.readyInFlight) this.takeSnapshot(false);
    });
    const p = params.storage;
    if (p.mode === 'wal') {
      this.disk = new MemoryFileSystem({
        defer: (complete) => (this.diskImmediate ? complete() : this.host.scheduleDisk(this, complete)),
      });
      this.openDisk = () =>
        DiskStorage.open({ fs: this.disk!, dir: '/data', clusterId: 'sim', memberId: id, segmentBytes: p.segmentBytes, cacheBytes: p.cacheBytes });
      this.storage = this.openDisk();
    } else {
      this.disk = undefined;
      this.openDisk = undefined;
      this.storage = new MemoryStorage();
    }
  }


  /** Starts (or restarts) the node from what its disk holds. */
  start(initialVoters: readonly NodeId[] | undefined): void {
    this.incarnation++;
    if (initialVoters && this.storage.lastIndex() === 0) {
      // Creating the member writes its initial state before it runs at all.
      const { entries, hardState } = bootstrapState(initialVoters);
      if (this.storage instanceof MemoryStorage) {
        this.storage.append(entries);
        this.storage.setHardState(hardState);
      } else {
        // Synchronously: the disk completes at once while diskImmediate is set.
        this.diskImmediate = true;
        (this.storage as DiskStorage).save({ entries, hardState }, (err) => {
          if (err) throw err;
        });
        this.diskImmediate = false;
      }
    }
    // The storage itself, not the core's view: asking it has no side effect.
    const snap = this.storage.snapshot();
    this.raw = new RawNode({
      id: this.id,
      electionTick: this.params.electionTick,
      heartbeatTick: this.params.heartbeatTick,
      storage: this.coreStorage,
      random: this.rng.fork(`raft:${this.incarnation}`),
      // The state machine comes back from the snapshot: apply from there.
      applied: snap.metadata.index,
      readOnlyOption: this.params.readOnly,
      preVote: this.params.preVote,
      checkQuorum: this.params.checkQuorum,
      maxSizePerMsg: this.params.maxSizePerMsg,
      maxInflightMsgs: this.params.maxInflightMsgs,
      maxInflightBytes: this.params.maxInflightBytes,
    });
    this.sm = KvStateMachine.restore(snap.data, this.params.sessionTtlUs);
    this.confState = snap.metadata.confState;
    this.appliedIndex = snap.metadata.index;
    this.up = true;
    this.localTicks = 0;
  }

  /**
   * Crashes the node: the disk keeps what was synced and, if `torn`, part of
   * what was not (the last write cut short). Returns how many records of the
   * write in flight survived (snapshot, then entries, then hard state).
   */
  crash(torn: boolean, rng: Random): number {
    const rd = this.persisting;
    let kept = 0;
    if (this.disk && this.openDisk) {
      this.disk.crash(torn ? { unsynced: 'torn', random: () => rng.float() } : { unsynced: 'none' });
      // Recovery happens here rather than at the restart: nothing touches
      // the disk in between, and the checker learns now what survived.
      this.storage = this.openDisk();
      if (rd) {
        kept = recordsKept(rd, this.storage as DiskStorage);
        if (kept > 0) this.host.onPersisted(this, rd, kept);
      }
    } else if (rd && torn) {
      kept = rng.int(SimNode.recordCount(rd) + 1);
      if (kept > 0) this.write(rd, kept);
    }
    this.raw = undefined;
    this.persisting = undefined;
    this.appliedEarly = undefined;
    this.up = false;
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.confirmedReads = [];
    return kept;
  }

  /** Records a Ready writes: the snapshot, each entry, the hard state. */
  static recordCount(rd: Ready): number {
    return (rd.snapshot ? 1 : 0) + rd.entries.length + (rd.hardState ? 1 : 0);
  }

  static needsDisk(rd: Ready): boolean {
    return SimNode.recordCount(rd) > 0;
  }

  tick(): void {
    this.localTicks++;
    this.raw!.tick();
  }

  /** Takes the next Ready, unless a write is in flight or nothing is ready. */
  takeReady(): Ready | undefined {
    const raw = this.raw;
    if (!raw || this.persisting || !raw.hasReady()) return undefined;
    return raw.ready();
  }

  /**
   * Persists a Ready; `done` runs once it is durable: at once for a
   * MemoryStorage, after the disk's fdatasync for the write-ahead log.
   */
  persist(rd: Ready, done: () => void): void {
    if (this.storage instanceof MemoryStorage) {
      this.host.scheduleDisk(this, () => {
        this.write(rd);
        done();
      });
      return;
    }
    // A method, bound: a closure made per write would be compiled again by V8 now and then.
    (this.storage as DiskStorage).save({ entries: rd.entries, hardState: rd.hardState, snapshot: rd.snapshot }, this.persisted.bind(this, rd, done));
  }

  private persisted(rd: Ready, done: () => void, err?: Error): void {
    if (err) throw err;
    this.host.onPersisted(this, rd, SimNode.recordCount(rd));
    done();
  }

  /** Writes the first `records` records of a Ready into a MemoryStorage. */
  private write(rd: Ready, records = SimNode.recordCount(rd)): void {
    const storage = this.storage as MemoryStorage;
    let left = records;
    if (rd.snapshot && left > 0) {
      storage.applySnapshot(rd.snapshot);
      left--;
    }
    const entries = left >= rd.entries.length ? rd.entries : rd.entries.slice(0, left);
    storage.append(entries);
    left -= entries.length;
    if (rd.hardState && left > 0) storage.setHardState(rd.hardState);
    this.host.onPersisted(this, rd, records);
  }

  /**
   * While the Ready's write syncs, applies its committed entries and serves
   * the reads they allow, as the production runtime does (src/node/node.ts,
   * applyCommitted): committed entries are durable on a quorum already. Not
   * when the Ready carries a snapshot: that is installed, and the entries
   * after it applied, once durable.
   */
  applyWhileSyncing(rd: Ready): void {
    if (rd.snapshot) return;
    this.appliedEarly = rd;
    this.applyCommitted(rd);
  }

  /** After the write is durable: acknowledge, install a snapshot, apply (unless done already), advance. */
  finish(rd: Ready): void {
    const raw = this.raw!;
    for (const m of rd.messagesAfterPersist) this.host.send(m);
    if (rd.snapshot) {
      const meta = rd.snapshot.metadata;
      this.sm = KvStateMachine.restore(rd.snapshot.data, this.params.sessionTtlUs);
      this.confState = meta.confState;
      this.appliedIndex = meta.index;
      this.host.onSnapshotInstalled(this, meta.index);
    }
    if (this.appliedEarly === rd) this.appliedEarly = undefined;
    else this.applyCommitted(rd);
    raw.advance(rd);
    this.host.onDecisions(this);
    if (this.params.snapshotInterval > 0 && this.appliedIndex - this.storage.snapshotIndex() >= this.params.snapshotInterval) {
      this.snapshot();
    }
  }

  private applyCommitted(rd: Ready): void {
    for (const d of rd.droppedProposals) this.refused(d);
    for (const e of rd.committedEntries) this.apply(e);
    for (const rs of rd.readStates) {
      const key = textDecoder.decode(rs.context);
      const pending = this.pendingReads.get(key);
      if (!pending) continue;
      this.pendingReads.delete(key);
      this.host.onReadIndex(this, key, rs.index, pending.committedOnArrival);
      this.confirmedReads.push({ index: rs.index, req: pending.req });
    }
    this.serveReads();
  }

  private apply(e: Entry): void {
    let command: AppliedCommand = { key: undefined, effect: undefined };
    if (e.type === 'confChange') {
      this.confState = this.raw!.applyConfChange(decodeConfChange(e.data));
      this.host.onDecisions(this);
    } else if (e.data.byteLength > 0) {
      const entry = decodeEntry(e.data);
      const result = this.sm.apply(entry, e.index);
      const cmd = entry.cmd;
      if (cmd.kind === 'register') {
        command = { key: undefined, effect: result.kind };
        const req = this.waiting(`reg:${entry.client}:${entry.attempt}`);
        if (req) this.host.reply(req.client, { client: req.client, seq: 0, from: this.id, session: e.index, registration: req.attempt });
      } else {
        const key = `${cmd.session}:${cmd.seq}`;
        command = { key, effect: result.kind };
        if (result.kind === 'expired') {
          const req = this.waiting(key);
          if (req) this.answer(req, undefined, 'session-expired');
        } else if (result.kind !== 'registered' && result.output) {
          const req = this.waiting(key);
          if (req) this.answer(req, result.output);
        }
      }
    }
    this.appliedIndex = e.index;
    this.host.onApplied(this, e, command);
  }

  /** A proposal this node forwarded was refused by the leader: the client hears at once, and retries. */
  private refused(d: DroppedProposal): void {
    if (d.type !== 'normal' || d.data.byteLength === 0) return;
    const entry = decodeEntry(d.data);
    const cmd = entry.cmd;
    const key = cmd.kind === 'register' ? `reg:${entry.client}:${entry.attempt}` : `${cmd.session}:${cmd.seq}`;
    const req = this.waiting(key);
    if (req) this.answer(req, undefined, d.reason, this.raw?.raft.lead);
  }

  /**
   * Answers `req` (an operation, or a registration refused): with its
   * output, or an error and the leader to try. Every answer has one shape
   * (one object literal: building answers by spreading cost more than
   * applying the commands).
   */
  private answer(req: ClientRequest, output: KvOutput | undefined, error?: string, leaderHint?: NodeId): void {
    const opSession = req.register ? undefined : req.session;
    this.host.reply(req.client, { client: req.client, seq: req.seq, opSession, from: this.id, output, error, leaderHint });
  }

  /** The request of the client waiting at this node for `key` to be applied, if any: the caller answers it. */
  private waiting(key: string): ClientRequest | undefined {
    const req = this.pendingWrites.get(key);
    if (req) this.pendingWrites.delete(key);
    return req;
  }

  /** A read is served once the state machine has applied up to its read index (diss. §6.4). */
  private serveReads(): void {
    if (this.confirmedReads.length === 0) return;
    const waiting: { index: number; req: ClientRequest }[] = [];
    for (const r of this.confirmedReads) {
      if (r.index > this.appliedIndex) {
        waiting.push(r);
        continue;
      }
      const key = r.req.input!.key;
      this.host.onReadServed(this, r.index);
      this.answer(r.req, this.sm.get(key));
    }
    this.confirmedReads = waiting;
  }

  /** Snapshots the state machine at the applied index and compacts the log below it (less a margin). */
  snapshot(): boolean {
    return this.takeSnapshot(true);
  }

  private takeSnapshot(compact: boolean): boolean {
    const index = this.appliedIndex;
    if (!this.up || index <= this.storage.snapshotIndex()) return false;
    // Only between writes, as src/node: entries applied while their write
    // syncs may not be on disk yet (a snapshot now could cover entries the
    // local log lacks), and a snapshot from the leader being written will
    // supersede any taken now (storage refuses an older one).
    if (this.persisting) return false;
    this.storage.createSnapshot(index, this.confState, this.sm.snapshot());
    const compactTo = index - this.params.compactionMargin;
    if (compact && compactTo >= this.storage.firstIndex()) this.storage.compact(compactTo);
    return true;
  }

  /** Handles a client request: registrations and writes are proposed, reads go through ReadIndex. */
  handleClient(req: ClientRequest, clockUs: number): void {
    const raw = this.raw!;
    try {
      if (req.register) {
        raw.propose(encodeEntry({ cmd: { kind: 'register' }, time: clockUs, client: req.client, attempt: req.attempt }));
        this.pendingWrites.set(`reg:${req.client}:${req.attempt}`, req);
      } else if (req.input!.op === 'get') {
        // Unique per call: a late duplicate of an answer must not match a later read.
        const ctx = `${req.client}:${req.seq}:${req.attempt}#${++this.readCounter}`;
        raw.readIndex(textEncoder.encode(ctx));
        this.pendingReads.set(ctx, { req, committedOnArrival: this.host.committedIndex() });
      } else {
        const cmd = { kind: 'op', session: req.session, seq: req.seq, input: req.input! } as const;
        raw.propose(encodeEntry({ cmd, time: clockUs, client: req.client, attempt: req.attempt }));
        this.pendingWrites.set(`${req.session}:${req.seq}`, req);
      }
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
      this.answer(req, undefined, e.reason, raw.raft.lead);
    }
  }
}

/**
 * How many records of `rd` (snapshot, entries, hard state, the order the
 * log writes them in) recovery found on the disk: what a crash during its
 * write kept.
 */
function recordsKept(rd: Ready, s: DiskStorage): number {
  let n = 0;
  if (rd.snapshot) {
    if (s.snapshotIndex() < rd.snapshot.metadata.index) return 0;
    n++;
  }
  for (const e of rd.entries) {
    // Below the first index: covered by a snapshot, so it was applied, hence written.
    const there = e.index < s.firstIndex() || (e.index <= s.lastIndex() && s.term(e.index) === e.term);
    if (!there) return n;
    n++;
  }
  if (rd.hardState && hardStateEqual(s.initialState().hardState, rd.hardState)) n++;
  return n;
}
