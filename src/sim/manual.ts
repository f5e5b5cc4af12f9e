// A cluster driven by hand, one step at a time: the harness for unit tests,
// the scenario scripts (test/scenarios) and the visualiser's guided stories.
// Nothing happens unless asked: messages wait in a queue until delivered or
// dropped, time passes only through tick(), and each node handles its Ready
// synchronously (persist, send, apply, advance). It runs the real core over
// MemoryStorage, which survives crash() as the node's disk.

import { decodeConfChange } from '../raft/confchange.js';
import { RaftError } from '../raft/errors.js';
import type { RaftConfig } from '../raft/raft.js';
import { type Ready, RawNode, bootstrapState } from '../raft/rawNode.js';
import { MemoryStorage } from '../raft/storage.js';
import {
  type ConfChange,
  type ConfState,
  type DroppedProposal,
  type Entry,
  type HardState,
  type Message,
  type MessageType,
  type NodeId,
  type ReadState,
  type Snapshot,
  EMPTY_CONF_STATE,
} from '../raft/types.js';
import { Random } from './random.js';

export type NodeConfig = Partial<Omit<RaftConfig, 'id' | 'storage' | 'random'>>;

export interface ManualNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  raw: RawNode | undefined;
  up: boolean;
  /** Entries applied by this node, in order (a crash keeps the list: it is the history). */
  readonly applied: Entry[];
  /** The configuration as of the last applied entry. */
  confState: ConfState;
  /** Reads confirmed to this node. */
  readonly readStates: ReadState[];
  /** Proposals this node forwarded that were refused (Ready.droppedProposals). */
  readonly dropped: DroppedProposal[];
  /** Counts starts: 1 at creation, +1 per restart. */
  incarnation: number;
}

export interface MessageFilter {
  readonly from?: NodeId;
  readonly to?: NodeId;
  readonly type?: MessageType | readonly MessageType[];
}

/** Whether a message passes a filter (no filter: every message does). */
export function matchesFilter(m: Message, f: MessageFilter | undefined): boolean {
  if (!f) return true;
  if (f.from !== undefined && m.from !== f.from) return false;
  if (f.to !== undefined && m.to !== f.to) return false;
  if (f.type !== undefined) {
    const types = typeof f.type === 'string' ? [f.type] : f.type;
    if (!types.includes(m.type)) return false;
  }
  return true;
}

/** The running node that leads in the highest term, if any (a deposed leader may not know it yet). */
export function leaderOf(nodes: Iterable<{ readonly id: NodeId; readonly up: boolean; readonly raw: RawNode | undefined }>): NodeId | undefined {
  let best: { id: NodeId; term: number } | undefined;
  for (const n of nodes) {
    if (!n.up || !n.raw) continue;
    const r = n.raw.raft;
    if (r.state === 'leader' && (!best || r.term > best.term)) best = { id: n.id, term: r.term };
  }
  return best?.id;
}

export class ManualCluster {
  readonly nodes = new Map<NodeId, ManualNode>();
  /** Messages sent and not yet delivered, in the order they were sent. */
  pending: Message[] = [];
  /** Links that drop messages (from -> to). */
  private readonly cuts = new Set<string>();
  private readonly rng: Random;

  constructor(
    private readonly defaults: NodeConfig = {},
    seed = 1,
  ) {
    this.rng = new Random(seed);
  }

  /**
   * Adds a node. With `voters`, it is an initial member of a new cluster
   * with those voters; without, it starts empty and waits to be added (a
   * learner or voter joining through a configuration change).
   */
  add(id: NodeId, voters?: readonly NodeId[], config: NodeConfig = {}): ManualNode {
    return this.addWithState(id, voters ? bootstrapState(voters) : {}, config);
  }

  private readonly configs = new Map<NodeId, NodeConfig>();

  /**
   * Scenario support (added for src/sim/scenario.ts): adds a node whose disk
   * already holds a history, as if it had lived through earlier terms — an
   * optional snapshot (its configuration is the node's configuration), log
   * entries following it, and a hard state. This builds situations such as
   * the logs of the Raft paper's Figures 7 and 8 directly, instead of
   * playing out every earlier term. The caller must keep the state
   * consistent (entries contiguous after the snapshot, commit <= last index).
   * Like add(), it does not process the node's first Ready.
   */
  addWithState(
    id: NodeId,
    state: { snapshot?: Snapshot; entries?: readonly Entry[]; hardState?: HardState },
    config: NodeConfig = {},
  ): ManualNode {
    if (this.nodes.has(id)) throw new RangeError(`node ${id} already exists`);
    const storage = new MemoryStorage();
    if (state.snapshot) storage.applySnapshot(state.snapshot);
    if (state.entries) storage.append(state.entries);
    if (state.hardState) storage.setHardState(state.hardState);
    const node: ManualNode = {
      id,
      storage,
      raw: undefined,
      up: false,
      applied: [],
      confState: EMPTY_CONF_STATE,
      readStates: [],
      dropped: [],
      incarnation: 0,
    };
    this.nodes.set(id, node);
    this.configs.set(id, config);
    this.start(node);
    return node;
  }

  private start(node: ManualNode): void {
    node.incarnation++;
    const snap = node.storage.snapshot();
    node.raw = new RawNode({
      electionTick: 10,
      heartbeatTick: 1,
      ...this.defaults,
      ...this.configs.get(node.id),
      id: node.id,
      storage: node.storage,
      random: this.rng.fork(`node:${node.id}:${node.incarnation}`),
      applied: snap.metadata.index,
    });
    node.confState = snap.metadata.confState;
    node.up = true;
  }

  /** Adds nodes 1..n as the voters of a new cluster. */
  static withVoters(n: number, config: NodeConfig = {}, seed = 1): ManualCluster {
    const c = new ManualCluster(config, seed);
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    for (const id of ids) c.add(id, ids);
    c.processAll();
    return c;
  }

  node(id: NodeId): ManualNode {
    const n = this.nodes.get(id);
    if (!n) throw new RangeError(`no node ${id}`);
    return n;
  }

  raw(id: NodeId): RawNode {
    const n = this.node(id);
    if (!n.up || !n.raw) throw new RangeError(`node ${id} is down`);
    return n.raw;
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()].sort((a, b) => a - b);
  }

  // -------------------------------------------------------------------------
  // Driving

  /** Handles every Ready the node has: persist, queue messages, apply, advance. */
  process(id: NodeId): void {
    const node = this.node(id);
    while (node.up && node.raw!.hasReady()) this.handleReady(node, node.raw!.ready());
  }

  processAll(): void {
    for (const id of this.ids()) this.process(id);
  }

  private handleReady(node: ManualNode, rd: Ready): void {
    const raw = node.raw!;
    if (rd.snapshot) node.storage.applySnapshot(rd.snapshot);
    node.storage.append(rd.entries);
    if (rd.hardState) node.storage.setHardState(rd.hardState);
    this.pending.push(...rd.messages, ...rd.messagesAfterPersist);
    if (rd.snapshot) node.confState = rd.snapshot.metadata.confState;
    for (const e of rd.committedEntries) {
      if (e.type === 'confChange') node.confState = raw.applyConfChange(decodeConfChange(e.data));
      node.applied.push(e);
    }
    node.readStates.push(...rd.readStates);
    node.dropped.push(...rd.droppedProposals);
    raw.advance(rd);
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      if (!this.node(id).up) return;
      this.raw(id).tick();
    }
    this.process(id);
  }

  /** Ticks until the node's randomized election timeout has surely passed. */
  tickElection(id: NodeId): void {
    const r = this.raw(id).raft;
    this.tick(id, 2 * r.electionTimeout);
  }

  /** Ticks a heartbeat interval on the node. */
  tickHeartbeat(id: NodeId): void {
    this.tick(id, this.raw(id).raft.heartbeatTimeout);
  }

  campaign(id: NodeId): void {
    this.raw(id).campaign();
    this.process(id);
  }

  /** Proposes a command; returns the refusal's message, or undefined when accepted. */
  propose(id: NodeId, data: string | Uint8Array): string | undefined {
    return this.attempt(id, () => this.raw(id).propose(typeof data === 'string' ? new TextEncoder().encode(data) : data));
  }

  proposeConfChange(id: NodeId, cc: ConfChange): string | undefined {
    return this.attempt(id, () => this.raw(id).proposeConfChange(cc));
  }

  readIndex(id: NodeId, context: string): string | undefined {
    return this.attempt(id, () => this.raw(id).readIndex(new TextEncoder().encode(context)));
  }

  transferLeader(id: NodeId, to: NodeId): string | undefined {
    return this.attempt(id, () => this.raw(id).transferLeader(to));
  }

  private attempt(id: NodeId, call: () => void): string | undefined {
    try {
      call();
      return undefined;
    } catch (e) {
      if (e instanceof RaftError) return `${e.code}: ${e.message}`;
      throw e;
    } finally {
      this.process(id);
    }
  }

  /**
   * Snapshots the node's applied state (this harness's state machine is
   * the list of applied entries) and compacts its log up to `compactTo`
   * (default: the snapshot index).
   */
  snapshot(id: NodeId, compactTo?: number): number {
    const node = this.node(id);
    const index = node.raw!.raft.raftLog.applied;
    if (index > node.storage.snapshot().metadata.index) {
      node.storage.createSnapshot(index, node.confState, new TextEncoder().encode(`applied:${index}`));
    }
    node.storage.compact(compactTo ?? index);
    return index;
  }

  // -------------------------------------------------------------------------
  // Messages

  /**
   * Delivers the pending messages that match (all by default), in order,
   * and lets each recipient handle its Ready. Messages the recipients send
   * in response stay pending. Returns what was delivered.
   */
  deliver(filter?: MessageFilter): Message[] {
    const now: Message[] = [];
    const later: Message[] = [];
    for (const m of this.pending) (matchesFilter(m, filter) ? now : later).push(m);
    this.pending = later;
    const delivered: Message[] = [];
    for (const m of now) {
      const to = this.nodes.get(m.to);
      if (!to || !to.up || this.cuts.has(`${m.from}>${m.to}`)) continue;
      to.raw!.step(m);
      delivered.push(m);
    }
    for (const id of new Set(delivered.map((m) => m.to))) this.process(id);
    return delivered;
  }

  /** Drops the pending messages that match; returns them. */
  drop(filter?: MessageFilter): Message[] {
    const dropped: Message[] = [];
    const kept: Message[] = [];
    for (const m of this.pending) (matchesFilter(m, filter) ? dropped : kept).push(m);
    this.pending = kept;
    return dropped;
  }

  /** Delivers messages until none are left (or `maxRounds` rounds); returns everything delivered. */
  stabilize(maxRounds = 1000): Message[] {
    const all: Message[] = [];
    this.processAll();
    for (let round = 0; round < maxRounds && this.pending.length > 0; round++) {
      all.push(...this.deliver());
      this.processAll();
    }
    return all;
  }

  // -------------------------------------------------------------------------
  // Faults

  /** Crashes a node: everything but its storage is lost, and its undelivered messages too. */
  crash(id: NodeId): void {
    const node = this.node(id);
    node.up = false;
    node.raw = undefined;
    this.pending = this.pending.filter((m) => m.to !== id);
  }

  restart(id: NodeId): void {
    const node = this.node(id);
    if (node.up) throw new RangeError(`node ${id} is already up`);
    this.start(node);
    this.process(id);
  }

  /** Cuts every link between the groups (nodes in no group keep their links). */
  partition(...groups: NodeId[][]): void {
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue;
        for (const x of a) for (const y of b) this.cuts.add(`${x}>${y}`);
      }
    }
  }

  /** Cuts one direction of a link: `from` can no longer reach `to`. */
  cut(from: NodeId, to: NodeId): void {
    this.cuts.add(`${from}>${to}`);
  }

  heal(): void {
    this.cuts.clear();
  }

  // -------------------------------------------------------------------------
  // Inspection

  leader(): NodeId | undefined {
    return leaderOf(this.nodes.values());
  }

  /** The node's log as "index@term" strings (from the first index on). */
  log(id: NodeId): string[] {
    const r = this.raw(id).raft.raftLog;
    const out: string[] = [];
    for (let i = r.firstIndex(); i <= r.lastIndex(); i++) out.push(`${i}@${r.term(i)}`);
    return out;
  }

  /** One line per node: role, term, vote, commit, applied, log tail. */
  describe(id: NodeId): string {
    const node = this.node(id);
    if (!node.up) return `${id}: down`;
    const r = node.raw!.raft;
    const log = r.raftLog;
    const role = r.state === 'preCandidate' ? 'pre-candidate' : r.state;
    const lead = r.lead ? ` lead=${r.lead}` : '';
    const learner = r.isLearner ? ' learner' : '';
    return (
      `${id}: ${role}${learner} term=${r.term} vote=${r.vote}${lead} commit=${log.committed} applied=${log.applied} ` +
      `last=${log.lastIndex()}@${log.lastTerm()}`
    );
  }
}
