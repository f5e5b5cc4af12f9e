// The raftkv client (src/client) against the lean gRPC server with an
// in-memory fake of the key-value layer: every call, typed errors, failover
// between endpoints, retries that keep their sequence number, the
// exactly-once metadata, timeouts and close; and its HTTP/2 transport
// against node:http2's server (nghttp2), another implementation than raftkv's.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';

import { ClientArgumentError, ClientClosedError, GrpcStatusError, RaftKvClient, prefixEnd } from '../../src/client/index.js';
import { Channel } from '../../src/client/transport.js';
import { RangeRequest, RangeResponse, methods, newRangeRequest } from '../../src/server/etcdpb.js';
import { GrpcError, GrpcServer, addEtcdServices, sessionMetadata } from '../../src/server/grpc.js';
import { GrpcStatus, type SessionMetadata } from '../../src/server/types.js';
import { sessionExpired } from '../../src/kv/errors.js';
import { CLUSTER_ID, FakeEtcd, MEMBER_ID } from '../e2e/fixtures/etcdFake.js';

const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString());
/** Deterministic client ids for the tests. */
const fixedId = (byte: number) => (n: number) => new Uint8Array(n).fill(byte);

async function serve(fake: FakeEtcd): Promise<{ server: GrpcServer; endpoint: string }> {
  const server = new GrpcServer();
  addEtcdServices(server, fake.handlers());
  const { port } = await server.listen(0);
  return { server, endpoint: `127.0.0.1:${port}` };
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

describe('raftkv client: calls', () => {
  const fake = new FakeEtcd();
  let server: GrpcServer;
  let client: RaftKvClient;

  before(async () => {
    const s = await serve(fake);
    server = s.server;
    client = new RaftKvClient({ endpoints: [s.endpoint], randomBytes: fixedId(0xab) });
  });
  after(async () => {
    client.close();
    await server.close(100);
  });

  it('puts and gets, with the header from the server', async () => {
    const put = await client.put('a/1', 'one');
    assert.equal(put.header.clusterId, CLUSTER_ID);
    assert.equal(put.header.memberId, MEMBER_ID);
    const rev = put.header.revision;
    const got = await client.get('a/1');
    assert.equal(got.count, 1);
    assert.equal(text(got.kvs[0]!.value), 'one');
    assert.equal(got.kvs[0]!.modRevision, rev);
    const prev = await client.put('a/1', 'uno', { prevKv: true });
    assert.equal(text(prev.prevKv?.value), 'one');
  });

  it('gets a prefix, deletes a prefix and counts', async () => {
    await client.put('p/x', '1');
    await client.put('p/y', '2');
    await client.put('q', '3');
    const r = await client.get('p/', { prefix: true });
    assert.deepEqual(r.kvs.map((x) => text(x.key)), ['p/x', 'p/y']);
    const limited = await client.get('p/', { prefix: true, limit: 1, revision: undefined });
    assert.equal(limited.kvs.length, 1);
    assert.equal(limited.more, true);
    const d = await client.delete('p/', { prefix: true, prevKv: true });
    assert.equal(d.deleted, 2);
    assert.deepEqual(d.prevKvs.map((x) => text(x.value)), ['1', '2']);
    assert.equal((await client.get('p/', { prefix: true })).count, 0);
    assert.equal((await client.get('q')).count, 1);
  });

  it('runs a txn with compares and nested ops', async () => {
    await client.put('t', 'v1');
    const r = await client.txn({
      compare: [{ result: 0, target: 3, key: Buffer.from('t'), targetUnion: { value: Buffer.from('v1') }, rangeEnd: new Uint8Array(0) }],
      success: [
        { requestPut: { key: Buffer.from('t'), value: Buffer.from('v2'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } },
        { requestTxn: { compare: [], success: [{ requestDeleteRange: { key: Buffer.from('q'), rangeEnd: new Uint8Array(0), prevKv: false } }], failure: [] } },
      ],
      failure: [],
    });
    assert.equal(r.succeeded, true);
    assert.equal(r.responses.length, 2);
    const nested = r.responses[1]!;
    assert.ok('responseTxn' in nested);
    const inner = nested.responseTxn.responses[0]!;
    assert.ok('responseDeleteRange' in inner && inner.responseDeleteRange.deleted === 1);
    assert.equal(text((await client.get('t')).kvs[0]!.value), 'v2');
  });

  it('compacts, increments, and reads status and members', async () => {
    const rev = (await client.put('c', '1')).header.revision;
    await client.compact(rev);
    assert.equal(fake.compacted, rev);
    const inc = await client.increment('counter', 5);
    assert.equal(inc.value, 5);
    assert.equal((await client.increment('counter', -7)).value, -2);
    assert.equal(text((await client.get('counter')).kvs[0]!.value), '-2');
    const st = await client.status();
    assert.equal(st.version, '3.4.0');
    assert.equal(st.leader, MEMBER_ID);
    assert.deepEqual(await client.status(client.endpoints[0]!), st);
    const members = await client.memberList();
    assert.equal(members.members[0]!.name, 'node1');
    assert.equal(members.members[0]!.id, MEMBER_ID);
  });

  it('fails with a typed error carrying the status and etcd\'s message', async () => {
    await assert.rejects(client.put('', 'x'), (e: unknown) => {
      assert.ok(e instanceof GrpcStatusError);
      assert.equal(e.grpcStatus, GrpcStatus.INVALID_ARGUMENT);
      assert.equal(e.statusName, 'INVALID_ARGUMENT');
      assert.equal(e.message, 'etcdserver: key is not provided');
      assert.equal(e.code, 'GRPC_STATUS');
      return true;
    });
    await assert.rejects(client.compact(1), /required revision has been compacted/);
    await assert.rejects(client.increment('k', 0.5), ClientArgumentError);
    await assert.rejects(client.status('127.0.0.1:1'), ClientArgumentError);
    assert.throws(() => new RaftKvClient({ endpoints: ['https://127.0.0.1:2379'] }), /only http:\/\//);
    assert.throws(() => new RaftKvClient({ endpoints: [] }), ClientArgumentError);
  });

  it('sends a client id, a growing seq and the ack with writes only', async () => {
    fake.sessions.length = 0;
    await client.put('s', '1');
    await client.put('s', '2');
    await client.get('s');
    await client.delete('s');
    const [a, b, c] = fake.sessions as SessionMetadata[];
    assert.equal(fake.sessions.length, 3, 'the get carried no session');
    assert.equal(a!.clientId, 0xababababababababn);
    assert.equal(client.clientId, 'abababababababab');
    assert.equal(b!.seq, a!.seq + 1);
    assert.equal(c!.seq, b!.seq + 1);
    // Nothing else in flight: the ack is the write's own seq.
    for (const s of [a, b, c]) assert.equal(s!.ack, s!.seq);
  });

  it('rejects calls after close', async () => {
    const c = new RaftKvClient({ endpoints: client.endpoints });
    await c.put('x', 'y');
    c.close();
    await assert.rejects(c.get('x'), ClientClosedError);
  });
});

describe('raftkv client: exactly-once and failover', () => {
  it('keeps the ack at the lowest write still in flight', async () => {
    const seen: SessionMetadata[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const server = new GrpcServer();
    server.addUnary(methods.put, async (req, call) => {
      seen.push(sessionMetadata(call)!);
      if (Buffer.from(req.key).toString() === 'slow') await held;
      return { header: { clusterId: 0n, memberId: 0n, revision: 1, raftTerm: 1 } };
    });
    const { port } = await server.listen(0);
    const client = new RaftKvClient({ endpoints: [`127.0.0.1:${port}`], randomBytes: fixedId(1) });
    try {
      const slow = client.put('slow', 'x'); // seq 1, held
      await new Promise((resolve) => setTimeout(resolve, 20));
      await client.put('fast', 'x'); // seq 2
      await client.put('fast', 'x'); // seq 3
      release();
      await slow;
      await client.put('after', 'x'); // seq 4
      assert.deepEqual(
        seen.map((s) => [s.seq, s.ack]),
        [
          [1, 1],
          [2, 1],
          [3, 1],
          [4, 4],
        ],
      );
    } finally {
      client.close();
      await server.close(100);
    }
  });

  it('fails over past a dead endpoint and one answering UNAVAILABLE, retrying with the same seq', async () => {
    const seen: [string, SessionMetadata][] = [];
    const unavailable = new GrpcServer();
    unavailable.addUnary(methods.put, (_req, call) => {
      seen.push(['unavailable', sessionMetadata(call)!]);
      throw new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: leader changed');
    });
    const fake = new FakeEtcd();
    const good = new GrpcServer();
    const handlers = fake.handlers();
    good.addUnary(methods.put, (req, call) => {
      seen.push(['good', sessionMetadata(call)!]);
      return handlers.put(req, call);
    });
    const a = await unavailable.listen(0);
    const b = await good.listen(0);
    const dead = await deadPort();
    const client = new RaftKvClient({ endpoints: [`127.0.0.1:${dead}`, `127.0.0.1:${a.port}`, `http://127.0.0.1:${b.port}`], randomBytes: fixedId(2) });
    try {
      const r = await client.put('k', 'v');
      assert.equal(r.header.clusterId, CLUSTER_ID);
      assert.deepEqual(
        seen.map(([who, s]) => [who, s.seq]),
        [
          ['unavailable', 1],
          ['good', 1],
        ],
      );
      // The client stays on the endpoint that worked.
      await client.put('k', 'v2');
      assert.deepEqual(seen.at(-1), ['good', { clientId: 0x0202020202020202n, seq: 2, ack: 2 }]);
    } finally {
      client.close();
      await unavailable.close(100);
      await good.close(100);
    }
  });

  /**
   * A put handler with the server's session rule (kv/sessions.ts): an
   * unknown client id is refused with sessionExpired() when its ack is past
   * 1; an empty key is refused before that, as the proposer's validation
   * does, so it creates no session. `first` answers the first attempts.
   */
  async function sessionServer(first: ((n: number) => void)[] = []) {
    const seen: SessionMetadata[] = [];
    const known = new Set<bigint>();
    const server = new GrpcServer();
    server.addUnary(methods.put, (req, call) => {
      const s = sessionMetadata(call)!;
      seen.push(s);
      first[seen.length - 1]?.(seen.length);
      if (req.key.length === 0) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'etcdserver: key is not provided');
      const id = s.clientId.toString(16).padStart(16, '0');
      if (!known.has(s.clientId) && s.ack > 1) throw new GrpcError(GrpcStatus.FAILED_PRECONDITION, sessionExpired(id).message);
      known.add(s.clientId);
      return { header: { clusterId: 0n, memberId: 0n, revision: seen.length, raftTerm: 1 } };
    });
    const { port } = await server.listen(0);
    return { server, seen, endpoint: `127.0.0.1:${port}` };
  }
  /** Client ids 0x0101..., then 0x0202..., ...: one per session. */
  const countingIds = () => {
    let n = 0;
    return (k: number) => new Uint8Array(k).fill(++n);
  };

  it('a write refused before it was proposed does not strand the session: the next one starts a new session at seq 1', async () => {
    const { server, seen, endpoint } = await sessionServer();
    const client = new RaftKvClient({ endpoints: [endpoint], randomBytes: countingIds() });
    try {
      await assert.rejects(client.put('', 'x'), /key is not provided/);
      await client.put('k', 'v');
      await client.put('k', 'w');
      assert.deepEqual(
        seen.map((s) => [s.clientId.toString(16), s.seq, s.ack]),
        [
          ['101010101010101', 1, 1], // refused before any session existed
          ['101010101010101', 2, 2], // unknown id, ack past 1: "expired or unknown", not applied
          ['202020202020202', 1, 1], // the same write under a new session
          ['202020202020202', 2, 2],
        ],
      );
      assert.equal(client.clientId, '0202020202020202');
    } finally {
      client.close();
      await server.close(100);
    }
  });

  it('a retry that an earlier attempt may have applied fails when the session is unknown; later writes use a new one', async () => {
    const unavailable = () => {
      throw new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: leader changed');
    };
    // The second write's first attempt: UNAVAILABLE from a server that may have proposed it.
    const { server, seen, endpoint } = await sessionServer([() => {}, unavailable]);
    const client = new RaftKvClient({ endpoints: [endpoint], randomBytes: countingIds() });
    try {
      await assert.rejects(client.put('', 'x'), /key is not provided/); // seq 1: the session is never created
      await assert.rejects(client.put('k', 'v'), (e: GrpcStatusError) => e.grpcStatus === GrpcStatus.FAILED_PRECONDITION && /expired or is unknown/.test(e.message));
      await client.put('k', 'w');
      assert.deepEqual(
        seen.map((s) => [s.clientId.toString(16), s.seq]),
        [
          ['101010101010101', 1], // the empty key: refused before any session existed
          ['101010101010101', 2], // UNAVAILABLE: this attempt may have been applied...
          ['101010101010101', 2], // ...so when its retry meets an unknown id, the write fails (outcome unknown)
          ['202020202020202', 1], // the next write: a new session
        ],
      );
    } finally {
      client.close();
      await server.close(100);
    }
  });

  it('moves on from an endpoint that accepts TCP but never speaks HTTP/2', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const fake = new FakeEtcd();
    const good = await serve(fake);
    const silentPort = (silent.address() as net.AddressInfo).port;
    const client = new RaftKvClient({ endpoints: [`127.0.0.1:${silentPort}`, good.endpoint], connectTimeoutMs: 100, exactlyOnce: false });
    try {
      const t0 = performance.now();
      await client.put('k', 'v'); // not exactly-once: resent only because it surely never ran
      assert.ok(performance.now() - t0 < 1000);
      assert.equal(fake.sessions.length, 1);
    } finally {
      client.close();
      await good.server.close(100);
      silent.close();
    }
  });

  it('without exactly-once, does not resend a write the server may have applied', async () => {
    let calls = 0;
    const server = new GrpcServer();
    server.addUnary(methods.put, () => {
      calls++;
      throw new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: request timed out');
    });
    const { port } = await server.listen(0);
    const client = new RaftKvClient({ endpoints: [`127.0.0.1:${port}`], exactlyOnce: false, timeoutMs: 500 });
    try {
      await assert.rejects(client.put('k', 'v'), (e: unknown) => e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.UNAVAILABLE && e.requestMayHaveRun);
      assert.equal(calls, 1);
    } finally {
      client.close();
      await server.close(100);
    }
  });

  it('gives up with UNAVAILABLE when no endpoint answers within the timeout', async () => {
    const client = new RaftKvClient({ endpoints: [`127.0.0.1:${await deadPort()}`, `127.0.0.1:${await deadPort()}`], timeoutMs: 300 });
    const t0 = performance.now();
    try {
      await assert.rejects(client.put('k', 'v'), (e: unknown) => e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.UNAVAILABLE && !e.requestMayHaveRun);
      const took = performance.now() - t0;
      assert.ok(took >= 250 && took < 2000, `gave up after ${took} ms`);
    } finally {
      client.close();
    }
  });

  it('moves on from an endpoint that leaves an attempt unanswered: reads and exactly-once writes (same seq), not other writes', async () => {
    // A member cut off from the others holds a write until its own request
    // timeout, longer than the call's: the call must not wait there.
    const seen: [string, number][] = [];
    const silent = new GrpcServer();
    silent.addUnary(methods.put, (_req, call) => {
      seen.push(['silent', sessionMetadata(call)?.seq ?? 0]);
      return new Promise(() => {});
    });
    silent.addUnary(methods.range, () => new Promise(() => {}));
    const fake = new FakeEtcd();
    const good = new GrpcServer();
    const handlers = fake.handlers();
    good.addUnary(methods.put, (req, call) => {
      seen.push(['good', sessionMetadata(call)?.seq ?? 0]);
      return handlers.put(req, call);
    });
    good.addUnary(methods.range, (req, call) => handlers.range(req, call));
    const a = await silent.listen(0);
    const b = await good.listen(0);
    const endpoints = [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`];
    const client = new RaftKvClient({ endpoints, timeoutMs: 3000, attemptTimeoutMs: 200, randomBytes: fixedId(7) });
    const once = new RaftKvClient({ endpoints, timeoutMs: 600, attemptTimeoutMs: 200, exactlyOnce: false });
    try {
      let t0 = performance.now();
      await client.put('k', 'v');
      assert.ok(performance.now() - t0 < 1500, `the put took ${performance.now() - t0} ms`);
      assert.deepEqual(seen, [['silent', 1], ['good', 1]], 'the same write, seq 1, sent again to the next endpoint');
      client.close();
      const reader = new RaftKvClient({ endpoints, timeoutMs: 3000, attemptTimeoutMs: 200 });
      t0 = performance.now();
      assert.equal(Buffer.from((await reader.get('k')).kvs[0]!.value).toString(), 'v');
      assert.ok(performance.now() - t0 < 1500, `the get took ${performance.now() - t0} ms`);
      reader.close();
      // Without exactly-once a write that may have run is never sent again: it waits out the call.
      seen.length = 0;
      await assert.rejects(once.put('k', 'w'), (e: unknown) => e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.DEADLINE_EXCEEDED);
      assert.deepEqual(seen, [['silent', 0]]);
    } finally {
      client.close();
      once.close();
      await silent.close(100);
      await good.close(100);
    }
  });

  it('fails with DEADLINE_EXCEEDED when the server does not answer in time', async () => {
    const server = new GrpcServer();
    server.addUnary(methods.range, () => new Promise(() => {}));
    const { port } = await server.listen(0);
    const client = new RaftKvClient({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 100 });
    try {
      await assert.rejects(client.get('k'), (e: unknown) => e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.DEADLINE_EXCEEDED);
    } finally {
      client.close();
      await server.close(100);
    }
  });

  it('fails at its deadline when the server stops reading with the connection backed up (a frozen process)', async () => {
    // A server that completes the HTTP/2 handshake, opens its flow-control
    // windows wide and then never reads again, as a SIGSTOPped member: the
    // client's big request fills the socket buffers, so even the RST_STREAM
    // that cancels it at the deadline cannot be written.
    const frame = (type: number, flags: number, payload: Buffer): Buffer => {
      const header = Buffer.alloc(9);
      header.writeUIntBE(payload.length, 0, 3);
      header[3] = type;
      header[4] = flags;
      return Buffer.concat([header, payload]);
    };
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(0x4, 0); // SETTINGS_INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(0x7fffffff, 2);
    const windowUpdate = Buffer.alloc(4);
    windowUpdate.writeUInt32BE(0x7fff0000, 0);
    const sockets: net.Socket[] = [];
    const frozen = net.createServer((socket) => {
      sockets.push(socket);
      socket.pause();
      socket.write(Buffer.concat([frame(0x4, 0, settings), frame(0x4, 1, Buffer.alloc(0)), frame(0x8, 0, windowUpdate)]));
    });
    await new Promise<void>((resolve) => frozen.listen(0, '127.0.0.1', resolve));
    const port = (frozen.address() as net.AddressInfo).port;
    const client = new RaftKvClient({ endpoints: [`127.0.0.1:${port}`], timeoutMs: 500, exactlyOnce: false });
    try {
      const t0 = performance.now();
      const outcome = await Promise.race([
        client.put('k', Buffer.alloc(32 << 20)).then(
          () => 'answered',
          (e: unknown) => (e instanceof GrpcStatusError ? e.grpcStatus : e),
        ),
        sleep(5000, 'still pending after 5 s', { ref: false }),
      ]);
      assert.equal(outcome, GrpcStatus.DEADLINE_EXCEEDED);
      const took = performance.now() - t0;
      assert.ok(took < 2000, `failed after ${took} ms`);
    } finally {
      client.close();
      for (const s of sockets) s.destroy();
      frozen.close();
    }
  });

  it('moves to another member when its server shuts down', async () => {
    const fake = new FakeEtcd();
    const one = await serve(fake);
    const two = await serve(fake);
    const client = new RaftKvClient({ endpoints: [one.endpoint, two.endpoint] });
    try {
      await client.put('k', '1');
      await one.server.close(100);
      await client.put('k', '2');
      assert.equal(text((await client.get('k')).kvs[0]!.value), '2');
    } finally {
      client.close();
      await two.server.close(100);
    }
  });
});

describe('raftkv client transport against another HTTP/2 implementation (node:http2, nghttp2)', () => {
  // A gRPC server written on node:http2: nghttp2 encodes its headers with
  // Huffman coding and its dynamic table, splits large answers by its own
  // frame and window rules, and resets streams as it sees fit.
  let server: http2.Http2Server;
  let channel: Channel;
  const seenHeaders: http2.IncomingHttpHeaders[] = [];

  before(async () => {
    server = http2.createServer();
    server.on('stream', (stream, headers) => {
      seenHeaders.push(headers);
      stream.on('error', () => {}); // a stream closed with REFUSED_STREAM reports it here
      const key = String(headers['x-test'] ?? '');
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (key === 'refuse') {
          stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
          return;
        }
        if (key === 'error') {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '11', 'grpc-message': 'etcdserver: mvcc: required revision has been compacted' }, { endStream: true });
          return;
        }
        const request = RangeRequest.decode(Buffer.concat(chunks).subarray(5));
        const value = Buffer.alloc(Number(request.limit), 'v');
        const message = RangeResponse.encode(
          { header: { clusterId: 1n, memberId: 2n, revision: 3, raftTerm: 4 }, kvs: [{ key: request.key, createRevision: 1, modRevision: 2, version: 1, value, lease: 0n }], more: false, count: 1 },
          5,
        );
        message[0] = 0;
        message.writeUInt32BE(message.length - 5, 1);
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(message);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    channel = new Channel(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { connectTimeoutMs: 2000 });
  });
  after(async () => {
    channel.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const range = (limit: number, test = 'ok') => channel.unary(methods.range, { ...newRangeRequest(), key: Buffer.from('k'), limit }, { 'x-test': test, 'raftkv-seq': String(limit) }, 2000);

  it('reads answers of every size, its headers kept through both HPACK tables', async () => {
    for (const size of [0, 10, 70_000, 300_000, 2_000_000, 10]) {
      const res = await range(size);
      assert.equal(res.kvs[0]!.value.length, size);
    }
    // The metadata and the fixed fields arrived as sent, on every call.
    for (const h of seenHeaders) {
      assert.equal(h['content-type'], 'application/grpc');
      assert.equal(h[':authority'], `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
      assert.match(String(h['grpc-timeout']), /^\d+m$/);
    }
    assert.deepEqual(seenHeaders.map((h) => h['raftkv-seq']), ['0', '10', '70000', '300000', '2000000', '10']);
    // Many at once on the one connection.
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => range(i * 100)));
    assert.deepEqual(many.map((r) => r.kvs[0]!.value.length), Array.from({ length: 50 }, (_, i) => i * 100));
  });

  it("reports a Trailers-Only error's status and message, and a refused stream as not run", async () => {
    await assert.rejects(range(1, 'error'), (e: unknown) => e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.OUT_OF_RANGE && e.message === 'etcdserver: mvcc: required revision has been compacted');
    await assert.rejects(range(1, 'refuse'), (e: unknown) => e instanceof GrpcStatusError && e.grpcStatus === GrpcStatus.UNAVAILABLE && !e.requestMayHaveRun);
    assert.equal((await range(5)).kvs[0]!.value.length, 5, 'the connection goes on');
  });
});

describe('prefixEnd', () => {
  it('is etcd\'s GetPrefixRangeEnd', () => {
    assert.deepEqual([...prefixEnd(Buffer.from('abc'))], [...Buffer.from('abd')]);
    assert.deepEqual([...prefixEnd(Uint8Array.from([0x61, 0xff]))], [0x62]);
    assert.deepEqual([...prefixEnd(Uint8Array.from([0xff, 0xff]))], [0]);
    assert.deepEqual([...prefixEnd(new Uint8Array(0))], [0]);
    const key = Buffer.from('ab');
    prefixEnd(key);
    assert.equal(key.toString(), 'ab', 'the key itself is left alone');
  });
});
