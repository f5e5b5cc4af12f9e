// The write-ahead log and the disk-backed Storage (src/storage/): durable
// round trips, group commit, truncation, segments, snapshots and compaction,
// identity checks, torn tails and corruption, on the in-memory disk.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { type Entry, type HardState, type Snapshot, EMPTY_CONF_STATE } from '../../src/raft/types.js';
import { DiskStorage, type DiskStorageOptions, type SaveBatch } from '../../src/storage/diskStorage.js';
import {
  SnapshotMissingError,
  WalCorruptionError,
  WalIdentityError,
} from '../../src/storage/errors.js';
import { crc32c, crc32cRange } from '../../src/storage/crc.js';
import { dumpDataDir } from '../../src/storage/inspect.js';
import { LogIndex } from '../../src/storage/logIndex.js';
import { MemoryFileSystem } from '../../src/storage/memoryFs.js';
import { HeldAllocationsFs } from './heldAllocations.js';
import { packPosition } from '../../src/storage/wal.js';

const DIR = '/data';

function ent(index: number, term: number, text = `v${index}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(text) };
}

function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(ent(i, term));
  return out;
}

function open(fs: MemoryFileSystem, extra: Partial<DiskStorageOptions> = {}): DiskStorage {
  return DiskStorage.open({ fs, dir: DIR, clusterId: 'c1', memberId: 1, segmentBytes: 4096, ...extra });
}

/** Saves a batch and lets the disk finish the sync. */
function save(fs: MemoryFileSystem, s: DiskStorage, batch: SaveBatch): void {
  let done = false;
  let error: Error | undefined;
  s.save(batch, (err) => {
    done = true;
    error = err;
  });
  fs.runPending();
  if (error) throw error;
  assert.ok(done, 'the save completed');
}

const text = (e: Entry) => `${e.index}@${e.term}:${new TextDecoder().decode(e.data)}`;

function all(s: DiskStorage): string[] {
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity).map(text);
}

function reopen(fs: MemoryFileSystem, s: DiskStorage, extra: Partial<DiskStorageOptions> = {}): DiskStorage {
  s.close();
  return open(fs.crashImage(), extra);
}

describe('DiskStorage', () => {
  it('keeps entries and hard state across a restart', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    assert.equal(s.lastIndex(), 0);
    const hs: HardState = { term: 2, vote: 1, commit: 3 };
    save(fs, s, { entries: ents(1, 5, 2), hardState: hs });
    const r = reopen(fs, s);
    assert.deepEqual(r.initialState().hardState, hs);
    assert.deepEqual(all(r), ents(1, 5, 2).map(text));
    assert.equal(r.term(3), 2);
    assert.equal(r.term(0), 0);
  });

  it('reports nothing durable before its fdatasync returns, and coalesces batches that wait', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    const order: number[] = [];
    const syncsBefore = fs.syncs;
    s.save({ entries: ents(1, 1, 1) }, () => order.push(1));
    s.save({ entries: ents(2, 2, 1) }, () => order.push(2));
    s.save({ entries: ents(3, 3, 1) }, () => order.push(3));
    assert.deepEqual(order, [], 'nothing reported before the sync');
    assert.equal(s.lastIndex(), 0, 'nothing visible before the sync');
    fs.runPending();
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(s.lastIndex(), 3);
    // One sync for the first batch, one for the two that waited behind it.
    assert.equal(s.walStats().syncs, 2);
    assert.ok(fs.syncs - syncsBefore >= 2);
  });

  it('records a conflicting-suffix truncation durably', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    save(fs, s, { entries: ents(1, 10, 1) });
    save(fs, s, { entries: [ent(6, 2, 'x6'), ent(7, 2, 'x7')] });
    assert.equal(s.lastIndex(), 7);
    const r = reopen(fs, s);
    assert.equal(r.lastIndex(), 7);
    assert.deepEqual(all(r).slice(4), ['5@1:v5', '6@2:x6', '7@2:x7']);
  });

  it('rolls over segments and reads old entries back from disk', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs, { cacheBytes: 1024 });
    for (let i = 1; i <= 400; i += 10) save(fs, s, { entries: ents(i, i + 9, 1 + Math.floor(i / 100)) });
    assert.ok(s.segmentFiles().length > 3, `${s.segmentFiles().length} segments`);
    const expected = [];
    for (let i = 1; i <= 400; i++) expected.push(text(ent(i, 1 + Math.floor((Math.floor((i - 1) / 10) * 10 + 1) / 100))));
    assert.deepEqual(all(s), expected);
    assert.deepEqual(s.entries(37, 45, Infinity).map(text), expected.slice(36, 44));
    const r = reopen(fs, s, { cacheBytes: 1024 });
    assert.deepEqual(all(r), expected);
    // Reads from disk respect the size limit (entries of 4 bytes + 24 of overhead).
    assert.equal(r.entries(100, 300, 500).length, Math.floor(500 / 28));
  });

  it('entries read back from disk across many read chunks keep their own bytes (the read buffer is reused)', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs, { segmentBytes: 1 << 20, cacheBytes: 1024 });
    const data = (i: number) => new Uint8Array(1000).fill(i % 251);
    for (let i = 1; i <= 400; i += 20) {
      const batch: Entry[] = [];
      for (let k = i; k < i + 20; k++) batch.push({ index: k, term: 1, type: 'normal', data: data(k) });
      save(fs, s, { entries: batch });
    }
    // Far more than one 64 KiB read: from disk (small cache), and into a big cache at recovery.
    const check = (st: DiskStorage, what: string) => {
      const got = st.entries(1, 401, Infinity);
      assert.equal(got.length, 400);
      for (const e of got) assert.ok(e.data.every((b) => b === e.index % 251), `${what}: entry ${e.index} has the bytes written`);
    };
    check(s, 'read back');
    check(reopen(fs, s, { segmentBytes: 1 << 20, cacheBytes: 300 * 1024 }), 'after recovery');
  });

  it('refuses a log from another member or cluster', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    save(fs, s, { entries: ents(1, 2, 1) });
    s.close();
    assert.throws(() => open(fs.crashImage(), { clusterId: 'other' }), (e) => e instanceof WalIdentityError && /cluster "c1"/.test(e.message));
    assert.throws(() => open(fs.crashImage(), { memberId: 2 }), (e) => e instanceof WalIdentityError && /member 1/.test(e.message));
  });

  it('snapshots, compacts and releases old segments; recovery starts from the snapshot', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    for (let i = 1; i <= 300; i += 10) save(fs, s, { entries: ents(i, i + 9, 1), hardState: { term: 1, vote: 1, commit: i + 9 } });
    const before = s.segmentFiles().length;
    const conf = { ...EMPTY_CONF_STATE, voters: [1, 2, 3] };
    s.createSnapshot(250, conf, new TextEncoder().encode('state@250'));
    s.compact(240);
    fs.runPending();
    assert.equal(s.firstIndex(), 241);
    assert.ok(s.segmentFiles().length < before, 'old segments were deleted');
    save(fs, s, { entries: ents(301, 305, 2) });
    const r = reopen(fs, s);
    assert.equal(r.snapshot().metadata.index, 250);
    assert.deepEqual(r.initialState().confState.voters, [1, 2, 3]);
    assert.equal(r.lastIndex(), 305);
    assert.ok(r.firstIndex() <= 251);
    assert.equal(r.term(250), 1);
    assert.equal(r.entries(251, 252, Infinity)[0]!.index, 251);
  });

  it('keeps every live entry readable from disk after compaction releases segments, wherever the compaction falls', () => {
    // Reading an entry back starts at a known position at or before it (a
    // sparse index): the segment holding that position must not be
    // released, even when all its own entries are compacted.
    for (let c = 60; c <= 340; c += 7) {
      const fs = new MemoryFileSystem();
      const s = open(fs, { cacheBytes: 256, segmentBytes: 2048 });
      for (let i = 1; i <= 400; i += 10) save(fs, s, { entries: ents(i, i + 9, 1), hardState: { term: 1, vote: 1, commit: i + 9 } });
      s.createSnapshot(c, EMPTY_CONF_STATE, new Uint8Array([1]));
      s.compact(c);
      fs.runPending();
      assert.equal(s.firstIndex(), c + 1);
      assert.deepEqual(all(s), ents(c + 1, 400, 1).map(text), `compacted to ${c}`);
      assert.ok(s.segmentFiles().length < 15, `compacted to ${c}: old segments were released`);
    }
    // Compacted to the very last entry: the next entries must not be sought
    // from a position in a released segment.
    for (let last = 300; last <= 400; last += 10) {
      const fs = new MemoryFileSystem();
      const s = open(fs, { cacheBytes: 256, segmentBytes: 2048 });
      for (let i = 1; i <= last; i += 10) save(fs, s, { entries: ents(i, i + 9, 1), hardState: { term: 1, vote: 1, commit: i + 9 } });
      s.createSnapshot(last, EMPTY_CONF_STATE, new Uint8Array([1]));
      s.compact(last);
      fs.runPending();
      for (let i = last + 1; i <= last + 200; i += 10) save(fs, s, { entries: ents(i, i + 9, 2) });
      s.createSnapshot(last + 20, EMPTY_CONF_STATE, new Uint8Array([2]));
      s.compact(last + 10);
      fs.runPending();
      assert.deepEqual(all(s), ents(last + 11, last + 200, 2).map(text), `compacted to the last entry, ${last}`);
    }
  });

  it('leaves a segment it had to create sparse as soon as the preallocated one is ready', () => {
    const fs = new HeldAllocationsFs();
    const s = open(fs, { segmentBytes: 4096 });
    const big = (from: number, to: number) => ents(from, to, 1).map((e) => ({ ...e, data: new Uint8Array(300).fill(e.index) }));
    save(fs, s, { entries: big(1, 5) });
    save(fs, s, { entries: big(6, 10) });
    // The segment is full and the next one is still being preallocated: a sparse one takes entries 11-16.
    save(fs, s, { entries: big(11, 15) });
    assert.equal(s.segmentFiles().length, 2);
    save(fs, s, { entries: big(16, 16) });
    assert.equal(s.segmentFiles().length, 2, 'a sparse segment is written into while nothing else is ready');
    fs.releaseAllocations();
    fs.runPending();
    // The preallocated segment is ready: the next write goes there.
    save(fs, s, { entries: big(17, 17) });
    assert.equal(s.segmentFiles().length, 3);
    assert.match(s.segmentFiles()[2]!, /-0000000000000011\.wal$/);
    save(fs, s, { entries: big(18, 18) });
    assert.equal(s.segmentFiles().length, 3, 'a preallocated segment is filled');
    const r = reopen(fs, s);
    assert.deepEqual(all(r), big(1, 18).map(text));
  });

  it('installs a snapshot from the leader, dropping a log that disagrees with it', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    save(fs, s, { entries: ents(1, 20, 1) });
    const snap: Snapshot = { metadata: { index: 50, term: 3, confState: EMPTY_CONF_STATE }, data: new Uint8Array([7]) };
    save(fs, s, { snapshot: snap, entries: ents(51, 52, 3), hardState: { term: 3, vote: 0, commit: 50 } });
    assert.equal(s.firstIndex(), 51);
    assert.equal(s.lastIndex(), 52);
    const r = reopen(fs, s);
    assert.equal(r.firstIndex(), 51);
    assert.equal(r.lastIndex(), 52);
    assert.equal(r.term(50), 3);
    assert.deepEqual([...r.snapshot().data], [7]);
  });

  it('cuts a torn tail off and reports it', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    save(fs, s, { entries: ents(1, 3, 1) });
    s.save({ entries: [ent(4, 1, 'x'.repeat(2000))] }, () => assert.fail('never synced'));
    let reportedTorn = false;
    for (let seed = 1; seed < 40; seed++) {
      let x = seed;
      const random = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
      const r = open(fs.crashImage({ unsynced: 'torn', random }));
      assert.ok(r.lastIndex() === 3 || r.lastIndex() === 4);
      if (r.recovery.tornTail) reportedTorn = true;
      assert.deepEqual(all(r).slice(0, 3), ents(1, 3, 1).map(text));
    }
    assert.ok(reportedTorn, 'some crash tore the last write');
  });

  it('tells a write torn out of order (a hole in the last flush) from damage to a flush that was synced', () => {
    // Two flushes: entries 1-20, then 21-60. A disk may persist the sectors
    // of the write in flight in any order, so a hole with valid records of
    // the same flush after it is a torn write; records of a later flush after
    // a hole prove the damaged flush had been synced.
    // (Preallocations held: the log stays in its first segment.)
    const fs = new HeldAllocationsFs();
    const s = open(fs, { segmentBytes: 1 << 16 });
    const big = (from: number, to: number) => ents(from, to, 1).map((e) => ({ ...e, data: new Uint8Array(100).fill(e.index) }));
    save(fs, s, { entries: big(1, 20) });
    save(fs, s, { entries: big(21, 60) });
    s.close();
    const offsets = new Map<number, number>();
    dumpDataDir(fs, DIR, {
      segment: () => {},
      record: (r) => {
        if (r.record.type === 'entry') offsets.set(r.record.entry.index, r.offset);
      },
      end: () => {},
    });
    const segment = `${DIR}/wal/${fs.list(`${DIR}/wal`).find((n) => n.endsWith('.wal'))}`;
    const withHoleAt = (index: number): MemoryFileSystem => {
      const image = fs.crashImage();
      const bytes = image.peek(segment);
      const sector = Math.floor(offsets.get(index)! / 512) * 512;
      bytes.fill(0, sector, sector + 512);
      image.poke(segment, bytes);
      return image;
    };
    const torn = open(withHoleAt(30));
    assert.ok(torn.lastIndex() >= 20 && torn.lastIndex() < 30, `recovered up to ${torn.lastIndex()}`);
    assert.ok(torn.recovery.tornTail, 'the torn write is reported');
    assert.deepEqual([...torn.entries(20, 21, Infinity)[0]!.data], new Array(100).fill(20), 'the first flush is intact');
    assert.throws(() => open(withHoleAt(10)), (e) => e instanceof WalCorruptionError && /a later write was synced after it/.test(e.message));
  });

  it('refuses to start when synced data is damaged, naming file, offset and index', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    for (let i = 1; i <= 200; i += 10) save(fs, s, { entries: ents(i, i + 9, 1) });
    s.close();
    const image = fs.crashImage();
    const first = `${DIR}/wal/${image.list(`${DIR}/wal`)[0]}`;
    const bytes = image.peek(first);
    bytes[300] ^= 0x40;
    image.poke(first, bytes);
    assert.throws(() => open(image), (e) => e instanceof WalCorruptionError && /0000000000000000-0000000000000001\.wal at offset \d+ \(index \d+\)/.test(e.message));
  });

  it('falls back to an older snapshot when the newest is damaged, if the log covers the gap', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    save(fs, s, { entries: ents(1, 100, 1), hardState: { term: 1, vote: 1, commit: 100 } });
    s.createSnapshot(50, EMPTY_CONF_STATE, new Uint8Array([50]));
    fs.runPending(); // (taken together, only the newer would be written)
    s.createSnapshot(80, EMPTY_CONF_STATE, new Uint8Array([80]));
    fs.runPending();
    s.close();
    const image = fs.crashImage();
    const newest = `${DIR}/snap/${image.list(`${DIR}/snap`).at(-1)}`;
    const bytes = image.peek(newest);
    bytes[bytes.length - 1] ^= 1;
    image.poke(newest, bytes);
    const r = open(image);
    assert.equal(r.snapshot().metadata.index, 50);
    assert.equal(r.recovery.skippedSnapshots.length, 1);
    assert.equal(r.lastIndex(), 100);
  });

  it('refuses when the only snapshot is damaged and the log was compacted past it', () => {
    const fs = new MemoryFileSystem();
    const s = open(fs);
    for (let i = 1; i <= 300; i += 10) save(fs, s, { entries: ents(i, i + 9, 1), hardState: { term: 1, vote: 1, commit: i + 9 } });
    s.createSnapshot(250, EMPTY_CONF_STATE, new Uint8Array([1]));
    s.compact(250);
    fs.runPending();
    s.close();
    const image = fs.crashImage();
    const snapFile = `${DIR}/snap/${image.list(`${DIR}/snap`)[0]}`;
    const bytes = image.peek(snapFile);
    bytes[20] ^= 1;
    image.poke(snapFile, bytes);
    assert.throws(() => open(image), (e) => e instanceof SnapshotMissingError && /checksum/.test(e.message));
  });
});

describe('crc32c', () => {
  it('is CRC-32C (Castagnoli): the standard check value, and RFC 3720 B.4 vectors', () => {
    assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  });

  it('gives the same value on both sides of the JavaScript/native cut-over, at any offset, and continues a running CRC', () => {
    // Pseudo-random bytes, the same every run.
    const bytes = new Uint8Array(1200);
    let x = 12345;
    for (let i = 0; i < bytes.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      bytes[i] = x >>> 24;
    }
    // A bit-at-a-time reference.
    const reference = (from: number, to: number): number => {
      let crc = ~0;
      for (let i = from; i < to; i++) {
        crc ^= bytes[i]!;
        for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
      }
      return ~crc >>> 0;
    };
    for (const length of [0, 1, 7, 8, 9, 63, 64, 100, 200, 223, 224, 225, 300, 511, 1000]) {
      for (const from of [0, 1, 3, 8, 13]) {
        const want = reference(from, from + length);
        assert.equal(crc32cRange(bytes, from, from + length), want, `${length} bytes at ${from}`);
        assert.equal(crc32c(bytes.subarray(from, from + length)), want, `${length} bytes at ${from} (a view)`);
        const half = from + (length >> 1);
        assert.equal(crc32cRange(bytes, half, from + length, crc32cRange(bytes, from, half)), want, `${length} bytes at ${from} in two parts`);
      }
    }
  });
});

describe('LogIndex: positions learnt by reading', () => {
  const at = (offset: number) => packPosition(0, offset);
  /** Entries 1..100 written one after another, entry i at offset 100 * i. */
  function hundred(): LogIndex {
    const index = new LogIndex();
    for (let i = 1; i <= 100; i++) index.append(i, 1, at(100 * i));
    return index;
  }

  it('starts a seek at the nearest learnt entry at or before it, in the same extent', () => {
    const index = hundred();
    assert.deepEqual(index.seek(50), { index: 32, position: at(3200), extentEnd: 101 }, 'the stride before it');
    index.learn(45, at(4500));
    assert.deepEqual(index.seek(50), { index: 45, position: at(4500), extentEnd: 101 });
    assert.deepEqual(index.seek(45), { index: 45, position: at(4500), extentEnd: 101 });
    assert.deepEqual(index.seek(44), { index: 32, position: at(3200), extentEnd: 101 }, 'not from an entry after it');
    assert.deepEqual(index.seek(50, false), { index: 32, position: at(3200), extentEnd: 101 }, 'only appended positions when asked');
  });

  it('forgets what a truncation replaced and what compaction dropped', () => {
    const index = hundred();
    index.learn(40, at(4000));
    index.learn(70, at(7000));
    index.append(60, 2, at(20_000)); // truncates 60..100: a new extent from 60
    assert.deepEqual(index.seek(75 - 15), { index: 60, position: at(20_000), extentEnd: 61 });
    assert.deepEqual(index.seek(50), { index: 40, position: at(4000), extentEnd: 60 });
    index.compact(41);
    // The stride's position (of a compacted entry, but its segment is kept), not the forgotten 40.
    assert.deepEqual(index.seek(50), { index: 32, position: at(3200), extentEnd: 60 });
    index.learn(20, at(2000)); // compacted: not learnt
    index.learn(500, at(1)); // not in the log: not learnt
    assert.deepEqual(index.seek(50), { index: 32, position: at(3200), extentEnd: 60 });
    index.reset(200, 3);
    index.append(201, 3, at(30_000));
    index.learn(201, at(30_000));
    index.append(202, 3, at(30_100));
    assert.deepEqual(index.seek(202), { index: 201, position: at(30_000), extentEnd: 203 });
  });

  it('keeps a few learnt positions, forgetting the oldest first', () => {
    const index = hundred();
    for (let i = 1; i <= 9; i++) index.learn(10 * i, at(1000 * i));
    // Eight slots: 10 was forgotten when 90 was learnt.
    assert.deepEqual(index.seek(15), { index: 1, position: at(100), extentEnd: 101 });
    assert.deepEqual(index.seek(25), { index: 20, position: at(2000), extentEnd: 101 });
  });
});

describe('DiskStorage reads from disk (a model check)', () => {
  it('returns what was written, under random appends, truncations, compactions, reads and restarts', () => {
    // Reads resume from positions learnt by earlier reads: every kind of
    // change to the log must leave those right (or forgotten).
    let x = 7;
    const rand = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return (x >>> 8) % n;
    };
    for (let run = 0; run < 20; run++) {
      let fs = new MemoryFileSystem();
      const options = { cacheBytes: [64, 256, 1024][run % 3]!, segmentBytes: [2048, 4096, 16384][run % 3]! };
      let s = open(fs, options);
      /** The model: entries by index, and the first live index. */
      let model: Entry[] = [];
      let first = 1;
      let term = 1;
      let value = 0;
      const last = () => first + model.length - 1;
      for (let step = 0; step < 300; step++) {
        const op = rand(20);
        if (op < 8 || model.length === 0) {
          // Append, sometimes replacing a suffix (a new term), never below the snapshot (it is committed).
          let from = last() + 1;
          if (model.length > 0 && rand(4) === 0) {
            from = Math.max(first, s.snapshotIndex() + 1, last() - rand(40));
            term++;
          }
          const batch: Entry[] = [];
          for (let i = from; i < from + 1 + rand(12); i++) batch.push(ent(i, term, `t${term}:${value++}:${'x'.repeat(rand(60))}`));
          save(fs, s, { entries: batch, hardState: { term, vote: 1, commit: first - 1 } });
          model = model.slice(0, from - first).concat(batch);
        } else if (op < 17) {
          const lo = first + rand(model.length);
          const hi = lo + 1 + rand(last() - lo + 1);
          const maxBytes = rand(3) === 0 ? 1 + rand(500) : Infinity;
          const got = s.entries(lo, hi, maxBytes).map(text);
          assert.ok(got.length >= 1, `run ${run} step ${step}: at least one entry`);
          assert.deepEqual(got, model.slice(lo - first, lo - first + got.length).map(text), `run ${run} step ${step}: entries(${lo}, ${hi})`);
          if (maxBytes === Infinity) assert.equal(got.length, hi - lo);
        } else if (op < 19 && model.length > 1) {
          // Snapshot somewhere in the log, compact below it.
          const at = first + rand(model.length - 1);
          if (at > s.snapshotIndex()) {
            s.createSnapshot(at, EMPTY_CONF_STATE, new Uint8Array([1]));
            const to = Math.max(first, at - rand(10));
            s.compact(to);
            fs.runPending();
            model = model.slice(to + 1 - first);
            first = to + 1;
          }
        } else {
          s.close();
          fs = fs.crashImage();
          s = open(fs, options);
          assert.equal(s.lastIndex(), last(), `run ${run} step ${step}: last index after a restart`);
          // Recovery starts from the snapshot, keeping what the segments still hold before it as a margin.
          assert.ok(s.firstIndex() <= s.snapshotIndex() + 1, `run ${run} step ${step}: first index after a restart`);
          if (s.firstIndex() < first) model = s.entries(s.firstIndex(), first, Infinity).concat(model);
          else model = model.slice(s.firstIndex() - first);
          first = s.firstIndex();
        }
      }
      assert.deepEqual(all(s), model.map(text), `run ${run}: the whole log`);
    }
  });
});
