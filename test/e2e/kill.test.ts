// A real-process crash test (issue 4, "Crash-consistency tests"): a child
// process (fixtures/appender.ts, compiled, using the compiled storage of
// dist/src) appends to DiskStorage on the real disk, fdatasync and all, and
// says on stdout what it was told is durable. The parent SIGKILLs it at a
// random moment -- while node starts, during recovery, in the middle of
// appending, rolling over segments, snapshotting, compacting -- then checks,
// by recovering a copy of the directory itself:
//  - every entry the child reported persisted is there, byte for byte;
//  - the hard state is not behind the last one reported (term, commit);
//  - nothing that was never written appears: every entry holds exactly the
//    data derived from its index and term, the snapshot the data derived
//    from its index and term;
// and restarts the child on the same directory, which recovers it again and
// goes on (first overwriting a random unacknowledged suffix in a new term),
// for KILL_ROUNDS rounds (default 15).
//
// A process kill loses nothing from the page cache, so some rounds also cut
// the directory as a power cut could: after the kill, everything written
// after the last acknowledged batch is lost from a random 512-byte sector
// on (a torn write) -- recovery must cut such a torn tail off, and the
// child must append over it.
//
// No assertion depends on timing: waits have generous timeouts that only
// stop a hung child, and the kill moments are random but every outcome is
// judged by what the child had reported. KILL_SEED picks the random choices.
// `npm run soak:kill` runs many rounds (scripts/kill-soak.mjs).

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as nodeFs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import type { HardState } from '../../src/raft/types.js';
import { EMPTY_HARD_STATE } from '../../src/raft/types.js';
import { Random } from '../../src/sim/random.js';
import { DiskStorage } from '../../src/storage/diskStorage.js';
import { StorageError } from '../../src/storage/errors.js';
import { NodeFileSystem } from '../../src/storage/nodeFs.js';
import { CLUSTER, MEMBER, SEGMENT_BYTES, entryData, snapshotData } from './fixtures/payload.js';

const ROUNDS = Number(process.env.KILL_ROUNDS ?? 15);
const SEED = Number(process.env.KILL_SEED ?? 1);
const APPENDER = fileURLToPath(new URL('./fixtures/appender.js', import.meta.url));
/** Only for a child that hangs or never starts: far beyond anything a slow machine needs. */
const PATIENCE_MS = 60_000;

const realFs = new NodeFileSystem();
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// The child

interface Child {
  readonly proc: ChildProcess;
  /** Complete lines received so far. */
  readonly lines: string[];
  stderr: string;
  /** Resolves when the process has exited and its output is drained. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when `count` lines starting with `prefix` have arrived (true), or the child exits or time runs out (false). */
  waitFor(prefix: string, count?: number): Promise<boolean>;
}

function startChild(dir: string, seed: number, acked: number, ...extra: string[]): Child {
  const proc = spawn(process.execPath, [APPENDER, dir, String(seed), String(acked), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let waiters: { prefix: string; count: number; resolve: (ok: boolean) => void }[] = [];
  const wake = (exitedNow: boolean) => {
    waiters = waiters.filter((w) => {
      const ok = lines.filter((l) => l.startsWith(w.prefix)).length >= w.count;
      if (ok || exitedNow) w.resolve(ok);
      return !(ok || exitedNow);
    });
  };
  const child: Child = {
    proc,
    lines,
    stderr: '',
    exited: new Promise((resolve) => proc.on('close', (code, signal) => {
      wake(true);
      resolve({ code, signal });
    })),
    waitFor(prefix, count = 1) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), PATIENCE_MS);
        waiters.push({ prefix, count, resolve: (ok) => (clearTimeout(timer), resolve(ok)) });
        wake(proc.exitCode !== null || proc.signalCode !== null);
      });
    },
  };
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    // Only whole lines count: a line cut by the kill says nothing.
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    wake(false);
  });
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (chunk: string) => (child.stderr += chunk));
  return child;
}

// ---------------------------------------------------------------------------
// What the parent knows

interface Model {
  /** The last index reported persisted, and the term of every entry up to it (termOf[i]). */
  acked: number;
  termOf: number[];
  /** The newest hard state reported persisted. */
  hs: HardState;
  /** What the last verification recovered above `acked`: index -> term (the child keeps these below its `from`). */
  recoveredAbove: Map<number, number>;
  /** The last index the last verification recovered. */
  recoveredLast: number;
}

/** Reads the child's lines into the model; returns how many batches it acknowledged. */
function absorb(m: Model, lines: readonly string[], round: number): { acks: number; started: boolean; snapshots: number } {
  let from = 0;
  let term = 0;
  let carried = false;
  let acks = 0;
  let snapshots = 0;
  for (const line of lines) {
    const f = line.split(' ');
    const n = f.slice(1).map(Number);
    if (f[0] === 'start') {
      // The child recovered the very bytes the parent's last verification
      // recovered (a copy of them): recovery is deterministic.
      assert.equal(n[0], m.recoveredLast, `round ${round}: the child recovered up to ${n[0]}, the parent's check of the same bytes up to ${m.recoveredLast}`);
      term = n[1]!;
      from = n[2]!;
      assert.ok(from > m.acked, `round ${round}: the child rewrites from ${from}, at or below acknowledged ${m.acked}`);
    } else if (f[0] === 'persisted') {
      assert.ok(from > 0, `round ${round}: "persisted" before "start"`);
      const [last, hsTerm, commit] = n as [number, number, number];
      if (!carried) {
        // Entries the child kept below `from` are acknowledged now too.
        for (let i = m.acked + 1; i < from; i++) {
          const t = m.recoveredAbove.get(i);
          assert.ok(t !== undefined, `round ${round}: the child kept entry ${i}, which the parent did not recover`);
          m.termOf[i] = t;
        }
        carried = true;
      }
      assert.ok(last >= m.acked, `round ${round}: persisted ${last} after ${m.acked}`);
      for (let i = Math.max(from, m.acked + 1); i <= last; i++) m.termOf[i] = term;
      m.acked = last;
      m.hs = { term: hsTerm, vote: MEMBER, commit };
      acks++;
    } else if (f[0] === 'snapshot') {
      snapshots++;
    } else if (line !== '') {
      assert.fail(`round ${round}: unexpected line from the child: ${line}`);
    }
  }
  return { acks, started: from > 0, snapshots };
}

// ---------------------------------------------------------------------------
// A power cut's torn write, emulated after the kill

interface Frame {
  offset: number;
  /** Just past the frame, padding included. */
  next: number;
  type: number;
  index?: number;
}

/** The frames of a segment (crc | length | payload | padding to 8; see src/storage/record.ts). */
function frames(bytes: Uint8Array): Frame[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Frame[] = [];
  let at = 0;
  while (at + 8 <= bytes.length) {
    const length = v.getUint32(at + 4, true);
    if (length === 0 || at + 8 + length > bytes.length) break;
    const type = bytes[at + 8]!;
    const index = type === 2 ? v.getUint32(at + 9, true) + v.getUint32(at + 13, true) * 2 ** 32 : undefined;
    out.push({ offset: at, next: at + 8 + ((length + 7) & ~7), type, ...(index !== undefined ? { index } : {}) });
    at += 8 + ((length + 7) & ~7);
  }
  return out;
}

/**
 * Zeros the last segment from a random sector boundary after the last
 * record that must survive: the acknowledged batches, the segment's header
 * records, a seal (fsynced before anything is written after it), and any
 * snapshot marker (the child may already have deleted segments on the
 * strength of a marker being durable, so losing one would be a loss no
 * power cut causes). Returns the bytes zeroed, or 0.
 */
function tear(dir: string, m: Model, rng: Random): number {
  const walDir = join(dir, 'wal');
  const segs = realFs.list(walDir).filter((n) => n.endsWith('.wal'));
  if (segs.length === 0) return 0;
  const path = join(walDir, segs.at(-1)!);
  const bytes = nodeFs.readFileSync(path);
  const fs = frames(bytes);
  let keep = 0;
  for (let k = 0; k < fs.length; k++) {
    const f = fs[k]!;
    if (f.type !== 2 && keep === fs[k - 1]?.next) keep = f.next; // the header run, and hard states right after a kept entry
    if (k === 0 || f.type === 4 || f.type === 5 || (f.type === 2 && f.index! <= m.acked)) keep = f.next;
  }
  const end = fs.at(-1)?.next ?? 0;
  let dirty = bytes.length;
  while (dirty > 0 && bytes[dirty - 1] === 0) dirty--;
  if (Math.max(end, dirty) <= keep) return 0;
  // Either whole records are lost, or a write is torn at a sector boundary.
  const sectors: number[] = [];
  for (let s = Math.ceil((keep + 1) / 512) * 512; s < Math.max(end, dirty); s += 512) sectors.push(s);
  const from = sectors.length > 0 && rng.chance(0.7) ? rng.pick(sectors) : keep;
  const to = Math.max(end, dirty);
  bytes.fill(0, from, to);
  nodeFs.writeFileSync(path, bytes);
  return to - from;
}

// ---------------------------------------------------------------------------
// Checking a recovered directory

interface Verified {
  last: number;
  first: number;
  snapshotIndex: number;
  tornTail: number;
  leftovers: number;
}

/** Recovers a copy of `dir` and checks it against what the child reported. */
function verify(dir: string, scratch: string, m: Model, round: number): Verified {
  nodeFs.rmSync(scratch, { recursive: true, force: true });
  nodeFs.cpSync(dir, scratch, { recursive: true });
  let s: DiskStorage;
  try {
    s = DiskStorage.open({ fs: realFs, dir: scratch, clusterId: CLUSTER, memberId: MEMBER, segmentBytes: SEGMENT_BYTES, cacheBytes: 256 * 1024 });
  } catch (err) {
    if (err instanceof StorageError) throw err; // judged by the caller
    throw new assert.AssertionError({ message: `round ${round}: recovery threw ${(err as Error)?.stack ?? err}` });
  }
  try {
    const where = `round ${round}`;
    const last = s.lastIndex();
    const first = s.firstIndex();
    const snap = s.snapshot();
    const hs = s.initialState().hardState;
    assert.ok(last >= m.acked, `${where}: recovered up to ${last}, but ${m.acked} was reported persisted`);
    assert.ok(hs.term >= m.hs.term, `${where}: hard state term ${hs.term} behind the reported ${m.hs.term}`);
    assert.ok(hs.commit >= m.hs.commit, `${where}: commit ${hs.commit} behind the reported ${m.hs.commit}`);
    assert.ok(hs.commit <= last, `${where}: commit ${hs.commit} beyond the log's end ${last}`);
    assert.ok(first >= 1 && first <= snap.metadata.index + 1, `${where}: the log starts at ${first}, the snapshot is at ${snap.metadata.index}`);
    if (snap.metadata.index > 0) {
      const { index, term } = snap.metadata;
      assert.ok(sameBytes(snap.data, snapshotData(index, term)), `${where}: snapshot ${index} holds data never written`);
      assert.equal(s.term(index), term);
      if (index <= m.acked) assert.equal(term, m.termOf[index], `${where}: snapshot ${index} has term ${term}, entry ${index} was acknowledged in term ${m.termOf[index]}`);
    }
    m.recoveredAbove = new Map();
    let prevTerm = 0;
    const CHUNK = 2048;
    for (let lo = first; lo <= last; lo += CHUNK) {
      const got = s.entries(lo, Math.min(last + 1, lo + CHUNK), Infinity);
      assert.equal(got.length, Math.min(last + 1, lo + CHUNK) - lo);
      for (const e of got) {
        if (e.index <= m.acked) {
          assert.equal(e.term, m.termOf[e.index], `${where}: entry ${e.index} has term ${e.term}, was acknowledged in term ${m.termOf[e.index]}`);
        } else {
          m.recoveredAbove.set(e.index, e.term);
        }
        // Whatever the term, the data is the one written with it: never garbage, never a mix.
        assert.ok(sameBytes(e.data, entryData(e.index, e.term)), `${where}: entry ${e.index}@${e.term} holds data never written`);
        // The child's terms only grow along its log. (An entry's term may be
        // above the recovered hard state's: a batch's entries go before its
        // hard state, and a torn write can keep the first without the second.)
        assert.ok(e.term >= prevTerm, `${where}: entry ${e.index} in term ${e.term} after one in term ${prevTerm}`);
        prevTerm = e.term;
      }
    }
    m.recoveredLast = last;
    const r = s.recovery;
    return { last, first, snapshotIndex: snap.metadata.index, tornTail: r.tornTail?.bytes ?? 0, leftovers: r.leftovers.length };
  } finally {
    s.close();
  }
}

// ---------------------------------------------------------------------------

describe('SIGKILL of a process appending to the real disk', () => {
  it(`every entry reported persisted survives ${ROUNDS} kills and restarts (seed ${SEED})`, { timeout: Math.max(180_000, ROUNDS * 30_000) }, async () => {
    assert.ok(nodeFs.existsSync(APPENDER), `${APPENDER} is built`);
    const root = nodeFs.mkdtempSync(join(tmpdir(), 'raftkv-kill-'));
    const scratch = join(root, 'check');
    const dir = join(root, 'data');
    nodeFs.mkdirSync(dir); // a child killed before its storage made the directory leaves nothing to copy
    const m: Model = { acked: 0, termOf: [0], hs: EMPTY_HARD_STATE, recoveredAbove: new Map(), recoveredLast: 0 };
    const stats = { acks: 0, started: 0, snapshots: 0, torn: 0, tornReported: 0, leftovers: 0, maxIndex: 0, kills: new Map<string, number>() };
    const started = Date.now();
    let passed = false;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        // Each round's choices come from its own stream, so a seed replays
        // the same choices whatever earlier rounds did.
        const rng = new Random(SEED * 100_003 + round).fork('parent');
        const ackedBefore = m.acked;
        const child = startChild(dir, SEED * 100_003 + round, ackedBefore);
        // Where the kill lands: mostly while appending; sometimes as soon as
        // recovery is done; sometimes at any moment after the spawn (node
        // starting, modules loading, recovery running).
        const mode = rng.weighted<string>([
          ['while appending', 6],
          ['just after recovery', 2],
          ['any time after spawn', 2],
        ]);
        stats.kills.set(mode, (stats.kills.get(mode) ?? 0) + 1);
        if (mode === 'any time after spawn') {
          await sleep(rng.range(1, 800));
        } else if (await child.waitFor('start ')) {
          if (mode === 'while appending') {
            await child.waitFor('persisted ');
            await sleep(rng.range(2, 300));
          } else {
            await sleep(rng.range(0, 10));
          }
        }
        const ranOut = child.proc.exitCode !== null;
        child.proc.kill('SIGKILL');
        const { signal, code } = await child.exited;
        if (ranOut || signal !== 'SIGKILL') {
          // The child stopped by itself: a crash in recovery or in saving.
          assert.fail(
            `round ${round}: the child (appender.js ${dir} ${SEED * 100_003 + round} ${ackedBefore}) exited by itself (code ${code}, signal ${signal}) ` +
              `after printing ${JSON.stringify(child.lines.slice(0, 3))}...:\n${child.stderr}`,
          );
        }
        const a = absorb(m, child.lines, round);
        stats.acks += a.acks;
        stats.snapshots += a.snapshots;
        if (a.started) stats.started++;
        stats.maxIndex = Math.max(stats.maxIndex, m.acked);
        if (rng.chance(0.3) && tear(dir, m, rng) > 0) stats.torn++;
        try {
          const v = verify(dir, scratch, m, round);
          if (v.tornTail > 0) stats.tornReported++;
          stats.leftovers += v.leftovers;
        } catch (err) {
          if (err instanceof StorageError) assert.fail(`round ${round}: recovery refused the log after a kill: ${err.name}: ${err.message}`);
          throw err;
        }
      }
      passed = true;
    } finally {
      // A failing run leaves its directory for a post-mortem.
      if (passed) nodeFs.rmSync(root, { recursive: true, force: true });
      else console.log(`kill test: the data directory is kept in ${dir}`);
    }
    const kills = [...stats.kills].map(([k, n]) => `${n} ${k}`).join(', ');
    console.log(
      `kill test: ${ROUNDS} rounds in ${((Date.now() - started) / 1000).toFixed(1)} s (kills: ${kills}); ` +
        `${stats.started} children got past recovery; ${stats.acks} batches acknowledged, up to index ${stats.maxIndex}; ` +
        `${stats.snapshots} snapshots; ${stats.torn} torn tails emulated, ${stats.tornReported} torn tails cut by recovery; ` +
        `${stats.leftovers} leftover files removed by recovery`,
    );
    if (stats.kills.has('while appending')) {
      assert.ok(stats.acks > 0, 'the child acknowledged something (every "while appending" round waits for an acknowledgement)');
    }
  });

  it(
    'saves issued inside a save callback, as a Raft loop issues them, go out in order (group commit)',
    { timeout: 180_000 },
    async () => {
      // The appender in its `nested` style: the next saves go out from
      // inside the previous save's callback. (Once, a second flush started
      // while the first fdatasync ran, the two completed in either order,
      // and the log index threw "entry N after M" from an fs callback.)
      const root = nodeFs.mkdtempSync(join(tmpdir(), 'raftkv-nested-'));
      try {
        const child = startChild(join(root, 'data'), 7, 0, 'nested');
        const ran = await child.waitFor('persisted ', 500);
        child.proc.kill('SIGKILL');
        const { signal, code } = await child.exited;
        assert.equal(signal, 'SIGKILL', `the child died by itself (code ${code}) after ${child.lines.length} lines:\n${child.stderr}`);
        assert.ok(ran, 'the child acknowledged 500 batches');
      } finally {
        nodeFs.rmSync(root, { recursive: true, force: true });
      }
    },
  );
});
