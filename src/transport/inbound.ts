// Connections other members dialed: the handshake check, then a message
// stream or one snapshot transfer. See tcp.ts for the design and
// docs/transport.md.

import type * as net from 'node:net';

import { type Message, type MutableMessage, type NodeId, NONE } from '../raft/types.js';
import { decodeMessage } from './codec.js';
import { TransportError, TransportFrameError } from './errors.js';
import {
  type Refusal,
  FrameKind,
  FrameReader,
  HANDSHAKE_MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  decodeHello,
  decodePing,
  encodePing,
  encodeRefuse,
  frame,
  frameKindName,
} from './frame.js';
import { type Context, memberHex } from './options.js';

/** A refused inbound connection is closed by force this long after the refusal if the dialer keeps it open. */
const REFUSED_LINGER_MS = 1000;

type InboundState = 'hello' | 'stream' | 'snapshot' | 'refused';

export class InboundConn {
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
      // Checked before the data, so that the sender learns of the failure (no ack).
      if (m.to !== this.ctx.selfId || m.from !== this.peer) {
        throw new TransportFrameError(
          `snapshot from ${memberHex(m.from)} to ${memberHex(m.to)} on a connection from peer ${memberHex(this.peer)} to member ${memberHex(this.ctx.selfId)}`,
          8,
        );
      }
      this.snapHeader = m;
      // The data is copied here piece by piece as it arrives: no large copy
      // at the end to stall the event loop (and the heartbeats it serves).
      // A zero-filled buffer this large is mapped lazily by the OS: memory
      // is committed as data is written, not when a header claims a size.
      try {
        this.snapData = new Uint8Array(Number(total));
      } catch (e) {
        throw new TransportFrameError(`cannot allocate ${total} bytes for the snapshot: ${e instanceof Error ? e.message : String(e)}`, 0);
      }
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
    this.ctx.deliver(m);
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
