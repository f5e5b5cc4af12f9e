// What a simulation run does, and the "swarm": like TigerBeetle's VOPR, the
// seed picks the whole scenario (fault rates, delays, disk latency, clock
// skew, workload) within what the options allow, so one seed reproduces the
// run exactly and a sweep of seeds explores many kinds of weather.

import type { ReadOnlyOption } from '../raft/readOnly.js';
import type { Message } from '../raft/types.js';
import type { StorageParams } from './node.js';
import { Random } from './random.js';
import type { TraceRecord } from './trace.js';

/** Virtual microseconds per base tick (the simulator's unit of time). */
export const TICK_US = 10_000;

/** Faults stop and everything heals at this fraction of the run. */
export const HEAL_AT = 0.6;

export const FAULT_KINDS = [
  /** Messages are lost. */
  'loss',
  /** Messages are delivered twice. */
  'duplicate',
  /** Message delays vary widely, so messages overtake each other. */
  'reorder',
  /** Links are cut: symmetric splits, one-way cuts, partially isolated nodes. */
  'partition',
  /** Nodes crash (losing unpersisted state) and restart. */
  'crash',
  /** A crash during a disk write keeps only a prefix of it. */
  'torn',
  /** Nodes' clocks tick at slightly different rates. */
  'skew',
  /** Disk writes take time, during which the node keeps working (pipelining). */
  'disk',
  /** Members are added, removed, promoted and demoted, singly or through joint consensus. */
  'membership',
  /** Leadership is transferred between voters. */
  'transfer',
  /** Nodes snapshot and compact their logs, so lagging followers need InstallSnapshot. */
  'snapshot',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SimOptions {
  readonly seed: number;
  /** Nodes in the pool (1..9). Undefined: the seed picks. */
  readonly nodes?: number;
  /** Length of the run in base ticks. */
  readonly ticks: number;
  /**
   * The kinds of fault allowed. With `swarm` (the default) each seed turns
   * on a random subset of them; without, all of them are always on.
   */
  readonly faults: ReadonlySet<FaultKind>;
  readonly swarm?: boolean;
  /** Concurrent clients. Undefined: the seed picks. */
  readonly clients?: number;
  /** Keys the clients use (few keys, so operations contend). Undefined: the seed picks. */
  readonly keys?: number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  /** How reads are confirmed; undefined: the seed picks (mostly ReadIndex). */
  readonly readOnly?: ReadOnlyOption;
  /** Events kept for a failure report. */
  readonly traceBuffer: number;
  /** Called with every event as it happens (the --trace flag; the terminal demo). */
  readonly onTrace?: (record: TraceRecord) => void;
  /** Record the client history and check linearizability at the end. Default true. */
  readonly checkLinearizability?: boolean;
  /**
   * Where nodes keep their durable state: 'wal' (the default), the
   * production write-ahead log and snapshot files over a crashable in-memory
   * disk; or 'memory', a MemoryStorage (faster, and what runs where the
   * native checksum is not available).
   */
  readonly storage?: 'wal' | 'memory';
  /**
   * Interactive mode (the visualiser's sandbox, src/sim/sandbox.ts): no
   * nemesis, no random workload, no scheduled heal or end of the clients,
   * and no end of the run. Faults, requests and membership changes come
   * from outside, through the Simulator's public methods.
   */
  readonly interactive?: boolean;
  /** Replaces what the seed would pick (the sandbox fixes its own weather and timing). */
  readonly swarmOverrides?: Partial<Swarm>;
  /** Called for every message a node sends: the times (µs) it will arrive, or none when the network drops it. */
  readonly onSend?: (m: Message, deliverAt: readonly number[]) => void;
}

export const DEFAULT_OPTIONS: Omit<SimOptions, 'seed'> = {
  ticks: 2000,
  faults: new Set(FAULT_KINDS),
  electionTick: 10,
  heartbeatTick: 1,
  traceBuffer: 200,
};

export function parseFaults(spec: string): Set<FaultKind> {
  if (spec === 'all') return new Set(FAULT_KINDS);
  if (spec === 'none' || spec === '') return new Set();
  const out = new Set<FaultKind>();
  for (const raw of spec.split(',')) {
    const f = raw.trim();
    if (!(FAULT_KINDS as readonly string[]).includes(f)) {
      throw new RangeError(`unknown fault "${f}"; expected all, none, or a list of: ${FAULT_KINDS.join(', ')}`);
    }
    out.add(f as FaultKind);
  }
  return out;
}

export function describeFaults(faults: ReadonlySet<FaultKind>): string {
  if (faults.size === FAULT_KINDS.length) return 'all';
  if (faults.size === 0) return 'none';
  return FAULT_KINDS.filter((f) => faults.has(f)).join(',');
}

/** Actions the nemesis can take during the fault phase. */
export type NemesisAction =
  | 'crash'
  /** Crash whichever node leads: bugs around leader change live here. */
  | 'crashLeader'
  | 'restart'
  | 'partition'
  | 'heal'
  | 'membership'
  | 'transfer'
  | 'snapshot';

/** The concrete scenario a seed picks. Everything is in virtual microseconds or ticks. */
export interface Swarm {
  readonly nodes: number;
  /** The kinds of fault this seed turned on (a subset of those allowed). */
  readonly faults: ReadonlySet<FaultKind>;
  /** Nodes 1..initialVoters start as the cluster; the rest start empty and may be added. */
  readonly initialVoters: number;
  readonly minDelayUs: number;
  readonly maxDelayUs: number;
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly diskMinUs: number;
  readonly diskMaxUs: number;
  readonly tornWrites: boolean;
  /** Each node's tick period is TICK_US * (1 + u), u uniform in [-skew, skew]. */
  readonly skew: number;
  /** Mean ticks between nemesis actions. */
  readonly nemesisMeanTicks: number;
  /**
   * Correlated faults, the dangerous weather around leader changes:
   * the chance that a newly elected leader crashes within a few ticks
   * (and comes back later), as in the paper's Figure 8...
   */
  readonly leaderFlapRate: number;
  /** ...and the chance that a membership change is followed shortly by its leader being cut off or crashed. */
  readonly confChangeFaultRate: number;
  readonly nemesisWeights: ReadonlyArray<readonly [NemesisAction, number]>;
  /** Applied entries between automatic snapshots (0: never). */
  readonly snapshotInterval: number;
  /** Entries kept below a snapshot when compacting. */
  readonly compactionMargin: number;
  /** Faults stop and everything heals at this tick; then liveness is required. */
  readonly healAtTick: number;
  /** Clients issue no new operations after this tick, so every one can finish. */
  readonly clientsStopAtTick: number;
  readonly clients: number;
  readonly keys: number;
  /** Ticks a client waits for an answer before retrying elsewhere. */
  readonly clientTimeoutTicks: number;
  /** Mean ticks a client thinks between operations. */
  readonly clientThinkTicks: number;
  readonly readOnly: ReadOnlyOption;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  /** Bytes of entries per append (1: one entry per message, so entries are acknowledged one by one). */
  readonly maxSizePerMsg: number;
  /** Append messages in flight per follower. */
  readonly maxInflightMsgs: number;
  /** Bytes of entries in flight per follower (0: no byte limit). */
  readonly maxInflightBytes: number;
  /** Log time after which an idle client session expires. */
  readonly sessionTtlUs: number;
  readonly storage: StorageParams;
}

/**
 * Derives the scenario from the seed. The choices lean towards harsh
 * weather because faults are the normal case, but each seed draws its own
 * mix so that a sweep also covers calm runs, and runs where one kind of
 * fault dominates.
 */
export function pickSwarm(o: SimOptions): Swarm {
  // Each choice draws from its own stream, so that turning one kind of fault
  // off (when shrinking a failure) leaves the other choices as they were.
  const root = new Random(o.seed).fork('swarm');
  // Swarm testing (Groce et al., as in TigerBeetle's VOPR): each seed turns
  // on a random subset of the allowed kinds of fault, so that some runs are
  // all partitions, some all crashes, some all reconfiguration. A uniform
  // mix of everything rarely lets one kind of weather last long enough to
  // reach its corner cases (e.g. two leaders on either side of a long
  // partition). With a single kind allowed, it is always on.
  const active = new Set<FaultKind>();
  for (const f of FAULT_KINDS) {
    if (o.faults.has(f) && (o.swarm === false || o.faults.size === 1 || root.fork(`swarm:${f}`).chance(0.6))) active.add(f);
  }
  const has = (f: FaultKind) => active.has(f);
  const nodes = o.nodes ?? root.fork('nodes').weighted<number>([[1, 1], [2, 1], [3, 6], [4, 2], [5, 5], [6, 1], [7, 2], [9, 1]]);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) throw new RangeError(`nodes must be 1..9, got ${nodes}`);
  // With membership changes some nodes may start outside the cluster, to be added later.
  const rv = root.fork('initialVoters');
  const initialVoters = has('membership') && nodes > 2 && rv.chance(0.7) ? rv.range(Math.ceil(nodes / 2), nodes - 1) : nodes;
  const tick = TICK_US;
  const rd = root.fork('delay');
  const maxDelayUs = has('reorder') ? rd.weighted<number>([[tick / 10, 2], [tick / 2, 3], [tick * 2, 3], [tick * 8, 1]]) : tick / 5;
  const minDelayUs = has('reorder') ? rd.int(Math.max(1, maxDelayUs / 10)) : maxDelayUs;
  const weights: [NemesisAction, number][] = [];
  if (has('crash')) weights.push(['crash', 2], ['crashLeader', 2], ['restart', 4]);
  if (has('partition')) weights.push(['partition', 3], ['heal', 3]);
  if (has('membership')) weights.push(['membership', 2]);
  if (has('transfer')) weights.push(['transfer', 1]);
  if (has('snapshot')) weights.push(['snapshot', 1]);
  // Scale each action by a per-seed factor: some runs are crash-heavy, some partition-heavy.
  const scaled = weights.map(([a, w]) => [a, w * (0.25 + root.fork(`weight:${a}`).float() * 1.75)] as const);
  const healAtTick = Math.floor(o.ticks * HEAL_AT);
  const electionTicks = o.electionTick;
  const readOnly = o.readOnly ?? (root.fork('readOnly').chance(0.2) ? 'leaseBased' : 'safe');
  // Both settings are legitimate deployments, so both halves get exercised
  // (lease reads depend on CheckQuorum).
  const checkQuorum = readOnly === 'leaseBased' || root.fork('checkQuorum').chance(0.5);
  return {
    nodes,
    faults: active,
    initialVoters,
    minDelayUs,
    maxDelayUs,
    lossRate: has('loss') ? root.fork('loss').pick([0.01, 0.05, 0.1, 0.2, 0.3]) : 0,
    duplicateRate: has('duplicate') ? root.fork('duplicate').pick([0.01, 0.05, 0.1]) : 0,
    diskMinUs: 0,
    diskMaxUs: has('disk') ? root.fork('disk').pick([tick / 20, tick / 4, tick]) : 0,
    tornWrites: has('torn') && root.fork('torn').chance(0.7),
    // Lease reads are safe only within the drift bound the lease margin absorbs (see raft.ts).
    skew: has('skew') ? root.fork('skew').pick([0.01, 0.03, 0.05]) : 0,
    nemesisMeanTicks: root.fork('nemesis').pick([2, 5, 10, 20]),
    leaderFlapRate: has('crash') ? root.fork('flap').pick([0, 0.1, 0.3, 0.6]) : 0,
    confChangeFaultRate: has('membership') && (has('crash') || has('partition')) ? root.fork('confFault').pick([0, 0.3, 0.7]) : 0,
    nemesisWeights: scaled,
    snapshotInterval: has('snapshot') ? root.fork('snapshot').pick([10, 30, 100]) : 0,
    compactionMargin: root.fork('margin').pick([0, 5, 20]),
    healAtTick,
    clientsStopAtTick: Math.max(healAtTick, o.ticks - Math.max(60 * electionTicks, Math.floor(o.ticks * 0.2))),
    clients: o.clients ?? root.fork('clients').range(1, 5),
    keys: o.keys ?? root.fork('keys').range(1, 3),
    clientTimeoutTicks: root.fork('clientTimeout').pick([1, 3]) * electionTicks,
    clientThinkTicks: root.fork('think').pick([0, 1, 3]),
    readOnly,
    checkQuorum,
    preVote: root.fork('preVote').chance(0.75),
    maxSizePerMsg: root.fork('msgSize').pick([1, 256, 4096, 65536]),
    maxInflightMsgs: root.fork('inflight').pick([1, 2, 8, 64]),
    maxInflightBytes: root.fork('inflightBytes').pick([0, 0, 1024, 16384]),
    // Usually longer than any run; in some seeds short enough (5 or 20
    // election timeouts of log time) that sessions of clients held up by
    // faults expire, and their commands are refused and retried in a new
    // session (diss. §6.3).
    sessionTtlUs: root.fork('sessionTtl').pick([1000, 1000, 20, 5]) * electionTicks * tick,
    // Small segments and caches, so that rollover, release after compaction
    // and reads from disk happen in every run.
    storage:
      (o.storage ?? 'wal') === 'wal'
        ? { mode: 'wal', segmentBytes: root.fork('segment').pick([2048, 8192, 65536]), cacheBytes: root.fork('cache').pick([512, 8192, 65536]) }
        : { mode: 'memory' },
  };
}

export function describeSwarm(s: Swarm): string {
  const ms = (us: number) => `${+(us / 1000).toFixed(2)}ms`;
  const w = s.nemesisWeights.map(([a, x]) => `${a}:${x.toFixed(1)}`).join(' ');
  return [
    `faults on=${describeFaults(s.faults)}`,
    `nodes=${s.nodes} (initial voters ${s.initialVoters})`,
    `delay=${ms(s.minDelayUs)}..${ms(s.maxDelayUs)} loss=${s.lossRate} dup=${s.duplicateRate}`,
    `disk=${ms(s.diskMinUs)}..${ms(s.diskMaxUs)}${s.tornWrites ? ' torn' : ''} skew=${s.skew}`,
    `nemesis every ~${s.nemesisMeanTicks} ticks [${w || 'none'}] leader flaps ${s.leaderFlapRate}, faults after conf changes ${s.confChangeFaultRate}`,
    `snapshot every ${s.snapshotInterval || '-'} (margin ${s.compactionMargin})`,
    `clients=${s.clients} keys=${s.keys} reads=${s.readOnly} sessions expire after ${ms(s.sessionTtlUs)} idle; heal@${s.healAtTick}`,
    `raft: preVote=${s.preVote} checkQuorum=${s.checkQuorum} msg≤${s.maxSizePerMsg}B inflight≤${s.maxInflightMsgs}${s.maxInflightBytes ? ` and ≤${s.maxInflightBytes}B` : ''}`,
    s.storage.mode === 'wal' ? `storage=wal (segments ${s.storage.segmentBytes}B, cache ${s.storage.cacheBytes}B)` : 'storage=memory',
  ].join('; ');
}
