// Raft's safety properties (Figure 3 of the paper, and what the clients
// were promised), checked incrementally: after every event for the node it
// touched, and at every write and apply. Each check is O(1) or O(log n) per
// event, so they can run continuously through long simulations.

import type { Ready } from '../raft/rawNode.js';
import type { Entry, Message, NodeId } from '../raft/types.js';
import type { AppliedCommand, SimNode } from './node.js';

export type Property =
  /** At most one leader per term (§5.2). */
  | 'election-safety'
  /** A leader never overwrites or deletes entries in its log (§5.3). */
  | 'leader-append-only'
  /** Two logs with an entry of the same index and term are identical up to it (§5.3). */
  | 'log-matching'
  /** A committed entry is in the log of every leader of a later term (§5.4). */
  | 'leader-completeness'
  /** Every node applies the same entry at each index (§5.4.3), in order, once, and only when committed. */
  | 'state-machine-safety'
  /** A read is served at a read index no lower than what was committed when it arrived (diss. §6.4). */
  | 'read-index'
  /** A leader advances its commit index only to an entry of its own term (§5.4.2, Figure 8). */
  | 'commit-rule'
  /**
   * A leader commits only entries durably stored on a majority of every
   * voter set in force, and is elected only with durably recorded votes of a
   * majority of each (§5.2, §5.3; both C_old and C_new while joint, §6).
   */
  | 'quorum'
  /** Persisted term, vote and commit never go back, also across restarts (Figure 2). */
  | 'durable-state'
  /** Term and commit index never decrease while a node runs. */
  | 'monotonic-state'
  /** A write acknowledged to a client is never lost. */
  | 'acknowledged-write-lost'
  /** A command retried by its client takes effect at most once (diss. §6.3). */
  | 'exactly-once'
  /** The clients' history is linearizable (a register per key). */
  | 'linearizability'
  /** After faults heal, a leader is elected and every operation completes. */
  | 'liveness'
  /** The Raft core detected a broken invariant of its own and stopped. */
  | 'core-invariant'
  /**
   * The storage failed: a write refused, or a recovery that refused a disk
   * a crash left (a crash only loses unsynced writes or tears the last one,
   * which recovery must accept), or found its own bookkeeping broken.
   */
  | 'storage';

export class SafetyViolation extends Error {
  readonly code = 'SAFETY_VIOLATION';
  constructor(
    readonly property: Property,
    readonly detail: string,
  ) {
    super(`${property}: ${detail}`);
    this.name = 'SafetyViolation';
  }
}

/** FNV-1a over bytes: a fingerprint to compare entries' contents cheaply. */
export function fingerprint(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) {
    h ^= data[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

interface NodeView {
  incarnation: number;
  term: number;
  commit: number;
  durableTerm: number;
  durableVote: NodeId;
  durableCommit: number;
  /** When last seen as leader: its term, incarnation and last entry. */
  leaderTerm: number;
  leaderIncarnation: number;
  leaderLastIndex: number;
  leaderLastTerm: number;
  appliedIndex: number;
  /** As of the last Ready taken while leader: its term, incarnation and commit index. */
  readyLeaderTerm: number;
  readyIncarnation: number;
  readyCommit: number;
}

interface RegisteredEntry {
  readonly term: number;
  readonly hash: number;
  readonly prevTerm: number;
}

interface AppliedEntry {
  readonly term: number;
  readonly hash: number;
  readonly command: AppliedCommand;
}

export class Checker {
  /** views[id]: what the checker last saw of node id (an array: looked up several times per event). */
  private readonly views: (NodeView | undefined)[] = [];
  /** Durably recorded votes: term -> voter -> candidate. */
  private readonly votes = new Map<number, Map<NodeId, NodeId>>();

  /** `nodes` gives the checker every node's disk, to verify quorums against what is durable. */
  constructor(private readonly nodes: ReadonlyMap<NodeId, SimNode>) {}
  readonly leaderByTerm = new Map<number, NodeId>();
  /** committedTerms[i]: the term of the committed entry at index i (dense from 1 to its length - 1). */
  private readonly committedTerms: number[] = [0];
  /**
   * commitTerms[i]: the term in which index i was (first seen) committed:
   * the current term of the node that recorded it, never earlier than the
   * true one. Leader Completeness binds the leaders of later terms only (an
   * entry of term 35 committed by the leader of term 37 need not be in the
   * log of a stale leader of term 36). Non-decreasing with the index.
   */
  private readonly commitTerms: number[] = [0];
  /** Every entry ever written to any disk, by index. */
  private readonly written = new Map<number, RegisteredEntry[]>();
  /** The one sequence every node applies: applied[i] for index i. */
  private readonly applied: (AppliedEntry | undefined)[] = [];
  /** For each command (client:seq), the index where it took effect. */
  private readonly effectiveAt = new Map<string, number>();
  /** Acknowledged writes: command -> index where it took effect. */
  private readonly acknowledged = new Map<string, number>();

  private view(node: SimNode): NodeView {
    let v = this.views[node.id];
    if (!v) {
      v = {
        incarnation: node.incarnation,
        term: 0,
        commit: 0,
        durableTerm: 0,
        durableVote: 0,
        durableCommit: 0,
        leaderTerm: 0,
        leaderIncarnation: 0,
        leaderLastIndex: 0,
        leaderLastTerm: 0,
        appliedIndex: node.appliedIndex,
        readyLeaderTerm: 0,
        readyIncarnation: 0,
        readyCommit: 0,
      };
      this.views[node.id] = v;
    }
    return v;
  }

  get committedIndex(): number {
    return this.committedTerms.length - 1;
  }

  /** Called when a node (re)starts from its disk. */
  onStart(node: SimNode): void {
    const v = this.view(node);
    const r = node.raw!.raft;
    if (r.term < v.durableTerm || (r.term === v.durableTerm && v.durableVote !== 0 && r.vote !== v.durableVote)) {
      throw new SafetyViolation(
        'durable-state',
        `node ${node.id} restarted with term ${r.term} vote ${r.vote}, but had persisted term ${v.durableTerm} vote ${v.durableVote}`,
      );
    }
    if (r.raftLog.committed < v.durableCommit) {
      throw new SafetyViolation(
        'durable-state',
        `node ${node.id} restarted with commit ${r.raftLog.committed} below its persisted ${v.durableCommit}`,
      );
    }
    v.incarnation = node.incarnation;
    v.term = r.term;
    v.commit = r.raftLog.committed;
    v.appliedIndex = node.appliedIndex;
  }

  /**
   * A node grants its vote. Raft sends the grant only once the vote is
   * durable (Figure 2), and the write that makes it durable may already
   * carry a higher term: a node that steps through terms 5 and 24 within
   * one Ready persists only (24, its vote in 24), yet its grant in term 5
   * goes out too. That grant is as good as durable: having persisted term
   * 24, the node can never vote again in term 5. Record it then, beside
   * the votes recorded as written (onPersisted). A grant sent before any
   * such write is not recorded, so a leader counting it is caught.
   */
  onVoteGranted(from: SimNode, m: Message): void {
    const v = this.view(from);
    if (v.durableTerm > m.term) this.recordVote(m.term, from.id, m.to);
  }

  private recordVote(term: number, voter: NodeId, candidate: NodeId): void {
    let byVoter = this.votes.get(term);
    if (!byVoter) {
      byVoter = new Map();
      this.votes.set(term, byVoter);
    }
    byVoter.set(voter, candidate);
  }

  /** A write finished (fully, or the first `records` records of it when torn by a crash). */
  onPersisted(node: SimNode, rd: Ready, records: number): void {
    const v = this.view(node);
    let left = records;
    if (rd.snapshot && left > 0) {
      left--;
      const { index, term } = rd.snapshot.metadata;
      if (index < this.committedTerms.length && this.committedTerms[index] !== term) {
        throw new SafetyViolation(
          'state-machine-safety',
          `node ${node.id} installed a snapshot at ${index}@${term}, but the entry committed there has term ${this.committedTerms[index]}`,
        );
      }
    }
    const n = Math.min(left, rd.entries.length);
    left -= n;
    for (let k = 0; k < n; k++) {
      const e = rd.entries[k]!;
      const prevTerm = k > 0 ? rd.entries[k - 1]!.term : node.storage.term(e.index - 1);
      this.registerWritten(node.id, e, prevTerm);
    }
    if (rd.hardState && left > 0) {
      const hs = rd.hardState;
      if (hs.term < v.durableTerm) {
        throw new SafetyViolation('durable-state', `node ${node.id} persisted term ${hs.term} after term ${v.durableTerm}`);
      }
      if (hs.term === v.durableTerm && v.durableVote !== 0 && hs.vote !== v.durableVote) {
        throw new SafetyViolation(
          'durable-state',
          `node ${node.id} changed its persisted vote in term ${hs.term} from ${v.durableVote} to ${hs.vote}`,
        );
      }
      if (hs.commit < v.durableCommit) {
        throw new SafetyViolation('durable-state', `node ${node.id} persisted commit ${hs.commit} after ${v.durableCommit}`);
      }
      v.durableTerm = hs.term;
      v.durableVote = hs.vote;
      v.durableCommit = hs.commit;
      if (hs.vote !== 0) this.recordVote(hs.term, node.id, hs.vote);
    }
  }

  /**
   * Log Matching, inductively: an (index, term) always carries the same
   * command and follows the same term at index - 1, in every log it ever
   * appears in. Hence logs sharing an (index, term) share everything before.
   */
  private registerWritten(node: NodeId, e: Entry, prevTerm: number): void {
    const hash = fingerprint(e.data);
    let list = this.written.get(e.index);
    if (!list) {
      list = [];
      this.written.set(e.index, list);
    }
    for (const r of list) {
      if (r.term !== e.term) continue;
      if (r.hash !== hash || r.prevTerm !== prevTerm) {
        throw new SafetyViolation(
          'log-matching',
          `node ${node} wrote entry ${e.index}@${e.term} (after term ${prevTerm}) that differs from another log's ` +
            `${e.index}@${e.term} (after term ${r.prevTerm})`,
        );
      }
      return;
    }
    list.push({ term: e.term, hash, prevTerm });
  }

  /** A node applied an entry, with this effect on its state machine. */
  onApplied(node: SimNode, e: Entry, command: AppliedCommand): void {
    const v = this.view(node);
    const r = node.raw!.raft;
    if (e.index !== v.appliedIndex + 1) {
      throw new SafetyViolation(
        'state-machine-safety',
        `node ${node.id} applied index ${e.index} after ${v.appliedIndex}: entries must be applied once, in order`,
      );
    }
    if (e.index > r.raftLog.committed) {
      throw new SafetyViolation(
        'state-machine-safety',
        `node ${node.id} applied index ${e.index} beyond its commit index ${r.raftLog.committed}`,
      );
    }
    v.appliedIndex = e.index;
    const entry: AppliedEntry = { term: e.term, hash: fingerprint(e.data), command };
    const seen = this.applied[e.index];
    if (seen) {
      if (seen.term !== entry.term || seen.hash !== entry.hash) {
        throw new SafetyViolation(
          'state-machine-safety',
          `node ${node.id} applied ${e.index}@${e.term} but another node applied ${e.index}@${seen.term} there`,
        );
      }
      if (seen.command.effect !== command.effect) {
        throw new SafetyViolation(
          'exactly-once',
          `command ${command.key} at ${e.index} was ${command.effect} on node ${node.id} but ${seen.command.effect} ` +
            'on another node: the session tables diverged',
        );
      }
      return;
    }
    while (this.applied.length < e.index) this.applied.push(undefined);
    this.applied[e.index] = entry;
    if (command.key !== undefined && command.effect === 'applied') {
      const before = this.effectiveAt.get(command.key);
      if (before !== undefined) {
        throw new SafetyViolation(
          'exactly-once',
          `command ${command.key} (session:seq) took effect twice: at index ${before} and again at ${e.index}`,
        );
      }
      this.effectiveAt.set(command.key, e.index);
    }
  }

  /**
   * A read was given its read index. Everything committed anywhere when the
   * read arrived must be at or below it: the leader confirmed it was still
   * the leader after the read arrived, so no other leader could have
   * committed anything it does not know of (diss. §6.4).
   */
  onReadIndex(node: SimNode, context: string, index: number, committedOnArrival: number): void {
    if (index < committedOnArrival) {
      throw new SafetyViolation(
        'read-index',
        `node ${node.id} got read index ${index} for read ${context}, which arrived when ${committedOnArrival} ` +
          'was already committed: a stale read',
      );
    }
  }

  onSnapshotInstalled(node: SimNode, index: number): void {
    const v = this.view(node);
    if (index <= v.appliedIndex) {
      throw new SafetyViolation(
        'state-machine-safety',
        `node ${node.id} installed a snapshot at ${index}, not beyond its applied index ${v.appliedIndex}`,
      );
    }
    v.appliedIndex = index;
  }

  /** A client received an answer to a write it ran in `session`. */
  onWriteAcknowledged(session: number, seq: number): void {
    const command = `${session}:${seq}`;
    const at = this.effectiveAt.get(command);
    if (at === undefined) {
      throw new SafetyViolation('acknowledged-write-lost', `write ${command} was acknowledged but never took effect`);
    }
    this.acknowledged.set(command, at);
  }

  /** The highest index at which an acknowledged write took effect. */
  maxAcknowledgedIndex(): number {
    let max = 0;
    for (const i of this.acknowledged.values()) if (i > max) max = i;
    return max;
  }

  /** Checks the node an event touched. */
  afterEvent(node: SimNode): void {
    if (!node.up) return;
    const r = node.raw!.raft;
    const v = this.view(node);
    const log = r.raftLog;
    if (r.term < v.term) {
      throw new SafetyViolation('monotonic-state', `node ${node.id} went from term ${v.term} back to ${r.term}`);
    }
    if (log.committed < v.commit) {
      throw new SafetyViolation('monotonic-state', `node ${node.id} commit went back from ${v.commit} to ${log.committed}`);
    }
    if (log.committed > v.commit || log.committed >= this.committedTerms.length) {
      this.recordCommitted(node, v.commit, log.committed);
    }
    v.term = r.term;
    v.commit = log.committed;
    if (r.state === 'leader') this.checkLeader(node, v);
  }

  /**
   * Called right after each call into a node's core (tick, step, a request,
   * applyConfChange, advance): whatever it decided (a won election, a new
   * commit index) was decided under the configuration it has now, since the
   * configuration only changes inside applyConfChange. Check the decision
   * against that configuration.
   */
  onDecisions(node: SimNode): void {
    if (!node.up) return;
    const r = node.raw!.raft;
    const v = this.view(node);
    // Record newly committed entries now, before they are applied and
    // perhaps compacted away within the same event.
    if (r.raftLog.committed >= this.committedTerms.length) this.recordCommitted(node, v.commit, r.raftLog.committed);
    if (r.state !== 'leader') {
      v.readyLeaderTerm = 0;
      return;
    }
    const committed = r.raftLog.committed;
    if (v.readyLeaderTerm !== r.term || v.readyIncarnation !== node.incarnation) {
      this.checkElection(node);
    } else if (committed > v.readyCommit) {
      this.checkCommitment(node, committed);
    }
    v.readyLeaderTerm = r.term;
    v.readyIncarnation = node.incarnation;
    v.readyCommit = committed;
  }

  /**
   * A leader just advanced its commit index to `index`: the entry there must
   * be of its term (earlier entries are committed only through one of its
   * own, §5.4.2), and durably stored on a majority of each voter set of its
   * configuration (in joint consensus, of C_old and of C_new).
   */
  private checkCommitment(node: SimNode, index: number): void {
    const r = node.raw!.raft;
    const term = r.raftLog.term(index);
    if (term !== r.term) {
      throw new SafetyViolation(
        'commit-rule',
        `leader ${node.id} of term ${r.term} committed up to ${index}@${term}, an entry of an earlier term, by counting replicas`,
      );
    }
    const stores = (id: NodeId) => {
      const disk = this.nodes.get(id)?.storage;
      if (!disk) return false;
      if (index <= disk.snapshotIndex()) return true; // covered by a snapshot: committed before
      return index <= disk.lastIndex() && disk.term(index) === term;
    };
    this.requireQuorum(node, 'committed', `${index}@${term}`, stores);
  }

  /** A node just became leader: a majority of each voter set must have durably voted for it in this term. */
  private checkElection(node: SimNode): void {
    const r = node.raw!.raft;
    const byVoter = this.votes.get(r.term);
    // The leader's own vote is counted as cast (a single voter elects itself before its write completes).
    const votedFor = (id: NodeId) => id === node.id || byVoter?.get(id) === node.id;
    this.requireQuorum(node, 'was elected in term ' + r.term, 'with durable votes', votedFor);
  }

  private requireQuorum(node: SimNode, what: string, detail: string, has: (id: NodeId) => boolean): void {
    const voters = node.raw!.raft.prs.config.voters;
    for (const half of [voters.incoming, voters.outgoing]) {
      if (half.size === 0) continue;
      const yes = half.ids.filter(has);
      if (yes.length <= half.size / 2) {
        throw new SafetyViolation(
          'quorum',
          `leader ${node.id} ${what} ${detail} from only {${yes.join(',')}} of voters (${half.ids.join(' ')})` +
            (voters.isJoint ? ` in joint configuration ${voters}` : ''),
        );
      }
    }
  }

  /**
   * Checks the node's newly committed entries against what others committed
   * there, and extends the record of committed terms as far as this node's
   * log reaches. (The record must grow from wherever the first node to
   * commit an index finds it: entries committed at start-up, such as the
   * bootstrap configuration, are never "newly" committed by anyone.)
   */
  private recordCommitted(node: SimNode, from: number, to: number): void {
    const log = node.raw!.raft.raftLog;
    const ts = this.committedTerms;
    for (let i = from + 1; i <= Math.min(to, ts.length - 1); i++) {
      const t = log.termOrUndefined(i);
      if (t !== undefined && t !== ts[i]) {
        throw new SafetyViolation(
          'state-machine-safety',
          `node ${node.id} committed ${i}@${t}, but ${i}@${ts[i]} was committed before`,
        );
      }
    }
    const now = node.raw!.raft.term;
    for (let i = ts.length; i <= to; i++) {
      const t = log.termOrUndefined(i);
      if (t === undefined) break; // compacted here: another node's log will fill it in
      ts.push(t);
      this.commitTerms.push(Math.max(now, this.commitTerms[i - 1]!));
    }
  }

  private checkLeader(node: SimNode, v: NodeView): void {
    const r = node.raw!.raft;
    const log = r.raftLog;
    const other = this.leaderByTerm.get(r.term);
    if (other !== undefined && other !== node.id) {
      throw new SafetyViolation('election-safety', `nodes ${other} and ${node.id} are both leaders of term ${r.term}`);
    }
    this.leaderByTerm.set(r.term, node.id);

    // Append-only: the entry that was last when we last looked is still there, unchanged.
    if (v.leaderTerm === r.term && v.leaderIncarnation === node.incarnation) {
      const stillThere = v.leaderLastIndex < log.firstIndex() - 1 || log.termOrUndefined(v.leaderLastIndex) === v.leaderLastTerm;
      if (log.lastIndex() < v.leaderLastIndex || !stillThere) {
        throw new SafetyViolation(
          'leader-append-only',
          `leader ${node.id} of term ${r.term} had ${v.leaderLastIndex}@${v.leaderLastTerm}, now its log ends at ` +
            `${log.lastIndex()} with ${v.leaderLastIndex}@${log.termOrUndefined(v.leaderLastIndex)}`,
        );
      }
    }
    v.leaderTerm = r.term;
    v.leaderIncarnation = node.incarnation;
    v.leaderLastIndex = log.lastIndex();
    v.leaderLastTerm = log.lastTerm();

    // Completeness: every entry committed in an earlier term is in this leader's log (§5.4).
    const i = this.lastCommittedBefore(r.term);
    if (i > 0 && i >= log.firstIndex() - 1) {
      const t = log.termOrUndefined(i);
      if (t !== this.committedTerms[i]) {
        throw new SafetyViolation(
          'leader-completeness',
          `leader ${node.id} of term ${r.term} lacks committed entry ${i}@${this.committedTerms[i]} ` +
            `(its log has ${t === undefined ? 'nothing' : `term ${t}`} there, last index ${log.lastIndex()})`,
        );
      }
    }
  }

  /** The last index committed in a term below `term` (commit terms grow with the index). */
  private lastCommittedBefore(term: number): number {
    const ts = this.commitTerms;
    let lo = 0;
    let hi = ts.length - 1;
    if (ts[hi]! < term) return hi;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ts[mid]! < term) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
