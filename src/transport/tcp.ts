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
// Framing and the handshake are in frame.ts, the message encoding in
// codec.ts; docs/transport.md describes the protocol.

import * as net from 'node:net';
import { constants as bufferConstants } from 'node:buffer';

import { type Message, type MutableMessage, type NodeId, type RandomSource, NONE } from '../raft/types.js';
import { decodeMessage, encodedSize, encodeInto } from './codec.js';
import {
  TransportConfigError,
  TransportEncodeError,
  TransportError,
  TransportFrameError,
  TransportListenError,
} from './errors.js';
import {
  type Channel,
  type Refusal,
  FRAME_HEADER_BYTES,
  FrameKind,
  FrameReader,
  HANDSHAKE_MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  decodeHello,
  decodePing,
  decodeRefuse,
  encodeHello,
  encodePing,
  encodeRefuse,
  frame,
  frameKindName,
  putFrameHeader,
} from './frame.js';
import type { Transport, TransportHandlers } from './types.js';

/** The subset of pino's API the transport logs through: structured fields first, then the message. */
export interface TransportLogger {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

export const SILENT_TRANSPORT_LOGGER: TransportLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

export interface TransportLimits {
  /** Bytes of encoded messages queued per peer while its socket is not writable (or not yet connected). */
  readonly maxQueueBytes: number;
  /** Messages queued per peer (etcd's streamBufSize is 4096). */
  readonly maxQueueMessages: number;
  /** The largest frame accepted from a peer; a larger length prefix closes the connection. */
  readonly maxFrameBytes: number;
  /** The largest snapshot accepted from a peer. */
  readonly maxSnapshotBytes: number;
  /** Snapshot data goes out in frames of this many bytes. */
  readonly snapshotChunkBytes: number;
  /** First reconnect delay cap; doubles per failed attempt up to backoffMaxMs, with full jitter. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Time allowed to connect and complete the handshake, in either role. */
  readonly handshakeTimeoutMs: number;
  /** A message stream sends a ping this often; the pong gives the round-trip time. */
  readonly pingIntervalMs: number;
  /** A message stream with no frame from the other side for this long is closed (etcd's ConnReadTimeout is 5 s). */
  readonly idleTimeoutMs: number;
  /** A snapshot transfer that makes no progress for this long fails. */
  readonly snapshotIdleTimeoutMs: number;
  /** Repeated warnings (dropped messages) are logged at most once per this interval per peer. */
  readonly logIntervalMs: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  maxQueueBytes: 64 * 1024 * 1024,
  maxQueueMessages: 4096,
  maxFrameBytes: 64 * 1024 * 1024,
  maxSnapshotBytes: bufferConstants.MAX_LENGTH,
  snapshotChunkBytes: 1024 * 1024,
  backoffBaseMs: 50,
  backoffMaxMs: 2000,
  handshakeTimeoutMs: 5000,
  pingIntervalMs: 1000,
  idleTimeoutMs: 5000,
  snapshotIdleTimeoutMs: 30_000,
  logIntervalMs: 10_000,
};

export interface TcpTransportOptions {
  readonly selfId: NodeId;
  /** The cluster's 64-bit id; connections from members of another cluster are refused. */
  readonly clusterId: bigint;
  /** Where to listen, e.g. http://127.0.0.1:2380 (etcd's --listen-peer-urls form; port 0 picks one). Omit to only dial. */
  readonly listen?: string | undefined;
  /** The other members and their peer URLs. An entry for selfId is ignored. */
  readonly peers?: ReadonlyMap<NodeId, string> | undefined;
  readonly logger?: TransportLogger | undefined;
  /** Jitter for reconnect delays. */
  readonly random: RandomSource;
  readonly limits?: Partial<TransportLimits> | undefined;
  /** Monotonic milliseconds (default performance.now). */
  readonly clock?: (() => number) | undefined;
  /** Called with every round-trip time measured (ms), e.g. to feed a histogram. */
  readonly onRoundTrip?: ((peer: NodeId, ms: number) => void) | undefined;
}

export interface PeerStatus {
  /** The outbound message stream is up (handshake accepted). */
  readonly connected: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** Bytes held for the peer: the queue plus what the socket has buffered. Bounded by maxQueueBytes plus one batch and the socket's high-water mark. */
  readonly bufferedBytes: number;
  /** Messages dropped since the transport started (queue full or connection down). */
  readonly droppedMessages: number;
  /** The last measured round-trip time in ms, while connected. */
  readonly roundTripMs: number | undefined;
}

interface PeerAddress {
  readonly host: string;
  readonly port: number;
  readonly url: string;
}

/** Member ids are shown in hex, as etcd shows them. */
export function memberHex(id: NodeId | bigint): string {
  return id.toString(16);
}

/** Host and port of a peer URL (http://host:port); the scheme is etcd's flag form, the connection plain TCP. */
export function parsePeerUrl(url: string): PeerAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TransportConfigError(`peer URL "${url}" is not a URL (expected e.g. http://10.0.0.1:2380)`);
  }
  if (u.protocol === 'https:') throw new TransportConfigError(`peer URL "${url}": TLS (https) is not supported; use http://`);
  if (u.protocol !== 'http:') throw new TransportConfigError(`peer URL "${url}": scheme must be http://`);
  if (u.port === '') throw new TransportConfigError(`peer URL "${url}" has no port`);
  if (u.pathname !== '/' && u.pathname !== '') throw new TransportConfigError(`peer URL "${url}" must not have a path`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: Number(u.port), url };
}

function checkLimits(l: TransportLimits): void {
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new TransportConfigError(`limit ${k} must be a positive integer, got ${v}`);
  }
  if (l.snapshotChunkBytes + 64 > l.maxFrameBytes) {
    throw new TransportConfigError(`snapshotChunkBytes (${l.snapshotChunkBytes}) must fit in maxFrameBytes (${l.maxFrameBytes})`);
  }
  if (l.backoffBaseMs > l.backoffMaxMs) throw new TransportConfigError('backoffBaseMs must not exceed backoffMaxMs');
}

/** Outbound streams receive only pongs (and the handshake answer): anything bigger is a protocol error. */
const PONG_MAX_FRAME_BYTES = 64;

/** A refused inbound connection is closed by force this long after the refusal if the dialer keeps it open. */
const REFUSED_LINGER_MS = 1000;

/** What the connection classes below need from the transport. */
interface Context {
  readonly selfId: NodeId;
  readonly clusterId: bigint;
  readonly limits: TransportLimits;
  readonly log: TransportLogger;
  readonly random: RandomSource;
  now(): number;
  isPeer(id: NodeId): boolean;
  track(socket: net.Socket): void;
  deliver(m: Message): void;
  unreachable(peer: NodeId): void;
  roundTrip(peer: NodeId, ms: number): void;
  inboundOpened(conn: InboundConn): void;
  inboundClosed(conn: InboundConn): void;
}

// ---------------------------------------------------------------------------
// Dialing: connect, handshake, read frames

interface OutboundEvents {
  accepted(): void;
  frame(kind: number, body: Buffer): void;
  closed(reason: string, refusal: Refusal | undefined): void;
}

/** A connection this member dialed: TCP connect, HELLO, then ACCEPT or REFUSE. */
class OutboundConn {
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
      this.ctx.log.error({ peer: memberHex(this.peer), error: e.message }, 'closing connection to peer: bad frame');
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

class PeerStream {
  private state: StreamState = 'idle';
  private conn: OutboundConn | undefined;
  /** Frames waiting for the connection or for 'drain'; each is one send() call's worth. */
  private queue: Buffer[] = [];
  queuedBytes = 0;
  queuedMessages = 0;
  dropped = 0;
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
class SnapshotSend {
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

// ---------------------------------------------------------------------------
// Accepted connections

type InboundState = 'hello' | 'stream' | 'snapshot' | 'refused';

class InboundConn {
  private readonly reader = new FrameReader(HANDSHAKE_MAX_FRAME_BYTES);
  private state: InboundState = 'hello';
  /** The sender, once the handshake passed. */
  peer: NodeId = NONE;
  private lastFrameAt: number;
  private deadline: number;
  private readonly remote: string;
  private closeReason: string | undefined;
  // Snapshot reception.
  private snapHeader: Message | undefined;
  private snapData = new Uint8Array(0);
  private snapReceived = 0;
  private snapDelivered = false;

  constructor(
    private readonly ctx: Context,
    readonly socket: net.Socket,
  ) {
    this.lastFrameAt = ctx.now();
    this.deadline = this.lastFrameAt + ctx.limits.handshakeTimeoutMs;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.closeReason ??= err.message;
    });
    socket.on('close', () => this.onClose());
  }

  get isStream(): boolean {
    return this.state === 'stream';
  }

  destroy(reason: string): void {
    this.closeReason ??= reason;
    this.reader.stop();
    this.socket.destroy();
  }

  tick(now: number): void {
    const l = this.ctx.limits;
    if (this.state === 'hello' && now > this.deadline) {
      this.ctx.log.warn({ remote: this.remote }, `no handshake from ${this.remote} within ${l.handshakeTimeoutMs} ms: closing`);
      this.destroy('handshake timeout');
    } else if (this.state === 'refused' && now > this.deadline) {
      this.destroy('refused');
    } else if (this.state === 'stream' && now - this.lastFrameAt > l.idleTimeoutMs) {
      this.destroy(`nothing received for ${l.idleTimeoutMs} ms`);
    } else if (this.state === 'snapshot' && now - this.lastFrameAt > l.snapshotIdleTimeoutMs) {
      this.destroy(`no snapshot data for ${l.snapshotIdleTimeoutMs} ms`);
    }
  }

  private fields(): Record<string, unknown> {
    return this.peer === NONE ? { remote: this.remote } : { peer: memberHex(this.peer), remote: this.remote };
  }

  private onData(chunk: Buffer): void {
    try {
      this.reader.push(chunk, (kind, body) => this.onFrame(kind, body));
    } catch (e) {
      if (!(e instanceof TransportError)) throw e;
      this.ctx.log.error({ ...this.fields(), error: e.message }, `closing connection from ${this.peer === NONE ? this.remote : `peer ${memberHex(this.peer)}`}: ${e.message}`);
      this.destroy(e.message);
    }
  }

  private onFrame(kind: number, body: Buffer): void {
    this.lastFrameAt = this.ctx.now();
    switch (this.state) {
      case 'hello':
        if (kind !== FrameKind.Hello) throw new TransportFrameError(`expected HELLO, got ${frameKindName(kind)}`, 0);
        this.onHello(body);
        return;
      case 'stream':
        if (kind === FrameKind.Message) this.onMessage(decodeMessage(body));
        else if (kind === FrameKind.Ping) this.socket.write(encodePing(FrameKind.Pong, decodePing(body)));
        else throw new TransportFrameError(`unexpected ${frameKindName(kind)} frame on a message stream`, 0);
        return;
      case 'snapshot':
        this.onSnapshotFrame(kind, body);
        return;
      case 'refused':
        return;
    }
  }

  private onHello(body: Buffer): void {
    const h = decodeHello(body);
    const ctx = this.ctx;
    const from = memberHex(h.from);
    let refusal: Refusal | undefined;
    let warning = '';
    if (h.version !== PROTOCOL_VERSION) {
      refusal = { reason: 'protocol-version', detail: `protocol version ${h.version} is not supported (member ${memberHex(ctx.selfId)} speaks ${PROTOCOL_VERSION})` };
      warning = `connection from ${this.remote} speaks peer protocol version ${h.version}, ours is ${PROTOCOL_VERSION}: refused`;
    } else if (h.clusterId !== ctx.clusterId) {
      refusal = { reason: 'cluster-mismatch', detail: `member ${memberHex(ctx.selfId)} belongs to cluster ${memberHex(ctx.clusterId)}, not ${memberHex(h.clusterId)}: check --initial-cluster-token` };
      warning = `peer ${from} from another cluster (cluster id ${memberHex(h.clusterId)}, ours ${memberHex(ctx.clusterId)}): check --initial-cluster-token`;
    } else if (h.to !== ctx.selfId) {
      refusal = { reason: 'wrong-member', detail: `this is member ${memberHex(ctx.selfId)}, not ${memberHex(h.to)}: check --initial-cluster and the peer URLs` };
      warning = `peer ${from} dialed member ${memberHex(h.to)} but this is ${memberHex(ctx.selfId)}: check --initial-cluster and the peer URLs`;
    } else if (h.from === ctx.selfId || !ctx.isPeer(h.from)) {
      refusal = { reason: 'unknown-peer', detail: `member ${from} is not a peer of member ${memberHex(ctx.selfId)} (removed, or not added yet)` };
      warning = `connection from unknown member ${from} (${this.remote}) refused: not a peer (removed, or not added yet)`;
    }
    if (refusal !== undefined) {
      ctx.log.warn({ peer: from, remote: this.remote, refusal: refusal.reason }, warning);
      this.state = 'refused';
      this.deadline = ctx.now() + REFUSED_LINGER_MS;
      this.reader.stop();
      this.socket.end(encodeRefuse(refusal));
      return;
    }
    this.peer = h.from;
    this.state = h.channel;
    this.reader.maxFrameBytes = ctx.limits.maxFrameBytes;
    this.socket.write(frame(FrameKind.Accept));
    if (h.channel === 'stream') ctx.log.info(this.fields(), 'peer stream accepted');
    ctx.inboundOpened(this);
  }

  private onMessage(m: Message): void {
    // The handshake named the sender: a message claiming another sender, or
    // addressed to another member, is a bug or an attack, never delivered.
    if (m.to !== this.ctx.selfId || m.from !== this.peer) {
      this.ctx.log.warn(
        { ...this.fields(), type: m.type, from: memberHex(m.from), to: memberHex(m.to) },
        `dropped ${m.type} from ${memberHex(m.from)} to ${memberHex(m.to)} on the stream from peer ${memberHex(this.peer)}: not addressed to this member from that peer`,
      );
      return;
    }
    this.ctx.deliver(m);
  }

  private onSnapshotFrame(kind: number, body: Buffer): void {
    if (this.snapDelivered) throw new TransportFrameError(`unexpected ${frameKindName(kind)} frame after the snapshot`, 0);
    if (this.snapHeader === undefined) {
      if (kind !== FrameKind.SnapshotHeader) throw new TransportFrameError(`expected SnapshotHeader, got ${frameKindName(kind)}`, 0);
      if (body.length < 8) throw new TransportFrameError('snapshot header truncated', 0);
      const total = body.readBigUInt64LE(0);
      if (total > BigInt(this.ctx.limits.maxSnapshotBytes)) {
        throw new TransportFrameError(`snapshot of ${total} bytes exceeds the limit of ${this.ctx.limits.maxSnapshotBytes}`, 0);
      }
      const m = decodeMessage(body, 8);
      if (m.type !== 'MsgSnap' || m.snapshot === undefined || m.snapshot.data.byteLength !== 0) {
        throw new TransportFrameError(`snapshot header holds ${m.type}, not a MsgSnap without data`, 8);
      }
      this.snapHeader = m;
      // The data is copied here piece by piece as it arrives: no large copy
      // at the end to stall the event loop (and the heartbeats it serves).
      // A zero-filled buffer this large is mapped lazily by the OS: memory
      // is committed as data is written, not when a header claims a size.
      this.snapData = new Uint8Array(Number(total));
      this.reader.streamKind = FrameKind.SnapshotChunk;
    } else {
      if (kind !== FrameKind.SnapshotChunk) throw new TransportFrameError(`expected SnapshotChunk, got ${frameKindName(kind)}`, 0);
      if (this.snapReceived + body.length > this.snapData.byteLength) {
        throw new TransportFrameError(`snapshot data exceeds the ${this.snapData.byteLength} bytes announced`, 0);
      }
      this.snapData.set(body, this.snapReceived);
      this.snapReceived += body.length;
    }
    if (this.snapReceived === this.snapData.byteLength) this.deliverSnapshot();
  }

  private deliverSnapshot(): void {
    const header = this.snapHeader!;
    const data = this.snapData;
    this.snapDelivered = true;
    const m: MutableMessage = { ...header };
    m.snapshot = { metadata: header.snapshot!.metadata, data };
    this.ctx.log.info({ ...this.fields(), snapshotIndex: m.snapshot.metadata.index, bytes: data.byteLength }, 'received database snapshot');
    this.onMessage(m);
    this.socket.write(frame(FrameKind.SnapshotAck));
  }

  private onClose(): void {
    this.reader.stop();
    const reason = this.closeReason ?? 'closed by the peer';
    if (this.state === 'stream') {
      this.ctx.log.info({ ...this.fields(), reason }, 'peer stream closed');
    } else if (this.state === 'snapshot' && !this.snapDelivered) {
      this.ctx.log.warn(
        { ...this.fields(), received: this.snapReceived, bytes: this.snapData.byteLength, reason },
        `incomplete snapshot from peer ${memberHex(this.peer)}: received ${this.snapReceived} of ${this.snapData.byteLength} bytes`,
      );
    }
    this.snapData = new Uint8Array(0);
    this.ctx.inboundClosed(this);
  }
}

// ---------------------------------------------------------------------------
// The transport

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
      deliver: (m) => this.handlers?.onMessage(m),
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
    for (const i of indexes) total += FRAME_HEADER_BYTES + sizes[i]!;
    // One allocation and one write for the whole batch.
    const buf = Buffer.allocUnsafe(total);
    let pos = 0;
    for (const i of indexes) {
      pos = putFrameHeader(buf, pos, FrameKind.Message, sizes[i]!);
      pos = encodeInto(messages[i]!, buf, pos);
    }
    if (!stream.offer(buf, indexes.length)) this.reportUnreachable(to);
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
