// etcd's HashKV (mvcc.store.HashByRev in etcd 3.4): a CRC-32C over etcd's
// backend key bucket as it stands at a revision: the bucket's name, then,
// in revision order, each version's key in the bucket (its revision: main
// and sub as 8-byte big-endian numbers around '_', and 't' after a
// tombstone) and its value (the mvccpb.KeyValue, marshaled; a tombstone's
// holds only the key). Which versions count is the store's business
// (MvccStore.hashCursor). Computed the same way, a raftkv member's hash
// equals etcd's for the same history, so `etcdctl endpoint hashkv` both
// compares members with each other and raftkv with etcd.

import { latin1ToBytes } from '../kv/codec.js';
import { type HashCursor, type Version, toKeyValue } from '../kv/mvcc.js';
import { crc32c, crc32cRange } from '../storage/crc.js';
import { KeyValue } from './etcdpb.js';

/** etcd's keyBucketName. */
const KEY_BUCKET = new TextEncoder().encode('key');
const EMPTY = new Uint8Array(0);
const TWO_32 = 2 ** 32;

/** Versions hashed per turn of the event loop (a few milliseconds). */
const SLICE = 2048;

/**
 * The hash of the versions `cursor` gives (in revision order), as etcd
 * computes it. Takes them SLICE at a time and yields to the event loop in
 * between: a member with millions of versions must go on sending
 * heartbeats while it hashes them.
 */
export async function etcdHashKV(cursor: HashCursor): Promise<number> {
  let crc = crc32c(KEY_BUCKET);
  for (;;) {
    const slice = cursor.next(SLICE);
    if (slice.length === 0) return crc;
    crc = hashSlice(slice, crc);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function hashSlice(versions: readonly { key: string; v: Version }[], crc: number): number {
  const revision = new Uint8Array(18);
  const view = new DataView(revision.buffer);
  revision[8] = 0x5f; // '_'
  revision[17] = 0x74; // 't', written only for a tombstone
  for (const { key, v } of versions) {
    view.setUint32(0, Math.floor(v.main / TWO_32));
    view.setUint32(4, v.main % TWO_32);
    view.setUint32(9, Math.floor(v.sub / TWO_32));
    view.setUint32(13, v.sub % TWO_32);
    const tombstone = v.value === null;
    crc = crc32cRange(revision, 0, tombstone ? 18 : 17, crc);
    const kv = tombstone ? { key: latin1ToBytes(key), createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n } : toKeyValue(key, v);
    crc = crc32c(KeyValue.encode(kv), crc);
  }
  return crc;
}
