// Typed errors of the key-value state machine. A KvError is what a client
// sees: its `message` is etcd's exact string (api/v3rpc/rpctypes/error.go) and
// `grpcStatus` the status code etcd sends it with, so the gRPC layer can pass
// any KvError through unchanged and etcdctl prints what it prints for etcd.
// raftkv's own errors (increment, sessions) start with "raftkv: ".
//
// Apply never throws a KvError: it returns it as the command's result, so
// every member reaches the same result deterministically. Validation before
// proposing and local reads throw them.

/** The gRPC status codes etcd uses for these errors (google.golang.org/grpc/codes). */
export const GrpcStatus = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
} as const;

export type KvErrorCode =
  // etcd's
  | 'KEY_NOT_PROVIDED'
  | 'KEY_NOT_FOUND'
  | 'VALUE_PROVIDED'
  | 'LEASE_PROVIDED'
  | 'TOO_MANY_OPS'
  | 'DUPLICATE_KEY'
  | 'COMPACTED'
  | 'FUTURE_REVISION'
  | 'LEASE_NOT_FOUND'
  | 'INVALID_SORT_OPTION'
  // raftkv's
  | 'INVALID_NUMBER'
  | 'NOT_AN_INTEGER'
  | 'INCREMENT_OVERFLOW'
  | 'INVALID_SESSION'
  | 'SESSION_EXPIRED'
  | 'SEQUENCE_ACKNOWLEDGED'
  | 'TOO_MANY_OUTSTANDING'
  | 'BAD_COMMAND';

export class KvError extends Error {
  constructor(
    readonly code: KvErrorCode,
    /** The gRPC status to answer with. */
    readonly grpcStatus: number,
    message: string,
  ) {
    super(message);
    this.name = 'KvError';
  }
}

const { INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, OUT_OF_RANGE } = GrpcStatus;

/** etcd's errors, by code: [gRPC status, message]. */
const ETCD_ERRORS = {
  KEY_NOT_PROVIDED: [INVALID_ARGUMENT, 'etcdserver: key is not provided'],
  KEY_NOT_FOUND: [INVALID_ARGUMENT, 'etcdserver: key not found'],
  VALUE_PROVIDED: [INVALID_ARGUMENT, 'etcdserver: value is provided'],
  LEASE_PROVIDED: [INVALID_ARGUMENT, 'etcdserver: lease is provided'],
  TOO_MANY_OPS: [INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'],
  DUPLICATE_KEY: [INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'],
  COMPACTED: [OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'],
  FUTURE_REVISION: [OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'],
  LEASE_NOT_FOUND: [NOT_FOUND, 'etcdserver: requested lease not found'],
  // etcd 3.4/3.5 do not check the sort enums (an unknown sort target panics
  // the member); later etcd refuses them with this error, and so do we.
  INVALID_SORT_OPTION: [INVALID_ARGUMENT, 'etcdserver: invalid sort option'],
} as const satisfies Partial<Record<KvErrorCode, readonly [number, string]>>;

export type EtcdErrorCode = keyof typeof ETCD_ERRORS;

/** One of etcd's errors, with etcd's status and message. */
export function etcdError(code: EtcdErrorCode): KvError {
  const [status, message] = ETCD_ERRORS[code];
  return new KvError(code, status, message);
}

/** A key for an error message: its UTF-8 text, quoted and escaped. */
export function showKey(key: Uint8Array | string): string {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'latin1') : key;
  return JSON.stringify(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
}

export function invalidNumber(field: string, value: unknown): KvError {
  return new KvError('INVALID_NUMBER', INVALID_ARGUMENT, `raftkv: ${field} must be an integer, got ${String(value)}`);
}

export function notAnInteger(key: Uint8Array | string): KvError {
  return new KvError('NOT_AN_INTEGER', FAILED_PRECONDITION, `raftkv: value of key ${showKey(key)} is not a decimal integer`);
}

export function incrementOverflow(key: Uint8Array | string): KvError {
  return new KvError(
    'INCREMENT_OVERFLOW',
    OUT_OF_RANGE,
    `raftkv: incrementing key ${showKey(key)} leaves the safe integer range (±${Number.MAX_SAFE_INTEGER})`,
  );
}

export function invalidSession(reason: string): KvError {
  return new KvError('INVALID_SESSION', INVALID_ARGUMENT, `raftkv: invalid client session: ${reason}`);
}

/** What a client sees of sessionExpired(): its status is FAILED_PRECONDITION and its message matches this. */
export const SESSION_EXPIRED_MESSAGE = /^raftkv: session of client "[^"]*" expired or is unknown;/;

export function sessionExpired(clientId: string): KvError {
  return new KvError(
    'SESSION_EXPIRED',
    FAILED_PRECONDITION,
    `raftkv: session of client ${JSON.stringify(clientId)} expired or is unknown; the request was not applied and ` +
      'an earlier attempt may have been: start a new session',
  );
}

export function sequenceAcknowledged(clientId: string, seq: number, lowest: number): KvError {
  return new KvError(
    'SEQUENCE_ACKNOWLEDGED',
    FAILED_PRECONDITION,
    `raftkv: request sequence ${seq} of client ${JSON.stringify(clientId)} already acknowledged ` +
      `(lowest unacknowledged is ${lowest}); its response was discarded`,
  );
}

export function tooManyOutstanding(clientId: string, seq: number, lowest: number, max: number): KvError {
  return new KvError(
    'TOO_MANY_OUTSTANDING',
    RESOURCE_EXHAUSTED,
    `raftkv: request sequence ${seq} of client ${JSON.stringify(clientId)} is ${max} or more ahead of its lowest ` +
      `unacknowledged sequence ${lowest}`,
  );
}

export function badCommand(reason: string): KvError {
  return new KvError('BAD_COMMAND', INVALID_ARGUMENT, `raftkv: malformed command: ${reason}`);
}

/** A snapshot that cannot be restored: damaged, truncated, or of an unknown format. */
export class KvSnapshotError extends Error {
  readonly code = 'KV_SNAPSHOT_CORRUPT';
  constructor(readonly reason: string) {
    super(`key-value snapshot refused: ${reason}`);
    this.name = 'KvSnapshotError';
  }
}
