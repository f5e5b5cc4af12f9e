// Errors of the raftkv client, each with a stable `code`.

import { SESSION_EXPIRED_MESSAGE } from '../kv/errors.js';
import { GRPC_STATUS_NAMES, GrpcStatus } from '../server/types.js';

export abstract class ClientError extends Error {
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A call ended with a gRPC status other than OK. `message` is the server's
 * status message as it sent it (for etcd's errors, e.g.
 * "etcdserver: key is not provided"), as etcdctl prints it.
 */
export class GrpcStatusError extends ClientError {
  readonly code = 'GRPC_STATUS';
  constructor(
    readonly grpcStatus: GrpcStatus,
    message: string,
    /** The endpoint that answered (or failed to). */
    readonly endpoint: string,
    /**
     * False only when the request surely never reached a handler (no
     * connection, or the server refused the stream): then even a request
     * without exactly-once metadata can be sent again safely.
     */
    readonly requestMayHaveRun = true,
  ) {
    super(message);
  }

  /** "UNAVAILABLE", "INVALID_ARGUMENT", ... */
  get statusName(): string {
    return GRPC_STATUS_NAMES[this.grpcStatus] ?? `status ${this.grpcStatus}`;
  }
}

/** The client was closed; calls made after close() fail with this. */
export class ClientClosedError extends ClientError {
  readonly code = 'CLIENT_CLOSED';
  constructor() {
    super('raftkv client is closed');
  }
}

/** Bad arguments to a client method. */
export class ClientArgumentError extends ClientError {
  readonly code = 'CLIENT_BAD_ARGUMENT';
}

/** The server knows no session by the client's id (kv/errors.ts sessionExpired): the client must start a new one. */
export function isSessionExpired(e: unknown): boolean {
  return e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.FAILED_PRECONDITION && SESSION_EXPIRED_MESSAGE.test(e.message);
}

/** Whether a failed call may be sent again to another endpoint: the server said it is unavailable, or the connection failed. */
export function isUnavailable(e: unknown): boolean {
  return e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.UNAVAILABLE;
}

/** The call (or one attempt of it) got no answer within its time. */
export function isDeadlineExceeded(e: unknown): boolean {
  return e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.DEADLINE_EXCEEDED;
}
