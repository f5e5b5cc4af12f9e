// The member side of the visualiser's live mode: GET /ui/events, a stream of
// Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html)
// carrying FeedMessage JSON (src/ui/view.ts), one object per `data:` line.
//
// A stream opens with `hello` (who this member is, the cluster's members and
// their client URLs, and the timeline this member remembers), then sends
// `status` every 250 ms (the member's state and its message rates to each
// peer) and `event` as things happen here (elections, leader changes,
// step-downs, snapshots, membership changes, this process's start). Each
// member speaks only for itself; the page opens one stream per member and
// merges them, so the stream allows any origin (it is read-only).
//
// A slow client does not make the member buffer without bound: statuses are
// skipped while its socket is backed up (the next one supersedes them), and
// a client that falls megabytes behind on events is disconnected (its
// EventSource reconnects and gets the history again in `hello`).

import type * as http from 'node:http';

import type { EntryView, FeedMessage, MemberView, PeerView, ProgressView, RateView, RoleView, TimelineEvent } from '../ui/view.js';
import type { NodeStatus, RaftNode } from '../node/node.js';
import { decodeConfChange } from '../raft/confchange.js';
import { decodeEnvelope } from '../node/envelope.js';
import type { ConfChange, Entry, NodeId } from '../raft/types.js';
import type { Logger } from './log.js';

/** How often a stream gets the member's status. */
export const STATUS_INTERVAL_MS = 250;
/** Entries of the log tail in a status. */
export const LOG_TAIL_ENTRIES = 30;
/** Rates are averaged over this window (a 250 ms window of 100 ms heartbeats flickers between 8/s and 12/s). */
export const RATE_WINDOW_MS = 1000;
/** A comment line this often, so proxies and idle-connection reapers see traffic even if statuses stop. */
const KEEP_ALIVE_MS = 15_000;
/** A client this far behind (bytes buffered for it) is cut off rather than buffered for. */
export const MAX_CLIENT_BACKLOG_BYTES = 4 * 1024 * 1024;

/** The member id as etcd prints it: lower-case hex, no padding. */
export const memberHex = (id: NodeId): string => id.toString(16);

// ---------------------------------------------------------------------------
// The remembered timeline

export interface TimelineHistoryOptions {
  /** Events older than this are forgotten (default: one hour). */
  readonly retainMs?: number;
  /** At most this many events are kept, the oldest going first (default 20,000). */
  readonly maxEvents?: number;
}

/** A ring of the latest timeline events, bounded by age and by count. Events are added in time order. */
export class TimelineHistory {
  readonly retainMs: number;
  readonly maxEvents: number;
  private readonly ring: (TimelineEvent | undefined)[];
  private head = 0;
  private count = 0;

  constructor(options: TimelineHistoryOptions = {}) {
    this.retainMs = options.retainMs ?? 60 * 60 * 1000;
    this.maxEvents = options.maxEvents ?? 20_000;
    if (!(this.retainMs > 0) || !Number.isSafeInteger(this.maxEvents) || this.maxEvents < 1) {
      throw new RangeError(`timeline history needs retainMs > 0 and maxEvents >= 1, got ${this.retainMs} and ${this.maxEvents}`);
    }
    this.ring = new Array<TimelineEvent | undefined>(this.maxEvents);
  }

  get size(): number {
    return this.count;
  }

  add(event: TimelineEvent): void {
    if (this.count === this.maxEvents) {
      this.ring[this.head] = event;
      this.head = (this.head + 1) % this.maxEvents;
    } else {
      this.ring[(this.head + this.count) % this.maxEvents] = event;
      this.count++;
    }
  }

  /** The events of the last retainMs before `now`, oldest first. */
  list(now: number): TimelineEvent[] {
    this.forgetBefore(now - this.retainMs);
    const out: TimelineEvent[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.ring[(this.head + i) % this.maxEvents]!);
    return out;
  }

  private forgetBefore(time: number): void {
    while (this.count > 0 && this.ring[this.head]!.time < time) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.maxEvents;
      this.count--;
    }
  }
}

// ---------------------------------------------------------------------------
// Building the member's view

/** What a MemberView is built from: the node's status and its read-only introspection. */
export interface MemberViewInput {
  readonly name: string;
  readonly status: NodeStatus;
  readonly electionTimer: { readonly elapsed: number; readonly timeout: number };
  readonly logTail: readonly Entry[];
  /** Labels a state machine command (the payload inside the node's proposal envelope). */
  readonly describeCommand: (command: Uint8Array) => string | undefined;
}

export function buildMemberView(input: MemberViewInput): MemberView {
  const st = input.status;
  const self = st.id;
  const learner = st.confState.learners.includes(self);
  const role: RoleView = st.state !== 'running' ? 'down' : learner ? 'learner' : st.role;
  let progress: ProgressView[] | undefined;
  if (st.progress) {
    progress = [];
    for (const [id, pr] of st.progress) {
      if (id === self) continue;
      progress.push({ id: memberHex(id), matchIndex: pr.matchIndex, nextIndex: pr.nextIndex, state: pr.state, recentActive: pr.recentActive });
    }
  }
  return {
    id: memberHex(self),
    name: input.name,
    role,
    term: st.term,
    vote: st.vote === 0 ? undefined : memberHex(st.vote),
    leader: st.leader === 0 ? undefined : memberHex(st.leader),
    commitIndex: st.commit,
    appliedIndex: st.applied,
    lastIndex: st.lastIndex,
    lastTerm: st.lastTerm,
    snapshotIndex: st.snapshotIndex,
    electionElapsed: input.electionTimer.elapsed,
    electionTimeout: input.electionTimer.timeout,
    log: input.logTail.map((e) => entryView(e, input.describeCommand)),
    ...(progress ? { progress } : {}),
    voter: !learner,
  };
}

/** One log entry as drawn: a new leader's empty entry, a membership change, or a labelled command. */
export function entryView(e: Entry, describeCommand: (command: Uint8Array) => string | undefined): EntryView {
  if (e.type === 'confChange') {
    let label: string | undefined;
    try {
      label = confChangeLabel(decodeConfChange(e.data));
    } catch {
      label = undefined;
    }
    return label === undefined ? { index: e.index, term: e.term, kind: 'conf' } : { index: e.index, term: e.term, kind: 'conf', label };
  }
  if (e.data.byteLength === 0) return { index: e.index, term: e.term, kind: 'empty' };
  let label: string | undefined;
  try {
    label = describeCommand(decodeEnvelope(e.data).payload);
  } catch {
    label = undefined;
  }
  return label === undefined ? { index: e.index, term: e.term, kind: 'normal' } : { index: e.index, term: e.term, kind: 'normal', label };
}

/** "add 8e9e05c52164694d", "add learner …", "remove …"; no changes: leaving a joint configuration. */
export function confChangeLabel(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave joint';
  return cc.changes
    .map((c) => `${c.type === 'addNode' ? 'add' : c.type === 'addLearner' ? 'add learner' : 'remove'} ${memberHex(c.nodeId)}`)
    .join(', ');
}

// ---------------------------------------------------------------------------
// Message rates

/**
 * Messages per second on each link from this member, from the transport's
 * cumulative per-peer counters sampled at each status. A counter that went
 * down (the peer's stream was recreated) restarts that peer's window.
 */
export class RateMeter {
  private samples: { time: number; counts: ReadonlyMap<string, number> }[] = [];

  constructor(
    private readonly from: string,
    private readonly windowMs = RATE_WINDOW_MS,
  ) {}

  /** Records the counters at `now`; returns the rate to each peer over the last window (0 until two samples exist). */
  sample(now: number, counts: ReadonlyMap<string, number>): RateView[] {
    this.samples.push({ time: now, counts });
    // Keep the newest sample at or before the window's start as the base.
    while (this.samples.length > 2 && this.samples[1]!.time <= now - this.windowMs) this.samples.shift();
    const base = this.samples[0]!;
    const seconds = (now - base.time) / 1000;
    const rates: RateView[] = [];
    for (const [to, count] of counts) {
      const before = base.counts.get(to);
      const delta = before === undefined || count < before ? 0 : count - before;
      rates.push({ from: this.from, to, perSecond: seconds > 0 ? Math.round((delta / seconds) * 10) / 10 : 0 });
    }
    return rates;
  }

  reset(): void {
    this.samples = [];
  }
}

// ---------------------------------------------------------------------------
// The stream

/** One FeedMessage as a Server-Sent Event: a single `data:` line (JSON has no raw line breaks) and a blank line. */
export function sseFrame(message: FeedMessage): string {
  return `data: ${JSON.stringify(message)}\n\n`;
}

export interface UiFeedOptions {
  readonly memberId: NodeId;
  readonly name: string;
  /** When this process started (ms since the epoch). */
  readonly startedAt: number;
  readonly log: Logger;
  /** The member's current view (called once per status interval while a client listens). */
  readonly view: () => MemberView;
  /** Messages sent so far to each peer (member id in hex), cumulative. */
  readonly sentCounts: () => ReadonlyMap<string, number>;
  /** The cluster's members and where they serve /ui/events. */
  readonly peers: () => readonly PeerView[];
  readonly history?: TimelineHistory;
  readonly now?: () => number;
  readonly intervalMs?: number;
  /** Default MAX_CLIENT_BACKLOG_BYTES. */
  readonly maxClientBacklogBytes?: number;
}

interface Client {
  readonly res: http.ServerResponse;
  readonly remote: string;
  droppedStatuses: number;
}

export class UiFeed {
  readonly history: TimelineHistory;
  private readonly clients = new Set<Client>();
  private readonly rates: RateMeter;
  private readonly now: () => number;
  private readonly self: string;
  private ticker: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: UiFeedOptions) {
    this.history = options.history ?? new TimelineHistory();
    this.now = options.now ?? Date.now;
    this.self = memberHex(options.memberId);
    this.rates = new RateMeter(this.self);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Remembers something that happened on this member and sends it to every client. */
  record(event: Omit<TimelineEvent, 'time'>): void {
    const full: TimelineEvent = { time: this.now(), ...event };
    this.history.add(full);
    const frame = sseFrame({ type: 'event', event: full });
    for (const c of this.clients) this.write(c, frame, true);
  }

  /** GET /ui/events. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('405 method not allowed: /ui/events takes GET\n');
      return;
    }
    if (this.closed) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('the member is stopping\n');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Read-only: a page served by one member reads every member's stream.
      'access-control-allow-origin': '*',
      // Tell buffering reverse proxies (nginx) to pass events through at once.
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    req.socket.setTimeout(0);
    const client: Client = { res, remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`, droppedStatuses: 0 };
    const now = this.now();
    const hello: FeedMessage = {
      type: 'hello',
      member: this.self,
      name: this.options.name,
      startedAt: this.options.startedAt,
      peers: this.options.peers(),
      history: this.history.list(now),
    };
    // `retry`: how long the browser waits before reconnecting a dropped stream.
    res.write(`retry: 1000\n\n${sseFrame(hello)}`);
    res.write(sseFrame(this.status(now, false)));
    this.clients.add(client);
    this.options.log.debug({ client: client.remote, clients: this.clients.size }, 'visualiser client connected');
    res.once('close', () => {
      this.clients.delete(client);
      this.options.log.debug({ client: client.remote, clients: this.clients.size, droppedStatuses: client.droppedStatuses }, 'visualiser client disconnected');
      if (this.clients.size === 0) this.stopTimers();
    });
    this.startTimers();
  }

  /** Ends every stream and stops the timers. */
  close(): void {
    this.closed = true;
    this.stopTimers();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  private status(now: number, sampleRates: boolean): FeedMessage {
    const counts = this.options.sentCounts();
    const rates = sampleRates ? this.rates.sample(now, counts) : [...counts.keys()].map((to) => ({ from: this.self, to, perSecond: 0 }));
    return { type: 'status', now, member: this.options.view(), rates };
  }

  private startTimers(): void {
    if (this.ticker !== undefined) return;
    this.rates.reset();
    this.rates.sample(this.now(), this.options.sentCounts());
    this.ticker = setInterval(() => {
      let frame: string;
      try {
        frame = sseFrame(this.status(this.now(), true));
      } catch (err) {
        // The visualiser must never take the member down.
        this.options.log.warn({ err }, 'could not build the visualiser status');
        return;
      }
      for (const c of this.clients) this.write(c, frame, false);
    }, this.options.intervalMs ?? STATUS_INTERVAL_MS);
    this.keepAlive = setInterval(() => {
      for (const c of this.clients) this.write(c, ': keep-alive\n\n', false);
    }, KEEP_ALIVE_MS);
    // The member's lifetime is not tied to its visualiser clients.
    this.ticker.unref();
    this.keepAlive.unref();
  }

  private stopTimers(): void {
    clearInterval(this.ticker);
    clearInterval(this.keepAlive);
    this.ticker = undefined;
    this.keepAlive = undefined;
  }

  /**
   * Statuses (and keep-alives) are skipped while the client's socket is
   * backed up; events are kept unless the client is hopelessly behind, in
   * which case it is disconnected.
   */
  private write(c: Client, frame: string, mustDeliver: boolean): void {
    const res = c.res;
    if (res.destroyed || res.writableEnded) return;
    if (!mustDeliver && res.writableNeedDrain) {
      c.droppedStatuses++;
      return;
    }
    if (res.writableLength > (this.options.maxClientBacklogBytes ?? MAX_CLIENT_BACKLOG_BYTES)) {
      this.options.log.debug({ client: c.remote, backlog: res.writableLength }, 'visualiser client too slow: disconnecting it');
      res.destroy();
      return;
    }
    res.write(frame);
  }
}

// ---------------------------------------------------------------------------
// The node's events, as timeline events

/** Turns the node's events into timeline events of this member; records this process's start. */
export function recordNodeEvents(node: RaftNode<unknown>, feed: UiFeed, name: string): void {
  const self = node.id;
  const term = (): number => node.term;
  feed.record({ kind: 'restart', member: memberHex(self), term: term(), detail: 'started' });
  node.on('election', ({ term: t, kind }) => {
    // A pre-vote does not start a term (§9.6 of the dissertation); only a real candidacy is an election.
    if (kind === 'vote') feed.record({ kind: 'election', member: memberHex(self), term: t, detail: `${name} campaigns for term ${t}` });
  });
  node.on('leaderChange', ({ leader, term: t }) => {
    if (leader !== 0) {
      feed.record({ kind: 'leader', member: memberHex(leader), term: t, detail: leader === self ? `${name} won term ${t}` : `leader of term ${t}, as ${name} sees it` });
    }
  });
  node.on('roleChange', ({ role, previous, term: t }) => {
    if (previous === 'leader' && role !== 'leader') feed.record({ kind: 'stepDown', member: memberHex(self), term: t, detail: `${name} stepped down in term ${t}` });
  });
  node.on('snapshotTaken', ({ index, compactedTo }) => {
    feed.record({
      kind: 'snapshot',
      member: memberHex(self),
      term: term(),
      index,
      detail: compactedTo > 0 ? `${name} took a snapshot at ${index}, log compacted to ${compactedTo}` : `${name} took a snapshot at ${index}`,
    });
  });
  node.on('snapshotInstalled', ({ index }) => {
    feed.record({ kind: 'snapshot', member: memberHex(self), term: term(), index, detail: `${name} installed the leader's snapshot at ${index}` });
  });
  node.on('fatal', (e) => feed.record({ kind: 'crash', member: memberHex(self), term: term(), detail: `${name} stopped: ${e.message}` }));
  node.on('confChangeApplied', ({ index, change }) => {
    feed.record({ kind: 'confChange', member: memberHex(self), term: term(), index, detail: confChangeLabel(change) });
  });
}
