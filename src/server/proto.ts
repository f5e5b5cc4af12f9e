// The protocol-buffers wire format (https://protobuf.dev/programming-guides/encoding/),
// hand-written for the few etcd messages raftkv speaks: a reader that decodes
// in place and a writer into one preallocated buffer.
//
// Integer conventions follow src/kv/types.ts: int64/uint64 revisions,
// versions and counts are `number` (exact up to 2^53, which no revision will
// reach); lease, member and cluster ids, which etcd draws at random over 64
// bits, are `bigint`. A negative int64 is a 10-byte varint (two's complement),
// as every protobuf implementation writes it.
//
// Bytes fields are decoded as views into the input (no copy): a caller that
// keeps a decoded key or value beyond the life of the received buffer must
// copy it, or it pins the whole buffer.

/** The six wire types (the low three bits of a tag). */
export const enum WireType {
  VARINT = 0,
  I64 = 1,
  LEN = 2,
  START_GROUP = 3,
  END_GROUP = 4,
  I32 = 5,
}

/** A message's declared fields by number: name and wire type, for errors on a mismatch. */
export type FieldTable = Readonly<Record<number, readonly [name: string, wireType: WireType]>>;

/** Malformed protobuf input; `reason` names the problem, `offset` where it is. */
export class ProtoDecodeError extends Error {
  readonly code = 'PROTO_MALFORMED';
  constructor(
    readonly reason: string,
    readonly offset: number,
  ) {
    super(`malformed protobuf at byte ${offset}: ${reason}`);
    this.name = 'ProtoDecodeError';
  }
}

const TWO_32 = 4294967296;
/** Protobuf C++'s default recursion limit: deeper nesting (txns in txns) is refused, not a stack overflow. */
const MAX_DEPTH = 100;
const utf8 = new TextDecoder('utf-8');

/**
 * Reads fields from `buf[pos, end)`. A message's decoder loops
 * `while (r.pos < r.end) { const tag = r.tag(); switch (tag) ... }`,
 * matching each known field by its whole tag (number and wire type), calling
 * the typed reader for it, and r.other(tag, FIELDS, name) for the rest.
 */
export class ProtoReader {
  pos: number;
  /** The end of the message being read: a nested message narrows it (enter/leave). */
  end: number;
  /** Nesting depth of the message being read, bounded so that hostile input cannot exhaust the stack. */
  private depth = 0;
  // The last 64-bit varint read, as two 32-bit halves.
  private lo = 0;
  private hi = 0;

  constructor(
    readonly buf: Uint8Array,
    pos = 0,
    end = buf.length,
  ) {
    this.pos = pos;
    this.end = end;
  }

  /**
   * Reads a nested message's length prefix and narrows `end` to its bytes.
   * Returns the enclosing end, to hand back to leave() once it is read.
   */
  enter(): number {
    const outer = this.end;
    this.end = this.lengthEnd();
    if (++this.depth > MAX_DEPTH) throw new ProtoDecodeError(`messages nested deeper than ${MAX_DEPTH}`, this.pos);
    return outer;
  }

  leave(outer: number): void {
    this.end = outer;
    this.depth--;
  }

  /** Reads a tag and checks its field number (1..2^29-1) and wire type. */
  tag(): number {
    const at = this.pos;
    const t = this.uint32();
    if (t >>> 3 === 0) throw new ProtoDecodeError('field number 0', at);
    if ((t & 7) > 5) throw new ProtoDecodeError(`invalid wire type ${t & 7}`, at);
    return t;
  }

  /** A varint that must fit 32 bits (tags, lengths): longer values are an error. */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    const end = this.end;
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (pos >= end) throw new ProtoDecodeError('truncated varint', this.pos);
      const b = buf[pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (result >= TWO_32) throw new ProtoDecodeError('varint exceeds 32 bits', this.pos);
        this.pos = pos;
        return result;
      }
    }
    throw new ProtoDecodeError('varint exceeds 32 bits', this.pos);
  }

  /**
   * Reads a 64-bit varint into lo (the low 32 bits, unsigned) and hi (the
   * high 32 bits, as an int32): the value is hi * 2^32 + lo.
   */
  private varint64(): void {
    const buf = this.buf;
    let pos = this.pos;
    const end = this.end;
    let lo = 0;
    let hi = 0;
    let b: number;
    // Bytes 1-4 carry bits 0-27.
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) throw new ProtoDecodeError('truncated varint', this.pos);
      b = buf[pos++]!;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        this.lo = lo >>> 0;
        this.hi = 0;
        return;
      }
    }
    // Byte 5 carries bits 28-34: four into lo, three into hi.
    if (pos >= end) throw new ProtoDecodeError('truncated varint', this.pos);
    b = buf[pos++]!;
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      // Bytes 6-10 carry bits 35-63 (the 10th byte's bit 0 is bit 63; the
      // rest of it is ignored, as other implementations do).
      for (let shift = 3; ; shift += 7) {
        if (pos >= end) throw new ProtoDecodeError('truncated varint', this.pos);
        b = buf[pos++]!;
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
        if (shift >= 31) throw new ProtoDecodeError('varint longer than 10 bytes', this.pos);
      }
    }
    this.pos = pos;
    this.lo = lo >>> 0;
    this.hi = hi | 0;
  }

  /** int64 as a number: negative values (10-byte varints) come back negative. */
  int64(): number {
    this.varint64();
    return this.hi * TWO_32 + this.lo;
  }

  /** uint64 as a number. */
  uint64(): number {
    this.varint64();
    return (this.hi >>> 0) * TWO_32 + this.lo;
  }

  /** uint64 as a bigint (member and cluster ids). */
  uint64Big(): bigint {
    this.varint64();
    return this.hi === 0 ? BigInt(this.lo) : (BigInt(this.hi >>> 0) << 32n) | BigInt(this.lo);
  }

  /** int64 as a bigint (lease ids). */
  int64Big(): bigint {
    this.varint64();
    if (this.hi === 0) return BigInt(this.lo);
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** An enum or int32 field; values beyond 32 bits keep their low 32 bits, as proto3 says. */
  int32(): number {
    this.varint64();
    return this.lo | 0;
  }

  bool(): boolean {
    this.varint64();
    return this.lo !== 0 || this.hi !== 0;
  }

  /** Reads a length prefix and returns the end of the field's bytes, checked against the buffer. */
  lengthEnd(): number {
    const at = this.pos;
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) throw new ProtoDecodeError(`length ${len} runs past the end of the message`, at);
    return end;
  }

  /** A bytes field, as a view into the input. */
  bytes(): Uint8Array {
    const end = this.lengthEnd();
    const v = this.buf.subarray(this.pos, end);
    this.pos = end;
    return v;
  }

  string(): string {
    const end = this.lengthEnd();
    const v = end === this.pos ? '' : utf8.decode(this.buf.subarray(this.pos, end));
    this.pos = end;
    return v;
  }

  /**
   * The default branch of a message decoder: a field the decoder did not
   * match. Skips it if the message does not declare it; a declared field that
   * arrived with another wire type is malformed input.
   */
  other(tag: number, fields: FieldTable, message: string): void {
    const f = fields[tag >>> 3];
    if (f !== undefined) {
      throw new ProtoDecodeError(`${message}.${f[0]} (field ${tag >>> 3}) has wire type ${tag & 7}, expected ${f[1]}`, this.pos);
    }
    this.skip(tag);
  }

  /** Skips an unknown field of any wire type, groups included. */
  skip(tag: number): void {
    switch (tag & 7) {
      case WireType.VARINT:
        this.varint64();
        return;
      case WireType.I64:
        this.advance(8);
        return;
      case WireType.LEN:
        this.pos = this.lengthEnd();
        return;
      case WireType.I32:
        this.advance(4);
        return;
      case WireType.START_GROUP: {
        const field = tag >>> 3;
        for (;;) {
          if (this.pos >= this.end) throw new ProtoDecodeError(`group ${field} is not closed`, this.pos);
          const t = this.tag();
          if ((t & 7) === WireType.END_GROUP) {
            if (t >>> 3 !== field) throw new ProtoDecodeError(`group ${field} closed as ${t >>> 3}`, this.pos);
            return;
          }
          this.skip(t);
        }
      }
      default:
        throw new ProtoDecodeError(`end of group ${tag >>> 3} without a start`, this.pos);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new ProtoDecodeError(`truncated ${n * 8}-bit field`, this.pos);
    this.pos += n;
  }
}

// ---------------------------------------------------------------------------
// Writing. Encoders compute a message's size first (sizes of nested messages
// are remembered in a SizeCache in the order they are visited), allocate one
// buffer and then write in the same order, reading the cached sizes back.

/** The encoded size of a varint holding a non-negative value below 2^53 or, for negative int64, 10. */
export function varintSize(v: number): number {
  if (v < 0) return 10;
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  if (v < 2 ** 35) return 5;
  if (v < 2 ** 42) return 6;
  if (v < 2 ** 49) return 7;
  if (v < 2 ** 56) return 8;
  return v < 2 ** 63 ? 9 : 10;
}

/** The encoded size of a 64-bit id as a varint (a negative bigint is two's complement: 10 bytes). */
export function bigVarintSize(v: bigint): number {
  if (v < 0n) return 10;
  if (v < 0x100000000n) return varintSize(Number(v));
  let n = 5;
  for (let x = v >> 35n; x > 0n; x >>= 7n) n++;
  return Math.min(n, 10);
}

/** Size of a length-delimited field's body with its length prefix. */
export function lenSize(len: number): number {
  return varintSize(len) + len;
}

/** The UTF-8 length of a string, without encoding it. */
export function utf8Size(s: string): number {
  // Buffer.byteLength is native and exact, lone surrogates included.
  return s.length === 0 ? 0 : Buffer.byteLength(s, 'utf8');
}

/** Sizes of nested messages, pushed during sizing and read back in the same order while writing. */
export class SizeCache {
  readonly sizes: number[] = [];
  cursor = 0;

  /** Reserves a slot for a message whose size is known only after its children. */
  reserve(): number {
    this.sizes.push(0);
    return this.sizes.length - 1;
  }

  /** Remembers a size computed once and needed again while writing (a string's UTF-8 length). */
  push(size: number): void {
    this.sizes.push(size);
  }

  set(slot: number, size: number): void {
    this.sizes[slot] = size;
  }

  next(): number {
    return this.sizes[this.cursor++]!;
  }

  reset(): void {
    this.sizes.length = 0;
    this.cursor = 0;
  }
}

/** Writes into a buffer sized in advance; it throws if the sizing was wrong (a bug, not bad input). */
export class ProtoWriter {
  pos: number;

  constructor(
    readonly buf: Buffer,
    pos = 0,
  ) {
    this.pos = pos;
  }

  /** A tag: field number and wire type, as a varint. */
  tag(field: number, wireType: WireType): void {
    this.uint32((field << 3) | wireType);
  }

  uint32(v: number): void {
    const buf = this.buf;
    let pos = this.pos;
    while (v > 0x7f) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  /** A non-negative integer below 2^53 or a negative one (two's complement, 10 bytes). */
  int64(v: number): void {
    if (v >= 0 && v < TWO_32) {
      this.uint32(v);
      return;
    }
    const hi = Math.floor(v / TWO_32);
    this.varint64(v - hi * TWO_32, hi >>> 0);
  }

  /** A 64-bit id; a negative bigint is written as its two's complement. */
  big(v: bigint): void {
    if (v >= 0n && v < 0x100000000n) {
      this.uint32(Number(v));
      return;
    }
    const u = BigInt.asUintN(64, v);
    this.varint64(Number(u & 0xffffffffn), Number(u >> 32n));
  }

  private varint64(lo: number, hi: number): void {
    const buf = this.buf;
    let pos = this.pos;
    // Emit 7 bits at a time from the 64-bit value hi:lo (both unsigned 32-bit).
    while (hi !== 0 || lo > 0x7f) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  bytes(v: Uint8Array): void {
    this.uint32(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** A string whose UTF-8 size `size` was computed by utf8Size. */
  string(v: string, size: number): void {
    this.uint32(size);
    if (size > 0) this.buf.write(v, this.pos, size, 'utf8');
    this.pos += size;
  }
}
