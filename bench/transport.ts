// Peer transport: encode/decode speed of the peer wire codec on a MsgApp of 64 entries of 256 B, against a plain copy of its bytes, and MsgApps/s through TcpTransport over loopback.
//
// codec (src/transport/codec.ts), one message at a time, as the transport
// does it:
//   - encode: encodedSize, one Buffer.allocUnsafe for the frame (header +
//     message), encodeInto. The send path does exactly this per batch.
//   - decode: decodeMessage of the frame body, which copies the message's
//     bytes once into a block of its own and hands out entries as views.
//   - baselines: the floor of any encoding that copies the payload once:
//     "copy out" allocates a buffer of the message's size and copies the 64
//     payloads into it; "copy in" allocates one and copies the encoded bytes.
//   - the same for a MsgHeartbeat (no payload: the per-message overhead).
// Every decoded message is checked (entry count, last entry's index and
// data), so a number never comes from a decoder that did nothing.
//
// tcp: two TcpTransports in this process on 127.0.0.1, member 1 sending
// MsgApps (same shape) to member 2, one send() per message, at most
// --window (64) unacknowledged by the receiving handler. Reports MsgApps/s
// and payload MB/s; the run fails if a message was dropped, reordered or
// reported unreachable. Both ends share this process's event loop (and the
// machine's 2 cores), so this is a lower bound on what two processes do.
//
// Flags: --runs N (5) --seconds S (per measurement, 0.5) --entries N (64)
// --size B (256) --window N (64) --no-tcp --json

import {
  type Message,
  type NodeId,
  message,
} from '../src/raft/index.js';
import { Random } from '../src/sim/random.js';
import { decodeMessage, encodedSize, encodeInto } from '../src/transport/codec.js';
import { FRAME_HEADER_BYTES, FrameKind, putFrameHeader } from '../src/transport/frame.js';
import { TcpTransport } from '../src/transport/tcp.js';
import {
  type Summary,
  checkFlags,
  intArg,
  loadNow,
  machine,
  mbps,
  now,
  numArg,
  out,
  parseArgs,
  progress,
  range,
  runMainAsync,
  si,
  summarize,
  table,
} from './harness.js';

function msgApp(entries: number, size: number): Message {
  const r = new Random(1);
  return message({
    type: 'MsgApp',
    from: 1,
    to: 2,
    term: 5,
    logTerm: 5,
    index: 100_000,
    commit: 99_990,
    entries: Array.from({ length: entries }, (_, i) => {
      const data = new Uint8Array(size);
      for (let j = 0; j < size; j++) data[j] = r.int(256);
      return { term: 5, index: 100_001 + i, type: 'normal' as const, data };
    }),
  });
}

/** Calls `op` in a loop for `seconds`; returns operations per second. */
function timed(seconds: number, op: () => void): number {
  const t0 = now();
  const until = t0 + seconds * 1000;
  let n = 0;
  let t = t0;
  while (t < until) {
    for (let i = 0; i < 256; i++) op();
    n += 256;
    t = now();
  }
  return n / ((t - t0) / 1000);
}

interface CodecRow {
  readonly what: string;
  readonly opsPerSec: Summary;
  readonly bytes: number;
}

function codecRuns(m: Message, runs: number, seconds: number, label: string): CodecRow[] {
  const size = encodedSize(m);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + size);
  encodeInto(m, frame, putFrameHeader(frame, 0, FrameKind.Message, size));
  const body = frame.subarray(FRAME_HEADER_BYTES);
  const last = m.entries.at(-1);
  let sink = 0;

  const ops: Array<[string, () => void]> = [
    [
      `${label} encode`,
      () => {
        const n = encodedSize(m);
        const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
        sink += encodeInto(m, buf, putFrameHeader(buf, 0, FrameKind.Message, n));
      },
    ],
    [
      `${label} decode`,
      () => {
        const d = decodeMessage(body);
        if (d.entries.length !== m.entries.length) throw new Error('decode lost entries');
        if (last !== undefined) {
          const e = d.entries[d.entries.length - 1]!;
          if (e.index !== last.index || e.data[e.data.length - 1] !== last.data[last.data.length - 1]) throw new Error('decode garbled the last entry');
        }
        sink += d.index;
      },
    ],
  ];
  if (m.entries.length > 0) {
    ops.push(
      [
        `${label} baseline: copy out`,
        () => {
          const buf = Buffer.allocUnsafe(size);
          let pos = 0;
          for (const e of m.entries) {
            buf.set(e.data, pos);
            pos += e.data.length;
          }
          sink += pos;
        },
      ],
      [
        `${label} baseline: copy in`,
        () => {
          const copy = new Uint8Array(size);
          copy.set(body);
          sink += copy[7]!;
        },
      ],
    );
  }
  const samples = ops.map(() => [] as number[]);
  for (const [, op] of ops) timed(Math.min(0.2, seconds), op); // warm-up
  for (let r = 0; r < runs; r++) {
    ops.forEach(([, op], i) => samples[i]!.push(timed(seconds, op)));
    progress(`${label} run ${r + 1}/${runs}: ${ops.map(([what], i) => `${what.slice(label.length + 1)} ${si(samples[i]!.at(-1)!)}/s`).join(', ')}`);
  }
  if (sink === 0) throw new Error('nothing was encoded');
  return ops.map(([what], i) => ({ what, opsPerSec: summarize(samples[i]!), bytes: size }));
}

interface TcpResult {
  readonly msgsPerSec: Summary;
  readonly payloadBytesPerSec: Summary;
}

async function tcpRuns(m: Message, runs: number, seconds: number, window: number): Promise<TcpResult> {
  const random = new Random(2);
  let received = 0;
  let unreachable = 0;
  let outOfOrder = 0;
  const noop = () => {};
  const a = new TcpTransport({ selfId: 1, clusterId: 1n, listen: 'http://127.0.0.1:0', random });
  const b = new TcpTransport({ selfId: 2, clusterId: 1n, listen: 'http://127.0.0.1:0', random });
  await a.start({ onMessage: noop, onUnreachable: () => unreachable++, onSnapshotStatus: noop });
  await b.start({
    onMessage: (got) => {
      if (got.commit !== received) outOfOrder++;
      received++;
    },
    onUnreachable: noop,
    onSnapshotStatus: noop,
  });
  a.addPeer(2, `http://127.0.0.1:${b.address()!.port}`);
  b.addPeer(1, `http://127.0.0.1:${a.address()!.port}`);
  const payload = m.entries.reduce((n, e) => n + e.data.length, 0);
  const yieldLoop = () => new Promise<void>((r) => setImmediate(r));
  let sent = 0;

  async function run(ms: number): Promise<number> {
    const start = sent;
    const t0 = now();
    while (now() - t0 < ms) {
      while (sent - received < window) {
        // commit carries a sequence number the receiver checks.
        a.send([{ ...m, commit: sent } as Message]);
        sent++;
      }
      await yieldLoop();
    }
    while (received < sent) await yieldLoop();
    return (sent - start) / ((now() - t0) / 1000);
  }

  try {
    await run(Math.min(200, seconds * 1000)); // warm-up: connect, JIT
    const rates: number[] = [];
    for (let r = 0; r < runs; r++) {
      rates.push(await run(seconds * 1000));
      progress(`tcp run ${r + 1}/${runs}: ${si(rates.at(-1)!)} MsgApp/s`);
    }
    if (unreachable > 0 || outOfOrder > 0) throw new Error(`tcp: ${unreachable} unreachable reports, ${outOfOrder} out of order`);
    return { msgsPerSec: summarize(rates), payloadBytesPerSec: summarize(rates.map((x) => x * payload)) };
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  checkFlags(args, ['runs', 'seconds', 'entries', 'size', 'window', 'no-tcp', 'json']);
  const runs = intArg(args, 'runs', 5);
  const seconds = numArg(args, 'seconds', 0.5);
  const entries = intArg(args, 'entries', 64);
  const size = intArg(args, 'size', 256);
  const window = intArg(args, 'window', 64);
  const tcp = args.get('no-tcp') !== true;
  const json = args.get('json') === true;

  const head = json ? progress : out;
  head(`transport: wire codec and loopback TCP; MsgApp of ${entries} x ${size} B; ${runs} runs of ${seconds} s`);
  head(`  ${machine()}`);

  const app = msgApp(entries, size);
  const hb: Message = message({ type: 'MsgHeartbeat', from: 1, to: 2 as NodeId, term: 5, commit: 99_990, round: 1234 });
  const rows = [...codecRuns(app, runs, seconds, 'MsgApp'), ...codecRuns(hb, runs, seconds, 'MsgHeartbeat')];
  const tcpResult = tcp ? await tcpRuns(app, runs, seconds, window) : undefined;

  if (json) {
    out(JSON.stringify({ machine: machine(), runs, seconds, entries, size, codec: rows, tcp: tcpResult }, null, 2));
    return;
  }
  out('');
  out(table(
    ['operation', 'ops/s median (min–max)', 'per op', 'MB/s', 'message bytes'],
    rows.map((x) => [x.what, range(x.opsPerSec), `${(1e9 / x.opsPerSec.median).toFixed(0)} ns`, mbps(x.opsPerSec.median * x.bytes), String(x.bytes)]),
  ));
  out('MB/s counts the encoded message bytes; baselines only copy them (the floor for one copy).');
  if (tcpResult !== undefined) {
    out('');
    out(table(
      ['loopback TCP, one process', 'median (min–max)'],
      [
        [`MsgApp/s (window ${window})`, range(tcpResult.msgsPerSec)],
        ['payload MB/s', range(tcpResult.payloadBytesPerSec, mbps)],
      ],
    ));
  }
  out(loadNow());
}

runMainAsync(main);
