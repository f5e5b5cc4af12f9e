// Corruption fuzzing on real files (issue 4, "Crash-consistency tests"): a
// seeded workload writes a log through DiskStorage on the real disk
// (NodeFileSystem, in a temporary directory), with segments of 16 KiB so the
// log spans several of them, entries of very different sizes, hard states and
// local snapshots with compaction. Then, case after case, a copy of that
// directory is damaged -- bits flipped (anywhere, or in the last records),
// a range zeroed (anywhere, to the end of the data, over a segment header),
// a segment cut short (anywhere, at a record boundary), a segment deleted,
// one or all snapshot files flipped, zeroed or cut -- and opened again.
//
// Every case must end one of two ways:
//  (a) recovery succeeds, and what it returns is exactly a state the log went
//      through: entries byte-identical to what was written at each index, the
//      hard state written with them, a snapshot that was taken. It may hold
//      less than was written only when the damage hit the last flush (one
//      write + fdatasync) of the last segment, what a crash's torn write
//      looks like (a disk may persist that write's sectors in any order, so
//      records of the same flush may survive after the damage), and then it must
//      keep every record before the damage and say so in recovery.tornTail --
//      unless the damage left nothing a reader could tell from the end of
//      the log (the bytes after the cut are all zeros, or the file ends
//      there), which is counted apart as "undetectable": that is what a
//      write that never reached the disk leaves. (A last segment cut short
//      inside its records is refused: it is shorter than its preallocated
//      size, which a crash never does.) A recovered log must then also take
//      one more entry and come back with it after a restart;
//  (b) recovery refuses with a StorageError naming the file (and, for the
//      log, the offset) of the damage.
// Never wrong data, never a TypeError/RangeError or other stray exception.
//
// The expected states are derived independently of the code under test: the
// model of what the workload wrote, and a minimal frame walker over the
// pristine files (crc | length | payload | padding, see record.ts) that tells
// where each record lies, so that the test knows which records a given
// damage destroyed and which survived.
//
// The test prints how many cases ended which way, by kind of damage.
// CORRUPTION_CASES=a-b runs other cases (default 0-999); a failing case
// prints its number and damage, and CORRUPTION_CASES=n-n replays it alone.
// Bugs it found are reproduced as regression tests at the end.

import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { type ConfState, type Entry, type HardState, type Snapshot, EMPTY_CONF_STATE, EMPTY_HARD_STATE } from '../../src/raft/types.js';
import { Random } from '../../src/sim/random.js';
import { DiskStorage, type DiskStorageOptions, type SaveBatch } from '../../src/storage/diskStorage.js';
import {
  SnapshotCorruptionError,
  SnapshotMissingError,
  StorageError,
  StorageInvariantError,
  WalCorruptionError,
} from '../../src/storage/errors.js';
import { MemoryFileSystem } from '../../src/storage/memoryFs.js';
import { NodeFileSystem } from '../../src/storage/nodeFs.js';

const CLUSTER = 'fuzz';
const MEMBER = 7;
const SEGMENT_BYTES = 16 * 1024;
/** Small, so that reading entries back after recovery goes to the segments, not only the cache. */
const CACHE_BYTES = 8 * 1024;
const WORKLOAD_SEED = 20240604;

const realFs = new NodeFileSystem();

function options(dir: string): DiskStorageOptions {
  return { fs: realFs, dir, clusterId: CLUSTER, memberId: MEMBER, segmentBytes: SEGMENT_BYTES, cacheBytes: CACHE_BYTES };
}

function save(s: DiskStorage, batch: SaveBatch): Promise<void> {
  return new Promise((resolve, reject) => s.save(batch, (err) => (err ? reject(err) : resolve())));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * After close(), a segment the log was preallocating in the background may
 * be left behind as a *.tmp file (recovery removes such leftovers). Waits
 * until its allocation has finished -- so no write to it is still under way
 * -- and removes it, so that copies of the directory hold only the log.
 * (Not a timing assertion: after a generous wait we go on regardless.)
 */
async function settle(dir: string, segmentBytes = SEGMENT_BYTES): Promise<void> {
  const walDir = join(dir, 'wal');
  const pending = () =>
    realFs.list(walDir).filter((n) => {
      if (!n.endsWith('.tmp')) return false;
      try {
        return nodeFs.statSync(join(walDir, n)).size < segmentBytes;
      } catch {
        return false; // removed meanwhile
      }
    });
  for (let k = 0; k < 1000 && pending().length > 0; k++) await sleep(5);
  for (const n of realFs.list(walDir)) if (n.endsWith('.tmp')) nodeFs.rmSync(join(walDir, n), { force: true });
}

// ---------------------------------------------------------------------------
// What the workload wrote

interface Written {
  /** entries[i - 1] is the entry at index i: the workload only appends, so each index has one version. */
  entries: Entry[];
  hardState: HardState;
  /** Snapshots taken, by index. */
  snapshots: Map<number, Snapshot>;
  /** The snapshot files, newest first. */
  snapFiles: string[];
}

/**
 * Entry data: mostly small, some empty, some spanning several 512-byte
 * sectors, a few all zeros (a record holding a whole zero sector is what
 * recovery takes for a torn write if its checksum fails, so damage to one
 * in the last segment is cut off as a torn tail rather than refused).
 */
function entryData(rng: Random): Uint8Array {
  const kind = rng.weighted<'empty' | 'small' | 'medium' | 'large' | 'zeros'>([
    ['empty', 6],
    ['small', 70],
    ['medium', 15],
    ['large', 5],
    ['zeros', 4],
  ]);
  const size = { empty: 0, small: rng.range(1, 200), medium: rng.range(300, 1500), large: rng.range(2000, 5000), zeros: rng.range(600, 1600) }[kind];
  const data = new Uint8Array(size);
  if (kind !== 'zeros') for (let i = 0; i < size; i++) data[i] = rng.next32() & 0xff;
  return data;
}

async function runWorkload(dir: string): Promise<Written> {
  const rng = new Random(WORKLOAD_SEED);
  const s = DiskStorage.open(options(dir));
  const w: Written = { entries: [], hardState: EMPTY_HARD_STATE, snapshots: new Map(), snapFiles: [] };
  const conf: ConfState = { ...EMPTY_CONF_STATE, voters: [MEMBER, 8, 9] };
  let term = 1;
  let durable = 0; // the last index known durable: what may be committed
  const BATCHES = 150;
  for (let b = 0; b < BATCHES; b++) {
    if (rng.chance(0.08)) term++;
    const entries: Entry[] = [];
    const n = rng.range(1, 6);
    for (let k = 0; k < n; k++) {
      const index = w.entries.length + 1;
      const e: Entry = { index, term, type: rng.chance(0.05) ? 'confChange' : 'normal', data: entryData(rng) };
      w.entries.push(e);
      entries.push(e);
    }
    let hardState: HardState | undefined;
    if (rng.chance(0.6)) {
      hardState = { term, vote: rng.pick([0, MEMBER, 8]), commit: Math.max(w.hardState.commit, durable - rng.int(3)) };
      w.hardState = hardState;
    }
    const p = save(s, { entries, hardState });
    // Usually wait for the sync; sometimes let the next batch queue behind it (group commit).
    if (rng.chance(0.7) || b === BATCHES - 1) {
      await p;
      durable = w.entries.length;
    }
    // Local snapshots at the commit index: three of them, and compaction
    // after the second, so the oldest segments are released and recovery
    // depends on a snapshot; the newest can be damaged and fall back to the
    // one before it, which the log still covers.
    if ((b === 45 || b === 85 || b === 125) && w.hardState.commit > 0) {
      await p;
      const at = w.hardState.commit;
      const data = new Uint8Array(rng.range(100, 3000)).map(() => rng.next32() & 0xff);
      const snap = await new Promise<Snapshot>((resolve, reject) => {
        const made = s.createSnapshot(at, conf, data, (err) => (err ? reject(err) : resolve(made)));
      });
      w.snapshots.set(at, snap);
      if (b === 85) s.compact(Math.max(...w.snapshots.keys()) - 40);
    }
  }
  s.close();
  await settle(dir);
  w.snapFiles = realFs.list(join(dir, 'snap')).filter((n) => n.endsWith('.snap')).reverse();
  return w;
}

// ---------------------------------------------------------------------------
// Where the records lie in the pristine files: an independent frame walker

const RECORD_ENTRY = 2;
const RECORD_HARD_STATE = 3;
const RECORD_SNAPSHOT = 4;
/** The end of one write + fdatasync: what follows it was written only once it was durable. */
const RECORD_FLUSH = 6;

interface Rec {
  readonly offset: number;
  /** Just past the bytes the checksum protects (padding after it is not checked). */
  readonly end: number;
  readonly type: number;
  readonly index?: number;
  readonly hardState?: HardState;
}

interface Seg {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly records: Rec[];
  /** Just past the last record. */
  readonly dataEnd: number;
}

function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
}

function walk(name: string, bytes: Uint8Array): Seg {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Rec[] = [];
  let at = 0;
  while (at + 8 <= bytes.length) {
    const length = v.getUint32(at + 4, true);
    if (length === 0) break;
    const p = at + 8;
    const type = bytes[p]!;
    records.push({
      offset: at,
      end: p + length,
      type,
      ...(type === RECORD_ENTRY || type === RECORD_SNAPSHOT ? { index: u64(v, p + 1) } : {}),
      ...(type === RECORD_HARD_STATE ? { hardState: { term: u64(v, p + 1), vote: u64(v, p + 9), commit: u64(v, p + 17) } } : {}),
    });
    at += 8 + ((length + 7) & ~7);
  }
  return { name, bytes, records, dataEnd: at };
}

// ---------------------------------------------------------------------------
// Damage

interface Damage {
  readonly kind: string;
  /** The file damaged: a segment name, a snapshot name, or '*.snap' for all of them. */
  readonly file: string;
  readonly detail: string;
  /** Applies the damage to a copy of the data directory. */
  apply(dir: string): void;
}

function flipBits(path: string, offsets: readonly number[], bits: readonly number[]): void {
  const bytes = nodeFs.readFileSync(path);
  offsets.forEach((o, k) => (bytes[o]! ^= 1 << bits[k]!));
  nodeFs.writeFileSync(path, bytes);
}

function zeroRange(path: string, from: number, to: number): void {
  const bytes = nodeFs.readFileSync(path);
  bytes.fill(0, from, to);
  nodeFs.writeFileSync(path, bytes);
}

function chooseDamage(rng: Random, segs: readonly Seg[], snapFiles: readonly string[]): Damage {
  const last = segs.length - 1;
  // The last segment gets extra attention: its tail is where recovery must
  // tell a crash's torn write from damage to synced data.
  const segIndex = rng.chance(0.4) ? last : rng.int(segs.length);
  const seg = segs[segIndex]!;
  const size = seg.bytes.length;
  const walPath = (dir: string) => join(dir, 'wal', seg.name);
  /** An offset in the records (usually) or anywhere in the file. */
  const offset = () => (rng.chance(0.75) ? rng.int(seg.dataEnd) : rng.int(size));
  /** An offset among the last few records of the segment. */
  const tailOffset = () => seg.records[Math.max(0, seg.records.length - 3)]!.offset + rng.int(seg.dataEnd - seg.records[Math.max(0, seg.records.length - 3)]!.offset);
  const kind = rng.weighted<string>([
    ['flip', 26],
    ['flip-tail', 10],
    ['zero', 14],
    ['zero-to-end', 6],
    ['zero-header', 4],
    ['truncate', 12],
    ['truncate-at-record', 5],
    ['remove-segment', 3],
    ['snap-flip', 8],
    ['snap-zero', 4],
    ['snap-truncate', 4],
    ['snap-all', 3],
  ]);
  switch (kind) {
    case 'flip':
    case 'flip-tail': {
      const n = rng.range(1, 3);
      const offsets = Array.from({ length: n }, () => (kind === 'flip' ? offset() : tailOffset()));
      const bits = offsets.map(() => rng.int(8));
      return {
        kind,
        file: seg.name,
        detail: `flip ${offsets.map((o, k) => `byte ${o} bit ${bits[k]}`).join(', ')}`,
        apply: (dir) => flipBits(walPath(dir), offsets, bits),
      };
    }
    case 'zero': {
      const from = offset();
      const to = Math.min(size, from + rng.range(1, rng.chance(0.5) ? 64 : 3000));
      return { kind, file: seg.name, detail: `zero [${from}, ${to})`, apply: (dir) => zeroRange(walPath(dir), from, to) };
    }
    case 'zero-to-end': {
      // From some record's start (or anywhere in it) to the end of the data:
      // a write that never reached the disk looks exactly like this.
      const r = seg.records[rng.int(seg.records.length)]!;
      const from = rng.chance(0.5) ? r.offset : r.offset + rng.int(r.end - r.offset);
      return { kind, file: seg.name, detail: `zero [${from}, ${seg.dataEnd})`, apply: (dir) => zeroRange(walPath(dir), from, seg.dataEnd) };
    }
    case 'zero-header': {
      // The segment's header record, or just its 8-byte frame header: the
      // first thing recovery reads in a segment.
      const to = rng.chance(0.5) ? 8 : seg.records[0]!.end;
      return { kind, file: seg.name, detail: `zero [0, ${to})`, apply: (dir) => zeroRange(walPath(dir), 0, to) };
    }
    case 'truncate':
    case 'truncate-at-record': {
      const at = kind === 'truncate' ? rng.int(seg.dataEnd + 1) : seg.records[rng.int(seg.records.length)]!.offset;
      return { kind, file: seg.name, detail: `truncate to ${at} bytes`, apply: (dir) => nodeFs.truncateSync(walPath(dir), at) };
    }
    case 'remove-segment': {
      if (segs.length < 2) return chooseDamage(rng, segs, snapFiles);
      const victim = segs[rng.int(segs.length - 1)]!; // never the last: its loss is indistinguishable from a clean end
      return { kind, file: victim.name, detail: 'delete the segment', apply: (dir) => nodeFs.rmSync(join(dir, 'wal', victim.name)) };
    }
    default: {
      if (snapFiles.length === 0) return chooseDamage(rng, segs, snapFiles);
      const all = kind === 'snap-all';
      // The newest snapshot matters most: it is the one recovery starts from.
      const file = all ? '*.snap' : rng.chance(0.6) ? snapFiles[0]! : rng.pick(snapFiles);
      const targets = all ? [...snapFiles] : [file];
      const plans = targets.map((name) => {
        const n = nodeFs.statSync(join(snapDirOf(), name)).size;
        if (kind === 'snap-zero') {
          const from = rng.int(n);
          const to = Math.min(n, from + rng.range(1, 200));
          return { name, what: `zero [${from}, ${to})`, apply: (p: string) => zeroRange(p, from, to) };
        }
        if (kind === 'snap-truncate') {
          const at = rng.int(n);
          return { name, what: `truncate to ${at}`, apply: (p: string) => nodeFs.truncateSync(p, at) };
        }
        const o = rng.int(n);
        const bit = rng.int(8);
        return { name, what: `flip byte ${o} bit ${bit}`, apply: (p: string) => flipBits(p, [o], [bit]) };
      });
      return {
        kind,
        file,
        detail: plans.map((p) => `${p.name}: ${p.what}`).join('; '),
        apply: (dir) => plans.forEach((p) => p.apply(join(dir, 'snap', p.name))),
      };
    }
  }
}

// The pristine directory, set up once (before) for all cases.
let root = '';
const snapDirOf = () => join(root, 'pristine', 'snap');

// ---------------------------------------------------------------------------
// Judging one case

type Outcome =
  | 'intact'
  | 'intact, damage reported'
  | 'prefix, torn tail reported'
  | 'prefix, undetectable'
  | 'prefix, last segment dropped (reported)'
  | 'older snapshot, reported'
  | 'refused: WalCorruptionError'
  | 'refused: SnapshotMissingError'
  | 'refused: SnapshotCorruptionError'
  | 'refused, though no record was damaged';

interface Fixture {
  written: Written;
  segs: Seg[];
  /** Every file of the pristine directory ('wal/<name>', 'snap/<name>') and its bytes. */
  image: Map<string, Uint8Array>;
}

/**
 * Makes `dir` a copy of the pristine directory again, rewriting only what
 * differs. (Deleting and copying whole directories per case costs tens of
 * milliseconds on a disk mounted with online discard; this costs little.)
 */
function restore(f: Fixture, dir: string): void {
  for (const sub of ['wal', 'snap']) {
    nodeFs.mkdirSync(join(dir, sub), { recursive: true });
    for (const name of nodeFs.readdirSync(join(dir, sub))) {
      if (!f.image.has(`${sub}/${name}`)) nodeFs.rmSync(join(dir, sub, name), { force: true });
    }
  }
  for (const [rel, bytes] of f.image) {
    const path = join(dir, rel);
    let same = false;
    try {
      same = sameBytes(nodeFs.readFileSync(path), bytes);
    } catch {
      // missing: written below
    }
    if (!same) nodeFs.writeFileSync(path, bytes);
  }
}

/** The message of the last refusal, for the table of odd refusals. */
let lastRefusal = '';

const showHs = (hs: HardState) => `(${hs.term},${hs.vote},${hs.commit})`;
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

function isZeroFrom(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * The state recovery must return when the records from `cut` on (global
 * order over the segments) are gone: the entries and hard state before it.
 */
function prefixState(f: Fixture, segIndex: number, recIndex: number): { last: number; hs: HardState; markers: Set<number> } {
  let last = 0;
  let hs = EMPTY_HARD_STATE;
  const markers = new Set<number>();
  for (let si = 0; si <= segIndex; si++) {
    const recs = f.segs[si]!.records;
    const upTo = si === segIndex ? recIndex : recs.length;
    for (let ri = 0; ri < upTo; ri++) {
      const r = recs[ri]!;
      if (r.type === RECORD_ENTRY) last = r.index!;
      if (r.type === RECORD_HARD_STATE) hs = r.hardState!;
      if (r.type === RECORD_SNAPSHOT) markers.add(r.index!);
    }
  }
  return { last, hs, markers };
}

/** Returns the outcome, or throws an AssertionError saying what went wrong. */
async function judge(f: Fixture, damage: Damage, dir: string): Promise<Outcome> {
  const w = f.written;
  const finalLast = w.entries.length;
  const segIndex = f.segs.findIndex((s) => s.name === damage.file);
  const isWal = segIndex >= 0;
  const isLastSeg = segIndex === f.segs.length - 1;

  // Which records did the damage destroy? (For a WAL segment: the first
  // record whose checksummed bytes changed, and whether a record of a later
  // flush survived after it: the proof that the damaged flush was synced.
  // Records of the damaged flush itself may survive a torn write, whose
  // sectors a disk may persist in any order.)
  let firstBad = -1;
  let syncedAfterBad = false;
  let zeroAfterBad = false;
  if (isWal && damage.kind !== 'remove-segment') {
    const seg = f.segs[segIndex]!;
    const now: Uint8Array = nodeFs.readFileSync(join(dir, 'wal', seg.name));
    const intact = (r: Rec) => r.end <= now.length && sameBytes(now.subarray(r.offset, r.end), seg.bytes.subarray(r.offset, r.end));
    firstBad = seg.records.findIndex((r) => !intact(r));
    if (firstBad >= 0) {
      const after = seg.records.slice(firstBad + 1);
      const marker = after.findIndex((r) => r.type === RECORD_FLUSH && intact(r));
      syncedAfterBad = marker >= 0 && after.slice(marker + 1).some(intact);
      zeroAfterBad = isZeroFrom(now, seg.records[firstBad]!.offset);
    }
  }
  const recordsDamaged = damage.kind === 'remove-segment' || (isWal && firstBad >= 0) || !isWal;

  let s: DiskStorage;
  try {
    s = DiskStorage.open(options(dir));
  } catch (err) {
    if (!(err instanceof StorageError)) {
      throw new assert.AssertionError({ message: `recovery threw a ${(err as Error)?.constructor?.name}, not a StorageError: ${(err as Error)?.stack ?? err}` });
    }
    assert.ok(!(err instanceof StorageInvariantError), `damaged input reported as a storage bug (StorageInvariantError): ${err.message}`);
    if (isWal) {
      // Damage to the log: a WalCorruptionError naming the segment and the
      // offset. (Not a WalIdentityError: a damaged header fails its checksum
      // before anyone reads the cluster or member in it.)
      assert.ok(err instanceof WalCorruptionError, `${err.name}: ${err.message}`);
      assert.match(err.message, /[0-9a-f]{16}-[0-9a-f]{16}\.wal at offset \d+/, 'the error names a segment and an offset');
      // A deleted segment is noticed at the next one (a gap in the numbers).
      if (damage.kind !== 'remove-segment') assert.equal(err.location.file, damage.file, `the error names the damaged segment: ${err.message}`);
    } else {
      // Damage to snapshot files: refused only when no intact snapshot
      // (plus the log) can stand in, and the error names what was damaged.
      assert.ok(err instanceof SnapshotMissingError || err instanceof SnapshotCorruptionError, `${err.name}: ${err.message}`);
      const named = damage.file === '*.snap' ? w.snapFiles : [damage.file];
      assert.ok(named.some((n) => err.message.includes(n)), `the error names the damaged snapshot: ${err.message}`);
    }
    lastRefusal = err.message;
    if (!recordsDamaged) return 'refused, though no record was damaged';
    return `refused: ${err.constructor.name}` as Outcome;
  }

  try {
    const rec = s.recovery;
    const hs = s.initialState().hardState;
    const last = s.lastIndex();
    const first = s.firstIndex();
    const snapIndex = s.snapshotIndex();

    // What recovery may return: everything, or -- when the damage destroyed
    // the tail of the last segment and nothing after it survived -- exactly
    // the records before the damage.
    let expectLast = finalLast;
    let expectHs = w.hardState;
    let markers: Set<number> | undefined;
    const tailCut = isWal && isLastSeg && firstBad >= 0 && !syncedAfterBad;
    if (tailCut) {
      const p = prefixState(f, segIndex, firstBad);
      expectLast = p.last;
      expectHs = p.hs;
      markers = p.markers;
    }
    // A last segment whose header is unreadable is removed as the leftover
    // of an interrupted rollover (reported) -- acceptable only when nothing
    // after it proves it was synced.
    const droppedSegment = rec.leftovers.includes(damage.file);
    if (droppedSegment) assert.ok(isLastSeg && firstBad === 0 && !syncedAfterBad, `recovery removed ${damage.file}, whose records were synced`);
    assert.equal(last, expectLast, `last index ${last}, expected ${expectLast} (written ${finalLast}); torn tail ${JSON.stringify(rec.tornTail)}`);
    const wantHs = { ...expectHs, commit: Math.max(expectHs.commit, snapIndex) };
    assert.deepEqual(hs, wantHs, `hard state ${showHs(hs)}, expected ${showHs(wantHs)}`);

    // The snapshot: one that was taken, byte for byte, and covering what the
    // log no longer holds.
    assert.ok(first >= 1 && first <= snapIndex + 1, `first index ${first} with snapshot ${snapIndex}: entries before it are lost`);
    if (snapIndex > 0) {
      const want = w.snapshots.get(snapIndex);
      assert.ok(want, `snapshot at ${snapIndex} was never taken`);
      const got = s.snapshot();
      assert.equal(got.metadata.term, want.metadata.term);
      assert.deepEqual(got.metadata.confState, want.metadata.confState);
      assert.ok(sameBytes(got.data, want.data), `snapshot ${snapIndex} data differs`);
      assert.equal(s.term(snapIndex), want.metadata.term);
    }
    // A newer snapshot the log names must be used unless its file is damaged (and then that is reported).
    const named = [...w.snapshots.keys()].filter((i) => !markers || markers.has(i));
    const newest = Math.max(0, ...named);
    if (snapIndex < newest) {
      assert.ok(!isWal, `snapshot ${snapIndex} used instead of ${newest}, but the damage was to ${damage.file}`);
      assert.ok(rec.skippedSnapshots.length > 0, 'an older snapshot was used without reporting why');
    }

    // Every entry: byte-identical to what was written at its index.
    const got = s.entries(first, last + 1, Infinity);
    assert.equal(got.length, last - first + 1, 'entries returned');
    for (const e of got) {
      const want = w.entries[e.index - 1]!;
      if (e.term !== want.term || e.type !== want.type || !sameBytes(e.data, want.data)) {
        assert.fail(`entry ${e.index} is wrong: got ${e.term}/${e.type}/${e.data.length} bytes, wrote ${want.term}/${want.type}/${want.data.length} bytes`);
      }
      assert.equal(s.term(e.index), want.term);
    }

    // Less than was written: the torn tail is reported, at the damage --
    // unless the damage left only zeros after the cut, which is exactly what
    // a write that never reached the disk leaves (nothing could tell).
    const shortened = last < finalLast || !hasSameHs(hs, w.hardState, snapIndex);
    let outcome: Outcome = 'intact';
    if (shortened) {
      const cut = f.segs[segIndex]!.records[firstBad]!;
      if (droppedSegment) {
        outcome = 'prefix, last segment dropped (reported)';
      } else if (rec.tornTail) {
        assert.equal(rec.tornTail.file, damage.file);
        assert.equal(rec.tornTail.offset, cut.offset, 'the torn tail starts at the damaged record');
        outcome = 'prefix, torn tail reported';
      } else {
        assert.ok(zeroAfterBad, `the log lost entries ${last + 1}..${finalLast} and the hard state went back to ${showHs(hs)}, yet recovery reports nothing`);
        outcome = 'prefix, undetectable';
      }
    } else if (rec.tornTail || rec.skippedSnapshots.length > 0) {
      outcome = snapIndex < Math.max(...w.snapshots.keys()) ? 'older snapshot, reported' : 'intact, damage reported';
    }

    // The recovered log is usable: one more entry goes in after it (over
    // whatever torn tail was cut off) and comes back after a restart.
    const next: Entry = { index: last + 1, term: Math.max(hs.term, 1), type: 'normal', data: new TextEncoder().encode(`after recovery ${damage.detail}`) };
    await save(s, { entries: [next], hardState: { ...hs, term: next.term } });
    s.close();
    try {
      s = DiskStorage.open(options(dir));
    } catch (err) {
      throw new assert.AssertionError({ message: `after recovery and one more append, reopening failed: ${(err as Error).message}` });
    }
    assert.equal(s.lastIndex(), last + 1, 'the entry appended after recovery survives a restart');
    const back = s.entries(last + 1, last + 2, Infinity)[0]!;
    assert.ok(sameBytes(back.data, next.data));
    assert.equal(s.firstIndex(), first);
    return outcome;
  } finally {
    s.close();
  }
}

function hasSameHs(hs: HardState, want: HardState, snapIndex: number): boolean {
  return hs.term === want.term && hs.vote === want.vote && hs.commit === Math.max(want.commit, snapIndex);
}

// ---------------------------------------------------------------------------

describe('corruption fuzzing on real files', () => {
  const range = (process.env.CORRUPTION_CASES ?? '0-999').split('-').map(Number);
  const firstCase = range[0]!;
  const lastCase = range[1] ?? firstCase;
  let fixture: Fixture;
  const counts = new Map<string, number>();
  const failures: string[] = [];
  /** Refusals although every record was intact: safe, but worth a look. */
  const oddRefusals: string[] = [];

  before(async () => {
    root = nodeFs.mkdtempSync(join(tmpdir(), 'raftkv-corruption-'));
    const written = await runWorkload(join(root, 'pristine'));
    const walDir = join(root, 'pristine', 'wal');
    const segs = realFs
      .list(walDir)
      .filter((n) => n.endsWith('.wal'))
      .map((n) => walk(n, nodeFs.readFileSync(join(walDir, n))));
    const image = new Map<string, Uint8Array>();
    for (const sub of ['wal', 'snap']) {
      for (const name of nodeFs.readdirSync(join(root, 'pristine', sub))) image.set(`${sub}/${name}`, nodeFs.readFileSync(join(root, 'pristine', sub, name)));
    }
    fixture = { written, segs, image };
  });

  after(() => {
    if (root) nodeFs.rmSync(root, { recursive: true, force: true });
  });

  it('the workload spans several segments and snapshots, and recovers intact undamaged', async () => {
    const { written, segs } = fixture;
    assert.ok(segs.length >= 4, `${segs.length} segments`);
    assert.equal(written.snapshots.size, 3);
    assert.equal(written.snapFiles.length, 3);
    // Compaction released the oldest segments: the log on disk starts past index 1.
    const firstEntry = segs[0]!.records.find((r) => r.type === RECORD_ENTRY)!.index!;
    assert.ok(firstEntry > 1, `the oldest segment starts at entry ${firstEntry}`);
    const dir = join(root, 'case');
    restore(fixture, dir);
    const outcome = await judge(fixture, { kind: 'none', file: '', detail: 'none', apply: () => {} }, dir);
    assert.equal(outcome, 'intact');
  });

  it(`every damaged copy recovers a state the log went through, or is refused with a StorageError (cases ${firstCase}-${lastCase})`, async () => {
    const started = Date.now();
    for (let c = firstCase; c <= lastCase; c++) {
      const rng = new Random(1_000_003 * (c + 1));
      const damage = chooseDamage(rng, fixture.segs, fixture.written.snapFiles);
      const dir = join(root, 'case');
      restore(fixture, dir);
      damage.apply(dir);
      let outcome: string;
      try {
        outcome = await judge(fixture, damage, dir);
        if (outcome === 'refused, though no record was damaged') oddRefusals.push(`case ${c}: ${damage.kind} ${damage.file}: ${damage.detail}: ${lastRefusal}`);
      } catch (err) {
        outcome = 'FAILED';
        failures.push(`case ${c}: ${damage.kind} ${damage.file}: ${damage.detail}\n    ${(err as Error).message.split('\n').join('\n    ')}`);
      }
      counts.set(`${damage.kind.padEnd(18)} -> ${outcome}`, (counts.get(`${damage.kind.padEnd(18)} -> ${outcome}`) ?? 0) + 1);
      counts.set(`TOTAL ${outcome}`, (counts.get(`TOTAL ${outcome}`) ?? 0) + 1);
    }
    const table = [...counts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${String(n).padStart(5)}  ${k}`);
    // The outcome table, for the record (it also shows in the test output).
    console.log(`corruption fuzzing: ${lastCase - firstCase + 1} cases in ${((Date.now() - started) / 1000).toFixed(1)} s\n${table.join('\n')}`);
    if (oddRefusals.length > 0) console.log(`refused although no record was damaged (safe, but stricter than needed):\n  ${oddRefusals.join('\n  ')}`);
    assert.deepEqual(failures, [], `${failures.length} cases went wrong:\n${failures.join('\n')}`);
  });
});

// ---------------------------------------------------------------------------
// Bugs the sweep found, each reproduced minimally: regression tests.

async function writeSegments(dir: string, minSegments: number, minInLast: number): Promise<{ s: DiskStorage; segs: readonly string[] }> {
  const s = DiskStorage.open({ ...options(dir), segmentBytes: 4096 });
  for (let i = 1; s.segmentFiles().length < minSegments || s.lastIndex() - parseInt(s.segmentFiles().at(-1)!.slice(17, 33), 16) < minInLast; i++) {
    await save(s, { entries: [{ index: i, term: 1, type: 'normal', data: new Uint8Array(100).fill(i % 251) }], hardState: { term: 1, vote: 1, commit: i - 1 } });
  }
  return { s, segs: s.segmentFiles() };
}

describe('regressions the sweep found', () => {
  let dir = '';
  before(() => {
    dir = nodeFs.mkdtempSync(join(tmpdir(), 'raftkv-bugs-'));
  });
  after(() => nodeFs.rmSync(dir, { recursive: true, force: true }));

  it(
    'a log whose last segment is sealed, its successor lost in a crash, opens a second time (recovery once sealed it again)',
    async () => {
      // A crash in Wal.rollover() after the seal was fsynced but before the
      // new segment's directory entry was synced leaves exactly this: a
      // sealed last segment and no successor. (Deleting the successor here
      // stands in for that crash.)
      const d = join(dir, 'bug1');
      const { s, segs } = await writeSegments(d, 2, 0);
      s.close();
      await settle(d, 4096);
      nodeFs.rmSync(join(d, 'wal', segs.at(-1)!));
      const first = DiskStorage.open({ ...options(d), segmentBytes: 4096 });
      const last = first.lastIndex();
      first.close();
      await settle(d, 4096);
      // The bug: WalCorruptionError "<first segment> at offset N: a record
      // follows the seal" -- recovery wrote a second seal after the first,
      // and the member could never start again.
      const second = DiskStorage.open({ ...options(d), segmentBytes: 4096 });
      assert.equal(second.lastIndex(), last);
      second.close();
    },
  );

  it(
    'recovering twice from any crash point of a small workload succeeds',
    () => {
      // The in-memory disk takes the image a power cut leaves at every disk
      // operation; each is recovered, closed (after its own writes are
      // synced), and recovered again, as a member restarting twice would.
      const memFs = new MemoryFileSystem();
      const opts = (fs: MemoryFileSystem): DiskStorageOptions => ({ fs, dir: '/d', clusterId: 'c', memberId: 1, segmentBytes: 4096 });
      const failures: string[] = [];
      memFs.onOperation = (op) => {
        const image = memFs.crashImage({ unsynced: 'none' });
        const once = DiskStorage.open(opts(image));
        once.close();
        image.runPending();
        try {
          DiskStorage.open(opts(image.crashImage({ unsynced: 'none' }))).close();
        } catch (err) {
          failures.push(`crash at operation ${op}, second recovery: ${(err as Error).message}`);
        }
      };
      const s = DiskStorage.open(opts(memFs));
      for (let i = 1; i <= 80; i++) {
        s.save({ entries: [{ index: i, term: 1, type: 'normal', data: new Uint8Array(100).fill(7) }] }, () => {});
        memFs.runPending();
      }
      memFs.onOperation = undefined;
      assert.deepEqual(failures, []);
    },
  );

  it(
    'a last segment whose header is zeroed, with synced records after it, is refused, not deleted',
    async () => {
      const d = join(dir, 'bug2');
      const { s, segs } = await writeSegments(d, 2, 10);
      const written = s.lastIndex();
      s.close();
      await settle(d, 4096);
      const path = join(d, 'wal', segs.at(-1)!);
      // Zero the 8-byte frame header of the segment's header record: the
      // entries after it are whole and were synced.
      zeroRange(path, 0, 8);
      let opened: DiskStorage | undefined;
      try {
        opened = DiskStorage.open({ ...options(d), segmentBytes: 4096 });
      } catch (err) {
        assert.ok(err instanceof WalCorruptionError, String(err));
        assert.equal(err.location.file, segs.at(-1));
        return;
      }
      // The bug: recovery succeeded, listed the segment as a leftover, deleted
      // it (with its synced entries), and the log ended 10+ entries short.
      const got = opened.lastIndex();
      opened.close();
      assert.fail(`recovery deleted ${segs.at(-1)} and returned a log ending at ${got} of ${written}; expected a WalCorruptionError`);
    },
  );
});
