// etcd's KV operations over the multi-version store, rule for rule as
// etcd 3.4/3.5 apply them (server/etcdserver/apply.go: applierV3backend's
// Range, Put, DeleteRange, Txn, Compaction; server/mvcc/kvstore_txn.go:
// rangeKeys), plus raftkv's Increment.
//
// Every function checks everything that can fail before it changes the
// store, and throws a KvError: a failed operation leaves no trace. (etcd
// panics the member where a check it does not make fails halfway through a
// transaction; see checkTxnWrites.)

import { bytesToLatin1 } from './codec.js';
import { etcdError, incrementOverflow, notAnInteger } from './errors.js';
import { header } from './messages.js';
import { type Bounds, type MvccStore, NO_LEASE, type Version, type WriteTxn, bounds, toKeyValue } from './mvcc.js';
import {
  type Compare,
  CompareResult,
  CompareTarget,
  type CompactionRequest,
  type CompactionResponse,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type IncrementRequest,
  type IncrementResponse,
  type KeyValue,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResponse,
} from './types.js';

// ---------------------------------------------------------------------------
// Range

/**
 * etcd's applierV3backend.Range over a view at revision `viewRev` (the
 * store's revision, or a write transaction's). Throws COMPACTED or
 * FUTURE_REVISION.
 */
export function range(store: MvccStore, viewRev: number, r: RangeRequest): RangeResponse {
  const filtered = r.minModRevision !== 0 || r.maxModRevision !== 0 || r.minCreateRevision !== 0 || r.maxCreateRevision !== 0;
  // Sorting or filtering needs every match; otherwise one beyond the limit tells `more`.
  let limit = r.sortOrder !== SortOrder.NONE || filtered ? 0 : r.limit;
  if (limit > 0) limit++;

  // rangeKeys
  let rev = r.revision;
  if (rev > viewRev) throw etcdError('FUTURE_REVISION');
  if (rev <= 0) rev = viewRev;
  if (rev < store.compactRevision) throw etcdError('COMPACTED');

  const b = bounds(bytesToLatin1(r.key), bytesToLatin1(r.rangeEnd));
  let count = 0;
  let keys: string[] = [];
  let versions: Version[] = [];
  if (r.countOnly) {
    store.visit(b, rev, () => {
      count++;
      return true;
    });
  } else {
    // etcd counts every match and keeps the first `limit`.
    store.visit(b, rev, (key, v) => {
      if (limit <= 0 || keys.length < limit) {
        keys.push(key);
        versions.push(v);
      }
      count++;
      return true;
    });
  }

  if (filtered) {
    const keep: number[] = [];
    for (let i = 0; i < versions.length; i++) {
      const v = versions[i]!;
      if (r.maxModRevision !== 0 && v.main > r.maxModRevision) continue;
      if (r.minModRevision !== 0 && v.main < r.minModRevision) continue;
      if (r.maxCreateRevision !== 0 && v.create > r.maxCreateRevision) continue;
      if (r.minCreateRevision !== 0 && v.create < r.minCreateRevision) continue;
      keep.push(i);
    }
    keys = keep.map((i) => keys[i]!);
    versions = keep.map((i) => versions[i]!);
  }

  // The store returns keys in ascending order, so etcd sorts only when asked
  // to, or when the target is not the key (then ascending by default).
  let order = r.sortOrder;
  if (r.sortTarget !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
  if (order !== SortOrder.NONE && !(order === SortOrder.ASCEND && r.sortTarget === SortTarget.KEY)) {
    const idx = keys.map((_, i) => i);
    const cmp = sortComparator(r.sortTarget, keys, versions);
    // A stable sort: equal elements stay in key order, in either direction
    // (what etcd's sort.Sort does for the small results it is usually given).
    idx.sort(order === SortOrder.DESCEND ? (a, b) => cmp(b, a) : cmp);
    keys = idx.map((i) => keys[i]!);
    versions = idx.map((i) => versions[i]!);
  }

  let more = false;
  let n = keys.length;
  if (r.limit > 0 && n > r.limit) {
    n = r.limit;
    more = true;
  }
  const kvs: KeyValue[] = new Array<KeyValue>(n);
  for (let i = 0; i < n; i++) kvs[i] = toKeyValue(keys[i]!, versions[i]!, r.keysOnly);
  return { header: header(viewRev), kvs, more, count };
}

function sortComparator(target: SortTarget, keys: string[], versions: Version[]): (a: number, b: number) => number {
  const num = (f: (v: Version) => number) => (a: number, b: number) => f(versions[a]!) - f(versions[b]!);
  const str = (f: (i: number) => string) => (a: number, b: number) => {
    const x = f(a);
    const y = f(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };
  switch (target) {
    case SortTarget.KEY:
      return str((i) => keys[i]!);
    case SortTarget.VERSION:
      return num((v) => v.version);
    case SortTarget.CREATE:
      return num((v) => v.create);
    case SortTarget.MOD:
      return num((v) => v.main);
    case SortTarget.VALUE:
      return str((i) => versions[i]!.value!);
  }
}

// ---------------------------------------------------------------------------
// Put, DeleteRange

/** etcd's lessor lookup: leases are not supported yet, so every lease id is unknown. */
function checkLease(lease: bigint): void {
  if (lease !== NO_LEASE) throw etcdError('LEASE_NOT_FOUND');
}

/** etcd's applierV3backend.Put inside a write transaction. */
function putIn(txn: WriteTxn, p: PutRequest, key: string): PutResponse {
  let value = bytesToLatin1(p.value);
  let lease = p.lease;
  const prev = p.ignoreValue || p.ignoreLease || p.prevKv ? txn.get(key) : undefined;
  if ((p.ignoreValue || p.ignoreLease) && prev === undefined) {
    // ignore_{value,lease} need a previous version
    throw etcdError('KEY_NOT_FOUND');
  }
  if (p.ignoreValue) value = prev!.value!;
  if (p.ignoreLease) lease = prev!.lease;
  const res: PutResponse = { header: header(0) };
  if (p.prevKv && prev !== undefined) res.prevKv = toKeyValue(key, prev);
  txn.put(key, value, lease);
  res.header.revision = txn.begin + 1;
  return res;
}

export function put(store: MvccStore, p: PutRequest): PutResponse {
  checkLease(p.lease);
  const txn = store.write();
  try {
    return putIn(txn, p, bytesToLatin1(p.key));
  } finally {
    txn.end();
  }
}

function deleteRangeIn(txn: WriteTxn, store: MvccStore, d: DeleteRangeRequest): DeleteRangeResponse {
  const b = bounds(bytesToLatin1(d.key), bytesToLatin1(d.rangeEnd));
  const prevKvs: KeyValue[] = [];
  if (d.prevKv) {
    store.visit(b, txn.readRevision, (key, v) => {
      prevKvs.push(toKeyValue(key, v));
      return true;
    });
  }
  const deleted = txn.deleteRange(b);
  // etcd's storeTxnWrite.DeleteRange: the next revision if this or an earlier change happened.
  const revision = deleted !== 0 || txn.changed ? txn.begin + 1 : txn.begin;
  return { header: header(revision), deleted, prevKvs };
}

export function deleteRange(store: MvccStore, d: DeleteRangeRequest): DeleteRangeResponse {
  const txn = store.write();
  try {
    return deleteRangeIn(txn, store, d);
  } finally {
    txn.end();
  }
}

// ---------------------------------------------------------------------------
// Txn

/**
 * Which branch each txn takes: the top one's, then those of the nested txns
 * in the taken branch, in order (etcd's txnPath, as a tree). All compares,
 * nested ones included, are evaluated before any write, against the store
 * as the txn found it.
 */
interface TxnPath {
  readonly succeeded: boolean;
  readonly nested: TxnPath[];
}

function taken(t: TxnRequest, path: TxnPath): readonly RequestOp[] {
  return path.succeeded ? t.success : t.failure;
}

function compareToPath(store: MvccStore, rev: number, t: TxnRequest): TxnPath {
  const succeeded = t.compare.every((c) => applyCompare(store, rev, c));
  const nested: TxnPath[] = [];
  for (const op of succeeded ? t.success : t.failure) {
    if ('requestTxn' in op) nested.push(compareToPath(store, rev, op.requestTxn));
  }
  return { succeeded, nested };
}

/** etcd's applyCompare: every key in the compare's range must satisfy it. */
function applyCompare(store: MvccStore, rev: number, c: Compare): boolean {
  const b = bounds(bytesToLatin1(c.key), bytesToLatin1(c.rangeEnd));
  let any = false;
  let ok = true;
  store.visit(b, rev, (_, v) => {
    any = true;
    ok = compareVersion(c, v);
    return ok;
  });
  if (any) return ok;
  // No key: a value compare always fails (gRPC cannot tell a missing value
  // from an empty one); the others compare against zeroes.
  if (c.target === CompareTarget.VALUE) return false;
  return compareVersion(c, undefined);
}

const ZERO: Version = { main: 0, sub: 0, value: '', create: 0, version: 0, lease: NO_LEASE };

/** etcd's compareKV; `v` undefined is the empty KeyValue. A target union that does not match the target compares with zero. */
function compareVersion(c: Compare, v: Version = ZERO): boolean {
  const u = c.targetUnion;
  let result = 0;
  switch (c.target) {
    case CompareTarget.VALUE: {
      const want = u !== undefined && 'value' in u ? bytesToLatin1(u.value) : '';
      const have = v.value ?? '';
      result = have < want ? -1 : have > want ? 1 : 0;
      break;
    }
    case CompareTarget.CREATE:
      result = Math.sign(v.create - (u !== undefined && 'createRevision' in u ? u.createRevision : 0));
      break;
    case CompareTarget.MOD:
      result = Math.sign(v.main - (u !== undefined && 'modRevision' in u ? u.modRevision : 0));
      break;
    case CompareTarget.VERSION:
      result = Math.sign(v.version - (u !== undefined && 'version' in u ? u.version : 0));
      break;
    case CompareTarget.LEASE: {
      const want = u !== undefined && 'lease' in u ? u.lease : 0n;
      result = v.lease < want ? -1 : v.lease > want ? 1 : 0;
      break;
    }
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return result === 0;
    case CompareResult.NOT_EQUAL:
      return result !== 0;
    case CompareResult.GREATER:
      return result > 0;
    case CompareResult.LESS:
      return result < 0;
  }
  return true;
}

/** etcd's isTxnReadonly: only ranges in either branch (a nested txn counts as a write). */
export function isReadOnlyTxn(t: TxnRequest): boolean {
  return t.success.every((op) => 'requestRange' in op) && t.failure.every((op) => 'requestRange' in op);
}

/** etcd's isTxnSerializable: only serializable ranges (such a txn needs no ReadIndex). */
export function isSerializableTxn(t: TxnRequest): boolean {
  const serializable = (op: RequestOp) => 'requestRange' in op && op.requestRange.serializable;
  return t.success.every(serializable) && t.failure.every(serializable);
}

/** Visits the ops on the taken path depth-first in order (etcd's checkRequests). */
function forEachOnPath(t: TxnRequest, path: TxnPath, visit: (op: RequestOp) => void): void {
  let n = 0;
  for (const op of taken(t, path)) {
    if ('requestTxn' in op) forEachOnPath(op.requestTxn, path.nested[n++]!, visit);
    else visit(op);
  }
}

/** etcd's checkRequestPut, against the store as the txn found it. */
function checkPut(store: MvccStore, rev: number, p: PutRequest): void {
  if (p.ignoreValue || p.ignoreLease) {
    if (store.get(bytesToLatin1(p.key), rev) === undefined) throw etcdError('KEY_NOT_FOUND');
  }
  checkLease(p.lease);
}

/** etcd's checkRequestRange. */
function checkRange(store: MvccStore, rev: number, r: RangeRequest): void {
  if (r.revision === 0) return;
  if (r.revision > rev) throw etcdError('FUTURE_REVISION');
  if (r.revision < store.compactRevision) throw etcdError('COMPACTED');
}

/**
 * A put with ignore_value or ignore_lease needs its key to exist when it
 * runs, not only when the txn starts (checkPut): an earlier delete in the
 * same txn can remove it without tripping etcd's overlap check (a delete
 * to "\0", or one in an earlier nested txn). etcd 3.4/3.5 panic the member
 * there ("unexpected error during txn"), and again on every restart. We
 * refuse the txn with etcd's error before writing anything.
 */
function checkTxnWrites(store: MvccStore, rev: number, t: TxnRequest, path: TxnPath): void {
  const writes: ({ put: string } | { del: Bounds })[] = [];
  forEachOnPath(t, path, (op) => {
    if ('requestDeleteRange' in op) {
      const d = op.requestDeleteRange;
      writes.push({ del: bounds(bytesToLatin1(d.key), bytesToLatin1(d.rangeEnd)) });
    } else if ('requestPut' in op) {
      const p = op.requestPut;
      const key = bytesToLatin1(p.key);
      if ((p.ignoreValue || p.ignoreLease) && !existsAfter(store, rev, writes, key)) throw etcdError('KEY_NOT_FOUND');
      writes.push({ put: key });
    }
  });
}

function existsAfter(store: MvccStore, rev: number, writes: readonly ({ put: string } | { del: Bounds })[], key: string): boolean {
  for (let i = writes.length - 1; i >= 0; i--) {
    const w = writes[i]!;
    if ('put' in w) {
      if (w.put === key) return true;
    } else if (covers(w.del, key)) {
      return false;
    }
  }
  return store.get(key, rev) !== undefined;
}

function covers(b: Bounds, key: string): boolean {
  if (b.end === undefined) return key === b.key;
  return key >= b.key && (b.end === '' || key < b.end);
}

/** etcd's applierV3backend.Txn. */
export function txn(store: MvccStore, t: TxnRequest): TxnResponse {
  const rev = store.currentRevision;
  const path = compareToPath(store, rev, t);
  const write = !isReadOnlyTxn(t);
  if (write) forEachOnPath(t, path, (op) => 'requestPut' in op && checkPut(store, rev, op.requestPut));
  forEachOnPath(t, path, (op) => 'requestRange' in op && checkRange(store, rev, op.requestRange));
  if (write) checkTxnWrites(store, rev, t, path);

  const w = store.write();
  try {
    const res = execute(store, w, t, path);
    // Only the outermost header has a revision; nested ones stay zero, as in etcd.
    res.header.revision = w.readRevision;
    return res;
  } finally {
    w.end();
  }
}

function execute(store: MvccStore, w: WriteTxn, t: TxnRequest, path: TxnPath): TxnResponse {
  const responses: ResponseOp[] = [];
  let n = 0;
  for (const op of taken(t, path)) {
    if ('requestRange' in op) {
      responses.push({ responseRange: range(store, w.readRevision, op.requestRange) });
    } else if ('requestPut' in op) {
      responses.push({ responsePut: putIn(w, op.requestPut, bytesToLatin1(op.requestPut.key)) });
    } else if ('requestDeleteRange' in op) {
      responses.push({ responseDeleteRange: deleteRangeIn(w, store, op.requestDeleteRange) });
    } else if ('requestTxn' in op) {
      responses.push({ responseTxn: execute(store, w, op.requestTxn, path.nested[n++]!) });
    }
  }
  return { header: header(0), succeeded: path.succeeded, responses };
}

// ---------------------------------------------------------------------------
// Compaction, Increment

/** etcd's store.updateCompactRev and compaction, done at once. */
export function compact(store: MvccStore, c: CompactionRequest): CompactionResponse {
  if (c.revision <= store.compactRevision) throw etcdError('COMPACTED');
  if (c.revision > store.currentRevision) throw etcdError('FUTURE_REVISION');
  store.compact(c.revision);
  return { header: header(store.currentRevision) };
}

const DECIMAL = /^-?[0-9]+$/;

/**
 * raftkv's increment: the decimal integer at the key (0 if absent) plus
 * delta, written as a put that keeps the key's lease.
 */
export function increment(store: MvccStore, i: IncrementRequest): IncrementResponse {
  const key = bytesToLatin1(i.key);
  const w = store.write();
  try {
    const prev = w.get(key);
    let current = 0;
    if (prev !== undefined) {
      if (!DECIMAL.test(prev.value!)) throw notAnInteger(key);
      current = Number(prev.value);
      if (!Number.isSafeInteger(current)) throw incrementOverflow(key);
    }
    const value = current + i.delta;
    if (!Number.isSafeInteger(value)) throw incrementOverflow(key);
    const v = w.put(key, String(value), prev?.lease ?? NO_LEASE);
    return { header: header(w.begin + 1), value, kv: toKeyValue(key, v) };
  } finally {
    w.end();
  }
}
