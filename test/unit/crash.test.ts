// Crash consistency of the storage layer: a seeded workload of appends,
// follower truncations, hard-state changes, snapshots from a leader, local
// snapshots and compaction runs on the in-memory disk, and at EVERY write,
// truncation and sync boundary the test takes the disk a power cut would
// leave (with unsynced writes lost, and with a torn prefix of them kept) and
// recovers it. Each recovery must succeed and equal the state after some
// sequence of whole batches at least as long as the acknowledged one, plus a
// prefix of the next batch's records:
// - every entry and hard state reported durable comes back intact;
// - nothing that was never written appears;
// - the hard state never goes back.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { type ConfState, type Entry, type HardState, EMPTY_CONF_STATE, EMPTY_HARD_STATE } from '../../src/raft/types.js';
import { Random } from '../../src/sim/random.js';
import { DiskStorage } from '../../src/storage/diskStorage.js';
import { MemoryFileSystem } from '../../src/storage/memoryFs.js';
import { decodePayload } from '../../src/storage/record.js';
import { listSegments, scanSegment } from '../../src/storage/segment.js';

/** The records on a disk, one line per segment, for failure messages. */
function describeDisk(fs: MemoryFileSystem): string {
  return [`snapshots: ${fs.list('/d/snap').join(' ')}`, ...listSegments(fs, '/d/wal')
    .map((seg) => {
      const out: string[] = [];
      scanSegment(fs, `/d/wal/${seg.name}`, (p) => {
        const r = decodePayload(p);
        if (r.type === 'entry') out.push(`${r.entry.index}@${r.entry.term}`);
        else if (r.type === 'hardState') out.push(`hs(${r.hardState.term},${r.hardState.vote},${r.hardState.commit})`);
        else if (r.type === 'snapshot') out.push(`snap(${r.index}@${r.term})`);
        else out.push(r.type);
      });
      return `${seg.name}: ${out.join(' ')}`;
    })]
    .join('\n');
}

/** One record of a batch, as the model applies it. */
type Op =
  | { kind: 'marker'; index: number; term: number }
  | { kind: 'entry'; entry: Entry }
  | { kind: 'hardState'; hs: HardState };

/** The log as Raft defines it: entries after a snapshot point, and the hard state. */
interface Model {
  base: number;
  baseTerm: number;
  entries: Entry[]; // entries[k] has index base + 1 + k
  hs: HardState;
}

function copyModel(m: Model): Model {
  return { base: m.base, baseTerm: m.baseTerm, entries: [...m.entries], hs: m.hs };
}

function termAt(m: Model, i: number): number | undefined {
  if (i === m.base) return m.baseTerm;
  return m.entries[i - m.base - 1]?.term;
}

function applyOp(m: Model, op: Op): void {
  if (op.kind === 'hardState') {
    m.hs = op.hs;
  } else if (op.kind === 'marker') {
    if (termAt(m, op.index) === op.term) return; // a local snapshot: the log stays
    m.base = op.index;
    m.baseTerm = op.term;
    m.entries = [];
  } else {
    const at = op.entry.index - m.base - 1;
    m.entries.length = at;
    m.entries.push(op.entry);
  }
}

const show = (e: Entry) => `${e.index}@${e.term}#${e.data.length}:${e.data[0] ?? ''}`;

/** Whether recovered storage holds exactly the model's state from its snapshot on. */
function matches(s: DiskStorage, m: Model): string | undefined {
  const hs = s.initialState().hardState;
  const want = { ...m.hs, commit: Math.max(m.hs.commit, s.snapshotIndex()) };
  if (hs.term !== want.term || hs.vote !== want.vote || hs.commit !== want.commit) {
    return `hard state ${JSON.stringify(hs)} != ${JSON.stringify(want)}`;
  }
  const last = m.base + m.entries.length;
  if (s.lastIndex() !== last) return `last index ${s.lastIndex()} != ${last}`;
  const from = Math.max(s.firstIndex(), m.base + 1);
  if (s.firstIndex() > s.snapshotIndex() + 1) return `first index ${s.firstIndex()} above snapshot ${s.snapshotIndex()} + 1`;
  if (s.snapshotIndex() < m.base) return `snapshot ${s.snapshotIndex()} below the model's base ${m.base}`;
  if (from > last) return undefined;
  const got = s.entries(from, last + 1, Infinity).map(show).join(' ');
  const exp = m.entries.slice(from - m.base - 1).map(show).join(' ');
  return got === exp ? undefined : `entries differ:\n  got ${got}\n  exp ${exp}`;
}

interface Workload {
  /** Batches in the order they reached the log, as records. */
  batches: Op[][];
  acked: number;
}

/**
 * Runs a seeded workload against storage on `fs`, calling `atBoundary`
 * after every disk operation with the batches submitted and acknowledged.
 */
function runWorkload(seed: number, steps: number, fs: MemoryFileSystem, atBoundary: (w: Workload) => void): void {
  const rng = new Random(seed);
  const w: Workload = { batches: [], acked: 0 };
  fs.onOperation = () => atBoundary(w);
  const storage = DiskStorage.open({ fs, dir: '/d', clusterId: 'c', memberId: 1, segmentBytes: 3072, cacheBytes: 2048 });
  const model: Model = { base: 0, baseTerm: 0, entries: [], hs: EMPTY_HARD_STATE };
  let term = 1;
  let payload = 0;
  const conf: ConfState = { ...EMPTY_CONF_STATE, voters: [1] };
  const last = () => model.base + model.entries.length;
  const ack = (err?: Error) => {
    assert.equal(err, undefined);
    w.acked++;
  };
  const newEntry = (index: number): Entry => {
    const size = rng.chance(0.1) ? 700 + rng.int(900) : rng.int(60);
    const data = new Uint8Array(size);
    data.fill(++payload % 251);
    return { index, term, type: 'normal', data };
  };

  for (let step = 0; step < steps; step++) {
    const roll = rng.float();
    const ops: Op[] = [];
    let snapshotData: { index: number; term: number } | undefined;
    if (roll < 0.55 || last() === 0) {
      const n = 1 + rng.int(4);
      for (let k = 0; k < n; k++) ops.push({ kind: 'entry', entry: newEntry(last() + 1 + k) });
    } else if (roll < 0.7 && last() > model.hs.commit && last() > model.base) {
      // A new leader's entries replace an uncommitted suffix (§5.3).
      term++;
      const from = Math.max(model.hs.commit, model.base) + 1 + rng.int(last() - Math.max(model.hs.commit, model.base));
      const n = 1 + rng.int(3);
      for (let k = 0; k < n; k++) ops.push({ kind: 'entry', entry: newEntry(from + k) });
      ops.push({ kind: 'hardState', hs: { term, vote: 0, commit: model.hs.commit } });
    } else if (roll < 0.82) {
      if (rng.chance(0.3)) term++;
      const commit = Math.min(last(), model.hs.commit + rng.int(6));
      ops.push({ kind: 'hardState', hs: { term, vote: rng.int(3), commit } });
    } else if (roll < 0.88) {
      // A snapshot from the leader, ahead of this log.
      term++;
      const index = last() + 1 + rng.int(5);
      snapshotData = { index, term };
      ops.push({ kind: 'marker', index, term });
      ops.push({ kind: 'entry', entry: newEntry(index + 1) });
      ops.push({ kind: 'hardState', hs: { term, vote: 0, commit: index } });
    } else if (model.hs.commit > storage.snapshotIndex() && model.hs.commit <= storage.lastIndex()) {
      // A local snapshot at the commit index, then compaction below it.
      const at = model.hs.commit;
      const marker: Op = { kind: 'marker', index: at, term: termAt(model, at)! };
      w.batches.push([marker]);
      applyOp(model, marker);
      storage.createSnapshot(at, conf, new Uint8Array([at % 256]), ack);
      storage.compact(Math.max(storage.firstIndex() - 1, at - rng.int(4)));
      if (rng.chance(0.5)) fs.runPending();
      continue;
    } else {
      continue;
    }
    const entries: Entry[] = [];
    let hardState: HardState | undefined;
    for (const op of ops) {
      if (op.kind === 'entry') entries.push(op.entry);
      if (op.kind === 'hardState') hardState = op.hs;
    }
    w.batches.push(ops);
    for (const op of ops) applyOp(model, op);
    storage.save(
      {
        entries,
        hardState,
        snapshot: snapshotData
          ? { metadata: { ...snapshotData, confState: conf }, data: new Uint8Array([snapshotData.index % 256]) }
          : undefined,
      },
      ack,
    );
    // Sometimes let batches pile up behind a sync (group commit).
    if (rng.chance(0.7)) fs.runPending();
  }
  fs.runPending();
  fs.onOperation = undefined;
  assert.equal(w.acked, w.batches.length, 'every batch was acknowledged');
}

/** Recovers `image` and checks it against the workload; returns the number of records of the partial batch kept. */
function check(image: MemoryFileSystem, w: Workload, where: string): void {
  let s: DiskStorage;
  try {
    s = DiskStorage.open({ fs: image, dir: '/d', clusterId: 'c', memberId: 1, segmentBytes: 3072, cacheBytes: 2048 });
  } catch (err) {
    assert.fail(`${where}: recovery failed: ${(err as Error).message}\n${describeDisk(image)}`);
  }
  const model: Model = { base: 0, baseTerm: 0, entries: [], hs: EMPTY_HARD_STATE };
  for (let m = 0; m < w.acked; m++) for (const op of w.batches[m]!) applyOp(model, op);
  const problems: string[] = [];
  for (let m = w.acked; m <= w.batches.length; m++) {
    // Whole batches 0..m-1, then a prefix of batch m.
    const partial = copyModel(model);
    const next = w.batches[m] ?? [];
    for (let r = 0; r <= next.length; r++) {
      if (r > 0) applyOp(partial, next[r - 1]!);
      const problem = matches(s, partial);
      if (!problem) {
        writeAfterRecovery(image, s, `${where}: after recovery`);
        return;
      }
      problems.push(`after ${m} batches + ${r} records: ${problem}`);
    }
    for (const op of next) applyOp(model, op);
  }
  assert.fail(`${where}: recovered state matches no allowed state (acked ${w.acked} of ${w.batches.length}):\n${problems.slice(-4).join('\n')}`);
}

/**
 * The member goes on after recovery: a new entry written to the recovered
 * log must survive the next restart too (the log is left writable and
 * well-formed, e.g. not sealed twice when the crash came during a rollover).
 */
function writeAfterRecovery(image: MemoryFileSystem, s: DiskStorage, where: string): void {
  const index = s.lastIndex() + 1;
  const term = Math.max(s.initialState().hardState.term, index > s.firstIndex() - 1 ? s.term(index - 1) : 0);
  const entry: Entry = { index, term, type: 'normal', data: new Uint8Array([7, 7, 7]) };
  let acked = false;
  s.save({ entries: [entry] }, (err) => {
    assert.equal(err, undefined, where);
    acked = true;
  });
  image.runPending();
  assert.ok(acked, `${where}: the write was acknowledged`);
  s.close();
  let again: DiskStorage;
  try {
    again = DiskStorage.open({ fs: image.crashImage(), dir: '/d', clusterId: 'c', memberId: 1, segmentBytes: 3072, cacheBytes: 2048 });
  } catch (err) {
    assert.fail(`${where}: the second recovery failed: ${(err as Error).message}\n${describeDisk(image)}`);
  }
  assert.equal(again.lastIndex(), index, `${where}: the entry written after recovery survives`);
  assert.deepEqual([...again.entries(index, index + 1, Infinity)[0]!.data], [7, 7, 7]);
  again.close();
}

describe('crash consistency', () => {
  const seeds = (process.env.CRASH_SEEDS ?? "1-6").split("-").map(Number);
  for (let seed = seeds[0]!; seed <= (seeds[1] ?? seeds[0]!); seed++) {
    it(`recovers correctly at every disk operation (seed ${seed})`, () => {
      const fs = new MemoryFileSystem();
      const rng = new Random(seed * 7919);
      let points = 0;
      runWorkload(seed, 160, fs, (w) => {
        points++;
        check(fs.crashImage({ unsynced: 'none' }), w, `seed ${seed}, operation ${fs.operations}, clean crash`);
        check(fs.crashImage({ unsynced: 'torn', random: () => rng.float() }), w, `seed ${seed}, operation ${fs.operations}, torn crash`);
      });
      assert.ok(points > 300, `${points} crash points`);
    });
  }
});

describe('MemoryFileSystem', () => {
  const bytes = (...xs: number[]) => new Uint8Array(xs);
  /** A disk with /d/f holding [1, 2, 3] synced and [9] written after at offset 3, unsynced. */
  function disk(): MemoryFileSystem {
    const fs = new MemoryFileSystem();
    fs.mkdirp('/d');
    const fd = fs.create('/d/f');
    fs.write(fd, bytes(1, 2, 3), 0);
    fs.fsync(fd);
    fs.syncDir('/d');
    fs.write(fd, bytes(9), 3);
    return fs;
  }

  it('a crash keeps what was synced; reads saw the unsynced write before it', () => {
    const fs = disk();
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 2, 3, 9));
    fs.crash();
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 2, 3));
  });

  it('keeps a written buffer as it was when written, though the caller reuses it', () => {
    const fs = new MemoryFileSystem();
    fs.mkdirp('/d');
    const fd = fs.create('/d/f');
    const buf = bytes(1, 2, 3, 4);
    fs.write(fd, buf, 0);
    buf.fill(7);
    fs.fsync(fd);
    fs.syncDir('/d');
    buf.fill(8);
    fs.crash();
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 2, 3, 4));
  });

  it('reads zeros where a file was extended or written past its end, also after a cut and a crash', () => {
    const fs = new MemoryFileSystem();
    fs.mkdirp('/d');
    const fd = fs.create('/d/f');
    fs.write(fd, bytes(1, 2, 3, 4, 5, 6), 0);
    fs.truncate(fd, 3);
    fs.truncate(fd, 8); // what was cut comes back as zeros
    fs.write(fd, bytes(7), 10); // a hole of zeros before it
    assert.equal(fs.size(fd), 11);
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 7));
    const part = new Uint8Array([9, 9, 9, 9, 9]);
    assert.equal(fs.read(fd, part, 2), 5);
    assert.deepEqual(part, bytes(3, 0, 0, 0, 0), 'a read overwrites the whole of what it returns');
    fs.fsync(fd);
    fs.syncDir('/d');
    fs.truncate(fd, 1 << 20); // preallocated: reads as zeros, takes no memory until written
    fs.write(fd, bytes(8), 12);
    fs.crash();
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 7));
    const again = fs.open('/d/f', true);
    fs.truncate(again, 16);
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0));
  });

  it('a file created after another was removed reads only what was written to it (buffers of removed files are reused)', () => {
    const fs = new MemoryFileSystem();
    fs.mkdirp('/d');
    for (let round = 0; round < 3; round++) {
      const old = fs.create('/d/old');
      fs.truncate(old, 8192);
      fs.write(old, new Uint8Array(8192).fill(0xee), 0);
      fs.fsync(old);
      fs.syncDir('/d');
      const image = fs.crashImage(); // shares the old file's bytes
      fs.close(old);
      fs.remove('/d/old');
      fs.syncDir('/d');
      const fresh = fs.create('/d/new');
      fs.truncate(fresh, 8192);
      fs.write(fresh, bytes(1, 2, 3), 100);
      const got = fs.peek('/d/new');
      assert.equal(got.length, 8192);
      assert.deepEqual(got.subarray(99, 104), bytes(0, 1, 2, 3, 0));
      assert.ok(got.every((b, i) => b === 0 || (i >= 100 && i < 103)), `round ${round}: nothing of the removed file shows`);
      assert.ok(image.peek('/d/old').every((b) => b === 0xee), `round ${round}: an image taken before keeps the removed file`);
      fs.fsync(fresh);
      fs.close(fresh);
      fs.remove('/d/new');
      fs.syncDir('/d');
    }
  });

  it('crash images and the disk they came from change independently (their bytes are shared until written)', () => {
    const fs = disk();
    const image = fs.crashImage();
    const fd = image.open('/d/f', true);
    image.write(fd, bytes(5), 0);
    assert.deepEqual(image.peek('/d/f'), bytes(5, 2, 3));
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 2, 3, 9), 'the original is untouched by a write to its image');
    const second = fs.crashImage();
    fs.crash();
    const fd2 = fs.open('/d/f', true);
    fs.write(fd2, bytes(6, 6), 1);
    fs.fsync(fd2);
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 6, 6));
    assert.deepEqual(second.peek('/d/f'), bytes(1, 2, 3), 'an image taken before the crash is untouched by writes after it');
    assert.deepEqual(image.peek('/d/f'), bytes(5, 2, 3));
    image.crash();
    assert.deepEqual(image.peek('/d/f'), bytes(1, 2, 3), 'the image crashes back to what its origin had synced');
    fs.crash();
    assert.deepEqual(fs.peek('/d/f'), bytes(1, 6, 6));
  });
});
