// One gRPC connection to one endpoint, on node:http2: unary calls with
// raftkv's codecs (src/server/etcdpb.ts) and the framing of
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md. Failover
// between endpoints is the client's (client.ts); this layer only says, when
// a call fails, whether the request may have reached a handler.

import http2 from 'node:http2';
import * as net from 'node:net';

import type { MethodDescriptor } from '../server/etcdpb.js';
import { decodeGrpcMessage, formatGrpcTimeout } from '../server/grpc.js';
import { ProtoDecodeError } from '../server/proto.js';
import { GrpcStatus } from '../server/types.js';
import { GrpcStatusError } from './errors.js';

const FRAME_HEADER_BYTES = 5;
const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;
/** How long a cancelled stream may take to close before it is destroyed (see unary). */
const CANCEL_GRACE_MS = 1000;

export interface ChannelOptions {
  /** How long to wait for the connection and the server's HTTP/2 SETTINGS before giving up on the endpoint. */
  readonly connectTimeoutMs: number;
}

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

/** Sessions that completed the HTTP/2 handshake: only their calls can have reached the server. */
const established = new WeakSet<http2.ClientHttp2Session>();
/** Why a session failed, for the error of the calls it took down. */
const sessionErrors = new WeakMap<http2.ClientHttp2Session, Error>();

export class Channel {
  private session: http2.ClientHttp2Session | undefined;

  constructor(
    /** "http://host:port" */
    readonly url: string,
    private readonly options: ChannelOptions,
  ) {}

  private connect(): http2.ClientHttp2Session {
    const existing = this.session;
    if (existing !== undefined && !existing.closed && !existing.destroyed) return existing;
    const session = http2.connect(this.url, {
      settings: { initialWindowSize: 1024 * 1024 },
      // Small requests go out at once, not after the previous one's ACK (Nagle), as Go's clients do.
      createConnection: (url: URL) => net.connect({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port), noDelay: true }),
    });
    this.session = session;
    const timer = setTimeout(() => {
      sessionErrors.set(session, new Error(`no connection within ${this.options.connectTimeoutMs} ms`));
      session.destroy();
    }, this.options.connectTimeoutMs);
    session.once('connect', () => session.setLocalWindowSize(16 * 1024 * 1024));
    // 'connect' is only TCP: the server has answered in HTTP/2 once its SETTINGS arrive.
    session.once('remoteSettings', () => {
      established.add(session);
      clearTimeout(timer);
    });
    session.on('error', (err: Error) => {
      if (!sessionErrors.has(session)) sessionErrors.set(session, err);
    });
    // After GOAWAY (the server is shutting down) new calls go to a new connection.
    session.on('goaway', () => {
      if (this.session === session) this.session = undefined;
    });
    session.once('close', () => {
      clearTimeout(timer);
      if (this.session === session) this.session = undefined;
    });
    return session;
  }

  /**
   * One unary call. Rejects with GrpcStatusError: the server's status, or
   * UNAVAILABLE when the connection failed (requestMayHaveRun false when it
   * surely did not reach the server: no connection, or a refused stream),
   * or DEADLINE_EXCEEDED when `timeoutMs` passed.
   */
  unary<Req, Res>(method: MethodDescriptor<Req, Res>, request: Req, metadata: http2.OutgoingHttpHeaders | undefined, timeoutMs: number): Promise<Res> {
    const body = method.request.encode(request, FRAME_HEADER_BYTES);
    body[0] = 0;
    body.writeUInt32BE(body.length - FRAME_HEADER_BYTES, 1);
    return new Promise<Res>((resolve, reject) => {
      let session: http2.ClientHttp2Session;
      try {
        session = this.connect();
      } catch (e) {
        reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to ${this.url} failed: ${(e as Error).message}`, this.url, false));
        return;
      }
      const headers: http2.OutgoingHttpHeaders = {
        ':method': 'POST',
        ':path': method.path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'user-agent': 'raftkv-client',
        'grpc-timeout': formatGrpcTimeout(timeoutMs),
        ...metadata,
      };
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headers);
      } catch (e) {
        reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to ${this.url} failed: ${(e as Error).message}`, this.url, false));
        return;
      }
      const chunks: Buffer[] = [];
      let httpStatus = 0;
      let grpcStatus: string | undefined;
      let grpcMessage: string | undefined;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(new GrpcStatusError(GrpcStatus.DEADLINE_EXCEEDED, 'context deadline exceeded', this.url));
        stream.close(NGHTTP2_CANCEL);
        // close() ends the stream only once its RST_STREAM frame is written,
        // and to a peer that stopped reading (a frozen process whose socket
        // buffers are full) it never is: the stream would stay open for ever.
        setTimeout(() => stream.destroy(), CANCEL_GRACE_MS).unref();
      }, timeoutMs);
      stream.on('response', (h) => {
        httpStatus = Number(h[':status']);
        // Trailers-Only: the status comes with the headers.
        if (h['grpc-status'] !== undefined) {
          grpcStatus = String(h['grpc-status']);
          grpcMessage = h['grpc-message'] === undefined ? undefined : String(h['grpc-message']);
        }
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('trailers', (t) => {
        grpcStatus = String(t['grpc-status']);
        grpcMessage = t['grpc-message'] === undefined ? undefined : String(t['grpc-message']);
      });
      stream.on('error', () => {
        // Reported from 'close' with the stream's reset code.
      });
      stream.on('close', () => {
        clearTimeout(timer);
        if (timedOut) return; // rejected at the deadline
        if (grpcStatus === undefined) {
          if (httpStatus !== 0 && httpStatus !== 200) {
            reject(new GrpcStatusError(statusFromHttp(httpStatus), `unexpected HTTP status ${httpStatus} from ${this.url}`, this.url));
            return;
          }
          // No status: the stream was reset or the connection went away.
          const refused = stream.rstCode === NGHTTP2_REFUSED_STREAM || !established.has(session);
          const why = sessionErrors.get(session)?.message ?? `stream reset with code ${stream.rstCode ?? 'unknown'}`;
          reject(new GrpcStatusError(GrpcStatus.UNAVAILABLE, `connection to ${this.url} failed: ${why}`, this.url, !refused));
          return;
        }
        const status = Number(grpcStatus);
        if (status !== GrpcStatus.OK) {
          reject(new GrpcStatusError(status, decodeGrpcMessage(grpcMessage ?? ''), this.url));
          return;
        }
        try {
          resolve(method.response.decode(unframe(chunks)));
        } catch (e) {
          const why = e instanceof ProtoDecodeError || e instanceof FrameError ? e.message : String(e);
          reject(new GrpcStatusError(GrpcStatus.INTERNAL, `malformed response from ${this.url}: ${why}`, this.url));
        }
      });
      stream.end(body);
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
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
