// Binary encoding of the etcd messages in types.ts: requests inside
// commands, and responses kept in the session table (and so in snapshots).
// Field order is fixed per message; the format's version is the enclosing
// command's or snapshot's.
//
// Decoded request `bytes` fields are views into the buffer decoded from, not
// copies; decoded responses own their bytes.
// Response headers carry only the revision: cluster id, member id and term
// are the serving member's to fill (etcd's header.fill), and are zero here.

import { type Reader, type Writer, CodecError } from './codec.js';
import { KvError, type KvErrorCode } from './errors.js';
import type {
  Compare,
  CompactionRequest,
  CompactionResponse,
  DeleteRangeRequest,
  DeleteRangeResponse,
  IncrementRequest,
  IncrementResponse,
  KeyValue,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseHeader,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from './types.js';

/** A header with only the revision set (etcd's nested responses look exactly so). */
export function header(revision: number): ResponseHeader {
  return { clusterId: 0n, memberId: 0n, revision, raftTerm: 0 };
}

// ---------------------------------------------------------------------------
// Requests

export function writeRange(w: Writer, r: RangeRequest): void {
  w.bytes(r.key);
  w.bytes(r.rangeEnd);
  w.svarint(r.limit);
  w.svarint(r.revision);
  w.svarint(r.sortOrder);
  w.svarint(r.sortTarget);
  w.u8((r.serializable ? 1 : 0) | (r.keysOnly ? 2 : 0) | (r.countOnly ? 4 : 0));
  w.svarint(r.minModRevision);
  w.svarint(r.maxModRevision);
  w.svarint(r.minCreateRevision);
  w.svarint(r.maxCreateRevision);
}

export function readRange(r: Reader): RangeRequest {
  const key = r.bytesView();
  const rangeEnd = r.bytesView();
  const limit = r.svarint();
  const revision = r.svarint();
  const sortOrder = r.svarint();
  const sortTarget = r.svarint();
  const flags = r.u8();
  return {
    key,
    rangeEnd,
    limit,
    revision,
    sortOrder,
    sortTarget,
    serializable: (flags & 1) !== 0,
    keysOnly: (flags & 2) !== 0,
    countOnly: (flags & 4) !== 0,
    minModRevision: r.svarint(),
    maxModRevision: r.svarint(),
    minCreateRevision: r.svarint(),
    maxCreateRevision: r.svarint(),
  };
}

const PUT_PREV_KV = 1;
const PUT_IGNORE_VALUE = 2;
const PUT_IGNORE_LEASE = 4;
const PUT_HAS_LEASE = 8;

export function writePut(w: Writer, p: PutRequest): void {
  w.bytes(p.key);
  w.bytes(p.value);
  const hasLease = p.lease !== 0n;
  w.u8(
    (p.prevKv ? PUT_PREV_KV : 0) |
      (p.ignoreValue ? PUT_IGNORE_VALUE : 0) |
      (p.ignoreLease ? PUT_IGNORE_LEASE : 0) |
      (hasLease ? PUT_HAS_LEASE : 0),
  );
  if (hasLease) w.i64(p.lease);
}

export function readPut(r: Reader): PutRequest {
  const key = r.bytesView();
  const value = r.bytesView();
  const flags = r.u8();
  return {
    key,
    value,
    lease: (flags & PUT_HAS_LEASE) !== 0 ? r.i64() : 0n,
    prevKv: (flags & PUT_PREV_KV) !== 0,
    ignoreValue: (flags & PUT_IGNORE_VALUE) !== 0,
    ignoreLease: (flags & PUT_IGNORE_LEASE) !== 0,
  };
}

export function writeDeleteRange(w: Writer, d: DeleteRangeRequest): void {
  w.bytes(d.key);
  w.bytes(d.rangeEnd);
  w.bool(d.prevKv);
}

export function readDeleteRange(r: Reader): DeleteRangeRequest {
  return { key: r.bytesView(), rangeEnd: r.bytesView(), prevKv: r.bool() };
}

const enum Union {
  NONE = 0,
  VERSION = 1,
  CREATE = 2,
  MOD = 3,
  VALUE = 4,
  LEASE = 5,
}

function writeCompare(w: Writer, c: Compare): void {
  w.svarint(c.result);
  w.svarint(c.target);
  w.bytes(c.key);
  w.bytes(c.rangeEnd);
  const u = c.targetUnion;
  if (u === undefined) {
    w.u8(Union.NONE);
  } else if ('version' in u) {
    w.u8(Union.VERSION);
    w.svarint(u.version);
  } else if ('createRevision' in u) {
    w.u8(Union.CREATE);
    w.svarint(u.createRevision);
  } else if ('modRevision' in u) {
    w.u8(Union.MOD);
    w.svarint(u.modRevision);
  } else if ('value' in u) {
    w.u8(Union.VALUE);
    w.bytes(u.value);
  } else {
    w.u8(Union.LEASE);
    w.i64(u.lease);
  }
}

function readCompare(r: Reader): Compare {
  const result = r.svarint();
  const target = r.svarint();
  const key = r.bytesView();
  const rangeEnd = r.bytesView();
  let targetUnion: Compare['targetUnion'];
  const kind = r.u8();
  switch (kind) {
    case Union.NONE:
      targetUnion = undefined;
      break;
    case Union.VERSION:
      targetUnion = { version: r.svarint() };
      break;
    case Union.CREATE:
      targetUnion = { createRevision: r.svarint() };
      break;
    case Union.MOD:
      targetUnion = { modRevision: r.svarint() };
      break;
    case Union.VALUE:
      targetUnion = { value: r.bytesView() };
      break;
    case Union.LEASE:
      targetUnion = { lease: r.i64() };
      break;
    default:
      throw new CodecError(`unknown compare target kind ${kind}`);
  }
  return { result, target, key, rangeEnd, targetUnion };
}

const enum Op {
  /** A RequestOp with none of its fields set (etcd refuses it). */
  EMPTY = 0,
  RANGE = 1,
  PUT = 2,
  DELETE_RANGE = 3,
  TXN = 4,
}

function writeRequestOp(w: Writer, op: RequestOp): void {
  if ('requestRange' in op) {
    w.u8(Op.RANGE);
    writeRange(w, op.requestRange);
  } else if ('requestPut' in op) {
    w.u8(Op.PUT);
    writePut(w, op.requestPut);
  } else if ('requestDeleteRange' in op) {
    w.u8(Op.DELETE_RANGE);
    writeDeleteRange(w, op.requestDeleteRange);
  } else if ('requestTxn' in op) {
    w.u8(Op.TXN);
    writeTxn(w, op.requestTxn);
  } else {
    w.u8(Op.EMPTY);
  }
}

function readRequestOp(r: Reader, depth: number): RequestOp {
  const kind = r.u8();
  switch (kind) {
    case Op.RANGE:
      return { requestRange: readRange(r) };
    case Op.PUT:
      return { requestPut: readPut(r) };
    case Op.DELETE_RANGE:
      return { requestDeleteRange: readDeleteRange(r) };
    case Op.TXN:
      return { requestTxn: readTxnAt(r, depth + 1) };
    case Op.EMPTY:
      return {} as RequestOp;
    default:
      throw new CodecError(`unknown request op kind ${kind}`);
  }
}

export function writeTxn(w: Writer, t: TxnRequest): void {
  w.uvarint(t.compare.length);
  for (const c of t.compare) writeCompare(w, c);
  w.uvarint(t.success.length);
  for (const op of t.success) writeRequestOp(w, op);
  w.uvarint(t.failure.length);
  for (const op of t.failure) writeRequestOp(w, op);
}

/** Nesting deeper than this is refused while decoding (a bound on recursion, far beyond any request etcd's limits allow). */
const MAX_TXN_DEPTH = 1000;

export function readTxn(r: Reader): TxnRequest {
  return readTxnAt(r, 0);
}

function readTxnAt(r: Reader, depth: number): TxnRequest {
  if (depth > MAX_TXN_DEPTH) throw new CodecError(`transactions nested deeper than ${MAX_TXN_DEPTH}`);
  const compare: Compare[] = [];
  for (let n = r.count(), i = 0; i < n; i++) compare.push(readCompare(r));
  const success: RequestOp[] = [];
  for (let n = r.count(), i = 0; i < n; i++) success.push(readRequestOp(r, depth));
  const failure: RequestOp[] = [];
  for (let n = r.count(), i = 0; i < n; i++) failure.push(readRequestOp(r, depth));
  return { compare, success, failure };
}

export function writeCompaction(w: Writer, c: CompactionRequest): void {
  w.svarint(c.revision);
  w.bool(c.physical);
}

export function readCompaction(r: Reader): CompactionRequest {
  return { revision: r.svarint(), physical: r.bool() };
}

export function writeIncrement(w: Writer, i: IncrementRequest): void {
  w.bytes(i.key);
  w.svarint(i.delta);
}

export function readIncrement(r: Reader): IncrementRequest {
  return { key: r.bytesView(), delta: r.svarint() };
}

// ---------------------------------------------------------------------------
// Responses

export type KvResponse = PutResponse | DeleteRangeResponse | TxnResponse | CompactionResponse | IncrementResponse;

const enum Resp {
  ERROR = 0,
  PUT = 1,
  DELETE_RANGE = 2,
  TXN = 3,
  COMPACTION = 4,
  INCREMENT = 5,
  RANGE = 6,
}

function writeKeyValue(w: Writer, kv: KeyValue): void {
  w.bytes(kv.key);
  w.svarint(kv.createRevision);
  w.svarint(kv.modRevision);
  w.svarint(kv.version);
  w.bytes(kv.value);
  w.i64(kv.lease);
}

/** Keys and values come back as Buffer copies, as the store hands them out (mvcc.toKeyValue). */
function readKeyValue(r: Reader): KeyValue {
  return {
    key: Buffer.from(r.bytesView()),
    createRevision: r.svarint(),
    modRevision: r.svarint(),
    version: r.svarint(),
    value: Buffer.from(r.bytesView()),
    lease: r.i64(),
  };
}

function writeRangeResponse(w: Writer, res: RangeResponse): void {
  w.svarint(res.header.revision);
  w.uvarint(res.kvs.length);
  for (const kv of res.kvs) writeKeyValue(w, kv);
  w.bool(res.more);
  w.svarint(res.count);
}

function readRangeResponse(r: Reader): RangeResponse {
  const h = header(r.svarint());
  const kvs: KeyValue[] = [];
  for (let n = r.count(), i = 0; i < n; i++) kvs.push(readKeyValue(r));
  return { header: h, kvs, more: r.bool(), count: r.svarint() };
}

function writePutResponse(w: Writer, res: PutResponse): void {
  w.svarint(res.header.revision);
  w.bool(res.prevKv !== undefined);
  if (res.prevKv !== undefined) writeKeyValue(w, res.prevKv);
}

function readPutResponse(r: Reader): PutResponse {
  const res: PutResponse = { header: header(r.svarint()) };
  if (r.bool()) res.prevKv = readKeyValue(r);
  return res;
}

function writeDeleteRangeResponse(w: Writer, res: DeleteRangeResponse): void {
  w.svarint(res.header.revision);
  w.svarint(res.deleted);
  w.uvarint(res.prevKvs.length);
  for (const kv of res.prevKvs) writeKeyValue(w, kv);
}

function readDeleteRangeResponse(r: Reader): DeleteRangeResponse {
  const h = header(r.svarint());
  const deleted = r.svarint();
  const prevKvs: KeyValue[] = [];
  for (let n = r.count(), i = 0; i < n; i++) prevKvs.push(readKeyValue(r));
  return { header: h, deleted, prevKvs };
}

function writeTxnResponse(w: Writer, res: TxnResponse): void {
  w.svarint(res.header.revision);
  w.bool(res.succeeded);
  w.uvarint(res.responses.length);
  for (const op of res.responses) {
    if ('responseRange' in op) {
      w.u8(Resp.RANGE);
      writeRangeResponse(w, op.responseRange);
    } else if ('responsePut' in op) {
      w.u8(Resp.PUT);
      writePutResponse(w, op.responsePut);
    } else if ('responseDeleteRange' in op) {
      w.u8(Resp.DELETE_RANGE);
      writeDeleteRangeResponse(w, op.responseDeleteRange);
    } else {
      w.u8(Resp.TXN);
      writeTxnResponse(w, op.responseTxn);
    }
  }
}

function readTxnResponse(r: Reader, depth = 0): TxnResponse {
  if (depth > MAX_TXN_DEPTH) throw new CodecError(`transactions nested deeper than ${MAX_TXN_DEPTH}`);
  const h = header(r.svarint());
  const succeeded = r.bool();
  const responses: ResponseOp[] = [];
  for (let n = r.count(), i = 0; i < n; i++) {
    const kind = r.u8();
    switch (kind) {
      case Resp.RANGE:
        responses.push({ responseRange: readRangeResponse(r) });
        break;
      case Resp.PUT:
        responses.push({ responsePut: readPutResponse(r) });
        break;
      case Resp.DELETE_RANGE:
        responses.push({ responseDeleteRange: readDeleteRangeResponse(r) });
        break;
      case Resp.TXN:
        responses.push({ responseTxn: readTxnResponse(r, depth + 1) });
        break;
      default:
        throw new CodecError(`unknown response op kind ${kind}`);
    }
  }
  return { header: h, succeeded, responses };
}

/** What a command's apply returns: the response, or the error it failed with. */
export type KvResult = KvResponse | KvError;

/** Encodes a result of apply; which response type it is, is part of the encoding. */
export function writeResult(w: Writer, res: KvResult): void {
  if (res instanceof KvError) {
    w.u8(Resp.ERROR);
    w.utf8(res.code);
    w.uvarint(res.grpcStatus);
    w.utf8(res.message);
  } else if ('succeeded' in res) {
    w.u8(Resp.TXN);
    writeTxnResponse(w, res);
  } else if ('deleted' in res) {
    w.u8(Resp.DELETE_RANGE);
    writeDeleteRangeResponse(w, res);
  } else if ('kv' in res) {
    w.u8(Resp.INCREMENT);
    w.svarint(res.header.revision);
    w.svarint(res.value);
    writeKeyValue(w, res.kv);
  } else if ('prevKv' in res) {
    w.u8(Resp.PUT);
    writePutResponse(w, res);
  } else {
    // A PutResponse without prevKv and a CompactionResponse are both just a
    // header; they decode as the latter, which has the same fields.
    w.u8(Resp.COMPACTION);
    w.svarint(res.header.revision);
  }
}

export function readResult(r: Reader): KvResult {
  const kind = r.u8();
  switch (kind) {
    case Resp.ERROR: {
      const code = r.utf8() as KvErrorCode;
      const status = r.uvarint();
      return new KvError(code, status, r.utf8());
    }
    case Resp.TXN:
      return readTxnResponse(r);
    case Resp.DELETE_RANGE:
      return readDeleteRangeResponse(r);
    case Resp.INCREMENT: {
      const h = header(r.svarint());
      const value = r.svarint();
      return { header: h, value, kv: readKeyValue(r) } satisfies IncrementResponse;
    }
    case Resp.PUT:
      return readPutResponse(r);
    case Resp.COMPACTION:
      return { header: header(r.svarint()) } satisfies CompactionResponse;
    default:
      throw new CodecError(`unknown response kind ${kind}`);
  }
}
