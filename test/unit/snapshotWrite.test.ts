// The member's own snapshots written in the background (DiskStorage.createSnapshot,
// SnapshotFileWrite): the file format, the order file -> sync -> rename ->
// directory sync -> marker, recovery from a crash at every disk operation of
// the write, the log going on meanwhile, snapshots taken or installed or a
// close while a write is in flight, and failures reaching the callback.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { type Entry, type Snapshot, type SnapshotMetadata, EMPTY_CONF_STATE } from '../../src/raft/types.js';
import { Random } from '../../src/sim/random.js';
import { crc32c } from '../../src/storage/crc.js';
import { DiskStorage, type DiskStorageOptions, type SaveBatch } from '../../src/storage/diskStorage.js';
import { SnapshotCorruptionError, SnapshotWriteError, WalClosedError } from '../../src/storage/errors.js';
import type { FileHandle, FileSystem } from '../../src/storage/fs.js';
import { type CrashOptions, MemoryFileSystem } from '../../src/storage/memoryFs.js';
import { NodeFileSystem } from '../../src/storage/nodeFs.js';
import { MAX_PREFIX_DEPTH, SnapshotStore, decodeSnapshotFile, snapshotFileName } from '../../src/storage/snapshot.js';

const DIR = '/data';
const SNAP_DIR = `${DIR}/snap`;
const CONF = { ...EMPTY_CONF_STATE, voters: [1, 2, 3] };

function ent(index: number, term: number): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(`v${index}`.padEnd(60, '.')) };
}

function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(ent(i, term));
  return out;
}

/** A snapshot's data: recognisably the state at `index`, `size` bytes. */
function stateAt(index: number, size = 100): Uint8Array {
  const out = new Uint8Array(size);
  for (let k = 0; k < size; k++) out[k] = (index * 31 + k) % 251;
  return out;
}

/** The in-memory disk (sync completions queued until run, one at a time with runNext) with failures the test can inject. */
class SteppedDisk extends MemoryFileSystem {
  private readonly paths = new Map<FileHandle, string>();
  /** Paths (by suffix) whose create, datasync or rename fails. */
  failCreate: string | undefined;
  failDatasync: string | undefined;
  failRename: string | undefined;

  override create(path: string): FileHandle {
    if (this.failCreate && path.endsWith(this.failCreate)) throw new Error(`injected: create ${path}`);
    const fd = super.create(path);
    this.paths.set(fd, path);
    return fd;
  }

  override datasync(fd: FileHandle, done: (err?: Error) => void): void {
    const path = this.paths.get(fd) ?? '';
    const fail = this.failDatasync !== undefined && path.endsWith(this.failDatasync);
    super.datasync(fd, (err) => done(fail ? new Error(`injected: fdatasync ${path}`) : err));
  }

  override rename(from: string, to: string): void {
    if (this.failRename && from.endsWith(this.failRename)) throw new Error(`injected: rename ${from}`);
    super.rename(from, to);
  }
}

function open(fs: FileSystem, extra: Partial<DiskStorageOptions> = {}): DiskStorage {
  return DiskStorage.open({ fs, dir: DIR, clusterId: 'c1', memberId: 1, segmentBytes: 4096, snapshotWriteChunkBytes: 16, ...extra });
}

function save(fs: SteppedDisk, s: DiskStorage, batch: SaveBatch): void {
  let result: { err?: Error | undefined } | undefined;
  s.save(batch, (err) => (result = { err }));
  fs.runPending();
  assert.ok(result, 'the save completed');
  if (result.err) throw result.err;
}

/** Records a callback's outcomes. */
function recorder(): { calls: (Error | undefined)[]; done: (err?: Error) => void } {
  const calls: (Error | undefined)[] = [];
  return { calls, done: (err) => calls.push(err) };
}

/** The file layout, written out independently of snapshot.ts: "RKVSNAP1" | crc32c | meta length | meta | data. */
function referenceFile(snap: Snapshot): Uint8Array {
  const meta = new TextEncoder().encode(JSON.stringify(snap.metadata));
  const out = new Uint8Array(16 + meta.length + snap.data.length);
  out.set(new TextEncoder().encode('RKVSNAP1'), 0);
  new DataView(out.buffer).setUint32(12, meta.length, true);
  out.set(meta, 16);
  out.set(snap.data, 16 + meta.length);
  new DataView(out.buffer).setUint32(8, crc32c(out.subarray(12)), true);
  return out;
}

/** A member with entries 1..100 (term 1, committed), a durable snapshot at 50 and the log compacted to 50. */
function member(fs: SteppedDisk): DiskStorage {
  const s = open(fs);
  save(fs, s, { entries: ents(1, 100, 1), hardState: { term: 1, vote: 1, commit: 100 } });
  const first = recorder();
  s.createSnapshot(50, CONF, stateAt(50), first.done);
  fs.runPending();
  assert.deepEqual(first.calls, [undefined]);
  s.compact(50);
  return s;
}

/** Recovers a crash image and checks it: it starts from one of `allowed` snapshots, holds its data, and every entry after it up to `lastAcked`. */
function checkRecovery(image: MemoryFileSystem, allowed: readonly number[], lastAcked: number, where: string): number {
  let s: DiskStorage;
  try {
    s = open(image);
  } catch (err) {
    assert.fail(`${where}: recovery failed: ${(err as Error).message}`);
  }
  const at = s.snapshotIndex();
  assert.ok(allowed.includes(at), `${where}: recovered from snapshot ${at}, allowed ${allowed.join(', ')}`);
  assert.deepEqual(s.snapshot().data, stateAt(at), `${where}: the snapshot's data`);
  assert.ok(s.firstIndex() <= at + 1, `${where}: the log continues from the snapshot (first ${s.firstIndex()})`);
  assert.ok(s.lastIndex() >= lastAcked, `${where}: acknowledged entries up to ${lastAcked} survive (last ${s.lastIndex()})`);
  const got = s.entries(at + 1, s.lastIndex() + 1, Infinity);
  assert.deepEqual(got.map((e) => e.index), Array.from({ length: s.lastIndex() - at }, (_, k) => at + 1 + k), `${where}: no gap`);
  for (const e of got) assert.deepEqual(e.data, ent(e.index, 1).data, `${where}: entry ${e.index}`);
  assert.ok(image.list(SNAP_DIR).every((n) => !n.endsWith('.tmp')), `${where}: temporary files removed`);
  s.close();
  return at;
}

describe('snapshot files written in the background', () => {
  it('keep the file format: chunked writes give the bytes the single-write layout gave, for the async and the at-once path', () => {
    const fs = new SteppedDisk();
    fs.mkdirp(SNAP_DIR);
    const store = new SnapshotStore(fs, SNAP_DIR);
    for (const size of [0, 1, 15, 16, 17, 100]) {
      const snap: Snapshot = { metadata: { index: 10 + size, term: 3, confState: CONF }, data: stateAt(size, size) };
      const r = recorder();
      const w = store.newWrite(snap, 16, r.done);
      w.start();
      fs.runPending();
      assert.deepEqual(r.calls, [undefined]);
      const name = snapshotFileName(3, 10 + size);
      assert.deepEqual(fs.peek(`${SNAP_DIR}/${name}`), referenceFile(snap), `async, ${size} bytes`);
      assert.deepEqual(decodeSnapshotFile(name, fs.peek(`${SNAP_DIR}/${name}`)), snap);
      const atOnce: Snapshot = { metadata: { ...snap.metadata, index: 1000 + size }, data: snap.data };
      const atOnceName = store.save(atOnce);
      assert.deepEqual(fs.peek(`${SNAP_DIR}/${atOnceName}`), referenceFile(atOnce), `at once, ${size} bytes`);
    }
  });

  it('data given in parts is written as the same file, chunked across the parts, and joined only when read', () => {
    for (const cut of [[], [0], [5], [16], [3, 7, 40, 41], [99, 100]]) {
      const fs = new SteppedDisk();
      const s = member(fs);
      const r = recorder();
      const data = stateAt(90);
      const bounds = [0, ...cut, data.length];
      const parts = bounds.slice(1).map((end, i) => data.subarray(bounds[i], end));
      const snap = s.createSnapshot(90, CONF, parts, r.done);
      while (r.calls.length === 0 && fs.runNext());
      assert.deepEqual(r.calls, [undefined], `cut at ${cut}`);
      const name = snapshotFileName(1, 90);
      assert.deepEqual(fs.peek(`${SNAP_DIR}/${name}`), referenceFile({ metadata: snap.metadata, data }), `cut at ${cut}`);
      assert.deepEqual(snap.data, data, 'joined when read');
      assert.equal(snap.data, snap.data, 'once');
      assert.deepEqual(open(fs.crashImage()).snapshot().data, data, 'recovered');
      s.close();
    }
  });

  it('createSnapshot returns at once; the file is synced in steps, renamed, and only then named in the log', () => {
    const fs = new SteppedDisk();
    const s = member(fs);
    const r = recorder();
    const data = stateAt(90);
    const snap = s.createSnapshot(90, CONF, data, r.done);
    assert.deepEqual(snap.metadata, { index: 90, term: 1, confState: CONF });
    assert.equal(s.snapshot(), snap, 'current at once (a leader may send it)');
    assert.equal(s.snapshotIndex(), 90);
    const name = snapshotFileName(1, 90);
    assert.ok(fs.list(SNAP_DIR).includes(`${name}.tmp`) && !fs.list(SNAP_DIR).includes(name), 'only a temporary file so far');
    let syncs = 0;
    while (r.calls.length === 0 && fs.runNext()) {
      syncs++;
      if (!fs.list(SNAP_DIR).includes(name)) {
        // Not in place yet: a crash now recovers from the old snapshot.
        assert.equal(open(fs.crashImage()).snapshotIndex(), 50, `after ${syncs} syncs`);
      }
    }
    assert.deepEqual(r.calls, [undefined]);
    assert.equal(syncs, Math.ceil(100 / 16) + 1, 'one sync per 16-byte chunk, then the marker');
    assert.equal(open(fs.crashImage()).snapshotIndex(), 90, 'after done: recovery starts from it');
    s.close();
  });

  it('the member goes on appending while the file syncs, and compaction waits for the marker', () => {
    const fs = new SteppedDisk();
    const s = member(fs);
    const segmentsBefore = s.segmentFiles().length;
    const snap = recorder();
    s.createSnapshot(100, CONF, stateAt(100), snap.done);
    s.compact(95);
    assert.equal(s.firstIndex(), 96, 'compacted in memory at once');
    let next = 101;
    while (snap.calls.length === 0) {
      const r = recorder();
      s.save({ entries: [ent(next, 1)], hardState: { term: 1, vote: 1, commit: next } }, r.done);
      // Only the log's sync and the snapshot's next step are queued: run the log's.
      while (r.calls.length === 0) assert.ok(fs.runNext());
      assert.deepEqual(r.calls, [undefined], `entry ${next} acknowledged`);
      if (snap.calls.length === 0) {
        assert.equal(s.segmentFiles().length >= segmentsBefore, true, 'no segment released before the marker is durable');
        assert.equal(checkRecovery(fs.crashImage(), [50, 100], next, `crash after entry ${next}`), 50);
      }
      next++;
    }
    assert.ok(next - 101 >= 5, `entries appended during the write: ${next - 101}`);
    assert.deepEqual(snap.calls, [undefined]);
    assert.ok(s.segmentFiles().length < segmentsBefore + 1, 'segments released once the marker is durable');
    assert.equal(checkRecovery(fs.crashImage(), [100], next - 1, 'after the marker'), 100);
    s.close();
  });

  for (const unsynced of ['none', 'torn'] as const) {
    it(`recovers from a crash at every disk operation of the write (${unsynced === 'none' ? 'unsynced data lost' : 'torn writes'})`, () => {
      for (let seed = 1; seed <= 3; seed++) {
        const fs = new SteppedDisk();
        const s = member(fs);
        const rng = new Random(seed);
        const crash: CrashOptions = unsynced === 'none' ? { unsynced } : { unsynced, random: () => rng.float() };
        let lastAcked = 100;
        let snapDurable = false;
        let points = 0;
        fs.onOperation = () => {
          points++;
          const at = checkRecovery(fs.crashImage(crash), snapDurable ? [100] : [50, 100], lastAcked, `seed ${seed}, operation ${fs.operations}`);
          if (at === 100) assert.ok(!fs.list(SNAP_DIR).includes(`${snapshotFileName(1, 100)}.tmp`), 'named only once renamed');
        };
        s.createSnapshot(100, CONF, stateAt(100), (err) => {
          assert.equal(err, undefined);
          snapDurable = true;
        });
        s.compact(90 + seed);
        for (let i = 101; i <= 110; i++) {
          s.save({ entries: [ent(i, 1)], hardState: { term: 1, vote: 1, commit: i } }, (err) => {
            assert.equal(err, undefined);
            lastAcked = i;
          });
          for (let k = rng.int(3); k > 0; k--) fs.runNext();
        }
        fs.runPending();
        fs.onOperation = undefined;
        assert.ok(snapDurable && lastAcked === 110);
        assert.ok(points > 20, `${points} crash points`);
        s.close();
      }
    });
  }

  it('a snapshot taken while another is written waits; of several waiting only the newest is written', () => {
    const fs = new SteppedDisk();
    const s = member(fs);
    const created: string[] = [];
    fs.onOperation = () => {
      for (const n of fs.list(SNAP_DIR)) if (!created.includes(n)) created.push(n);
    };
    const order: string[] = [];
    s.createSnapshot(60, CONF, stateAt(60), (err) => order.push(`60:${err?.message ?? 'ok'}`));
    fs.runNext(); // 60 is being written
    s.createSnapshot(70, CONF, stateAt(70), (err) => order.push(`70:${err?.message ?? 'ok'}`));
    s.createSnapshot(80, CONF, stateAt(80), (err) => order.push(`80:${err?.message ?? 'ok'}`));
    assert.equal(s.snapshotIndex(), 80);
    assert.ok(!fs.list(SNAP_DIR).some((n) => n.includes(snapshotFileName(1, 80))), 'the next waits for the first');
    fs.runPending();
    assert.deepEqual(order, ['60:ok', '70:ok', '80:ok']);
    assert.ok(!created.some((n) => n.startsWith(snapshotFileName(1, 70))), `70 was never written: ${created.join(' ')}`);
    assert.ok(fs.list(SNAP_DIR).includes(snapshotFileName(1, 60)) && fs.list(SNAP_DIR).includes(snapshotFileName(1, 80)));
    assert.equal(checkRecovery(fs.crashImage(), [80], 100, 'after all'), 80);
    s.close();
  });

  it('a snapshot from the leader supersedes one being written: the write stops, no marker names it, its callback waits for the newer one', () => {
    const fs = new SteppedDisk();
    const s = member(fs);
    const ours = recorder();
    s.createSnapshot(90, CONF, stateAt(90), ours.done);
    fs.runNext();
    fs.runNext();
    const installed: Snapshot = { metadata: { index: 200, term: 2, confState: CONF }, data: stateAt(200) };
    const install = recorder();
    let oursBeforeInstall = false;
    s.save({ snapshot: installed, entries: [], hardState: { term: 2, vote: 0, commit: 200 } }, (err) => {
      oursBeforeInstall = ours.calls.length > 0;
      install.done(err);
    });
    assert.throws(() => s.createSnapshot(150, CONF, stateAt(150)), /out of date|snapshot/i, 'older than the install in the log');
    fs.onOperation = () => {
      const image = fs.crashImage();
      const r = open(image);
      assert.ok([50, 200].includes(r.snapshotIndex()), `recovered from ${r.snapshotIndex()}`);
      r.close();
    };
    fs.runPending();
    fs.onOperation = undefined;
    assert.deepEqual(install.calls, [undefined]);
    assert.deepEqual(ours.calls, [undefined]);
    assert.equal(oursBeforeInstall, false, 'ours completes after the install is durable');
    assert.deepEqual(fs.list(SNAP_DIR).filter((n) => n.includes(snapshotFileName(1, 90))), [], 'its file (and temporary file) removed');
    const r = open(fs.crashImage());
    assert.equal(r.snapshotIndex(), 200);
    assert.equal(r.firstIndex(), 201);
    assert.deepEqual(r.snapshot().data, stateAt(200));
    r.close();
    s.close();
  });

  it('close() abandons a write in flight: WalClosedError, the directory left for the next open to clean', () => {
    const fs = new SteppedDisk();
    const s = member(fs);
    const ours = recorder();
    const waiting = recorder();
    s.createSnapshot(90, CONF, stateAt(90), ours.done);
    fs.runNext();
    s.createSnapshot(95, CONF, stateAt(95), waiting.done);
    s.close();
    assert.equal(ours.calls.length, 1);
    assert.ok(ours.calls[0] instanceof WalClosedError);
    assert.ok(waiting.calls[0] instanceof WalClosedError);
    fs.runPending(); // the sync in flight returns: the write only closes its file
    assert.equal(ours.calls.length, 1, 'no second callback');
    const tmp = `${snapshotFileName(1, 90)}.tmp`;
    assert.ok(fs.list(SNAP_DIR).includes(tmp), 'after close the write touches no name: a new owner may be writing');
    const again = open(fs);
    assert.equal(again.snapshotIndex(), 50);
    assert.equal(again.lastIndex(), 100);
    assert.ok(!fs.list(SNAP_DIR).includes(tmp), 'removed on open');
    assert.ok(again.recovery.leftovers.includes(tmp), `reported as a leftover: ${JSON.stringify(again.recovery.leftovers)}`);
    again.close();
  });

  it('a failed fdatasync reaches done(SnapshotWriteError); nothing is named, the log goes on, the next snapshot works', () => {
    const fs = new SteppedDisk();
    const s = member(fs);
    fs.failDatasync = '.snap.tmp';
    const r = recorder();
    const snap = s.createSnapshot(90, CONF, stateAt(90), r.done);
    assert.equal(s.snapshot(), snap);
    s.compact(85);
    fs.runPending();
    assert.equal(r.calls.length, 1);
    assert.ok(r.calls[0] instanceof SnapshotWriteError);
    assert.equal((r.calls[0] as SnapshotWriteError).code, 'SNAPSHOT_WRITE_FAILED');
    assert.match(r.calls[0]!.message, /0000000000000001-000000000000005a\.snap\.tmp.*injected: fdatasync/);
    assert.deepEqual(fs.list(SNAP_DIR), [snapshotFileName(1, 50)], 'the temporary file removed');
    save(fs, s, { entries: [ent(101, 1)], hardState: { term: 1, vote: 1, commit: 101 } });
    assert.equal(checkRecovery(fs.crashImage(), [50], 101, 'after the failure'), 50, 'the log still covers 51..');
    fs.failDatasync = undefined;
    const next = recorder();
    s.createSnapshot(101, CONF, stateAt(101), next.done);
    fs.runPending();
    assert.deepEqual(next.calls, [undefined]);
    assert.equal(open(fs.crashImage()).snapshotIndex(), 101);
    s.close();
  });

  it('a failed create or rename reaches done(SnapshotWriteError) too; the snapshot is still returned', () => {
    const fs = new SteppedDisk();
    const s = member(fs);
    fs.failCreate = '.snap.tmp';
    const created = recorder();
    assert.equal(s.createSnapshot(90, CONF, stateAt(90), created.done).metadata.index, 90);
    assert.ok(created.calls[0] instanceof SnapshotWriteError, 'a failure at once is reported at once');
    fs.failCreate = undefined;
    fs.failRename = '.snap.tmp';
    const renamed = recorder();
    s.createSnapshot(95, CONF, stateAt(95), renamed.done);
    fs.runPending();
    assert.ok(renamed.calls[0] instanceof SnapshotWriteError);
    assert.match(renamed.calls[0]!.message, /injected: rename/);
    assert.deepEqual(fs.list(SNAP_DIR), [snapshotFileName(1, 50)]);
    assert.equal(checkRecovery(fs.crashImage(), [50], 100, 'after the failures'), 50);
    s.close();
  });

  it('writes through the real disk (node:fs, fdatasync on the thread pool)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raftkv-snapwrite-'));
    try {
      const fs = new NodeFileSystem();
      const s = DiskStorage.open({ fs, dir, clusterId: 'c1', memberId: 1, snapshotWriteChunkBytes: 4096 });
      await new Promise<void>((resolve, reject) =>
        s.save({ entries: ents(1, 20, 1), hardState: { term: 1, vote: 1, commit: 20 } }, (err) => (err ? reject(err) : resolve())),
      );
      const data = stateAt(20, 50_000);
      await new Promise<void>((resolve, reject) => s.createSnapshot(20, CONF, data, (err) => (err ? reject(err) : resolve())));
      s.close();
      assert.deepEqual(readdirSync(join(dir, 'snap')), [snapshotFileName(1, 20)]);
      const again = DiskStorage.open({ fs, dir, clusterId: 'c1', memberId: 1 });
      const meta: SnapshotMetadata = again.snapshot().metadata;
      assert.deepEqual(meta, { index: 20, term: 1, confState: CONF });
      assert.deepEqual(again.snapshot().data, data);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('snapshot files that start with an earlier one (prefix)', () => {
  /** A member with entries 1..1000 (term 1, committed) and no snapshot yet. */
  function fresh(fs: SteppedDisk): DiskStorage {
    const s = open(fs, { snapshotWriteChunkBytes: 1 << 20 });
    save(fs, s, { entries: ents(1, 1000, 1), hardState: { term: 1, vote: 1, commit: 1000 } });
    return s;
  }

  /** Takes a snapshot at `index` from `parts` and waits until its marker is durable. */
  function take(fs: SteppedDisk, s: DiskStorage, index: number, parts: Uint8Array[]): void {
    const r = recorder();
    s.createSnapshot(index, CONF, parts, r.done);
    while (r.calls.length === 0 && fs.runNext());
    assert.deepEqual(r.calls, [undefined], `snapshot ${index}`);
  }

  /** What the file of the snapshot at `index` holds: its prefix, and its own data's size. */
  function fileOf(fs: MemoryFileSystem, index: number): { prefix?: { file: string; bytes: number }; own: number } {
    const contents = decodeSnapshotFile(snapshotFileName(1, index), fs.peek(`${SNAP_DIR}/${snapshotFileName(1, index)}`));
    return { ...(contents.prefix ? { prefix: contents.prefix } : {}), own: contents.data.length };
  }

  const joined = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

  it('a file holds only what follows the parts the last one shared; recovery assembles the whole', () => {
    const fs = new SteppedDisk();
    const s = fresh(fs);
    const body = [stateAt(1, 3000), stateAt(2, 3000)];
    take(fs, s, 100, [stateAt(7, 10), ...body, stateAt(100, 50)]);
    assert.deepEqual(fileOf(fs, 100), { own: 6060 }, 'the first is whole');
    // The same header bytes in another object, the same body parts, a new end.
    const parts = [stateAt(7, 10), ...body, stateAt(200, 20), stateAt(201, 30)];
    take(fs, s, 200, parts);
    assert.deepEqual(fileOf(fs, 200), { prefix: { file: snapshotFileName(1, 100), bytes: 6010 }, own: 50 });
    assert.deepEqual(s.snapshot().data, joined(parts), 'the snapshot held in memory');
    const again = open(fs.crashImage());
    assert.equal(again.snapshotIndex(), 200);
    assert.deepEqual(again.snapshot().data, joined(parts), 'recovered: the prefix from the first file, the rest from its own');
    again.close();
    // Less than half shared: whole again.
    take(fs, s, 300, [stateAt(7, 10), stateAt(300, 7000)]);
    assert.deepEqual(fileOf(fs, 300), { own: 7010 });
    s.close();
  });

  it(`chains are at most ${MAX_PREFIX_DEPTH} files back; pruning keeps every file a kept one needs, and removes the rest`, () => {
    const fs = new SteppedDisk();
    const s = fresh(fs);
    const parts: Uint8Array[] = [stateAt(0, 2000)];
    const depths: number[] = [];
    for (let i = 1; i <= 2 * (MAX_PREFIX_DEPTH + 1) + 2; i++) {
      const index = 10 * i;
      parts.push(stateAt(index, 40)); // every snapshot: the last one's parts and one more
      take(fs, s, index, [...parts]);
      let depth = 0;
      for (let f = fileOf(fs, index); f.prefix; f = fileOf(fs, Number.parseInt(f.prefix.file.slice(17, 33), 16))) depth++;
      depths.push(depth);
      s.compact(index);
      // Every kept file loads, with the data it was written with.
      const files = fs.list(SNAP_DIR).filter((n) => n.endsWith('.snap'));
      const image = fs.crashImage();
      const reopened = open(image);
      assert.equal(reopened.snapshotIndex(), index);
      assert.deepEqual(reopened.snapshot().data, joined(parts), `recovered at ${index}`);
      reopened.close();
      // The newest three and their chains: at most two chains at once.
      assert.ok(files.length <= 2 * (MAX_PREFIX_DEPTH + 1), `at ${index}: ${files.length} files`);
      const chainStart = index - 10 * depth;
      if (depth >= 2) assert.deepEqual(files.filter((n) => Number.parseInt(n.slice(17, 33), 16) < chainStart), [], `at ${index}: the chain before is gone`);
    }
    const cycle = Array.from({ length: MAX_PREFIX_DEPTH + 1 }, (_, d) => d);
    assert.deepEqual(depths, [...cycle, ...cycle, 0, 1], 'a whole file after every chain of the longest length');
    s.close();
  });

  it("a whole file again once the chain's files after the whole one would hold more than it", () => {
    const fs = new SteppedDisk();
    const s = fresh(fs);
    const parts: Uint8Array[] = [stateAt(0, 1000)];
    const kinds: string[] = [];
    for (let i = 1; i <= 13; i++) {
      parts.push(stateAt(i, 300));
      take(fs, s, 10 * i, [...parts]);
      const f = fileOf(fs, 10 * i);
      kinds.push(f.prefix ? `+${f.own}` : `whole ${f.own}`);
      s.compact(10 * i);
    }
    // 1300 whole; 300, 600, 900, 1200 after it (1500 would be more); then 2800 whole, and up to 9 x 300 after it.
    assert.deepEqual(kinds, ['whole 1300', '+300', '+300', '+300', '+300', 'whole 2800', ...Array<string>(7).fill('+300')]);
    const reopened = open(fs.crashImage());
    assert.deepEqual(reopened.snapshot().data, joined(parts));
    reopened.close();
    s.close();
  });

  for (const unsynced of ['none', 'torn'] as const) {
    it(`recovers from a crash at every disk operation of a file that starts with an earlier one, and of the pruning after it (${unsynced === 'none' ? 'unsynced data lost' : 'torn writes'})`, () => {
      for (let seed = 1; seed <= 2; seed++) {
        const fs = new SteppedDisk();
        const s = fresh(fs);
        const rng = new Random(seed);
        const crash: CrashOptions = unsynced === 'none' ? { unsynced } : { unsynced, random: () => rng.float() };
        const dataAt = new Map<number, Uint8Array>();
        const partsAt = (index: number, body: Uint8Array): Uint8Array[] => {
          const parts = [body, stateAt(index, 50)];
          dataAt.set(index, joined(parts));
          return parts;
        };
        // An old chain (10, 20) that pruning will remove, and the current one (100 whole, then 150, 180, 190).
        const old = stateAt(2, 2000);
        const body = stateAt(1, 3000);
        for (const [i, b] of [[10, old], [20, old], [100, body], [150, body], [180, body], [190, body]] as const) {
          take(fs, s, i, partsAt(i, b));
          s.compact(i);
        }
        assert.deepEqual(fileOf(fs, 190).prefix, { file: snapshotFileName(1, 180), bytes: 3000 });
        let durable = false;
        let points = 0;
        fs.onOperation = () => {
          points++;
          const image = open(fs.crashImage(crash));
          const at = image.snapshotIndex();
          assert.ok(durable ? at === 200 : at === 190 || at === 200, `seed ${seed}, operation ${fs.operations}: recovered from ${at}`);
          assert.deepEqual(image.snapshot().data, dataAt.get(at), `seed ${seed}, operation ${fs.operations}: the data of ${at}`);
          image.close();
        };
        s.createSnapshot(200, CONF, partsAt(200, body), (err) => {
          assert.equal(err, undefined);
          durable = true;
        });
        s.compact(200);
        fs.runPending();
        fs.onOperation = undefined;
        assert.ok(durable && points > 5, `${points} crash points`);
        const left = fs.list(SNAP_DIR).filter((n) => n.endsWith('.snap')).map((n) => Number.parseInt(n.slice(17, 33), 16));
        assert.deepEqual(left.sort((a, b) => a - b), [100, 150, 180, 190, 200], 'the old chain pruned, the current one kept');
        s.close();
      }
    });
  }

  it('a missing or damaged file of the chain is named, and recovery does not use the snapshot', () => {
    for (const harm of ['remove', 'flip'] as const) {
      const fs = new SteppedDisk();
      const s = fresh(fs);
      const body = stateAt(1, 5000);
      take(fs, s, 100, [body, stateAt(100, 10)]);
      take(fs, s, 200, [body, stateAt(200, 10)]);
      take(fs, s, 300, [body, stateAt(300, 10)]);
      s.close();
      const image = fs.crashImage();
      const base = `${SNAP_DIR}/${snapshotFileName(1, 100)}`;
      if (harm === 'remove') image.remove(base);
      else {
        const bytes = image.peek(base);
        const fd = image.open(base, true);
        image.write(fd, new Uint8Array([bytes[3000]! ^ 0xff]), 3000);
        image.close(fd);
      }
      const store = new SnapshotStore(image, SNAP_DIR, 3, true);
      assert.throws(
        () => store.load({ term: 1, index: 300, name: snapshotFileName(1, 300) }),
        (e: unknown) =>
          e instanceof SnapshotCorruptionError &&
          e.file === snapshotFileName(1, 300) &&
          e.reason.includes(snapshotFileName(1, 100)) &&
          e.reason.includes(harm === 'remove' ? 'missing' : 'checksum mismatch'),
        harm,
      );
      // The log still holds every entry: recovery passes over the three and replays the log.
      const again = open(image);
      assert.equal(again.snapshotIndex(), 0, harm);
      assert.equal(again.recovery.skippedSnapshots.length, 3, harm);
      assert.equal(again.lastIndex(), 1000);
      again.close();
    }
  });

  it('a snapshot from the leader ends the chain: the next own one is whole', () => {
    const fs = new SteppedDisk();
    const s = fresh(fs);
    const body = stateAt(1, 3000);
    take(fs, s, 100, [body, stateAt(100, 10)]);
    save(fs, s, { entries: [], snapshot: { metadata: { index: 1500, term: 2, confState: CONF }, data: stateAt(1500) } });
    save(fs, s, { entries: ents(1501, 1510, 2), hardState: { term: 2, vote: 1, commit: 1510 } });
    const r = recorder();
    s.createSnapshot(1505, CONF, [body, stateAt(1505, 10)], r.done);
    while (r.calls.length === 0 && fs.runNext());
    assert.deepEqual(r.calls, [undefined]);
    const contents = decodeSnapshotFile(snapshotFileName(2, 1505), fs.peek(`${SNAP_DIR}/${snapshotFileName(2, 1505)}`));
    assert.equal(contents.prefix, undefined, 'whole, though it shares its first part with the one at 100');
    s.close();
  });
});
