// Live mode's merge (src/ui/liveModel.ts): several members' event streams
// into one ClusterView and one de-duplicated timeline.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { LiveModel } from '../../src/ui/liveModel.js';
import type { FeedMessage, MemberView, TimelineEvent } from '../../src/ui/view.js';

const peers = [
  { id: 'a1', name: 'one', clientURLs: ['http://127.0.0.1:2379'] },
  { id: 'b2', name: 'two', clientURLs: ['http://127.0.0.1:22379'] },
  { id: 'c3', name: 'three', clientURLs: ['http://127.0.0.1:32379'] },
];

function member(id: string, over: Partial<MemberView> = {}): MemberView {
  return {
    id,
    name: peers.find((p) => p.id === id)!.name,
    role: 'follower',
    term: 2,
    vote: 'a1',
    leader: 'a1',
    commitIndex: 5,
    appliedIndex: 5,
    lastIndex: 5,
    lastTerm: 2,
    snapshotIndex: 0,
    electionElapsed: 1,
    electionTimeout: 10,
    log: [],
    voter: true,
    ...over,
  };
}

const hello = (id: string, startedAt: number, history: TimelineEvent[] = []): FeedMessage => ({
  type: 'hello',
  member: id,
  name: peers.find((p) => p.id === id)!.name,
  startedAt,
  peers,
  history,
});
const status = (now: number, m: MemberView, rates: { from: string; to: string; perSecond: number }[] = []): FeedMessage => ({ type: 'status', now, member: m, rates });
const event = (e: TimelineEvent): FeedMessage => ({ type: 'event', event: e });

describe('LiveModel', () => {
  it('learns every peer from one hello and draws the unheard ones down, in cluster order', () => {
    const model = new LiveModel();
    model.receive(hello('b2', 1000), 1000);
    assert.deepEqual(
      model.peers().map((p) => p.id),
      ['a1', 'b2', 'c3'],
    );
    const view = model.view(1100);
    assert.deepEqual(
      view.members.map((m) => [m.id, m.role]),
      [
        ['b2', 'down'],
        ['a1', 'down'],
        ['c3', 'down'],
      ],
    );
    assert.equal(view.members[1]!.name, 'one');
  });

  it('merges each member\'s own status into one view', () => {
    const model = new LiveModel();
    model.receive(hello('a1', 0), 0);
    model.receive(status(100, member('a1', { role: 'leader' })), 100);
    model.receive(status(100, member('b2', { commitIndex: 4 })), 100);
    model.receive(status(100, member('c3')), 100);
    const view = model.view(200);
    assert.deepEqual(
      view.members.map((m) => `${m.id}:${m.role}:${m.commitIndex}`),
      ['a1:leader:5', 'b2:follower:4', 'c3:follower:5'],
    );
    assert.equal(view.now, 200);
    assert.deepEqual(view.messages, []);
  });

  it('draws a member down when its stream goes quiet, and records the crash once', () => {
    const model = new LiveModel({ staleAfterMs: 1000 });
    model.receive(hello('a1', 0), 0);
    model.receive(status(0, member('a1', { role: 'leader', term: 2 })), 0);
    model.receive(status(0, member('b2')), 0);
    model.receive(status(900, member('a1', { role: 'leader', term: 2 })), 900);
    assert.equal(model.view(1500).members.find((m) => m.id === 'b2')!.role, 'down');
    assert.equal(model.view(1500).members.find((m) => m.id === 'a1')!.role, 'leader');
    const down = model.view(1500).members.find((m) => m.id === 'b2')!;
    assert.equal(down.commitIndex, 5, 'a down member keeps its last known numbers');
    model.sweep(1500);
    model.sweep(1600);
    const crashes = model.timeline().filter((e) => e.kind === 'crash');
    assert.deepEqual(
      crashes.map((e) => [e.member, e.time]),
      [['b2', 0]],
    );
    // It comes back: no crash is recorded again until the next silence.
    model.receive(status(1700, member('b2')), 1700);
    model.sweep(1800);
    assert.equal(model.timeline().filter((e) => e.kind === 'crash').length, 1);
    assert.equal(model.view(1800).members.find((m) => m.id === 'b2')!.role, 'follower');
  });

  it('records a restart when a member says hello with a new start time', () => {
    const model = new LiveModel();
    model.receive(hello('b2', 1000), 1000);
    model.receive(hello('b2', 1000), 5000); // a reconnect to the same process
    model.receive(hello('b2', 9000), 9500); // a new process
    assert.deepEqual(
      model.timeline().map((e) => [e.kind, e.member, e.time]),
      [['restart', 'b2', 9000]],
    );
  });

  it('de-duplicates the history replayed on every reconnect and keeps time order', () => {
    const model = new LiveModel();
    const history = [
      { time: 10, kind: 'election', member: 'a1', term: 2 },
      { time: 20, kind: 'leader', member: 'a1', term: 2 },
    ] satisfies TimelineEvent[];
    model.receive(hello('a1', 0, history), 30);
    model.receive(event({ time: 40, kind: 'snapshot', member: 'a1', term: 2, index: 100 }), 40);
    model.receive(hello('b2', 0, [{ time: 15, kind: 'confChange', member: 'b2', term: 2 }]), 45);
    model.receive(hello('a1', 0, history), 50);
    model.receive(event({ time: 40, kind: 'snapshot', member: 'a1', term: 2, index: 100 }), 60);
    assert.deepEqual(
      model.timeline().map((e) => `${e.time}:${e.kind}`),
      ['10:election', '15:confChange', '20:leader', '40:snapshot'],
    );
  });

  it('adds the leader event a status proves when the stream missed it', () => {
    const model = new LiveModel();
    model.receive(hello('a1', 0, [{ time: 5, kind: 'leader', member: 'a1', term: 1 }]), 0);
    model.receive(status(100, member('a1', { role: 'leader', term: 1 })), 100);
    model.receive(status(200, member('a1', { role: 'leader', term: 3 })), 200);
    model.receive(status(450, member('a1', { role: 'leader', term: 3 })), 450);
    assert.deepEqual(
      model.timeline().filter((e) => e.kind === 'leader').map((e) => [e.time, e.term]),
      [
        [5, 1],
        [200, 3],
      ],
    );
  });

  it('keeps the sender\'s count of a link\'s rate and drops the rates of silent members', () => {
    const model = new LiveModel({ staleAfterMs: 1000 });
    model.receive(hello('a1', 0), 0);
    model.receive(status(0, member('b2'), [{ from: 'a1', to: 'b2', perSecond: 3 }, { from: 'b2', to: 'a1', perSecond: 10 }]), 0);
    model.receive(status(0, member('a1', { role: 'leader' }), [{ from: 'a1', to: 'b2', perSecond: 10 }]), 0);
    model.receive(status(0, member('c3'), [{ from: 'c3', to: 'a1', perSecond: 7 }]), 0);
    const rates = (now: number): string[] => model.view(now).rates.map((r) => `${r.from}>${r.to}=${r.perSecond}`).sort();
    assert.deepEqual(rates(10), ['a1>b2=10', 'b2>a1=10', 'c3>a1=7']);
    model.receive(status(1500, member('a1', { role: 'leader' }), []), 1500);
    assert.deepEqual(rates(1600), [], 'b2 and c3 are silent; a1 reports nothing');
  });

  it('forgets events beyond the retention (never less than an hour) and the bound', () => {
    const model = new LiveModel({ retentionMs: 1, maxEvents: 3 });
    const hour = 3_600_000;
    model.receive(event({ time: 0, kind: 'snapshot', member: 'a1', term: 1, index: 1 }), 0);
    model.receive(event({ time: hour - 1, kind: 'snapshot', member: 'a1', term: 1, index: 2 }), 0);
    assert.equal(model.timeline().length, 2, 'an hour is always kept');
    model.receive(event({ time: hour + 10, kind: 'snapshot', member: 'a1', term: 1, index: 3 }), 0);
    assert.deepEqual(
      model.timeline().map((e) => e.index),
      [2, 3],
    );
    for (let i = 4; i <= 6; i++) model.receive(event({ time: hour + 10 + i, kind: 'snapshot', member: 'a1', term: 1, index: i }), 0);
    assert.deepEqual(
      model.timeline().map((e) => e.index),
      [4, 5, 6],
    );
    // A forgotten event may be learnt again (it is no longer a duplicate).
    const before = model.changes;
    model.receive(event({ time: hour + 14, kind: 'snapshot', member: 'a1', term: 1, index: 4 }), 0);
    assert.ok(model.changes > before);
  });
});
