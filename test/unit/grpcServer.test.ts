// The lean gRPC server (src/server/grpc.ts) driven with raw HTTP/2 requests:
// framing, trailers and Trailers-Only errors, unknown methods, malformed and
// oversized frames, compression, deadlines, cancellation, server streaming,
// handler errors, metadata, and the wire helpers.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';

import type * as kv from '../../src/kv/types.js';
import { type MethodDescriptor, PutRequest, PutResponse, RangeRequest, RangeResponse, methods, newRangeRequest } from '../../src/server/etcdpb.js';
import {
  GrpcError,
  GrpcServer,
  type ServerCall,
  decodeGrpcMessage,
  encodeGrpcMessage,
  formatGrpcTimeout,
  parseGrpcTimeout,
  sessionMetadata,
} from '../../src/server/grpc.js';
import { GrpcStatus } from '../../src/server/types.js';

const HEADER: kv.ResponseHeader = { clusterId: 1n, memberId: 2n, revision: 3, raftTerm: 4 };

function frame(payload: Uint8Array, flag = 0): Buffer {
  const b = Buffer.alloc(5 + payload.length);
  b[0] = flag;
  b.writeUInt32BE(payload.length, 1);
  b.set(payload, 5);
  return b;
}

function putBody(key = 'k', value = 'v'): Buffer {
  return frame(PutRequest.encode({ key: Buffer.from(key), value: Buffer.from(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false }));
}

interface RawResult {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | undefined;
  data: Buffer;
  rstCode: number | undefined;
}

/** The status of a raw result: from the trailers, or from the headers for Trailers-Only. */
function status(r: RawResult): { code: number; message: string } {
  const src = r.trailers ?? r.headers;
  return { code: Number(src['grpc-status']), message: decodeGrpcMessage(String(src['grpc-message'] ?? '')) };
}

/** The messages of a response body. */
function frames(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    assert.equal(data[at], 0, 'compressed flag');
    const len = data.readUInt32BE(at + 1);
    out.push(data.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  return out;
}

class Raw {
  readonly session: http2.ClientHttp2Session;
  constructor(port: number) {
    this.session = http2.connect(`http://127.0.0.1:${port}`);
  }

  call(
    path: string,
    body: Buffer | Buffer[],
    headers: http2.OutgoingHttpHeaders = {},
    opts: { keepOpen?: boolean; onStream?: (s: http2.ClientHttp2Stream) => void } = {},
  ): Promise<RawResult> {
    return new Promise((resolve) => {
      const s = this.session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
      let respHeaders: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders | undefined;
      const chunks: Buffer[] = [];
      s.on('response', (h) => (respHeaders = h));
      s.on('trailers', (t) => (trailers = t));
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('error', () => {});
      s.on('close', () => resolve({ headers: respHeaders, trailers, data: Buffer.concat(chunks), rstCode: s.rstCode }));
      for (const b of Array.isArray(body) ? body : [body]) s.write(b);
      if (!opts.keepOpen) s.end();
      opts.onStream?.(s);
    });
  }

  close(): void {
    this.session.close();
  }
}

const ECHO: MethodDescriptor<kv.RangeRequest, kv.RangeResponse> = { path: '/test.Echo/Stream', request: RangeRequest, response: RangeResponse, responseStream: true };
const SLOW: MethodDescriptor<kv.PutRequest, kv.PutResponse> = { path: '/test.Echo/Slow', request: PutRequest, response: PutResponse, responseStream: false };

describe('grpc server', () => {
  let server: GrpcServer;
  let raw: Raw;
  const handlerErrors: unknown[] = [];
  let lastCall: ServerCall | undefined;
  let slowCalls: { call: ServerCall; reason: Promise<unknown> }[] = [];
  let streamSent: number[] = [];

  before(async () => {
    server = new GrpcServer({ maxReceiveMessageBytes: 64 * 1024, onHandlerError: (e) => handlerErrors.push(e) });
    server.addUnary(methods.put, (req, call) => {
      lastCall = call;
      const key = Buffer.from(req.key).toString();
      if (key === '') throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'etcdserver: key is not provided');
      if (key === 'boom') throw new Error('secret detail');
      if (key === 'odd') throw Object.assign(new Error('100% sûr\nline two'), { grpcStatus: GrpcStatus.FAILED_PRECONDITION });
      return { header: HEADER, prevKv: { key: req.key, value: req.value, createRevision: 1, modRevision: 2, version: 1, lease: 0n } };
    });
    server.addUnary(SLOW, (_req, call) => {
      const reason = new Promise((resolve) => call.signal.addEventListener('abort', () => resolve(call.signal.reason)));
      slowCalls.push({ call, reason });
      return new Promise<kv.PutResponse>(() => {});
    });
    server.addServerStream(ECHO, async (req, call) => {
      const n = req.limit;
      for (let i = 0; i < n; i++) {
        await call.send({ header: { ...HEADER, revision: i + 1 }, kvs: [], more: false, count: i });
        streamSent.push(i);
      }
      if (req.revision === 1) throw new GrpcError(GrpcStatus.ABORTED, 'stopped after sending');
    });
    const { port } = await server.listen(0);
    raw = new Raw(port);
  });

  after(async () => {
    raw.close();
    await server.close(100);
  });

  it('answers a unary call with headers, one message and OK trailers', async () => {
    const r = await raw.call(methods.put.path, putBody('a', 'b'));
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['content-type'], 'application/grpc');
    assert.equal(r.trailers?.['grpc-status'], '0');
    const [msg, ...rest] = frames(r.data);
    assert.equal(rest.length, 0);
    const res = PutResponse.decode(msg!);
    assert.deepEqual(res.header, HEADER);
    assert.equal(Buffer.from(res.prevKv!.value).toString(), 'b');
  });

  it('accepts a request split across many DATA frames', async () => {
    const body = putBody('split', 'x'.repeat(1000));
    const parts = [body.subarray(0, 2), body.subarray(2, 4), body.subarray(4, 300), body.subarray(300)];
    const r = await raw.call(methods.put.path, parts);
    assert.equal(status(r).code, 0);
    assert.equal(Buffer.from(PutResponse.decode(frames(r.data)[0]!).prevKv!.value).length, 1000);
  });

  it('answers unknown services and methods with UNIMPLEMENTED, Trailers-Only', async () => {
    const a = await raw.call('/etcdserverpb.KV/Nope', putBody());
    assert.equal(a.trailers, undefined, 'the status comes in the headers');
    assert.deepEqual(status(a), { code: GrpcStatus.UNIMPLEMENTED, message: 'unknown method Nope for service etcdserverpb.KV' });
    const b = await raw.call('/etcdserverpb.Lease/LeaseGrant', putBody());
    assert.deepEqual(status(b), { code: GrpcStatus.UNIMPLEMENTED, message: 'unknown service etcdserverpb.Lease' });
    const c = await raw.call('/nonsense', putBody());
    assert.equal(status(c).code, GrpcStatus.UNIMPLEMENTED);
  });

  it('refuses requests that are not gRPC with HTTP statuses', async () => {
    const r = await raw.call(methods.put.path, putBody(), { 'content-type': 'application/json' });
    assert.equal(r.headers[':status'], 415);
    const g = await new Promise<number>((resolve) => {
      const s = raw.session.request({ ':method': 'GET', ':path': methods.put.path });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', () => {});
      s.end();
    });
    assert.equal(g, 405);
  });

  it('rejects malformed protobuf, truncated frames, missing and extra messages', async () => {
    const bad = await raw.call(methods.put.path, frame(Buffer.from([0x08, 0x01])));
    assert.equal(status(bad).code, GrpcStatus.INTERNAL);
    assert.match(status(bad).message, /^grpc: error unmarshalling request: malformed protobuf at byte \d+: etcdserverpb\.PutRequest\.key \(field 1\) has wire type 0, expected 2$/);

    const truncated = await raw.call(methods.put.path, putBody().subarray(0, 7));
    assert.deepEqual(status(truncated), { code: GrpcStatus.INTERNAL, message: 'grpc: request ended inside a message (2 of 6 bytes)' });
    const header = await raw.call(methods.put.path, Buffer.from([0, 0]));
    assert.equal(status(header).code, GrpcStatus.INTERNAL);

    const none = await raw.call(methods.put.path, Buffer.alloc(0));
    assert.deepEqual(status(none), { code: GrpcStatus.UNIMPLEMENTED, message: 'grpc: received no request message for method /etcdserverpb.KV/Put' });
    const two = await raw.call(methods.put.path, [putBody(), putBody()]);
    assert.equal(status(two).code, GrpcStatus.UNIMPLEMENTED);
    assert.match(status(two).message, /second request message/);
  });

  it('refuses compressed messages it cannot decompress', async () => {
    const flagged = await raw.call(methods.put.path, frame(Buffer.from([0x0a, 0x01, 0x61]), 1));
    assert.deepEqual(status(flagged), { code: GrpcStatus.INTERNAL, message: 'grpc: compressed flag set with identity or empty encoder' });
    const gzip = await raw.call(methods.put.path, putBody(), { 'grpc-encoding': 'gzip' });
    assert.deepEqual(status(gzip), { code: GrpcStatus.UNIMPLEMENTED, message: 'grpc: Decompressor is not installed for grpc-encoding "gzip"' });
    assert.equal(gzip.headers['grpc-accept-encoding'], 'identity');
    const identity = await raw.call(methods.put.path, putBody(), { 'grpc-encoding': 'identity' });
    assert.equal(status(identity).code, GrpcStatus.OK);
  });

  it('refuses a message over the receive limit from its frame header, and stops the upload', async () => {
    const declared = Buffer.alloc(5);
    declared.writeUInt32BE(64 * 1024 + 1, 1);
    const r = await raw.call(methods.put.path, declared, {}, { keepOpen: true });
    assert.deepEqual(status(r), { code: GrpcStatus.RESOURCE_EXHAUSTED, message: `grpc: received message larger than max (${64 * 1024 + 1} vs. ${64 * 1024})` });
    // At the limit it is accepted.
    const key = 'big';
    const fits = PutRequest.encode({ key: Buffer.from(key), value: Buffer.alloc(64 * 1024 - 10), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
    assert.ok(fits.length <= 64 * 1024);
    assert.equal(status(await raw.call(methods.put.path, frame(fits))).code, GrpcStatus.OK);
  });

  it('sends a handler error with grpcStatus as that status, percent-encoding the message', async () => {
    const empty = await raw.call(methods.put.path, putBody(''));
    assert.deepEqual(status(empty), { code: GrpcStatus.INVALID_ARGUMENT, message: 'etcdserver: key is not provided' });
    const odd = await raw.call(methods.put.path, putBody('odd'));
    assert.equal(odd.headers['grpc-message'], '100%25 s%C3%BBr%0Aline two');
    assert.deepEqual(status(odd), { code: GrpcStatus.FAILED_PRECONDITION, message: '100% sûr\nline two' });
  });

  it('hides other handler errors behind UNKNOWN and reports them', async () => {
    const before = handlerErrors.length;
    const r = await raw.call(methods.put.path, putBody('boom'));
    assert.deepEqual(status(r), { code: GrpcStatus.UNKNOWN, message: 'raftkv: internal server error' });
    assert.equal(handlerErrors.length, before + 1);
    assert.equal((handlerErrors.at(-1) as Error).message, 'secret detail');
  });

  it('shows handlers the metadata, the deadline and the exactly-once session', async () => {
    const t0 = performance.now();
    await raw.call(methods.put.path, putBody('m'), { 'grpc-timeout': '2S', 'raftkv-client-id': '00000000000000ff', 'raftkv-seq': '7', 'raftkv-ack': '5', 'x-custom': 'yes' });
    const call = lastCall!;
    assert.equal(call.metadata['x-custom'], 'yes');
    assert.equal(call.path, methods.put.path);
    assert.ok(call.deadline > t0 + 1500 && call.deadline <= performance.now() + 2000, `deadline ${call.deadline - t0} ms after the call`);
    assert.deepEqual(sessionMetadata(call), { clientId: 255n, seq: 7, ack: 5 });
    assert.equal(call.signal.aborted, false, 'a call that was answered is not aborted');

    await raw.call(methods.put.path, putBody('m'));
    assert.equal(lastCall!.deadline, Infinity);
    assert.equal(sessionMetadata(lastCall!), undefined);
  });

  it('answers DEADLINE_EXCEEDED when grpc-timeout passes, and aborts the handler', async () => {
    slowCalls = [];
    const t0 = performance.now();
    const r = await raw.call(SLOW.path, putBody(), { 'grpc-timeout': '50m' });
    const took = performance.now() - t0;
    assert.deepEqual(status(r), { code: GrpcStatus.DEADLINE_EXCEEDED, message: 'context deadline exceeded' });
    assert.ok(took >= 45 && took < 1000, `answered after ${took} ms`);
    const reason = (await slowCalls[0]!.reason) as GrpcError;
    assert.equal(reason.grpcStatus, GrpcStatus.DEADLINE_EXCEEDED);
    assert.equal(slowCalls[0]!.call.finished, true);
  });

  it('refuses a malformed grpc-timeout', async () => {
    const r = await raw.call(methods.put.path, putBody(), { 'grpc-timeout': '123456789S' });
    assert.deepEqual(status(r), { code: GrpcStatus.INTERNAL, message: 'transport: malformed grpc-timeout: 123456789S' });
  });

  it('aborts the handler when the client cancels', async () => {
    slowCalls = [];
    await raw.call(SLOW.path, putBody(), {}, {
      onStream: (s) => setTimeout(() => s.close(http2.constants.NGHTTP2_CANCEL), 30),
    });
    const reason = (await slowCalls[0]!.reason) as GrpcError;
    assert.equal(reason.grpcStatus, GrpcStatus.CANCELLED);
  });

  it('streams several responses, then OK trailers', async () => {
    streamSent = [];
    const r = await raw.call(ECHO.path, frame(RangeRequest.encode({ ...newRangeRequest(), limit: 3 })));
    assert.equal(status(r).code, GrpcStatus.OK);
    assert.deepEqual(frames(r.data).map((f) => RangeResponse.decode(f).header.revision), [1, 2, 3]);
  });

  it('streams zero responses as Trailers-Only OK, and an error after responses in the trailers', async () => {
    const none = await raw.call(ECHO.path, frame(RangeRequest.encode(newRangeRequest())));
    assert.equal(none.trailers, undefined);
    assert.equal(status(none).code, GrpcStatus.OK);
    const failed = await raw.call(ECHO.path, frame(RangeRequest.encode({ ...newRangeRequest(), limit: 2, revision: 1 })));
    assert.equal(frames(failed.data).length, 2);
    assert.deepEqual(status(failed), { code: GrpcStatus.ABORTED, message: 'stopped after sending' });
  });

  it('waits for flow control while streaming', async () => {
    streamSent = [];
    // 20000 responses of ~35 bytes: far more than the HTTP/2 windows and stream buffers hold unread.
    let stream: http2.ClientHttp2Stream | undefined;
    const pending = raw.call(ECHO.path, frame(RangeRequest.encode({ ...newRangeRequest(), limit: 20000 })), {}, { onStream: (s) => (stream = s) });
    stream!.pause();
    // Wait until the windows and buffers are full and the handler stalls
    // (how long that takes depends on the machine's load), then check it
    // stays stalled.
    let sentWhilePaused = -1;
    for (let i = 0; i < 100 && (streamSent.length === 0 || streamSent.length !== sentWhilePaused); i++) {
      sentWhilePaused = streamSent.length;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(sentWhilePaused > 0 && sentWhilePaused < 20000, `${sentWhilePaused} sent while the client read nothing`);
    assert.equal(streamSent.length, sentWhilePaused, 'the handler waits while the client reads nothing');
    stream!.resume();
    const r = await pending;
    assert.equal(status(r).code, GrpcStatus.OK);
    assert.equal(frames(r.data).length, 20000);
  });

  it('stops a streaming handler when the client cancels', async () => {
    streamSent = [];
    let stream: http2.ClientHttp2Stream | undefined;
    const pending = raw.call(ECHO.path, frame(RangeRequest.encode({ ...newRangeRequest(), limit: 1_000_000 })), {}, { onStream: (s) => (stream = s) });
    stream!.pause();
    await new Promise((resolve) => setTimeout(resolve, 100));
    stream!.close(http2.constants.NGHTTP2_CANCEL);
    await pending;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stopped = streamSent.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(stopped < 1_000_000);
    assert.equal(streamSent.length, stopped, 'the handler stopped once the call was cancelled');
  });
});

describe('grpc server limits and shutdown', () => {
  it('uses etcd\'s receive limit by default: 1.5 MiB + 512 KiB', async () => {
    const server = new GrpcServer();
    assert.equal(server.maxReceiveMessageBytes, 2 * 1024 * 1024);
    server.addUnary(methods.put, (req) => ({ header: { ...HEADER, revision: req.value.length } }));
    const { port } = await server.listen(0);
    const raw = new Raw(port);
    try {
      const ok = await raw.call(methods.put.path, putBody('k', 'x'.repeat(1.5 * 1024 * 1024)));
      assert.equal(PutResponse.decode(frames(ok.data)[0]!).header.revision, 1.5 * 1024 * 1024);
      const tooBig = await raw.call(methods.put.path, putBody('k', 'x'.repeat(2.5 * 1024 * 1024)));
      assert.equal(status(tooBig).code, GrpcStatus.RESOURCE_EXHAUSTED);
      assert.match(status(tooBig).message, /^grpc: received message larger than max \(\d+ vs\. 2097152\)$/);
    } finally {
      raw.close();
      await server.close(100);
    }
  });

  it('close() sends GOAWAY but lets a call in flight finish', async () => {
    const server = new GrpcServer();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    server.addUnary(methods.put, async () => {
      await held;
      return { header: HEADER };
    });
    const { port } = await server.listen(0);
    const raw = new Raw(port);
    const goaway = new Promise((resolve) => raw.session.once('goaway', resolve));
    const pending = raw.call(methods.put.path, putBody());
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = server.close(2000);
    await goaway;
    release();
    const r = await pending;
    assert.equal(status(r).code, GrpcStatus.OK);
    await closed;
    raw.close();
  });
});

describe('grpc wire helpers', () => {
  it('parses and formats grpc-timeout', () => {
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('2M'), 120_000);
    assert.equal(parseGrpcTimeout('5S'), 5000);
    assert.equal(parseGrpcTimeout('250m'), 250);
    assert.equal(parseGrpcTimeout('1500u'), 1.5);
    assert.equal(parseGrpcTimeout('2000000n'), 2);
    for (const bad of ['', '5', 'S', '5s', '123456789m', '-1S', '1.5S']) assert.equal(parseGrpcTimeout(bad), undefined, bad);
    assert.equal(formatGrpcTimeout(5000), '5000m');
    assert.equal(formatGrpcTimeout(0.2), '1m');
    assert.equal(formatGrpcTimeout(2e8), '200000S');
    assert.equal(formatGrpcTimeout(1e12), '16666667M');
    for (const ms of [1, 999, 5000, 99_999_999, 1e8, 3.6e9]) assert.ok(parseGrpcTimeout(formatGrpcTimeout(ms))! >= ms, `${ms}`);
  });

  it('percent-encodes status messages and decodes them back', () => {
    assert.equal(encodeGrpcMessage('etcdserver: key is not provided'), 'etcdserver: key is not provided');
    assert.equal(encodeGrpcMessage('a%b'), 'a%25b');
    assert.equal(encodeGrpcMessage('é\t'), '%C3%A9%09');
    for (const m of ['plain', '100%', 'ünïcödé 日本 😀', 'tab\tnew\nline', '%%41']) assert.equal(decodeGrpcMessage(encodeGrpcMessage(m)), m);
    assert.equal(decodeGrpcMessage('bad %zz escape %4'), 'bad %zz escape %4');
  });

  it('refuses malformed exactly-once metadata with INVALID_ARGUMENT', () => {
    const call = (metadata: http2.IncomingHttpHeaders): ServerCall => ({ path: '/p', metadata, deadline: Infinity, signal: new AbortController().signal, finished: false });
    const id = { 'raftkv-client-id': '0123456789abcdef' };
    assert.deepEqual(sessionMetadata(call({ ...id, 'raftkv-seq': '3', 'raftkv-ack': '3' })), { clientId: 0x0123456789abcdefn, seq: 3, ack: 3 });
    const bad: [http2.IncomingHttpHeaders, RegExp][] = [
      [{ 'raftkv-client-id': 'XYZ', 'raftkv-seq': '1', 'raftkv-ack': '1' }, /16 lowercase hex digits/],
      [{ ...id, 'raftkv-ack': '1' }, /raftkv-seq is missing/],
      [{ ...id, 'raftkv-seq': '1' }, /raftkv-ack is missing/],
      [{ ...id, 'raftkv-seq': '0', 'raftkv-ack': '0' }, /at least 1/],
      [{ ...id, 'raftkv-seq': '-1', 'raftkv-ack': '0' }, /decimal integer/],
      [{ ...id, 'raftkv-seq': '2', 'raftkv-ack': '3' }, /raftkv-ack 3 is above raftkv-seq 2/],
    ];
    for (const [m, re] of bad) {
      assert.throws(() => sessionMetadata(call(m)), (e: unknown) => e instanceof GrpcError && e.grpcStatus === GrpcStatus.INVALID_ARGUMENT && re.test(e.message));
    }
  });
});
