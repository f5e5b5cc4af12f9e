// The HTTP/2 server (src/server/h2.ts) fed seeded streams of frames, valid
// and not: requests with and without bodies, random frame types, flags,
// stream ids, settings, window updates, resets, header blocks split across
// CONTINUATION or damaged, and bytes flipped on the way, cut into random
// chunks. Whatever comes in, the server must answer only with well-formed
// frames, never send more DATA than the client's windows allow, stop after a
// GOAWAY with an error, tell every stream it opened that it closed, and
// never fail with anything but a protocol error (an exception of its own is
// a bug). The HPACK decoder alone gets random blocks: a result or an
// HpackError, nothing else.
//
// H2_FUZZ_SEEDS (default 1-400; "1-50000" takes ~10 s) chooses the seeds; a
// failure names its seed. H2_FUZZ_STATS=1 prints a line per seed (streams,
// answers, how the connection ended), H2_FUZZ_TRACE=1 every frame written.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';

import { CLIENT_PREFACE, H2Code, H2Connection, type H2Handler, type H2Options, type H2Stream } from '../../src/server/h2.js';
import { encodeHeaderBlock, encodeInteger, encodeRawString, HpackDecoder, HpackError } from '../../src/server/hpack.js';
import { Random } from '../../src/sim/random.js';
import { encodeFrame, parseFrames, u32 } from './h2Frames.js';

function seeds(): number[] {
  const spec = process.env.H2_FUZZ_SEEDS ?? '1-400';
  const m = /^(\d+)-(\d+)$/.exec(spec);
  if (m === null) return spec.split(',').map(Number);
  return Array.from({ length: Number(m[2]) - Number(m[1]) + 1 }, (_, i) => Number(m[1]) + i);
}

/** What H2Connection uses of a socket, recording what is written. */
class FakeSocket extends EventEmitter {
  readonly written: Buffer[] = [];
  destroyed = false;
  writableLength = 0;
  ended = false;
  write(data: Buffer): boolean {
    assert.ok(!this.ended, 'a write after end()');
    this.written.push(Buffer.from(data));
    return true;
  }
  end(): void {
    this.ended = true;
  }
  destroySoon(): void {
    this.end();
    this.destroy();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

/** A request header block, sometimes adding a field to the client's dynamic table or using one. */
function requestBlock(r: Random, tableEntries: number): { block: Buffer; added: boolean } {
  const fields: [string, string][] = [[':method', r.chance(0.9) ? 'POST' : 'GET'], [':path', r.chance(0.5) ? '/echo' : '/hold'], [':scheme', 'http']];
  if (r.chance(0.3)) fields.push(['x-repeat', String(r.int(2000))]);
  const parts = [encodeHeaderBlock(fields)];
  let added = false;
  if (r.chance(0.3)) {
    const out: number[] = [];
    encodeInteger(0, 6, 0x40, out);
    encodeRawString(`x-${r.int(100)}`, out);
    encodeRawString('v'.repeat(r.int(300)), out);
    parts.push(Buffer.from(out));
    added = true;
  }
  if (tableEntries > 0 && r.chance(0.3)) parts.push(Buffer.from([0x80 | (62 + r.int(tableEntries))]));
  return { block: Buffer.concat(parts), added };
}

/**
 * A seeded client's bytes: a protocol-following client, which in half of
 * the seeds also makes mistakes of every kind now and then.
 */
function clientBytes(r: Random): Buffer {
  const mistakeRate = r.chance(0.5) ? 0 : 0.01 + 0.04 * r.float();
  const bad = (): boolean => r.chance(mistakeRate);
  const out: Buffer[] = [CLIENT_PREFACE];
  if (!bad()) out.push(encodeFrame(4, 0, 0, r.chance(0.7) ? Buffer.alloc(0) : Buffer.from([0, 4, 0, 0, r.int(2), r.int(256)])));
  let nextStream = 1;
  let tableEntries = 0;
  const open: number[] = [];
  const frames = 5 + r.int(80);
  for (let i = 0; i < frames; i++) {
    const roll = r.int(100);
    if (roll < 35) {
      // A request: HEADERS (maybe split, padded, with priority), then DATA.
      const id = bad() ? r.int(12) : nextStream;
      nextStream += 2;
      const { block, added } = requestBlock(r, tableEntries);
      if (added) tableEntries = Math.min(tableEntries + 1, 10);
      const endStream = r.chance(0.4);
      if (r.chance(0.2) && block.length > 2) {
        const cut = 1 + r.int(block.length - 1);
        out.push(encodeFrame(1, endStream ? 1 : 0, id, block.subarray(0, cut)));
        if (bad()) out.push(encodeFrame(6, 0, 0, Buffer.alloc(8)));
        out.push(encodeFrame(9, 4, id, block.subarray(cut)));
      } else if (r.chance(0.2)) {
        const pad = r.int(5);
        out.push(encodeFrame(1, 0x4 | 0x8 | 0x20 | (endStream ? 1 : 0), id, Buffer.concat([Buffer.from([bad() ? 255 : pad]), Buffer.alloc(5), block, Buffer.alloc(pad)])));
      } else {
        out.push(encodeFrame(1, 0x4 | (endStream ? 1 : 0), id, block));
      }
      if (!endStream) open.push(id);
    } else if (roll < 60 && open.length > 0) {
      const id = open[r.int(open.length)]!;
      const end = r.chance(0.5);
      const size = bad() ? 16_385 : r.int(r.chance(0.1) ? 16_384 : 200);
      out.push(encodeFrame(0, end ? 1 : 0, id, Buffer.alloc(size, 'd')));
      if (end) open.splice(open.indexOf(id), 1);
    } else if (roll < 70) {
      const onConnection = nextStream === 1 || r.chance(0.5);
      const id = onConnection ? 0 : bad() ? nextStream + 2 * r.int(3) : Math.max(1, nextStream - 2 - 2 * r.int(4));
      out.push(encodeFrame(8, 0, id, u32(bad() ? (r.chance(0.5) ? 0 : 0x7fffffff) : 1 + r.int(100_000))));
    } else if (roll < 74 && open.length > 0) {
      const id = bad() ? nextStream + 2 : open.splice(r.int(open.length), 1)[0]!;
      out.push(encodeFrame(3, 0, id, u32(r.int(14))));
    } else if (roll < 78) {
      const n = r.int(4);
      const payload = Buffer.alloc(6 * n);
      for (let k = 0; k < n; k++) {
        // Valid values: header table size, push off, concurrent streams, window, frame size, list size.
        const id = 1 + r.int(6);
        const valid = [r.int(8192), r.int(2), r.int(1000), r.int(200_000), 16_384 + r.int(100_000), r.int(100_000)][id - 1]!;
        payload.writeUInt16BE(bad() ? r.int(20) : id, 6 * k);
        payload.writeUInt32BE(bad() ? r.int(0x100000000) : valid, 6 * k + 2);
      }
      out.push(encodeFrame(4, bad() ? 1 : 0, bad() ? 1 : 0, payload));
    } else if (roll < 83) {
      out.push(encodeFrame(6, r.chance(0.2) ? 1 : 0, bad() ? 1 : 0, Buffer.alloc(bad() ? r.int(12) : 8)));
    } else if (roll < 86) {
      // An unknown frame type, which must be ignored, or (a mistake) a known one with random contents.
      const type = bad() ? r.int(10) : 10 + r.int(240);
      out.push(encodeFrame(type, r.int(256), r.int(nextStream + 2), Buffer.alloc(r.int(40), r.int(256))));
    } else if (roll < 89) {
      out.push(encodeFrame(2, 0, bad() ? 0 : 1 + 2 * r.int(nextStream), Buffer.alloc(bad() ? 4 : 5)));
    } else if (roll < 90) {
      out.push(encodeFrame(7, 0, 0, Buffer.concat([u32(r.int(nextStream)), u32(r.int(14))])));
    } else if (roll < 92 && bad()) {
      // A damaged header block.
      const junk = Buffer.alloc(1 + r.int(20));
      for (let k = 0; k < junk.length; k++) junk[k] = r.int(256);
      out.push(encodeFrame(1, 0x4, nextStream, junk));
      nextStream += 2;
    }
  }
  const bytes = Buffer.concat(out);
  // Sometimes a flipped bit anywhere.
  if (mistakeRate > 0 && r.chance(0.2)) bytes[r.int(bytes.length)] ^= 1 << r.int(8);
  return bytes;
}

const OPTIONS: H2Options = { streamWindowBytes: 4096, connectionWindowBytes: 100_000, maxHeaderListBytes: 4096, maxConcurrentStreams: 8, maxQueuedBytes: 1 << 20 };

async function runSeed(seed: number): Promise<void> {
  const r = new Random(seed);
  const socket = new FakeSocket();
  const errors: unknown[] = [];
  const opened = new Map<number, H2Stream>();
  const closes = new Map<number, number>();
  const handler: H2Handler = {
    onStream(stream, headers) {
      opened.set(stream.id, stream);
      stream.listener = {
        onData: () => {},
        onEnd: () => {
          if (headers[':path'] !== '/echo') return;
          stream.respond(encodeHeaderBlock([[':status', '200']]));
          // A flipped bit may have turned the field into anything.
          const repeat = Number(headers['x-repeat'] ?? 10);
          stream.write(Buffer.alloc(Number.isInteger(repeat) && repeat >= 0 && repeat < 10_000 ? repeat * 50 : 1, 'r'));
          stream.end(encodeHeaderBlock([['grpc-status', '0']]));
        },
        onClose: () => closes.set(stream.id, (closes.get(stream.id) ?? 0) + 1),
        onDrain: () => {},
      };
    },
    onConnectionClose: () => {},
    onHandlerError: (e) => errors.push(e),
  };
  const connection = new H2Connection(socket as unknown as Socket, handler, OPTIONS, Buffer.alloc(0));
  const bytes = clientBytes(r);
  for (let at = 0; at < bytes.length && !socket.destroyed; ) {
    const n = 1 + r.int(r.chance(0.5) ? 20 : 3000);
    socket.emit('data', bytes.subarray(at, at + n));
    at += n;
    if (r.chance(0.3)) await new Promise((resolve) => setImmediate(resolve));
    // Sometimes a held request is answered late, or a stream is reset by the server.
    if (r.chance(0.1) && opened.size > 0) {
      const s = [...opened.values()][r.int(opened.size)]!;
      if (r.chance(0.5)) s.reset(H2Code.CANCEL);
      else s.respond(encodeHeaderBlock([[':status', '200']]), true);
    }
  }
  await new Promise((resolve) => setImmediate(resolve));
  const what = `seed ${seed}`;
  assert.deepEqual(errors, [], `${what}: the server failed with an exception of its own`);

  // What the server wrote: whole frames within the limits, DATA within the
  // connection window the client granted, nothing after an error GOAWAY.
  const written = parseFrames(Buffer.concat(socket.written));
  const allowed = clientAllowances(bytes);
  let dataSent = 0;
  let errorGoAway = false;
  const endedStreams = new Set<number>();
  if (process.env.H2_FUZZ_TRACE) for (const f of written) process.stderr.write(`out type ${f.type} flags ${f.flags} stream ${f.stream} len ${f.payload.length}\n`);
  for (const f of written) {
    assert.ok(!errorGoAway, `${what}: a frame after GOAWAY with an error`);
    assert.ok(f.payload.length <= allowed.maxFrame, `${what}: a frame of ${f.payload.length} bytes`);
    if (f.type === 0) {
      dataSent += f.payload.length;
      assert.ok(!endedStreams.has(f.stream), `${what}: DATA on stream ${f.stream} after its end`);
    }
    if ((f.type === 0 || f.type === 1) && f.flags & 1) endedStreams.add(f.stream);
    if (f.type === 3) {
      assert.ok(f.stream <= allowed.lastStream, `${what}: RST_STREAM on stream ${f.stream}, which the client never opened`);
      endedStreams.add(f.stream);
    }
    if (f.type === 7 && f.payload.readUInt32BE(4) !== H2Code.NO_ERROR) {
      errorGoAway = true;
      assert.notEqual(f.payload.readUInt32BE(4), H2Code.INTERNAL_ERROR, `${what}: INTERNAL_ERROR`);
      assert.ok(f.payload.length > 8, `${what}: a GOAWAY without a reason`);
    }
  }
  const granted = 65_535 + allowed.windowIncrements;
  assert.ok(dataSent <= granted, `${what}: ${dataSent} bytes of DATA with ${granted} granted`);

  if (process.env.H2_FUZZ_STATS) {
    const goAway = written.find((f) => f.type === 7);
    process.stderr.write(`seed ${seed}: ${bytes.length} bytes in, ${opened.size} streams, ${written.filter((f) => f.type === 1).length} HEADERS out, ${dataSent} DATA bytes, goaway ${goAway ? `${goAway.payload.readUInt32BE(4)} ${goAway.payload.subarray(8).toString()}` : '-'}\n`);
  }
  // Every stream the handler saw is told once that it closed, when the connection goes.
  connection.destroy();
  socket.destroy();
  for (const id of opened.keys()) assert.equal(closes.get(id), 1, `${what}: stream ${id} closed ${closes.get(id) ?? 0} times`);
}

/**
 * Bounds on what the client allowed, from its frames as far as they parse:
 * the sum of its connection WINDOW_UPDATE increments, and the largest valid
 * SETTINGS_MAX_FRAME_SIZE it sent, and the highest stream it opened.
 */
function clientAllowances(bytes: Buffer): { windowIncrements: number; maxFrame: number; lastStream: number } {
  let windowIncrements = 0;
  let maxFrame = 16_384;
  let lastStream = 0;
  for (let at = CLIENT_PREFACE.length; at + 9 <= bytes.length; ) {
    const len = bytes.readUIntBE(at, 3);
    const type = bytes[at + 3];
    const onConnection = (bytes.readUInt32BE(at + 5) & 0x7fffffff) === 0;
    const end = Math.min(bytes.length, at + 9 + len);
    if (type === 1) lastStream = Math.max(lastStream, bytes.readUInt32BE(at + 5) & 0x7fffffff);
    if (type === 8 && len === 4 && onConnection && end === at + 13) windowIncrements += bytes.readUInt32BE(at + 9) & 0x7fffffff;
    if (type === 4 && onConnection) {
      for (let k = at + 9; k + 6 <= end; k += 6) {
        const value = bytes.readUInt32BE(k + 2);
        if (bytes.readUInt16BE(k) === 5 && value <= 16_777_215) maxFrame = Math.max(maxFrame, value);
      }
    }
    at += 9 + len;
  }
  return { windowIncrements, maxFrame, lastStream };
}

describe('HTTP/2 server under seeded frame streams', () => {
  it(`keeps to the protocol for seeds ${process.env.H2_FUZZ_SEEDS ?? '1-400'}`, async () => {
    for (const seed of seeds()) await runSeed(seed);
  });

  it('HPACK: random blocks decode or fail with HpackError, nothing else', () => {
    const r = new Random(7);
    for (let i = 0; i < 20_000; i++) {
      const d = new HpackDecoder();
      const block = Buffer.alloc(1 + r.int(40));
      for (let k = 0; k < block.length; k++) block[k] = r.int(256);
      try {
        d.decode(block, () => {});
      } catch (e) {
        assert.ok(e instanceof HpackError, `block ${block.toString('hex')}: ${String(e)}`);
      }
    }
  });
});
