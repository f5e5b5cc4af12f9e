// A lean gRPC server on raftkv's own HTTP/2 server (h2.ts; cleartext h2c, as
// etcd serves http:// client URLs): the protocol of
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md for unary
// and server-streaming methods, and nothing else. It exists because
// @grpc/grpc-js spends about 1.6x the CPU per call on the server, and
// node:http2 under it most of the rest (bench/grpc.ts, docs/server.md).
//
// A call: a POST to "/package.Service/Method" with content-type
// application/grpc, carrying one length-prefixed message (a compressed-flag
// byte, a 4-byte big-endian length, the protobuf bytes). The answer: HEADERS
// (:status 200), the response message(s) as DATA, and trailers with
// grpc-status and a percent-encoded grpc-message. An error before any
// response is sent goes out "Trailers-Only": one HEADERS frame with the
// status and END_STREAM.
//
// Error statuses and messages follow grpc-go, so that etcdctl reports them
// as it would against etcd. Handler errors with a numeric `grpcStatus` (the
// key-value layer's, which carry etcd's exact messages such as
// "etcdserver: key is not provided") are sent as they are; anything else is
// logged and sent as UNKNOWN without its details.

import type http2 from 'node:http2';
import * as net from 'node:net';

import type * as kv from '../kv/types.js';
import { type Codec, type MethodDescriptor, methods } from './etcdpb.js';
import { H2Code, H2Connection, type H2Handler, type H2Options, type H2Stream, type H2StreamListener, type RequestHeaders } from './h2.js';
import { encodeHeaderBlock } from './hpack.js';
import { ProtoDecodeError } from './proto.js';
import {
  ACK_HEADER,
  CLIENT_ID_HEADER,
  GrpcStatus,
  type HashKVRequest,
  type HashKVResponse,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type MemberListRequest,
  type MoveLeaderRequest,
  SEQ_HEADER,
  ServingStatus,
  type SessionMetadata,
  type StatusRequest,
} from './types.js';

/** etcd's --max-request-bytes default (1.5 MiB). */
export const DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** etcd's server accepts gRPC messages this much larger than --max-request-bytes (grpcOverheadBytes). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

/** An error to answer a call with: a gRPC status and its message. */
export class GrpcError extends Error {
  readonly code = 'GRPC_ERROR';
  constructor(
    readonly grpcStatus: GrpcStatus,
    message: string,
  ) {
    super(message);
    this.name = 'GrpcError';
  }
}

/** What a handler knows about its call besides the request. */
export interface ServerCall {
  /** "/package.Service/Method". */
  readonly path: string;
  /** The request's headers (gRPC metadata), names in lower case; -bin values are still base64. */
  readonly metadata: http2.IncomingHttpHeaders;
  /** When the client stops waiting, in performance.now() milliseconds; Infinity without grpc-timeout. */
  readonly deadline: number;
  /** Fired when the call ends before its handler: the client cancelled, the deadline passed, or the connection closed. */
  readonly signal: AbortSignal;
  /** True once the call is over for the client (answered, cancelled or past its deadline). */
  readonly finished: boolean;
}

/** A server-streaming call: the handler sends any number of responses, then returns. */
export interface ServerStreamCall<Res> extends ServerCall {
  /**
   * Sends one response. Resolves when the stream can take more (HTTP/2 flow
   * control); rejects with a CANCELLED GrpcError once the call is over.
   */
  send(response: Res): Promise<void>;
}

export type UnaryHandler<Req, Res> = (request: Req, call: ServerCall) => Promise<Res> | Res;
export type ServerStreamHandler<Req, Res> = (request: Req, call: ServerStreamCall<Res>) => Promise<void>;

export interface GrpcServerOptions {
  /**
   * The largest request message accepted; larger ones fail with
   * RESOURCE_EXHAUSTED. Default: etcd's, --max-request-bytes + 512 KiB.
   */
  readonly maxReceiveMessageBytes?: number;
  /** Where errors without a grpcStatus go (they reach the client only as UNKNOWN). Default: stderr. */
  readonly onHandlerError?: (error: unknown, path: string) => void;
  /** HTTP/2 flow-control window per stream, in bytes (default 1 MiB: a large Put needs few round trips). */
  readonly streamWindowBytes?: number;
  /** HTTP/2 flow-control window per connection, in bytes (default 16 MiB). */
  readonly connectionWindowBytes?: number;
  /** Response data queued on a connection beyond which it refuses new streams, in MiB (default 64). */
  readonly maxQueuedMiB?: number;
  /** Open streams per connection beyond which new ones are refused (default 10,000). */
  readonly maxConcurrentStreams?: number;
}

interface Route {
  readonly path: string;
  readonly request: Codec<unknown>;
  readonly response: Codec<unknown>;
  readonly unary: UnaryHandler<unknown, unknown> | undefined;
  readonly stream: ServerStreamHandler<unknown, unknown> | undefined;
}

type Fields = ReadonlyArray<readonly [string, string]>;

const RESPONSE_FIELDS: Fields = [
  [':status', '200'],
  ['content-type', 'application/grpc'],
];
/** The header blocks of every successful call, encoded once (they change no HPACK table). */
const RESPONSE_HEADERS = encodeHeaderBlock(RESPONSE_FIELDS);
const OK_TRAILERS = encodeHeaderBlock([['grpc-status', '0']]);
const TRAILERS_ONLY_OK = encodeHeaderBlock([...RESPONSE_FIELDS, ['grpc-status', '0']]);
const FRAME_HEADER_BYTES = 5;
/** The largest header list a client may send (SETTINGS_MAX_HEADER_LIST_SIZE; node:http2's default). */
const MAX_HEADER_LIST_BYTES = 64 * 1024;

export class GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly services = new Set<string>();
  private readonly connections = new Set<H2Connection>();
  private readonly h2Options: H2Options;
  private readonly h2Handler: H2Handler;
  private server: net.Server | undefined;
  /** close() was called: connections that arrive now are turned away. */
  private closing = false;
  readonly maxReceiveMessageBytes: number;
  readonly onHandlerError: (error: unknown, path: string) => void;

  constructor(options: GrpcServerOptions = {}) {
    this.maxReceiveMessageBytes = options.maxReceiveMessageBytes ?? DEFAULT_MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES;
    this.onHandlerError = options.onHandlerError ?? logHandlerError;
    this.h2Options = {
      streamWindowBytes: options.streamWindowBytes ?? 1024 * 1024,
      connectionWindowBytes: options.connectionWindowBytes ?? 16 * 1024 * 1024,
      maxHeaderListBytes: MAX_HEADER_LIST_BYTES,
      maxConcurrentStreams: options.maxConcurrentStreams ?? 10_000,
      maxQueuedBytes: (options.maxQueuedMiB ?? 64) * 1024 * 1024,
    };
    this.h2Handler = {
      onStream: (stream, headers) => this.onStream(stream, headers),
      onConnectionClose: (connection) => this.connections.delete(connection),
      onHandlerError: (error) => this.onHandlerError(error, '(HTTP/2)'),
    };
  }

  /**
   * Serves an HTTP/2 connection, for a listener that routes connections
   * itself (one client port for gRPC and HTTP/1.1); `head`: the bytes
   * already read from it, from the client preface on.
   */
  serveConnection(socket: net.Socket, head: Buffer = Buffer.alloc(0)): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.connections.add(new H2Connection(socket, this.h2Handler, this.h2Options, head));
  }

  /** Serves a unary method. */
  addUnary<Req, Res>(method: MethodDescriptor<Req, Res>, handler: UnaryHandler<Req, Res>): void {
    if (method.responseStream) throw new TypeError(`${method.path} streams its responses: use addServerStream`);
    this.addRoute(method, handler as UnaryHandler<unknown, unknown>, undefined);
  }

  /** Serves a server-streaming method. */
  addServerStream<Req, Res>(method: MethodDescriptor<Req, Res>, handler: ServerStreamHandler<Req, Res>): void {
    this.addRoute(method, undefined, handler as unknown as ServerStreamHandler<unknown, unknown>);
  }

  private addRoute<Req, Res>(
    method: MethodDescriptor<Req, Res>,
    unary: UnaryHandler<unknown, unknown> | undefined,
    stream: ServerStreamHandler<unknown, unknown> | undefined,
  ): void {
    if (this.routes.has(method.path)) throw new TypeError(`${method.path} is already served`);
    const service = /^\/([^/]+)\/[^/]+$/.exec(method.path)?.[1];
    if (service === undefined) throw new TypeError(`${method.path} is not a gRPC path (/package.Service/Method)`);
    this.services.add(service);
    this.routes.set(method.path, {
      path: method.path,
      request: method.request as Codec<unknown>,
      response: method.response as Codec<unknown>,
      unary,
      stream,
    });
  }

  /** Listens on host:port (port 0: any free port) for gRPC alone, and resolves with the address. */
  listen(port: number, host = '127.0.0.1'): Promise<net.AddressInfo> {
    // No Nagle: an answer is one small write (see listen.ts).
    const server = net.createServer({ noDelay: true }, (socket) => this.serveConnection(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server.address() as net.AddressInfo);
      });
    });
  }

  address(): net.AddressInfo | undefined {
    return (this.server?.address() as net.AddressInfo | null | undefined) ?? undefined;
  }

  /**
   * Stops accepting connections, sends GOAWAY on the open ones and lets
   * their calls finish; after `graceMs` the connections that are left are
   * closed hard. Resolves when every connection is closed.
   */
  close(graceMs = 1000): Promise<void> {
    this.closing = true;
    const listening = this.server === undefined ? Promise.resolve() : new Promise<void>((resolve) => this.server!.close(() => resolve()));
    const connections = [...this.connections];
    const closed = connections.map((c) => new Promise<void>((resolve) => c.onceClosed(resolve)));
    for (const c of connections) c.close();
    if (connections.length > 0) {
      setTimeout(() => {
        for (const c of connections) c.destroy();
      }, graceMs).unref();
    }
    return Promise.all([listening, ...closed]).then(() => undefined);
  }

  private onStream(stream: H2Stream, headers: RequestHeaders): void {
    if (headers[':method'] !== 'POST') {
      stream.respond(STATUS_405, true);
      return;
    }
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !/^application\/grpc(?:$|[+;])/.test(contentType)) {
      stream.respond(STATUS_415, true);
      return;
    }
    const path = headers[':path'] as string;
    const route = this.routes.get(path);
    const call = new Call(this, stream, headers, path, route);
    stream.listener = call;
    if (route === undefined) {
      call.fail(GrpcStatus.UNIMPLEMENTED, this.unknownMethod(path));
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      // The gRPC spec: an encoding the server does not support is UNIMPLEMENTED, with the ones it does.
      call.fail(GrpcStatus.UNIMPLEMENTED, `grpc: Decompressor is not installed for grpc-encoding "${String(encoding)}"`, [['grpc-accept-encoding', 'identity']]);
      return;
    }
    const timeout = headers['grpc-timeout'];
    if (timeout !== undefined) {
      const ms = parseGrpcTimeout(String(timeout));
      if (ms === undefined) {
        call.fail(GrpcStatus.INTERNAL, `transport: malformed grpc-timeout: ${String(timeout)}`);
        return;
      }
      call.startDeadline(ms);
    }
  }

  private unknownMethod(path: string): string {
    const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
    if (m === null) return `malformed method name: "${path}"`;
    return this.services.has(m[1]!) ? `unknown method ${m[2]!} for service ${m[1]!}` : `unknown service ${m[1]!}`;
  }

  /** An error thrown by a handler, as the status and message the client sees. */
  statusOf(error: unknown, path: string): [GrpcStatus, string] {
    const status = (error as { grpcStatus?: unknown } | null)?.grpcStatus;
    if (typeof status === 'number' && Number.isInteger(status) && status > 0 && status <= 16) {
      return [status, (error as Error).message];
    }
    this.onHandlerError(error, path);
    return [GrpcStatus.UNKNOWN, 'raftkv: internal server error'];
  }
}

const STATUS_405 = encodeHeaderBlock([[':status', '405']]);
const STATUS_415 = encodeHeaderBlock([[':status', '415']]);

function logHandlerError(error: unknown, path: string): void {
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.stderr.write(`raftkv grpc: ${path} failed: ${text}\n`);
}

function onDeadline(call: Call): void {
  call.deadlinePassed();
}

/** One call: reads its request, runs its handler, answers. */
class Call implements ServerStreamCall<unknown>, H2StreamListener {
  readonly deadline: number = Infinity;
  finished = false;
  private headersSent = false;
  private chunks: Buffer[] = [];
  private bytes = 0;
  private controller: AbortController | undefined;
  private abortReason: GrpcError | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** Resolves a send() waiting for the stream to take more. */
  private onWritable: (() => void) | undefined;

  constructor(
    private readonly server: GrpcServer,
    private readonly stream: H2Stream,
    readonly metadata: http2.IncomingHttpHeaders,
    readonly path: string,
    private readonly route: Route | undefined,
  ) {}

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  startDeadline(ms: number): void {
    (this as { deadline: number }).deadline = performance.now() + ms;
    this.timer = setTimeout(onDeadline, ms, this);
  }

  onData(chunk: Buffer): void {
    if (this.finished) return;
    this.chunks.push(chunk);
    const before = this.bytes;
    this.bytes += chunk.length;
    // Check the declared length as soon as the frame header is in, so an
    // oversized request is refused before it is buffered.
    if (before < FRAME_HEADER_BYTES && this.bytes >= FRAME_HEADER_BYTES) {
      const head = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks);
      if (!this.checkFrameHeader(head, 0)) return;
    }
    // A unary or server-streaming request holds one message; anything beyond
    // its frame and the next frame's header is refused without buffering it.
    if (this.bytes > 2 * FRAME_HEADER_BYTES + this.server.maxReceiveMessageBytes) {
      this.fail(GrpcStatus.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${this.bytes - FRAME_HEADER_BYTES} vs. ${this.server.maxReceiveMessageBytes})`, undefined, true);
    }
  }

  /** Validates a frame header at `at`; answers the call and returns false if it is unacceptable. */
  private checkFrameHeader(buf: Buffer, at: number): boolean {
    const flag = buf[at]!;
    if (flag === 1) {
      // No grpc-encoding (or identity) was declared, so nothing may be compressed (grpc-go's wording).
      this.fail(GrpcStatus.INTERNAL, 'grpc: compressed flag set with identity or empty encoder', undefined, true);
      return false;
    }
    if (flag !== 0) {
      this.fail(GrpcStatus.INTERNAL, `grpc: invalid compressed flag ${flag} in the message frame`, undefined, true);
      return false;
    }
    const length = buf.readUInt32BE(at + 1);
    if (length > this.server.maxReceiveMessageBytes) {
      this.fail(GrpcStatus.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${length} vs. ${this.server.maxReceiveMessageBytes})`, undefined, true);
      return false;
    }
    return true;
  }

  /** The client half-closed: the request is complete. */
  onEnd(): void {
    if (this.finished) return;
    const route = this.route!;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
    this.chunks = [];
    if (body.length === 0) {
      this.fail(GrpcStatus.UNIMPLEMENTED, `grpc: received no request message for method ${route.path}`);
      return;
    }
    if (body.length < FRAME_HEADER_BYTES) {
      this.fail(GrpcStatus.INTERNAL, `grpc: request ended inside a message frame header (${body.length} of 5 bytes)`);
      return;
    }
    const length = body.readUInt32BE(1);
    const end = FRAME_HEADER_BYTES + length;
    if (body.length < end) {
      this.fail(GrpcStatus.INTERNAL, `grpc: request ended inside a message (${body.length - FRAME_HEADER_BYTES} of ${length} bytes)`);
      return;
    }
    if (body.length > end) {
      this.fail(GrpcStatus.UNIMPLEMENTED, `grpc: received a second request message for method ${route.path}`);
      return;
    }
    let request: unknown;
    try {
      request = route.request.decode(body.subarray(FRAME_HEADER_BYTES));
    } catch (e) {
      // Anything but ProtoDecodeError is a decoder bug: logged, never a crash of the server.
      if (!(e instanceof ProtoDecodeError)) this.server.onHandlerError(e, this.path);
      this.fail(GrpcStatus.INTERNAL, `grpc: error unmarshalling request: ${e instanceof ProtoDecodeError ? e.message : 'internal error'}`);
      return;
    }
    if (route.unary !== undefined) void this.runUnary(route.unary, request);
    else void this.runStream(route.stream!, request);
  }

  private async runUnary(handler: UnaryHandler<unknown, unknown>, request: unknown): Promise<void> {
    let response: unknown;
    try {
      response = await handler(request, this);
    } catch (e) {
      this.failWith(e);
      return;
    }
    if (this.finished) return;
    let frame: Buffer;
    try {
      frame = this.frame(response);
    } catch (e) {
      this.failWith(e);
      return;
    }
    this.finish();
    const stream = this.stream;
    // A stream already closed (the connection broke) ignores these: nobody to answer.
    stream.respond(RESPONSE_HEADERS);
    stream.write(frame);
    stream.end(OK_TRAILERS);
  }

  private async runStream(handler: ServerStreamHandler<unknown, unknown>, request: unknown): Promise<void> {
    try {
      await handler(request, this);
    } catch (e) {
      this.failWith(e);
      return;
    }
    if (this.finished) return;
    this.finish();
    if (this.headersSent) this.stream.end(OK_TRAILERS);
    else this.stream.respond(TRAILERS_ONLY_OK, true);
  }

  send(response: unknown): Promise<void> {
    if (this.finished) return Promise.reject(this.abortReason ?? new GrpcError(GrpcStatus.CANCELLED, 'grpc: the call is over'));
    const frame = this.frame(response);
    const stream = this.stream;
    if (!this.headersSent) {
      this.headersSent = true;
      stream.respond(RESPONSE_HEADERS);
    }
    if (stream.write(frame)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.onWritable = () => {
        this.onWritable = undefined;
        if (this.finished && this.abortReason !== undefined) reject(this.abortReason);
        else resolve();
      };
    });
  }

  onDrain(): void {
    this.onWritable?.();
  }

  /** A response message framed for the wire: the 5-byte header is written into the encoder's headroom. */
  private frame(response: unknown): Buffer {
    const buf = this.route!.response.encode(response, FRAME_HEADER_BYTES);
    buf[0] = 0;
    buf.writeUInt32BE(buf.length - FRAME_HEADER_BYTES, 1);
    return buf;
  }

  private failWith(error: unknown): void {
    if (this.finished) return;
    const [status, message] = this.server.statusOf(error, this.path);
    this.fail(status, message);
  }

  /**
   * Ends the call with an error status; a no-op once the call is over.
   * `stopUpload`: the request is refused while the client may still be
   * sending it (too large, a bad frame): reset the stream so it stops.
   */
  fail(status: GrpcStatus, message: string, extra?: Fields, stopUpload = false): void {
    if (this.finished) return;
    this.finish();
    this.chunks = [];
    const trailers: Fields = [['grpc-status', String(status)], ['grpc-message', encodeGrpcMessage(message)], ...(extra ?? [])];
    if (this.headersSent) this.stream.end(encodeHeaderBlock(trailers));
    else this.stream.respond(encodeHeaderBlock([...RESPONSE_FIELDS, ...trailers]), true);
    // After our END_STREAM, RST_STREAM(NO_ERROR) tells a client that is
    // still sending to stop (RFC 9113 §8.1); otherwise the rest of the
    // request is read and dropped.
    if (stopUpload && !this.stream.remoteEnded) this.stream.reset(H2Code.NO_ERROR);
  }

  private finish(): void {
    this.finished = true;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  deadlinePassed(): void {
    this.timer = undefined;
    if (this.finished) return;
    this.abort(new GrpcError(GrpcStatus.DEADLINE_EXCEEDED, 'context deadline exceeded'));
    this.fail(GrpcStatus.DEADLINE_EXCEEDED, 'context deadline exceeded');
  }

  /** The stream is gone: if the call was not answered, the client cancelled it or the connection broke. */
  onClose(): void {
    if (!this.finished) {
      this.finish();
      this.chunks = [];
      this.abort(new GrpcError(GrpcStatus.CANCELLED, 'context canceled'));
    }
    this.onWritable?.();
  }

  private abort(reason: GrpcError): void {
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}

// ---------------------------------------------------------------------------
// Wire helpers, shared with src/client.

/**
 * grpc-timeout ("1S", "250m", at most 8 digits and a unit H M S m u n) in
 * milliseconds; undefined if malformed.
 */
export function parseGrpcTimeout(v: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (m === null) return undefined;
  const n = Number(m[1]);
  switch (m[2]) {
    case 'H':
      return n * 3_600_000;
    case 'M':
      return n * 60_000;
    case 'S':
      return n * 1000;
    case 'm':
      return n;
    case 'u':
      return n / 1000;
    default:
      return n / 1_000_000;
  }
}

/** A timeout in milliseconds as grpc-timeout, in the finest unit that fits 8 digits. */
export function formatGrpcTimeout(ms: number): string {
  const t = Math.max(0, Math.ceil(ms));
  if (t < 1e8) return `${t}m`;
  if (t / 1000 < 1e8) return `${Math.ceil(t / 1000)}S`;
  return `${Math.min(99_999_999, Math.ceil(t / 60_000))}M`;
}

/** Percent-encodes a status message: bytes outside 0x20-0x7E and "%" itself become %XX of their UTF-8. */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Decodes a percent-encoded grpc-message; a malformed escape is kept as it is, as the spec asks. */
export function decodeGrpcMessage(v: string): string {
  if (!v.includes('%')) return v;
  const bytes: number[] = [];
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 0x25 && i + 2 < v.length && /^[0-9A-Fa-f]{2}$/.test(v.slice(i + 1, i + 3))) {
      bytes.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(c & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * The exactly-once session of a request (src/client sends it with every
 * mutating request), or undefined when the request has none (etcdctl, other
 * etcd clients). Malformed session metadata is INVALID_ARGUMENT.
 */
export function sessionMetadata(call: ServerCall): SessionMetadata | undefined {
  const id = single(call.metadata[CLIENT_ID_HEADER]);
  if (id === undefined) return undefined;
  if (!/^[0-9a-f]{16}$/.test(id)) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `raftkv: ${CLIENT_ID_HEADER} must be 16 lowercase hex digits, got "${id}"`);
  const seq = counter(call, SEQ_HEADER);
  const ack = counter(call, ACK_HEADER);
  if (seq < 1) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `raftkv: ${SEQ_HEADER} must be at least 1`);
  if (ack > seq) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `raftkv: ${ACK_HEADER} ${ack} is above ${SEQ_HEADER} ${seq}, which is not acknowledged yet`);
  return { clientId: BigInt(`0x${id}`), seq, ack };
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function counter(call: ServerCall, name: string): number {
  const v = single(call.metadata[name]);
  if (v === undefined) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `raftkv: ${name} is missing (${CLIENT_ID_HEADER} was given)`);
  const n = /^\d{1,15}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `raftkv: ${name} must be a decimal integer, got "${v}"`);
  return n;
}

// ---------------------------------------------------------------------------
// etcd's services

/** What serves etcd's v3 methods (the node runtime supplies these; tests supply fakes). */
export interface EtcdHandlers {
  range: UnaryHandler<kv.RangeRequest, kv.RangeResponse>;
  put: UnaryHandler<kv.PutRequest, kv.PutResponse>;
  deleteRange: UnaryHandler<kv.DeleteRangeRequest, kv.DeleteRangeResponse>;
  txn: UnaryHandler<kv.TxnRequest, kv.TxnResponse>;
  compact: UnaryHandler<kv.CompactionRequest, kv.CompactionResponse>;
  status: UnaryHandler<StatusRequest, kv.StatusResponse>;
  alarm: UnaryHandler<kv.AlarmRequest, kv.AlarmResponse>;
  hashKV: UnaryHandler<HashKVRequest, HashKVResponse>;
  moveLeader: UnaryHandler<MoveLeaderRequest, { header: kv.ResponseHeader }>;
  memberList: UnaryHandler<MemberListRequest, kv.MemberListResponse>;
  increment: UnaryHandler<kv.IncrementRequest, kv.IncrementResponse>;
  /** grpc.health.v1.Health/Check; default: SERVING. */
  healthCheck?: UnaryHandler<HealthCheckRequest, HealthCheckResponse>;
}

/** Serves etcd's KV, Maintenance (Status, Alarm, HashKV, MoveLeader) and Cluster (MemberList) methods, KVExt and the health check. */
export function addEtcdServices(server: GrpcServer, h: EtcdHandlers): void {
  server.addUnary(methods.range, h.range);
  server.addUnary(methods.put, h.put);
  server.addUnary(methods.deleteRange, h.deleteRange);
  server.addUnary(methods.txn, h.txn);
  server.addUnary(methods.compact, h.compact);
  server.addUnary(methods.status, h.status);
  server.addUnary(methods.alarm, h.alarm);
  server.addUnary(methods.hashKV, h.hashKV);
  server.addUnary(methods.moveLeader, h.moveLeader);
  server.addUnary(methods.memberList, h.memberList);
  server.addUnary(methods.increment, h.increment);
  server.addUnary(methods.healthCheck, h.healthCheck ?? (() => ({ status: ServingStatus.SERVING })));
}
