// The page's stand-in for @node-rs/crc32 (native code, not in a browser):
// CRC32C in JavaScript, a byte at a time. src/storage/crc.ts calls it only
// for records of 224 bytes or more; in the page those are the simulated
// disks' snapshots, few and small.

const POLY = 0x82f63b78; // Castagnoli, reflected

const TABLE = new Int32Array(256);
for (let b = 0; b < 256; b++) {
  let c = b;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  TABLE[b] = c;
}

export function crc32c(data: Uint8Array, initial = 0): number {
  let crc = ~initial;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
