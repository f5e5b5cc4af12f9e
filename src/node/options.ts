// What a RaftNode is created with, its defaults (etcd's where etcd has one),
// and the small interfaces it is injected through: the storage, the clock
// and the logger.

import type { ReadOnlyOption } from '../raft/readOnly.js';
import type { Storage } from '../raft/storage.js';
import type { ConfState, NodeId, RandomSource, Snapshot } from '../raft/types.js';
import type { ByteParts } from '../storage/bytes.js';
import type { SaveBatch } from '../storage/diskStorage.js';
import type { FileSystem } from '../storage/fs.js';
import type { Transport } from '../transport/types.js';
import { InvalidNodeOptionsError } from './errors.js';
import type { StateMachine } from './stateMachine.js';

/**
 * The durable storage the node persists each Ready through and the core
 * reads its log from: DiskStorage (the write-ahead log and snapshot files)
 * in production.
 */
export interface NodeStorage extends Storage {
  /** Persists one Ready; `done` runs once it is durable (or with the error that stopped it). */
  save(batch: SaveBatch, done: (err?: Error) => void): void;
  snapshotIndex(): number;
  /** Records a snapshot of the state machine at applied index `i` (its bytes may come in consecutive parts). */
  createSnapshot(i: number, confState: ConfState, data: ByteParts, done?: (err?: Error) => void): Snapshot;
  /** Discards log entries up to and including `compactIndex` (a snapshot must cover them). */
  compact(compactIndex: number): void;
  close(): void;
}

/** A pino-compatible logger, the few methods the node uses: (fields, message). */
export interface NodeLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const SILENT_NODE_LOGGER: NodeLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Time as the node sees it: the tick timer and the clock request deadlines are measured on. */
export interface NodeClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const SYSTEM_CLOCK: NodeClock = {
  now: () => performance.now(),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export interface RaftNodeOptions<Result = unknown> {
  /** This member's id (> 0). */
  readonly id: NodeId;
  /**
   * Bootstraps a new cluster with these voters when the data directory is
   * empty (ignored once it holds state, as etcd ignores --initial-cluster on
   * restart). Every initial member must be given the same list.
   */
  readonly initialVoters?: readonly NodeId[];
  /**
   * Starts with an empty data directory as a member being added to a
   * running cluster (after addMember on it): the log and the configuration
   * come from the leader.
   */
  readonly join?: boolean;
  /** Peer URLs known at start, by member id (etcd's --initial-cluster); handed to the transport. */
  readonly peers?: ReadonlyMap<NodeId, string> | Readonly<Record<number, string>>;

  /** The data directory: DiskStorage over `fs` (default: the real file system). */
  readonly dataDir?: string;
  readonly fs?: FileSystem;
  /** Write-ahead log segment size (default 64 MiB) and tail cache size (default 64 MiB). */
  readonly segmentBytes?: number;
  readonly cacheBytes?: number;
  /** A storage to use instead of opening `dataDir` (tests); the node closes it when it stops. */
  readonly storage?: NodeStorage;
  /** Who the write-ahead log belongs to: a log of another cluster or member is refused. */
  readonly clusterId?: string;
  /** Default: `id`. */
  readonly memberId?: number;

  readonly transport: Transport;
  readonly stateMachine: StateMachine<Result>;

  /** Milliseconds per tick, the heartbeat interval (etcd's --heartbeat-interval). Default 100. */
  readonly tickMs?: number;
  /** The election timeout in ticks (etcd: election-timeout / heartbeat-interval). Default 10. */
  readonly electionTicks?: number;
  /** Ticks between heartbeats. Default 1. */
  readonly heartbeatTicks?: number;
  /** Applied entries between snapshots (etcd's --snapshot-count). Default 10000. */
  readonly snapshotCount?: number;
  /**
   * Entries kept in the log behind a snapshot, so a slightly slow follower
   * still catches up from the log rather than by snapshot (etcd's
   * SnapshotCatchUpEntries). Default 5000.
   */
  readonly snapshotCatchUpEntries?: number;
  /** Default true (diss. §9.6). */
  readonly preVote?: boolean;
  /** Default true: a leader that cannot hear a quorum steps down. */
  readonly checkQuorum?: boolean;
  /** 'safe' (ReadIndex, default) or 'leaseBased'. */
  readonly readOnlyOption?: ReadOnlyOption;
  /** Bytes of entries in one append message. Default 1 MiB (etcd). */
  readonly maxSizePerMsg?: number;
  /** Append messages in flight per follower. Default 512 (etcd: 4096 / 8). */
  readonly maxInflightMsgs?: number;
  /** The leader refuses proposals beyond this many uncommitted bytes. Default 1 GiB (etcd). */
  readonly maxUncommittedEntriesBytes?: number;
  /** How long a request may wait. Default 5 s + 2 election timeouts (etcd's ReqTimeout). */
  readonly requestTimeoutMs?: number;
  /** A read index request unanswered this long is sent again (etcd: 500 ms). */
  readonly readIndexRetryMs?: number;

  readonly logger?: NodeLogger;
  readonly clock?: NodeClock;
  /** Randomness for election timeouts and the proposal nonce. Default: node:crypto. */
  readonly random?: RandomSource;
}

/** The options with every default filled in. */
export interface ResolvedOptions {
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly snapshotCount: number;
  readonly snapshotCatchUpEntries: number;
  readonly requestTimeoutMs: number;
  readonly readIndexRetryMs: number;
  readonly peers: Map<NodeId, string>;
}

export function resolveOptions(o: RaftNodeOptions<unknown>): ResolvedOptions {
  const positiveInt = (v: number | undefined, name: string, dflt: number): number => {
    const value = v ?? dflt;
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidNodeOptionsError(`${name} must be a positive integer, got ${String(v)}`);
    }
    return value;
  };
  positiveInt(o.id, 'id', 0);
  if (!o.transport) throw new InvalidNodeOptionsError('a transport is required');
  if (!o.stateMachine) throw new InvalidNodeOptionsError('a state machine is required');
  if (!o.storage && !o.dataDir) throw new InvalidNodeOptionsError('either dataDir or storage is required');
  if (o.storage && o.dataDir) throw new InvalidNodeOptionsError('give dataDir or storage, not both');
  if (o.join && o.initialVoters) {
    throw new InvalidNodeOptionsError('give initialVoters (bootstrap a new cluster) or join (join a running one), not both');
  }
  if (o.initialVoters && !o.initialVoters.includes(o.id)) {
    throw new InvalidNodeOptionsError(`initialVoters ${o.initialVoters.join(',')} do not include this member (${o.id})`);
  }
  const tickMs = positiveInt(o.tickMs, 'tickMs', 100);
  const electionTicks = positiveInt(o.electionTicks, 'electionTicks', 10);
  const heartbeatTicks = positiveInt(o.heartbeatTicks, 'heartbeatTicks', 1);
  if (electionTicks <= heartbeatTicks) {
    throw new InvalidNodeOptionsError(`electionTicks (${electionTicks}) must exceed heartbeatTicks (${heartbeatTicks})`);
  }
  const snapshotCatchUpEntries = o.snapshotCatchUpEntries ?? 5000;
  if (!Number.isSafeInteger(snapshotCatchUpEntries) || snapshotCatchUpEntries < 0) {
    throw new InvalidNodeOptionsError(`snapshotCatchUpEntries must be a non-negative integer, got ${snapshotCatchUpEntries}`);
  }
  const peers = new Map<NodeId, string>();
  if (o.peers) {
    const pairs = o.peers instanceof Map ? [...o.peers] : Object.entries(o.peers).map(([k, v]) => [Number(k), v] as const);
    for (const [id, url] of pairs) {
      if (!Number.isSafeInteger(id) || id <= 0) throw new InvalidNodeOptionsError(`peer id ${String(id)} is not a positive integer`);
      if (typeof url !== 'string' || url === '') throw new InvalidNodeOptionsError(`peer ${id} has no URL`);
      peers.set(id, url);
    }
  }
  return {
    tickMs,
    electionTicks,
    heartbeatTicks,
    snapshotCount: positiveInt(o.snapshotCount, 'snapshotCount', 10_000),
    snapshotCatchUpEntries,
    requestTimeoutMs: positiveInt(o.requestTimeoutMs, 'requestTimeoutMs', 5000 + 2 * electionTicks * tickMs),
    readIndexRetryMs: positiveInt(o.readIndexRetryMs, 'readIndexRetryMs', 500),
    peers,
  };
}
