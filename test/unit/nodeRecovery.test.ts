// The node runtime's durability: restarts from the data directory (real
// files in a temporary directory), snapshots every snapshotCount entries
// with log compaction, and a follower that fell behind the compaction
// catching up by snapshot.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { DiskStorage } from '../../src/storage/diskStorage.js';
import { TestCluster, proposeRange, waitFor } from './nodeHarness.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

const expected = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`);

describe('RaftNode recovery', () => {
  it('restarts from its data directory with every applied command, at once (real files)', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { realDisk: true }));
    await c.startAll();
    await proposeRange(c, 0, 30);
    const leader = await c.waitLeader();
    await c.waitApplied(leader.applied);
    for (const id of c.ids) assert.deepEqual([...c.member(id).sm.log].sort(), [...expected(30)].sort());
    const before = c.member(1).sm.log;
    await c.stopAll();

    // Restart only member 1: no quorum, so nothing new can commit, yet the
    // commit index written at stop lets it apply everything it had.
    const n1 = await c.start(1);
    await waitFor(() => c.member(1).sm.log.length === 30, 'member 1 to replay its log');
    assert.deepEqual(c.member(1).sm.log, before);
    assert.equal(n1.leader, 0);

    await c.start(2);
    await c.start(3);
    await proposeRange(c, 30, 40);
    const l = await c.waitLeader();
    await c.waitApplied(l.applied);
    for (const id of c.ids) assert.deepEqual(c.member(id).sm.log.slice(0, 30), before);
    for (const id of c.ids) assert.equal(c.member(id).sm.log.length, 40);
  });

  it('takes a snapshot every snapshotCount entries, compacts the log, and restarts from the snapshot', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { realDisk: true, node: { snapshotCount: 10, snapshotCatchUpEntries: 3 } }));
    await c.startAll();
    const taken: { id: number; index: number; compactedTo: number }[] = [];
    for (const n of c.running()) n.on('snapshotTaken', (e) => taken.push({ id: n.id, index: e.index, compactedTo: e.compactedTo }));
    for (let i = 0; i < 35; i += 5) await proposeRange(c, i, i + 5);
    const leader = await c.waitLeader();
    await c.waitApplied(leader.applied);
    for (const n of c.running()) {
      const s = n.status();
      assert.ok(s.snapshotIndex >= 30, `member ${n.id} snapshot at ${s.snapshotIndex}`);
      assert.ok(s.firstIndex > 20, `member ${n.id} compacted its log (first index ${s.firstIndex})`);
      assert.ok(s.applied - s.snapshotIndex < 10 + 5);
    }
    for (const id of c.ids) {
      const mine = taken.filter((t) => t.id === id);
      assert.ok(mine.length >= 3, `member ${id} took ${mine.length} snapshots`);
      for (const t of mine) assert.equal(t.compactedTo, t.index - 3);
    }
    const logs = new Map(c.ids.map((id) => [id, c.member(id).sm.log]));
    await c.stopAll();

    // The data directory holds the snapshot, and recovery starts from it.
    const disk = DiskStorage.open({ fs: c.member(2).fs, dir: c.member(2).dir, clusterId: 'raftkv', memberId: 2 });
    assert.ok(disk.recovery.snapshotIndex >= 30);
    disk.close();

    await c.startAll();
    for (const id of c.ids) {
      const sm = c.member(id).sm;
      assert.equal(sm.restores.length, 1, `member ${id} restored from its snapshot`);
      assert.ok(sm.restores[0]! >= 30);
      await waitFor(() => sm.log.length === 35, `member ${id} to apply the entries after its snapshot`);
      assert.deepEqual(sm.log, logs.get(id));
    }
  });

  it('members snapshot at their own phase, every snapshotCount entries, not all at once', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { node: { snapshotCount: 12, snapshotCatchUpEntries: 2 } }));
    await c.startAll();
    const taken = new Map<number, number[]>(c.ids.map((id) => [id, []]));
    for (const n of c.running()) n.on('snapshotTaken', (e) => taken.get(n.id)!.push(e.index));
    // One at a time, so the applied index moves an entry per Ready.
    for (let i = 0; i < 60; i++) await proposeRange(c, i, i + 1);
    await c.waitApplied((await c.waitLeader()).applied);
    const firsts = c.ids.map((id) => taken.get(id)![0]!);
    // Members 1, 2, 3 are due at indexes ≡ 0, 4, 8 (mod 12), the first at least 6 entries in.
    assert.deepEqual(
      firsts.map((i) => i % 12),
      [0, 4, 8],
      `first snapshots at ${firsts}`,
    );
    for (const [id, indexes] of taken) {
      assert.ok(indexes.length >= 3, `member ${id} took ${indexes}`);
      for (let k = 1; k < indexes.length; k++) assert.equal(indexes[k]! - indexes[k - 1]!, 12, `member ${id}: ${indexes}`);
    }
  });

  it('a follower stopped past the compaction catches up by snapshot', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { node: { snapshotCount: 8, snapshotCatchUpEntries: 2 } }));
    await c.startAll();
    await proposeRange(c, 0, 5);
    let leader = await c.waitLeader();
    await c.waitApplied(leader.applied);
    const behind = c.followers()[0]!.id;
    await c.stop(behind);
    const lastBefore = leader.applied;
    for (let i = 5; i < 45; i += 5) await proposeRange(c, i, i + 5);
    leader = await c.waitLeader();
    assert.ok(leader.status().firstIndex > lastBefore + 1, 'the leader compacted past what the stopped follower has');

    const n = await c.start(behind);
    const installed: number[] = [];
    n.on('snapshotInstalled', (e) => installed.push(e.index));
    await c.waitApplied(leader.applied);
    assert.ok(installed.length >= 1, 'the follower installed a snapshot');
    assert.ok(installed[0]! > lastBefore);
    const sm = c.member(behind).sm;
    assert.deepEqual(sm.log, c.member(leader.id).sm.log);
    assert.equal(sm.log.length, 45);
    // And it keeps up from there.
    await proposeRange(c, 45, 50);
    await c.waitApplied(leader.applied);
    assert.equal(sm.log.length, 50);
    assert.equal(n.metrics().snapshotsInstalled, installed.length);
  });
});
