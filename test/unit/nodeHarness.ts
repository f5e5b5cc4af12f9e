// Shared by the node runtime tests (test/unit/node*.test.ts): clusters of
// real RaftNodes in one process over the in-process transport, on the
// in-memory disk (or real temporary directories), with a state machine that
// records every command in order, a disk that can be made to fail, and a
// manual clock.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LocalNetwork } from '../../src/node/localTransport.js';
import { type RaftNode, createNode } from '../../src/node/node.js';
import type { NodeClock, RaftNodeOptions } from '../../src/node/options.js';
import type { SnapshotTask, StateMachine } from '../../src/node/stateMachine.js';
import type { NodeId } from '../../src/raft/types.js';
import type { FileHandle, FileSystem } from '../../src/storage/fs.js';
import { MemoryFileSystem } from '../../src/storage/memoryFs.js';
import { NodeFileSystem } from '../../src/storage/nodeFs.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

export const bytes = (s: string): Uint8Array => enc.encode(s);

/** Records every command applied, in order; apply returns the command's position (1-based). */
export class LogMachine implements StateMachine<number> {
  log: string[] = [];
  lastIndex = 0;
  readonly restores: number[] = [];
  /** A command this machine cannot apply (it throws). */
  poison: string | undefined;

  apply(command: Uint8Array, index: number): number {
    if (index <= this.lastIndex) throw new Error(`entry ${index} applied after entry ${this.lastIndex}`);
    const text = dec.decode(command);
    if (text === this.poison) throw new Error(`cannot apply ${text}`);
    this.lastIndex = index;
    this.log.push(text);
    return this.log.length;
  }

  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify(this.log));
  }

  restore(data: Uint8Array, index: number): void {
    this.log = JSON.parse(dec.decode(data)) as string[];
    this.lastIndex = index;
    this.restores.push(index);
  }
}

/**
 * A LogMachine that snapshots in slices (StateMachine.beginSnapshot): one
 * command per step, and no progress at all while `held`, so a test controls
 * how long a snapshot stays under way. A step that finds `failStep` set throws.
 */
export class SlicedLogMachine extends LogMachine {
  held = false;
  failStep = false;
  /** The last applied command's index at each beginSnapshot(). */
  readonly begun: number[] = [];
  steps = 0;

  beginSnapshot(): SnapshotTask {
    const log = this.log.slice(); // the state now: apply() pushes to this.log, restore() replaces it
    this.begun.push(this.lastIndex);
    const parts: string[] = [];
    return {
      step: () => {
        this.steps++;
        if (this.failStep) throw new Error('the snapshot encoder broke');
        if (this.held) return false;
        if (parts.length === log.length) return true;
        parts.push(JSON.stringify(log[parts.length]));
        return false;
      },
      result: () => enc.encode(`[${parts.join(',')}]`),
    };
  }
}

/** A file system over another whose fdatasyncs can be made to fail (an EIO from the disk), or to wait. */
export class FailingFs implements FileSystem {
  failSyncs = false;
  /** While set, fdatasyncs wait here until released (a slow disk, under the test's control). */
  heldSyncs: Array<() => void> | undefined;
  constructor(readonly inner: FileSystem) {}
  mkdirp(path: string): void {
    this.inner.mkdirp(path);
  }
  list(dir: string): string[] {
    return this.inner.list(dir);
  }
  exists(path: string): boolean {
    return this.inner.exists(path);
  }
  open(path: string, writable: boolean): FileHandle {
    return this.inner.open(path, writable);
  }
  create(path: string): FileHandle {
    return this.inner.create(path);
  }
  close(fd: FileHandle): void {
    this.inner.close(fd);
  }
  size(fd: FileHandle): number {
    return this.inner.size(fd);
  }
  read(fd: FileHandle, buf: Uint8Array, position: number): number {
    return this.inner.read(fd, buf, position);
  }
  write(fd: FileHandle, data: Uint8Array, position: number): void {
    this.inner.write(fd, data, position);
  }
  truncate(fd: FileHandle, length: number): void {
    this.inner.truncate(fd, length);
  }
  fsync(fd: FileHandle): void {
    this.inner.fsync(fd);
  }
  datasync(fd: FileHandle, done: (err?: Error) => void): void {
    if (this.failSyncs) {
      setImmediate(() => done(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
      return;
    }
    if (this.heldSyncs) {
      this.heldSyncs.push(() => this.inner.datasync(fd, done));
      return;
    }
    this.inner.datasync(fd, done);
  }
  allocate(fd: FileHandle, length: number, done: (err?: Error) => void): void {
    this.inner.allocate(fd, length, done);
  }
  rename(from: string, to: string): void {
    this.inner.rename(from, to);
  }
  remove(path: string): void {
    this.inner.remove(path);
  }
  syncDir(dir: string): void {
    this.inner.syncDir(dir);
  }
}

/** A clock that moves only when told to. */
export class ManualClock implements NodeClock {
  private t = 0;
  private timers = new Map<number, { fn: () => void; ms: number; next: number }>();
  private nextId = 1;

  now(): number {
    return this.t;
  }
  setInterval(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { fn, ms, next: this.t + ms });
    return id;
  }
  clearInterval(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Moves time forward by `ms`, running the intervals that fall due, in time order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let due: { fn: () => void; ms: number; next: number } | undefined;
      for (const timer of this.timers.values()) if (timer.next <= end && (!due || timer.next < due.next)) due = timer;
      if (!due) break;
      this.t = due.next;
      due.next += due.ms;
      due.fn();
    }
    this.t = end;
  }
}

/** Lets every pending setImmediate chain run (passes, deliveries, disk completions). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export interface Member {
  readonly id: NodeId;
  readonly fs: FileSystem;
  readonly dir: string;
  sm: LogMachine;
  node: RaftNode<number> | undefined;
}

export interface ClusterOptions {
  /** Real temporary directories instead of the in-memory disk. */
  readonly realDisk?: boolean;
  /** Options for every member. */
  readonly node?: Partial<RaftNodeOptions<number>>;
  /** Commands every member's state machine refuses to apply. */
  readonly poison?: string;
  /** State machines that snapshot in slices (SlicedLogMachine). */
  readonly sliced?: boolean;
}

export class TestCluster {
  readonly net = new LocalNetwork();
  readonly members = new Map<NodeId, Member>();
  private readonly tmp: string | undefined;

  constructor(
    readonly ids: readonly NodeId[],
    private readonly options: ClusterOptions = {},
  ) {
    this.tmp = options.realDisk ? mkdtempSync(join(tmpdir(), 'raftkv-node-')) : undefined;
    for (const id of ids) this.addMemberSlot(id);
  }

  /** A place (disk, directory) for member `id`, without starting it. */
  addMemberSlot(id: NodeId, fs?: FileSystem): Member {
    const m: Member = {
      id,
      fs: fs ?? (this.tmp ? new NodeFileSystem() : new FailingFs(new MemoryFileSystem({ defer: (done) => setImmediate(done) }))),
      dir: this.tmp ? join(this.tmp, `member-${id}`) : '/data',
      sm: new LogMachine(),
      node: undefined,
    };
    this.members.set(id, m);
    return m;
  }

  url(id: NodeId): string {
    return `local://${id}`;
  }

  member(id: NodeId): Member {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  node(id: NodeId): RaftNode<number> {
    const n = this.member(id).node;
    if (!n) throw new Error(`member ${id} is not running`);
    return n;
  }

  running(): RaftNode<number>[] {
    return [...this.members.values()].flatMap((m) => (m.node ? [m.node] : []));
  }

  /** Starts (or restarts, with a fresh state machine) member `id` on its disk. */
  async start(id: NodeId, extra: Partial<RaftNodeOptions<number>> = {}): Promise<RaftNode<number>> {
    const m = this.member(id);
    m.sm = this.options.sliced ? new SlicedLogMachine() : new LogMachine();
    m.sm.poison = this.options.poison;
    const peers: Record<number, string> = {};
    for (const other of this.ids) peers[other] = this.url(other);
    m.node = await createNode<number>({
      id,
      initialVoters: this.ids,
      peers,
      dataDir: m.dir,
      fs: m.fs,
      segmentBytes: 64 * 1024,
      transport: this.net.transport(id),
      stateMachine: m.sm,
      tickMs: 5,
      requestTimeoutMs: 3000,
      ...this.options.node,
      ...extra,
    });
    return m.node;
  }

  async startAll(): Promise<void> {
    for (const id of this.ids) await this.start(id);
  }

  async stop(id: NodeId): Promise<void> {
    const m = this.member(id);
    await m.node?.stop();
    m.node = undefined;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.node?.stop()));
    for (const m of this.members.values()) m.node = undefined;
  }

  /** Stops everything and removes the temporary directories. */
  async destroy(): Promise<void> {
    await this.stopAll();
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
  }

  /** Waits until one running member leads and every running member knows it. */
  async waitLeader(timeoutMs = 5000): Promise<RaftNode<number>> {
    let leader: RaftNode<number> | undefined;
    await waitFor(
      () => {
        const nodes = this.running();
        leader = nodes.find((n) => n.status().role === 'leader');
        return leader !== undefined && nodes.every((n) => n.leader === leader!.id);
      },
      'a leader known to every running member',
      timeoutMs,
    );
    return leader!;
  }

  followers(): RaftNode<number>[] {
    return this.running().filter((n) => n.status().role !== 'leader');
  }

  /** Waits until every running member applied up to `index`. */
  async waitApplied(index: number, timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.running().every((n) => n.applied >= index), `every member applied ${index}`, timeoutMs);
  }
}

/** Proposes commands "w<from>" .. "w<to - 1>" through the current leader, all at once. */
export async function proposeRange(c: TestCluster, from: number, to: number): Promise<void> {
  const leader = await c.waitLeader();
  await Promise.all(Array.from({ length: to - from }, (_, i) => leader.propose(bytes(`w${from + i}`))));
}
