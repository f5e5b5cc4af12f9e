// Messages the gRPC server speaks that the key-value layer does not define
// (src/kv/types.ts holds the rest), with the same conventions: proto field
// names in camelCase, proto3 defaults for "unset", ids as bigint.

import type { ResponseHeader } from '../kv/types.js';

/** etcdserverpb.StatusRequest: no fields. */
export type StatusRequest = Record<string, never>;

/** etcdserverpb.HashKVRequest: the revision to hash at; 0 for the current one. */
export interface HashKVRequest {
  revision: number;
}

/** etcdserverpb.HashKVResponse */
export interface HashKVResponse {
  header: ResponseHeader;
  /** CRC-32C of the key-value history up to the revision (see src/server/hashKV.ts). */
  hash: number;
  compactRevision: number;
}

/** etcdserverpb.MoveLeaderRequest: the member to hand leadership to (targetID). */
export interface MoveLeaderRequest {
  targetId: bigint;
}

/** etcdserverpb.MemberListRequest (`linearizable` is etcd 3.5's; 3.4 clients send nothing). */
export interface MemberListRequest {
  linearizable: boolean;
}

/** grpc.health.v1.HealthCheckRequest: the service to check, "" for the server as a whole. */
export interface HealthCheckRequest {
  service: string;
}

export const enum ServingStatus {
  UNKNOWN = 0,
  SERVING = 1,
  NOT_SERVING = 2,
  SERVICE_UNKNOWN = 3,
}

/** grpc.health.v1.HealthCheckResponse */
export interface HealthCheckResponse {
  status: ServingStatus;
}

/**
 * The metadata (HTTP/2 headers) of raftkv's exactly-once sessions, sent by
 * src/client with every mutating request (Raft dissertation §6.3):
 * - client id: 16 lowercase hex digits, random per client;
 * - seq: the request's sequence number (decimal, from 1), the same on every
 *   retry of that request;
 * - ack: the lowest sequence number the client still waits for; every
 *   request below it is finished from the client's view (answered, or given
 *   up), so the server may forget those results and must not apply them anew.
 */
export const CLIENT_ID_HEADER = 'raftkv-client-id';
export const SEQ_HEADER = 'raftkv-seq';
export const ACK_HEADER = 'raftkv-ack';

/** The session fields of one request, parsed from the headers above. */
export interface SessionMetadata {
  clientId: bigint;
  seq: number;
  ack: number;
}

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const enum GrpcStatus {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** The names of the codes, for messages ("UNAVAILABLE: ..."). */
export const GRPC_STATUS_NAMES: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];
