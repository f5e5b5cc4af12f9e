// The wire encoding of Raft messages (src/transport/codec.ts) and the frame
// reader (src/transport/frame.ts): round trips of every message type and of
// random messages, canonical bytes, copies that never alias the input, and
// malformed input rejected with the typed error at every truncation point.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  type ConfState,
  type Entry,
  type Message,
  type MessageType,
  EMPTY_CONF_STATE,
  MESSAGE_TYPES,
  message,
} from '../../src/raft/types.js';
import { Random } from '../../src/sim/random.js';
import { CODEC_VERSION, decodeMessage, encodeInto, encodeMessage, encodedSize } from '../../src/transport/codec.js';
import {
  TransportEncodeError,
  TransportFrameError,
  TransportFrameTooLargeError,
} from '../../src/transport/errors.js';
import { FrameKind, FrameReader, decodeHello, encodeHello, frame } from '../../src/transport/frame.js';


const bytes = (...b: number[]) => new Uint8Array(b);
const text = (s: string) => new TextEncoder().encode(s);

/** Integers of every varint length, including the edges. */
function randomInt(r: Random): number {
  switch (r.int(6)) {
    case 0:
      return 0;
    case 1:
      return r.int(128);
    case 2:
      return r.int(2 ** 21);
    case 3:
      return 2 ** 31 + r.int(2 ** 31);
    case 4:
      return Number.MAX_SAFE_INTEGER - r.int(1000);
    default:
      return 2 ** (7 * (1 + r.int(7))) - r.int(2);
  }
}

function randomBytes(r: Random, max: number): Uint8Array {
  const b = new Uint8Array(r.int(max + 1));
  for (let i = 0; i < b.length; i++) b[i] = r.int(256);
  return b;
}

function randomIds(r: Random): number[] {
  return Array.from({ length: r.int(5) }, () => randomInt(r));
}

function randomConfState(r: Random): ConfState {
  return {
    voters: randomIds(r),
    learners: randomIds(r),
    votersOutgoing: randomIds(r),
    learnersNext: randomIds(r),
    autoLeave: r.chance(0.5),
  };
}

function randomMessage(r: Random): Message {
  const entries: Entry[] = Array.from({ length: r.chance(0.5) ? 0 : r.int(20) }, () => ({
    term: randomInt(r),
    index: randomInt(r),
    type: r.chance(0.2) ? 'confChange' : 'normal',
    data: randomBytes(r, 300),
  }));
  return message({
    type: MESSAGE_TYPES[r.int(MESSAGE_TYPES.length)]!,
    from: randomInt(r),
    to: randomInt(r),
    term: randomInt(r),
    logTerm: randomInt(r),
    index: randomInt(r),
    entries,
    commit: randomInt(r),
    reject: r.chance(0.5),
    rejectHint: randomInt(r),
    snapshot: r.chance(0.3)
      ? { metadata: { index: randomInt(r), term: randomInt(r), confState: randomConfState(r) }, data: randomBytes(r, 1000) }
      : undefined,
    context: r.chance(0.3) ? randomBytes(r, 40) : undefined,
    round: randomInt(r),
    force: r.chance(0.5),
    transferee: randomInt(r),
    commitTerm: randomInt(r),
  });
}

/** A message with every field set to something other than its zero value. */
function fullMessage(type: MessageType): Message {
  return message({
    type,
    from: 1,
    to: 0x8e9e05c52164,
    term: 7,
    logTerm: 6,
    index: 1000,
    entries: [
      { term: 6, index: 1001, type: 'normal', data: text('put a=1') },
      { term: 7, index: 1002, type: 'confChange', data: bytes(1, 2, 3) },
      { term: 7, index: 1003, type: 'normal', data: new Uint8Array(0) },
    ],
    commit: 999,
    reject: true,
    rejectHint: 990,
    snapshot: {
      metadata: {
        index: 900,
        term: 5,
        confState: { voters: [1, 2, 3], learners: [4], votersOutgoing: [1, 2, 5], learnersNext: [5], autoLeave: true },
      },
      data: text('state machine'),
    },
    context: text('read-42'),
    round: 12,
    force: true,
    transferee: 3,
    commitTerm: 6,
  });
}

/** Deep equality that compares byte fields by content (Uint8Array vs Buffer views do not matter). */
function plain(m: Message): unknown {
  const b = (u: Uint8Array | undefined) => (u === undefined ? undefined : Array.from(u));
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: b(e.data) })),
    context: b(m.context),
    snapshot: m.snapshot === undefined ? undefined : { metadata: m.snapshot.metadata, data: b(m.snapshot.data) },
  };
}

function assertBadFrame(fn: () => unknown, pattern: RegExp): TransportFrameError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TransportFrameError, `expected TransportFrameError, got ${String(caught)}`);
  assert.equal(caught.code, 'TRANSPORT_BAD_FRAME');
  assert.match(caught.message, pattern);
  return caught;
}

describe('message codec', () => {
  it('round-trips every message type with every field set', () => {
    for (const type of MESSAGE_TYPES) {
      const m = fullMessage(type);
      const enc = encodeMessage(m);
      assert.equal(enc.length, encodedSize(m));
      assert.equal(enc[0], CODEC_VERSION);
      assert.deepEqual(plain(decodeMessage(enc)), plain(m), type);
    }
  });

  it('round-trips every message type with every field at its zero value', () => {
    for (const type of MESSAGE_TYPES) {
      const m = message({ type, from: 0, to: 0 });
      const enc = encodeMessage(m);
      // version, type, flags, ten one-byte varints and an entry count.
      assert.equal(enc.length, 14);
      const d = decodeMessage(enc);
      assert.deepEqual(plain(d), plain(m));
      assert.equal(d.snapshot, undefined);
      assert.equal(d.context, undefined);
      assert.deepEqual(Object.keys(d), Object.keys(m), 'decoded messages share the shape of blankMessage');
    }
  });

  it('distinguishes an empty context and snapshot from absent ones', () => {
    const m = message({
      type: 'MsgReadIndex',
      from: 1,
      to: 2,
      context: new Uint8Array(0),
      snapshot: { metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE }, data: new Uint8Array(0) },
    });
    const d = decodeMessage(encodeMessage(m));
    assert.deepEqual(d.context, new Uint8Array(0));
    assert.deepEqual(plain(d), plain(m));
  });

  it('round-trips 2000 random messages, and re-encoding gives the same bytes (seeded)', () => {
    const r = new Random(20240601);
    for (let i = 0; i < 2000; i++) {
      const m = randomMessage(r);
      const enc = encodeMessage(m);
      const d = decodeMessage(enc);
      assert.deepEqual(plain(d), plain(m), `message ${i}`);
      assert.deepEqual(encodeMessage(d), enc, `canonical encoding of message ${i}`);
    }
  });

  it('decodes a message in the middle of a larger buffer, at its offsets', () => {
    const m = fullMessage('MsgApp');
    const size = encodedSize(m);
    const buf = new Uint8Array(size + 20).fill(0xee);
    assert.equal(encodeInto(m, buf, 7), 7 + size);
    assert.deepEqual(plain(decodeMessage(buf, 7, 7 + size)), plain(m));
  });

  it('decoded byte fields are copies: reusing the input buffer does not change them', () => {
    const m = fullMessage('MsgApp');
    const buf = Buffer.from(encodeMessage(m));
    const d = decodeMessage(buf);
    buf.fill(0);
    assert.deepEqual(plain(d), plain(m));
    assert.notEqual(d.entries[0]!.data.buffer, buf.buffer);
    assert.ok(!Buffer.isBuffer(d.entries[0]!.data), 'entry data is a plain Uint8Array');
  });

  it('rejects a truncation at every byte with the typed error', () => {
    const enc = encodeMessage(fullMessage('MsgApp'));
    for (let n = 0; n < enc.length; n++) {
      assertBadFrame(() => decodeMessage(enc.subarray(0, n)), /truncated|runs past the end/);
    }
  });

  it('rejects trailing bytes', () => {
    const enc = encodeMessage(fullMessage('MsgHeartbeat'));
    const longer = new Uint8Array(enc.length + 3);
    longer.set(enc);
    assertBadFrame(() => decodeMessage(longer), /3 trailing bytes/);
  });

  it('rejects an unknown version, message type, flag or entry type, naming it', () => {
    const enc = encodeMessage(message({ type: 'MsgApp', from: 1, to: 2, entries: [{ term: 1, index: 1, type: 'normal', data: bytes(9) }] }));
    const patch = (at: number, v: number) => {
      const c = enc.slice();
      c[at] = v;
      return c;
    };
    assertBadFrame(() => decodeMessage(patch(0, 2)), /unsupported message encoding version 2/);
    assert.equal(assertBadFrame(() => decodeMessage(patch(1, 15)), /unknown message type 15/).offset, 1);
    assertBadFrame(() => decodeMessage(patch(1, 255)), /unknown message type 255/);
    assertBadFrame(() => decodeMessage(patch(2, 0x10)), /unknown flag bits 0x10/);
    // Header: 3 bytes + 10 one-byte varints + count: the first entry's type is at 14.
    assertBadFrame(() => decodeMessage(patch(14, 2)), /entry 0 has unknown type 2/);
  });

  it('rejects counts and lengths beyond the buffer', () => {
    const head = [CODEC_VERSION, 1, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0];
    // 100 entries claimed, 8 bytes follow.
    assertBadFrame(() => decodeMessage(bytes(...head, 100, 0, 1, 1, 0, 0, 2, 2, 0)), /entry count 100 runs past the end/);
    // A huge count in a 5-byte varint.
    assertBadFrame(() => decodeMessage(bytes(...head, 0xff, 0xff, 0xff, 0xff, 0x0f)), /entry count 4294967295 runs past the end/);
    // One entry whose data length (50) exceeds what is left (2).
    assertBadFrame(() => decodeMessage(bytes(...head, 1, 0, 1, 1, 50, 7, 7)), /entry 0 data length 50 runs past the end of the message \(2 bytes left\)/);
    // A context of 9 bytes with 1 left.
    const ctx = [CODEC_VERSION, 12, 8, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assertBadFrame(() => decodeMessage(bytes(...ctx, 9, 1)), /context length 9 runs past the end/);
    // A snapshot claiming 200 voters.
    const snap = [CODEC_VERSION, 7, 4, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0];
    assertBadFrame(() => decodeMessage(bytes(...snap, 200, 1, 2)), /confState.voters count 200 runs past the end/);
    assertBadFrame(() => decodeMessage(bytes(...snap.slice(0, -1), 7, 0, 0, 0, 0, 0)), /confState.autoLeave is 7/);
  });

  it('rejects varints that are too long, too large or not minimal', () => {
    const pre = [CODEC_VERSION, 8, 0];
    assertBadFrame(() => decodeMessage(bytes(...pre, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)), /from varint is longer than 8 bytes/);
    // 2^53 needs 8 varint bytes and exceeds the safe range.
    assertBadFrame(() => decodeMessage(bytes(...pre, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10)), /from 9007199254740992 exceeds 2\^53-1/);
    assertBadFrame(() => decodeMessage(bytes(...pre, 0x81, 0x00)), /from is a non-minimal varint/);
  });

  it('refuses to encode numbers that are not non-negative safe integers', () => {
    for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
      assert.throws(
        () => encodedSize(message({ type: 'MsgApp', from: 1, to: 2, term: bad })),
        (e: unknown) => e instanceof TransportEncodeError && e.code === 'TRANSPORT_BAD_MESSAGE' && /term/.test(e.message),
      );
    }
    assert.throws(
      () => encodedSize(message({ type: 'MsgApp', from: 1, to: 2, entries: [{ term: 1, index: -3, type: 'normal', data: bytes() }] })),
      /entry.index = -3/,
    );
  });

  it('sizes a snapshot message without its data for the snapshot stream', () => {
    const m = fullMessage('MsgSnap');
    const size = encodedSize(m, false);
    assert.equal(size, encodedSize(m) - m.snapshot!.data.length);
    const buf = new Uint8Array(size);
    assert.equal(encodeInto(m, buf, 0, false), size);
    const d = decodeMessage(buf);
    assert.equal(d.snapshot!.data.length, 0);
    assert.deepEqual(d.snapshot!.metadata, m.snapshot!.metadata);
  });
});

describe('frame reader', () => {
  const frames = [
    frame(FrameKind.Message, encodeMessage(fullMessage('MsgApp'))),
    frame(FrameKind.Accept),
    frame(FrameKind.SnapshotChunk, new Uint8Array(5000).fill(3)),
    frame(FrameKind.Message, encodeMessage(fullMessage('MsgHeartbeat'))),
  ];
  const stream = Buffer.concat(frames);

  function readAll(chunks: Buffer[], max = 1 << 20): Array<[number, Buffer]> {
    const out: Array<[number, Buffer]> = [];
    const r = new FrameReader(max);
    for (const c of chunks) r.push(c, (kind, body) => out.push([kind, Buffer.from(body)]));
    assert.equal(r.pendingBytes, 0);
    return out;
  }

  it('cuts frames the same way however the bytes are split', () => {
    const want = frames.map((f) => [f[4], f.subarray(5)]);
    assert.deepEqual(readAll([stream]), want);
    const r = new Random(7);
    for (let trial = 0; trial < 50; trial++) {
      const chunks: Buffer[] = [];
      for (let pos = 0; pos < stream.length; ) {
        const n = 1 + r.int(trial < 10 ? 3 : 700);
        chunks.push(stream.subarray(pos, pos + n));
        pos += n;
      }
      assert.deepEqual(readAll(chunks), want, `trial ${trial}`);
    }
  });

  it('hands out frames of the streamed kind in pieces that concatenate to the body', () => {
    const r = new Random(11);
    for (let trial = 0; trial < 30; trial++) {
      const reader = new FrameReader(1 << 20);
      reader.streamKind = FrameKind.SnapshotChunk;
      const pieces: Buffer[] = [];
      const others: Array<[number, Buffer]> = [];
      let maxPiece = 0;
      for (let pos = 0; pos < stream.length; ) {
        const n = 1 + r.int(trial < 10 ? 5 : 2000);
        reader.push(stream.subarray(pos, pos + n), (kind, body) => {
          if (kind === FrameKind.SnapshotChunk) {
            pieces.push(Buffer.from(body));
            maxPiece = Math.max(maxPiece, body.length);
          } else {
            others.push([kind, Buffer.from(body)]);
          }
        });
        pos += n;
      }
      assert.deepEqual(Buffer.concat(pieces), frames[2]!.subarray(5), `trial ${trial}`);
      assert.deepEqual(
        others.map(([k]) => k),
        [FrameKind.Message, FrameKind.Accept, FrameKind.Message],
      );
      assert.ok(maxPiece <= 2000, 'pieces are never assembled beyond what one push brought');
    }
  });

  it('rejects a length prefix over the limit before the frame arrives', () => {
    const r = new FrameReader(1024);
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32LE(0xffffffff);
    assert.throws(
      () => r.push(prefix, () => assert.fail('no frame')),
      (e: unknown) => e instanceof TransportFrameTooLargeError && e.code === 'TRANSPORT_FRAME_TOO_LARGE' && e.length === 0xffffffff,
    );
    assertBadFrame(() => new FrameReader(10).push(Buffer.alloc(4), () => {}), /length 0/);
  });

  it('delivers nothing after stop()', () => {
    const r = new FrameReader(1 << 20);
    let n = 0;
    r.push(stream, () => {
      n++;
      r.stop();
    });
    assert.equal(n, 1);
  });

  it('round-trips the handshake and rejects a foreign one', () => {
    const h = { version: 1, channel: 'snapshot' as const, clusterId: 0xfedcba9876543210n, from: 2 ** 40, to: 3 };
    const f = encodeHello(h);
    assert.deepEqual(decodeHello(f.subarray(5)), h);
    assertBadFrame(() => decodeHello(Buffer.from('GET / HTTP/1.1\r\n')), /not a raftkv peer handshake/);
    assertBadFrame(() => decodeHello(f.subarray(5, 20)), /expected 30/);
  });
});
