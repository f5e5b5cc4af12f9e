// Options, limits and the logger interface of TcpTransport, and what its
// connection classes share (Context).

import type * as net from 'node:net';
import { constants as bufferConstants } from 'node:buffer';

import type { Message, NodeId, RandomSource } from '../raft/types.js';
import { TransportConfigError } from './errors.js';
import type { InboundConn } from './inbound.js';

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
  /** Messages taken for the peer (written or queued, not dropped) since its stream was created: rates come from its differences. */
  readonly sentMessages: number;
  /** The last measured round-trip time in ms, while connected. */
  readonly roundTripMs: number | undefined;
}

export interface PeerAddress {
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

export function checkLimits(l: TransportLimits): void {
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new TransportConfigError(`limit ${k} must be a positive integer, got ${v}`);
  }
  if (l.snapshotChunkBytes + 64 > l.maxFrameBytes) {
    throw new TransportConfigError(`snapshotChunkBytes (${l.snapshotChunkBytes}) must fit in maxFrameBytes (${l.maxFrameBytes})`);
  }
  if (l.backoffBaseMs > l.backoffMaxMs) throw new TransportConfigError('backoffBaseMs must not exceed backoffMaxMs');
}

/** What the connection classes (outbound.ts, inbound.ts) need from the transport. */
export interface Context {
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
