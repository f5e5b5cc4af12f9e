// One data directory, one writer: DiskStorage.open on the real disk takes
// <dir>/LOCK, refuses a directory another live process holds (naming it),
// takes over the lock of a process that died (reaped or not), and gives it back on close
// and when the open fails.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { DiskStorage } from '../../src/storage/diskStorage.js';
import { DataDirLockedError, WalIdentityError } from '../../src/storage/errors.js';
import { NodeFileSystem } from '../../src/storage/nodeFs.js';

describe('data directory lock', () => {
  const root = mkdtempSync(join(tmpdir(), 'raftkv-lock-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const open = (dir: string, clusterId = 'c') => DiskStorage.open({ fs: new NodeFileSystem(), dir, clusterId, memberId: 1 });

  it('holds the directory while open, with this process id, and lets it go on close', () => {
    const dir = join(root, 'a');
    const storage = open(dir);
    assert.equal(readFileSync(join(dir, 'LOCK'), 'latin1'), `${process.pid}\n`);
    storage.close();
    assert.ok(!existsSync(join(dir, 'LOCK')));
    open(dir).close();
  });

  it('refuses a directory a live process holds, naming it; takes it over once that process is gone', async () => {
    const dir = join(root, 'b');
    mkdirSync(dir, { recursive: true });
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, 'LOCK'), `${other.pid}\n`);
      assert.throws(
        () => open(dir),
        (e: unknown) => e instanceof DataDirLockedError && e.code === 'DATA_DIR_LOCKED' && e.pid === other.pid && e.message.includes(`pid ${other.pid}`),
      );
      assert.ok(!existsSync(join(dir, 'wal')), 'nothing of the log was touched');
    } finally {
      other.kill('SIGKILL');
      await new Promise((resolve) => other.once('exit', resolve));
    }
    // kill -9 left its lock behind: a dead pid's lock is stale.
    const storage = open(dir);
    assert.equal(readFileSync(join(dir, 'LOCK'), 'latin1'), `${process.pid}\n`);
    storage.close();
  });

  it('takes over the lock of a member that died but was not reaped yet (a zombie, on Linux)', { skip: process.platform !== 'linux' && 'zombies are read from /proc' }, async () => {
    const dir = join(root, 'z');
    mkdirSync(dir, { recursive: true });
    // The inner sleep exits at once; its parent, exec'd into a long sleep, never waits for it.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number.parseInt(await new Promise<string>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(d.toString()))), 10);
      const deadline = Date.now() + 5000;
      const state = () => readFileSync(`/proc/${zombie}/stat`, 'latin1').split(') ')[1]![0];
      while (state() !== 'Z') {
        assert.ok(Date.now() < deadline, 'the child became a zombie');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      process.kill(zombie, 0); // still answers, as a live process would
      writeFileSync(join(dir, 'LOCK'), `${zombie}\n`);
      const storage = open(dir);
      assert.equal(readFileSync(join(dir, 'LOCK'), 'latin1'), `${process.pid}\n`);
      storage.close();
    } finally {
      parent.kill('SIGKILL');
      await new Promise((resolve) => parent.once('exit', resolve));
    }
  });

  it('gives the lock back when the open fails', () => {
    const dir = join(root, 'c');
    open(dir, 'one-cluster').close();
    assert.throws(() => open(dir, 'another-cluster'), WalIdentityError);
    assert.ok(!existsSync(join(dir, 'LOCK')));
  });
});
