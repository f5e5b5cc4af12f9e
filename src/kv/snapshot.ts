// The key-value state as bytes: the Raft snapshot of the store, and the
// hashes members compare to detect divergence.
//
// Format, version 1 (integers are varints, see codec.ts):
//   "RKVS" | u8 version | revision | compact revision (signed) | log clock (ms)
//   | key count | per key, in ascending key order:
//       key | version count | per version, oldest first:
//         main | sub | u8 flags (1: tombstone, 2: lease follows)
//         | (live only) create revision | version | value | (flag 2) i64 lease
//   | the session table (sessions.ts) | u32 CRC32C of everything before it.
//
// Deterministic: the same state gives the same bytes (keys in order, sessions
// in order of last use, which every member shares). SnapshotEncoder writes
// the same bytes in slices, for a member that must not stall while it does.

import { SnapshotNotReadyError } from '../node/errors.js';
import type { SnapshotTask } from '../node/stateMachine.js';
import { joinParts } from '../storage/bytes.js';
import { crc32c } from '../storage/crc.js';
import { CodecError, Reader, Writer } from './codec.js';
import { KvSnapshotError } from './errors.js';
import { type History, type MvccStore, NO_LEASE, type Version } from './mvcc.js';
import { type Session, SessionTable } from './sessions.js';

const MAGIC = [0x52, 0x4b, 0x56, 0x53]; // "RKVS"
const VERSION = 1;

const TOMBSTONE = 1;
const HAS_LEASE = 2;

/** The encoders hand on their bytes in chunks of about this size. */
const CHUNK = 1 << 16;

function writeVersion(w: Writer, v: Version): void {
  w.uvarint(v.main);
  w.uvarint(v.sub);
  if (v.value === null) {
    w.u8(TOMBSTONE);
    return;
  }
  const hasLease = v.lease !== NO_LEASE;
  w.u8(hasLease ? HAS_LEASE : 0);
  w.uvarint(v.create);
  w.uvarint(v.version);
  w.latin1(v.value);
  if (hasLease) w.i64(v.lease);
}

function writeHeader(w: Writer, revision: number, compactRevision: number, clock: number, keyCount: number): void {
  for (const b of MAGIC) w.u8(b);
  w.u8(VERSION);
  w.uvarint(revision);
  w.svarint(compactRevision);
  w.uvarint(clock);
  w.uvarint(keyCount);
}

/**
 * Writes a key and the versions of its history at or below `rev`: all of
 * them in a live history, and in one captured at `rev` those it had then
 * (a history only grows in place, by versions above the store's revision).
 */
function writeHistory(w: Writer, key: string, h: History, rev: number): void {
  w.latin1(key);
  if (!Array.isArray(h)) {
    w.uvarint(1);
    writeVersion(w, h);
    return;
  }
  let n = h.length;
  while (n > 0 && h[n - 1]!.main > rev) n--;
  w.uvarint(n);
  for (let i = 0; i < n; i++) writeVersion(w, h[i]!);
}

/** writeHistory, unless the key has no version at or below `rev` (created later): then nothing; true if written. */
function writeVisibleHistory(w: Writer, key: string, h: History, rev: number): boolean {
  const first = Array.isArray(h) ? h[0]! : h;
  if (first.main > rev) return false;
  writeHistory(w, key, h, rev);
  return true;
}

/**
 * Writes the state in the snapshot format, minus the final checksum,
 * handing the bytes to `sink` in chunks of about CHUNK bytes (each a view,
 * valid only during the call), so a hash never holds the encoded state.
 */
function writeState(store: MvccStore, sessions: SessionTable, clock: number, sink: (chunk: Uint8Array) => void): void {
  const w = new Writer(CHUNK + 1024);
  const flush = () => {
    sink(w.written());
    w.reset();
  };
  const rev = store.currentRevision;
  writeHeader(w, rev, store.compactRevision, clock, store.historyCount);
  store.forEach((key, h) => {
    writeHistory(w, key, h, rev);
    if (w.pos > CHUNK) flush();
  });
  sessions.encode(w);
  flush();
}

export function encodeSnapshot(store: MvccStore, sessions: SessionTable, clock: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let crc = 0;
  let size = 0;
  writeState(store, sessions, clock, (chunk) => {
    crc = crc32c(chunk, crc);
    size += chunk.length;
    chunks.push(new Uint8Array(chunk)); // a copy: the chunk is a view the writer reuses
  });
  const out = new Uint8Array(size + 4);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  new DataView(out.buffer).setUint32(size, crc, true);
  return out;
}

/** A snapshot being encoded saw the store change under it: a bug, never written (the node stops). */
export class SnapshotViewError extends Error {
  readonly code = 'KV_SNAPSHOT_VIEW_BROKEN';
  constructor(detail: string) {
    super(`SnapshotEncoder: ${detail}`);
    this.name = 'SnapshotViewError';
  }
}

/** Bytes a SnapshotEncoder step encodes by default: a few milliseconds of work. */
export const SNAPSHOT_STEP_BYTES = 256 * 1024;

/**
 * encodeSnapshot a slice at a time, of the state at construction, while
 * the store goes on changing between the steps (the node applies entries
 * meanwhile; etcd gets the same from a bbolt read transaction).
 *
 * Starting costs nothing per key: each step reads the live store onward
 * from the last key written, and what the store does after the start
 * cannot alter what a step reads: a write adds versions above the revision
 * at the start, which writeVisibleHistory leaves out (and a key created
 * after the start has no other, so it is left out whole); a restore builds
 * a new store; versions are immutable. Only compaction removes what the
 * snapshot needs: the store calls captureRest() first (MvccStore.compact),
 * which takes a reference per remaining key, as the whole start used to
 * (10-17 ms for 63k keys, a stall for every request then in flight), and
 * the steps go on from those. The session table is small and changes in
 * place, so it is encoded at the start.
 */
export class SnapshotEncoder implements SnapshotTask {
  private readonly revision: number;
  /** Keys at the start: exactly those the snapshot holds (written in the header). */
  private readonly keyCount: number;
  private keysWritten = 0;
  /** The last key written; undefined before the first. */
  private after: string | undefined;
  /** The rest of the view, once compaction made the encoder take it (captureRest). */
  private rest: { keys: string[]; histories: History[]; next: number } | undefined;
  private readonly sessions: Uint8Array;
  private readonly w = new Writer(CHUNK + 1024);
  private readonly chunks: Uint8Array[] = [];
  private crc = 0;
  /** Bytes handed to chunks so far. */
  private flushed = 0;
  /** Every chunk is encoded: parts() and result() are ready. */
  private encoded = false;
  private joined: Uint8Array | undefined;

  constructor(
    private readonly store: MvccStore,
    sessions: SessionTable,
    clock: number,
  ) {
    this.revision = store.currentRevision;
    this.keyCount = store.historyCount;
    const s = new Writer();
    sessions.encode(s);
    this.sessions = s.finish();
    writeHeader(this.w, this.revision, store.compactRevision, clock, this.keyCount);
    store.setSnapshotReader(this);
  }

  /** Called by the store before a compaction: takes a reference to every key's history not yet written. */
  captureRest(): void {
    if (this.rest !== undefined || this.encoded) return;
    const keys: string[] = [];
    const histories: History[] = [];
    this.store.historiesAfter(this.after, (key, h) => {
      keys.push(key);
      histories.push(h);
      return true;
    });
    this.rest = { keys, histories, next: 0 };
  }

  /** Encodes about `budgetBytes`; true once parts() and result() are ready. */
  step(budgetBytes = SNAPSHOT_STEP_BYTES): boolean {
    if (this.encoded) return true;
    const until = this.flushed + budgetBytes;
    const write = (key: string, h: History): boolean => {
      if (writeVisibleHistory(this.w, key, h, this.revision)) this.keysWritten++;
      this.after = key;
      if (this.w.pos > CHUNK) this.flush();
      return this.flushed + this.w.pos < until;
    };
    let reachedEnd: boolean;
    const rest = this.rest;
    if (rest === undefined) {
      reachedEnd = this.store.historiesAfter(this.after, write);
    } else {
      while (rest.next < rest.keys.length && write(rest.keys[rest.next]!, rest.histories[rest.next]!)) rest.next++;
      if (rest.next < rest.keys.length) rest.next++; // write() returned false after writing it
      reachedEnd = rest.next >= rest.keys.length;
    }
    if (!reachedEnd) return false;
    if (this.keysWritten !== this.keyCount) {
      throw new SnapshotViewError(`wrote ${this.keysWritten} keys, the header says ${this.keyCount} (a store change reached the view)`);
    }
    this.flush();
    this.add(this.sessions);
    const trailer = new Uint8Array(4);
    new DataView(trailer.buffer).setUint32(0, this.crc, true);
    this.chunks.push(trailer);
    this.rest = undefined;
    this.store.setSnapshotReader(undefined, this);
    this.encoded = true;
    return true;
  }

  /** The snapshot as the chunks encoded, in order (no copy: the node frames them itself). */
  parts(): readonly Uint8Array[] {
    if (!this.encoded) throw new SnapshotNotReadyError('SnapshotEncoder');
    return this.chunks;
  }

  /** The snapshot: byte for byte what encodeSnapshot returned at construction (joined at once on the first call). */
  result(): Uint8Array {
    this.joined ??= joinParts(this.parts());
    return this.joined;
  }

  private flush(): void {
    if (this.w.pos === 0) return;
    this.add(new Uint8Array(this.w.written())); // a copy: the writer reuses its buffer
    this.w.reset();
  }

  private add(chunk: Uint8Array): void {
    this.crc = crc32c(chunk, this.crc);
    this.flushed += chunk.length;
    this.chunks.push(chunk);
  }
}

/** The CRC32C of the whole state (store, sessions, clock) as encodeSnapshot writes it, without building the snapshot. */
export function hashState(store: MvccStore, sessions: SessionTable, clock: number): number {
  let crc = 0;
  writeState(store, sessions, clock, (chunk) => {
    crc = crc32c(chunk, crc);
  });
  return crc;
}

export interface DecodedSnapshot {
  readonly revision: number;
  readonly compactRevision: number;
  readonly clock: number;
  readonly keys: string[];
  readonly histories: History[];
  readonly sessions: Map<string, Session>;
}

/** Parses and checks a snapshot; throws KvSnapshotError if it is damaged or of another format. */
export function decodeSnapshot(data: Uint8Array): DecodedSnapshot {
  if (data.length < MAGIC.length + 1 + 4) throw new KvSnapshotError(`${data.length} bytes is too short for a snapshot`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (data[i] !== MAGIC[i]) throw new KvSnapshotError('not a raftkv key-value snapshot (bad magic)');
  }
  if (data[MAGIC.length] !== VERSION) {
    throw new KvSnapshotError(`unsupported snapshot format version ${data[MAGIC.length]} (this build reads version ${VERSION})`);
  }
  const body = data.length - 4;
  const stored = new DataView(data.buffer, data.byteOffset + body, 4).getUint32(0, true);
  const actual = crc32c(data.subarray(0, body));
  if (stored !== actual) {
    throw new KvSnapshotError(`checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)}): the snapshot is damaged`);
  }
  try {
    return parse(new Reader(data, MAGIC.length + 1, body));
  } catch (e) {
    if (e instanceof CodecError || e instanceof SnapshotFormatError) throw new KvSnapshotError(e.message);
    throw e;
  }
}

class SnapshotFormatError extends Error {}

function fail(what: string): never {
  throw new SnapshotFormatError(what);
}

function parse(r: Reader): DecodedSnapshot {
  const revision = r.uvarint();
  const compactRevision = r.svarint();
  const clock = r.uvarint();
  if (revision < 1) fail(`revision ${revision} < 1`);
  if (compactRevision < -1 || compactRevision > revision) fail(`compact revision ${compactRevision} outside -1..${revision}`);

  const keys: string[] = [];
  const histories: History[] = [];
  let prevKey: string | undefined;
  for (let n = r.count(2), i = 0; i < n; i++) {
    const key = r.latin1();
    if (key.length === 0) fail('empty key');
    if (prevKey !== undefined && key <= prevKey) fail('keys out of order');
    prevKey = key;
    const m = r.count(3);
    if (m === 0) fail('a key with no versions');
    if (m === 1) {
      // Most keys: one version, held alone (mvcc.History).
      const v = readVersion(r);
      checkVersion(v, undefined, revision);
      keys.push(key);
      histories.push(v);
      continue;
    }
    // Exact-size: a pushed-to array keeps spare capacity, which adds up over millions of keys.
    const versions = new Array<Version>(m);
    for (let j = 0; j < m; j++) {
      const v = readVersion(r);
      checkVersion(v, j > 0 ? versions[j - 1] : undefined, revision);
      versions[j] = v;
    }
    keys.push(key);
    histories.push(versions);
  }
  const sessions = SessionTable.decode(r);
  if (r.remaining !== 0) fail(`${r.remaining} unexpected bytes after the session table`);
  return { revision, compactRevision, clock, keys, histories, sessions };
}

/** Checks a version against the one before it in its key's history, and the store's revision. */
function checkVersion(v: Version, prev: Version | undefined, revision: number): void {
  if (v.main < 1 || v.main > revision) fail(`version at revision ${v.main} outside 1..${revision}`);
  if (prev !== undefined && (v.main < prev.main || (v.main === prev.main && v.sub <= prev.sub))) fail('versions out of order');
  if (v.value === null) {
    if (prev === undefined || prev.value === null) fail('a tombstone of an absent key');
  } else if (prev === undefined) {
    if (v.create < 1 || v.create > v.main || v.version < 1) fail('bad create revision or version');
  } else if (prev.value === null) {
    if (v.create !== v.main || v.version !== 1) fail('a new generation not starting at version 1');
  } else {
    if (v.create !== prev.create || v.version !== prev.version + 1) fail('versions of a generation do not follow');
  }
}

function readVersion(r: Reader): Version {
  const main = r.uvarint();
  const sub = r.uvarint();
  const flags = r.u8();
  if ((flags & ~(TOMBSTONE | HAS_LEASE)) !== 0 || flags === (TOMBSTONE | HAS_LEASE)) fail(`bad version flags ${flags}`);
  if (flags === TOMBSTONE) return { main, sub, value: null, create: 0, version: 0, lease: NO_LEASE };
  const create = r.uvarint();
  const version = r.uvarint();
  const value = r.latin1();
  const lease = (flags & HAS_LEASE) !== 0 ? r.i64() : NO_LEASE;
  return { main, sub, value, create, version, lease };
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
