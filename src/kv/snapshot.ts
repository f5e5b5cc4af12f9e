// The key-value state as bytes: the Raft snapshot of the store, and the
// hashes members compare to detect divergence.
//
// Format, version 2 (integers are varints, see codec.ts):
//   "RKVS" | u8 version 2
//   | sections: each u8 1 | records | an empty key
//   | u8 0 | revision | compact revision (signed) | log clock (ms)
//   | the session table (sessions.ts) | u32 CRC32C of everything before it.
// A record is a key and some of its versions, oldest first:
//   key | version count | per version:
//     main | sub | u8 flags (1: tombstone, 2: lease follows)
//     | (live only) create revision | version | value | (flag 2) i64 lease
// The first section is the store as of one snapshot: a record per key, in
// ascending key order. Each later one is what was written between two
// snapshots: a record per version written, in the order written (a key
// may come again; its versions in a section follow those before). So a
// snapshot's bytes up to the end of its sections are the first bytes of
// the next one's, as long as no compaction came between (one rewrites the
// history: the next snapshot starts over with one section): a member
// encodes only what was written since its last snapshot, taking it from
// the store's record of writes rather than looking at every key, and
// storage writes only that (storage/snapshot.ts, "prefix"). etcd gets the
// same from bbolt, whose file is the state.
//
// Version 1, still read (data directories of earlier builds): the revision,
// compact revision, clock and key count after the version byte, then one
// record per key, the session table and the checksum. hashState() hashes
// the state in version 1's layout, which does not change between builds,
// so members of different builds compare equal.
//
// Deterministic: the same state and the same snapshot before it give the
// same bytes (keys in order, sessions in order of last use, which every
// member shares). SnapshotEncoder writes them in slices, for a member that
// must not stall while it does.

import { SnapshotNotReadyError } from '../node/errors.js';
import type { SnapshotTask } from '../node/stateMachine.js';
import { joinParts, partsLength } from '../storage/bytes.js';
import { crc32c } from '../storage/crc.js';
import { CodecError, Reader, Writer } from './codec.js';
import { KvSnapshotError } from './errors.js';
import { type History, type MvccStore, NO_LEASE, type Version } from './mvcc.js';
import { type Session, SessionTable } from './sessions.js';

const MAGIC = [0x52, 0x4b, 0x56, 0x53]; // "RKVS"
/** The format written; decodeSnapshot reads this one and FORMAT_V1. */
const FORMAT = 2;
const FORMAT_V1 = 1;

/** Version 2's tags: a section of records follows, or the footer. */
const SECTION = 1;
const END_OF_SECTIONS = 0;

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

/**
 * Writes a record of a key's versions at or below `rev` (one read while
 * the store goes on may have versions above it, added in place since).
 * Writes nothing and returns false if there are none: a key created after
 * `rev`.
 */
function writeRecord(w: Writer, key: string, h: History, rev: number): boolean {
  if (!Array.isArray(h)) {
    if (h.main > rev) return false;
    w.latin1(key);
    w.uvarint(1);
    writeVersion(w, h);
    return true;
  }
  let n = h.length;
  while (n > 0 && h[n - 1]!.main > rev) n--;
  if (n === 0) return false;
  w.latin1(key);
  w.uvarint(n);
  for (let i = 0; i < n; i++) writeVersion(w, h[i]!);
  return true;
}

function writeMagic(w: Writer, format: number): void {
  for (const b of MAGIC) w.u8(b);
  w.u8(format);
}

/** Version 2's footer, after the sections, up to the session table: the store's revisions and the log clock. */
function writeFooter(w: Writer, revision: number, compactRevision: number, clock: number): void {
  w.u8(END_OF_SECTIONS);
  w.uvarint(revision);
  w.svarint(compactRevision);
  w.uvarint(clock);
}

function encodeSessions(sessions: SessionTable): Uint8Array {
  const s = new Writer();
  sessions.encode(s);
  return s.finish();
}

/** The CRC32C of the whole state (store, sessions, clock) in version 1's layout, without building a snapshot. */
export function hashState(store: MvccStore, sessions: SessionTable, clock: number): number {
  const w = new Writer(CHUNK + 1024);
  let crc = 0;
  const flush = () => {
    crc = crc32c(w.written(), crc);
    w.reset();
  };
  const rev = store.currentRevision;
  writeMagic(w, FORMAT_V1);
  w.uvarint(rev);
  w.svarint(store.compactRevision);
  w.uvarint(clock);
  w.uvarint(store.historyCount);
  store.forEach((key, h) => {
    writeRecord(w, key, h, rev);
    if (w.pos > CHUNK) flush();
  });
  sessions.encode(w);
  flush();
  return crc;
}

/** The whole state as one snapshot of one section (what SnapshotEncoder writes without a base). */
export function encodeSnapshot(store: MvccStore, sessions: SessionTable, clock: number): Uint8Array {
  const w = new Writer(CHUNK + 1024);
  const rev = store.currentRevision;
  writeMagic(w, FORMAT);
  w.u8(SECTION);
  store.forEach((key, h) => writeRecord(w, key, h, rev));
  w.latin1('');
  writeFooter(w, rev, store.compactRevision, clock);
  sessions.encode(w);
  const body = w.written();
  const out = new Uint8Array(body.length + 4);
  out.set(body);
  new DataView(out.buffer).setUint32(body.length, crc32c(body), true);
  return out;
}

/**
 * What the snapshot after an encoded one may start from: its bytes up to
 * the end of its sections, as the parts they were handed on in (the next
 * snapshot hands on the same objects, so storage can see what the two
 * share), and what they hold.
 */
export interface SnapshotBase {
  /** The store they were read from: a restore makes a new one, and a snapshot of it cannot follow. */
  readonly store: MvccStore;
  readonly revision: number;
  readonly compactRevision: number;
  readonly parts: readonly Uint8Array[];
  /** CRC32C of the parts, to be continued. */
  readonly crc: number;
  /** Where the store's record of writes stood at its start (MvccStore.changeMark): the next snapshot encodes the writes after it. */
  readonly mark: number;
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
 * A snapshot of the state at construction, encoded a slice at a time while
 * the store goes on changing between the steps (the node applies entries
 * meanwhile; etcd gets the same from a bbolt read transaction). Given the
 * base of an earlier snapshot of the same store with no compaction since,
 * it starts from the base's parts and encodes one section of what was
 * written after it; otherwise it encodes the whole store in one section,
 * the bytes encodeSnapshot returns.
 *
 * Starting costs nothing per key: each step reads the live store onward
 * from the last key written, and what the store does after the start
 * cannot alter what a step reads: a write adds versions above the revision
 * at the start, which writeRecord leaves out (and a key created after the
 * start has no other, so it is left out whole); a restore builds a new
 * store; versions are immutable. Only compaction removes what the
 * snapshot needs: the store calls captureRest() first (MvccStore.compact),
 * which takes a reference per remaining key, as the whole start used to
 * (10-17 ms for 63k keys, a stall for every request then in flight), and
 * the steps go on from those. The session table is small and changes in
 * place, so it is encoded at the start.
 */
export class SnapshotEncoder implements SnapshotTask {
  private readonly revision: number;
  private readonly compactRevision: number;
  private readonly clock: number;
  /** Where the store's record of writes stood at the start: the snapshot after this one encodes the writes after it. */
  private readonly mark: number;
  /** Following a base: the versions written since it, with their keys, in write order, and the next to write. */
  private readonly changed: { keys: string[]; versions: Version[]; next: number } | undefined;
  /** Without a base, the keys at the start: exactly those the snapshot holds. */
  private readonly keyCount: number | undefined;
  private keysWritten = 0;
  /** Without a base: the last key looked at (undefined before the first), and the rest of the view once compaction made the encoder take it. */
  private after: string | undefined;
  private rest: { keys: string[]; histories: History[]; next: number } | undefined;
  private readonly sessions: Uint8Array;
  private readonly w = new Writer(CHUNK + 1024);
  private readonly chunks: Uint8Array[];
  private crc: number;
  /** Bytes handed to chunks so far. */
  private flushed: number;
  /** A section is open: its records are being written (one following a base opens at its first record). */
  private sectionOpen = false;
  /** Every chunk is encoded: parts(), result() and base are ready. */
  private encoded: SnapshotBase | undefined;
  private joined: Uint8Array | undefined;

  constructor(
    private readonly store: MvccStore,
    sessions: SessionTable,
    clock: number,
    base?: SnapshotBase,
    /** Called with this snapshot's base once it is encoded. */
    private readonly onEncoded?: (base: SnapshotBase) => void,
  ) {
    this.revision = store.currentRevision;
    this.compactRevision = store.compactRevision;
    this.clock = clock;
    this.sessions = encodeSessions(sessions);
    this.mark = store.changeMark();
    const usable = base !== undefined && base.store === store && base.compactRevision === store.compactRevision && base.revision <= this.revision;
    const changed = usable ? store.changedSince(base.mark) : undefined;
    if (changed !== undefined) {
      this.changed = { ...changed, next: 0 };
      this.keyCount = undefined;
      this.chunks = [...base!.parts];
      this.crc = base!.crc;
      this.flushed = partsLength(base!.parts);
    } else {
      this.changed = undefined;
      this.keyCount = store.historyCount;
      this.chunks = [];
      this.crc = 0;
      this.flushed = 0;
      writeMagic(this.w, FORMAT);
      this.openSection();
    }
    store.setSnapshotReader(this);
  }

  /** The snapshot starts from an earlier one's parts and encodes only what came after it. */
  get followsBase(): boolean {
    return this.changed !== undefined;
  }

  /**
   * Called by the store before a compaction: takes a reference to every
   * key's history not yet written (a snapshot following a base already has
   * the versions it writes).
   */
  captureRest(): void {
    if (this.rest !== undefined || this.changed !== undefined || this.encoded) return;
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
    const reachedEnd = this.changed !== undefined ? this.writeChanges(until) : this.writeStore(until);
    if (!reachedEnd) return false;
    this.finishSections();
    return true;
  }

  /** Writes the store's keys onward from the last one written, until `until` bytes; true at the end. */
  private writeStore(until: number): boolean {
    const write = (key: string, h: History): boolean => {
      if (writeRecord(this.w, key, h, this.revision)) this.keysWritten++;
      this.after = key;
      if (this.w.pos > CHUNK) this.flush();
      return this.flushed + this.w.pos < until;
    };
    const rest = this.rest;
    if (rest === undefined) return this.store.historiesAfter(this.after, write);
    while (rest.next < rest.keys.length && write(rest.keys[rest.next]!, rest.histories[rest.next]!)) rest.next++;
    if (rest.next < rest.keys.length) rest.next++; // write() returned false after writing it
    return rest.next >= rest.keys.length;
  }

  /** Writes a record per version written since the base, in write order, until `until` bytes; true at the end. */
  private writeChanges(until: number): boolean {
    const changed = this.changed!;
    const w = this.w;
    while (changed.next < changed.keys.length) {
      if (!this.sectionOpen) this.openSection();
      w.latin1(changed.keys[changed.next]!);
      w.uvarint(1);
      writeVersion(w, changed.versions[changed.next]!);
      changed.next++;
      if (w.pos > CHUNK) this.flush();
      if (this.flushed + w.pos >= until) break;
    }
    return changed.next >= changed.keys.length;
  }

  private openSection(): void {
    this.w.u8(SECTION);
    this.sectionOpen = true;
  }

  /** Closes the section, notes the base the next snapshot may start from, then the footer and the checksum. */
  private finishSections(): void {
    if (this.keyCount !== undefined && this.keysWritten !== this.keyCount) {
      throw new SnapshotViewError(`wrote ${this.keysWritten} keys, the store had ${this.keyCount} at the start (a store change reached the view)`);
    }
    if (this.sectionOpen) this.w.latin1(''); // an empty key ends the section
    this.sectionOpen = false;
    this.flush();
    const base: SnapshotBase = {
      store: this.store,
      revision: this.revision,
      compactRevision: this.compactRevision,
      parts: this.chunks.slice(),
      crc: this.crc,
      mark: this.mark,
    };
    writeFooter(this.w, this.revision, this.compactRevision, this.clock);
    this.flush();
    this.add(this.sessions);
    const trailer = new Uint8Array(4);
    new DataView(trailer.buffer).setUint32(0, this.crc, true);
    this.chunks.push(trailer);
    this.rest = undefined;
    this.store.setSnapshotReader(undefined, this);
    this.encoded = base;
    this.onEncoded?.(base);
  }

  /** The snapshot as the chunks encoded, in order (no copy: the node frames them itself). Those from the base are its own objects. */
  parts(): readonly Uint8Array[] {
    if (!this.encoded) throw new SnapshotNotReadyError('SnapshotEncoder');
    return this.chunks;
  }

  /** The snapshot, joined at once on the first call: without a base, byte for byte what encodeSnapshot returned at construction. */
  result(): Uint8Array {
    this.joined ??= joinParts(this.parts());
    return this.joined;
  }

  private flush(): void {
    if (this.w.pos === 0) return;
    this.add(this.w.take());
  }

  private add(chunk: Uint8Array): void {
    this.crc = crc32c(chunk, this.crc);
    this.flushed += chunk.length;
    this.chunks.push(chunk);
  }
}

export interface DecodedSnapshot {
  readonly revision: number;
  readonly compactRevision: number;
  readonly clock: number;
  /** In ascending order. */
  readonly keys: string[];
  readonly histories: History[];
  readonly sessions: Map<string, Session>;
}

/** Parses and checks a snapshot (version 2, or 1 of earlier builds); throws KvSnapshotError if it is damaged or of another format. */
export function decodeSnapshot(data: Uint8Array): DecodedSnapshot {
  if (data.length < MAGIC.length + 1 + 4) throw new KvSnapshotError(`${data.length} bytes is too short for a snapshot`);
  for (let i = 0; i < MAGIC.length; i++) {
    if (data[i] !== MAGIC[i]) throw new KvSnapshotError('not a raftkv key-value snapshot (bad magic)');
  }
  const format = data[MAGIC.length];
  if (format !== FORMAT && format !== FORMAT_V1) {
    throw new KvSnapshotError(`unsupported snapshot format version ${format} (this build reads versions ${FORMAT_V1} and ${FORMAT})`);
  }
  const body = data.length - 4;
  const stored = new DataView(data.buffer, data.byteOffset + body, 4).getUint32(0, true);
  const actual = crc32c(data.subarray(0, body));
  if (stored !== actual) {
    throw new KvSnapshotError(`checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)}): the snapshot is damaged`);
  }
  try {
    const r = new Reader(data, MAGIC.length + 1, body);
    return format === FORMAT ? parse(r) : parseV1(r);
  } catch (e) {
    if (e instanceof CodecError || e instanceof SnapshotFormatError) throw new KvSnapshotError(e.message);
    throw e;
  }
}

class SnapshotFormatError extends Error {}

function fail(what: string): never {
  throw new SnapshotFormatError(what);
}

/** The keys and histories of a snapshot being read, in the order their records came. */
class HistoryBuilder {
  readonly keys: string[] = [];
  readonly histories: History[] = [];
  /** Where each key is, once a record may add to a key already read (a second section). */
  private at: Map<string, number> | undefined;
  /** Keys came out of order (a later section added one): sort before use. */
  private unsorted = false;

  /** The versions of the record at `r`, for `key`: a new key, or one whose history they continue. */
  readRecord(r: Reader, key: string, revision: number): void {
    const m = r.count(3);
    if (m === 0) fail('a record with no versions');
    const i = this.at?.get(key);
    if (i === undefined) {
      const last = this.keys[this.keys.length - 1];
      if (last !== undefined && key < last) this.unsorted = true;
      this.at?.set(key, this.keys.length);
      this.keys.push(key);
      this.histories.push(readVersions(r, m, undefined, revision));
      return;
    }
    const h = this.histories[i]!;
    const before = Array.isArray(h) ? h : [h];
    const more = readVersions(r, m, before[before.length - 1], revision);
    if (Array.isArray(more)) before.push(...more);
    else before.push(more);
    this.histories[i] = before;
  }

  /** From here on records may continue keys already read. */
  indexKeys(): void {
    if (this.at !== undefined) return;
    this.at = new Map();
    for (let i = 0; i < this.keys.length; i++) this.at.set(this.keys[i]!, i);
  }

  /** Keys and histories in ascending key order. */
  sorted(): { keys: string[]; histories: History[] } {
    if (!this.unsorted) return { keys: this.keys, histories: this.histories };
    const order = this.keys.map((_, i) => i).sort((a, b) => (this.keys[a]! < this.keys[b]! ? -1 : 1));
    return { keys: order.map((i) => this.keys[i]!), histories: order.map((i) => this.histories[i]!) };
  }
}

/**
 * `m` versions following `prev` (the key's last so far, if any), checked
 * against it and `revision`. One version is kept alone (mvcc.History);
 * more, in an array of exactly their number (a pushed-to array keeps spare
 * capacity, which adds up over millions of keys).
 */
function readVersions(r: Reader, m: number, prev: Version | undefined, revision: number): History {
  if (m === 1) {
    const v = readVersion(r);
    checkVersion(v, prev, revision);
    return v;
  }
  const versions = new Array<Version>(m);
  for (let j = 0; j < m; j++) {
    const v = readVersion(r);
    checkVersion(v, j > 0 ? versions[j - 1] : prev, revision);
    versions[j] = v;
  }
  return versions;
}

function parse(r: Reader): DecodedSnapshot {
  const built = new HistoryBuilder();
  let sections = 0;
  // The revision comes after the versions: check them against the highest first.
  const unknown = Number.MAX_SAFE_INTEGER;
  for (;;) {
    const tag = r.u8();
    if (tag === END_OF_SECTIONS) break;
    if (tag !== SECTION) fail(`bad section tag ${tag}`);
    // The first section: each key once, in ascending order; later ones, writes in the order made.
    const first = ++sections === 1;
    if (!first) built.indexKeys();
    let prevKey: string | undefined;
    for (;;) {
      const key = r.latin1();
      if (key.length === 0) break;
      if (first && prevKey !== undefined && key <= prevKey) fail('keys out of order in the first section');
      prevKey = key;
      built.readRecord(r, key, unknown);
    }
  }
  const revision = r.uvarint();
  const compactRevision = r.svarint();
  const clock = r.uvarint();
  checkRevisions(revision, compactRevision);
  const { keys, histories } = built.sorted();
  for (const h of histories) {
    const last = Array.isArray(h) ? h[h.length - 1]! : h;
    if (last.main > revision) fail(`version at revision ${last.main} above the snapshot's revision ${revision}`);
  }
  const sessions = SessionTable.decode(r);
  if (r.remaining !== 0) fail(`${r.remaining} unexpected bytes after the session table`);
  return { revision, compactRevision, clock, keys, histories, sessions };
}

function checkRevisions(revision: number, compactRevision: number): void {
  if (revision < 1) fail(`revision ${revision} < 1`);
  if (compactRevision < -1 || compactRevision > revision) fail(`compact revision ${compactRevision} outside -1..${revision}`);
}

/** Version 1: the revisions first, then one record per key in ascending order. */
function parseV1(r: Reader): DecodedSnapshot {
  const revision = r.uvarint();
  const compactRevision = r.svarint();
  const clock = r.uvarint();
  checkRevisions(revision, compactRevision);
  const built = new HistoryBuilder();
  let prevKey: string | undefined;
  for (let n = r.count(2), i = 0; i < n; i++) {
    const key = r.latin1();
    if (key.length === 0) fail('empty key');
    if (prevKey !== undefined && key <= prevKey) fail('keys out of order');
    prevKey = key;
    built.readRecord(r, key, revision);
  }
  const sessions = SessionTable.decode(r);
  if (r.remaining !== 0) fail(`${r.remaining} unexpected bytes after the session table`);
  return { revision, compactRevision, clock, keys: built.keys, histories: built.histories, sessions };
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
