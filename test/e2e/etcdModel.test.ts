// Random requests, the same to raftkv and to etcd 3.4: a seeded stream of
// Put, Range, DeleteRange, Txn (with nested Txns) and Compact, built with
// every field etcd's API has (those etcdctl cannot set too: count_only, the
// min/max mod and create revision filters, compares over a range, nested
// transactions), goes to a fresh 3-member raftkv cluster and to a fresh
// etcd member in the same order, and every answer must be the same: the
// same response (all of it but the outer header's cluster, member and term)
// or the same gRPC status and message. etcd is the model; the generator
// knows nothing of what the answers should be.
//
// A second set of streams moves raftkv's leadership every 20 requests while
// a request is under way; raftkv's client retries with exactly-once
// metadata, and the answers must still be etcd's.
//
// RAFTKV_MODEL_SEEDS=1-20 runs other seeds (default 1-4),
// RAFTKV_MODEL_MOVE_SEEDS those with leader moves (default 1-2), either
// empty for none, RAFTKV_MODEL_OPS the number of requests per seed
// (default 400).

import assert from 'node:assert/strict';
import { type TestContext, after, before, describe, it } from 'node:test';

import { GrpcStatusError, RaftKvClient, prefixEnd } from '../../src/client/index.js';
import * as kv from '../../src/kv/types.js';
import { Random } from '../../src/sim/random.js';
import { type SideBySide, etcdSkipReason, startSideBySide } from './fixtures/etcdServer.js';

const KEYS = ['a', 'a/1', 'a/2', 'a0', 'b', 'b/1', 'c'];
const VALUES = ['', '1', '2', '10', 'x', 'yy'];

const enc = (s: string): Uint8Array => Buffer.from(s);
const EMPTY = new Uint8Array(0);

/** Requests drawn at random over a few keys, so that they meet: the same keys are written, read, compared and deleted. */
class Requests {
  /** The highest revision either store may be at (an upper bound: revisions past it are future ones). */
  revision = 1;
  /** Create and mod revisions seen in answers: the filters and compares hit their edges when they use these. */
  private readonly seen: number[] = [];

  constructor(private readonly r: Random) {}

  private pick<T>(xs: readonly T[]): T {
    return xs[this.r.int(xs.length)]!;
  }

  private key(): Uint8Array {
    return enc(this.pick(KEYS));
  }

  /** A range end for `key`: none (the key alone), its prefix, everything from it, another key (maybe below it: an empty range). */
  private rangeEnd(key: Uint8Array): Uint8Array {
    switch (this.r.int(5)) {
      case 0:
      case 1:
        return EMPTY;
      case 2:
        return prefixEnd(key);
      case 3:
        return enc('\0');
      default:
        return this.key();
    }
  }

  /** Notes the revisions of every key-value in an answer (prev_kvs and a txn's responses included). */
  observe(answer: unknown): void {
    if (Array.isArray(answer)) {
      for (const x of answer) this.observe(x);
      return;
    }
    if (answer === null || typeof answer !== 'object') return;
    const o = answer as Record<string, unknown>;
    if (typeof o.modRevision === 'number' && typeof o.createRevision === 'number') this.seen.push(o.modRevision, o.createRevision);
    for (const v of Object.values(o)) this.observe(v);
  }

  /** A revision one of the stores has shown, give or take one; or any up to the latest. */
  private nearRevision(): number {
    if (this.seen.length > 0 && this.r.chance(0.7)) {
      const at = this.seen[this.r.int(this.seen.length)]!;
      return this.r.chance(0.5) ? at : Math.max(1, at + (this.r.chance(0.5) ? 1 : -1));
    }
    return 1 + this.r.int(this.revision);
  }

  /** 0 (none), a revision seen so far, or now and then one past it. */
  private rev(): number {
    if (this.r.chance(0.5)) return 0;
    return this.r.chance(0.1) ? this.revision + 1 + this.r.int(3) : this.nearRevision();
  }

  range(): kv.RangeRequest {
    const key = this.key();
    return kv.rangeRequest({
      key,
      rangeEnd: this.rangeEnd(key),
      limit: this.r.chance(0.3) ? this.r.int(4) : 0,
      revision: this.rev(),
      sortOrder: this.r.int(3),
      sortTarget: this.r.int(5),
      keysOnly: this.r.chance(0.2),
      countOnly: this.r.chance(0.15),
      minModRevision: this.r.chance(0.2) ? this.rev() : 0,
      maxModRevision: this.r.chance(0.2) ? this.rev() : 0,
      minCreateRevision: this.r.chance(0.2) ? this.rev() : 0,
      maxCreateRevision: this.r.chance(0.2) ? this.rev() : 0,
    });
  }

  put(): kv.PutRequest {
    return {
      key: this.key(),
      value: enc(this.pick(VALUES)),
      lease: this.r.chance(0.03) ? 0x1234n : 0n,
      prevKv: this.r.chance(0.4),
      ignoreValue: this.r.chance(0.1),
      ignoreLease: this.r.chance(0.1),
    };
  }

  /** Mostly one key: a store swept often holds only new keys, whose create and mod revisions are the same. */
  deleteRange(): kv.DeleteRangeRequest {
    const key = this.key();
    return { key, rangeEnd: this.r.chance(0.7) ? EMPTY : this.rangeEnd(key), prevKv: this.r.chance(0.5) };
  }

  compare(): kv.Compare {
    const key = this.key();
    const target = this.r.int(5) as kv.CompareTarget;
    const n = () => (this.r.chance(0.1) ? 0 : this.nearRevision());
    const targetUnion =
      target === kv.CompareTarget.VALUE ? { value: enc(this.pick(VALUES)) }
      : target === kv.CompareTarget.VERSION ? { version: this.r.int(4) }
      : target === kv.CompareTarget.CREATE ? { createRevision: n() }
      : target === kv.CompareTarget.MOD ? { modRevision: n() }
      : { lease: 0n };
    return { result: this.r.int(4), target, key, targetUnion, rangeEnd: this.r.chance(0.2) ? this.rangeEnd(key) : EMPTY };
  }

  private requestOp(depth: number): kv.RequestOp {
    const k = this.r.int(depth < 2 ? 7 : 6);
    if (k < 2) return { requestRange: this.range() };
    if (k < 4) return { requestPut: this.put() };
    if (k < 6) return { requestDeleteRange: this.deleteRange() };
    return { requestTxn: this.txn(depth + 1) };
  }

  txn(depth = 0): kv.TxnRequest {
    const ops = (n: number) => Array.from({ length: this.r.int(n) }, () => this.requestOp(depth));
    const txn = { compare: Array.from({ length: this.r.int(3) }, () => this.compare()), success: ops(4), failure: ops(3) };
    if (depth === 0) avoidEtcdTxnPanic(txn);
    return txn;
  }
}

/**
 * etcd 3.4 crashes on one kind of transaction, so the stream leaves it out:
 * a DeleteRange to the end of the keyspace (range_end "\0"), then a Put
 * with ignore_value or ignore_lease of a key it deleted. etcd's duplicate
 * check takes "\0" literally (an empty interval) and lets the txn through;
 * the put then finds no key, and etcd panics ("unexpected error during txn:
 * etcdserver: key not found", v3 applier) with the entry in its log, so a
 * restart panics again. raftkv refuses it with etcd's error and applies
 * nothing (the last case below). Here: such a txn keeps its puts' ignore
 * flags off.
 */
function avoidEtcdTxnPanic(txn: kv.TxnRequest): void {
  const ops = (t: kv.TxnRequest): kv.RequestOp[] => [...t.success, ...t.failure].flatMap((op) => ('requestTxn' in op ? [op, ...ops(op.requestTxn)] : [op]));
  const all = ops(txn);
  if (!all.some((op) => 'requestDeleteRange' in op && Buffer.from(op.requestDeleteRange.rangeEnd).equals(Buffer.from('\0')))) return;
  for (const op of all) {
    if ('requestPut' in op) {
      op.requestPut.ignoreValue = false;
      op.requestPut.ignoreLease = false;
    }
  }
}

/** A request as JSON with bytes as text and bigints as numbers: what a failure message shows. */
function show(request: unknown): string {
  return JSON.stringify(request, (_k, v: unknown) => {
    // Buffers arrive here already as their toJSON(): { type: 'Buffer', data }.
    if (v !== null && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer') return Buffer.from((v as { data: number[] }).data).toString();
    if (v instanceof Uint8Array) return Buffer.from(v).toString();
    return typeof v === 'bigint' ? Number(v) : v;
  });
}

type Outcome = { ok: unknown } | { status: number; message: string };

/** The response without the outer header's cluster, member and term (they name the cluster); inner headers stay. */
function comparable(res: { header?: kv.ResponseHeader }): unknown {
  if (res.header === undefined) return res;
  const { clusterId: _c, memberId: _m, raftTerm: _t, ...header } = res.header;
  return { ...res, header };
}

async function outcome(call: Promise<{ header?: kv.ResponseHeader }>): Promise<Outcome> {
  try {
    return { ok: comparable(await call) };
  } catch (e) {
    if (e instanceof GrpcStatusError) return { status: e.grpcStatus, message: e.message };
    throw e;
  }
}

function seedsFromEnv(name: string, fallback: string): number[] {
  const spec = (process.env[name] ?? fallback).trim();
  if (spec === '') return [];
  const m = /^(\d+)(?:-(\d+))?$/.exec(spec);
  if (!m) throw new Error(`${name} must be N or N-M, got ${JSON.stringify(spec)}`);
  const lo = Number(m[1]);
  const hi = Number(m[2] ?? m[1]);
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

const skip = etcdSkipReason();
const OPS = Number(process.env.RAFTKV_MODEL_OPS ?? 400);

interface StreamOptions {
  /** Every this many requests, raftkv's leader hands over to another member while the next request is under way. */
  readonly moveLeaderEvery?: number;
}

/** Moves raftkv's leadership to another voter (without waiting): the request sent meanwhile meets the change. */
async function startLeaderMove(client: RaftKvClient, endpoints: readonly string[], r: Random): Promise<{ done: Promise<void> }> {
  const statuses = await Promise.all(endpoints.map(async (e) => ({ e, st: await client.status(e) })));
  const leader = statuses.find((x) => x.st.header.memberId === x.st.leader);
  if (leader === undefined) return { done: Promise.resolve() };
  const others = statuses.filter((x) => x !== leader);
  const target = others[r.int(others.length)]!.st.header.memberId;
  return { done: client.moveLeader(leader.e, target) };
}

/** One seeded stream of requests to both servers, in the same order; every answer must be the same. */
async function runStream(t: TestContext, seed: number, ours: RaftKvClient, theirs: RaftKvClient, oursEndpoints: readonly string[], options: StreamOptions = {}): Promise<void> {
  const gen = new Requests(new Random(seed));
  const r = new Random(seed).fork('kinds');
  const moves = new Random(seed).fork('moves');
  let answered = 0;
  let refused = 0;
  let leaderMoves = 0;
  const errors = new Map<string, number>();
  /** Ranges with a revision filter whose answer kept some keys: the filters' edges are reached only through these. */
  let filteredHits = 0;
  for (let i = 0; i < OPS; i++) {
    const k = r.int(40);
    let what: string;
    let send: (c: RaftKvClient) => Promise<{ header?: kv.ResponseHeader }>;
    if (k < 12) {
      const req = gen.range();
      what = `Range ${show(req)}`;
      send = (c) => c.range(req);
      if (req.minModRevision || req.maxModRevision || req.minCreateRevision || req.maxCreateRevision) what = `Range (filtered) ${show(req)}`;
    } else if (k < 24) {
      const req = gen.put();
      what = `Put ${show(req)}`;
      send = (c) => c.put(req.key, req.value, req);
    } else if (k < 28) {
      const req = gen.deleteRange();
      what = `DeleteRange ${show(req)}`;
      send = (c) => c.delete(req.key, req);
    } else if (k < 39) {
      const req = gen.txn();
      what = `Txn ${show(req)}`;
      send = (c) => c.txn(req);
    } else {
      // Mostly well behind the head, so that older revisions stay readable for a while; now and then past it.
      const rev = r.chance(0.1) ? gen.revision + 1 + r.int(2) : Math.max(1, gen.revision - 5 - r.int(30));
      const physical = r.chance(0.5);
      what = `Compact(${rev}${physical ? ', physical' : ''})`;
      send = (c) => c.compact(rev, physical);
    }
    let move: { done: Promise<void> } | undefined;
    if (options.moveLeaderEvery !== undefined && i > 0 && i % options.moveLeaderEvery === 0) {
      move = await startLeaderMove(ours, oursEndpoints, moves);
      leaderMoves++;
      // Into the handover: the old leader stops taking proposals once it has sent TimeoutNow.
      await new Promise((res) => setTimeout(res, moves.int(4)));
    }
    const a = await outcome(send(ours));
    await move?.done;
    const b = await outcome(send(theirs));
    assert.deepEqual(a, b, `seed ${seed}, request ${i}: ${what}`);
    if ('ok' in b) {
      answered++;
      gen.observe(b.ok);
      if (what.startsWith('Range (filtered)') && ((b.ok as kv.RangeResponse).kvs.length > 0 || (b.ok as kv.RangeResponse).count > 0)) filteredHits++;
      const rev = (b.ok as { header?: kv.ResponseHeader }).header?.revision;
      if (rev !== undefined) gen.revision = Math.max(gen.revision, rev);
    } else {
      refused++;
      errors.set(b.message, (errors.get(b.message) ?? 0) + 1);
    }
  }
  let moved = '';
  if (leaderMoves > 0) {
    // What the moves did to requests: proposals the members dropped or failed (the client retried those).
    const failed = await Promise.all(oursEndpoints.map(async (e) => Number(/^etcd_server_proposals_failed_total (\d+)/m.exec(await (await fetch(`${e}/metrics`)).text())?.[1] ?? 0)));
    const failedTotal = failed.reduce((x, y) => x + y, 0);
    moved = `; raftkv's leader moved ${leaderMoves} times, ${failedTotal} proposals failed on the way`;
    assert.ok(failedTotal > 0, `the leader moved ${leaderMoves} times and no request met a change: the retries went untested`);
  }
  t.diagnostic(
    `${filteredHits} filtered ranges kept keys; ${answered} answered, ${refused} refused ` +
      `(${[...errors].map(([m, n]) => `${n} x ${m}`).join('; ')}), last revision ${gen.revision}${moved}`,
  );
  // The stream must exercise both outcomes, or it tests little.
  assert.ok(answered > OPS / 2, `only ${answered} of ${OPS} requests were answered`);
  assert.ok(refused > 0, "no request was refused: the stream reaches none of etcd's errors");
}

/** A fresh raftkv cluster and etcd member per seed (a failing seed reproduces alone), and a client for each. */
function sideBySide(seed: number, name: string, exactlyOnce: boolean): () => { servers: SideBySide; ours: RaftKvClient; theirs: RaftKvClient } {
  let servers: SideBySide | undefined;
  let ours: RaftKvClient | undefined;
  let theirs: RaftKvClient | undefined;
  before(async () => {
    servers = await startSideBySide(`${name}-${seed}`);
    ours = new RaftKvClient({ endpoints: servers.cluster.endpoints, exactlyOnce });
    theirs = new RaftKvClient({ endpoints: [servers.etcd.url], exactlyOnce: false });
  });
  after(async () => {
    ours?.close();
    theirs?.close();
    await servers?.stop();
  });
  return () => ({ servers: servers!, ours: ours!, theirs: theirs! });
}

for (const seed of seedsFromEnv('RAFTKV_MODEL_SEEDS', '1-4')) {
  describe(`random requests, seed ${seed}: raftkv answers as etcd 3.4 does`, { skip, timeout: 300_000 }, () => {
    const get = sideBySide(seed, 'model', false);
    it(`${OPS} requests of every kind, the same answers`, async (t) => {
      const { servers, ours, theirs } = get();
      await runStream(t, seed, ours, theirs, servers.cluster.endpoints);
    });
  });
}

// The same stream while raftkv's leadership moves under it: requests that
// meet a leader change are retried by raftkv's client with exactly-once
// metadata, and must still be answered as etcd answers them, once.
for (const seed of seedsFromEnv('RAFTKV_MODEL_MOVE_SEEDS', '1-2')) {
  describe(`random requests, seed ${seed}, raftkv's leader moved every 20: the same answers as etcd 3.4`, { skip, timeout: 300_000 }, () => {
    const get = sideBySide(seed, 'model-moves', true);
    it(`${OPS} requests, exactly-once retries across leader changes`, async (t) => {
      const { servers, ours, theirs } = get();
      await runStream(t, seed, ours, theirs, servers.cluster.endpoints, { moveLeaderEvery: 20 });
    });
  });
}
