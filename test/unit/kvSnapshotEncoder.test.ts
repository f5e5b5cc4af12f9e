// The incremental snapshot encoder (SnapshotEncoder, KvStateMachine.beginSnapshot):
// its result is byte for byte the snapshot of the state when it began, even
// though puts, deletes, txns, compactions, session changes and restores are
// applied between its steps; and a member restored from it has that state.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import {
  type ClientSession,
  type KvOperation,
  type RequestOp,
  KvSnapshotError,
  KvStateMachine,
  SnapshotEncoder,
  encodeCommand,
  rangeRequest,
} from '../../src/kv/index.js';
import { SnapshotNotReadyError } from '../../src/node/errors.js';
import { MemberTable, ServerStateMachine } from '../../src/server/stateMachine.js';
import { Random } from '../../src/sim/random.js';
import { crc32c } from '../../src/storage/crc.js';

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

/** A state machine restored from `snap`: its whole snapshot now (one section, whatever `snap` had). */
function restoredSnapshot(snap: Uint8Array): Uint8Array {
  const sm = new KvStateMachine();
  sm.restore(snap, 1);
  return sm.snapshot();
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
    // (A second snapshot of m would follow the first: see the next describe.)
    const copy = new KvStateMachine();
    copy.restore(expected, m.index);
    const big = copy.beginSnapshot();
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
    let following = 0;
    for (let round = 0; round < 40; round++) {
      const expected = m.sm.snapshot();
      const hash = m.sm.hash();
      const enc = m.sm.beginSnapshot();
      const budget = 1 + rnd.int(300);
      while (!enc.step(budget)) for (let n = rnd.int(6); n > 0; n--) randomOp();
      // One that follows the last snapshot has other bytes for the same state.
      if (enc.followsBase) following++;
      else assert.deepEqual(enc.result(), expected, `round ${round}`);
      assert.deepEqual(restoredSnapshot(enc.result()), expected, `round ${round}: restored state, encoded whole`);
      assert.equal(restoredHash(enc.result()), hash, `round ${round}: restored state`);
      snapshots++;
      for (let n = rnd.int(40); n > 0; n--) randomOp();
    }
    assert.equal(snapshots, 40);
    assert.ok(following >= 1, `${following} of 40 followed the one before (the others came after a compaction)`);
    assert.ok(m.sm.compactRevision > 0 && m.sm.keyCount > 0, 'the run compacted and kept keys');
  });

  it("the server's state machine snapshots in slices too: the member table as of the begin", () => {
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

describe('kv snapshots that follow the last one', () => {
  /** Encodes a snapshot of m to the end, applying `between` after each step. */
  function encode(m: Member, between: () => void = () => {}): SnapshotEncoder {
    const enc = m.sm.beginSnapshot();
    drain(enc, between);
    return enc;
  }

  it('starts from the parts of the last one (the same objects) and adds only what was written since', () => {
    const m = new Member();
    for (let i = 0; i < 2000; i++) m.apply(putOp(`k${String(i % 500).padStart(3, '0')}`, `v${i}`.padEnd(100, '.')));
    const first = encode(m);
    assert.equal(first.followsBase, false);
    const firstParts = first.parts();
    for (let i = 0; i < 40; i++) m.apply(putOp(`k${String((i * 7) % 500).padStart(3, '0')}`, `w${i}`));
    m.apply(delOp('k100', 'k110'));
    m.apply(putOp('a-new-key', 'x'));
    const expected = m.sm.snapshot();
    const second = encode(m, () => m.apply(putOp('k001', `during${m.index}`)));
    assert.equal(second.followsBase, true);
    const parts = second.parts();
    // All of the first's parts but its footer, session table and checksum.
    const shared = firstParts.length - 3;
    for (let i = 0; i < shared; i++) assert.ok(parts[i] === firstParts[i], `part ${i} is the first snapshot's own object`);
    const added = parts.slice(shared).reduce((n, p) => n + p.length, 0);
    assert.ok(added < second.result().length / 20, `${added} new bytes of ${second.result().length}`);
    assert.deepEqual(restoredSnapshot(second.result()), expected, 'decodes to the state at its begin');
    // A third follows the second, which followed the first.
    m.apply(putOp('k002', 'third'));
    const third = encode(m);
    assert.equal(third.followsBase, true);
    assert.ok(third.parts()[0] === firstParts[0]);
    assert.deepEqual(restoredSnapshot(third.result()), m.sm.snapshot());
    // Nothing written since: no section added, the same state.
    const fourth = encode(m);
    assert.equal(fourth.followsBase, true);
    assert.equal(fourth.parts().length, third.parts().length);
    assert.deepEqual(restoredSnapshot(fourth.result()), m.sm.snapshot());
  });

  it('encodes only the versions written since the last one, not every key', () => {
    const m = new Member();
    for (let i = 0; i < 40_000; i++) m.apply(putOp(`k${String(i).padStart(5, '0')}`, 'v'));
    const first = m.sm.beginSnapshot();
    let steps = 1;
    while (!first.step(4096)) steps++;
    assert.ok(steps > 100, `a whole snapshot of 40,000 keys takes ${steps} steps of 4 KiB`);
    for (const k of ['k39999', 'k00007', 'k20000', 'k00007']) m.apply(putOp(k, 'changed'));
    const expected = m.sm.snapshot();
    const second = m.sm.beginSnapshot();
    assert.equal(second.step(4096), true, 'one step: four records');
    const added = second.parts().slice(first.parts().length - 3).reduce((n, p) => n + p.length, 0);
    assert.ok(added < 200, `${added} bytes after the first's sections`);
    assert.deepEqual(restoredSnapshot(second.result()), expected);
  });

  it('after a compaction, or a restore, the next one encodes the whole store again', () => {
    const m = new Member();
    for (let i = 0; i < 300; i++) m.apply(putOp(`k${i % 50}`, `v${i}`));
    encode(m);
    m.apply(putOp('k1', 'x'));
    m.compact(10);
    const afterCompaction = encode(m);
    assert.equal(afterCompaction.followsBase, false);
    assert.deepEqual(afterCompaction.result(), m.sm.snapshot());
    m.apply(putOp('k2', 'y'));
    assert.equal(encode(m).followsBase, true);
    m.sm.restore(m.sm.snapshot(), m.index);
    m.apply(putOp('k3', 'z'));
    const afterRestore = encode(m);
    assert.equal(afterRestore.followsBase, false);
    assert.deepEqual(afterRestore.result(), m.sm.snapshot());
  });

  it('a compaction while one is encoded: it keeps its view, and the next one is whole', () => {
    const m = new Member();
    for (let i = 0; i < 400; i++) m.apply(putOp(`k${i % 40}`, `v${i}`));
    encode(m);
    for (let i = 0; i < 50; i++) m.apply(putOp(`k${i % 60}`, `w${i}`));
    const expected = m.sm.snapshot();
    const enc = m.sm.beginSnapshot();
    assert.equal(enc.followsBase, true);
    enc.step(1);
    m.compact(0);
    drain(enc, () => m.apply(putOp('k5', `during${m.index}`)));
    assert.deepEqual(restoredSnapshot(enc.result()), expected);
    const next = encode(m);
    assert.equal(next.followsBase, false);
    assert.deepEqual(restoredSnapshot(next.result()), m.sm.snapshot());
  });

  it('randomized, compactions now and then: every snapshot restores to the state at its begin (seeded)', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rnd = new Random(seed);
      const m = new Member();
      const key = () => `key${String(rnd.int(80)).padStart(2, '0')}`;
      const op = (): void => {
        const r = rnd.int(1000);
        if (r < 700) m.apply(putOp(key(), 'v'.repeat(rnd.int(30)), rnd.chance(0.1) ? 7n : 0n));
        else if (r < 850) m.apply(delOp(key()));
        else if (r < 880) {
          const [x, y] = [key(), key()].sort();
          m.apply(delOp(x!, y!));
        } else if (r < 885) m.compact(rnd.int(50));
        else m.apply(putOp(key(), 's'), { clientId: `c${rnd.int(3)}`, seq: m.index, lowestUnackedSeq: 1 });
      };
      let following = 0;
      for (let round = 0; round < 30; round++) {
        for (let n = rnd.int(60); n > 0; n--) op();
        const expected = m.sm.snapshot();
        const enc = m.sm.beginSnapshot();
        const budget = 1 + rnd.int(500);
        while (!enc.step(budget)) for (let n = rnd.int(4); n > 0; n--) op();
        if (enc.followsBase) following++;
        assert.deepEqual(restoredSnapshot(enc.result()), expected, `seed ${seed} round ${round}`);
      }
      assert.ok(following >= 10, `seed ${seed}: ${following} of 30 followed the one before`);
    }
  });

  it('a damaged section order is refused: a section repeated, keys out of order, an unknown tag', () => {
    const m = new Member();
    for (let i = 0; i < 20; i++) m.apply(putOp(`k${i % 5}`, `v${i}`));
    const whole = m.sm.snapshot();
    // [magic 4][format 1][section tag][records...][empty key] | [end tag][revisions, clock] | [sessions] | [crc 4]
    const parts = encode(m).parts();
    assert.equal(parts.length, 4, 'a small store: one chunk of sections, then the footer, the session table, the checksum');
    const withCrc = (body: Uint8Array): Uint8Array => {
      const out = new Uint8Array(body.length + 4);
      out.set(body);
      new DataView(out.buffer).setUint32(body.length, crc32c(body), true);
      return out;
    };
    const section = parts[0]!.subarray(5);
    const footer = Buffer.concat([parts[1]!, parts[2]!]);
    assert.deepEqual(restoredSnapshot(withCrc(Buffer.concat([whole.subarray(0, 5), section, footer]))), whole, 'the pieces as cut are the snapshot');
    const refused = (body: Uint8Array, message: RegExp) =>
      assert.throws(() => new KvStateMachine().restore(withCrc(body), 1), (e: unknown) => e instanceof KvSnapshotError && message.test(e.message));
    refused(Buffer.concat([whole.subarray(0, 5), section, section, footer]), /versions out of order/);
    refused(Buffer.concat([whole.subarray(0, 5), Buffer.from([7]), section.subarray(1), footer]), /bad section tag 7/);
    const swapped = Buffer.from(section);
    swapped[2] = 'z'.charCodeAt(0); // the first key, "k0", becomes "kz", after the next one
    refused(Buffer.concat([whole.subarray(0, 5), swapped, footer]), /keys out of order in the first section/);
  });

  it('reads the format of earlier builds (version 1): a server snapshot they wrote restores to the same state', () => {
    // test/fixtures/server-snapshot-v1.bin: written by the build before format 2 (commit acf241e):
    // 75 entries of puts, deletes, a compaction at 30, puts and an increment with client sessions.
    const table = new MemberTable([{ id: 1, name: '', peerURLs: ['http://a:2380'], clientURLs: [], isLearner: false }]);
    const sm = new ServerStateMachine(table);
    sm.restore(readFileSync(new URL('../../../test/fixtures/server-snapshot-v1.bin', import.meta.url)), 75);
    assert.equal(sm.kv.hash(), 893706787, 'the state hash that build computed');
    assert.equal(sm.kv.revision, 75);
    assert.equal(sm.kv.compactRevision, 30);
    assert.equal(sm.kv.keyCount, 29);
    assert.equal(sm.kv.sessionCount, 3);
    assert.equal(table.toJSON()[0]?.name, 'one', 'the member table');
    // Written again, as format 2, it restores to the same.
    const again = new ServerStateMachine(new MemberTable([]));
    again.restore(sm.snapshot(), 75);
    assert.equal(again.kv.hash(), 893706787);
  });
});
