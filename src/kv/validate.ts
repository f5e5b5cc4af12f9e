// Request checks before a request is proposed, in etcd's order and with its
// errors (server/etcdserver/api/v3rpc/key.go: checkRangeRequest,
// checkPutRequest, checkDeleteRequest, checkTxnRequest, checkIntervals).
// Each throws a KvError. Apply runs the same checks again (without the
// max-txn-ops limit, a per-member setting) so that a command that skipped
// them fails the same way on every member instead of corrupting the store.

import { bytesToLatin1 } from './codec.js';
import type { ClientSession, KvCommand, KvOperation } from './command.js';
import { badCommand, etcdError, invalidNumber, invalidSession } from './errors.js';
import type {
  CompactionRequest,
  DeleteRangeRequest,
  IncrementRequest,
  PutRequest,
  RangeRequest,
  RequestOp,
  TxnRequest,
} from './types.js';

/** etcd's default --max-txn-ops. */
export const DEFAULT_MAX_TXN_OPS = 128;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function integer(field: string, n: number): void {
  if (!Number.isInteger(n)) throw invalidNumber(field, n);
}

function lease(field: string, n: bigint): void {
  if (typeof n !== 'bigint' || n < INT64_MIN || n > INT64_MAX) throw invalidNumber(field, n);
}

function key(k: Uint8Array): void {
  if (k.length === 0) throw etcdError('KEY_NOT_PROVIDED');
}

export function validateRange(r: RangeRequest): void {
  key(r.key);
  // etcd 3.4/3.5 accept any enum value here and panic sorting by an
  // unknown target; later etcd refuses both, as we do.
  if (!Number.isInteger(r.sortOrder) || r.sortOrder < 0 || r.sortOrder > 2) throw etcdError('INVALID_SORT_OPTION');
  if (!Number.isInteger(r.sortTarget) || r.sortTarget < 0 || r.sortTarget > 4) throw etcdError('INVALID_SORT_OPTION');
  integer('limit', r.limit);
  integer('revision', r.revision);
  integer('min_mod_revision', r.minModRevision);
  integer('max_mod_revision', r.maxModRevision);
  integer('min_create_revision', r.minCreateRevision);
  integer('max_create_revision', r.maxCreateRevision);
}

export function validatePut(r: PutRequest): void {
  key(r.key);
  if (r.ignoreValue && r.value.length !== 0) throw etcdError('VALUE_PROVIDED');
  lease('lease', r.lease);
  if (r.ignoreLease && r.lease !== 0n) throw etcdError('LEASE_PROVIDED');
}

export function validateDeleteRange(r: DeleteRangeRequest): void {
  key(r.key);
}

/**
 * etcd's checkTxnRequest then checkIntervals on each branch. `maxTxnOps`
 * bounds the compares and each branch (a nested txn gets what its parent
 * leaves: maxTxnOps minus the parent's largest list).
 */
export function validateTxn(r: TxnRequest, maxTxnOps = DEFAULT_MAX_TXN_OPS): void {
  checkTxnRequest(r, maxTxnOps);
  // Overlaps are checked after the request, as etcd does ("to avoid quadratic blowup").
  checkIntervals(r.success);
  checkIntervals(r.failure);
}

function checkTxnRequest(r: TxnRequest, maxTxnOps: number): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxTxnOps) throw etcdError('TOO_MANY_OPS');
  for (const c of r.compare) {
    key(c.key);
    const u = c.targetUnion;
    if (u !== undefined) {
      if ('version' in u) integer('compare version', u.version);
      else if ('createRevision' in u) integer('compare create_revision', u.createRevision);
      else if ('modRevision' in u) integer('compare mod_revision', u.modRevision);
      else if ('lease' in u) lease('compare lease', u.lease);
    }
    integer('compare result', c.result);
    integer('compare target', c.target);
  }
  for (const op of r.success) checkRequestOp(op, maxTxnOps - opc);
  for (const op of r.failure) checkRequestOp(op, maxTxnOps - opc);
}

function checkRequestOp(op: RequestOp, maxTxnOps: number): void {
  if ('requestRange' in op) validateRange(op.requestRange);
  else if ('requestPut' in op) validatePut(op.requestPut);
  else if ('requestDeleteRange' in op) validateDeleteRange(op.requestDeleteRange);
  else if ('requestTxn' in op) checkTxnRequest(op.requestTxn, maxTxnOps);
  // An empty RequestOp: etcd answers "key not found".
  else throw etcdError('KEY_NOT_FOUND');
}

/**
 * A half-open interval of keys as etcd's adt.StringAffineInterval: '' as an
 * end is +infinity. A delete's range_end is taken literally here (etcd does
 * not apply mkGteRange in checkIntervals), so a delete to "\0" covers
 * nothing in this check.
 */
interface Interval {
  readonly begin: string;
  readonly end: string;
}

/** a < b with '' above every other string (adt.StringAffineComparable). */
function affineLess(a: string, b: string): boolean {
  if (a.length === 0) return false;
  if (b.length === 0) return true;
  return a < b;
}

function intersectsPoint(dels: readonly Interval[], k: string): boolean {
  for (const iv of dels) {
    if (!affineLess(k, iv.begin) && affineLess(k, iv.end)) return true;
  }
  return false;
}

/**
 * etcd's checkIntervals, rule for rule: a put may not overlap another put or
 * a delete of the same level or below, except that the two branches of one
 * nested txn may put the same key (only one of them runs). Its asymmetries
 * are etcd's: a nested txn's deletes are checked only against the puts that
 * come after it.
 */
function checkIntervals(reqs: readonly RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of reqs) {
    if (!('requestDeleteRange' in op)) continue;
    const d = op.requestDeleteRange;
    const k = bytesToLatin1(d.key);
    dels.push(d.rangeEnd.length !== 0 ? { begin: k, end: bytesToLatin1(d.rangeEnd) } : { begin: k, end: `${k}\0` });
  }

  const puts = new Set<string>();
  for (const op of reqs) {
    if (!('requestTxn' in op)) continue;
    const then = checkIntervals(op.requestTxn.success);
    const otherwise = checkIntervals(op.requestTxn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || intersectsPoint(dels, k)) throw etcdError('DUPLICATE_KEY');
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      // A key from the same txn's success branch is fine: the branches are exclusive.
      if (puts.has(k) && !then.puts.has(k)) throw etcdError('DUPLICATE_KEY');
      if (intersectsPoint(dels, k)) throw etcdError('DUPLICATE_KEY');
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }

  for (const op of reqs) {
    if (!('requestPut' in op)) continue;
    const k = bytesToLatin1(op.requestPut.key);
    if (puts.has(k) || intersectsPoint(dels, k)) throw etcdError('DUPLICATE_KEY');
    puts.add(k);
  }
  return { puts, dels };
}

export function validateCompaction(r: CompactionRequest): void {
  integer('revision', r.revision);
}

export function validateIncrement(r: IncrementRequest): void {
  key(r.key);
  if (!Number.isSafeInteger(r.delta)) throw invalidNumber('delta', r.delta);
}

export function validateOperation(op: KvOperation, maxTxnOps = DEFAULT_MAX_TXN_OPS): void {
  switch (op.type) {
    case 'put':
      return validatePut(op.request);
    case 'deleteRange':
      return validateDeleteRange(op.request);
    case 'txn':
      return validateTxn(op.request, maxTxnOps);
    case 'compact':
      return validateCompaction(op.request);
    case 'increment':
      return validateIncrement(op.request);
    default:
      throw badCommand(`unknown operation type ${JSON.stringify((op as { type: unknown }).type)}`);
  }
}

/** A command's session: a client id and sequence numbers that make sense. */
export function validateSession(s: ClientSession): void {
  if (typeof s.clientId !== 'string' || s.clientId.length === 0) {
    throw invalidSession('the client id must be a non-empty string');
  }
  if (!Number.isSafeInteger(s.seq) || s.seq < 1) throw invalidSession(`seq must be an integer >= 1, got ${s.seq}`);
  if (!Number.isSafeInteger(s.lowestUnackedSeq) || s.lowestUnackedSeq < 1 || s.lowestUnackedSeq > s.seq) {
    throw invalidSession(`the lowest unacknowledged seq must be an integer in 1..seq (${s.seq}), got ${s.lowestUnackedSeq}`);
  }
}

/** Everything in a command that can be checked without the store: run before encodeCommand. */
export function validateCommand(cmd: KvCommand, maxTxnOps = DEFAULT_MAX_TXN_OPS): void {
  if (!Number.isSafeInteger(cmd.time) || cmd.time < 0) throw invalidNumber('time', cmd.time);
  if (cmd.session !== undefined) validateSession(cmd.session);
  validateOperation(cmd.op, maxTxnOps);
}
