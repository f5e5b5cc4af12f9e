// One gRPC connection to one endpoint, on raftkv's own HTTP/2
// (src/server/h2.ts, the client side): unary calls with raftkv's codecs
// (src/server/etcdpb.ts) and the framing of
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md. Failover
// between endpoints is the client's (client.ts); this layer only says, when
// a call fails, whether the request may have reached a handler.

import * as net from 'node:net';

import type { MethodDescriptor } from '../server/etcdpb.js';
import { decodeGrpcMessage, formatGrpcTimeout } from '../server/grpc.js';
import { H2Code, H2Connection, type H2Options, type H2Stream, type H2StreamListener, type RequestHeaders } from '../server/h2.js';
import { encodeHeaderBlock } from '../server/hpack.js';
import { ProtoDecodeError } from '../server/proto.js';
import { GrpcStatus } from '../server/types.js';
import { GrpcStatusError } from './errors.js';

const FRAME_HEADER_BYTES = 5;

/** gRPC metadata sent with a call: lower-case names, ASCII values. */
export type Metadata = Readonly<Record<string, string>>;

export interface ChannelOptions {
  /** How long to wait for the connection and the server's HTTP/2 SETTINGS before giving up on the endpoint. */
  readonly connectTimeoutMs: number;
}

/**
 * Windows of 1 MiB per stream and 16 MiB per connection, so a large answer
 * does not wait on round trips of WINDOW_UPDATE; answers' header blocks up
 * to 1 MiB (a long error message).
 */
const CLIENT_H2_OPTIONS: H2Options = {
  streamWindowBytes: 1024 * 1024,
  connectionWindowBytes: 16 * 1024 * 1024,
  maxHeaderListBytes: 1024 * 1024,
  maxConcurrentStreams: 0, // a server opens no streams
  maxQueuedBytes: 64 * 1024 * 1024,
};

/** The HTTP status of a response that is not gRPC, mapped as the gRPC spec maps it. */
function statusFromHttp(code: number): GrpcStatus {
  switch (code) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** One HTTP/2 connection and what is known of it. */
class Connection {
  /** Why it failed, for the error of the calls it took down. */
  failure: string | undefined;
  readonly h2: H2Connection;
  private readonly timer: NodeJS.Timeout;

  constructor(host: string, port: number, connectTimeoutMs: number, onGone: (c: Connection) => void) {
    // Small requests go out at once, not after the previous one's ACK (Nagle), as Go's clients do.
    const socket = net.connect({ host, port, noDelay: true });
    socket.on('error', (e: Error) => {
      this.failure ??= e.message;
    });
    this.timer = setTimeout(() => {
      this.failure ??= `no connection within ${connectTimeoutMs} ms`;
      this.h2.destroy();
    }, connectTimeoutMs);
    this.h2 = new H2Connection(
      socket,
      {
        // The TCP connection is not enough: the server has answered in HTTP/2 once its SETTINGS arrive.
        onEstablished: () => clearTimeout(this.timer),
        // After GOAWAY (the server is shutting down) new calls go to a new connection.
        onGoAway: (_last, code) => {
          if (code !== H2Code.NO_ERROR) this.failure ??= `the server ended the connection (HTTP/2 error ${code})`;
          onGone(this);
        },
        onConnectionError: (_code, message) => {
          this.failure ??= message;
        },
        onConnectionClose: () => {
          clearTimeout(this.timer);
          this.failure ??= 'connection closed';
          onGone(this);
        },
        onHandlerError: (e) => {
          this.failure ??= e instanceof Error ? e.message : String(e);
        },
      },
      CLIENT_H2_OPTIONS,
      Buffer.alloc(0),
      'client',
    );
  }
}

export class Channel {
  private connection: Connection | undefined;
  private readonly host: string;
  private readonly port: number;
  /** The header fields every call starts with, encoded once: pseudo-headers, then the fixed regular ones. */
  private readonly pseudoPrefix: Buffer;
  private readonly paths = new Map<string, Buffer>();

  constructor(
    /** "http://host:port" */
    readonly url: string,
    private readonly options: ChannelOptions,
  ) {
    const u = new URL(url);
    this.host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(u.port || 80);
    this.pseudoPrefix = encodeHeaderBlock([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':authority', u.host],
    ]);
  }

  private connect(): Connection {
    const existing = this.connection;
    if (existing !== undefined && existing.h2.acceptsRequests) return existing;
    const connection = new Connection(this.host, this.port, this.options.connectTimeoutMs, (c) => {
      if (this.connection === c) this.connection = undefined;
    });
    this.connection = connection;
    return connection;
  }

  /** A request's header block: the fixed prefix, its path, then regular fields. */
  private requestHeaders(path: string, timeoutMs: number, metadata: Metadata | undefined): Buffer {
    let pathBlock = this.paths.get(path);
    if (pathBlock === undefined) {
      pathBlock = encodeHeaderBlock([[':path', path]]);
      this.paths.set(path, pathBlock);
    }
    const fields: [string, string][] = [['grpc-timeout', formatGrpcTimeout(timeoutMs)]];
    if (metadata !== undefined) for (const name in metadata) fields.push([name, metadata[name]!]);
    return Buffer.concat([this.pseudoPrefix, pathBlock, FIXED_FIELDS, encodeHeaderBlock(fields)]);
  }

  /**
   * One unary call. Rejects with GrpcStatusError: the server's status, or
   * UNAVAILABLE when the connection failed (requestMayHaveRun false when it
   * surely did not reach the server: no connection, a refused stream, or
   * one above the last stream of the server's GOAWAY), or DEADLINE_EXCEEDED
   * when `timeoutMs` passed.
   */
  unary<Req, Res>(method: MethodDescriptor<Req, Res>, request: Req, metadata: Metadata | undefined, timeoutMs: number): Promise<Res> {
    const body = method.request.encode(request, FRAME_HEADER_BYTES);
    body[0] = 0;
    body.writeUInt32BE(body.length - FRAME_HEADER_BYTES, 1);
    return new Promise<Res>((resolve, reject) => {
      let connection: Connection;
      try {
        connection = this.connect();
      } catch (e) {
        reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to ${this.url} failed: ${(e as Error).message}`, this.url, false));
        return;
      }
      const stream = connection.h2.request(this.requestHeaders(method.path, timeoutMs, metadata));
      if (stream === undefined) {
        reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to ${this.url} failed: ${connection.failure ?? 'closing'}`, this.url, false));
        return;
      }
      const call = new UnaryCall(this.url, connection, stream, method, resolve, reject);
      stream.listener = call;
      call.startTimer(timeoutMs);
      stream.write(body, true);
    });
  }

  close(): void {
    this.connection?.h2.close();
    this.connection = undefined;
  }
}

/** Regular fields of every call (after the pseudo-headers and the path). */
const FIXED_FIELDS = encodeHeaderBlock([
  ['content-type', 'application/grpc'],
  ['te', 'trailers'],
  ['user-agent', 'raftkv-client'],
]);

/** The response side of one unary call. */
class UnaryCall<Res> implements H2StreamListener {
  private readonly chunks: Buffer[] = [];
  private httpStatus = 0;
  private grpcStatus: string | undefined;
  private grpcMessage: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;

  constructor(
    private readonly url: string,
    private readonly connection: Connection,
    private readonly stream: H2Stream,
    private readonly method: MethodDescriptor<unknown, Res>,
    private readonly resolve: (res: Res) => void,
    private readonly reject: (e: GrpcStatusError) => void,
  ) {}

  startTimer(timeoutMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fail(new GrpcStatusError(GrpcStatus.DEADLINE_EXCEEDED, 'context deadline exceeded', this.url));
      this.stream.reset(H2Code.CANCEL);
    }, timeoutMs);
  }

  onHeaders(headers: RequestHeaders, endStream: boolean): void {
    if (this.httpStatus === 0) {
      this.httpStatus = Number(headers[':status']);
      // Trailers-Only: the status comes with the headers.
      if (headers['grpc-status'] === undefined) return;
    } else if (!endStream) {
      return;
    }
    this.grpcStatus = String(headers['grpc-status']);
    const message = headers['grpc-message'];
    this.grpcMessage = message === undefined ? undefined : String(message);
  }

  onData(chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onEnd(): void {}

  onDrain(): void {}

  onClose(): void {
    if (this.settled) return;
    const stream = this.stream;
    if (this.grpcStatus === undefined) {
      if (this.httpStatus !== 0 && this.httpStatus !== 200) {
        this.fail(new GrpcStatusError(statusFromHttp(this.httpStatus), `unexpected HTTP status ${this.httpStatus} from ${this.url}`, this.url));
        return;
      }
      // No status: the stream was reset or the connection went away.
      const refused = stream.refused || !this.connection.h2.established;
      const why = stream.resetCode !== undefined ? `stream reset with code ${stream.resetCode}` : (this.connection.failure ?? 'stream closed without a status');
      this.fail(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to ${this.url} failed: ${why}`, this.url, !refused));
      return;
    }
    const status = Number(this.grpcStatus);
    if (status !== GrpcStatus.OK) {
      this.fail(new GrpcStatusError(status, decodeGrpcMessage(this.grpcMessage ?? ''), this.url));
      return;
    }
    let response: Res;
    try {
      response = this.method.response.decode(unframe(this.chunks));
    } catch (e) {
      const why = e instanceof ProtoDecodeError || e instanceof FrameError ? e.message : String(e);
      this.fail(new GrpcStatusError(GrpcStatus.INTERNAL, `malformed response from ${this.url}: ${why}`, this.url));
      return;
    }
    this.settle();
    this.resolve(response);
  }

  private fail(e: GrpcStatusError): void {
    if (this.settled) return;
    this.settle();
    this.reject(e);
  }

  private settle(): void {
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}

class FrameError extends Error {}

/** The one message of a unary response. */
function unframe(chunks: Buffer[]): Buffer {
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (body.length < FRAME_HEADER_BYTES) throw new FrameError(`response of ${body.length} bytes has no message frame`);
  if (body[0] !== 0) throw new FrameError(`compressed flag ${body[0]} set (no compression was negotiated)`);
  const length = body.readUInt32BE(1);
  if (body.length !== FRAME_HEADER_BYTES + length) {
    throw new FrameError(`message frame declares ${length} bytes, response holds ${body.length - FRAME_HEADER_BYTES}`);
  }
  return body.subarray(FRAME_HEADER_BYTES);
}
