// The timeline strip's model: which leader held which term when, when
// elections were running, where the marks go, and the visible window that
// the user zooms and scrolls. Pure functions over TimelineEvent lists, the
// same for live (wall-clock ms) and sandbox (simulated ms) timelines.

import type { TimelineEvent, TimelineEventKind } from './view.js';

/** A term during which one leader led, from its election to its end. */
export interface LeaderBand {
  readonly term: number;
  readonly leader: string;
  readonly start: number;
  /** Undefined while the leader still leads. */
  readonly end: number | undefined;
}

/** A period with elections and no leader, from the first campaign to the next leader. */
export interface ElectionWindow {
  readonly term: number;
  readonly start: number;
  readonly end: number | undefined;
}

export interface TimelineLayout {
  readonly bands: readonly LeaderBand[];
  readonly elections: readonly ElectionWindow[];
  /** The marks drawn above the bands: everything but leader and election events. */
  readonly marks: readonly TimelineEvent[];
}

const MARK_KINDS: ReadonlySet<TimelineEventKind> = new Set([
  'crash',
  'restart',
  'snapshot',
  'confChange',
  'partition',
  'heal',
  'stepDown',
]);

/** Orders events by time, keeping the given order for equal times (a stable sort). */
function sortEvents(events: readonly TimelineEvent[]): TimelineEvent[] {
  return events
    .map((event, i) => ({ event, i }))
    .sort((a, b) => a.event.time - b.event.time || a.i - b.i)
    .map((x) => x.event);
}

/**
 * Derives leader bands and election windows from the events. A band starts
 * when a member becomes leader and ends when it steps down or crashes, or
 * when another leader or an election in a higher term appears (a deposed
 * leader may never report stepping down: it may be partitioned away).
 */
export function layoutTimeline(events: readonly TimelineEvent[]): TimelineLayout {
  const bands: LeaderBand[] = [];
  const elections: ElectionWindow[] = [];
  const marks: TimelineEvent[] = [];
  let band: { term: number; leader: string; start: number } | undefined;
  let election: { term: number; start: number } | undefined;

  const closeBand = (at: number): void => {
    if (band) bands.push({ ...band, end: at });
    band = undefined;
  };
  const closeElection = (at: number): void => {
    if (election) elections.push({ ...election, end: at });
    election = undefined;
  };

  for (const e of sortEvents(events)) {
    switch (e.kind) {
      case 'election':
        // A stale campaign in a term already led changes nothing.
        if (band && e.term <= band.term) break;
        if (band) closeBand(e.time);
        if (!election) election = { term: e.term, start: e.time };
        else election.term = Math.max(election.term, e.term);
        break;
      case 'leader':
        if (band && band.term === e.term && band.leader === e.member) break; // reported twice
        if (band && e.term < band.term) break; // an old leader's late report
        closeBand(e.time);
        closeElection(e.time);
        band = { term: e.term, leader: e.member, start: e.time };
        break;
      case 'stepDown':
      case 'crash':
        if (band && band.leader === e.member) closeBand(e.time);
        marks.push(e);
        break;
      default:
        if (MARK_KINDS.has(e.kind)) marks.push(e);
    }
  }
  if (band) bands.push({ ...band, end: undefined });
  if (election) elections.push({ ...election, end: undefined });
  return { bands, elections, marks };
}

/** The visible window of the timeline: [end - span, end]. */
export interface Viewport {
  readonly end: number;
  readonly span: number;
  /** Whether the window follows the present (end = now) as time passes. */
  readonly follow: boolean;
}

export interface ViewportLimits {
  /** The earliest time that can be shown (the start of the history kept). */
  readonly earliest: number;
  /** The present. */
  readonly now: number;
  readonly minSpan: number;
  readonly maxSpan: number;
}

/** One hour: the live timeline keeps and can show at least this much. */
export const HOUR_MS = 3_600_000;

/**
 * Keeps a window inside the history and its span within limits. The window
 * never starts before the earliest time: while the history is shorter than
 * the window, the window starts at the earliest time and the present is
 * drawn inside it. A window reaching the present follows it.
 */
export function clampViewport(v: Viewport, limits: ViewportLimits): Viewport {
  const maxSpan = Math.max(limits.minSpan, limits.maxSpan);
  const span = Math.min(maxSpan, Math.max(limits.minSpan, v.span));
  const latest = Math.max(limits.now, limits.earliest + span);
  if (v.follow) return { end: latest, span, follow: true };
  const end = Math.max(limits.earliest + span, Math.min(v.end, latest));
  return { end, span, follow: end >= latest };
}

/**
 * Zooms by `factor` (< 1 zooms in) keeping the time under `anchor` (a
 * fraction of the width from the left) in place, like a map.
 */
export function zoomViewport(v: Viewport, factor: number, anchor: number, limits: ViewportLimits): Viewport {
  if (!(factor > 0)) throw new RangeError(`zoomViewport: factor must be positive, got ${factor}`);
  const a = Math.min(1, Math.max(0, anchor));
  const maxSpan = Math.max(limits.minSpan, limits.maxSpan);
  const span = Math.min(maxSpan, Math.max(limits.minSpan, v.span * factor));
  const pinned = v.end - v.span + a * v.span;
  const follow = v.follow && a >= 0.999; // zooming around the present keeps following it
  return clampViewport({ end: pinned + (1 - a) * span, span, follow }, limits);
}

/** Scrolls by `dt` milliseconds (negative: into the past). Scrolling back stops following. */
export function panViewport(v: Viewport, dt: number, limits: ViewportLimits): Viewport {
  const latest = Math.max(limits.now, limits.earliest + v.span);
  const end = (v.follow ? latest : v.end) + dt;
  return clampViewport({ end, span: v.span, follow: end >= latest }, limits);
}

/** The x coordinate of `time` in a drawing `width` wide. */
export function timeToX(time: number, v: Viewport, width: number): number {
  return ((time - (v.end - v.span)) / v.span) * width;
}

/** The time at x in a drawing `width` wide. */
export function xToTime(x: number, v: Viewport, width: number): number {
  return v.end - v.span + (x / width) * v.span;
}

const TICK_STEPS_MS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
  900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
];

/** Round tick times for a window: the smallest step giving at most `maxTicks` ticks. */
export function ticks(v: Viewport, maxTicks: number): { readonly step: number; readonly times: readonly number[] } {
  const want = v.span / Math.max(1, maxTicks);
  const step = TICK_STEPS_MS.find((s) => s >= want) ?? TICK_STEPS_MS[TICK_STEPS_MS.length - 1]!;
  const times: number[] = [];
  const start = v.end - v.span;
  for (let t = Math.ceil(start / step) * step; t <= v.end; t += step) times.push(t);
  return { step, times };
}

/** A tick label: wall-clock time of day for live timelines, seconds for simulated ones. */
export function tickLabel(time: number, step: number, clock: 'wall' | 'sim'): string {
  if (clock === 'sim') {
    const s = time / 1000;
    return step < 10 ? `${s.toFixed(3)} s` : step < 100 ? `${s.toFixed(2)} s` : step < 1000 ? `${s.toFixed(1)} s` : `${s.toFixed(0)} s`;
  }
  const d = new Date(time);
  const pad = (n: number): string => String(n).padStart(2, '0');
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (step >= 60_000) return hm;
  const hms = `${hm}:${pad(d.getSeconds())}`;
  return step >= 1000 ? hms : `${hms}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/**
 * The half-open index range [first, last) of the events visible in
 * [from, to], found by binary search in a time-sorted list (an hour of a busy
 * cluster holds many events; drawing must not scan them all).
 */
export function visibleRange(sorted: readonly { readonly time: number }[], from: number, to: number): [number, number] {
  return [bound(sorted, (t) => t < from), bound(sorted, (t) => t <= to)];
}

/** The first index whose time fails `before` (the list is sorted by time). */
function bound(sorted: readonly { readonly time: number }[], before: (time: number) => boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(sorted[mid]!.time)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
