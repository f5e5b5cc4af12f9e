// The byte-level encoding under commands, stored responses and snapshots:
// LEB128 varints, length-prefixed bytes, signed integers as a sign byte and a
// magnitude. Exact for every integer-valued number (a varint splits a double
// into 7-bit groups by division by powers of two, which is exact), so int64
// fields that arrive as imprecise numbers survive the round trip unchanged.
//
// The Reader checks every bound and throws `CodecError` on truncated or
// malformed input; callers turn that into their own typed error.

/** Bytes that do not decode: a truncated or damaged buffer. */
export class CodecError extends Error {
  readonly code = 'KV_CODEC';
}

/**
 * What buf.toString('latin1', start, end) calls, applied to any Uint8Array:
 * no Buffer view to allocate first, which matters once per key and value.
 */
const latin1Slice = Buffer.prototype.latin1Slice as (this: Uint8Array, start: number, end: number) => string;

/** The bytes of `u8` as a string of char codes 0..255 (one-byte string): compares like the bytes. */
export function bytesToLatin1(u8: Uint8Array): string {
  return u8.length === 0 ? '' : latin1Slice.call(u8, 0, u8.length);
}

/** The inverse of bytesToLatin1 (a fresh buffer). */
export function latin1ToBytes(s: string): Uint8Array {
  return Buffer.from(s, 'latin1');
}

/**
 * A growable byte buffer. Its storage is a Buffer for Node's fast latin1
 * writes; what it hands out is a view (written) or a plain copy (finish):
 * beware Buffer#slice, which does not copy.
 */
export class Writer {
  private buf: Buffer;
  private view: DataView;
  pos = 0;

  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.alloc(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  u8(n: number): void {
    this.ensure(1);
    this.buf[this.pos++] = n;
  }

  bool(b: boolean): void {
    this.u8(b ? 1 : 0);
  }

  /** A non-negative integer. */
  uvarint(n: number): void {
    this.ensure(n < 2 ** 63 ? 10 : 160);
    const buf = this.buf;
    let pos = this.pos;
    if (n < 0x10000000) {
      while (n >= 0x80) {
        buf[pos++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
    } else {
      // Beyond 28 bits: remainder and division by 128 are exact for integer-valued doubles.
      while (n >= 0x80) {
        buf[pos++] = (n % 0x80) | 0x80;
        n = Math.floor(n / 0x80);
      }
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  /** Any integer: a sign byte, then the magnitude. */
  svarint(n: number): void {
    if (n < 0) {
      this.u8(1);
      this.uvarint(-n);
    } else {
      this.u8(0);
      this.uvarint(n);
    }
  }

  /** A signed 64-bit integer (lease ids). */
  i64(n: bigint): void {
    this.ensure(8);
    this.view.setBigInt64(this.pos, n, true);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.uvarint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A string of char codes 0..255 (see bytesToLatin1), as its bytes. */
  latin1(s: string): void {
    this.uvarint(s.length);
    this.ensure(s.length);
    if (s.length < 32) {
      const buf = this.buf;
      let pos = this.pos;
      for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
    } else {
      this.buf.write(s, this.pos, s.length, 'latin1');
    }
    this.pos += s.length;
  }

  /** Text as UTF-8. */
  utf8(s: string): void {
    this.bytes(Buffer.from(s, 'utf8'));
  }

  /** The bytes written so far (a view, valid until the next write). */
  written(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** The bytes written so far, copied into a new array of exactly that length. */
  finish(): Uint8Array {
    return new Uint8Array(this.buf.subarray(0, this.pos));
  }

  /**
   * The bytes written so far, handed over without a copy (a view of the
   * writer's buffer, which it no longer touches); the writer goes on in a
   * new buffer of the same size, not zeroed (only written bytes are ever
   * handed out).
   */
  take(): Uint8Array {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.pos = 0;
    return out;
  }

  /** Forgets what was written, keeping the buffer. */
  reset(): void {
    this.pos = 0;
  }
}

export class Reader {
  pos: number;
  /** Made on first use: most reads (a put's command) need none. */
  private dataView: DataView | undefined;

  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  private get view(): DataView {
    return (this.dataView ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new CodecError(`truncated: need ${n} bytes at offset ${this.pos}, have ${this.end - this.pos}`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  bool(): boolean {
    const b = this.u8();
    if (b > 1) throw new CodecError(`bad boolean ${b} at offset ${this.pos - 1}`);
    return b === 1;
  }

  uvarint(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos < this.end) {
      const b = buf[pos]!;
      if (b < 0x80) {
        this.pos = pos + 1;
        return b;
      }
    }
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 160; i++) {
      if (pos >= this.end) throw new CodecError(`truncated varint at offset ${this.pos}`);
      const b = buf[pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) {
        this.pos = pos;
        return result;
      }
      scale *= 0x80;
    }
    throw new CodecError(`varint too long at offset ${this.pos}`);
  }

  svarint(): number {
    const sign = this.u8();
    if (sign > 1) throw new CodecError(`bad sign byte ${sign} at offset ${this.pos - 1}`);
    const n = this.uvarint();
    return sign === 1 ? -n : n;
  }

  i64(): bigint {
    this.need(8);
    const n = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return n;
  }

  /** Length-prefixed bytes, as a view into the buffer (no copy). */
  bytesView(): Uint8Array {
    const n = this.uvarint();
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Length-prefixed bytes as a one-byte string (see bytesToLatin1). */
  latin1(): string {
    const n = this.uvarint();
    this.need(n);
    const s = n === 0 ? '' : latin1Slice.call(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  utf8(): string {
    const b = this.bytesView();
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  }

  /** A count of items that each take at least `minBytes`: refuses counts the rest of the buffer cannot hold. */
  count(minBytes = 1): number {
    const n = this.uvarint();
    if (n * minBytes > this.end - this.pos) throw new CodecError(`count ${n} at offset ${this.pos} exceeds the remaining bytes`);
    return n;
  }
}
