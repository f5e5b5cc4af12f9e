// Core throughput: a 3-node cluster in one process committing 1,000,000
// entries of 128 bytes, proposed in batches through RawNode.proposeBatch.
//
// Three RawNodes over MemoryStorage; messages are handed between them
// directly in memory. Every Ready is handled per the contract at the top of
// src/raft/rawNode.ts: send `messages`, persist snapshot/entries/hard state
// into MemoryStorage, send `messagesAfterPersist`, apply `committedEntries`,
// advance(). No ticks are needed once the leader is elected (no heartbeats,
// no elections), so the number measures the replication path only.
//
// Measured: entries/s committed and applied on the leader, from the first
// proposal to the leader applying the last entry. Every node must have
// applied every entry, in order, with the right payload, or the run fails.
//
// Same-run baselines (interleaved with the real runs, so that both see the
// same machine noise):
//   - arrays: allocating the same payloads and Entry objects, and pushing
//     them through plain arrays the way the log and storage do (an unstable
//     array, a slice per Ready, a push per entry into each node's storage,
//     a slice to apply, the same apply loop). The floor for any design that
//     keeps entries as JS objects in arrays.
//   - storage: the same, but through the real MemoryStorage (append, then
//     entries() to read what to apply) on three nodes: shows what
//     MemoryStorage itself costs.
//
// Two modes, each with its own baselines:
//   - retain: each MemoryStorage keeps the whole log, so 1M entries (and
//     their payloads) stay in memory: the setup as stated, and a GC-heavy one.
//   - compact: each node snapshots and compacts its storage every 16,384
//     applied entries, as a long-running server does: the steady state.
// Payloads are 128-byte views into 64 KiB slabs (how Node hands out network
// data and Buffer.allocUnsafe memory); --payload fresh allocates a
// Uint8Array(128) per entry instead, which V8 backs with its own off-heap
// buffer and which dominates the cost.
//
// Timed runs force no GC; the heap is measured in one extra untimed run per
// configuration (full GC before and after), as a forced GC right before a
// run slows it down.
//
// Flags: --entries N (1000000) --runs N (5) --batches 64,256,1024
// --window N (batches in flight, 4) --modes retain,compact
// --payload pooled|fresh (pooled) --no-baselines (for profiling) --json

import {
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type Ready,
  EMPTY_CONF_STATE,
  MemoryStorage,
  RawNode,
  bootstrapState,
  decodeConfChange,
} from '../src/raft/index.js';
import { Random } from '../src/sim/random.js';
import {
  type Summary,
  HeapPeak,
  FlagError,
  runMain,
  checkFlags,
  hasGc,
  cpuMeter,
  loadNow,
  pct,
  gc,
  heapUsed,
  intArg,
  intListArg,
  machine,
  mib,
  now,
  out,
  parseArgs,
  progress,
  range,
  si,
  summarize,
  table,
} from './harness.js';

const PAYLOAD_BYTES = 128;

// ---------------------------------------------------------------------------
// Payloads and the apply check, shared by the cluster and the baselines.

type PayloadKind = 'pooled' | 'fresh';
let payloadKind: PayloadKind = 'pooled';
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabOffset = 0;

/**
 * One payload. 'pooled': a 128-byte view into a 64 KiB slab, as Node's
 * Buffer.allocUnsafe and network reads hand them out. 'fresh': a new
 * Uint8Array(128), which V8 backs with its own off-heap ArrayBuffer (typed
 * arrays over 64 bytes are not stored in the heap), several times slower
 * to allocate and to collect.
 */
function payload(): Uint8Array {
  if (payloadKind === 'fresh') return new Uint8Array(PAYLOAD_BYTES);
  if (slabOffset + PAYLOAD_BYTES > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabOffset = 0;
  }
  const d = slab.subarray(slabOffset, slabOffset + PAYLOAD_BYTES);
  slabOffset += PAYLOAD_BYTES;
  return d;
}

/** A batch of `n` new payloads numbered from `seq`: what a client hands over. */
function makeBatch(seq: number, n: number): Uint8Array[] {
  const batch = new Array<Uint8Array>(n);
  for (let i = 0; i < n; i++) {
    const d = payload();
    const s = seq + i;
    d[0] = s & 0xff;
    d[1] = (s >>> 8) & 0xff;
    d[2] = (s >>> 16) & 0xff;
    d[3] = (s >>> 24) & 0xff;
    batch[i] = d;
  }
  return batch;
}

/** A node's state machine: counts payload entries and checks their order. */
class Applier {
  /** Payload entries applied (the entries the benchmark proposed). */
  count = 0;
  bytes = 0;
  lastIndex = 0;

  apply(e: Entry): void {
    if (e.index !== this.lastIndex + 1 && this.lastIndex !== 0) {
      throw new Error(`applied index ${e.index} after ${this.lastIndex}: out of order`);
    }
    this.lastIndex = e.index;
    const d = e.data;
    if (e.type !== 'normal' || d.byteLength !== PAYLOAD_BYTES) return; // bootstrap conf changes, the leader's empty entry
    const seq = (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0;
    if (seq !== this.count) throw new Error(`applied payload #${seq}, expected #${this.count}`);
    this.count++;
    this.bytes += d.byteLength;
  }
}

// ---------------------------------------------------------------------------
// The cluster

interface Node {
  readonly id: NodeId;
  readonly raw: RawNode;
  readonly storage: MemoryStorage;
  readonly sm: Applier;
  confState: ConfState;
}

/** Compaction: every COMPACT_EVERY applied entries, snapshot and drop the log up to COMPACT_KEEP entries behind. */
const COMPACT_EVERY = 16_384;
const COMPACT_KEEP = 4_096;
const EMPTY = new Uint8Array(0);

class Cluster {
  readonly nodes: Node[] = [];
  /** Messages sent and not yet delivered. */
  outbox: Message[] = [];
  readies = 0;
  messages = 0;

  constructor(
    size: number,
    /** Snapshot and compact each node's MemoryStorage as it applies (steady state) instead of keeping the whole log. */
    readonly compact: boolean,
  ) {
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const rng = new Random(1);
    for (const id of ids) {
      const storage = new MemoryStorage();
      const { entries, hardState } = bootstrapState(ids);
      storage.append(entries);
      storage.setHardState(hardState);
      const raw = new RawNode({ id, electionTick: 10, heartbeatTick: 1, storage, random: rng.fork(`node:${id}`) });
      // The bootstrap entries are stored and committed; each node applies them from its first Ready.
      this.nodes.push({ id, raw, storage, sm: new Applier(), confState: EMPTY_CONF_STATE });
    }
  }

  private node(id: NodeId): Node {
    return this.nodes[id - 1]!;
  }

  /** Handles one Ready per the contract in src/raft/rawNode.ts. */
  private handle(n: Node, rd: Ready): void {
    const outbox = this.outbox;
    // 1. Messages that may leave before the writes are durable.
    for (let i = 0; i < rd.messages.length; i++) outbox.push(rd.messages[i]!);
    // 2. Persist snapshot, entries, hard state (MemoryStorage: durable at once).
    // Followers here never fall behind the leader's compaction, so a snapshot means something broke.
    if (rd.snapshot) throw new Error(`node ${n.id} was sent a snapshot at ${rd.snapshot.metadata.index}`);
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    // 3. Messages that promise the writes are durable.
    for (let i = 0; i < rd.messagesAfterPersist.length; i++) outbox.push(rd.messagesAfterPersist[i]!);
    // 4. Apply.
    const ce = rd.committedEntries;
    for (let i = 0; i < ce.length; i++) {
      const e = ce[i]!;
      if (e.type === 'confChange') n.confState = n.raw.applyConfChange(decodeConfChange(e.data));
      n.sm.apply(e);
    }
    // 5. Advance.
    n.raw.advance(rd);
    this.readies++;
    // What an application does between Readies: snapshot the state machine and compact the log behind it.
    if (this.compact) {
      const upTo = n.sm.lastIndex - COMPACT_KEEP;
      if (upTo - n.storage.snapshotIndex() >= COMPACT_EVERY) {
        n.storage.createSnapshot(upTo, n.confState, EMPTY);
        n.storage.compact(upTo);
      }
    }
  }

  /** One round: every node handles its Ready (if any), then every queued message is delivered. */
  round(): boolean {
    let busy = false;
    for (const n of this.nodes) {
      if (n.raw.hasReady()) {
        this.handle(n, n.raw.ready());
        busy = true;
      }
    }
    const q = this.outbox;
    if (q.length > 0) {
      this.outbox = [];
      this.messages += q.length;
      for (let i = 0; i < q.length; i++) {
        const m = q[i]!;
        this.node(m.to).raw.step(m);
      }
      busy = true;
    }
    return busy;
  }

  /** Rounds until nothing moves. */
  settle(): void {
    for (let i = 0; this.round(); i++) {
      if (i > 10_000) throw new Error('cluster does not settle');
    }
  }

  elect(id: NodeId): void {
    // Apply the bootstrap configuration first: a node knows its voters only once applied.
    this.settle();
    this.node(id).raw.campaign();
    this.settle();
    const r = this.node(id).raw.raft;
    if (r.state !== 'leader') throw new Error(`node ${id} did not become leader (it is ${r.state})`);
  }
}

type Mode = 'retain' | 'compact';

function cpuCell(s: Summary): string {
  return `${pct(s.min)}–${pct(s.max)}`;
}

interface CoreRun {
  readonly ms: number;
  readonly entriesPerSec: number;
  readonly readies: number;
  readonly messages: number;
  readonly peakHeap: number;
  /** Heap after a full GC with the cluster (and its logs) still alive. */
  readonly retainedHeap: number;
  /** CPU time over wall time during the timed loop (see cpuMeter). */
  readonly cpu: number;
}

/**
 * One run. With `heap`, a full GC before and after measures the heap. Timed
 * runs do without: a forced full GC just before a run makes it up to ~20%
 * slower (probably because V8 shrinks its young generation, which then has
 * to grow again), so timing and heap come from separate runs.
 */
function runCore(total: number, batch: number, window: number, mode: Mode, heap = false): CoreRun {
  if (heap) gc();
  const base = heapUsed();
  const c = new Cluster(3, mode === 'compact');
  c.elect(1);
  const leader = c.nodes[0]!;
  const raw = leader.raw;
  const peak = new HeapPeak();
  c.readies = 0;
  c.messages = 0;
  const maxAhead = batch * window;
  let proposed = 0;
  let rounds = 0;
  const meter = cpuMeter();
  const t0 = now();
  while (leader.sm.count < total) {
    // Keep up to `window` batches proposed and not yet applied on the leader.
    if (proposed < total && proposed - leader.sm.count < maxAhead) {
      const n = Math.min(batch, total - proposed);
      raw.proposeBatch(makeBatch(proposed, n));
      proposed += n;
    }
    if (!c.round() && proposed >= total) throw new Error(`stalled at ${leader.sm.count} of ${total} applied`);
    if ((++rounds & 63) === 0) peak.sample();
  }
  const ms = now() - t0;
  const cpu = meter.stop();
  // Let the followers apply the last commit index, then check everyone.
  c.settle();
  peak.sample();
  const last = leader.storage.lastIndex();
  for (const n of c.nodes) {
    if (n.sm.count !== total || n.sm.bytes !== total * PAYLOAD_BYTES) {
      throw new Error(`node ${n.id} applied ${n.sm.count} of ${total} entries`);
    }
    if (n.storage.lastIndex() !== last || n.sm.lastIndex !== last) {
      throw new Error(`node ${n.id}: log ends at ${n.storage.lastIndex()}, applied ${n.sm.lastIndex}; leader's ends at ${last}`);
    }
  }
  if (heap) gc();
  const retained = heapUsed() - base;
  // Keep the cluster alive until the measurement above.
  if (c.nodes.length !== 3) throw new Error('unreachable');
  return {
    ms,
    entriesPerSec: (total / ms) * 1000,
    readies: c.readies,
    messages: c.messages,
    peakHeap: peak.peak - base,
    retainedHeap: retained,
    cpu,
  };
}

// ---------------------------------------------------------------------------
// Baselines

/** Plain arrays: what the log, the Ready and three storages do with each entry, and nothing else. */
function runArrays(total: number, batch: number, mode: Mode): { rate: number; cpu: number } {
  const stores: Entry[][] = [[], [], []];
  const sms = [new Applier(), new Applier(), new Applier()];
  let unstable: Entry[] = [];
  const meter = cpuMeter();
  const t0 = now();
  for (let seq = 0; seq < total; seq += batch) {
    const n = Math.min(batch, total - seq);
    const data = makeBatch(seq, n);
    // appendEntry: an Entry object per proposal, appended to the unstable log.
    const first = seq + 1;
    for (let i = 0; i < n; i++) unstable.push({ term: 2, index: first + i, type: 'normal', data: data[i]! });
    // Ready.entries: a slice of the unstable log.
    const ready = unstable.slice();
    // Each node persists (a push per entry), then reads the committed range back and applies it.
    for (let k = 0; k < 3; k++) {
      let s = stores[k]!;
      for (let i = 0; i < ready.length; i++) s.push(ready[i]!);
      const committed = s.slice(s.length - n);
      const sm = sms[k]!;
      for (let i = 0; i < committed.length; i++) sm.apply(committed[i]!);
      if (mode === 'compact' && s.length >= COMPACT_EVERY + COMPACT_KEEP) stores[k] = s = s.slice(s.length - COMPACT_KEEP);
    }
    // stableTo: the unstable log is emptied.
    unstable = [];
  }
  const ms = now() - t0;
  const cpu = meter.stop();
  for (const sm of sms) if (sm.count !== total) throw new Error('baseline did not apply everything');
  return { rate: (total / ms) * 1000, cpu };
}

/** The same through MemoryStorage on three nodes (append, then entries() for what to apply). */
function runStorage(total: number, batch: number, mode: Mode): { rate: number; cpu: number } {
  const stores = [new MemoryStorage(), new MemoryStorage(), new MemoryStorage()];
  const sms = [new Applier(), new Applier(), new Applier()];
  const meter = cpuMeter();
  const t0 = now();
  for (let seq = 0; seq < total; seq += batch) {
    const n = Math.min(batch, total - seq);
    const data = makeBatch(seq, n);
    const first = seq + 1;
    const ents = new Array<Entry>(n);
    for (let i = 0; i < n; i++) ents[i] = { term: 2, index: first + i, type: 'normal', data: data[i]! };
    for (let k = 0; k < 3; k++) {
      const s = stores[k]!;
      s.append(ents);
      const committed = s.entries(first, first + n, 64 * 1024 * 1024);
      const sm = sms[k]!;
      for (let i = 0; i < committed.length; i++) sm.apply(committed[i]!);
      if (mode === 'compact') {
        const upTo = sm.lastIndex - COMPACT_KEEP;
        if (upTo - s.snapshotIndex() >= COMPACT_EVERY) {
          s.createSnapshot(upTo, EMPTY_CONF_STATE, EMPTY);
          s.compact(upTo);
        }
      }
    }
  }
  const ms = now() - t0;
  const cpu = meter.stop();
  for (const sm of sms) if (sm.count !== total) throw new Error('storage baseline did not apply everything');
  return { rate: (total / ms) * 1000, cpu };
}

// ---------------------------------------------------------------------------

interface BatchResult {
  readonly mode: Mode;
  readonly batch: number;
  readonly rate: Summary;
  readonly ratioArrays: Summary;
  readonly ratioStorage: Summary;
  readonly readiesPerRun: number;
  readonly messagesPerRun: number;
  /** From the separate heap run (see runCore). */
  readonly peakHeap: number;
  readonly retainedHeap: number;
  readonly cpu: Summary;
}

interface ModeResult {
  readonly mode: Mode;
  readonly arrays: Summary;
  readonly storage: Summary;
  readonly arraysCpu: Summary;
  readonly storageCpu: Summary;
  readonly results: BatchResult[];
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  checkFlags(args, ['entries', 'runs', 'batches', 'window', 'modes', 'payload', 'no-baselines', 'json']);
  const total = intArg(args, 'entries', 1_000_000);
  const runs = intArg(args, 'runs', 5);
  const batches = intListArg(args, 'batches', [64, 256, 1024]);
  const window = intArg(args, 'window', 4);
  const modeArg = args.get('modes') ?? 'retain,compact';
  if (modeArg === true) throw new FlagError('--modes needs retain, compact or both');
  const modes = modeArg.split(',').map((m) => {
    if (m !== 'retain' && m !== 'compact') throw new FlagError(`--modes: unknown mode "${m}" (retain, compact)`);
    return m as Mode;
  });
  const pk = args.get('payload') ?? 'pooled';
  if (pk !== 'pooled' && pk !== 'fresh') throw new FlagError('--payload must be pooled or fresh');
  payloadKind = pk;
  const baselineBatch = 256;
  // For profiling the core alone: skip the baselines (no ratios then).
  const baselines = args.get('no-baselines') !== true;

  // With --json, stdout carries only the JSON; the header goes to stderr.
  const head = args.get('json') === true ? progress : out;
  head(`core throughput: 3 nodes in one process, ${si(total)} entries of ${PAYLOAD_BYTES} B, ${runs} runs`);
  head(`  ${machine()}`);
  head(
    `  proposals through RawNode.proposeBatch, up to ${window} batches in flight; ${payloadKind} payloads; ` +
      `baselines use batches of ${baselineBatch}`,
  );

  // Warm-up (JIT): a short run of each kind, not measured.
  const warm = Math.min(total, 100_000);
  progress(`warm-up (${si(warm)} entries each)`);
  for (const mode of modes) {
    for (const b of batches) runCore(warm, b, window, mode);
    if (baselines) {
      runArrays(warm, baselineBatch, mode);
      runStorage(warm, baselineBatch, mode);
    }
  }

  const key = (mode: Mode, b: number) => `${mode}/${b}`;
  const arrays = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  const storage = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  const arraysCpu = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  const storageCpu = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  const core = new Map<string, CoreRun[]>();
  const ratiosA = new Map<string, number[]>();
  const ratiosS = new Map<string, number[]>();
  for (const m of modes) {
    for (const b of batches) {
      core.set(key(m, b), []);
      ratiosA.set(key(m, b), []);
      ratiosS.set(key(m, b), []);
    }
  }
  for (let r = 0; r < runs; r++) {
    for (const mode of modes) {
      // Baselines and the real runs interleave, so each ratio compares runs taken moments apart.
      const none = { rate: NaN, cpu: NaN };
      const ar = baselines ? runArrays(total, baselineBatch, mode) : none;
      const sr = baselines ? runStorage(total, baselineBatch, mode) : none;
      const a = ar.rate;
      const s = sr.rate;
      arraysCpu.get(mode)!.push(ar.cpu);
      storageCpu.get(mode)!.push(sr.cpu);
      arrays.get(mode)!.push(a);
      storage.get(mode)!.push(s);
      const line = [`run ${r + 1}/${runs} ${mode}: arrays ${si(a)}/s, storage ${si(s)}/s`];
      for (const b of batches) {
        const res = runCore(total, b, window, mode);
        core.get(key(mode, b))!.push(res);
        ratiosA.get(key(mode, b))!.push(res.entriesPerSec / a);
        ratiosS.get(key(mode, b))!.push(res.entriesPerSec / s);
        line.push(`batch ${b} ${si(res.entriesPerSec)}/s`);
      }
      progress(line.join(', '));
    }
  }

  // Heap: one more run of each kind, with a full GC before and after (not timed: see runCore).
  const heapRuns = new Map<string, CoreRun>();
  if (hasGc()) {
    progress('heap runs');
    for (const mode of modes) for (const b of batches) heapRuns.set(key(mode, b), runCore(total, b, window, mode, true));
  }
  const noHeap: CoreRun = { ms: NaN, entriesPerSec: NaN, readies: NaN, messages: NaN, peakHeap: NaN, retainedHeap: NaN, cpu: NaN };
  for (const mode of modes) for (const b of batches) if (!heapRuns.has(key(mode, b))) heapRuns.set(key(mode, b), noHeap);
  const byMode: ModeResult[] = modes.map((mode) => ({
    mode,
    arrays: summarize(arrays.get(mode)!),
    storage: summarize(storage.get(mode)!),
    arraysCpu: summarize(arraysCpu.get(mode)!),
    storageCpu: summarize(storageCpu.get(mode)!),
    results: batches.map((b) => {
      const rs = core.get(key(mode, b))!;
      return {
        mode,
        batch: b,
        rate: summarize(rs.map((x) => x.entriesPerSec)),
        ratioArrays: summarize(ratiosA.get(key(mode, b))!),
        ratioStorage: summarize(ratiosS.get(key(mode, b))!),
        readiesPerRun: rs[0]!.readies,
        messagesPerRun: rs[0]!.messages,
        peakHeap: heapRuns.get(key(mode, b))!.peakHeap,
        retainedHeap: heapRuns.get(key(mode, b))!.retainedHeap,
        cpu: summarize(rs.map((x) => x.cpu)),
      };
    }),
  }));

  if (args.get('json') === true) {
    out(JSON.stringify({ machine: machine(), total, runs, window, payload: payloadKind, modes: byMode }, null, 2));
    return;
  }
  const about: Record<Mode, string> = {
    retain: 'each MemoryStorage keeps the whole log (1M entries stay in memory)',
    compact: `each node snapshots and compacts its MemoryStorage every ${si(COMPACT_EVERY)} applied entries (steady state)`,
  };
  for (const m of byMode) {
    out('');
    out(`mode ${m.mode}: ${about[m.mode]}`);
    out(
      table(
        ['', 'entries/s median (min–max)', 'vs arrays', 'vs storage', 'Readies', 'messages', 'peak heap', 'retained heap', 'cpu/wall'],
        [
          ...(baselines
            ? [
                ['baseline: arrays', range(m.arrays), '100%', '', '', '', '', '', cpuCell(m.arraysCpu)],
                [
                  'baseline: MemoryStorage',
                  range(m.storage),
                  pct(m.storage.median / m.arrays.median),
                  '100%',
                  '',
                  '',
                  '',
                  '',
                  cpuCell(m.storageCpu),
                ],
              ]
            : []),
          ...m.results.map((r) => [
            `raft, batch ${r.batch}`,
            range(r.rate),
            `${pct(r.ratioArrays.median)} (${pct(r.ratioArrays.min)}–${pct(r.ratioArrays.max)})`,
            pct(r.ratioStorage.median),
            si(r.readiesPerRun),
            si(r.messagesPerRun),
            Number.isNaN(r.peakHeap) ? '–' : mib(r.peakHeap),
            Number.isNaN(r.retainedHeap) ? '–' : mib(r.retainedHeap),
            cpuCell(r.cpu),
          ]),
        ],
      ),
    );
  }
  out('vs arrays / vs storage: median (min–max) over runs of raft entries/s divided by the baseline measured just before it.');
  out('Readies and messages: in one run, all three nodes together.');
  out(
    'peak heap: highest V8 heap sampled during a separate untimed run, above the heap after a full GC before it; ' +
      'retained: after a full GC at its end, cluster alive (needs --expose-gc, which npm run bench passes).',
  );
  out('cpu/wall: process CPU time over wall time in the timed loop, lowest–highest run (well below 100%: the run waited for a core).');
  out(loadNow());
  out('');
  for (const m of byMode) {
    const best = m.results.reduce((a, b) => (b.rate.median > a.rate.median ? b : a));
    out(
      `goal >= 1,000,000 entries/s (${m.mode}): ${best.rate.median >= 1e6 ? 'MET' : 'NOT MET'}: best median ` +
        `${si(best.rate.median)}/s at batch ${best.batch} (${(best.rate.median / 1e6).toFixed(2)}x the goal` +
        (baselines ? `; the arrays baseline itself does ${si(m.arrays.median)}/s)` : ')'),
    );
  }
}

runMain(main);
