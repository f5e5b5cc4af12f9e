// The connections this member dials: the message stream to each peer
// (PeerStream, over OutboundConn) and one-off snapshot transfers
// (SnapshotSend). See tcp.ts for the design and docs/transport.md.

import * as net from 'node:net';

import type { Message, NodeId } from '../raft/types.js';
import { encodedSize, encodeInto } from './codec.js';
import { TransportError, TransportFrameError } from './errors.js';
import {
  type Channel,
  type Refusal,
  FRAME_HEADER_BYTES,
  FrameKind,
  FrameReader,
  HANDSHAKE_MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  decodePing,
  decodeRefuse,
  encodeHello,
  encodePing,
  frameKindName,
  putFrameHeader,
} from './frame.js';
import { type Context, type PeerAddress, memberHex } from './options.js';

/** Outbound streams receive only pongs (and the handshake answer): anything bigger is a protocol error. */
const PONG_MAX_FRAME_BYTES = 64;

// ---------------------------------------------------------------------------
// Dialing: connect, handshake, read frames

interface OutboundEvents {
  accepted(): void;
  frame(kind: number, body: Buffer): void;
  closed(reason: string, refusal: Refusal | undefined): void;
}

/** A connection this member dialed: TCP connect, HELLO, then ACCEPT or REFUSE. */
export class OutboundConn {
  readonly socket: net.Socket;
  private readonly reader = new FrameReader(HANDSHAKE_MAX_FRAME_BYTES);
  accepted = false;
  lastFrameAt: number;
  private readonly deadline: number;
  private reason: string | undefined;
  private refusal: Refusal | undefined;

  constructor(
    private readonly ctx: Context,
    private readonly peer: NodeId,
    addr: PeerAddress,
    channel: Channel,
    private readonly events: OutboundEvents,
  ) {
    this.lastFrameAt = ctx.now();
    this.deadline = this.lastFrameAt + ctx.limits.handshakeTimeoutMs;
    const socket = net.connect({ host: addr.host, port: addr.port, noDelay: true, keepAlive: true });
    this.socket = socket;
    ctx.track(socket);
    socket.on('connect', () => {
      socket.write(encodeHello({ version: PROTOCOL_VERSION, channel, clusterId: ctx.clusterId, from: ctx.selfId, to: peer }));
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.reason ??= err.message;
    });
    socket.on('close', () => {
      this.reader.stop();
      this.events.closed(this.reason ?? 'connection closed by the peer', this.refusal);
    });
  }

  destroy(reason: string): void {
    this.reason ??= reason;
    this.reader.stop();
    this.socket.destroy();
  }

  /** Enforces the handshake deadline. */
  tick(now: number): void {
    if (!this.accepted && now > this.deadline) this.destroy(`no handshake answer within ${this.ctx.limits.handshakeTimeoutMs} ms`);
  }

  private onData(chunk: Buffer): void {
    try {
      this.reader.push(chunk, (kind, body) => this.onFrame(kind, body));
    } catch (e) {
      if (!(e instanceof TransportError)) throw e;
      this.ctx.log.error({ peer: memberHex(this.peer), error: e.message }, `closing connection to peer ${memberHex(this.peer)}: ${e.message}`);
      this.destroy(e.message);
    }
  }

  private onFrame(kind: number, body: Buffer): void {
    this.lastFrameAt = this.ctx.now();
    if (this.accepted) {
      this.events.frame(kind, body);
    } else if (kind === FrameKind.Accept) {
      this.accepted = true;
      this.reader.maxFrameBytes = PONG_MAX_FRAME_BYTES;
      this.events.accepted();
    } else if (kind === FrameKind.Refuse) {
      this.refusal = decodeRefuse(body);
      this.destroy(`refused: ${this.refusal.detail}`);
    } else {
      throw new TransportFrameError(`expected ACCEPT or REFUSE, got ${frameKindName(kind)}`, 0);
    }
  }
}

// ---------------------------------------------------------------------------
// The outbound message stream to one peer

type StreamState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

export class PeerStream {
  private state: StreamState = 'idle';
  private conn: OutboundConn | undefined;
  /** Frames waiting for the connection or for 'drain'; each is one send() call's worth. */
  private queue: Buffer[] = [];
  queuedBytes = 0;
  queuedMessages = 0;
  dropped = 0;
  /** Messages taken for the peer (written or queued) since the stream was created. */
  sent = 0;
  roundTripMs: number | undefined;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** A failure was logged since the last successful connection: log further ones at debug. */
  private failing = false;
  private lastRefusal = '';
  private lastPingAt = 0;
  private droppedUnlogged = 0;
  private lastDropLogAt = -Infinity;

  constructor(
    private readonly ctx: Context,
    readonly peer: NodeId,
    private address: PeerAddress,
  ) {}

  get connected(): boolean {
    return this.state === 'connected';
  }

  get bufferedBytes(): number {
    return this.queuedBytes + (this.conn?.socket.writableLength ?? 0);
  }

  /**
   * Takes one batch of frames (`count` messages). Returns false if they
   * were dropped: the caller reports the peer unreachable.
   */
  offer(buf: Buffer, count: number): boolean {
    if (this.state === 'closed') return false;
    if (this.state === 'backoff') {
      this.drop(count, 'connection down');
      return false;
    }
    if (this.state === 'idle') this.connect();
    const socket = this.conn?.socket;
    if (this.state === 'connected' && socket?.destroyed !== false) {
      // Closed under us; its 'close' event (and the reconnect) is still to come.
      this.drop(count, 'connection down');
      return false;
    }
    if (this.state === 'connected' && this.queue.length === 0 && socket !== undefined && !socket.writableNeedDrain) {
      socket.write(buf);
      this.sent += count;
      return true;
    }
    const l = this.ctx.limits;
    if (this.queuedMessages + count > l.maxQueueMessages || this.queuedBytes + buf.length > l.maxQueueBytes) {
      this.drop(count, 'send queue full');
      return false;
    }
    this.queue.push(buf);
    this.queuedBytes += buf.length;
    this.queuedMessages += count;
    this.sent += count;
    return true;
  }

  /** The peer's URL changed: reconnect to the new one. */
  setAddress(address: PeerAddress): void {
    if (address.url === this.address.url) return;
    this.address = address;
    this.conn?.destroy('peer URL changed');
  }

  tick(now: number): void {
    const conn = this.conn;
    if (conn === undefined) return;
    if (!conn.accepted) {
      conn.tick(now);
      return;
    }
    const l = this.ctx.limits;
    if (now - conn.lastFrameAt > l.idleTimeoutMs) {
      conn.destroy(`nothing received for ${l.idleTimeoutMs} ms`);
    } else if (now - this.lastPingAt >= l.pingIntervalMs) {
      this.ping(now);
    }
  }

  close(): void {
    this.state = 'closed';
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.clearQueue();
    this.conn?.destroy('transport closed');
  }

  private connect(): void {
    this.state = 'connecting';
    const conn: OutboundConn = new OutboundConn(this.ctx, this.peer, this.address, 'stream', {
      accepted: () => this.onConnected(),
      frame: (kind, body) => this.onFrame(kind, body),
      closed: (reason, refusal) => this.onClosed(conn, reason, refusal),
    });
    this.conn = conn;
  }

  private onConnected(): void {
    const socket = this.conn!.socket;
    this.state = 'connected';
    this.attempt = 0;
    this.failing = false;
    this.lastRefusal = '';
    this.ctx.log.info({ peer: memberHex(this.peer), url: this.address.url }, 'peer connected');
    socket.on('drain', () => this.flush());
    this.ping(this.ctx.now());
    this.flush();
  }

  private onFrame(kind: number, body: Buffer): void {
    if (kind !== FrameKind.Pong) throw new TransportFrameError(`unexpected ${frameKindName(kind)} frame on an outbound stream`, 0);
    const rtt = this.ctx.now() - decodePing(body);
    this.roundTripMs = rtt;
    this.ctx.roundTrip(this.peer, rtt);
  }

  private onClosed(conn: OutboundConn, reason: string, refusal: Refusal | undefined): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.roundTripMs = undefined;
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected';
    if (this.queuedMessages > 0) {
      this.dropped += this.queuedMessages;
      this.ctx.unreachable(this.peer);
    }
    this.clearQueue();
    const fields = { peer: memberHex(this.peer), url: this.address.url, reason };
    if (wasConnected) {
      this.ctx.log.warn(fields, 'peer disconnected');
    } else if (refusal !== undefined) {
      // A refusal is a configuration problem: say it once per distinct reason, not every retry.
      const repeated = refusal.detail === this.lastRefusal;
      this.lastRefusal = refusal.detail;
      (repeated ? this.ctx.log.debug : this.ctx.log.warn).call(
        this.ctx.log,
        { ...fields, refusal: refusal.reason },
        `peer ${memberHex(this.peer)} refused our connection: ${refusal.detail}`,
      );
    } else {
      (this.failing ? this.ctx.log.debug : this.ctx.log.warn).call(this.ctx.log, fields, 'cannot connect to peer; retrying with backoff');
    }
    this.failing = true;
    this.scheduleRetry();
  }

  /** Exponential backoff with full jitter: a delay uniform in [0, min(max, base * 2^attempt)]. */
  private scheduleRetry(): void {
    const l = this.ctx.limits;
    const cap = Math.min(l.backoffMaxMs, l.backoffBaseMs * 2 ** this.attempt);
    if (cap < l.backoffMaxMs) this.attempt++;
    this.state = 'backoff';
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.state === 'backoff') this.connect();
    }, this.ctx.random.int(cap + 1));
    this.retryTimer.unref();
  }

  private ping(now: number): void {
    this.lastPingAt = now;
    this.conn!.socket.write(encodePing(FrameKind.Ping, now));
  }

  /** Writes the queue in one go (corked: one writev) once the socket takes data again. */
  private flush(): void {
    if (this.queue.length === 0 || this.state !== 'connected') return;
    const socket = this.conn!.socket;
    socket.cork();
    for (const b of this.queue) socket.write(b);
    socket.uncork();
    this.clearQueue();
  }

  private clearQueue(): void {
    this.queue = [];
    this.queuedBytes = 0;
    this.queuedMessages = 0;
  }

  private drop(count: number, why: string): void {
    this.dropped += count;
    this.droppedUnlogged += count;
    const now = this.ctx.now();
    if (now - this.lastDropLogAt < this.ctx.limits.logIntervalMs) return;
    this.ctx.log.warn(
      { peer: memberHex(this.peer), dropped: this.droppedUnlogged, reason: why },
      `dropped messages to peer ${memberHex(this.peer)}: ${why}`,
    );
    this.lastDropLogAt = now;
    this.droppedUnlogged = 0;
  }
}

// ---------------------------------------------------------------------------
// Sending one snapshot

/**
 * One MsgSnap on a connection of its own: SnapshotHeader, the data in
 * chunks (waiting for 'drain' whenever the socket's buffer is full), then
 * the receiver's SnapshotAck. Reports its outcome exactly once.
 */
export class SnapshotSend {
  private readonly conn: OutboundConn;
  private readonly data: Uint8Array;
  private offset = 0;
  private lastProgressAt: number;
  private finished = false;
  private readonly startedAt: number;

  constructor(
    private readonly ctx: Context,
    private readonly m: Message,
    addr: PeerAddress,
    private readonly onDone: (ok: boolean) => void,
  ) {
    this.data = m.snapshot!.data;
    this.startedAt = this.lastProgressAt = ctx.now();
    ctx.log.info(this.fields(), 'sending database snapshot');
    this.conn = new OutboundConn(ctx, m.to, addr, 'snapshot', {
      accepted: () => this.onAccepted(),
      frame: (kind) => this.onFrame(kind),
      closed: (reason) => this.finish(false, reason),
    });
  }

  tick(now: number): void {
    if (!this.conn.accepted) {
      this.conn.tick(now);
    } else if (now - this.lastProgressAt > this.ctx.limits.snapshotIdleTimeoutMs) {
      this.conn.destroy(`no progress for ${this.ctx.limits.snapshotIdleTimeoutMs} ms`);
    }
  }

  /** Abandons the transfer without reporting (the transport is closing). */
  abort(): void {
    this.finished = true;
    this.conn.destroy('transport closed');
  }

  private fields(): Record<string, unknown> {
    return { peer: memberHex(this.m.to), snapshotIndex: this.m.snapshot!.metadata.index, bytes: this.data.byteLength };
  }

  private onAccepted(): void {
    const socket = this.conn.socket;
    socket.on('drain', () => {
      this.lastProgressAt = this.ctx.now();
      this.pump();
    });
    const size = encodedSize(this.m, false);
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8 + size);
    const pos = putFrameHeader(header, 0, FrameKind.SnapshotHeader, 8 + size);
    header.writeBigUInt64LE(BigInt(this.data.byteLength), pos);
    encodeInto(this.m, header, pos + 8, false);
    socket.write(header);
    this.pump();
  }

  /** Writes chunks until the socket's buffer is full; 'drain' calls it again. */
  private pump(): void {
    const socket = this.conn.socket;
    const chunk = this.ctx.limits.snapshotChunkBytes;
    while (this.offset < this.data.byteLength && !socket.writableNeedDrain && !socket.destroyed) {
      const end = Math.min(this.offset + chunk, this.data.byteLength);
      const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      putFrameHeader(head, 0, FrameKind.SnapshotChunk, end - this.offset);
      socket.cork();
      socket.write(head);
      socket.write(this.data.subarray(this.offset, end));
      socket.uncork();
      this.offset = end;
    }
  }

  private onFrame(kind: number): void {
    if (kind !== FrameKind.SnapshotAck || this.offset < this.data.byteLength) {
      throw new TransportFrameError(`unexpected ${frameKindName(kind)} frame on a snapshot stream`, 0);
    }
    this.finish(true, '');
    this.conn.socket.end();
  }

  private finish(ok: boolean, reason: string): void {
    if (this.finished) return;
    this.finished = true;
    if (ok) {
      this.ctx.log.info({ ...this.fields(), ms: Math.round(this.ctx.now() - this.startedAt) }, 'sent database snapshot');
    } else {
      this.ctx.log.warn({ ...this.fields(), sent: this.offset, reason }, 'failed to send database snapshot');
    }
    this.onDone(ok);
  }
}
