// The visualiser's guided stories: each a seed and a script that waits for
// a condition, acts (a crash, a partition, a request...) and shows a caption
// naming the rule at work. The sandbox (src/sim/sandbox.ts) checks the next
// step's condition after every event, so a story plays the same way
// however the page paces it. Where a mechanism would hang on a timer race,
// the script forces it (a crash at the right moment, a campaign), so that
// every story shows its mechanism whatever the election timers draw.

import type { Message, NodeId } from '../raft/types.js';
import type { ClientRequestView, StoryInfo } from '../ui/view.js';
import { decodeEntry } from './kv.js';
import type { KvInput } from './linearizability.js';
import type { SimNode } from './node.js';

/** What a story's steps see and do (implemented by the sandbox; story actions are not recorded as user actions). */
export interface StoryContext {
  /** Simulated ms since the previous step fired. */
  readonly elapsed: number;
  /** Values a step remembers for later steps (node ids, indexes). */
  readonly vars: Record<string, number>;
  node(id: NodeId): SimNode;
  /** The running node leading in the highest term. */
  leader(): NodeId | undefined;
  /** A message delivered since the previous step fired that matches. */
  seen(match: (m: Message) => boolean): Message | undefined;
  membersNow(): readonly NodeId[];
  requestStatus(id: number): ClientRequestView | undefined;
  storyCrash(id: NodeId): void;
  storyRestart(id: NodeId): void;
  storyIsolate(ids: readonly NodeId[]): void;
  storyHeal(): void;
  storyRequest(input: KvInput, to?: NodeId): number;
  storySnapshot(id: NodeId): void;
  storyCampaign(id: NodeId): void;
  /** Adds a new node as a learner and, once caught up, swaps it in for `old` in one joint change; returns its id. */
  storyAddLearnerAndReplace(old: NodeId): NodeId;
}

export interface StoryStep {
  /** The step fires once the previous one has and this holds (checked after every event). */
  readonly when: (c: StoryContext) => boolean;
  /** Done when the step fires, before its caption is taken. */
  readonly act?: (c: StoryContext) => void;
  readonly caption: (c: StoryContext) => string;
}

export interface Story extends StoryInfo {
  readonly seed: number;
  readonly nodes: number;
  readonly steps: readonly StoryStep[];
}

// ---------------------------------------------------------------------------
// What steps ask about the cluster

const n = (id: number | undefined) => `n${id}`;

function raftOf(c: StoryContext, id: NodeId) {
  const node = c.node(id);
  return node.up ? node.raw!.raft : undefined;
}

/** A leader that has committed an entry of its own term (its no-op, §8): it knows what is committed. */
function settledLeader(c: StoryContext): NodeId | undefined {
  const id = c.leader();
  if (id === undefined) return undefined;
  const r = raftOf(c, id)!;
  return r.raftLog.termOrUndefined(r.raftLog.committed) === r.term ? id : undefined;
}

/** The running members, the leader excluded, highest id first (the story's victim). */
function followers(c: StoryContext, leader: NodeId): NodeId[] {
  return c
    .membersNow()
    .filter((id) => id !== leader && c.node(id).up)
    .sort((a, b) => b - a);
}

/** The index of the last entry in the node's log carrying an operation on `key`, if any. */
function opIndex(c: StoryContext, id: NodeId, key: string): number | undefined {
  const r = raftOf(c, id);
  if (!r) return undefined;
  const log = r.raftLog;
  for (let i = log.lastIndex(); i >= log.firstIndex(); i--) {
    const e = log.slice(i, i + 1, Infinity)[0]!;
    if (e.type !== 'normal' || e.data.byteLength === 0) continue;
    const cmd = decodeEntry(e.data).cmd;
    if (cmd.kind === 'op' && cmd.input.key === key) return i;
  }
  return undefined;
}

/** How many entries in the node's log carry an operation on `key`. */
function opCount(c: StoryContext, id: NodeId, key: string): number {
  const r = raftOf(c, id);
  if (!r) return 0;
  const log = r.raftLog;
  let count = 0;
  for (const e of log.slice(log.firstIndex(), log.lastIndex() + 1, Infinity)) {
    if (e.type !== 'normal' || e.data.byteLength === 0) continue;
    const cmd = decodeEntry(e.data).cmd;
    if (cmd.kind === 'op' && cmd.input.key === key) count++;
  }
  return count;
}

/** Every running member has applied at least `index`. */
function allApplied(c: StoryContext, index: number): boolean {
  return c.membersNow().every((id) => !c.node(id).up || c.node(id).appliedIndex >= index);
}

/** Every running member's log ends where the leader's does, in its term, and everything is applied. */
function converged(c: StoryContext): boolean {
  const l = c.leader();
  if (l === undefined) return false;
  const lr = raftOf(c, l)!;
  return c.membersNow().every((id) => {
    const r = raftOf(c, id);
    return r === undefined || (r.raftLog.lastIndex() === lr.raftLog.lastIndex() && r.term === lr.term && c.node(id).appliedIndex === lr.raftLog.committed);
  });
}

function ok(c: StoryContext, req: number): boolean {
  return c.requestStatus(req)?.status === 'ok';
}

function stepsOf(...steps: StoryStep[]): readonly StoryStep[] {
  return steps;
}

// ---------------------------------------------------------------------------
// The stories

const firstElection: Story = {
  id: 'first-election',
  title: 'The first election',
  summary: 'Three followers wait for randomized timeouts; the first to time out asks for votes and, with a majority, leads (§5.2).',
  seed: 1,
  nodes: 3,
  steps: stepsOf(
    {
      when: () => true,
      caption: () =>
        'Three nodes start as followers. Each waits a randomized election timeout (200–400 ms here) to hear from a leader (§5.2).',
    },
    {
      when: (c) => c.membersNow().some((id) => raftOf(c, id)?.state === 'candidate'),
      act: (c) => (c.vars.candidate = c.membersNow().find((id) => raftOf(c, id)?.state === 'candidate')!),
      caption: (c) =>
        `${n(c.vars.candidate)}'s timer fires first: it becomes a candidate for term ${raftOf(c, c.vars.candidate!)!.term}, ` +
        'votes for itself and sends RequestVote to the others (§5.2).',
    },
    {
      when: (c) => c.seen((m) => m.type === 'MsgVoteResp' && !m.reject) !== undefined,
      act: (c) => (c.vars.voter = c.seen((m) => m.type === 'MsgVoteResp' && !m.reject)!.from),
      caption: (c) =>
        `${n(c.vars.voter)} grants its vote: it has not voted in this term, and the candidate's log is at least as up-to-date as its own (§5.2, §5.4.1).`,
    },
    {
      when: (c) => c.leader() !== undefined,
      act: (c) => (c.vars.leader = c.leader()!),
      caption: (c) =>
        `With votes from a majority, ${n(c.vars.leader)} is leader of term ${raftOf(c, c.vars.leader!)!.term}; ` +
        'it sends heartbeats at once to assert its leadership (§5.2).',
    },
    {
      when: (c) => settledLeader(c) !== undefined,
      caption: () => 'The leader commits an empty entry of its own term once a majority stores it: now it knows what is committed (§8).',
    },
    {
      when: (c) => c.elapsed >= 500,
      caption: () => 'Heartbeats every 50 ms reset the followers’ election timers, so nobody starts an election while the leader lives (§5.2).',
    },
  ),
};

const replication: Story = {
  id: 'replication',
  title: 'A write replicated, committed and applied',
  summary: 'The leader appends a client command, replicates it with AppendEntries, commits it on a majority and every node applies it (§5.3).',
  seed: 2,
  nodes: 3,
  steps: stepsOf(
    {
      when: (c) => settledLeader(c) !== undefined,
      act: (c) => {
        c.vars.leader = settledLeader(c)!;
        c.vars.req = c.storyRequest({ op: 'set', key: 'x', value: '1' }, c.vars.leader);
      },
      caption: (c) =>
        `${n(c.vars.leader)} leads. A client sends "set x=1" to it, after registering a session so that a retry can be recognised (diss. §6.3).`,
    },
    {
      when: (c) => opIndex(c, c.vars.leader!, 'x') !== undefined,
      act: (c) => (c.vars.index = opIndex(c, c.vars.leader!, 'x')!),
      caption: (c) => `The leader appends set x=1 at index ${c.vars.index} and sends it to every follower in AppendEntries (§5.3).`,
    },
    {
      when: (c) => followers(c, c.vars.leader!).some((id) => opIndex(c, id, 'x') === c.vars.index),
      act: (c) => (c.vars.follower = followers(c, c.vars.leader!).find((id) => opIndex(c, id, 'x') === c.vars.index)!),
      caption: (c) =>
        `${n(c.vars.follower)}'s log matches the leader's at the previous index (the consistency check, §5.3): it appends the entry and acknowledges.`,
    },
    {
      when: (c) => raftOf(c, c.vars.leader!)!.raftLog.committed >= c.vars.index!,
      caption: (c) => `Stored on a majority, index ${c.vars.index} is committed; the leader applies it and answers the client (§5.3).`,
    },
    {
      when: (c) => ok(c, c.vars.req!) && allApplied(c, c.vars.index!),
      caption: () => 'The followers learn the commit index from the next AppendEntries and apply the entry too: every state machine has x=1 (§5.3).',
    },
  ),
};

const leaderCrash: Story = {
  id: 'leader-crash',
  title: 'The leader crashes and a new one is elected',
  summary: 'When heartbeats stop, a follower times out and wins an election; the new leader holds every committed entry (§5.2, §5.4).',
  seed: 3,
  nodes: 3,
  steps: stepsOf(
    {
      when: (c) => settledLeader(c) !== undefined,
      act: (c) => {
        c.vars.old = settledLeader(c)!;
        c.vars.req = c.storyRequest({ op: 'set', key: 'x', value: '1' }, c.vars.old);
      },
      caption: (c) => `${n(c.vars.old)} leads term ${raftOf(c, c.vars.old!)!.term}; a client writes x=1.`,
    },
    {
      when: (c) => ok(c, c.vars.req!) && allApplied(c, raftOf(c, c.vars.old!)!.raftLog.committed),
      act: (c) => {
        c.vars.oldTerm = raftOf(c, c.vars.old!)!.term;
        c.storyCrash(c.vars.old!);
      },
      caption: (c) => `x=1 is committed. Now ${n(c.vars.old)} crashes: its heartbeats stop.`,
    },
    {
      when: (c) => c.membersNow().some((id) => raftOf(c, id)?.state === 'candidate'),
      act: (c) => (c.vars.candidate = c.membersNow().find((id) => raftOf(c, id)?.state === 'candidate')!),
      caption: (c) =>
        `${n(c.vars.candidate)} hears nothing for its election timeout: it becomes a candidate for term ${raftOf(c, c.vars.candidate!)!.term} (§5.2).`,
    },
    {
      when: (c) => c.leader() !== undefined && c.leader() !== c.vars.old,
      act: (c) => (c.vars.leader = c.leader()!),
      caption: (c) =>
        `${n(c.vars.leader)} wins with a majority of the three. Its log holds x=1, as every later leader's must (Leader Completeness, §5.4).`,
    },
    {
      when: (c) => c.elapsed >= 300,
      act: (c) => c.storyRestart(c.vars.old!),
      caption: (c) => `${n(c.vars.old)} restarts; the new leader's first message carries a higher term, so it becomes a follower (§5.1).`,
    },
    {
      when: (c) => converged(c),
      caption: (c) => `${n(c.vars.old)} catches up from the new leader: every log agrees again.`,
    },
  ),
};

const nextIndexBackoff: Story = {
  id: 'next-index',
  title: 'A follower that fell behind is repaired',
  summary: 'The leader sends a lagging follower entries it cannot place; the follower rejects, and the leader backs nextIndex off until the logs match (§5.3).',
  seed: 4,
  nodes: 3,
  steps: stepsOf(
    {
      when: (c) => settledLeader(c) !== undefined,
      act: (c) => {
        c.vars.leader = settledLeader(c)!;
        c.vars.req = c.storyRequest({ op: 'set', key: 'a', value: '1' }, c.vars.leader);
      },
      caption: (c) => `${n(c.vars.leader)} leads. For each follower it keeps nextIndex, the next entry to send it (§5.3).`,
    },
    {
      when: (c) => ok(c, c.vars.req!) && allApplied(c, raftOf(c, c.vars.leader!)!.raftLog.committed),
      act: (c) => {
        c.vars.lagging = followers(c, c.vars.leader!)[0]!;
        c.storyCrash(c.vars.lagging);
        c.vars.r1 = c.storyRequest({ op: 'set', key: 'b', value: '2' }, c.vars.leader);
        c.vars.r2 = c.storyRequest({ op: 'set', key: 'c', value: '3' }, c.vars.leader);
        c.vars.r3 = c.storyRequest({ op: 'set', key: 'd', value: '4' }, c.vars.leader);
      },
      caption: (c) =>
        `${n(c.vars.lagging)} crashes. The leader keeps sending it new entries, advancing its nextIndex optimistically as etcd does; they are all lost.`,
    },
    {
      when: (c) => ok(c, c.vars.r1!) && ok(c, c.vars.r2!) && ok(c, c.vars.r3!),
      act: (c) => {
        c.vars.sentNext = raftOf(c, c.vars.leader!)!.prs.progress.get(c.vars.lagging!)!.nextIndex;
        c.vars.laggingLast = c.node(c.vars.lagging!).storage.lastIndex();
        c.storyRestart(c.vars.lagging!);
      },
      caption: (c) =>
        `The other two commit three writes. ${n(c.vars.lagging)} restarts with its log ending at ${c.vars.laggingLast}, ` +
        `but the leader's nextIndex for it is ${c.vars.sentNext}.`,
    },
    {
      when: (c) => c.seen((m) => m.type === 'MsgAppResp' && m.reject && m.from === c.vars.lagging) !== undefined,
      act: (c) => (c.vars.backedOff = raftOf(c, c.vars.leader!)!.prs.progress.get(c.vars.lagging!)!.nextIndex),
      caption: (c) => {
        const m = c.seen((x) => x.type === 'MsgAppResp' && x.reject && x.from === c.vars.lagging)!;
        return (
          `${n(c.vars.lagging)} rejects the append: it has no entry at index ${m.index} (the consistency check, §5.3). ` +
          `The leader moves nextIndex back to ${c.vars.backedOff}, using the follower's hint to skip ahead (etcd's faster backoff), and retries.`
        );
      },
    },
    {
      when: (c) => converged(c),
      caption: (c) => `From nextIndex ${c.vars.backedOff} the logs match: ${n(c.vars.lagging)} appends the missing entries and applies them. Repaired.`,
    },
  ),
};

const upToDate: Story = {
  id: 'up-to-date',
  title: 'A stale node cannot win',
  summary: 'A node that missed committed entries campaigns in a higher term, but voters refuse a candidate whose log is behind theirs (§5.4.1).',
  seed: 5,
  nodes: 3,
  steps: stepsOf(
    {
      when: (c) => settledLeader(c) !== undefined,
      act: (c) => {
        c.vars.leader = settledLeader(c)!;
        c.vars.stale = followers(c, c.vars.leader)[0]!;
        c.storyCrash(c.vars.stale);
        c.vars.r1 = c.storyRequest({ op: 'set', key: 'x', value: '1' }, c.vars.leader);
        c.vars.r2 = c.storyRequest({ op: 'set', key: 'y', value: '2' }, c.vars.leader);
      },
      caption: (c) => `${n(c.vars.leader)} leads. ${n(c.vars.stale)} crashes, and the other two commit two writes without it.`,
    },
    {
      when: (c) => ok(c, c.vars.r1!) && ok(c, c.vars.r2!),
      act: (c) => {
        c.storyRestart(c.vars.stale!);
        c.storyCampaign(c.vars.stale!);
        c.vars.staleTerm = raftOf(c, c.vars.stale!)!.term;
      },
      caption: (c) =>
        `${n(c.vars.stale)} restarts and, before hearing from the leader, its election timer fires: it asks for votes in term ${c.vars.staleTerm}.`,
    },
    {
      when: (c) => c.seen((m) => m.type === 'MsgVoteResp' && m.reject && m.to === c.vars.stale) !== undefined,
      act: (c) => (c.vars.refuser = c.seen((m) => m.type === 'MsgVoteResp' && m.reject && m.to === c.vars.stale)!.from),
      caption: (c) =>
        `§5.4.1: ${n(c.vars.stale)}'s log is behind, so ${n(c.vars.refuser)} refuses its vote: a leader must hold every committed entry. ` +
        `${n(c.vars.stale)} cannot win.`,
    },
    {
      when: (c) => c.leader() !== undefined && c.leader() !== c.vars.stale && raftOf(c, c.leader()!)!.term >= c.vars.staleTerm!,
      act: (c) => (c.vars.newLeader = c.leader()!),
      caption: (c) =>
        `The higher term made ${n(c.vars.leader)} step down (§5.1), but a node with an up-to-date log wins the next election: ` +
        `${n(c.vars.newLeader)}, term ${raftOf(c, c.vars.newLeader!)!.term}.`,
    },
    {
      when: (c) => converged(c),
      caption: (c) => `${n(c.vars.stale)} follows the new leader and receives the entries it missed.`,
    },
  ),
};

const partition: Story = {
  id: 'partition',
  title: 'A partition: the minority cannot commit',
  summary: 'Cut off with a minority, the old leader cannot commit; the majority elects a leader that can. On healing, the old leader steps down (§5.2, §5.3).',
  seed: 6,
  nodes: 5,
  steps: stepsOf(
    {
      when: (c) => settledLeader(c) !== undefined,
      act: (c) => {
        c.vars.old = settledLeader(c)!;
        c.vars.r0 = c.storyRequest({ op: 'set', key: 'a', value: '0' }, c.vars.old);
      },
      caption: (c) => `${n(c.vars.old)} leads term ${raftOf(c, c.vars.old!)!.term}; a client registers its session and writes a=0.`,
    },
    {
      when: (c) => ok(c, c.vars.r0!),
      act: (c) => {
        c.vars.buddy = followers(c, c.vars.old!)[0]!;
        c.storyIsolate([c.vars.old!, c.vars.buddy]);
        c.vars.r1 = c.storyRequest({ op: 'set', key: 'x', value: '1' }, c.vars.old);
      },
      caption: (c) =>
        `A partition cuts ${n(c.vars.old)} and ${n(c.vars.buddy)} off from the other three. ` +
        `The client sends "set x=1" to ${n(c.vars.old)}, which still believes it leads.`,
    },
    {
      when: (c) => opIndex(c, c.vars.old!, 'x') !== undefined && c.elapsed >= 100,
      act: (c) => {
        c.vars.xIndex = opIndex(c, c.vars.old!, 'x')!;
        c.vars.oldCommit = raftOf(c, c.vars.old!)!.raftLog.committed;
      },
      caption: (c) =>
        `${n(c.vars.old)} appends set x=1 at index ${c.vars.xIndex}, but only ${n(c.vars.buddy)} can store it: 2 of 5 is no majority, ` +
        `so it stays uncommitted (§5.3). No split brain.`,
    },
    {
      when: (c) => c.leader() !== undefined && c.leader() !== c.vars.old,
      act: (c) => {
        c.vars.leader = c.leader()!;
        c.vars.r2 = c.storyRequest({ op: 'set', key: 'y', value: '2' }, c.vars.leader);
      },
      caption: (c) =>
        `The majority side hears no heartbeats and elects ${n(c.vars.leader)} for term ${raftOf(c, c.vars.leader!)!.term} (§5.2). ` +
        'Two leaders, in different terms; a client writes y=2 to the new one.',
    },
    {
      when: (c) => ok(c, c.vars.r2!),
      act: (c) => (c.vars.oldCommitLater = raftOf(c, c.vars.old!)!.raftLog.committed),
      caption: (c) =>
        `${n(c.vars.leader)} commits y=2 with 3 of 5. ${n(c.vars.old)}'s commit index is still ${c.vars.oldCommitLater}: ` +
        'only one side can commit.',
    },
    {
      when: (c) => c.elapsed >= 500,
      act: (c) => c.storyHeal(),
      caption: () => 'The partition heals.',
    },
    {
      when: (c) => raftOf(c, c.vars.old!)?.state === 'follower' && raftOf(c, c.vars.old!)!.term >= raftOf(c, c.vars.leader!)!.term,
      caption: (c) =>
        `${n(c.vars.old)} sees the higher term and steps down (§5.1); the new leader's log overwrites its uncommitted entries (§5.3).`,
    },
    {
      when: (c) => converged(c) && ok(c, c.vars.r1!),
      caption: () => 'The client got no answer for x=1 and retried it with the same id: the majority committed it, once. All logs agree.',
    },
  ),
};

const snapshot: Story = {
  id: 'snapshot',
  title: 'A snapshot installed on a lagging follower',
  summary: 'The leader has compacted the entries a returning follower needs, so it sends its snapshot instead (InstallSnapshot, §7).',
  seed: 7,
  nodes: 3,
  steps: stepsOf(
    {
      when: (c) => settledLeader(c) !== undefined,
      act: (c) => {
        c.vars.leader = settledLeader(c)!;
        c.vars.lagging = followers(c, c.vars.leader)[0]!;
        c.storyCrash(c.vars.lagging);
        c.vars.r1 = c.storyRequest({ op: 'set', key: 'x', value: '1' }, c.vars.leader);
        c.vars.r2 = c.storyRequest({ op: 'set', key: 'y', value: '2' }, c.vars.leader);
        c.vars.r3 = c.storyRequest({ op: 'inc', key: 'z' }, c.vars.leader);
      },
      caption: (c) => `${n(c.vars.leader)} leads. ${n(c.vars.lagging)} crashes; meanwhile the others commit three writes.`,
    },
    {
      when: (c) => ok(c, c.vars.r1!) && ok(c, c.vars.r2!) && ok(c, c.vars.r3!) && allApplied(c, raftOf(c, c.vars.leader!)!.raftLog.committed),
      act: (c) => {
        c.storySnapshot(c.vars.leader!);
        c.vars.snapIndex = c.node(c.vars.leader!).storage.snapshotIndex();
      },
      caption: (c) =>
        `The leader snapshots its state machine at index ${c.vars.snapIndex} and discards the log up to it (§7): ` +
        `the entries ${n(c.vars.lagging)} misses are gone.`,
    },
    {
      when: (c) => c.elapsed >= 200,
      act: (c) => c.storyRestart(c.vars.lagging!),
      caption: (c) => `${n(c.vars.lagging)} restarts, its log ending at ${c.node(c.vars.lagging!).storage.lastIndex()}.`,
    },
    {
      when: (c) => c.seen((m) => m.type === 'MsgSnap' && m.to === c.vars.lagging) !== undefined,
      caption: (c) => `The leader cannot send entries it no longer has, so it sends its snapshot: InstallSnapshot to ${n(c.vars.lagging)} (§7).`,
    },
    {
      when: (c) => c.node(c.vars.lagging!).storage.snapshotIndex() >= c.vars.snapIndex! && converged(c),
      caption: (c) =>
        `${n(c.vars.lagging)} installs it: its state machine jumps to index ${c.node(c.vars.lagging!).storage.snapshotIndex()}, ` +
        'and the entries after it follow by AppendEntries.',
    },
  ),
};

const jointConsensus: Story = {
  id: 'joint',
  title: 'A membership change through joint consensus',
  summary: 'Replacing a voter in one step goes through C_old,new, where decisions need majorities of both configurations, then C_new (§6).',
  seed: 8,
  nodes: 3,
  steps: stepsOf(
    {
      when: (c) => settledLeader(c) !== undefined,
      act: (c) => {
        c.vars.leader = settledLeader(c)!;
        c.vars.old = followers(c, c.vars.leader)[0]!;
        c.vars.added = c.storyAddLearnerAndReplace(c.vars.old);
      },
      caption: (c) =>
        `To replace ${n(c.vars.old)} by a new node ${n(c.vars.added)}, ${n(c.vars.added)} first joins as a learner: ` +
        'it receives the log but does not vote while it catches up (diss. §4.2.1).',
    },
    {
      when: (c) => raftOf(c, c.vars.leader!)?.prs.config.learners.has(c.vars.added!) === true,
      caption: (c) => `The learner is in the configuration; ${n(c.vars.added)} catches up from the leader.`,
    },
    {
      when: (c) => raftOf(c, c.vars.leader!)?.prs.config.voters.isJoint === true,
      act: (c) => {
        const v = raftOf(c, c.vars.leader!)!.prs.config.voters;
        c.vars.jointSeen = 1;
        c.vars.jointOld = v.outgoing.ids.length;
        c.vars.jointNew = v.incoming.ids.length;
      },
      caption: (c) => {
        const v = raftOf(c, c.vars.leader!)!.prs.config.voters;
        const list = (ids: readonly number[]) => `(${[...ids].sort().map(n).join(' ')})`;
        return (
          `${n(c.vars.added)} has caught up. One change, add ${n(c.vars.added)} and remove ${n(c.vars.old)}, enters the joint configuration ` +
          `C_old,new = ${list(v.outgoing.ids)}&&${list(v.incoming.ids)}: elections and commits need a majority of both (§6).`
        );
      },
    },
    {
      when: (c) => {
        const v = raftOf(c, c.vars.leader!)?.prs.config.voters;
        return v !== undefined && !v.isJoint && v.ids().includes(c.vars.added!);
      },
      caption: (c) => {
        const ids = raftOf(c, c.vars.leader!)!.prs.config.voters.ids();
        return `C_old,new is committed, so the leader proposes C_new = (${ids.map(n).join(' ')}) by itself; once it commits, C_old has no say (§6).`;
      },
    },
    {
      when: (c) => !c.membersNow().includes(c.vars.old!),
      caption: (c) => `${n(c.vars.old)} is no longer in the configuration and shuts down. The cluster is ${c.membersNow().map(n).join(', ')}.`,
    },
  ),
};

const retryOnce: Story = {
  id: 'retry',
  title: 'A request retried after a crash is applied once',
  summary: 'A client retries a request whose leader crashed; the state machine recognises the retry by its session and sequence number (diss. §6.3).',
  seed: 9,
  nodes: 3,
  steps: stepsOf(
    {
      when: (c) => settledLeader(c) !== undefined,
      act: (c) => {
        c.vars.old = settledLeader(c)!;
        c.vars.req = c.storyRequest({ op: 'inc', key: 'x' }, c.vars.old);
      },
      caption: (c) => `A client asks ${n(c.vars.old)}, the leader, to increment x. The request carries its session and a sequence number (diss. §6.3).`,
    },
    {
      when: (c) => followers(c, c.vars.old!).some((id) => opIndex(c, id, 'x') !== undefined),
      act: (c) => {
        c.vars.follower = followers(c, c.vars.old!).find((id) => opIndex(c, id, 'x') !== undefined)!;
        c.storyCrash(c.vars.old!);
      },
      caption: (c) =>
        `${n(c.vars.follower)} has stored the entry, but ${n(c.vars.old)} crashes before it hears so: it never answers the client.`,
    },
    {
      when: (c) => c.leader() !== undefined,
      act: (c) => (c.vars.leader = c.leader()!),
      caption: (c) =>
        `${n(c.vars.leader)} is elected with a log that holds the entry (§5.4.1), and commits it with its own first entry (§5.4.2).`,
    },
    {
      when: (c) => (c.requestStatus(c.vars.req!)?.attempts ?? 0) >= 2,
      caption: () => 'The client, still without an answer, times out and sends the same request, same id, to another node.',
    },
    {
      when: (c) => ok(c, c.vars.req!) && converged(c),
      act: (c) => (c.vars.copies = opCount(c, c.vars.leader!, 'x')),
      caption: (c) =>
        (c.vars.copies! > 1 ? `The retry became a second log entry, but the ` : 'The ') +
        `state machine knows this session already applied this sequence number: it answers with the saved result and x is ${c.node(c.vars.leader!).sm.read('x')}, not 2.`,
    },
    {
      when: (c) => c.elapsed >= 200,
      act: (c) => c.storyRestart(c.vars.old!),
      caption: (c) => `${n(c.vars.old)} restarts and catches up: every replica applied the increment exactly once.`,
    },
    {
      when: (c) => converged(c),
      caption: (c) => `x = ${c.node(c.vars.old!).sm.read('x')} on ${n(c.vars.old)} too.`,
    },
  ),
};

/** The guided stories, in the order the page lists them. */
export const STORIES: readonly Story[] = [
  firstElection,
  replication,
  leaderCrash,
  nextIndexBackoff,
  upToDate,
  partition,
  snapshot,
  jointConsensus,
  retryOnce,
];

export function findStory(id: string): Story | undefined {
  return STORIES.find((s) => s.id === id);
}
