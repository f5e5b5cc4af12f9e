// The real disk, through node:fs. Writes go to the page cache synchronously
// (a few microseconds for a batch); fdatasync runs on libuv's thread pool so
// the event loop keeps going while the disk flushes.

import * as fs from 'node:fs';
import { dirname } from 'node:path';

import { DataDirLockedError } from './errors.js';
import type { FileHandle, FileLock, FileSystem } from './fs.js';

export class NodeFileSystem implements FileSystem {
  mkdirp(path: string): void {
    fs.mkdirSync(path, { recursive: true });
  }

  list(dir: string): string[] {
    try {
      return fs.readdirSync(dir).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  exists(path: string): boolean {
    return fs.existsSync(path);
  }

  open(path: string, writable: boolean): FileHandle {
    return fs.openSync(path, writable ? 'r+' : 'r');
  }

  create(path: string): FileHandle {
    return fs.openSync(path, 'wx+');
  }

  close(fd: FileHandle): void {
    fs.closeSync(fd);
  }

  size(fd: FileHandle): number {
    return fs.fstatSync(fd).size;
  }

  read(fd: FileHandle, buf: Uint8Array, position: number): number {
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(fd, buf, done, buf.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  write(fd: FileHandle, data: Uint8Array, position: number): void {
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(fd, data, done, data.length - done, position + done);
    }
  }

  truncate(fd: FileHandle, length: number): void {
    fs.ftruncateSync(fd, length);
  }

  fsync(fd: FileHandle): void {
    fs.fsyncSync(fd);
  }

  datasync(fd: FileHandle, done: (err?: Error) => void): void {
    fs.fdatasync(fd, (err) => done(err ?? undefined));
  }

  allocate(fd: FileHandle, length: number, done: (err?: Error) => void): void {
    // Writes zeros chunk by chunk (node has no fallocate), off the event loop.
    const chunk = Buffer.alloc(Math.min(length, 1 << 20));
    let position = fs.fstatSync(fd).size;
    const next = (err: NodeJS.ErrnoException | null): void => {
      if (err) return done(err);
      if (position >= length) return fs.fsync(fd, (e) => done(e ?? undefined));
      const n = Math.min(chunk.length, length - position);
      const at = position;
      position += n;
      fs.write(fd, chunk, 0, n, at, (e) => next(e));
    };
    next(null);
  }

  rename(from: string, to: string): void {
    fs.renameSync(from, to);
  }

  remove(path: string): void {
    fs.rmSync(path, { force: true });
  }

  syncDir(dir: string): void {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * A lock file holding the owner's pid, created exclusively (Node has no
   * flock(2)). One left by a process that died (kill -9) names a pid that
   * no longer runs (or an unreaped zombie), and is taken over; so is one of this process's own (a
   * test reopening a directory it "crashed" in). Two processes taking over
   * the same stale file at the same instant could both succeed: the window
   * is the microseconds between reading the file and replacing it.
   */
  lock(path: string): FileLock {
    const own = `${process.pid}\n`;
    for (let attempt = 0; ; attempt++) {
      try {
        fs.writeFileSync(path, own, { flag: 'wx' });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const holder = Number.parseInt(readOrEmpty(path), 10);
        const stale = !Number.isSafeInteger(holder) || holder === process.pid || !isRunning(holder);
        if (!stale || attempt > 0) throw new DataDirLockedError(dirname(path), holder);
        fs.rmSync(path, { force: true });
      }
    }
    return {
      release: () => {
        if (readOrEmpty(path) === own) fs.rmSync(path, { force: true });
      },
    };
  }
}

function readOrEmpty(path: string): string {
  try {
    return fs.readFileSync(path, 'latin1');
  } catch {
    return '';
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it runs, as another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/**
 * A process that has exited but that its parent has not reaped yet still
 * answers kill(pid, 0): a member killed with kill -9 under a parent that
 * waits late (a shell, an init that does not reap) holds its lock until
 * then. Linux says so in /proc/<pid>/stat (state Z or X, after the
 * parenthesized name); elsewhere, assume it runs.
 */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}
