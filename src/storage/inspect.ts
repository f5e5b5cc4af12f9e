// What the operator tools see of a data directory: `raftkv wal verify`
// recovers it exactly as the member would at start, but read-only, and
// checks every snapshot file besides; `raftkv wal dump` lists the records
// of each segment as they lie on disk.

import type { HardState } from '../raft/types.js';
import { DiskStorage } from './diskStorage.js';
import { DataDirError, SnapshotCorruptionError, StorageError } from './errors.js';
import { type FileSystem, joinPath } from './fs.js';
import { type WalRecord, MalformedRecordError, decodePayload } from './record.js';
import { listSegments, scanSegment } from './segment.js';
import { DEFAULT_SNAPSHOTS_KEPT, SnapshotStore } from './snapshot.js';

/**
 * The member directory under `dir`: `dir` itself when it holds `wal/`,
 * `dir/member` (etcd's --data-dir layout) when that does, or the parent of
 * a `wal` directory given directly.
 */
export function resolveDataDir(fs: FileSystem, dir: string): string {
  const trimmed = dir.replace(/\/+$/, '') || '/';
  if (fs.exists(joinPath(trimmed, 'wal'))) return trimmed;
  if (fs.exists(joinPath(joinPath(trimmed, 'member'), 'wal'))) return joinPath(trimmed, 'member');
  if (/(^|\/)wal$/.test(trimmed) && fs.exists(trimmed)) return trimmed.slice(0, -'/wal'.length) || '/';
  throw new DataDirError(dir, fs.exists(trimmed) ? `no write-ahead log in it (looked for ${joinPath(trimmed, 'wal')} and ${joinPath(trimmed, 'member/wal')})` : 'no such directory');
}

export interface SnapshotCheck {
  readonly name: string;
  readonly index: number;
  readonly term: number;
  /** Why the file is unusable; undefined if it reads back whole. */
  readonly problem?: string;
}

export interface VerifyReport {
  readonly dir: string;
  readonly clusterId: string | undefined;
  readonly memberId: number | undefined;
  readonly segments: number;
  readonly records: number;
  readonly bytes: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly hardState: HardState;
  /** The snapshot the member would start from (0: none). */
  readonly snapshotIndex: number;
  readonly snapshots: readonly SnapshotCheck[];
  /** A crash's torn write at the end of the log: normal, recovery cuts it. */
  readonly tornTail?: { readonly file: string; readonly offset: number; readonly bytes: number };
  /** Files an interrupted operation left behind, which recovery removes. */
  readonly leftovers: readonly string[];
  /** Why the member would refuse to start; undefined if it would start. */
  readonly refusal?: StorageError;
  /** Whether anything is damaged (a refusal, or any damaged snapshot file, even one not needed). */
  readonly corrupt: boolean;
}

/**
 * Checks a data directory without changing it: every record of every
 * segment (recovery reads them all, checksums first), and every snapshot
 * file. Throws DataDirError if there is no data directory there.
 */
export function verifyDataDir(fs: FileSystem, dir: string): VerifyReport {
  const member = resolveDataDir(fs, dir);
  let storage: DiskStorage | undefined;
  let refusal: StorageError | undefined;
  try {
    // A small cache: verify reads everything once and keeps nothing.
    storage = DiskStorage.open({ fs, dir: member, readOnly: true, cacheBytes: 1 << 20 });
  } catch (err) {
    if (!(err instanceof StorageError)) throw err;
    refusal = err;
  }
  const snapshots = checkSnapshots(fs, joinPath(member, 'snap'));
  const base = { dir: member, snapshots, corrupt: refusal !== undefined || snapshots.some((s) => s.problem !== undefined) };
  if (!storage) {
    return {
      ...base,
      clusterId: undefined,
      memberId: undefined,
      segments: listSegments(fs, joinPath(member, 'wal')).length,
      records: 0,
      bytes: 0,
      firstIndex: 0,
      lastIndex: 0,
      hardState: { term: 0, vote: 0, commit: 0 },
      snapshotIndex: 0,
      leftovers: [],
      ...(refusal ? { refusal } : {}),
    };
  }
  const r = storage.recovery;
  storage.close();
  return {
    ...base,
    clusterId: storage.identity?.clusterId,
    memberId: storage.identity?.memberId,
    segments: r.segments,
    records: r.records,
    bytes: r.bytes,
    firstIndex: r.firstIndex,
    lastIndex: r.lastIndex,
    hardState: r.hardState,
    snapshotIndex: r.snapshotIndex,
    ...(r.tornTail ? { tornTail: r.tornTail } : {}),
    leftovers: r.leftovers,
  };
}

function checkSnapshots(fs: FileSystem, dir: string): SnapshotCheck[] {
  const store = new SnapshotStore(fs, dir, DEFAULT_SNAPSHOTS_KEPT, true);
  return store.list().map((file) => {
    try {
      store.load(file);
      return file;
    } catch (err) {
      if (!(err instanceof SnapshotCorruptionError)) throw err;
      return { ...file, problem: err.reason };
    }
  });
}

/** One record of a segment as `raftkv wal dump` shows it. */
export interface DumpRecord {
  readonly offset: number;
  readonly record: WalRecord | { readonly type: 'malformed'; readonly reason: string };
  /** The record's payload size in bytes. */
  readonly size: number;
}

/** Where and why a segment's records stop: the end of the file, zeros (its unused part), or damage. */
export interface DumpEnd {
  readonly offset: number;
  readonly stop: string;
  readonly fileSize: number;
}

export interface DumpVisitor {
  segment(name: string): void;
  record(r: DumpRecord): void;
  end(e: DumpEnd): void;
}

/** Streams every record of every segment under `dir`, in log order, to `visit`. */
export function dumpDataDir(fs: FileSystem, dir: string, visit: DumpVisitor): void {
  const walDir = joinPath(resolveDataDir(fs, dir), 'wal');
  for (const seg of listSegments(fs, walDir)) {
    visit.segment(seg.name);
    const end = scanSegment(fs, joinPath(walDir, seg.name), (payload, offset) => {
      let record: DumpRecord['record'];
      try {
        record = decodePayload(payload);
      } catch (err) {
        if (!(err instanceof MalformedRecordError)) throw err;
        record = { type: 'malformed', reason: err.message };
      }
      visit.record({ offset, record, size: payload.length });
    });
    visit.end({ offset: end.end, stop: end.stop, fileSize: end.fileSize });
  }
}
