// Byte arrays given as consecutive parts (a snapshot encoded in chunks is
// written, checksummed and sent without being joined first).

/** The bytes given in parts: one array, or several to be read in order. */
export type ByteParts = Uint8Array | readonly Uint8Array[];

/** The parts as a list (one array: a list of one). */
export function partsOf(bytes: ByteParts): readonly Uint8Array[] {
  return bytes instanceof Uint8Array ? [bytes] : bytes;
}

/** The total length of the parts. */
export function partsLength(bytes: ByteParts): number {
  let size = 0;
  for (const p of partsOf(bytes)) size += p.length;
  return size;
}

/** The parts concatenated. */
export function joinParts(parts: ByteParts): Uint8Array {
  if (parts instanceof Uint8Array) return parts;
  const out = new Uint8Array(partsLength(parts));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Reads consecutive parts a bounded slice at a time (for work done in steps: a file write, a copy). */
export class PartsCursor {
  private part = 0;
  /** Bytes of parts[part] already read. */
  private within = 0;

  constructor(private readonly parts: readonly Uint8Array[]) {}

  /** Every byte has been read. */
  get done(): boolean {
    this.skipEnded();
    return this.part === this.parts.length;
  }

  /** The next at most `max` bytes, a view into one part; undefined once done. */
  next(max: number): Uint8Array | undefined {
    if (this.done) return undefined;
    const p = this.parts[this.part]!;
    const n = Math.min(max, p.length - this.within);
    const view = n === p.length ? p : p.subarray(this.within, this.within + n);
    this.within += n;
    return view;
  }

  private skipEnded(): void {
    while (this.part < this.parts.length && this.within === this.parts[this.part]!.length) {
      this.part++;
      this.within = 0;
    }
  }
}
