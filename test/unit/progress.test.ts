// The leader's view of a follower (src/raft/progress.ts): matchIndex and
// nextIndex (§5.3), the probe/replicate/snapshot states, flow control, and
// the tracker's quorum questions.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Inflights } from '../../src/raft/inflights.js';
import { Progress, ProgressTracker } from '../../src/raft/progress.js';
import { JointConfig, MajorityConfig } from '../../src/raft/quorum.js';
import { Random } from '../../src/sim/random.js';

function progress(opts: { match?: number; next: number; state?: 'probe' | 'replicate' | 'snapshot'; window?: number }): Progress {
  const pr = new Progress(opts.next, new Inflights(opts.window ?? 256, 0), false, true);
  pr.matchIndex = opts.match ?? 0;
  if (opts.state === 'replicate') {
    pr.becomeReplicate();
    pr.nextIndex = opts.next; // as if appends up to next - 1 were sent optimistically
  } else if (opts.state === 'snapshot') {
    pr.becomeSnapshot(opts.next);
  }
  return pr;
}

describe('Progress.maybeUpdate', () => {
  it('raises matchIndex and pulls nextIndex above it', () => {
    const pr = progress({ match: 3, next: 4 });
    assert.equal(pr.maybeUpdate(7), true);
    assert.equal(pr.matchIndex, 7);
    assert.equal(pr.nextIndex, 8);
  });

  it('never lowers matchIndex: an older or equal acknowledgement is stale', () => {
    const pr = progress({ match: 7, next: 8 });
    assert.equal(pr.maybeUpdate(5), false);
    assert.equal(pr.maybeUpdate(7), false);
    assert.equal(pr.matchIndex, 7);
    assert.equal(pr.nextIndex, 8);
  });

  it('leaves an optimistic nextIndex alone when the acknowledgement is below it', () => {
    const pr = progress({ match: 3, next: 10, state: 'replicate' });
    assert.equal(pr.maybeUpdate(5), true);
    assert.equal(pr.matchIndex, 5);
    assert.equal(pr.nextIndex, 10);
  });

  it('unpauses a probe', () => {
    const pr = progress({ match: 3, next: 4 });
    pr.sentEntries(1, 30);
    assert.equal(pr.isPaused(), true);
    pr.maybeUpdate(4);
    assert.equal(pr.isPaused(), false);
  });
});

describe('Progress.maybeDecrTo', () => {
  it('replicate: a rejection above matchIndex sends nextIndex back to matchIndex + 1', () => {
    const pr = progress({ match: 5, next: 12, state: 'replicate' });
    assert.equal(pr.maybeDecrTo(9, 2), true);
    assert.equal(pr.nextIndex, 6);
    assert.equal(pr.matchIndex, 5);
  });

  it('replicate: a stale rejection (index <= matchIndex) is ignored', () => {
    const pr = progress({ match: 5, next: 12, state: 'replicate' });
    assert.equal(pr.maybeDecrTo(5, 1), false);
    assert.equal(pr.maybeDecrTo(3, 1), false);
    assert.equal(pr.nextIndex, 12);
    assert.equal(pr.matchIndex, 5);
    assert.equal(pr.state, 'replicate');
  });

  it('probe: only a rejection of the outstanding probe (nextIndex - 1) counts', () => {
    const pr = progress({ match: 0, next: 10 });
    // A rejection of an earlier probe (prevLogIndex 12, reordered) or a later one is stale.
    assert.equal(pr.maybeDecrTo(12, 3), false);
    assert.equal(pr.maybeDecrTo(7, 3), false);
    assert.equal(pr.nextIndex, 10);
    // The outstanding probe: back off to the hint + 1.
    assert.equal(pr.maybeDecrTo(9, 3), true);
    assert.equal(pr.nextIndex, 4);
  });

  it('probe: the hint is capped by the rejected index and floored above matchIndex', () => {
    const a = progress({ match: 0, next: 10 });
    a.maybeDecrTo(9, 50); // a hint beyond the rejected index cannot move nextIndex up
    assert.equal(a.nextIndex, 9);
    const b = progress({ match: 6, next: 10 });
    b.maybeDecrTo(9, 1); // nor below matchIndex + 1
    assert.equal(b.nextIndex, 7);
  });

  it('probe: unpauses, so that the next probe can go', () => {
    const pr = progress({ match: 0, next: 10 });
    pr.sentEntries(1, 30);
    assert.equal(pr.isPaused(), true);
    pr.maybeDecrTo(9, 4);
    assert.equal(pr.isPaused(), false);
  });
});

describe('Progress.isPaused', () => {
  it('probe: paused after one append until answered', () => {
    const pr = progress({ next: 5 });
    assert.equal(pr.isPaused(), false);
    pr.sentEntries(0, 0); // even an empty probe
    assert.equal(pr.isPaused(), true);
    assert.equal(pr.nextIndex, 5, 'a probe does not advance nextIndex');
  });

  it('replicate: paused only when the in-flight window is full', () => {
    const pr = progress({ match: 4, next: 5, state: 'replicate', window: 2 });
    pr.sentEntries(2, 60);
    assert.equal(pr.nextIndex, 7, 'replicate advances nextIndex optimistically');
    assert.equal(pr.isPaused(), false);
    pr.sentEntries(1, 30);
    assert.equal(pr.nextIndex, 8);
    assert.equal(pr.isPaused(), true);
    pr.maybeUpdate(6);
    pr.inflights.freeLE(6);
    assert.equal(pr.isPaused(), false);
  });

  it('replicate: an empty append does not take a window slot', () => {
    const pr = progress({ match: 4, next: 5, state: 'replicate', window: 1 });
    pr.sentEntries(0, 0);
    assert.equal(pr.inflights.count, 0);
    assert.equal(pr.isPaused(), false);
  });

  it('snapshot: always paused', () => {
    const pr = progress({ match: 2, next: 3 });
    pr.becomeSnapshot(20);
    assert.equal(pr.isPaused(), true);
  });
});

describe('Progress state transitions', () => {
  it('becomeReplicate: nextIndex = matchIndex + 1, window and pause cleared', () => {
    const pr = progress({ match: 4, next: 9 });
    pr.sentEntries(1, 10);
    pr.becomeReplicate();
    assert.equal(pr.state, 'replicate');
    assert.equal(pr.nextIndex, 5);
    assert.equal(pr.isPaused(), false);
  });

  it('becomeProbe from replicate: nextIndex = matchIndex + 1, window emptied', () => {
    const pr = progress({ match: 4, next: 5, state: 'replicate' });
    pr.sentEntries(3, 90);
    pr.becomeProbe();
    assert.equal(pr.state, 'probe');
    assert.equal(pr.nextIndex, 5);
    assert.equal(pr.inflights.count, 0);
  });

  it('becomeProbe from snapshot: probe just after the snapshot (or matchIndex, whichever is later)', () => {
    const a = progress({ match: 4, next: 5 });
    a.becomeSnapshot(20);
    assert.equal(a.pendingSnapshot, 20);
    a.becomeProbe();
    assert.equal(a.state, 'probe');
    assert.equal(a.nextIndex, 21);
    assert.equal(a.pendingSnapshot, 0);
    const b = progress({ match: 4, next: 5 });
    b.becomeSnapshot(20);
    b.maybeUpdate(25);
    b.becomeProbe();
    assert.equal(b.nextIndex, 26);
  });

  it('reset forgets the follower for a new term', () => {
    const pr = progress({ match: 4, next: 5, state: 'replicate' });
    pr.roundAcked = 3;
    pr.reset(11);
    assert.equal(pr.state, 'probe');
    assert.equal(pr.matchIndex, 0);
    assert.equal(pr.nextIndex, 11);
    assert.equal(pr.recentActive, false);
    assert.equal(pr.roundAcked, 0);
  });

  it('toString describes the state', () => {
    const pr = progress({ match: 4, next: 5 });
    pr.becomeSnapshot(9);
    assert.equal(pr.toString(), 'snapshot match=4 next=5 paused pendingSnap=9');
  });
});

describe('Progress invariant: nextIndex > matchIndex', () => {
  it('holds under long random sequences of acknowledgements, rejections and state changes', () => {
    const rng = new Random(42);
    let checked = 0;
    for (let run = 0; run < 50; run++) {
      const pr = progress({ next: 1 + rng.int(5), window: 1 + rng.int(4) });
      for (let step = 0; step < 200; step++) {
        const near = Math.max(0, pr.nextIndex + rng.int(9) - 6);
        switch (rng.int(7)) {
          case 0:
            pr.maybeUpdate(near);
            break;
          case 1:
            pr.maybeDecrTo(near, rng.int(near + 2));
            break;
          case 2:
            pr.maybeDecrTo(pr.nextIndex - 1, rng.int(pr.nextIndex + 3));
            break;
          case 3:
            if (!pr.isPaused() && !pr.inflights.full()) pr.sentEntries(rng.int(4), 10);
            break;
          case 4:
            if (pr.state === 'probe') pr.becomeReplicate();
            else if (pr.state === 'replicate') pr.becomeProbe();
            break;
          case 5:
            if (pr.state !== 'snapshot') pr.becomeSnapshot(pr.matchIndex + rng.int(10));
            else pr.becomeProbe();
            break;
          case 6:
            pr.inflights.freeLE(pr.matchIndex);
            break;
        }
        assert.ok(pr.nextIndex > pr.matchIndex, `run ${run} step ${step}: ${pr}`);
        checked++;
      }
    }
    assert.equal(checked, 50 * 200);
  });
});

describe('ProgressTracker', () => {
  function tracker(voters: number[], learners: number[] = [], outgoing: number[] = []): ProgressTracker {
    const t = new ProgressTracker(4, 0);
    const prs = new Map<number, Progress>();
    for (const id of new Set([...voters, ...outgoing])) prs.set(id, new Progress(1, t.newInflights(), false, false));
    for (const id of learners) prs.set(id, new Progress(1, t.newInflights(), true, false));
    t.install(
      {
        voters: new JointConfig(new MajorityConfig(voters), new MajorityConfig(outgoing)),
        learners: new Set(learners),
        learnersNext: new Set(),
        autoLeave: false,
      },
      prs,
    );
    return t;
  }

  it('committed() counts voters only, never learners', () => {
    const t = tracker([1, 2, 3], [4, 5]);
    t.progress.get(1)!.matchIndex = 9;
    t.progress.get(4)!.matchIndex = 9;
    t.progress.get(5)!.matchIndex = 9;
    assert.equal(t.committed(), 0, 'two learners and one voter at 9 are not a quorum');
    t.progress.get(2)!.matchIndex = 6;
    assert.equal(t.committed(), 6);
  });

  it('committed() in a joint configuration needs both majorities', () => {
    const t = tracker([1, 4, 5], [], [1, 2, 3]);
    for (const id of [1, 4, 5]) t.progress.get(id)!.matchIndex = 8;
    assert.equal(t.committed(), 0);
    t.progress.get(2)!.matchIndex = 8;
    assert.equal(t.committed(), 8);
  });

  it('quorumActive() ignores learners', () => {
    const t = tracker([1, 2, 3], [4]);
    t.progress.get(1)!.recentActive = true;
    t.progress.get(4)!.recentActive = true;
    assert.equal(t.quorumActive(), false);
    t.progress.get(3)!.recentActive = true;
    assert.equal(t.quorumActive(), true);
  });

  it('recordVote keeps the first answer from each voter; tallyVotes ignores learners', () => {
    const t = tracker([1, 2, 3], [4]);
    t.recordVote(1, true);
    t.recordVote(2, false);
    t.recordVote(2, true); // a duplicate response cannot flip a vote
    t.recordVote(4, true); // a learner
    assert.deepEqual(t.tallyVotes(), { granted: 1, rejected: 1, result: 'pending' });
    t.recordVote(3, true);
    assert.deepEqual(t.tallyVotes(), { granted: 2, rejected: 1, result: 'won' });
    t.resetVotes();
    assert.equal(t.tallyVotes().result, 'pending');
  });

  it('isSingleton: exactly one voter and not joint', () => {
    assert.equal(tracker([1]).isSingleton(), true);
    assert.equal(tracker([1], [2]).isSingleton(), true);
    assert.equal(tracker([1, 2]).isSingleton(), false);
    assert.equal(tracker([1], [], [1, 2]).isSingleton(), false);
  });

  it('confState reflects the configuration; ids() are sorted', () => {
    const t = tracker([3, 1, 2], [5, 4]);
    assert.deepEqual(t.confState(), { voters: [1, 2, 3], votersOutgoing: [], learners: [4, 5], learnersNext: [], autoLeave: false });
    assert.deepEqual(t.ids(), [1, 2, 3, 4, 5]);
  });
});
