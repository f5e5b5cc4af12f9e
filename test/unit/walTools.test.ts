// The operator tools over a data directory: `raftkv wal verify` (read-only
// recovery plus every snapshot file) and `raftkv wal dump`, as functions on
// the in-memory disk and as the real command on real files.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { type Entry, EMPTY_CONF_STATE } from '../../src/raft/types.js';
import { DiskStorage } from '../../src/storage/diskStorage.js';
import { DataDirError, WalClosedError } from '../../src/storage/errors.js';
import type { FileSystem } from '../../src/storage/fs.js';
import { dumpDataDir, resolveDataDir, verifyDataDir } from '../../src/storage/inspect.js';
import { MemoryFileSystem } from '../../src/storage/memoryFs.js';
import { HeldAllocationsFs } from './heldAllocations.js';
import { NodeFileSystem } from '../../src/storage/nodeFs.js';

const ents = (from: number, to: number, term: number): Entry[] => {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: 'normal', data: new TextEncoder().encode(`value ${i}`) });
  return out;
};

/** Writes entries 1..200 (terms 1 and 2), a snapshot at 150 and compaction to 120, then closes. */
function writeDir(fs: FileSystem, dir: string, settle: () => void): void {
  const s = DiskStorage.open({ fs, dir, clusterId: 'tools', memberId: 3, segmentBytes: 2048 });
  for (let i = 1; i <= 200; i += 20) {
    s.save({ entries: ents(i, i + 19, i > 100 ? 2 : 1), hardState: { term: i > 100 ? 2 : 1, vote: 3, commit: i + 15 } }, (err) => assert.equal(err, undefined));
    settle();
  }
  s.createSnapshot(150, { ...EMPTY_CONF_STATE, voters: [1, 2, 3] }, new Uint8Array([1, 5, 0]));
  s.compact(120);
  settle();
  s.close();
}

describe('wal verify and dump (functions)', () => {
  it('reports an intact directory, its owner, log range, hard state and snapshot', () => {
    const fs = new MemoryFileSystem();
    writeDir(fs, '/m', () => fs.runPending());
    const image = fs.crashImage();
    const r = verifyDataDir(image, '/m');
    assert.equal(r.corrupt, false);
    assert.equal(r.refusal, undefined);
    assert.equal(r.clusterId, 'tools');
    assert.equal(r.memberId, 3);
    assert.equal(r.lastIndex, 200);
    assert.equal(r.snapshotIndex, 150);
    assert.ok(r.firstIndex <= 151);
    assert.deepEqual(r.hardState, { term: 2, vote: 3, commit: 196 });
    assert.deepEqual(r.snapshots.map((s) => [s.index, s.problem]), [[150, undefined]]);
  });

  it('changes nothing: a torn tail is reported, not cut; leftovers are reported, not removed', () => {
    // (Preallocations held: the log stays in its first segment.)
    const fs = new HeldAllocationsFs();
    const s = DiskStorage.open({ fs, dir: '/m', clusterId: 'tools', memberId: 3, segmentBytes: 1 << 16 });
    s.save({ entries: ents(1, 5, 1) }, () => {});
    fs.runPending();
    s.save({ entries: [{ index: 6, term: 1, type: 'normal', data: new Uint8Array(3000).fill(7) }] }, () => {});
    // Keep a torn prefix of the unsynced write: find a crash that tears it.
    let image: MemoryFileSystem | undefined;
    for (let seed = 1; seed < 200 && !image; seed++) {
      let x = seed;
      const candidate = fs.crashImage({ unsynced: 'torn', random: () => ((x = (x * 48271) % 2147483647) / 2147483647) });
      const r = verifyDataDir(candidate, '/m');
      if (r.tornTail) image = candidate;
    }
    assert.ok(image, 'some crash tore the last write');
    const walDir = '/m/wal';
    // A preallocation that a crash interrupted.
    image.close(image.create(`${walDir}/0000000000000001-0000000000000000.wal.9.tmp`));
    image.syncDir(walDir);
    const before = image.list(walDir).map((n) => [n, image!.peek(`${walDir}/${n}`)] as const);
    const r = verifyDataDir(image, '/m');
    assert.equal(r.corrupt, false, 'a torn tail is a crash, not damage');
    assert.ok(r.tornTail && r.tornTail.bytes > 0);
    assert.deepEqual(r.leftovers, ['0000000000000001-0000000000000000.wal.9.tmp']);
    const after = image.list(walDir).map((n) => [n, image!.peek(`${walDir}/${n}`)] as const);
    assert.deepEqual(after, before, 'verify wrote nothing');
    // The read-only storage refuses writes.
    const ro = DiskStorage.open({ fs: image, dir: '/m', readOnly: true });
    assert.throws(() => ro.compact(1), WalClosedError);
    let refused: Error | undefined;
    ro.save({ entries: ents(7, 7, 1) }, (err) => (refused = err));
    assert.ok(refused instanceof WalClosedError);
  });

  it('names the damaged snapshot, and says whether the member could still start', () => {
    const fs = new MemoryFileSystem();
    writeDir(fs, '/m', () => fs.runPending());
    const image = fs.crashImage();
    const snap = `/m/snap/${image.list('/m/snap')[0]}`;
    const bytes = image.peek(snap);
    bytes[bytes.length - 2]! ^= 0x10;
    image.poke(snap, bytes);
    const r = verifyDataDir(image, '/m');
    assert.equal(r.corrupt, true);
    assert.match(r.snapshots[0]!.problem ?? '', /checksum/);
    // The log was compacted past the start, so without the snapshot the member cannot start.
    assert.equal(r.refusal?.code, 'SNAPSHOT_MISSING');
  });

  it('treats a flipped bit in a record\'s padding as damage, though the checksum does not cover it', () => {
    const fs = new MemoryFileSystem();
    writeDir(fs, '/m', () => fs.runPending());
    const image = fs.crashImage();
    const first = `/m/wal/${image.list('/m/wal').find((n) => n.endsWith('.wal'))}`;
    // The first entry record after the header: find its padding.
    let padAt = -1;
    dumpDataDir(image, '/m', {
      segment: () => {},
      record: (r) => {
        if (padAt < 0 && r.record.type === 'entry' && r.size % 8 !== 0) padAt = r.offset + 8 + r.size;
      },
      end: () => {},
    });
    assert.ok(padAt > 0);
    const bytes = image.peek(first);
    bytes[padAt]! ^= 0x80;
    image.poke(first, bytes);
    const r = verifyDataDir(image, '/m');
    assert.equal(r.corrupt, true);
    assert.match(r.refusal?.message ?? '', /padding/);
  });

  it('dumps every record in order, with where and why each segment ends', () => {
    const fs = new MemoryFileSystem();
    writeDir(fs, '/m', () => fs.runPending());
    const seen: string[] = [];
    const ends: string[] = [];
    dumpDataDir(fs, '/m', {
      segment: () => {},
      record: (r) => {
        if (r.record.type === 'entry') seen.push(`e${r.record.entry.index}`);
        else seen.push(r.record.type);
      },
      end: (e) => ends.push(e.stop),
    });
    assert.equal(seen[0], 'header');
    const indexes = seen.filter((x) => x.startsWith('e')).map((x) => Number(x.slice(1)));
    assert.deepEqual(indexes, [...indexes].sort((a, b) => a - b), 'entries in log order');
    assert.equal(indexes.at(-1), 200);
    assert.ok(seen.includes('seal') && seen.includes('snapshot') && seen.includes('hardState'));
    assert.equal(ends.at(-1), 'zero', 'the last segment ends in its unused zeros');
  });

  it('finds the member directory in etcd\'s layout and refuses a directory without one', () => {
    const fs = new MemoryFileSystem();
    writeDir(fs, '/data/member', () => fs.runPending());
    assert.equal(resolveDataDir(fs, '/data'), '/data/member');
    assert.equal(resolveDataDir(fs, '/data/member/wal'), '/data/member');
    fs.mkdirp('/empty');
    assert.throws(() => verifyDataDir(fs, '/empty'), (e) => e instanceof DataDirError && /no write-ahead log/.test(e.message));
    assert.throws(() => verifyDataDir(fs, '/nowhere'), (e) => e instanceof DataDirError && /no such directory/.test(e.message));
  });
});

describe('raftkv wal (the command, on real files)', () => {
  const root = mkdtempSync(join(tmpdir(), 'raftkv-waltools-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(process.cwd(), 'dist/src/cli/main.js'), 'wal', ...args], { encoding: 'utf8' });

  it('verify exits 0 on an intact directory and 1 naming file, offset and index on damage; dump lists records', async () => {
    const dir = join(root, 'real');
    const fs = new NodeFileSystem();
    const s = DiskStorage.open({ fs, dir, clusterId: 'tools', memberId: 3, segmentBytes: 4096 });
    for (let i = 1; i <= 100; i += 10) {
      await new Promise<void>((resolve, reject) => s.save({ entries: ents(i, i + 9, 1), hardState: { term: 1, vote: 3, commit: i } }, (err) => (err ? reject(err) : resolve())));
    }
    s.close();
    const ok = cli('verify', dir);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /member 3 of cluster "tools"/);
    assert.match(ok.stdout, /entries 1\.\.100/);
    assert.match(ok.stdout, /^OK$/m);

    const dump = cli('dump', dir);
    assert.equal(dump.status, 0, dump.stderr);
    assert.match(dump.stdout, /entry\s+57\s+1\s+/);
    assert.match(dump.stdout, /end: zeros/);

    // Damage a record in the first (sealed) segment.
    const first = join(dir, 'wal', '0000000000000000-0000000000000001.wal');
    const bytes = readFileSync(first);
    bytes[710]! ^= 0x01; // inside entry 16's record
    writeFileSync(first, bytes);
    const bad = cli('verify', dir);
    assert.equal(bad.status, 1);
    assert.match(bad.stdout, /CORRUPT: write-ahead log corrupt: 0000000000000000-0000000000000001\.wal at offset \d+ \(index \d+\)/);
    assert.match(bad.stdout, /would refuse to start/);
  });

  it('verify refuses a last segment cut short by something other than a crash', async () => {
    const dir = join(root, 'cut');
    const fs = new NodeFileSystem();
    const s = DiskStorage.open({ fs, dir, clusterId: 'tools', memberId: 3, segmentBytes: 1 << 16 });
    await new Promise<void>((resolve, reject) => s.save({ entries: ents(1, 50, 1) }, (err) => (err ? reject(err) : resolve())));
    s.close();
    truncateSync(join(dir, 'wal', '0000000000000000-0000000000000001.wal'), 1000);
    const r = cli('verify', dir);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /preallocated to 65536: it was cut short/);
  });

  it('says what is wrong with its arguments', () => {
    assert.equal(cli().status, 2);
    const unknown = cli('fix', root);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown subcommand "fix"/);
    const noDir = cli('verify');
    assert.equal(noDir.status, 2);
    assert.match(noDir.stderr, /a data directory is required/);
    const flag = cli('verify', root, '--fast');
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /unknown flag --fast/);
    const missing = cli('verify', join(root, 'nothing-here'));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /not a raftkv data directory: no such directory/);
  });
});
