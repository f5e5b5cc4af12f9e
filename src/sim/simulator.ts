// The deterministic cluster simulator. It runs the real Raft core (the same
// code as production) for N nodes on a virtual clock, with a seeded network
// (delay, loss, duplication, reordering, partitions), disk (write latency,
// crashes that keep only what was written, torn writes) and clocks (skew),
// a client workload, and a nemesis that crashes, restarts, partitions and
// reconfigures the cluster. Raft's safety properties are checked after
// every event; after the faults heal, liveness is required.
//
// Everything random comes from one seed, so a seed reproduces a run exactly
// (same events, same trace hash). Nothing here touches Node.js APIs: the
// visualiser runs the same simulator in a browser.

import { RaftError } from '../raft/errors.js';
import { StorageError } from '../storage/errors.js';
import type { RawNode, Ready } from '../raft/rawNode.js';
import type { ConfChange, ConfChangeSingle, Entry, Message, NodeId, SoftState } from '../raft/types.js';
import { describeConfChange } from '../raft/confchange.js';
import { Checker, type Property, SafetyViolation } from './checker.js';
import { EventQueue } from './eventQueue.js';
import { leaderOf } from './manual.js';
import { checkLinearizability, kvModel, type KvInput, type KvOutput, type Operation } from './linearizability.js';
import { type AppliedCommand, type ClientReply, type ClientRequest, type NodeHost, type NodeParams, SimNode } from './node.js';
import { Network, type PartitionKind } from './network.js';
import { type NemesisAction, type SimOptions, type Swarm, DEFAULT_OPTIONS, TICK_US, pickSwarm } from './options.js';
import { Random } from './random.js';
import { type TextParts, type TraceRecord, MESSAGE_TYPES_BY_CODE, Trace, messageCode } from './trace.js';
import { type ClientHost, type ClientOp, CLIENT_ID_BASE, SimClient } from './workload.js';

type SimEvent =
  | { readonly kind: 'tick'; readonly node: SimNode }
  | { readonly kind: 'deliver'; readonly msg: Message }
  /** A disk operation of `node` completes (a write's fdatasync, a segment's preallocation). */
  | { readonly kind: 'disk'; readonly node: SimNode; readonly incarnation: number; readonly complete: () => void }
  | { readonly kind: 'snapshotReport'; readonly node: SimNode; readonly incarnation: number; readonly to: NodeId; readonly ok: boolean }
  | { readonly kind: 'clientRequest'; readonly to: NodeId; readonly req: ClientRequest }
  | { readonly kind: 'clientReply'; readonly client: SimClient; readonly reply: ClientReply }
  | { readonly kind: 'clientWake'; readonly client: SimClient; readonly token: number }
  | { readonly kind: 'nemesis' }
  /** A correlated fault: crash `node` if it still leads in `term` (a leader flapping right after its election). */
  | { readonly kind: 'flap'; readonly node: SimNode; readonly term: number }
  /** A correlated fault after a membership change: cut off or crash whoever leads. */
  | { readonly kind: 'confFault' }
  /** The end of a correlated fault: restart a node, or heal the network. */
  | { readonly kind: 'recover'; readonly node: SimNode | undefined }
  | { readonly kind: 'stopClients' }
  | { readonly kind: 'heal' };

export interface SimStats {
  events: number;
  /** Elections started (nodes becoming candidates, after any PreVote). */
  elections: number;
  /** Nodes becoming leader. */
  leadersElected: number;
  messagesSent: number;
  messagesDelivered: number;
  messagesDropped: number;
  messagesByType: Record<string, number>;
  faults: Record<string, number>;
  /** The highest commit index reached. */
  committed: number;
  entriesApplied: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  confChangesApplied: number;
  readsServed: number;
  clientOps: number;
  clientOpsCompleted: number;
  /** Client sessions that expired (a client told so started a new one). */
  sessionsExpired: number;
  /** Virtual µs from the heal to a leader that committed in its term. */
  leaderAfterHealUs: number | undefined;
  /** The linearizability checker's verdict on the client history ('unknown': search budget exhausted). */
  linearizability: 'ok' | 'unknown' | 'not checked';
  /** 'ok' once the end-of-run checks passed; 'not checked' when a violation ended the run first. */
  liveness: 'ok' | 'not checked';
}

export interface Violation {
  readonly property: Property | 'simulator-error';
  readonly detail: string;
  readonly time: number;
  readonly event: number;
}

export interface SimResult {
  readonly seed: number;
  readonly options: SimOptions;
  readonly swarm: Swarm;
  readonly stats: SimStats;
  readonly traceHash: string;
  readonly leadersByTerm: ReadonlyArray<readonly [number, NodeId]>;
  readonly violation: Violation | undefined;
  /** The events leading to a violation (empty when none). */
  readonly recent: readonly TraceRecord[];
  readonly endTime: number;
}

/**
 * `byCode` counts messages by type code (see messageCode), `seen` lists the
 * codes in the order they first came (counting in an object's properties,
 * or a Map, costs several times more, on every message).
 */
function newStats(byCode: readonly number[], seen: readonly number[]): SimStats {
  return {
    events: 0,
    elections: 0,
    leadersElected: 0,
    messagesSent: 0,
    messagesDelivered: 0,
    messagesDropped: 0,
    get messagesByType() {
      return Object.fromEntries(seen.map((code) => [MESSAGE_TYPES_BY_CODE[code]!, byCode[code]!]));
    },
    faults: {},
    committed: 0,
    entriesApplied: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    confChangesApplied: 0,
    readsServed: 0,
    clientOps: 0,
    clientOpsCompleted: 0,
    sessionsExpired: 0,
    leaderAfterHealUs: undefined,
    linearizability: 'not checked',
    liveness: 'not checked',
  };
}

/**
 * After the heal, a leader must commit within this many election timeouts
 * (plus the time lagging voters need to catch up: catchUpBound), and every
 * operation complete. A run that has not settled both by its last tick goes
 * on until it does or the bound passes, so every run checks liveness and
 * the bound costs nothing when it is not needed.
 *
 * Raft's liveness is probabilistic (§5.2: randomized timeouts make split
 * votes rare, not impossible), so the bound is a tail, not a worst case.
 * Soak seed 36417 took 41 elections: after the heal a voter with a stale
 * log and configuration (n4) kept campaigning to nodes that refused it, and
 * the one voter that could win (n5) timed out after n4 in each term, so n4
 * had always voted for itself already. Each round n5 gets ahead with
 * probability of about 1/8; a Monte Carlo of that race puts 40 or more
 * rounds at 4.5e-3 and 100 or more at about 1e-6.
 */
const LIVENESS_BOUND_ELECTIONS = 100;

export class Simulator implements NodeHost, ClientHost {
  readonly options: SimOptions;
  readonly swarm: Swarm;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly clients: SimClient[] = [];
  readonly network: Network;
  readonly checker = new Checker(this.nodes);
  readonly trace: Trace;
  private readonly messageCounts: number[] = new Array<number>(MESSAGE_TYPES_BY_CODE.length).fill(0);
  private readonly messageTypesSeen: number[] = [];
  readonly stats = newStats(this.messageCounts, this.messageTypesSeen);
  now = 0;
  readonly endTime: number;
  /** 'faults' until the heal, then 'liveness'. */
  phase: 'faults' | 'liveness' = 'faults';
  violation: Violation | undefined;
  private healTime = Infinity;
  /** Added to the liveness bound: the time lagging voters may need to catch up after the heal (catchUpBound). */
  private catchUpUs = 0;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly rng: Random;
  private readonly nemesisRng: Random;
  private readonly diskRng: Random;
  private readonly nodeIdList: NodeId[];
  /** byId[id]: the node with that id (as `nodes`, for the lookups made for every message). */
  private readonly byId: (SimNode | undefined)[] = [];
  private readonly nodeParams: NodeParams;
  private finished = false;

  constructor(options: Partial<SimOptions> & { seed: number }) {
    this.options = { ...DEFAULT_OPTIONS, ...options };
    const picked = pickSwarm(this.options);
    this.swarm = this.options.swarmOverrides ? { ...picked, ...this.options.swarmOverrides } : picked;
    const s = this.swarm;
    this.rng = new Random(this.options.seed);
    this.nemesisRng = this.rng.fork('nemesis');
    this.diskRng = this.rng.fork('disk');
    this.trace = new Trace(this.options.traceBuffer, this.options.onTrace);
    this.network = new Network(this.rng.fork('network'), {
      minDelayUs: s.minDelayUs,
      maxDelayUs: s.maxDelayUs,
      lossRate: s.lossRate,
      duplicateRate: s.duplicateRate,
    });
    this.endTime = this.options.ticks * TICK_US;
    const clockRng = this.rng.fork('clocks');
    const params: NodeParams = {
      electionTick: this.options.electionTick,
      heartbeatTick: this.options.heartbeatTick,
      readOnly: s.readOnly,
      checkQuorum: s.checkQuorum,
      preVote: s.preVote,
      snapshotInterval: s.snapshotInterval,
      compactionMargin: s.compactionMargin,
      sessionTtlUs: s.sessionTtlUs,
      maxSizePerMsg: s.maxSizePerMsg,
      maxInflightMsgs: s.maxInflightMsgs,
      maxInflightBytes: s.maxInflightBytes,
      storage: s.storage,
    };
    this.nodeParams = params;
    this.nodeIdList = [];
    for (let id = 1; id <= s.nodes; id++) {
      const skew = s.skew > 0 ? (clockRng.float() * 2 - 1) * s.skew : 0;
      const node = new SimNode(id, Math.round(TICK_US * (1 + skew)), params, this.rng.fork(`node:${id}`), this);
      this.nodes.set(id, node);
      this.byId[id] = node;
      this.nodeIdList.push(id);
    }
    const voters = this.nodeIdList.slice(0, s.initialVoters);
    for (const node of this.nodes.values()) {
      node.start(voters.includes(node.id) ? voters : undefined);
      this.checker.onStart(node);
      // Stagger the first ticks so nodes do not tick in lockstep.
      this.queue.push(clockRng.int(node.tickPeriodUs), { kind: 'tick', node });
    }
    // Interactive mode: requests and faults come from outside, and the run has no end.
    if (this.options.interactive) return;
    for (let i = 0; i < s.clients; i++) {
      const client = new SimClient(
        CLIENT_ID_BASE + i,
        this.rng.fork(`client:${i}`),
        this,
        s.keys,
        s.clientTimeoutTicks * TICK_US,
        s.clientThinkTicks * TICK_US,
      );
      this.clients.push(client);
      client.start(0);
    }
    if (s.nemesisWeights.length > 0) this.scheduleNemesis();
    this.queue.push(s.healAtTick * TICK_US, { kind: 'heal' });
    this.queue.push(s.clientsStopAtTick * TICK_US, { kind: 'stopClients' });
  }

  // -------------------------------------------------------------------------
  // Running

  /** Whether the run is over (end of time, or a violation). */
  get done(): boolean {
    return this.finished;
  }

  /** Processes the next event. Returns false once the run is over. */
  step(): boolean {
    if (this.finished) return false;
    const next = this.queue.peekTime();
    if (next === undefined || next > this.endOfRun()) {
      this.finish();
      return false;
    }
    this.now = next;
    const item = this.queue.pop()!;
    this.stats.events++;
    try {
      this.handle(item);
    } catch (e) {
      this.fail(e);
      return false;
    }
    return true;
  }

  /** The run's last tick, or later while liveness is unsettled after the heal (LIVENESS_BOUND_ELECTIONS). */
  private endOfRun(): number {
    if (this.phase !== 'liveness' || this.livenessSettled()) return this.endTime;
    return Math.max(this.endTime, this.healTime + this.livenessBoundUs());
  }

  /** A leader has committed since the heal and no client waits for an answer. */
  private livenessSettled(): boolean {
    return this.stats.leaderAfterHealUs !== undefined && this.clients.every((c) => c.current === undefined);
  }

  private livenessBoundUs(): number {
    return LIVENESS_BOUND_ELECTIONS * this.options.electionTick * TICK_US + this.catchUpUs;
  }

  run(): SimResult {
    while (this.step()) {
      /* run to the end */
    }
    return this.result();
  }

  /** The next event's time (µs) and kind, and the node it concerns, if any; undefined when none is queued. */
  nextEvent(): { readonly time: number; readonly kind: SimEvent['kind']; readonly node: NodeId | undefined } | undefined {
    const ev = this.queue.peek();
    if (ev === undefined) return undefined;
    let node: NodeId | undefined;
    if (ev.kind === 'tick' || ev.kind === 'disk' || ev.kind === 'snapshotReport') node = ev.node.id;
    else if (ev.kind === 'deliver') node = ev.msg.to;
    else if (ev.kind === 'clientRequest') node = ev.to;
    return { time: this.queue.peekTime()!, kind: ev.kind, node };
  }

  /** Runs until virtual time `t` (µs) or the end. */
  runUntil(t: number): void {
    while (!this.finished && (this.queue.peekTime() ?? Infinity) <= t && this.step()) {
      /* keep going */
    }
  }

  result(): SimResult {
    return {
      seed: this.options.seed,
      options: this.options,
      swarm: this.swarm,
      stats: this.stats,
      traceHash: this.trace.digest(),
      leadersByTerm: [...this.checker.leaderByTerm.entries()].sort((a, b) => a[0] - b[0]),
      violation: this.violation,
      recent: this.violation ? this.trace.recent() : [],
      endTime: this.now,
    };
  }

  private fail(e: unknown): void {
    let property: Violation['property'];
    let detail: string;
    if (e instanceof SafetyViolation) {
      property = e.property;
      detail = e.detail;
    } else if (e instanceof RaftError) {
      property = 'core-invariant';
      detail = `${e.code}: ${e.message}`;
    } else if (e instanceof StorageError) {
      property = 'storage';
      detail = `${e.code}: ${e.message}`;
    } else {
      property = 'simulator-error';
      detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
    }
    this.violation = { property, detail, time: this.now, event: this.stats.events };
    this.trace.record(this.now, 'violation', 0, undefined, `${property}: ${detail.split('\n')[0]}`);
    this.finished = true;
  }

  private handle(ev: SimEvent): void {
    switch (ev.kind) {
      case 'tick': {
        const node = ev.node;
        this.queue.push(this.now + node.tickPeriodUs, ev);
        if (!node.up) return;
        this.trace.tick(this.now, node.id);
        node.tick();
        this.process(node);
        return;
      }
      case 'deliver':
        this.deliver(ev.msg);
        return;
      case 'disk':
        // A disk operation of an earlier life never completes: the crash lost it.
        if (!ev.node.up || ev.node.incarnation !== ev.incarnation) return;
        ev.complete();
        return;
      case 'snapshotReport': {
        const node = ev.node;
        if (!node.up || node.incarnation !== ev.incarnation) return;
        node.raw!.reportSnapshot(ev.to, ev.ok);
        this.process(node);
        return;
      }
      case 'clientRequest': {
        const node = this.byId[ev.to]!;
        if (!node.up) return;
        this.trace.record(this.now, 'client', node.id, undefined, describeRequest(ev.req));
        node.handleClient(ev.req, Math.floor(this.now * (node.tickPeriodUs / TICK_US)));
        this.process(node);
        return;
      }
      case 'clientReply':
        ev.client.onReply(this.now, ev.reply);
        return;
      case 'clientWake':
        ev.client.wake(this.now, ev.token);
        return;
      case 'nemesis':
        if (this.phase !== 'faults') return;
        this.nemesis();
        this.scheduleNemesis();
        return;
      case 'flap': {
        const r = ev.node.raw?.raft;
        if (this.phase !== 'faults' || !r || r.state !== 'leader' || r.term !== ev.term) return;
        this.stats.faults.flap = (this.stats.faults.flap ?? 0) + 1;
        this.crash(ev.node.id);
        this.scheduleRecovery(ev.node);
        return;
      }
      case 'confFault': {
        const leader = this.currentLeader();
        if (this.phase !== 'faults' || leader === undefined) return;
        this.stats.faults.confFault = (this.stats.faults.confFault ?? 0) + 1;
        if (this.swarm.nemesisWeights.some(([a]) => a === 'partition') && this.nemesisRng.chance(0.6)) {
          const desc = this.network.partition(this.nemesisRng.pick(['isolateLeader', 'leaderMinority'] as const), this.nodeIdList, leader);
          this.trace.record(this.now, 'partition', 0, undefined, `${desc} (right after a membership change)`);
          this.scheduleRecovery(undefined);
        } else {
          this.crash(leader);
          this.scheduleRecovery(this.nodes.get(leader)!);
        }
        return;
      }
      case 'recover':
        if (this.phase !== 'faults') return;
        if (ev.node) this.restart(ev.node.id);
        else if (this.network.cutCount > 0) {
          this.network.heal();
          this.trace.record(this.now, 'heal', 0, undefined, 'all links restored');
        }
        return;
      case 'stopClients':
        for (const c of this.clients) c.stopped = true;
        return;
      case 'heal':
        this.heal();
        return;
    }
  }

  /**
   * Hands a node's Ready to the network and the disk, repeatedly, while it
   * has one. Called right after every call into the node's core.
   */
  private process(node: SimNode): void {
    this.checker.onDecisions(node);
    for (;;) {
      if (!node.up) break;
      const rd = node.takeReady();
      if (!rd) break;
      if (rd.softState) this.observeRole(node, rd.softState);
      for (const m of rd.messages) this.send(m);
      if (SimNode.needsDisk(rd) && !this.persist(node, rd)) {
        node.applyWhileSyncing(rd);
        break;
      }
      this.completeReady(node, rd);
    }
    this.checker.afterEvent(node);
    if (node.up) {
      const r = node.raw!.raft;
      if (r.raftLog.committed > this.stats.committed) this.stats.committed = r.raftLog.committed;
      if (
        this.phase === 'liveness' &&
        this.stats.leaderAfterHealUs === undefined &&
        r.state === 'leader' &&
        r.raftLog.termOrUndefined(r.raftLog.committed) === r.term
      ) {
        this.stats.leaderAfterHealUs = this.now - this.healTime;
      }
    }
  }

  /**
   * Starts writing a Ready; returns whether the write completed at once
   * (then the caller completes the Ready). Otherwise it completes when the
   * disk's fdatasync does, and the node keeps stepping messages meanwhile.
   */
  private persist(node: SimNode, rd: Ready): boolean {
    node.persisting = rd;
    let completedNow = false;
    let inProcess = true;
    node.persist(rd, () => {
      node.persisting = undefined;
      if (inProcess) {
        completedNow = true;
        return;
      }
      this.completeReady(node, rd);
      this.process(node);
    });
    inProcess = false;
    return completedNow;
  }

  private completeReady(node: SimNode, rd: Ready): void {
    if (SimNode.needsDisk(rd)) {
      // "snap@I ents A..B hs tT vV cC", each part only if written.
      const what: (string | number)[] = [];
      if (rd.snapshot) what.push('snap@', rd.snapshot.metadata.index);
      if (rd.entries.length) what.push(what.length ? ' ents ' : 'ents ', rd.entries[0]!.index, '..', rd.entries[rd.entries.length - 1]!.index);
      const hs = rd.hardState;
      if (hs) what.push(what.length ? ' hs t' : 'hs t', hs.term, ' v', hs.vote, ' c', hs.commit);
      this.trace.record(this.now, 'persist', node.id, undefined, what);
    }
    node.finish(rd);
  }

  private observeRole(node: SimNode, ss: SoftState): void {
    const r = node.raw!.raft;
    this.trace.record(this.now, 'role', node.id, undefined, `${ss.state} t${r.term} lead=${ss.lead}`);
    if (ss.state === 'candidate') this.stats.elections++;
    if (ss.state === 'leader') {
      this.stats.leadersElected++;
      if (this.phase === 'faults' && this.nemesisRng.chance(this.swarm.leaderFlapRate)) {
        // Crash it within a few ticks: before or while its first entries replicate.
        const at = this.now + this.nemesisRng.int(3 * TICK_US);
        this.queue.push(at, { kind: 'flap', node, term: r.term });
      }
    }
  }

  /** Ends a correlated fault after a while: restart the node, or heal the network. */
  private scheduleRecovery(node: SimNode | undefined): void {
    const at = this.now + (1 + this.nemesisRng.int(3 * this.options.electionTick)) * TICK_US;
    this.queue.push(at, { kind: 'recover', node });
  }

  // -------------------------------------------------------------------------
  // Network

  send(m: Message): void {
    this.stats.messagesSent++;
    const onSend = this.options.onSend;
    const code = messageCode(m.type);
    if (this.messageCounts[code]!++ === 0) this.messageTypesSeen.push(code);
    const delays = this.network.deliveries(m.from, m.to, true);
    const sender = this.byId[m.from]!;
    if (m.type === 'MsgVoteResp' && !m.reject) this.checker.onVoteGranted(sender, m);
    if (onSend) onSend(m, delays.map((d) => this.now + d));
    if (delays.length === 0) {
      this.stats.messagesDropped++;
      this.trace.record(this.now, 'drop', m.from, m);
      if (m.type === 'MsgSnap') {
        // The transport notices the failure.
        this.queue.push(this.now + TICK_US, {
          kind: 'snapshotReport',
          node: sender,
          incarnation: sender.incarnation,
          to: m.to,
          ok: false,
        });
      }
      return;
    }
    this.trace.record(this.now, 'send', m.from, m);
    for (const d of delays) {
      this.queue.push(this.now + d, { kind: 'deliver', msg: m });
      if (m.type === 'MsgSnap') {
        this.queue.push(this.now + d, {
          kind: 'snapshotReport',
          node: sender,
          incarnation: sender.incarnation,
          to: m.to,
          ok: true,
        });
      }
    }
  }

  private deliver(m: Message): void {
    const node = this.byId[m.to];
    // A message still in flight when its link is cut is lost, as on a real network.
    if (!node || !node.up || this.network.isCut(m.from, m.to)) {
      this.stats.messagesDropped++;
      return;
    }
    this.stats.messagesDelivered++;
    this.trace.record(this.now, 'deliver', m.to, m);
    node.raw!.step(m);
    this.process(node);
  }

  // -------------------------------------------------------------------------
  // NodeHost: what nodes report

  reply(to: number, r: ClientReply): void {
    const client = this.clients[to - CLIENT_ID_BASE];
    if (!client) return;
    for (const d of this.network.deliveries(r.from, to, false)) {
      this.queue.push(this.now + d, { kind: 'clientReply', client, reply: r });
    }
  }

  onPersisted(node: SimNode, rd: Ready, records: number): void {
    this.checker.onPersisted(node, rd, records);
  }

  scheduleDisk(node: SimNode, complete: () => void): void {
    const { diskMinUs, diskMaxUs } = this.swarm;
    if (diskMaxUs === 0) {
      complete();
      return;
    }
    const latency = diskMinUs + this.diskRng.int(diskMaxUs - diskMinUs + 1);
    this.queue.push(this.now + latency, { kind: 'disk', node, incarnation: node.incarnation, complete });
  }

  onApplied(node: SimNode, e: Entry, command: AppliedCommand): void {
    this.stats.entriesApplied++;
    if (e.type === 'confChange') {
      this.stats.confChangesApplied++;
      this.trace.record(this.now, 'conf', node.id, undefined, `applied ${e.index}: ${describeConfState(node)}`);
    }
    this.checker.onApplied(node, e, command);
  }

  onSnapshotInstalled(node: SimNode, index: number): void {
    this.stats.snapshotsInstalled++;
    this.trace.record(this.now, 'snapshot', node.id, undefined, `installed at ${index}`);
    this.checker.onSnapshotInstalled(node, index);
  }

  onDecisions(node: SimNode): void {
    this.checker.onDecisions(node);
  }

  onReadServed(): void {
    this.stats.readsServed++;
  }

  onReadIndex(node: SimNode, context: string, index: number, committedOnArrival: number): void {
    this.checker.onReadIndex(node, context, index, committedOnArrival);
  }

  committedIndex(): number {
    return this.checker.committedIndex;
  }

  // -------------------------------------------------------------------------
  // ClientHost: what clients need

  nodeIds(): readonly NodeId[] {
    return this.nodeIdList;
  }

  wake(client: SimClient, at: number, token: number): void {
    this.queue.push(at, { kind: 'clientWake', client, token });
  }

  sendRequest(to: NodeId, req: ClientRequest): void {
    for (const d of this.network.deliveries(req.client, to, false)) {
      this.queue.push(this.now + d, { kind: 'clientRequest', to, req });
    }
  }

  onComplete(_client: SimClient, op: ClientOp, session: number): void {
    this.stats.clientOpsCompleted++;
    if (op.input.op !== 'get' && op.output?.ok) this.checker.onWriteAcknowledged(session, op.seq);
  }

  // -------------------------------------------------------------------------
  // The nemesis

  private scheduleNemesis(): void {
    const mean = this.swarm.nemesisMeanTicks * TICK_US;
    const at = this.now + 1 + this.nemesisRng.int(2 * mean);
    if (at < this.swarm.healAtTick * TICK_US) this.queue.push(at, { kind: 'nemesis' });
  }

  private nemesis(): void {
    const r = this.nemesisRng;
    const action: NemesisAction = r.weighted(this.swarm.nemesisWeights);
    this.stats.faults[action] = (this.stats.faults[action] ?? 0) + 1;
    switch (action) {
      case 'crash': {
        const up = this.upNodes();
        if (up.length > 0) this.crash(r.pick(up).id);
        return;
      }
      case 'crashLeader': {
        const leader = this.currentLeader();
        if (leader !== undefined) this.crash(leader);
        return;
      }
      case 'restart': {
        const down = [...this.nodes.values()].filter((n) => !n.up);
        if (down.length > 0) this.restart(down[r.int(down.length)]!.id);
        return;
      }
      case 'partition': {
        const kind: PartitionKind = r.pick(['split', 'oneWay', 'isolate', 'isolateLeader', 'leaderMinority'] as const);
        const desc = this.network.partition(kind, this.nodeIdList, this.currentLeader());
        this.trace.record(this.now, 'partition', 0, undefined, desc);
        // Partitions last from a tick to many election timeouts (log-uniform):
        // long enough, often, for the two sides to elect their own leaders.
        const ticks = Math.round(Math.exp(r.float() * Math.log(10 * this.options.electionTick)));
        this.queue.push(this.now + ticks * TICK_US, { kind: 'recover', node: undefined });
        return;
      }
      case 'heal':
        if (this.network.cutCount === 0) return;
        this.network.heal();
        this.trace.record(this.now, 'heal', 0, undefined, 'all links restored');
        return;
      case 'membership':
        this.changeMembership();
        return;
      case 'transfer': {
        const up = this.upNodes();
        if (up.length === 0) return;
        const node = r.pick(up);
        const voters = node.raw!.raft.prs.config.voters.ids();
        if (voters.length === 0) return;
        const target = r.pick(voters);
        this.trace.record(this.now, 'transfer', node.id, undefined, `asks leadership for ${target}`);
        this.tryRequest(node, () => node.raw!.transferLeader(target));
        return;
      }
      case 'snapshot': {
        const up = this.upNodes();
        if (up.length === 0) return;
        const node = r.pick(up);
        if (node.snapshot()) {
          this.stats.snapshotsTaken++;
          this.trace.record(this.now, 'snapshot', node.id, undefined, `taken at ${node.appliedIndex}`);
        }
        return;
      }
    }
  }

  /** Calls a node API that may refuse (no leader, change pending...), then lets the node act. */
  private tryRequest(node: SimNode, call: () => void): void {
    try {
      call();
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.trace.record(this.now, 'conf', node.id, undefined, `refused: ${e.message}`);
    }
    this.process(node);
  }

  /**
   * Proposes a membership change through a running node (preferably the
   * leader): a learner added, promoted or demoted, a voter removed, or
   * voters replaced through a joint configuration.
   */
  private changeMembership(): void {
    const r = this.nemesisRng;
    const up = this.upNodes();
    if (up.length === 0) return;
    const node = up.find((n) => n.raw!.raft.state === 'leader') ?? r.pick(up);
    const cfg = node.raw!.raft.prs.config;
    let cc: ConfChange;
    if (cfg.voters.isJoint) {
      cc = { transition: 'auto', changes: [] }; // leave (explicit joint configurations wait for this)
    } else {
      const voters = cfg.voters.incoming.ids;
      const learners = [...cfg.learners];
      const others = this.nodeIdList.filter((id) => !voters.includes(id) && !cfg.learners.has(id));
      // Lean towards the initial number of voters, so that long runs keep
      // exercising real quorums rather than drifting down to a single voter.
      const target = this.swarm.initialVoters;
      const grow = voters.length < target ? 4 : 1;
      const shrink = voters.length > target ? 4 : voters.length > 1 ? 0.5 : 0;
      const options: [ConfChangeSingle[], number][] = [];
      for (const id of others) options.push([[{ type: 'addLearner', nodeId: id }], 1]);
      for (const id of learners) options.push([[{ type: 'addNode', nodeId: id }], grow]);
      for (const id of voters) {
        options.push([[{ type: 'removeNode', nodeId: id }], shrink]);
        options.push([[{ type: 'addLearner', nodeId: id }], shrink]);
      }
      // Joint changes (§6), about a third of the time: replace one voter, or
      // two at once (the old and new majorities can then be disjoint, which
      // is what joint consensus guards against), or add two voters.
      const candidates = [...learners, ...others];
      const joint: ConfChangeSingle[][] = [];
      for (const out of voters) {
        for (const inc of candidates) {
          joint.push([
            { type: 'removeNode', nodeId: out },
            { type: 'addNode', nodeId: inc },
          ]);
        }
      }
      if (candidates.length >= 2 && voters.length >= 3) {
        const [a, b] = r.shuffle([...voters]);
        const [c, d] = r.shuffle([...candidates]);
        joint.push([
          { type: 'removeNode', nodeId: a! },
          { type: 'removeNode', nodeId: b! },
          { type: 'addNode', nodeId: c! },
          { type: 'addNode', nodeId: d! },
        ]);
      }
      if (candidates.length >= 2) {
        joint.push([
          { type: 'addNode', nodeId: candidates[0]! },
          { type: 'addNode', nodeId: candidates[1]! },
        ]);
      }
      const total = options.reduce((sum, [, w]) => sum + w, 0);
      for (const changes of joint) options.push([changes, (total || 1) / 2 / joint.length]);
      const usable = options.filter(([, w]) => w > 0);
      if (usable.length === 0) return;
      const changes = r.weighted(usable);
      const transition = changes.length > 1 ? r.pick(['auto', 'implicit', 'explicit'] as const) : r.pick(['auto', 'auto', 'implicit'] as const);
      cc = { transition, changes };
    }
    this.trace.record(this.now, 'conf', node.id, undefined, `proposes ${describeConfChange(cc)}`);
    this.tryRequest(node, () => node.raw!.proposeConfChange(cc));
    if (this.nemesisRng.chance(this.swarm.confChangeFaultRate)) {
      // Strike while the change is in flight: some nodes apply it, some do not yet.
      this.queue.push(this.now + this.nemesisRng.int(5 * TICK_US), { kind: 'confFault' });
    }
  }

  // -------------------------------------------------------------------------
  // Interactive mode: what the sandbox does from outside

  /** A new, empty node, outside the cluster until a configuration change adds it. */
  addNode(): SimNode {
    const id = Math.max(0, ...this.nodes.keys()) + 1;
    const node = new SimNode(id, TICK_US, this.nodeParams, this.rng.fork(`node:${id}`), this);
    this.nodes.set(id, node);
    this.byId[id] = node;
    this.nodeIdList.push(id);
    node.start(undefined);
    this.checker.onStart(node);
    this.queue.push(this.now + TICK_US, { kind: 'tick', node });
    return node;
  }

  /** Stops a node for good (removed from the cluster): crashed, and no longer a client's target. */
  retire(id: NodeId): void {
    this.crash(id);
    const i = this.nodeIdList.indexOf(id);
    if (i >= 0) this.nodeIdList.splice(i, 1);
  }

  /** A client that runs only the operations submitted to it (SimClient.submit). */
  addClient(): SimClient {
    const s = this.swarm;
    const i = this.clients.length;
    const client = new SimClient(CLIENT_ID_BASE + i, this.rng.fork(`client:${i}`), this, s.keys, s.clientTimeoutTicks * TICK_US, 0, true);
    this.clients.push(client);
    return client;
  }

  /**
   * Calls into a running node's core (a campaign, a proposal, a transfer),
   * then lets the node act on it. Returns the core's refusal, if it refused.
   */
  callNode(id: NodeId, call: (raw: RawNode) => void): string | undefined {
    const node = this.nodes.get(id);
    if (!node?.up) return `node ${id} is down`;
    let refusal: string | undefined;
    try {
      call(node.raw!);
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      refusal = e.message;
    }
    this.process(node);
    return refusal;
  }

  /** The running node that leads in the highest term, if any. */
  currentLeader(): NodeId | undefined {
    return leaderOf(this.nodes.values());
  }

  private upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  crash(id: NodeId): void {
    const node = this.nodes.get(id)!;
    if (!node.up) return;
    const inFlight = node.persisting !== undefined;
    // A torn write keeps a random prefix of the write in flight.
    const kept = node.crash(this.swarm.tornWrites, this.nemesisRng);
    this.trace.record(this.now, 'crash', id, undefined, inFlight ? `write in flight, kept ${kept} records` : '');
  }

  restart(id: NodeId): void {
    const node = this.nodes.get(id)!;
    if (node.up) return;
    node.start(undefined);
    this.checker.onStart(node);
    const r = node.raw!.raft;
    this.trace.record(this.now, 'restart', id, undefined, `term ${r.term} commit ${r.raftLog.committed} last ${r.raftLog.lastIndex()}`);
    this.process(node);
  }

  /** Ends the fault phase: every link restored, every node restarted, the network calm. */
  private heal(): void {
    this.phase = 'liveness';
    this.healTime = this.now;
    this.network.heal();
    const w = this.network.weather;
    w.lossRate = 0;
    w.duplicateRate = 0;
    w.minDelayUs = Math.min(w.minDelayUs, TICK_US / 10);
    w.maxDelayUs = Math.min(w.maxDelayUs, TICK_US / 2);
    this.trace.record(this.now, 'phase', 0, undefined, 'heal: faults stop, liveness required from here');
    for (const node of this.nodes.values()) if (!node.up) this.restart(node.id);
    this.catchUpUs = this.catchUpBound();
  }

  /**
   * Time a lagging voter may need, after the heal, to receive the entries it
   * lacks: before that a leader may be unable to commit (in joint consensus
   * both halves need it). Replication sends at most maxInflightMsgs appends
   * at once, each of at least one entry, and each answered only after the
   * follower's write: a round trip of two network delays and one disk write.
   * A swarm with one entry per message and one message in flight catches up
   * 300 entries in seconds (soak seed 54412), not in a fixed number of ticks.
   */
  private catchUpBound(): number {
    let last = 0;
    let behind = 0;
    for (const n of this.nodes.values()) last = Math.max(last, n.raw!.raft.raftLog.lastIndex());
    // Voters of any configuration a node knows: only they hold a commit back.
    const voters = new Set<NodeId>();
    for (const n of this.nodes.values()) {
      const v = n.raw!.raft.prs.config.voters;
      for (const id of v.incoming.ids) voters.add(id);
      for (const id of v.outgoing.ids) voters.add(id);
    }
    for (const id of voters) {
      const n = this.nodes.get(id);
      if (n?.raw) behind = Math.max(behind, last - n.raw.raft.raftLog.lastIndex());
    }
    const roundTripUs = 2 * this.network.weather.maxDelayUs + this.swarm.diskMaxUs;
    return Math.ceil(behind / this.swarm.maxInflightMsgs) * roundTripUs;
  }

  // -------------------------------------------------------------------------
  // The end of a run

  private finish(): void {
    this.finished = true;
    if (this.violation) return;
    try {
      this.finalChecks();
    } catch (e) {
      this.fail(e);
    }
  }

  private finalChecks(): void {
    this.stats.clientOps = this.clients.reduce((n, c) => n + c.history.length, 0);
    this.stats.sessionsExpired = this.clients.reduce((n, c) => n + c.sessionsExpired, 0);
    // The heal is queued inside the run, and the run ends only after it.
    if (this.phase !== 'liveness') throw new Error('the run ended before the heal');
    const bound = this.livenessBoundUs();
    const baseBound = bound - this.catchUpUs;
    const ticks = (us: number) => Math.round(us / TICK_US);
    const leaderAt = this.stats.leaderAfterHealUs;
    // The run went on past its last tick until liveness settled or the bound passed (endOfRun).
    if (leaderAt === undefined || leaderAt > bound) {
      throw new SafetyViolation(
        'liveness',
        `no leader committed an entry within ${ticks(bound)} ticks of the heal` +
          (this.catchUpUs > 0 ? ` (${ticks(baseBound)}, plus ${ticks(this.catchUpUs)} for lagging voters to catch up)` : '') +
          (leaderAt !== undefined ? ` (took ${ticks(leaderAt)} ticks)` : ''),
      );
    }
    const stuck = this.clients.filter((c) => c.current !== undefined);
    if (stuck.length > 0) {
      const c = stuck[0]!;
      throw new SafetyViolation(
        'liveness',
        `client ${c.id}'s operation ${describeInput(c.current!.input)} (seq ${c.current!.seq}) invoked at ` +
          `${(c.current!.call / 1000).toFixed(1)}ms never completed (${stuck.length} clients stuck ${ticks(this.now - this.healTime)} ticks after the heal)`,
      );
    }
    const leader = this.upNodes().find((n) => n.raw!.raft.state === 'leader');
    const acked = this.checker.maxAcknowledgedIndex();
    if (leader && leader.raw!.raft.raftLog.committed < acked) {
      throw new SafetyViolation(
        'acknowledged-write-lost',
        `the final leader ${leader.id} committed only up to ${leader.raw!.raft.raftLog.committed}, ` +
          `but a write acknowledged at index ${acked}`,
      );
    }
    this.stats.liveness = 'ok';
    if (this.options.checkLinearizability !== false) {
      const history: Operation<KvInput, KvOutput>[] = this.clients.flatMap((c) => c.operations());
      const result = checkLinearizability(kvModel, history);
      if (result.outcome === 'violation') throw new SafetyViolation('linearizability', result.explanation);
      this.stats.linearizability = result.outcome;
    }
  }
}

/** A client operation in the trace's words: "set k=v", "get k", "inc k". */
export function describeInput(i: KvInput): string {
  switch (i.op) {
    case 'set':
      return `set ${i.key}=${i.value}`;
    case 'cas':
      return `cas ${i.key}`;
    default:
      return `${i.op} ${i.key}`;
  }
}

/** "cC sS #Q.A op", as trace text in parts (see TextParts). */
function describeRequest(r: ClientRequest): TextParts {
  if (r.register) return ['c', r.client, ' register (attempt ', r.attempt, ')'];
  return ['c', r.client, ' s', r.session, ' #', r.seq, '.', r.attempt, ' ', describeInput(r.input!)];
}

function describeConfState(node: SimNode): string {
  const cs = node.confState;
  let s = `voters=(${cs.voters.join(' ')})`;
  if (cs.votersOutgoing.length) s += `&&(${cs.votersOutgoing.join(' ')})`;
  if (cs.learners.length) s += ` learners=(${cs.learners.join(' ')})`;
  if (cs.learnersNext.length) s += ` next=(${cs.learnersNext.join(' ')})`;
  return s;
}
