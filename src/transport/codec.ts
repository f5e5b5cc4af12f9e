// The binary encoding of a Raft Message on the wire between members.
//
// Every field of Message is carried (etcd-io/raft's raftpb.Message plays this
// role in etcd, encoded as protobuf); integers are unsigned LEB128 varints,
// as in protobuf, so the small numbers that dominate (ids, terms, flags)
// take one byte. Layout, version 1:
//
//   u8 version (1) | u8 type | u8 flags (1 reject, 2 force, 4 snapshot, 8 context)
//   varint from, to, term, logTerm, index, commit, rejectHint, round, transferee, commitTerm
//   varint entry count, then per entry: u8 type (0 normal, 1 confChange), varint term, index, length, bytes
//   if context:  varint length, bytes
//   if snapshot: varint index, term; u8 autoLeave; voters, learners, votersOutgoing,
//                learnersNext as (varint count, varint ids); varint data length, bytes
//
// Encoding is canonical (minimal varints, no unused flag bits), so decoding
// and re-encoding yields the same bytes. Decoding validates everything and
// throws TransportFrameError naming the problem and its byte offset: the
// bytes come from the network.
//
// Decoded byte fields (entry data, context, snapshot data) never alias the
// input: a message that carries any is first copied, once, into a block of
// its own, and its fields are views of that block. The input may therefore
// be a view of a socket's read buffer or of a buffer about to be reused;
// entries kept in the Raft log keep only their own message's block alive.

import {
  type ConfState,
  type Entry,
  type Message,
  type MessageType,
  type NodeId,
  type Snapshot,
  MESSAGE_TYPES,
  blankMessage,
} from '../raft/types.js';
import { TransportEncodeError, TransportFrameError } from './errors.js';

export const CODEC_VERSION = 1;


const TYPE_CODES: Readonly<Record<MessageType, number>> = Object.fromEntries(
  MESSAGE_TYPES.map((t, i) => [t, i]),
) as Record<MessageType, number>;

const FLAG_REJECT = 1;
const FLAG_FORCE = 2;
const FLAG_SNAPSHOT = 4;
const FLAG_CONTEXT = 8;
const KNOWN_FLAGS = FLAG_REJECT | FLAG_FORCE | FLAG_SNAPSHOT | FLAG_CONTEXT;

/** The smallest encoded entry: type byte and three one-byte varints. Bounds a claimed entry count. */
const MIN_ENTRY_BYTES = 4;

const EMPTY_BYTES = new Uint8Array(0);

// ---------------------------------------------------------------------------
// Varints

/** Bytes the varint encoding of `n` takes; throws if `n` is not a non-negative safe integer. */
function varintSize(n: number, field: string): number {
  if (n < 0x80 && n >= 0 && Number.isInteger(n)) return 1;
  if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Number.isInteger(n))) {
    throw new TransportEncodeError(`cannot encode ${field} = ${n}: not a non-negative safe integer`);
  }
  if (n < 2 ** 14) return 2;
  if (n < 2 ** 21) return 3;
  if (n < 2 ** 28) return 4;
  if (n < 2 ** 35) return 5;
  if (n < 2 ** 42) return 6;
  if (n < 2 ** 49) return 7;
  return 8;
}

/** Writes `n` (already validated by varintSize) at `pos`; returns the position after it. */
function putVarint(buf: Uint8Array, pos: number, n: number): number {
  if (n < 0x80000000) {
    while (n >= 0x80) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[pos++] = n;
    return pos;
  }
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
  return pos;
}

// ---------------------------------------------------------------------------
// Encoding

function idsSize(ids: readonly NodeId[], field: string): number {
  let n = varintSize(ids.length, `${field}.length`);
  for (let i = 0; i < ids.length; i++) n += varintSize(ids[i]!, field);
  return n;
}

function snapshotSize(s: Snapshot, withData: boolean): number {
  const cs = s.metadata.confState;
  const dataLen = withData ? s.data.byteLength : 0;
  return (
    varintSize(s.metadata.index, 'snapshot.metadata.index') +
    varintSize(s.metadata.term, 'snapshot.metadata.term') +
    1 +
    idsSize(cs.voters, 'confState.voters') +
    idsSize(cs.learners, 'confState.learners') +
    idsSize(cs.votersOutgoing, 'confState.votersOutgoing') +
    idsSize(cs.learnersNext, 'confState.learnersNext') +
    varintSize(dataLen, 'snapshot.data.length') +
    dataLen
  );
}

/**
 * The encoded size of `m` in bytes. Validates every numeric field, so a
 * message that sizes without throwing encodes without throwing.
 * `withSnapshotData` false sizes the message as if its snapshot's data were
 * empty (the snapshot stream sends the data separately, in chunks).
 */
export function encodedSize(m: Message, withSnapshotData = true): number {
  if (TYPE_CODES[m.type] === undefined) throw new TransportEncodeError(`cannot encode message type ${String(m.type)}`);
  let n =
    3 +
    varintSize(m.from, 'from') +
    varintSize(m.to, 'to') +
    varintSize(m.term, 'term') +
    varintSize(m.logTerm, 'logTerm') +
    varintSize(m.index, 'index') +
    varintSize(m.commit, 'commit') +
    varintSize(m.rejectHint, 'rejectHint') +
    varintSize(m.round, 'round') +
    varintSize(m.transferee, 'transferee') +
    varintSize(m.commitTerm, 'commitTerm');
  const ents = m.entries;
  n += varintSize(ents.length, 'entries.length');
  for (let i = 0; i < ents.length; i++) {
    const e = ents[i]!;
    const len = e.data.byteLength;
    n += 1 + varintSize(e.term, 'entry.term') + varintSize(e.index, 'entry.index') + varintSize(len, 'entry.data.length') + len;
  }
  if (m.context !== undefined) n += varintSize(m.context.byteLength, 'context.length') + m.context.byteLength;
  if (m.snapshot !== undefined) n += snapshotSize(m.snapshot, withSnapshotData);
  return n;
}

function putIds(buf: Uint8Array, pos: number, ids: readonly NodeId[]): number {
  pos = putVarint(buf, pos, ids.length);
  for (let i = 0; i < ids.length; i++) pos = putVarint(buf, pos, ids[i]!);
  return pos;
}

/**
 * Writes `m` into `buf` at `pos` and returns the position after it. The
 * caller sizes `buf` with encodedSize (same `withSnapshotData`), which also
 * validates the message: encodeInto itself does not check.
 */
export function encodeInto(m: Message, buf: Uint8Array, pos: number, withSnapshotData = true): number {
  buf[pos++] = CODEC_VERSION;
  buf[pos++] = TYPE_CODES[m.type];
  buf[pos++] =
    (m.reject ? FLAG_REJECT : 0) |
    (m.force ? FLAG_FORCE : 0) |
    (m.snapshot !== undefined ? FLAG_SNAPSHOT : 0) |
    (m.context !== undefined ? FLAG_CONTEXT : 0);
  pos = putVarint(buf, pos, m.from);
  pos = putVarint(buf, pos, m.to);
  pos = putVarint(buf, pos, m.term);
  pos = putVarint(buf, pos, m.logTerm);
  pos = putVarint(buf, pos, m.index);
  pos = putVarint(buf, pos, m.commit);
  pos = putVarint(buf, pos, m.rejectHint);
  pos = putVarint(buf, pos, m.round);
  pos = putVarint(buf, pos, m.transferee);
  pos = putVarint(buf, pos, m.commitTerm);
  const ents = m.entries;
  pos = putVarint(buf, pos, ents.length);
  for (let i = 0; i < ents.length; i++) {
    const e = ents[i]!;
    buf[pos++] = e.type === 'normal' ? 0 : 1;
    pos = putVarint(buf, pos, e.term);
    pos = putVarint(buf, pos, e.index);
    const data = e.data;
    pos = putVarint(buf, pos, data.byteLength);
    buf.set(data, pos);
    pos += data.byteLength;
  }
  if (m.context !== undefined) {
    pos = putVarint(buf, pos, m.context.byteLength);
    buf.set(m.context, pos);
    pos += m.context.byteLength;
  }
  const s = m.snapshot;
  if (s !== undefined) {
    const cs = s.metadata.confState;
    pos = putVarint(buf, pos, s.metadata.index);
    pos = putVarint(buf, pos, s.metadata.term);
    buf[pos++] = cs.autoLeave ? 1 : 0;
    pos = putIds(buf, pos, cs.voters);
    pos = putIds(buf, pos, cs.learners);
    pos = putIds(buf, pos, cs.votersOutgoing);
    pos = putIds(buf, pos, cs.learnersNext);
    if (withSnapshotData) {
      pos = putVarint(buf, pos, s.data.byteLength);
      buf.set(s.data, pos);
      pos += s.data.byteLength;
    } else {
      buf[pos++] = 0;
    }
  }
  return pos;
}

/** Encodes `m` into a new buffer of exactly its size. */
export function encodeMessage(m: Message): Uint8Array {
  const buf = new Uint8Array(encodedSize(m));
  encodeInto(m, buf, 0);
  return buf;
}

// ---------------------------------------------------------------------------
// Decoding

/** Reads validated values from `buf[pos, end)`; every read is bounds-checked. */
class Reader {
  constructor(
    private buf: Uint8Array,
    public pos: number,
    public end: number,
    /** Subtracted from positions in error messages: offsets are relative to the message's first byte. */
    private base: number,
  ) {}

  /** Continues on `copy`, a copy of the bytes from `start` on: positions become relative to it. */
  rebase(copy: Uint8Array, start: number): void {
    this.buf = copy;
    this.pos -= start;
    this.end -= start;
    this.base -= start;
  }

  fail(reason: string, at = this.pos): never {
    throw new TransportFrameError(reason, at - this.base);
  }

  remaining(): number {
    return this.end - this.pos;
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.fail(`truncated: ${what} missing`);
    return this.buf[this.pos++]!;
  }

  varint(what: string): number {
    const start = this.pos;
    if (start >= this.end) this.fail(`truncated: ${what} missing`);
    let b = this.buf[this.pos++]!;
    if (b < 0x80) return b;
    let value = b & 0x7f;
    let scale = 0x80;
    for (let i = 1; ; i++) {
      if (this.pos >= this.end) this.fail(`truncated: ${what} ends inside its varint`, start);
      b = this.buf[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (b === 0) this.fail(`${what} is a non-minimal varint`, start);
        break;
      }
      if (i === 7) this.fail(`${what} varint is longer than 8 bytes`, start);
      scale *= 0x80;
    }
    if (value > Number.MAX_SAFE_INTEGER) this.fail(`${what} ${value} exceeds 2^53-1`, start);
    return value;
  }

  /** A length or count, checked against the bytes left (each item at least `minItemBytes`). */
  count(what: string, minItemBytes: number): number {
    const start = this.pos;
    const n = this.varint(what);
    if (n * minItemBytes > this.remaining()) {
      this.fail(`${what} ${n} runs past the end of the message (${this.remaining()} bytes left)`, start);
    }
    return n;
  }

  bytes(n: number): Uint8Array {
    if (n === 0) return EMPTY_BYTES;
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  ids(what: string): NodeId[] {
    const n = this.count(`${what} count`, 1);
    const out = new Array<NodeId>(n);
    for (let i = 0; i < n; i++) out[i] = this.varint(`${what}[${i}]`);
    return out;
  }
}

/**
 * Decodes one message from exactly `bytes[start, end)` (default: all of
 * `bytes`). Throws TransportFrameError on anything malformed, including
 * trailing bytes. Byte fields of the result are copies (see the top of this
 * file): `bytes` may be reused as soon as this returns.
 */
export function decodeMessage(bytes: Uint8Array, start = 0, end = bytes.byteLength): Message {
  const r = new Reader(bytes, start, end, start);
  const version = r.u8('version');
  if (version !== CODEC_VERSION) r.fail(`unsupported message encoding version ${version} (expected ${CODEC_VERSION})`, start);
  const code = r.u8('type');
  const type = MESSAGE_TYPES[code];
  if (type === undefined) r.fail(`unknown message type ${code}`, start + 1);
  const flags = r.u8('flags');
  if ((flags & ~KNOWN_FLAGS) !== 0) r.fail(`unknown flag bits 0x${(flags & ~KNOWN_FLAGS).toString(16)}`, start + 2);

  const m = blankMessage(type, r.varint('from'), r.varint('to'), r.varint('term'));
  m.logTerm = r.varint('logTerm');
  m.index = r.varint('index');
  m.commit = r.varint('commit');
  m.rejectHint = r.varint('rejectHint');
  m.round = r.varint('round');
  m.transferee = r.varint('transferee');
  m.commitTerm = r.varint('commitTerm');
  m.reject = (flags & FLAG_REJECT) !== 0;
  m.force = (flags & FLAG_FORCE) !== 0;

  const count = r.count('entry count', MIN_ENTRY_BYTES);
  if (count > 0 || (flags & (FLAG_SNAPSHOT | FLAG_CONTEXT)) !== 0) {
    // One copy for every byte field of this message; views below point into it.
    const owned = new Uint8Array(end - start);
    owned.set(bytes.subarray(start, end));
    r.rebase(owned, start);
  }
  if (count > 0) {
    const entries = new Array<Entry>(count);
    for (let i = 0; i < count; i++) {
      const typeAt = r.pos;
      const et = r.u8('entry type');
      if (et > 1) r.fail(`entry ${i} has unknown type ${et}`, typeAt);
      const term = r.varint('entry term');
      const index = r.varint('entry index');
      const len = r.count(`entry ${i} data length`, 1);
      entries[i] = { term, index, type: et === 0 ? 'normal' : 'confChange', data: r.bytes(len) };
    }
    m.entries = entries;
  }
  if ((flags & FLAG_CONTEXT) !== 0) m.context = r.bytes(r.count('context length', 1));
  if ((flags & FLAG_SNAPSHOT) !== 0) {
    const index = r.varint('snapshot index');
    const term = r.varint('snapshot term');
    const autoLeaveAt = r.pos;
    const autoLeave = r.u8('confState.autoLeave');
    if (autoLeave > 1) r.fail(`confState.autoLeave is ${autoLeave}, not 0 or 1`, autoLeaveAt);
    const confState: ConfState = {
      voters: r.ids('confState.voters'),
      learners: r.ids('confState.learners'),
      votersOutgoing: r.ids('confState.votersOutgoing'),
      learnersNext: r.ids('confState.learnersNext'),
      autoLeave: autoLeave === 1,
    };
    const data = r.bytes(r.count('snapshot data length', 1));
    m.snapshot = { metadata: { index, term, confState }, data };
  }
  if (r.pos !== r.end) r.fail(`${r.end - r.pos} trailing bytes after the message`);
  return m;
}
