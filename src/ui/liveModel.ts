// Live mode's model: merges the event streams of every member (GET
// /ui/events, one FeedMessage per message) into one ClusterView and one
// timeline. Each member speaks only for itself, so the merge is by member:
// its latest status, its own events. A member whose stream goes quiet is
// drawn down. Streams replay their history on every (re)connect, so events
// are de-duplicated.

import type { ClusterView, FeedMessage, MemberView, PeerView, RateView, TimelineEvent } from './view.js';

export interface LiveModelOptions {
  /** A member with no status for this long is drawn down (statuses come every 250 ms). */
  readonly staleAfterMs?: number;
  /** Events older than this (before the newest) are forgotten; at least an hour. */
  readonly retentionMs?: number;
  /** A bound on the events kept, whatever their age. */
  readonly maxEvents?: number;
}

interface MemberState {
  name: string;
  startedAt: number | undefined;
  status: MemberView | undefined;
  rates: readonly RateView[];
  /** Page clock when the last message from this member arrived. */
  heardAt: number | undefined;
  /** Whether a crash event was already recorded for the current silence. */
  reportedDown: boolean;
}

const DEFAULTS = { staleAfterMs: 2000, retentionMs: 2 * 3_600_000, maxEvents: 50_000 };

export class LiveModel {
  private readonly staleAfterMs: number;
  private readonly retentionMs: number;
  private readonly maxEvents: number;
  private readonly members = new Map<string, MemberState>();
  /** Members in the order the cluster was learnt, so nodes keep their places. */
  private readonly order: string[] = [];
  private readonly peerList = new Map<string, PeerView>();
  private readonly events: TimelineEvent[] = [];
  private readonly eventKeys = new Set<string>();
  /** member|term of every known leader event, to add one seen only in a status. */
  private readonly leaders = new Set<string>();
  private version = 0;

  constructor(options: LiveModelOptions = {}) {
    this.staleAfterMs = options.staleAfterMs ?? DEFAULTS.staleAfterMs;
    this.retentionMs = Math.max(3_600_000, options.retentionMs ?? DEFAULTS.retentionMs);
    this.maxEvents = options.maxEvents ?? DEFAULTS.maxEvents;
  }

  /** Takes one message from a member's stream, received at page time `receivedAt`. */
  receive(message: FeedMessage, receivedAt: number): void {
    switch (message.type) {
      case 'hello': {
        const m = this.member(message.member, message.name);
        if (m.startedAt !== undefined && m.startedAt !== message.startedAt) {
          this.addEvent({ time: message.startedAt, kind: 'restart', member: message.member, term: m.status?.term ?? 0, detail: 'process restarted' });
        }
        m.startedAt = message.startedAt;
        m.heardAt = receivedAt;
        m.reportedDown = false;
        for (const peer of message.peers) {
          this.peerList.set(peer.id, peer);
          this.member(peer.id, peer.name);
        }
        for (const event of message.history) this.addEvent(event);
        break;
      }
      case 'status': {
        const status = message.member;
        const m = this.member(status.id, status.name);
        m.status = status;
        m.rates = message.rates;
        m.heardAt = receivedAt;
        m.reportedDown = false;
        if (status.role === 'leader' && !this.leaders.has(`${status.id}|${status.term}`)) {
          // The event was missed (the stream connected later): the status proves it.
          this.addEvent({ time: message.now, kind: 'leader', member: status.id, term: status.term, detail: 'seen leading' });
        }
        break;
      }
      case 'event':
        this.addEvent(message.event);
        break;
    }
    this.version++;
  }

  /**
   * Marks members whose streams went quiet as down, recording a crash event
   * once per silence; call it periodically with the page clock.
   */
  sweep(now: number): void {
    for (const [id, m] of this.members) {
      if (m.heardAt === undefined || m.reportedDown) continue;
      if (now - m.heardAt > this.staleAfterMs) {
        m.reportedDown = true;
        this.addEvent({ time: m.heardAt, kind: 'crash', member: id, term: m.status?.term ?? 0, detail: 'stopped answering' });
        this.version++;
      }
    }
  }

  /** Grows whenever something changes, so the page redraws only then. */
  get changes(): number {
    return this.version;
  }

  /** Every member the streams told of, to open a stream to each. */
  peers(): readonly PeerView[] {
    return [...this.peerList.values()];
  }

  /** The merged cluster at page time `now`. */
  view(now: number): ClusterView {
    const members: MemberView[] = [];
    const rates = new Map<string, RateView & { fromSender: boolean }>();
    for (const id of this.order) {
      const m = this.members.get(id)!;
      const alive = m.status !== undefined && m.heardAt !== undefined && now - m.heardAt <= this.staleAfterMs;
      members.push(alive ? m.status! : downView(id, m));
      if (!alive) continue;
      for (const r of m.rates) {
        // Both ends may count a link; the sender's count is the one kept.
        const key = `${r.from}>${r.to}`;
        const fromSender = r.from === id;
        if (!rates.has(key) || (fromSender && !rates.get(key)!.fromSender)) rates.set(key, { ...r, fromSender });
      }
    }
    return {
      now,
      members,
      messages: [],
      cutLinks: [],
      rates: [...rates.values()].map(({ from, to, perSecond }) => ({ from, to, perSecond })),
    };
  }

  /** The merged timeline, oldest first, without duplicates. */
  timeline(): readonly TimelineEvent[] {
    return this.events;
  }

  private member(id: string, name: string): MemberState {
    let m = this.members.get(id);
    if (!m) {
      m = { name, startedAt: undefined, status: undefined, rates: [], heardAt: undefined, reportedDown: false };
      this.members.set(id, m);
      this.order.push(id);
    } else if (name) {
      m.name = name;
    }
    return m;
  }

  private addEvent(event: TimelineEvent): void {
    const key = eventKey(event);
    if (this.eventKeys.has(key)) return;
    this.eventKeys.add(key);
    if (event.kind === 'leader') this.leaders.add(`${event.member}|${event.term}`);
    const last = this.events[this.events.length - 1];
    if (!last || last.time <= event.time) this.events.push(event);
    else {
      // History replayed on a reconnect lands in the past: insert in order.
      let i = this.events.length;
      while (i > 0 && this.events[i - 1]!.time > event.time) i--;
      this.events.splice(i, 0, event);
    }
    this.prune();
  }

  private prune(): void {
    const newest = this.events[this.events.length - 1]!.time;
    let drop = 0;
    while (drop < this.events.length && (this.events.length - drop > this.maxEvents || this.events[drop]!.time < newest - this.retentionMs)) drop++;
    if (drop === 0) return;
    for (const e of this.events.splice(0, drop)) this.eventKeys.delete(eventKey(e));
  }
}

/**
 * Identifies an event across replays. A crash or restart is keyed to the
 * second: the page infers them from a stream's silence or a new process
 * start, and the member's own history may report the same one.
 */
function eventKey(e: TimelineEvent): string {
  if (e.kind === 'crash' || e.kind === 'restart') return `${e.kind}|${e.member}|${Math.floor(e.time / 1000)}`;
  return `${e.kind}|${e.member}|${e.term}|${e.index ?? ''}|${e.time}`;
}

/** A member not heard from: its last known state, drawn down. */
function downView(id: string, m: MemberState): MemberView {
  if (m.status) return { ...m.status, role: 'down', progress: undefined };
  return {
    id,
    name: m.name || id,
    role: 'down',
    term: 0,
    vote: undefined,
    leader: undefined,
    commitIndex: 0,
    appliedIndex: 0,
    lastIndex: 0,
    lastTerm: 0,
    snapshotIndex: 0,
    electionElapsed: 0,
    electionTimeout: 0,
    log: [],
    voter: true,
  };
}
