// Sandbox mode: the simulator (src/sim/sandbox.ts, the same src/raft code)
// running in the page. Controls for the run (seed, nodes, story, play,
// step, speed, loss), for faults (crash/restart by clicking a node, cutting
// a link by clicking its lane, partitions), for clients (set/get/del/inc)
// and for membership, leadership transfer and snapshots. Every action is
// recorded by the sandbox and written into the URL, so a link replays the run.

import { currentLeader } from '../summary.js';
import { MAX_NODES, MIN_NODES, formatHash, type UrlState } from '../urlState.js';
import type { ClusterView, KvCommandView, SandboxControls, SandboxOptions, StoryInfo } from '../view.js';
import { ClusterSvg, legend } from './clusterSvg.js';
import { button, el, labelled, setHidden, setOptions, setText } from './dom.js';
import { EventLog } from './eventLog.js';
import { LogsPanel } from './logsPanel.js';
import { MembersTable, ProgressTable } from './tables.js';
import { TimelineStrip } from './timelineStrip.js';

export interface SandboxModule {
  createSandbox(options: SandboxOptions): SandboxControls;
  readonly STORIES: readonly StoryInfo[];
}

/** Speeds offered, in simulated time per real time; the simulator's tick is 10 ms. */
const SPEEDS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5] as const;
const DEFAULT_SPEED = 2;
/** The longest real frame counted: a background tab must not run minutes at once. */
const MAX_FRAME_MS = 100;

export interface Status {
  readonly leader: string;
  readonly time: string;
  readonly violation: string | undefined;
}

export class SandboxMode {
  readonly element: HTMLElement;
  private sandbox!: SandboxControls;
  private options!: SandboxOptions;
  private playing = true;
  private view!: ClusterView;
  private readonly cluster: ClusterSvg;
  private readonly logs = new LogsPanel();
  private readonly members = new MembersTable();
  private readonly progress = new ProgressTable();
  private readonly events = new EventLog();
  private readonly timeline: TimelineStrip;
  private readonly c: Record<string, HTMLInputElement | HTMLSelectElement | HTMLButtonElement | HTMLElement> = {};
  private readonly caption: HTMLElement;
  private readonly storySummary: HTMLElement;
  private readonly requestsList: HTMLElement;
  private readonly message: HTMLElement;
  private names = new Map<string, { name: string; index: number }>();

  constructor(
    private readonly module: SandboxModule,
    initial: UrlState,
  ) {
    this.cluster = new ClusterSvg(
      { onNode: (id) => this.toggleNode(id), onLink: (from, to) => this.toggleLink(from, to) },
      'Click or press Enter to crash or restart it.',
    );
    this.timeline = new TimelineStrip({ clock: 'sim', defaultSpan: 2_000, minSpan: 50, member: (id) => this.names.get(id) ?? { name: id, index: 0 } });
    this.caption = el('p', { class: 'caption', 'data-testid': 'story-caption', 'aria-live': 'polite' });
    this.storySummary = el('p', { class: 'hint story-summary' });
    this.requestsList = el('ol', { class: 'requests', 'data-testid': 'requests' });
    this.message = el('p', { class: 'message', role: 'status' });

    const seed = el('input', { id: 'seed', type: 'number', min: 0, max: 4294967295, value: initial.seed ?? randomSeed(), inputmode: 'numeric' });
    const nodes = el('select', { id: 'nodes' });
    setOptions(nodes, range(MIN_NODES, MAX_NODES).map((n) => ({ value: String(n), text: `${n} nodes` })));
    nodes.value = String(initial.nodes ?? 5);
    const story = el('select', { id: 'story' });
    setOptions(story, [{ value: '', text: 'free play (no story)' }, ...module.STORIES.map((s) => ({ value: s.id, text: s.title }))]);
    story.value = initial.story ?? '';
    const speed = el('input', { id: 'speed', title: 'Simulated time per real time', type: 'range', min: 0, max: SPEEDS.length - 1, step: 1, value: DEFAULT_SPEED });
    const speedOut = el('output', { id: 'speed-value', for: 'speed' });
    const loss = el('input', { id: 'loss', type: 'range', min: 0, max: 50, step: 1, value: Math.round((initial.loss ?? 0) * 100) });
    const lossOut = el('output', { id: 'loss-value', for: 'loss' });
    const op = el('select', { id: 'req-op' });
    setOptions(op, ['set', 'get', 'del', 'inc'].map((v) => ({ value: v, text: v })));
    const key = el('input', { id: 'req-key', type: 'text', value: 'x', size: 6, autocomplete: 'off' });
    const value = el('input', { id: 'req-value', type: 'text', value: '1', size: 6, autocomplete: 'off' });
    const target = el('select', { id: 'req-target' });
    const node = el('select', { id: 'node-select' });
    const linkFrom = el('select', { id: 'link-from' });
    const linkTo = el('select', { id: 'link-to' });
    const linkDir = el('select', { id: 'link-dir' });
    setOptions(linkDir, [
      { value: 'one', text: 'one way (from → to)' },
      { value: 'both', text: 'both ways' },
    ]);
    Object.assign(this.c, { seed, nodes, story, speed, speedOut, loss, lossOut, op, key, value, target, node, linkFrom, linkTo, linkDir });

    const play = button('play', 'Pause', 'Pause or resume (space)', () => this.togglePause());
    this.c['play'] = play;
    const act = (f: () => void) => () => this.act(f);
    const selected = (): string => (this.c['node'] as HTMLSelectElement).value;

    const controls = el(
      'section',
      { class: 'panel controls', 'aria-label': 'Sandbox controls' },
      el('h2', {}, 'Run'),
      el('div', { class: 'row' }, labelled('Seed', seed), button('seed-random', 'Random', 'A new random seed', () => ((seed as HTMLInputElement).value = String(randomSeed())))),
      el('div', { class: 'row' }, labelled('Nodes', nodes), button('reset', 'Start run', 'Start a new run with this seed, node count and story', () => this.start(this.formOptions()))),
      labelled('Story', story),
      this.storySummary,
      this.caption,
      el('div', { class: 'row' }, play, button('step', 'Step', 'Process one event (.)', () => this.stepOnce())),
      el('div', { class: 'row' }, labelled('Speed', speed), speedOut),
      el('div', { class: 'row' }, labelled('Message loss', loss), lossOut),
      el('h2', {}, 'Client request'),
      el('div', { class: 'row' }, op, key, value),
      el('div', { class: 'row' }, labelled('to', target), button('req-send', 'Send', 'Send the request', () => this.sendRequest())),
      this.requestsList,
      el('h2', {}, 'Nodes'),
      el(
        'div',
        { class: 'row' },
        node,
        button('node-toggle', 'Crash/restart', 'Crash the node, or restart it if down (also: click the node)', () => this.toggleNode(selected())),
      ),
      el(
        'div',
        { class: 'row wrap' },
        button('node-snapshot', 'Snapshot', 'The node snapshots its state machine and compacts its log', act(() => this.sandbox.snapshot(selected()))),
        button('node-transfer', 'Transfer here', 'Transfer leadership to this node', act(() => this.sandbox.transferLeader(selected()))),
        button('node-campaign', 'Campaign', 'Fire this node\'s election timer now', act(() => this.sandbox.campaign(selected()))),
        button('node-remove', 'Remove', 'Remove this node from the cluster (membership change)', act(() => this.sandbox.removeNode(selected()))),
        button('node-add', 'Add node', 'Add a node (learner, then voter)', act(() => void this.sandbox.addNode())),
      ),
      el('h2', {}, 'Links'),
      el('div', { class: 'row' }, labelled('from', linkFrom), labelled('to', linkTo)),
      el(
        'div',
        { class: 'row wrap' },
        linkDir,
        button('link-cut', 'Cut', 'Cut the link (also: click a lane in the drawing)', () => this.linkAction(true)),
        button('link-restore', 'Restore', 'Restore the link', () => this.linkAction(false)),
        button('node-isolate', 'Isolate node', 'Cut every link of the selected node, both ways', act(() => this.sandbox.isolate([selected()]))),
        button('heal', 'Heal all', 'Restore every link', act(() => this.sandbox.heal())),
      ),
      el('h2', {}, 'Share'),
      el('div', { class: 'row' }, button('share', 'Copy link', 'Copy a link that replays this run', () => void this.share())),
      this.message,
    );

    speed.addEventListener('input', () => this.showSpeed());
    loss.addEventListener('input', () => {
      const rate = Number((loss as HTMLInputElement).value) / 100;
      setText(lossOut, `${Math.round(rate * 100)} %`);
      this.act(() => this.sandbox.setLoss(rate));
    });
    story.addEventListener('change', () => this.start(this.formOptions()));
    key.addEventListener('keydown', (e) => e.key === 'Enter' && this.sendRequest());
    value.addEventListener('keydown', (e) => e.key === 'Enter' && this.sendRequest());
    op.addEventListener('change', () => setHidden(value, (op as HTMLSelectElement).value !== 'set'));

    this.element = el(
      'div',
      { class: 'mode sandbox' },
      controls,
      el('section', { class: 'panel drawing' }, el('h2', { class: 'visually-hidden' }, 'Cluster'), this.cluster.element, legend(), this.events.element),
      el('div', { class: 'side' }, this.logs.element, el('section', { class: 'panel tables' }, this.members.element, this.progress.element)),
      this.timeline.element,
    );
    setText(lossOut, `${(loss as HTMLInputElement).value} %`);
    this.showSpeed();
    this.start({ seed: Number((seed as HTMLInputElement).value), nodes: Number((nodes as HTMLSelectElement).value), loss: initial.loss ?? 0, ...(initial.story ? { story: initial.story } : {}), ...(initial.actions ? { actions: initial.actions } : {}) });
  }

  /** Advances the simulation by a frame of real time and redraws. */
  frame(realMs: number): Status {
    if (this.playing) {
      const speed = SPEEDS[Number((this.c['speed'] as HTMLInputElement).value)] ?? 0.05;
      this.guard(() => this.sandbox.advance(Math.min(realMs, MAX_FRAME_MS) * speed));
    }
    this.render();
    const leader = currentLeader(this.view);
    return {
      leader: leader ? `${leader.name} leads term ${leader.term}` : 'no leader',
      time: `t = ${(this.sandbox.now / 1000).toFixed(3)} s`,
      violation: this.sandbox.violation(),
    };
  }

  togglePause(): void {
    this.playing = !this.playing;
    setText(this.c['play']!, this.playing ? 'Pause' : 'Play');
    this.c['play']!.setAttribute('aria-pressed', String(!this.playing));
  }

  stepOnce(): void {
    if (this.playing) this.togglePause();
    this.guard(() => {
      const what = this.sandbox.stepEvent();
      setText(this.message, what ? `step: ${what}` : 'step: nothing is due');
    });
  }

  private start(options: SandboxOptions): void {
    try {
      this.sandbox = this.module.createSandbox(options);
      this.options = options;
      setText(this.message, '');
    } catch (e) {
      if (this.sandbox) {
        setText(this.message, `Cannot start: ${(e as Error).message}`);
        return;
      }
      // A link naming an unknown story or carrying bad actions: play freely instead.
      this.options = { seed: options.seed, nodes: Math.min(MAX_NODES, Math.max(MIN_NODES, options.nodes)) };
      this.sandbox = this.module.createSandbox(this.options);
      (this.c['story'] as HTMLSelectElement).value = '';
      setText(this.message, `Cannot replay the link (${(e as Error).message}): a fresh run instead.`);
    }
    this.timeline.reset();
    const info = this.module.STORIES.find((s) => s.id === options.story);
    setText(this.storySummary, info ? info.summary : '');
    this.writeUrl();
    this.render();
  }

  private formOptions(): SandboxOptions {
    const story = (this.c['story'] as HTMLSelectElement).value;
    return {
      seed: Number((this.c['seed'] as HTMLInputElement).value) >>> 0,
      nodes: Number((this.c['nodes'] as HTMLSelectElement).value),
      loss: Number((this.c['loss'] as HTMLInputElement).value) / 100,
      ...(story ? { story } : {}),
    };
  }

  private render(): void {
    this.view = this.sandbox.view();
    const members = this.view.members;
    this.names = new Map(members.map((m, i) => [m.id, { name: m.name, index: i }]));
    this.cluster.render(this.view);
    this.logs.render(this.view);
    this.members.render(this.view);
    this.progress.render(this.view);
    this.events.render(this.sandbox.log());
    this.timeline.update(this.sandbox.timeline(), this.sandbox.now, 0);
    const nodeOptions = members.map((m) => ({ value: m.id, text: m.name }));
    for (const k of ['node', 'linkFrom', 'linkTo']) setOptions(this.c[k] as HTMLSelectElement, nodeOptions);
    setOptions(this.c['target'] as HTMLSelectElement, [{ value: '', text: 'any node' }, ...nodeOptions]);
    const story = this.sandbox.story();
    setText(this.caption, story ? `Step ${story.step}/${story.steps}${story.done ? ' (done)' : ''}: ${story.captions[story.captions.length - 1] ?? 'starting…'}` : '');
    setHidden(this.caption, !story);
    this.renderRequests();
  }

  private renderRequests(): void {
    const recent = this.sandbox.requests().slice(-5);
    while (this.requestsList.children.length < recent.length) this.requestsList.append(el('li'));
    while (this.requestsList.children.length > recent.length) this.requestsList.lastElementChild!.remove();
    recent.forEach((r, i) => {
      const c = r.command;
      const what = c.op === 'set' ? `set ${c.key}=${c.value}` : `${c.op} ${c.key}`;
      const outcome = r.status === 'pending' ? (r.attempts > 1 ? `pending (try ${r.attempts})` : 'pending') : r.status === 'ok' ? `ok${r.result !== undefined ? `: ${r.result}` : ''}` : `failed${r.result ? `: ${r.result}` : ''}`;
      const li = this.requestsList.children[i]!;
      setText(li, `#${r.id} ${what} → ${this.names.get(r.sentTo)?.name ?? r.sentTo}: ${outcome}`);
      li.className = `req ${r.status}`;
    });
  }

  private showSpeed(): void {
    const s = SPEEDS[Number((this.c['speed'] as HTMLInputElement).value)] ?? 0.05;
    setText(this.c['speedOut']!, `${s}×`);
    this.c['speed']!.setAttribute('aria-valuetext', `${s} times real time`);
  }

  /** Runs a user action against the sandbox, then records the run in the URL. */
  private act(action: () => void): void {
    this.guard(action);
    this.writeUrl();
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      setText(this.message, (e as Error).message);
    }
  }

  private toggleNode(id: string): void {
    const member = this.view.members.find((m) => m.id === id);
    if (!member) return;
    this.act(() => (member.role === 'down' ? this.sandbox.restart(id) : this.sandbox.crash(id)));
  }

  private toggleLink(from: string, to: string): void {
    const isCut = this.view.cutLinks.some((l) => l.from === from && l.to === to);
    this.act(() => (isCut ? this.sandbox.restoreLink(from, to) : this.sandbox.cutLink(from, to)));
  }

  private linkAction(cut: boolean): void {
    const from = (this.c['linkFrom'] as HTMLSelectElement).value;
    const to = (this.c['linkTo'] as HTMLSelectElement).value;
    if (from === to) {
      setText(this.message, 'Pick two different nodes for a link.');
      return;
    }
    const both = (this.c['linkDir'] as HTMLSelectElement).value === 'both';
    this.act(() => {
      const f = cut ? this.sandbox.cutLink.bind(this.sandbox) : this.sandbox.restoreLink.bind(this.sandbox);
      f(from, to);
      if (both) f(to, from);
    });
  }

  private sendRequest(): void {
    const op = (this.c['op'] as HTMLSelectElement).value;
    const key = (this.c['key'] as HTMLInputElement).value.trim();
    if (!key) {
      setText(this.message, 'A request needs a key.');
      return;
    }
    const command: KvCommandView = op === 'set' ? { op: 'set', key, value: (this.c['value'] as HTMLInputElement).value } : { op: op as 'get' | 'del' | 'inc', key };
    const to = (this.c['target'] as HTMLSelectElement).value;
    this.act(() => void this.sandbox.request(command, to || undefined));
  }

  private urlState(): UrlState {
    const o = this.options;
    // While a link's actions are still being replayed, the sandbox has taken only some of them.
    const taken = this.sandbox.actions();
    const actions = o.actions && o.actions.length > taken.length ? o.actions : taken;
    return { mode: 'sandbox', seed: o.seed, nodes: o.nodes, ...(o.story ? { story: o.story } : {}), ...(o.loss ? { loss: o.loss } : {}), actions };
  }

  /** Writes the run into the URL (the seed and every action so far). */
  writeUrl(): void {
    history.replaceState(null, '', formatHash(this.urlState()));
  }

  private async share(): Promise<void> {
    this.writeUrl();
    try {
      await navigator.clipboard.writeText(location.href);
      setText(this.message, 'Link copied: it replays this run.');
    } catch {
      setText(this.message, 'The address bar now holds a link that replays this run.');
    }
  }
}

function randomSeed(): number {
  // The seed only chooses a run; the run itself is deterministic given it.
  return Math.floor(Math.random() * 1_000_000);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
