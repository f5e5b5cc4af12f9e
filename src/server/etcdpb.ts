// Encoders and decoders for the etcd v3 messages raftkv serves, with the
// field numbers of etcd's api/etcdserverpb/rpc.proto and api/mvccpb/kv.proto
// (copies in test/fixtures/proto, against which test/unit/grpcCodec.test.ts
// checks every codec with protobufjs), plus raftkv's own KVExt service
// (proto/raftkv.proto) and grpc.health.v1, which etcd also serves.
//
// Each message has a Codec: encode(msg, headroom) sizes the message first,
// allocates one Buffer of headroom + size bytes and writes from `headroom` on
// (the gRPC layer puts its 5-byte frame header there, so a response goes out
// as one buffer); decode(buf) reads it back. Proto3 defaults (0, false,
// empty) are not written, except inside a oneof, where the member present is
// the information (Compare{version: 0} compares against version 0).
//
// Decoded bytes fields are views into the input buffer (see proto.ts).

import type * as kv from '../kv/types.js';
import { rangeRequest } from '../kv/types.js';
import { type FieldTable, ProtoDecodeError, ProtoReader, ProtoWriter, SizeCache, WireType, bigVarintSize, lenSize, utf8Size, varintSize } from './proto.js';
import type * as srv from './types.js';

export interface Codec<T> {
  /** The message as bytes, after `headroom` bytes left for the caller. */
  encode(msg: T, headroom?: number): Buffer;
  /** Throws ProtoDecodeError on malformed input. */
  decode(buf: Uint8Array): T;
}

const V = WireType.VARINT;
const L = WireType.LEN;
const EMPTY: Uint8Array = new Uint8Array(0);

// Sizes of nested messages and strings, computed once while sizing and read
// back, in the same order, while writing. Encoding is synchronous, so one
// cache serves every encode.
const cache = new SizeCache();

/** Sizes a nested message, remembering its size for the write pass; returns the size. */
function nested<T>(size: (m: T) => number, m: T): number {
  const slot = cache.reserve();
  const n = size(m);
  cache.set(slot, n);
  return n;
}

/** Sizes a string field's body, remembering its UTF-8 length for the write pass. */
function str(s: string): number {
  const n = utf8Size(s);
  cache.push(n);
  return n;
}

/** Writes a nested message's tag and length (sized by nested()), then the message. */
function writeNested<T>(w: ProtoWriter, tag: number, write: (w: ProtoWriter, m: T) => void, m: T): void {
  w.uint32(tag);
  w.uint32(cache.next());
  write(w, m);
}

/** Reads a nested message (its length prefix first) into `into`, or into a new one. */
function readNested<T>(r: ProtoReader, read: (r: ProtoReader, into?: T) => T, into?: T): T {
  const outer = r.enter();
  const m = read(r, into);
  r.leave(outer);
  return m;
}

function codec<T>(
  size: (m: T) => number,
  write: (w: ProtoWriter, m: T) => void,
  read: (r: ProtoReader) => T,
): Codec<T> {
  return {
    encode(msg: T, headroom = 0): Buffer {
      cache.reset();
      const total = headroom + size(msg);
      const w = new ProtoWriter(Buffer.allocUnsafe(total), headroom);
      write(w, msg);
      if (w.pos !== total) throw new Error(`protobuf encoder wrote ${w.pos - headroom} bytes, sized ${total - headroom}`);
      return w.buf;
    },
    decode(buf: Uint8Array): T {
      return read(new ProtoReader(buf));
    },
  };
}

// ---------------------------------------------------------------------------
// mvccpb.KeyValue

const KEY_VALUE: FieldTable = {
  1: ['key', L],
  2: ['create_revision', V],
  3: ['mod_revision', V],
  4: ['version', V],
  5: ['value', L],
  6: ['lease', V],
};

function sizeKeyValue(m: kv.KeyValue): number {
  let n = 0;
  if (m.key.length !== 0) n += 1 + lenSize(m.key.length);
  if (m.createRevision !== 0) n += 1 + varintSize(m.createRevision);
  if (m.modRevision !== 0) n += 1 + varintSize(m.modRevision);
  if (m.version !== 0) n += 1 + varintSize(m.version);
  if (m.value.length !== 0) n += 1 + lenSize(m.value.length);
  if (m.lease !== 0n) n += 1 + bigVarintSize(m.lease);
  return n;
}

function writeKeyValue(w: ProtoWriter, m: kv.KeyValue): void {
  if (m.key.length !== 0) {
    w.uint32(10);
    w.bytes(m.key);
  }
  if (m.createRevision !== 0) {
    w.uint32(16);
    w.int64(m.createRevision);
  }
  if (m.modRevision !== 0) {
    w.uint32(24);
    w.int64(m.modRevision);
  }
  if (m.version !== 0) {
    w.uint32(32);
    w.int64(m.version);
  }
  if (m.value.length !== 0) {
    w.uint32(42);
    w.bytes(m.value);
  }
  if (m.lease !== 0n) {
    w.uint32(48);
    w.big(m.lease);
  }
}

function readKeyValue(r: ProtoReader, m: kv.KeyValue = newKeyValue()): kv.KeyValue {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.key = r.bytes();
        break;
      case 16:
        m.createRevision = r.int64();
        break;
      case 24:
        m.modRevision = r.int64();
        break;
      case 32:
        m.version = r.int64();
        break;
      case 42:
        m.value = r.bytes();
        break;
      case 48:
        m.lease = r.int64Big();
        break;
      default:
        r.other(tag, KEY_VALUE, 'mvccpb.KeyValue');
    }
  }
  return m;
}

function newKeyValue(): kv.KeyValue {
  return { key: EMPTY, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n };
}

export const KeyValue = codec(sizeKeyValue, writeKeyValue, readKeyValue);

// ---------------------------------------------------------------------------
// etcdserverpb.ResponseHeader

const RESPONSE_HEADER: FieldTable = {
  1: ['cluster_id', V],
  2: ['member_id', V],
  3: ['revision', V],
  4: ['raft_term', V],
};

function sizeHeader(m: kv.ResponseHeader): number {
  let n = 0;
  if (m.clusterId !== 0n) n += 1 + bigVarintSize(m.clusterId);
  if (m.memberId !== 0n) n += 1 + bigVarintSize(m.memberId);
  if (m.revision !== 0) n += 1 + varintSize(m.revision);
  if (m.raftTerm !== 0) n += 1 + varintSize(m.raftTerm);
  return n;
}

function writeHeader(w: ProtoWriter, m: kv.ResponseHeader): void {
  if (m.clusterId !== 0n) {
    w.uint32(8);
    w.big(m.clusterId);
  }
  if (m.memberId !== 0n) {
    w.uint32(16);
    w.big(m.memberId);
  }
  if (m.revision !== 0) {
    w.uint32(24);
    w.int64(m.revision);
  }
  if (m.raftTerm !== 0) {
    w.uint32(32);
    w.int64(m.raftTerm);
  }
}

function readHeader(r: ProtoReader, m: kv.ResponseHeader = newHeader()): kv.ResponseHeader {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 8:
        m.clusterId = r.uint64Big();
        break;
      case 16:
        m.memberId = r.uint64Big();
        break;
      case 24:
        m.revision = r.int64();
        break;
      case 32:
        m.raftTerm = r.uint64();
        break;
      default:
        r.other(tag, RESPONSE_HEADER, 'etcdserverpb.ResponseHeader');
    }
  }
  return m;
}

function newHeader(): kv.ResponseHeader {
  return { clusterId: 0n, memberId: 0n, revision: 0, raftTerm: 0 };
}

export const ResponseHeader = codec(sizeHeader, writeHeader, readHeader);

/** The size of field 1, the header a response starts with (etcd sets it on every response but AlarmResponse). */
function headerField(h: kv.ResponseHeader): number {
  return 1 + lenSize(nested(sizeHeader, h));
}

// ---------------------------------------------------------------------------
// Range

const RANGE_REQUEST: FieldTable = {
  1: ['key', L],
  2: ['range_end', L],
  3: ['limit', V],
  4: ['revision', V],
  5: ['sort_order', V],
  6: ['sort_target', V],
  7: ['serializable', V],
  8: ['keys_only', V],
  9: ['count_only', V],
  10: ['min_mod_revision', V],
  11: ['max_mod_revision', V],
  12: ['min_create_revision', V],
  13: ['max_create_revision', V],
};

function sizeRangeRequest(m: kv.RangeRequest): number {
  let n = 0;
  if (m.key.length !== 0) n += 1 + lenSize(m.key.length);
  if (m.rangeEnd.length !== 0) n += 1 + lenSize(m.rangeEnd.length);
  if (m.limit !== 0) n += 1 + varintSize(m.limit);
  if (m.revision !== 0) n += 1 + varintSize(m.revision);
  if (m.sortOrder !== 0) n += 1 + varintSize(m.sortOrder);
  if (m.sortTarget !== 0) n += 1 + varintSize(m.sortTarget);
  if (m.serializable) n += 2;
  if (m.keysOnly) n += 2;
  if (m.countOnly) n += 2;
  if (m.minModRevision !== 0) n += 1 + varintSize(m.minModRevision);
  if (m.maxModRevision !== 0) n += 1 + varintSize(m.maxModRevision);
  if (m.minCreateRevision !== 0) n += 1 + varintSize(m.minCreateRevision);
  if (m.maxCreateRevision !== 0) n += 1 + varintSize(m.maxCreateRevision);
  return n;
}

function writeRangeRequest(w: ProtoWriter, m: kv.RangeRequest): void {
  if (m.key.length !== 0) {
    w.uint32(10);
    w.bytes(m.key);
  }
  if (m.rangeEnd.length !== 0) {
    w.uint32(18);
    w.bytes(m.rangeEnd);
  }
  if (m.limit !== 0) {
    w.uint32(24);
    w.int64(m.limit);
  }
  if (m.revision !== 0) {
    w.uint32(32);
    w.int64(m.revision);
  }
  if (m.sortOrder !== 0) {
    w.uint32(40);
    w.int64(m.sortOrder);
  }
  if (m.sortTarget !== 0) {
    w.uint32(48);
    w.int64(m.sortTarget);
  }
  if (m.serializable) {
    w.uint32(56);
    w.uint32(1);
  }
  if (m.keysOnly) {
    w.uint32(64);
    w.uint32(1);
  }
  if (m.countOnly) {
    w.uint32(72);
    w.uint32(1);
  }
  if (m.minModRevision !== 0) {
    w.uint32(80);
    w.int64(m.minModRevision);
  }
  if (m.maxModRevision !== 0) {
    w.uint32(88);
    w.int64(m.maxModRevision);
  }
  if (m.minCreateRevision !== 0) {
    w.uint32(96);
    w.int64(m.minCreateRevision);
  }
  if (m.maxCreateRevision !== 0) {
    w.uint32(104);
    w.int64(m.maxCreateRevision);
  }
}

function readRangeRequest(r: ProtoReader, m: kv.RangeRequest = newRangeRequest()): kv.RangeRequest {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.key = r.bytes();
        break;
      case 18:
        m.rangeEnd = r.bytes();
        break;
      case 24:
        m.limit = r.int64();
        break;
      case 32:
        m.revision = r.int64();
        break;
      case 40:
        m.sortOrder = r.int32();
        break;
      case 48:
        m.sortTarget = r.int32();
        break;
      case 56:
        m.serializable = r.bool();
        break;
      case 64:
        m.keysOnly = r.bool();
        break;
      case 72:
        m.countOnly = r.bool();
        break;
      case 80:
        m.minModRevision = r.int64();
        break;
      case 88:
        m.maxModRevision = r.int64();
        break;
      case 96:
        m.minCreateRevision = r.int64();
        break;
      case 104:
        m.maxCreateRevision = r.int64();
        break;
      default:
        r.other(tag, RANGE_REQUEST, 'etcdserverpb.RangeRequest');
    }
  }
  return m;
}

export function newRangeRequest(): kv.RangeRequest {
  return rangeRequest();
}

export const RangeRequest = codec(sizeRangeRequest, writeRangeRequest, readRangeRequest);

const RANGE_RESPONSE: FieldTable = { 1: ['header', L], 2: ['kvs', L], 3: ['more', V], 4: ['count', V] };

function sizeRangeResponse(m: kv.RangeResponse): number {
  let n = headerField(m.header);
  for (const x of m.kvs) n += 1 + lenSize(nested(sizeKeyValue, x));
  if (m.more) n += 2;
  if (m.count !== 0) n += 1 + varintSize(m.count);
  return n;
}

function writeRangeResponse(w: ProtoWriter, m: kv.RangeResponse): void {
  writeNested(w, 10, writeHeader, m.header);
  for (const x of m.kvs) writeNested(w, 18, writeKeyValue, x);
  if (m.more) {
    w.uint32(24);
    w.uint32(1);
  }
  if (m.count !== 0) {
    w.uint32(32);
    w.int64(m.count);
  }
}

function readRangeResponse(r: ProtoReader, m: kv.RangeResponse = { header: newHeader(), kvs: [], more: false, count: 0 }): kv.RangeResponse {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.header = readNested(r, readHeader, m.header);
        break;
      case 18:
        m.kvs.push(readNested(r, readKeyValue));
        break;
      case 24:
        m.more = r.bool();
        break;
      case 32:
        m.count = r.int64();
        break;
      default:
        r.other(tag, RANGE_RESPONSE, 'etcdserverpb.RangeResponse');
    }
  }
  return m;
}

export const RangeResponse = codec(sizeRangeResponse, writeRangeResponse, readRangeResponse);

// ---------------------------------------------------------------------------
// Put

const PUT_REQUEST: FieldTable = {
  1: ['key', L],
  2: ['value', L],
  3: ['lease', V],
  4: ['prev_kv', V],
  5: ['ignore_value', V],
  6: ['ignore_lease', V],
};

function sizePutRequest(m: kv.PutRequest): number {
  let n = 0;
  if (m.key.length !== 0) n += 1 + lenSize(m.key.length);
  if (m.value.length !== 0) n += 1 + lenSize(m.value.length);
  if (m.lease !== 0n) n += 1 + bigVarintSize(m.lease);
  if (m.prevKv) n += 2;
  if (m.ignoreValue) n += 2;
  if (m.ignoreLease) n += 2;
  return n;
}

function writePutRequest(w: ProtoWriter, m: kv.PutRequest): void {
  if (m.key.length !== 0) {
    w.uint32(10);
    w.bytes(m.key);
  }
  if (m.value.length !== 0) {
    w.uint32(18);
    w.bytes(m.value);
  }
  if (m.lease !== 0n) {
    w.uint32(24);
    w.big(m.lease);
  }
  if (m.prevKv) {
    w.uint32(32);
    w.uint32(1);
  }
  if (m.ignoreValue) {
    w.uint32(40);
    w.uint32(1);
  }
  if (m.ignoreLease) {
    w.uint32(48);
    w.uint32(1);
  }
}

function readPutRequest(
  r: ProtoReader,
  m: kv.PutRequest = { key: EMPTY, value: EMPTY, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false },
): kv.PutRequest {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.key = r.bytes();
        break;
      case 18:
        m.value = r.bytes();
        break;
      case 24:
        m.lease = r.int64Big();
        break;
      case 32:
        m.prevKv = r.bool();
        break;
      case 40:
        m.ignoreValue = r.bool();
        break;
      case 48:
        m.ignoreLease = r.bool();
        break;
      default:
        r.other(tag, PUT_REQUEST, 'etcdserverpb.PutRequest');
    }
  }
  return m;
}

export const PutRequest = codec(sizePutRequest, writePutRequest, readPutRequest);

const PUT_RESPONSE: FieldTable = { 1: ['header', L], 2: ['prev_kv', L] };

function sizePutResponse(m: kv.PutResponse): number {
  let n = headerField(m.header);
  if (m.prevKv !== undefined) n += 1 + lenSize(nested(sizeKeyValue, m.prevKv));
  return n;
}

function writePutResponse(w: ProtoWriter, m: kv.PutResponse): void {
  writeNested(w, 10, writeHeader, m.header);
  if (m.prevKv !== undefined) writeNested(w, 18, writeKeyValue, m.prevKv);
}

function readPutResponse(r: ProtoReader, m: kv.PutResponse = { header: newHeader() }): kv.PutResponse {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.header = readNested(r, readHeader, m.header);
        break;
      case 18:
        m.prevKv = readNested(r, readKeyValue, m.prevKv);
        break;
      default:
        r.other(tag, PUT_RESPONSE, 'etcdserverpb.PutResponse');
    }
  }
  return m;
}

export const PutResponse = codec(sizePutResponse, writePutResponse, readPutResponse);

// ---------------------------------------------------------------------------
// DeleteRange

const DELETE_RANGE_REQUEST: FieldTable = { 1: ['key', L], 2: ['range_end', L], 3: ['prev_kv', V] };

function sizeDeleteRangeRequest(m: kv.DeleteRangeRequest): number {
  let n = 0;
  if (m.key.length !== 0) n += 1 + lenSize(m.key.length);
  if (m.rangeEnd.length !== 0) n += 1 + lenSize(m.rangeEnd.length);
  if (m.prevKv) n += 2;
  return n;
}

function writeDeleteRangeRequest(w: ProtoWriter, m: kv.DeleteRangeRequest): void {
  if (m.key.length !== 0) {
    w.uint32(10);
    w.bytes(m.key);
  }
  if (m.rangeEnd.length !== 0) {
    w.uint32(18);
    w.bytes(m.rangeEnd);
  }
  if (m.prevKv) {
    w.uint32(24);
    w.uint32(1);
  }
}

function readDeleteRangeRequest(
  r: ProtoReader,
  m: kv.DeleteRangeRequest = { key: EMPTY, rangeEnd: EMPTY, prevKv: false },
): kv.DeleteRangeRequest {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.key = r.bytes();
        break;
      case 18:
        m.rangeEnd = r.bytes();
        break;
      case 24:
        m.prevKv = r.bool();
        break;
      default:
        r.other(tag, DELETE_RANGE_REQUEST, 'etcdserverpb.DeleteRangeRequest');
    }
  }
  return m;
}

export const DeleteRangeRequest = codec(sizeDeleteRangeRequest, writeDeleteRangeRequest, readDeleteRangeRequest);

const DELETE_RANGE_RESPONSE: FieldTable = { 1: ['header', L], 2: ['deleted', V], 3: ['prev_kvs', L] };

function sizeDeleteRangeResponse(m: kv.DeleteRangeResponse): number {
  let n = headerField(m.header);
  if (m.deleted !== 0) n += 1 + varintSize(m.deleted);
  for (const x of m.prevKvs) n += 1 + lenSize(nested(sizeKeyValue, x));
  return n;
}

function writeDeleteRangeResponse(w: ProtoWriter, m: kv.DeleteRangeResponse): void {
  writeNested(w, 10, writeHeader, m.header);
  if (m.deleted !== 0) {
    w.uint32(16);
    w.int64(m.deleted);
  }
  for (const x of m.prevKvs) writeNested(w, 26, writeKeyValue, x);
}

function readDeleteRangeResponse(
  r: ProtoReader,
  m: kv.DeleteRangeResponse = { header: newHeader(), deleted: 0, prevKvs: [] },
): kv.DeleteRangeResponse {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.header = readNested(r, readHeader, m.header);
        break;
      case 16:
        m.deleted = r.int64();
        break;
      case 26:
        m.prevKvs.push(readNested(r, readKeyValue));
        break;
      default:
        r.other(tag, DELETE_RANGE_RESPONSE, 'etcdserverpb.DeleteRangeResponse');
    }
  }
  return m;
}

export const DeleteRangeResponse = codec(sizeDeleteRangeResponse, writeDeleteRangeResponse, readDeleteRangeResponse);

// ---------------------------------------------------------------------------
// Txn: Compare, RequestOp and ResponseOp (oneofs), TxnRequest, TxnResponse

const COMPARE: FieldTable = {
  1: ['result', V],
  2: ['target', V],
  3: ['key', L],
  4: ['version', V],
  5: ['create_revision', V],
  6: ['mod_revision', V],
  7: ['value', L],
  8: ['lease', V],
  64: ['range_end', L],
};

function sizeCompare(m: kv.Compare): number {
  let n = 0;
  if (m.result !== 0) n += 1 + varintSize(m.result);
  if (m.target !== 0) n += 1 + varintSize(m.target);
  if (m.key.length !== 0) n += 1 + lenSize(m.key.length);
  const u = m.targetUnion;
  if (u !== undefined) {
    if ('version' in u) n += 1 + varintSize(u.version);
    else if ('createRevision' in u) n += 1 + varintSize(u.createRevision);
    else if ('modRevision' in u) n += 1 + varintSize(u.modRevision);
    else if ('value' in u) n += 1 + lenSize(u.value.length);
    else n += 1 + bigVarintSize(u.lease);
  }
  // Field 64's tag, (64 << 3) | 2, takes two bytes.
  if (m.rangeEnd.length !== 0) n += 2 + lenSize(m.rangeEnd.length);
  return n;
}

function writeCompare(w: ProtoWriter, m: kv.Compare): void {
  if (m.result !== 0) {
    w.uint32(8);
    w.int64(m.result);
  }
  if (m.target !== 0) {
    w.uint32(16);
    w.int64(m.target);
  }
  if (m.key.length !== 0) {
    w.uint32(26);
    w.bytes(m.key);
  }
  const u = m.targetUnion;
  if (u !== undefined) {
    if ('version' in u) {
      w.uint32(32);
      w.int64(u.version);
    } else if ('createRevision' in u) {
      w.uint32(40);
      w.int64(u.createRevision);
    } else if ('modRevision' in u) {
      w.uint32(48);
      w.int64(u.modRevision);
    } else if ('value' in u) {
      w.uint32(58);
      w.bytes(u.value);
    } else {
      w.uint32(64);
      w.big(u.lease);
    }
  }
  if (m.rangeEnd.length !== 0) {
    w.uint32(514);
    w.bytes(m.rangeEnd);
  }
}

function readCompare(
  r: ProtoReader,
  m: kv.Compare = { result: 0, target: 0, key: EMPTY, targetUnion: undefined, rangeEnd: EMPTY },
): kv.Compare {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 8:
        m.result = r.int32();
        break;
      case 16:
        m.target = r.int32();
        break;
      case 26:
        m.key = r.bytes();
        break;
      case 32:
        m.targetUnion = { version: r.int64() };
        break;
      case 40:
        m.targetUnion = { createRevision: r.int64() };
        break;
      case 48:
        m.targetUnion = { modRevision: r.int64() };
        break;
      case 58:
        m.targetUnion = { value: r.bytes() };
        break;
      case 64:
        m.targetUnion = { lease: r.int64Big() };
        break;
      case 514:
        m.rangeEnd = r.bytes();
        break;
      default:
        r.other(tag, COMPARE, 'etcdserverpb.Compare');
    }
  }
  return m;
}

export const Compare = codec(sizeCompare, writeCompare, readCompare);

const REQUEST_OP: FieldTable = {
  1: ['request_range', L],
  2: ['request_put', L],
  3: ['request_delete_range', L],
  4: ['request_txn', L],
};

function sizeRequestOp(m: kv.RequestOp): number {
  if ('requestRange' in m) return 1 + lenSize(nested(sizeRangeRequest, m.requestRange));
  if ('requestPut' in m) return 1 + lenSize(nested(sizePutRequest, m.requestPut));
  if ('requestDeleteRange' in m) return 1 + lenSize(nested(sizeDeleteRangeRequest, m.requestDeleteRange));
  return 1 + lenSize(nested(sizeTxnRequest, m.requestTxn));
}

function writeRequestOp(w: ProtoWriter, m: kv.RequestOp): void {
  if ('requestRange' in m) writeNested(w, 10, writeRangeRequest, m.requestRange);
  else if ('requestPut' in m) writeNested(w, 18, writePutRequest, m.requestPut);
  else if ('requestDeleteRange' in m) writeNested(w, 26, writeDeleteRangeRequest, m.requestDeleteRange);
  else writeNested(w, 34, writeTxnRequest, m.requestTxn);
}

/**
 * A RequestOp whose oneof is unset cannot be represented (kv.RequestOp has
 * exactly one member), so it is refused as malformed.
 */
function readRequestOp(r: ProtoReader): kv.RequestOp {
  const start = r.pos;
  let op: kv.RequestOp | undefined;
  while (r.pos < r.end) {
    const tag = r.tag();
    // A oneof member seen twice is merged, as protobuf merges a repeated singular message.
    switch (tag) {
      case 10:
        op = { requestRange: readNested(r, readRangeRequest, op && 'requestRange' in op ? op.requestRange : undefined) };
        break;
      case 18:
        op = { requestPut: readNested(r, readPutRequest, op && 'requestPut' in op ? op.requestPut : undefined) };
        break;
      case 26:
        op = {
          requestDeleteRange: readNested(r, readDeleteRangeRequest, op && 'requestDeleteRange' in op ? op.requestDeleteRange : undefined),
        };
        break;
      case 34:
        op = { requestTxn: readNested(r, readTxnRequest, op && 'requestTxn' in op ? op.requestTxn : undefined) };
        break;
      default:
        r.other(tag, REQUEST_OP, 'etcdserverpb.RequestOp');
    }
  }
  if (op === undefined) throw new ProtoDecodeError('etcdserverpb.RequestOp has no request set', start);
  return op;
}

const RESPONSE_OP: FieldTable = {
  1: ['response_range', L],
  2: ['response_put', L],
  3: ['response_delete_range', L],
  4: ['response_txn', L],
};

function sizeResponseOp(m: kv.ResponseOp): number {
  if ('responseRange' in m) return 1 + lenSize(nested(sizeRangeResponse, m.responseRange));
  if ('responsePut' in m) return 1 + lenSize(nested(sizePutResponse, m.responsePut));
  if ('responseDeleteRange' in m) return 1 + lenSize(nested(sizeDeleteRangeResponse, m.responseDeleteRange));
  return 1 + lenSize(nested(sizeTxnResponse, m.responseTxn));
}

function writeResponseOp(w: ProtoWriter, m: kv.ResponseOp): void {
  if ('responseRange' in m) writeNested(w, 10, writeRangeResponse, m.responseRange);
  else if ('responsePut' in m) writeNested(w, 18, writePutResponse, m.responsePut);
  else if ('responseDeleteRange' in m) writeNested(w, 26, writeDeleteRangeResponse, m.responseDeleteRange);
  else writeNested(w, 34, writeTxnResponse, m.responseTxn);
}

function readResponseOp(r: ProtoReader): kv.ResponseOp {
  const start = r.pos;
  let op: kv.ResponseOp | undefined;
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        op = { responseRange: readNested(r, readRangeResponse, op && 'responseRange' in op ? op.responseRange : undefined) };
        break;
      case 18:
        op = { responsePut: readNested(r, readPutResponse, op && 'responsePut' in op ? op.responsePut : undefined) };
        break;
      case 26:
        op = {
          responseDeleteRange: readNested(
            r,
            readDeleteRangeResponse,
            op && 'responseDeleteRange' in op ? op.responseDeleteRange : undefined,
          ),
        };
        break;
      case 34:
        op = { responseTxn: readNested(r, readTxnResponse, op && 'responseTxn' in op ? op.responseTxn : undefined) };
        break;
      default:
        r.other(tag, RESPONSE_OP, 'etcdserverpb.ResponseOp');
    }
  }
  if (op === undefined) throw new ProtoDecodeError('etcdserverpb.ResponseOp has no response set', start);
  return op;
}

const TXN_REQUEST: FieldTable = { 1: ['compare', L], 2: ['success', L], 3: ['failure', L] };

function sizeTxnRequest(m: kv.TxnRequest): number {
  let n = 0;
  for (const c of m.compare) n += 1 + lenSize(nested(sizeCompare, c));
  for (const op of m.success) n += 1 + lenSize(nested(sizeRequestOp, op));
  for (const op of m.failure) n += 1 + lenSize(nested(sizeRequestOp, op));
  return n;
}

function writeTxnRequest(w: ProtoWriter, m: kv.TxnRequest): void {
  for (const c of m.compare) writeNested(w, 10, writeCompare, c);
  for (const op of m.success) writeNested(w, 18, writeRequestOp, op);
  for (const op of m.failure) writeNested(w, 26, writeRequestOp, op);
}

function readTxnRequest(r: ProtoReader, m: kv.TxnRequest = { compare: [], success: [], failure: [] }): kv.TxnRequest {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.compare.push(readNested(r, readCompare));
        break;
      case 18:
        m.success.push(readNested(r, readRequestOp));
        break;
      case 26:
        m.failure.push(readNested(r, readRequestOp));
        break;
      default:
        r.other(tag, TXN_REQUEST, 'etcdserverpb.TxnRequest');
    }
  }
  return m;
}

export const TxnRequest = codec(sizeTxnRequest, writeTxnRequest, readTxnRequest);

const TXN_RESPONSE: FieldTable = { 1: ['header', L], 2: ['succeeded', V], 3: ['responses', L] };

function sizeTxnResponse(m: kv.TxnResponse): number {
  let n = headerField(m.header);
  if (m.succeeded) n += 2;
  for (const op of m.responses) n += 1 + lenSize(nested(sizeResponseOp, op));
  return n;
}

function writeTxnResponse(w: ProtoWriter, m: kv.TxnResponse): void {
  writeNested(w, 10, writeHeader, m.header);
  if (m.succeeded) {
    w.uint32(16);
    w.uint32(1);
  }
  for (const op of m.responses) writeNested(w, 26, writeResponseOp, op);
}

function readTxnResponse(r: ProtoReader, m: kv.TxnResponse = { header: newHeader(), succeeded: false, responses: [] }): kv.TxnResponse {
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.header = readNested(r, readHeader, m.header);
        break;
      case 16:
        m.succeeded = r.bool();
        break;
      case 26:
        m.responses.push(readNested(r, readResponseOp));
        break;
      default:
        r.other(tag, TXN_RESPONSE, 'etcdserverpb.TxnResponse');
    }
  }
  return m;
}

export const TxnResponse = codec(sizeTxnResponse, writeTxnResponse, readTxnResponse);

// ---------------------------------------------------------------------------
// Compact

const COMPACTION_REQUEST: FieldTable = { 1: ['revision', V], 2: ['physical', V] };

function sizeCompactionRequest(m: kv.CompactionRequest): number {
  return (m.revision !== 0 ? 1 + varintSize(m.revision) : 0) + (m.physical ? 2 : 0);
}

function writeCompactionRequest(w: ProtoWriter, m: kv.CompactionRequest): void {
  if (m.revision !== 0) {
    w.uint32(8);
    w.int64(m.revision);
  }
  if (m.physical) {
    w.uint32(16);
    w.uint32(1);
  }
}

function readCompactionRequest(r: ProtoReader): kv.CompactionRequest {
  const m: kv.CompactionRequest = { revision: 0, physical: false };
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 8:
        m.revision = r.int64();
        break;
      case 16:
        m.physical = r.bool();
        break;
      default:
        r.other(tag, COMPACTION_REQUEST, 'etcdserverpb.CompactionRequest');
    }
  }
  return m;
}

export const CompactionRequest = codec(sizeCompactionRequest, writeCompactionRequest, readCompactionRequest);

/** A message whose only field is the header (CompactionResponse; etcd has several). */
function headerOnly(name: string): Codec<{ header: kv.ResponseHeader }> {
  const fields: FieldTable = { 1: ['header', L] };
  return codec(
    (m) => headerField(m.header),
    (w, m) => writeNested(w, 10, writeHeader, m.header),
    (r) => {
      const m = { header: newHeader() };
      while (r.pos < r.end) {
        const tag = r.tag();
        if (tag === 10) m.header = readNested(r, readHeader, m.header);
        else r.other(tag, fields, name);
      }
      return m;
    },
  );
}

export const CompactionResponse: Codec<kv.CompactionResponse> = headerOnly('etcdserverpb.CompactionResponse');

// ---------------------------------------------------------------------------
// Maintenance: Status, Alarm

/** An empty message: anything in it is an unknown field, skipped. */
export const StatusRequest: Codec<srv.StatusRequest> = codec(
  () => 0,
  () => {},
  (r) => {
    while (r.pos < r.end) r.skip(r.tag());
    return {};
  },
);

const STATUS_RESPONSE: FieldTable = {
  1: ['header', L],
  2: ['version', L],
  3: ['dbSize', V],
  4: ['leader', V],
  5: ['raftIndex', V],
  6: ['raftTerm', V],
  7: ['raftAppliedIndex', V],
  8: ['errors', L],
  9: ['dbSizeInUse', V],
  10: ['isLearner', V],
};

function sizeStatusResponse(m: kv.StatusResponse): number {
  let n = headerField(m.header);
  if (m.version.length !== 0) n += 1 + lenSize(str(m.version));
  if (m.dbSize !== 0) n += 1 + varintSize(m.dbSize);
  if (m.leader !== 0n) n += 1 + bigVarintSize(m.leader);
  if (m.raftIndex !== 0) n += 1 + varintSize(m.raftIndex);
  if (m.raftTerm !== 0) n += 1 + varintSize(m.raftTerm);
  if (m.raftAppliedIndex !== 0) n += 1 + varintSize(m.raftAppliedIndex);
  for (const e of m.errors) n += 1 + lenSize(str(e));
  if (m.dbSizeInUse !== 0) n += 1 + varintSize(m.dbSizeInUse);
  if (m.isLearner) n += 2;
  return n;
}

function writeStatusResponse(w: ProtoWriter, m: kv.StatusResponse): void {
  writeNested(w, 10, writeHeader, m.header);
  if (m.version.length !== 0) {
    w.uint32(18);
    w.string(m.version, cache.next());
  }
  if (m.dbSize !== 0) {
    w.uint32(24);
    w.int64(m.dbSize);
  }
  if (m.leader !== 0n) {
    w.uint32(32);
    w.big(m.leader);
  }
  if (m.raftIndex !== 0) {
    w.uint32(40);
    w.int64(m.raftIndex);
  }
  if (m.raftTerm !== 0) {
    w.uint32(48);
    w.int64(m.raftTerm);
  }
  if (m.raftAppliedIndex !== 0) {
    w.uint32(56);
    w.int64(m.raftAppliedIndex);
  }
  for (const e of m.errors) {
    w.uint32(66);
    w.string(e, cache.next());
  }
  if (m.dbSizeInUse !== 0) {
    w.uint32(72);
    w.int64(m.dbSizeInUse);
  }
  if (m.isLearner) {
    w.uint32(80);
    w.uint32(1);
  }
}

function readStatusResponse(r: ProtoReader): kv.StatusResponse {
  const m: kv.StatusResponse = {
    header: newHeader(),
    version: '',
    dbSize: 0,
    leader: 0n,
    raftIndex: 0,
    raftTerm: 0,
    raftAppliedIndex: 0,
    errors: [],
    dbSizeInUse: 0,
    isLearner: false,
  };
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.header = readNested(r, readHeader, m.header);
        break;
      case 18:
        m.version = r.string();
        break;
      case 24:
        m.dbSize = r.int64();
        break;
      case 32:
        m.leader = r.uint64Big();
        break;
      case 40:
        m.raftIndex = r.uint64();
        break;
      case 48:
        m.raftTerm = r.uint64();
        break;
      case 56:
        m.raftAppliedIndex = r.uint64();
        break;
      case 66:
        m.errors.push(r.string());
        break;
      case 72:
        m.dbSizeInUse = r.int64();
        break;
      case 80:
        m.isLearner = r.bool();
        break;
      default:
        r.other(tag, STATUS_RESPONSE, 'etcdserverpb.StatusResponse');
    }
  }
  return m;
}

export const StatusResponse = codec(sizeStatusResponse, writeStatusResponse, readStatusResponse);

const ALARM_REQUEST: FieldTable = { 1: ['action', V], 2: ['memberID', V], 3: ['alarm', V] };

function sizeAlarmRequest(m: kv.AlarmRequest): number {
  let n = 0;
  if (m.action !== 0) n += 1 + varintSize(m.action);
  if (m.memberId !== 0n) n += 1 + bigVarintSize(m.memberId);
  if (m.alarm !== 0) n += 1 + varintSize(m.alarm);
  return n;
}

function writeAlarmRequest(w: ProtoWriter, m: kv.AlarmRequest): void {
  if (m.action !== 0) {
    w.uint32(8);
    w.int64(m.action);
  }
  if (m.memberId !== 0n) {
    w.uint32(16);
    w.big(m.memberId);
  }
  if (m.alarm !== 0) {
    w.uint32(24);
    w.int64(m.alarm);
  }
}

function readAlarmRequest(r: ProtoReader): kv.AlarmRequest {
  const m: kv.AlarmRequest = { action: 0, memberId: 0n, alarm: 0 };
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 8:
        m.action = r.int32();
        break;
      case 16:
        m.memberId = r.uint64Big();
        break;
      case 24:
        m.alarm = r.int32();
        break;
      default:
        r.other(tag, ALARM_REQUEST, 'etcdserverpb.AlarmRequest');
    }
  }
  return m;
}

export const AlarmRequest = codec(sizeAlarmRequest, writeAlarmRequest, readAlarmRequest);

const ALARM_MEMBER: FieldTable = { 1: ['memberID', V], 2: ['alarm', V] };

function sizeAlarmMember(m: kv.AlarmMember): number {
  return (m.memberId !== 0n ? 1 + bigVarintSize(m.memberId) : 0) + (m.alarm !== 0 ? 1 + varintSize(m.alarm) : 0);
}

function writeAlarmMember(w: ProtoWriter, m: kv.AlarmMember): void {
  if (m.memberId !== 0n) {
    w.uint32(8);
    w.big(m.memberId);
  }
  if (m.alarm !== 0) {
    w.uint32(16);
    w.int64(m.alarm);
  }
}

function readAlarmMember(r: ProtoReader): kv.AlarmMember {
  const m: kv.AlarmMember = { memberId: 0n, alarm: 0 };
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 8:
        m.memberId = r.uint64Big();
        break;
      case 16:
        m.alarm = r.int32();
        break;
      default:
        r.other(tag, ALARM_MEMBER, 'etcdserverpb.AlarmMember');
    }
  }
  return m;
}

const ALARM_RESPONSE: FieldTable = { 1: ['header', L], 2: ['alarms', L] };

function sizeAlarmResponse(m: kv.AlarmResponse): number {
  let n = m.header === undefined ? 0 : headerField(m.header);
  for (const a of m.alarms) n += 1 + lenSize(nested(sizeAlarmMember, a));
  return n;
}

function writeAlarmResponse(w: ProtoWriter, m: kv.AlarmResponse): void {
  if (m.header !== undefined) writeNested(w, 10, writeHeader, m.header);
  for (const a of m.alarms) writeNested(w, 18, writeAlarmMember, a);
}

function readAlarmResponse(r: ProtoReader): kv.AlarmResponse {
  const m: kv.AlarmResponse = { alarms: [] };
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.header = readNested(r, readHeader, m.header);
        break;
      case 18:
        m.alarms.push(readNested(r, readAlarmMember));
        break;
      default:
        r.other(tag, ALARM_RESPONSE, 'etcdserverpb.AlarmResponse');
    }
  }
  return m;
}

export const AlarmResponse = codec(sizeAlarmResponse, writeAlarmResponse, readAlarmResponse);

// ---------------------------------------------------------------------------
// Maintenance: HashKV

const HASH_KV_REQUEST: FieldTable = { 1: ['revision', V] };

export const HashKVRequest: Codec<srv.HashKVRequest> = codec(
  (m) => (m.revision !== 0 ? 1 + varintSize(m.revision) : 0),
  (w, m) => {
    if (m.revision !== 0) {
      w.uint32(8);
      w.int64(m.revision);
    }
  },
  (r) => {
    const m: srv.HashKVRequest = { revision: 0 };
    while (r.pos < r.end) {
      const tag = r.tag();
      if (tag === 8) m.revision = r.int64();
      else r.other(tag, HASH_KV_REQUEST, 'etcdserverpb.HashKVRequest');
    }
    return m;
  },
);

const HASH_KV_RESPONSE: FieldTable = { 1: ['header', L], 2: ['hash', V], 3: ['compact_revision', V] };

export const HashKVResponse: Codec<srv.HashKVResponse> = codec(
  (m) => headerField(m.header) + (m.hash !== 0 ? 1 + varintSize(m.hash) : 0) + (m.compactRevision !== 0 ? 1 + varintSize(m.compactRevision) : 0),
  (w, m) => {
    writeNested(w, 10, writeHeader, m.header);
    if (m.hash !== 0) {
      w.uint32(16);
      w.int64(m.hash);
    }
    if (m.compactRevision !== 0) {
      w.uint32(24);
      w.int64(m.compactRevision);
    }
  },
  (r) => {
    const m: srv.HashKVResponse = { header: newHeader(), hash: 0, compactRevision: 0 };
    while (r.pos < r.end) {
      const tag = r.tag();
      if (tag === 10) m.header = readNested(r, readHeader, m.header);
      else if (tag === 16) m.hash = r.uint64();
      else if (tag === 24) m.compactRevision = r.int64();
      else r.other(tag, HASH_KV_RESPONSE, 'etcdserverpb.HashKVResponse');
    }
    return m;
  },
);

// ---------------------------------------------------------------------------
// Maintenance: MoveLeader

const MOVE_LEADER_REQUEST: FieldTable = { 1: ['targetID', V] };

export const MoveLeaderRequest: Codec<srv.MoveLeaderRequest> = codec(
  (m) => (m.targetId !== 0n ? 1 + bigVarintSize(m.targetId) : 0),
  (w, m) => {
    if (m.targetId !== 0n) {
      w.uint32(8);
      w.big(m.targetId);
    }
  },
  (r) => {
    const m: srv.MoveLeaderRequest = { targetId: 0n };
    while (r.pos < r.end) {
      const tag = r.tag();
      if (tag === 8) m.targetId = r.uint64Big();
      else r.other(tag, MOVE_LEADER_REQUEST, 'etcdserverpb.MoveLeaderRequest');
    }
    return m;
  },
);

export const MoveLeaderResponse: Codec<{ header: kv.ResponseHeader }> = headerOnly('etcdserverpb.MoveLeaderResponse');

// ---------------------------------------------------------------------------
// Cluster: MemberList

const MEMBER_LIST_REQUEST: FieldTable = { 1: ['linearizable', V] };

export const MemberListRequest: Codec<srv.MemberListRequest> = codec(
  (m) => (m.linearizable ? 2 : 0),
  (w, m) => {
    if (m.linearizable) {
      w.uint32(8);
      w.uint32(1);
    }
  },
  (r) => {
    const m = { linearizable: false };
    while (r.pos < r.end) {
      const tag = r.tag();
      if (tag === 8) m.linearizable = r.bool();
      else r.other(tag, MEMBER_LIST_REQUEST, 'etcdserverpb.MemberListRequest');
    }
    return m;
  },
);

const MEMBER: FieldTable = { 1: ['ID', V], 2: ['name', L], 3: ['peerURLs', L], 4: ['clientURLs', L], 5: ['isLearner', V] };

function sizeMember(m: kv.Member): number {
  let n = 0;
  if (m.id !== 0n) n += 1 + bigVarintSize(m.id);
  if (m.name.length !== 0) n += 1 + lenSize(str(m.name));
  for (const u of m.peerURLs) n += 1 + lenSize(str(u));
  for (const u of m.clientURLs) n += 1 + lenSize(str(u));
  if (m.isLearner) n += 2;
  return n;
}

function writeMember(w: ProtoWriter, m: kv.Member): void {
  if (m.id !== 0n) {
    w.uint32(8);
    w.big(m.id);
  }
  if (m.name.length !== 0) {
    w.uint32(18);
    w.string(m.name, cache.next());
  }
  for (const u of m.peerURLs) {
    w.uint32(26);
    w.string(u, cache.next());
  }
  for (const u of m.clientURLs) {
    w.uint32(34);
    w.string(u, cache.next());
  }
  if (m.isLearner) {
    w.uint32(40);
    w.uint32(1);
  }
}

function readMember(r: ProtoReader): kv.Member {
  const m: kv.Member = { id: 0n, name: '', peerURLs: [], clientURLs: [], isLearner: false };
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 8:
        m.id = r.uint64Big();
        break;
      case 18:
        m.name = r.string();
        break;
      case 26:
        m.peerURLs.push(r.string());
        break;
      case 34:
        m.clientURLs.push(r.string());
        break;
      case 40:
        m.isLearner = r.bool();
        break;
      default:
        r.other(tag, MEMBER, 'etcdserverpb.Member');
    }
  }
  return m;
}

export const Member = codec(sizeMember, writeMember, readMember);

const MEMBER_LIST_RESPONSE: FieldTable = { 1: ['header', L], 2: ['members', L] };

function sizeMemberListResponse(m: kv.MemberListResponse): number {
  let n = headerField(m.header);
  for (const x of m.members) n += 1 + lenSize(nested(sizeMember, x));
  return n;
}

function writeMemberListResponse(w: ProtoWriter, m: kv.MemberListResponse): void {
  writeNested(w, 10, writeHeader, m.header);
  for (const x of m.members) writeNested(w, 18, writeMember, x);
}

function readMemberListResponse(r: ProtoReader): kv.MemberListResponse {
  const m: kv.MemberListResponse = { header: newHeader(), members: [] };
  while (r.pos < r.end) {
    const tag = r.tag();
    switch (tag) {
      case 10:
        m.header = readNested(r, readHeader, m.header);
        break;
      case 18:
        m.members.push(readNested(r, readMember));
        break;
      default:
        r.other(tag, MEMBER_LIST_RESPONSE, 'etcdserverpb.MemberListResponse');
    }
  }
  return m;
}

export const MemberListResponse = codec(sizeMemberListResponse, writeMemberListResponse, readMemberListResponse);

// ---------------------------------------------------------------------------
// raftkvpb.KVExt: Increment (proto/raftkv.proto)

const INCREMENT_REQUEST: FieldTable = { 1: ['key', L], 2: ['delta', V] };

export const IncrementRequest: Codec<kv.IncrementRequest> = codec(
  (m) => (m.key.length !== 0 ? 1 + lenSize(m.key.length) : 0) + (m.delta !== 0 ? 1 + varintSize(m.delta) : 0),
  (w, m) => {
    if (m.key.length !== 0) {
      w.uint32(10);
      w.bytes(m.key);
    }
    if (m.delta !== 0) {
      w.uint32(16);
      w.int64(m.delta);
    }
  },
  (r) => {
    const m: kv.IncrementRequest = { key: EMPTY, delta: 0 };
    while (r.pos < r.end) {
      const tag = r.tag();
      if (tag === 10) m.key = r.bytes();
      else if (tag === 16) m.delta = r.int64();
      else r.other(tag, INCREMENT_REQUEST, 'raftkvpb.IncrementRequest');
    }
    return m;
  },
);

const INCREMENT_RESPONSE: FieldTable = { 1: ['header', L], 2: ['value', V], 3: ['kv', L] };

export const IncrementResponse: Codec<kv.IncrementResponse> = codec(
  (m) => headerField(m.header) + (m.value !== 0 ? 1 + varintSize(m.value) : 0) + 1 + lenSize(nested(sizeKeyValue, m.kv)),
  (w, m) => {
    writeNested(w, 10, writeHeader, m.header);
    if (m.value !== 0) {
      w.uint32(16);
      w.int64(m.value);
    }
    writeNested(w, 26, writeKeyValue, m.kv);
  },
  (r) => {
    const m: kv.IncrementResponse = { header: newHeader(), value: 0, kv: newKeyValue() };
    while (r.pos < r.end) {
      const tag = r.tag();
      if (tag === 10) m.header = readNested(r, readHeader, m.header);
      else if (tag === 16) m.value = r.int64();
      else if (tag === 26) m.kv = readNested(r, readKeyValue, m.kv);
      else r.other(tag, INCREMENT_RESPONSE, 'raftkvpb.IncrementResponse');
    }
    return m;
  },
);

// ---------------------------------------------------------------------------
// grpc.health.v1.Health/Check (etcd registers the standard health service)

const HEALTH_CHECK_REQUEST: FieldTable = { 1: ['service', L] };

export const HealthCheckRequest: Codec<srv.HealthCheckRequest> = codec(
  (m) => (m.service.length !== 0 ? 1 + lenSize(str(m.service)) : 0),
  (w, m) => {
    if (m.service.length !== 0) {
      w.uint32(10);
      w.string(m.service, cache.next());
    }
  },
  (r) => {
    const m = { service: '' };
    while (r.pos < r.end) {
      const tag = r.tag();
      if (tag === 10) m.service = r.string();
      else r.other(tag, HEALTH_CHECK_REQUEST, 'grpc.health.v1.HealthCheckRequest');
    }
    return m;
  },
);

const HEALTH_CHECK_RESPONSE: FieldTable = { 1: ['status', V] };

export const HealthCheckResponse: Codec<srv.HealthCheckResponse> = codec(
  (m) => (m.status !== 0 ? 1 + varintSize(m.status) : 0),
  (w, m) => {
    if (m.status !== 0) {
      w.uint32(8);
      w.int64(m.status);
    }
  },
  (r) => {
    const m: srv.HealthCheckResponse = { status: 0 };
    while (r.pos < r.end) {
      const tag = r.tag();
      if (tag === 8) m.status = r.int32();
      else r.other(tag, HEALTH_CHECK_RESPONSE, 'grpc.health.v1.HealthCheckResponse');
    }
    return m;
  },
);

// ---------------------------------------------------------------------------
// The methods: path, codecs and streaming shape, shared by server and client.

export interface MethodDescriptor<Req, Res> {
  /** The HTTP/2 :path, "/package.Service/Method". */
  readonly path: string;
  readonly request: Codec<Req>;
  readonly response: Codec<Res>;
  /** The server sends a stream of responses (Watch, Snapshot); unary otherwise. */
  readonly responseStream: boolean;
}

function unary<Req, Res>(path: string, request: Codec<Req>, response: Codec<Res>): MethodDescriptor<Req, Res> {
  return { path, request, response, responseStream: false };
}

/** The etcd v3 methods raftkv serves, its extension and the health check. */
export const methods = {
  range: unary('/etcdserverpb.KV/Range', RangeRequest, RangeResponse),
  put: unary('/etcdserverpb.KV/Put', PutRequest, PutResponse),
  deleteRange: unary('/etcdserverpb.KV/DeleteRange', DeleteRangeRequest, DeleteRangeResponse),
  txn: unary('/etcdserverpb.KV/Txn', TxnRequest, TxnResponse),
  compact: unary('/etcdserverpb.KV/Compact', CompactionRequest, CompactionResponse),
  status: unary('/etcdserverpb.Maintenance/Status', StatusRequest, StatusResponse),
  alarm: unary('/etcdserverpb.Maintenance/Alarm', AlarmRequest, AlarmResponse),
  hashKV: unary('/etcdserverpb.Maintenance/HashKV', HashKVRequest, HashKVResponse),
  moveLeader: unary('/etcdserverpb.Maintenance/MoveLeader', MoveLeaderRequest, MoveLeaderResponse),
  memberList: unary('/etcdserverpb.Cluster/MemberList', MemberListRequest, MemberListResponse),
  increment: unary('/raftkvpb.KVExt/Increment', IncrementRequest, IncrementResponse),
  healthCheck: unary('/grpc.health.v1.Health/Check', HealthCheckRequest, HealthCheckResponse),
} as const;
