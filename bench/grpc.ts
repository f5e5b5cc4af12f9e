// gRPC layer: CPU per unary call, @grpc/grpc-js against raftkv's lean server on node:http2.
//
// Each server runs in a child process on 127.0.0.1 and answers
// /etcdserverpb.KV/Put with the same handler (decode the PutRequest with
// src/server/etcdpb.ts, answer a PutResponse with a header), so the
// difference is the gRPC layer alone. The parent drives it with --inflight
// concurrent calls on one HTTP/2 connection and reads both processes' CPU
// time (user + system) around --calls calls, after --warmup calls:
//
//   server µs/call   the child's CPU time per call: what a member pays
//   client µs/call   the parent's CPU time per call: what a client pays
//   calls/s          the rate the pair sustained
//
// Servers:
//   grpc-js    @grpc/grpc-js Server with etcdpb's codecs as (de)serializers
//   lean       src/server/grpc.ts (GrpcServer), what raftkv serves
//   http2      a bare node:http2 handler with gRPC framing and no checks: the floor
// Clients:
//   lean       src/client's transport (Channel): raftkv's HTTP/2 (src/server/h2.ts) with gRPC framing
//   grpc-js    @grpc/grpc-js generic client, as the etcd3 npm client uses
//
// The pairs run in turn, --runs times (interleaved, so a slow phase of the
// machine touches every pair); each figure is the median over runs with
// min-max. Request: a 16-byte key and a --value-bytes value (100).
//
// Flags: --runs N (5) --calls N (20000) --warmup N (3000) --inflight N (16)
// --value-bytes N (100) --pairs LIST (grpc-js/lean,lean/lean,http2/lean,lean/grpc-js)
// --json

import { type ChildProcess, fork } from 'node:child_process';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';

import { Channel } from '../src/client/transport.js';
import type { PutRequest as PutReq, PutResponse as PutRes } from '../src/kv/types.js';
import { PutRequest, PutResponse, methods } from '../src/server/etcdpb.js';
import { GrpcServer } from '../src/server/grpc.js';
import { type Summary, FlagError, checkFlags, intArg, loadNow, machine, out, parseArgs, progress, range, runMainAsync, si, strArg, summarize, table } from './harness.js';

type ServerKind = 'grpc-js' | 'lean' | 'http2';
type ClientKind = 'lean' | 'grpc-js';
const SERVERS: readonly ServerKind[] = ['grpc-js', 'lean', 'http2'];
const CLIENTS: readonly ClientKind[] = ['lean', 'grpc-js'];
const PATH = methods.put.path;

const HEADER = { clusterId: 0x1234567890abcdefn, memberId: 0x0fedcba987654321n, revision: 123456, raftTerm: 7 };

/** The handler every server runs: decode, answer. */
function answer(req: PutReq): PutRes {
  if (req.key.length === 0) throw new Error('bench: empty key');
  return { header: HEADER };
}

// ---------------------------------------------------------------------------
// Child: one server, reporting its port and, on request, its CPU time.

async function serve(kind: ServerKind): Promise<void> {
  const port = await startServer(kind);
  process.send!({ port });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'cpu') {
      const c = process.cpuUsage();
      process.send!({ cpu: c.user + c.system });
    } else if (m.cmd === 'exit') {
      process.exit(0);
    }
  });
}

async function startServer(kind: ServerKind): Promise<number> {
  switch (kind) {
    case 'grpc-js': {
      const server = new grpc.Server();
      const service: grpc.ServiceDefinition = {
        put: {
          path: PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: (m: PutReq) => PutRequest.encode(m),
          requestDeserialize: (b: Buffer) => PutRequest.decode(b),
          responseSerialize: (m: PutRes) => PutResponse.encode(m),
          responseDeserialize: (b: Buffer) => PutResponse.decode(b),
        },
      };
      server.addService(service, {
        put: (call: grpc.ServerUnaryCall<PutReq, PutRes>, cb: grpc.sendUnaryData<PutRes>) => cb(null, answer(call.request)),
      });
      return new Promise((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
      );
    }
    case 'http2': {
      // The floor: framing and trailers, nothing else (no validation, no deadlines).
      const server = http2.createServer();
      server.on('stream', (stream) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const req = PutRequest.decode(Buffer.concat(chunks).subarray(5));
          const res = PutResponse.encode(answer(req), 5);
          res[0] = 0;
          res.writeUInt32BE(res.length - 5, 1);
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(res);
        });
      });
      return listen(server);
    }
    case 'lean': {
      const server = new GrpcServer();
      server.addUnary(methods.put, answer);
      return (await server.listen(0)).port;
    }
  }
}

function listen(server: http2.Http2Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

// ---------------------------------------------------------------------------
// Parent: clients and measurement.

interface BenchClient {
  put(req: PutReq): Promise<PutRes>;
  close(): void;
}

function makeClient(kind: ClientKind, port: number): BenchClient {
  if (kind === 'grpc-js') {
    const Ctor = grpc.makeGenericClientConstructor(
      {
        put: {
          path: PATH,
          requestStream: false,
          responseStream: false,
          requestSerialize: (m: PutReq) => PutRequest.encode(m),
          requestDeserialize: (b: Buffer) => PutRequest.decode(b),
          responseSerialize: (m: PutRes) => PutResponse.encode(m),
          responseDeserialize: (b: Buffer) => PutResponse.decode(b),
        },
      },
      'KV',
    );
    const c = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      put(req: PutReq, cb: (err: grpc.ServiceError | null, res?: PutRes) => void): void;
    };
    return {
      put: (req) => new Promise((resolve, reject) => c.put(req, (err, res) => (err ? reject(err) : resolve(res!)))),
      close: () => c.close(),
    };
  }
  const channel = new Channel(`http://127.0.0.1:${port}`, { connectTimeoutMs: 5000 });
  return { put: (req) => channel.unary(methods.put, req, undefined, 5000), close: () => channel.close() };
}

class Child {
  private pending: ((m: Record<string, number>) => void)[] = [];
  private constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: Record<string, number>) => this.pending.shift()?.(m));
  }

  static async start(kind: ServerKind): Promise<{ child: Child; port: number }> {
    const proc = fork(fileURLToPath(import.meta.url), ['--serve', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const child = new Child(proc);
    const { port } = await child.next();
    return { child, port: port! };
  }

  private next(): Promise<Record<string, number>> {
    return new Promise((resolve, reject) => {
      this.pending.push(resolve);
      this.proc.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
  }

  /** The server's CPU time so far, in µs. */
  async cpu(): Promise<number> {
    const reply = this.next();
    this.proc.send({ cmd: 'cpu' });
    return (await reply).cpu!;
  }

  stop(): void {
    this.proc.send({ cmd: 'exit' });
  }
}

async function drive(client: BenchClient, calls: number, inflight: number, valueBytes: number): Promise<void> {
  let next = 0;
  const value = new Uint8Array(valueBytes).fill(0x61);
  const worker = async (): Promise<void> => {
    while (next < calls) {
      const i = next++;
      const key = Buffer.from(`bench/key/${String(i % 1_000_000).padStart(6, '0')}`);
      const res = await client.put({ key, value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
      if (res.header.revision !== HEADER.revision) throw new Error('bench: wrong response');
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
}

interface Sample {
  serverUs: number;
  clientUs: number;
  rate: number;
}

async function runPair(server: ServerKind, clientKind: ClientKind, o: Options): Promise<Sample> {
  const { child, port } = await Child.start(server);
  const client = makeClient(clientKind, port);
  try {
    await drive(client, o.warmup, o.inflight, o.valueBytes);
    const s0 = await child.cpu();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await drive(client, o.calls, o.inflight, o.valueBytes);
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const s1 = await child.cpu();
    return { serverUs: (s1 - s0) / o.calls, clientUs: (c.user + c.system) / o.calls, rate: o.calls / (wall / 1000) };
  } finally {
    client.close();
    child.stop();
  }
}

interface Options {
  runs: number;
  calls: number;
  warmup: number;
  inflight: number;
  valueBytes: number;
  pairs: [ServerKind, ClientKind][];
  json: boolean;
}

function parsePairs(v: string | undefined): [ServerKind, ClientKind][] {
  const spec = v ?? 'grpc-js/lean,lean/lean,http2/lean,lean/grpc-js';
  return spec.split(',').map((p) => {
    const [s, c] = p.split('/');
    if (!SERVERS.includes(s as ServerKind) || !CLIENTS.includes(c as ClientKind)) {
      throw new FlagError(`--pairs: "${p}" is not server/client with server in ${SERVERS.join('|')} and client in ${CLIENTS.join('|')}`);
    }
    return [s as ServerKind, c as ClientKind];
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--serve') return serve(argv[1] as ServerKind);
  const args = parseArgs(argv);
  checkFlags(args, ['runs', 'calls', 'warmup', 'inflight', 'value-bytes', 'pairs', 'json']);
  const o: Options = {
    runs: intArg(args, 'runs', 5),
    calls: intArg(args, 'calls', 20000),
    warmup: intArg(args, 'warmup', 3000),
    inflight: intArg(args, 'inflight', 16),
    valueBytes: intArg(args, 'value-bytes', 100),
    pairs: parsePairs(strArg(args, 'pairs')),
    json: args.get('json') === true,
  };
  const head = o.json ? progress : out;
  head(`gRPC layer: CPU per unary Put, ${o.calls} calls per run, ${o.inflight} in flight, ${o.valueBytes} B values; ${o.runs} runs`);
  head(`  ${machine()}`);

  const samples = new Map<string, Sample[]>(o.pairs.map(([s, c]) => [`${s}/${c}`, []]));
  for (let run = 1; run <= o.runs; run++) {
    for (const [s, c] of o.pairs) {
      progress(`run ${run}/${o.runs}: server ${s}, client ${c}`);
      samples.get(`${s}/${c}`)!.push(await runPair(s, c, o));
    }
  }
  const results = [...samples].map(([pair, xs]) => ({
    pair,
    serverUs: summarize(xs.map((x) => x.serverUs)),
    clientUs: summarize(xs.map((x) => x.clientUs)),
    rate: summarize(xs.map((x) => x.rate)),
  }));
  if (o.json) {
    out(JSON.stringify({ machine: machine(), options: { ...o, pairs: o.pairs.map((p) => p.join('/')) }, results }, null, 2));
    return;
  }
  const us = (n: number) => n.toFixed(1);
  const fmt = (s: Summary) => range(s, us);
  out(
    '\n' +
      table(
        ['server / client', 'server µs/call', 'client µs/call', 'calls/s'],
        results.map((r) => [r.pair, fmt(r.serverUs), fmt(r.clientUs), range(r.rate, si)]),
      ),
  );
  out(loadNow());
}

runMainAsync(main);
