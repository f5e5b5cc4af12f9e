// The client port's HTTP/2 server (src/server/h2.ts) and its HPACK codec
// (src/server/hpack.ts), spoken to frame by frame over a real socket: the
// preface and SETTINGS exchange, PING, flow control in both directions,
// frame sizes, header blocks across CONTINUATION, padding, resets, GOAWAY,
// and the connection errors of RFC 9113 §5.4.1 for what a client may not send.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { CLIENT_PREFACE, H2Code, H2Connection, type H2Handler, type H2Options, type H2Stream, type RequestHeaders } from '../../src/server/h2.js';
import { encodeHeaderBlock, encodeInteger, encodeRawString, HpackDecoder, HpackError, huffmanDecode } from '../../src/server/hpack.js';
import { ACK, END_HEADERS, END_STREAM, type Frame, PADDED, PRIORITY, T, encodeFrame, settings, u32 } from './h2Frames.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeAll(d: HpackDecoder, block: Buffer): string[][] {
  const fields: string[][] = [];
  d.decode(block, (name, value) => fields.push([name, value]));
  return fields;
}

describe('HPACK', () => {
  it('decodes RFC 7541 C.4: three requests with Huffman coding, sharing a dynamic table', () => {
    const d = new HpackDecoder();
    assert.deepEqual(decodeAll(d, hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    assert.deepEqual(decodeAll(d, hex('8286 84be 5886 a8eb 1064 9cbf')), [
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
      ['cache-control', 'no-cache'],
    ]);
    assert.deepEqual(decodeAll(d, hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')), [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/index.html'],
      [':authority', 'www.example.com'],
      ['custom-key', 'custom-value'],
    ]);
  });

  it('decodes RFC 7541 C.2: a literal enters the table only with incremental indexing', () => {
    const d = new HpackDecoder();
    assert.deepEqual(decodeAll(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), [['custom-key', 'custom-header']]);
    assert.deepEqual(decodeAll(d, hex('1008 7061 7373 776f 7264 0673 6563 7265 74')), [['password', 'secret']]);
    assert.deepEqual(decodeAll(d, hex('040c 2f73 616d 706c 652f 7061 7468')), [[':path', '/sample/path']]);
    // The first entry is still index 62: neither later literal was added.
    assert.deepEqual(decodeAll(d, hex('be')), [['custom-key', 'custom-header']]);
    assert.throws(() => decodeAll(d, hex('bf')), HpackError);
  });

  it('evicts by size as the encoder does, and honours table size updates', () => {
    const d = new HpackDecoder();
    const incremental = (value: string): number[] => {
      const out: number[] = [];
      encodeInteger(0, 6, 0x40, out);
      encodeRawString('k', out);
      encodeRawString(value, out);
      return out;
    };
    // Each entry: 1 + 2000 + 32 octets; the third pushes out the first.
    decodeAll(d, Buffer.from([...incremental('a'.repeat(2000)), ...incremental('b'.repeat(2000)), ...incremental('c'.repeat(2000))]));
    assert.equal(decodeAll(d, hex('be'))[0]![1]![0], 'c');
    assert.equal(decodeAll(d, hex('bf'))[0]![1]![0], 'b');
    assert.throws(() => decodeAll(d, hex('c0')), HpackError);
    decodeAll(d, hex('20')); // size 0 empties the table
    assert.throws(() => decodeAll(d, hex('be')), HpackError);
    assert.throws(() => decodeAll(d, hex('3fe21f')), /above the limit/); // 4097
  });

  it('refuses bad padding, truncation and an out-of-range index with HpackError', () => {
    assert.throws(() => huffmanDecode(hex('00')), HpackError); // zero padding bits
    assert.throws(() => huffmanDecode(hex('ffffffff')), HpackError); // EOS
    for (const bad of ['41', '418c', 'ff', 'bf', '00', '8220']) assert.throws(() => decodeAll(new HpackDecoder(), hex(bad)), HpackError, bad);
  });

  it('encodes blocks that decode to the same fields and leave the table empty', () => {
    const fields: [string, string][] = [
      [':status', '200'],
      [':status', '431'],
      ['content-type', 'application/grpc'],
      ['grpc-status', '3'],
      ['grpc-message', 'x'.repeat(300)],
    ];
    const d = new HpackDecoder();
    assert.deepEqual(decodeAll(d, encodeHeaderBlock(fields)), fields);
    assert.throws(() => decodeAll(d, hex('be')), HpackError);
  });
});

// ---------------------------------------------------------------------------
// A raw HTTP/2 client

const request = (path = '/echo', extra: [string, string][] = []): Buffer =>
  encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', 'http://127.0.0.1:2379'], ...extra]);

class RawClient {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private readonly frames: Frame[] = [];
  private wake: (() => void) | undefined;
  ended = false;
  readonly decoder = new HpackDecoder();

  private prefaceBytes = 0;
  private preface: Buffer | undefined;

  constructor(port: number | net.Socket, opts: { preface?: Buffer; settings?: [number, number][] } = {}) {
    this.socket = typeof port === 'number' ? net.connect({ port, host: '127.0.0.1', noDelay: true }) : port;
    // As the server end of a connection: the client's preface comes first.
    if (typeof port !== 'number') this.prefaceBytes = CLIENT_PREFACE.length;
    this.socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      if (this.prefaceBytes > 0) {
        if (this.buf.length < this.prefaceBytes) return;
        this.preface = this.buf.subarray(0, this.prefaceBytes);
        this.buf = this.buf.subarray(this.prefaceBytes);
        this.prefaceBytes = 0;
      }
      while (this.buf.length >= 9 && this.buf.length >= 9 + this.buf.readUIntBE(0, 3)) {
        const len = this.buf.readUIntBE(0, 3);
        const f = { type: this.buf[3]!, flags: this.buf[4]!, stream: this.buf.readUInt32BE(5), payload: this.buf.subarray(9, 9 + len) };
        this.frames.push(f);
        // As every client does: acknowledge the server's SETTINGS.
        if (f.type === T.SETTINGS && f.flags === 0) this.send(T.SETTINGS, ACK, 0);
        this.buf = this.buf.subarray(9 + len);
      }
      this.wake?.();
    });
    this.socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    this.socket.on('error', () => {});
    const ownSettings = encodeFrame(T.SETTINGS, 0, 0, settings(opts.settings ?? []));
    this.socket.write(typeof port !== 'number' ? ownSettings : (opts.preface ?? Buffer.concat([CLIENT_PREFACE, ownSettings])));
  }

  /** The server end of an accepted connection: sends SETTINGS, reads the client's preface. */
  static over(socket: net.Socket): RawClient {
    return new RawClient(socket);
  }

  async readPreface(): Promise<Buffer> {
    while (this.preface === undefined) await new Promise((r) => setTimeout(r, 5));
    return this.preface;
  }

  /** Waits until the peer has read and answered everything sent so far (a PING round trip). */
  async sync(): Promise<void> {
    const payload = Buffer.from(`sync${String(Math.random()).slice(2, 6)}`);
    this.send(T.PING, 0, 0, payload);
    await this.next((f) => f.type === T.PING && f.flags === ACK && f.payload.equals(payload));
  }

  send(type: number, flags: number, stream: number, payload?: Buffer): void {
    this.socket.write(encodeFrame(type, flags, stream, payload));
  }

  /** The next frame that `match` accepts (others are skipped); undefined if the connection closes first. */
  async next(match: (f: Frame) => boolean = () => true, ms = 2000): Promise<Frame | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(0, i + 1).pop();
      if (this.ended) return undefined;
      if (Date.now() > deadline) throw new Error('no such frame in time');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 20);
      });
    }
  }

  async goAway(): Promise<{ lastStream: number; code: number; debug: string }> {
    const f = await this.next((f) => f.type === T.GOAWAY);
    assert.ok(f, 'a GOAWAY before the connection closed');
    return { lastStream: f.payload.readUInt32BE(0), code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString() };
  }

  async closed(ms = 2000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('the connection stayed open');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  headersOf(f: Frame): Record<string, string> {
    const out: Record<string, string> = {};
    this.decoder.decode(f.payload, (n, v) => (out[n] = v));
    return out;
  }

  /** Collects one stream's response: headers, body, trailers. */
  async response(stream: number, acknowledge = false): Promise<{ headers: Record<string, string>; body: Buffer; trailers: Record<string, string> | undefined; dataFrames: number[] }> {
    const h = await this.next((f) => f.stream === stream && f.type === T.HEADERS);
    assert.ok(h);
    const headers = this.headersOf(h);
    const body: Buffer[] = [];
    const dataFrames: number[] = [];
    let trailers: Record<string, string> | undefined;
    if (h.flags & END_STREAM) return { headers, body: Buffer.alloc(0), trailers, dataFrames };
    for (;;) {
      const f = await this.next((f) => f.stream === stream && (f.type === T.DATA || f.type === T.HEADERS || f.type === T.RST_STREAM));
      assert.ok(f && f.type !== T.RST_STREAM, 'the stream was not reset');
      if (f.type === T.HEADERS) {
        trailers = this.headersOf(f);
        assert.ok(f.flags & END_STREAM);
        break;
      }
      body.push(f.payload);
      dataFrames.push(f.payload.length);
      if (acknowledge && f.payload.length > 0) {
        this.send(T.WINDOW_UPDATE, 0, stream, u32(f.payload.length));
        this.send(T.WINDOW_UPDATE, 0, 0, u32(f.payload.length));
      }
      if (f.flags & END_STREAM) break;
    }
    return { headers, body: Buffer.concat(body), trailers, dataFrames };
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------
// The server under test: answers /echo with its body, repeated as x-repeat says.

const OPTIONS: H2Options = { streamWindowBytes: 1024, connectionWindowBytes: 70_000, maxHeaderListBytes: 2048, maxConcurrentStreams: 4, maxQueuedBytes: 1 << 20 };

describe('HTTP/2 server connection', () => {
  let server: net.Server;
  let port: number;
  const connections = new Set<H2Connection>();
  const seen: RequestHeaders[] = [];
  const closedStreams: number[] = [];
  const held: H2Stream[] = [];

  const handler: H2Handler = {
    onStream(stream, headers) {
      seen.push(headers);
      const chunks: Buffer[] = [];
      stream.listener = {
        onData: (c) => chunks.push(Buffer.from(c)),
        onEnd: () => {
          if (headers[':path'] === '/hold') {
            held.push(stream);
            return;
          }
          const body = Buffer.concat(chunks);
          stream.respond(encodeHeaderBlock([[':status', '200']]));
          stream.write(Buffer.concat(Array(Number(headers['x-repeat'] ?? 1)).fill(body)));
          stream.end(encodeHeaderBlock([['x-trailer', 'done']]));
        },
        onClose: () => closedStreams.push(stream.id),
        onDrain: () => {},
      };
    },
    onConnectionClose: (c) => connections.delete(c),
    onHandlerError: (e) => {
      throw e;
    },
  };

  before(async () => {
    server = net.createServer({ noDelay: true }, (socket) => connections.add(new H2Connection(socket, handler, OPTIONS, Buffer.alloc(0))));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const c of connections) c.destroy();
    await new Promise((r) => server.close(r));
  });

  it('opens with its SETTINGS and a connection WINDOW_UPDATE, acknowledges the client\'s, answers PING', async () => {
    const c = new RawClient(port);
    const s = await c.next();
    assert.equal(s?.type, T.SETTINGS);
    assert.deepEqual(s.payload, settings([[4, 1024], [6, 2048]]));
    const w = await c.next();
    assert.equal(w?.type, T.WINDOW_UPDATE);
    assert.deepEqual([w.stream, w.payload.readUInt32BE(0)], [0, 70_000 - 65_535]);
    const ack = await c.next((f) => f.type === T.SETTINGS);
    assert.equal(ack?.flags, ACK);
    c.send(T.PING, 0, 0, Buffer.from('12345678'));
    const pong = await c.next((f) => f.type === T.PING);
    assert.deepEqual([pong?.flags, pong?.payload.toString()], [ACK, '12345678']);
    c.close();
  });

  it('serves a request split over HEADERS and CONTINUATION, padded, with priority, and padded DATA', async () => {
    const c = new RawClient(port);
    const block = request('/echo', [['x-repeat', '2'], ['x-long', 'v'.repeat(200)]]);
    const pad = Buffer.alloc(3);
    const first = Buffer.concat([Buffer.from([pad.length]), Buffer.alloc(5), block.subarray(0, 50), pad]);
    c.send(T.HEADERS, PADDED | PRIORITY, 1, first);
    c.send(T.CONTINUATION, 0, 1, block.subarray(50, 120));
    c.send(T.CONTINUATION, END_HEADERS, 1, block.subarray(120));
    c.send(T.DATA, PADDED, 1, Buffer.concat([Buffer.from([4]), Buffer.from('hello'), Buffer.alloc(4)]));
    c.send(T.DATA, END_STREAM, 1, Buffer.from('!'));
    const r = await c.response(1);
    assert.equal(r.headers[':status'], '200');
    assert.equal(r.body.toString(), 'hello!hello!');
    assert.deepEqual(r.trailers, { 'x-trailer': 'done' });
    assert.equal(seen.at(-1)!['x-long'], 'v'.repeat(200));
    assert.equal(seen.at(-1)![':authority'], 'http://127.0.0.1:2379', 'an authority nghttp2 would refuse is taken as it is');
    c.close();
  });

  it('keeps the client\'s dynamic table across requests and takes a repeated field as an array', async () => {
    const c = new RawClient(port);
    // Stream 1 adds "x-id: 7" to the table (literal, incremental, new name); stream 3 refers to it (index 62).
    const withIndexing: number[] = [];
    encodeInteger(0, 6, 0x40, withIndexing);
    encodeRawString('x-id', withIndexing);
    encodeRawString('7', withIndexing);
    c.send(T.HEADERS, END_HEADERS | END_STREAM, 1, Buffer.concat([request(), Buffer.from(withIndexing)]));
    await c.response(1);
    c.send(T.HEADERS, END_HEADERS | END_STREAM, 3, Buffer.concat([request(), hex('be be')]));
    await c.response(3);
    assert.equal(seen.at(-2)!['x-id'], '7');
    assert.deepEqual(seen.at(-1)!['x-id'], ['7', '7']);
    c.close();
  });

  it('sends no more than the client\'s stream and connection windows allow, in frames no larger than it accepts', async () => {
    // A 10-byte stream window: the 3000-byte answer goes out 10 bytes per WINDOW_UPDATE.
    const c = new RawClient(port, { settings: [[4, 10]] });
    c.send(T.HEADERS, END_HEADERS, 1, request('/echo', [['x-repeat', '100']]));
    c.send(T.DATA, END_STREAM, 1, Buffer.from('0123456789abcdefghij0123456789'));
    const r = await c.response(1, true);
    assert.equal(r.body.length, 3000);
    assert.ok(r.dataFrames.every((n) => n <= 10), `frames of ${Math.max(...r.dataFrames)} bytes`);
    assert.ok(r.trailers, 'trailers after the last byte');
    c.close();

    // The connection window (65,535 until raised) and the 16 KiB frame limit: 80,000 bytes need both.
    const d = new RawClient(port, { settings: [[4, 1 << 20]] });
    d.send(T.HEADERS, END_HEADERS, 1, request('/echo', [['x-repeat', '8000']]));
    d.send(T.DATA, END_STREAM, 1, Buffer.from('0123456789'));
    const stalled = await d.next((f) => f.type === T.DATA);
    assert.ok(stalled);
    let received = stalled.payload.length;
    for (;;) {
      const f = await d.next((f) => f.type === T.DATA || f.type === T.HEADERS, 300).catch(() => undefined);
      if (f === undefined || f.type === T.HEADERS) break;
      assert.ok(f.payload.length <= 16384);
      received += f.payload.length;
    }
    assert.equal(received, 65535, 'stops at the connection window');
    d.send(T.WINDOW_UPDATE, 0, 0, u32(100_000));
    for (;;) {
      const f = await d.next((f) => f.stream === 1);
      assert.ok(f && (f.type === T.DATA || f.type === T.HEADERS));
      if (f.type === T.HEADERS) {
        assert.ok(f.flags & END_STREAM, 'trailers end the stream');
        break;
      }
      received += f.payload.length;
    }
    assert.equal(received, 80_000);
    d.close();
  });

  it('holds a client to the stream window once it has acknowledged the SETTINGS, and opens it again as data is taken', async () => {
    const c = new RawClient(port);
    // Before the client's ACK, a stream may take 65,535 bytes: 2000 are fine.
    c.send(T.HEADERS, END_HEADERS, 1, request('/echo'));
    c.send(T.DATA, END_STREAM, 1, Buffer.alloc(2000, 'a'));
    assert.equal((await c.response(1)).body.length, 2000);
    // After it (the ACK went out before these frames), 1024 is the limit,
    // with a WINDOW_UPDATE once half of it is taken.
    c.send(T.HEADERS, END_HEADERS, 3, request('/echo'));
    c.send(T.DATA, 0, 3, Buffer.alloc(600));
    const update = await c.next((f) => f.type === T.WINDOW_UPDATE && f.stream === 3);
    assert.equal(update?.payload.readUInt32BE(0), 600);
    // The window is whole again (1024): one frame of 1025 bytes is over it.
    c.send(T.DATA, 0, 3, Buffer.alloc(1025));
    const rst = await c.next((f) => f.type === T.RST_STREAM);
    assert.deepEqual([rst?.stream, rst?.payload.readUInt32BE(0)], [3, H2Code.FLOW_CONTROL_ERROR]);
    // Data still in flight on the reset stream is dropped; the connection goes on.
    c.send(T.DATA, END_STREAM, 3, Buffer.alloc(10));
    c.send(T.HEADERS, END_HEADERS | END_STREAM, 5, request());
    assert.equal((await c.response(5)).headers[':status'], '200');
    c.close();
  });

  it('resets a stream the client resets, and refuses streams past the concurrency limit', async () => {
    held.length = 0;
    const c = new RawClient(port);
    for (const id of [1, 3, 5, 7, 9]) c.send(T.HEADERS, END_HEADERS | END_STREAM, id, request('/hold'));
    const refused = await c.next((f) => f.type === T.RST_STREAM);
    assert.deepEqual([refused?.stream, refused?.payload.readUInt32BE(0)], [9, H2Code.REFUSED_STREAM]);
    c.send(T.RST_STREAM, 0, 3, u32(H2Code.CANCEL));
    c.send(T.PING, 0, 0, Buffer.alloc(8));
    await c.next((f) => f.type === T.PING);
    assert.ok(closedStreams.includes(3), 'the listener heard of the reset');
    assert.ok(held.find((s) => s.id === 3)!.closed);
    // A held stream answered afterwards goes out normally; one answered after the reset sends nothing.
    held.find((s) => s.id === 1)!.respond(encodeHeaderBlock([[':status', '200']]), true);
    held.find((s) => s.id === 3)!.respond(encodeHeaderBlock([[':status', '200']]), true);
    const h = await c.next((f) => f.type === T.HEADERS);
    assert.equal(h?.stream, 1);
    c.close();
  });

  it('on close(): GOAWAY naming the last stream, the open streams finish, new ones are ignored, then the socket closes', async () => {
    held.length = 0;
    const c = new RawClient(port);
    c.send(T.HEADERS, END_HEADERS | END_STREAM, 1, request('/hold'));
    await c.next((f) => f.type === T.SETTINGS && f.flags === ACK);
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    const conn = [...connections].at(-1)!;
    conn.close();
    const g = await c.goAway();
    assert.deepEqual([g.code, g.lastStream], [H2Code.NO_ERROR, 1]);
    c.send(T.HEADERS, END_HEADERS | END_STREAM, 3, request('/echo'));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(held.length, 1);
    held[0]!.respond(encodeHeaderBlock([[':status', '200']]));
    held[0]!.end(encodeHeaderBlock([['x-trailer', 'done']]));
    const r = await c.response(1);
    assert.deepEqual(r.trailers, { 'x-trailer': 'done' });
    await c.closed();
  });

  it('closes the connection of a client that keeps sending and stops reading', async () => {
    const c = new RawClient(port);
    await c.next((f) => f.type === T.SETTINGS && f.flags === ACK);
    c.socket.pause();
    // Each PING calls for an acknowledgement; past 1 MiB unread (OPTIONS.maxQueuedBytes) the server lets go.
    const pings = Buffer.concat(Array.from({ length: 1000 }, () => encodeFrame(T.PING, 0, 0, Buffer.alloc(8))));
    const deadline = Date.now() + 10_000;
    while (!c.socket.destroyed && !c.ended && Date.now() < deadline) {
      if (!c.socket.write(pings)) await new Promise((r) => setTimeout(r, 5));
      else await new Promise((r) => setImmediate(r));
      if (c.socket.writableLength > 8 << 20) break; // the server stopped reading: it has closed
    }
    c.socket.resume();
    await c.closed(5000);
  });

  const connectionErrors: [string, (c: RawClient) => void, number][] = [
    ['a bad preface', () => {}, H2Code.PROTOCOL_ERROR],
    ['a first frame other than SETTINGS', (c) => c.send(T.PING, 0, 0, Buffer.alloc(8)), H2Code.PROTOCOL_ERROR],
    ['an even stream id', (c) => c.send(T.HEADERS, END_HEADERS | END_STREAM, 2, request()), H2Code.PROTOCOL_ERROR],
    ['DATA on an idle stream', (c) => c.send(T.DATA, 0, 5, Buffer.from('x')), H2Code.PROTOCOL_ERROR],
    ['a header block interrupted by another frame', (c) => {
      c.send(T.HEADERS, 0, 1, request().subarray(0, 5));
      c.send(T.PING, 0, 0, Buffer.alloc(8));
    }, H2Code.PROTOCOL_ERROR],
    ['a header block beyond the header list limit', (c) => {
      c.send(T.HEADERS, 0, 1, Buffer.alloc(1500));
      c.send(T.CONTINUATION, 0, 1, Buffer.alloc(1500));
    }, H2Code.ENHANCE_YOUR_CALM],
    ['a header block that does not decode', (c) => c.send(T.HEADERS, END_HEADERS, 1, hex('ff')), H2Code.COMPRESSION_ERROR],
    ['a frame above 16 KiB', (c) => c.send(T.DATA, 0, 1, Buffer.alloc(16385)), H2Code.FRAME_SIZE_ERROR],
    ['a PING of 7 bytes', (c) => c.send(T.PING, 0, 0, Buffer.alloc(7)), H2Code.FRAME_SIZE_ERROR],
    ['a WINDOW_UPDATE of 0 on the connection', (c) => c.send(T.WINDOW_UPDATE, 0, 0, u32(0)), H2Code.PROTOCOL_ERROR],
    ['a connection window above 2^31-1', (c) => c.send(T.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1)), H2Code.FLOW_CONTROL_ERROR],
    ['PUSH_PROMISE', (c) => c.send(T.PUSH_PROMISE, END_HEADERS, 1, Buffer.alloc(4)), H2Code.PROTOCOL_ERROR],
    ['SETTINGS_MAX_FRAME_SIZE below 16 KiB', (c) => c.send(T.SETTINGS, 0, 0, settings([[5, 100]])), H2Code.PROTOCOL_ERROR],
  ];
  for (const [what, act, code] of connectionErrors) {
    it(`ends the connection with GOAWAY on ${what}`, async () => {
      const c = new RawClient(port, what === 'a bad preface' ? { preface: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\nPRI*') } : what === 'a first frame other than SETTINGS' ? { preface: CLIENT_PREFACE } : {});
      act(c);
      const g = await c.goAway();
      assert.equal(g.code, code, `${what}: ${g.debug}`);
      assert.ok(g.debug.length > 0, 'the debug data says why');
      await c.closed();
    });
  }

  it('ignores unknown frame types and PRIORITY, and resets a stream whose request lacks :path', async () => {
    const c = new RawClient(port);
    c.send(0xfa, 0, 0, Buffer.from('whatever'));
    c.send(T.PRIORITY, 0, 1, Buffer.alloc(5));
    c.send(T.HEADERS, END_HEADERS | END_STREAM, 3, encodeHeaderBlock([[':method', 'POST']]));
    const rst = await c.next((f) => f.type === T.RST_STREAM);
    assert.deepEqual([rst?.stream, rst?.payload.readUInt32BE(0)], [3, H2Code.PROTOCOL_ERROR]);
    c.send(T.HEADERS, END_HEADERS | END_STREAM, 5, request());
    const r = await c.response(5);
    assert.equal(r.headers[':status'], '200');
    c.close();
  });
});

describe('HTTP/2 client connection', () => {
  interface Pair {
    client: H2Connection;
    server: RawClient;
    closed: Promise<void>;
  }

  /**
   * Runs `body` with a raw server (the test writes its frames) and the
   * client side under test, an H2Connection in the client role; closes both after.
   */
  async function withPair(body: (pair: Pair) => Promise<void>): Promise<void> {
    let accepted!: (s: net.Socket) => void;
    const sockets = new Promise<net.Socket>((r) => (accepted = r));
    const listener = net.createServer({ noDelay: true }, (s) => accepted(s));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const socket = net.connect({ port: (listener.address() as net.AddressInfo).port, host: '127.0.0.1', noDelay: true });
    let onClosed!: () => void;
    const closed = new Promise<void>((r) => (onClosed = r));
    const client = new H2Connection(socket, { onConnectionClose: () => onClosed(), onHandlerError: (e) => { throw e; } }, OPTIONS, Buffer.alloc(0), 'client');
    // The accepted socket, read frame by frame like RawClient (which also sends a server's preface: SETTINGS).
    const server = RawClient.over(await sockets);
    try {
      await body({ client, server, closed });
    } finally {
      server.close();
      listener.close();
    }
  }

  function listen(stream: H2Stream): { events: string[] } {
    const events: string[] = [];
    stream.listener = {
      onHeaders: (h, end) => events.push(`headers ${h[':status'] ?? h['grpc-status']}${end ? ' end' : ''}`),
      onData: (c) => events.push(`data ${c.length}`),
      onEnd: () => events.push('end'),
      onClose: () => events.push(`close${stream.refused ? ' refused' : ''}${stream.resetCode !== undefined ? ` reset ${stream.resetCode}` : ''}`),
      onDrain: () => {},
    };
    return { events };
  }

  it('opens with the preface and SETTINGS (push off), sends requests on odd streams, reads a response with trailers', () =>
    withPair(async ({ client, server }) => {
      const preface = await server.readPreface();
      assert.deepEqual(preface, CLIENT_PREFACE);
      const own = await server.next((f) => f.type === T.SETTINGS && f.flags === 0);
      assert.deepEqual(own?.payload, settings([[4, 1024], [6, 2048], [2, 0]]));
      const a = client.request(request('/a'))!;
      const b = client.request(request('/b'))!;
      assert.deepEqual([a.id, b.id], [1, 3]);
      const la = listen(a);
      a.write(Buffer.from('body'), true);
      const h = await server.next((f) => f.type === T.HEADERS && f.stream === 1);
      assert.equal(server.headersOf(h!)[':path'], '/a');
      const d = await server.next((f) => f.type === T.DATA && f.stream === 1);
      assert.deepEqual([d?.payload.toString(), d!.flags & END_STREAM], ['body', END_STREAM], 'one DATA frame carries the body and END_STREAM');
      server.send(T.HEADERS, END_HEADERS, 1, encodeHeaderBlock([[':status', '200']]));
      server.send(T.DATA, 0, 1, Buffer.from('answer'));
      server.send(T.HEADERS, END_HEADERS | END_STREAM, 1, encodeHeaderBlock([['grpc-status', '0']]));
      await server.sync();
      assert.deepEqual(la.events, ['headers 200', 'data 6', 'headers 0 end', 'end', 'close']);
      b.reset(H2Code.CANCEL);
    }));

  it('after GOAWAY: streams above its last stream are refused (not processed), the others answered, new requests refused', () =>
    withPair(async ({ client, server }) => {
      await server.readPreface();
      const [one, three, five] = [client.request(request()), client.request(request()), client.request(request())].map((s) => ({ s: s!, ...listen(s!) }));
      await server.next((f) => f.type === T.HEADERS && f.stream === 5);
      server.send(T.RST_STREAM, 0, 5, u32(H2Code.REFUSED_STREAM));
      server.send(T.GOAWAY, 0, 0, Buffer.concat([u32(1), u32(H2Code.NO_ERROR)]));
      server.send(T.HEADERS, END_HEADERS | END_STREAM, 1, encodeHeaderBlock([[':status', '200'], ['grpc-status', '0']]));
      await server.sync();
      assert.deepEqual(five!.events, ['close refused reset 7']);
      assert.deepEqual(three!.events, ['close refused']);
      assert.deepEqual(one!.events, ['headers 200 end', 'end'], 'answered; open until its own END_STREAM is sent');
      assert.equal(client.acceptsRequests, false);
      assert.equal(client.request(request()), undefined);
      one!.s.write(Buffer.alloc(0), true);
      assert.deepEqual(one!.events.at(-1), 'close');
    }));

  it('treats HEADERS on a stream it did not open as a connection error', () =>
    withPair(async ({ server, closed }) => {
      await server.readPreface();
      server.send(T.HEADERS, END_HEADERS, 2, encodeHeaderBlock([[':status', '200']]));
      const g = await server.goAway();
      assert.equal(g.code, H2Code.PROTOCOL_ERROR);
      server.close();
      await closed;
    }));
});
