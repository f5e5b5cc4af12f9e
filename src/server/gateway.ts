// etcd's JSON gateway for the KV service (etcd 3.4 serves grpc-gateway on its
// client URLs): POST /v3/kv/range, /v3/kv/put, /v3/kv/deleterange,
// /v3/kv/txn and /v3/kv/compaction take and return the protobuf messages as
// JSON, the way etcd 3.4's gateway marshals them (golang/protobuf jsonpb
// with OrigName and without EmitDefaults):
// - field names as in the .proto (snake_case); on input the lowerCamelCase
//   names are accepted too;
// - bytes as standard base64; 64-bit integers as decimal strings (numbers
//   accepted on input); enums by name (numbers accepted on input);
// - fields at their default (0, "", false, empty lists) left out.
// Errors come back as {"error", "message", "code"} with the gRPC code and the
// HTTP status grpc-gateway v1 maps it to (runtime.HTTPStatusFromCode).
// test/fixtures/gateway/ holds requests and responses recorded from etcd 3.4.23.
//
// raftkv's extension, raftkvpb.KVExt/Increment, is POST /v3/kv/increment
// (and /v3/kv/inc, the explainers' name for it).
//
// The requests go to the same handlers as the gRPC methods (validation,
// size limits, forwarding, linearizable reads). Unlike etcd's gateway, these
// endpoints send no permissive CORS headers and refuse browser requests from
// another origin: they write, and a page elsewhere must not be able to.

import type * as http from 'node:http';
import type * as http2 from 'node:http2';

import type * as kv from '../kv/types.js';
import { rangeRequest } from '../kv/types.js';
import { type MethodDescriptor, methods } from './etcdpb.js';
import { type EtcdHandlers, GrpcError, type ServerCall, type UnaryHandler } from './grpc.js';
import { GrpcStatus } from './types.js';

// ---------------------------------------------------------------------------
// JSON -> requests

/** A JSON object being read as a protobuf message; errors name the field's path. */
export class JsonMessage {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly path: string,
  ) {}

  static of(value: unknown, path: string): JsonMessage {
    if (value === null || value === undefined) return new JsonMessage({}, path);
    if (typeof value !== 'object' || Array.isArray(value)) throw invalid(`${path}: expected a JSON object, got ${describe(value)}`);
    return new JsonMessage(value as Record<string, unknown>, path);
  }

  /** The value under the proto name or its lowerCamelCase JSON name; null counts as absent (jsonpb). */
  raw(name: string): unknown {
    const v = this.obj[name] ?? this.obj[camel(name)];
    return v === null ? undefined : v;
  }

  has(name: string): boolean {
    return this.raw(name) !== undefined;
  }

  bytes(name: string): Uint8Array {
    const v = this.raw(name);
    if (v === undefined) return new Uint8Array(0);
    if (typeof v !== 'string') throw invalid(`${this.at(name)}: expected base64 bytes, got ${describe(v)}`);
    return decodeBase64(v);
  }

  int(name: string): number {
    const v = this.raw(name);
    if (v === undefined) return 0;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) throw invalid(`${this.at(name)}: expected an integer, got ${describe(v)}`);
    return n;
  }

  int64(name: string): bigint {
    const v = this.raw(name);
    if (v === undefined) return 0n;
    if ((typeof v === 'number' && Number.isSafeInteger(v)) || (typeof v === 'string' && /^-?\d{1,19}$/.test(v))) {
      const n = BigInt(v);
      if (n >= -(2n ** 63n) && n < 2n ** 63n) return n;
    }
    throw invalid(`${this.at(name)}: expected a 64-bit integer, got ${describe(v)}`);
  }

  bool(name: string): boolean {
    const v = this.raw(name);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw invalid(`${this.at(name)}: expected true or false, got ${describe(v)}`);
    return v;
  }

  enumeration(name: string, values: readonly string[]): number {
    const v = this.raw(name);
    if (v === undefined) return 0;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < values.length) return v;
    if (typeof v === 'string' && values.includes(v)) return values.indexOf(v);
    throw invalid(`${this.at(name)}: expected one of ${values.join(', ')}, got ${describe(v)}`);
  }

  message<T>(name: string, read: (m: JsonMessage) => T): T {
    return read(JsonMessage.of(this.raw(name), this.at(name)));
  }

  list<T>(name: string, read: (m: JsonMessage) => T): T[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw invalid(`${this.at(name)}: expected a list, got ${describe(v)}`);
    return v.map((item, i) => read(JsonMessage.of(item, `${this.at(name)}[${i}]`)));
  }

  private at(name: string): string {
    return this.path === '' ? name : `${this.path}.${name}`;
  }
}

const camel = (s: string): string => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function describe(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function invalid(message: string): GrpcError {
  return new GrpcError(GrpcStatus.INVALID_ARGUMENT, message);
}

/**
 * Standard base64 with padding, strictly, with Go's error message
 * (base64.StdEncoding, which jsonpb uses; etcd's gateway returns it as is).
 */
function decodeBase64(s: string): Uint8Array {
  const bad = s.search(/[^A-Za-z0-9+/=]/);
  const misplacedPad = s.search(/=[^=]|={3}/);
  if (bad >= 0) throw invalid(`illegal base64 data at input byte ${bad}`);
  if (misplacedPad >= 0) throw invalid(`illegal base64 data at input byte ${misplacedPad}`);
  if (s.length % 4 !== 0) throw invalid(`illegal base64 data at input byte ${s.length - (s.length % 4)}`);
  return new Uint8Array(Buffer.from(s, 'base64'));
}

const SORT_ORDERS = ['NONE', 'ASCEND', 'DESCEND'];
const SORT_TARGETS = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'];
const COMPARE_RESULTS = ['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'];
const COMPARE_TARGETS = ['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'];

export function readRangeRequest(m: JsonMessage): kv.RangeRequest {
  return rangeRequest({
    key: m.bytes('key'),
    rangeEnd: m.bytes('range_end'),
    limit: m.int('limit'),
    revision: m.int('revision'),
    sortOrder: m.enumeration('sort_order', SORT_ORDERS),
    sortTarget: m.enumeration('sort_target', SORT_TARGETS),
    serializable: m.bool('serializable'),
    keysOnly: m.bool('keys_only'),
    countOnly: m.bool('count_only'),
    minModRevision: m.int('min_mod_revision'),
    maxModRevision: m.int('max_mod_revision'),
    minCreateRevision: m.int('min_create_revision'),
    maxCreateRevision: m.int('max_create_revision'),
  });
}

export function readPutRequest(m: JsonMessage): kv.PutRequest {
  return {
    key: m.bytes('key'),
    value: m.bytes('value'),
    lease: m.int64('lease'),
    prevKv: m.bool('prev_kv'),
    ignoreValue: m.bool('ignore_value'),
    ignoreLease: m.bool('ignore_lease'),
  };
}

export function readDeleteRangeRequest(m: JsonMessage): kv.DeleteRangeRequest {
  return { key: m.bytes('key'), rangeEnd: m.bytes('range_end'), prevKv: m.bool('prev_kv') };
}

function readCompare(m: JsonMessage): kv.Compare {
  // The oneof target_union: whichever member is present (jsonpb sets it even at its default value).
  let targetUnion: kv.Compare['targetUnion'];
  if (m.has('version')) targetUnion = { version: m.int('version') };
  else if (m.has('create_revision')) targetUnion = { createRevision: m.int('create_revision') };
  else if (m.has('mod_revision')) targetUnion = { modRevision: m.int('mod_revision') };
  else if (m.has('value')) targetUnion = { value: m.bytes('value') };
  else if (m.has('lease')) targetUnion = { lease: m.int64('lease') };
  return {
    result: m.enumeration('result', COMPARE_RESULTS),
    target: m.enumeration('target', COMPARE_TARGETS),
    key: m.bytes('key'),
    targetUnion,
    rangeEnd: m.bytes('range_end'),
  };
}

function readRequestOp(m: JsonMessage): kv.RequestOp {
  if (m.has('request_range')) return { requestRange: m.message('request_range', readRangeRequest) };
  if (m.has('request_put')) return { requestPut: m.message('request_put', readPutRequest) };
  if (m.has('request_delete_range')) return { requestDeleteRange: m.message('request_delete_range', readDeleteRangeRequest) };
  if (m.has('request_txn')) return { requestTxn: m.message('request_txn', readTxnRequest) };
  // The same refusal as the protobuf decoder's for a RequestOp with no request.
  throw invalid('etcdserverpb.RequestOp has no request set');
}

export function readTxnRequest(m: JsonMessage): kv.TxnRequest {
  return { compare: m.list('compare', readCompare), success: m.list('success', readRequestOp), failure: m.list('failure', readRequestOp) };
}

export function readCompactionRequest(m: JsonMessage): kv.CompactionRequest {
  return { revision: m.int('revision'), physical: m.bool('physical') };
}

/**
 * The explainers' `inc`: without a delta, add 1 (JSON can tell an absent
 * field from 0, unlike the protobuf wire, where the client library sends 1).
 */
export function readIncrementRequest(m: JsonMessage): kv.IncrementRequest {
  return { key: m.bytes('key'), delta: m.has('delta') ? m.int('delta') : 1 };
}

/** Parses a request body: JSON text, an empty body being the empty message (as etcd's gateway takes it). */
export function parseRequest<T>(body: string, read: (m: JsonMessage) => T): T {
  if (body.trim() === '') return read(JsonMessage.of({}, ''));
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (e) {
    throw invalid((e as Error).message);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(`the request body must be a JSON object, got ${describe(value)}`);
  return read(JsonMessage.of(value, ''));
}

// ---------------------------------------------------------------------------
// Responses -> JSON

type Json = Record<string, unknown>;

/** Sets a field unless it is at its proto3 default (jsonpb without EmitDefaults). */
function set(o: Json, name: string, v: unknown): Json {
  if (v === undefined || v === 0 || v === 0n || v === false || v === '') return o;
  if (v instanceof Uint8Array) {
    if (v.byteLength > 0) o[name] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  } else if (Array.isArray(v)) {
    if (v.length > 0) o[name] = v;
  } else if (typeof v === 'number' || typeof v === 'bigint') {
    o[name] = v.toString();
  } else {
    o[name] = v;
  }
  return o;
}

export function headerJson(h: kv.ResponseHeader): Json {
  const o: Json = {};
  set(o, 'cluster_id', h.clusterId);
  set(o, 'member_id', h.memberId);
  set(o, 'revision', h.revision);
  return set(o, 'raft_term', h.raftTerm);
}

export function keyValueJson(k: kv.KeyValue): Json {
  const o: Json = {};
  set(o, 'key', k.key);
  set(o, 'create_revision', k.createRevision);
  set(o, 'mod_revision', k.modRevision);
  set(o, 'version', k.version);
  set(o, 'value', k.value);
  return set(o, 'lease', k.lease);
}

export function rangeResponseJson(r: kv.RangeResponse): Json {
  const o: Json = { header: headerJson(r.header) };
  set(o, 'kvs', r.kvs.map(keyValueJson));
  set(o, 'more', r.more);
  return set(o, 'count', r.count);
}

export function putResponseJson(r: kv.PutResponse): Json {
  const o: Json = { header: headerJson(r.header) };
  if (r.prevKv) o.prev_kv = keyValueJson(r.prevKv);
  return o;
}

export function deleteRangeResponseJson(r: kv.DeleteRangeResponse): Json {
  const o: Json = { header: headerJson(r.header) };
  set(o, 'deleted', r.deleted);
  return set(o, 'prev_kvs', r.prevKvs.map(keyValueJson));
}

function responseOpJson(r: kv.ResponseOp): Json {
  if ('responseRange' in r) return { response_range: rangeResponseJson(r.responseRange) };
  if ('responsePut' in r) return { response_put: putResponseJson(r.responsePut) };
  if ('responseDeleteRange' in r) return { response_delete_range: deleteRangeResponseJson(r.responseDeleteRange) };
  return { response_txn: txnResponseJson(r.responseTxn) };
}

export function txnResponseJson(r: kv.TxnResponse): Json {
  const o: Json = { header: headerJson(r.header) };
  set(o, 'succeeded', r.succeeded);
  return set(o, 'responses', r.responses.map(responseOpJson));
}

export function compactionResponseJson(r: kv.CompactionResponse): Json {
  return { header: headerJson(r.header) };
}

export function incrementResponseJson(r: kv.IncrementResponse): Json {
  const o: Json = { header: headerJson(r.header) };
  set(o, 'value', r.value);
  o.kv = keyValueJson(r.kv);
  return o;
}

// ---------------------------------------------------------------------------
// Errors

/** grpc-gateway v1's runtime.HTTPStatusFromCode (the version etcd 3.4 uses). */
export function httpStatusFromCode(code: GrpcStatus): number {
  const statuses: Record<number, number> = {
    [GrpcStatus.OK]: 200,
    [GrpcStatus.CANCELLED]: 408,
    [GrpcStatus.UNKNOWN]: 500,
    [GrpcStatus.INVALID_ARGUMENT]: 400,
    [GrpcStatus.DEADLINE_EXCEEDED]: 504,
    [GrpcStatus.NOT_FOUND]: 404,
    [GrpcStatus.ALREADY_EXISTS]: 409,
    [GrpcStatus.PERMISSION_DENIED]: 403,
    [GrpcStatus.UNAUTHENTICATED]: 401,
    [GrpcStatus.RESOURCE_EXHAUSTED]: 429,
    [GrpcStatus.FAILED_PRECONDITION]: 412,
    [GrpcStatus.ABORTED]: 409,
    [GrpcStatus.OUT_OF_RANGE]: 400,
    [GrpcStatus.UNIMPLEMENTED]: 501,
    [GrpcStatus.INTERNAL]: 500,
    [GrpcStatus.UNAVAILABLE]: 503,
    [GrpcStatus.DATA_LOSS]: 500,
  };
  return statuses[code] ?? 500;
}

/** etcd's gateway error body: the message twice (grpc-gateway's `error` and `message`) and the gRPC code. */
export function errorJson(code: GrpcStatus, message: string): Json {
  return { error: message, message, code };
}

// ---------------------------------------------------------------------------
// The routes

type KvHandlers = Pick<EtcdHandlers, 'range' | 'put' | 'deleteRange' | 'txn' | 'compact' | 'increment'>;

export interface GatewayOptions {
  readonly handlers: KvHandlers;
  /** The gRPC server's receive limit: a request larger than this as protobuf is refused, as over gRPC. */
  readonly maxReceiveMessageBytes: number;
  /** How a handler's error becomes a gRPC status and message (the gRPC server's own mapping). */
  readonly statusOf: (error: unknown, path: string) => [GrpcStatus, string];
}

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>;

export function gatewayRoutes(o: GatewayOptions): Record<string, Route> {
  const h = o.handlers;
  const increment = route(o, methods.increment, readIncrementRequest, h.increment, incrementResponseJson);
  return {
    '/v3/kv/range': route(o, methods.range, readRangeRequest, h.range, rangeResponseJson),
    '/v3/kv/put': route(o, methods.put, readPutRequest, h.put, putResponseJson),
    '/v3/kv/deleterange': route(o, methods.deleteRange, readDeleteRangeRequest, h.deleteRange, deleteRangeResponseJson),
    '/v3/kv/txn': route(o, methods.txn, readTxnRequest, h.txn, txnResponseJson),
    '/v3/kv/compaction': route(o, methods.compact, readCompactionRequest, h.compact, compactionResponseJson),
    '/v3/kv/increment': increment,
    // The explainers call it `inc`.
    '/v3/kv/inc': increment,
  };
}

function route<Req, Res>(
  o: GatewayOptions,
  method: MethodDescriptor<Req, Res>,
  read: (m: JsonMessage) => Req,
  handler: UnaryHandler<Req, Res>,
  toJson: (res: Res) => Json,
): Route {
  // base64 takes 4 bytes for 3, and JSON adds names and punctuation.
  const maxBodyBytes = Math.ceil((o.maxReceiveMessageBytes * 4) / 3) + 64 * 1024;
  return async (req, res) => {
    const reply = (status: number, body: Json): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' }).end(text);
    };
    const fail = (code: GrpcStatus, message: string): void => reply(httpStatusFromCode(code), errorJson(code, message));
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST', 'content-type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n');
      return;
    }
    if (isCrossOrigin(req)) {
      fail(GrpcStatus.PERMISSION_DENIED, 'raftkv: the JSON gateway refuses requests from pages of another origin');
      return;
    }
    const body = await readBody(req, maxBodyBytes);
    if (body === undefined) {
      fail(GrpcStatus.RESOURCE_EXHAUSTED, `grpc: received message larger than max (over ${maxBodyBytes} bytes of JSON vs. ${o.maxReceiveMessageBytes})`);
      return;
    }
    const call = gatewayCall(method.path, req, res);
    try {
      const request = parseRequest(body, read);
      const size = method.request.encode(request).length;
      if (size > o.maxReceiveMessageBytes) {
        throw new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${size} vs. ${o.maxReceiveMessageBytes})`);
      }
      const response = await handler(request, call);
      if (!res.destroyed) reply(200, toJson(response));
    } catch (e) {
      if (res.destroyed) return;
      const [code, message] = o.statusOf(e, method.path);
      fail(code, message);
    }
  };
}

/**
 * A browser sends Origin with a POST; a request whose Origin is not this
 * server's own (scheme://host:port) comes from another site's page. Tools
 * (curl, etcdctl) send none.
 */
function isCrossOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  return origin !== `http://${req.headers.host ?? ''}`;
}

/** The body as text, or undefined when it exceeds `limit` bytes (the rest is discarded). */
function readBody(req: http.IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      if (!over) chunks.push(chunk);
    });
    req.once('end', () => resolve(over ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

/**
 * The call a handler sees for a gateway request. grpc-gateway forwards
 * headers prefixed "Grpc-Metadata-" as gRPC metadata: raftkv's exactly-once
 * session (raftkv-client-id, ...) can be given that way.
 */
function gatewayCall(path: string, req: http.IncomingMessage, res: http.ServerResponse): ServerCall {
  const metadata: http2.IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('grpc-metadata-') && value !== undefined) metadata[name.slice('grpc-metadata-'.length)] = value;
  }
  const aborted = new AbortController();
  let finished = false;
  res.once('close', () => {
    finished = true;
    aborted.abort();
  });
  return {
    path,
    metadata,
    deadline: Infinity,
    signal: aborted.signal,
    get finished() {
      return finished;
    },
  };
}
