// The visualiser's sandbox: the simulator (the same Raft core as
// production) in interactive mode, driven by the page through the controls
// of src/ui/view.ts. Time passes only when the page asks (advance, stepEvent),
// faults and requests come from the user or a guided story, and every
// control call is recorded with its simulated time so that the seed plus the
// actions replay the run exactly. The safety checker runs after every event.

import { decodeConfChange } from '../raft/confchange.js';
import type { RawNode } from '../raft/rawNode.js';
import type { ConfChange, ConfState, Entry, Message, NodeId } from '../raft/types.js';
import type {
  ClientRequestView,
  ClusterView,
  EntryView,
  KvCommandView,
  MemberView,
  MessageKind,
  MessageView,
  ProgressView,
  RoleView,
  SandboxAction,
  SandboxControls,
  SandboxOptions,
  StoryInfo,
  StoryProgress,
  TimelineEvent,
  TimelineEventKind,
} from '../ui/view.js';
import { decodeEntry } from './kv.js';
import type { KvInput, KvOutput } from './linearizability.js';
import type { SimNode } from './node.js';
import { TICK_US } from './options.js';
import { Simulator, describeInput } from './simulator.js';
import { type Story, type StoryContext, STORIES, findStory } from './stories.js';
import type { TraceRecord } from './trace.js';
import { CLIENT_ID_BASE, type SimClient, type Submission } from './workload.js';

export { STORIES };

/**
 * Timing, chosen for a watchable animation in the proportions of the Raft
 * explainers (RaftScope: messages 10–15 ms, heartbeats every 50 ms, election
 * timeouts 100–200 ms): a message's flight is a visible fraction of the
 * heartbeat interval, and an election needs several heartbeats to go missing.
 *
 * - A tick is the simulator's TICK_US, 10 ms: the election ring shrinks in
 *   20 to 40 steps, smooth enough to draw.
 * - Heartbeats every 5 ticks (50 ms): about 4 message flights, so one can
 *   watch a heartbeat reach the followers and the answers come back before
 *   the next one leaves.
 * - Election timeout 20 ticks, randomized by the core to 200–400 ms (§5.2):
 *   4 to 8 heartbeat intervals, so a live leader is never suspected even at
 *   a loss rate of a few tens of percent, and the node whose timer fires
 *   first usually wins before the others' timers fire (split votes are rare
 *   but visible).
 * - Network delay 10–15 ms, a spread wide enough for messages to overtake
 *   each other now and then.
 * - A client waits 600 ms (about 2 election timeouts) before retrying at
 *   another node, and gives up after 5 s (SUBMISSION_DEADLINE_US).
 *
 * At speed 1 the page shows simulated time in real time (a message takes
 * 12 ms, too fast to follow); a speed around 0.05 stretches a flight to a
 * quarter of a second.
 */
export const SANDBOX_TIMING = {
  tickMs: TICK_US / 1000,
  heartbeatTick: 5,
  electionTick: 20,
  minDelayMs: 10,
  maxDelayMs: 15,
  clientTimeoutTicks: 60,
} as const;

/** Entries shown per log (the tail). */
export const LOG_TAIL = 30;
/** Lines kept in the event log, and events on the timeline. */
const LOG_LINES = 300;
const TIMELINE_EVENTS = 2000;
/** Membership work (a proposal refused or lost) is retried this often (µs). */
const MEMBERSHIP_RETRY_US = 10 * TICK_US;

/** Bad input to a control: a node that does not exist, a rate out of range. */
export class SandboxError extends Error {
  readonly code = 'SANDBOX_INVALID_ARGUMENT';
  constructor(message: string) {
    super(message);
    this.name = 'SandboxError';
  }
}

interface InFlight {
  readonly key: number;
  readonly msg: Message;
  readonly sentAt: number;
  readonly deliverAt: number;
  /** Lost by the network when sent (loss or a cut link). */
  readonly lost: boolean;
}

interface RequestRecord {
  readonly id: number;
  readonly command: KvCommandView;
  readonly sub: Submission;
}

/** Membership work in progress: each stage waits for the leader's configuration, and proposes until it gets there. */
type MembershipTask =
  | { readonly kind: 'add'; readonly id: NodeId; stage: 'learner' | 'catchUp' | 'voter'; retryAt: number }
  | { readonly kind: 'remove'; readonly id: NodeId; retryAt: number }
  /** A joint change (§6): the new node is added as a learner, caught up, then swapped in for the old one at once. */
  | { readonly kind: 'replace'; readonly id: NodeId; readonly old: NodeId; stage: 'learner' | 'catchUp' | 'joint'; retryAt: number };

function ms(us: number): number {
  return us / 1000;
}

function nodeName(id: NodeId): string {
  return `n${id}`;
}

export class Sandbox implements SandboxControls, StoryContext {
  readonly seed: number;
  readonly sim: Simulator;
  /** The sandbox's clock (µs): every event before it has been processed. */
  private clockUs = 0;
  /** After stepEvent: events at the clock's time may remain; an action first runs them (see act). */
  private midInstant = false;
  private readonly members: NodeId[] = [];
  private readonly inFlight = new Map<Message, InFlight>();
  private messageKey = 0;
  private readonly events: TimelineEvent[] = [];
  private readonly lines: string[] = [];
  private readonly recorded: SandboxAction[] = [];
  private readonly toReplay: SandboxAction[];
  private readonly reqs: RequestRecord[] = [];
  private readonly tasks: MembershipTask[] = [];
  private readonly roles = new Map<NodeId, string>();
  private readonly confIndexes = new Set<number>();
  /** Trace records of the event being stepped (stepEvent describes them). */
  private stepRecords: TraceRecord[] | undefined;
  private readonly entryViews = new WeakMap<Entry, EntryView>();
  // Guided story state.
  private readonly storyDef: Story | undefined;
  private storyStep = 0;
  private readonly captions: string[] = [];
  private stepFiredUs = 0;
  private deliveredSinceStep: Message[] = [];
  readonly vars: Record<string, number> = {};

  constructor(options: SandboxOptions) {
    const story = options.story === undefined ? undefined : findStory(options.story);
    if (options.story !== undefined && !story) throw new SandboxError(`unknown story "${options.story}"`);
    this.storyDef = story;
    const seed = story ? story.seed : options.seed;
    const nodes = story ? story.nodes : options.nodes;
    if (!Number.isInteger(seed) || seed < 0) throw new SandboxError(`seed must be a non-negative integer, got ${seed}`);
    if (!Number.isInteger(nodes) || nodes < 3 || nodes > 7) throw new SandboxError(`nodes must be 3 to 7, got ${nodes}`);
    const loss = options.loss ?? 0;
    checkLoss(loss);
    this.seed = seed;
    const t = SANDBOX_TIMING;
    this.sim = new Simulator({
      seed,
      nodes,
      ticks: Infinity,
      faults: new Set(),
      electionTick: t.electionTick,
      heartbeatTick: t.heartbeatTick,
      readOnly: 'safe',
      clients: 0,
      keys: 1,
      traceBuffer: 64,
      checkLinearizability: false,
      storage: 'memory',
      interactive: true,
      onTrace: (r) => this.onTrace(r),
      onSend: (m, at) => this.onSend(m, at),
      // The paper's Raft, as the explainers draw it: no PreVote, no
      // CheckQuorum (a deposed leader in a minority keeps believing it
      // leads, and a stale node's higher term disrupts: both visible).
      swarmOverrides: {
        initialVoters: nodes,
        minDelayUs: t.minDelayMs * 1000,
        maxDelayUs: t.maxDelayMs * 1000,
        lossRate: loss,
        duplicateRate: 0,
        diskMinUs: 0,
        diskMaxUs: 0,
        tornWrites: false,
        skew: 0,
        nemesisWeights: [],
        leaderFlapRate: 0,
        confChangeFaultRate: 0,
        snapshotInterval: 0,
        compactionMargin: 0,
        clients: 0,
        clientTimeoutTicks: t.clientTimeoutTicks,
        clientThinkTicks: 0,
        preVote: false,
        checkQuorum: false,
        maxSizePerMsg: 4096,
        maxInflightMsgs: 8,
        maxInflightBytes: 0,
        sessionTtlUs: Number.MAX_SAFE_INTEGER,
        storage: { mode: 'memory' },
      },
    });
    for (let id = 1; id <= nodes; id++) {
      this.members.push(id);
      this.roles.set(id, 'follower');
      // The bootstrap entries add one voter each: mark only the last, the whole cluster.
      if (id < nodes) this.confIndexes.add(id);
    }
    this.toReplay = [...(options.actions ?? [])].sort((a, b) => a.at - b.at);
    this.checkStory();
  }

  get now(): number {
    return ms(this.clockUs);
  }

  // -------------------------------------------------------------------------
  // Time

  advance(msToRun: number): void {
    if (!(msToRun >= 0)) throw new SandboxError(`advance needs a non-negative number of ms, got ${msToRun}`);
    const target = this.clockUs + Math.round(msToRun * 1000);
    while (!this.sim.violation) {
      const t = this.sim.nextEvent()?.time;
      if (this.applyDueActions(Math.min(t ?? Infinity, target))) continue;
      if (t === undefined || t >= target) break;
      this.processEvent();
    }
    if (target > this.clockUs) {
      this.clockUs = target;
      this.midInstant = false;
    }
    this.prune();
  }

  stepEvent(): string | undefined {
    if (this.sim.violation) return undefined;
    let ev = this.sim.nextEvent();
    if (ev && this.applyDueActions(ev.time)) ev = this.sim.nextEvent();
    if (!ev) return undefined;
    const node = ev.node !== undefined ? this.sim.nodes.get(ev.node) : undefined;
    const timer = node?.up ? `${node.raw!.raft.electionElapsed + 1}/${node.raw!.raft.randomizedElectionTimeout}` : '';
    this.stepRecords = [];
    const records = this.stepRecords;
    try {
      this.processEvent();
    } finally {
      this.stepRecords = undefined;
    }
    this.clockUs = ev.time;
    this.midInstant = true;
    this.prune();
    return `t=${formatMs(ev.time)}ms ${describeStep(ev.kind, ev.node, records, timer)}`;
  }

  /** Processes the next event, then lets the membership work and the story react. */
  private processEvent(): void {
    this.sim.step();
    if (this.sim.violation) {
      this.say(`safety violation: ${this.sim.violation.property}: ${this.sim.violation.detail.split('\n')[0]}`);
      return;
    }
    if (this.tasks.length > 0) this.runMembership();
    if (this.storyDef) this.checkStory();
  }

  /** Applies the recorded actions due at or before `limitUs`; returns whether it applied any. */
  private applyDueActions(limitUs: number): boolean {
    let applied = false;
    while (this.toReplay.length > 0 && Math.round(this.toReplay[0]!.at * 1000) <= limitUs) {
      const a = this.toReplay.shift()!;
      const at = Math.round(a.at * 1000);
      if (at > this.clockUs) this.clockUs = at;
      this.dispatch(a.action, a.args);
      applied = true;
    }
    return applied;
  }

  /** Drops the messages whose delivery time has passed (delivered ones go at delivery). */
  private prune(): void {
    for (const [m, f] of this.inFlight) if (f.deliverAt < this.clockUs) this.inFlight.delete(m);
  }

  // -------------------------------------------------------------------------
  // What the simulator reports

  private onSend(m: Message, deliverAt: readonly number[]): void {
    const w = this.sim.network.weather;
    const lost = deliverAt.length === 0;
    // A lost message is drawn flying until it would have arrived, fading.
    const at = lost ? this.sim.now + Math.round((w.minDelayUs + w.maxDelayUs) / 2) : deliverAt[0]!;
    this.inFlight.set(m, { key: ++this.messageKey, msg: m, sentAt: this.sim.now, deliverAt: at, lost });
  }

  private onTrace(r: TraceRecord): void {
    this.stepRecords?.push(r);
    switch (r.kind) {
      case 'deliver':
        this.inFlight.delete(r.msg!);
        if (this.storyDef) this.deliveredSinceStep.push(r.msg!);
        this.noteDelivery(r.msg!);
        return;
      case 'role':
        this.noteRole(r.node);
        return;
      case 'snapshot':
        if (r.text?.startsWith('installed')) {
          const node = this.sim.nodes.get(r.node)!;
          this.mark('snapshot', r.node, node.appliedIndex, `installed a snapshot at ${node.appliedIndex}`);
        }
        return;
      case 'conf': {
        if (!r.text?.startsWith('applied')) return;
        const node = this.sim.nodes.get(r.node)!;
        if (this.confIndexes.has(node.appliedIndex)) return;
        this.confIndexes.add(node.appliedIndex);
        this.mark('confChange', r.node, node.appliedIndex, `configuration ${describeConfState(node.confState)}`);
        return;
      }
      default:
        return;
    }
  }

  private noteRole(id: NodeId): void {
    const node = this.sim.nodes.get(id)!;
    const r = node.raw!.raft;
    const prev = this.roles.get(id);
    this.roles.set(id, r.state);
    if (prev === 'leader' && r.state !== 'leader') this.mark('stepDown', id, undefined, `n${id} steps down in term ${r.term}`);
    if (r.state === 'candidate') this.mark('election', id, undefined, `n${id} starts an election for term ${r.term}`);
    else if (r.state === 'leader') this.mark('leader', id, undefined, `n${id} is leader of term ${r.term}`);
  }

  /** The messages worth a line in the event log: votes, refusals, snapshots, transfers. */
  private noteDelivery(m: Message): void {
    const who = `${nodeName(m.from)} → ${nodeName(m.to)}`;
    switch (m.type) {
      case 'MsgVoteResp':
      case 'MsgPreVoteResp':
        this.say(`${who} ${m.type === 'MsgPreVoteResp' ? 'pre-vote' : 'vote'} ${m.reject ? 'refused' : 'granted'} (term ${m.term})`);
        return;
      case 'MsgAppResp':
        if (m.reject) this.say(`${who} append rejected: no entry ${m.index}@${m.logTerm} (hint ${m.rejectHint})`);
        return;
      case 'MsgSnap':
        this.say(`${who} snapshot at ${m.snapshot?.metadata.index} delivered`);
        return;
      case 'MsgTimeoutNow':
        this.say(`${who} timeout now: campaign at once`);
        return;
      default:
        return;
    }
  }

  private mark(kind: TimelineEventKind, id: NodeId | undefined, index: number | undefined, detail: string): void {
    const node = id !== undefined ? this.sim.nodes.get(id) : undefined;
    const term = node?.raw?.raft.term ?? (node ? node.storage.initialState().hardState.term : 0);
    const ev: TimelineEvent = { time: ms(this.sim.now), kind, member: id !== undefined ? String(id) : '', term, detail };
    this.events.push(index !== undefined ? { ...ev, index } : ev);
    if (this.events.length > TIMELINE_EVENTS) this.events.shift();
    this.say(detail);
  }

  private say(line: string): void {
    this.lines.push(`${formatMs(this.sim.now)}ms ${line}`);
    if (this.lines.length > LOG_LINES) this.lines.shift();
  }

  // -------------------------------------------------------------------------
  // What the page reads

  view(): ClusterView {
    this.prune();
    const members = this.members.map((id) => this.memberView(this.sim.nodes.get(id)!));
    const shown = new Set(this.members);
    const messages: MessageView[] = [];
    for (const f of this.inFlight.values()) {
      if (shown.has(f.msg.from) && shown.has(f.msg.to)) messages.push(this.messageView(f));
    }
    const cutLinks = this.sim.network
      .cutLinks()
      .filter(([a, b]) => shown.has(a) && shown.has(b))
      .map(([from, to]) => ({ from: String(from), to: String(to) }));
    return { now: this.now, members, messages, cutLinks, rates: [] };
  }

  private messageView(f: InFlight): MessageView {
    const m = f.msg;
    const target = this.sim.nodes.get(m.to);
    const { kind, label } = describeMessageForView(m);
    const dropped = f.lost || this.sim.network.isCut(m.from, m.to) || !target?.up;
    const v: MessageView = {
      key: f.key,
      from: String(m.from),
      to: String(m.to),
      kind,
      type: m.type,
      term: m.term,
      label,
      sentAt: ms(f.sentAt),
      deliverAt: ms(f.deliverAt),
    };
    const rejectable = m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp' || m.type === 'MsgAppResp';
    return { ...v, ...(rejectable && m.reject ? { reject: true } : {}), ...(dropped ? { dropped: true } : {}) };
  }

  private memberView(node: SimNode): MemberView {
    const id = String(node.id);
    const name = nodeName(node.id);
    const snapshotIndex = node.storage.snapshotIndex();
    if (!node.up || !node.raw) {
      // A crashed node: what its disk holds.
      const s = node.storage;
      const hs = s.initialState().hardState;
      const last = s.lastIndex();
      const lo = Math.max(s.firstIndex(), last - LOG_TAIL + 1);
      return {
        id,
        name,
        role: 'down',
        term: hs.term,
        vote: hs.vote ? String(hs.vote) : undefined,
        leader: undefined,
        commitIndex: hs.commit,
        appliedIndex: node.appliedIndex,
        lastIndex: last,
        lastTerm: s.term(last),
        snapshotIndex,
        electionElapsed: 0,
        electionTimeout: SANDBOX_TIMING.electionTick,
        log: lo <= last ? s.entries(lo, last + 1, Infinity).map((e) => this.entryView(e)) : [],
        voter: isVoter(node.confState, node.id),
      };
    }
    const r = node.raw.raft;
    const log = r.raftLog;
    const last = log.lastIndex();
    const lo = Math.max(log.firstIndex(), last - LOG_TAIL + 1);
    const voter = r.prs.config.voters.ids().includes(node.id);
    const role: RoleView = r.state === 'follower' && r.prs.config.learners.has(node.id) ? 'learner' : r.state;
    const view: MemberView = {
      id,
      name,
      role,
      term: r.term,
      vote: r.vote ? String(r.vote) : undefined,
      leader: r.lead ? String(r.lead) : undefined,
      commitIndex: log.committed,
      appliedIndex: node.appliedIndex,
      lastIndex: last,
      lastTerm: log.lastTerm(),
      snapshotIndex,
      electionElapsed: r.electionElapsed,
      electionTimeout: r.randomizedElectionTimeout,
      log: lo <= last ? log.slice(lo, last + 1, Infinity).map((e) => this.entryView(e)) : [],
      voter,
    };
    if (r.state !== 'leader') return view;
    const progress: ProgressView[] = [];
    for (const [pid, pr] of r.prs.progress) {
      if (pid === node.id) continue;
      progress.push({ id: String(pid), matchIndex: pr.matchIndex, nextIndex: pr.nextIndex, state: pr.state, recentActive: pr.recentActive });
    }
    progress.sort((a, b) => Number(a.id) - Number(b.id));
    return { ...view, progress };
  }

  private entryView(e: Entry): EntryView {
    let v = this.entryViews.get(e);
    if (!v) {
      v = describeEntry(e);
      this.entryViews.set(e, v);
    }
    return v;
  }

  timeline(): readonly TimelineEvent[] {
    return this.events;
  }

  log(): readonly string[] {
    return this.lines;
  }

  requests(): readonly ClientRequestView[] {
    return this.reqs.map((r) => requestView(r));
  }

  violation(): string | undefined {
    const v = this.sim.violation;
    return v ? `${v.property} at ${formatMs(v.time)}ms: ${v.detail.split('\n')[0]}` : undefined;
  }

  actions(): readonly SandboxAction[] {
    return this.recorded;
  }

  story(): StoryProgress | undefined {
    const s = this.storyDef;
    if (!s) return undefined;
    const info: StoryInfo = { id: s.id, title: s.title, summary: s.summary };
    return { story: info, step: this.storyStep, steps: s.steps.length, captions: [...this.captions], done: this.storyStep >= s.steps.length };
  }

  // -------------------------------------------------------------------------
  // Controls: each is recorded, then done

  crash(node: string): void {
    this.act('crash', [node]);
  }
  restart(node: string): void {
    this.act('restart', [node]);
  }
  cutLink(from: string, to: string): void {
    this.act('cutLink', [from, to]);
  }
  restoreLink(from: string, to: string): void {
    this.act('restoreLink', [from, to]);
  }
  isolate(nodes: readonly string[]): void {
    this.act('isolate', [...nodes]);
  }
  heal(): void {
    this.act('heal', []);
  }
  setLoss(rate: number): void {
    this.act('setLoss', [rate]);
  }
  request(command: KvCommandView, to?: string): number {
    // Recorded as [op, key, value, node], '' for none.
    return this.act('request', [command.op, command.key, command.op === 'set' ? command.value : '', to ?? '']) as number;
  }
  addNode(): string {
    return this.act('addNode', []) as string;
  }
  removeNode(node: string): void {
    this.act('removeNode', [node]);
  }
  transferLeader(to: string): void {
    this.act('transferLeader', [to]);
  }
  snapshot(node: string): void {
    this.act('snapshot', [node]);
  }
  campaign(node: string): void {
    this.act('campaign', [node]);
  }

  /** Records a user's action at the current time and does it. */
  private act(action: string, args: readonly (string | number)[]): string | number | undefined {
    if (this.midInstant) {
      // After stepEvent, finish the instant first, so the action comes
      // after every event at its time: as a replay will apply it.
      const t = this.clockUs;
      while (!this.sim.violation && this.sim.nextEvent() !== undefined && this.sim.nextEvent()!.time <= t) this.processEvent();
      this.clockUs = t + 1;
      this.midInstant = false;
    }
    return this.dispatch(action, args);
  }

  /** Does a recorded action (the user's now, or one being replayed): validates, records, runs. */
  private dispatch(action: string, args: readonly (string | number)[]): string | number | undefined {
    const run = this.prepare(action, args);
    this.recorded.push({ at: ms(this.clockUs), action, args: [...args] });
    if (this.sim.now < this.clockUs) this.sim.now = this.clockUs;
    const result = run();
    if (this.storyDef) this.checkStory();
    return result;
  }

  /** Checks an action's arguments (throwing SandboxError) and returns what doing it means. */
  private prepare(action: string, args: readonly (string | number)[]): () => string | number | undefined {
    const str = (i: number) => {
      const a = args[i];
      if (typeof a !== 'string') throw new SandboxError(`${action}: argument ${i + 1} must be a string`);
      return a;
    };
    switch (action) {
      case 'crash': {
        const id = this.member(str(0));
        return () => this.doCrash(id);
      }
      case 'restart': {
        const id = this.member(str(0));
        return () => this.doRestart(id);
      }
      case 'cutLink':
      case 'restoreLink': {
        const from = this.member(str(0));
        const to = this.member(str(1));
        if (from === to) throw new SandboxError(`${action}: a link joins two different nodes`);
        return action === 'cutLink' ? () => this.doCut([[from, to]]) : () => this.doRestore(from, to);
      }
      case 'isolate': {
        const group = args.map((_, i) => this.member(str(i)));
        if (group.length === 0) throw new SandboxError('isolate: name at least one node');
        return () => this.doIsolate(group);
      }
      case 'heal':
        return () => this.doHeal();
      case 'setLoss': {
        const rate = args[0];
        if (typeof rate !== 'number') throw new SandboxError('setLoss: the rate must be a number');
        checkLoss(rate);
        return () => {
          this.sim.network.weather.lossRate = rate;
          this.say(`message loss set to ${Math.round(rate * 100)}%`);
          return undefined;
        };
      }
      case 'request': {
        const command = parseCommand(args);
        const to = args[3] ? this.member(str(3)) : undefined;
        return () => this.doRequest(command, to);
      }
      case 'addNode':
        if (this.members.length >= 7) throw new SandboxError('addNode: the sandbox has at most 7 nodes');
        return () => this.doAddNode();
      case 'removeNode': {
        const id = this.member(str(0));
        if (this.members.length <= 1) throw new SandboxError('removeNode: the last node cannot be removed');
        return () => this.doRemoveNode(id);
      }
      case 'transferLeader': {
        const id = this.member(str(0));
        return () => this.doTransfer(id);
      }
      case 'snapshot': {
        const id = this.member(str(0));
        return () => this.doSnapshot(id);
      }
      case 'campaign': {
        const id = this.member(str(0));
        return () => this.doCampaign(id);
      }
      default:
        throw new SandboxError(`unknown action "${action}"`);
    }
  }

  /** A member's id from "3" or "n3". */
  private member(name: string): NodeId {
    const m = /^n?(\d+)$/.exec(name.trim());
    const id = m ? Number(m[1]) : NaN;
    if (!this.members.includes(id)) throw new SandboxError(`no node "${name}" (nodes: ${this.members.map(nodeName).join(', ')})`);
    return id;
  }

  private doCrash(id: NodeId): undefined {
    const node = this.sim.nodes.get(id)!;
    if (!node.up) return undefined;
    if (this.roles.get(id) === 'leader') this.mark('stepDown', id, undefined, `n${id} stops leading (crashed)`);
    this.roles.set(id, 'down');
    this.sim.crash(id);
    this.mark('crash', id, undefined, `n${id} crashes: it keeps only its disk (term, vote, log)`);
    return undefined;
  }

  private doRestart(id: NodeId): undefined {
    const node = this.sim.nodes.get(id)!;
    if (node.up) return undefined;
    this.roles.set(id, 'follower');
    this.sim.restart(id);
    const r = node.raw?.raft;
    this.mark('restart', id, undefined, `n${id} restarts as a follower (term ${r?.term}, last index ${r?.raftLog.lastIndex()})`);
    return undefined;
  }

  private doCut(links: readonly (readonly [NodeId, NodeId])[]): undefined {
    for (const [a, b] of links) this.sim.network.cut(a, b);
    const desc = links.length === 1 ? `link ${nodeName(links[0]![0])} → ${nodeName(links[0]![1])} cut` : `${links.length} links cut`;
    this.mark('partition', links[0]?.[0], undefined, desc);
    return undefined;
  }

  private doIsolate(group: readonly NodeId[]): undefined {
    const rest = this.members.filter((id) => !group.includes(id));
    const links: [NodeId, NodeId][] = [];
    for (const a of group) {
      for (const b of rest) links.push([a, b], [b, a]);
    }
    for (const [a, b] of links) this.sim.network.cut(a, b);
    this.mark('partition', group[0], undefined, `partition {${group.map(nodeName).join(',')}} | {${rest.map(nodeName).join(',')}}`);
    return undefined;
  }

  private doRestore(from: NodeId, to: NodeId): undefined {
    this.sim.network.restore(from, to);
    this.mark('heal', from, undefined, `link ${nodeName(from)} → ${nodeName(to)} restored`);
    return undefined;
  }

  private doHeal(): undefined {
    this.sim.network.heal();
    this.mark('heal', undefined, undefined, 'every link restored');
    return undefined;
  }

  private doRequest(input: KvInput, to: NodeId | undefined): number {
    // One request at a time per client (its session numbers them, diss. §6.3): use an idle one, or a new one.
    const client = this.sim.clients.find((c) => c.idle) ?? this.sim.addClient();
    const sub = client.submit(this.sim.now, input, to);
    const id = this.reqs.length + 1;
    this.reqs.push({ id, command: input as KvCommandView, sub });
    this.say(`request #${id} (${clientName(client)}): ${describeInput(input)}${to !== undefined ? ` → ${nodeName(to)}` : ''}`);
    return id;
  }

  private doAddNode(): string {
    const node = this.sim.addNode();
    this.members.push(node.id);
    this.roles.set(node.id, 'follower');
    this.tasks.push({ kind: 'add', id: node.id, stage: 'learner', retryAt: 0 });
    this.say(`n${node.id} starts empty; it joins as a learner first, then is promoted to voter`);
    this.runMembership();
    return String(node.id);
  }

  private doRemoveNode(id: NodeId): undefined {
    this.tasks.push({ kind: 'remove', id, retryAt: 0 });
    this.runMembership();
    return undefined;
  }

  /** Replaces a voter by a new node in one joint change (§6): the guided story's C_old,new. */
  private replaceNode(old: NodeId): NodeId {
    const node = this.sim.addNode();
    this.members.push(node.id);
    this.roles.set(node.id, 'follower');
    this.tasks.push({ kind: 'replace', id: node.id, old, stage: 'learner', retryAt: 0 });
    this.runMembership();
    return node.id;
  }

  private doTransfer(to: NodeId): undefined {
    const leader = this.sim.currentLeader();
    if (leader === undefined) {
      this.say(`no leader to hand leadership to n${to}`);
      return undefined;
    }
    const refusal = this.sim.callNode(leader, (raw) => raw.transferLeader(to));
    this.say(refusal ? `transfer to n${to} refused: ${refusal}` : `n${leader} hands leadership to n${to} (diss. §3.10)`);
    return undefined;
  }

  private doSnapshot(id: NodeId): undefined {
    const node = this.sim.nodes.get(id)!;
    if (node.up && node.snapshot()) {
      this.sim.stats.snapshotsTaken++;
      this.mark('snapshot', id, node.appliedIndex, `n${id} takes a snapshot at ${node.appliedIndex} and compacts its log (§7)`);
    } else {
      this.say(`n${id}: nothing new to snapshot${node.up ? '' : ' (down)'}`);
    }
    return undefined;
  }

  private doCampaign(id: NodeId): undefined {
    const refusal = this.sim.callNode(id, (raw) => raw.campaign());
    this.say(refusal ? `n${id} cannot campaign: ${refusal}` : `n${id}'s election timer fires now`);
    return undefined;
  }

  // -------------------------------------------------------------------------
  // Membership changes, one stage at a time through the leader

  private runMembership(): void {
    const leaderId = this.sim.currentLeader();
    if (leaderId === undefined) return;
    const leader = this.sim.nodes.get(leaderId)!;
    const r = leader.raw!.raft;
    const cfg = r.prs.config;
    const voters = cfg.voters.ids();
    const now = this.sim.now;
    for (let i = 0; i < this.tasks.length; i++) {
      const t = this.tasks[i]!;
      let cc: ConfChange | undefined;
      let done = false;
      if (t.kind === 'remove') {
        if (!voters.includes(t.id) && !cfg.learners.has(t.id)) done = true;
        else cc = { transition: 'auto', changes: [{ type: 'removeNode', nodeId: t.id }] };
      } else {
        if (t.stage === 'learner') {
          if (cfg.learners.has(t.id) || voters.includes(t.id)) t.stage = 'catchUp';
          else cc = { transition: 'auto', changes: [{ type: 'addLearner', nodeId: t.id }] };
        }
        if (t.stage === 'catchUp') {
          // Promote once the learner holds what is committed (diss. §4.2.1: a new node catches up before it votes).
          const pr = r.prs.progress.get(t.id);
          if (pr && pr.matchIndex >= r.raftLog.committed) {
            t.stage = t.kind === 'add' ? 'voter' : 'joint';
            t.retryAt = 0;
          }
        }
        if (t.stage === 'voter') {
          if (voters.includes(t.id)) done = true;
          else cc = { transition: 'auto', changes: [{ type: 'addNode', nodeId: t.id }] };
        } else if (t.stage === 'joint') {
          if (!cfg.voters.isJoint && voters.includes(t.id) && !voters.includes(t.old)) done = true;
          else if (!cfg.voters.isJoint) {
            cc = {
              transition: 'implicit',
              changes: [
                { type: 'addNode', nodeId: t.id },
                { type: 'removeNode', nodeId: t.old },
              ],
            };
          }
        }
      }
      if (done) {
        this.tasks.splice(i--, 1);
        const gone = t.kind === 'remove' ? t.id : t.kind === 'replace' ? t.old : undefined;
        if (gone !== undefined) this.retire(gone);
        continue;
      }
      if (cc && now >= t.retryAt) {
        t.retryAt = now + MEMBERSHIP_RETRY_US;
        const cause = cc;
        const refusal = this.sim.callNode(leaderId, (raw: RawNode) => raw.proposeConfChange(cause));
        if (!refusal) this.say(`n${leaderId} proposes ${describeChange(cc)}`);
        // The proposal may have changed the leader's state; look again on the next event.
        return;
      }
    }
  }

  /** A node removed from the configuration shuts down (as an etcd member does) and leaves the drawing. */
  private retire(id: NodeId): void {
    if (this.roles.get(id) === 'leader') this.mark('stepDown', id, undefined, `n${id} stops leading (removed)`);
    this.sim.retire(id);
    this.roles.delete(id);
    const i = this.members.indexOf(id);
    if (i >= 0) this.members.splice(i, 1);
    this.say(`n${id} is no longer a member and shuts down`);
  }

  // -------------------------------------------------------------------------
  // Guided stories (src/sim/stories.ts)

  private checkStory(): void {
    const s = this.storyDef;
    while (s && this.storyStep < s.steps.length && !this.sim.violation) {
      const step = s.steps[this.storyStep]!;
      if (!step.when(this)) return;
      step.act?.(this);
      const caption = step.caption(this);
      this.storyStep++;
      this.stepFiredUs = this.sim.now;
      this.deliveredSinceStep = [];
      this.captions.push(caption);
      this.say(`story ${this.storyStep}/${s.steps.length}: ${caption}`);
    }
  }

  // StoryContext: what a story's steps look at and do (story actions are part of the story, not recorded).

  get elapsed(): number {
    return ms(this.sim.now - this.stepFiredUs);
  }

  node(id: NodeId): SimNode {
    return this.sim.nodes.get(id)!;
  }

  leader(): NodeId | undefined {
    return this.sim.currentLeader();
  }

  seen(match: (m: Message) => boolean): Message | undefined {
    return this.deliveredSinceStep.find(match);
  }

  storyCrash(id: NodeId): void {
    this.doCrash(id);
  }
  storyRestart(id: NodeId): void {
    this.doRestart(id);
  }
  storyIsolate(ids: readonly NodeId[]): void {
    this.doIsolate(ids);
  }
  storyHeal(): void {
    this.doHeal();
  }
  storyRequest(input: KvInput, to?: NodeId): number {
    return this.doRequest(input, to);
  }
  storySnapshot(id: NodeId): void {
    this.doSnapshot(id);
  }
  storyCampaign(id: NodeId): void {
    this.doCampaign(id);
  }
  storyAddLearnerAndReplace(old: NodeId): NodeId {
    return this.replaceNode(old);
  }

  requestStatus(id: number): ClientRequestView | undefined {
    const r = this.reqs[id - 1];
    return r ? requestView(r) : undefined;
  }

  membersNow(): readonly NodeId[] {
    return this.members;
  }
}

export function createSandbox(options: SandboxOptions): SandboxControls {
  return new Sandbox(options);
}

// ---------------------------------------------------------------------------
// Describing things for the page

function checkLoss(rate: number): void {
  if (!(rate >= 0 && rate < 1)) throw new SandboxError(`the loss rate must be in [0, 1), got ${rate}`);
}

function formatMs(us: number): string {
  return String(Math.round(us / 100) / 10);
}

function clientName(c: SimClient): string {
  return `client ${c.id - CLIENT_ID_BASE + 1}`;
}

function parseCommand(args: readonly (string | number)[]): KvInput {
  const [op, key, value] = args;
  if (typeof key !== 'string' || key === '' || key.length > 32) throw new SandboxError('request: the key must be a non-empty string (at most 32 characters)');
  switch (op) {
    case 'set':
      if (typeof value !== 'string' || value.length > 32) throw new SandboxError('request: set needs a string value (at most 32 characters)');
      return { op, key, value };
    case 'get':
    case 'del':
    case 'inc':
      return { op, key };
    default:
      throw new SandboxError(`request: unknown operation "${String(op)}" (set, get, del, inc)`);
  }
}

function describeOutput(o: KvOutput): string {
  if (!o.ok) return `error: ${o.error}`;
  if ('deleted' in o) return o.deleted ? 'deleted' : 'not found';
  if ('swapped' in o) return o.swapped ? 'swapped' : 'not swapped';
  return o.value === undefined ? 'ok' : o.value;
}

function requestView(r: RequestRecord): ClientRequestView {
  const { sub } = r;
  const op = sub.op;
  const base = {
    id: r.id,
    command: r.command,
    sentTo: String(sub.sentTo ?? sub.to ?? ''),
    sentAt: ms(sub.at),
    attempts: op?.attempt ?? 0,
  };
  if (op?.output) return { ...base, status: 'ok', result: describeOutput(op.output), answeredAt: ms(op.ret!) };
  if (sub.failed !== undefined) return { ...base, status: 'failed', result: sub.failed, answeredAt: ms(sub.failedAt!) };
  return { ...base, status: 'pending' };
}

function isVoter(cs: ConfState, id: NodeId): boolean {
  return cs.voters.includes(id) || cs.votersOutgoing.includes(id);
}

function describeConfState(cs: ConfState): string {
  const list = (ids: readonly NodeId[]) => `(${ids.map(nodeName).join(' ')})`;
  let s = cs.votersOutgoing.length > 0 ? `joint ${list(cs.votersOutgoing)}&&${list(cs.voters)}` : `voters ${list(cs.voters)}`;
  if (cs.learners.length > 0) s += `, learners ${list(cs.learners)}`;
  return s;
}

function describeChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave joint';
  const parts = cc.changes.map((c) => `${c.type === 'addNode' ? 'add' : c.type === 'addLearner' ? 'learner' : 'remove'} ${c.nodeId}`);
  return cc.changes.length > 1 || cc.transition !== 'auto' ? `${parts.join(', ')} (joint)` : parts[0]!;
}

/** An entry as drawn: the sim's kv commands and conf changes decoded. */
export function describeEntry(e: Entry): EntryView {
  if (e.type === 'confChange') return { index: e.index, term: e.term, kind: 'conf', label: describeChange(decodeConfChange(e.data)) };
  if (e.data.byteLength === 0) return { index: e.index, term: e.term, kind: 'empty', label: 'no-op' };
  const entry = decodeEntry(e.data);
  const who = `client ${entry.client - CLIENT_ID_BASE + 1}`;
  const label =
    entry.cmd.kind === 'register'
      ? `register ${who}`
      : `${describeInput(entry.cmd.input)}${entry.attempt > 1 ? ` (retry ${entry.attempt})` : ''}`;
  return { index: e.index, term: e.term, kind: 'normal', label };
}

/** A message's shape in the animation and its tooltip. */
export function describeMessageForView(m: Message): { kind: MessageKind; label: string } {
  switch (m.type) {
    case 'MsgVote':
    case 'MsgPreVote':
      return { kind: 'vote', label: `${m.type === 'MsgPreVote' ? 'pre-vote' : 'vote'} for n${m.from}, term ${m.term}, last ${m.index}@${m.logTerm}` };
    case 'MsgVoteResp':
    case 'MsgPreVoteResp':
      return { kind: 'voteResponse', label: `${m.type === 'MsgPreVoteResp' ? 'pre-vote' : 'vote'} ${m.reject ? 'refused' : 'granted'} (term ${m.term})` };
    case 'MsgApp': {
      const n = m.entries.length;
      if (n === 0) return { kind: 'heartbeat', label: `append (empty) after ${m.index}@${m.logTerm}, commit ${m.commit}` };
      const range = n === 1 ? `${m.entries[0]!.index}` : `${m.entries[0]!.index}..${m.entries[n - 1]!.index}`;
      return { kind: 'append', label: `append ${range} after ${m.index}@${m.logTerm}, commit ${m.commit}` };
    }
    case 'MsgHeartbeat':
      return { kind: 'heartbeat', label: `heartbeat, commit ${m.commit}` };
    case 'MsgAppResp':
      return { kind: 'appendResponse', label: m.reject ? `reject ${m.index} (hint ${m.rejectHint})` : `ok index ${m.index}` };
    case 'MsgHeartbeatResp':
      return { kind: 'appendResponse', label: 'heartbeat ok' };
    case 'MsgSnap':
      return { kind: 'snapshot', label: `snapshot at ${m.snapshot?.metadata.index}@${m.snapshot?.metadata.term}` };
    case 'MsgTimeoutNow':
      return { kind: 'timeoutNow', label: 'timeout now: campaign' };
    case 'MsgProp':
      return { kind: 'other', label: `forward ${m.entries.length} proposal${m.entries.length === 1 ? '' : 's'}` };
    case 'MsgPropResp':
      return { kind: 'other', label: 'proposal refused' };
    case 'MsgReadIndex':
      return { kind: 'other', label: 'read index?' };
    case 'MsgReadIndexResp':
      return { kind: 'other', label: `read index ${m.index}` };
    case 'MsgTransferLeader':
      return { kind: 'other', label: `transfer to n${m.transferee}` };
    default:
      return { kind: 'other', label: m.type };
  }
}

/** One line for stepEvent: what the event was and what it led to. */
function describeStep(kind: string, node: NodeId | undefined, records: readonly TraceRecord[], timer: string): string {
  const deliver = records.find((r) => r.kind === 'deliver');
  const msg = (m: Message) => `${nodeName(m.from)} → ${nodeName(m.to)} ${m.type} ${describeMessageForView(m).label}`;
  let head: string;
  if (deliver) head = msg(deliver.msg!);
  else if (kind === 'deliver') head = `message to ${nodeName(node!)} lost (link cut or node down)`;
  else if (kind === 'tick') head = `${nodeName(node!)} tick${timer ? ` (election timer ${timer})` : ' (down)'}`;
  else if (kind === 'clientRequest') head = `a client request reaches ${nodeName(node!)}`;
  else if (kind === 'clientReply') head = 'a client gets its answer';
  else if (kind === 'clientWake') head = 'a client timer fires';
  else head = `${kind}${node !== undefined ? ` ${nodeName(node)}` : ''}`;
  const more: string[] = [];
  for (const r of records) {
    if (r.kind === 'role') more.push(`${nodeName(r.node)} becomes ${r.text?.split(' ')[0]}`);
    else if (r.kind === 'client') more.push(`${nodeName(r.node)} gets ${r.text}`);
  }
  const sent = records.filter((r) => r.kind === 'send' || r.kind === 'drop');
  if (sent.length > 0) {
    const types = new Map<string, number>();
    for (const r of sent) types.set(r.msg!.type, (types.get(r.msg!.type) ?? 0) + 1);
    more.push(`sends ${[...types].map(([t, n]) => (n > 1 ? `${t} ×${n}` : t)).join(', ')}`);
  }
  return more.length > 0 ? `${head}; ${more.join('; ')}` : head;
}
