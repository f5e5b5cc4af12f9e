// One port, two protocols, as etcd's client URL serves both gRPC (HTTP/2)
// and plain HTTP/1.1 (/metrics, /health, /ui) through cmux: each accepted
// connection is routed by its first bytes. An HTTP/2 client opens with the
// fixed connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113
// §3.4); anything else is handed to the HTTP/1.1 server.

import * as http from 'node:http';
import type * as http2 from 'node:http2';
import * as net from 'node:net';
import { Duplex } from 'node:stream';

import { EMPTY_SETTINGS_FRAME, RequestStreamFilter } from './authorityRepair.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface ClientListener {
  readonly url: URL;
  /** The port actually bound (useful when the URL asked for port 0). */
  readonly port: number;
  /** Connections accepted so far, by how they were served. */
  readonly connections: ConnectionCounts;
  close(): Promise<void>;
}

export interface ConnectionCounts {
  http1: number;
  http2: number;
  /** HTTP/2 connections served through the authority filter (authorityRepair.ts). */
  http2Filtered: number;
}

/**
 * Listens on `url`'s host and port; HTTP/2 connections go to `h2`, HTTP/1.x
 * ones to `h1`. The servers are used for their protocol handling only: they
 * never listen themselves.
 */
export async function listenClient(url: URL, h2: http2.Http2Server, h1: http.Server): Promise<ClientListener> {
  const sockets = new Set<net.Socket>();
  const connections: ConnectionCounts = { http1: 0, http2: 0, http2Filtered: 0 };
  // No Nagle: a response is one small write, and holding it back until the
  // previous one is acknowledged (with the peer's delayed ACK, up to 40 ms)
  // stalls every call behind it. Go's net package, and so etcd, sets
  // TCP_NODELAY on every connection.
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    route(socket, h2, h1, connections);
  });
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(url.port), host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url,
    port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Reads until the first bytes decide the protocol, puts them back and hands the socket over. */
function route(socket: net.Socket, h2: http2.Http2Server, h1: http.Server, connections: ConnectionCounts): void {
  let head: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, PREFACE.length);
    const isH2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (isH2 && head.length < PREFACE.length) return; // not decided yet
    socket.off('data', onData);
    socket.off('error', onError);
    if (isH2) {
      connections.http2++;
      routeHttp2(socket, head.subarray(PREFACE.length), h2, () => connections.http2Filtered++);
      return;
    }
    connections.http1++;
    // http reads through the JS stream, which must flow again.
    socket.pause();
    socket.unshift(head);
    h1.emit('connection', socket);
    socket.resume();
  };
  const onError = (): void => {
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('error', onError);
}

/** How long an HTTP/2 connection may stay without a first request before it is served through the filter. */
const FIRST_REQUEST_WAIT_MS = 2000;
/** Bytes an HTTP/2 connection may send before its first request is complete, past which it is served through the filter. */
const FIRST_REQUEST_MAX_BYTES = 1024 * 1024;

/**
 * An HTTP/2 connection after its preface: its first request decides whether
 * Node's server gets the socket itself or the filtered stream
 * (authorityRepair.ts says why).
 */
function routeHttp2(socket: net.Socket, afterPreface: Buffer, h2: http2.Http2Server, onFiltered: () => void): void {
  const filter = new RequestStreamFilter();
  const forward: Buffer[] = [PREFACE];
  let forwardBytes = 0;
  const handOver = (filtered: boolean): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('close', onClose);
    if (filtered) {
      onFiltered();
      h2.emit('connection', new FilteredSocket(socket, filter, forward));
      return;
    }
    // Node's HTTP/2 session takes the buffered bytes first, then reads the
    // handle natively (resuming the JS stream would steal data from it).
    socket.pause();
    socket.unshift(Buffer.concat([...forward, ...filter.takeUnprocessed()]));
    h2.emit('connection', socket);
  };
  const onData = (chunk: Buffer): void => {
    for (const b of filter.push(chunk)) {
      forward.push(b);
      forwardBytes += b.length;
    }
    if (filter.repairs > 0 || forwardBytes > FIRST_REQUEST_MAX_BYTES) handOver(true);
    else if (filter.blocks > 0 && filter.settingsAckDropped) handOver(false);
  };
  const onError = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  const onClose = (): void => clearTimeout(timer);
  const timer = setTimeout(() => handOver(true), FIRST_REQUEST_WAIT_MS);
  timer.unref();
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
  socket.write(EMPTY_SETTINGS_FRAME);
  if (afterPreface.length > 0) onData(afterPreface);
}

/**
 * A connection's client bytes through a RequestStreamFilter, as the Duplex
 * Node's HTTP/2 server reads and writes; what the server writes goes to the
 * socket unchanged.
 */
class FilteredSocket extends Duplex {
  constructor(
    private readonly socket: net.Socket,
    filter: RequestStreamFilter,
    forwarded: Buffer[],
  ) {
    super();
    for (const b of forwarded) this.push(b);
    socket.on('data', (chunk: Buffer) => {
      for (const b of filter.push(chunk)) if (!this.push(b)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (e) => this.destroy(e));
    socket.on('close', () => this.destroy());
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}

/** An HTTP/1.1 server that answers only the routes given, 404 otherwise. */
export function httpRoutes(routes: Record<string, (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>>): http.Server {
  return http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const handler = routes[path] ?? Object.entries(routes).find(([p]) => p.endsWith('/') && path.startsWith(p))?.[1];
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`404 page not found: ${path}\n`);
      return;
    }
    Promise.resolve(handler(req, res)).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    });
  });
}
