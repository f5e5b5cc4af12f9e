// Typed errors of the node runtime, each with a stable `code`. A request
// (proposal, read, membership change, transfer) fails with one of these, or
// with the core's ProposalDroppedError when the core refused it outright
// (reason 'no-leader', 'transferring', 'conf-change-pending', ...). The
// server maps them onto etcd's errors:
//   ProposalDroppedError('no-leader') -> "etcdserver: no leader"
//   LeaderChangedError                -> "etcdserver: leader changed"
//   RequestTimeoutError               -> "etcdserver: request timed out"
//   NodeStoppedError / NodeFailedError -> "etcdserver: server stopped"

export abstract class NodeError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * The request's entry (or read index request) was lost to a change of
 * leader: its entry was overwritten by the new leader's log, so it was
 * certainly not committed and will never be applied. Safe to retry.
 */
export class LeaderChangedError extends NodeError {
  readonly code = 'LEADER_CHANGED';
  constructor(detail: string) {
    super(`leader changed: ${detail}`);
  }
}

/**
 * No answer within the request timeout. For a proposal the outcome is
 * unknown: it may still commit (etcd's "request timed out" has the same
 * meaning), so a retry must be idempotent or deduplicated.
 */
export class RequestTimeoutError extends NodeError {
  readonly code = 'REQUEST_TIMEOUT';
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`${what} timed out after ${timeoutMs} ms`);
  }
}

/**
 * The node was stopped (stop(), or after a fatal error) before the request
 * finished. For a proposal already handed to Raft the outcome is unknown.
 */
export class NodeStoppedError extends NodeError {
  readonly code = 'NODE_STOPPED';
  constructor(detail = 'the node is stopped') {
    super(detail);
  }
}

/** A SnapshotTask's result() was asked for before its last step() (a bug in the caller). */
export class SnapshotNotReadyError extends NodeError {
  readonly code = 'SNAPSHOT_NOT_READY';
  constructor(what: string) {
    super(`${what}: result() called before step() returned true`);
  }
}

/**
 * The node stopped itself because continuing could lose or corrupt data.
 * `reason`:
 * - 'storage': a write or fsync of the write-ahead log failed (after a
 *   failed fsync the kernel may have dropped the dirty pages, so nothing
 *   written since the last good sync can be trusted: the member must restart
 *   and recover from disk);
 * - 'state-machine': the state machine threw applying a committed entry or
 *   restoring a snapshot;
 * - 'internal': a broken invariant of the core, or a committed entry the
 *   runtime cannot decode.
 * `cause` holds the underlying error.
 */
export class NodeFailedError extends NodeError {
  readonly code = 'NODE_FAILED';
  constructor(
    readonly reason: 'storage' | 'state-machine' | 'internal',
    override readonly cause: Error,
  ) {
    super(`node stopped after a fatal ${reason} error: ${cause.message}`, { cause });
  }
}

/** Options that cannot work (e.g. an empty data directory and neither initialVoters nor join). */
export class InvalidNodeOptionsError extends NodeError {
  readonly code = 'INVALID_NODE_OPTIONS';
}

/** A request that cannot be carried out as asked (e.g. adding a member that is already in the cluster). */
export class InvalidRequestError extends NodeError {
  readonly code = 'INVALID_REQUEST';
}

/** A committed entry or snapshot this runtime cannot decode: it was not written by it, or it is damaged. */
export class EnvelopeError extends NodeError {
  readonly code = 'ENVELOPE_INVALID';
}
