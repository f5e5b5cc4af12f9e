// This node's proposals (and membership changes) from the call until their
// entry is applied here or they fail. Each travels in an envelope naming its
// proposer and sequence number (envelope.ts); applying the entry resolves
// the caller with the state machine's result, as etcd's wait registry does
// by request id.
//
// A proposal fails early, rather than at its deadline, when the outcome is
// certain: the core refused it (ProposalDroppedError), or its entry was cut
// from this node's log by a new leader's (LeaderChangedError: an entry that
// is truncated was never committed, §5.4).

import { decodeConfChange } from '../raft/confchange.js';
import { ProposalDroppedError } from '../raft/errors.js';
import type { DroppedProposal, Entry } from '../raft/types.js';
import { type ProposalId, decodeConfContext, decodeEnvelope } from './envelope.js';
import { LeaderChangedError, RequestTimeoutError } from './errors.js';

/** A promise's two ends. */
export interface Settle {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Pending extends Settle {
  readonly seq: number;
  readonly deadline: number;
  /** What it is, for error messages: "proposal", "conf change addNode 4". */
  readonly what: string;
  /** The log index its entry was seen at in this node's log (0: not seen). */
  index: number;
}

export class Proposals {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  /** Enveloped commands waiting for the next pass, which hands them to the core together. */
  private queued: { p: Pending; data: Uint8Array }[] = [];
  /** Pending proposals by the index their entry holds in this node's log. */
  private readonly byIndex = new Map<number, Pending>();
  private maxTrackedIndex = 0;
  committed = 0;
  failed = 0;

  constructor(
    private readonly proposer: number,
    /** Distinguishes this process's proposals from those of this member's earlier lives. */
    private readonly nonce: number,
    private readonly timeoutMs: number,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Registers a request; returns the id its entry must carry. */
  add(what: string, settle: Settle, now: number): ProposalId {
    const seq = ++this.seq;
    this.pending.set(seq, { seq, what, deadline: now + this.timeoutMs, index: 0, ...settle });
    return { proposer: this.proposer, nonce: this.nonce, seq };
  }

  /** Forgets a request the core refused on the spot (the caller already has the error). */
  remove(id: ProposalId): void {
    this.pending.delete(id.seq);
  }

  /** Queues an enveloped command for the next pass. */
  enqueue(id: ProposalId, data: Uint8Array): void {
    const p = this.pending.get(id.seq);
    if (p) this.queued.push({ p, data });
  }

  /**
   * Hands the queued commands to `propose` at once (one MsgProp when
   * forwarded); all fail if the core refuses them. Those that timed out
   * while queued stay out of the log.
   */
  submit(propose: (data: Uint8Array[]) => void): void {
    if (this.queued.length === 0) return;
    const batch = this.queued.filter((q) => this.pending.has(q.p.seq));
    this.queued = [];
    if (batch.length === 0) return;
    try {
      propose(batch.map((q) => q.data));
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
      for (const q of batch) this.fail(q.p, err);
    }
  }

  /**
   * Notes where this node's proposals landed in its log (a Ready's entries).
   * Entries handed out again at an index mean the log was truncated there
   * (a new leader's log won): a proposal whose entry was cut is failed.
   */
  track(entries: readonly Entry[]): void {
    if (this.pending.size === 0 || entries.length === 0) return;
    const first = entries[0]!.index;
    const cut: Pending[] = [];
    if (this.byIndex.size > 0 && first <= this.maxTrackedIndex) {
      for (const [i, p] of this.byIndex) {
        if (i < first) continue;
        this.byIndex.delete(i);
        p.index = 0;
        cut.push(p);
      }
    }
    for (const e of entries) {
      const p = this.find(entryProposalId(e));
      if (!p) continue;
      p.index = e.index;
      this.byIndex.set(e.index, p);
      this.maxTrackedIndex = Math.max(this.maxTrackedIndex, e.index);
    }
    for (const p of cut) {
      if (p.index === 0) this.fail(p, new LeaderChangedError(`the ${p.what}'s entry was overwritten by a new leader's log`));
    }
  }

  /**
   * The entry at `index`, carrying proposal `id` (if any), was applied with
   * result `value`: resolves its caller if it is ours, and fails a proposal
   * that was expected at that index but lost it.
   */
  applied(id: ProposalId | undefined, index: number, value: unknown): void {
    if (this.pending.size === 0) return;
    const expected = this.byIndex.get(index);
    if (expected) this.byIndex.delete(index);
    const p = this.find(id);
    if (expected && expected !== p) {
      this.fail(expected, new LeaderChangedError(`index ${index} holds another entry than the ${expected.what}`));
    }
    if (!p) return;
    this.pending.delete(p.seq);
    this.committed++;
    p.resolve(value);
  }

  /** A proposal this node forwarded was refused by the leader. */
  dropped(d: DroppedProposal): void {
    const p = this.find(entryProposalId(d));
    if (p) this.fail(p, new ProposalDroppedError(d.reason, 'refused by the leader'));
  }

  /**
   * A snapshot from the leader replaced the log up to `index`: proposals
   * whose entries lay beyond it are gone (they were not in the leader's log,
   * or the log would have been kept, §7). Those at or below it may be in the
   * snapshot or not: they wait for their deadline.
   */
  snapshotInstalled(index: number): void {
    for (const [i, p] of this.byIndex) {
      this.byIndex.delete(i);
      p.index = 0;
      if (i > index) this.fail(p, new LeaderChangedError(`the ${p.what}'s entry was replaced by the leader's snapshot`));
    }
  }

  /** Fails what passed its deadline. */
  expire(now: number): void {
    // Deadlines grow with creation order: the oldest come first.
    for (const p of this.pending.values()) {
      if (p.deadline > now) break;
      this.fail(p, new RequestTimeoutError(p.what, this.timeoutMs));
    }
  }

  /** Fails the queued requests (not yet in the log). */
  failQueued(err: Error): void {
    for (const q of this.queued) this.fail(q.p, err);
    this.queued = [];
  }

  failAll(err: Error): void {
    this.queued = [];
    for (const p of [...this.pending.values()]) this.fail(p, err);
  }

  private find(id: ProposalId | undefined): Pending | undefined {
    if (!id || id.proposer !== this.proposer || id.nonce !== this.nonce) return undefined;
    return this.pending.get(id.seq);
  }

  private fail(p: Pending, err: Error): void {
    if (!this.pending.delete(p.seq)) return;
    if (p.index > 0 && this.byIndex.get(p.index) === p) this.byIndex.delete(p.index);
    this.failed++;
    p.reject(err);
  }
}

/** The proposal id an entry (or a refused proposal) carries, if it carries one. */
function entryProposalId(e: { readonly type: Entry['type']; readonly data: Uint8Array }): ProposalId | undefined {
  try {
    if (e.type === 'confChange') return decodeConfContext(decodeConfChange(e.data).context).id;
    return e.data.byteLength > 0 ? decodeEnvelope(e.data) : undefined;
  } catch {
    return undefined; // not the runtime's envelope: not ours (applying it will judge it)
  }
}
