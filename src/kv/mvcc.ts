// The multi-version store: etcd's mvcc package (server/storage/mvcc) in
// memory. One global revision counts the write transactions that changed
// something; every change a transaction makes is a (main, sub) revision: main
// is the transaction's revision, sub orders its changes (kvstore_txn.go).
// Each key keeps its history of versions and tombstones, so a read at any
// revision since the last compaction sees the store exactly as it was
// (key_index.go), and compaction drops what no such read can see
// (kvstore_compaction.go).
//
// Keys and values are held as one-byte strings (codec.bytesToLatin1): they
// compare like bytes, hash fast, and a small one costs a few dozen bytes
// where a Uint8Array costs a few hundred.

import { BTree } from './btree.js';
import { latin1ToBytes } from './codec.js';
import type { KeyValue } from './types.js';

/** A key's state at one revision: a version of its value, or a tombstone. */
export interface Version {
  /** The revision of the transaction that wrote it. */
  readonly main: number;
  /** Its position among that transaction's changes. */
  readonly sub: number;
  /** null: a tombstone (the key was deleted). */
  readonly value: string | null;
  /** The revision that created this generation of the key (0 for a tombstone). */
  readonly create: number;
  /** Puts since the generation's creation, this one included (0 for a tombstone). */
  readonly version: number;
  readonly lease: bigint;
}

/**
 * A key's history: its versions and tombstones, oldest first, never empty.
 * Most keys have one version, held alone (an array costs more than the
 * version itself); a second version turns it into an array. An array is
 * only ever appended to in place (compaction replaces it), so a reference
 * taken at revision R keeps showing the history as of R in its versions at
 * or below R (what SnapshotEncoder relies on). A put after a
 * tombstone starts a new generation (create = its revision, version 1), as
 * etcd's keyIndex does.
 */
export type History = Version | Version[];

export function latestOf(h: History): Version {
  return Array.isArray(h) ? h[h.length - 1]! : h;
}

/** The versions of a history, oldest first. */
export function versionsOf(h: History): readonly Version[] {
  return Array.isArray(h) ? h : [h];
}

/** The live version visible at `rev`, or undefined (absent or deleted then). */
export function visibleAt(h: History, rev: number): Version | undefined {
  let v: Version;
  if (!Array.isArray(h)) {
    v = h;
    if (v.main > rev) return undefined;
  } else {
    let i = h.length - 1;
    if (h[i]!.main > rev) {
      // Binary search for the last version with main <= rev.
      let lo = 0;
      let hi = i;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (h[mid]!.main <= rev) lo = mid + 1;
        else hi = mid;
      }
      i = lo - 1;
      if (i < 0) return undefined;
    }
    v = h[i]!;
  }
  return v.value === null ? undefined : v;
}

function versionBytes(key: string, v: Version): number {
  return key.length + (v.value === null ? 0 : v.value.length) + VERSION_OVERHEAD;
}

/** Bytes a version costs beyond its key and value, for the size estimate (boltdb's key and proto framing). */
const VERSION_OVERHEAD = 48;

/** The empty lease (etcd's lease.NoLease). */
export const NO_LEASE = 0n;

export function toKeyValue(key: string, v: Version, keysOnly = false): KeyValue {
  return {
    key: latin1ToBytes(key),
    createRevision: v.create,
    modRevision: v.main,
    version: v.version,
    value: keysOnly ? EMPTY : latin1ToBytes(v.value!),
    lease: v.lease,
  };
}

const EMPTY = new Uint8Array(0);

/**
 * A range's bounds, etcd's way (mvcc.Range): `end` undefined is the single
 * key `key`; '' is every key >= key; otherwise [key, end).
 */
export interface Bounds {
  readonly key: string;
  readonly end: string | undefined;
}

/** etcd's mkGteRange and the single-key case: a request's range_end as Bounds. */
export function bounds(key: string, rangeEnd: string): Bounds {
  if (rangeEnd.length === 0) return { key, end: undefined };
  if (rangeEnd === '\0') return { key, end: '' };
  return { key, end: rangeEnd };
}

export class MvccStore {
  private readonly index = new Map<string, History>();
  private readonly order = new BTree();
  /** The revision of the last write transaction that changed something; 1 in an empty store. */
  private rev = 1;
  /**
   * The revision of the last compaction; -1 before the first, as etcd's
   * compactMainRev (so, as in etcd, compacting at 0 succeeds once).
   */
  private compacted = -1;
  /** A snapshot reading this store in steps; it takes what it still needs before a compaction. */
  private snapshotReader: { captureRest(): void } | undefined;
  /**
   * The versions written, in order, with their keys, from position
   * `changesDropped` on, once a snapshot asked (changeMark): the next
   * snapshot, which encodes only what changed since one, takes them from
   * here instead of looking at every key (SnapshotEncoder). Undefined until
   * then.
   */
  private changes: { keys: string[]; versions: Version[] } | undefined;
  private changesDropped = 0;
  private live = 0;
  private bytes = 0;

  get currentRevision(): number {
    return this.rev;
  }

  get compactRevision(): number {
    return this.compacted;
  }

  /** Keys that exist at the current revision. */
  get keyCount(): number {
    return this.live;
  }

  /** The bytes of every kept version's key and value plus a per-version overhead. */
  get sizeBytes(): number {
    return this.bytes;
  }

  /** Keys with a history, live or deleted (deleted ones until compaction drops them). */
  get historyCount(): number {
    return this.index.size;
  }

  /** The key's whole history, if it has one. */
  history(key: string): History | undefined {
    return this.index.get(key);
  }

  /** The key's live version at `rev`, or undefined. */
  get(key: string, rev: number): Version | undefined {
    const h = this.index.get(key);
    return h === undefined ? undefined : visibleAt(h, rev);
  }

  /**
   * Visits the keys in `b` that are live at `rev`, in key order, until
   * `visit` returns false.
   */
  visit(b: Bounds, rev: number, visit: (key: string, v: Version) => boolean): void {
    if (b.end === undefined) {
      const v = this.get(b.key, rev);
      if (v !== undefined) visit(b.key, v);
      return;
    }
    const index = this.index;
    this.order.scan(b.key, b.end === '' ? undefined : b.end, (key) => {
      const v = visibleAt(index.get(key)!, rev);
      return v === undefined ? true : visit(key, v);
    });
  }

  /**
   * The versions etcd's HashKV covers at `rev` (mvcc.store.HashByRev), to
   * be read in revision order as etcd walks its backend's key bucket: every
   * version of a revision in (compactRevision, rev], and of the older ones
   * kept by the last compaction only those a compaction at `rev` would keep
   * (each key's version live at `rev`); etcd's quirk: when no key is live
   * at `rev`, every older version. This call only takes each key's history
   * (one pass over the keys); the cursor merges them in steps, and later
   * writes do not change what it reads (histories are only appended to in
   * place). The caller checks `rev` (compactRevision < rev <=
   * currentRevision, as HashKV does).
   */
  hashCursor(rev: number): HashCursor {
    const sources: HashSource[] = [];
    let anyLive = false;
    this.index.forEach((h, key) => {
      const live = visibleAt(h, rev);
      if (live !== undefined) anyLive = true;
      sources.push({ key, versions: versionsOf(h), at: 0, live });
    });
    return new HashCursor(sources, rev, this.compacted, !anyLive);
  }

  /** Starts a write transaction at the current revision. */
  write(): WriteTxn {
    return new WriteTxn(this, this.rev);
  }

  /** Records a version (a WriteTxn's change); `h` is the key's history (history(key)). */
  append(key: string, h: History | undefined, v: Version): void {
    let wasLive = false;
    if (h === undefined) {
      this.index.set(key, v);
      this.order.insert(key);
    } else if (Array.isArray(h)) {
      wasLive = h[h.length - 1]!.value !== null;
      h.push(v);
    } else {
      wasLive = h.value !== null;
      this.index.set(key, [h, v]);
    }
    const isLive = v.value !== null;
    if (isLive !== wasLive) this.live += isLive ? 1 : -1;
    if (this.changes !== undefined) {
      this.changes.keys.push(key);
      this.changes.versions.push(v);
    }
    this.bytes += versionBytes(key, v);
  }

  /** Ends a write transaction: the revision moves on if it changed something. */
  commit(changed: boolean): void {
    if (changed) this.rev++;
  }

  /**
   * Drops the history no read at `rev` or later can see: of each key, the
   * versions below `rev` except the latest one at or below it, and that one
   * too if it is a tombstone (a key deleted then is absent either way). A
   * key left with no history is removed. The caller checks `rev` (etcd's
   * updateCompactRev).
   */
  compact(rev: number): void {
    this.snapshotReader?.captureRest();
    this.snapshotReader = undefined;
    if (this.changes !== undefined) this.forgetChangesBefore(this.changeMark()); // a snapshot after a compaction encodes the whole store
    this.compacted = rev;
    let removed = false;
    this.index.forEach((h, key) => {
      if (!Array.isArray(h)) {
        if (h.main <= rev && h.value === null) {
          this.bytes -= versionBytes(key, h);
          this.index.delete(key);
          removed = true;
        }
        return;
      }
      if (h[0]!.main > rev) return;
      // The last version at or below rev.
      let i = 0;
      while (i + 1 < h.length && h[i + 1]!.main <= rev) i++;
      const drop = h[i]!.value === null ? i + 1 : i;
      if (drop === 0) return;
      for (let j = 0; j < drop; j++) this.bytes -= versionBytes(key, h[j]!);
      if (drop === h.length) {
        this.index.delete(key);
        removed = true;
      } else if (drop === h.length - 1) {
        this.index.set(key, h[drop]!);
      } else {
        // A new array, not a splice: a snapshot being encoded (SnapshotEncoder)
        // may hold this one, and only appends may touch a history in place.
        this.index.set(key, h.slice(drop));
      }
    });
    if (removed) this.order.retain((key) => this.index.has(key));
  }

  /**
   * Registers the snapshot reading this store in steps (one at a time: a
   * newer one replaces it; `reader` undefined with `ifCurrent` unregisters
   * that one, if still registered).
   */
  setSnapshotReader(reader: { captureRest(): void } | undefined, ifCurrent?: { captureRest(): void }): void {
    if (reader === undefined && ifCurrent !== undefined && this.snapshotReader !== ifCurrent) return;
    this.snapshotReader = reader;
  }

  /** The position in the record of versions written that the next write takes; recording starts with the first call. */
  changeMark(): number {
    this.changes ??= { keys: [], versions: [] };
    return this.changesDropped + this.changes.keys.length;
  }

  /** The versions written since `mark` (changeMark) with their keys, in write order; undefined if not recorded that far back. */
  changedSince(mark: number): { keys: string[]; versions: Version[] } | undefined {
    const c = this.changes;
    if (c === undefined || mark < this.changesDropped) return undefined;
    const at = mark - this.changesDropped;
    return { keys: c.keys.slice(at), versions: c.versions.slice(at) };
  }

  /** Forgets the versions written before `mark`: no snapshot will ask for them. */
  forgetChangesBefore(mark: number): void {
    const c = this.changes;
    const n = mark - this.changesDropped;
    if (c === undefined || n <= 0) return;
    this.changes = { keys: c.keys.slice(n), versions: c.versions.slice(n) };
    this.changesDropped = mark;
  }

  /**
   * Visits the keys after `after` (all when undefined) with their
   * histories, in key order, until `visit` returns false; true if it
   * reached the last key.
   */
  historiesAfter(after: string | undefined, visit: (key: string, h: History) => boolean): boolean {
    const index = this.index;
    let reachedEnd = true;
    this.order.scan(after ?? '', undefined, (key) => {
      if (key === after) return true;
      if (visit(key, index.get(key)!)) return true;
      reachedEnd = false;
      return false;
    });
    return reachedEnd;
  }

  /** Every key with its history, in key order (for snapshots and hashes). */
  forEach(visit: (key: string, h: History) => void): void {
    const index = this.index;
    this.order.forEach((key) => visit(key, index.get(key)!));
  }

  /**
   * Replaces the contents (restoring a snapshot): `keys` in strictly
   * ascending order, each with its history.
   */
  load(keys: string[], histories: History[], rev: number, compacted: number): void {
    this.index.clear();
    let live = 0;
    let bytes = 0;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const h = histories[i]!;
      this.index.set(key, h);
      if (latestOf(h).value !== null) live++;
      if (Array.isArray(h)) for (const v of h) bytes += versionBytes(key, v);
      else bytes += versionBytes(key, h);
    }
    this.order.build(keys);
    this.rev = rev;
    this.compacted = compacted;
    this.live = live;
    this.bytes = bytes;
  }
}

/**
 * A write transaction (etcd's storeTxnWrite): its changes take revision
 * begin + 1 with increasing sub-revisions, and its reads see them.
 */
export class WriteTxn {
  private changes = 0;

  constructor(
    private readonly store: MvccStore,
    /** The store's revision when the transaction began. */
    readonly begin: number,
  ) {}

  get changed(): boolean {
    return this.changes > 0;
  }

  /** The revision the transaction's reads see: its own once it has changed something. */
  get readRevision(): number {
    return this.changes > 0 ? this.begin + 1 : this.begin;
  }

  /** The key's live version as the transaction sees it. */
  get(key: string): Version | undefined {
    return this.store.get(key, this.readRevision);
  }

  /** Writes a version of `key` and returns it (etcd's storeTxnWrite.put). */
  put(key: string, value: string, lease: bigint): Version {
    const main = this.begin + 1;
    const h = this.store.history(key);
    const prev = h === undefined ? undefined : visibleAt(h, this.readRevision);
    const v: Version = {
      main,
      sub: this.changes++,
      value,
      create: prev === undefined ? main : prev.create,
      version: prev === undefined ? 1 : prev.version + 1,
      lease,
    };
    this.store.append(key, h, v);
    return v;
  }

  /** Deletes the live keys in `b`; returns how many (etcd's storeTxnWrite.deleteRange). */
  deleteRange(b: Bounds): number {
    const keys: string[] = [];
    this.store.visit(b, this.readRevision, (key) => {
      keys.push(key);
      return true;
    });
    const main = this.begin + 1;
    for (const key of keys) {
      const tombstone: Version = { main, sub: this.changes++, value: null, create: 0, version: 0, lease: NO_LEASE };
      this.store.append(key, this.store.history(key), tombstone);
    }
    return keys.length;
  }

  /** Ends the transaction (etcd's storeTxnWrite.End). */
  end(): void {
    this.store.commit(this.changes > 0);
  }
}

/** One key's versions for a HashCursor, and the next one to read. */
interface HashSource {
  readonly key: string;
  readonly versions: readonly Version[];
  at: number;
  /** The key's version live at the cursor's revision (the one a compaction there would keep). */
  readonly live: Version | undefined;
}

/**
 * The versions HashKV covers (MvccStore.hashCursor), merged across keys in
 * revision order with a binary heap of the keys' next versions, a slice at
 * a time: a million versions are neither sorted nor listed at once.
 */
export class HashCursor {
  private readonly heap: HashSource[] = [];

  constructor(
    sources: readonly HashSource[],
    private readonly rev: number,
    private readonly compacted: number,
    /** No key is live at `rev`: etcd then counts every older version. */
    private readonly allOlder: boolean,
  ) {
    for (const s of sources) if (this.seek(s)) this.heap.push(s);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  /** Up to `max` more versions, in revision order; none at the end. */
  next(max: number): { key: string; v: Version }[] {
    const out: { key: string; v: Version }[] = [];
    const heap = this.heap;
    while (out.length < max && heap.length > 0) {
      const s = heap[0]!;
      out.push({ key: s.key, v: s.versions[s.at]! });
      s.at++;
      if (!this.seek(s)) {
        const last = heap.pop()!;
        if (heap.length === 0) break;
        heap[0] = last;
      }
      this.siftDown(0);
    }
    return out;
  }

  /** Moves `s` to its next version to hash; false if it has none left. */
  private seek(s: HashSource): boolean {
    for (; s.at < s.versions.length; s.at++) {
      const v = s.versions[s.at]!;
      if (v.main > this.rev) return false;
      if (v.main > this.compacted || this.allOlder || v === s.live) return true;
    }
    return false;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    for (;;) {
      let least = i;
      const l = 2 * i + 1;
      const r = l + 1;
      if (l < n && before(heap[l]!, heap[least]!)) least = l;
      if (r < n && before(heap[r]!, heap[least]!)) least = r;
      if (least === i) return;
      [heap[i], heap[least]] = [heap[least]!, heap[i]!];
      i = least;
    }
  }
}

function before(a: HashSource, b: HashSource): boolean {
  const x = a.versions[a.at]!;
  const y = b.versions[b.at]!;
  return x.main < y.main || (x.main === y.main && x.sub < y.sub);
}
