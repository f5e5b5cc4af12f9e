// CRC32C (Castagnoli), as etcd's WAL, ext4 and iSCSI use it: hardware
// accelerated in @node-rs/crc32, and better at catching the burst errors of
// real disks than the zip CRC.

import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/**
 * A zeroed byte array whose views crc32c() checksums without wrapping them
 * first (a Buffer): for the buffers records are encoded into and read from.
 */
export function checksumBytes(n: number): Uint8Array {
  return Buffer.alloc(n);
}

/** CRC32C of `data`, continuing from `initial` (the CRC of what came before). */
export function crc32c(data: Uint8Array, initial = 0): number {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return nativeCrc32c(buf, initial) >>> 0;
}
