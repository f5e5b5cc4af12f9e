// The write-ahead log's record format.
//
// Every record is framed as
//
//   crc32c u32 LE | length u32 LE | payload (length bytes) | zero padding to 8 bytes
//
// where the CRC covers the length field and the payload, and the payload's
// first byte is the record type. Records are 8-byte aligned, so a tail of
// zeros (a preallocated segment's unused part, or a write the crash cut
// short) reads as a zero header: the end of the data. Numbers are
// little-endian; 64-bit values are stored as two 32-bit halves and must stay
// below 2^53.

import { type ConfState, type Entry, type EntryType, type HardState } from '../raft/types.js';
import { crc32cRange } from './crc.js';

export const FRAME_HEADER_BYTES = 8;
/** The largest payload accepted: anything larger is a damaged length field. */
export const MAX_PAYLOAD_BYTES = 256 * 1024 * 1024;
export const WAL_MAGIC = 'raftkv-wal';
export const WAL_VERSION = 1;

export const RECORD_HEADER = 1;
export const RECORD_ENTRY = 2;
export const RECORD_HARD_STATE = 3;
export const RECORD_SNAPSHOT = 4;
export const RECORD_SEAL = 5;
export const RECORD_FLUSH = 6;

export interface SegmentHeader {
  readonly type: 'header';
  readonly version: number;
  readonly clusterId: string;
  readonly memberId: number;
  /** The segment's sequence number (0, 1, 2, ...). */
  readonly seq: number;
  /** The index the first entry written to this segment was going to have. */
  readonly firstIndex: number;
  /**
   * The size the file was preallocated to before this header was written. A
   * crash never shrinks a file, so a last segment found shorter than this
   * was cut by something else, and records at its end may be gone.
   */
  readonly segmentBytes: number;
}

/**
 * A snapshot at (index, term) is on disk. If `reset`, the log was replaced
 * by it (a snapshot installed from the leader: the log is empty after it
 * until new entries follow); otherwise the log is unchanged (a snapshot of
 * this member's own state, or the copy of the latest marker that starts
 * every segment). Carrying the decision makes replay independent of the
 * segments released before it.
 */
export interface SnapshotMarker {
  readonly type: 'snapshot';
  readonly index: number;
  readonly term: number;
  readonly reset: boolean;
  readonly confState: ConfState;
}

export type WalRecord =
  | SegmentHeader
  | { readonly type: 'entry'; readonly entry: Entry }
  | { readonly type: 'hardState'; readonly hardState: HardState }
  | SnapshotMarker
  /** The segment is complete; the log goes on in segment `nextSeq`. */
  | { readonly type: 'seal'; readonly nextSeq: number }
  /**
   * The end of one write + fdatasync (see wal.ts, recovery): a record found
   * after it was written by a later flush, which began only once this one
   * was durable.
   */
  | { readonly type: 'flush'; readonly seq: number };

export function padded(n: number): number {
  return (n + 7) & ~7;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const TWO_32 = 2 ** 32;

function putU64(view: DataView, at: number, n: number): void {
  view.setUint32(at, n % TWO_32, true);
  view.setUint32(at + 4, Math.floor(n / TWO_32), true);
}

/** Straight from the bytes: records are decoded often, and a DataView per record costs more than the read. */
function getU64(p: Uint8Array, at: number): number {
  const lo = (p[at]! | (p[at + 1]! << 8) | (p[at + 2]! << 16)) + p[at + 3]! * 0x1000000;
  const hi = (p[at + 4]! | (p[at + 5]! << 8) | (p[at + 6]! << 16)) + p[at + 7]! * 0x1000000;
  return lo + hi * TWO_32;
}

const ENTRY_TYPES: readonly EntryType[] = ['normal', 'confChange'];

/**
 * Appends framed records to a growing buffer. One encoder is reused for
 * every batch: the buffer grows to the largest batch and stays.
 */
export class RecordEncoder {
  private buf: Uint8Array;
  private view: DataView;

  /** `initialBytes`: the batch encoder starts big; one for a segment's few header records, small. */
  constructor(initialBytes = 64 * 1024) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }
  /** Bytes encoded since the last reset(). */
  length = 0;

  reset(): void {
    this.length = 0;
  }

  /** The encoded bytes (a view: valid until the next call). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  private reserve(payload: number): number {
    const need = this.length + FRAME_HEADER_BYTES + padded(payload);
    if (need > this.buf.length) {
      const next = new Uint8Array(Math.max(need, this.buf.length * 2));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    // Every encoder below writes its whole payload; the padding after it must
    // be zeros, and the buffer is reused.
    this.buf.fill(0, at + FRAME_HEADER_BYTES + payload, need);
    this.view.setUint32(at + 4, payload, true);
    return at;
  }

  /** Seals the record at `at`: writes its CRC and moves past it. Returns the record's offset. */
  private finish(at: number, payload: number): number {
    const crc = crc32cRange(this.buf, at + 4, at + FRAME_HEADER_BYTES + payload);
    this.view.setUint32(at, crc, true);
    this.length = at + FRAME_HEADER_BYTES + padded(payload);
    return at;
  }

  entry(e: Entry): number {
    const payload = 1 + 8 + 8 + 1 + e.data.byteLength;
    const at = this.reserve(payload);
    const p = at + FRAME_HEADER_BYTES;
    this.buf[p] = RECORD_ENTRY;
    putU64(this.view, p + 1, e.index);
    putU64(this.view, p + 9, e.term);
    this.buf[p + 17] = e.type === 'normal' ? 0 : 1;
    this.buf.set(e.data, p + 18);
    return this.finish(at, payload);
  }

  hardState(hs: HardState): number {
    const payload = 1 + 24;
    const at = this.reserve(payload);
    const p = at + FRAME_HEADER_BYTES;
    this.buf[p] = RECORD_HARD_STATE;
    putU64(this.view, p + 1, hs.term);
    putU64(this.view, p + 9, hs.vote);
    putU64(this.view, p + 17, hs.commit);
    return this.finish(at, payload);
  }

  snapshot(m: Omit<SnapshotMarker, 'type'>): number {
    const conf = textEncoder.encode(JSON.stringify(m.confState));
    const payload = 1 + 17 + conf.length;
    const at = this.reserve(payload);
    const p = at + FRAME_HEADER_BYTES;
    this.buf[p] = RECORD_SNAPSHOT;
    putU64(this.view, p + 1, m.index);
    putU64(this.view, p + 9, m.term);
    this.buf[p + 17] = m.reset ? 1 : 0;
    this.buf.set(conf, p + 18);
    return this.finish(at, payload);
  }

  header(h: Omit<SegmentHeader, 'type' | 'version'>): number {
    const magic = textEncoder.encode(WAL_MAGIC);
    const cluster = textEncoder.encode(h.clusterId);
    const payload = 1 + magic.length + 2 + 8 + 8 + 8 + 8 + 2 + cluster.length;
    const at = this.reserve(payload);
    let p = at + FRAME_HEADER_BYTES;
    this.buf[p++] = RECORD_HEADER;
    this.buf.set(magic, p);
    p += magic.length;
    this.view.setUint16(p, WAL_VERSION, true);
    putU64(this.view, p + 2, h.memberId);
    putU64(this.view, p + 10, h.seq);
    putU64(this.view, p + 18, h.firstIndex);
    putU64(this.view, p + 26, h.segmentBytes);
    this.view.setUint16(p + 34, cluster.length, true);
    this.buf.set(cluster, p + 36);
    return this.finish(at, payload);
  }

  flushEnd(seq: number): number {
    return this.numberRecord(RECORD_FLUSH, seq);
  }

  seal(nextSeq: number): number {
    return this.numberRecord(RECORD_SEAL, nextSeq);
  }

  /** A record of a type byte and one number. */
  private numberRecord(type: number, n: number): number {
    const payload = 1 + 8;
    const at = this.reserve(payload);
    const p = at + FRAME_HEADER_BYTES;
    this.buf[p] = type;
    putU64(this.view, p + 1, n);
    return this.finish(at, payload);
  }
}

/** Why bytes at an offset are not a record. */
export type FrameProblem =
  /** A zero header: the end of the data (or a write that never reached the disk). */
  | 'zero'
  /** The frame runs past the end of the bytes available. */
  | 'truncated'
  /** The length field is impossible. */
  | 'length'
  /** The checksum does not match. */
  | 'checksum'
  /**
   * The zeros after a record are not zeros. The checksum does not cover
   * them, but a torn write cannot cause this (padding shares its 8-byte
   * block, hence its sector, with the record's last byte): it is damage.
   */
  | 'padding';

export type FrameResult =
  | { readonly ok: true; readonly payload: Uint8Array; readonly size: number }
  | { readonly ok: false; readonly problem: FrameProblem };

/** Reads the frame at `at` in `buf` (which holds the file's bytes from some offset up to `end`). */
export function readFrame(buf: Uint8Array, view: DataView, at: number, end: number): FrameResult {
  if (at + FRAME_HEADER_BYTES > end) {
    return { ok: false, problem: isZero(buf, at, end) ? 'zero' : 'truncated' };
  }
  const crc = view.getUint32(at, true);
  const length = view.getUint32(at + 4, true);
  if (length === 0) return { ok: false, problem: crc === 0 ? 'zero' : 'length' };
  if (length > MAX_PAYLOAD_BYTES) return { ok: false, problem: 'length' };
  const size = FRAME_HEADER_BYTES + padded(length);
  if (at + FRAME_HEADER_BYTES + length > end) return { ok: false, problem: 'truncated' };
  if (crc32cRange(buf, at + 4, at + FRAME_HEADER_BYTES + length) !== crc) return { ok: false, problem: 'checksum' };
  if (!isZero(buf, at + FRAME_HEADER_BYTES + length, Math.min(at + size, end))) return { ok: false, problem: 'padding' };
  return { ok: true, payload: buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length), size };
}

export function isZero(buf: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}

/** A payload that passed its checksum but does not parse: a bug or a foreign file. */
export class MalformedRecordError extends Error {}

/** UTF-8 text of a record field; bytes that are not UTF-8 make the record malformed. */
function decodeText(bytes: Uint8Array, what: string): string {
  try {
    return textDecoder.decode(bytes);
  } catch {
    throw new MalformedRecordError(`${what} is not UTF-8 text`);
  }
}

function payloadView(p: Uint8Array): DataView {
  return new DataView(p.buffer, p.byteOffset, p.byteLength);
}

function need(p: Uint8Array, n: number, what: string): void {
  if (p.length < n) throw new MalformedRecordError(`${what} record of ${p.length} bytes, expected at least ${n}`);
}

/** The index and term of an entry record, without copying its data (recovery's fast path). */
export function entryIndexTerm(p: Uint8Array): { index: number; term: number } {
  need(p, 18, 'entry');
  return { index: getU64(p, 1), term: getU64(p, 9) };
}

/** The index of an entry record, without decoding the rest (reading back: entries passed over). */
export function entryIndex(p: Uint8Array): number {
  need(p, 18, 'entry');
  return getU64(p, 1);
}

/** Decodes an entry record's payload (type RECORD_ENTRY); the data is copied, so `p` may be reused. */
export function decodeEntryRecord(p: Uint8Array): Entry {
  need(p, 18, 'entry');
  const type = ENTRY_TYPES[p[17]!];
  if (type === undefined) throw new MalformedRecordError(`entry type ${p[17]}`);
  // A copy even if `p` is a Buffer (whose own slice() would share the bytes).
  const data = Uint8Array.prototype.slice.call(p, 18);
  return { index: getU64(p, 1), term: getU64(p, 9), type, data };
}

/** Decodes a payload; entry data is copied, so `p` may be reused. */
export function decodePayload(p: Uint8Array): WalRecord {
  if (p[0] === RECORD_ENTRY) return { type: 'entry', entry: decodeEntryRecord(p) };
  switch (p[0]) {
    case RECORD_HARD_STATE:
      need(p, 25, 'hard state');
      return { type: 'hardState', hardState: { term: getU64(p, 1), vote: getU64(p, 9), commit: getU64(p, 17) } };
    case RECORD_SNAPSHOT: {
      need(p, 18, 'snapshot');
      if (p[17]! > 1) throw new MalformedRecordError(`snapshot record flag ${p[17]}`);
      let confState: ConfState;
      try {
        confState = JSON.parse(decodeText(p.subarray(18), 'snapshot configuration')) as ConfState;
      } catch {
        throw new MalformedRecordError('snapshot record with an unreadable configuration');
      }
      return { type: 'snapshot', index: getU64(p, 1), term: getU64(p, 9), reset: p[17] === 1, confState };
    }
    case RECORD_HEADER: {
      const magic = textEncoder.encode(WAL_MAGIC);
      need(p, 1 + magic.length + 36, 'header');
      if (decodeText(p.subarray(1, 1 + magic.length), 'segment magic') !== WAL_MAGIC) {
        throw new MalformedRecordError('not a raftkv write-ahead log segment');
      }
      const q = 1 + magic.length;
      const v = payloadView(p);
      const clusterLength = v.getUint16(q + 34, true);
      need(p, q + 36 + clusterLength, 'header');
      return {
        type: 'header',
        version: v.getUint16(q, true),
        memberId: getU64(p, q + 2),
        seq: getU64(p, q + 10),
        firstIndex: getU64(p, q + 18),
        segmentBytes: getU64(p, q + 26),
        clusterId: decodeText(p.subarray(q + 36, q + 36 + clusterLength), 'cluster id'),
      };
    }
    case RECORD_SEAL:
      need(p, 9, 'seal');
      return { type: 'seal', nextSeq: getU64(p, 1) };
    case RECORD_FLUSH:
      need(p, 9, 'flush');
      return { type: 'flush', seq: getU64(p, 1) };
    default:
      throw new MalformedRecordError(`unknown record type ${p[0]}`);
  }
}
