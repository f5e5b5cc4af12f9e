// The explainers' key-value state machine (set, get, del, inc) with client
// sessions for exactly-once semantics (diss. §6.3). Its semantics are the
// linearizability model's own (kvApply), so what the simulator checks
// against is exactly what the replicas execute.

import { type KvInput, type KvOutput, kvEffect } from './linearizability.js';

/**
 * What a log entry carries. A client first registers a session (the
 * session id is the index of the registering entry), then numbers its
 * commands within that session (diss. §6.3).
 */
export type KvCommand =
  | { readonly kind: 'register' }
  | { readonly kind: 'op'; readonly session: number; readonly seq: number; readonly input: KvInput };

export interface KvEntry {
  readonly cmd: KvCommand;
  /** The proposer's clock when proposing: time carried in the log, for session expiry. */
  readonly time: number;
  /** The client's network address and attempt number, so the proposing node can answer it. */
  readonly client: number;
  readonly attempt: number;
}

export type ApplyResult =
  /** A new session, with its id. */
  | { readonly kind: 'registered'; readonly session: number }
  /** Applied now, with the response. */
  | { readonly kind: 'applied'; readonly output: KvOutput }
  /** Applied before: answered with the saved response (undefined for a command older than the last). */
  | { readonly kind: 'duplicate'; readonly output: KvOutput | undefined }
  /**
   * The session is unknown (expired, or never registered): not applied. The
   * command might be a late retry of one applied before the session
   * expired, so applying it could apply it twice.
   */
  | { readonly kind: 'expired' };

interface Session {
  seq: number;
  output: KvOutput | undefined;
  lastSeen: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Entries decoded (or encoded) already, by their bytes: in one process
 * every replica holds the same Uint8Array of an entry (messages carry it by
 * reference) until it is read back from a disk, so most applies find their
 * entry here instead of parsing JSON again. Entries are never changed once
 * proposed, nor are the decoded objects (callers only read them).
 */
const decoded = new WeakMap<Uint8Array, KvEntry>();

/**
 * Entries' bytes are cut from shared slabs: a typed array of its own costs
 * about 1 µs above 64 bytes (V8 allocates its bytes off the heap), a slice
 * of a slab a tenth of that, and every client command is one.
 */
const SLAB_BYTES = 16 * 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

export function encodeEntry(e: KvEntry): Uint8Array {
  const text = JSON.stringify(e);
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  if (slabUsed + 3 * text.length > slab.length) {
    slab = new Uint8Array(Math.max(SLAB_BYTES, 3 * text.length));
    slabUsed = 0;
  }
  const { written } = encoder.encodeInto(text, slab.subarray(slabUsed));
  const data = slab.subarray(slabUsed, slabUsed + written);
  slabUsed += written;
  decoded.set(data, e);
  return data;
}

/**
 * ...and by their text: an entry read back from a disk comes in bytes of its
 * own, but its text is often decoded already (a restarted node re-applies
 * its log), and a lookup costs a third of parsing the JSON again. Bounded:
 * emptied when full.
 */
const decodedText = new Map<string, KvEntry>();
const DECODED_TEXT_LIMIT = 16384;

export function decodeEntry(data: Uint8Array): KvEntry {
  let e = decoded.get(data);
  if (e === undefined) {
    const text = decoder.decode(data);
    e = decodedText.get(text);
    if (e === undefined) {
      e = JSON.parse(text) as KvEntry;
      rememberText(text, e);
    }
    decoded.set(data, e);
  }
  return e;
}

function rememberText(text: string, e: KvEntry): void {
  if (decodedText.size >= DECODED_TEXT_LIMIT) decodedText.clear();
  decodedText.set(text, e);
}

export class KvStateMachine {
  private state = new Map<string, string>();
  private sessions = new Map<number, Session>();
  /** The latest time carried by an applied command: every replica agrees on it at every index. */
  private now = 0;

  constructor(
    /** Sessions idle longer than this (in log time) are forgotten. */
    readonly sessionTtl: number,
  ) {}

  /**
   * Applies the command of the entry at `index`. A command whose sequence
   * number its session has already seen is answered with the saved
   * response (or ignored if older) instead of being applied again.
   */
  apply(e: KvEntry, index: number): ApplyResult {
    if (e.time > this.now) this.now = e.time;
    this.expireSessions();
    const cmd = e.cmd;
    if (cmd.kind === 'register') {
      this.sessions.set(index, { seq: 0, output: undefined, lastSeen: this.now });
      return { kind: 'registered', session: index };
    }
    const session = this.sessions.get(cmd.session);
    if (!session) return { kind: 'expired' };
    session.lastSeen = this.now;
    if (cmd.seq <= session.seq) {
      return { kind: 'duplicate', output: cmd.seq === session.seq ? session.output : undefined };
    }
    // The model's own semantics (kvEffect), applied to the map in place.
    const { write, value, output } = kvEffect(this.state.get(cmd.input.key), cmd.input);
    if (write) {
      if (value === undefined) this.state.delete(cmd.input.key);
      else this.state.set(cmd.input.key, value);
    }
    session.seq = cmd.seq;
    session.output = output;
    return { kind: 'applied', output };
  }

  /** Expiry is decided by log time only, so every replica expires the same sessions at the same index. */
  private expireSessions(): void {
    // (Keys, not entries: an entry is a new array each, and this runs at every apply.)
    for (const client of this.sessions.keys()) {
      if (this.now - this.sessions.get(client)!.lastSeen > this.sessionTtl) this.sessions.delete(client);
    }
  }

  read(key: string): string | undefined {
    return this.state.get(key);
  }

  /** A read's response: the model's own output for a get. */
  get(key: string): KvOutput {
    return kvEffect(this.state.get(key), { op: 'get', key }).output;
  }

  keys(): string[] {
    return [...this.state.keys()].sort();
  }

  /** The state, including the session table (which must survive snapshots). */
  snapshot(): Uint8Array {
    return encoder.encode(
      JSON.stringify({
        state: [...this.state.entries()],
        sessions: [...this.sessions.entries()],
        now: this.now,
      }),
    );
  }

  static restore(data: Uint8Array, sessionTtl: number): KvStateMachine {
    const sm = new KvStateMachine(sessionTtl);
    if (data.byteLength === 0) return sm;
    const parsed = JSON.parse(decoder.decode(data)) as {
      state: [string, string][];
      sessions: [number, Session][];
      now: number;
    };
    sm.state = new Map(parsed.state);
    sm.sessions = new Map(parsed.sessions);
    sm.now = parsed.now;
    return sm;
  }
}
