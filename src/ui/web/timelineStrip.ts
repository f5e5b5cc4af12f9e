// The timeline strip: terms as bands coloured per leader and labelled with
// the term and the leader's name, election windows hatched, marks for
// crashes, restarts, snapshots, membership changes and partitions. Drawn on
// a canvas; zoom with the wheel, a pinch, the +/− buttons or keys; scroll by
// dragging, the scrollbar, the ◀ ▶ buttons or the arrow keys.

import { HOUR_MS, clampViewport, layoutTimeline, panViewport, tickLabel, ticks, timeToX, visibleRange, xToTime, zoomViewport, type TimelineLayout, type Viewport, type ViewportLimits } from '../timeline.js';
import type { TimelineEvent, TimelineEventKind } from '../view.js';
import { button, el, setText } from './dom.js';

const HEIGHT = 96;
const MARK_Y = 10;
const BAND_TOP = 20;
const BAND_H = 34;
const ELECTION_TOP = 57;
const ELECTION_H = 12;
const AXIS_Y = 72;
/** Room at both ends so marks at the edges are drawn whole. */
const PAD = 10;

/** Glyphs for the marks; the same glyphs are in the legend under the strip. */
const MARK_GLYPHS: Readonly<Partial<Record<TimelineEventKind, string>>> = {
  crash: '✕',
  restart: '↻',
  snapshot: '▣',
  confChange: '⊕',
  partition: '✂',
  heal: '∞',
  stepDown: '↓',
};

/** Leader colours by member position (Tableau 10), distinct from the term colours of the logs. */
const LEADER_COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export interface TimelineOptions {
  readonly clock: 'wall' | 'sim';
  readonly defaultSpan: number;
  readonly minSpan: number;
  /** A member's display name and its position (for the band colour). */
  readonly member: (id: string) => { readonly name: string; readonly index: number };
}

export class TimelineStrip {
  readonly element: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly scroll: HTMLInputElement;
  private readonly hover: HTMLElement;
  private viewport: Viewport;
  private limits: ViewportLimits = { earliest: 0, now: 0, minSpan: 1, maxSpan: 1 };
  private layout: TimelineLayout = { bands: [], elections: [], marks: [] };
  private signature = '';
  private dirty = true;
  private cssWidth = 600;
  private readonly pointers = new Map<number, number>();
  private pinchDistance = 0;

  constructor(private readonly options: TimelineOptions) {
    this.viewport = { end: 0, span: options.defaultSpan, follow: true };
    this.canvas = el('canvas', { class: 'timeline-canvas', tabindex: 0, role: 'img', height: HEIGHT, 'aria-label': 'Timeline: terms and leaders over time. Arrow keys scroll, + and − zoom, End returns to now.' });
    this.scroll = el('input', { id: 'timeline-scroll', type: 'range', min: 0, max: 1000, value: 1000, 'aria-label': 'Scroll the timeline' });
    this.hover = el('span', { class: 'timeline-hover', 'aria-live': 'off' });
    const legendText = Object.entries(MARK_GLYPHS).map(([k, g]) => `${g} ${k === 'confChange' ? 'conf change' : k === 'stepDown' ? 'step down' : k}`).join('  ');
    this.element = el(
      'section',
      { class: 'panel timeline', 'data-testid': 'timeline' },
      el(
        'div',
        { class: 'timeline-bar' },
        el('h2', {}, 'Timeline'),
        button('timeline-zoom-out', '−', 'Zoom out (−)', () => this.zoom(2, 1)),
        button('timeline-zoom-in', '+', 'Zoom in (+)', () => this.zoom(0.5, 1)),
        button('timeline-back', '◀', 'Scroll back (←)', () => this.pan(-0.25)),
        button('timeline-forward', '▶', 'Scroll forward (→)', () => this.pan(0.25)),
        button('timeline-now', 'Now', 'Follow the present (End)', () => this.follow()),
        this.scroll,
        this.hover,
      ),
      this.canvas,
      el('p', { class: 'hint' }, `Bands: a leader's term (label: term and leader). Hatched: election. ${legendText}`),
    );
    this.wire();
  }

  /** Call every frame with the events (time-sorted), the present and the earliest time to show. */
  update(events: readonly TimelineEvent[], now: number, earliest: number): void {
    const last = events[events.length - 1];
    const signature = `${events.length}|${last?.time}|${last?.kind}|${events[0]?.time}`;
    if (signature !== this.signature) {
      this.signature = signature;
      this.layout = layoutTimeline(events);
      this.dirty = true;
    }
    // The present moves: the "now" line and the open band grow with it.
    if (now !== this.limits.now) this.dirty = true;
    // Live: scrollable over at least the last hour, however young the page.
    const from = this.options.clock === 'wall' ? Math.min(earliest, now - HOUR_MS) : earliest;
    const maxSpan = Math.max(this.options.defaultSpan, now - from);
    this.limits = { earliest: from, now, minSpan: this.options.minSpan, maxSpan };
    const v = clampViewport(this.viewport, this.limits);
    if (v.end !== this.viewport.end || v.span !== this.viewport.span || v.follow !== this.viewport.follow) {
      this.viewport = v;
      this.dirty = true;
    }
    const width = this.canvas.clientWidth || this.cssWidth;
    if (width !== this.cssWidth) {
      this.cssWidth = width;
      this.dirty = true;
    }
    if (this.dirty) this.draw();
  }

  /** Forgets the drawn events and follows the present again (a new run). */
  reset(): void {
    this.signature = '';
    this.viewport = { end: 0, span: this.options.defaultSpan, follow: true };
    this.dirty = true;
  }

  private setViewport(v: Viewport): void {
    this.viewport = v;
    this.dirty = true;
    this.draw();
  }

  private zoom(factor: number, anchor: number): void {
    this.setViewport(zoomViewport(this.viewport, factor, anchor, this.limits));
  }

  private pan(fraction: number): void {
    this.setViewport(panViewport(this.viewport, fraction * this.viewport.span, this.limits));
  }

  private follow(): void {
    this.setViewport(clampViewport({ ...this.viewport, follow: true }, this.limits));
  }

  private wire(): void {
    const c = this.canvas;
    c.addEventListener(
      'wheel',
      (e) => {
        e.preventDefault();
        const anchor = (e.offsetX - PAD) / this.innerWidth();
        if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) this.pan(e.deltaX / this.innerWidth());
        else this.zoom(Math.exp(e.deltaY * (e.ctrlKey ? 0.01 : 0.002)), anchor);
      },
      { passive: false },
    );
    c.addEventListener('pointerdown', (e) => {
      c.setPointerCapture(e.pointerId);
      this.pointers.set(e.pointerId, e.offsetX);
      this.pinchDistance = this.pointerSpread();
    });
    c.addEventListener('pointermove', (e) => {
      const previous = this.pointers.get(e.pointerId);
      if (previous === undefined) {
        this.showHover(e.offsetX, e.offsetY);
        return;
      }
      this.pointers.set(e.pointerId, e.offsetX);
      if (this.pointers.size >= 2) {
        const spread = this.pointerSpread();
        if (this.pinchDistance > 0 && spread > 0) {
          const xs = [...this.pointers.values()];
          this.zoom(this.pinchDistance / spread, ((xs[0]! + xs[1]!) / 2 - PAD) / this.innerWidth());
        }
        this.pinchDistance = spread;
      } else {
        this.pan(-(e.offsetX - previous) / this.innerWidth());
      }
    });
    const release = (e: PointerEvent): void => {
      this.pointers.delete(e.pointerId);
      this.pinchDistance = this.pointerSpread();
    };
    c.addEventListener('pointerup', release);
    c.addEventListener('pointercancel', release);
    c.addEventListener('keydown', (e) => {
      const actions: Record<string, () => void> = {
        ArrowLeft: () => this.pan(-0.1),
        ArrowRight: () => this.pan(0.1),
        '+': () => this.zoom(0.5, 1),
        '=': () => this.zoom(0.5, 1),
        '-': () => this.zoom(2, 1),
        End: () => this.follow(),
        Home: () => this.setViewport(clampViewport({ end: this.limits.earliest + this.viewport.span, span: this.viewport.span, follow: false }, this.limits)),
      };
      const action = actions[e.key];
      if (action) {
        e.preventDefault();
        e.stopPropagation();
        action();
      }
    });
    this.scroll.addEventListener('input', () => {
      const f = Number(this.scroll.value) / 1000;
      const first = this.limits.earliest + this.viewport.span;
      const end = first + f * Math.max(0, this.limits.now - first);
      this.setViewport(clampViewport({ end, span: this.viewport.span, follow: f >= 1 }, this.limits));
    });
    new ResizeObserver(() => {
      this.dirty = true;
    }).observe(c);
  }

  private innerWidth(): number {
    return Math.max(1, this.cssWidth - 2 * PAD);
  }

  private pointerSpread(): number {
    const xs = [...this.pointers.values()];
    return xs.length >= 2 ? Math.abs(xs[0]! - xs[1]!) : 0;
  }

  private showHover(offsetX: number, y: number): void {
    const w = this.innerWidth();
    const x = offsetX - PAD;
    const t = xToTime(x, this.viewport, w);
    const label = (time: number): string => tickLabel(time, this.viewport.span / 10, this.options.clock);
    let text = '';
    if (y < BAND_TOP) {
      const near = this.layout.marks.find((m) => Math.abs(timeToX(m.time, this.viewport, w) - x) < 6);
      if (near) text = `${label(near.time)} ${near.kind} ${this.options.member(near.member).name}${near.detail ? `: ${near.detail}` : ''}`;
    } else {
      const band = this.layout.bands.find((b) => b.start <= t && (b.end ?? this.limits.now) >= t);
      const election = this.layout.elections.find((e) => e.start <= t && (e.end ?? this.limits.now) >= t);
      if (band) text = `term ${band.term}: ${this.options.member(band.leader).name} led from ${label(band.start)}${band.end !== undefined ? ` to ${label(band.end)}` : ''}`;
      else if (election) text = `election for term ${election.term} from ${label(election.start)}`;
    }
    setText(this.hover, text);
  }

  private draw(): void {
    this.dirty = false;
    const dpr = window.devicePixelRatio || 1;
    const fullWidth = this.cssWidth;
    const w = fullWidth - 2 * PAD;
    if (this.canvas.width !== Math.round(fullWidth * dpr)) this.canvas.width = Math.round(fullWidth * dpr);
    if (this.canvas.height !== Math.round(HEIGHT * dpr)) this.canvas.height = Math.round(HEIGHT * dpr);
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, fullWidth, HEIGHT);
    ctx.translate(PAD, 0);
    const v = this.viewport;
    const x = (t: number): number => timeToX(t, v, w);
    const from = v.end - v.span;
    const now = this.limits.now;

    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    for (const e of this.layout.elections) {
      const end = e.end ?? now;
      if (end < from || e.start > v.end) continue;
      const x0 = Math.max(0, x(e.start));
      const x1 = Math.min(w, Math.max(x0 + 2, x(end)));
      ctx.fillStyle = hatch(ctx);
      ctx.fillRect(x0, ELECTION_TOP, x1 - x0, ELECTION_H);
      ctx.strokeStyle = '#7a3e65';
      ctx.strokeRect(x0 + 0.5, ELECTION_TOP + 0.5, x1 - x0 - 1, ELECTION_H - 1);
      if (x1 - x0 > 70) {
        ctx.fillStyle = '#3b1f31';
        ctx.fillText(`election T${e.term}`, x0 + 4, ELECTION_TOP + ELECTION_H / 2);
      }
    }
    for (const b of this.layout.bands) {
      const end = b.end ?? now;
      if (end < from || b.start > v.end) continue;
      const x0 = Math.max(0, x(b.start));
      const x1 = Math.min(w, Math.max(x0 + 2, x(end)));
      const member = this.options.member(b.leader);
      ctx.fillStyle = LEADER_COLORS[member.index % LEADER_COLORS.length]!;
      ctx.fillRect(x0, BAND_TOP, x1 - x0, BAND_H);
      ctx.strokeStyle = '#ffffff';
      ctx.beginPath();
      ctx.moveTo(x0 + 0.5, BAND_TOP);
      ctx.lineTo(x0 + 0.5, BAND_TOP + BAND_H);
      ctx.stroke();
      const text = `T${b.term} ${member.name}`;
      if (x1 - x0 > ctx.measureText(text).width + 8) {
        ctx.fillStyle = '#ffffff';
        ctx.fillRect(x0 + 3, BAND_TOP + 9, ctx.measureText(text).width + 6, 16);
        ctx.fillStyle = '#111111';
        ctx.fillText(text, x0 + 6, BAND_TOP + BAND_H / 2);
      }
    }
    const [first, last] = visibleRange(this.layout.marks, from, v.end);
    ctx.textAlign = 'center';
    ctx.font = '13px system-ui, sans-serif';
    let lastX = -Infinity;
    for (let i = first; i < last; i++) {
      const m = this.layout.marks[i]!;
      const mx = x(m.time);
      if (mx - lastX < 3) continue; // dense marks: one glyph per few pixels
      lastX = mx;
      ctx.fillStyle = m.kind === 'crash' ? '#b00020' : '#222222';
      ctx.fillText(MARK_GLYPHS[m.kind] ?? '•', mx, MARK_Y);
      ctx.fillStyle = 'rgba(0,0,0,0.25)';
      ctx.fillRect(mx, BAND_TOP, 1, BAND_H);
    }
    ctx.font = '11px system-ui, sans-serif';
    const { step, times } = ticks(v, Math.max(2, Math.floor(w / 90)));
    ctx.fillStyle = '#333333';
    ctx.fillRect(0, AXIS_Y, w, 1);
    for (const t of times) {
      const tx = x(t);
      ctx.fillRect(tx, AXIS_Y, 1, 5);
      ctx.fillText(tickLabel(t, step, this.options.clock), Math.min(w - 30, Math.max(30, tx)), AXIS_Y + 16);
    }
    if (now >= from && now <= v.end) {
      ctx.fillStyle = '#b00020';
      ctx.fillRect(Math.min(w - 2, x(now)), BAND_TOP - 4, 2, AXIS_Y - BAND_TOP + 4);
    }
    ctx.textAlign = 'start';

    const firstEnd = this.limits.earliest + v.span;
    const f = this.limits.now > firstEnd ? (v.end - firstEnd) / (this.limits.now - firstEnd) : 1;
    const value = String(Math.round(Math.min(1, Math.max(0, f)) * 1000));
    if (this.scroll.value !== value && document.activeElement !== this.scroll) this.scroll.value = value;
  }
}

let hatchPattern: CanvasPattern | null = null;

function hatch(ctx: CanvasRenderingContext2D): CanvasPattern | string {
  if (hatchPattern) return hatchPattern;
  const tile = document.createElement('canvas');
  tile.width = tile.height = 6;
  const t = tile.getContext('2d');
  if (!t) return '#e9c4da';
  t.fillStyle = '#f4e1ec';
  t.fillRect(0, 0, 6, 6);
  t.strokeStyle = '#b0608f';
  t.beginPath();
  t.moveTo(0, 6);
  t.lineTo(6, 0);
  t.stroke();
  hatchPattern = ctx.createPattern(tile, 'repeat');
  return hatchPattern ?? '#e9c4da';
}
