// The event trace: a running hash of every event (same seed, same hash), a
// ring buffer of the latest events for failure reports, and formatting.
// Events are kept as small records and formatted only when printed.

import type { Message, MessageType } from '../raft/types.js';

export type TraceKind =
  | 'tick'
  | 'send'
  | 'deliver'
  | 'drop'
  | 'persist'
  | 'apply'
  | 'role'
  | 'crash'
  | 'restart'
  | 'partition'
  | 'heal'
  | 'conf'
  | 'transfer'
  | 'snapshot'
  | 'client'
  | 'phase'
  | 'violation';

export interface TraceRecord {
  readonly time: number;
  readonly kind: TraceKind;
  readonly node: number;
  readonly msg?: Message;
  readonly text?: string;
}

/** A trace kind's code, as the hash takes it (a switch: see messageCode). */
function kindCode(kind: TraceKind): number {
  switch (kind) {
    case 'tick':
      return 1;
    case 'send':
      return 2;
    case 'deliver':
      return 3;
    case 'drop':
      return 4;
    case 'persist':
      return 5;
    case 'apply':
      return 6;
    case 'role':
      return 7;
    case 'crash':
      return 8;
    case 'restart':
      return 9;
    case 'partition':
      return 10;
    case 'heal':
      return 11;
    case 'conf':
      return 12;
    case 'transfer':
      return 13;
    case 'snapshot':
      return 14;
    case 'client':
      return 15;
    case 'phase':
      return 16;
    case 'violation':
      return 17;
  }
}

/** Message types by their code (1 to 15; see messageCode). */
export const MESSAGE_TYPES_BY_CODE: readonly (MessageType | undefined)[] = [
  undefined,
  'MsgProp',
  'MsgApp',
  'MsgAppResp',
  'MsgVote',
  'MsgVoteResp',
  'MsgPreVote',
  'MsgPreVoteResp',
  'MsgSnap',
  'MsgHeartbeat',
  'MsgHeartbeatResp',
  'MsgTransferLeader',
  'MsgTimeoutNow',
  'MsgReadIndex',
  'MsgReadIndexResp',
  'MsgPropResp',
];

/**
 * A message type's code (MESSAGE_TYPES_BY_CODE's index; a test checks they
 * agree). A switch: it is asked for every message sent and delivered, and
 * looking the type up in a table keyed by it costs several times more.
 */
export function messageCode(type: MessageType): number {
  switch (type) {
    case 'MsgProp':
      return 1;
    case 'MsgApp':
      return 2;
    case 'MsgAppResp':
      return 3;
    case 'MsgVote':
      return 4;
    case 'MsgVoteResp':
      return 5;
    case 'MsgPreVote':
      return 6;
    case 'MsgPreVoteResp':
      return 7;
    case 'MsgSnap':
      return 8;
    case 'MsgHeartbeat':
      return 9;
    case 'MsgHeartbeatResp':
      return 10;
    case 'MsgTransferLeader':
      return 11;
    case 'MsgTimeoutNow':
      return 12;
    case 'MsgReadIndex':
      return 13;
    case 'MsgReadIndexResp':
      return 14;
    case 'MsgPropResp':
      return 15;
  }
}

export function describeMessage(m: Message): string {
  let s = `${m.type} ${m.from}->${m.to} t${m.term}`;
  switch (m.type) {
    case 'MsgApp':
      s += ` prev=${m.index}@${m.logTerm} ents=${m.entries.length ? `${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}` : '0'} commit=${m.commit}`;
      break;
    case 'MsgAppResp':
      s += m.reject ? ` reject ${m.index} hint=${m.rejectHint}@${m.logTerm}` : ` index=${m.index}`;
      break;
    case 'MsgVote':
    case 'MsgPreVote':
      s += ` last=${m.index}@${m.logTerm}${m.force ? ' force' : ''}`;
      break;
    case 'MsgVoteResp':
    case 'MsgPreVoteResp':
      s += m.reject ? ' rejected' : ' granted';
      break;
    case 'MsgHeartbeat':
      s += ` commit=${m.commit} round=${m.round}`;
      break;
    case 'MsgHeartbeatResp':
      s += ` round=${m.round}`;
      break;
    case 'MsgSnap':
      s += ` snap=${m.snapshot?.metadata.index}@${m.snapshot?.metadata.term}`;
      break;
    case 'MsgReadIndexResp':
      s += ` index=${m.index}`;
      break;
    case 'MsgTransferLeader':
      s += ` to=${m.transferee}`;
      break;
    case 'MsgProp':
      s += ` ents=${m.entries.length}`;
      break;
    case 'MsgPropResp':
      s += ` refused ${m.entries.length} (${m.context ? new TextDecoder().decode(m.context) : '?'})`;
      break;
    default:
      break;
  }
  return s;
}

export function formatRecord(r: TraceRecord): string {
  const t = (r.time / 1000).toFixed(3).padStart(10);
  const who = r.node > 0 ? `n${r.node}` : '--';
  const body = r.msg ? describeMessage(r.msg) + (r.text ? ` ${r.text}` : '') : (r.text ?? '');
  return `${t}ms ${who.padEnd(5)} ${r.kind.padEnd(9)} ${body}`;
}

/** One step of FNV-1a over 32-bit words: the running hash `h` with `x` mixed in. */
function mix(h: number, x: number): number {
  return Math.imul(h ^ (x | 0), 0x01000193) >>> 0;
}

/**
 * An event's text given in pieces, hashed as their concatenation (numbers
 * as their decimal text) and joined only if printed: the simulator traces
 * every write this way, and building and flattening a string for each cost
 * more than the rest of tracing it.
 */
export type TextParts = readonly (string | number)[];

/** `h` with the characters of `s` mixed in. */
function mixString(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = mix(h, s.charCodeAt(i));
  return h;
}

/** `h` with the characters of String(n) mixed in, without building the string for small whole numbers. */
function mixNumber(h: number, n: number): number {
  if (!(n >= 0 && n < 0x80000000 && n === (n | 0))) return mixString(h, String(n));
  let d = 1;
  while (d * 10 <= n) d *= 10;
  for (; d >= 1; d = (d / 10) | 0) h = mix(h, 48 + (((n / d) | 0) % 10));
  return h;
}

function joinText(text: string | TextParts | undefined): string | undefined {
  return typeof text === 'object' ? text.join('') : text;
}

export class Trace {
  private hash = 0x811c9dc5;
  /** The ring of latest events, a field per array (no object per event: most are never read). */
  private readonly times: number[];
  private readonly kinds: (TraceKind | undefined)[];
  private readonly nodes: number[];
  private readonly msgs: (Message | undefined)[];
  private readonly texts: (string | TextParts | undefined)[];
  private next = 0;
  count = 0;

  constructor(
    capacity: number,
    private readonly sink?: (record: TraceRecord) => void,
  ) {
    const n = Math.max(1, capacity);
    this.times = new Array<number>(n).fill(0);
    this.kinds = new Array<TraceKind | undefined>(n).fill(undefined);
    this.nodes = new Array<number>(n).fill(0);
    this.msgs = new Array<Message | undefined>(n).fill(undefined);
    this.texts = new Array<string | TextParts | undefined>(n).fill(undefined);
  }

  /** Ticks go into the hash but not the buffer: they would crowd out the events that matter. */
  tick(time: number, node: number): void {
    this.count++;
    this.hash = mix(mix(this.hash, time), node);
  }

  record(time: number, kind: TraceKind, node: number, msg?: Message, text?: string | TextParts): void {
    this.count++;
    let h = this.hash;
    h = mix(h, time);
    h = mix(h, time / 4294967296);
    h = mix(h, kindCode(kind));
    h = mix(h, node);
    if (msg) {
      h = mix(h, messageCode(msg.type));
      h = mix(h, msg.from);
      h = mix(h, msg.to);
      h = mix(h, msg.term);
      h = mix(h, msg.index);
      h = mix(h, msg.logTerm);
      h = mix(h, msg.commit);
      h = mix(h, msg.entries.length);
      h = mix(h, msg.reject ? 1 : 0);
    }
    if (typeof text === 'string') h = mixString(h, text);
    else if (text) for (const part of text) h = typeof part === 'string' ? mixString(h, part) : mixNumber(h, part);
    this.hash = h;
    const k = this.next;
    this.times[k] = time;
    this.kinds[k] = kind;
    this.nodes[k] = node;
    this.msgs[k] = msg;
    this.texts[k] = text;
    if (++this.next === this.times.length) this.next = 0;
    if (this.sink) this.sink(this.at(k)!);
  }

  /** The event in ring slot k, if any. */
  private at(k: number): TraceRecord | undefined {
    const kind = this.kinds[k];
    if (kind === undefined) return undefined;
    const msg = this.msgs[k];
    const base = { time: this.times[k]!, kind, node: this.nodes[k]! };
    const text = joinText(this.texts[k]);
    return msg ? { ...base, msg, text } : { ...base, text };
  }

  /** The hash of every event so far, as 8 hex digits. */
  digest(): string {
    return this.hash.toString(16).padStart(8, '0');
  }

  /** The latest events, oldest first. */
  recent(n = this.times.length): TraceRecord[] {
    const out: TraceRecord[] = [];
    for (let i = 0; i < this.times.length; i++) {
      const r = this.at((this.next + i) % this.times.length);
      if (r) out.push(r);
    }
    return out.slice(-n);
  }
}
