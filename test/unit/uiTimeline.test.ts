// The timeline strip's model (src/ui/timeline.ts): leader bands and
// election windows from events, and the zoom/scroll window over an hour.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { HOUR_MS, clampViewport, layoutTimeline, panViewport, tickLabel, ticks, timeToX, visibleRange, xToTime, zoomViewport, type ViewportLimits } from '../../src/ui/timeline.js';
import type { TimelineEvent } from '../../src/ui/view.js';

const ev = (time: number, kind: TimelineEvent['kind'], member: string, term: number, index?: number): TimelineEvent => ({ time, kind, member, term, ...(index !== undefined ? { index } : {}) });

describe('layoutTimeline', () => {
  it('turns elections and leaders into election windows and leader bands', () => {
    const { bands, elections } = layoutTimeline([
      ev(0, 'election', 'a', 1),
      ev(10, 'leader', 'a', 1),
      ev(100, 'crash', 'a', 1),
      ev(150, 'election', 'b', 2),
      ev(160, 'election', 'c', 3), // split vote: another candidate, a higher term
      ev(170, 'leader', 'c', 3),
    ]);
    assert.deepEqual(bands, [
      { term: 1, leader: 'a', start: 10, end: 100 },
      { term: 3, leader: 'c', start: 170, end: undefined },
    ]);
    assert.deepEqual(elections, [
      { term: 1, start: 0, end: 10 },
      { term: 3, start: 150, end: 170 },
    ]);
  });

  it('ends a deposed leader\'s band at the next election even if it never steps down', () => {
    const { bands } = layoutTimeline([ev(0, 'leader', 'a', 1), ev(50, 'election', 'b', 2), ev(60, 'leader', 'b', 2)]);
    assert.deepEqual(bands, [
      { term: 1, leader: 'a', start: 0, end: 50 },
      { term: 2, leader: 'b', start: 60, end: undefined },
    ]);
  });

  it('ignores a stale campaign, a repeated leader report and an old leader\'s late one', () => {
    const { bands, elections } = layoutTimeline([
      ev(0, 'leader', 'a', 2),
      ev(5, 'election', 'z', 2), // a candidate in a term already led
      ev(6, 'leader', 'a', 2),
      ev(7, 'leader', 'q', 1),
    ]);
    assert.deepEqual(bands, [{ term: 2, leader: 'a', start: 0, end: undefined }]);
    assert.deepEqual(elections, []);
  });

  it('keeps marks in time order, including step-downs, and sorts unordered input', () => {
    const { marks, bands } = layoutTimeline([ev(30, 'snapshot', 'b', 1, 40), ev(0, 'leader', 'a', 1), ev(20, 'stepDown', 'a', 1), ev(25, 'confChange', 'a', 1)]);
    assert.deepEqual(
      marks.map((m) => m.kind),
      ['stepDown', 'confChange', 'snapshot'],
    );
    assert.deepEqual(bands, [{ term: 1, leader: 'a', start: 0, end: 20 }]);
  });
});

describe('viewport', () => {
  const limits: ViewportLimits = { earliest: 0, now: 10 * HOUR_MS, minSpan: 1000, maxSpan: 10 * HOUR_MS };

  it('follows the present until scrolled back, and again when scrolled to it', () => {
    const v = clampViewport({ end: 0, span: 60_000, follow: true }, limits);
    assert.deepEqual(v, { end: limits.now, span: 60_000, follow: true });
    const back = panViewport(v, -30_000, limits);
    assert.equal(back.follow, false);
    assert.equal(back.end, limits.now - 30_000);
    const later = clampViewport(back, { ...limits, now: limits.now + 5000 });
    assert.equal(later.end, back.end, 'a window in the past stays put as time passes');
    const forward = panViewport(later, 10 * HOUR_MS, { ...limits, now: limits.now + 5000 });
    assert.deepEqual(forward, { end: limits.now + 5000, span: 60_000, follow: true });
  });

  it('scrolls back over at least an hour but not before the history', () => {
    const v = panViewport({ end: limits.now, span: 60_000, follow: true }, -HOUR_MS, limits);
    assert.equal(v.end, limits.now - HOUR_MS);
    const start = panViewport(v, -100 * HOUR_MS, limits);
    assert.equal(start.end, 60_000, 'the window stops at the earliest time');
  });

  it('zooms around the anchor and within the span limits', () => {
    const v = { end: 100_000, span: 100_000, follow: false };
    const l = { ...limits, now: 200_000 };
    const z = zoomViewport(v, 0.5, 0.5, l);
    assert.equal(z.span, 50_000);
    assert.equal(xToTime(0.5, z, 1), 50_000, 'the time under the anchor stays put');
    assert.equal(zoomViewport(v, 1e-9, 0.5, l).span, 1000);
    assert.equal(zoomViewport(v, 1e9, 0.5, l).span, 10 * HOUR_MS);
    assert.throws(() => zoomViewport(v, 0, 0.5, l), RangeError);
  });

  it('zooming a following window at its right edge keeps following', () => {
    const v = clampViewport({ end: 0, span: 60_000, follow: true }, limits);
    assert.equal(zoomViewport(v, 0.5, 1, limits).follow, true);
    assert.equal(zoomViewport(v, 0.5, 0.2, limits).follow, false);
  });

  it('starts at the earliest time while the history is shorter than the window', () => {
    const v = clampViewport({ end: 0, span: 5000, follow: true }, { earliest: 0, now: 300, minSpan: 50, maxSpan: 5000 });
    assert.deepEqual(v, { end: 5000, span: 5000, follow: true });
    assert.equal(timeToX(300, v, 1000), 60);
  });
});

describe('ticks and labels', () => {
  it('picks a round step giving at most the ticks asked for', () => {
    const { step, times } = ticks({ end: 60_000, span: 60_000, follow: false }, 7);
    assert.equal(step, 10_000);
    assert.deepEqual(times, [0, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000]);
    assert.ok(ticks({ end: HOUR_MS, span: HOUR_MS, follow: false }, 10).times.length <= 11);
  });

  it('labels simulated seconds with the precision of the step', () => {
    assert.equal(tickLabel(1500, 500, 'sim'), '1.5 s');
    assert.equal(tickLabel(1520, 20, 'sim'), '1.52 s');
    assert.equal(tickLabel(3000, 1000, 'sim'), '3 s');
  });

  it('labels wall-clock time of day', () => {
    const t = new Date(2026, 0, 2, 13, 4, 5, 60).getTime();
    assert.equal(tickLabel(t, 60_000, 'wall'), '13:04');
    assert.equal(tickLabel(t, 5000, 'wall'), '13:04:05');
    assert.equal(tickLabel(t, 100, 'wall'), '13:04:05.060');
  });
});

describe('visibleRange', () => {
  it('finds the events inside a window by binary search', () => {
    const sorted = [1, 2, 2, 5, 9].map((time) => ({ time }));
    assert.deepEqual(visibleRange(sorted, 2, 5), [1, 4]);
    assert.deepEqual(visibleRange(sorted, 6, 8), [4, 4]);
    assert.deepEqual(visibleRange(sorted, 0, 100), [0, 5]);
    assert.deepEqual(visibleRange([], 0, 1), [0, 0]);
  });
});
