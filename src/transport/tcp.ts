// TcpTransport: Raft messages between members over TCP, in the shape of
// etcd's rafthttp (server/etcdserver/api/rafthttp) without HTTP:
//
// - One long-lived outbound "stream" connection per peer carries every
//   message but snapshots (etcd's stream.go), dialed on first use and
//   redialed with jittered exponential backoff when lost. Each side dials
//   the other, so a pair of members has two streams, one per direction.
// - A snapshot goes on a short-lived connection of its own, in chunks with
//   flow control, so that a large one never delays heartbeats (etcd's
//   snapshot_sender.go posts it on a separate HTTP request).
// - Every connection starts with a handshake naming the cluster, the sender
//   and the intended receiver; a mismatch is refused with the reason and
//   nothing from that connection is delivered (etcd checks the
//   X-Etcd-Cluster-ID and X-Server-From headers the same way).
// - Sending never blocks: a bounded queue per peer absorbs a socket that is
//   not writable; beyond it, and while a peer is down, messages are dropped
//   and the peer reported unreachable. Raft retransmits, so a drop is safe
//   where blocking the node would not be (etcd's streamBufSize and
//   ReportUnreachable).
//
// The connections live in outbound.ts and inbound.ts, options and limits in
// options.ts, framing and the handshake in frame.ts, the message encoding in
// codec.ts; docs/transport.md describes the protocol.

import * as net from 'node:net';

import type { Message, NodeId } from '../raft/types.js';
import { encodedSize, encodeInto } from './codec.js';
import { TransportConfigError, TransportEncodeError, TransportListenError } from './errors.js';
import { FRAME_HEADER_BYTES, FrameKind, putFrameHeader } from './frame.js';
import { InboundConn } from './inbound.js';
import {
  type Context,
  type PeerAddress,
  type PeerStatus,
  type TcpTransportOptions,
  type TransportLimits,
  type TransportLogger,
  DEFAULT_TRANSPORT_LIMITS,
  SILENT_TRANSPORT_LOGGER,
  checkLimits,
  memberHex,
  parsePeerUrl,
} from './options.js';
import { PeerStream, SnapshotSend } from './outbound.js';
import type { Transport, TransportHandlers } from './types.js';

export {
  type PeerStatus,
  type TcpTransportOptions,
  type TransportLimits,
  type TransportLogger,
  DEFAULT_TRANSPORT_LIMITS,
  SILENT_TRANSPORT_LOGGER,
  memberHex,
  parsePeerUrl,
};

export class TcpTransport implements Transport {
  private readonly selfId: NodeId;
  private readonly clusterId: bigint;
  private readonly listenAddress: PeerAddress | undefined;
  private readonly peers = new Map<NodeId, PeerAddress>();
  private readonly streams = new Map<NodeId, PeerStream>();
  private readonly inbound = new Set<InboundConn>();
  /** The current inbound message stream per peer: a newer one replaces it. */
  private readonly inboundStreams = new Map<NodeId, InboundConn>();
  private readonly snapshots = new Set<SnapshotSend>();
  private readonly sockets = new Set<net.Socket>();
  private readonly limits: TransportLimits;
  private readonly log: TransportLogger;
  private readonly clock: () => number;
  private readonly ctx: Context;
  private handlers: TransportHandlers | undefined;
  private server: net.Server | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly pendingUnreachable = new Set<NodeId>();
  private unreachableScheduled = false;
  private unknownDropLogAt = -Infinity;

  constructor(private readonly options: TcpTransportOptions) {
    if (!Number.isSafeInteger(options.selfId) || options.selfId <= 0) {
      throw new TransportConfigError(`selfId must be a positive integer, got ${options.selfId}`);
    }
    if (typeof options.clusterId !== 'bigint' || options.clusterId < 0n || options.clusterId >= 1n << 64n) {
      throw new TransportConfigError(`clusterId must be a 64-bit unsigned bigint, got ${String(options.clusterId)}`);
    }
    this.selfId = options.selfId;
    this.clusterId = options.clusterId;
    this.limits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };
    checkLimits(this.limits);
    this.log = options.logger ?? SILENT_TRANSPORT_LOGGER;
    this.clock = options.clock ?? (() => performance.now());
    this.listenAddress = options.listen === undefined ? undefined : parsePeerUrl(options.listen);
    for (const [id, url] of options.peers ?? []) this.addPeer(id, url);
    this.ctx = {
      selfId: this.selfId,
      clusterId: this.clusterId,
      limits: this.limits,
      log: this.log,
      random: options.random,
      now: this.clock,
      isPeer: (id) => this.peers.has(id),
      track: (socket) => this.track(socket),
      deliver: (m) => {
        if (!this.closed) this.handlers?.onMessage(m);
      },
      unreachable: (peer) => this.reportUnreachable(peer),
      roundTrip: (peer, ms) => this.options.onRoundTrip?.(peer, ms),
      inboundOpened: (conn) => this.inboundOpened(conn),
      inboundClosed: (conn) => this.inboundClosed(conn),
    };
  }

  /** Starts listening (if a listen URL was given). Handlers are called only after this. */
  async start(handlers: TransportHandlers): Promise<void> {
    if (this.handlers !== undefined) throw new TransportConfigError('transport already started');
    if (this.closed) throw new TransportConfigError('transport is closed');
    this.handlers = handlers;
    const tickMs = Math.max(5, Math.min(250, this.limits.pingIntervalMs / 2, this.limits.handshakeTimeoutMs / 4));
    this.ticker = setInterval(() => this.tick(), tickMs);
    this.ticker.unref();
    const addr = this.listenAddress;
    if (addr === undefined) return;
    // On failure (address in use, ...) the transport stays usable for close().
    const server = net.createServer({ noDelay: true, keepAlive: true }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new TransportListenError(addr.url, err)));
      server.listen({ host: addr.host, port: addr.port }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.log.error({ error: err.message }, 'peer listener error'));
        resolve();
      });
    });
    this.log.info({ url: addr.url, port: this.address()?.port }, 'listening for peers');
  }

  /** The address the listener is bound to (the port chosen when listening on port 0). */
  address(): { host: string; port: number } | undefined {
    const a = this.server?.address();
    return a !== null && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    if (this.handlers === undefined) throw new TransportConfigError('send() before start()');
    // Size (and so validate) every message first: a malformed one throws
    // before anything of the batch goes out.
    const sizes = new Array<number>(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (m.type === 'MsgSnap' && m.snapshot === undefined) throw new TransportEncodeError(`MsgSnap to ${memberHex(m.to)} without a snapshot`);
      sizes[i] = encodedSize(m, m.type !== 'MsgSnap');
    }
    if (messages.length === 1) {
      const m = messages[0]!;
      if (m.type === 'MsgSnap') this.sendSnapshot(m);
      else this.sendBatch(m.to, messages, sizes, [0]);
      return;
    }
    const byPeer = new Map<NodeId, number[]>();
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (m.type === 'MsgSnap') continue;
      const list = byPeer.get(m.to);
      if (list === undefined) byPeer.set(m.to, [i]);
      else list.push(i);
    }
    for (const [to, indexes] of byPeer) this.sendBatch(to, messages, sizes, indexes);
    for (const m of messages) if (m.type === 'MsgSnap') this.sendSnapshot(m);
  }

  addPeer(id: NodeId, url: string): void {
    if (!Number.isSafeInteger(id) || id <= 0) throw new TransportConfigError(`peer id must be a positive integer, got ${id}`);
    const addr = parsePeerUrl(url);
    if (id === this.selfId) return;
    this.peers.set(id, addr);
    this.streams.get(id)?.setAddress(addr);
  }

  removePeer(id: NodeId): void {
    this.peers.delete(id);
    const stream = this.streams.get(id);
    if (stream !== undefined) {
      stream.close();
      this.streams.delete(id);
    }
    for (const conn of this.inbound) if (conn.peer === id) conn.destroy('peer removed');
  }

  /** The last round-trip time measured to `peer` (ms), while its stream is connected. */
  roundTripMs(peer: NodeId): number | undefined {
    return this.streams.get(peer)?.roundTripMs;
  }

  peerStatus(peer: NodeId): PeerStatus | undefined {
    if (!this.peers.has(peer)) return undefined;
    const s = this.streams.get(peer);
    return {
      connected: s?.connected ?? false,
      queuedMessages: s?.queuedMessages ?? 0,
      queuedBytes: s?.queuedBytes ?? 0,
      bufferedBytes: s?.bufferedBytes ?? 0,
      droppedMessages: s?.dropped ?? 0,
      sentMessages: s?.sent ?? 0,
      roundTripMs: s?.roundTripMs,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.pendingUnreachable.clear();
    for (const s of this.streams.values()) s.close();
    this.streams.clear();
    for (const s of this.snapshots) s.abort();
    this.snapshots.clear();
    const server = this.server;
    const serverClosed = server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()));
    const socketsClosed = [...this.sockets].map(
      (s) =>
        new Promise<void>((resolve) => {
          s.once('close', () => resolve());
          s.destroy();
        }),
    );
    await Promise.all([serverClosed, ...socketsClosed]);
  }

  // -------------------------------------------------------------------------

  private sendBatch(to: NodeId, messages: readonly Message[], sizes: readonly number[], indexes: readonly number[]): void {
    const stream = this.streamTo(to);
    if (stream === undefined) {
      const now = this.clock();
      if (now - this.unknownDropLogAt >= this.limits.logIntervalMs) {
        this.unknownDropLogAt = now;
        this.log.warn({ peer: memberHex(to) }, `dropped messages to unknown peer ${memberHex(to)}`);
      }
      this.reportUnreachable(to);
      return;
    }
    let total = 0;
    let count = 0;
    for (const i of indexes) {
      // The peer would close the stream on a frame over its limit, and Raft
      // would resend the same message forever: drop it here instead.
      if (sizes[i]! + 1 > this.limits.maxFrameBytes) {
        this.log.error(
          { peer: memberHex(to), type: messages[i]!.type, bytes: sizes[i] },
          `dropped a ${sizes[i]}-byte ${messages[i]!.type} to peer ${memberHex(to)}: over the ${this.limits.maxFrameBytes}-byte frame limit (lower the Raft max message size)`,
        );
        this.reportUnreachable(to);
        continue;
      }
      total += FRAME_HEADER_BYTES + sizes[i]!;
      count++;
    }
    if (count === 0) return;
    // One allocation and one write for the whole batch.
    const buf = Buffer.allocUnsafe(total);
    let pos = 0;
    for (const i of indexes) {
      if (sizes[i]! + 1 > this.limits.maxFrameBytes) continue;
      pos = putFrameHeader(buf, pos, FrameKind.Message, sizes[i]!);
      pos = encodeInto(messages[i]!, buf, pos);
    }
    if (!stream.offer(buf, count)) this.reportUnreachable(to);
  }

  private streamTo(peer: NodeId): PeerStream | undefined {
    let s = this.streams.get(peer);
    if (s === undefined) {
      const addr = this.peers.get(peer);
      if (addr === undefined) return undefined;
      s = new PeerStream(this.ctx, peer, addr);
      this.streams.set(peer, s);
    }
    return s;
  }

  private sendSnapshot(m: Message): void {
    const to = m.to;
    const addr = this.peers.get(to);
    if (addr === undefined) {
      this.log.warn({ peer: memberHex(to) }, `cannot send snapshot to unknown peer ${memberHex(to)}`);
      queueMicrotask(() => this.snapshotDone(to, false));
      return;
    }
    const send: SnapshotSend = new SnapshotSend(this.ctx, m, addr, (ok) => {
      this.snapshots.delete(send);
      this.snapshotDone(to, ok);
    });
    this.snapshots.add(send);
  }

  /** etcd's snapshotSender reports a failure as both unreachable and SnapshotFailure. */
  private snapshotDone(to: NodeId, ok: boolean): void {
    if (this.closed) return;
    if (!ok) this.handlers?.onUnreachable(to);
    this.handlers?.onSnapshotStatus(to, ok);
  }

  /** Reported on a later microtask, once per peer: never from inside send(). */
  private reportUnreachable(peer: NodeId): void {
    this.pendingUnreachable.add(peer);
    if (this.unreachableScheduled) return;
    this.unreachableScheduled = true;
    queueMicrotask(() => {
      this.unreachableScheduled = false;
      const peers = [...this.pendingUnreachable];
      this.pendingUnreachable.clear();
      if (this.closed) return;
      for (const p of peers) this.handlers?.onUnreachable(p);
    });
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.track(socket);
    this.inbound.add(new InboundConn(this.ctx, socket));
  }

  private inboundOpened(conn: InboundConn): void {
    if (!conn.isStream) return;
    const old = this.inboundStreams.get(conn.peer);
    this.inboundStreams.set(conn.peer, conn);
    // The peer dialed again (it restarted, or lost the old connection before we noticed): the old one is dead.
    old?.destroy('replaced by a newer stream from the same peer');
  }

  private inboundClosed(conn: InboundConn): void {
    this.inbound.delete(conn);
    if (this.inboundStreams.get(conn.peer) === conn) this.inboundStreams.delete(conn.peer);
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private tick(): void {
    const now = this.clock();
    for (const s of this.streams.values()) s.tick(now);
    for (const s of this.snapshots) s.tick(now);
    for (const c of this.inbound) c.tick(now);
  }
}
