// The node runtime when things go wrong: a failed fsync (fatal: the node
// must never continue), a state machine that throws, bad options, a data
// directory of another cluster, a stop while a write is in flight, and
// request deadlines and read retries on a manual clock.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';

import {
  InvalidNodeOptionsError,
  NodeFailedError,
  NodeStoppedError,
  RequestTimeoutError,
} from '../../src/node/errors.js';
import type { RaftNode } from '../../src/node/node.js';
import { WalIdentityError, WalWriteError } from '../../src/storage/errors.js';
import { MemoryFileSystem } from '../../src/storage/memoryFs.js';
import { type FailingFs, ManualClock, TestCluster, bytes, settle, waitFor } from './nodeHarness.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

describe('RaftNode failures', () => {
  it('stops for good with a typed error when an fsync fails on the leader', async () => {
    const c = (cluster = new TestCluster([1, 2, 3]));
    await c.startAll();
    const leader = await c.waitLeader();
    await leader.propose(bytes('good'));
    const fatal = new Promise<NodeFailedError>((resolve) => leader.once('fatal', resolve));
    (c.member(leader.id).fs as FailingFs).failSyncs = true;

    await assert.rejects(leader.propose(bytes('unsynced')), (err: unknown) => {
      assert.ok(err instanceof NodeFailedError);
      assert.equal(err.code, 'NODE_FAILED');
      assert.equal(err.reason, 'storage');
      assert.ok(err.cause instanceof WalWriteError, `cause: ${String(err.cause)}`);
      return true;
    });
    assert.ok((await fatal) instanceof NodeFailedError);
    assert.equal(leader.status().state, 'failed');
    // Nothing after the failed sync: not applied, not acknowledged, no new requests.
    assert.ok(!c.member(leader.id).sm.log.includes('unsynced'));
    await assert.rejects(leader.propose(bytes('later')), NodeFailedError);
    await assert.rejects(leader.readIndex(), NodeFailedError);
    await leader.stop();

    // The others elect a new leader and carry on.
    c.member(leader.id).node = undefined;
    const next = await c.waitLeader();
    assert.notEqual(next.id, leader.id);
    const r = await next.propose(bytes('after'));
    assert.equal(c.member(next.id).sm.log[r - 1], 'after');
  });

  it('a follower whose fsync fails stops; the leader commits with the rest', async () => {
    const c = (cluster = new TestCluster([1, 2, 3]));
    await c.startAll();
    const leader = await c.waitLeader();
    const follower = c.followers()[0]!;
    (c.member(follower.id).fs as FailingFs).failSyncs = true;
    const results = await Promise.all([1, 2, 3].map((i) => leader.propose(bytes(`v${i}`))));
    assert.deepEqual(results, [1, 2, 3]);
    await waitFor(() => follower.failure !== undefined, 'the follower to fail');
    assert.equal(follower.failure!.reason, 'storage');
    assert.deepEqual(c.member(follower.id).sm.log, [], 'the failed follower applied nothing it could not persist');
  });

  it('stops when the state machine throws while applying', async () => {
    const c = (cluster = new TestCluster([1, 2, 3], { poison: 'boom' }));
    await c.startAll();
    const leader = await c.waitLeader();
    await assert.rejects(leader.propose(bytes('boom')), (err: unknown) => {
      assert.ok(err instanceof NodeFailedError);
      assert.equal(err.reason, 'state-machine');
      return true;
    });
    assert.equal(leader.status().state, 'failed');
    // Deterministic: any member that reaches the entry fails on it too (etcd panics on every member).
    await waitFor(() => c.running().some((n) => n !== leader && n.failure !== undefined), 'another member to fail on it');
    for (const id of c.ids) assert.ok(!c.member(id).sm.log.includes('boom'));
  });

  it('refuses options that cannot work', async () => {
    cluster = new TestCluster([1, 2, 3]);
    await assert.rejects(cluster.start(1, { initialVoters: undefined }), (err: unknown) => {
      assert.ok(err instanceof InvalidNodeOptionsError);
      assert.match(err.message, /initialVoters.*join/);
      return true;
    });
    await assert.rejects(cluster.start(1, { initialVoters: [2, 3] }), /do not include this member/);
    await assert.rejects(cluster.start(1, { join: true }), /not both/);
    await assert.rejects(cluster.start(1, { electionTicks: 1 }), /electionTicks/);
    await assert.rejects(cluster.start(1, { tickMs: 0 }), /tickMs/);
  });

  it('refuses a data directory of another cluster', async () => {
    const c = (cluster = new TestCluster([1]));
    await c.start(1, { clusterId: 'alpha' });
    await c.stop(1);
    await assert.rejects(c.start(1, { clusterId: 'beta' }), WalIdentityError);
    // Nothing was left running: the same member starts fine with its own identity.
    const n = await c.start(1, { clusterId: 'alpha' });
    await waitFor(() => n.status().role === 'leader', 'the single member to lead');
  });

  it('stop() waits for the write in flight, which survives the restart', async () => {
    const held: (() => void)[] = [];
    let hold = false;
    const fs = new MemoryFileSystem({ defer: (done) => (hold ? held.push(done) : setImmediate(done)) });
    const c = (cluster = new TestCluster([1]));
    c.addMemberSlot(1, fs);
    const node = await c.start(1);
    await waitFor(() => node.status().role === 'leader', 'the single member to lead');
    await node.propose(bytes('first'));

    hold = true;
    const inFlight = node.propose(bytes('in flight'));
    const outcome = inFlight.then(
      (r) => r,
      (err: unknown) => err,
    );
    await waitFor(() => held.length > 0, 'the write to reach the disk');
    let stopped = false;
    const stopping = node.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false, 'stop() waits for the fdatasync');
    hold = false;
    for (const done of held.splice(0)) done();
    await stopping;
    // Durable, but its commit came after the stop: the caller cannot know the outcome.
    assert.ok((await outcome) instanceof NodeStoppedError);

    const again = await c.start(1);
    await waitFor(() => c.member(1).sm.log.length === 2, 'the restarted member to apply both');
    assert.deepEqual(c.member(1).sm.log, ['first', 'in flight']);
    await again.stop();
  });
});

describe('RaftNode deadlines on a manual clock', () => {
  async function electOn(clock: ManualClock, c: TestCluster): Promise<RaftNode<number>> {
    for (let i = 0; i < 200; i++) {
      const leader = c.running().find((n) => n.status().role === 'leader');
      if (leader && c.running().every((n) => n.leader === leader.id)) return leader;
      clock.advance(10);
      await settle(5);
    }
    throw new Error('no leader');
  }

  async function advance(clock: ManualClock, ms: number): Promise<void> {
    for (let t = 0; t < ms; t += 10) {
      clock.advance(10);
      await settle(3);
    }
  }

  it('fails a proposal exactly at its deadline', async () => {
    const clock = new ManualClock();
    const c = (cluster = new TestCluster([1, 2, 3], { node: { clock, tickMs: 10, requestTimeoutMs: 1000 } }));
    await c.startAll();
    await electOn(clock, c);
    const follower = c.followers()[0]!;
    c.net.filter = (m) => m.type !== 'MsgProp';
    let settled: unknown;
    const outcome = (): unknown => settled;
    follower.propose(bytes('lost')).then(
      () => (settled = 'applied'),
      (err: unknown) => (settled = err),
    );
    await advance(clock, 980);
    assert.equal(outcome(), undefined, 'still pending before the deadline');
    await advance(clock, 40);
    const err = outcome();
    assert.ok(err instanceof RequestTimeoutError, `got ${String(err)}`);
    assert.equal(err.code, 'REQUEST_TIMEOUT');
  });

  it('sends a read index request again when the first is lost', async () => {
    const clock = new ManualClock();
    const c = (cluster = new TestCluster([1, 2, 3], { node: { clock, tickMs: 10, readIndexRetryMs: 200 } }));
    await c.startAll();
    await electOn(clock, c);
    const follower = c.followers()[0]!;
    let dropped = 0;
    c.net.filter = (m) => !(m.type === 'MsgReadIndex' && dropped++ === 0);
    let served = false;
    const read = follower.readIndex().then(() => (served = true));
    await advance(clock, 150);
    assert.equal(served, false);
    assert.equal(follower.metrics().readIndexRequests, 1);
    await advance(clock, 100);
    await read;
    assert.equal(follower.metrics().readIndexRequests, 2);
    assert.equal(dropped, 2);
  });
});
