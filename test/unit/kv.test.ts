// The key-value state machine (src/kv/) against etcd v3's semantics: put,
// range, delete, txn, compaction and raftkv's increment, with etcd's errors.
// Expected values marked "etcd 3.4.23" were observed on a real etcd 3.4
// (through its gRPC gateway) with the same requests; the rest follow
// etcd's source (server/etcdserver/apply.go, server/mvcc/kvstore_txn.go,
// server/etcdserver/api/v3rpc/key.go).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  type Compare,
  type CompareResult,
  type CompareTarget,
  type DeleteRangeRequest,
  type KeyValue,
  type KvOperation,
  type KvResult,
  type PutRequest,
  type RangeRequest,
  rangeRequest,
  type RangeResponse,
  type RequestOp,
  type TxnRequest,
  type TxnResponse,
  KvError,
  KvStateMachine,
  encodeCommand,
  isReadOnlyTxn,
  isSerializableTxn,
  validateOperation,
  validateRange,
  validateTxn,
} from '../../src/kv/index.js';

// ---------------------------------------------------------------------------
// Helpers: requests with etcd's defaults, applied through the log's path
// (validate, encode, apply) as the server does.

const b = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const s = (u: Uint8Array) => Buffer.from(u).toString('latin1');

function putReq(key: string, value = '', extra: Partial<PutRequest> = {}): PutRequest {
  return { key: b(key), value: b(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false, ...extra };
}

function rangeReq(key: string, rangeEnd = '', extra: Partial<RangeRequest> = {}): RangeRequest {
  return rangeRequest({ key: b(key), rangeEnd: b(rangeEnd), ...extra });
}

function delReq(key: string, rangeEnd = '', prevKv = false): DeleteRangeRequest {
  return { key: b(key), rangeEnd: b(rangeEnd), prevKv };
}

const P = (key: string, value = 'v', extra: Partial<PutRequest> = {}): RequestOp => ({ requestPut: putReq(key, value, extra) });
const R = (key: string, rangeEnd = '', extra: Partial<RangeRequest> = {}): RequestOp => ({ requestRange: rangeReq(key, rangeEnd, extra) });
const D = (key: string, rangeEnd = '', prevKv = false): RequestOp => ({ requestDeleteRange: delReq(key, rangeEnd, prevKv) });
const T = (success: RequestOp[], failure: RequestOp[] = [], compare: Compare[] = []): RequestOp => ({
  requestTxn: { compare, success, failure },
});

function cmp(key: string, target: CompareTarget, result: CompareResult, union: Compare['targetUnion'], rangeEnd = ''): Compare {
  return { key: b(key), target, result, targetUnion: union, rangeEnd: b(rangeEnd) };
}

// Enum values (const enums are inlined; named here for readability).
const EQUAL = 0 as CompareResult;
const GREATER = 1 as CompareResult;
const LESS = 2 as CompareResult;
const NOT_EQUAL = 3 as CompareResult;
const VERSION = 0 as CompareTarget;
const CREATE = 1 as CompareTarget;
const MOD = 2 as CompareTarget;
const VALUE = 3 as CompareTarget;
const LEASE = 4 as CompareTarget;

class Kv {
  readonly sm = new KvStateMachine();
  private index = 0;

  /** Validates (as the server does before proposing), then applies through the log encoding. */
  op(op: KvOperation): KvResult {
    try {
      validateOperation(op);
    } catch (e) {
      if (e instanceof KvError) return e;
      throw e;
    }
    return this.sm.apply(encodeCommand({ op, time: 1_000 }), ++this.index);
  }

  /** Applies without the proposer's validation (a command that skipped it). */
  raw(op: KvOperation): KvResult {
    return this.sm.apply(encodeCommand({ op, time: 1_000 }), ++this.index);
  }

  put(key: string, value = 'v', extra: Partial<PutRequest> = {}) {
    return this.op({ type: 'put', request: putReq(key, value, extra) });
  }

  del(key: string, rangeEnd = '', prevKv = false) {
    return this.op({ type: 'deleteRange', request: delReq(key, rangeEnd, prevKv) });
  }

  txn(success: RequestOp[], failure: RequestOp[] = [], compare: Compare[] = []) {
    return this.op({ type: 'txn', request: { compare, success, failure } });
  }

  compact(revision: number) {
    return this.op({ type: 'compact', request: { revision, physical: false } });
  }

  inc(key: string, delta: number) {
    return this.op({ type: 'increment', request: { key: b(key), delta } });
  }

  range(key: string, rangeEnd = '', extra: Partial<RangeRequest> = {}): RangeResponse {
    return this.sm.range(rangeReq(key, rangeEnd, extra));
  }

  /** The range's kvs as "key=value@cCREATEmMODvVERSION". */
  list(key: string, rangeEnd = '', extra: Partial<RangeRequest> = {}): string[] {
    return this.range(key, rangeEnd, extra).kvs.map(show);
  }

  rangeError(key: string, rangeEnd = '', extra: Partial<RangeRequest> = {}): KvError {
    try {
      this.range(key, rangeEnd, extra);
    } catch (e) {
      assert.ok(e instanceof KvError);
      return e;
    }
    assert.fail('range did not fail');
  }
}

function show(kv: KeyValue): string {
  return `${s(kv.key)}=${s(kv.value)}@c${kv.createRevision}m${kv.modRevision}v${kv.version}`;
}

function ok<T>(r: KvResult | T): T {
  if (r instanceof KvError) assert.fail(`unexpected error ${r.code}: ${r.message}`);
  return r as T;
}

function err(r: unknown, code: string, status: number, message: string): void {
  assert.ok(r instanceof KvError, `expected ${code}, got ${JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  assert.equal(r.code, code);
  assert.equal(r.grpcStatus, status);
  assert.equal(r.message, message);
}

const MSG = {
  emptyKey: 'etcdserver: key is not provided',
  keyNotFound: 'etcdserver: key not found',
  valueProvided: 'etcdserver: value is provided',
  leaseProvided: 'etcdserver: lease is provided',
  tooManyOps: 'etcdserver: too many operations in txn request',
  duplicateKey: 'etcdserver: duplicate key given in txn request',
  compacted: 'etcdserver: mvcc: required revision has been compacted',
  future: 'etcdserver: mvcc: required revision is a future revision',
  leaseNotFound: 'etcdserver: requested lease not found',
  sortOption: 'etcdserver: invalid sort option',
};

// ---------------------------------------------------------------------------

describe('kv: revisions and versions', () => {
  it('starts at revision 1 and bumps it once per put', () => {
    const kv = new Kv();
    assert.equal(kv.sm.revision, 1);
    assert.equal(ok<{ header: { revision: number } }>(kv.put('a', '1')).header.revision, 2);
    assert.equal(ok<{ header: { revision: number } }>(kv.put('b', '1')).header.revision, 3);
    assert.equal(ok<{ header: { revision: number } }>(kv.put('a', '2')).header.revision, 4);
    assert.deepEqual(kv.list('a', 'c'), ['a=2@c2m4v2', 'b=1@c3m3v1']);
    assert.equal(kv.range('a').header.revision, 4);
    assert.equal(kv.sm.keyCount, 2);
  });

  it('a delete leaves a tombstone: the key is gone, and a new put starts a new generation', () => {
    const kv = new Kv();
    kv.put('k', '1'); // 2
    kv.put('k', '2'); // 3
    const d = ok<{ header: { revision: number }; deleted: number }>(kv.del('k'));
    assert.equal(d.deleted, 1);
    assert.equal(d.header.revision, 4);
    assert.deepEqual(kv.list('k'), []);
    assert.equal(kv.sm.keyCount, 0);
    kv.put('k', '3'); // 5
    assert.deepEqual(kv.list('k'), ['k=3@c5m5v1']);
    // History: the old generation is still readable.
    assert.deepEqual(kv.list('k', '', { revision: 3 }), ['k=2@c2m3v2']);
    assert.deepEqual(kv.list('k', '', { revision: 4 }), []);
  });

  it('a delete of nothing does not bump the revision and answers with the current one', () => {
    const kv = new Kv();
    kv.put('a');
    const d = ok<{ header: { revision: number }; deleted: number; prevKvs: KeyValue[] }>(kv.del('zzz', '', true));
    assert.deepEqual([d.header.revision, d.deleted, d.prevKvs.length], [2, 0, 0]);
    assert.equal(kv.sm.revision, 2);
  });

  it('put with prevKv returns the previous version; without one, none', () => {
    const kv = new Kv();
    const first = ok<{ prevKv?: KeyValue }>(kv.put('k', 'x', { prevKv: true }));
    assert.equal(first.prevKv, undefined);
    const second = ok<{ prevKv?: KeyValue }>(kv.put('k', 'y', { prevKv: true }));
    assert.equal(show(second.prevKv!), 'k=x@c2m2v1');
    const third = ok<{ prevKv?: KeyValue }>(kv.put('k', 'z'));
    assert.equal(third.prevKv, undefined);
  });

  it('deleteRange by range, from a key ("\\0") and of everything ("\\0", "\\0"), with prevKvs', () => {
    const kv = new Kv();
    for (const k of ['a', 'b', 'c', 'd', 'e']) kv.put(k, k.toUpperCase());
    const r1 = ok<{ deleted: number; prevKvs: KeyValue[] }>(kv.del('b', 'd', true));
    assert.equal(r1.deleted, 2);
    assert.deepEqual(r1.prevKvs.map(show), ['b=B@c3m3v1', 'c=C@c4m4v1']);
    const r2 = ok<{ deleted: number; header: { revision: number } }>(kv.del('d', '\0'));
    assert.deepEqual([r2.deleted, r2.header.revision], [2, 8]);
    assert.deepEqual(kv.list('\0', '\0'), ['a=A@c2m2v1']);
    const r3 = ok<{ deleted: number }>(kv.del('\0', '\0'));
    assert.equal(r3.deleted, 1);
    assert.equal(kv.sm.keyCount, 0);
    // A range end at or before the key deletes nothing.
    kv.put('m');
    assert.equal(ok<{ deleted: number }>(kv.del('m', 'a')).deleted, 0);
  });
});

describe('kv: put flags and leases', () => {
  it('ignore_value keeps the value, ignore_lease the lease; both need the key', () => {
    const kv = new Kv();
    err(kv.put('k', '', { ignoreValue: true }), 'KEY_NOT_FOUND', 3, MSG.keyNotFound);
    err(kv.put('k', '', { ignoreLease: true }), 'KEY_NOT_FOUND', 3, MSG.keyNotFound);
    assert.equal(kv.sm.revision, 1, 'a failed put does not bump the revision');
    kv.put('k', 'orig');
    const r = ok<{ prevKv?: KeyValue }>(kv.put('k', '', { ignoreValue: true, prevKv: true }));
    assert.equal(show(r.prevKv!), 'k=orig@c2m2v1');
    assert.deepEqual(kv.list('k'), ['k=orig@c2m3v2']);
    kv.put('k', 'new', { ignoreLease: true });
    assert.deepEqual(kv.list('k'), ['k=new@c2m4v3']);
  });

  it("refuses a value with ignore_value and a lease with ignore_lease (etcd's checkPutRequest)", () => {
    const kv = new Kv();
    kv.put('k');
    err(kv.put('k', 'x', { ignoreValue: true }), 'VALUE_PROVIDED', 3, MSG.valueProvided);
    err(kv.put('k', '', { ignoreLease: true, lease: 3n }), 'LEASE_PROVIDED', 3, MSG.leaseProvided);
  });

  it('a put with a lease fails with NotFound (leases are not supported yet), before any other check (etcd 3.4.23)', () => {
    const kv = new Kv();
    err(kv.put('k', 'x', { lease: 5n }), 'LEASE_NOT_FOUND', 5, MSG.leaseNotFound);
    // Even on a missing key with ignore_value: the lease is looked up first.
    err(kv.put('nokey', '', { lease: 5n, ignoreValue: true }), 'LEASE_NOT_FOUND', 5, MSG.leaseNotFound);
    assert.equal(kv.sm.revision, 1);
  });

  it('an empty key is refused everywhere', () => {
    const kv = new Kv();
    err(kv.put(''), 'KEY_NOT_PROVIDED', 3, MSG.emptyKey);
    err(kv.del(''), 'KEY_NOT_PROVIDED', 3, MSG.emptyKey);
    err(kv.rangeError(''), 'KEY_NOT_PROVIDED', 3, MSG.emptyKey);
    err(kv.inc('', 1), 'KEY_NOT_PROVIDED', 3, MSG.emptyKey);
    err(kv.txn([], [], [cmp('', VERSION, EQUAL, undefined)]), 'KEY_NOT_PROVIDED', 3, MSG.emptyKey);
    err(kv.txn([P('')]), 'KEY_NOT_PROVIDED', 3, MSG.emptyKey);
    // Apply checks too, for a command that skipped validation.
    err(kv.raw({ type: 'put', request: putReq('') }), 'KEY_NOT_PROVIDED', 3, MSG.emptyKey);
    assert.equal(kv.sm.revision, 1);
  });
});

describe('kv: range', () => {
  function sample(): Kv {
    // etcd 3.4.23, same sequence: t1/a=3 b=1 c=2 d=1 e=2, then c, e, e rewritten.
    const kv = new Kv();
    for (const [k, v] of [
      ['a', '3'],
      ['b', '1'],
      ['c', '2'],
      ['d', '1'],
      ['e', '2'],
    ] as const) {
      kv.put(`t1/${k}`, v);
    }
    kv.put('t1/c', '2');
    kv.put('t1/e', '2');
    kv.put('t1/e', '2');
    return kv;
  }
  const all = (kv: Kv, extra: Partial<RangeRequest> = {}) => kv.range('t1/', 't10', extra);
  const names = (r: RangeResponse) => r.kvs.map(show);

  it('single key, half-open range, from a key, and everything', () => {
    const kv = sample();
    assert.deepEqual(kv.list('t1/c'), ['t1/c=2@c4m7v2']);
    assert.deepEqual(kv.list('t1/b', 't1/d').length, 2);
    assert.deepEqual(kv.list('t1/d', '\0'), ['t1/d=1@c5m5v1', 't1/e=2@c6m9v3']);
    assert.equal(kv.list('\0', '\0').length, 5);
    assert.deepEqual(kv.list('t1/x'), []);
    assert.deepEqual(kv.list('t1/d', 't1/a'), [], 'an end before the key is empty');
  });

  it('answers with the current revision and the count of all matches', () => {
    const kv = sample();
    const r = all(kv);
    assert.equal(r.header.revision, 9);
    assert.equal(r.count, 5);
    assert.equal(r.more, false);
    assert.deepEqual(names(r), ['t1/a=3@c2m2v1', 't1/b=1@c3m3v1', 't1/c=2@c4m7v2', 't1/d=1@c5m5v1', 't1/e=2@c6m9v3']);
  });

  it('limit sets more, count stays the total; a negative limit is no limit (etcd 3.4.23)', () => {
    const kv = sample();
    const r = all(kv, { limit: 2 });
    assert.deepEqual([r.kvs.length, r.more, r.count], [2, true, 5]);
    const exact = all(kv, { limit: 5 });
    assert.deepEqual([exact.kvs.length, exact.more], [5, false]);
    assert.equal(all(kv, { limit: -1 }).kvs.length, 5);
  });

  it('count_only and keys_only (etcd 3.4.23)', () => {
    const kv = sample();
    const c = all(kv, { countOnly: true, limit: 1 });
    assert.deepEqual([c.kvs.length, c.count, c.more], [0, 5, false]);
    const k = all(kv, { keysOnly: true, limit: 1 });
    assert.deepEqual([k.kvs.length, s(k.kvs[0]!.value), k.kvs[0]!.modRevision, k.more], [1, '', 2, true]);
  });

  it("sorts like etcd: ties keep key order in either direction (etcd 3.4.23)", () => {
    const kv = sample();
    const keys = (r: RangeResponse) => r.kvs.map((x) => s(x.key).slice(3));
    // VERSION with order NONE sorts ascending, but only the limit+1 keys fetched.
    assert.deepEqual(keys(all(kv, { sortTarget: 1, limit: 2 })), ['a', 'b']);
    assert.equal(all(kv, { sortTarget: 1, limit: 2 }).more, true);
    assert.deepEqual(keys(all(kv, { sortTarget: 1, sortOrder: 2 })), ['e', 'c', 'a', 'b', 'd']);
    assert.deepEqual(keys(all(kv, { sortTarget: 4, sortOrder: 2 })), ['a', 'c', 'e', 'b', 'd']);
    assert.deepEqual(keys(all(kv, { sortTarget: 4, sortOrder: 1, limit: 3 })), ['b', 'd', 'c']);
    assert.deepEqual(keys(all(kv, { sortOrder: 2, limit: 2 })), ['e', 'd']);
    assert.deepEqual(keys(all(kv, { sortTarget: 2, sortOrder: 2 })), ['e', 'd', 'c', 'b', 'a']);
    assert.deepEqual(keys(all(kv, { sortTarget: 3, sortOrder: 1 })), ['a', 'b', 'd', 'c', 'e']);
    // KEY with NONE: key order, no sort (and a limit is applied while fetching).
    assert.deepEqual(keys(all(kv, { sortTarget: 0, sortOrder: 0, limit: 3 })), ['a', 'b', 'c']);
  });

  it('filters by mod and create revision after fetching; count ignores the filters (etcd 3.4.23)', () => {
    const kv = sample();
    const r = all(kv, { minModRevision: 5, limit: 1 });
    assert.deepEqual([names(r), r.more, r.count], [['t1/c=2@c4m7v2'], true, 5]);
    // Each bound keeps a version exactly at it (etcd prunes mod < min, mod > max, create < min, create > max).
    assert.deepEqual(names(all(kv, { minModRevision: 5 })), ['t1/c=2@c4m7v2', 't1/d=1@c5m5v1', 't1/e=2@c6m9v3']);
    assert.deepEqual(names(all(kv, { maxModRevision: 3 })), ['t1/a=3@c2m2v1', 't1/b=1@c3m3v1']);
    assert.deepEqual(names(all(kv, { minCreateRevision: 4, maxCreateRevision: 5 })), ['t1/c=2@c4m7v2', 't1/d=1@c5m5v1']);
  });

  it('reads history at a revision; refuses future and compacted revisions', () => {
    const kv = sample();
    assert.deepEqual(names(all(kv, { revision: 4 })), ['t1/a=3@c2m2v1', 't1/b=1@c3m3v1', 't1/c=2@c4m4v1']);
    assert.equal(all(kv, { revision: 4 }).header.revision, 9, 'the header has the current revision');
    assert.deepEqual(names(all(kv, { revision: 1 })), []);
    assert.equal(all(kv, { revision: -3 }).kvs.length, 5, 'a negative revision reads the current one');
    err(kv.rangeError('t1/a', '', { revision: 10 }), 'FUTURE_REVISION', 11, MSG.future);
    ok(kv.compact(5));
    err(kv.rangeError('t1/a', '', { revision: 4 }), 'COMPACTED', 11, MSG.compacted);
    assert.deepEqual(names(all(kv, { revision: 5 })).length, 4, 'the compact revision itself is readable');
  });

  it('refuses unknown sort enums (etcd after 3.5; 3.4 panics on an unknown target)', () => {
    assert.throws(() => validateRange(rangeReq('a', '', { sortOrder: 3 as never })), (e: KvError) => e.message === MSG.sortOption);
    const kv = new Kv();
    err(kv.rangeError('a', '', { sortTarget: 5 as never, sortOrder: 1 }), 'INVALID_SORT_OPTION', 3, MSG.sortOption);
  });

  it('keys are bytes: "\\0" inside keys and non-UTF-8 bytes order bytewise', () => {
    const kv = new Kv();
    for (const k of ['a\0', 'a', 'ab', '\xff', '\x7f', 'b']) kv.put(k, k);
    assert.deepEqual(
      kv.range('\0', '\0').kvs.map((x) => [...x.key]),
      [[0x61], [0x61, 0], [0x61, 0x62], [0x62], [0x7f], [0xff]],
    );
    assert.deepEqual(kv.list('a', 'ab').map((x) => x.split('=')[0]), ['a', 'a\0']);
  });
});

describe('kv: txn', () => {
  it('several writes share one revision with ordered sub-revisions; reads inside see earlier writes (etcd 3.4.23)', () => {
    const kv = new Kv();
    kv.put('s1', '1'); // 2
    kv.put('s4', '4'); // 3
    const r = ok<TxnResponse>(
      kv.txn([
        R('s'),
        D('zz'),
        R('s1'),
        P('s2', '2'),
        R('s', 't'),
        P('s1', '1b', { prevKv: true }),
        D('s4', '', true),
        R('s', 't'),
        T([P('s3', '3'), R('s', 't', { keysOnly: true })]),
      ]),
    );
    assert.equal(r.header.revision, 4);
    assert.equal(r.succeeded, true);
    const rs = r.responses;
    const range = (i: number) => (rs[i] as { responseRange: RangeResponse }).responseRange;
    // Before the first write the txn reads (and answers) at revision 3, after it at 4.
    assert.equal(range(0).header.revision, 3);
    assert.equal((rs[1] as { responseDeleteRange: { header: { revision: number } } }).responseDeleteRange.header.revision, 3);
    assert.equal(range(2).header.revision, 3);
    assert.equal((rs[3] as { responsePut: { header: { revision: number } } }).responsePut.header.revision, 4);
    assert.deepEqual(range(4).kvs.map(show), ['s1=1@c2m2v1', 's2=2@c4m4v1', 's4=4@c3m3v1']);
    assert.equal(range(4).header.revision, 4);
    assert.equal(show((rs[5] as { responsePut: { prevKv: KeyValue } }).responsePut.prevKv), 's1=1@c2m2v1');
    const del = (rs[6] as { responseDeleteRange: { deleted: number; prevKvs: KeyValue[] } }).responseDeleteRange;
    assert.deepEqual([del.deleted, del.prevKvs.map(show)], [1, ['s4=4@c3m3v1']]);
    assert.deepEqual(range(7).kvs.map(show), ['s1=1b@c2m4v2', 's2=2@c4m4v1']);
    const nested = (rs[8] as { responseTxn: TxnResponse }).responseTxn;
    assert.equal(nested.header.revision, 0, "a nested txn's header has no revision");
    const inner = (nested.responses[1] as { responseRange: RangeResponse }).responseRange;
    assert.deepEqual(
      inner.kvs.map((x) => `${s(x.key)}:${s(x.value)}`),
      ['s1:', 's2:', 's3:'],
    );
    assert.deepEqual(kv.list('s', 't'), ['s1=1b@c2m4v2', 's2=2@c4m4v1', 's3=3@c4m4v1']);
    assert.equal(kv.sm.revision, 4);
  });

  it('a read-only txn, or one whose writes change nothing, keeps the revision', () => {
    const kv = new Kv();
    kv.put('a');
    assert.equal(ok<TxnResponse>(kv.txn([R('a'), D('zz')])).header.revision, 2);
    assert.equal(ok<TxnResponse>(kv.txn([])).header.revision, 2);
    assert.equal(kv.sm.revision, 2);
    // A delete of nothing after a write answers with the txn's new revision (etcd 3.4.23).
    const r = ok<TxnResponse>(kv.txn([P('b'), D('zzz')]));
    assert.equal((r.responses[1] as { responseDeleteRange: { header: { revision: number } } }).responseDeleteRange.header.revision, 3);
  });

  it('compares value, version, create, mod and lease; missing keys compare as zero except by value (etcd 3.4.23)', () => {
    const kv = new Kv();
    kv.put('s2', '2'); // 2
    kv.put('s3', '3'); // 3
    const ran = (...cs: Compare[]) => ok<TxnResponse>(kv.txn([], [], cs)).succeeded;
    assert.equal(ran(cmp('s9', VERSION, EQUAL, { version: 0 })), true);
    assert.equal(ran(cmp('s9', VALUE, NOT_EQUAL, { value: b('x') })), false, 'value compares on a missing key fail');
    assert.equal(ran(cmp('s2', VALUE, EQUAL, undefined)), false, 'no value: the empty one');
    assert.equal(ran(cmp('s2', VALUE, GREATER, undefined)), true);
    assert.equal(ran(cmp('s2', VALUE, EQUAL, { value: b('2') })), true);
    assert.equal(ran(cmp('s2', VALUE, LESS, { value: b('3') })), true);
    assert.equal(ran(cmp('s2', CREATE, EQUAL, { createRevision: 2 })), true);
    assert.equal(ran(cmp('s2', CREATE, GREATER, { modRevision: 3 })), true, 'a mismatched union compares with 0');
    assert.equal(ran(cmp('s2', MOD, EQUAL, undefined)), false);
    assert.equal(ran(cmp('s3', MOD, GREATER, { modRevision: 2 })), true);
    assert.equal(ran(cmp('s2', LEASE, EQUAL, { lease: 0n })), true);
    assert.equal(ran(cmp('s2', VERSION, NOT_EQUAL, { version: 1 })), false);
    // Every key in a range must satisfy it.
    assert.equal(ran(cmp('s', CREATE, GREATER, { createRevision: 1 }, 't')), true);
    assert.equal(ran(cmp('s', MOD, LESS, { modRevision: 3 }, 't')), false);
    assert.equal(ran(cmp('s', MOD, LESS, { modRevision: 4 }, '\0')), true);
    // All compares must hold.
    assert.equal(ran(cmp('s2', VERSION, EQUAL, { version: 1 }), cmp('s3', VERSION, EQUAL, { version: 2 })), false);
    // An unknown result passes, an unknown target compares as equal (etcd's compareKV).
    assert.equal(ran(cmp('s2', VERSION, 9 as CompareResult, { version: 7 })), true);
    assert.equal(ran(cmp('s2', 9 as CompareTarget, EQUAL, { version: 7 })), true);
  });

  it('serves a read-only txn from the local state, without a revision of its own', () => {
    const kv = new Kv();
    kv.put('a', '1');
    kv.put('b', '2');
    const req: TxnRequest = {
      compare: [cmp('a', VALUE, EQUAL, { value: b('1') })],
      success: [R('a', 'c', { serializable: true }), R('a', '', { revision: 2, serializable: true })],
      failure: [],
    };
    assert.ok(isReadOnlyTxn(req) && isSerializableTxn(req));
    const r = kv.sm.readTxn(req);
    assert.equal(r.succeeded, true);
    assert.equal(r.header.revision, 3);
    assert.deepEqual((r.responses[0] as { responseRange: RangeResponse }).responseRange.kvs.map(show), ['a=1@c2m2v1', 'b=2@c3m3v1']);
    assert.equal(kv.sm.revision, 3);
    assert.throws(() => kv.sm.readTxn({ ...req, success: [R('a', '', { revision: 9 })] }), (e: KvError) => e.code === 'FUTURE_REVISION');
    const writes: TxnRequest = { compare: [], success: [R('a')], failure: [P('x')] };
    assert.ok(!isReadOnlyTxn(writes));
    assert.ok(!isSerializableTxn({ compare: [], success: [R('a')], failure: [] }));
    assert.ok(!isReadOnlyTxn({ compare: [], success: [T([R('a')])], failure: [] }), 'a nested txn counts as a write (etcd)');
    assert.throws(() => kv.sm.readTxn(writes), TypeError);
    assert.equal(kv.sm.revision, 3);
  });

  it('runs the failure branch when a compare fails', () => {
    const kv = new Kv();
    const r = ok<TxnResponse>(kv.txn([P('yes')], [P('no'), R('no')], [cmp('x', VERSION, GREATER, { version: 0 })]));
    assert.equal(r.succeeded, false);
    assert.equal(r.responses.length, 2);
    assert.deepEqual(kv.list('\0', '\0').map((x) => x.split('=')[0]), ['no']);
  });

  it("nested compares see the store as the txn found it, not the txn's own writes (etcd 3.4.23)", () => {
    const kv = new Kv();
    const r = ok<TxnResponse>(kv.txn([P('n2', 'x'), T([P('n3', 'y'), R('n2')], [], [cmp('n2', VERSION, EQUAL, { version: 0 })])]));
    const nested = (r.responses[1] as { responseTxn: TxnResponse }).responseTxn;
    assert.equal(nested.succeeded, true);
    assert.deepEqual((nested.responses[1] as { responseRange: RangeResponse }).responseRange.kvs.map(show), ['n2=x@c2m2v1']);
    assert.deepEqual(kv.list('n', 'o'), ['n2=x@c2m2v1', 'n3=y@c2m2v1']);
  });

  it("refuses overlapping writes like etcd's checkIntervals, asymmetries included (etcd 3.4.23)", () => {
    const kv = new Kv();
    kv.put('k', '0');
    const dup = (r: KvResult) => err(r, 'DUPLICATE_KEY', 3, MSG.duplicateKey);
    dup(kv.txn([P('k'), P('k')]));
    dup(kv.txn([T([D('k')]), T([P('k')])]));
    dup(kv.txn([T([P('k')]), T([], [P('k')])]));
    dup(kv.txn([D('a', 'z'), P('k')]));
    dup(kv.txn([D('k'), P('k')]));
    dup(kv.txn([P('k'), T([P('k')])]));
    // Allowed:
    ok(kv.txn([T([P('k')]), T([D('k')])])); // a nested delete after a nested put
    ok(kv.txn([T([P('k')], [P('k')])])); // the two branches of one txn
    ok(kv.txn([P('k')], [P('k')])); // the two branches of the top level
    ok(kv.txn([D('x'), D('x')])); // deletes may overlap each other
    // A delete to "\0" is taken literally by the check, so it overlaps nothing:
    const r = ok<TxnResponse>(kv.txn([D('a', '\0'), P('k', 'after')]));
    assert.equal((r.responses[0] as { responseDeleteRange: { deleted: number } }).responseDeleteRange.deleted, 1);
    assert.deepEqual(kv.list('k').map((x) => x.split('@')[0]), ['k=after']);
  });

  it('a txn whose ignore_lease put finds its key deleted by a "\\0" delete before it fails whole, where etcd 3.4.23 panics', () => {
    // The check above lets it through in etcd too; its applier then meets
    // "key not found" halfway and panics ("unexpected error during txn"), with
    // the entry already in its log (found by test/e2e/etcdModel.test.ts,
    // reproduced by hand against etcd 3.4.23). Here it is etcd's error, and
    // nothing of the txn is applied.
    const kv = new Kv();
    kv.put('a', '1');
    kv.put('b/1', 'x');
    kv.put('c', '1');
    const before = kv.list('a', '\0');
    const revision = kv.range('a').header.revision;
    for (const flag of ['ignoreLease', 'ignoreValue'] as const) {
      err(kv.txn([], [D('a', '\0'), P('b/1', flag === 'ignoreLease' ? '1' : '', { [flag]: true, prevKv: true })], [cmp('c', VERSION, EQUAL, { version: 9 })]), 'KEY_NOT_FOUND', 3, MSG.keyNotFound);
      assert.deepEqual(kv.list('a', '\0'), before);
      assert.equal(kv.range('a').header.revision, revision);
    }
  });

  it('refuses a txn with more operations than max-txn-ops (default 128), counting nested ones against what is left (etcd 3.4.23)', () => {
    const kv = new Kv();
    const many = (n: number, f: (i: number) => RequestOp) => Array.from({ length: n }, (_, i) => f(i));
    const compares = (n: number) => Array.from({ length: n }, () => cmp('x', VERSION, EQUAL, { version: 0 }));
    err(kv.txn(many(129, (i) => P(`x${i}`))), 'TOO_MANY_OPS', 3, MSG.tooManyOps);
    err(kv.txn([], [], compares(129)), 'TOO_MANY_OPS', 3, MSG.tooManyOps);
    ok(kv.txn(many(128, () => R('x'))));
    err(kv.txn([T([P('n0'), P('n1')])], [], compares(127)), 'TOO_MANY_OPS', 3, MSG.tooManyOps);
    ok(kv.txn([T([P('n0')])], [], compares(127)));
    // The limit is the proposer's setting.
    const txn: TxnRequest = { compare: [], success: [P('a'), P('b'), P('c')], failure: [] };
    assert.throws(() => validateTxn(txn, 2), (e: KvError) => e.code === 'TOO_MANY_OPS');
    assert.doesNotThrow(() => validateTxn(txn, 3));
    // Apply does not enforce it: members need not agree on the setting.
    assert.equal(ok<TxnResponse>(kv.raw({ type: 'txn', request: { compare: [], success: many(200, (i) => P(`y${i}`)), failure: [] } })).succeeded, true);
  });

  it('refuses an empty RequestOp with "key not found" (etcd 3.4.23)', () => {
    const kv = new Kv();
    err(kv.txn([{} as RequestOp]), 'KEY_NOT_FOUND', 3, MSG.keyNotFound);
  });

  it('checks puts before ranges, only on the taken path (etcd 3.4.23)', () => {
    const kv = new Kv();
    kv.put('a');
    err(kv.txn([R('a', '', { revision: 1000 }), P('nokey', 'v', { lease: 5n })]), 'LEASE_NOT_FOUND', 5, MSG.leaseNotFound);
    err(kv.txn([R('a', '', { revision: 1000 })], [P('nokey', 'v', { lease: 5n })]), 'FUTURE_REVISION', 11, MSG.future);
    err(kv.txn([P('nokey', '', { ignoreValue: true })]), 'KEY_NOT_FOUND', 3, MSG.keyNotFound);
    ok(kv.txn([R('a')], [P('nokey', '', { ignoreValue: true })])); // the failing put is on the path not taken
    assert.equal(kv.sm.revision, 2);
  });

  it('refuses a txn whose ignore_value put follows a delete of its key, writing nothing (etcd 3.4.23 panics the member here)', () => {
    const kv = new Kv();
    kv.put('pk', '1'); // 2
    kv.put('pz', 'z'); // 3
    err(kv.txn([D('pa', '\0'), P('pk', '', { ignoreValue: true })]), 'KEY_NOT_FOUND', 3, MSG.keyNotFound);
    err(kv.txn([T([D('pa', '\0')]), T([P('pk', '', { ignoreLease: true })])]), 'KEY_NOT_FOUND', 3, MSG.keyNotFound);
    assert.equal(kv.sm.revision, 3);
    assert.deepEqual(kv.list('p', 'q'), ['pk=1@c2m2v1', 'pz=z@c3m3v1']);
  });

  it('a range inside a txn is checked against the revisions the txn starts from', () => {
    const kv = new Kv();
    kv.put('a'); // 2
    kv.put('a'); // 3
    ok(kv.compact(2));
    err(kv.txn([R('a', '', { revision: 1 })]), 'COMPACTED', 11, MSG.compacted);
    err(kv.txn([R('a', '', { revision: -1 })]), 'COMPACTED', 11, MSG.compacted); // etcd: any revision below the compact one
    err(kv.txn([P('b'), R('a', '', { revision: 4 })]), 'FUTURE_REVISION', 11, MSG.future);
    const r = ok<TxnResponse>(kv.txn([R('a', '', { revision: 2 })]));
    assert.deepEqual((r.responses[0] as { responseRange: RangeResponse }).responseRange.kvs.map(show), ['a=v@c2m2v1']);
  });
});

describe('kv: compaction', () => {
  it("compacting at 0 succeeds once on a new store, then is compacted (etcd 3.4.23)", () => {
    const kv = new Kv();
    assert.equal(kv.sm.compactRevision, -1);
    assert.equal(ok<{ header: { revision: number } }>(kv.compact(0)).header.revision, 1);
    err(kv.compact(0), 'COMPACTED', 11, MSG.compacted);
    err(kv.compact(-1), 'COMPACTED', 11, MSG.compacted);
    err(kv.compact(2), 'FUTURE_REVISION', 11, MSG.future);
  });

  it('drops history below the revision but keeps the latest version of every live key', () => {
    const kv = new Kv();
    kv.put('a', '1'); // 2
    kv.put('a', '2'); // 3
    kv.put('b', '1'); // 4
    kv.put('a', '3'); // 5
    kv.del('b'); // 6
    kv.put('c', '1'); // 7
    const before = kv.sm.sizeBytes;
    ok(kv.compact(4));
    assert.equal(kv.sm.compactRevision, 4);
    assert.ok(kv.sm.sizeBytes < before);
    err(kv.rangeError('a', '', { revision: 3 }), 'COMPACTED', 11, MSG.compacted);
    assert.deepEqual(kv.list('\0', '\0', { revision: 4 }), ['a=2@c2m3v2', 'b=1@c4m4v1']);
    assert.deepEqual(kv.list('\0', '\0', { revision: 6 }), ['a=3@c2m5v3']);
    assert.deepEqual(kv.list('\0', '\0'), ['a=3@c2m5v3', 'c=1@c7m7v1']);
    // At 6 b's tombstone goes too: b's history is gone entirely.
    ok(kv.compact(6));
    assert.deepEqual(kv.list('\0', '\0', { revision: 6 }), ['a=3@c2m5v3']);
    kv.put('b', 'again');
    assert.deepEqual(kv.list('b'), ['b=again@c8m8v1']);
    err(kv.compact(6), 'COMPACTED', 11, MSG.compacted);
    err(kv.compact(5), 'COMPACTED', 11, MSG.compacted);
    ok(kv.compact(8));
    assert.deepEqual(kv.list('\0', '\0'), ['a=3@c2m5v3', 'b=again@c8m8v1', 'c=1@c7m7v1']);
    assert.equal(kv.sm.keyCount, 3);
  });

  it('a compaction answers with the current revision and does not bump it', () => {
    const kv = new Kv();
    kv.put('a');
    kv.put('a');
    assert.equal(ok<{ header: { revision: number } }>(kv.compact(2)).header.revision, 3);
    assert.equal(kv.sm.revision, 3);
  });
});

describe('kv: increment', () => {
  it('adds to a decimal integer (a missing key is 0) and stores the result as a put', () => {
    const kv = new Kv();
    const r1 = ok<{ header: { revision: number }; value: number; kv: KeyValue }>(kv.inc('n', 5));
    assert.deepEqual([r1.header.revision, r1.value, show(r1.kv)], [2, 5, 'n=5@c2m2v1']);
    const r2 = ok<{ value: number; kv: KeyValue }>(kv.inc('n', -7));
    assert.deepEqual([r2.value, show(r2.kv)], [-2, 'n=-2@c2m3v2']);
    kv.put('m', '0041');
    assert.equal(ok<{ value: number }>(kv.inc('m', 1)).value, 42);
    assert.equal(ok<{ value: number }>(kv.inc('m', 0)).value, 42);
    assert.deepEqual(kv.list('m'), ['m=42@c4m6v3']);
  });

  it('refuses a value that is not a decimal integer, and results beyond the safe integers', () => {
    const kv = new Kv();
    for (const v of ['', 'x', '1.5', ' 1', '1e3', '+1', '--1']) {
      kv.put('k', v);
      err(kv.inc('k', 1), 'NOT_AN_INTEGER', 9, 'raftkv: value of key "k" is not a decimal integer');
    }
    kv.put('big', String(Number.MAX_SAFE_INTEGER));
    const rev = kv.sm.revision;
    assert.equal(ok<{ value: number }>(kv.inc('big', 0)).value, Number.MAX_SAFE_INTEGER);
    const e = kv.inc('big', 1);
    assert.ok(e instanceof KvError && e.code === 'INCREMENT_OVERFLOW' && e.grpcStatus === 11);
    kv.put('huge', '99999999999999999999');
    assert.ok((kv.inc('huge', 1) as KvError).code === 'INCREMENT_OVERFLOW');
    assert.equal(kv.sm.revision, rev + 2, 'failed increments write nothing');
    const bad = kv.inc('k', 1.5);
    assert.ok(bad instanceof KvError && bad.code === 'INVALID_NUMBER');
  });
});
