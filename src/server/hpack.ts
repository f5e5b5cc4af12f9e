// HPACK (RFC 7541), the header compression of HTTP/2, for the client
// port's HTTP/2 server (h2.ts): the decoder of a connection's requests, which
// keeps that direction's dynamic table, and the encoder of the few header
// blocks a gRPC answer needs (literals that never enter the peer's table, so
// the encoder keeps no state). Not a general HTTP/2 library.

/** A header block could not be decoded (RFC 7541 calls this a COMPRESSION_ERROR). */
export class HpackError extends Error {
  readonly code = 'HPACK_DECODE_FAILED';
  constructor(message: string) {
    super(`HPACK: ${message}`);
    this.name = 'HpackError';
  }
}

// Appendix A: the static table, index 1..61.
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** §4.1: an entry's size is its name's and value's octets plus 32. */
const ENTRY_OVERHEAD = 32;
/** SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2), which Node's server keeps. */
export const DEFAULT_TABLE_SIZE = 4096;

// Appendix B: the Huffman code's length for each symbol 0..256 (256 = EOS).
// The code is canonical (codes of one length are consecutive, in symbol
// order, each length continuing from the previous), so the lengths are the
// whole table.
const HUFFMAN_LENGTHS =
  '13,23,28,28,28,28,28,28,28,24,30,28,28,30,28,28,28,28,28,28,28,28,30,28,28,28,28,28,28,28,28,28,' +
  '6,10,10,12,13,6,8,11,10,10,8,11,8,6,6,6,5,5,5,6,6,6,6,6,6,6,7,8,15,6,12,10,' +
  '13,6,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,8,7,8,13,19,13,14,6,' +
  '15,5,6,5,6,5,6,6,6,5,7,7,6,6,6,5,6,7,6,5,5,6,7,7,7,7,7,15,11,14,13,28,' +
  '20,22,20,20,22,22,22,23,22,23,23,23,23,23,24,23,24,24,22,23,24,23,23,23,23,21,22,23,22,23,23,24,' +
  '22,21,20,22,22,23,23,21,23,22,22,24,21,22,23,23,21,21,22,21,23,22,23,23,20,22,22,22,23,22,22,23,' +
  '26,26,20,19,22,23,22,25,26,26,26,27,27,26,24,25,19,21,26,27,27,26,27,24,21,21,26,26,28,27,27,27,' +
  '20,24,20,21,22,21,21,23,22,22,25,25,24,24,26,23,26,27,26,26,27,27,27,27,27,28,27,27,27,27,27,26,' +
  '30';

const EOS = 256;

/**
 * The decoding tree as two arrays: node n's children are `tree[2n]` (bit 0)
 * and `tree[2n+1]` (bit 1); a child ≥ 0 is an inner node, -1 - s a symbol s.
 */
const HUFFMAN_TREE: Int32Array = (() => {
  const lengths = HUFFMAN_LENGTHS.split(',').map(Number);
  const symbols = lengths.map((length, symbol) => ({ length, symbol })).sort((a, b) => a.length - b.length || a.symbol - b.symbol);
  const tree = new Int32Array(2 * 2 * symbols.length).fill(0);
  let nodes = 1;
  let code = 0;
  let previousLength = symbols[0]!.length;
  for (const { length, symbol } of symbols) {
    code <<= length - previousLength;
    previousLength = length;
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (bit === 0) {
        tree[slot] = -1 - symbol;
      } else {
        if (tree[slot] === 0) tree[slot] = nodes++;
        node = tree[slot]!;
      }
    }
    code++;
  }
  return tree;
})();

/** §5.2: decodes a Huffman-coded string; the padding must be < 8 bits of the EOS prefix (all ones). */
export function huffmanDecode(bytes: Uint8Array): string {
  let out = '';
  let node = 0;
  let bitsSinceSymbol = 0;
  let allOnes = true;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >>> bit) & 1;
      const next = HUFFMAN_TREE[2 * node + b]!;
      bitsSinceSymbol++;
      allOnes &&= b === 1;
      if (next < 0) {
        const symbol = -1 - next;
        if (symbol === EOS) throw new HpackError('EOS symbol inside a Huffman-coded string');
        out += String.fromCharCode(symbol);
        node = 0;
        bitsSinceSymbol = 0;
        allOnes = true;
      } else {
        node = next;
      }
    }
  }
  if (bitsSinceSymbol > 7 || !allOnes) throw new HpackError('invalid Huffman padding');
  return out;
}

/** The decoder of one direction of one connection. */
export class HpackDecoder {
  /** Newest first, as §2.3.3 numbers them (index 62 is the newest). */
  private readonly table: Array<readonly [string, string]> = [];
  private size = 0;
  private maxSize: number;
  private block: Uint8Array = new Uint8Array(0);
  private pos = 0;

  /** `settingsLimit`: the SETTINGS_HEADER_TABLE_SIZE the decoding side advertised. */
  constructor(private readonly settingsLimit = DEFAULT_TABLE_SIZE) {
    this.maxSize = settingsLimit;
  }

  /**
   * Decodes one complete header block, updating the dynamic table, and
   * hands each field to `onField` in order. Names and values are latin1
   * strings: one character per octet.
   */
  decode(block: Uint8Array, onField: (name: string, value: string) => void): void {
    this.block = block;
    this.pos = 0;
    let fields = 0;
    try {
      while (this.pos < block.length) {
        const first = block[this.pos]!;
        if (first & 0x80) {
          // §6.1 indexed field.
          const [name, value] = this.entry(this.integer(7));
          fields++;
          onField(name, value);
          continue;
        }
        if ((first & 0xe0) === 0x20) {
          // §6.3 dynamic table size update: only at the start of a block, never above the limit.
          if (fields > 0) throw new HpackError('table size update after a field');
          const size = this.integer(5);
          if (size > this.settingsLimit) throw new HpackError(`table size ${size} above the limit ${this.settingsLimit}`);
          this.maxSize = size;
          this.evictTo(size);
          continue;
        }
        // §6.2: a literal, with incremental indexing (01), without (0000) or never indexed (0001).
        const incremental = (first & 0x40) !== 0;
        const nameIndex = this.integer(incremental ? 6 : 4);
        const name = nameIndex === 0 ? this.string() : this.entry(nameIndex)[0];
        const value = this.string();
        if (incremental) this.insert(name, value);
        fields++;
        onField(name, value);
      }
    } finally {
      this.block = EMPTY;
    }
  }

  /** §5.1: an integer with an N-bit prefix. */
  private integer(prefixBits: number): number {
    const block = this.block;
    if (this.pos >= block.length) throw new HpackError('truncated integer');
    const mask = (1 << prefixBits) - 1;
    let value = block[this.pos++]! & mask;
    if (value < mask) return value;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= block.length) throw new HpackError('truncated integer');
      if (shift > 28) throw new HpackError('integer too large');
      const b = block[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
  }

  /** §5.2: a string literal, Huffman-coded or raw. */
  private string(): string {
    const block = this.block;
    if (this.pos >= block.length) throw new HpackError('truncated string');
    const huffman = (block[this.pos]! & 0x80) !== 0;
    const length = this.integer(7);
    if (this.pos + length > block.length) throw new HpackError('string longer than the block');
    const start = this.pos;
    this.pos += length;
    if (huffman) return huffmanDecode(block.subarray(start, this.pos));
    return Buffer.from(block.buffer, block.byteOffset + start, length).toString('latin1');
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.table[index - STATIC_TABLE.length - 1];
    if (entry === undefined) throw new HpackError(`index ${index} beyond the dynamic table (${this.table.length} entries)`);
    return entry;
  }

  /** §4.4: an entry larger than the table empties it and is not added. */
  private insert(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    this.evictTo(this.maxSize - entrySize);
    if (entrySize <= this.maxSize) {
      this.table.unshift([name, value]);
      this.size += entrySize;
    }
  }

  private evictTo(limit: number): void {
    while (this.size > Math.max(0, limit) && this.table.length > 0) {
      const [name, value] = this.table.pop()!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }
}

const EMPTY = new Uint8Array(0);

/** §5.1: an integer with an N-bit prefix, the prefix's other bits given in `flags`. */
export function encodeInteger(value: number, prefixBits: number, flags: number, out: number[]): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  let rest = value - max;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

/** A string literal without Huffman coding (§5.2); characters above 0xff are not allowed in a field. */
export function encodeRawString(s: string, out: number[]): void {
  encodeInteger(s.length, 7, 0x00, out);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/** The static table's index of each name (its first entry), for the encoder. */
const STATIC_NAME_INDEX: ReadonlyMap<string, number> = new Map(
  STATIC_TABLE.map(([name], i) => [name, i + 1] as const).reverse(),
);

/**
 * A header block of `fields`, in order. ":status: 200" is the static
 * table's entry 8; every other field is a literal without indexing (§6.2.2),
 * its name taken from the static table where it is there, so the block
 * changes neither side's dynamic table. Names must be lower case.
 */
export function encodeHeaderBlock(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (name === ':status' && value === '200') {
      out.push(0x88);
      continue;
    }
    const nameIndex = STATIC_NAME_INDEX.get(name) ?? 0;
    encodeInteger(nameIndex, 4, 0x00, out);
    if (nameIndex === 0) encodeRawString(name, out);
    encodeRawString(value, out);
  }
  return Buffer.from(out);
}
