// Where things go in the cluster drawing: nodes on a circle, the two
// directions of a link drawn side by side, messages moving along them, and
// the election timer as a ring. Pure math, shared by the page and its tests.

export interface Point {
  readonly x: number;
  readonly y: number;
}

/**
 * Places `count` nodes evenly on a circle, the first at the top, going
 * clockwise, so a node keeps its place as long as the membership does.
 */
export function circleLayout(count: number, center: Point, radius: number): Point[] {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`circleLayout: count must be a non-negative integer, got ${count}`);
  if (count === 1) return [{ x: center.x, y: center.y }];
  const points: Point[] = [];
  for (let i = 0; i < count; i++) {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / count;
    points.push({ x: center.x + radius * Math.cos(angle), y: center.y + radius * Math.sin(angle) });
  }
  return points;
}

/** A directed link's drawn segment: from the edge of one node to the edge of the other. */
export interface Segment {
  readonly from: Point;
  readonly to: Point;
}

/**
 * The segment a directed link from `a` to `b` is drawn on: shortened by the
 * node radius at both ends and shifted `offset` to the right of the
 * direction of travel, so a→b and b→a are two parallel lanes and a one-way
 * cut is visible on its own lane.
 */
export function linkSegment(a: Point, b: Point, nodeRadius: number, offset: number): Segment {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const length = Math.hypot(dx, dy);
  if (length === 0) return { from: a, to: b };
  const ux = dx / length;
  const uy = dy / length;
  // Right-hand normal in screen coordinates (y grows downwards).
  const nx = -uy * offset;
  const ny = ux * offset;
  const inset = Math.min(nodeRadius, length / 2);
  return {
    from: { x: a.x + ux * inset + nx, y: a.y + uy * inset + ny },
    to: { x: b.x - ux * inset + nx, y: b.y - uy * inset + ny },
  };
}

/** How far a message has travelled, in [0, 1], at time `now`. */
export function messageProgress(sentAt: number, deliverAt: number, now: number): number {
  if (deliverAt <= sentAt) return now >= deliverAt ? 1 : 0;
  const t = (now - sentAt) / (deliverAt - sentAt);
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

/** The point a fraction `t` along a segment. */
export function along(segment: Segment, t: number): Point {
  return {
    x: segment.from.x + (segment.to.x - segment.from.x) * t,
    y: segment.from.y + (segment.to.y - segment.from.y) * t,
  };
}

/** The direction of travel of a segment in degrees (0 = rightwards), to rotate a message's shape. */
export function segmentAngle(segment: Segment): number {
  return (Math.atan2(segment.to.y - segment.from.y, segment.to.x - segment.from.x) * 180) / Math.PI;
}

/**
 * Opacity of a message the network will drop: it fades out over the first
 * half of its way, so a loss is seen as a message vanishing mid-link.
 */
export function droppedOpacity(progress: number): number {
  return Math.max(0, 1 - progress * 2);
}

/**
 * The election timer ring: the fraction of the timeout still to run, in
 * [0, 1]. A leader has no election timer running (it sends heartbeats), so
 * the caller draws no ring for it.
 */
export function timerRemaining(elapsed: number, timeout: number): number {
  if (timeout <= 0) return 0;
  const left = 1 - elapsed / timeout;
  return left < 0 ? 0 : left > 1 ? 1 : left;
}

/** stroke-dasharray for a circle of `radius` showing `fraction` of its circumference. */
export function ringDash(radius: number, fraction: number): string {
  const circumference = 2 * Math.PI * radius;
  const on = circumference * Math.max(0, Math.min(1, fraction));
  return `${on.toFixed(2)} ${(circumference - on + 0.01).toFixed(2)}`;
}
