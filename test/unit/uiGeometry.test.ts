// The cluster drawing's geometry (src/ui/geometry.ts): nodes on a circle,
// the two lanes of a link, message positions and the election timer ring.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { along, circleLayout, droppedOpacity, linkSegment, messageProgress, ringDash, segmentAngle, timerRemaining } from '../../src/ui/geometry.js';

const close = (a: number, b: number, eps = 1e-9): void => assert.ok(Math.abs(a - b) < eps, `${a} ≉ ${b}`);

describe('circleLayout', () => {
  it('puts the first node at the top and goes clockwise at equal distances', () => {
    const pts = circleLayout(4, { x: 100, y: 100 }, 50);
    close(pts[0]!.x, 100);
    close(pts[0]!.y, 50);
    close(pts[1]!.x, 150); // clockwise on screen: right
    close(pts[1]!.y, 100);
    close(pts[2]!.y, 150);
    close(pts[3]!.x, 50);
    for (const p of pts) close(Math.hypot(p.x - 100, p.y - 100), 50);
  });

  it('places 7 nodes with equal spacing between neighbours', () => {
    const pts = circleLayout(7, { x: 0, y: 0 }, 100);
    const gaps = pts.map((p, i) => {
      const q = pts[(i + 1) % 7]!;
      return Math.hypot(p.x - q.x, p.y - q.y);
    });
    for (const g of gaps) close(g, gaps[0]!, 1e-6);
  });

  it('centres a single node and rejects a bad count', () => {
    assert.deepEqual(circleLayout(1, { x: 3, y: 4 }, 10), [{ x: 3, y: 4 }]);
    assert.deepEqual(circleLayout(0, { x: 0, y: 0 }, 10), []);
    assert.throws(() => circleLayout(-1, { x: 0, y: 0 }, 10), RangeError);
    assert.throws(() => circleLayout(2.5, { x: 0, y: 0 }, 10), RangeError);
  });
});

describe('linkSegment', () => {
  it('insets both ends by the node radius', () => {
    const s = linkSegment({ x: 0, y: 0 }, { x: 100, y: 0 }, 10, 0);
    assert.deepEqual(s, { from: { x: 10, y: 0 }, to: { x: 90, y: 0 } });
  });

  it('draws the two directions of a link as separate parallel lanes', () => {
    const a = { x: 0, y: 0 };
    const b = { x: 100, y: 0 };
    const ab = linkSegment(a, b, 10, 5);
    const ba = linkSegment(b, a, 10, 5);
    // a->b travels right; its lane is below (screen y grows down); b->a's is above.
    close(ab.from.y, 5);
    close(ba.from.y, -5);
    close(ab.from.x, 10);
    close(ba.from.x, 90);
  });

  it('copes with coincident points', () => {
    const p = { x: 5, y: 5 };
    assert.deepEqual(linkSegment(p, p, 10, 5), { from: p, to: p });
  });
});

describe('message animation', () => {
  it('interpolates progress between sending and delivery, clamped', () => {
    assert.equal(messageProgress(100, 200, 50), 0);
    assert.equal(messageProgress(100, 200, 150), 0.5);
    assert.equal(messageProgress(100, 200, 250), 1);
    // Instant delivery: not started before, arrived at or after.
    assert.equal(messageProgress(100, 100, 99), 0);
    assert.equal(messageProgress(100, 100, 100), 1);
  });

  it('places a message along its lane and points it the way it goes', () => {
    const seg = { from: { x: 0, y: 0 }, to: { x: 10, y: 20 } };
    assert.deepEqual(along(seg, 0.5), { x: 5, y: 10 });
    close(segmentAngle({ from: { x: 0, y: 0 }, to: { x: 0, y: 10 } }), 90);
    close(segmentAngle({ from: { x: 10, y: 0 }, to: { x: 0, y: 0 } }), 180);
  });

  it('fades a dropped message out by mid-link', () => {
    assert.equal(droppedOpacity(0), 1);
    assert.equal(droppedOpacity(0.25), 0.5);
    assert.equal(droppedOpacity(0.5), 0);
    assert.equal(droppedOpacity(0.9), 0);
  });
});

describe('election timer ring', () => {
  it('shrinks from full to empty as the timer runs', () => {
    assert.equal(timerRemaining(0, 10), 1);
    assert.equal(timerRemaining(4, 10), 0.6);
    assert.equal(timerRemaining(12, 10), 0); // overdue: empty, not negative
    assert.equal(timerRemaining(5, 0), 0);
  });

  it('draws that fraction of the circumference', () => {
    const r = 10;
    const [on, off] = ringDash(r, 0.25).split(' ').map(Number) as [number, number];
    close(on, (2 * Math.PI * r) / 4, 0.01);
    close(on + off, 2 * Math.PI * r, 0.02);
    assert.equal(ringDash(r, 2).split(' ')[0], (2 * Math.PI * r).toFixed(2));
  });
});
