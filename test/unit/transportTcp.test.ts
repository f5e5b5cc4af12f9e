// TcpTransport (src/transport/tcp.ts) on 127.0.0.1: delivery in order per
// peer, reconnection after a restart with jittered backoff, handshake
// refusals (another cluster, an unknown member, the wrong member), hostile
// and malformed frames, a large snapshot alongside heartbeats, backpressure
// against a peer that never reads, and close() leaving nothing behind.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { after, describe, it } from 'node:test';

import { type Message, type NodeId, type RandomSource, message } from '../../src/raft/types.js';
import { Random } from '../../src/sim/random.js';
import { encodeMessage } from '../../src/transport/codec.js';
import { FrameKind, FrameReader, decodeRefuse, encodeHello, frame } from '../../src/transport/frame.js';
import { type TcpTransportOptions, type TransportLimits, type TransportLogger, TcpTransport } from '../../src/transport/tcp.js';
import type { TransportHandlers } from '../../src/transport/types.js';

const CLUSTER = 0x1c2d3e4f5a6b7c8dn;

interface LogRecord {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: Record<string, unknown>;
  readonly msg: string;
}

class TestLogger implements TransportLogger {
  readonly records: LogRecord[] = [];
  debug(obj: Record<string, unknown>, msg: string) {
    this.records.push({ level: 'debug', obj, msg });
  }
  info(obj: Record<string, unknown>, msg: string) {
    this.records.push({ level: 'info', obj, msg });
  }
  warn(obj: Record<string, unknown>, msg: string) {
    this.records.push({ level: 'warn', obj, msg });
  }
  error(obj: Record<string, unknown>, msg: string) {
    this.records.push({ level: 'error', obj, msg });
  }
  find(level: LogRecord['level'], pattern: RegExp): LogRecord[] {
    return this.records.filter((r) => r.level === level && pattern.test(r.msg));
  }
}

class Recorder implements TransportHandlers {
  readonly messages: Message[] = [];
  readonly unreachable: NodeId[] = [];
  readonly snapshots: Array<[NodeId, boolean]> = [];
  onMessageHook: ((m: Message) => void) | undefined;
  onMessage(m: Message) {
    this.messages.push(m);
    this.onMessageHook?.(m);
  }
  onUnreachable(to: NodeId) {
    this.unreachable.push(to);
  }
  onSnapshotStatus(to: NodeId, ok: boolean) {
    this.snapshots.push([to, ok]);
  }
}

interface Member {
  readonly id: NodeId;
  readonly t: TcpTransport;
  readonly rec: Recorder;
  readonly log: TestLogger;
  readonly url: string;
}

const open: TcpTransport[] = [];
after(async () => {
  await Promise.all(open.map((t) => t.close()));
});

async function member(
  id: NodeId,
  opts: Partial<TcpTransportOptions> & { limits?: Partial<TransportLimits>; port?: number } = {},
): Promise<Member> {
  const log = new TestLogger();
  const rec = new Recorder();
  const t = new TcpTransport({
    selfId: id,
    clusterId: CLUSTER,
    listen: `http://127.0.0.1:${opts.port ?? 0}`,
    logger: log,
    random: new Random(id),
    ...opts,
  });
  open.push(t);
  await t.start(rec);
  return { id, t, rec, log, url: `http://127.0.0.1:${t.address()!.port}` };
}

/** Members that all know each other. */
async function cluster(n: number, limits: Partial<TransportLimits> = {}): Promise<Member[]> {
  const ms: Member[] = [];
  for (let i = 1; i <= n; i++) ms.push(await member(i, { limits }));
  for (const a of ms) for (const b of ms) if (a !== b) a.t.addPeer(b.id, b.url);
  return ms;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function app(from: NodeId, to: NodeId, index: number, payload = 16): Message {
  return message({
    type: 'MsgApp',
    from,
    to,
    term: 3,
    index,
    logTerm: 3,
    commit: index,
    entries: [{ term: 3, index: index + 1, type: 'normal', data: new Uint8Array(payload).fill(index & 0xff) }],
  });
}

const heartbeat = (from: NodeId, to: NodeId, round: number) => message({ type: 'MsgHeartbeat', from, to, term: 3, round });

/** A hand-made peer connection: does the handshake as told, then sends what the test says. */
async function rawDial(port: number, hello: { from: NodeId; to: NodeId; clusterId?: bigint; channel?: 'stream' | 'snapshot' }) {
  const socket = net.connect({ host: '127.0.0.1', port });
  const frames: Array<[number, Buffer]> = [];
  const reader = new FrameReader(1 << 20);
  socket.on('data', (c: Buffer) => reader.push(c, (kind, body) => frames.push([kind, Buffer.from(body)])));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.write(
    encodeHello({ version: 1, channel: hello.channel ?? 'stream', clusterId: hello.clusterId ?? CLUSTER, from: hello.from, to: hello.to }),
  );
  return { socket, frames, closed };
}

describe('TcpTransport', () => {
  it('delivers messages between 3 members in order per sender, every field intact', async () => {
    const ms = await cluster(3);
    const N = 300;
    for (let i = 0; i < N; i++) {
      // One send() per "Ready": a message to each other member, sometimes several per peer.
      for (const a of ms) {
        const batch: Message[] = [];
        for (const b of ms) if (a !== b) batch.push(app(a.id, b.id, 2 * i), app(a.id, b.id, 2 * i + 1, 300));
        a.t.send(batch);
      }
      if (i % 50 === 0) await sleep(1);
    }
    await waitFor('all messages', () => ms.every((m) => m.rec.messages.length === 2 * N * 2));
    for (const b of ms) {
      for (const a of ms) {
        if (a === b) continue;
        const got = b.rec.messages.filter((m) => m.from === a.id);
        assert.deepEqual(
          got.map((m) => m.index),
          Array.from({ length: 2 * N }, (_, i) => i),
          `order from ${a.id} to ${b.id}`,
        );
        const sample = got[7]!;
        assert.deepEqual(encodeMessage(sample), encodeMessage(app(a.id, b.id, 7, 300)));
      }
      assert.deepEqual(b.rec.unreachable, []);
    }
    for (const a of ms) {
      const others = ms.filter((b) => b !== a);
      for (const b of others) {
        assert.equal(a.t.peerStatus(b.id)!.connected, true);
        // The visualiser's rate counter: every message handed over for the peer, none dropped here.
        assert.equal(a.t.peerStatus(b.id)!.sentMessages, 2 * N);
        assert.equal(a.log.find('info', /^peer connected$/).filter((r) => r.obj.peer === b.id.toString(16)).length, 1);
      }
    }
    // Round-trip times: a ping goes out as each stream connects.
    await waitFor('round-trip times', () => ms.every((a) => ms.every((b) => a === b || a.t.roundTripMs(b.id) !== undefined)));
    const rtt = ms[0]!.t.roundTripMs(2)!;
    assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
    await Promise.all(ms.map((m) => m.t.close()));
  });

  it('reconnects after a peer restarts, with backoff from the injected random source, reset on success', async () => {
    const caps: number[] = [];
    const random: RandomSource = {
      int(n: number) {
        caps.push(n);
        return n - 1;
      },
    };
    const limits = { backoffBaseMs: 10, backoffMaxMs: 80 };
    const a = await member(1, { random, limits });
    let b = await member(2, { limits });
    const port = b.t.address()!.port;
    a.t.addPeer(2, b.url);
    b.t.addPeer(1, a.url);
    a.t.send([heartbeat(1, 2, 1)]);
    await waitFor('first heartbeat', () => b.rec.messages.length === 1);

    await b.t.close();
    await waitFor('disconnect noticed', () => a.log.find('warn', /^peer disconnected$/).length === 1);
    // While B is down: sends are dropped and reported; the dialer backs off 10, 20, 40, 80, 80 ms (caps + 1).
    for (let round = 2; round <= 30; round++) {
      a.t.send([heartbeat(1, 2, round)]);
      await sleep(10);
    }
    await waitFor('several redials', () => caps.length >= 6);
    assert.deepEqual(caps.slice(0, 6), [11, 21, 41, 81, 81, 81]);
    assert.ok(a.rec.unreachable.includes(2), 'sends while down report the peer unreachable');
    // The disconnect was the transition worth a warning; the failed redials are debug.
    assert.equal(a.log.find('warn', /cannot connect to peer/).length, 0);
    assert.ok(a.log.find('debug', /cannot connect to peer/).length >= 5);
    assert.ok(a.log.find('warn', /dropped messages to peer 2: connection down/).length >= 1);
    assert.ok(a.log.find('warn', /dropped messages/).length <= 2, 'drop warnings are rate-limited');

    b = await member(2, { port, limits });
    b.t.addPeer(1, a.url);
    const before = caps.length;
    await waitFor('reconnected', () => a.t.peerStatus(2)!.connected, 3000);
    for (let round = 100; round < 110; round++) a.t.send([heartbeat(1, 2, round)]);
    await waitFor('heartbeats after restart', () => b.rec.messages.length === 10);
    assert.deepEqual(
      b.rec.messages.map((m) => m.round),
      Array.from({ length: 10 }, (_, i) => 100 + i),
    );
    assert.equal(a.log.find('info', /^peer connected$/).length, 2);

    // Backoff starts again from the base after a success.
    await b.t.close();
    await waitFor('second disconnect', () => a.log.find('warn', /^peer disconnected$/).length === 2);
    await waitFor('a redial', () => caps.length > before + 1);
    assert.ok(caps.slice(before).includes(11), `backoff reset: ${caps.slice(before)}`);
    await a.t.close();
  });

  it('refuses a member of another cluster and delivers nothing from it; the dialer logs the refusal', async () => {
    const a = await member(1);
    const log = new TestLogger();
    const rec = new Recorder();
    const stranger = new TcpTransport({ selfId: 2, clusterId: 0xabcn, peers: new Map([[1, a.url]]), logger: log, random: new Random(1) });
    open.push(stranger);
    await stranger.start(rec);
    a.t.addPeer(2, 'http://127.0.0.1:1');
    stranger.send([heartbeat(2, 1, 1), app(2, 1, 5)]);
    await waitFor('refusal logged', () => a.log.find('warn', /from another cluster/).length > 0);
    const w = a.log.find('warn', /from another cluster/)[0]!;
    assert.equal(
      w.msg,
      `peer 2 from another cluster (cluster id abc, ours ${CLUSTER.toString(16)}): check --initial-cluster-token`,
    );
    await waitFor('dialer logs the refusal', () => log.find('warn', /refused our connection/).length > 0);
    assert.match(log.find('warn', /refused our connection/)[0]!.msg, /belongs to cluster 1c2d3e4f5a6b7c8d, not abc: check --initial-cluster-token/);
    await waitFor('unreachable reported', () => rec.unreachable.includes(1));
    stranger.send([heartbeat(2, 1, 2)]);
    await sleep(50);
    assert.deepEqual(a.rec.messages, [], 'nothing from another cluster is delivered');
    assert.equal(stranger.peerStatus(1)!.connected, false);
    await stranger.close();
    await a.t.close();
  });

  it('refuses an unknown member and a connection meant for another member, even if it sends messages anyway', async () => {
    const a = await member(1);
    a.t.addPeer(2, 'http://127.0.0.1:1');
    const port = a.t.address()!.port;

    const unknown = await rawDial(port, { from: 9, to: 1 });
    // A hostile dialer does not wait for the answer.
    unknown.socket.write(frame(FrameKind.Message, encodeMessage(heartbeat(9, 1, 1))));
    await unknown.closed;
    assert.equal(unknown.frames.length, 1);
    assert.equal(unknown.frames[0]![0], FrameKind.Refuse);
    assert.equal(decodeRefuse(unknown.frames[0]![1]).reason, 'unknown-peer');
    assert.match(a.log.find('warn', /unknown member 9/)[0]!.msg, /connection from unknown member 9 \(127\.0\.0\.1:\d+\) refused/);

    const misdialed = await rawDial(port, { from: 2, to: 3 });
    misdialed.socket.write(frame(FrameKind.Message, encodeMessage(heartbeat(2, 1, 1))));
    await misdialed.closed;
    assert.equal(decodeRefuse(misdialed.frames[0]![1]).reason, 'wrong-member');
    assert.equal(a.log.find('warn', /dialed member 3 but this is 1/).length, 1);

    const other = await rawDial(port, { from: 2, to: 1, clusterId: 5n });
    other.socket.write(frame(FrameKind.Message, encodeMessage(heartbeat(2, 1, 1))));
    await other.closed;
    assert.equal(decodeRefuse(other.frames[0]![1]).reason, 'cluster-mismatch');

    assert.deepEqual(a.rec.messages, []);
    await a.t.close();
  });

  it('closes a connection on a malformed message, an oversized frame or a foreign handshake, logging an error; others go on', async () => {
    const a = await member(1, { limits: { maxFrameBytes: 4096, snapshotChunkBytes: 1024 } });
    a.t.addPeer(2, 'http://127.0.0.1:1');
    a.t.addPeer(3, 'http://127.0.0.1:1');
    const port = a.t.address()!.port;

    // A good stream (from 3), which must survive the bad ones (from 2).
    const good = await rawDial(port, { from: 3, to: 1 });
    await waitFor('accept', () => good.frames.length === 1);
    assert.equal(good.frames[0]![0], FrameKind.Accept);

    const garbage = await rawDial(port, { from: 2, to: 1 });
    garbage.socket.write(frame(FrameKind.Message, Buffer.from([1, 99, 0, 0])));
    await garbage.closed;
    assert.match(a.log.find('error', /unknown message type 99/)[0]!.msg, /^closing connection from peer 2: bad transport frame/);

    const huge = await rawDial(port, { from: 2, to: 1 });
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32LE(0xfffffff0);
    huge.socket.write(prefix);
    await huge.closed;
    assert.equal(a.log.find('error', /4294967280 bytes exceeds the limit of 4096/).length, 1);

    // Before the handshake only a small frame is accepted.
    const early = net.connect({ host: '127.0.0.1', port });
    early.on('error', () => {});
    const early1 = Buffer.alloc(4);
    early1.writeUInt32LE(100_000);
    early.write(early1);
    await new Promise((r) => early.once('close', r));
    assert.equal(a.log.find('error', /100000 bytes exceeds the limit of 1024/).length, 1);

    const http = net.connect({ host: '127.0.0.1', port });
    http.on('error', () => {});
    http.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => http.once('close', r));

    // Misaddressed messages on a good stream are dropped with a warning; the stream goes on.
    good.socket.write(frame(FrameKind.Message, encodeMessage(heartbeat(3, 5, 1))));
    good.socket.write(frame(FrameKind.Message, encodeMessage(heartbeat(2, 1, 2))));
    good.socket.write(frame(FrameKind.Message, encodeMessage(heartbeat(3, 1, 3))));
    await waitFor('delivery on the good stream', () => a.rec.messages.length === 1);
    assert.equal(a.rec.messages[0]!.round, 3);
    assert.equal(a.log.find('warn', /not addressed to this member from that peer/).length, 2);
    assert.equal(good.socket.destroyed, false);
    good.socket.destroy();
    await a.t.close();
  });

  it('streams a 64 MiB snapshot in chunks while heartbeats keep flowing', async () => {
    const [a, b] = await cluster(2);
    const size = 64 * 1024 * 1024;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 4096) data[i] = (i / 4096) & 0xff;
    data[size - 1] = 0x5a;
    const snap = message({
      type: 'MsgSnap',
      from: 1,
      to: 2,
      term: 4,
      snapshot: {
        metadata: { index: 5000, term: 4, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
        data,
      },
    });
    // Connect the stream first, as a leader would have.
    a!.t.send([heartbeat(1, 2, 0)]);
    await waitFor('stream up', () => b!.rec.messages.length === 1);

    const beats: number[] = [];
    let delivered = 0;
    b!.rec.onMessageHook = (m) => {
      if (m.type === 'MsgHeartbeat') beats.push(performance.now());
      if (m.type === 'MsgSnap') delivered = performance.now();
    };
    let round = 1;
    const timer = setInterval(() => a!.t.send([heartbeat(1, 2, round++)]), 10);
    const started = performance.now();
    a!.t.send([snap]);
    await waitFor('snapshot status', () => a!.rec.snapshots.length === 1, 60_000);
    const finished = delivered;
    clearInterval(timer);
    await waitFor('the last heartbeats', () => beats.length === round - 1);

    assert.deepEqual(a!.rec.snapshots, [[2, true]]);
    const got = b!.rec.messages.filter((m) => m.type === 'MsgSnap');
    assert.equal(got.length, 1);
    assert.equal(got[0]!.snapshot!.metadata.index, 5000);
    assert.deepEqual(got[0]!.snapshot!.metadata.confState.voters, [1, 2]);
    assert.equal(Buffer.compare(got[0]!.snapshot!.data, data), 0, 'snapshot data intact');
    const during = beats.filter((t) => t >= started && t <= finished);
    let maxGap = 0;
    for (let i = 1; i < beats.length; i++) maxGap = Math.max(maxGap, beats[i]! - beats[i - 1]!);
    const ms = finished - started;
    process.stderr.write(`  64 MiB snapshot in ${ms.toFixed(0)} ms; ${during.length} heartbeats during it; max gap ${maxGap.toFixed(0)} ms\n`);
    // Had the snapshot shared the stream, no heartbeat would arrive until it was through.
    assert.ok(during.length >= 3, `heartbeats flowed during the transfer (${during.length} in ${ms.toFixed(0)} ms)`);
    assert.ok(maxGap < 2000, `heartbeat gap ${maxGap.toFixed(0)} ms`);
    assert.equal(b!.log.find('info', /received database snapshot/).length, 1);
    await Promise.all([a!.t.close(), b!.t.close()]);
  });

  it('reports a failed snapshot: peer down, or the receiver refusing its size', async () => {
    const a = await member(1, { limits: { handshakeTimeoutMs: 500 } });
    const b = await member(2, { limits: { maxSnapshotBytes: 1000 } });
    a.t.addPeer(2, b.url);
    a.t.addPeer(3, 'http://127.0.0.1:1');
    b.t.addPeer(1, a.url);
    const snap = (to: NodeId, size: number) =>
      message({
        type: 'MsgSnap',
        from: 1,
        to,
        snapshot: { metadata: { index: 9, term: 1, confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(size) },
      });
    a.t.send([snap(3, 10)]);
    await waitFor('failure to a down peer', () => a.rec.snapshots.length === 1);
    assert.deepEqual(a.rec.snapshots, [[3, false]]);
    assert.ok(a.rec.unreachable.includes(3));
    a.t.send([snap(2, 5000)]);
    await waitFor('failure to a refusing peer', () => a.rec.snapshots.length === 2);
    assert.deepEqual(a.rec.snapshots[1], [2, false]);
    assert.equal(b.log.find('error', /exceeds the limit of 1000/).length, 1);
    a.t.send([snap(2, 1000)]);
    await waitFor('success within the limit', () => a.rec.snapshots.length === 3);
    assert.deepEqual(a.rec.snapshots[2], [2, true]);
    assert.equal(b.rec.messages.filter((m) => m.type === 'MsgSnap').length, 1);
    await Promise.all([a.t.close(), b.t.close()]);
  });

  it('rejects a misaddressed snapshot and one with more data than announced, delivering nothing', async () => {
    const a = await member(1);
    a.t.addPeer(2, 'http://127.0.0.1:1');
    const port = a.t.address()!.port;
    const header = (to: NodeId, total: number) => {
      const m = message({
        type: 'MsgSnap',
        from: 2,
        to,
        snapshot: { metadata: { index: 3, term: 1, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) },
      });
      const enc = encodeMessage(m);
      const body = Buffer.alloc(8 + enc.length);
      body.writeBigUInt64LE(BigInt(total));
      body.set(enc, 8);
      return frame(FrameKind.SnapshotHeader, body);
    };

    const misaddressed = await rawDial(port, { from: 2, to: 1, channel: 'snapshot' });
    misaddressed.socket.write(header(5, 4));
    misaddressed.socket.write(frame(FrameKind.SnapshotChunk, Buffer.from([1, 2, 3, 4])));
    await misaddressed.closed;
    assert.deepEqual(misaddressed.frames.map(([k]) => k), [FrameKind.Accept], 'no ack');
    assert.equal(a.log.find('error', /snapshot from 2 to 5 on a connection from peer 2 to member 1/).length, 1);

    const overlong = await rawDial(port, { from: 2, to: 1, channel: 'snapshot' });
    overlong.socket.write(header(1, 4));
    overlong.socket.write(frame(FrameKind.SnapshotChunk, Buffer.from([1, 2, 3])));
    overlong.socket.write(frame(FrameKind.SnapshotChunk, Buffer.from([4, 5])));
    await overlong.closed;
    assert.equal(a.log.find('error', /snapshot data exceeds the 4 bytes announced/).length, 1);

    const short = await rawDial(port, { from: 2, to: 1, channel: 'snapshot' });
    short.socket.write(header(1, 4));
    short.socket.write(frame(FrameKind.SnapshotChunk, Buffer.from([1, 2, 3])));
    await waitFor('header and chunk read', () => short.frames.length === 1);
    await sleep(20);
    short.socket.destroy();
    await waitFor('incomplete snapshot logged', () => a.log.find('warn', /incomplete snapshot from peer 2: received 3 of 4 bytes/).length === 1);

    assert.deepEqual(a.rec.messages, []);
    await a.t.close();
  });

  it('bounds memory against a peer that never reads: drops and reports it unreachable', async () => {
    // A peer that completes the handshake and then never reads again.
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => {
      sockets.push(s);
      s.once('data', () => {
        s.write(frame(FrameKind.Accept));
        s.pause();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const maxQueueBytes = 1024 * 1024;
    const a = await member(1, { limits: { maxQueueBytes, maxQueueMessages: 1000, idleTimeoutMs: 60_000 } });
    a.t.addPeer(2, `http://127.0.0.1:${port}`);
    a.t.send([heartbeat(1, 2, 0)]);
    await waitFor('connected', () => a.t.peerStatus(2)!.connected);

    const batch = 64 * 1024;
    let maxBuffered = 0;
    const externalBefore = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 2000; i++) {
      a.t.send([app(1, 2, i, batch)]); // 125 MiB in all
      maxBuffered = Math.max(maxBuffered, a.t.peerStatus(2)!.bufferedBytes);
      if (i % 100 === 0) await sleep(1);
    }
    await sleep(10);
    const st = a.t.peerStatus(2)!;
    assert.ok(st.droppedMessages > 1500, `dropped ${st.droppedMessages}`);
    assert.equal(st.sentMessages + st.droppedMessages, 2001, 'a dropped message is not counted as sent');
    assert.ok(a.rec.unreachable.includes(2));
    assert.ok(st.queuedBytes <= maxQueueBytes);
    // Queue limit, plus one batch the socket took while writable, plus its high-water mark.
    assert.ok(maxBuffered <= maxQueueBytes + batch + 100 + 16 * 1024, `buffered ${maxBuffered}`);
    const grown = process.memoryUsage().arrayBuffers - externalBefore;
    assert.ok(grown < 64 * 1024 * 1024, `external memory grew by ${grown}`);
    assert.equal(a.log.find('warn', /send queue full/).length, 1, 'rate-limited');
    await a.t.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('reports sends to unknown peers unreachable, after send() returns', async () => {
    const a = await member(1);
    a.t.send([heartbeat(1, 7, 1)]);
    assert.deepEqual(a.rec.unreachable, [], 'not from inside send()');
    await sleep(0);
    assert.deepEqual(a.rec.unreachable, [7]);
    assert.equal(a.log.find('warn', /unknown peer 7/).length, 1);
    await a.t.close();
  });

  it('throws on a malformed message before sending any of the batch; drops one over the frame limit', async () => {
    const [a, b] = await cluster(2, { maxFrameBytes: 2048, snapshotChunkBytes: 1024 });
    assert.throws(
      () => a!.t.send([heartbeat(1, 2, 1), message({ type: 'MsgApp', from: 1, to: 2, term: -1 })]),
      (e: unknown) => (e as { code?: string }).code === 'TRANSPORT_BAD_MESSAGE' && /term = -1/.test((e as Error).message),
    );
    a!.t.send([heartbeat(1, 2, 2), app(1, 2, 1, 4000), heartbeat(1, 2, 3)]);
    await waitFor('the heartbeats', () => b!.rec.messages.length === 2);
    assert.deepEqual(
      b!.rec.messages.map((m) => m.round),
      [2, 3],
      'the malformed batch sent nothing; the oversized message alone was dropped',
    );
    assert.match(a!.log.find('error', /over the 2048-byte frame limit/)[0]!.msg, /dropped a \d+-byte MsgApp to peer 2/);
    assert.deepEqual(a!.rec.unreachable, [2]);
    await Promise.all([a!.t.close(), b!.t.close()]);
  });

  it('writes the messages of one send() to a peer in one socket write', async () => {
    const sockets: net.Socket[] = [];
    const chunks: number[] = [];
    const server = net.createServer((s) => {
      sockets.push(s);
      s.once('data', () => {
        s.write(frame(FrameKind.Accept));
        s.on('data', (c: Buffer) => chunks.push(c.length));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const a = await member(1, { limits: { pingIntervalMs: 60_000 } });
    a.t.addPeer(2, `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    a.t.send([heartbeat(1, 2, 0)]);
    await waitFor('connected', () => a.t.peerStatus(2)!.connected);
    await sleep(20);
    chunks.length = 0;
    const spy = sockets.length;
    const writes: number[] = [];
    const orig = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof orig>) {
      writes.push((args[0] as Uint8Array).length);
      return orig.apply(this, args);
    } as typeof orig;
    try {
      a.t.send([heartbeat(1, 2, 1), app(1, 2, 1), heartbeat(1, 2, 2), app(1, 3, 9)]);
    } finally {
      net.Socket.prototype.write = orig;
    }
    assert.equal(spy, 1);
    const want = [heartbeat(1, 2, 1), app(1, 2, 1), heartbeat(1, 2, 2)].reduce((n, m) => n + 5 + encodeMessage(m).length, 0);
    assert.deepEqual(writes, [want], 'one write holding the three messages to peer 2');
    await waitFor('bytes arrive', () => chunks.reduce((x, y) => x + y, 0) === want);
    await a.t.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('fails start() with a typed error when the address is in use', async () => {
    const a = await member(1);
    const b = new TcpTransport({ selfId: 2, clusterId: CLUSTER, listen: a.url, random: new Random(2) });
    await assert.rejects(
      b.start(new Recorder()),
      (e: unknown) => (e as { code?: string }).code === 'TRANSPORT_LISTEN_FAILED' && /EADDRINUSE/.test((e as Error).message),
    );
    await b.close();
    await a.t.close();
  });

  it('removePeer closes its connections and refuses it afterwards', async () => {
    const [a, b] = await cluster(2);
    b!.t.send([heartbeat(2, 1, 1)]);
    await waitFor('delivery', () => a!.rec.messages.length === 1);
    a!.t.removePeer(2);
    await waitFor('b sees the disconnect', () => b!.log.find('warn', /^peer disconnected$/).length === 1);
    await waitFor('b refused on redial', () => a!.log.find('warn', /unknown member 2/).length >= 1);
    b!.t.send([heartbeat(2, 1, 2)]);
    await sleep(50);
    assert.equal(a!.rec.messages.length, 1);
    await Promise.all([a!.t.close(), b!.t.close()]);
  });

  it('rejects bad options with a typed error', () => {
    const base = { selfId: 1, clusterId: 1n, random: new Random(1) };
    const bad: Array<[Partial<TcpTransportOptions>, RegExp]> = [
      [{ listen: 'https://127.0.0.1:2380' }, /TLS/],
      [{ listen: 'http://127.0.0.1' }, /has no port/],
      [{ listen: 'nonsense' }, /is not a URL/],
      [{ selfId: 0 }, /selfId/],
      [{ clusterId: 1n << 64n }, /clusterId/],
      [{ limits: { maxQueueBytes: 0 } }, /maxQueueBytes/],
    ];
    for (const [o, re] of bad) {
      assert.throws(
        () => new TcpTransport({ ...base, ...o }),
        (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'TRANSPORT_BAD_CONFIG' && re.test(e.message),
      );
    }
  });

  it('close() leaves no handles: a process that used transports exits by itself', () => {
    const tcp = new URL('../../src/transport/tcp.js', import.meta.url).href;
    const script = `
      import { TcpTransport } from ${JSON.stringify(tcp)};
      const random = { int: (n) => Math.floor(Math.random() * n) };
      const got = [];
      const h = { onMessage: (m) => got.push(m), onUnreachable() {}, onSnapshotStatus: (to, ok) => got.push(ok) };
      const a = new TcpTransport({ selfId: 1, clusterId: 7n, listen: 'http://127.0.0.1:0', random });
      const b = new TcpTransport({ selfId: 2, clusterId: 7n, listen: 'http://127.0.0.1:0', random });
      await a.start(h); await b.start(h);
      a.addPeer(2, 'http://127.0.0.1:' + b.address().port);
      b.addPeer(1, 'http://127.0.0.1:' + a.address().port);
      a.addPeer(3, 'http://127.0.0.1:1'); // down: leaves a redial timer
      const hb = (from, to) => ({ type: 'MsgHeartbeat', from, to, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false,
        rejectHint: 0, snapshot: undefined, context: undefined, round: 1, force: false, transferee: 0, commitTerm: 0 });
      a.send([hb(1, 2), hb(1, 3)]); b.send([hb(2, 1)]);
      a.send([{ ...hb(1, 2), type: 'MsgSnap', snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(3 << 20) } }]);
      while (got.length < 3) await new Promise((r) => setTimeout(r, 5));
      await Promise.all([a.close(), b.close()]);
      console.log('closed', got.length);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.signal, null, `the process did not exit by itself (${r.stderr})`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^closed \d+/);
  });
});
