// Membership changes (src/raft/confchange.ts): single-voter changes, joint
// consensus (§6, etcd's ConfChangeV2), restoring a configuration from a
// ConfState, and the encoding of ConfChange entries.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  Changer,
  type ChangeResult,
  applyChange,
  decodeConfChange,
  describeConfChange,
  encodeConfChange,
  enterJoint,
  leavesJoint,
  restoreConfState,
  validateConfChange,
} from '../../src/raft/confchange.js';
import { InvalidConfChangeError } from '../../src/raft/errors.js';
import { ProgressTracker } from '../../src/raft/progress.js';
import type { ConfChange, ConfChangeSingle, ConfState } from '../../src/raft/types.js';

const v = (nodeId: number): ConfChangeSingle => ({ type: 'addNode', nodeId });
const l = (nodeId: number): ConfChangeSingle => ({ type: 'addLearner', nodeId });
const r = (nodeId: number): ConfChangeSingle => ({ type: 'removeNode', nodeId });

const LAST_INDEX = 10;

function install(t: ProgressTracker, res: ChangeResult): ProgressTracker {
  t.install(res.config, res.progress);
  return t;
}

/** A tracker with the given voters (and learners), built by single changes. */
function trackerWith(voters: number[], learners: number[] = []): ProgressTracker {
  const t = new ProgressTracker(16, 0);
  for (const id of voters) install(t, new Changer(t, LAST_INDEX).simple([v(id)]));
  for (const id of learners) install(t, new Changer(t, LAST_INDEX).simple([l(id)]));
  return t;
}

/** A short description: voters, outgoing voters, learners, learnersNext, autoLeave. */
function describeT(t: ProgressTracker): string {
  const cs = t.confState();
  let s = `v=${cs.voters.join(',')}`;
  if (cs.votersOutgoing.length) s += ` out=${cs.votersOutgoing.join(',')}`;
  if (cs.learners.length) s += ` l=${cs.learners.join(',')}`;
  if (cs.learnersNext.length) s += ` ln=${cs.learnersNext.join(',')}`;
  if (cs.autoLeave) s += ' auto';
  return s;
}

const progressIds = (t: ProgressTracker) => [...t.progress.keys()].sort((a, b) => a - b);

/** Asserts that `fn` throws InvalidConfChangeError whose message matches `re`, and that the tracker did not change. */
function assertRefused(t: ProgressTracker, fn: () => unknown, re: RegExp): void {
  const before = describeT(t);
  const prsBefore = progressIds(t);
  assert.throws(fn, (e: unknown) => e instanceof InvalidConfChangeError && re.test(e.message));
  assert.equal(describeT(t), before);
  assert.deepEqual(progressIds(t), prsBefore);
}

describe('Changer.simple', () => {
  it('adds voters one at a time from an empty configuration', () => {
    const t = trackerWith([1, 2, 3]);
    assert.equal(describeT(t), 'v=1,2,3');
    assert.deepEqual(progressIds(t), [1, 2, 3]);
  });

  it('new members are probed from the last index and count as recently active', () => {
    const t = trackerWith([1]);
    const pr = install(t, new Changer(t, 42).simple([v(2)])).progress.get(2)!;
    assert.equal(pr.nextIndex, 42);
    assert.equal(pr.matchIndex, 0);
    assert.equal(pr.state, 'probe');
    assert.equal(pr.recentActive, true);
  });

  it('refuses to change more than one voter without a joint configuration', () => {
    const t = trackerWith([1, 2, 3]);
    assertRefused(t, () => new Changer(t, LAST_INDEX).simple([v(4), v(5)]), /more than one voter/);
    assertRefused(t, () => new Changer(t, LAST_INDEX).simple([r(3), v(4)]), /more than one voter/);
    assertRefused(t, () => new Changer(t, LAST_INDEX).simple([r(2), r(3)]), /more than one voter/);
  });

  it('allows one voter change together with learner changes', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, new Changer(t, LAST_INDEX).simple([v(4), l(5), l(6)]));
    assert.equal(describeT(t), 'v=1,2,3,4 l=5,6');
  });

  it('adding then removing the same voter in one change is no change', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, new Changer(t, LAST_INDEX).simple([v(4), r(4)]));
    assert.equal(describeT(t), 'v=1,2,3');
    assert.deepEqual(progressIds(t), [1, 2, 3]);
  });

  it('promotes a learner to voter, keeping its progress', () => {
    const t = trackerWith([1, 2], [3]);
    t.progress.get(3)!.matchIndex = 7;
    install(t, new Changer(t, LAST_INDEX).simple([v(3)]));
    assert.equal(describeT(t), 'v=1,2,3');
    assert.equal(t.progress.get(3)!.isLearner, false);
    assert.equal(t.progress.get(3)!.matchIndex, 7);
  });

  it('demotes a voter to learner, keeping its progress', () => {
    const t = trackerWith([1, 2, 3]);
    t.progress.get(3)!.matchIndex = 9;
    install(t, new Changer(t, LAST_INDEX).simple([l(3)]));
    assert.equal(describeT(t), 'v=1,2 l=3');
    assert.equal(t.progress.get(3)!.isLearner, true);
    assert.equal(t.progress.get(3)!.matchIndex, 9);
  });

  it('removes a voter or learner with its progress; removing a stranger is a no-op', () => {
    const t = trackerWith([1, 2, 3], [4]);
    install(t, new Changer(t, LAST_INDEX).simple([r(3)]));
    install(t, new Changer(t, LAST_INDEX).simple([r(4)]));
    install(t, new Changer(t, LAST_INDEX).simple([r(9)]));
    assert.equal(describeT(t), 'v=1,2');
    assert.deepEqual(progressIds(t), [1, 2]);
  });

  it('refuses to remove every voter', () => {
    const t = trackerWith([1]);
    assertRefused(t, () => new Changer(t, LAST_INDEX).simple([r(1)]), /removed all voters/);
  });

  it('refuses invalid node ids', () => {
    const t = trackerWith([1]);
    assertRefused(t, () => new Changer(t, LAST_INDEX).simple([v(0)]), /invalid node id/);
    assertRefused(t, () => new Changer(t, LAST_INDEX).simple([l(-2)]), /invalid node id/);
    assertRefused(t, () => new Changer(t, LAST_INDEX).simple([v(1.5)]), /invalid node id/);
  });

  it('refuses a simple change while joint', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, new Changer(t, LAST_INDEX).enterJoint(false, [v(4)]));
    assertRefused(t, () => new Changer(t, LAST_INDEX).simple([v(5)]), /joint/);
  });
});

describe('Changer.enterJoint / leaveJoint', () => {
  it('enters C_old,new: the current voters become outgoing, the changes apply to incoming', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, new Changer(t, LAST_INDEX).enterJoint(true, [r(3), v(4), v(5)]));
    assert.equal(describeT(t), 'v=1,2,4,5 out=1,2,3 auto');
    assert.equal(t.config.voters.isJoint, true);
    assert.deepEqual(progressIds(t), [1, 2, 3, 4, 5], 'the removed voter keeps its progress while it still votes in C_old');
  });

  it('leaves to C_new: C_old-only voters lose their progress', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, new Changer(t, LAST_INDEX).enterJoint(true, [r(3), v(4)]));
    install(t, new Changer(t, LAST_INDEX).leaveJoint());
    assert.equal(describeT(t), 'v=1,2,4');
    assert.deepEqual(progressIds(t), [1, 2, 4]);
    assert.equal(t.config.voters.isJoint, false);
    assert.equal(t.config.autoLeave, false);
  });

  it('demoting a voter while joint: it stays an outgoing voter (learnersNext) until the joint configuration is left', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, new Changer(t, LAST_INDEX).enterJoint(false, [l(3), v(4)]));
    assert.equal(describeT(t), 'v=1,2,4 out=1,2,3 ln=3');
    assert.equal(t.progress.get(3)!.isLearner, false, 'still votes in C_old');
    assert.equal(t.config.voters.has(3), true);
    install(t, new Changer(t, LAST_INDEX).leaveJoint());
    assert.equal(describeT(t), 'v=1,2,4 l=3');
    assert.equal(t.progress.get(3)!.isLearner, true);
  });

  it('a learner added while joint is a learner at once', () => {
    const t = trackerWith([1, 2]);
    install(t, new Changer(t, LAST_INDEX).enterJoint(false, [v(3), l(4)]));
    assert.equal(describeT(t), 'v=1,2,3 out=1,2 l=4');
  });

  it('re-adding an outgoing voter that was being demoted clears learnersNext', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, new Changer(t, LAST_INDEX).enterJoint(false, [l(3), v(3)]));
    assert.equal(describeT(t), 'v=1,2,3 out=1,2,3');
  });

  it('refuses to enter a joint configuration twice, or from zero voters', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, new Changer(t, LAST_INDEX).enterJoint(false, [v(4)]));
    assertRefused(t, () => new Changer(t, LAST_INDEX).enterJoint(false, [v(5)]), /already joint/);
    const empty = new ProgressTracker(16, 0);
    assertRefused(empty, () => new Changer(empty, LAST_INDEX).enterJoint(false, [v(1)]), /zero-voter/);
  });

  it('refuses to leave a configuration that is not joint', () => {
    const t = trackerWith([1, 2, 3]);
    assertRefused(t, () => new Changer(t, LAST_INDEX).leaveJoint(), /non-joint/);
  });

  it('refuses a joint change that removes every incoming voter', () => {
    const t = trackerWith([1, 2]);
    assertRefused(t, () => new Changer(t, LAST_INDEX).enterJoint(false, [r(1), r(2)]), /removed all voters/);
  });
});

describe('enterJoint / leavesJoint / applyChange', () => {
  const cc = (transition: ConfChange['transition'], changes: ConfChangeSingle[]): ConfChange => ({ transition, changes });

  it('auto: one voter change is simple, more go through a joint configuration left automatically', () => {
    assert.deepEqual(enterJoint(cc('auto', [v(4)])), { joint: false, autoLeave: false });
    assert.deepEqual(enterJoint(cc('auto', [v(4), v(5)])), { joint: true, autoLeave: true });
  });

  it('implicit is always joint and left automatically; explicit is joint and left by the application', () => {
    assert.deepEqual(enterJoint(cc('implicit', [v(4)])), { joint: true, autoLeave: true });
    assert.deepEqual(enterJoint(cc('explicit', [v(4)])), { joint: true, autoLeave: false });
  });

  it('an empty change leaves the joint configuration', () => {
    assert.equal(leavesJoint(cc('auto', [])), true);
    assert.equal(leavesJoint(cc('auto', [v(1)])), false);
    assert.deepEqual(enterJoint(cc('explicit', [])), { joint: false, autoLeave: false });
  });

  it('applyChange carries out each kind', () => {
    const t = trackerWith([1, 2, 3]);
    install(t, applyChange(t, LAST_INDEX, cc('auto', [v(4)])));
    assert.equal(describeT(t), 'v=1,2,3,4');
    install(t, applyChange(t, LAST_INDEX, cc('auto', [r(4), r(3)])));
    assert.equal(describeT(t), 'v=1,2 out=1,2,3,4 auto');
    install(t, applyChange(t, LAST_INDEX, cc('auto', [])));
    assert.equal(describeT(t), 'v=1,2');
    install(t, applyChange(t, LAST_INDEX, cc('explicit', [v(3)])));
    assert.equal(describeT(t), 'v=1,2,3 out=1,2');
  });
});

describe('restoreConfState', () => {
  const states: { name: string; cs: ConfState }[] = [
    { name: 'empty', cs: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
    { name: 'one voter', cs: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
    { name: 'voters and learners', cs: { voters: [1, 2, 3], learners: [4, 5], votersOutgoing: [], learnersNext: [], autoLeave: false } },
    { name: 'joint', cs: { voters: [1, 2, 4], learners: [], votersOutgoing: [1, 2, 3], learnersNext: [], autoLeave: false } },
    {
      name: 'joint with learners, learnersNext and autoLeave',
      cs: { voters: [1, 2, 4], learners: [5], votersOutgoing: [1, 2, 3], learnersNext: [3], autoLeave: true },
    },
    { name: 'joint with disjoint halves', cs: { voters: [4, 5, 6], learners: [], votersOutgoing: [1, 2, 3], learnersNext: [], autoLeave: true } },
  ];
  for (const { name, cs } of states) {
    it(`round-trips a ConfState: ${name}`, () => {
      const t = new ProgressTracker(16, 0);
      const res = restoreConfState(t, LAST_INDEX, cs);
      assert.deepEqual(t.confState(), cs);
      assert.equal(res.config, t.config, 'installed into the tracker');
      // Every member has progress, with the right learner flag.
      for (const id of [...cs.voters, ...cs.votersOutgoing]) assert.equal(t.progress.get(id)?.isLearner, false, `voter ${id}`);
      for (const id of cs.learners) assert.equal(t.progress.get(id)?.isLearner, true, `learner ${id}`);
      // And restoring what we got gives the same again.
      const t2 = new ProgressTracker(16, 0);
      restoreConfState(t2, LAST_INDEX, t.confState());
      assert.deepEqual(t2.confState(), cs);
    });
  }

  it('a restored joint configuration behaves as joint: leaving it yields C_new', () => {
    const t = new ProgressTracker(16, 0);
    restoreConfState(t, LAST_INDEX, { voters: [1, 2, 4], learners: [5], votersOutgoing: [1, 2, 3], learnersNext: [3], autoLeave: true });
    install(t, new Changer(t, LAST_INDEX).leaveJoint());
    assert.equal(describeT(t), 'v=1,2,4 l=3,5');
  });
});

describe('ConfChange encoding', () => {
  const samples: ConfChange[] = [
    { transition: 'auto', changes: [v(1)] },
    { transition: 'implicit', changes: [v(4), r(3), l(5)] },
    { transition: 'explicit', changes: [l(2)], context: new Uint8Array([0, 1, 255]) },
  ];
  for (const cc of samples) {
    it(`round-trips ${describeConfChange(cc)}`, () => {
      assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
    });
  }

  it('an empty payload decodes as "leave joint"', () => {
    assert.deepEqual(decodeConfChange(new Uint8Array(0)), { transition: 'auto', changes: [] });
  });

  it('an empty context is not encoded', () => {
    const cc: ConfChange = { transition: 'auto', changes: [v(1)], context: new Uint8Array(0) };
    assert.deepEqual(decodeConfChange(encodeConfChange(cc)), { transition: 'auto', changes: [v(1)] });
  });

  const bad: { name: string; text: string }[] = [
    { name: 'not JSON', text: '{nope' },
    { name: 'a number, not an object', text: '42' },
    { name: 'no list of changes', text: '{"t":"auto"}' },
    { name: 'unknown transition', text: '{"t":"sideways","c":[["addNode",1]]}' },
    { name: 'unknown change type', text: '{"t":"auto","c":[["addWitness",1]]}' },
    { name: 'node id 0', text: '{"t":"auto","c":[["addNode",0]]}' },
    { name: 'fractional node id', text: '{"t":"auto","c":[["addNode",1.5]]}' },
    { name: 'node id as a string', text: '{"t":"auto","c":[["addNode","1"]]}' },
    { name: 'malformed change', text: '{"t":"auto","c":[7]}' },
    { name: 'context not bytes', text: '{"t":"auto","c":[["addNode",1]],"x":[256]}' },
  ];
  for (const { name, text } of bad) {
    it(`decode refuses ${name} (InvalidConfChangeError)`, () => {
      assert.throws(() => decodeConfChange(new TextEncoder().encode(text)), InvalidConfChangeError);
    });
  }

  it('decode refuses invalid UTF-8', () => {
    assert.throws(() => decodeConfChange(new Uint8Array([0xff, 0xfe])), InvalidConfChangeError);
  });

  it('encode and validate refuse invalid changes', () => {
    const invalid = [
      { transition: 'bogus', changes: [] },
      { transition: 'auto', changes: [{ type: 'addNode', nodeId: -1 }] },
      { transition: 'auto', changes: [{ type: 'promote', nodeId: 1 }] },
      { transition: 'auto', changes: [{ type: 'addNode', nodeId: Number.MAX_SAFE_INTEGER + 1 }] },
    ] as unknown as ConfChange[];
    for (const cc of invalid) {
      assert.throws(() => validateConfChange(cc), InvalidConfChangeError, JSON.stringify(cc));
      assert.throws(() => encodeConfChange(cc), InvalidConfChangeError, JSON.stringify(cc));
    }
    validateConfChange({ transition: 'auto', changes: [] }); // leaving joint is valid
  });

  it('describeConfChange', () => {
    assert.equal(describeConfChange({ transition: 'auto', changes: [] }), 'leave-joint');
    assert.equal(describeConfChange({ transition: 'auto', changes: [v(4), l(5), r(1)] }), 'v4 l5 r1');
    assert.equal(describeConfChange({ transition: 'explicit', changes: [v(4)] }), 'v4 (explicit)');
  });
});
