// The page's stand-in for Node's global Buffer, injected by the bundler in
// place of the global. The code bundled into the page (src/raft, src/sim,
// src/storage) uses Buffer only to view bytes for the native CRC
// (src/storage/crc.ts: Buffer.from(arrayBuffer, offset, length)); a view is
// all it needs. Any other use fails loudly rather than misbehaving.

export const Buffer = {
  from(buffer: ArrayBufferLike, byteOffset: number, length: number): Uint8Array {
    if (!(buffer instanceof ArrayBuffer) && !(typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer)) {
      throw new TypeError('Buffer.from in the page supports only (arrayBuffer, byteOffset, length)');
    }
    return new Uint8Array(buffer, byteOffset, length);
  },
};
