// Snapshot files: the state machine's state at an index, with the
// configuration as of that index (§7).
//
// A snapshot is written to a temporary file, fsynced, renamed into place and
// its directory fsynced, so a crash leaves either the whole new file or none
// of it. The file is checksummed end to end; the newest few are kept, so a
// damaged newest one can fall back to an older one plus the log.
//
// Layout: magic "RKVSNAP1" | crc32c u32 (of everything after it) |
//         meta length u32 | meta (JSON: index, term, confState) | data

import type { Snapshot, SnapshotMetadata } from '../raft/types.js';
import { crc32c } from './crc.js';
import { SnapshotCorruptionError } from './errors.js';
import { type FileSystem, joinPath, readWholeFile } from './fs.js';

const MAGIC = new TextEncoder().encode('RKVSNAP1');
const HEADER_BYTES = MAGIC.length + 8;
const SNAP_NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
export const DEFAULT_SNAPSHOTS_KEPT = 3;

export interface SnapshotFile {
  readonly term: number;
  readonly index: number;
  readonly name: string;
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

export function snapshotFileName(term: number, index: number): string {
  return `${hex16(term)}-${hex16(index)}.snap`;
}

export function encodeSnapshotFile(snap: Snapshot): Uint8Array {
  const meta = new TextEncoder().encode(JSON.stringify(snap.metadata));
  const out = new Uint8Array(HEADER_BYTES + meta.length + snap.data.length);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(MAGIC.length + 4, meta.length, true);
  out.set(meta, HEADER_BYTES);
  out.set(snap.data, HEADER_BYTES + meta.length);
  view.setUint32(MAGIC.length, crc32c(out.subarray(MAGIC.length + 4)), true);
  return out;
}

export function decodeSnapshotFile(name: string, bytes: Uint8Array): Snapshot {
  if (bytes.length < HEADER_BYTES) throw new SnapshotCorruptionError(name, `${bytes.length} bytes is too short`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new SnapshotCorruptionError(name, 'not a raftkv snapshot');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (crc32c(bytes.subarray(MAGIC.length + 4)) !== view.getUint32(MAGIC.length, true)) {
    throw new SnapshotCorruptionError(name, 'checksum mismatch');
  }
  const metaLength = view.getUint32(MAGIC.length + 4, true);
  if (HEADER_BYTES + metaLength > bytes.length) throw new SnapshotCorruptionError(name, 'metadata runs past the end');
  let metadata: SnapshotMetadata;
  try {
    metadata = JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + metaLength)));
  } catch {
    throw new SnapshotCorruptionError(name, 'unreadable metadata');
  }
  if (typeof metadata?.index !== 'number' || typeof metadata?.term !== 'number' || !metadata.confState) {
    throw new SnapshotCorruptionError(name, 'incomplete metadata');
  }
  return { metadata, data: bytes.slice(HEADER_BYTES + metaLength) };
}

/** (At module level: V8 optimizes a closure made per call again for every call that gets hot.) */
function newestFirst(a: SnapshotFile, b: SnapshotFile): number {
  return b.index - a.index || b.term - a.term;
}

export class SnapshotStore {
  constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    private readonly keep = DEFAULT_SNAPSHOTS_KEPT,
    /** Change nothing on disk (`raftkv wal verify`). */
    private readonly readOnly = false,
  ) {
    if (!readOnly) fs.mkdirp(dir);
  }

  /** The snapshot files, newest (highest index) first. Leftover temporary files are removed (unless read-only). */
  list(): SnapshotFile[] {
    const out: SnapshotFile[] = [];
    for (const name of this.fs.list(this.dir)) {
      const m = SNAP_NAME.exec(name);
      if (m) out.push({ term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16), name });
      else if (name.endsWith('.tmp') && !this.readOnly) this.fs.remove(joinPath(this.dir, name));
    }
    return out.sort(newestFirst);
  }

  /** Writes a snapshot durably; returns its file name. */
  save(snap: Snapshot): string {
    const name = snapshotFileName(snap.metadata.term, snap.metadata.index);
    const path = joinPath(this.dir, name);
    const tmp = `${path}.tmp`;
    this.fs.remove(tmp);
    const fd = this.fs.create(tmp);
    try {
      this.fs.write(fd, encodeSnapshotFile(snap), 0);
      this.fs.fsync(fd);
    } finally {
      this.fs.close(fd);
    }
    this.fs.rename(tmp, path);
    this.fs.syncDir(this.dir);
    return name;
  }

  /** Reads and checks a snapshot file; throws SnapshotCorruptionError if damaged. */
  load(file: SnapshotFile): Snapshot {
    const snap = decodeSnapshotFile(file.name, readWholeFile(this.fs, joinPath(this.dir, file.name)));
    if (snap.metadata.index !== file.index || snap.metadata.term !== file.term) {
      throw new SnapshotCorruptionError(file.name, `it holds index ${snap.metadata.index} term ${snap.metadata.term}`);
    }
    return snap;
  }

  /**
   * Removes old snapshots: of those the log already names (index at or
   * below `durableIndex`, the newest snapshot marker known durable), the
   * newest `keep` stay; newer ones are not named by the log yet and stay
   * too, or a crash now could leave the log naming a deleted file.
   */
  prune(durableIndex: number): void {
    const named = this.list().filter((f) => f.index <= durableIndex);
    if (named.length <= this.keep) return;
    for (const f of named.slice(this.keep)) this.fs.remove(joinPath(this.dir, f.name));
    this.fs.syncDir(this.dir);
  }

  /** Removes snapshots newer than any the log names: a crash came between writing one and logging it. */
  removeOrphans(newestNamed: number): string[] {
    const orphans = this.list().filter((f) => f.index > newestNamed);
    if (!this.readOnly) {
      for (const f of orphans) this.fs.remove(joinPath(this.dir, f.name));
      if (orphans.length > 0) this.fs.syncDir(this.dir);
    }
    return orphans.map((f) => f.name);
  }
}
