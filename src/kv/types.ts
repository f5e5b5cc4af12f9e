// The key-value requests and responses, shaped exactly like etcd's v3 API
// messages (api/etcdserverpb/rpc.proto and api/mvccpb/kv.proto) so the gRPC
// codec maps them field for field and the state machine speaks etcd's model.
//
// Conventions, the same everywhere:
// - field names are the proto's in camelCase (range_end -> rangeEnd);
// - `bytes` are Uint8Array; proto3 defaults (empty bytes, 0, false) stand for
//   "unset", as on etcd's wire;
// - int64 revisions, versions, counts and limits are `number` (2^53 revisions
//   is beyond any store's life); lease ids and member/cluster ids, which etcd
//   draws at random over 64 bits, are `bigint`;
// - enums are numeric with the proto's values.

/** mvccpb.KeyValue */
export interface KeyValue {
  key: Uint8Array;
  /** Revision of the last creation of this key (field 2). */
  createRevision: number;
  /** Revision of the last modification (field 3). */
  modRevision: number;
  /** Number of modifications since creation; a delete resets it to 0 (field 4). */
  version: number;
  value: Uint8Array;
  /** The lease attached to the key, 0n for none (field 6). */
  lease: bigint;
}

/** etcdserverpb.ResponseHeader */
export interface ResponseHeader {
  clusterId: bigint;
  memberId: bigint;
  /** The store's revision when the request was applied (or read). */
  revision: number;
  raftTerm: number;
}

export const enum SortOrder {
  NONE = 0,
  ASCEND = 1,
  DESCEND = 2,
}

export const enum SortTarget {
  KEY = 0,
  VERSION = 1,
  CREATE = 2,
  MOD = 3,
  VALUE = 4,
}

/** etcdserverpb.RangeRequest */
export interface RangeRequest {
  key: Uint8Array;
  /** Empty: just `key`. "\0": every key >= key. Otherwise the half-open [key, rangeEnd). */
  rangeEnd: Uint8Array;
  limit: number;
  /** 0: the current revision. */
  revision: number;
  sortOrder: SortOrder;
  sortTarget: SortTarget;
  serializable: boolean;
  keysOnly: boolean;
  countOnly: boolean;
  minModRevision: number;
  maxModRevision: number;
  minCreateRevision: number;
  maxCreateRevision: number;
}

const NO_BYTES = new Uint8Array(0);

/** A RangeRequest with every field at its proto3 default but those given. */
export function rangeRequest(fields: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key: NO_BYTES,
    rangeEnd: NO_BYTES,
    limit: 0,
    revision: 0,
    sortOrder: SortOrder.NONE,
    sortTarget: SortTarget.KEY,
    serializable: false,
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
    ...fields,
  };
}

/** etcdserverpb.RangeResponse */
export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

/** etcdserverpb.PutRequest */
export interface PutRequest {
  key: Uint8Array;
  value: Uint8Array;
  lease: bigint;
  prevKv: boolean;
  ignoreValue: boolean;
  ignoreLease: boolean;
}

/** etcdserverpb.PutResponse */
export interface PutResponse {
  header: ResponseHeader;
  prevKv?: KeyValue;
}

/** etcdserverpb.DeleteRangeRequest */
export interface DeleteRangeRequest {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  prevKv: boolean;
}

/** etcdserverpb.DeleteRangeResponse */
export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prevKvs: KeyValue[];
}

/** etcdserverpb.RequestOp: exactly one of the four is set. */
export type RequestOp =
  | { requestRange: RangeRequest }
  | { requestPut: PutRequest }
  | { requestDeleteRange: DeleteRangeRequest }
  | { requestTxn: TxnRequest };

/** etcdserverpb.ResponseOp */
export type ResponseOp =
  | { responseRange: RangeResponse }
  | { responsePut: PutResponse }
  | { responseDeleteRange: DeleteRangeResponse }
  | { responseTxn: TxnResponse };

export const enum CompareResult {
  EQUAL = 0,
  GREATER = 1,
  LESS = 2,
  NOT_EQUAL = 3,
}

export const enum CompareTarget {
  VERSION = 0,
  CREATE = 1,
  MOD = 2,
  VALUE = 3,
  LEASE = 4,
}

/**
 * etcdserverpb.Compare. `targetUnion` is the proto's oneof: the field that is
 * set names what `target` compares against (version 4, create_revision 5,
 * mod_revision 6, value 7, lease 8).
 */
export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Uint8Array;
  targetUnion:
    | { version: number }
    | { createRevision: number }
    | { modRevision: number }
    | { value: Uint8Array }
    | { lease: bigint }
    | undefined;
  /** Field 64: compare every key in [key, rangeEnd). */
  rangeEnd: Uint8Array;
}

/** etcdserverpb.TxnRequest */
export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

/** etcdserverpb.TxnResponse */
export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

/** etcdserverpb.CompactionRequest */
export interface CompactionRequest {
  revision: number;
  physical: boolean;
}

/** etcdserverpb.CompactionResponse */
export interface CompactionResponse {
  header: ResponseHeader;
}

/**
 * raftkv's extension (the explainers' `inc`): add `delta` to the decimal
 * integer stored at `key` (a missing key counts as 0) and return the new
 * value. Served as raftkvpb.KVExt/Increment on the same gRPC server.
 */
export interface IncrementRequest {
  key: Uint8Array;
  delta: number;
}

export interface IncrementResponse {
  header: ResponseHeader;
  /** The value after the increment. */
  value: number;
  kv: KeyValue;
}

/** etcdserverpb.Member */
export interface Member {
  id: bigint;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** etcdserverpb.MemberListResponse */
export interface MemberListResponse {
  header: ResponseHeader;
  members: Member[];
}

/** etcdserverpb.StatusResponse (the fields etcd 3.4 sends). */
export interface StatusResponse {
  header: ResponseHeader;
  version: string;
  dbSize: number;
  leader: bigint;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  errors: string[];
  dbSizeInUse: number;
  isLearner: boolean;
}

export const enum AlarmAction {
  GET = 0,
  ACTIVATE = 1,
  DEACTIVATE = 2,
}

export const enum AlarmType {
  NONE = 0,
  NOSPACE = 1,
  CORRUPT = 2,
}

/** etcdserverpb.AlarmRequest */
export interface AlarmRequest {
  action: AlarmAction;
  memberId: bigint;
  alarm: AlarmType;
}

/** etcdserverpb.AlarmMember */
export interface AlarmMember {
  memberId: bigint;
  alarm: AlarmType;
}

/** etcdserverpb.AlarmResponse */
export interface AlarmResponse {
  /** etcd 3.4 sends none: its applier builds the response without one, and nothing fills it in after. */
  header?: ResponseHeader;
  alarms: AlarmMember[];
}
