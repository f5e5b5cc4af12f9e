// raftkv's key-value state machine: etcd v3's MVCC store fed by the Raft
// log. apply() runs one committed command and returns its response, or the
// KvError it failed with, as a result: an error in apply is an answer every
// member reaches the same way, never an exception that would stop one.
// Reads do not go through the log: range() serves them from the local state
// (serializable, or linearizable once a ReadIndex has been applied).
//
// Deterministic, no I/O, no clock: the only time is the proposers' time
// carried in the commands.

import type { StateMachine } from '../node/stateMachine.js';
import { type KvCommand, decodeCommand } from './command.js';
import { KvError, etcdError } from './errors.js';
import type { KvResponse, KvResult } from './messages.js';
import { type HashCursor, MvccStore } from './mvcc.js';
import { compact, deleteRange, increment, isReadOnlyTxn, put, range, txn } from './operations.js';
import { type SnapshotBase, SnapshotEncoder, decodeSnapshot, encodeSnapshot, hashState } from './snapshot.js';
import { SessionTable } from './sessions.js';
import type { RangeRequest, RangeResponse, TxnRequest, TxnResponse } from './types.js';
import { validateOperation, validateRange, validateSession, validateTxn } from './validate.js';

export interface KvOptions {
  /**
   * A client session expires after this long without a command from the
   * client, in log time (ms). Default 1 hour: far longer than any client
   * retries one request (a retry after expiry could apply twice, so clients
   * must give up well before), and long enough to ride out a partition or a
   * restart, while bounding the table to the clients of the last hour.
   * Every member must use the same value: it decides what apply does.
   */
  readonly sessionTtlMs?: number;
  /**
   * The most unacknowledged results kept per client; a request beyond it is
   * refused (TOO_MANY_OUTSTANDING) so one client cannot grow the table
   * without bound. Default 1024. Every member must use the same value.
   */
  readonly maxOutstandingPerClient?: number;
}

export const DEFAULT_SESSION_TTL_MS = 60 * 60 * 1000;
export const DEFAULT_MAX_OUTSTANDING_PER_CLIENT = 1024;

export class KvStateMachine implements StateMachine<KvResult> {
  private store = new MvccStore();
  private readonly sessions: SessionTable;
  /** The log's clock: the largest proposer time applied so far (ms). */
  private clock = 0;
  private applied = 0;

  constructor(options: KvOptions = {}) {
    const ttl = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    const max = options.maxOutstandingPerClient ?? DEFAULT_MAX_OUTSTANDING_PER_CLIENT;
    if (!Number.isSafeInteger(ttl) || ttl < 1) throw new RangeError(`sessionTtlMs must be a positive integer, got ${ttl}`);
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`maxOutstandingPerClient must be a positive integer, got ${max}`);
    this.sessions = new SessionTable(ttl, max);
  }

  /**
   * Applies a committed command (from encodeCommand). Returns the operation's
   * response (PutResponse for a put, and so on), or a KvError: the
   * operation's own error, a session error, or BAD_COMMAND for bytes that
   * are not a command. A command that fails changes nothing in the store.
   */
  apply(command: Uint8Array, index: number): KvResult {
    this.applied = index;
    let cmd: KvCommand;
    try {
      cmd = decodeCommand(command);
    } catch (e) {
      if (e instanceof KvError) return e;
      throw e;
    }
    if (cmd.time > this.clock) this.clock = cmd.time;
    this.sessions.expire(this.clock);
    if (cmd.session === undefined) return this.execute(cmd);
    try {
      validateSession(cmd.session);
    } catch (e) {
      if (e instanceof KvError) return e;
      throw e;
    }
    const check = this.sessions.check(cmd.session, this.clock);
    if (check.kind === 'answer') return check.result;
    const result = this.execute(cmd);
    this.sessions.record(check.session, cmd.session.seq, result);
    return result;
  }

  private execute(cmd: KvCommand): KvResult {
    try {
      // The proposer validated already; again here so that a command that
      // skipped it fails alike everywhere. No txn-size limit: that is a
      // per-member setting, and apply must not depend on one.
      validateOperation(cmd.op, Infinity);
      return this.run(cmd);
    } catch (e) {
      if (e instanceof KvError) return e;
      throw e;
    }
  }

  private run(cmd: KvCommand): KvResponse {
    const op = cmd.op;
    switch (op.type) {
      case 'put':
        return put(this.store, op.request);
      case 'deleteRange':
        return deleteRange(this.store, op.request);
      case 'txn':
        return txn(this.store, op.request);
      case 'compact':
        return compact(this.store, op.request);
      case 'increment':
        return increment(this.store, op.request);
    }
  }

  /**
   * A read from the local state, as etcd serves Range. Throws KvError: the
   * request's (validateRange), COMPACTED or FUTURE_REVISION.
   */
  range(req: RangeRequest): RangeResponse {
    validateRange(req);
    return range(this.store, this.store.currentRevision, req);
  }

  /**
   * A read-only txn (isReadOnlyTxn: only ranges) served from the local
   * state, as etcd serves them without the log: after a ReadIndex, unless
   * every range is serializable (isSerializableTxn). Throws KvError; a txn
   * with writes must be proposed instead (TypeError).
   */
  readTxn(req: TxnRequest): TxnResponse {
    if (!isReadOnlyTxn(req)) throw new TypeError('readTxn: the txn has writes; propose it through the log');
    validateTxn(req, Infinity);
    return txn(this.store, req);
  }

  snapshot(): Uint8Array {
    return encodeSnapshot(this.store, this.sessions, this.clock);
  }

  /**
   * The snapshot of the state now, encoded a slice per step() while
   * commands go on being applied. The first one (and the first after a
   * compaction or a restore) encodes the whole store, the bytes snapshot()
   * returns now; each later one starts from the parts of the last one
   * encoded and adds a section of what was written since (snapshot.ts):
   * the same state, in fewer new bytes. Starting costs an encoding of the
   * session table.
   */
  beginSnapshot(): SnapshotEncoder {
    return new SnapshotEncoder(this.store, this.sessions, this.clock, this.snapshotBase, this.noteSnapshotBase);
  }

  /** The last snapshot encoded by beginSnapshot(), which the next one starts from (SnapshotEncoder). */
  private snapshotBase: SnapshotBase | undefined;
  private readonly noteSnapshotBase = (base: SnapshotBase): void => {
    if (base.store !== this.store || (this.snapshotBase !== undefined && base.revision < this.snapshotBase.revision)) return;
    this.snapshotBase = base;
    this.store.forgetChangesBefore(base.mark); // the next snapshot starts from this one
  };

  /** Replaces the whole state; throws KvSnapshotError (and keeps the current state) if `data` is damaged. */
  restore(data: Uint8Array, index: number): void {
    const s = decodeSnapshot(data);
    const store = new MvccStore();
    store.load(s.keys, s.histories, s.revision, s.compactRevision);
    this.store = store;
    this.snapshotBase = undefined; // of the store replaced
    this.sessions.load(s.sessions);
    this.clock = s.clock;
    this.applied = index;
  }

  /** The store's revision: of the last write that changed something (1 when empty). */
  get revision(): number {
    return this.store.currentRevision;
  }

  /** The revision of the last compaction, -1 if none yet (as etcd's compactMainRev). */
  get compactRevision(): number {
    return this.store.compactRevision;
  }

  /**
   * What etcd's HashKV hashes at `revision` (0: the current one): a cursor
   * over the versions in revision order (MvccStore.hashCursor;
   * src/server/hashKV.ts hashes it), with the store's revision and
   * compaction revision. As etcd, a revision at or below the last
   * compaction is COMPACTED, one past the current FUTURE_REVISION. Members
   * that applied the same log agree on it at any revision both have, if
   * their compaction revisions are equal.
   */
  hashView(revision: number): { versions: HashCursor; revision: number; compactRevision: number } {
    const store = this.store;
    if (revision > 0 && revision <= store.compactRevision) throw etcdError('COMPACTED');
    if (revision > store.currentRevision) throw etcdError('FUTURE_REVISION');
    const rev = revision > 0 ? revision : store.currentRevision;
    return { versions: store.hashCursor(rev), revision: store.currentRevision, compactRevision: store.compactRevision };
  }

  /** Keys that exist at the current revision. */
  get keyCount(): number {
    return this.store.keyCount;
  }

  /** An estimate of the bytes the store holds (every kept version's key and value, plus overhead): Status's dbSize. */
  get sizeBytes(): number {
    return this.store.sizeBytes;
  }

  /** The log index of the last command applied (or of the snapshot restored). */
  get appliedIndex(): number {
    return this.applied;
  }

  /** The log's clock: the largest proposer time applied (ms since the epoch). */
  get logTime(): number {
    return this.clock;
  }

  /** Client sessions currently held. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** A hash of the whole state (store, sessions, clock): equal on members at the same applied index. */
  hash(): number {
    return hashState(this.store, this.sessions, this.clock);
  }
}
