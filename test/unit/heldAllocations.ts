// A MemoryFileSystem whose segment preallocations wait until the test lets
// them run: the write-ahead log stays in a sparse segment (a new log's first
// one, or one a rollover had to create) for as long as the test needs.

import { MemoryFileSystem } from '../../src/storage/memoryFs.js';

export class HeldAllocationsFs extends MemoryFileSystem {
  private held: (() => void)[] = [];

  override allocate(fd: number, length: number, done: (err?: Error) => void): void {
    this.held.push(() => super.allocate(fd, length, done));
  }

  /** Lets the held preallocations run (they complete at the next runPending). */
  releaseAllocations(): void {
    for (const run of this.held.splice(0)) run();
  }
}
