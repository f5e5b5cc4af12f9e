// The data types of the Raft protocol: log entries, persistent state,
// snapshots, configurations and the messages nodes exchange.
//
// Names follow the Raft paper (Ongaro & Ousterhout, 2014) where it has one
// and etcd-io/raft's raftpb where it does not.

import type { DropReason } from './errors.js';

/** A member's id. 0 means "no node" (no leader known, no vote cast). */
export type NodeId = number;
export const NONE: NodeId = 0;

export type EntryType = 'normal' | 'confChange';

/** One log entry. Entries are immutable once created: share, never mutate. */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  /** The command for the state machine; empty for the no-op a new leader appends (§8). */
  readonly data: Uint8Array;
}

/** Fixed per-entry overhead counted towards byte limits (index, term, type, framing). */
export const ENTRY_OVERHEAD_BYTES = 24;

/** Bytes an entry occupies in a message or in flight. */
export function entryBytes(e: Entry): number {
  return e.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** Bytes of application payload: what the uncommitted-size quota counts (an empty entry is free). */
export function payloadBytes(entries: readonly Entry[]): number {
  let n = 0;
  for (const e of entries) n += e.data.byteLength;
  return n;
}

/**
 * The state every node persists before answering (Figure 2): currentTerm,
 * votedFor, and the commit index (the last is an optimisation; losing it is
 * safe, it is only recomputed).
 */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export const EMPTY_HARD_STATE: HardState = { term: 0, vote: NONE, commit: 0 };

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/**
 * A configuration as stored in snapshots and returned by applyConfChange.
 * While a joint configuration (§6) is in force, `votersOutgoing` holds
 * C_old and `voters` holds C_new; otherwise `votersOutgoing` is empty.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  /** Voters of C_old that become learners when the joint configuration is left. */
  readonly learnersNext: readonly NodeId[];
  /** Leave the joint configuration automatically once it is applied (etcd's ConfChangeV2 "auto"). */
  readonly autoLeave: boolean;
}

export const EMPTY_CONF_STATE: ConfState = {
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

export interface SnapshotMetadata {
  /** The last entry the snapshot replaces, and its term (§7). */
  readonly index: number;
  readonly term: number;
  /** The configuration as of `index`: a node's configuration is part of every snapshot. */
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The state machine's serialized state as of metadata.index. */
  readonly data: Uint8Array;
}

export const EMPTY_SNAPSHOT: Snapshot = {
  metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE },
  data: new Uint8Array(0),
};

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

// ---------------------------------------------------------------------------
// Membership changes (§6 and etcd's ConfChangeV2)

export type ConfChangeType = 'addNode' | 'removeNode' | 'addLearner';

export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

/**
 * How a change that needs joint consensus is carried out:
 * - 'auto': a single voter change is applied directly; anything larger goes
 *   through a joint configuration that the leader leaves automatically.
 * - 'implicit': always joint, left automatically.
 * - 'explicit': always joint; the application leaves it by proposing an
 *   empty ConfChange.
 */
export type ConfChangeTransition = 'auto' | 'implicit' | 'explicit';

export interface ConfChange {
  readonly transition: ConfChangeTransition;
  /** Empty means "leave the joint configuration". */
  readonly changes: readonly ConfChangeSingle[];
  /** Opaque to Raft; handed back with the committed entry. */
  readonly context?: Uint8Array;
}

// ---------------------------------------------------------------------------
// Messages

export type MessageType =
  /** A proposal forwarded by a follower to the leader. */
  | 'MsgProp'
  /** AppendEntries (§5.3): index/logTerm are prevLogIndex/prevLogTerm, commit is leaderCommit. */
  | 'MsgApp'
  /** AppendEntries reply: index is the last index now matching, or the rejected prevLogIndex with a hint. */
  | 'MsgAppResp'
  /** RequestVote (§5.2): index/logTerm describe the candidate's last entry (§5.4.1). */
  | 'MsgVote'
  | 'MsgVoteResp'
  /** A PreVote request (diss. §9.6): term is the candidate's term + 1, not yet adopted. */
  | 'MsgPreVote'
  | 'MsgPreVoteResp'
  /** InstallSnapshot (§7). */
  | 'MsgSnap'
  /** An empty AppendEntries: asserts leadership, carries a safe commit index and a heartbeat round. */
  | 'MsgHeartbeat'
  | 'MsgHeartbeatResp'
  /** A leadership transfer request forwarded to the leader; `transferee` names the target. */
  | 'MsgTransferLeader'
  /** Tells the transfer target to campaign at once (diss. §3.10). */
  | 'MsgTimeoutNow'
  /** A read-index request forwarded to the leader (diss. §6.4). */
  | 'MsgReadIndex'
  /** The leader's answer: index is the read index for `context`. */
  | 'MsgReadIndexResp'
  /**
   * A forwarded proposal refused (by a leader during a transfer, a node that
   * knows no leader, ...), back to the node that forwarded it: `entries` are
   * the refused proposals, `context` the reason (a DropReason, as text).
   * Nothing of them entered the log.
   */
  | 'MsgPropResp';

/**
 * Every message type, in a fixed order: the transport's wire code of a type
 * is its position here, so this list is append-only.
 */
export const MESSAGE_TYPES: readonly MessageType[] = [
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
 * A message between two nodes. One flat shape for every type (as in
 * etcd-io/raft): fields a type does not use hold their zero value.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  /**
   * The sender's term. 0 on MsgProp and MsgReadIndex: those are forwarded
   * requests, handled by the leader whatever term they were sent in.
   */
  readonly term: number;
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  /** On a rejected MsgAppResp: the follower's guess at where the logs match (§5.3, end). */
  readonly rejectHint: number;
  readonly snapshot: Snapshot | undefined;
  /** MsgReadIndex/MsgReadIndexResp: the caller's request context. */
  readonly context: Uint8Array | undefined;
  /** MsgHeartbeat/MsgHeartbeatResp: the leader's heartbeat round, used to confirm reads and leases. */
  readonly round: number;
  /** MsgVote: set when campaigning because of a leadership transfer (bypasses leader stickiness). */
  readonly force: boolean;
  /** MsgTransferLeader: the node that should become leader. */
  readonly transferee: NodeId;
  /**
   * Vote requests and answers: the sender's commit index (in `commit`) and
   * the term of the entry there, so that the other side can adopt it (see
   * Raft.learnCommit).
   */
  readonly commitTerm: number;
}

const EMPTY_ENTRIES: readonly Entry[] = Object.freeze([]) as readonly Entry[];

/** A message under construction: its sender fills in the fields its type uses. */
export type MutableMessage = { -readonly [K in keyof Message]: Message[K] };

/**
 * A message with every field but the header at its zero value. All messages
 * are built here, so they share one object shape: V8 then keeps the code
 * that reads them monomorphic, which the hot paths depend on.
 */
export function blankMessage(type: MessageType, from: NodeId, to: NodeId, term: number): MutableMessage {
  return {
    type,
    from,
    to,
    term,
    logTerm: 0,
    index: 0,
    entries: EMPTY_ENTRIES,
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: undefined,
    context: undefined,
    round: 0,
    force: false,
    transferee: NONE,
    commitTerm: 0,
  };
}

/** Builds a message from the fields given; every other field holds its zero value. */
export function message(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return withFields(blankMessage(fields.type, fields.from, fields.to, fields.term ?? 0), fields);
}

/** Sets on `m` the body fields (all but type, from, to and term) that `fields` gives. */
export function withFields(m: MutableMessage, fields: Partial<Message>): Message {
  if (fields.logTerm !== undefined) m.logTerm = fields.logTerm;
  if (fields.index !== undefined) m.index = fields.index;
  if (fields.entries !== undefined) m.entries = fields.entries;
  if (fields.commit !== undefined) m.commit = fields.commit;
  if (fields.reject !== undefined) m.reject = fields.reject;
  if (fields.rejectHint !== undefined) m.rejectHint = fields.rejectHint;
  if (fields.snapshot !== undefined) m.snapshot = fields.snapshot;
  if (fields.context !== undefined) m.context = fields.context;
  if (fields.round !== undefined) m.round = fields.round;
  if (fields.force !== undefined) m.force = fields.force;
  if (fields.transferee !== undefined) m.transferee = fields.transferee;
  if (fields.commitTerm !== undefined) m.commitTerm = fields.commitTerm;
  return m;
}

/** Responses are answers to a request: votes, append and heartbeat acknowledgements. */
export function isResponseMessage(t: MessageType): boolean {
  return (
    t === 'MsgAppResp' ||
    t === 'MsgVoteResp' ||
    t === 'MsgPreVoteResp' ||
    t === 'MsgHeartbeatResp' ||
    t === 'MsgReadIndexResp'
  );
}

/**
 * Messages that may leave before the sender's Ready is durable: what a
 * leader sends in its role as leader (diss. §10.2.1: the leader may write to
 * its disk in parallel with replicating to followers) and forwarded
 * requests. Everything else (votes, vote requests, acknowledgements) asserts
 * state that must be on disk first (Figure 2).
 */
export function canSendBeforePersist(t: MessageType): boolean {
  return (
    t === 'MsgApp' ||
    t === 'MsgHeartbeat' ||
    t === 'MsgSnap' ||
    t === 'MsgTimeoutNow' ||
    t === 'MsgReadIndexResp' ||
    t === 'MsgProp' ||
    t === 'MsgPropResp' ||
    t === 'MsgReadIndex' ||
    t === 'MsgTransferLeader'
  );
}

// ---------------------------------------------------------------------------
// Node state

export type StateType = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state that is useful to observe but need not be persisted. */
export interface SoftState {
  readonly lead: NodeId;
  readonly state: StateType;
}

/**
 * A proposal this node forwarded to the leader and that was refused there
 * (or on the way): it is not in the log, and the caller may retry.
 */
export interface DroppedProposal {
  readonly type: EntryType;
  readonly data: Uint8Array;
  readonly reason: DropReason;
}

/** A read index confirmed for a request context: serve the read once applied >= index. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

/** Injected randomness: the core never reaches for Math.random. */
export interface RandomSource {
  /** A uniformly distributed integer in [0, n). */
  int(n: number): number;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export const SILENT_LOGGER: Logger = {
  debug() {},
  info() {},
  warn() {},
};
