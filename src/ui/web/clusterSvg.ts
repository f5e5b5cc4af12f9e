// The cluster drawing: nodes on a circle (role by shape, label and colour;
// the election timer as a shrinking ring), every directed link as its own
// lane (cut lanes dashed with a cross; live message rates printed on them),
// and messages travelling along the lanes, one shape per kind. SVG nodes are
// created once and updated in place each frame.

import { ROLE_COLORS, termColor } from '../colors.js';
import { along, circleLayout, droppedOpacity, linkSegment, messageProgress, ringDash, segmentAngle, timerRemaining, type Point } from '../geometry.js';
import type { ClusterView, MemberView, MessageKind, RoleView } from '../view.js';
import { setAttr, setText, svg } from './dom.js';

const WIDTH = 520;
const HEIGHT = 460;
const CENTER: Point = { x: WIDTH / 2, y: HEIGHT / 2 };
const LANE_OFFSET = 6;

export interface ClusterHandlers {
  /** A node was clicked or Enter was pressed on it. */
  readonly onNode?: (id: string) => void;
  /** A link lane (from -> to) was clicked. */
  readonly onLink?: (from: string, to: string) => void;
}

/** Message shapes, centred on the origin, pointing right (the direction of travel). */
const MESSAGE_SHAPES: Readonly<Record<MessageKind, string>> = {
  vote: 'M0,-7L7,0L0,7L-7,0Z',
  voteResponse: 'M-5,0a5,5 0 1,0 10,0a5,5 0 1,0 -10,0Z',
  append: 'M-8,-5h16v10h-16ZM-8,-5l8,5l8,-5',
  heartbeat: 'M-5,-4L5,0L-5,4Z',
  appendResponse: 'M-3.5,-3.5h7v7h-7Z',
  snapshot: 'M-9,-7h18v14h-18ZM-5,-3h10v6h-10Z',
  timeoutNow: 'M0,-8L2,-2L8,0L2,2L0,8L-2,2L-8,0L-2,-2Z',
  other: 'M-3,0a3,3 0 1,0 6,0a3,3 0 1,0 -6,0Z',
};

const MESSAGE_NAMES: Readonly<Record<MessageKind, string>> = {
  vote: 'RequestVote',
  voteResponse: 'vote reply',
  append: 'AppendEntries',
  heartbeat: 'heartbeat',
  appendResponse: 'append reply',
  snapshot: 'InstallSnapshot',
  timeoutNow: 'TimeoutNow',
  other: 'other',
};

/** The outline of a node of `role` with radius r: a shape per role, so colour is not needed to tell them. */
function roleShape(role: RoleView, r: number): string {
  switch (role) {
    case 'leader': {
      // A hexagon: the one node drawn with corners all round.
      const pts = Array.from({ length: 6 }, (_, i) => {
        const a = (Math.PI / 3) * i;
        return `${(r * 1.1 * Math.cos(a)).toFixed(1)},${(r * 1.1 * Math.sin(a)).toFixed(1)}`;
      });
      return `M${pts.join('L')}Z`;
    }
    case 'candidate':
    case 'preCandidate':
      return `M0,${-r * 1.2}L${r * 1.2},0L0,${r * 1.2}L${-r * 1.2},0Z`;
    default:
      return `M${-r},0a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0Z`;
  }
}

const ROLE_LABELS: Readonly<Record<RoleView, string>> = {
  leader: '★ leader',
  candidate: 'candidate',
  preCandidate: 'pre-cand.',
  follower: 'follower',
  learner: 'learner',
  down: '✕ down',
};

interface NodeParts {
  readonly g: SVGGElement;
  readonly ring: SVGCircleElement;
  readonly shape: SVGPathElement;
  readonly name: SVGTextElement;
  readonly role: SVGTextElement;
  readonly term: SVGTextElement;
  readonly title: SVGTitleElement;
}

interface LaneParts {
  readonly g: SVGGElement;
  readonly line: SVGLineElement;
  readonly hit: SVGLineElement;
  readonly cross: SVGTextElement;
  readonly rate: SVGTextElement;
  readonly title: SVGTitleElement;
}

interface MessageParts {
  readonly g: SVGGElement;
  readonly shape: SVGPathElement;
  readonly title: SVGTitleElement;
}

export class ClusterSvg {
  readonly element: SVGSVGElement;
  private readonly lanesLayer: SVGGElement;
  private readonly messagesLayer: SVGGElement;
  private readonly nodesLayer: SVGGElement;
  private readonly nodes = new Map<string, NodeParts>();
  private readonly lanes = new Map<string, LaneParts>();
  private readonly messages = new Map<number, MessageParts>();
  private positions = new Map<string, Point>();
  private nodeRadius = 30;
  private layoutKey = '';

  constructor(
    private readonly handlers: ClusterHandlers,
    private readonly interactiveHint: string,
  ) {
    this.lanesLayer = svg('g', { class: 'lanes' });
    this.messagesLayer = svg('g', { class: 'messages', 'aria-hidden': 'true' });
    this.nodesLayer = svg('g', { class: 'nodes' });
    this.element = svg(
      'svg',
      { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'cluster', role: 'group', 'aria-label': 'Cluster: members and the messages between them', 'data-testid': 'cluster' },
      this.lanesLayer,
      this.messagesLayer,
      this.nodesLayer,
    );
  }

  render(view: ClusterView): void {
    this.layout(view.members);
    const cut = new Set(view.cutLinks.map((l) => `${l.from}>${l.to}`));
    const rates = new Map(view.rates.map((r) => [`${r.from}>${r.to}`, r.perSecond]));
    for (const [key, lane] of this.lanes) this.updateLane(key, lane, cut.has(key), rates.get(key));
    for (const m of view.members) this.updateNode(this.nodes.get(m.id)!, m);
    this.updateMessages(view);
  }

  /** Places the nodes; rebuilt only when the membership changes. */
  private layout(members: readonly MemberView[]): void {
    const key = members.map((m) => m.id).join(',');
    if (key === this.layoutKey) return;
    this.layoutKey = key;
    const n = members.length;
    this.nodeRadius = n <= 3 ? 34 : n <= 5 ? 31 : 27;
    const points = circleLayout(n, CENTER, Math.min(WIDTH, HEIGHT) / 2 - this.nodeRadius * 1.6 - 4);
    this.positions = new Map(members.map((m, i) => [m.id, points[i]!]));

    for (const [id, parts] of this.nodes) {
      if (!this.positions.has(id)) {
        parts.g.remove();
        this.nodes.delete(id);
      }
    }
    for (const m of members) {
      const parts = this.nodes.get(m.id) ?? this.createNode(m.id);
      const p = this.positions.get(m.id)!;
      setAttr(parts.g, 'transform', `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`);
      setAttr(parts.ring, 'r', String(this.nodeRadius + 7));
    }

    const wanted = new Set<string>();
    for (const a of members) for (const b of members) if (a.id !== b.id) wanted.add(`${a.id}>${b.id}`);
    for (const [k, lane] of this.lanes) {
      if (!wanted.has(k)) {
        lane.g.remove();
        this.lanes.delete(k);
      }
    }
    for (const k of wanted) {
      const [from, to] = k.split('>') as [string, string];
      const lane = this.lanes.get(k) ?? this.createLane(from, to);
      const seg = linkSegment(this.positions.get(from)!, this.positions.get(to)!, this.nodeRadius + 9, LANE_OFFSET);
      for (const line of [lane.line, lane.hit]) {
        setAttr(line, 'x1', seg.from.x.toFixed(1));
        setAttr(line, 'y1', seg.from.y.toFixed(1));
        setAttr(line, 'x2', seg.to.x.toFixed(1));
        setAttr(line, 'y2', seg.to.y.toFixed(1));
      }
      const mid = along(seg, 0.5);
      setAttr(lane.cross, 'x', mid.x.toFixed(1));
      setAttr(lane.cross, 'y', mid.y.toFixed(1));
      const label = along(seg, 0.3);
      setAttr(lane.rate, 'x', label.x.toFixed(1));
      setAttr(lane.rate, 'y', label.y.toFixed(1));
    }
  }

  private createNode(id: string): NodeParts {
    const ring = svg('circle', { class: 'timer', r: this.nodeRadius + 7, transform: 'rotate(-90)' });
    const shape = svg('path', { class: 'shape' });
    const name = svg('text', { class: 'name', y: -4 });
    const role = svg('text', { class: 'role', y: 9 });
    const term = svg('text', { class: 'term', y: 20 });
    const title = svg('title');
    const g = svg('g', { class: 'node', tabindex: 0, role: 'button', 'data-testid': `node-${id}` }, title, ring, shape, name, role, term);
    const activate = (): void => this.handlers.onNode?.(id);
    if (this.handlers.onNode) {
      g.addEventListener('click', activate);
      g.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          e.preventDefault();
          activate();
        }
      });
    } else {
      g.setAttribute('role', 'img');
    }
    this.nodesLayer.append(g);
    const parts = { g, ring, shape, name, role, term, title };
    this.nodes.set(id, parts);
    return parts;
  }

  private createLane(from: string, to: string): LaneParts {
    const line = svg('line', { class: 'lane' });
    const hit = svg('line', { class: 'lane-hit' });
    const cross = svg('text', { class: 'cut-mark', hidden: true }, '✕');
    const rate = svg('text', { class: 'rate' });
    const title = svg('title');
    const g = svg('g', { class: 'link', 'data-from': from, 'data-to': to }, title, line, hit, cross, rate);
    if (this.handlers.onLink) g.addEventListener('click', () => this.handlers.onLink!(from, to));
    this.lanesLayer.append(g);
    const parts = { g, line, hit, cross, rate, title };
    this.lanes.set(`${from}>${to}`, parts);
    return parts;
  }

  private updateLane(key: string, lane: LaneParts, isCut: boolean, rate: number | undefined): void {
    setAttr(lane.g, 'class', isCut ? 'link cut' : 'link');
    setAttr(lane.g, 'data-cut', String(isCut));
    if (lane.cross.hasAttribute('hidden') === isCut) lane.cross.toggleAttribute('hidden', !isCut);
    const [from, to] = key.split('>') as [string, string];
    const name = (id: string): string => this.nodes.get(id)?.name.textContent || id;
    const rateText = rate !== undefined && rate > 0 ? `${rate < 10 ? rate.toFixed(1) : Math.round(rate)}/s` : '';
    setText(lane.rate, rateText);
    setAttr(lane.line, 'stroke-width', rate ? (1 + Math.log2(1 + rate) / 2).toFixed(1) : '1.2');
    const verb = this.handlers.onLink ? (isCut ? ' (cut: click to restore)' : ' (click to cut this direction)') : '';
    setText(lane.title, `${name(from)} → ${name(to)}${rateText ? `: ${rateText}` : ''}${verb}`);
  }

  private updateNode(parts: NodeParts, m: MemberView): void {
    const r = this.nodeRadius;
    setAttr(parts.g, 'data-role', m.role);
    setAttr(parts.g, 'data-term', String(m.term));
    setAttr(parts.g, 'class', `node role-${m.role}`);
    setAttr(parts.shape, 'd', roleShape(m.role, r));
    setAttr(parts.shape, 'fill', ROLE_COLORS[m.role] ?? '#ccc');
    setText(parts.name, m.name);
    setText(parts.role, ROLE_LABELS[m.role]);
    setText(parts.term, `term ${m.term}`);
    const ticking = m.role !== 'leader' && m.role !== 'down' && m.electionTimeout > 0;
    if (ticking) setAttr(parts.ring, 'stroke-dasharray', ringDash(r + 7, timerRemaining(m.electionElapsed, m.electionTimeout)));
    setAttr(parts.ring, 'visibility', ticking ? 'visible' : 'hidden');
    const vote = m.vote ? `, voted for ${m.vote}` : '';
    const detail = `${m.name}: ${m.role}, term ${m.term}${vote}, commit ${m.commitIndex}, applied ${m.appliedIndex}, last ${m.lastIndex} (term ${m.lastTerm}), snapshot ${m.snapshotIndex}`;
    setText(parts.title, this.handlers.onNode ? `${detail}. ${this.interactiveHint}` : detail);
    setAttr(parts.g, 'aria-label', parts.title.textContent ?? m.name);
  }

  private updateMessages(view: ClusterView): void {
    const seen = new Set<number>();
    const r = this.nodeRadius + 9;
    for (const msg of view.messages) {
      const a = this.positions.get(msg.from);
      const b = this.positions.get(msg.to);
      if (!a || !b) continue;
      seen.add(msg.key);
      let parts = this.messages.get(msg.key);
      if (!parts) {
        const shape = svg('path', { d: MESSAGE_SHAPES[msg.kind], fill: termColor(msg.term) });
        const title = svg('title', {}, msg.label);
        const g = svg('g', { class: `msg kind-${msg.kind}${msg.reject ? ' reject' : ''}`, 'data-kind': msg.kind }, title, shape);
        this.messagesLayer.append(g);
        parts = { g, shape, title };
        this.messages.set(msg.key, parts);
      }
      const seg = linkSegment(a, b, r, LANE_OFFSET);
      const t = messageProgress(msg.sentAt, msg.deliverAt, view.now);
      const p = along(seg, t);
      parts.g.setAttribute('transform', `translate(${p.x.toFixed(1)},${p.y.toFixed(1)}) rotate(${segmentAngle(seg).toFixed(0)})`);
      if (msg.dropped) parts.g.setAttribute('opacity', droppedOpacity(t).toFixed(2));
    }
    for (const [key, parts] of this.messages) {
      if (!seen.has(key)) {
        parts.g.remove();
        this.messages.delete(key);
      }
    }
  }
}

/** The legend: every message kind's shape and name, and the role shapes. */
export function legend(): SVGSVGElement {
  const kinds = Object.keys(MESSAGE_SHAPES) as MessageKind[];
  const items: SVGElement[] = kinds.map((kind, i) =>
    svg(
      'g',
      { transform: `translate(${12 + (i % 4) * 128},${14 + Math.floor(i / 4) * 22})` },
      svg('path', { d: MESSAGE_SHAPES[kind], class: `msg kind-${kind}`, fill: '#9ecae1' }),
      svg('text', { x: 14, y: 4 }, MESSAGE_NAMES[kind]),
    ),
  );
  const roles: RoleView[] = ['leader', 'candidate', 'follower', 'learner', 'down'];
  roles.forEach((role, i) =>
    items.push(
      svg(
        'g',
        { transform: `translate(${12 + i * 102},${62})`, class: `legend-role role-${role}` },
        svg('path', { d: roleShape(role, 7), fill: ROLE_COLORS[role] ?? '#ccc', class: 'shape' }),
        svg('text', { x: 12, y: 4 }, ROLE_LABELS[role]),
      ),
    ),
  );
  items.push(svg('text', { x: 4, y: 92, class: 'legend-note' }, 'refused: red dashed outline · dropped: fades out · cut link: dashed with ✕ · ring: election timer'));
  return svg('svg', { viewBox: '0 0 520 100', class: 'legend', role: 'img', 'aria-label': 'Legend of message and role shapes' }, ...items);
}
