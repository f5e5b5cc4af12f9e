// Quorum arithmetic (src/raft/quorum.ts): what a majority has acknowledged
// and how an election stands, for simple and joint (§6) configurations.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { JointConfig, MajorityConfig, type VoteResult } from '../../src/raft/quorum.js';

/** An acked-value lookup from a plain object; ids not listed acknowledged nothing. */
const acked = (values: Record<number, number>) => (id: number) => values[id];

/** A vote map from a plain object: true = granted, false = rejected; ids not listed have not answered. */
const votes = (v: Record<number, boolean>) => new Map(Object.entries(v).map(([k, b]) => [Number(k), b] as [number, boolean]));

describe('MajorityConfig.committedValue', () => {
  const cases: { ids: number[]; acks: Record<number, number>; want: number }[] = [
    // One voter: its own value.
    { ids: [1], acks: { 1: 5 }, want: 5 },
    { ids: [1], acks: {}, want: 0 },
    // Two voters: both are needed, so the smaller value.
    { ids: [1, 2], acks: { 1: 8, 2: 3 }, want: 3 },
    { ids: [1, 2], acks: { 1: 8 }, want: 0 },
    // Three voters: the median.
    { ids: [1, 2, 3], acks: { 1: 10, 2: 5, 3: 1 }, want: 5 },
    { ids: [1, 2, 3], acks: { 1: 10, 2: 10, 3: 1 }, want: 10 },
    { ids: [1, 2, 3], acks: { 1: 10 }, want: 0 },
    { ids: [1, 2, 3], acks: { 1: 10, 3: 7 }, want: 7 },
    // Four voters: three are needed, so the second smallest.
    { ids: [1, 2, 3, 4], acks: { 1: 4, 2: 3, 3: 2, 4: 1 }, want: 2 },
    { ids: [1, 2, 3, 4], acks: { 1: 9, 2: 9, 3: 1, 4: 1 }, want: 1 },
    // Five voters: the third highest.
    { ids: [1, 2, 3, 4, 5], acks: { 1: 50, 2: 40, 3: 30, 4: 20, 5: 10 }, want: 30 },
    { ids: [1, 2, 3, 4, 5], acks: { 4: 20, 5: 10 }, want: 0 },
    // Values of ids outside the configuration do not count.
    { ids: [1, 2, 3], acks: { 1: 9, 4: 9, 5: 9 }, want: 0 },
    // Duplicate ids collapse: (1 1 2) is the two-voter (1 2).
    { ids: [1, 1, 2], acks: { 1: 9, 2: 4 }, want: 4 },
  ];
  for (const { ids, acks, want } of cases) {
    it(`(${ids.join(' ')}) with ${JSON.stringify(acks)} -> ${want}`, () => {
      assert.equal(new MajorityConfig(ids).committedValue(acked(acks)), want);
    });
  }

  it('an empty configuration imposes no constraint (Infinity)', () => {
    assert.equal(new MajorityConfig().committedValue(acked({ 1: 3 })), Infinity);
  });

  it('does not depend on the order values are seen (scratch space reused between calls)', () => {
    const c = new MajorityConfig([5, 3, 1, 4, 2]);
    assert.equal(c.committedValue(acked({ 1: 1, 2: 2, 3: 3, 4: 4, 5: 5 })), 3);
    assert.equal(c.committedValue(acked({ 1: 5, 2: 4, 3: 3, 4: 2, 5: 1 })), 3);
    assert.equal(c.committedValue(acked({ 1: 7, 2: 7, 3: 7, 4: 0, 5: 0 })), 7);
    assert.equal(c.committedValue(acked({ 1: 7, 2: 7, 3: 0, 4: 0, 5: 0 })), 0);
  });
});

describe('MajorityConfig.voteResult', () => {
  const cases: { ids: number[]; v: Record<number, boolean>; want: VoteResult }[] = [
    { ids: [1], v: {}, want: 'pending' },
    { ids: [1], v: { 1: true }, want: 'won' },
    { ids: [1], v: { 1: false }, want: 'lost' },
    { ids: [1, 2], v: { 1: true }, want: 'pending' },
    { ids: [1, 2], v: { 1: true, 2: true }, want: 'won' },
    { ids: [1, 2], v: { 1: true, 2: false }, want: 'lost' },
    { ids: [1, 2, 3], v: { 1: true }, want: 'pending' },
    { ids: [1, 2, 3], v: { 1: true, 2: true }, want: 'won' },
    { ids: [1, 2, 3], v: { 1: true, 2: false }, want: 'pending' },
    { ids: [1, 2, 3], v: { 1: true, 2: false, 3: false }, want: 'lost' },
    { ids: [1, 2, 3], v: { 2: false, 3: false }, want: 'lost' },
    { ids: [1, 2, 3, 4], v: { 1: true, 2: true }, want: 'pending' },
    { ids: [1, 2, 3, 4], v: { 1: true, 2: true, 3: true }, want: 'won' },
    { ids: [1, 2, 3, 4], v: { 1: true, 2: true, 3: false, 4: false }, want: 'lost' },
    { ids: [1, 2, 3, 4, 5], v: { 1: true, 2: true, 3: false, 4: false }, want: 'pending' },
    { ids: [1, 2, 3, 4, 5], v: { 1: true, 2: true, 3: false, 4: false, 5: true }, want: 'won' },
    // Votes from non-members (learners, strangers) do not count.
    { ids: [1, 2, 3], v: { 1: true, 4: true, 5: true }, want: 'pending' },
  ];
  for (const { ids, v, want } of cases) {
    it(`(${ids.join(' ')}) with ${JSON.stringify(v)} -> ${want}`, () => {
      assert.equal(new MajorityConfig(ids).voteResult(votes(v)), want);
    });
  }

  it('an empty configuration wins any election (it agrees with anything)', () => {
    assert.equal(new MajorityConfig().voteResult(votes({})), 'won');
    assert.equal(new MajorityConfig().voteResult(votes({ 1: false })), 'won');
  });
});

describe('JointConfig', () => {
  const joint = (incoming: number[], outgoing: number[]) => new JointConfig(new MajorityConfig(incoming), new MajorityConfig(outgoing));

  it('is joint only with a non-empty outgoing half', () => {
    assert.equal(joint([1, 2, 3], []).isJoint, false);
    assert.equal(joint([1, 2, 3], [1]).isJoint, true);
    assert.equal(new JointConfig(new MajorityConfig([1])).isJoint, false);
  });

  it('lists and recognises the voters of both halves', () => {
    const j = joint([1, 4, 5], [3, 2, 1]);
    assert.deepEqual(j.ids(), [1, 2, 3, 4, 5]);
    assert.ok(j.has(2) && j.has(5));
    assert.ok(!j.has(6));
    assert.equal(j.toString(), '(1 4 5)&&(1 2 3)');
  });

  describe('committedValue is the minimum of what majorities of both halves acknowledged', () => {
    const cases: { inc: number[]; out: number[]; acks: Record<number, number>; want: number }[] = [
      // Not joint: the incoming half alone.
      { inc: [1, 2, 3], out: [], acks: { 1: 9, 2: 8, 3: 1 }, want: 8 },
      // C_new (1 4 5) has 9 on a majority, C_old (1 2 3) only 2.
      { inc: [1, 4, 5], out: [1, 2, 3], acks: { 1: 9, 2: 2, 3: 1, 4: 9, 5: 0 }, want: 2 },
      // The reverse: C_old agrees up to 9, C_new only up to 3.
      { inc: [1, 4, 5], out: [1, 2, 3], acks: { 1: 9, 2: 9, 3: 9, 4: 3, 5: 0 }, want: 3 },
      // Both halves reach 7.
      { inc: [1, 4, 5], out: [1, 2, 3], acks: { 1: 7, 2: 7, 3: 0, 4: 7, 5: 0 }, want: 7 },
      // Overlapping halves of different sizes.
      { inc: [1, 2], out: [1, 2, 3], acks: { 1: 6, 2: 5, 3: 6 }, want: 5 },
      // Nothing acknowledged by C_old's majority.
      { inc: [1, 4, 5], out: [1, 2, 3], acks: { 1: 5, 4: 5, 5: 5 }, want: 0 },
    ];
    for (const { inc, out, acks, want } of cases) {
      it(`(${inc.join(' ')})&&(${out.join(' ')}) with ${JSON.stringify(acks)} -> ${want}`, () => {
        assert.equal(joint(inc, out).committedValue(acked(acks)), want);
      });
    }
    it('an empty incoming half reduces to the outgoing one', () => {
      assert.equal(joint([], [1, 2, 3]).committedValue(acked({ 1: 4, 2: 4, 3: 1 })), 4);
    });
    it('two empty halves commit anything (Infinity)', () => {
      assert.equal(joint([], []).committedValue(acked({})), Infinity);
    });
  });

  describe('voteResult: won only if both halves won, lost if either lost', () => {
    const cases: { inc: number[]; out: number[]; v: Record<number, boolean>; want: VoteResult }[] = [
      { inc: [1, 2, 3], out: [], v: { 1: true, 2: true }, want: 'won' },
      // A majority of C_old only.
      { inc: [1, 4, 5], out: [1, 2, 3], v: { 1: true, 2: true, 3: true }, want: 'pending' },
      // A majority of C_new only.
      { inc: [1, 4, 5], out: [1, 2, 3], v: { 1: true, 4: true, 5: true }, want: 'pending' },
      // Majorities of both.
      { inc: [1, 4, 5], out: [1, 2, 3], v: { 1: true, 2: true, 4: true }, want: 'won' },
      // C_new lost, C_old won: lost.
      { inc: [1, 4, 5], out: [1, 2, 3], v: { 1: true, 2: true, 4: false, 5: false }, want: 'lost' },
      // C_old lost, C_new pending: lost.
      { inc: [1, 4, 5], out: [1, 2, 3], v: { 2: false, 3: false }, want: 'lost' },
      // Both pending.
      { inc: [1, 4, 5], out: [1, 2, 3], v: { 1: true }, want: 'pending' },
      // Both lost.
      { inc: [1, 4, 5], out: [1, 2, 3], v: { 1: false, 2: false, 4: false }, want: 'lost' },
    ];
    for (const { inc, out, v, want } of cases) {
      it(`(${inc.join(' ')})&&(${out.join(' ')}) with ${JSON.stringify(v)} -> ${want}`, () => {
        assert.equal(joint(inc, out).voteResult(votes(v)), want);
      });
    }
    it('an empty incoming half reduces to the outgoing one', () => {
      assert.equal(joint([], [1, 2, 3]).voteResult(votes({ 1: true })), 'pending');
      assert.equal(joint([], [1, 2, 3]).voteResult(votes({ 1: true, 3: true })), 'won');
      assert.equal(joint([], [1, 2, 3]).voteResult(votes({ 1: false, 3: false })), 'lost');
    });
  });
});
