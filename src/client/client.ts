// The raftkv client: etcd's v3 KV calls plus raftkv's Increment, over
// HTTP/2 (transport.ts) to a list of endpoints, with failover and
// exactly-once writes.
//
// Failover: calls go to one endpoint at a time; a connection failure or an
// UNAVAILABLE status moves to the next endpoint and sends the call again,
// round the list with a growing pause, until the call's timeout. So does an
// attempt left unanswered for attemptTimeoutMs, when the call can be sent
// again safely (a read, or a write with exactly-once metadata): a member
// cut off from the rest of the cluster, or frozen, would otherwise hold it
// for the whole timeout.
//
// Exactly-once (Raft dissertation §6.3): every write (put, delete, txn,
// compact, increment) carries the client's random id and a sequence number
// that stays the same on every retry of that write, so a server that
// applied it already answers with the saved result instead of applying it
// twice; and the lowest sequence number still in flight, so the server can
// forget the results below it. Reads carry none.
//
// A server that does not know the client id (a session that expired, or
// one that never reached the log: writes refused before they were proposed,
// e.g. an empty key, still use up sequence numbers) refuses any write whose
// ack is past 1, since an earlier attempt of it may have been applied in a
// session now gone. The client then starts a new session (a new id, seq 1):
// the refused write is sent again under it if no earlier attempt of it can
// have run, and fails (outcome unknown) otherwise; later writes use the new
// session either way.

import { randomBytes as cryptoRandomBytes } from 'node:crypto';

import type * as kv from '../kv/types.js';
import { type MethodDescriptor, methods, newRangeRequest } from '../server/etcdpb.js';
import { ACK_HEADER, CLIENT_ID_HEADER, type HashKVResponse, type MemberListRequest, SEQ_HEADER } from '../server/types.js';
import { ClientArgumentError, ClientClosedError, GrpcStatusError, isDeadlineExceeded, isSessionExpired, isUnavailable } from './errors.js';
import { Channel, type Metadata } from './transport.js';

export type Bytes = string | Uint8Array;

export interface ClientOptions {
  /** "host:port" or "http://host:port" of each member's client URL. */
  readonly endpoints: readonly string[];
  /** How long a call may take, retries included (default 5000 ms, etcdctl's --command-timeout). */
  readonly timeoutMs?: number;
  /** Per endpoint: how long to wait for a connection before moving on (default 1000 ms). */
  readonly connectTimeoutMs?: number;
  /**
   * How long one attempt of a call that can safely be sent again (a read,
   * or a write with exactly-once metadata) waits for its answer before the
   * call moves on to the next endpoint (default: a third of timeoutMs, at
   * least 1000 ms). A member cut off from the others holds a write until
   * its own request timeout (etcd's: 5 s plus two election timeouts), longer
   * than a whole call's default timeout.
   */
  readonly attemptTimeoutMs?: number;
  /** Send exactly-once metadata with writes (default true). */
  readonly exactlyOnce?: boolean;
  /** The source of the client id's 8 random bytes (default node:crypto). */
  readonly randomBytes?: (n: number) => Uint8Array;
}

export interface GetOptions extends Partial<Omit<kv.RangeRequest, 'key'>> {
  /** Every key with `key` as a prefix (sets rangeEnd). */
  readonly prefix?: boolean;
}

export interface PutOptions {
  readonly lease?: bigint;
  readonly prevKv?: boolean;
  readonly ignoreValue?: boolean;
  readonly ignoreLease?: boolean;
}

export interface DeleteOptions {
  readonly rangeEnd?: Uint8Array;
  /** Every key with `key` as a prefix (sets rangeEnd). */
  readonly prefix?: boolean;
  readonly prevKv?: boolean;
}

const EMPTY = new Uint8Array(0);

/** UTF-8 bytes of a string key or value; bytes as they are. */
export function bytes(v: Bytes): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

/**
 * The end of the range of keys starting with `prefix` (etcd's
 * clientv3.GetPrefixRangeEnd): the prefix with its last byte below 0xff
 * incremented and what follows dropped; "\0" (every key) if there is none.
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      // A copy (Buffer.prototype.slice would be a view of the key).
      const end = Uint8Array.from(prefix.subarray(0, i + 1));
      end[i]!++;
      return end;
    }
  }
  return new Uint8Array([0]);
}

/** "host:port" or "http://host:port" as "http://host:port". */
function endpointUrl(e: string): string {
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(e) ? e : `http://${e}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ClientArgumentError(`endpoint "${e}" is not host:port or http://host:port`);
  }
  if (parsed.protocol !== 'http:') throw new ClientArgumentError(`endpoint "${e}": only http:// (cleartext HTTP/2) is supported`);
  if (parsed.port === '') throw new ClientArgumentError(`endpoint "${e}" has no port`);
  return `http://${parsed.host}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One exactly-once session: an id and its sequence numbers. */
class Session {
  private nextSeq = 1;
  /** Sequence numbers of writes not finished yet; the lowest is sent as the ack. */
  private readonly inFlight = new Set<number>();
  private lowestInFlight = 1;

  constructor(readonly clientId: string) {}

  begin(): number {
    const seq = this.nextSeq++;
    this.inFlight.add(seq);
    return seq;
  }

  metadata(seq: number): Metadata {
    return { [CLIENT_ID_HEADER]: this.clientId, [SEQ_HEADER]: String(seq), [ACK_HEADER]: String(this.lowestInFlight) };
  }

  /** A write is answered or given up: the ack moves past every finished sequence number. */
  finished(seq: number): void {
    this.inFlight.delete(seq);
    while (this.lowestInFlight < this.nextSeq && !this.inFlight.has(this.lowestInFlight)) this.lowestInFlight++;
  }
}

export class RaftKvClient {
  readonly endpoints: readonly string[];
  private readonly channels: Channel[];
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly exactlyOnce: boolean;
  private readonly randomBytes: (n: number) => Uint8Array;
  /** The endpoint calls go to now (an index into channels). */
  private current = 0;
  private sessionNow: Session;
  private closed = false;

  constructor(options: ClientOptions) {
    if (options.endpoints.length === 0) throw new ClientArgumentError('no endpoints given');
    this.endpoints = options.endpoints.map(endpointUrl);
    const connectTimeoutMs = options.connectTimeoutMs ?? 1000;
    this.channels = this.endpoints.map((url) => new Channel(url, { connectTimeoutMs }));
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? Math.max(1000, this.timeoutMs / 3);
    this.exactlyOnce = options.exactlyOnce ?? true;
    this.randomBytes = options.randomBytes ?? cryptoRandomBytes;
    this.sessionNow = this.newSession();
  }

  /** This client's id in exactly-once metadata now: 16 hex digits (a new one after the server forgot the last). */
  get clientId(): string {
    return this.sessionNow.clientId;
  }

  private newSession(): Session {
    const id = this.randomBytes(8);
    if (id.length !== 8) throw new ClientArgumentError(`randomBytes(8) returned ${id.length} bytes`);
    return new Session(Buffer.from(id).toString('hex'));
  }

  // -------------------------------------------------------------------------
  // etcd's KV

  /** The key, or with options a range of keys (etcd's Range). */
  get(key: Bytes, options: GetOptions = {}): Promise<kv.RangeResponse> {
    const { prefix, ...rest } = options;
    const k = bytes(key);
    const req = newRangeRequest();
    // Options left undefined keep the defaults.
    for (const [name, v] of Object.entries(rest) as [keyof typeof rest, never][]) if (v !== undefined) req[name] = v;
    req.key = k;
    if (prefix) req.rangeEnd = prefixEnd(k);
    return this.call(methods.range, req, false);
  }

  /** The full RangeRequest, as etcd takes it. */
  range(request: kv.RangeRequest): Promise<kv.RangeResponse> {
    return this.call(methods.range, request, false);
  }

  put(key: Bytes, value: Bytes, options: PutOptions = {}): Promise<kv.PutResponse> {
    return this.call(
      methods.put,
      {
        key: bytes(key),
        value: bytes(value),
        lease: options.lease ?? 0n,
        prevKv: options.prevKv ?? false,
        ignoreValue: options.ignoreValue ?? false,
        ignoreLease: options.ignoreLease ?? false,
      },
      true,
    );
  }

  delete(key: Bytes, options: DeleteOptions = {}): Promise<kv.DeleteRangeResponse> {
    const k = bytes(key);
    const rangeEnd = options.prefix ? prefixEnd(k) : (options.rangeEnd ?? EMPTY);
    return this.call(methods.deleteRange, { key: k, rangeEnd, prevKv: options.prevKv ?? false }, true);
  }

  txn(request: kv.TxnRequest): Promise<kv.TxnResponse> {
    return this.call(methods.txn, request, true);
  }

  compact(revision: number, physical = false): Promise<kv.CompactionResponse> {
    return this.call(methods.compact, { revision, physical }, true);
  }

  /** raftkv's KVExt.Increment: adds `delta` to the integer at `key` (missing: 0). */
  increment(key: Bytes, delta = 1): Promise<kv.IncrementResponse> {
    if (!Number.isSafeInteger(delta)) return Promise.reject(new ClientArgumentError(`delta must be a safe integer, got ${delta}`));
    return this.call(methods.increment, { key: bytes(key), delta }, true);
  }

  // -------------------------------------------------------------------------
  // Maintenance and Cluster

  /**
   * Maintenance.Status of one member: `endpoint` (one of the endpoints, as
   * given or as http://host:port), without failover, as `etcdctl endpoint
   * status` asks each; without it, whichever member answers.
   */
  async status(endpoint?: string): Promise<kv.StatusResponse> {
    if (endpoint === undefined) return this.call(methods.status, {}, false);
    return this.channel(endpoint).unary(methods.status, {}, undefined, this.timeoutMs);
  }

  /**
   * etcd's HashKV of one member (`endpoint`, one of this client's): a hash
   * of its key-value history at `revision` (0: its current revision), to
   * compare members (at the same revision and compaction revision).
   */
  async hashKV(endpoint: string, revision = 0): Promise<HashKVResponse> {
    return this.channel(endpoint).unary(methods.hashKV, { revision }, undefined, this.timeoutMs);
  }

  /**
   * etcd's MoveLeader, sent to `endpoint` (one of this client's), which must
   * be the leader: it hands leadership to member `targetId` and answers once
   * it sees it lead (as `etcdctl move-leader`, which finds the leader first).
   */
  async moveLeader(endpoint: string, targetId: bigint): Promise<void> {
    await this.channel(endpoint).unary(methods.moveLeader, { targetId }, undefined, this.timeoutMs);
  }

  /** The connection to `endpoint`, one of this client's. */
  private channel(endpoint: string): Channel {
    const i = this.endpoints.indexOf(endpointUrl(endpoint));
    if (i < 0) throw new ClientArgumentError(`${endpoint} is not one of this client's endpoints (${this.endpoints.join(', ')})`);
    this.checkOpen();
    return this.channels[i]!;
  }

  memberList(request: MemberListRequest = { linearizable: false }): Promise<kv.MemberListResponse> {
    return this.call(methods.memberList, request, false);
  }

  /** Closes the connections; calls in flight fail, later calls throw ClientClosedError. */
  close(): void {
    this.closed = true;
    for (const c of this.channels) c.close();
  }

  // -------------------------------------------------------------------------

  private checkOpen(): void {
    if (this.closed) throw new ClientClosedError();
  }

  /**
   * Sends a call to the current endpoint, failing over to the next on
   * UNAVAILABLE (a connection failure included) until the timeout. A write
   * keeps its sequence number across attempts; without exactly-once, a
   * write is sent again only if it surely did not run.
   */
  private async call<Req, Res>(method: MethodDescriptor<Req, Res>, request: Req, write: boolean): Promise<Res> {
    this.checkOpen();
    const deadline = performance.now() + this.timeoutMs;
    let session = write && this.exactlyOnce ? this.sessionNow : undefined;
    let seq = session?.begin() ?? 0;
    /** Whether an attempt of this write may have been applied (it reached a server, which may have proposed it). */
    let mayHaveRun = false;
    /** A call sent again after an unanswered attempt can at worst run twice: only reads, and writes the server deduplicates. */
    const repeatable = !write || this.exactlyOnce;
    try {
      let pause = 25;
      for (let attempt = 1; ; attempt++) {
        const i = this.current;
        const channel = this.channels[i]!;
        const metadata = session?.metadata(seq);
        const untilDeadline = Math.max(1, deadline - performance.now());
        try {
          return await channel.unary(method, request, metadata, repeatable ? Math.min(untilDeadline, this.attemptTimeoutMs) : untilDeadline);
        } catch (e) {
          this.checkOpen();
          if (session !== undefined && isSessionExpired(e)) {
            // The server knows no session by this id (see the top of the file).
            if (this.sessionNow === session) this.sessionNow = this.newSession();
            if (mayHaveRun || deadline - performance.now() <= 0) throw e;
            session.finished(seq);
            session = this.sessionNow;
            seq = session.begin();
            continue;
          }
          if (e instanceof GrpcStatusError && e.requestMayHaveRun) mayHaveRun = true;
          // The attempt's own limit passed, not the call's: try the next endpoint.
          const unanswered = repeatable && isDeadlineExceeded(e) && deadline - performance.now() > 0;
          if (!unanswered && (!isUnavailable(e) || (write && !this.exactlyOnce && (e as GrpcStatusError).requestMayHaveRun))) throw e;
          if (this.current === i) this.current = (i + 1) % this.channels.length;
          const left = deadline - performance.now();
          if (left <= 0) throw e;
          // Once round the whole list, pause before the next round.
          if (attempt % this.channels.length === 0) {
            await sleep(Math.min(pause, left));
            pause = Math.min(pause * 2, 1000);
            if (deadline - performance.now() <= 0) throw e;
          }
        }
      }
    } finally {
      session?.finished(seq);
    }
  }
}
