// Snapshots taken in slices (StateMachine.beginSnapshot): the member goes on
// applying and answering while one is encoded; it lands at the index it was
// begun at and the log is compacted behind it; a restart recovers from it;
// a snapshot from the leader installed meanwhile wins; stop() and a failing
// encoder end it cleanly; and a new member gets a fresh snapshot through the
// core's "temporarily unavailable" retry.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { NodeFailedError } from '../../src/node/errors.js';
import { DiskStorage } from '../../src/storage/diskStorage.js';
import { SlicedLogMachine, TestCluster, bytes, proposeRange, settle, waitFor } from './nodeHarness.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

const sliced = (c: TestCluster, id: number) => c.member(id).sm as SlicedLogMachine;

describe('RaftNode snapshots in slices', () => {
  it('applies and answers while a snapshot encodes; it lands at its index, compacts, and a restart recovers from it', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { sliced: true, node: { snapshotCount: 10, snapshotCatchUpEntries: 3 } }));
    await c.startAll();
    for (const id of c.ids) sliced(c, id).held = true;
    const taken = new Map<number, { index: number; compactedTo: number; appliedThen: number }>();
    for (const n of c.running()) {
      n.on('snapshotTaken', (e) => {
        if (!taken.has(n.id)) taken.set(n.id, { index: e.index, compactedTo: e.compactedTo, appliedThen: n.applied });
      });
    }
    await proposeRange(c, 0, 12);
    await waitFor(() => c.ids.every((id) => sliced(c, id).begun.length === 1), 'every member to begin a snapshot');

    // Held: the snapshots stay under way while 30 more proposals are applied and answered.
    await proposeRange(c, 12, 42);
    const leader = await c.waitLeader();
    await c.waitApplied(leader.applied);
    for (const id of c.ids) {
      const n = c.node(id);
      assert.equal(n.status().snapshotIndex, 0, `member ${id}: nothing written while the snapshot is held`);
      assert.equal(c.member(id).sm.log.length, 42);
      assert.ok(sliced(c, id).steps > 10, `member ${id} stepped its snapshot between passes`);
      assert.equal(sliced(c, id).begun.length, 1, 'one snapshot at a time');
    }

    for (const id of c.ids) sliced(c, id).held = false;
    await waitFor(() => taken.size === 3, 'every member to write its snapshot');
    for (const id of c.ids) {
      const t = taken.get(id)!;
      const s = c.node(id).status();
      // At the applied index of its begin (the machine's last command then), not at the later one.
      assert.ok(t.index >= sliced(c, id).begun[0]! && t.index < t.appliedThen, `member ${id}: snapshot at ${t.index}, applied ${t.appliedThen}`);
      assert.ok(t.index < sliced(c, id).begun[0]! + 4, 'taken at the begin, not later');
      assert.equal(t.compactedTo, t.index - 3);
      assert.ok(s.firstIndex === t.index - 2 || s.snapshotIndex > t.index, `member ${id}: log compacted (first index ${s.firstIndex})`);
    }
    const logs = new Map(c.ids.map((id) => [id, c.member(id).sm.log]));
    await c.stopAll();

    const disk = DiskStorage.open({ fs: c.member(2).fs, dir: c.member(2).dir, clusterId: 'raftkv', memberId: 2 });
    const snapIndex = disk.snapshot().metadata.index;
    assert.ok(snapIndex >= taken.get(2)!.index);
    disk.close();

    await c.startAll();
    for (const id of c.ids) {
      const sm = c.member(id).sm;
      assert.equal(sm.restores.length, 1, `member ${id} restored from its snapshot`);
      // LogMachine refuses an entry at or below what it holds: a snapshot
      // holding more than its index says would fail the replay here.
      await waitFor(() => sm.log.length === 42, `member ${id} to replay the entries after its snapshot`);
      assert.deepEqual(sm.log, logs.get(id));
    }
  });

  it('a snapshot from the leader installed while one encodes wins: the local one is dropped', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { sliced: true, node: { snapshotCount: 10, snapshotCatchUpEntries: 2 } }));
    await c.startAll();
    let leader = await c.waitLeader();
    const f = c.followers()[0]!;
    const fsm = sliced(c, f.id);
    fsm.held = true;
    await proposeRange(c, 0, 12);
    await waitFor(() => fsm.begun.length === 1, 'the follower to begin a snapshot');
    const installed: number[] = [];
    f.on('snapshotInstalled', (e) => installed.push(e.index));

    c.net.isolate(f.id);
    for (let i = 12; i < 52; i += 10) await proposeRange(c, i, i + 10);
    leader = await c.waitLeader();
    await waitFor(() => leader.status().firstIndex > f.applied + 1, 'the leader to compact past the follower');
    c.net.heal();
    await waitFor(() => installed.length > 0, 'the follower to install the leader snapshot');
    await c.waitApplied(leader.applied);

    // Its own snapshot, begun before, is dropped: releasing it writes nothing.
    fsm.held = false;
    await settle(50);
    assert.equal(f.metrics().snapshotsTaken, 0);
    assert.equal(f.status().snapshotIndex, installed[0]);
    assert.deepEqual(fsm.log, c.member(leader.id).sm.log);
    // And it snapshots again when due: within 1.5 snapshotCount of the last (its phase, node.ts snapshotDueAt).
    await proposeRange(c, 52, 72);
    await waitFor(() => f.metrics().snapshotsTaken === 1, 'the follower to take its next snapshot');
    assert.ok(f.status().snapshotIndex > installed[0]!);
  });

  it('stop() during an encoding abandons it; the member restarts from its log', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { sliced: true, node: { snapshotCount: 10 } }));
    await c.startAll();
    for (const id of c.ids) sliced(c, id).held = true;
    await proposeRange(c, 0, 12);
    await waitFor(() => sliced(c, 1).begun.length === 1, 'member 1 to begin a snapshot');
    const n1 = c.node(1);
    await c.stop(1);
    assert.equal(n1.status().state, 'stopped');
    assert.equal(n1.metrics().snapshotsTaken, 0);
    const stepsAtStop = sliced(c, 1).steps;
    await settle(20);
    assert.equal(sliced(c, 1).steps, stepsAtStop, 'no step after stop()');
    const before = c.member(1).sm.log;
    await c.start(1);
    assert.equal(c.member(1).sm.restores.length, 0);
    await waitFor(() => c.member(1).sm.log.length === 12, 'member 1 to replay its log');
    assert.deepEqual(c.member(1).sm.log, before);
  });

  it('an encoder that throws stops the member as a state machine failure', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { sliced: true, node: { snapshotCount: 10 } }));
    await c.startAll();
    for (const id of c.ids) sliced(c, id).held = true;
    const leader = await c.waitLeader();
    const victim = c.followers()[0]!;
    const failures: NodeFailedError[] = [];
    victim.on('fatal', (e) => failures.push(e));
    await proposeRange(c, 0, 12);
    await waitFor(() => sliced(c, victim.id).begun.length === 1, 'the follower to begin a snapshot');
    sliced(c, victim.id).failStep = true;
    await waitFor(() => failures.length === 1, 'the follower to fail');
    assert.ok(failures[0] instanceof NodeFailedError);
    assert.equal(failures[0].reason, 'state-machine');
    assert.match(failures[0].message, /the snapshot encoder broke/);
    assert.equal(victim.status().state, 'failed');
    // The others go on.
    await leader.propose(bytes('after'));
  });

  it('a member added after the stored snapshot gets a fresh one, built while the core waits (temporarily unavailable)', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { sliced: true, node: { snapshotCount: 6, snapshotCatchUpEntries: 1 } }));
    await c.startAll();
    await proposeRange(c, 0, 20);
    const leader = await c.waitLeader();
    await waitFor(() => leader.status().firstIndex > 1, 'the leader to compact its log');
    // No automatic snapshot under way (members snapshot at their own phase): the fresh one must be begun for member 4.
    await waitFor(() => sliced(c, leader.id).begun.length === leader.metrics().snapshotsTaken, 'the leader to finish its snapshots');
    const storedBefore = leader.status().snapshotIndex;
    // Slow snapshots from now on: the new member must wait for one, not get the stored one (without it).
    sliced(c, leader.id).held = true;
    const begunBefore = sliced(c, leader.id).begun.length;
    await leader.addMember(4, { learner: true, url: c.url(4) });
    c.addMemberSlot(4);
    const n4 = await c.start(4, { initialVoters: undefined, join: true, peers: { [leader.id]: c.url(leader.id) } });
    const installed: { index: number; bytes: number }[] = [];
    n4.on('snapshotInstalled', (e) => installed.push(e));
    await waitFor(() => sliced(c, leader.id).begun.length > begunBefore, 'the leader to begin a fresh snapshot');
    assert.equal(leader.status().snapshotIndex, storedBefore);
    await settle(30);
    assert.equal(installed.length, 0, 'nothing sent while the snapshot is under way');
    sliced(c, leader.id).held = false;
    await waitFor(() => n4.applied >= leader.applied, 'the new member to catch up');
    assert.ok(installed.length >= 1);
    assert.ok(installed[0]!.index > storedBefore, 'a snapshot that includes member 4');
    assert.deepEqual(c.member(4).sm.log, c.member(leader.id).sm.log);
  });
});
