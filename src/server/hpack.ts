// HPACK (RFC 7541), the header compression of HTTP/2: a decoder that keeps
// the dynamic table of one direction of a connection, and the one encoding
// raftkv needs to write back a field it changed (a literal without Huffman
// coding). Used by the client port to repair a request's :authority before
// Node's HTTP/2 parser sees it (see authorityRepair.ts); not a general
// HTTP/2 library.

/** A header block could not be decoded (RFC 7541 calls this a COMPRESSION_ERROR). */
export class HpackError extends Error {
  readonly code = 'HPACK_DECODE_FAILED';
  constructor(message: string) {
    super(`HPACK: ${message}`);
    this.name = 'HpackError';
  }
}

/** How a field was represented (§6): it decides what re-encoding it must keep. */
export type FieldRepresentation = 'indexed' | 'incremental' | 'without-indexing' | 'never-indexed';

export interface DecodedField {
  /** Names and values as latin1 strings: one character per octet. */
  readonly name: string;
  readonly value: string;
  /** The value as the block carried it, before any rewrite (the same as `value` for an indexed field). */
  readonly received: string;
  readonly representation: FieldRepresentation;
  /** The table index the name came from, 0 when the name was a literal. */
  readonly nameIndex: number;
  /** Where the representation lies in the block: [start, end). */
  readonly start: number;
  readonly end: number;
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

  /** `settingsLimit`: the SETTINGS_HEADER_TABLE_SIZE the decoding side advertised. */
  constructor(private readonly settingsLimit = DEFAULT_TABLE_SIZE) {
    this.maxSize = settingsLimit;
  }

  /**
   * Decodes one complete header block, updating the dynamic table.
   * `rewrite` may change a field's value before it enters the table (it must
   * keep the value's length, so the table's size, and with it every later
   * eviction, stays the same as the encoder's).
   */
  decode(block: Uint8Array, rewrite?: (name: string, value: string) => string): DecodedField[] {
    const fields: DecodedField[] = [];
    let pos = 0;
    const integer = (prefixBits: number): number => {
      if (pos >= block.length) throw new HpackError('truncated integer');
      const mask = (1 << prefixBits) - 1;
      let value = block[pos++]! & mask;
      if (value < mask) return value;
      for (let shift = 0; ; shift += 7) {
        if (pos >= block.length) throw new HpackError('truncated integer');
        if (shift > 28) throw new HpackError('integer too large');
        const b = block[pos++]!;
        value += (b & 0x7f) * 2 ** shift;
        if ((b & 0x80) === 0) return value;
      }
    };
    const string = (): string => {
      if (pos >= block.length) throw new HpackError('truncated string');
      const huffman = (block[pos]! & 0x80) !== 0;
      const length = integer(7);
      if (pos + length > block.length) throw new HpackError('string longer than the block');
      const bytes = block.subarray(pos, pos + length);
      pos += length;
      return huffman ? huffmanDecode(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
    };
    while (pos < block.length) {
      const start = pos;
      const first = block[pos]!;
      if (first & 0x80) {
        // §6.1 indexed field.
        const index = integer(7);
        const [name, value] = this.entry(index);
        fields.push({ name, value, received: value, representation: 'indexed', nameIndex: index, start, end: pos });
        continue;
      }
      if ((first & 0xe0) === 0x20) {
        // §6.3 dynamic table size update: only at the start of a block, never above the limit.
        if (fields.length > 0) throw new HpackError('table size update after a field');
        const size = integer(5);
        if (size > this.settingsLimit) throw new HpackError(`table size ${size} above the limit ${this.settingsLimit}`);
        this.maxSize = size;
        this.evictTo(size);
        continue;
      }
      const representation: FieldRepresentation = first & 0x40 ? 'incremental' : first & 0x10 ? 'never-indexed' : 'without-indexing';
      const nameIndex = integer(representation === 'incremental' ? 6 : 4);
      const name = nameIndex === 0 ? string() : this.entry(nameIndex)[0];
      const received = string();
      const value = rewrite ? rewrite(name, received) : received;
      if (value.length !== received.length) throw new TypeError('a rewrite must keep the value\'s length');
      if (representation === 'incremental') this.insert(name, value);
      fields.push({ name, value, received, representation, nameIndex, start, end: pos });
    }
    return fields;
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

/** §5.1: an integer with an N-bit prefix, the prefix's other bits given in `flags`. */
function encodeInteger(value: number, prefixBits: number, flags: number, out: number[]): void {
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

function encodeRawString(s: string, out: number[]): void {
  encodeInteger(s.length, 7, 0x00, out);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/**
 * Re-encodes a literal field (§6.2) as it was represented, with a new value
 * and no Huffman coding. `field` must not be 'indexed'.
 */
export function encodeLiteral(field: DecodedField, value: string): Buffer {
  const out: number[] = [];
  const [prefixBits, flags] =
    field.representation === 'incremental' ? [6, 0x40] : field.representation === 'never-indexed' ? [4, 0x10] : [4, 0x00];
  if (field.representation === 'indexed') throw new TypeError('an indexed field has no literal to re-encode');
  encodeInteger(field.nameIndex, prefixBits, flags, out);
  if (field.nameIndex === 0) encodeRawString(field.name, out);
  encodeRawString(value, out);
  return Buffer.from(out);
}
