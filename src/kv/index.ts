// raftkv's key-value state machine: etcd v3's MVCC model and semantics,
// deterministic and without I/O. See docs/kv.md.

export type * from './types.js';
export { SortOrder, SortTarget, CompareResult, CompareTarget, rangeRequest } from './types.js';
export { type ClientSession, type KvCommand, type KvOperation, decodeCommand, encodeCommand } from './command.js';
export { type EtcdErrorCode, type KvErrorCode, GrpcStatus, KvError, KvSnapshotError, etcdError } from './errors.js';
export type { KvResponse, KvResult } from './messages.js';
export { isReadOnlyTxn, isSerializableTxn } from './operations.js';
export { SNAPSHOT_STEP_BYTES, SnapshotEncoder } from './snapshot.js';
export {
  DEFAULT_MAX_OUTSTANDING_PER_CLIENT,
  DEFAULT_SESSION_TTL_MS,
  type KvOptions,
  KvStateMachine,
} from './stateMachine.js';
export {
  DEFAULT_MAX_TXN_OPS,
  validateCommand,
  validateCompaction,
  validateDeleteRange,
  validateIncrement,
  validateOperation,
  validatePut,
  validateRange,
  validateTxn,
} from './validate.js';
