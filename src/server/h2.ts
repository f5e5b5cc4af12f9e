// HTTP/2 (RFC 9113) over a cleartext connection opened with prior knowledge,
// which is how gRPC clients reach etcd's http:// client URLs: the server side
// for the gRPC server (grpc.ts) and the client side for raftkv's client
// (src/client/transport.ts), and nothing else: no push, no priorities, no
// HTTP/1.1 upgrade, no TLS.
//
// Why not node:http2: a unary call through it cost a member 48-65 µs of CPU
// and a client 55-75, most of it node:http2's own (a Duplex stream object per
// request, nghttp2's callbacks into JavaScript, a headers object per
// direction) and a third of a member's garbage; and nghttp2 refuses a
// request whose :authority RFC 3986 does not allow, which etcdctl 3.4 sends
// (the endpoint URL itself), so Node's server had to be fed through a
// rewriting filter. Here a call is a header block decoded into one object,
// its DATA handed over as slices of what the socket read, and its answer
// three frames appended to the connection's output, which goes out in one
// write per event-loop turn (as nghttp2 under Node schedules its writes).
//
// What the protocol requires of both ends is here: the preface and SETTINGS
// exchange (§3.4, §6.5), stream states and identifiers (§5.1), flow control
// in both directions (§5.2, §6.9), frame size limits (§4.2), header blocks
// across CONTINUATION frames (§4.3, §6.10), PING (§6.7), RST_STREAM (§6.4),
// GOAWAY (§6.8) and the error handling of §5.4: a connection error sends
// GOAWAY with its code and closes; a stream error resets that stream alone.

import type { Socket } from 'node:net';

import { HpackDecoder, HpackError } from './hpack.js';

/** The client connection preface (§3.4). */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

// §6: frame types and flags.
const TYPE_DATA = 0x0;
const TYPE_HEADERS = 0x1;
const TYPE_PRIORITY = 0x2;
const TYPE_RST_STREAM = 0x3;
const TYPE_SETTINGS = 0x4;
const TYPE_PUSH_PROMISE = 0x5;
const TYPE_PING = 0x6;
const TYPE_GOAWAY = 0x7;
const TYPE_WINDOW_UPDATE = 0x8;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

// §6.5.2: settings.
const SETTINGS_HEADER_TABLE_SIZE = 0x1;
const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

/** §7: error codes. */
export const H2Code = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;
export type H2Code = (typeof H2Code)[keyof typeof H2Code];

const FRAME_HEADER_BYTES = 9;
/** §6.9.2: every window starts at 65,535 octets; §6.9.1: none may exceed 2^31-1. */
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** §4.2: SETTINGS_MAX_FRAME_SIZE's initial value, which this server keeps for what it receives. */
const DEFAULT_MAX_FRAME = 16_384;
const MAX_FRAME_LIMIT = 16_777_215;
/** A stream's queued response data beyond which write() asks the caller to wait for onDrain. */
const STREAM_HIGH_WATER = 64 * 1024;
/** Socket bytes not yet taken by the kernel beyond which queued DATA waits for 'drain'. */
const SOCKET_HIGH_WATER = 1024 * 1024;

export interface H2Options {
  /** SETTINGS_INITIAL_WINDOW_SIZE: what a client may send on one stream before it hears from us. */
  readonly streamWindowBytes: number;
  /** The connection's receive window, raised from 65,535 by a WINDOW_UPDATE in the preface. */
  readonly connectionWindowBytes: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, and the largest header block accepted (a larger one is a connection error). */
  readonly maxHeaderListBytes: number;
  /** Open streams beyond this are refused (REFUSED_STREAM, which a client may retry). */
  readonly maxConcurrentStreams: number;
  /**
   * Response bytes queued under flow control beyond which new streams are
   * refused (Node's maxSessionMemory), and bytes unread by the client beyond
   * which the connection is closed.
   */
  readonly maxQueuedBytes: number;
}

/** A request's header fields, names in lower case; a repeated name gives an array. */
export type RequestHeaders = Record<string, string | string[]>;

/** Which end of the connection this is. */
export type H2Role = 'server' | 'client';

/** What the owner of a connection hears of it. */
export interface H2Handler {
  /** Server: a new request; the handler sets `stream.listener` before returning to hear of its data. */
  onStream?(stream: H2Stream, headers: RequestHeaders): void;
  /** The peer's first SETTINGS arrived: it speaks HTTP/2. */
  onEstablished?(): void;
  /** The peer sent GOAWAY: no new streams; on a client, streams above `lastStreamId` were refused unprocessed. */
  onGoAway?(lastStreamId: number, code: number): void;
  /** This end found a protocol error and is closing the connection (after sending GOAWAY with `code`). */
  onConnectionError?(code: H2Code, message: string): void;
  /** The connection is closed (every stream's onClose has been called). */
  onConnectionClose(connection: H2Connection): void;
  /** A listener threw: a bug in the handler, reported here; the connection goes on. */
  onHandlerError(error: unknown): void;
}

/** The events of one stream, for the code serving its request or waiting for its response. */
export interface H2StreamListener {
  /** A header block after the request's: a client's response headers, then trailers (`endStream` set). */
  onHeaders?(headers: RequestHeaders, endStream: boolean): void;
  /** Data from the peer (a request's body, or a response's), as slices of what the socket read. */
  onData(chunk: Buffer): void;
  /** The peer ended its side (END_STREAM): the request, or the response, is complete. */
  onEnd(): void;
  /**
   * The stream is over: ended on both sides, reset by either side, or the
   * connection went away (`resetCode` and `refused` on the stream say which).
   */
  onClose(): void;
  /** Queued data fell below the high-water mark after write() returned false. */
  onDrain(): void;
}

/** A connection-level error: GOAWAY with its code, then the connection closes. */
export class H2ConnectionError extends Error {
  readonly code = 'H2_CONNECTION_ERROR';
  constructor(
    readonly h2Code: H2Code,
    message: string,
  ) {
    super(`HTTP/2: ${message}`);
    this.name = 'H2ConnectionError';
  }
}

/** One stream: a request and its response. */
export class H2Stream {
  listener: H2StreamListener | undefined;
  /** END_STREAM received: the peer has sent all it will. */
  remoteEnded = false;
  /** An ending write(), end() or respond() was called: nothing more may be sent. */
  localEnded = false;
  /** The frame carrying our END_STREAM has been queued for the socket. */
  endSent = false;
  closed = false;
  /** The code of the RST_STREAM the peer sent, if it reset the stream. */
  resetCode: number | undefined;
  /**
   * Closed with the certainty that the peer did not process it: REFUSED_STREAM,
   * or above the last stream of the peer's GOAWAY (§8.7: safe to retry).
   */
  refused = false;
  /** Header blocks received: a request's (server), or a response's headers then trailers (client). */
  headerBlocks = 0;
  /** What we may still send (§6.9), per the peer's SETTINGS and WINDOW_UPDATEs. */
  sendWindow: number;
  /** What the peer may still send before our next WINDOW_UPDATE. */
  recvWindow: number;
  recvUnacknowledged = 0;
  /** Data waiting for flow-control window or the socket, oldest first. */
  pending: Buffer[] = [];
  pendingBytes = 0;
  /** The trailers to send once `pending` is out; undefined: END_STREAM on the last DATA frame. */
  trailers: Buffer | undefined;
  private needsDrain = false;

  constructor(
    private readonly connection: H2Connection,
    readonly id: number,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Sends a server's response headers (an encoded block, see encodeHeaderBlock); `endStream`: no body or trailers follow. */
  respond(block: Buffer, endStream = false): void {
    if (this.closed || this.localEnded) return;
    if (endStream) this.localEnded = true;
    this.connection.sendHeaders(this, block, endStream);
  }

  /**
   * Queues data; `end`: it is the last (END_STREAM on its last frame). False
   * when the caller should wait for onDrain before writing more.
   */
  write(data: Buffer, end = false): boolean {
    if (this.closed || this.localEnded) return false;
    if (end) this.localEnded = true;
    if (data.length > 0) {
      this.pending.push(data);
      this.pendingBytes += data.length;
    }
    if (data.length > 0 || end) this.connection.pump(this);
    if (this.pendingBytes < STREAM_HIGH_WATER) return true;
    this.needsDrain = true;
    return false;
  }

  /** Ends this side: after the queued data, the trailers (an encoded block) or an empty DATA frame carry END_STREAM. */
  end(trailers?: Buffer): void {
    if (this.closed || this.localEnded) return;
    this.localEnded = true;
    this.trailers = trailers;
    this.connection.pump(this);
  }

  /** Resets the stream (RST_STREAM with `code`); queued data is dropped. */
  reset(code: H2Code): void {
    this.connection.resetStream(this, code);
  }

  /** Called by the connection when queued data has gone out. */
  drained(): void {
    if (this.needsDrain && this.pendingBytes < STREAM_HIGH_WATER) {
      this.needsDrain = false;
      this.listener?.onDrain();
    }
  }
}

/** What a peer may still send, on a stream or on the whole connection, and what it sent since our last WINDOW_UPDATE. */
interface ReceiveCredit {
  recvWindow: number;
  recvUnacknowledged: number;
}

/** A header block being received across CONTINUATION frames (§6.10). */
interface PartialHeaderBlock {
  readonly streamId: number;
  readonly endStream: boolean;
  readonly fragments: Buffer[];
  bytes: number;
}

/** One end of one HTTP/2 connection. */
export class H2Connection {
  private readonly streams = new Map<number, H2Stream>();
  private readonly decoder = new HpackDecoder();
  /** The highest stream identifier the peer has opened (§5.1.1: they only grow; a client opens none here). */
  private lastStreamId = 0;
  /** The identifier of the next stream a client opens (odd, §5.1.1). */
  private nextStreamId = 1;
  /** The peer sent GOAWAY: no new streams (client). */
  private peerGoingAway = false;
  private input: Buffer | undefined;
  private prefaceReceived = false;
  private settingsReceived = false;
  private headerBlock: PartialHeaderBlock | undefined;
  // The peer's settings, as they bind what we send.
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  private sendWindow = DEFAULT_WINDOW;
  /** The connection's receive window as advertised: it can only be raised from 65,535 (§6.9.2). */
  private readonly connectionWindow: number;
  /** What the peer may still send on the connection before our next WINDOW_UPDATE. */
  private readonly recv: ReceiveCredit;
  /**
   * A new stream's receive window: 65,535 until the client acknowledges our
   * SETTINGS, then SETTINGS_INITIAL_WINDOW_SIZE (§6.9.2: until then it may
   * use the initial value).
   */
  private streamWindow = DEFAULT_WINDOW;
  private settingsAcknowledged = false;
  /** Streams with response data waiting for window or for the socket, in the order they queued it. */
  private readonly blocked = new Set<H2Stream>();
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private goingAway = false;
  /** No more frames are taken or sent (the socket may still be flushing). */
  closed = false;
  private socketClosed = false;
  private readonly closeWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly handler: H2Handler,
    private readonly options: H2Options,
    /** Bytes already read from the socket (the preface, maybe more). */
    head: Buffer,
    readonly role: H2Role = 'server',
  ) {
    this.connectionWindow = Math.max(DEFAULT_WINDOW, options.connectionWindowBytes);
    this.recv = { recvWindow: this.connectionWindow, recvUnacknowledged: 0 };
    // §3.4: a client opens with the fixed preface; both ends' prefaces then
    // are a SETTINGS frame; the connection window is not a setting, so it is
    // raised with a WINDOW_UPDATE (§6.9.2). A client turns push off.
    const settings = Buffer.alloc(role === 'client' ? 18 : 12);
    settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 0);
    settings.writeUInt32BE(options.streamWindowBytes, 2);
    settings.writeUInt16BE(SETTINGS_MAX_HEADER_LIST_SIZE, 6);
    settings.writeUInt32BE(options.maxHeaderListBytes, 8);
    if (role === 'client') {
      settings.writeUInt16BE(SETTINGS_ENABLE_PUSH, 12);
      settings.writeUInt32BE(0, 14);
      this.prefaceReceived = true; // a server sends no fixed preface
      this.out.push(CLIENT_PREFACE);
      this.outBytes += CLIENT_PREFACE.length;
    }
    this.frame(TYPE_SETTINGS, 0, 0, settings);
    if (this.connectionWindow > DEFAULT_WINDOW) this.windowUpdate(0, this.connectionWindow - DEFAULT_WINDOW);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => this.pumpAll());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onSocketClose());
    if (head.length > 0) this.receive(head);
  }

  /** Response bytes waiting for flow-control window or the socket. */
  private queuedBytes(): number {
    let bytes = 0;
    for (const stream of this.blocked) bytes += stream.pendingBytes;
    return bytes;
  }

  /** The peer's first SETTINGS arrived: it speaks HTTP/2. */
  get established(): boolean {
    return this.settingsReceived;
  }

  /** Whether a client may open a stream here now (not closed, not told to go away, identifiers left). */
  get acceptsRequests(): boolean {
    return !this.closed && !this.goingAway && !this.peerGoingAway && this.nextStreamId <= MAX_WINDOW;
  }

  /**
   * Client: opens a stream with a request's header block (see
   * encodeHeaderBlock; pseudo-headers first). The caller sets its listener
   * before returning to the event loop. Undefined if the connection takes no
   * more requests (acceptsRequests).
   */
  request(block: Buffer, endStream = false): H2Stream | undefined {
    if (this.role !== 'client') throw new TypeError('only a client opens streams');
    if (!this.acceptsRequests) return undefined;
    const stream = new H2Stream(this, this.nextStreamId, this.peerInitialWindow, this.streamWindow);
    this.nextStreamId += 2;
    this.streams.set(stream.id, stream);
    if (endStream) stream.localEnded = true;
    this.sendHeaders(stream, block, endStream);
    return stream;
  }

  /** Whether `streamId` names a stream the peer could not have opened or been sent yet (§5.1: idle). */
  private isIdle(streamId: number): boolean {
    return this.role === 'server' ? streamId > this.lastStreamId : streamId >= this.nextStreamId;
  }

  /**
   * Graceful shutdown (§6.8): GOAWAY(NO_ERROR) names the last stream that
   * will be served; the open ones finish, new ones are ignored, and the
   * connection closes when none is left.
   */
  close(): void {
    if (this.closed || this.goingAway) return;
    this.goingAway = true;
    this.goAway(H2Code.NO_ERROR, '');
    this.endIfIdle();
  }

  /** Calls `fn` once the socket is closed (at once if it is). */
  onceClosed(fn: () => void): void {
    if (this.socketClosed) fn();
    else this.closeWaiters.push(fn);
  }

  /** Closes the socket at once; open streams see onClose. */
  destroy(): void {
    this.socket.destroy();
  }

  // ---------------------------------------------------------------------------
  // Receiving

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    const buf = this.input === undefined ? chunk : Buffer.concat([this.input, chunk]);
    let pos = 0;
    try {
      if (!this.prefaceReceived) {
        const n = Math.min(buf.length, CLIENT_PREFACE.length);
        if (!buf.subarray(0, n).equals(CLIENT_PREFACE.subarray(0, n))) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'invalid connection preface');
        if (buf.length < CLIENT_PREFACE.length) {
          this.input = buf;
          return;
        }
        this.prefaceReceived = true;
        pos = CLIENT_PREFACE.length;
      }
      while (buf.length - pos >= FRAME_HEADER_BYTES && !this.closed) {
        const length = buf.readUIntBE(pos, 3);
        // §4.2: a frame above our SETTINGS_MAX_FRAME_SIZE (never raised from its default).
        if (length > DEFAULT_MAX_FRAME) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, `a frame of ${length} bytes, above the maximum of ${DEFAULT_MAX_FRAME}`);
        if (buf.length - pos - FRAME_HEADER_BYTES < length) break;
        const type = buf[pos + 3]!;
        const flags = buf[pos + 4]!;
        const streamId = buf.readUInt32BE(pos + 5) & 0x7fffffff;
        const payload = buf.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + length);
        pos += FRAME_HEADER_BYTES + length;
        this.onFrame(type, flags, streamId, payload);
      }
      this.input = pos < buf.length ? buf.subarray(pos) : undefined;
    } catch (e) {
      this.input = undefined;
      if (e instanceof H2ConnectionError) this.fail(e.h2Code, e.message);
      else if (e instanceof HpackError) this.fail(H2Code.COMPRESSION_ERROR, e.message);
      else {
        this.handler.onHandlerError(e);
        this.fail(H2Code.INTERNAL_ERROR, 'internal error');
      }
    }
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsReceived && type !== TYPE_SETTINGS) {
      throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, this.role === 'server' ? 'the client preface must end with a SETTINGS frame' : 'the server preface must be a SETTINGS frame');
    }
    if (this.headerBlock !== undefined && (type !== TYPE_CONTINUATION || streamId !== this.headerBlock.streamId)) {
      throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `a header block of stream ${this.headerBlock.streamId} was interrupted by another frame`);
    }
    switch (type) {
      case TYPE_DATA:
        return this.onData(flags, streamId, payload);
      case TYPE_HEADERS:
        return this.onHeaders(flags, streamId, payload);
      case TYPE_PRIORITY:
        if (streamId === 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        // §6.3: a wrong length is a stream error; for a stream not open here
        // there is nothing to reset (and RST_STREAM may not name an idle one).
        if (payload.length !== 5 && this.streams.has(streamId)) this.streamError(streamId, H2Code.FRAME_SIZE_ERROR);
        return; // priorities are advisory (§5.3): ignored
      case TYPE_RST_STREAM:
        return this.onRstStream(streamId, payload);
      case TYPE_SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case TYPE_PUSH_PROMISE:
        throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'a client may not send PUSH_PROMISE');
      case TYPE_PING:
        if (streamId !== 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, `PING of ${payload.length} bytes`);
        if ((flags & FLAG_ACK) === 0) this.frame(TYPE_PING, FLAG_ACK, 0, Buffer.from(payload));
        return;
      case TYPE_GOAWAY:
        return this.onGoAway(streamId, payload);
      case TYPE_WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      case TYPE_CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      default:
        return; // §5.5: unknown frame types are ignored
    }
  }

  /** The payload without its padding (§6.1, §6.2). */
  private unpad(flags: number, payload: Buffer, what: string): Buffer {
    if ((flags & FLAG_PADDED) === 0) return payload;
    if (payload.length < 1) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, `padded ${what} without a pad length`);
    const padLength = payload[0]!;
    if (padLength >= payload.length) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `${what} padding longer than its payload`);
    return payload.subarray(1, payload.length - padLength);
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'DATA on stream 0');
    // §6.9: the whole payload, padding included, counts against both windows.
    if (!this.take(0, this.recv, payload.length, this.connectionWindow, true)) {
      throw new H2ConnectionError(H2Code.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    }
    const data = this.unpad(flags, payload, 'DATA');
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      return; // a stream closed or reset here: what was in flight is dropped
    }
    if (stream.remoteEnded) return this.streamError(streamId, H2Code.STREAM_CLOSED);
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    // A stream's last frame needs no window back.
    if (!this.take(streamId, stream, payload.length, this.streamWindow, !endStream)) return this.streamError(streamId, H2Code.FLOW_CONTROL_ERROR);
    if (data.length > 0) this.notify(stream, onDataEvent, data);
    if (endStream && !stream.closed) this.remoteEnd(stream);
  }

  /**
   * Counts `bytes` received against `credit`; false if they were beyond it.
   * With `acknowledge`, once half of `window` is taken, a WINDOW_UPDATE
   * gives it back: data is handed on as it arrives, so nothing is held.
   */
  private take(streamId: number, credit: ReceiveCredit, bytes: number, window: number, acknowledge: boolean): boolean {
    credit.recvWindow -= bytes;
    if (credit.recvWindow < 0) return false;
    if (!acknowledge) return true;
    credit.recvUnacknowledged += bytes;
    if (credit.recvUnacknowledged >= window / 2) {
      this.windowUpdate(streamId, credit.recvUnacknowledged);
      credit.recvWindow += credit.recvUnacknowledged;
      credit.recvUnacknowledged = 0;
    }
    return true;
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let fragment = this.unpad(flags, payload, 'HEADERS');
    if (flags & FLAG_PRIORITY) {
      if (fragment.length < 5) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, 'HEADERS too short for its priority');
      fragment = fragment.subarray(5);
    }
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    if (flags & FLAG_END_HEADERS) return this.onHeaderBlock(streamId, endStream, fragment);
    this.headerBlock = { streamId, endStream, fragments: [Buffer.from(fragment)], bytes: fragment.length };
    this.checkHeaderBlockSize(this.headerBlock.bytes);
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (block === undefined) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `CONTINUATION on stream ${streamId} without a header block`);
    block.fragments.push(Buffer.from(payload));
    block.bytes += payload.length;
    this.checkHeaderBlockSize(block.bytes);
    if ((flags & FLAG_END_HEADERS) === 0) return;
    this.headerBlock = undefined;
    this.onHeaderBlock(block.streamId, block.endStream, Buffer.concat(block.fragments, block.bytes));
  }

  private checkHeaderBlockSize(bytes: number): void {
    // A block is decoded whole, so one beyond the limit cannot be refused
    // alone without losing the HPACK state it may change: the connection ends.
    if (bytes > this.options.maxHeaderListBytes) {
      throw new H2ConnectionError(H2Code.ENHANCE_YOUR_CALM, `a header block of more than ${this.options.maxHeaderListBytes} bytes`);
    }
  }

  private onHeaderBlock(streamId: number, endStream: boolean, block: Buffer): void {
    // Every block is decoded, also one for a stream about to be refused, to
    // keep the dynamic table as the client's encoder keeps it (§4.3).
    const headers: RequestHeaders = Object.create(null) as RequestHeaders;
    let listBytes = 0;
    let malformed = '';
    let regularSeen = false;
    this.decoder.decode(block, (name, value) => {
      listBytes += name.length + value.length + 32;
      if (name.charCodeAt(0) === 0x3a /* ":" */) {
        // §8.3: pseudo-headers come first, once each.
        if (regularSeen || name in headers) malformed ||= `pseudo-header ${name} repeated or after a regular field`;
      } else {
        regularSeen = true;
        if (name !== name.toLowerCase()) malformed ||= `field name ${JSON.stringify(name)} is not lower case`;
      }
      const previous = headers[name];
      if (previous === undefined) headers[name] = value;
      else if (Array.isArray(previous)) previous.push(value);
      else headers[name] = [previous, value];
    });
    const existing = this.streams.get(streamId);
    if (existing !== undefined) {
      // §8.1: a request's or a response's header block may be followed by
      // trailers, which end the stream; nothing may follow those.
      if (existing.remoteEnded) return this.streamError(streamId, H2Code.STREAM_CLOSED);
      existing.headerBlocks++;
      const trailers = this.role === 'server' || existing.headerBlocks > 1;
      if ((trailers && !endStream) || malformed !== '') return this.streamError(streamId, H2Code.PROTOCOL_ERROR);
      this.notify(existing, onHeadersEvent, [headers, endStream] as const);
      if (endStream && !existing.closed) this.remoteEnd(existing);
      return;
    }
    if (!this.isIdle(streamId)) {
      // A stream already closed here (one we reset): its late header blocks are dropped.
      return;
    }
    if (this.role === 'client') throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `HEADERS on stream ${streamId}, which this client did not open`);
    if (streamId % 2 === 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `stream ${streamId}: a client's streams are odd-numbered`);
    this.lastStreamId = streamId;
    if (this.goingAway) return; // §6.8: beyond the last stream our GOAWAY promised
    if (listBytes > this.options.maxHeaderListBytes) malformed ||= `header list of ${listBytes} bytes`;
    if (malformed === '' && (typeof headers[':method'] !== 'string' || typeof headers[':path'] !== 'string')) malformed = 'no :method or :path';
    if (malformed !== '') return this.streamError(streamId, H2Code.PROTOCOL_ERROR);
    if (this.streams.size >= this.options.maxConcurrentStreams || this.queuedBytes() > this.options.maxQueuedBytes) {
      return this.streamError(streamId, H2Code.REFUSED_STREAM);
    }
    const stream = new H2Stream(this, streamId, this.peerInitialWindow, this.streamWindow);
    stream.headerBlocks = 1;
    this.streams.set(streamId, stream);
    try {
      this.handler.onStream?.(stream, headers);
    } catch (e) {
      this.handler.onHandlerError(e);
      stream.reset(H2Code.INTERNAL_ERROR);
    }
    if (endStream && !stream.closed) this.remoteEnd(stream);
  }

  private remoteEnd(stream: H2Stream): void {
    stream.remoteEnded = true;
    this.notify(stream, onEndEvent, undefined);
    if (stream.endSent) this.closeStream(stream);
  }

  private onRstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, `RST_STREAM of ${payload.length} bytes`);
    if (this.isIdle(streamId)) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `RST_STREAM on idle stream ${streamId}`);
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    stream.resetCode = payload.readUInt32BE(0);
    // §8.7: REFUSED_STREAM says the request was not processed.
    stream.refused = stream.resetCode === H2Code.REFUSED_STREAM;
    this.closeStream(stream);
  }

  private onGoAway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, `GOAWAY of ${payload.length} bytes`);
    const lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    this.peerGoingAway = true;
    this.handler.onGoAway?.(lastStreamId, code);
    // §6.8: streams above the last one named were not processed, so they may
    // be retried elsewhere; the others are still answered (a server opens
    // none here, so on a server this closes nothing).
    if (this.role === 'client') {
      for (const stream of [...this.streams.values()]) {
        if (stream.id <= lastStreamId) continue;
        stream.refused = true;
        this.closeStream(stream);
      }
    }
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & FLAG_ACK) {
      if (payload.length !== 0) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      if (!this.settingsAcknowledged) {
        // Our SETTINGS_INITIAL_WINDOW_SIZE holds from here, for the open streams too.
        this.settingsAcknowledged = true;
        const delta = this.options.streamWindowBytes - DEFAULT_WINDOW;
        this.streamWindow = this.options.streamWindowBytes;
        for (const stream of this.streams.values()) stream.recvWindow += delta;
      }
      return;
    }
    if (payload.length % 6 !== 0) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, `SETTINGS of ${payload.length} bytes`);
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      switch (id) {
        case SETTINGS_ENABLE_PUSH:
          if (value > 1) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}`);
          break;
        case SETTINGS_INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new H2ConnectionError(H2Code.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
          // §6.9.2: open streams' windows move by the difference, and may go negative.
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const stream of this.streams.values()) {
            stream.sendWindow += delta;
            if (stream.sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2Code.FLOW_CONTROL_ERROR, `stream ${stream.id}'s window above 2^31-1`);
          }
          break;
        }
        case SETTINGS_MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME || value > MAX_FRAME_LIMIT) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
          this.peerMaxFrame = value;
          break;
        case SETTINGS_HEADER_TABLE_SIZE: // our blocks never use the client's dynamic table
        default:
          break; // §6.5.2: unknown settings are ignored
      }
    }
    this.frame(TYPE_SETTINGS, FLAG_ACK, 0, EMPTY);
    this.pumpAll();
    if (!this.settingsReceived) {
      this.settingsReceived = true;
      this.handler.onEstablished?.();
    }
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2ConnectionError(H2Code.FRAME_SIZE_ERROR, `WINDOW_UPDATE of ${payload.length} bytes`);
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2Code.FLOW_CONTROL_ERROR, 'the connection window above 2^31-1');
      this.pumpAll();
      return;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new H2ConnectionError(H2Code.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${streamId}`);
      return;
    }
    if (increment === 0) return this.streamError(streamId, H2Code.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.streamError(streamId, H2Code.FLOW_CONTROL_ERROR);
    this.pump(stream);
  }

  /** Calls a stream listener's event, so that a throwing listener is reported and resets only its stream. */
  private notify<T>(stream: H2Stream, event: (listener: H2StreamListener, arg: T) => void, arg: T): void {
    const listener = stream.listener;
    if (listener === undefined) return;
    try {
      event(listener, arg);
    } catch (e) {
      this.handler.onHandlerError(e);
      if (!stream.closed) stream.reset(H2Code.INTERNAL_ERROR);
    }
  }

  // ---------------------------------------------------------------------------
  // Sending

  sendHeaders(stream: H2Stream, block: Buffer, endStream: boolean): void {
    this.headerFrames(stream.id, block, endStream);
    if (endStream) this.sentEnd(stream);
  }

  /** A header block as HEADERS and, beyond the client's frame size, CONTINUATION frames. */
  private headerFrames(streamId: number, block: Buffer, endStream: boolean): void {
    const max = this.peerMaxFrame;
    const flags = endStream ? FLAG_END_STREAM : 0;
    if (block.length <= max) {
      this.frame(TYPE_HEADERS, flags | FLAG_END_HEADERS, streamId, block);
      return;
    }
    this.frame(TYPE_HEADERS, flags, streamId, block.subarray(0, max));
    for (let at = max; at < block.length; at += max) {
      const last = at + max >= block.length;
      this.frame(TYPE_CONTINUATION, last ? FLAG_END_HEADERS : 0, streamId, block.subarray(at, at + max));
    }
  }

  /** Sends what a stream has queued as far as the windows and the socket allow, then its end. */
  pump(stream: H2Stream): void {
    if (stream.closed) return;
    if (stream.pendingBytes > 0) {
      this.blocked.add(stream);
      while (stream.pending.length > 0) {
        const allowed = Math.min(this.sendWindow, stream.sendWindow, this.peerMaxFrame);
        if (allowed <= 0 || this.socket.writableLength + this.outBytes > SOCKET_HIGH_WATER) break;
        const head = stream.pending[0]!;
        const piece = head.length <= allowed ? head : head.subarray(0, allowed);
        if (piece === head) stream.pending.shift();
        else stream.pending[0] = head.subarray(allowed);
        stream.pendingBytes -= piece.length;
        stream.sendWindow -= piece.length;
        this.sendWindow -= piece.length;
        const endsHere = stream.pending.length === 0 && stream.localEnded && stream.trailers === undefined;
        this.frame(TYPE_DATA, endsHere ? FLAG_END_STREAM : 0, stream.id, piece);
        if (endsHere) this.sentEnd(stream);
      }
      if (stream.pendingBytes > 0) return;
      this.blocked.delete(stream);
      stream.drained();
    }
    if (stream.localEnded && !stream.endSent && !stream.closed) {
      if (stream.trailers !== undefined) this.headerFrames(stream.id, stream.trailers, true);
      else this.frame(TYPE_DATA, FLAG_END_STREAM, stream.id, EMPTY);
      this.sentEnd(stream);
    }
  }

  private pumpAll(): void {
    for (const stream of [...this.blocked]) this.pump(stream);
  }

  private sentEnd(stream: H2Stream): void {
    stream.endSent = true;
    if (stream.remoteEnded) this.closeStream(stream);
  }

  resetStream(stream: H2Stream, code: H2Code): void {
    if (stream.closed) return;
    this.rstStream(stream.id, code);
    this.closeStream(stream);
  }

  private streamError(streamId: number, code: H2Code): void {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) this.resetStream(stream, code);
    else this.rstStream(streamId, code);
  }

  private rstStream(streamId: number, code: H2Code): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(code, 0);
    this.frame(TYPE_RST_STREAM, 0, streamId, payload);
  }

  private closeStream(stream: H2Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    stream.pending = [];
    stream.pendingBytes = 0;
    this.notify(stream, onCloseEvent, undefined);
    this.endIfIdle();
  }

  private windowUpdate(streamId: number, increment: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    this.frame(TYPE_WINDOW_UPDATE, 0, streamId, payload);
  }

  private goAway(code: H2Code, debug: string): void {
    const payload = Buffer.allocUnsafe(8 + Buffer.byteLength(debug));
    payload.writeUInt32BE(this.lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    payload.write(debug, 8);
    this.frame(TYPE_GOAWAY, 0, 0, payload);
  }

  /** A connection error (§5.4.1): GOAWAY with its code, then close once it is written. */
  private fail(code: H2Code, message: string): void {
    if (this.closed) return;
    this.handler.onConnectionError?.(code, message);
    this.goAway(code, message);
    this.flush();
    this.closed = true;
    this.socket.destroySoon();
  }

  private endIfIdle(): void {
    if (this.goingAway && this.streams.size === 0 && !this.closed) {
      this.flush();
      this.closed = true;
      this.socket.end();
    }
  }

  /** Appends a frame to the output, which goes out in one write at the end of this event-loop turn. */
  private frame(type: number, flags: number, streamId: number, payload: Uint8Array): void {
    if (this.closed || this.socket.destroyed) return;
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    header.writeUIntBE(payload.length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(streamId, 5);
    this.out.push(header);
    this.outBytes += FRAME_HEADER_BYTES;
    if (payload.length > 0) {
      this.out.push(payload as Buffer);
      this.outBytes += payload.length;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(flushConnection, this);
    }
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.outBytes === 0) return;
    const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    if (this.socket.destroyed) return;
    this.socket.write(data);
    // Response DATA waits for the socket (pump), but what the client's own
    // frames call for (PING and SETTINGS acknowledgements, headers of
    // answers) does not: a client that keeps sending and stops reading would
    // grow this buffer without end, so it loses the connection instead.
    if (this.socket.writableLength > this.options.maxQueuedBytes) this.socket.destroy();
  }

  private onSocketClose(): void {
    this.closed = true;
    this.socketClosed = true;
    this.out = [];
    this.outBytes = 0;
    for (const stream of [...this.streams.values()]) this.closeStream(stream);
    this.handler.onConnectionClose(this);
    for (const fn of this.closeWaiters.splice(0)) fn();
  }
}

const EMPTY = Buffer.alloc(0);

function flushConnection(connection: H2Connection): void {
  connection.flush();
}

function onDataEvent(listener: H2StreamListener, data: Buffer): void {
  listener.onData(data);
}

function onHeadersEvent(listener: H2StreamListener, [headers, endStream]: readonly [RequestHeaders, boolean]): void {
  listener.onHeaders?.(headers, endStream);
}

function onEndEvent(listener: H2StreamListener): void {
  listener.onEnd();
}

function onCloseEvent(listener: H2StreamListener): void {
  listener.onClose();
}
