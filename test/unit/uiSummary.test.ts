// What the page prints about a cluster (src/ui/summary.ts): the leader and
// its progress table.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { currentLeader, progressRows } from '../../src/ui/summary.js';
import type { ClusterView, MemberView } from '../../src/ui/view.js';

const m = (id: string, role: MemberView['role'], term: number, over: Partial<MemberView> = {}): MemberView => ({
  id,
  name: `n${id}`,
  role,
  term,
  vote: undefined,
  leader: undefined,
  commitIndex: 0,
  appliedIndex: 0,
  lastIndex: 0,
  lastTerm: 0,
  snapshotIndex: 0,
  electionElapsed: 0,
  electionTimeout: 10,
  log: [],
  voter: true,
  ...over,
});
const cluster = (members: MemberView[]): ClusterView => ({ now: 0, members, messages: [], cutLinks: [], rates: [] });

describe('summary', () => {
  it('shows the leader of the newest term when a deposed one still thinks it leads', () => {
    const view = cluster([m('1', 'leader', 2), m('2', 'leader', 3), m('3', 'follower', 3)]);
    assert.equal(currentLeader(view)?.id, '2');
    assert.equal(currentLeader(cluster([m('1', 'follower', 1), m('2', 'candidate', 2)])), undefined);
  });

  it('lists the followers in member order with their lag behind the leader', () => {
    const leader = m('1', 'leader', 2, {
      lastIndex: 10,
      progress: [
        { id: '3', matchIndex: 4, nextIndex: 5, state: 'probe', recentActive: false },
        { id: '1', matchIndex: 10, nextIndex: 11, state: 'replicate', recentActive: true },
        { id: '2', matchIndex: 10, nextIndex: 11, state: 'replicate', recentActive: true },
      ],
    });
    const view = cluster([leader, m('2', 'follower', 2), m('3', 'follower', 2)]);
    assert.deepEqual(progressRows(view, leader), [
      { id: '2', name: 'n2', matchIndex: 10, nextIndex: 11, state: 'replicate', recentActive: true, lag: 0 },
      { id: '3', name: 'n3', matchIndex: 4, nextIndex: 5, state: 'probe', recentActive: false, lag: 6 },
    ]);
  });
});
