// raftkv's client library: etcd's v3 API over gRPC with failover and
// exactly-once writes (client.ts), its errors, and the key helpers.

export { type Bytes, type ClientOptions, type DeleteOptions, type GetOptions, type PutOptions, RaftKvClient, bytes, prefixEnd } from './client.js';
export { ClientArgumentError, ClientClosedError, ClientError, GrpcStatusError } from './errors.js';
export { GrpcStatus } from '../server/types.js';
