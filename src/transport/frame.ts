// Framing of the peer protocol: every unit on a connection is a frame,
//
//   u32 length (little-endian; bytes after this prefix, at least 1) | u8 kind | body
//
// and every connection starts with a handshake (HELLO from the dialer,
// answered by ACCEPT or REFUSE) that names the cluster, the sender and the
// intended receiver. See docs/transport.md.

import { type NodeId } from '../raft/types.js';
import { TransportFrameError, TransportFrameTooLargeError } from './errors.js';

/** Bytes before a frame's body: the length prefix and the kind byte. */
export const FRAME_HEADER_BYTES = 5;

export const FrameKind = {
  /** Dialer -> listener, first frame of every connection. */
  Hello: 1,
  /** Listener -> dialer: the handshake passed. */
  Accept: 2,
  /** Listener -> dialer: the handshake failed; u8 reason code, UTF-8 text. The listener then closes. */
  Refuse: 3,
  /** Dialer -> listener on a message stream: one encoded Message (codec.ts). */
  Message: 4,
  /** Dialer -> listener: f64 send time; answered by Pong with the same body (round-trip time). */
  Ping: 5,
  Pong: 6,
  /** Dialer -> listener on a snapshot stream: u64 data length, then the MsgSnap encoded without its data. */
  SnapshotHeader: 7,
  /** Dialer -> listener: the next bytes of the snapshot's data. */
  SnapshotChunk: 8,
  /** Listener -> dialer: the whole snapshot arrived and was delivered. */
  SnapshotAck: 9,
} as const;

export type FrameKindCode = (typeof FrameKind)[keyof typeof FrameKind];

const KIND_NAMES = new Map<number, string>(Object.entries(FrameKind).map(([k, v]) => [v, k]));

export function frameKindName(kind: number): string {
  return KIND_NAMES.get(kind) ?? `unknown kind ${kind}`;
}

/** Writes a frame header for a body of `bodyBytes` at `pos`; returns the position of the body. */
export function putFrameHeader(buf: Uint8Array, pos: number, kind: FrameKindCode, bodyBytes: number): number {
  const len = bodyBytes + 1;
  buf[pos] = len & 0xff;
  buf[pos + 1] = (len >>> 8) & 0xff;
  buf[pos + 2] = (len >>> 16) & 0xff;
  buf[pos + 3] = (len >>> 24) & 0xff;
  buf[pos + 4] = kind;
  return pos + FRAME_HEADER_BYTES;
}

/** A whole frame holding `body`. */
export function frame(kind: FrameKindCode, body: Uint8Array = new Uint8Array(0)): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.byteLength);
  buf.set(body, putFrameHeader(buf, 0, kind, body.byteLength));
  return buf;
}

// ---------------------------------------------------------------------------
// Handshake

/** "RKVP": raftkv peer protocol. Tells a raftkv peer from anything else that dials the port. */
export const HANDSHAKE_MAGIC = 0x50564b52;
export const PROTOCOL_VERSION = 1;
const HELLO_BYTES = 4 + 1 + 1 + 8 + 8 + 8;

/** The largest frame accepted before the handshake completes (a HELLO, or a REFUSE with its text). */
export const HANDSHAKE_MAX_FRAME_BYTES = 1024;

export type Channel = 'stream' | 'snapshot';

export interface Hello {
  readonly version: number;
  readonly channel: Channel;
  readonly clusterId: bigint;
  readonly from: NodeId;
  readonly to: NodeId;
}

export function encodeHello(h: Hello): Buffer {
  const body = Buffer.allocUnsafe(HELLO_BYTES);
  body.writeUInt32LE(HANDSHAKE_MAGIC, 0);
  body.writeUInt8(h.version, 4);
  body.writeUInt8(h.channel === 'stream' ? 0 : 1, 5);
  body.writeBigUInt64LE(h.clusterId, 6);
  body.writeBigUInt64LE(BigInt(h.from), 14);
  body.writeBigUInt64LE(BigInt(h.to), 22);
  return frame(FrameKind.Hello, body);
}

/** Decodes a HELLO body. The version is returned as sent: the caller decides whether it speaks it. */
export function decodeHello(body: Uint8Array): Hello {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (b.length < 5) throw new TransportFrameError(`handshake of ${b.length} bytes is too short`, 0);
  if (b.readUInt32LE(0) !== HANDSHAKE_MAGIC) throw new TransportFrameError('not a raftkv peer handshake (bad magic)', 0);
  const version = b.readUInt8(4);
  // A later version may lay out the rest differently: only its version is read.
  if (version !== PROTOCOL_VERSION) return { version, channel: 'stream', clusterId: 0n, from: 0, to: 0 };
  if (b.length !== HELLO_BYTES) throw new TransportFrameError(`handshake is ${b.length} bytes, expected ${HELLO_BYTES}`, 0);
  const channel = b.readUInt8(5);
  if (channel > 1) throw new TransportFrameError(`unknown channel ${channel}`, 5);
  return {
    version,
    channel: channel === 0 ? 'stream' : 'snapshot',
    clusterId: b.readBigUInt64LE(6),
    from: memberId(b.readBigUInt64LE(14), 14),
    to: memberId(b.readBigUInt64LE(22), 22),
  };
}

function memberId(v: bigint, offset: number): NodeId {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TransportFrameError(`member id ${v.toString(16)} exceeds 2^53-1`, offset);
  return Number(v);
}

/** Why a listener refused a connection. */
export type RefuseReason = 'protocol-version' | 'cluster-mismatch' | 'wrong-member' | 'unknown-peer';
const REFUSE_CODES: readonly RefuseReason[] = ['protocol-version', 'cluster-mismatch', 'wrong-member', 'unknown-peer'];

export interface Refusal {
  readonly reason: RefuseReason;
  readonly detail: string;
}

/** The refusal's text is cut to fit the handshake frame limit. */
export function encodeRefuse(r: Refusal): Buffer {
  const text = Buffer.from(r.detail, 'utf8').subarray(0, HANDSHAKE_MAX_FRAME_BYTES - 8);
  const body = Buffer.allocUnsafe(1 + text.length);
  body[0] = REFUSE_CODES.indexOf(r.reason);
  body.set(text, 1);
  return frame(FrameKind.Refuse, body);
}

export function decodeRefuse(body: Uint8Array): Refusal {
  const reason = REFUSE_CODES[body[0] ?? 255];
  if (reason === undefined) throw new TransportFrameError(`unknown refusal reason ${body[0]}`, 0);
  return { reason, detail: Buffer.from(body.buffer, body.byteOffset + 1, body.byteLength - 1).toString('utf8') };
}

// ---------------------------------------------------------------------------
// Ping

export function encodePing(kind: typeof FrameKind.Ping | typeof FrameKind.Pong, sentAt: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8);
  buf.writeDoubleLE(sentAt, putFrameHeader(buf, 0, kind, 8));
  return buf;
}

export function decodePing(body: Uint8Array): number {
  if (body.byteLength !== 8) throw new TransportFrameError(`ping/pong body of ${body.byteLength} bytes, expected 8`, 0);
  return Buffer.from(body.buffer, body.byteOffset, 8).readDoubleLE(0);
}

// ---------------------------------------------------------------------------
// Reading frames from a byte stream

/**
 * Cuts a byte stream into frames. Bytes are kept as the chunks they arrived
 * in until a frame is complete, so memory follows what was actually
 * received: a length prefix over `maxFrameBytes` is rejected before anything
 * is allocated for it, and a frame within the limit is assembled only once
 * all of its bytes are here. A frame that lies inside one chunk is handed out
 * as a view of that chunk; one that spans chunks is copied into a buffer of
 * its own.
 *
 * Frames of `streamKind` are not assembled: their body is handed out in
 * pieces as it arrives (views of the chunks, in order), for bulk data whose
 * consumer copies it to its place anyway (snapshot chunks).
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private head = 0;
  /** Unconsumed bytes across chunks. */
  private buffered = 0;
  /** Bytes (after the prefix) of the frame being read that are still to come, or -1 while awaiting a prefix. */
  private need = -1;
  /** Inside a frame of streamKind, after its kind byte. */
  private streaming = false;
  private stopped = false;
  /** The kind whose frames are delivered in pieces (see above), if any. */
  streamKind: number | undefined;

  constructor(
    /** The largest frame accepted; may be raised once the handshake has passed. */
    public maxFrameBytes: number,
  ) {}

  /** Bytes held that do not yet form a whole frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Discards what is buffered and ignores everything pushed from now on. */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.buffered = 0;
  }

  /**
   * Adds bytes; calls `onFrame` for every complete frame (or piece of a
   * streamed one), in order, until stop() is called. Throws
   * TransportFrameTooLargeError or TransportFrameError on a bad length
   * prefix; the stream is unusable after.
   */
  push(chunk: Buffer, onFrame: (kind: number, body: Buffer) => void): void {
    if (this.stopped) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.stopped) {
      if (this.need < 0) {
        if (this.buffered < 4) return;
        const p = this.take(4);
        const len = p.readUInt32LE(0);
        if (len === 0) throw new TransportFrameError('frame of length 0 (no kind byte)', 0);
        if (len > this.maxFrameBytes) throw new TransportFrameTooLargeError(len, this.maxFrameBytes);
        this.need = len;
      }
      if (this.streaming) {
        if (this.buffered === 0) return;
        const first = this.chunks[0]!;
        const piece = this.take(Math.min(this.need, first.length - this.head));
        this.need -= piece.length;
        if (this.need === 0) {
          this.streaming = false;
          this.need = -1;
        }
        onFrame(this.streamKind!, piece);
        continue;
      }
      if (this.streamKind !== undefined && this.need > 1 && this.buffered > 0 && this.chunks[0]![this.head] === this.streamKind) {
        this.take(1);
        this.need -= 1;
        this.streaming = true;
        continue;
      }
      if (this.buffered < this.need) return;
      const f = this.take(this.need);
      this.need = -1;
      onFrame(f[0]!, f.subarray(1));
    }
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    this.buffered -= n;
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafeSlow(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + k);
      filled += k;
      this.head += k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    return out;
  }
}
