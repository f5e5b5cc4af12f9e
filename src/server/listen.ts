// One port, two protocols, as etcd's client URL serves both gRPC (HTTP/2)
// and plain HTTP/1.1 (/metrics, /health, /ui) through cmux: each accepted
// connection is routed by its first bytes. An HTTP/2 client opens with the
// fixed connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113
// §3.4); anything else is handed to the HTTP/1.1 server.

import * as http from 'node:http';
import * as net from 'node:net';

import { CLIENT_PREFACE as PREFACE } from './h2.js';

/** Takes an HTTP/2 connection, given the bytes already read from it (the preface on). */
export type Http2ConnectionHandler = (socket: net.Socket, head: Buffer) => void;

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
}

/**
 * Listens on `url`'s host and port; HTTP/2 connections go to `h2`, HTTP/1.x
 * ones to `h1`, which is used for its protocol handling only: it never
 * listens itself.
 */
export async function listenClient(url: URL, h2: Http2ConnectionHandler, h1: http.Server): Promise<ClientListener> {
  const sockets = new Set<net.Socket>();
  const connections: ConnectionCounts = { http1: 0, http2: 0 };
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
function route(socket: net.Socket, h2: Http2ConnectionHandler, h1: http.Server, connections: ConnectionCounts): void {
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
      h2(socket, head);
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
