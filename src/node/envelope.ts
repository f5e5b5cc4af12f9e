// What the runtime adds around the user's bytes in the log and in snapshots.
//
// A proposal travels as an envelope: who proposed it (member id, the
// incarnation of that member's process, a sequence number) and the user's
// command. When the entry is applied, the proposer recognises its own
// proposal and resolves the caller's promise with the state machine's result
// (etcd matches the same way, by request id, through its wait registry). The
// incarnation nonce keeps a restarted member from taking an entry proposed
// by its previous life for one of its own new proposals.
//
// A snapshot carries, besides the state machine's data, the peer URLs of the
// members: a member that joins from a snapshot (the conf-change entries that
// named them were compacted away) still learns where its peers are.
//
// Layouts (uvarint: unsigned LEB128, up to 2^53):
//   proposal envelope: 0xA1 | uvarint proposer | uvarint nonce | uvarint seq | payload
//   node snapshot:     0xA2 | uvarint n | n bytes of JSON [[id, url], ...] | state machine data

import { EnvelopeError } from './errors.js';

const PROPOSAL_TAG = 0xa1;
const SNAPSHOT_TAG = 0xa2;

export interface ProposalId {
  readonly proposer: number;
  readonly nonce: number;
  readonly seq: number;
}

export interface Envelope extends ProposalId {
  readonly payload: Uint8Array;
}

function uvarintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

function putUvarint(out: Uint8Array, at: number, n: number): number {
  // Arithmetic rather than bit operations: ids and sequence numbers may exceed 2^32.
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/** Reads a uvarint at `at`; returns [value, next offset]. */
function getUvarint(data: Uint8Array, at: number, what: string): [number, number] {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (at >= data.length) throw new EnvelopeError(`${what}: truncated varint`);
    const b = data[at++]!;
    n += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (!Number.isSafeInteger(n)) throw new EnvelopeError(`${what}: varint beyond 2^53`);
      return [n, at];
    }
    scale *= 0x80;
  }
  throw new EnvelopeError(`${what}: varint too long`);
}

export function encodeEnvelope(id: ProposalId, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(
    1 + uvarintLength(id.proposer) + uvarintLength(id.nonce) + uvarintLength(id.seq) + payload.byteLength,
  );
  out[0] = PROPOSAL_TAG;
  let at = putUvarint(out, 1, id.proposer);
  at = putUvarint(out, at, id.nonce);
  at = putUvarint(out, at, id.seq);
  out.set(payload, at);
  return out;
}

/** Decodes an envelope; the payload is a view into `data`. */
export function decodeEnvelope(data: Uint8Array): Envelope {
  if (data.byteLength === 0 || data[0] !== PROPOSAL_TAG) {
    throw new EnvelopeError(`not a proposal envelope (first byte ${data[0] ?? 'missing'})`);
  }
  const [proposer, a] = getUvarint(data, 1, 'proposer');
  const [nonce, b] = getUvarint(data, a, 'nonce');
  const [seq, c] = getUvarint(data, b, 'sequence');
  return { proposer, nonce, seq, payload: data.subarray(c) };
}

/** The peer URLs a snapshot carries, by member id. */
export type MemberUrls = ReadonlyMap<number, string>;

export function encodeNodeSnapshot(members: MemberUrls, data: Uint8Array): Uint8Array {
  const header = nodeSnapshotHeader(members);
  const out = new Uint8Array(header.length + data.byteLength);
  out.set(header, 0);
  out.set(data, header.length);
  return out;
}

/** What encodeNodeSnapshot puts before the state machine's bytes (for assembling one in slices). */
export function nodeSnapshotHeader(members: MemberUrls): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify([...members].sort((x, y) => x[0] - y[0])));
  const out = new Uint8Array(1 + uvarintLength(json.length) + json.length);
  out[0] = SNAPSHOT_TAG;
  out.set(json, putUvarint(out, 1, json.length));
  return out;
}

export function decodeNodeSnapshot(bytes: Uint8Array): { members: Map<number, string>; data: Uint8Array } {
  if (bytes.byteLength === 0 || bytes[0] !== SNAPSHOT_TAG) {
    throw new EnvelopeError(`not a node snapshot (first byte ${bytes[0] ?? 'missing'})`);
  }
  const [n, at] = getUvarint(bytes, 1, 'snapshot member list length');
  if (at + n > bytes.length) throw new EnvelopeError('snapshot member list runs past the end');
  let list: unknown;
  try {
    list = JSON.parse(new TextDecoder().decode(bytes.subarray(at, at + n)));
  } catch (err) {
    throw new EnvelopeError(`snapshot member list unreadable: ${(err as Error).message}`);
  }
  const members = new Map<number, string>();
  if (!Array.isArray(list)) throw new EnvelopeError('snapshot member list is not a list');
  for (const pair of list) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'number' || typeof pair[1] !== 'string') {
      throw new EnvelopeError('snapshot member list holds a malformed member');
    }
    members.set(pair[0], pair[1]);
  }
  return { members, data: bytes.subarray(at + n) };
}

/**
 * What the runtime puts in a conf change's context: the proposal id (to
 * resolve the caller's promise when it is applied) and the new member's
 * peer URL, if given.
 */
export function encodeConfContext(id: ProposalId, url: string | undefined): Uint8Array {
  return encodeEnvelope(id, new TextEncoder().encode(url ?? ''));
}

export function decodeConfContext(context: Uint8Array | undefined): { id: ProposalId | undefined; url: string | undefined } {
  if (!context || context.byteLength === 0) return { id: undefined, url: undefined };
  const { proposer, nonce, seq, payload } = decodeEnvelope(context);
  const url = new TextDecoder().decode(payload);
  return { id: { proposer, nonce, seq }, url: url === '' ? undefined : url };
}
