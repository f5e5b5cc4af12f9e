// Membership through the node runtime: a learner joins and catches up, is
// promoted, a member is removed; one change at a time; a member that joins
// after the log was compacted learns its peers from the snapshot.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { InvalidRequestError } from '../../src/node/errors.js';
import { ProposalDroppedError } from '../../src/raft/errors.js';
import { TestCluster, bytes, waitFor } from './nodeHarness.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

async function writes(c: TestCluster, prefix: string, n: number): Promise<void> {
  const leader = await c.waitLeader();
  await Promise.all(Array.from({ length: n }, (_, i) => leader.propose(bytes(`${prefix}${i}`))));
}

describe('RaftNode membership', () => {
  it('adds a learner that catches up, promotes it, and removes a member', async () => {
    const c = (cluster = new TestCluster([1, 2, 3]));
    await c.startAll();
    await writes(c, 'a', 10);
    const leader = await c.waitLeader();
    const applied: string[] = [];
    leader.on('confChangeApplied', (e) => applied.push(`${e.change.changes[0]!.type}:${e.change.changes[0]!.nodeId}`));

    c.addMemberSlot(4);
    const cs = await leader.addMember(4, { learner: true, url: c.url(4) });
    assert.deepEqual(cs.learners, [4]);
    assert.deepEqual([...cs.voters].sort(), [1, 2, 3]);
    const peers: Record<number, string> = { 1: c.url(1), 2: c.url(2), 3: c.url(3) };
    const n4 = await c.start(4, { initialVoters: undefined, join: true, peers });
    await waitFor(() => n4.applied >= leader.applied, 'the learner to catch up');
    assert.deepEqual(c.member(4).sm.log, c.member(leader.id).sm.log);
    assert.equal(n4.status().role, 'follower');

    await assert.rejects(leader.promoteMember(2), InvalidRequestError);
    const promoted = await leader.promoteMember(4);
    assert.deepEqual([...promoted.voters].sort(), [1, 2, 3, 4]);
    assert.deepEqual(promoted.learners, []);

    // A removed follower may never hear of its removal (the leader stops
    // replicating to it), as in etcd: it is simply stopped.
    const victim = c.followers().find((n) => n.id !== 4)!;
    const after = await leader.removeMember(victim.id);
    assert.deepEqual([...after.voters].sort(), [1, 2, 3, 4].filter((id) => id !== victim.id));
    await c.stop(victim.id);

    await writes(c, 'b', 5);
    await waitFor(() => c.member(4).sm.log.length === 15, 'the new member to apply the later writes');
    assert.deepEqual(applied, ['addLearner:4', 'addNode:4', `removeNode:${victim.id}`]);
    await assert.rejects(leader.addMember(4), InvalidRequestError);
    await assert.rejects(leader.removeMember(victim.id), InvalidRequestError);
  });

  it('a leader that removes itself steps down and the rest elect a new one', async () => {
    const c = (cluster = new TestCluster([1, 2, 3]));
    await c.startAll();
    await writes(c, 'a', 3);
    const leader = await c.waitLeader();
    const removed = new Promise<{ index: number }>((resolve) => leader.once('removed', resolve));
    const cs = await leader.removeMember(leader.id);
    assert.ok(!cs.voters.includes(leader.id));
    assert.ok((await removed).index > 0);
    await c.stop(leader.id);
    const next = await c.waitLeader();
    assert.notEqual(next.id, leader.id);
    await writes(c, 'b', 3);
    await waitFor(() => c.running().every((n) => c.member(n.id).sm.log.length === 6), 'both remaining members to apply');
  });

  it('refuses a second membership change until the first is applied', async () => {
    const c = (cluster = new TestCluster([1, 2, 3]));
    await c.startAll();
    const leader = await c.waitLeader();
    const first = leader.addMember(4, { learner: true, url: c.url(4) });
    await assert.rejects(leader.addMember(5, { learner: true, url: c.url(5) }), (err: unknown) => {
      assert.ok(err instanceof ProposalDroppedError);
      assert.equal(err.reason, 'conf-change-pending');
      return true;
    });
    assert.deepEqual((await first).learners, [4]);
    assert.deepEqual((await leader.addMember(5, { learner: true, url: c.url(5) })).learners, [4, 5]);
  });

  it('a member joining after compaction gets a snapshot and learns its peers from it', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { node: { snapshotCount: 6, snapshotCatchUpEntries: 1 } }));
    await c.startAll();
    for (let i = 0; i < 4; i++) await writes(c, `w${i}-`, 5);
    const leader = await c.waitLeader();
    assert.ok(leader.status().firstIndex > 1, 'the leader compacted its log');
    await leader.addMember(4, { learner: true, url: c.url(4) });

    c.addMemberSlot(4);
    // It knows only the leader; the snapshot tells it the others.
    const n4 = await c.start(4, { initialVoters: undefined, join: true, peers: { [leader.id]: c.url(leader.id) } });
    const installed: number[] = [];
    n4.on('snapshotInstalled', (e) => installed.push(e.index));
    await waitFor(() => n4.applied >= leader.applied, 'the new member to catch up');
    assert.ok(installed.length >= 1);
    assert.deepEqual(c.member(4).sm.log, c.member(leader.id).sm.log);
    assert.deepEqual(
      [...n4.peerUrls()].sort((a, b) => a[0] - b[0]),
      [1, 2, 3, 4].map((id) => [id, c.url(id)]),
    );
  });
});
