// etcdctl 3.4 dials each endpoint of `endpoint status` (and of the other
// per-member maintenance commands: hashkv, defrag, snapshot save,
// move-leader) with the endpoint URL as the gRPC target, and grpc-go sends
// that whole URL, "http://127.0.0.1:2379", as the HTTP/2 :authority. Go's
// HTTP/2 server (so etcd) accepts it; nghttp2, Node's HTTP/2 parser, checks
// an authority's characters (RFC 3986 §3.2) and resets the stream with
// PROTOCOL_ERROR, so `etcdctl --endpoints=http://... endpoint status` failed.
// (etcd 3.5.0's client sent an invalid authority too: etcd-io/etcd#13192.)
//
// Node's server offers no way to relax that check, so the client port looks
// at the first request of each HTTP/2 connection before Node's parser does:
//
// - Its authority is valid (every client but these): the connection goes to
//   Node's HTTP/2 server natively, with no cost after the first request.
// - It is not: the connection is served through a filter that rewrites the
//   characters an authority may not contain to "_" in every request's
//   :authority and host fields, keeping their length (so both sides' HPACK
//   tables stay alike) — raftkv serves every authority alike, as etcd does.
//
// To see a first request from clients that wait for the server's SETTINGS
// before sending one (grpc-go does), the listener answers the preface with
// an empty SETTINGS frame of its own, and removes the client's ACK of it from
// what Node's server receives (Node's server sends its own SETTINGS and
// expects exactly one ACK for it).

import { type DecodedField, encodeLiteral, HpackDecoder, HpackError } from './hpack.js';

const FRAME_HEADER_BYTES = 9;
const TYPE_HEADERS = 0x1;
const TYPE_SETTINGS = 0x4;
const TYPE_CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** SETTINGS_MAX_FRAME_SIZE's initial value; Node's server keeps it. */
const MAX_FRAME_PAYLOAD = 16384;

/** An empty SETTINGS frame: the server connection preface (RFC 9113 §3.4). */
export const EMPTY_SETTINGS_FRAME = Buffer.from([0, 0, 0, TYPE_SETTINGS, 0, 0, 0, 0, 0]);

/** RFC 3986 §3.2: unreserved, pct-encoded, sub-delims, ":", "@", "[" and "]". */
const AUTHORITY_CHAR = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@[\]]*$/;

/** Whether nghttp2 would accept `value` as an :authority or host. */
export function isValidAuthority(value: string): boolean {
  return AUTHORITY_CHAR.test(value);
}

/** The same length, each character an authority may not contain replaced by "_". */
export function repairAuthority(value: string): string {
  let out = '';
  for (const c of value) out += AUTHORITY_CHAR.test(c) ? c : '_';
  return out;
}

const isAuthorityField = (name: string): boolean => name === ':authority' || name === 'host';

/** A header block being collected: its HEADERS frame and any CONTINUATIONs. */
interface PendingBlock {
  readonly frames: Buffer[];
  readonly fragments: Buffer[];
  readonly flags: number;
  readonly streamId: number;
  readonly priority: Buffer | undefined;
}

/**
 * The client-to-server byte stream of one HTTP/2 connection (after the
 * 24-byte preface), frame by frame: drops the first SETTINGS ACK, and
 * rewrites invalid authorities in header blocks. Frames other than HEADERS
 * and CONTINUATION pass through unchanged, as they arrive.
 */
export class RequestStreamFilter {
  private readonly decoder = new HpackDecoder();
  private buffered: Buffer = Buffer.alloc(0);
  /** Bytes of a passing frame's payload still to come. */
  private passing = 0;
  private block: PendingBlock | undefined;
  private ackDropped = false;
  /** A block could not be decoded: from then on everything passes unchanged, for nghttp2 to refuse. */
  private undecodable = false;
  /** Header blocks completed so far. */
  blocks = 0;
  /** Header blocks whose authority had to be repaired. */
  repairs = 0;

  get settingsAckDropped(): boolean {
    return this.ackDropped;
  }

  /** Feeds bytes from the client; returns the bytes for the server, in order. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let data = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.buffered = Buffer.alloc(0);
    while (data.length > 0) {
      if (this.passing > 0 || this.undecodable) {
        const n = this.undecodable ? data.length : Math.min(this.passing, data.length);
        out.push(data.subarray(0, n));
        if (!this.undecodable) this.passing -= n;
        data = data.subarray(n);
        continue;
      }
      if (data.length < FRAME_HEADER_BYTES) break;
      const length = data.readUIntBE(0, 3);
      const type = data[3]!;
      const flags = data[4]!;
      if (this.block !== undefined && type !== TYPE_CONTINUATION) {
        // RFC 9113 §6.10: nothing may come between a header block's frames.
        out.push(...this.giveUp([]));
        continue;
      }
      if (type !== TYPE_HEADERS && type !== TYPE_CONTINUATION) {
        if (type === TYPE_SETTINGS && flags & FLAG_ACK && length === 0 && !this.ackDropped) {
          // The ACK of the listener's own SETTINGS: the first one the client sends.
          this.ackDropped = true;
          data = data.subarray(FRAME_HEADER_BYTES);
          continue;
        }
        out.push(data.subarray(0, FRAME_HEADER_BYTES));
        this.passing = length;
        data = data.subarray(FRAME_HEADER_BYTES);
        continue;
      }
      if (data.length < FRAME_HEADER_BYTES + length) break; // header frames are handled whole
      const frame = data.subarray(0, FRAME_HEADER_BYTES + length);
      data = data.subarray(frame.length);
      out.push(...this.headerFrame(frame, type, flags));
    }
    if (data.length > 0) this.buffered = Buffer.from(data);
    return out;
  }

  /** Bytes received but not yet returned (a frame's unfinished header, or an unfinished header block). */
  takeUnprocessed(): Buffer[] {
    const rest = [...(this.block?.frames ?? []), this.buffered];
    this.block = undefined;
    this.buffered = Buffer.alloc(0);
    return rest;
  }

  private headerFrame(frame: Buffer, type: number, flags: number): Buffer[] {
    const streamId = frame.readUInt32BE(5) & 0x7fffffff;
    let payload = frame.subarray(FRAME_HEADER_BYTES);
    if (type === TYPE_HEADERS) {
      if (this.block !== undefined) return this.giveUp([frame]);
      let priority: Buffer | undefined;
      if (flags & FLAG_PADDED) {
        const padding = payload[0] ?? 0;
        if (payload.length < 1 + padding) return this.giveUp([frame]);
        payload = payload.subarray(1, payload.length - padding);
      }
      if (flags & FLAG_PRIORITY) {
        if (payload.length < 5) return this.giveUp([frame]);
        priority = Buffer.from(payload.subarray(0, 5));
        payload = payload.subarray(5);
      }
      this.block = { frames: [frame], fragments: [payload], flags, streamId, priority };
    } else {
      if (this.block === undefined || this.block.streamId !== streamId) return this.giveUp([frame]);
      this.block.frames.push(frame);
      this.block.fragments.push(payload);
    }
    if (!(flags & FLAG_END_HEADERS)) return [];
    const block = this.block!;
    this.block = undefined;
    this.blocks++;
    let fields: DecodedField[];
    const encoded = Buffer.concat(block.fragments);
    try {
      fields = this.decoder.decode(encoded, (name, value) => (isAuthorityField(name) && !isValidAuthority(value) ? repairAuthority(value) : value));
    } catch (e) {
      if (e instanceof HpackError) return this.giveUp(block.frames);
      throw e;
    }
    const repaired = this.reencode(encoded, fields);
    if (repaired === undefined) return block.frames;
    this.repairs++;
    return framesFor(repaired, block);
  }

  /** The block with every literal field the decoder rewrote re-encoded; undefined when nothing changed. */
  private reencode(encoded: Buffer, fields: DecodedField[]): Buffer | undefined {
    const parts: Buffer[] = [];
    let copiedTo = 0;
    for (const field of fields) {
      if (field.value === field.received) continue;
      parts.push(encoded.subarray(copiedTo, field.start), encodeLiteral(field, field.value));
      copiedTo = field.end;
    }
    if (parts.length === 0) return undefined;
    parts.push(encoded.subarray(copiedTo));
    return Buffer.concat(parts);
  }

  private giveUp(frames: Buffer[]): Buffer[] {
    this.undecodable = true;
    const pending = this.block?.frames ?? [];
    this.block = undefined;
    return [...pending, ...frames];
  }
}

/** A repaired header block as a HEADERS frame and CONTINUATIONs, each within the default frame size. */
function framesFor(encoded: Buffer, block: PendingBlock): Buffer[] {
  const frames: Buffer[] = [];
  let offset = 0;
  let first = true;
  while (first || offset < encoded.length) {
    const lead = first && block.priority ? block.priority : Buffer.alloc(0);
    const take = Math.min(encoded.length - offset, MAX_FRAME_PAYLOAD - lead.length);
    const last = offset + take >= encoded.length;
    const type = first ? TYPE_HEADERS : TYPE_CONTINUATION;
    // Keep END_STREAM and PRIORITY on HEADERS; padding is dropped.
    const flags = (first ? block.flags & ~(FLAG_PADDED | FLAG_END_HEADERS) : 0) | (last ? FLAG_END_HEADERS : 0);
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    header.writeUIntBE(lead.length + take, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(block.streamId, 5);
    frames.push(header, lead, encoded.subarray(offset, offset + take));
    offset += take;
    first = false;
  }
  return frames;
}
