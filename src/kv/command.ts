// What the Raft log carries for the key-value store: one write operation,
// the proposer's wall-clock time, and optionally the client session that
// makes it exactly-once (Raft dissertation §6.3).
//
// Reads are not commands: a serializable or linearizable (after ReadIndex)
// range is served from the local state (KvStateMachine.range).
//
// Encoding, version 1: a format byte, the operation kind, the time, a
// session flag and the session, then the operation's request (messages.ts).

import { CodecError, Reader, Writer } from './codec.js';
import { badCommand } from './errors.js';
import {
  readCompaction,
  readDeleteRange,
  readIncrement,
  readPut,
  readTxn,
  writeCompaction,
  writeDeleteRange,
  writeIncrement,
  writePut,
  writeTxn,
} from './messages.js';
import type { CompactionRequest, DeleteRangeRequest, IncrementRequest, PutRequest, TxnRequest } from './types.js';

export type KvOperation =
  | { readonly type: 'put'; readonly request: PutRequest }
  | { readonly type: 'deleteRange'; readonly request: DeleteRangeRequest }
  | { readonly type: 'txn'; readonly request: TxnRequest }
  | { readonly type: 'compact'; readonly request: CompactionRequest }
  | { readonly type: 'increment'; readonly request: IncrementRequest };

/**
 * A client's identity and the request's place in its sequence (RIFL-style:
 * a client may have several requests outstanding).
 */
export interface ClientSession {
  /** Chosen by the client, unique among clients (e.g. 128 random bits in hex). */
  readonly clientId: string;
  /** This request's number, from 1, increasing by one per new request of the client. */
  readonly seq: number;
  /**
   * The client's lowest sequence number whose response it has not yet
   * received: the responses below it may be discarded. 1 until the client
   * has had its first response.
   */
  readonly lowestUnackedSeq: number;
}

export interface KvCommand {
  readonly op: KvOperation;
  readonly session?: ClientSession;
  /**
   * The proposer's wall clock in ms since the epoch. Apply keeps the largest
   * time seen so far as the log's clock, which expires idle sessions: every
   * member sees the same times at the same indexes, so all expire alike.
   */
  readonly time: number;
}

const FORMAT = 1;

const OP_KINDS = ['put', 'deleteRange', 'txn', 'compact', 'increment'] as const;

/** Encodes a command for the log. Validate it first (validateCommand). */
export function encodeCommand(cmd: KvCommand): Uint8Array {
  const w = new Writer(64);
  w.u8(FORMAT);
  w.u8(OP_KINDS.indexOf(cmd.op.type));
  w.uvarint(cmd.time);
  const s = cmd.session;
  if (s === undefined) {
    w.u8(0);
  } else {
    w.u8(1);
    w.utf8(s.clientId);
    w.uvarint(s.seq);
    w.uvarint(s.lowestUnackedSeq);
  }
  const op = cmd.op;
  switch (op.type) {
    case 'put':
      writePut(w, op.request);
      break;
    case 'deleteRange':
      writeDeleteRange(w, op.request);
      break;
    case 'txn':
      writeTxn(w, op.request);
      break;
    case 'compact':
      writeCompaction(w, op.request);
      break;
    case 'increment':
      writeIncrement(w, op.request);
      break;
  }
  return w.finish();
}

/**
 * Decodes a command. Its `bytes` fields are views into `data`. Throws
 * KvError BAD_COMMAND on bytes that are not a command of this format.
 */
export function decodeCommand(data: Uint8Array): KvCommand {
  try {
    const r = new Reader(data);
    const format = r.u8();
    if (format !== FORMAT) throw new CodecError(`unknown command format ${format}`);
    const kind = r.u8();
    const time = r.uvarint();
    let session: ClientSession | undefined;
    if (r.bool()) session = { clientId: r.utf8(), seq: r.uvarint(), lowestUnackedSeq: r.uvarint() };
    let op: KvOperation;
    switch (OP_KINDS[kind]) {
      case 'put':
        op = { type: 'put', request: readPut(r) };
        break;
      case 'deleteRange':
        op = { type: 'deleteRange', request: readDeleteRange(r) };
        break;
      case 'txn':
        op = { type: 'txn', request: readTxn(r) };
        break;
      case 'compact':
        op = { type: 'compact', request: readCompaction(r) };
        break;
      case 'increment':
        op = { type: 'increment', request: readIncrement(r) };
        break;
      default:
        throw new CodecError(`unknown operation kind ${kind}`);
    }
    if (r.remaining !== 0) throw new CodecError(`${r.remaining} bytes after the command`);
    return session === undefined ? { op, time } : { op, session, time };
  } catch (e) {
    if (e instanceof CodecError) throw badCommand(e.message);
    throw e;
  }
}
