// Client sessions for exactly-once commands (Raft dissertation §6.3, with
// RIFL's lowest-unacknowledged sequence so a client may have several
// requests outstanding). Per client, the table keeps the encoded result of
// every request the client has not yet acknowledged; a retry of one of them
// gets the saved result instead of being applied again.
//
// Sessions expire after `ttlMs` without a command from the client, measured
// by the log's clock (the largest proposer time applied so far), so every
// member expires the same sessions at the same log index. The table is kept
// in order of last use, so expiry looks only at the front.

import { CodecError, Reader, Writer, bytesToLatin1, latin1ToBytes } from './codec.js';
import type { ClientSession } from './command.js';
import { sequenceAcknowledged, sessionExpired, tooManyOutstanding } from './errors.js';
import { type KvResult, readResult, writeResult } from './messages.js';

export interface Session {
  lastSeen: number;
  /** The client's lowest unacknowledged sequence number, as far as we know. */
  lowestUnacked: number;
  /**
   * Encoded results by sequence number, each >= lowestUnacked, in apply
   * order. Held as one-byte strings (codec.bytesToLatin1): a small string
   * costs the heap far less than a small Uint8Array and its buffer.
   */
  readonly results: Map<number, string>;
}

/** What to do with a command that carries a session. */
export type SessionCheck =
  /** Apply it, then record its result in `session`. */
  | { readonly kind: 'apply'; readonly session: Session }
  /** Do not apply it: answer with `result` (a saved result, or a session error). */
  | { readonly kind: 'answer'; readonly result: KvResult };

export class SessionTable {
  /** By client id, least recently used first. */
  private sessions = new Map<string, Session>();
  private readonly writer = new Writer(64);

  constructor(
    private readonly ttlMs: number,
    private readonly maxOutstanding: number,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** Drops the sessions idle for more than the TTL at log time `now`. */
  expire(now: number): void {
    for (const [id, s] of this.sessions) {
      if (now - s.lastSeen <= this.ttlMs) return;
      this.sessions.delete(id);
    }
  }

  /** Looks a command's session up at log time `now` (after expire(now)). */
  check(cs: ClientSession, now: number): SessionCheck {
    let s = this.sessions.get(cs.clientId);
    if (s === undefined) {
      // A client that has acknowledged a response had a session here: it
      // expired, and with it what this request (a retry?) may have done.
      if (cs.lowestUnackedSeq > 1) return { kind: 'answer', result: sessionExpired(cs.clientId) };
      s = { lastSeen: now, lowestUnacked: 1, results: new Map() };
    }
    this.touch(cs.clientId, s, now);
    if (cs.lowestUnackedSeq > s.lowestUnacked) {
      s.lowestUnacked = cs.lowestUnackedSeq;
      for (const seq of s.results.keys()) if (seq < s.lowestUnacked) s.results.delete(seq);
    }
    const saved = s.results.get(cs.seq);
    if (saved !== undefined) return { kind: 'answer', result: readResult(new Reader(latin1ToBytes(saved))) };
    if (cs.seq < s.lowestUnacked) {
      return { kind: 'answer', result: sequenceAcknowledged(cs.clientId, cs.seq, s.lowestUnacked) };
    }
    if (s.results.size >= this.maxOutstanding) {
      return { kind: 'answer', result: tooManyOutstanding(cs.clientId, cs.seq, s.lowestUnacked, this.maxOutstanding) };
    }
    return { kind: 'apply', session: s };
  }

  /** Saves the result of a command applied after check() said 'apply'. */
  record(s: Session, seq: number, result: KvResult): void {
    this.writer.reset();
    writeResult(this.writer, result);
    s.results.set(seq, bytesToLatin1(this.writer.written()));
  }

  private touch(id: string, s: Session, now: number): void {
    s.lastSeen = now;
    // Re-insert at the end: the map stays in order of last use.
    this.sessions.delete(id);
    this.sessions.set(id, s);
  }

  /** Appends the table to a snapshot. */
  encode(w: Writer): void {
    w.uvarint(this.sessions.size);
    for (const [id, s] of this.sessions) {
      w.utf8(id);
      w.uvarint(s.lastSeen);
      w.uvarint(s.lowestUnacked);
      w.uvarint(s.results.size);
      for (const [seq, result] of s.results) {
        w.uvarint(seq);
        w.latin1(result);
      }
    }
  }

  /** Replaces the table with one read by decode(). */
  load(sessions: Map<string, Session>): void {
    this.sessions = sessions;
  }

  /** Reads a table written by encode(); throws CodecError on damage. */
  static decode(r: Reader): Map<string, Session> {
    const sessions = new Map<string, Session>();
    let prevSeen = 0;
    for (let n = r.count(4), i = 0; i < n; i++) {
      const id = r.utf8();
      const lastSeen = r.uvarint();
      const lowestUnacked = r.uvarint();
      if (sessions.has(id) || id.length === 0) throw new CodecError(`session ${JSON.stringify(id)} repeated or empty`);
      if (lastSeen < prevSeen) throw new CodecError(`sessions out of order of last use at ${JSON.stringify(id)}`);
      prevSeen = lastSeen;
      const results = new Map<number, string>();
      for (let m = r.count(2), j = 0; j < m; j++) {
        const seq = r.uvarint();
        if (seq < lowestUnacked || results.has(seq)) throw new CodecError(`session ${JSON.stringify(id)}: bad sequence ${seq}`);
        const bytes = r.bytesView();
        // Every saved result must decode: a damaged one would surface only on a retry.
        const check = new Reader(bytes);
        readResult(check);
        if (check.remaining !== 0) throw new CodecError(`session ${JSON.stringify(id)}: ${check.remaining} bytes after result ${seq}`);
        results.set(seq, bytesToLatin1(bytes));
      }
      sessions.set(id, { lastSeen, lowestUnacked, results });
    }
    return sessions;
  }
}
