// The node runtime (src/node/): three real nodes in one process over the
// in-process transport and the in-memory disk: elections, proposals and
// their results, forwarding, batching, failures of requests, linearizable
// reads, leadership transfer and a clean stop.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import { LeaderChangedError, NodeStoppedError, RequestTimeoutError } from '../../src/node/errors.js';
import { ProposalDroppedError } from '../../src/raft/errors.js';
import type { Message } from '../../src/raft/types.js';
import { type FailingFs, TestCluster, bytes, settle, waitFor } from './nodeHarness.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

async function threeNodes(): Promise<TestCluster> {
  cluster = new TestCluster([1, 2, 3]);
  await cluster.startAll();
  return cluster;
}

describe('RaftNode', () => {
  it('elects one leader that every member knows', async () => {
    const c = await threeNodes();
    const leader = await c.waitLeader();
    const roles = c.running().map((n) => n.status().role);
    assert.equal(roles.filter((r) => r === 'leader').length, 1);
    for (const n of c.running()) {
      assert.equal(n.leader, leader.id);
      assert.deepEqual([...n.status().confState.voters].sort(), [1, 2, 3]);
    }
    const progress = leader.status().progress;
    assert.ok(progress, 'the leader reports its followers’ progress');
    assert.deepEqual([...progress.keys()].sort(), [1, 2, 3]);
    for (const f of c.followers()) assert.equal(f.status().progress, undefined);
  });

  it('applies proposals in the same order everywhere and returns each result to its proposer', async () => {
    const c = await threeNodes();
    await c.waitLeader();
    const nodes = c.running();
    const commands = Array.from({ length: 60 }, (_, i) => `cmd-${i}`);
    // Through every member at once: followers forward to the leader.
    const results = await Promise.all(commands.map((cmd, i) => nodes[i % 3]!.propose(bytes(cmd))));
    const leaderLog = c.member(c.running().find((n) => n.status().role === 'leader')!.id).sm.log;
    assert.equal(leaderLog.length, 60);
    // The result is the command's position in the applied sequence: the caller got its own entry's result.
    commands.forEach((cmd, i) => assert.equal(leaderLog[results[i]! - 1], cmd, `result of ${cmd}`));
    await c.waitApplied(Math.max(...nodes.map((n) => n.applied)));
    for (const id of c.ids) assert.deepEqual(c.member(id).sm.log, leaderLog, `member ${id} applied the same sequence`);
    assert.deepEqual([...leaderLog].sort(), [...commands].sort());
  });

  it('answers a committed proposal while its own write of newer entries is still syncing', async () => {
    const c = await threeNodes();
    const leader = await c.waitLeader();
    await leader.propose(bytes('warm-up'));
    const disk = c.member(leader.id).fs as FailingFs;
    const held: Array<() => void> = (disk.heldSyncs = []);
    let firstDone = false;
    let secondDone = false;
    const first = leader.propose(bytes('first')).then((r) => ((firstDone = true), r));
    await waitFor(() => held.length === 1, 'the leader syncing "first"');
    // The followers acknowledge "first" meanwhile (messages go out before the write, §10.2.1).
    const second = leader.propose(bytes('second')).then((r) => ((secondDone = true), r));
    await settle();
    held.shift()!();
    // The next Ready commits "first" and writes "second": "first" is answered before that write syncs.
    await waitFor(() => held.length === 1, 'the leader syncing "second"');
    await waitFor(() => firstDone, '"first" answered while "second" syncs');
    assert.equal(secondDone, false, 'one Ready at a time: "second" is applied by a later Ready');
    disk.heldSyncs = undefined;
    for (const release of held.splice(0)) release();
    const [r1, r2] = await Promise.all([first, second]);
    assert.deepEqual(c.member(leader.id).sm.log.slice(r1 - 1, r2), ['first', 'second']);
  });

  it('forwards a follower’s proposals to the leader, a pass’s proposals in one message', async () => {
    const c = await threeNodes();
    const leader = await c.waitLeader();
    const follower = c.followers()[0]!;
    const forwarded: Message[] = [];
    c.net.filter = (m) => {
      if (m.type === 'MsgProp') forwarded.push(m);
      return true;
    };
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => follower.propose(bytes(`f${i}`))));
    assert.equal(forwarded.length, 1, 'one MsgProp carried the whole batch');
    assert.equal(forwarded[0]!.to, leader.id);
    assert.equal(forwarded[0]!.entries.length, 25);
    const log = c.member(follower.id).sm.log;
    results.forEach((r, i) => assert.equal(log[r - 1], `f${i}`));
    assert.equal(follower.metrics().proposalsCommitted, 25);
  });

  it('refuses proposals and reads without a leader, applying nothing', async () => {
    cluster = new TestCluster([1, 2, 3]);
    const lonely = await cluster.start(1); // the other two never start: no quorum, no leader
    await new Promise((resolve) => setTimeout(resolve, 150)); // many election timeouts
    assert.equal(lonely.leader, 0);
    await assert.rejects(lonely.propose(bytes('x')), (err: unknown) => {
      assert.ok(err instanceof ProposalDroppedError);
      assert.equal(err.reason, 'no-leader');
      return true;
    });
    await assert.rejects(lonely.readIndex(), (err: unknown) => err instanceof ProposalDroppedError && err.reason === 'no-leader');
    assert.deepEqual(cluster.member(1).sm.log, []);
    assert.equal(lonely.metrics().proposalsFailed, 1);
    assert.equal(lonely.metrics().readsFailed, 1);
  });

  it('a read index on a lagging follower waits until the write before it is applied there', async () => {
    const c = await threeNodes();
    const leader = await c.waitLeader();
    const [lagging, other] = c.followers() as [typeof leader, typeof leader];
    await leader.propose(bytes('before'));
    await c.waitApplied(leader.applied);
    // The lagging follower hears nothing about the next write (no appends,
    // no commit index on heartbeats): the leader commits it with the other.
    c.net.filter = (m) => !(m.to === lagging.id && (m.type === 'MsgApp' || m.type === 'MsgHeartbeat'));
    await leader.propose(bytes('written'));
    await settle();
    assert.ok(!c.member(lagging.id).sm.log.includes('written'), 'the follower has not applied the write yet');
    assert.ok(c.member(other.id).sm.log.length >= 1);
    // Heartbeats flow again (the read needs a quorum round), appends still held back for a while.
    c.net.filter = (m) => !(m.to === lagging.id && m.type === 'MsgApp');
    const read = lagging.readIndex();
    let served = false;
    void read.then(() => (served = true));
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.equal(served, false, 'the read waits for the follower to apply up to the read index');
    c.net.filter = undefined;
    await read;
    assert.ok(c.member(lagging.id).sm.log.includes('written'), 'a read after a committed write sees it');
  });

  it('concurrent reads share one ReadIndex request', async () => {
    const c = await threeNodes();
    await c.waitLeader();
    const follower = c.followers()[0]!;
    const before = follower.metrics().readIndexRequests;
    await Promise.all(Array.from({ length: 30 }, () => follower.readIndex()));
    assert.equal(follower.metrics().readIndexRequests - before, 1);
    assert.equal(follower.metrics().readsServed, 30);
  });

  it('fails a proposal whose entry a new leader overwrote with LeaderChangedError', async () => {
    const c = await threeNodes();
    const old = await c.waitLeader();
    c.net.isolate(old.id);
    // Appended to the isolated leader's log only: it can never commit.
    const doomed = old.propose(bytes('doomed'));
    const outcome = doomed.then(
      () => 'applied',
      (err: unknown) => err,
    );
    await waitFor(() => c.running().some((n) => n.id !== old.id && n.status().role === 'leader'), 'a new leader');
    const newLeader = c.running().find((n) => n.id !== old.id && n.status().role === 'leader')!;
    await newLeader.propose(bytes('after'));
    c.net.heal();
    const err = await outcome;
    assert.ok(err instanceof LeaderChangedError, `got ${String(err)}`);
    await c.waitApplied(newLeader.applied);
    for (const id of c.ids) assert.ok(!c.member(id).sm.log.includes('doomed'), `member ${id} never applied it`);
    assert.ok(c.member(old.id).sm.log.includes('after'));
  });

  it('times out a proposal whose forwarded message is lost', async () => {
    cluster = new TestCluster([1, 2, 3], { node: { requestTimeoutMs: 100 } });
    await cluster.startAll();
    await cluster.waitLeader();
    const follower = cluster.followers()[0]!;
    cluster.net.filter = (m) => m.type !== 'MsgProp';
    const started = Date.now();
    await assert.rejects(follower.propose(bytes('lost')), RequestTimeoutError);
    assert.ok(Date.now() - started >= 90);
    assert.equal(follower.metrics().proposalsPending, 0);
  });

  it('transfers leadership', async () => {
    const c = await threeNodes();
    const leader = await c.waitLeader();
    const target = c.followers()[0]!;
    await leader.propose(bytes('x'));
    const termBefore = leader.term;
    await leader.transferLeadership(target.id);
    assert.equal(leader.leader, target.id);
    await waitFor(() => target.status().role === 'leader', 'the target to lead');
    assert.equal(await target.propose(bytes('y')), 2);
    // The target campaigned in a new term; `term` says what status() does.
    assert.ok(target.term > termBefore);
    for (const n of c.running()) assert.equal(n.term, n.status().term);
  });

  it('stops cleanly: idempotent, requests refused, no timers left behind', async () => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const c = await threeNodes();
    await c.waitLeader();
    const node = c.node(1);
    const stopping = node.stop();
    assert.equal(node.stop(), stopping, 'a second stop() is the same');
    await stopping;
    assert.equal(node.status().state, 'stopped');
    await assert.rejects(node.propose(bytes('late')), NodeStoppedError);
    await assert.rejects(node.readIndex(), NodeStoppedError);
    await c.stopAll();
    await settle();
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.equal(timersAfter, timersBefore, 'no tick timer survives stop()');
  });
});
