// Byte arrays given as consecutive parts (a snapshot encoded in chunks is
// written, checksummed and sent without being joined first).

/** The bytes given in parts: one array, or several to be read in order. */
export type ByteParts = Uint8Array | readonly Uint8Array[];

/** The parts as a list (one array: a list of one). */
export function partsOf(bytes: ByteParts): readonly Uint8Array[] {
  return bytes instanceof Uint8Array ? [bytes] : bytes;
}

/** The parts concatenated, at once (ByteAssembler in src/node does it a slice at a time). */
export function joinParts(parts: ByteParts): Uint8Array {
  if (parts instanceof Uint8Array) return parts;
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
