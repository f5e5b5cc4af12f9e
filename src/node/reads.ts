// Linearizable read barriers (diss. §6.4). A caller waits until this node
// has applied everything that was committed when it called, as confirmed by
// the current leader with a ReadIndex request. Like etcd's
// linearizableReadLoop, the callers that arrive before a request is sent
// share it: one ReadIndex round serves them all. (Never a request sent
// before a caller arrived: its index could predate a write the caller saw
// complete.)
//
// A request unanswered for a while is sent again (the message or its answer
// may be lost); one whose leader lost leadership before answering fails
// with LeaderChangedError, as in etcd.

import { ProposalDroppedError } from '../raft/errors.js';
import type { NodeId, ReadState } from '../raft/types.js';
import { LeaderChangedError, RequestTimeoutError } from './errors.js';
import type { Settle } from './proposals.js';

interface Batch {
  readonly waiters: Settle[];
  readonly deadline: number;
  /** The leader the latest request went to. */
  leader: NodeId;
  /** The read index once confirmed; -1 before. */
  index: number;
  lastRequest: number;
  readonly contexts: string[];
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export interface ReadIndexCore {
  /** Asks the core for a read index; throws ProposalDroppedError without a leader. */
  readIndex(context: Uint8Array): void;
  /** The leader the core knows now. */
  leader(): NodeId;
}

export class Reads {
  private queue: Settle[] = [];
  private batches: Batch[] = [];
  private readonly byContext = new Map<string, Batch>();
  private seq = 0;
  served = 0;
  failed = 0;
  requests = 0;

  constructor(
    private readonly core: ReadIndexCore,
    /** Makes contexts unique across this member's restarts. */
    private readonly nonce: number,
    private readonly timeoutMs: number,
    private readonly retryMs: number,
  ) {}

  /** Registers a caller; it joins the request sent at the next submit(). */
  wait(settle: Settle): void {
    this.queue.push(settle);
  }

  /** Sends one ReadIndex request for every caller queued since the last. */
  submit(now: number): void {
    if (this.queue.length === 0) return;
    const batch: Batch = { waiters: this.queue, deadline: now + this.timeoutMs, leader: 0, index: -1, lastRequest: now, contexts: [] };
    this.queue = [];
    if (this.request(batch, now)) this.batches.push(batch);
  }

  /** The core confirmed a read index. */
  confirmed(rs: ReadState): void {
    const batch = this.byContext.get(textDecoder.decode(rs.context));
    if (!batch) return; // answered already (a retry's answer), or failed
    for (const c of batch.contexts) this.byContext.delete(c);
    batch.index = rs.index;
  }

  /** Releases the callers whose read index this node has applied. */
  serve(applied: number): void {
    if (this.batches.length === 0) return;
    this.batches = this.batches.filter((b) => {
      if (b.index < 0 || b.index > applied) return true;
      this.served += b.waiters.length;
      for (const w of b.waiters) w.resolve(undefined);
      return false;
    });
  }

  /** Requests that went to another leader than `leader` are lost with its leadership. */
  leaderChanged(leader: NodeId): void {
    for (const b of this.batches) {
      if (b.index < 0 && b.leader !== leader) {
        this.fail(b, new LeaderChangedError('the read index request went to a leader that lost its leadership'));
      }
    }
    this.prune();
  }

  /** Fails what passed its deadline; sends again what went unanswered for retryMs. */
  expire(now: number): void {
    for (const b of this.batches) {
      if (b.deadline <= now) this.fail(b, new RequestTimeoutError('read index', this.timeoutMs));
      else if (b.index < 0 && now - b.lastRequest >= this.retryMs) this.request(b, now);
    }
    this.prune();
  }

  failAll(err: Error): void {
    this.failed += this.queue.length;
    for (const w of this.queue) w.reject(err);
    this.queue = [];
    for (const b of this.batches) this.fail(b, err);
    this.batches = [];
  }

  /** Sends (or sends again) a batch's request; false if the core refused it (the batch failed). */
  private request(batch: Batch, now: number): boolean {
    const context = `${this.nonce}:${++this.seq}`;
    try {
      this.core.readIndex(textEncoder.encode(context));
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      this.fail(batch, err);
      return false;
    }
    this.requests++;
    batch.contexts.push(context);
    batch.leader = this.core.leader();
    batch.lastRequest = now;
    this.byContext.set(context, batch);
    return true;
  }

  private fail(batch: Batch, err: Error): void {
    for (const c of batch.contexts) this.byContext.delete(c);
    this.failed += batch.waiters.length;
    for (const w of batch.waiters.splice(0)) w.reject(err);
  }

  private prune(): void {
    this.batches = this.batches.filter((b) => b.waiters.length > 0);
  }
}
