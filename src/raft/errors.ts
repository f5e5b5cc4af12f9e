// Typed errors of the Raft core. Each has a stable `code` callers can switch
// on; messages are for people.

export abstract class RaftError extends Error {
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export type DropReason =
  /** No leader is known (an election is under way or the node is cut off). */
  | 'no-leader'
  /** A leadership transfer is in progress: the leader refuses new work until it ends. */
  | 'transferring'
  /** This node was removed from the configuration. */
  | 'removed'
  /** Proposal forwarding is disabled and this node is not the leader. */
  | 'not-leader'
  /** The leader's uncommitted log exceeds maxUncommittedEntriesBytes. */
  | 'uncommitted-limit'
  /** Another configuration change is not applied yet (one change at a time). */
  | 'conf-change-pending'
  /** The configuration change does not fit the current configuration (e.g. leaving a non-joint one). */
  | 'conf-change-invalid';

/** Every DropReason, for carrying one in a message. */
export const DROP_REASONS: readonly DropReason[] = [
  'no-leader',
  'transferring',
  'removed',
  'not-leader',
  'uncommitted-limit',
  'conf-change-pending',
  'conf-change-invalid',
];

/**
 * A proposal, read or transfer request that the node refused. Nothing of it
 * entered the log; the caller may retry (with the same request id) elsewhere
 * or later.
 */
export class ProposalDroppedError extends RaftError {
  readonly code = 'PROPOSAL_DROPPED';
  constructor(
    readonly reason: DropReason,
    detail?: string,
  ) {
    // An expected refusal the caller handles (etcd returns a sentinel,
    // ErrProposalDropped), thrown often while there is no leader: without a
    // stack trace it costs a tenth as much, and the trace would only point
    // at the caller's own propose().
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`raft: proposal dropped (${reason})${detail ? `: ${detail}` : ''}`);
    Error.stackTraceLimit = stackTraceLimit;
  }
}

/** The requested index is below the first index: it was compacted into a snapshot. */
export class LogCompactedError extends RaftError {
  readonly code = 'LOG_COMPACTED';
  constructor(readonly index: number, readonly firstIndex: number) {
    super(`raft: requested index ${index} is unavailable due to compaction (first index ${firstIndex})`);
  }
}

/** The requested index is beyond the last index. */
export class LogUnavailableError extends RaftError {
  readonly code = 'LOG_UNAVAILABLE';
  constructor(readonly index: number, readonly lastIndex: number) {
    super(`raft: requested index ${index} is unavailable (last index ${lastIndex})`);
  }
}

/** A snapshot older than the one storage already holds. */
export class SnapshotOutOfDateError extends RaftError {
  readonly code = 'SNAPSHOT_OUT_OF_DATE';
  constructor(readonly index: number, readonly currentIndex: number) {
    super(`raft: snapshot at index ${index} is older than the current snapshot at ${currentIndex}`);
  }
}

/** Storage is producing a snapshot; the leader will try again later. */
export class SnapshotTemporarilyUnavailableError extends RaftError {
  readonly code = 'SNAPSHOT_TEMPORARILY_UNAVAILABLE';
  constructor() {
    super('raft: snapshot is temporarily unavailable');
  }
}

/** A configuration value that cannot work (e.g. electionTick <= heartbeatTick). */
export class InvalidConfigError extends RaftError {
  readonly code = 'INVALID_CONFIG';
}

/** A membership change that cannot be applied to the current configuration. */
export class InvalidConfChangeError extends RaftError {
  readonly code = 'INVALID_CONF_CHANGE';
}

/** The API was used out of order, e.g. ready() twice without advance(). */
export class UsageError extends RaftError {
  readonly code = 'USAGE';
}

/** A message that cannot be processed: wrong recipient, malformed fields. */
export class InvalidMessageError extends RaftError {
  readonly code = 'INVALID_MESSAGE';
}

/**
 * A broken internal invariant, e.g. a committed entry about to be
 * overwritten. Continuing could lose acknowledged data, so the core stops.
 * (etcd-io/raft panics in the same places.)
 */
export class RaftInvariantError extends RaftError {
  readonly code = 'RAFT_INVARIANT';
}
