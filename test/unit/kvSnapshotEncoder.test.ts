// The incremental snapshot encoder (SnapshotEncoder, KvStateMachine.beginSnapshot):
// its result is byte for byte the snapshot of the state when it began, even
// though puts, deletes, txns, compactions, session changes and restores are
// applied between its steps; and a member restored from it has that state.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  type ClientSession,
  type KvOperation,
  type RequestOp,
  KvStateMachine,
  SnapshotEncoder,
  encodeCommand,
  rangeRequest,
} from '../../src/kv/index.js';
import { SnapshotNotReadyError } from '../../src/node/errors.js';
import { MemberTable, ServerStateMachine } from '../../src/server/stateMachine.js';
import { Random } from '../../src/sim/random.js';

const b = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

const putOp = (key: string, value: string, lease = 0n): KvOperation => ({
  type: 'put',
  request: { key: b(key), value: b(value), lease, prevKv: false, ignoreValue: false, ignoreLease: false },
});
const delOp = (key: string, rangeEnd = ''): KvOperation => ({ type: 'deleteRange', request: { key: b(key), rangeEnd: b(rangeEnd), prevKv: false } });
const compactOp = (revision: number): KvOperation => ({ type: 'compact', request: { revision, physical: true } });

class Member {
  readonly sm = new KvStateMachine();
  index = 0;
  time = 1_700_000_000_000;
  apply(op: KvOperation, session?: ClientSession): void {
    this.time += 7;
    this.sm.apply(encodeCommand(session ? { op, time: this.time, session } : { op, time: this.time }), ++this.index);
  }
  /** Compacts at the newest revision the store allows, `back` revisions behind the current one. */
  compact(back: number): void {
    const rev = Math.max(this.sm.compactRevision + 1, this.sm.revision - back);
    if (rev <= this.sm.revision) this.apply(compactOp(rev));
  }
}

/** Steps `enc` to the end, one key per step, running `between` after each step; returns the number of steps. */
function drain(enc: SnapshotEncoder, between: () => void = () => {}): number {
  let steps = 0;
  while (!enc.step(1)) {
    steps++;
    between();
  }
  return steps;
}

/** A state machine restored from `snap`: its state hash. */
function restoredHash(snap: Uint8Array): number {
  const sm = new KvStateMachine();
  sm.restore(snap, 1);
  return sm.hash();
}

describe('kv snapshot encoder', () => {
  it('encodes the same bytes as snapshot() on a quiet store, in many small steps or one big one', () => {
    const m = new Member();
    for (let i = 0; i < 300; i++) m.apply(putOp(`k${i % 120}`, `v${i}`.repeat(i % 9)));
    m.apply(delOp('k1', 'k3'));
    m.compact(100);
    const expected = m.sm.snapshot();
    const small = m.sm.beginSnapshot();
    assert.ok(drain(small) > 100, 'a step encodes a bounded slice');
    assert.deepEqual(small.result(), expected);
    const big = m.sm.beginSnapshot();
    while (!big.step()) {
      /* the default budget */
    }
    assert.deepEqual(big.result(), expected);
    const empty = new KvStateMachine();
    const enc = empty.beginSnapshot();
    drain(enc);
    assert.deepEqual(enc.result(), empty.snapshot());
  });

  it('result() before the last step is refused with a typed error', () => {
    const m = new Member();
    for (let i = 0; i < 10; i++) m.apply(putOp(`k${i}`, 'v'));
    const enc = m.sm.beginSnapshot();
    assert.throws(() => enc.result(), SnapshotNotReadyError);
    enc.step(1);
    assert.throws(() => enc.result(), (e: unknown) => e instanceof SnapshotNotReadyError && e.code === 'SNAPSHOT_NOT_READY');
    drain(enc);
    assert.equal(enc.step(1), true, 'stays done');
    assert.ok(enc.result().length > 0);
  });

  it('a key created after the begin is not in it; one deleted after the begin still is', () => {
    const m = new Member();
    for (let i = 0; i < 20; i++) m.apply(putOp(`k${String(i).padStart(2, '0')}`, `v${i}`));
    const expected = m.sm.snapshot();
    const hash = m.sm.hash();
    const enc = m.sm.beginSnapshot();
    enc.step(1);
    // Before and after the encoder's position: new keys, deletions, overwrites.
    m.apply(putOp('a-new', 'x'));
    m.apply(putOp('k15a', 'x'));
    m.apply(delOp('k00'));
    m.apply(delOp('k10', 'k20'));
    m.apply(putOp('k05', 'overwritten'));
    drain(enc, () => m.apply(putOp('k07', `again${m.index}`)));
    assert.deepEqual(enc.result(), expected);
    assert.equal(restoredHash(enc.result()), hash);
  });

  it('compaction after the begin (trimmed histories, tombstoned keys removed) does not reach it', () => {
    const m = new Member();
    for (let i = 0; i < 40; i++) m.apply(putOp(`k${i % 8}`, `v${i}`)); // five versions per key
    m.apply(delOp('k2'));
    m.apply(delOp('k3'));
    m.apply(putOp('k3', 'reborn')); // a tombstone inside the history
    m.apply(putOp('single', 'one'));
    const expected = m.sm.snapshot();
    const hash = m.sm.hash();
    const enc = m.sm.beginSnapshot();
    enc.step(1);
    m.apply(delOp('single'));
    m.apply(compactOp(20)); // k0..k7 keep their last three versions: arrays trimmed, not replaced
    m.apply(putOp('k2', 'after')); // a new generation of a key deleted before the begin
    m.compact(0); // every key down to its latest version; k2's and single's old histories gone
    m.apply(delOp('k2'));
    m.compact(0);
    m.apply(putOp('k2', 'recreated')); // a key removed by compaction, then created again
    m.apply(putOp('single', 'two'));
    drain(enc, () => m.apply(putOp('k1', `v${m.index}`)));
    assert.deepEqual(enc.result(), expected);
    assert.equal(restoredHash(enc.result()), hash);
  });

  it('a newer snapshot replaces an abandoned one: compaction then preserves the newer one\'s view', () => {
    const m = new Member();
    for (let i = 0; i < 60; i++) m.apply(putOp(`k${i % 12}`, `v${i}`));
    const abandoned = m.sm.beginSnapshot();
    abandoned.step(1); // the node dropped it here (stop, or the leader's snapshot won)
    m.apply(putOp('k3', 'later'));
    const expected = m.sm.snapshot();
    const enc = m.sm.beginSnapshot();
    enc.step(1);
    m.compact(0); // takes the rest of the newer view first
    m.apply(putOp('k4', 'after'));
    drain(enc);
    assert.deepEqual(enc.result(), expected);
  });

  it('session table changes after the begin do not reach it', () => {
    const m = new Member();
    const sess = (clientId: string, seq: number, lowestUnackedSeq = 1): ClientSession => ({ clientId, seq, lowestUnackedSeq });
    m.apply(putOp('a', '1'), sess('c1', 1));
    m.apply(putOp('b', '2'), sess('c2', 1));
    m.apply(putOp('c', '3'), sess('c1', 2));
    const expected = m.sm.snapshot();
    const hash = m.sm.hash();
    const enc = m.sm.beginSnapshot();
    m.apply(putOp('d', '4'), sess('c1', 3, 3)); // acknowledges c1's first two results
    m.apply(putOp('e', '5'), sess('c3', 1)); // a new session
    m.time += 2 * 3_600_000;
    m.apply(putOp('f', '6')); // every session expires
    assert.equal(m.sm.sessionCount, 0);
    drain(enc);
    assert.deepEqual(enc.result(), expected);
    assert.equal(restoredHash(enc.result()), hash);
  });

  it('a restore of the state machine after the begin does not reach it', () => {
    const m = new Member();
    for (let i = 0; i < 30; i++) m.apply(putOp(`k${i}`, `v${i}`));
    const other = new Member();
    other.apply(putOp('elsewhere', 'x'));
    const expected = m.sm.snapshot();
    const enc = m.sm.beginSnapshot();
    enc.step(1);
    m.sm.restore(other.sm.snapshot(), 1);
    m.apply(compactOp(1));
    drain(enc);
    assert.deepEqual(enc.result(), expected);
  });

  it('randomized: puts, deletes, txns, compactions and sessions between the steps (seeded)', () => {
    const rnd = new Random(20240611);
    const m = new Member();
    const key = () => `key${String(rnd.int(60)).padStart(2, '0')}`;
    const session = (): ClientSession | undefined => {
      if (!rnd.chance(0.3)) return undefined;
      const client = `client${rnd.int(4)}`;
      const seq = ++seqs[client]!;
      return { clientId: client, seq, lowestUnackedSeq: Math.max(1, seq - rnd.int(4)) };
    };
    const seqs: Record<string, number> = { client0: 0, client1: 0, client2: 0, client3: 0 };
    const randomOp = (): void => {
      const r = rnd.int(100);
      if (r < 50) m.apply(putOp(key(), 'v'.repeat(rnd.int(40)), rnd.chance(0.2) ? BigInt(1 + rnd.int(5)) : 0n), session());
      else if (r < 62) m.apply(delOp(key()), session());
      else if (r < 67) {
        const [x, y] = [key(), key()].sort();
        m.apply(delOp(x!, y!), session());
      } else if (r < 80) {
        const ops: RequestOp[] = [];
        for (let n = 1 + rnd.int(4); n > 0; n--) {
          if (rnd.chance(0.6)) ops.push({ requestPut: putOp(key(), `t${m.index}`).request as never });
          else if (rnd.chance(0.5)) ops.push({ requestDeleteRange: delOp(key()).request as never });
          else ops.push({ requestRange: rangeRequest({ key: b(key()) }) });
        }
        m.apply({ type: 'txn', request: { compare: [], success: ops, failure: [] } }, session());
      } else if (r < 85) m.compact(rnd.int(30));
      else if (r < 90) m.apply({ type: 'increment', request: { key: b(`n${rnd.int(3)}`), delta: 1 + rnd.int(5) } });
      else m.time += rnd.chance(0.1) ? 2 * 3_600_000 : rnd.int(1000); // sessions expire now and then
    };
    for (let i = 0; i < 400; i++) randomOp();
    let snapshots = 0;
    for (let round = 0; round < 40; round++) {
      const expected = m.sm.snapshot();
      const hash = m.sm.hash();
      const enc = m.sm.beginSnapshot();
      const budget = 1 + rnd.int(300);
      while (!enc.step(budget)) for (let n = rnd.int(6); n > 0; n--) randomOp();
      assert.deepEqual(enc.result(), expected, `round ${round}`);
      assert.equal(restoredHash(enc.result()), hash, `round ${round}: restored state`);
      snapshots++;
      for (let n = rnd.int(40); n > 0; n--) randomOp();
    }
    assert.equal(snapshots, 40);
    assert.ok(m.sm.compactRevision > 0 && m.sm.keyCount > 0, 'the run compacted and kept keys');
  });

  it("the server's state machine snapshots incrementally too: the member table as of the begin", () => {
    const members = new MemberTable([{ id: 1, name: 'one', peerURLs: ['http://a:2380'], clientURLs: ['http://a:2379'], isLearner: false }]);
    const sm = new ServerStateMachine(members);
    let index = 0;
    // Enough data for several steps (SNAPSHOT_STEP_BYTES each).
    for (let i = 0; i < 3000; i++) sm.apply(sm.encodeKv({ op: putOp(`k${i % 300}`, `v${i}`.padEnd(200, '.')), time: 1 }), ++index);
    const expected = sm.snapshot();
    const task = sm.beginSnapshot();
    assert.throws(() => task.result(), SnapshotNotReadyError);
    let steps = 0;
    while (!task.step()) {
      steps++;
      sm.apply(sm.encodeKv({ op: putOp(`k${steps}`, 'later'), time: 2 }), ++index);
      sm.apply(sm.encodeMember({ id: 2, name: `two-${steps}`, clientURLs: ['http://b:2379'] }), ++index);
    }
    assert.ok(steps >= 1);
    assert.deepEqual(Buffer.from(task.result()), expected);
    assert.deepEqual(Buffer.concat(task.parts!()), expected, 'the parts are the same bytes');
    const restored = new ServerStateMachine(new MemberTable([]));
    restored.restore(task.result(), 3000);
    assert.deepEqual(restored.snapshot(), expected);
  });
});
