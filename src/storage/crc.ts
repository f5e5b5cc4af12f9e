// CRC32C (Castagnoli), as etcd's WAL, ext4 and iSCSI use it: better at
// catching the burst errors of real disks than the zip CRC.
//
// Two implementations of the same function: @node-rs/crc32 (hardware
// accelerated, ~7 bytes/ns, but each call crosses into native code and needs
// a Buffer around the bytes: ~150-250 ns before the first byte), and a
// table-driven one in JavaScript (slicing-by-8, ~1.4 bytes/ns, no fixed
// cost). Most records are small (a hard state is 25 bytes, a typical entry
// 50 to 200), so those take the JavaScript path; a snapshot file or a big
// entry the native one.

import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** Below this many bytes the JavaScript CRC is faster than a native call (measured on x64, Node 20). */
const NATIVE_FROM_BYTES = 224;

/** The Castagnoli polynomial, reflected. */
const POLY = 0x82f63b78;

/** TABLE[k * 256 + b]: the CRC of byte b followed by k zero bytes (slicing-by-8, Intel's "Slicing-by-8" paper). */
const TABLE = new Int32Array(8 * 256);
for (let b = 0; b < 256; b++) {
  let c = b;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  TABLE[b] = c;
}
for (let b = 0; b < 256; b++) {
  let c = TABLE[b]!;
  for (let k = 1; k < 8; k++) {
    c = TABLE[c & 0xff]! ^ (c >>> 8);
    TABLE[k * 256 + b] = c;
  }
}

/** CRC32C of data[from, to) in JavaScript, continuing from `initial`. */
function jsCrc32c(data: Uint8Array, from: number, to: number, initial: number): number {
  const t = TABLE;
  let crc = ~initial;
  let i = from;
  for (; i + 8 <= to; i += 8) {
    const a = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) ^ crc;
    crc =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + data[i + 4]!]! ^
      t[512 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
  }
  for (; i < to; i++) crc = t[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** CRC32C of data[from, to), continuing from `initial` (the CRC of what came before). */
export function crc32cRange(data: Uint8Array, from: number, to: number, initial = 0): number {
  if (to - from < NATIVE_FROM_BYTES) return jsCrc32c(data, from, to, initial);
  return nativeCrc32c(Buffer.from(data.buffer, data.byteOffset + from, to - from), initial) >>> 0;
}

/** CRC32C of `data`, continuing from `initial` (the CRC of what came before). */
export function crc32c(data: Uint8Array, initial = 0): number {
  return crc32cRange(data, 0, data.length, initial);
}
