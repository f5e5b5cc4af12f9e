// The JSON gateway (src/server/gateway.ts) against etcd 3.4.23's own: the
// requests recorded in test/fixtures/gateway/etcd-3.4.json are replayed, in
// order, over HTTP against handlers backed by a KvStateMachine (as the
// member's are), and every answer must be etcd's byte for byte as JSON --
// field names, strings for 64-bit integers, base64, left-out defaults, error
// bodies and HTTP statuses. Then what the fixtures do not cover: request
// size limits, methods, cross-origin refusal, metadata, the input forms.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { type KvOperation, KvError, KvStateMachine, encodeCommand, isReadOnlyTxn, validateCommand } from '../../src/kv/index.js';
import type * as kv from '../../src/kv/types.js';
import { type EtcdHandlers, GrpcError, GrpcServer, type ServerCall } from '../../src/server/grpc.js';
import { JsonMessage, errorJson, gatewayRoutes, httpStatusFromCode, keyValueJson, parseRequest, readRangeRequest, readTxnRequest } from '../../src/server/gateway.js';
import { httpRoutes } from '../../src/server/listen.js';
import { GrpcStatus } from '../../src/server/types.js';

interface Step {
  readonly path: string;
  readonly request: unknown;
  readonly status: number;
  readonly response: Record<string, unknown>;
}

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/gateway/etcd-3.4.json', import.meta.url));
const STEPS = JSON.parse(readFileSync(FIXTURES, 'utf8')) as Step[];
/** The recorded etcd's cluster and member ids and term: put into our headers so whole bodies compare. */
const ETCD_HEADER = STEPS[0]!.response.header as { cluster_id: string; member_id: string; raft_term: string };

/** A member's KV handlers in miniature: validation, apply through the state machine, etcd's header. */
function kvHandlers(seen: ServerCall[]): Pick<EtcdHandlers, 'range' | 'put' | 'deleteRange' | 'txn' | 'compact' | 'increment'> {
  const sm = new KvStateMachine();
  let index = 0;
  const header = (h: kv.ResponseHeader): kv.ResponseHeader => ({
    clusterId: BigInt(ETCD_HEADER.cluster_id),
    memberId: BigInt(ETCD_HEADER.member_id),
    revision: h.revision,
    raftTerm: Number(ETCD_HEADER.raft_term),
  });
  const write = async <R>(op: KvOperation, call: ServerCall): Promise<R> => {
    seen.push(call);
    const command = { op, time: 1 };
    validateCommand(command);
    const result = sm.apply(encodeCommand(command), ++index);
    if (result instanceof KvError) throw result;
    const res = result as unknown as { header: kv.ResponseHeader };
    res.header = header(res.header);
    return res as unknown as R;
  };
  return {
    range: (req) => {
      const res = sm.range(req);
      res.header = header(res.header);
      return res;
    },
    put: (req, call) => write({ type: 'put', request: req }, call),
    deleteRange: (req, call) => write({ type: 'deleteRange', request: req }, call),
    txn: (req, call) => {
      if (!isReadOnlyTxn(req)) return write({ type: 'txn', request: req }, call);
      const res = sm.readTxn(req);
      res.header = header(res.header);
      return res;
    },
    compact: (req, call) => write({ type: 'compact', request: req }, call),
    increment: (req, call) => write({ type: 'increment', request: req }, call),
  };
}

describe('JSON gateway', () => {
  let server: http.Server;
  let base: string;
  const calls: ServerCall[] = [];
  const MAX = 4096;

  before(async () => {
    const grpc = new GrpcServer({ onHandlerError: () => {} });
    server = httpRoutes(gatewayRoutes({ handlers: kvHandlers(calls), maxReceiveMessageBytes: MAX, statusOf: (e, p) => grpc.statusOf(e, p) }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const post = async (path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown; headers: Headers }> => {
    const res = await fetch(base + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
  };

  it("answers etcd 3.4.23's recorded requests exactly as etcd did", async () => {
    assert.ok(STEPS.length >= 15);
    for (const [i, step] of STEPS.entries()) {
      const got = await post(step.path, step.request);
      assert.deepEqual({ status: got.status, body: got.body }, { status: step.status, body: step.response }, `step ${i}: ${step.path} ${JSON.stringify(step.request)}`);
      assert.equal(got.headers.get('access-control-allow-origin'), null, 'no permissive CORS on the gateway');
    }
  });

  it('serves the Increment extension with the same conventions, as /v3/kv/increment and /v3/kv/inc', async () => {
    const key = Buffer.from('visits').toString('base64');
    const a = await post('/v3/kv/increment', { key, delta: '5' });
    assert.equal(a.status, 200);
    const body = a.body as { value: string; kv: { key: string; value: string; version: string } };
    assert.equal(body.value, '5');
    assert.equal(body.kv.key, key);
    assert.equal(Buffer.from(body.kv.value, 'base64').toString(), '5');
    const b = await post('/v3/kv/inc', { key, delta: -7 });
    assert.equal((b.body as { value: string }).value, '-2');
    assert.equal((b.body as { kv: { version: string } }).kv.version, '2');
    // Without a delta, inc adds 1; an explicit 0 adds nothing.
    const c = await post('/v3/kv/inc', { key });
    assert.equal((c.body as { value: string }).value, '-1');
    const d = await post('/v3/kv/inc', { key, delta: '0' });
    assert.equal((d.body as { value: string }).value, '-1');
  });

  it('refuses a request larger than the gRPC receive limit, as gRPC would (RESOURCE_EXHAUSTED, 429)', async () => {
    const res = await post('/v3/kv/put', { key: Buffer.from('k').toString('base64'), value: Buffer.alloc(MAX).toString('base64') });
    assert.equal(res.status, 429);
    assert.equal((res.body as { code: number }).code, GrpcStatus.RESOURCE_EXHAUSTED);
    assert.match((res.body as { message: string }).message, /^grpc: received message larger than max \(\d+ vs\. 4096\)$/);
    const huge = await post('/v3/kv/put', { key: 'AA==', value: Buffer.alloc(MAX * 4).toString('base64') });
    assert.equal(huge.status, 429);
  });

  it('refuses malformed JSON and wrongly typed fields with INVALID_ARGUMENT', async () => {
    for (const body of ['{"key":', '[]', '"x"', '{"key":"Zm9v","limit":"x"}', '{"key":"Zm9v","sort_order":"SIDEWAYS"}', '{"key":"Zm9v","keys_only":"yes"}', '{"key":"Zg"}']) {
      const res = await post('/v3/kv/range', body);
      assert.equal(res.status, 400, body);
      const e = res.body as { error: string; message: string; code: number };
      assert.equal(e.code, GrpcStatus.INVALID_ARGUMENT, body);
      assert.equal(e.error, e.message);
    }
    const noOp = await post('/v3/kv/txn', { success: [{}] });
    assert.deepEqual(noOp.body, errorJson(GrpcStatus.INVALID_ARGUMENT, 'etcdserverpb.RequestOp has no request set'));
  });

  it('takes POST only and refuses browser requests from another origin', async () => {
    const get = await fetch(`${base}/v3/kv/range`);
    assert.equal(get.status, 405);
    await get.text();
    const cross = await post('/v3/kv/put', { key: 'Zm9v', value: 'eA==' }, { origin: 'http://evil.example' });
    assert.equal(cross.status, 403);
    assert.equal((cross.body as { code: number }).code, GrpcStatus.PERMISSION_DENIED);
    const same = await post('/v3/kv/range', { key: 'Zm9v' }, { origin: base });
    assert.equal(same.status, 200);
  });

  it('hands Grpc-Metadata- headers to the handler as metadata (the exactly-once session)', async () => {
    calls.length = 0;
    await post('/v3/kv/put', { key: 'Zm9v', value: 'eA==' }, { 'grpc-metadata-raftkv-client-id': '00000000000000ab', 'x-other': '1' });
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.path, '/etcdserverpb.KV/Put');
    assert.deepEqual(calls[0]!.metadata, { 'raftkv-client-id': '00000000000000ab' });
  });
});

describe('gateway JSON codec', () => {
  it('reads proto names and lowerCamelCase names, numbers and strings for integers, enum names and numbers', () => {
    const a = parseRequest('{"key":"Zm9v","range_end":"Zm9w","limit":"10","sort_order":"DESCEND","sort_target":4,"keys_only":true}', readRangeRequest);
    const b = parseRequest('{"key":"Zm9v","rangeEnd":"Zm9w","limit":10,"sortOrder":2,"sortTarget":"VALUE","keysOnly":true,"count_only":null}', readRangeRequest);
    assert.deepEqual(a, b);
    assert.equal(Buffer.from(a.rangeEnd).toString(), 'fop');
    assert.equal(a.limit, 10);
    assert.equal(a.sortOrder, 2);
    assert.equal(a.sortTarget, 4);
  });

  it('reads a compare target from whichever oneof member is present, even at zero', () => {
    const t = parseRequest('{"compare":[{"key":"YQ==","target":"VERSION","version":"0"},{"key":"YQ==","target":"LEASE","lease":"-1"},{"key":"YQ=="}]}', readTxnRequest);
    assert.deepEqual(t.compare[0]!.targetUnion, { version: 0 });
    assert.deepEqual(t.compare[1]!.targetUnion, { lease: -1n });
    assert.equal(t.compare[2]!.targetUnion, undefined);
  });

  it('refuses integers beyond their range and base64 without padding, naming the byte as Go does', () => {
    assert.throws(() => parseRequest('{"limit":"9007199254740993"}', readRangeRequest), GrpcError);
    assert.throws(() => parseRequest('{"compare":[{"lease":"9223372036854775808"}]}', readTxnRequest), /64-bit integer/);
    assert.throws(() => parseRequest('{"key":"Zm9vY"}', readRangeRequest), /^GrpcError: illegal base64 data at input byte 4$/);
    assert.throws(() => parseRequest('{"key":"Zm=v"}', readRangeRequest), /illegal base64 data at input byte 2/);
    assert.throws(() => JsonMessage.of(7, 'x'), /x: expected a JSON object, got 7/);
  });

  it('leaves out default fields and writes 64-bit integers as strings', () => {
    assert.deepEqual(keyValueJson({ key: Buffer.from('k'), createRevision: 0, modRevision: 9, version: 1, value: new Uint8Array(0), lease: 2n ** 62n }), {
      key: 'aw==',
      mod_revision: '9',
      version: '1',
      lease: '4611686018427387904',
    });
  });

  it("maps gRPC codes to grpc-gateway v1's HTTP statuses", () => {
    assert.equal(httpStatusFromCode(GrpcStatus.INVALID_ARGUMENT), 400);
    assert.equal(httpStatusFromCode(GrpcStatus.OUT_OF_RANGE), 400);
    assert.equal(httpStatusFromCode(GrpcStatus.UNAVAILABLE), 503);
    assert.equal(httpStatusFromCode(GrpcStatus.DEADLINE_EXCEEDED), 504);
    assert.equal(httpStatusFromCode(GrpcStatus.RESOURCE_EXHAUSTED), 429);
    assert.equal(httpStatusFromCode(GrpcStatus.UNKNOWN), 500);
  });
});
