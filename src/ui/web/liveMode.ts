// Live mode: the real cluster. Opens the serving member's event stream
// (GET /ui/events), learns the other members from its hello, opens theirs
// (CORS-open), and merges everything into one view with LiveModel.

import { LiveModel } from '../liveModel.js';
import { currentLeader } from '../summary.js';
import type { FeedMessage, TimelineEvent } from '../view.js';
import { ClusterSvg, legend } from './clusterSvg.js';
import { el, setText } from './dom.js';
import { EventLog } from './eventLog.js';
import { KvPanel } from './kvPanel.js';
import { LogsPanel } from './logsPanel.js';
import type { Status } from './sandboxMode.js';
import { MembersTable, ProgressTable } from './tables.js';
import { TimelineStrip } from './timelineStrip.js';

/** Redraw at most this often: statuses come every 250 ms. */
const REDRAW_MS = 100;

interface Stream {
  readonly url: string;
  source: EventSource;
  member: string | undefined;
  open: boolean;
}

export class LiveMode {
  readonly element: HTMLElement;
  private readonly model = new LiveModel();
  private readonly streams: Stream[] = [];
  private readonly cluster = new ClusterSvg({}, '');
  private readonly logs = new LogsPanel();
  private readonly members = new MembersTable();
  private readonly progress = new ProgressTable();
  private readonly events = new EventLog();
  private readonly timeline: TimelineStrip;
  private readonly connections: HTMLElement;
  private readonly startedAt = Date.now();
  private names = new Map<string, { name: string; index: number }>();
  private drawnAt = 0;
  private drawnChanges = -1;
  private lastStatus: Status = { leader: 'connecting…', time: '', violation: undefined };

  constructor(origin: string) {
    this.timeline = new TimelineStrip({ clock: 'wall', defaultSpan: 5 * 60_000, minSpan: 1000, member: (id) => this.names.get(id) ?? { name: id, index: 0 } });
    this.connections = el('ul', { class: 'connections', 'data-testid': 'connections', 'aria-live': 'polite' });
    this.element = el(
      'div',
      { class: 'mode live' },
      el('div', { class: 'controls-column' }, el('section', { class: 'panel' }, el('h2', {}, 'Streams'), this.connections), new KvPanel(origin).element),
      el('section', { class: 'panel drawing' }, el('h2', { class: 'visually-hidden' }, 'Cluster'), this.cluster.element, legend(), this.events.element),
      el('div', { class: 'side' }, this.logs.element, el('section', { class: 'panel tables' }, this.members.element, this.progress.element)),
      this.timeline.element,
    );
    this.connect(new URL('/ui/events', origin).href);
  }

  frame(): Status {
    const now = Date.now();
    this.model.sweep(now);
    if (this.model.changes === this.drawnChanges && now - this.drawnAt < REDRAW_MS) {
      this.timeline.update(this.model.timeline(), now, this.earliest());
      return this.lastStatus;
    }
    this.drawnAt = now;
    this.drawnChanges = this.model.changes;
    const view = this.model.view(now);
    this.names = new Map(view.members.map((m, i) => [m.id, { name: m.name, index: i }]));
    this.cluster.render(view);
    this.logs.render(view);
    this.members.render(view);
    this.progress.render(view);
    const timeline = this.model.timeline();
    this.events.render(timeline.slice(-200).map((e) => this.describe(e)));
    this.timeline.update(timeline, now, this.earliest());
    this.renderConnections();
    const leader = currentLeader(view);
    this.lastStatus = {
      leader: leader ? `${leader.name} leads term ${leader.term}` : view.members.length ? 'no leader' : 'connecting…',
      time: new Date(now).toLocaleTimeString(),
      violation: undefined,
    };
    return this.lastStatus;
  }

  private earliest(): number {
    return Math.min(this.startedAt, this.model.timeline()[0]?.time ?? this.startedAt);
  }

  private connect(url: string): void {
    const stream: Stream = { url, source: new EventSource(url), member: undefined, open: false };
    this.streams.push(stream);
    stream.source.onopen = () => (stream.open = true);
    stream.source.onerror = () => (stream.open = false); // EventSource reconnects by itself
    stream.source.onmessage = (e: MessageEvent<string>) => {
      let message: FeedMessage;
      try {
        message = JSON.parse(e.data) as FeedMessage;
      } catch {
        return; // a malformed line: skip it, the next status corrects the view
      }
      if (message.type === 'hello') {
        stream.member = message.member;
        this.model.receive(message, Date.now());
        this.openPeers();
      } else {
        this.model.receive(message, Date.now());
      }
    };
  }

  /** Opens a stream to every member not yet streamed from. */
  private openPeers(): void {
    const known = new Set(this.streams.map((s) => s.member).filter((m) => m !== undefined));
    const urls = new Set(this.streams.map((s) => s.url));
    for (const peer of this.model.peers()) {
      if (known.has(peer.id) || peer.clientURLs.length === 0) continue;
      const url = new URL('/ui/events', peer.clientURLs[0]!).href;
      if (!urls.has(url)) this.connect(url);
    }
  }

  private renderConnections(): void {
    while (this.connections.children.length < this.streams.length) this.connections.append(el('li'));
    this.streams.forEach((s, i) => {
      const name = s.member ? (this.names.get(s.member)?.name ?? s.member) : '?';
      const li = this.connections.children[i]!;
      setText(li, `${s.open ? '● connected' : '○ reconnecting'}: ${name} (${new URL(s.url).host})`);
      li.className = s.open ? 'ok' : 'failed';
    });
  }

  private describe(e: TimelineEvent): string {
    const who = this.names.get(e.member)?.name ?? e.member;
    const time = new Date(e.time).toLocaleTimeString();
    const what: Record<TimelineEvent['kind'], string> = {
      election: `starts an election for term ${e.term}`,
      leader: `becomes leader of term ${e.term}`,
      stepDown: `steps down (term ${e.term})`,
      crash: 'goes down',
      restart: 'restarts',
      snapshot: `snapshot at index ${e.index ?? '?'}`,
      confChange: 'applies a membership change',
      partition: 'is cut off',
      heal: 'is reconnected',
    };
    return `${time} ${who} ${what[e.kind]}${e.detail ? ` (${e.detail})` : ''}`;
  }
}
