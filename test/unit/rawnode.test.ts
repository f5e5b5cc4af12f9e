// RawNode (src/raft/rawNode.ts): the Ready contract between the core and
// the application — what to persist, what may be sent before and only after
// persisting (Figure 2; diss. §10.2.1), what to apply, and advance().

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodeConfChange } from '../../src/raft/confchange.js';
import { InvalidMessageError, ProposalDroppedError, UsageError } from '../../src/raft/errors.js';
import { type Ready, RawNode, bootstrapState } from '../../src/raft/rawNode.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import {
  type ConfState,
  type Entry,
  type Message,
  type MessageType,
  canSendBeforePersist,
  isResponseMessage,
  message,
} from '../../src/raft/types.js';
import { ManualCluster } from '../../src/sim/manual.js';
import { Random } from '../../src/sim/random.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (e: Entry) => new TextDecoder().decode(e.data);
const types = (ms: readonly Message[]) => ms.map((m) => `${m.type} ${m.from}>${m.to}`).sort();

/**
 * Finishes a Ready taken by hand from a node of a ManualCluster, as the
 * cluster itself would: persist, queue every message, apply, advance.
 */
function finish(c: ManualCluster, id: number, rd: Ready): void {
  const node = c.node(id);
  const raw = c.raw(id);
  if (rd.snapshot) node.storage.applySnapshot(rd.snapshot);
  node.storage.append(rd.entries);
  if (rd.hardState) node.storage.setHardState(rd.hardState);
  c.pending.push(...rd.messages, ...rd.messagesAfterPersist);
  for (const e of rd.committedEntries) {
    if (e.type === 'confChange') node.confState = raw.applyConfChange(decodeConfChange(e.data));
    node.applied.push(e);
  }
  raw.advance(rd);
}

/** A 3-node cluster with node 1 elected and everything settled. */
function threeWithLeader(config = {}): ManualCluster {
  const c = ManualCluster.withVoters(3, config);
  c.campaign(1);
  c.stabilize();
  assert.equal(c.leader(), 1);
  return c;
}

/** A standalone node whose storage holds a snapshot (index 1, term 1) with configuration `cs`. */
function nodeWithConf(id: number, cs: ConfState, config: { preVote?: boolean } = {}): { raw: RawNode; storage: MemoryStorage } {
  const storage = new MemoryStorage();
  storage.applySnapshot({ metadata: { index: 1, term: 1, confState: cs }, data: new Uint8Array(0) });
  storage.setHardState({ term: 1, vote: 0, commit: 1 });
  const raw = new RawNode({ id, electionTick: 10, heartbeatTick: 1, storage, random: new Random(id), applied: 1, ...config });
  return { raw, storage };
}

const CONF = (voters: number[], learners: number[] = []): ConfState => ({
  voters,
  learners,
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

describe('Ready: usage errors', () => {
  it('ready() twice without advance() throws a UsageError; hasReady() is false meanwhile', () => {
    const c = threeWithLeader();
    const raw = c.raw(1);
    raw.propose(enc('x'));
    assert.equal(raw.hasReady(), true);
    const rd = raw.ready();
    assert.equal(raw.readyInFlight, true);
    assert.equal(raw.hasReady(), false, 'nothing is ready while a Ready is in flight');
    assert.throws(() => raw.ready(), (e: unknown) => e instanceof UsageError && e.code === 'USAGE');
    finish(c, 1, rd);
    assert.equal(raw.readyInFlight, false);
  });

  it('advance() with a Ready that is not the one in flight throws a UsageError', () => {
    const c = threeWithLeader();
    const raw = c.raw(1);
    raw.propose(enc('x'));
    const rd = raw.ready();
    assert.throws(() => raw.advance({ ...rd }), UsageError);
    raw.advance(rd);
    assert.throws(() => raw.advance(rd), UsageError, 'advancing twice');
  });

  it('step() refuses a message for another node, or one without a term', () => {
    const c = threeWithLeader();
    const raw = c.raw(1);
    assert.throws(() => raw.step(message({ type: 'MsgHeartbeatResp', from: 2, to: 3, term: 2 })), InvalidMessageError);
    assert.throws(() => raw.step(message({ type: 'MsgAppResp', from: 2, to: 1, term: 0 })), InvalidMessageError);
    assert.throws(() => raw.step(message({ type: 'MsgAppResp', from: 0, to: 1, term: 2 })), InvalidMessageError);
    // Forwarded requests carry no term by design.
    raw.step(message({ type: 'MsgProp', from: 2, to: 1, entries: [{ term: 0, index: 0, type: 'normal', data: enc('f') }] }));
    assert.equal(raw.raft.raftLog.lastTerm(), 2);
  });
});

describe('Ready: messages vs messagesAfterPersist', () => {
  it('classifies message types: what a leader sends as leader, and forwarded requests, may go before persisting', () => {
    const early: MessageType[] = ['MsgApp', 'MsgHeartbeat', 'MsgSnap', 'MsgTimeoutNow', 'MsgReadIndexResp', 'MsgProp', 'MsgReadIndex', 'MsgTransferLeader'];
    const late: MessageType[] = ['MsgAppResp', 'MsgVote', 'MsgVoteResp', 'MsgPreVote', 'MsgPreVoteResp', 'MsgHeartbeatResp'];
    for (const t of early) assert.equal(canSendBeforePersist(t), true, t);
    for (const t of late) assert.equal(canSendBeforePersist(t), false, t);
    for (const t of ['MsgAppResp', 'MsgVoteResp', 'MsgPreVoteResp', 'MsgHeartbeatResp', 'MsgReadIndexResp'] as const) {
      assert.equal(isResponseMessage(t), true, t);
    }
    assert.equal(isResponseMessage('MsgApp'), false);
  });

  it("a leader's appends go in messages (before its own write); a follower's acknowledgement waits for its write", () => {
    const c = threeWithLeader();
    const leader = c.raw(1);
    leader.propose(enc('x'));
    const rd = leader.ready();
    assert.deepEqual(types(rd.messages), ['MsgApp 1>2', 'MsgApp 1>3']);
    assert.deepEqual(rd.messagesAfterPersist, []);
    assert.deepEqual(rd.entries.map(dec), ['x']);
    assert.equal(rd.mustSync, true);
    finish(c, 1, rd);
    // The follower: its MsgAppResp promises the entry is on its disk.
    const [app] = c.drop({ to: 2 });
    const follower = c.raw(2);
    follower.step(app!);
    const frd = follower.ready();
    assert.deepEqual(frd.entries.map(dec), ['x']);
    assert.deepEqual(frd.messages, []);
    assert.deepEqual(types(frd.messagesAfterPersist), ['MsgAppResp 2>1']);
    finish(c, 2, frd);
  });

  it('heartbeats go early; heartbeat responses wait', () => {
    const c = threeWithLeader();
    const leader = c.raw(1);
    leader.tick(); // heartbeatTick is 1
    const rd = leader.ready();
    assert.deepEqual(types(rd.messages), ['MsgHeartbeat 1>2', 'MsgHeartbeat 1>3']);
    assert.equal(rd.mustSync, false, 'nothing to write');
    finish(c, 1, rd);
    const [hb] = c.drop({ to: 2 });
    const follower = c.raw(2);
    follower.step(hb!);
    const frd = follower.ready();
    assert.deepEqual(frd.messages, []);
    assert.deepEqual(types(frd.messagesAfterPersist), ['MsgHeartbeatResp 2>1']);
    finish(c, 2, frd);
  });

  it('a vote is only sent after persisting, in a Ready carrying the new term and vote', () => {
    const c = ManualCluster.withVoters(3, { preVote: false });
    const candidate = c.raw(1);
    candidate.campaign();
    const rd = candidate.ready();
    assert.deepEqual(rd.hardState && { term: rd.hardState.term, vote: rd.hardState.vote }, { term: 2, vote: 1 });
    assert.deepEqual(rd.messages, []);
    assert.deepEqual(types(rd.messagesAfterPersist), ['MsgVote 1>2', 'MsgVote 1>3']);
    assert.equal(rd.mustSync, true);
    finish(c, 1, rd);
    const [req] = c.drop({ to: 2 });
    const voter = c.raw(2);
    voter.step(req!);
    const vrd = voter.ready();
    assert.deepEqual(vrd.hardState && { term: vrd.hardState.term, vote: vrd.hardState.vote }, { term: 2, vote: 1 });
    assert.deepEqual(vrd.messages, []);
    assert.deepEqual(types(vrd.messagesAfterPersist), ['MsgVoteResp 2>1']);
    assert.equal(vrd.messagesAfterPersist[0]!.reject, false);
    finish(c, 2, vrd);
  });

  it('a Ready that changes term or vote holds every message, even a leader\'s appends, until persisted', () => {
    // A single voter with a learner elects itself within one Ready: its
    // first MsgApp to the learner must wait for the new term to be durable.
    const { raw, storage } = nodeWithConf(1, CONF([1], [2]));
    raw.campaign();
    assert.equal(raw.raft.state, 'leader');
    const rd = raw.ready();
    assert.equal(rd.hardState?.term, 2);
    assert.equal(rd.hardState?.vote, 1);
    assert.deepEqual(rd.messages, []);
    assert.deepEqual(types(rd.messagesAfterPersist), ['MsgApp 1>2']);
    assert.equal(rd.mustSync, true);
    storage.append(rd.entries);
    storage.setHardState(rd.hardState!);
    raw.advance(rd);
    // In the same term, the leader's appends go early again (once the learner answered the probe).
    raw.step(message({ type: 'MsgAppResp', from: 2, to: 1, term: 2, index: 2 }));
    raw.propose(enc('y'));
    const rd2 = raw.ready();
    assert.deepEqual(rd2.hardState && [rd2.hardState.term, rd2.hardState.vote], [2, 1], 'only the commit index changed');
    assert.ok(rd2.messages.length > 0, 'appends to the learner');
    assert.ok(rd2.messages.every((m) => m.type === 'MsgApp' && m.to === 2));
    assert.ok(rd2.messages.some((m) => m.entries.some((e) => dec(e) === 'y')));
    assert.deepEqual(rd2.messagesAfterPersist, []);
  });

  it('forwarded proposals go early', () => {
    const c = threeWithLeader();
    const follower = c.raw(2);
    follower.propose(enc('fwd'));
    const rd = follower.ready();
    assert.deepEqual(types(rd.messages), ['MsgProp 2>1']);
    assert.equal(rd.messages[0]!.term, 0, 'forwarded requests carry no term');
    finish(c, 2, rd);
  });
});

describe('the leader counts its own log only once persisted (diss. §10.2.1)', () => {
  it('3 nodes: one follower acknowledges before the leader persists: no commit until advance()', () => {
    const c = threeWithLeader();
    const leader = c.raw(1);
    const before = leader.raft.raftLog.committed;
    leader.propose(enc('x'));
    const rd = leader.ready();
    const x = rd.entries[0]!;
    // Send the appends at once; the leader's own write is still in flight.
    c.pending.push(...rd.messages);
    c.deliver({ type: 'MsgApp', to: 2 });
    c.drop({ to: 3 }); // follower 3's ack is delayed indefinitely
    c.deliver({ type: 'MsgAppResp', from: 2, to: 1 }); // step() between ready() and advance()
    assert.equal(leader.raft.prs.progress.get(2)!.matchIndex, x.index, 'the ack was processed');
    assert.equal(leader.raft.raftLog.committed, before, 'one follower of three is not a quorum without the leader');
    // The leader's write completes.
    c.node(1).storage.append(rd.entries);
    leader.advance(rd);
    assert.equal(leader.raft.raftLog.committed, x.index, 'leader + follower 2 are a quorum');
    const rd2 = leader.ready();
    assert.deepEqual(rd2.committedEntries.map(dec), ['x']);
    assert.equal(rd2.hardState?.commit, x.index);
    finish(c, 1, rd2);
  });

  it('3 nodes: the leader persisted but followers\' acks are delayed: no commit', () => {
    const c = threeWithLeader();
    const leader = c.raw(1);
    const before = leader.raft.raftLog.committed;
    leader.propose(enc('x'));
    const rd = leader.ready();
    finish(c, 1, rd);
    assert.equal(leader.raft.prs.progress.get(1)!.matchIndex, rd.entries[0]!.index);
    assert.equal(leader.raft.raftLog.committed, before, 'the leader alone is not a quorum');
    c.deliver({ type: 'MsgApp', to: 3 });
    c.deliver({ type: 'MsgAppResp', to: 1 });
    assert.equal(leader.raft.raftLog.committed, rd.entries[0]!.index);
  });

  it('3 nodes: both followers acknowledge before the leader persists: committed without the leader', () => {
    const c = threeWithLeader();
    const leader = c.raw(1);
    leader.propose(enc('x'));
    const rd = leader.ready();
    c.pending.push(...rd.messages);
    c.deliver({ type: 'MsgApp' });
    c.deliver({ type: 'MsgAppResp', to: 1 });
    assert.equal(leader.raft.raftLog.committed, rd.entries[0]!.index);
    assert.equal(leader.raft.prs.progress.get(1)!.matchIndex, rd.entries[0]!.index - 1, 'the leader itself is still not counted');
    c.node(1).storage.append(rd.entries);
    leader.advance(rd);
  });

  it('a single-node cluster commits a proposal only after advance() reports it persisted', () => {
    const c = ManualCluster.withVoters(1);
    c.campaign(1);
    assert.equal(c.leader(), 1);
    const raw = c.raw(1);
    const before = raw.raft.raftLog.committed;
    raw.propose(enc('solo'));
    const rd = raw.ready();
    const x = rd.entries[0]!;
    assert.equal(raw.raft.raftLog.committed, before);
    assert.ok(rd.hardState === undefined || rd.hardState.commit < x.index);
    assert.ok(rd.committedEntries.every((e) => e.index < x.index), 'not handed out for applying before it is durable');
    finish(c, 1, rd);
    assert.equal(raw.raft.raftLog.committed, x.index);
    const rd2 = raw.ready();
    assert.deepEqual(rd2.committedEntries.map(dec), ['solo']);
    assert.equal(rd2.hardState?.commit, x.index);
    finish(c, 1, rd2);
  });
});

describe('committed entries', () => {
  it('are handed out once and in order, across many Readies, also with a small per-Ready limit', () => {
    const c = ManualCluster.withVoters(1, { maxCommittedSizePerReady: 1 });
    c.campaign(1);
    const raw = c.raw(1);
    const seen: number[] = [];
    const payloads: string[] = [];
    let readies = 0;
    const drain = () => {
      while (raw.hasReady()) {
        const rd = raw.ready();
        readies++;
        for (const e of rd.committedEntries) {
          seen.push(e.index);
          if (e.data.byteLength > 0 && e.type === 'normal') payloads.push(dec(e));
        }
        finish(c, 1, rd);
      }
    };
    drain();
    for (let i = 0; i < 20; i++) {
      raw.propose(enc(`p${i}`));
      if (i % 3 === 0) drain();
    }
    raw.proposeBatch([enc('b1'), enc('b2'), enc('b3')]);
    drain();
    // Every index from the first applied one on, once, in order.
    const first = seen[0]!;
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, k) => first + k));
    assert.equal(seen[seen.length - 1], raw.raft.raftLog.lastIndex());
    assert.deepEqual(payloads, [...Array.from({ length: 20 }, (_, i) => `p${i}`), 'b1', 'b2', 'b3']);
    assert.ok(readies > 23, 'the 1-byte limit split the committed entries over many Readies');
    assert.equal(raw.raft.raftLog.applied, raw.raft.raftLog.committed);
  });

  it('step() between ready() and advance(): the in-progress entries are not handed out again', () => {
    const c = threeWithLeader();
    c.propose(1, 'x');
    const follower = c.raw(2);
    for (const m of c.drop({ to: 2 })) follower.step(m);
    const rd1 = follower.ready();
    assert.deepEqual(rd1.entries.map(dec), ['x']);
    // While the follower's write is in flight the leader sends more.
    c.propose(1, 'y');
    for (const m of c.drop({ to: 2 })) follower.step(m);
    assert.equal(follower.raft.raftLog.lastIndex(), rd1.entries[0]!.index + 1, 'y appended in memory');
    finish(c, 2, rd1);
    const rd2 = follower.ready();
    assert.deepEqual(rd2.entries.map(dec), ['y'], 'only the new entry');
    assert.deepEqual(
      rd2.messagesAfterPersist.map((m) => [m.type, m.index]),
      [['MsgAppResp', rd1.entries[0]!.index + 1]],
    );
    finish(c, 2, rd2);
    c.stabilize();
    assert.deepEqual(
      c.node(2).applied.filter((e) => e.data.byteLength > 0 && e.type === 'normal').map(dec),
      ['x', 'y'],
    );
  });

  it('readStates are handed out once', () => {
    const c = threeWithLeader();
    c.readIndex(1, 'r');
    c.stabilize();
    assert.equal(c.node(1).readStates.length, 1);
    c.tickHeartbeat(1);
    c.stabilize();
    assert.equal(c.node(1).readStates.length, 1);
  });
});

describe('bootstrap', () => {
  it('bootstrapState: one committed conf-change entry per voter, at term 1', () => {
    const { entries, hardState, changes } = bootstrapState([1, 2, 3]);
    assert.deepEqual(entries.map((e) => [e.index, e.term, e.type]), [
      [1, 1, 'confChange'],
      [2, 1, 'confChange'],
      [3, 1, 'confChange'],
    ]);
    assert.deepEqual(hardState, { term: 1, vote: 0, commit: 3 });
    assert.deepEqual(entries.map((e) => decodeConfChange(e.data)), changes);
    assert.deepEqual(changes.map((cc) => cc.changes), [[{ type: 'addNode', nodeId: 1 }], [{ type: 'addNode', nodeId: 2 }], [{ type: 'addNode', nodeId: 3 }]]);
  });

  it('bootstrapState refuses no voters and duplicates', () => {
    assert.throws(() => bootstrapState([]), UsageError);
    assert.throws(() => bootstrapState([1, 2, 1]), UsageError);
  });

  it('RawNode.bootstrap: the node knows its voters at once, and its first Ready writes and applies the entries', () => {
    const storage = new MemoryStorage();
    const raw = new RawNode({ id: 2, electionTick: 10, heartbeatTick: 1, storage, random: new Random(1) });
    raw.bootstrap([1, 2, 3]);
    assert.deepEqual(raw.status().confState.voters, [1, 2, 3]);
    const rd = raw.ready();
    assert.equal(rd.entries.length, 3);
    assert.deepEqual(rd.hardState, { term: 1, vote: 0, commit: 3 });
    assert.deepEqual(rd.committedEntries.map((e) => e.index), [1, 2, 3]);
    assert.equal(rd.mustSync, true);
    storage.append(rd.entries);
    storage.setHardState(rd.hardState!);
    for (const e of rd.committedEntries) raw.applyConfChange(decodeConfChange(e.data)); // changes nothing
    raw.advance(rd);
    assert.deepEqual(raw.status().confState.voters, [1, 2, 3]);
    assert.equal(raw.status().applied, 3);
    assert.throws(() => raw.bootstrap([1, 2, 3]), UsageError, 'only an empty node');
  });

  it('a bootstrapped node campaigns after its election timeout, once its configuration entries are applied', () => {
    const storage = new MemoryStorage();
    const raw = new RawNode({ id: 1, electionTick: 10, heartbeatTick: 1, storage, random: new Random(1), preVote: false });
    raw.bootstrap([1, 2, 3]);
    for (let i = 0; i < 20; i++) raw.tick();
    assert.equal(raw.raft.state, 'follower', 'committed conf changes not applied yet: no campaign');
    const rd = raw.ready();
    storage.append(rd.entries);
    storage.setHardState(rd.hardState!);
    raw.advance(rd);
    for (let i = 0; i < 20; i++) raw.tick();
    assert.equal(raw.raft.state, 'candidate');
    assert.equal(raw.raft.term, 2);
  });
});

describe('status()', () => {
  it('reports the hard and soft state, the log bounds and the configuration', () => {
    const c = threeWithLeader();
    c.propose(1, 'x');
    c.stabilize();
    const s = c.raw(1).status();
    assert.equal(s.id, 1);
    assert.deepEqual(s.softState, { lead: 1, state: 'leader' });
    assert.deepEqual(s.hardState, { term: 2, vote: 1, commit: 5 });
    assert.equal(s.applied, 5);
    assert.equal(s.firstIndex, 1);
    assert.equal(s.lastIndex, 5);
    assert.equal(s.lastTerm, 2);
    assert.equal(s.leadTransferee, 0);
    assert.deepEqual(s.confState.voters, [1, 2, 3]);
  });

  it("the leader reports every member's progress; others report none", () => {
    const c = threeWithLeader();
    c.propose(1, 'x');
    c.stabilize();
    const p = c.raw(1).status().progress!;
    assert.deepEqual([...p.keys()], [1, 2, 3]);
    for (const id of [1, 2, 3]) {
      const pr = p.get(id)!;
      assert.equal(pr.matchIndex, 5, `node ${id}`);
      assert.equal(pr.nextIndex, 6, `node ${id}`);
      assert.equal(pr.state, 'replicate');
      assert.equal(pr.isLearner, false);
    }
    assert.equal(c.raw(2).status().progress, undefined);
    assert.deepEqual(c.raw(2).status().softState, { lead: 1, state: 'follower' });
  });
});

describe('refusals', () => {
  it('a node without a leader refuses proposals with ProposalDroppedError', () => {
    const c = ManualCluster.withVoters(3);
    assert.throws(
      () => c.raw(1).propose(enc('x')),
      (e: unknown) => e instanceof ProposalDroppedError && e.code === 'PROPOSAL_DROPPED' && e.reason === 'no-leader',
    );
  });
});
