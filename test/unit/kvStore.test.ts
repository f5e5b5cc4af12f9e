// The key-value store's machinery: the B+tree key index, the byte codec,
// command encoding, snapshots (deterministic bytes, round trips, damage
// refused), state hashes, and the multi-version store checked against a
// naive model over random operations.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  type KvCommand,
  type KvOperation,
  type RangeRequest,
  rangeRequest,
  type TxnResponse,
  KvError,
  KvSnapshotError,
  KvStateMachine,
  decodeCommand,
  encodeCommand,
  validateCommand,
} from '../../src/kv/index.js';
import { BTree } from '../../src/kv/btree.js';
import { MvccStore, type Version, versionsOf, visibleAt } from '../../src/kv/mvcc.js';
import { Reader, Writer } from '../../src/kv/codec.js';
import { etcdHashKV } from '../../src/server/hashKV.js';
import { crc32c } from '../../src/storage/crc.js';
import { Random } from '../../src/sim/random.js';

const b = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const s = (u: Uint8Array) => Buffer.from(u).toString('latin1');

function rangeReq(key: string, rangeEnd = '', revision = 0): RangeRequest {
  return rangeRequest({ key: b(key), rangeEnd: b(rangeEnd), revision, serializable: true });
}

const putOp = (key: string, value: string): KvOperation => ({
  type: 'put',
  request: { key: b(key), value: b(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false },
});
const delOp = (key: string, rangeEnd = ''): KvOperation => ({ type: 'deleteRange', request: { key: b(key), rangeEnd: b(rangeEnd), prevKv: false } });
const compactOp = (revision: number): KvOperation => ({ type: 'compact', request: { revision, physical: true } });

function dump(sm: KvStateMachine, revision = 0): string[] {
  return sm
    .range(rangeReq('\0', '\0', revision))
    .kvs.map((kv) => `${s(kv.key)}=${s(kv.value)}@c${kv.createRevision}m${kv.modRevision}v${kv.version}`);
}

describe('kv store: determinism', () => {
  it('src/kv/*.ts reads no clock, timer, randomness, process or Node.js module', () => {
    let dir = dirname(fileURLToPath(import.meta.url));
    while (!existsSync(join(dir, 'src', 'kv', 'stateMachine.ts'))) {
      assert.notEqual(dirname(dir), dir, 'src/kv not found');
      dir = dirname(dir);
    }
    const kvDir = join(dir, 'src', 'kv');
    const forbidden = [
      /\bDate\s*\.\s*now\b/,
      /\bnew\s+Date\b/,
      /\bMath\s*\.\s*random\b/,
      /\bperformance\s*\.\s*now\b/,
      /\bset(?:Timeout|Interval|Immediate)\b/,
      /\bprocess\s*\./,
      /\bcrypto\b|\brandomUUID\b/,
      /from\s+'node:/,
    ];
    const files = readdirSync(kvDir).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 10, `found only ${files.join(', ')}`);
    const found: string[] = [];
    for (const f of files) {
      // Comments may mention what the code must not do.
      const code = readFileSync(join(kvDir, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      code.split('\n').forEach((line, i) => {
        for (const re of forbidden) if (re.test(line)) found.push(`${f}:${i + 1}: ${line.trim()}`);
      });
    }
    assert.deepEqual(found, []);
  });
});

describe('kv store: B+tree', () => {
  it('keeps keys ordered under random inserts and scans any range', () => {
    const rng = new Random(3);
    const t = new BTree();
    const model = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const k = `k${rng.int(20000)}`;
      if (model.has(k)) continue;
      t.insert(k);
      model.add(k);
    }
    const sorted = [...model].sort();
    const all: string[] = [];
    t.forEach((k) => all.push(k));
    assert.deepEqual(all, sorted);
    assert.equal(t.size, sorted.length);
    for (let i = 0; i < 200; i++) {
      const from = `k${rng.int(20000)}`;
      const to = rng.chance(0.2) ? undefined : `k${rng.int(20000)}`;
      const got: string[] = [];
      t.scan(from, to, (k) => {
        got.push(k);
        return got.length < 50;
      });
      const want = sorted.filter((k) => k >= from && (to === undefined || k < to)).slice(0, 50);
      assert.deepEqual(got, want, `scan ${from}..${to}`);
    }
  });

  it('fills leaves on ascending inserts, and rebuilds from survivors', () => {
    const t = new BTree();
    for (let i = 0; i < 10_000; i++) t.insert(`key/${String(i).padStart(6, '0')}`);
    t.retain((k) => Number(k.slice(4)) % 3 === 0);
    const left: string[] = [];
    t.forEach((k) => left.push(k));
    assert.equal(left.length, 3334);
    assert.equal(t.size, 3334);
    t.insert('key/000001');
    t.insert('zzz');
    const first: string[] = [];
    t.scan('key/000000', 'key/000004', (k) => (first.push(k), true));
    assert.deepEqual(first, ['key/000000', 'key/000001', 'key/000003']);
    const last: string[] = [];
    t.scan('key/009999', undefined, (k) => (last.push(k), true));
    assert.deepEqual(last, ['key/009999', 'zzz']);
    t.retain(() => false);
    assert.equal(t.size, 0);
    t.scan('', undefined, () => assert.fail('empty'));
    t.insert('a');
    const one: string[] = [];
    t.forEach((k) => one.push(k));
    assert.deepEqual(one, ['a']);
  });
});

describe('kv store: codec', () => {
  it('round-trips integers of every size, signs and bigints', () => {
    const w = new Writer(4);
    const nums = [0, 1, 127, 128, 300, 2 ** 28 - 1, 2 ** 28, 2 ** 31, 2 ** 53 - 1, 2 ** 60, 2 ** 63, 1e300];
    for (const n of nums) w.uvarint(n);
    for (const n of nums) w.svarint(-n);
    w.i64(-(2n ** 63n));
    w.i64(2n ** 63n - 1n);
    w.bytes(b('\0\xff'));
    w.utf8('héllo');
    const r = new Reader(w.finish());
    for (const n of nums) assert.equal(r.uvarint(), n);
    for (const n of nums) assert.equal(r.svarint(), n === 0 ? 0 : -n);
    assert.equal(r.i64(), -(2n ** 63n));
    assert.equal(r.i64(), 2n ** 63n - 1n);
    assert.deepEqual([...r.bytesView()], [0, 255]);
    assert.equal(r.utf8(), 'héllo');
    assert.equal(r.remaining, 0);
    assert.throws(() => r.u8(), /truncated/);
  });

  it('round-trips every operation through encodeCommand/decodeCommand', () => {
    const cmds: KvCommand[] = [
      { op: putOp('k', 'v'), time: 123 },
      {
        op: { type: 'put', request: { key: b('k'), value: b(''), lease: -5n, prevKv: true, ignoreValue: true, ignoreLease: false } },
        time: 0,
        session: { clientId: 'client-é', seq: 9, lowestUnackedSeq: 4 },
      },
      { op: { type: 'deleteRange', request: { key: b('a'), rangeEnd: b('\0'), prevKv: true } }, time: 2 ** 45 },
      { op: { type: 'compact', request: { revision: -1, physical: true } }, time: 1 },
      { op: { type: 'increment', request: { key: b('n'), delta: -(2 ** 53 - 1) } }, time: 1 },
      {
        op: {
          type: 'txn',
          request: {
            compare: [
              { result: 3, target: 3, key: b('a'), rangeEnd: b(''), targetUnion: { value: b('x') } },
              { result: 1, target: 4, key: b('a'), rangeEnd: b('z'), targetUnion: { lease: 7n } },
              { result: 2, target: 0, key: b('a'), rangeEnd: b(''), targetUnion: undefined },
              { result: 0, target: 1, key: b('a'), rangeEnd: b(''), targetUnion: { createRevision: 3 } },
              { result: 0, target: 2, key: b('a'), rangeEnd: b(''), targetUnion: { modRevision: -2 } },
              { result: 0, target: 0, key: b('a'), rangeEnd: b(''), targetUnion: { version: 4 } },
            ],
            success: [
              { requestRange: { ...rangeReq('a', 'b', 7), limit: -1, sortOrder: 2, sortTarget: 4, keysOnly: true, countOnly: true, minModRevision: 1, maxModRevision: 2, minCreateRevision: 3, maxCreateRevision: 4 } },
              { requestTxn: { compare: [], success: [{ requestDeleteRange: { key: b('q'), rangeEnd: b(''), prevKv: false } }], failure: [] } },
            ],
            failure: [{ requestPut: putOp('x', 'y').request as never }],
          },
        },
        time: 5,
      },
    ];
    for (const cmd of cmds) {
      const decoded = decodeCommand(encodeCommand(cmd));
      assert.deepEqual(JSON.parse(JSON.stringify(decoded, jsonable)), JSON.parse(JSON.stringify(cmd, jsonable)));
    }
  });

  it('refuses bytes that are not a command, and apply answers them with BAD_COMMAND', () => {
    const good = encodeCommand({ op: putOp('k', 'v'), time: 1 });
    const cases = [new Uint8Array(0), good.subarray(0, good.length - 1), new Uint8Array([...good, 0]), new Uint8Array([9, ...good.subarray(1)])];
    const sm = new KvStateMachine();
    for (const c of cases) {
      assert.throws(() => decodeCommand(c), (e: KvError) => e instanceof KvError && e.code === 'BAD_COMMAND');
      const r = sm.apply(c, 1);
      assert.ok(r instanceof KvError && r.code === 'BAD_COMMAND');
    }
    assert.equal(sm.revision, 1);
    assert.throws(
      () => validateCommand({ op: { type: 'range', request: {} } as never, time: 1 }),
      (e: KvError) => e.code === 'BAD_COMMAND' && /unknown operation type "range"/.test(e.message),
    );
  });
});

function jsonable(_: string, v: unknown): unknown {
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString('hex')}`;
  return v;
}

/** A member that applied a mix of everything, sessions included. */
function busyMember(): KvStateMachine {
  const sm = new KvStateMachine();
  let i = 0;
  const apply = (op: KvOperation, session?: { clientId: string; seq: number; lowestUnackedSeq: number }) =>
    sm.apply(encodeCommand(session ? { op, time: 1000 + i, session } : { op, time: 1000 + i }), ++i);
  for (let k = 0; k < 50; k++) apply(putOp(`key${k % 20}`, `v${k}`));
  apply(delOp('key1', 'key15'));
  apply(compactOp(30));
  apply({ type: 'increment', request: { key: b('n'), delta: 3 } }, { clientId: 'c1', seq: 1, lowestUnackedSeq: 1 });
  apply(putOp('bin\0\xff', '\x00\x01'), { clientId: 'c2', seq: 1, lowestUnackedSeq: 1 });
  const t = apply(
    { type: 'txn', request: { compare: [], success: [{ requestPut: putOp('t', 'x').request as never }, { requestRange: rangeReq('key', 'kez') }], failure: [] } },
    { clientId: 'c1', seq: 2, lowestUnackedSeq: 1 },
  ) as TxnResponse;
  assert.equal(t.succeeded, true);
  return sm;
}

describe('kv store: snapshots', () => {
  it('round-trips the whole state: equal contents, history, sessions and bytes', () => {
    const a = busyMember();
    const snap = a.snapshot();
    const c = new KvStateMachine();
    c.restore(snap, 99);
    assert.equal(c.appliedIndex, 99);
    assert.deepEqual(
      [c.revision, c.compactRevision, c.keyCount, c.sizeBytes, c.sessionCount, c.logTime],
      [a.revision, a.compactRevision, a.keyCount, a.sizeBytes, a.sessionCount, a.logTime],
    );
    assert.deepEqual(dump(c), dump(a));
    for (let rev = a.compactRevision; rev <= a.revision; rev++) assert.deepEqual(dump(c, rev), dump(a, rev));
    assert.deepEqual(c.snapshot(), snap, 'same state, same bytes');
    assert.equal(c.hash(), a.hash());
    // Both go on identically.
    const next = encodeCommand({ op: putOp('after', '1'), time: 5000 });
    assert.deepEqual(c.apply(next, 100), a.apply(next, 100));
    assert.deepEqual(c.snapshot(), a.snapshot());
  });

  it('is deterministic: members that applied the same commands write the same bytes', () => {
    assert.deepEqual(busyMember().snapshot(), busyMember().snapshot());
    // An empty store too, and restoring it empties a full one.
    const empty = new KvStateMachine().snapshot();
    assert.deepEqual(new KvStateMachine().snapshot(), empty);
    const full = busyMember();
    full.restore(empty, 0);
    assert.deepEqual(dump(full), []);
    assert.equal(full.revision, 1);
    assert.equal(full.sessionCount, 0);
  });

  it('refuses a damaged snapshot with a typed error and keeps the current state', () => {
    const a = busyMember();
    const snap = a.snapshot();
    const target = busyMember();
    target.apply(encodeCommand({ op: putOp('mine', '1'), time: 1 }), 1000);
    const before = target.snapshot();
    const refuse = (data: Uint8Array, why: RegExp) => {
      assert.throws(
        () => target.restore(data, 5),
        (e: unknown) => e instanceof KvSnapshotError && e.code === 'KV_SNAPSHOT_CORRUPT' && why.test(e.message),
      );
      assert.deepEqual(target.snapshot(), before, 'state unchanged');
    };
    // Every single-bit flip is caught (by the checksum, or the magic/version check).
    for (let i = 0; i < snap.length; i += Math.max(1, Math.floor(snap.length / 97))) {
      const bad = snap.slice();
      bad[i]! ^= 1 << i % 8;
      refuse(bad, /checksum|magic|version/);
    }
    refuse(snap.subarray(0, snap.length - 1), /checksum/);
    refuse(snap.subarray(0, 6), /too short/);
    refuse(new Uint8Array(0), /too short/);
    const other = snap.slice();
    other[4] = 3;
    refuse(other, /unsupported snapshot format version 3 \(this build reads versions 1 and 2\)/);
    refuse(b('XXXX\x01\x00\x00\x00\x00\x00'), /bad magic/);
  });

  it('refuses well-checksummed bytes that do not hold a valid state', () => {
    const sm = new KvStateMachine();
    const resealed = (body: number[]) => {
      const out = new Uint8Array(body.length + 4);
      out.set(body);
      new DataView(out.buffer).setUint32(body.length, crc32c(out.subarray(0, body.length)), true);
      return out;
    };
    const head = [0x52, 0x4b, 0x56, 0x53, 1];
    const key = (k: string) => [k.length, ...b(k)];
    // revision 3, compact -1, clock 0, 2 keys, each with one version; 0 sessions.
    const version = (main: number) => [main, 0, 0, main, 1, 1, 0x78];
    const valid = [...head, 3, 1, 1, 0, 2, ...key('a'), 1, ...version(2), ...key('b'), 1, ...version(3), 0];
    sm.restore(resealed(valid), 1);
    assert.deepEqual(dump(sm), ['a=x@c2m2v1', 'b=x@c3m3v1']);
    const cases: [number[], RegExp][] = [
      [[...head, 3, 1, 1, 0, 2, ...key('b'), 1, ...version(2), ...key('a'), 1, ...version(3), 0], /keys out of order/],
      [[...head, 3, 1, 1, 0, 1, ...key('a'), 1, ...version(4), 0], /outside 1..3/],
      [[...head, 3, 1, 1, 0, 1, ...key('a'), 1, 2, 0, 1, 0], /tombstone of an absent key/],
      [[...head, 3, 1, 1, 0, 1, ...key('a'), 0, 0], /no versions/],
      [[...head, 3, 1, 1, 0, 0, 0, 7], /unexpected bytes/],
      [[...head, 3, 1, 1, 0, 0], /truncated/],
      [[...head, 0, 1, 1, 0, 0, 0], /revision 0 < 1/],
      // A session table with one client: id "c", last seen 5, lowest unacknowledged 1, one saved result.
      [[...head, 3, 1, 1, 9, 0, 1, ...key('c'), 5, 1, 1, 0, 3, 4, 0, 3], /bad sequence 0/],
      [[...head, 3, 1, 1, 9, 0, 1, ...key('c'), 5, 1, 1, 1, 3, 99, 0, 3], /unknown response kind 99/],
      [[...head, 3, 1, 1, 9, 0, 1, ...key('c'), 5, 1, 1, 1, 4, 4, 0, 3, 0], /1 bytes after result 1/],
      [[...head, 3, 1, 1, 9, 0, 2, ...key('c'), 5, 1, 0, ...key('c'), 6, 1, 0], /repeated/],
    ];
    const withSession = [...head, 3, 1, 1, 9, 0, 1, ...key('c'), 5, 1, 1, 1, 3, 4, 0, 3];
    const restored = new KvStateMachine();
    restored.restore(resealed(withSession), 1);
    assert.deepEqual([restored.sessionCount, restored.logTime], [1, 9]);
    const retry = restored.apply(
      encodeCommand({ op: putOp('z', 'z'), time: 10, session: { clientId: 'c', seq: 1, lowestUnackedSeq: 1 } }),
      2,
    );
    assert.deepEqual(retry, { header: { clusterId: 0n, memberId: 0n, revision: 3, raftTerm: 0 } }, 'the saved result');
    assert.equal(restored.revision, 3);
    for (const [body, why] of cases) {
      assert.throws(() => sm.restore(resealed(body), 1), (e: unknown) => e instanceof KvSnapshotError && why.test(e.message), String(why));
    }
    assert.deepEqual(dump(sm), ['a=x@c2m2v1', 'b=x@c3m3v1']);
  });
});

describe('kv store: what HashKV covers (MvccStore.hashCursor)', () => {
  /** The versions etcd's HashByRev walks, straight from its definition: filter every version, then sort. */
  function reference(store: MvccStore, rev: number): string[] {
    const all: { key: string; v: Version; live: boolean }[] = [];
    let anyLive = false;
    for (const key of keysOf(store)) {
      const h = store.history(key)!;
      const live = visibleAt(h, rev);
      if (live) anyLive = true;
      for (const v of versionsOf(h)) if (v.main <= rev) all.push({ key, v, live: v === live });
    }
    return all
      .filter(({ v, live }) => v.main > store.compactRevision || live || !anyLive)
      .sort((a, b) => a.v.main - b.v.main || a.v.sub - b.v.sub)
      .map(({ key, v }) => `${key}@${v.main}.${v.sub}`);
  }
  function keysOf(store: MvccStore): string[] {
    const keys: string[] = [];
    store.forEach((key) => keys.push(key));
    return keys;
  }

  it('gives the versions in revision order, slice by slice, under random puts, deletes, transactions and compactions', () => {
    const rng = new Random(7).fork('hash-cursor');
    for (let round = 0; round < 20; round++) {
      const store = new MvccStore();
      for (let t = 0; t < 200; t++) {
        const w = store.write();
        const changes = 1 + rng.int(4);
        for (let c = 0; c < changes; c++) {
          const key = `k${rng.int(12)}`;
          if (rng.chance(0.2)) w.deleteRange({ key, end: undefined });
          else w.put(key, `v${t}.${c}`, 0n);
        }
        w.end();
        if (rng.chance(0.03)) store.compact(store.currentRevision - rng.int(10));
        if (rng.chance(0.01)) {
          const all = store.write();
          all.deleteRange({ key: '', end: '' });
          all.end();
        }
      }
      for (let rev = Math.max(1, store.compactRevision + 1); rev <= store.currentRevision; rev += 1 + rng.int(7)) {
        const cursor = store.hashCursor(rev);
        const got: string[] = [];
        for (let slice = cursor.next(1 + rng.int(5)); slice.length > 0; slice = cursor.next(1 + rng.int(5))) {
          for (const { key, v } of slice) got.push(`${key}@${v.main}.${v.sub}`);
        }
        assert.deepEqual(got, reference(store, rev), `round ${round}, revision ${rev}`);
      }
    }
  });
});

/** etcd's HashKV of a state machine, as the server computes it. */
async function hashKV(sm: KvStateMachine, revision = 0): Promise<{ hash: number; revision: number; compactRevision: number }> {
  const view = sm.hashView(revision);
  return { hash: await etcdHashKV(view.versions), revision: view.revision, compactRevision: view.compactRevision };
}

describe('kv store: hashes', () => {
  it('hashKV agrees between a member and one that has applied more since', async () => {
    const a = busyMember();
    const behind = await hashKV(a);
    const c = busyMember();
    c.apply(encodeCommand({ op: putOp('more', '1'), time: 9999 }), 500);
    c.apply(encodeCommand({ op: putOp('key3', 'changed'), time: 9999 }), 501);
    assert.equal((await hashKV(c, behind.revision)).hash, behind.hash);
    assert.notEqual((await hashKV(c)).hash, behind.hash);
    assert.equal(behind.compactRevision, 30);
    assert.throws(() => a.hashView(a.revision + 1), (e: KvError) => e.code === 'FUTURE_REVISION');
    assert.throws(() => a.hashView(30), (e: KvError) => e.code === 'COMPACTED');
    await hashKV(a, 31);
  });

  it('hash() changes with any change of state, sessions included', () => {
    const a = busyMember();
    const h = a.hash();
    a.apply(encodeCommand({ op: delOp('nothing-here'), time: 1, session: { clientId: 'c9', seq: 1, lowestUnackedSeq: 1 } }), 1000);
    assert.equal(a.revision, busyMember().revision, 'no key changed');
    assert.notEqual(a.hash(), h, 'but the session table did');
  });
});

describe('kv store: against a model', () => {
  it('random puts, deletes, txns and compactions read back like a naive multi-version model at every revision', () => {
    interface ModelKv {
      value: string;
      create: number;
      mod: number;
      version: number;
    }
    const rng = new Random(42);
    const sm = new KvStateMachine();
    const states: Map<string, ModelKv>[] = [new Map(), new Map()]; // states[rev]
    let compacted = -1;
    let index = 0;
    const keys = Array.from({ length: 40 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    const apply = (op: KvOperation) => sm.apply(encodeCommand({ op, time: 1 }), ++index);
    for (let step = 0; step < 1500; step++) {
      const cur = new Map(states[states.length - 1]!);
      const rev = states.length; // the revision a change would take
      const roll = rng.int(100);
      let changed = false;
      if (roll < 55) {
        const k = rng.pick(keys);
        const v = `v${step}`;
        apply(putOp(k, v));
        const prev = cur.get(k);
        cur.set(k, { value: v, create: prev ? prev.create : rev, mod: rev, version: prev ? prev.version + 1 : 1 });
        changed = true;
      } else if (roll < 75) {
        const from = rng.pick(keys);
        const to = rng.chance(0.5) ? '' : rng.pick(keys);
        apply(delOp(from, to));
        for (const k of [...cur.keys()]) {
          if (to === '' ? k === from : k >= from && k < to) {
            cur.delete(k);
            changed = true;
          }
        }
      } else if (roll < 92) {
        // A txn of puts to distinct keys: one revision for all.
        const ks = [...new Set(Array.from({ length: 1 + rng.int(4) }, () => rng.pick(keys)))];
        const r = apply({
          type: 'txn',
          request: { compare: [], success: ks.map((k) => ({ requestPut: putOp(k, `t${step}`).request as never })), failure: [] },
        }) as TxnResponse;
        assert.equal(r.header.revision, rev);
        for (const k of ks) {
          const prev = cur.get(k);
          cur.set(k, { value: `t${step}`, create: prev ? prev.create : rev, mod: rev, version: prev ? prev.version + 1 : 1 });
        }
        changed = true;
      } else {
        const at = compacted + 1 + rng.int(Math.max(1, rev - 1 - compacted));
        const r = apply(compactOp(at));
        if (at <= rev - 1 && at > compacted) {
          assert.ok(!(r instanceof KvError), `compact ${at}`);
          compacted = at;
        }
      }
      if (changed) states.push(cur);
      else states[states.length - 1] = cur;
      assert.equal(sm.revision, states.length - 1);

      if (step % 50 === 49) {
        const expect = (r: number) =>
          [...states[r]!.entries()]
            .sort(([x], [y]) => (x < y ? -1 : 1))
            .map(([k, m]) => `${k}=${m.value}@c${m.create}m${m.mod}v${m.version}`);
        for (let r = Math.max(1, compacted); r < states.length; r++) assert.deepEqual(dump(sm, r), expect(r), `at revision ${r}`);
        assert.equal(sm.keyCount, states[states.length - 1]!.size);
        // A snapshot taken now restores to the same readings.
        const copy = new KvStateMachine();
        copy.restore(sm.snapshot(), index);
        assert.deepEqual(dump(copy, Math.max(1, compacted)), dump(sm, Math.max(1, compacted)));
      }
    }
  });
});
