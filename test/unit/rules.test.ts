// One test (or more) per rule of Raft's checklist of subtle rules (kept
// outside the repository as raft-rules.md; docs/raft-rules.md maps each rule
// to the tests below). Each test is named after its rule and cites the
// paper (§) or Ongaro's dissertation (diss. §).
//
// Two harnesses: ManualCluster (whole clusters over the real core, driven by
// hand) and standalone RawNodes whose disk is crafted to hold a given log, to
// which messages are stepped directly.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodeConfChange } from '../../src/raft/confchange.js';
import { InvalidConfigError, ProposalDroppedError } from '../../src/raft/errors.js';
import { type Ready, RawNode } from '../../src/raft/rawNode.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import {
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type MessageType,
  type RandomSource,
  type Snapshot,
  message,
} from '../../src/raft/types.js';
import { KvStateMachine, type KvEntry } from '../../src/sim/kv.js';
import { ManualCluster, type MessageFilter, type NodeConfig } from '../../src/sim/manual.js';
import type { ClientRequest } from '../../src/sim/node.js';
import { Random } from '../../src/sim/random.js';
import { type ClientHost, SimClient } from '../../src/sim/workload.js';

const T = 10; // electionTick everywhere below (ManualCluster's default); heartbeatTick is 1
const enc = (s: string) => new TextEncoder().encode(s);
const text = (e: Entry) => new TextDecoder().decode(e.data);
const isDropped = (reason: string) => (e: unknown) =>
  e instanceof ProposalDroppedError && e.code === 'PROPOSAL_DROPPED' && e.reason === reason;

// ---------------------------------------------------------------------------
// ManualCluster helpers

/** A cluster of n voters with node 1 elected and everything delivered. */
function leaderCluster(n = 3, config: NodeConfig = {}): ManualCluster {
  const c = ManualCluster.withVoters(n, config);
  c.campaign(1);
  c.stabilize();
  assert.equal(c.leader(), 1, 'setup: node 1 leads');
  return c;
}

/** Delivers until nothing is pending, dropping whatever matches `drop` before each round. */
function settle(c: ManualCluster, ...drop: MessageFilter[]): void {
  for (let round = 0; round < 200; round++) {
    for (const f of drop) c.drop(f);
    if (c.pending.length === 0) return;
    c.deliver();
  }
  throw new Error('settle: messages kept flowing');
}

/** Elects a leader by letting time pass on every node (for configurations where campaign() is not enough). */
function electByTicks(c: ManualCluster): number {
  for (let i = 0; i < 300; i++) {
    for (const id of c.ids()) if (c.node(id).up) c.tick(id);
    c.deliver();
    const l = c.leader();
    if (l !== undefined && c.ids().every((id) => !c.node(id).up || c.raw(id).raft.lead === l)) {
      c.stabilize();
      return l;
    }
  }
  throw new Error('no leader elected');
}

const progress = (c: ManualCluster, leader: number, id: number) => c.raw(leader).raft.prs.progress.get(id)!;

// ---------------------------------------------------------------------------
// Standalone nodes with a crafted disk

interface Solo {
  readonly raw: RawNode;
  readonly storage: MemoryStorage;
  /** Every Ready handled so far. */
  readonly readies: Ready[];
}

interface SoloOptions {
  voters?: number[];
  learners?: number[];
  outgoing?: number[];
  /** The index (and term 1) of the snapshot the disk starts with; entries follow it. Default 3. */
  snapIndex?: number;
  /** Terms of the entries after the snapshot. */
  terms?: number[];
  /** The persisted hard state. The term defaults to the last entry's. */
  term?: number;
  vote?: number;
  commit?: number;
  config?: Partial<ConstructorParameters<typeof RawNode>[0]>;
}

const CONF = (voters: number[], learners: number[] = [], outgoing: number[] = []): ConfState => ({
  voters,
  learners,
  votersOutgoing: outgoing,
  learnersNext: [],
  autoLeave: false,
});

function ent(index: number, term: number, data = ''): Entry {
  return { index, term, type: 'normal', data: enc(data) };
}

/** A node whose disk holds a snapshot (term 1, the given configuration) and then entries of the given terms. */
function solo(id: number, o: SoloOptions = {}): Solo {
  const snapIndex = o.snapIndex ?? 3;
  const terms = o.terms ?? [];
  const storage = new MemoryStorage();
  storage.applySnapshot({
    metadata: { index: snapIndex, term: 1, confState: CONF(o.voters ?? [1, 2, 3], o.learners ?? [], o.outgoing ?? []) },
    data: new Uint8Array(0),
  });
  storage.append(terms.map((t, k) => ent(snapIndex + 1 + k, t)));
  storage.setHardState({ term: o.term ?? Math.max(1, ...terms), vote: o.vote ?? 0, commit: o.commit ?? snapIndex });
  const raw = new RawNode({ id, electionTick: T, heartbeatTick: 1, storage, random: new Random(id), ...o.config });
  const n: Solo = { raw, storage, readies: [] };
  drain(n);
  return n;
}

/** Handles every Ready: persist, apply (conf changes too), advance. Returns the messages sent. */
function drain(n: Solo): Message[] {
  const out: Message[] = [];
  while (n.raw.hasReady()) {
    const rd = n.raw.ready();
    n.readies.push(rd);
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    out.push(...rd.messages, ...rd.messagesAfterPersist);
    for (const e of rd.committedEntries) if (e.type === 'confChange') n.raw.applyConfChange(decodeConfChange(e.data));
    n.raw.advance(rd);
  }
  return out;
}

/** Steps a message (addressed to the node) and handles the resulting Readies. */
function send(n: Solo, fields: Partial<Message> & { type: MessageType; from: number }): Message[] {
  n.raw.step(message({ ...fields, to: n.raw.id }));
  return drain(n);
}

/** Makes a standalone node (created with preVote: false) leader with the votes of `voters`. */
function makeLeader(n: Solo, voters: number[]): void {
  n.raw.campaign();
  drain(n);
  for (const v of voters) send(n, { type: 'MsgVoteResp', from: v, term: n.raw.raft.term });
  assert.equal(n.raw.raft.state, 'leader', 'setup: leader');
}

function logOf(n: Solo | RawNode): string[] {
  const r = ('raw' in n ? n.raw : n).raft.raftLog;
  const out: string[] = [];
  for (let i = r.firstIndex(); i <= r.lastIndex(); i++) out.push(`${i}@${r.term(i)}`);
  return out;
}

/** Ticks until the node stops being a follower; returns how many ticks that took. */
function ticksUntilCampaign(raw: RawNode, max = 100): number {
  for (let i = 1; i <= max; i++) {
    raw.tick();
    if (raw.raft.state !== 'follower') return i;
  }
  return Infinity;
}

/** Routes messages among standalone nodes until none are left; messages to others are dropped. Returns all delivered. */
function exchange(nodes: Solo[], msgs: Message[]): Message[] {
  const byId = new Map(nodes.map((n) => [n.raw.id, n]));
  const delivered: Message[] = [];
  let queue = msgs;
  for (let round = 0; queue.length > 0; round++) {
    if (round > 100) throw new Error('exchange: messages kept flowing');
    const next: Message[] = [];
    for (const m of queue) {
      const n = byId.get(m.to);
      if (!n) continue;
      delivered.push(m);
      n.raw.step(m);
      next.push(...drain(n));
    }
    queue = next;
  }
  return delivered;
}

// ===========================================================================
// Terms and votes

describe('Terms and votes', () => {
  describe('a message with a higher term makes the receiver adopt it and become a follower (§5.1)', () => {
    const cases: { type: MessageType; lead: number; reject?: boolean }[] = [
      { type: 'MsgApp', lead: 2 },
      { type: 'MsgHeartbeat', lead: 2 },
      { type: 'MsgAppResp', lead: 0 },
      { type: 'MsgHeartbeatResp', lead: 0 },
      { type: 'MsgVoteResp', lead: 0, reject: true },
      { type: 'MsgPreVoteResp', lead: 0, reject: true },
    ];
    for (const { type, lead, reject } of cases) {
      it(`a leader receiving ${type} of a higher term steps down to a follower of that term`, () => {
        const c = leaderCluster();
        c.raw(1).step(message({ type, from: 2, to: 1, term: 7, reject: reject ?? false }));
        c.process(1);
        const r = c.raw(1).raft;
        assert.equal(r.state, 'follower');
        assert.equal(r.term, 7);
        assert.equal(r.vote, 0);
        assert.equal(r.lead, lead);
        assert.equal(c.node(1).storage.getHardState().term, 7, 'the new term is persisted');
      });
    }

    it('a candidate receiving a heartbeat of a higher term follows its sender', () => {
      const c = ManualCluster.withVoters(3, { preVote: false });
      c.campaign(1);
      assert.equal(c.raw(1).raft.state, 'candidate');
      c.raw(1).step(message({ type: 'MsgHeartbeat', from: 3, to: 1, term: 5 }));
      c.process(1);
      assert.equal(c.raw(1).raft.state, 'follower');
      assert.equal(c.raw(1).raft.term, 5);
      assert.equal(c.raw(1).raft.lead, 3);
    });

    it('without leader stickiness (CheckQuorum off), a vote request of a higher term deposes the leader', () => {
      const c = leaderCluster(3, { checkQuorum: false });
      c.raw(1).step(message({ type: 'MsgVote', from: 3, to: 1, term: 5, index: 4, logTerm: 2 }));
      c.process(1);
      assert.equal(c.raw(1).raft.state, 'follower');
      assert.equal(c.raw(1).raft.term, 5);
      assert.equal(c.raw(1).raft.vote, 3, 'and grants the up-to-date candidate its vote');
    });

    it('except a PreVote request: it changes neither term, vote nor role, and nothing is persisted', () => {
      const c = ManualCluster.withVoters(3);
      const before = c.node(2).storage.getHardState();
      c.raw(2).step(message({ type: 'MsgPreVote', from: 3, to: 2, term: 5, index: 3, logTerm: 1 }));
      c.process(2);
      const r = c.raw(2).raft;
      assert.equal(r.term, 1);
      assert.equal(r.vote, 0);
      assert.equal(r.state, 'follower');
      assert.deepEqual(c.node(2).storage.getHardState(), before);
      const [resp] = c.drop({ from: 2 });
      assert.equal(resp?.type, 'MsgPreVoteResp');
      assert.equal(resp?.reject, false, 'the pre-vote is granted');
      assert.equal(resp?.term, 5, 'answered in the term asked about');
      // Control: the same request as a real vote does move the term.
      c.raw(2).step(message({ type: 'MsgVote', from: 3, to: 2, term: 5, index: 3, logTerm: 1 }));
      c.process(2);
      assert.equal(c.raw(2).raft.term, 5);
    });

    it('except a vote or pre-vote request under leader stickiness: ignored entirely, term unchanged, no answer', () => {
      const c = leaderCluster();
      for (const type of ['MsgVote', 'MsgPreVote'] as const) {
        c.raw(2).step(message({ type, from: 3, to: 2, term: 9, index: 4, logTerm: 2 }));
        c.process(2);
        assert.equal(c.raw(2).raft.term, 2, type);
        assert.equal(c.raw(2).raft.vote, 1, type);
        assert.equal(c.raw(2).raft.lead, 1, type);
        assert.deepEqual(c.drop({ from: 2 }), [], `${type}: no answer`);
      }
    });
  });

  describe('persist currentTerm and votedFor before sending a vote; log entries before acknowledging them (Figure 2)', () => {
    it('the vote leaves only in messagesAfterPersist, with the Ready that persists term and vote; a restart remembers it', () => {
      const c = ManualCluster.withVoters(3, { preVote: false });
      c.campaign(3);
      const [req] = c.drop({ to: 2 });
      c.drop();
      const voter = c.raw(2);
      voter.step(req!);
      const rd = voter.ready();
      assert.deepEqual(rd.hardState && [rd.hardState.term, rd.hardState.vote], [2, 3]);
      assert.deepEqual(rd.messages, []);
      assert.deepEqual(rd.messagesAfterPersist.map((m) => [m.type, m.to, m.reject]), [['MsgVoteResp', 3, false]]);
      c.node(2).storage.setHardState(rd.hardState!);
      voter.advance(rd);
      // After a crash the vote is still cast: a second candidate of term 2 is refused.
      c.crash(2);
      c.restart(2);
      assert.equal(c.raw(2).raft.term, 2);
      assert.equal(c.raw(2).raft.vote, 3);
      c.campaign(1); // node 1 goes to term 2 as well
      assert.equal(c.raw(1).raft.term, 2);
      c.deliver({ to: 2 });
      const answers = c.drop({ from: 2, type: 'MsgVoteResp' });
      assert.deepEqual(answers.map((m) => m.reject), [true], 'one vote per term, across restarts');
    });

    it("a follower's acknowledgement of entries leaves only after the Ready that writes them", () => {
      const c = leaderCluster();
      c.propose(1, 'x');
      const follower = c.raw(2);
      for (const m of c.drop({ to: 2 })) follower.step(m);
      const rd = follower.ready();
      assert.deepEqual(rd.entries.map(text), ['x']);
      assert.deepEqual(rd.messages, []);
      assert.deepEqual(rd.messagesAfterPersist.map((m) => [m.type, m.index]), [['MsgAppResp', rd.entries[0]!.index]]);
      c.node(2).storage.append(rd.entries);
      follower.advance(rd);
    });

    it('a leader sends its entries before its own write completes, but counts itself only once it is durable (diss. §10.2.1)', () => {
      const c = leaderCluster();
      const leader = c.raw(1);
      leader.propose(enc('x'));
      const rd = leader.ready();
      const x = rd.entries[0]!;
      assert.deepEqual(rd.messages.map((m) => m.type), ['MsgApp', 'MsgApp'], 'sent before the write');
      c.pending.push(...rd.messages);
      c.deliver({ to: 2 });
      c.drop({ to: 3 });
      c.deliver({ to: 1 }); // follower 2's ack, while the leader's own write is in flight
      assert.equal(leader.raft.raftLog.committed, x.index - 1, 'leader not yet durable: 1 of 3');
      c.node(1).storage.append(rd.entries);
      leader.advance(rd);
      assert.equal(leader.raft.raftLog.committed, x.index, 'now leader + 2');
    });
  });

  describe('the up-to-date check compares the last log term first, then the last index (§5.4.1)', () => {
    // The voter's log ends with 5@2 (entries 4, 5 of term 2).
    const cases: { name: string; index: number; logTerm: number; granted: boolean }[] = [
      { name: 'a shorter log with a newer last term wins', index: 4, logTerm: 3, granted: true },
      { name: 'a longer log with an older last term loses', index: 20, logTerm: 1, granted: false },
      { name: 'same last term, longer: wins', index: 6, logTerm: 2, granted: true },
      { name: 'same last term, same length: wins', index: 5, logTerm: 2, granted: true },
      { name: 'same last term, shorter: loses', index: 4, logTerm: 2, granted: false },
    ];
    for (const { name, index, logTerm, granted } of cases) {
      it(name, () => {
        const n = solo(2, { terms: [2, 2], term: 3 });
        const out = send(n, { type: 'MsgVote', from: 3, term: 4, index, logTerm });
        assert.deepEqual(out.map((m) => [m.type, m.reject]), [['MsgVoteResp', !granted]]);
        assert.equal(n.raw.raft.vote, granted ? 3 : 0);
      });
    }

    it('in a cluster: a node with a longer log of an older term cannot win, and its extra entries are overwritten', () => {
      const c = leaderCluster(3, { checkQuorum: false, preVote: false });
      // Node 1, cut off, keeps appending in term 2; nodes 2 and 3 elect 2 in term 3.
      c.partition([1], [2, 3]);
      for (const s of ['a', 'b', 'c', 'd']) c.propose(1, s);
      settle(c);
      c.campaign(2);
      settle(c);
      assert.equal(c.leader(), 2);
      assert.equal(c.raw(1).raft.raftLog.lastIndex(), 8, 'node 1: longer log (8@2)');
      assert.equal(c.raw(2).raft.raftLog.lastIndex(), 5, 'node 2: shorter log (5@3)');
      c.heal();
      // Node 1 learns of term 3 from a heartbeat (and is not caught up), then campaigns in term 4.
      c.tickHeartbeat(2);
      c.deliver({ type: 'MsgHeartbeat', to: 1 });
      c.drop();
      assert.equal(c.raw(1).raft.state, 'follower');
      c.campaign(1);
      assert.equal(c.raw(1).raft.term, 4);
      const answers = c.deliver({ type: 'MsgVote', from: 1 });
      assert.equal(answers.length, 2);
      const votes = c.drop({ type: 'MsgVoteResp', to: 1 });
      assert.deepEqual(votes.map((m) => m.reject), [true, true], 'both refuse the longer but older log');
      assert.notEqual(c.raw(1).raft.state, 'leader');
      // A newer leader then overwrites node 1's uncommitted term-2 entries.
      c.campaign(2);
      settle(c);
      assert.equal(c.leader(), 2);
      c.propose(2, 'after');
      settle(c);
      assert.deepEqual(c.log(1), c.log(2));
      assert.ok(!c.log(1).includes('6@2'), 'the uncommitted entries of term 2 are gone');
    });
  });

  describe('the randomized election timer is reset when granting a vote, on a valid append or heartbeat, and on starting an election; not when refusing a vote', () => {
    it('granting a vote resets it', () => {
      const n = solo(2, { term: 2 });
      for (let i = 0; i < 5; i++) n.raw.tick();
      assert.equal(n.raw.raft.electionElapsed, 5);
      const timeout = n.raw.raft.randomizedElectionTimeout;
      const out = send(n, { type: 'MsgVote', from: 3, term: 2, index: 3, logTerm: 1 });
      assert.equal(out[0]?.reject, false);
      assert.equal(n.raw.raft.electionElapsed, 0);
      assert.equal(ticksUntilCampaign(n.raw), timeout, 'a whole timeout from the grant');
    });

    it('refusing a vote (already voted in this term) does not reset it', () => {
      const n = solo(2, { term: 2, vote: 1 });
      for (let i = 0; i < 5; i++) n.raw.tick();
      const timeout = n.raw.raft.randomizedElectionTimeout;
      const out = send(n, { type: 'MsgVote', from: 3, term: 2, index: 3, logTerm: 1 });
      assert.equal(out[0]?.reject, true);
      assert.equal(n.raw.raft.electionElapsed, 5);
      assert.equal(ticksUntilCampaign(n.raw), timeout - 5);
    });

    it('refusing a vote (candidate log behind ours, same term) does not reset it', () => {
      const n = solo(2, { terms: [2], term: 2 });
      for (let i = 0; i < 5; i++) n.raw.tick();
      const out = send(n, { type: 'MsgVote', from: 3, term: 2, index: 3, logTerm: 1 });
      assert.equal(out[0]?.reject, true);
      assert.equal(n.raw.raft.electionElapsed, 5);
    });

    it('refusing a pre-vote does not reset it', () => {
      const n = solo(2, { terms: [2], term: 2 });
      for (let i = 0; i < 5; i++) n.raw.tick();
      const out = send(n, { type: 'MsgPreVote', from: 3, term: 3, index: 3, logTerm: 1 });
      assert.equal(out[0]?.reject, true);
      assert.equal(n.raw.raft.electionElapsed, 5);
    });

    it('refusing a vote of a higher term (candidate log behind ours) adopts the term but does not reset it', () => {
      const n = solo(2, { terms: [2], term: 2 });
      for (let i = 0; i < 5; i++) n.raw.tick();
      const out = send(n, { type: 'MsgVote', from: 3, term: 3, index: 3, logTerm: 1 });
      assert.equal(out[0]?.reject, true);
      assert.equal(n.raw.raft.term, 3, 'the term is adopted (§5.1)');
      assert.equal(n.raw.raft.electionElapsed, 5, 'but the refused vote does not restart the timer');
    });

    it('a valid append or heartbeat from the current leader resets it; one from an old term does not', () => {
      const c = leaderCluster();
      c.drop();
      c.tick(2, 5);
      assert.equal(c.raw(2).raft.electionElapsed, 5);
      c.tickHeartbeat(1);
      c.deliver({ type: 'MsgHeartbeat', to: 2 });
      assert.equal(c.raw(2).raft.electionElapsed, 0, 'heartbeat');
      c.tick(2, 5);
      c.propose(1, 'x');
      c.deliver({ type: 'MsgApp', to: 2 });
      assert.equal(c.raw(2).raft.electionElapsed, 0, 'append');
      c.tick(2, 5);
      c.raw(2).step(message({ type: 'MsgApp', from: 3, to: 2, term: 1, index: 3, logTerm: 1 }));
      c.raw(2).step(message({ type: 'MsgHeartbeat', from: 3, to: 2, term: 1 }));
      c.process(2);
      assert.equal(c.raw(2).raft.electionElapsed, 5, 'stale-term messages are not from the current leader');
    });

    it('starting an election resets it, and redraws the timeout for the next one', () => {
      const c = ManualCluster.withVoters(3, { preVote: false });
      const raw = c.raw(1);
      const first = raw.raft.randomizedElectionTimeout;
      assert.equal(ticksUntilCampaign(raw), first);
      assert.equal(raw.raft.state, 'candidate');
      assert.equal(raw.raft.electionElapsed, 0);
      // No votes ever arrive: each new election starts one full, freshly drawn timeout after the previous one.
      const drawn = [first];
      for (let election = 0; election < 8; election++) {
        const timeout = raw.raft.randomizedElectionTimeout;
        drawn.push(timeout);
        const term = raw.raft.term;
        let ticks = 0;
        while (raw.raft.term === term && ticks < 100) {
          raw.tick();
          ticks++;
        }
        assert.equal(ticks, timeout, `election ${election}`);
        assert.equal(raw.raft.electionElapsed, 0);
      }
      assert.ok(new Set(drawn).size > 1, `the timeout was never redrawn: ${drawn.join(' ')}`);
    });

    it('starting a pre-election on a timeout resets it', () => {
      const c = ManualCluster.withVoters(3);
      const raw = c.raw(1);
      ticksUntilCampaign(raw);
      assert.equal(raw.raft.state, 'preCandidate');
      assert.equal(raw.raft.electionElapsed, 0);
    });
  });

  describe('the election timeout is randomized in [T, 2T) (§5.2)', () => {
    const fixed = (pick: (n: number) => number): RandomSource => ({ int: pick });

    it('the smallest draw campaigns after exactly T ticks, the largest after 2T - 1', () => {
      for (const [pick, want] of [
        [(_n: number) => 0, T],
        [(n: number) => n - 1, 2 * T - 1],
      ] as const) {
        const storage = new MemoryStorage();
        storage.applySnapshot({ metadata: { index: 1, term: 1, confState: CONF([1, 2, 3]) }, data: new Uint8Array(0) });
        const raw = new RawNode({ id: 1, electionTick: T, heartbeatTick: 1, storage, random: fixed(pick) });
        assert.equal(raw.raft.randomizedElectionTimeout, want);
        assert.equal(ticksUntilCampaign(raw), want);
      }
    });

    it('asks the random source for an integer below T', () => {
      const asked: number[] = [];
      const storage = new MemoryStorage();
      storage.applySnapshot({ metadata: { index: 1, term: 1, confState: CONF([1, 2, 3]) }, data: new Uint8Array(0) });
      new RawNode({ id: 1, electionTick: 7, heartbeatTick: 1, storage, random: fixed((n) => (asked.push(n), 0)) });
      assert.ok(asked.length > 0 && asked.every((n) => n === 7), JSON.stringify(asked));
    });

    it('seeded draws cover [T, 2T) and nothing else', () => {
      const seen = new Set<number>();
      for (let seed = 1; seed <= 300; seed++) {
        const storage = new MemoryStorage();
        storage.applySnapshot({ metadata: { index: 1, term: 1, confState: CONF([1]) }, data: new Uint8Array(0) });
        const raw = new RawNode({ id: 1, electionTick: T, heartbeatTick: 1, storage, random: new Random(seed) });
        const t = raw.raft.randomizedElectionTimeout;
        assert.ok(t >= T && t < 2 * T, `timeout ${t}`);
        seen.add(t);
      }
      assert.equal(seen.size, T, 'every value in [T, 2T) occurs');
    });
  });

  describe('PreVote (diss. §9.6): the candidate asks with term + 1 without raising its own term; a granted pre-vote records no vote', () => {
    it('pre-candidate and voters keep their term and vote until the pre-election is won', () => {
      const c = ManualCluster.withVoters(3);
      c.campaign(1);
      const r1 = c.raw(1).raft;
      assert.equal(r1.state, 'preCandidate');
      assert.equal(r1.term, 1);
      assert.equal(r1.vote, 0);
      assert.deepEqual(c.node(1).storage.getHardState(), { term: 1, vote: 0, commit: 3 }, 'nothing persisted');
      const reqs = c.pending.filter((m) => m.type === 'MsgPreVote');
      assert.deepEqual(reqs.map((m) => m.term), [2, 2], 'asks about term + 1');
      c.deliver({ type: 'MsgPreVote' });
      for (const id of [2, 3]) {
        assert.equal(c.raw(id).raft.term, 1, `voter ${id} term`);
        assert.equal(c.raw(id).raft.vote, 0, `voter ${id} records no vote`);
        assert.deepEqual(c.node(id).storage.getHardState(), { term: 1, vote: 0, commit: 3 });
      }
      c.deliver({ type: 'MsgPreVoteResp' });
      assert.equal(r1.state, 'candidate', 'only now');
      assert.equal(r1.term, 2);
    });

    it('a node cut off from the others does not inflate its term, and does not disrupt the leader on return', () => {
      for (const preVote of [true, false]) {
        const c = leaderCluster(3, { preVote });
        c.partition([3], [1, 2]);
        for (let i = 0; i < 10 * T; i++) {
          c.tick(3);
          if (i % 2 === 0) c.tickHeartbeat(1);
          c.deliver();
        }
        if (!preVote) {
          assert.ok(c.raw(3).raft.term > 5, 'control: without PreVote the term runs away');
          continue;
        }
        assert.equal(c.raw(3).raft.term, 2);
        c.heal();
        c.tickHeartbeat(1);
        c.stabilize();
        assert.equal(c.leader(), 1);
        assert.equal(c.raw(1).raft.term, 2);
        assert.equal(c.raw(3).raft.lead, 1);
      }
    });
  });

  describe('PreVote (diss. §9.6) without CheckQuorum', () => {
    it('stickiness needs CheckQuorum: without it, a leader that hears no one can still be replaced', () => {
      // Leader 1 can send but not receive (its followers' answers are cut),
      // and node 3 no longer hears it either. Without CheckQuorum leader 1
      // never steps down and can never commit again. Were node 2 sticky
      // (ignoring votes because it still hears leader 1), nobody could ever
      // take over: so stickiness applies only with CheckQuorum, which makes
      // such a leader step down (as in etcd-io/raft).
      const c = leaderCluster(3, { preVote: true, checkQuorum: false });
      c.cut(2, 1);
      c.cut(3, 1);
      c.cut(1, 3);
      for (let i = 0; i < 6 * T && c.raw(3).raft.state !== 'leader'; i++) {
        c.tick(1);
        c.tick(2);
        c.tick(3);
        c.deliver();
      }
      assert.equal(c.raw(3).raft.state, 'leader', 'node 3 took over');
      assert.equal(c.propose(3, 'after'), undefined);
      c.stabilize();
      assert.equal(c.raw(2).raft.raftLog.committed, c.raw(3).raft.raftLog.lastIndex(), 'the cluster commits again');
    });

    it('control: with CheckQuorum on (the default) the same partition leaves the leader in place', () => {
      const c = leaderCluster(3, { preVote: true, checkQuorum: true });
      c.cut(1, 3);
      for (let i = 0; i < 6 * T; i++) {
        c.tick(1);
        c.tick(2);
        c.tick(3);
        c.deliver();
      }
      assert.equal(c.raw(1).raft.state, 'leader');
      assert.equal(c.raw(1).raft.term, 2);
      assert.equal(c.raw(3).raft.term, 2, 'node 3 never got past its pre-election');
    });
  });

  describe('leader stickiness (diss. §4.2.3): a node that heard from a live leader within the election timeout ignores vote requests, except a forced campaign', () => {
    it('ignores them while the leader is live, answers once the timeout has passed', () => {
      const c = leaderCluster();
      const req = message({ type: 'MsgVote', from: 3, to: 2, term: 3, index: 4, logTerm: 2 });
      c.raw(2).step(req);
      c.process(2);
      assert.deepEqual(c.drop({ from: 2 }), [], 'ignored');
      c.drop();
      c.tick(2, T); // nothing from the leader for an election timeout
      c.drop();
      c.raw(2).step(req);
      c.process(2);
      const resp = c.drop({ from: 2, type: 'MsgVoteResp' });
      assert.deepEqual(resp.map((m) => m.reject), [false]);
      assert.equal(c.raw(2).raft.term, 3);
    });

    it('a forced campaign (leadership transfer) is answered despite a live leader', () => {
      const c = leaderCluster();
      c.raw(2).step(message({ type: 'MsgVote', from: 3, to: 2, term: 3, index: 4, logTerm: 2, force: true }));
      c.process(2);
      assert.deepEqual(c.drop({ from: 2 }).map((m) => [m.type, m.reject]), [['MsgVoteResp', false]]);
      assert.equal(c.raw(2).raft.vote, 3);
    });
  });

  describe('CheckQuorum: a leader that has not heard from a quorum within an election timeout steps down', () => {
    it('a leader cut off from the others steps down within two election timeouts, and stops serving', () => {
      const c = leaderCluster();
      c.partition([1], [2, 3]);
      let ticks = 0;
      while (c.raw(1).raft.state === 'leader' && ticks < 5 * T) {
        c.tick(1);
        c.deliver();
        ticks++;
      }
      assert.equal(c.raw(1).raft.state, 'follower');
      assert.ok(ticks <= 2 * T, `stepped down after ${ticks} ticks`);
      assert.throws(() => c.raw(1).propose(enc('x')), isDropped('no-leader'));
      assert.throws(() => c.raw(1).readIndex(enc('r')), isDropped('no-leader'));
    });

    it('controls: a leader that hears from a quorum stays; without CheckQuorum a cut-off leader stays too', () => {
      const live = leaderCluster();
      live.partition([1, 2], [3]);
      for (let i = 0; i < 5 * T; i++) {
        live.tick(1);
        live.deliver();
      }
      assert.equal(live.raw(1).raft.state, 'leader', 'node 2 is a quorum with the leader');
      const off = leaderCluster(3, { checkQuorum: false });
      off.partition([1], [2, 3]);
      for (let i = 0; i < 5 * T; i++) {
        off.tick(1);
        off.deliver();
      }
      assert.equal(off.raw(1).raft.state, 'leader');
    });
  });
});

// ===========================================================================
// Replication

describe('Replication', () => {
  describe('a follower deletes a conflicting entry and all after it, and never truncates on a stale or duplicated append (§5.3)', () => {
    it('a conflicting suffix is replaced', () => {
      const n = solo(2, { terms: [2, 2, 2], term: 2 }); // 4@2 5@2 6@2, uncommitted
      const out = send(n, { type: 'MsgApp', from: 1, term: 3, index: 4, logTerm: 2, entries: [ent(5, 3, 'new')], commit: 3 });
      assert.deepEqual(logOf(n), ['4@2', '5@3']);
      assert.equal(n.storage.lastIndex(), 5, 'and on disk');
      assert.deepEqual(out.map((m) => [m.type, m.index, m.reject]), [['MsgAppResp', 5, false]]);
    });

    it('a duplicated or delayed append truncates nothing', () => {
      const c = leaderCluster();
      c.propose(1, 'a');
      const appA = c.pending.find((m) => m.type === 'MsgApp' && m.to === 2)!;
      c.deliver({ type: 'MsgApp', to: 2 });
      c.propose(1, 'b');
      c.deliver({ type: 'MsgApp', to: 2 });
      c.propose(1, 'c');
      c.deliver({ type: 'MsgApp', to: 2 });
      const acks = c.drop({ from: 2 });
      c.drop();
      const before = c.log(2);
      assert.equal(before.length, 7);
      assert.equal(c.raw(2).raft.raftLog.committed, 4, 'a, b, c are not known committed: nothing protects them');
      // The first append (entry 5 only) arrives again, late.
      c.raw(2).step(appA);
      c.process(2);
      assert.deepEqual(c.log(2), before, 'entries 6 and 7 survive');
      const [resp] = c.drop({ from: 2 });
      assert.deepEqual([resp?.type, resp?.index, resp?.reject], ['MsgAppResp', 5, false], 'acknowledges what the message covered');
      c.raw(1).step(acks[acks.length - 1]!);
      assert.equal(progress(c, 1, 2).matchIndex, 7);
      c.raw(1).step(resp!);
      assert.equal(progress(c, 1, 2).matchIndex, 7, "the leader's matchIndex does not go back");
    });
  });

  describe('on a successful append the follower commits min(leaderCommit, last index the message covered)', () => {
    it('stale entries beyond the message are not committed', () => {
      const n = solo(2, { terms: [2, 2, 2], term: 2 }); // 4..6 @2; 5 and 6 are stale
      send(n, { type: 'MsgApp', from: 1, term: 3, index: 4, logTerm: 2, entries: [], commit: 9 });
      assert.equal(n.raw.raft.raftLog.committed, 4, 'not 6, our last index');
      send(n, { type: 'MsgApp', from: 1, term: 3, index: 4, logTerm: 2, entries: [ent(5, 3)], commit: 9 });
      assert.equal(n.raw.raft.raftLog.committed, 5);
      assert.deepEqual(logOf(n), ['4@2', '5@3']);
    });

    it('the commit index is limited by leaderCommit', () => {
      const n = solo(2, { term: 2 });
      send(n, { type: 'MsgApp', from: 1, term: 2, index: 3, logTerm: 1, entries: [ent(4, 2), ent(5, 2)], commit: 4 });
      assert.equal(n.raw.raft.raftLog.committed, 4);
    });

    it("a heartbeat carries at most the follower's matchIndex as commit", () => {
      const c = leaderCluster();
      c.propose(1, 'x');
      settle(c, { type: 'MsgApp', to: 3 });
      assert.equal(c.raw(1).raft.raftLog.committed, 5);
      assert.equal(progress(c, 1, 3).matchIndex, 4);
      c.tickHeartbeat(1);
      const hb = c.pending.find((m) => m.type === 'MsgHeartbeat' && m.to === 3)!;
      assert.equal(hb.commit, 4, 'node 3 may hold a different entry 5');
      assert.equal(c.pending.find((m) => m.type === 'MsgHeartbeat' && m.to === 2)!.commit, 5);
    });
  });

  describe('responses arrive late, twice or out of order: older terms ignored, matchIndex never lowered, stale rejections ignored, nextIndex > matchIndex', () => {
    it('a response from an older term is ignored', () => {
      const c = leaderCluster();
      c.propose(1, 'x');
      c.drop();
      c.raw(1).step(message({ type: 'MsgAppResp', from: 2, to: 1, term: 1, index: 5 }));
      c.process(1);
      assert.equal(progress(c, 1, 2).matchIndex, 4);
      assert.equal(c.raw(1).raft.raftLog.committed, 4, 'not committed on a stale answer');
      c.raw(1).step(message({ type: 'MsgAppResp', from: 2, to: 1, term: 2, index: 5 }));
      c.process(1);
      assert.equal(c.raw(1).raft.raftLog.committed, 5, 'control: the same answer in the current term commits');
    });

    it('reordered and duplicated acknowledgements never lower matchIndex', () => {
      const c = leaderCluster();
      for (const s of ['a', 'b', 'c']) {
        c.propose(1, s);
        c.deliver({ type: 'MsgApp', to: 2 });
      }
      const acks = c.drop({ from: 2, type: 'MsgAppResp' });
      assert.deepEqual(acks.map((m) => m.index), [5, 6, 7]);
      c.drop();
      const pr = progress(c, 1, 2);
      for (const m of [acks[2]!, acks[0]!, acks[1]!, acks[0]!, acks[2]!]) {
        c.raw(1).step(m);
        c.process(1);
        assert.equal(pr.matchIndex, 7);
        assert.ok(pr.nextIndex > pr.matchIndex);
      }
      assert.equal(pr.state, 'replicate');
    });

    it('a rejection about an index already known to match is ignored', () => {
      const c = leaderCluster();
      c.propose(1, 'a');
      c.stabilize();
      c.propose(1, 'b');
      c.drop(); // b in flight to 2: nextIndex 7, matchIndex 5
      const pr = progress(c, 1, 2);
      assert.deepEqual([pr.state, pr.matchIndex, pr.nextIndex], ['replicate', 5, 7]);
      c.raw(1).step(message({ type: 'MsgAppResp', from: 2, to: 1, term: 2, index: 4, reject: true, rejectHint: 3 }));
      c.process(1);
      assert.deepEqual([pr.state, pr.matchIndex, pr.nextIndex], ['replicate', 5, 7]);
      assert.deepEqual(c.drop(), [], 'nothing resent');
    });

    it('a rejection of the current probe does move nextIndex back (control)', () => {
      const c = leaderCluster();
      c.propose(1, 'a');
      c.drop();
      const pr = progress(c, 1, 2);
      c.raw(1).step(message({ type: 'MsgAppResp', from: 2, to: 1, term: 2, index: 5, reject: true, rejectHint: 4, logTerm: 2 }));
      c.process(1);
      assert.equal(pr.state, 'probe');
      assert.equal(pr.nextIndex, 5);
      assert.ok(pr.nextIndex > pr.matchIndex);
    });
  });

  describe('fast backtracking: a rejection carries a hint, so the leader skips at least a term per round trip (§5.3, end)', () => {
    // The logs of Figure 7 of the paper: the leader of term 8 and followers (a)-(f).
    const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers: Record<string, number[]> = {
      a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
      b: [1, 1, 1, 4],
      c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
      d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
      e: [1, 1, 1, 4, 4, 4, 4],
      f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    };
    for (const [name, log] of Object.entries(followers)) {
      it(`Figure 7 (${name}): the follower converges, with at most one rejection per conflicting term`, () => {
        // Index 1 (term 1) is in the snapshot both start from.
        const leader = solo(1, { snapIndex: 1, terms: leaderLog.slice(1), term: 8, config: { preVote: false } });
        const follower = solo(2, { snapIndex: 1, terms: log.slice(1), term: 8 });
        leader.raw.campaign();
        drain(leader);
        const appends = send(leader, { type: 'MsgVoteResp', from: 3, term: 9 }).filter((m) => m.to === 2);
        assert.equal(leader.raw.raft.state, 'leader');
        const delivered = exchange([leader, follower], appends);
        const rejections = delivered.filter((m) => m.type === 'MsgAppResp' && m.reject).length;
        // Entries of the follower that the leader does not share, and their distinct terms.
        let common = 0;
        while (common < Math.min(log.length, leaderLog.length) && log[common] === leaderLog[common]) common++;
        const conflictingTerms = new Set(log.slice(common)).size;
        const missing = leaderLog.length - common; // how far naive one-by-one backtracking would go
        assert.ok(rejections <= Math.max(1, conflictingTerms), `${rejections} rejections for ${conflictingTerms} conflicting terms`);
        if (missing > 2) assert.ok(rejections < missing, `fewer rejections (${rejections}) than entries to back over (${missing})`);
        assert.deepEqual(logOf(follower), logOf(leader), 'converged');
      });
    }

    it('a long divergent suffix of two terms costs at most two round trips, not one per entry', () => {
      // After the shared 4@2 5@2: the leader has 20 entries of term 5, the follower 24 of terms 3 and 4.
      const leader = solo(1, { terms: [2, 2, ...Array<number>(20).fill(5)], term: 5, config: { preVote: false } });
      const follower = solo(2, { terms: [2, 2, ...Array<number>(12).fill(3), ...Array<number>(12).fill(4)], term: 5 });
      leader.raw.campaign();
      drain(leader);
      const appends = send(leader, { type: 'MsgVoteResp', from: 3, term: 6 }).filter((m) => m.to === 2);
      const delivered = exchange([leader, follower], appends);
      const probes = delivered.filter((m) => m.type === 'MsgApp' && m.to === 2).length;
      const rejections = delivered.filter((m) => m.type === 'MsgAppResp' && m.reject).length;
      assert.ok(rejections <= 2, `${rejections} rejections`);
      assert.ok(probes <= rejections + 2, `${probes} appends`);
      assert.deepEqual(logOf(follower), logOf(leader));
    });
  });
});

describe('Flow control: a bounded window of appends in flight, by count and by bytes; messages of bounded size; a bounded uncommitted tail', () => {
  const payload = (n: number) => new Uint8Array(n).fill(0x61);
  const entryBytesOf = (m: Message) => m.entries.reduce((n, e) => n + e.data.byteLength + 24, 0);
  const appendsTo = (c: ManualCluster, to: number) => c.pending.filter((m) => m.type === 'MsgApp' && m.to === to && m.entries.length > 0);

  it('the leader stops sending appends to a follower once the bytes in flight reach maxInflightBytes, and resumes as they are acknowledged', () => {
    const c = leaderCluster(3, { maxInflightMsgs: 100, maxInflightBytes: 1000, maxSizePerMsg: 1 });
    for (let i = 0; i < 20; i++) assert.equal(c.propose(1, payload(100)), undefined);
    const inFlight = appendsTo(c, 2);
    assert.ok(inFlight.length < 20, `${inFlight.length} appends in flight: the window is bounded`);
    // Each carries one entry of 124 bytes: the window fills at the message that reaches 1000.
    const allButLast = inFlight.slice(0, -1).reduce((n, m) => n + entryBytesOf(m), 0);
    assert.ok(allButLast < 1000, `${allButLast} bytes were in flight before the last append`);
    assert.equal(inFlight.length, Math.ceil(1000 / 124), 'exactly as many appends as the byte budget allows');
    c.stabilize();
    assert.equal(c.node(2).storage.lastIndex(), c.node(1).storage.lastIndex(), 'acknowledgements reopen the window: everything arrives');
  });

  it('one append carries at most maxSizePerMsg bytes of entries, and always at least one entry', () => {
    const c = leaderCluster(3, { maxSizePerMsg: 300 });
    c.cut(1, 2);
    for (let i = 0; i < 10; i++) c.propose(1, payload(100));
    c.propose(1, payload(1000)); // larger than a message: goes alone
    settle(c);
    c.heal();
    const delivered: Message[] = [];
    for (let round = 0; round < 50 && c.node(2).storage.lastIndex() < c.node(1).storage.lastIndex(); round++) {
      c.tickHeartbeat(1);
      delivered.push(...c.stabilize());
    }
    const appends = delivered.filter((m) => m.type === 'MsgApp' && m.to === 2 && m.entries.length > 0);
    assert.ok(appends.some((m) => m.entries.length > 1), 'catching up batches entries');
    for (const m of appends) {
      assert.ok(m.entries.length === 1 || entryBytesOf(m) <= 300, `an append of ${m.entries.length} entries, ${entryBytesOf(m)} bytes`);
    }
    assert.ok(appends.some((m) => m.entries.length === 1 && m.entries[0]!.data.byteLength === 1000), 'the oversized entry went alone');
    assert.equal(c.node(2).storage.lastIndex(), c.node(1).storage.lastIndex());
  });

  it('a leader whose uncommitted tail exceeds maxUncommittedEntriesBytes refuses proposals (uncommitted-limit) until it commits', () => {
    const c = leaderCluster(3, { maxUncommittedEntriesBytes: 500 });
    c.cut(1, 2);
    c.cut(1, 3);
    let accepted = 0;
    let refusal: string | undefined;
    for (let i = 0; i < 20 && refusal === undefined; i++) {
      refusal = c.propose(1, payload(100));
      if (refusal === undefined) accepted++;
    }
    assert.match(refusal ?? '', /PROPOSAL_DROPPED.*uncommitted-limit/);
    assert.ok(accepted >= 5 && accepted <= 6, `${accepted} proposals of 100 bytes accepted under a 500-byte limit`);
    c.heal();
    c.tickHeartbeat(1);
    for (let round = 0; round < 20; round++) {
      c.tickHeartbeat(1);
      c.stabilize();
    }
    assert.equal(c.propose(1, payload(100)), undefined, 'committing the tail frees the budget');
  });
});

// ===========================================================================
// Commitment

describe('Commitment', () => {
  describe('a leader commits an entry of an earlier term only with an entry of its own term after it (§5.4.2, Figure 8); a new leader appends an empty entry (§8)', () => {
    it('an old-term entry stored on a majority is not committed until the current-term entry is', () => {
      // Node 1 led term 2 and wrote 4@2 (node 2 has it too); it now leads term 4.
      const n = solo(1, { terms: [2], term: 3, config: { preVote: false } });
      makeLeader(n, [2]);
      drain(n);
      assert.deepEqual(logOf(n), ['4@2', '5@4'], 'the new leader appended an empty entry of its term');
      assert.equal(n.raw.raft.raftLog.term(5), 4);
      assert.equal(n.raw.raft.raftLog.slice(5, 6, Infinity)[0]!.data.byteLength, 0);
      // Node 2 acknowledges entry 4: leader + 2 store it (a majority of 3), but it is of term 2.
      send(n, { type: 'MsgAppResp', from: 2, term: 4, index: 4 });
      assert.equal(n.raw.raft.prs.progress.get(2)!.matchIndex, 4);
      assert.equal(n.raw.raft.raftLog.committed, 3, 'Figure 8: not committed by counting replicas');
      // Once the empty entry of term 4 is on a majority, both commit.
      send(n, { type: 'MsgAppResp', from: 2, term: 4, index: 5 });
      assert.equal(n.raw.raft.raftLog.committed, 5);
    });

    it("in a cluster, the new leader's empty entry commits its predecessors' entries without any client request", () => {
      const c = leaderCluster(3, { checkQuorum: false }); // no stickiness: node 3 votes at once
      c.propose(1, 'x'); // 5@2, on every node but committed only at the leader
      c.deliver({ type: 'MsgApp' });
      c.deliver({ type: 'MsgAppResp' });
      c.drop();
      assert.equal(c.raw(2).raft.raftLog.committed, 4);
      c.crash(1);
      c.campaign(2);
      settle(c);
      assert.equal(c.leader(), 2);
      const r2 = c.raw(2).raft;
      assert.equal(r2.raftLog.lastTerm(), r2.term, 'an entry of the new term');
      assert.equal(r2.raftLog.committed, 6, 'x (5@2) committed through the empty 6@3');
      assert.equal(c.raw(3).raft.raftLog.committed, 6);
    });
  });

  describe('committed entries are applied once and in order; applied never passes commit', () => {
    it('through elections, crashes and restarts every node applies a gap-free sequence within its commit index', () => {
      // Watch every Ready of every RawNode incarnation, including the first one after a restart.
      const violations: string[] = [];
      const nextToApply = new WeakMap<RawNode, number>();
      let observed = 0;
      const original = RawNode.prototype.ready;
      RawNode.prototype.ready = function (this: RawNode): Ready {
        const log = this.raft.raftLog;
        if (!nextToApply.has(this)) nextToApply.set(this, log.applied + 1);
        const rd = original.call(this);
        for (const e of rd.committedEntries) {
          observed++;
          const want = nextToApply.get(this)!;
          if (e.index !== want) violations.push(`node ${this.id} applied ${e.index}, expected ${want}`);
          if (e.index > log.committed) violations.push(`node ${this.id} applied ${e.index} beyond commit ${log.committed}`);
          nextToApply.set(this, e.index + 1);
        }
        return rd;
      };
      try {
        const c = ManualCluster.withVoters(5, {}, 7);
        const rng = new Random(3);
        let restarts = 0;
        for (let step = 0; step < 400; step++) {
          const id = 1 + rng.int(5);
          if (c.node(id).up) c.tick(id);
          if (rng.chance(0.2)) c.drop({ to: 1 + rng.int(5) });
          c.deliver();
          const l = c.leader();
          if (l !== undefined && step % 3 === 0) c.propose(l, `v${step}`);
          if (l !== undefined && step % 97 === 50) {
            if (step > 200) c.snapshot(l, 1);
            c.crash(l);
          }
          if (step % 97 === 80) {
            for (const d of c.ids()) {
              if (!c.node(d).up) {
                c.restart(d);
                restarts++;
              }
            }
          }
          for (const d of c.ids()) {
            if (!c.node(d).up) continue;
            const log = c.raw(d).raft.raftLog;
            if (log.applied > log.committed) violations.push(`node ${d}: applied ${log.applied} > commit ${log.committed}`);
          }
        }
        for (const d of c.ids()) if (!c.node(d).up) c.restart(d);
        electByTicks(c);
        const applied = Math.max(...c.ids().map((d) => c.raw(d).raft.raftLog.applied));
        assert.deepEqual(violations, []);
        assert.ok(applied > 50, `the run applied only ${applied} entries`);
        assert.ok(restarts >= 2, `only ${restarts} restarts`);
        assert.ok(observed > 5 * applied, `watched ${observed} applications for ${applied} entries on 5 nodes`);
      } finally {
        RawNode.prototype.ready = original;
      }
    });

    it('a snapshot is taken at the applied index, never beyond it', () => {
      const c = leaderCluster();
      for (const s of ['a', 'b', 'c']) c.propose(1, s);
      c.deliver({ type: 'MsgApp', to: 2 });
      // Node 2 holds a, b, c but has not learnt they are committed.
      const r2 = c.raw(2).raft.raftLog;
      assert.ok(r2.lastIndex() > r2.applied);
      const at = c.snapshot(2);
      assert.equal(at, r2.applied);
      assert.equal(c.node(2).storage.snapshot().metadata.index, r2.applied);
      assert.ok(at <= r2.committed);
    });
  });
});

// ===========================================================================
// Reads

describe('Reads', () => {
  describe('ReadIndex (diss. §6.4): needs an entry committed in the current term, then a heartbeat round sent after the request and acknowledged by a quorum', () => {
    it('a new leader holds reads until its own empty entry commits, so the read index covers its predecessor\'s commits', () => {
      const c = leaderCluster(3, { checkQuorum: false });
      c.propose(1, 'x'); // 5@2: committed by node 1, which then crashes before telling the others
      c.deliver({ type: 'MsgApp' });
      c.deliver({ type: 'MsgAppResp' });
      assert.equal(c.raw(1).raft.raftLog.committed, 5);
      c.drop();
      c.crash(1);
      c.campaign(2);
      for (let i = 0; i < 5; i++) c.deliver({ type: ['MsgPreVote', 'MsgPreVoteResp', 'MsgVote', 'MsgVoteResp'] });
      assert.equal(c.leader(), 2);
      assert.equal(c.raw(2).raft.raftLog.committed, 4, 'the new leader does not know 5 is committed');
      c.readIndex(2, 'r');
      assert.deepEqual(c.node(2).readStates, [], 'held: answering now would give 4 and miss x');
      assert.ok(!c.pending.some((m) => m.type === 'MsgHeartbeat'), 'not even a heartbeat round yet');
      c.stabilize();
      assert.deepEqual(c.node(2).readStates.map((rs) => rs.index), [6]);
    });

    it('only a heartbeat round sent after the request counts, and only once a quorum acknowledged it', () => {
      const c = leaderCluster(5);
      const commit = c.raw(1).raft.raftLog.committed;
      c.tickHeartbeat(1); // round r
      c.deliver({ type: 'MsgHeartbeat' });
      // Responses to round r are in flight when the read arrives.
      c.readIndex(1, 'r');
      assert.deepEqual(c.node(1).readStates, []);
      c.deliver({ type: 'MsgHeartbeatResp' });
      assert.deepEqual(c.node(1).readStates, [], 'all four acks of the older round are not enough');
      c.deliver({ type: 'MsgHeartbeat', to: 2 });
      c.deliver({ type: 'MsgHeartbeatResp' });
      assert.deepEqual(c.node(1).readStates, [], 'leader + 1 of 5 is not a quorum');
      c.deliver({ type: 'MsgHeartbeat', to: 3 });
      c.deliver({ type: 'MsgHeartbeatResp' });
      assert.deepEqual(c.node(1).readStates.map((rs) => [rs.index, new TextDecoder().decode(rs.context)]), [[commit, 'r']]);
    });

    it('a follower asks the leader for the read index, which may be ahead of its own apply: it must wait for it', () => {
      const c = leaderCluster();
      c.propose(1, 'x');
      settle(c, { type: 'MsgApp', to: 3 }); // node 3 lags: x committed without it
      assert.equal(c.raw(1).raft.raftLog.committed, 5);
      c.readIndex(3, 'f');
      assert.ok(c.pending.some((m) => m.type === 'MsgReadIndex' && m.from === 3 && m.to === 1), 'forwarded to the leader');
      settle(c, { type: 'MsgApp', to: 3 });
      const [rs] = c.node(3).readStates;
      assert.equal(rs?.index, 5, "the leader's commit index");
      assert.equal(c.raw(3).raft.raftLog.applied, 4, 'serving now would miss x');
      c.tickHeartbeat(1);
      c.stabilize();
      assert.ok(c.raw(3).raft.raftLog.applied >= rs!.index, 'after catching up the read can be served');
    });
  });

  describe('lease reads (diss. §6.4.1) need CheckQuorum and stop when leadership is being transferred', () => {
    it('lease reads require CheckQuorum', () => {
      const storage = new MemoryStorage();
      assert.throws(
        () => new RawNode({ id: 1, electionTick: T, heartbeatTick: 1, storage, random: new Random(1), readOnlyOption: 'leaseBased', checkQuorum: false }),
        InvalidConfigError,
      );
    });

    /** A lease-read cluster whose leader just had a heartbeat round (sent at tick `sentAt`) acknowledged. */
    function leaseCluster(): { c: ManualCluster; l: number; f: number; sentAt: number } {
      const c = ManualCluster.withVoters(3, { readOnlyOption: 'leaseBased' });
      const l = electByTicks(c);
      c.tickHeartbeat(l);
      const sentAt = c.raw(l).raft.tickCount;
      c.stabilize();
      const f = c.ids().find((id) => id !== l)!;
      return { c, l, f, sentAt };
    }

    it('within the lease a read is answered at once, without a heartbeat round', () => {
      const { c, l } = leaseCluster();
      c.readIndex(l, 'lease');
      assert.equal(c.node(l).readStates.length, 1);
      assert.ok(!c.pending.some((m) => m.type === 'MsgHeartbeat'));
    });

    it('during a transfer a read needs a heartbeat round', () => {
      const { c, l, f } = leaseCluster();
      c.propose(l, 'x');
      settle(c, { type: 'MsgApp', to: f }); // the target lags, so the transfer stays pending
      c.transferLeader(l, f);
      assert.equal(c.raw(l).raft.leadTransferee, f);
      c.drop({ type: 'MsgApp', to: f });
      c.readIndex(l, 'during');
      assert.deepEqual(c.node(l).readStates, [], 'not answered from the lease');
      assert.ok(c.pending.some((m) => m.type === 'MsgHeartbeat' && m.from === l), 'a confirmation round instead');
    });

    it('once TimeoutNow was sent the lease is gone for the term, even if the transfer is abandoned', () => {
      const { c, l, f } = leaseCluster();
      c.transferLeader(l, f);
      assert.equal(c.drop({ type: 'MsgTimeoutNow' }).length, 1, 'target up to date: TimeoutNow at once (lost here)');
      for (let i = 0; i < T; i++) {
        c.tick(l);
        c.deliver();
      }
      assert.equal(c.raw(l).raft.leadTransferee, 0, 'abandoned');
      assert.equal(c.leader(), l);
      c.drop();
      c.readIndex(l, 'after');
      assert.deepEqual(c.node(l).readStates, []);
      assert.ok(c.pending.some((m) => m.type === 'MsgHeartbeat'));
    });

    it('the lease ends a safety margin before an election timeout after the last acknowledged round was sent', () => {
      const { c, l, sentAt } = leaseCluster();
      const r = c.raw(l).raft;
      assert.equal(r.leaseTicks, T - 2, 'default margin: 2 ticks for T = 10');
      c.partition([l], c.ids().filter((id) => id !== l)); // no more acknowledgements
      const seen: [tick: number, served: boolean][] = [];
      while (r.state === 'leader' && seen.length < 2 * T) {
        c.tick(l);
        c.drop();
        const before = c.node(l).readStates.length;
        c.readIndex(l, `read-${seen.length}`);
        c.drop();
        seen.push([r.tickCount, c.node(l).readStates.length > before]);
      }
      for (const [tick, served] of seen) assert.equal(served, tick < sentAt + r.leaseTicks, `tick ${tick}, round sent at ${sentAt}`);
      assert.ok(seen.some(([, s]) => s) && seen.some(([, s]) => !s), JSON.stringify(seen));
    });
  });
});

// ===========================================================================
// Membership

describe('Membership', () => {
  const JOINT = { voters: [1, 4, 5], outgoing: [1, 2, 3], config: { preVote: false } };

  describe('joint consensus (§6): elections and commitment need majorities of both C_old and C_new', () => {
    it('a majority of C_old alone does not elect; adding one of C_new does', () => {
      const n = solo(1, JOINT);
      n.raw.campaign();
      const reqs = drain(n).filter((m) => m.type === 'MsgVote');
      assert.deepEqual(reqs.map((m) => m.to).sort(), [2, 3, 4, 5], 'asks both halves');
      const term = n.raw.raft.term;
      send(n, { type: 'MsgVoteResp', from: 2, term });
      send(n, { type: 'MsgVoteResp', from: 3, term });
      assert.equal(n.raw.raft.state, 'candidate', 'C_old won, C_new pending');
      send(n, { type: 'MsgVoteResp', from: 4, term });
      assert.equal(n.raw.raft.state, 'leader');
    });

    it('a majority of C_new alone does not elect; losing C_new loses', () => {
      const n = solo(1, JOINT);
      n.raw.campaign();
      drain(n);
      const term = n.raw.raft.term;
      send(n, { type: 'MsgVoteResp', from: 4, term });
      send(n, { type: 'MsgVoteResp', from: 5, term });
      assert.equal(n.raw.raft.state, 'candidate', 'C_new won, C_old pending');
      const m = solo(1, JOINT);
      m.raw.campaign();
      drain(m);
      send(m, { type: 'MsgVoteResp', from: 2, term, reject: false });
      send(m, { type: 'MsgVoteResp', from: 4, term, reject: true });
      send(m, { type: 'MsgVoteResp', from: 5, term, reject: true });
      assert.equal(m.raw.raft.state, 'follower', 'C_new lost');
    });

    it('an entry commits only once both halves have a majority', () => {
      const n = solo(1, JOINT);
      makeLeader(n, [2, 4]);
      drain(n);
      const last = n.raw.raft.raftLog.lastIndex();
      const term = n.raw.raft.term;
      send(n, { type: 'MsgAppResp', from: 2, term, index: last });
      send(n, { type: 'MsgAppResp', from: 3, term, index: last });
      assert.equal(n.raw.raft.raftLog.committed, 3, 'all of C_old, but only the leader of C_new');
      send(n, { type: 'MsgAppResp', from: 5, term, index: last });
      assert.equal(n.raw.raft.raftLog.committed, last);
    });

    it('in a cluster: a two-voter change goes through a joint configuration and leaves it automatically', () => {
      const c = leaderCluster();
      c.add(4);
      c.add(5);
      assert.equal(
        c.proposeConfChange(1, { transition: 'auto', changes: [{ type: 'addNode', nodeId: 4 }, { type: 'addNode', nodeId: 5 }] }),
        undefined,
      );
      const seen: string[] = [];
      for (let i = 0; i < 50 && c.pending.length > 0; i++) {
        c.deliver();
        const cs = c.raw(1).status().confState;
        const s = `${cs.voters.join(',')}|${cs.votersOutgoing.join(',')}`;
        if (seen[seen.length - 1] !== s) seen.push(s);
      }
      assert.deepEqual(seen, ['1,2,3|', '1,2,3,4,5|1,2,3', '1,2,3,4,5|'], 'C_old, then C_old,new, then C_new');
    });
  });

  describe('learners receive the log but never vote and never count towards a quorum', () => {
    it('a candidate does not ask learners, and their votes do not count', () => {
      const n = solo(1, { voters: [1, 2, 3], learners: [4, 5], config: { preVote: false } });
      n.raw.campaign();
      assert.deepEqual(drain(n).map((m) => m.to).sort(), [2, 3]);
      const term = n.raw.raft.term;
      send(n, { type: 'MsgVoteResp', from: 4, term });
      send(n, { type: 'MsgVoteResp', from: 5, term });
      assert.equal(n.raw.raft.state, 'candidate');
      send(n, { type: 'MsgVoteResp', from: 2, term });
      assert.equal(n.raw.raft.state, 'leader');
    });

    it("learners' acknowledgements do not commit", () => {
      const n = solo(1, { voters: [1, 2, 3], learners: [4, 5], config: { preVote: false } });
      makeLeader(n, [2]);
      drain(n);
      const last = n.raw.raft.raftLog.lastIndex();
      const term = n.raw.raft.term;
      send(n, { type: 'MsgAppResp', from: 4, term, index: last });
      send(n, { type: 'MsgAppResp', from: 5, term, index: last });
      assert.equal(n.raw.raft.raftLog.committed, 3);
      send(n, { type: 'MsgAppResp', from: 3, term, index: last });
      assert.equal(n.raw.raft.raftLog.committed, last);
    });

    it('a learner never campaigns', () => {
      const n = solo(4, { voters: [1, 2, 3], learners: [4] });
      for (let i = 0; i < 5 * T; i++) n.raw.tick();
      n.raw.campaign();
      assert.equal(n.raw.raft.state, 'follower');
      assert.equal(n.raw.raft.term, 1);
      assert.deepEqual(drain(n), []);
    });

    it('in a cluster: a learner gets every entry but the voters alone commit', () => {
      const c = leaderCluster();
      c.add(4);
      c.proposeConfChange(1, { transition: 'auto', changes: [{ type: 'addLearner', nodeId: 4 }] });
      c.stabilize();
      c.propose(1, 'x');
      settle(c, { type: 'MsgApp', to: 2 }, { type: 'MsgApp', to: 3 });
      const last = c.raw(1).raft.raftLog.lastIndex();
      assert.equal(c.raw(4).raft.raftLog.lastIndex(), last, 'the learner has x');
      assert.equal(c.raw(1).raft.raftLog.committed, last - 1, 'leader + learner: not committed');
      c.tickHeartbeat(1); // the voters get x after the next heartbeat
      c.stabilize();
      assert.equal(c.raw(1).raft.raftLog.committed, last);
    });
  });

  describe('only one configuration change may be pending at a time', () => {
    const addLearner = (id: number): ConfChange => ({ transition: 'auto', changes: [{ type: 'addLearner', nodeId: id }] });

    it('a second change is refused until the first is applied', () => {
      const c = leaderCluster();
      assert.equal(c.proposeConfChange(1, addLearner(4)), undefined);
      assert.throws(() => c.raw(1).proposeConfChange(addLearner(5)), isDropped('conf-change-pending'));
      c.stabilize();
      assert.deepEqual(c.raw(1).status().confState.learners, [4]);
      assert.equal(c.proposeConfChange(1, addLearner(5)), undefined);
      c.stabilize();
      assert.deepEqual(c.raw(1).status().confState.learners, [4, 5]);
    });

    it('a forwarded second change is replaced by an empty entry', () => {
      const c = leaderCluster();
      c.proposeConfChange(1, addLearner(4));
      c.drop();
      c.raw(2).proposeConfChange(addLearner(5)); // forwarded to the leader
      c.process(2);
      c.deliver({ type: 'MsgProp' });
      const r = c.raw(1).raft.raftLog;
      const last = r.slice(r.lastIndex(), r.lastIndex() + 1, Infinity)[0]!;
      assert.deepEqual([last.type, last.data.byteLength], ['normal', 0]);
    });

    it('a new leader refuses a change until it has applied everything up to its election', () => {
      const c = leaderCluster(3, { checkQuorum: false });
      c.propose(1, 'x');
      c.deliver({ type: 'MsgApp' });
      c.drop();
      c.crash(1);
      c.campaign(2);
      for (let i = 0; i < 5; i++) c.deliver({ type: ['MsgPreVote', 'MsgPreVoteResp', 'MsgVote', 'MsgVoteResp'] });
      assert.equal(c.leader(), 2);
      assert.throws(() => c.raw(2).proposeConfChange(addLearner(4)), isDropped('conf-change-pending'));
      settle(c);
      assert.equal(c.proposeConfChange(2, addLearner(4)), undefined);
    });
  });

  describe('a leader removed by the new configuration steps down once it applies; until then it leads without counting itself', () => {
    it('leads while the removal is uncommitted, steps down when it applies, never campaigns again', () => {
      const c = leaderCluster();
      c.proposeConfChange(1, { transition: 'auto', changes: [{ type: 'removeNode', nodeId: 1 }] });
      c.deliver({ type: 'MsgApp' });
      assert.equal(c.raw(1).raft.state, 'leader', 'not committed yet');
      c.deliver({ type: 'MsgAppResp' });
      assert.equal(c.raw(1).raft.state, 'follower', 'committed and applied: stepped down');
      assert.deepEqual(c.raw(1).status().confState.voters, [2, 3]);
      c.stabilize();
      for (let i = 0; i < 5 * T; i++) {
        c.tick(1);
        c.tick(2);
        c.tick(3);
        c.deliver();
        assert.equal(c.raw(1).raft.state, 'follower', 'the removed node never campaigns');
      }
      assert.ok(c.leader() === 2 || c.leader() === 3, `the others elected a leader: ${c.leader()}`);
    });

    it('with stepDownOnRemoval off, the removed leader replicates but no longer counts itself', () => {
      const c = leaderCluster(3, { stepDownOnRemoval: false });
      c.proposeConfChange(1, { transition: 'auto', changes: [{ type: 'removeNode', nodeId: 1 }] });
      c.deliver({ type: 'MsgApp' });
      c.propose(1, 'y'); // still a member until the removal applies
      const removal = c.raw(1).raft.raftLog.lastIndex() - 1;
      c.deliver({ type: 'MsgAppResp' }); // commits and applies the removal
      assert.equal(c.raw(1).raft.raftLog.committed, removal);
      assert.equal(c.raw(1).raft.state, 'leader');
      assert.deepEqual(c.raw(1).status().confState.voters, [2, 3]);
      c.deliver({ type: 'MsgApp', to: 2 });
      c.deliver({ type: 'MsgAppResp', from: 2 });
      assert.equal(c.raw(1).raft.raftLog.committed, removal, 'leader + node 2 were a majority of {1,2,3}, not of {2,3}');
      c.deliver({ type: 'MsgApp', to: 3 });
      c.deliver({ type: 'MsgAppResp', from: 3 });
      assert.equal(c.raw(1).raft.raftLog.committed, removal + 1);
      assert.throws(() => c.raw(1).propose(enc('z')), isDropped('removed'));
    });
  });

  describe("a node's configuration is part of every snapshot", () => {
    it('a node that joins through a snapshot learns the configuration from it', () => {
      const c = leaderCluster();
      c.proposeConfChange(1, { transition: 'auto', changes: [{ type: 'addLearner', nodeId: 4 }] });
      c.propose(1, 'x');
      c.stabilize(); // messages to 4 go nowhere: it does not exist yet
      const at = c.snapshot(1);
      const snap = c.node(1).storage.snapshot();
      assert.equal(snap.metadata.index, at);
      assert.deepEqual(snap.metadata.confState, c.raw(1).status().confState);
      assert.deepEqual(snap.metadata.confState.learners, [4]);
      c.add(4);
      c.tickHeartbeat(1);
      const sent = c.stabilize();
      assert.ok(sent.some((m) => m.type === 'MsgSnap' && m.to === 4), 'caught up by a snapshot');
      assert.deepEqual(c.raw(4).status().confState, snap.metadata.confState);
      assert.equal(c.raw(4).raft.isLearner, true);
      assert.deepEqual(c.node(4).storage.snapshot().metadata.confState, snap.metadata.confState);
    });

    it('a restart from a snapshot restores its configuration, joint ones included', () => {
      const cs: ConfState = { voters: [1, 2, 4], votersOutgoing: [1, 2, 3], learners: [5], learnersNext: [3], autoLeave: true };
      const storage = new MemoryStorage();
      storage.applySnapshot({ metadata: { index: 9, term: 3, confState: cs }, data: new Uint8Array(0) });
      const raw = new RawNode({ id: 1, electionTick: T, heartbeatTick: 1, storage, random: new Random(1) });
      assert.deepEqual(raw.status().confState, cs);
    });
  });
});

// ===========================================================================
// Snapshots

describe('Snapshots (§7)', () => {
  const snapshot = (index: number, term: number, voters = [1, 2, 3]): Snapshot => ({
    metadata: { index, term, confState: CONF(voters) },
    data: enc(`state@${index}`),
  });

  describe('on install: if the log holds the snapshot\'s last entry keep what follows, otherwise discard the log; never install one older than the commit index', () => {
    it('a matching entry: the suffix is kept and only the commit index moves', () => {
      const n = solo(2, { terms: [2, 2, 2, 2, 2], term: 2, commit: 4 }); // 4..8 @2
      const out = send(n, { type: 'MsgSnap', from: 1, term: 2, snapshot: snapshot(6, 2) });
      assert.deepEqual(logOf(n), ['4@2', '5@2', '6@2', '7@2', '8@2'], 'entries 7 and 8 kept');
      assert.equal(n.raw.raft.raftLog.committed, 6);
      assert.ok(n.readies.every((rd) => rd.snapshot === undefined), 'nothing installed');
      assert.deepEqual(out.map((m) => [m.type, m.index, m.reject]), [['MsgAppResp', 6, false]]);
    });

    it('a different term at that index: the whole log is replaced by the snapshot', () => {
      const n = solo(2, { terms: [2, 2, 2, 2, 2], term: 2, commit: 4 });
      const out = send(n, { type: 'MsgSnap', from: 1, term: 3, snapshot: snapshot(6, 3) });
      assert.equal(n.raw.raft.raftLog.firstIndex(), 7);
      assert.equal(n.raw.raft.raftLog.lastIndex(), 6);
      assert.equal(n.raw.raft.raftLog.committed, 6);
      assert.equal(n.storage.snapshot().metadata.index, 6);
      assert.equal(n.storage.lastIndex(), 6, 'entries 7 and 8 discarded on disk too');
      assert.deepEqual(out.map((m) => [m.type, m.index]), [['MsgAppResp', 6]]);
    });

    it('a snapshot beyond the log: installed', () => {
      const n = solo(2, { terms: [2, 2], term: 2, commit: 4 });
      send(n, { type: 'MsgSnap', from: 1, term: 2, snapshot: snapshot(9, 2) });
      assert.equal(n.raw.raft.raftLog.lastIndex(), 9);
      assert.equal(n.storage.snapshot().metadata.index, 9);
    });

    it('a snapshot at or below the commit index is ignored', () => {
      for (const index of [4, 6]) {
        const n = solo(2, { terms: [2, 2, 2, 2, 2], term: 2, commit: 6 });
        const out = send(n, { type: 'MsgSnap', from: 1, term: 2, snapshot: snapshot(index, index === 4 ? 2 : 5) });
        assert.deepEqual(logOf(n), ['4@2', '5@2', '6@2', '7@2', '8@2'], `snapshot at ${index}`);
        assert.equal(n.raw.raft.raftLog.committed, 6);
        assert.equal(n.storage.snapshot().metadata.index, 3);
        assert.deepEqual(out.map((m) => [m.type, m.index]), [['MsgAppResp', 6]], 'answers with its commit index');
      }
    });
  });

  describe("after a restart, applying starts from the snapshot's index, not from the persisted commit index", () => {
    it('the entries after the snapshot are applied again', () => {
      const storage = new MemoryStorage();
      storage.applySnapshot({ metadata: { index: 10, term: 2, confState: CONF([1, 2, 3]) }, data: new Uint8Array(0) });
      storage.append([11, 12, 13, 14, 15].map((i) => ent(i, 2, `e${i}`)));
      storage.setHardState({ term: 2, vote: 0, commit: 15 });
      const raw = new RawNode({ id: 1, electionTick: T, heartbeatTick: 1, storage, random: new Random(1) });
      const rd = raw.ready();
      assert.deepEqual(rd.committedEntries.map((e) => e.index), [11, 12, 13, 14, 15]);
      assert.equal(raw.raft.raftLog.committed, 15);
    });

    it('a persisted commit index below the snapshot (a stale hard state) does not move applying back', () => {
      const storage = new MemoryStorage();
      storage.applySnapshot({ metadata: { index: 10, term: 2, confState: CONF([1, 2, 3]) }, data: new Uint8Array(0) });
      storage.append([ent(11, 2)]);
      storage.setHardState({ term: 2, vote: 0, commit: 7 });
      const raw = new RawNode({ id: 1, electionTick: T, heartbeatTick: 1, storage, random: new Random(1) });
      assert.equal(raw.raft.raftLog.committed, 10);
      assert.equal(raw.raft.raftLog.applied, 10);
      assert.ok(!raw.hasReady() || raw.ready().committedEntries.length === 0);
    });

    it('in a cluster: a node restarted after a snapshot re-applies only what follows the snapshot', () => {
      const c = leaderCluster();
      for (const s of ['a', 'b', 'c']) c.propose(1, s);
      c.stabilize();
      const at = c.snapshot(2, 5);
      c.propose(1, 'd');
      c.stabilize();
      const before = c.node(2).applied.length;
      c.crash(2);
      c.restart(2);
      const again = c.node(2).applied.slice(before).map((e) => e.index);
      assert.equal(again[0], at + 1);
      assert.deepEqual(again, Array.from({ length: c.raw(2).raft.raftLog.committed - at }, (_, k) => at + 1 + k));
    });
  });
});

// ===========================================================================
// Leadership transfer

describe('Leadership transfer (diss. §3.10)', () => {
  /** A cluster where node 2 lags behind the leader by one entry. */
  function lagging(): ManualCluster {
    const c = leaderCluster();
    c.propose(1, 'x');
    settle(c, { type: 'MsgApp', to: 2 });
    assert.equal(progress(c, 1, 2).matchIndex, 4);
    return c;
  }

  it('the leader refuses proposals while a transfer is under way', () => {
    const c = lagging();
    c.transferLeader(1, 2);
    assert.equal(c.raw(1).raft.leadTransferee, 2);
    assert.throws(() => c.raw(1).propose(enc('y')), isDropped('transferring'));
    assert.match(c.propose(1, 'y') ?? '', /^PROPOSAL_DROPPED/);
  });

  it('a proposal forwarded to a leader under transfer is refused back to the follower, which tells its caller', () => {
    const c = lagging();
    c.transferLeader(1, 2);
    assert.equal(c.propose(3, 'forwarded'), undefined, 'node 3 forwards it to the leader');
    c.deliver({ type: 'MsgProp' });
    const refusal = c.pending.find((m) => m.type === 'MsgPropResp');
    assert.ok(refusal && refusal.to === 3 && refusal.reject, 'the leader answers with a refusal');
    c.deliver({ type: 'MsgPropResp' });
    assert.deepEqual(
      c.node(3).dropped.map((d) => [new TextDecoder().decode(d.data), d.reason]),
      [['forwarded', 'transferring']],
      "node 3's Ready hands the refused proposal to the application",
    );
    assert.ok(!c.node(1).storage.entries(1, c.node(1).storage.lastIndex() + 1, Infinity).some((e) => text(e) === 'forwarded'), 'not in the log');
  });

  it('the target is brought up to date before it is sent TimeoutNow', () => {
    const c = lagging();
    c.transferLeader(1, 2);
    const toTarget: MessageType[] = [];
    for (let i = 0; i < 20 && !c.pending.some((m) => m.type === 'MsgTimeoutNow'); i++) {
      for (const m of c.pending) if (m.to === 2) toTarget.push(m.type);
      c.deliver();
    }
    assert.ok(toTarget.length > 0 && toTarget.every((t) => t === 'MsgApp'), `entries first: ${toTarget.join(' ')}`);
    assert.equal(c.pending.filter((m) => m.type === 'MsgTimeoutNow' && m.to === 2).length, 1, 'then TimeoutNow');
    assert.equal(progress(c, 1, 2).matchIndex, c.raw(1).raft.raftLog.lastIndex(), 'once the target holds the whole log');
    assert.equal(c.raw(2).raft.raftLog.lastIndex(), c.raw(1).raft.raftLog.lastIndex());
  });

  it('TimeoutNow makes the target campaign at once, bypassing PreVote and the voters\' stickiness', () => {
    const c = leaderCluster(); // PreVote and CheckQuorum on
    c.transferLeader(1, 2);
    c.deliver({ type: 'MsgTimeoutNow' });
    const r2 = c.raw(2).raft;
    assert.equal(r2.state, 'candidate', 'no pre-election');
    assert.equal(r2.term, 3);
    const reqs = c.pending.filter((m) => m.type === 'MsgVote' && m.from === 2);
    assert.equal(reqs.length, 2);
    assert.ok(reqs.every((m) => m.force), 'forced past stickiness');
    assert.equal(c.raw(3).raft.lead, 1, 'node 3 heard from the leader just now');
    c.stabilize();
    assert.equal(c.leader(), 2);
    assert.equal(c.raw(3).raft.lead, 2);
  });

  it('the transfer is abandoned after an election timeout', () => {
    const c = leaderCluster();
    c.cut(1, 2); // the TimeoutNow never arrives
    c.transferLeader(1, 2);
    for (let i = 0; i < T - 1; i++) {
      c.tick(1);
      c.deliver();
    }
    assert.equal(c.raw(1).raft.leadTransferee, 2, 'still trying');
    assert.throws(() => c.raw(1).propose(enc('y')), isDropped('transferring'));
    c.tick(1);
    c.deliver();
    assert.equal(c.raw(1).raft.leadTransferee, 0, 'abandoned');
    assert.equal(c.raw(1).raft.state, 'leader');
    assert.equal(c.propose(1, 'y'), undefined, 'proposals accepted again');
  });
});

// ===========================================================================
// Requests without a leader

describe('without a leader, proposals, reads and transfers are refused with ProposalDroppedError (code PROPOSAL_DROPPED)', () => {
  it('a follower that knows no leader', () => {
    const c = ManualCluster.withVoters(3);
    const raw = c.raw(1);
    assert.throws(() => raw.propose(enc('x')), isDropped('no-leader'));
    assert.throws(() => raw.proposeBatch([enc('x')]), isDropped('no-leader'));
    assert.throws(() => raw.readIndex(enc('r')), isDropped('no-leader'));
    assert.throws(() => raw.transferLeader(2), isDropped('no-leader'));
    assert.throws(() => raw.proposeConfChange({ transition: 'auto', changes: [{ type: 'addLearner', nodeId: 4 }] }), isDropped('no-leader'));
    assert.match(c.propose(1, 'x')!, /^PROPOSAL_DROPPED: /);
    assert.match(c.readIndex(1, 'r')!, /^PROPOSAL_DROPPED: /);
    assert.equal(raw.raft.raftLog.lastIndex(), 3, 'nothing entered the log');
  });

  it('a pre-candidate and a candidate', () => {
    for (const preVote of [true, false]) {
      const c = ManualCluster.withVoters(3, { preVote });
      c.campaign(1);
      assert.equal(c.raw(1).raft.state, preVote ? 'preCandidate' : 'candidate');
      assert.throws(() => c.raw(1).propose(enc('x')), isDropped('no-leader'));
      assert.throws(() => c.raw(1).readIndex(enc('x')), isDropped('no-leader'));
    }
  });

  it('a proposal forwarded to a node that knows no leader any more is refused back, not dropped silently', () => {
    const c = leaderCluster();
    // Node 1 restarts and knows no leader; node 2 still believes it leads.
    c.crash(1);
    c.restart(1);
    assert.equal(c.raw(1).raft.lead, 0);
    assert.equal(c.propose(2, 'late'), undefined, 'node 2 forwards it to node 1');
    c.deliver({ type: 'MsgProp' });
    c.deliver({ type: 'MsgPropResp' });
    assert.deepEqual(
      c.node(2).dropped.map((d) => [new TextDecoder().decode(d.data), d.reason]),
      [['late', 'no-leader']],
    );
  });
});

// ===========================================================================
// Clients (diss. §6.3): exactly-once through sessions, in the replicated state machine

describe('Clients (diss. §6.3)', () => {
  const entry = (cmd: KvEntry['cmd'], time: number): KvEntry => ({ cmd, time, client: 1, attempt: 0 });
  const inc = (session: number, seq: number, time = 0) =>
    entry({ kind: 'op', session, seq, input: { op: 'inc', key: 'n' } }, time);

  it('a repeated request (same session and sequence number) is answered with the saved response, not applied again', () => {
    const sm = new KvStateMachine(1000);
    assert.deepEqual(sm.apply(entry({ kind: 'register' }, 0), 7), { kind: 'registered', session: 7 });
    assert.deepEqual(sm.apply(inc(7, 1), 8), { kind: 'applied', output: { ok: true, value: '1' } });
    assert.deepEqual(sm.apply(inc(7, 1), 9), { kind: 'duplicate', output: { ok: true, value: '1' } });
    assert.equal(sm.read('n'), '1', 'incremented once');
    assert.deepEqual(sm.apply(inc(7, 2), 10), { kind: 'applied', output: { ok: true, value: '2' } });
    assert.deepEqual(sm.apply(inc(7, 1), 11), { kind: 'duplicate', output: undefined }, 'an older request: ignored');
    assert.equal(sm.read('n'), '2');
  });

  it('sessions expire by the time carried in the log, identically on every replica', () => {
    const log: KvEntry[] = [entry({ kind: 'register' }, 0), inc(1, 1, 10), entry({ kind: 'register' }, 500), inc(1, 2, 1200)];
    const replicas = [new KvStateMachine(1000), new KvStateMachine(1000)];
    const results = replicas.map((sm) => log.map((e, k) => sm.apply(e, k + 1)));
    assert.deepEqual(results[0], results[1]);
    assert.deepEqual(results[0]![3], { kind: 'expired' }, 'idle for more than the TTL by log time: not applied');
    assert.equal(replicas[0]!.read('n'), '1');
  });

  it('a client whose request timed out or was refused retries it with the same session and sequence number', () => {
    const sent: ClientRequest[] = [];
    let token = 0;
    const host: ClientHost = {
      sendRequest: (_to, req) => sent.push(req),
      wake: (_c, _at, t) => void (token = t),
      nodeIds: () => [1, 2, 3],
      onComplete: () => {},
    };
    const client = new SimClient(1000, new Random(5), host, 2, 100, 10);
    client.start(0);
    client.wake(0, token); // registers a session
    assert.equal(sent[0]?.register, true);
    client.onReply(1, { client: 1000, seq: 0, from: 1, session: 7, registration: sent[0]!.attempt });
    client.wake(2, token); // the first operation
    const first = sent[sent.length - 1]!;
    assert.deepEqual([first.session, first.seq], [7, 1]);
    client.wake(200, token); // timed out: the outcome is unknown
    const retry = sent[sent.length - 1]!;
    client.onReply(201, { client: 1000, seq: 1, from: 2, error: 'no-leader' }); // refused: nothing applied
    client.wake(300, token);
    const again = sent[sent.length - 1]!;
    for (const r of [retry, again]) {
      assert.deepEqual([r.session, r.seq, r.input], [first.session, first.seq, first.input], 'same identity, same command');
    }
    assert.deepEqual([first.attempt, retry.attempt, again.attempt], [1, 2, 3]);
  });

  it('the session table survives a snapshot, so a retry after restoring is still recognised', () => {
    const sm = new KvStateMachine(1000);
    sm.apply(entry({ kind: 'register' }, 0), 1);
    sm.apply(inc(1, 1), 2);
    const restored = KvStateMachine.restore(sm.snapshot(), 1000);
    assert.deepEqual(restored.apply(inc(1, 1), 3), { kind: 'duplicate', output: { ok: true, value: '1' } });
    assert.equal(restored.read('n'), '1');
  });
});
