// Derived facts the page prints about a ClusterView: who leads, and the
// leader's view of its followers as table rows.

import type { ClusterView, MemberView, ProgressView } from './view.js';

/**
 * The leader to show: the live member that is leader in the highest term.
 * Two members may both think they lead during a partition (the deposed one
 * in an older term, §5.1 / §6.4); the one in the newest term is the leader.
 */
export function currentLeader(view: ClusterView): MemberView | undefined {
  let best: MemberView | undefined;
  for (const m of view.members) {
    if (m.role === 'leader' && (!best || m.term > best.term)) best = m;
  }
  return best;
}

export interface ProgressRow {
  readonly id: string;
  readonly name: string;
  readonly matchIndex: number;
  readonly nextIndex: number;
  readonly state: ProgressView['state'];
  readonly recentActive: boolean;
  /** Entries the follower is behind the leader's last index. */
  readonly lag: number;
}

/** The leader's progress table, one row per other member, in member order. */
export function progressRows(view: ClusterView, leader: MemberView): ProgressRow[] {
  const names = new Map(view.members.map((m) => [m.id, m.name]));
  const order = new Map(view.members.map((m, i) => [m.id, i]));
  return (leader.progress ?? [])
    .filter((p) => p.id !== leader.id)
    .map((p) => ({
      id: p.id,
      name: names.get(p.id) ?? p.id,
      matchIndex: p.matchIndex,
      nextIndex: p.nextIndex,
      state: p.state,
      recentActive: p.recentActive,
      lag: Math.max(0, leader.lastIndex - p.matchIndex),
    }))
    .sort((a, b) => (order.get(a.id) ?? 1e9) - (order.get(b.id) ?? 1e9));
}
