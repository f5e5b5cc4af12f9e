// The Raft log (src/raft/log.ts): the unstable tail, the follower side of
// AppendEntries (§5.3), fast backtracking (§5.3, end), the up-to-date check
// (§5.4.1) and size-limited reads across stable and unstable entries.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { LogCompactedError, LogUnavailableError, RaftInvariantError } from '../../src/raft/errors.js';
import { RaftLog, Unstable } from '../../src/raft/log.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import { type Entry, type Snapshot, EMPTY_CONF_STATE, ENTRY_OVERHEAD_BYTES } from '../../src/raft/types.js';

function ent(index: number, term: number, size = 0): Entry {
  return { index, term, type: 'normal', data: new Uint8Array(size) };
}

/** Entries from `first` on, one per term in `terms`. */
function ents(first: number, terms: number[], size = 0): Entry[] {
  return terms.map((t, k) => ent(first + k, t, size));
}

const ids = (es: readonly Entry[]) => es.map((e) => `${e.index}@${e.term}`);

function snap(index: number, term: number): Snapshot {
  return { metadata: { index, term, confState: EMPTY_CONF_STATE }, data: new Uint8Array(0) };
}

/** A RaftLog over a MemoryStorage holding `stable` (indexes 1..), with `unstable` appended in memory. */
function raftLog(stable: number[], unstable: number[] = [], maxApplyingBytes = Infinity): RaftLog {
  const s = new MemoryStorage();
  s.append(ents(1, stable));
  const log = new RaftLog(s, maxApplyingBytes);
  if (unstable.length > 0) log.append(ents(stable.length + 1, unstable));
  return log;
}

function logTerms(log: RaftLog): string[] {
  const out: string[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(`${i}@${log.term(i)}`);
  return out;
}

describe('Unstable', () => {
  it('answers first/last index and terms from its entries and snapshot', () => {
    const u = new Unstable(5);
    assert.equal(u.maybeFirstIndex(), undefined);
    assert.equal(u.maybeLastIndex(), undefined);
    u.truncateAndAppend(ents(5, [2, 2, 3]));
    assert.equal(u.maybeFirstIndex(), undefined, 'only a snapshot gives a first index');
    assert.equal(u.maybeLastIndex(), 7);
    assert.equal(u.maybeTerm(6), 2);
    assert.equal(u.maybeTerm(7), 3);
    assert.equal(u.maybeTerm(8), undefined);
    assert.equal(u.maybeTerm(4), undefined);
    u.restore(snap(10, 4));
    assert.equal(u.maybeFirstIndex(), 11);
    assert.equal(u.maybeLastIndex(), 10);
    assert.equal(u.maybeTerm(10), 4);
    assert.equal(u.maybeTerm(9), undefined);
  });

  it('hands entries out once: what is in progress is not handed out again', () => {
    const u = new Unstable(1);
    u.truncateAndAppend(ents(1, [1, 1]));
    assert.equal(u.hasNextEntries(), true);
    assert.deepEqual(ids(u.nextEntries()), ['1@1', '2@1']);
    u.acceptInProgress();
    assert.equal(u.hasNextEntries(), false);
    assert.deepEqual(u.nextEntries(), []);
    u.truncateAndAppend(ents(3, [1]));
    assert.deepEqual(ids(u.nextEntries()), ['3@1'], 'only the new entry');
    // Still unstable until stableTo: the in-progress entries are kept in memory.
    assert.equal(u.maybeTerm(1), 1);
  });

  it('a snapshot is handed out once, and kept until stableSnapTo its index', () => {
    const u = new Unstable(1);
    u.restore(snap(7, 3));
    assert.equal(u.nextSnapshot()?.metadata.index, 7);
    u.acceptInProgress();
    assert.equal(u.nextSnapshot(), undefined);
    assert.equal(u.snapshot?.metadata.index, 7);
    u.stableSnapTo(6); // another index: ignored
    assert.equal(u.snapshot?.metadata.index, 7);
    u.stableSnapTo(7);
    assert.equal(u.snapshot, undefined);
  });

  it('stableTo drops the persisted prefix', () => {
    const u = new Unstable(1);
    u.truncateAndAppend(ents(1, [1, 1, 2]));
    u.acceptInProgress();
    u.stableTo(2, 1);
    assert.equal(u.offset, 3);
    assert.deepEqual(ids(u.entries), ['3@2']);
    assert.equal(u.offsetInProgress, 4, 'entry 3 is still in progress');
  });

  it('stableTo ignores a term mismatch (the entry was overwritten since it was handed out)', () => {
    const u = new Unstable(1);
    u.truncateAndAppend(ents(1, [1, 1, 1]));
    u.acceptInProgress();
    // A new leader overwrites 2 and 3 before the write of 1..3@1 completes.
    u.truncateAndAppend(ents(2, [2, 2]));
    u.stableTo(3, 1); // the old write's completion: 3@1 is no longer ours
    assert.equal(u.offset, 1, 'nothing dropped');
    assert.deepEqual(ids(u.entries), ['1@1', '2@2', '3@2']);
    assert.deepEqual(ids(u.nextEntries()), ['2@2', '3@2'], 'the overwriting entries still need persisting');
  });

  it('stableTo ignores indexes below the offset or beyond the entries', () => {
    const u = new Unstable(5);
    u.truncateAndAppend(ents(5, [2, 2]));
    u.stableTo(4, 2);
    u.stableTo(9, 2);
    assert.equal(u.offset, 5);
    assert.equal(u.entries.length, 2);
  });

  describe('truncateAndAppend', () => {
    it('appends directly after the last entry', () => {
      const u = new Unstable(5);
      u.truncateAndAppend(ents(5, [1, 1]));
      u.acceptInProgress();
      u.truncateAndAppend(ents(7, [1]));
      assert.equal(u.offset, 5);
      assert.deepEqual(ids(u.entries), ['5@1', '6@1', '7@1']);
      assert.deepEqual(ids(u.nextEntries()), ['7@1']);
    });

    it('replaces everything when the new entries start at or before the offset', () => {
      const u = new Unstable(5);
      u.truncateAndAppend(ents(5, [1, 1, 1]));
      u.acceptInProgress();
      u.truncateAndAppend(ents(3, [2, 2]));
      assert.equal(u.offset, 3);
      assert.equal(u.offsetInProgress, 3, 'nothing of the new entries is in progress');
      assert.deepEqual(ids(u.entries), ['3@2', '4@2']);
    });

    it('keeps the prefix below the new entries and replaces the rest', () => {
      const u = new Unstable(5);
      u.truncateAndAppend(ents(5, [1, 1, 1, 1]));
      u.acceptInProgress();
      u.truncateAndAppend(ents(7, [3]));
      assert.equal(u.offset, 5);
      assert.deepEqual(ids(u.entries), ['5@1', '6@1', '7@3']);
      assert.equal(u.offsetInProgress, 7, 'in-progress pulled back to the replaced part');
      assert.deepEqual(ids(u.nextEntries()), ['7@3']);
    });

    it('truncating within a part not yet in progress leaves offsetInProgress alone', () => {
      const u = new Unstable(5);
      u.truncateAndAppend(ents(5, [1]));
      u.acceptInProgress(); // 5 in progress
      u.truncateAndAppend(ents(6, [1, 1, 1]));
      u.truncateAndAppend(ents(8, [2]));
      assert.equal(u.offsetInProgress, 6);
      assert.deepEqual(ids(u.nextEntries()), ['6@1', '7@1', '8@2']);
    });
  });

  it('slice refuses ranges outside its entries', () => {
    const u = new Unstable(5);
    u.truncateAndAppend(ents(5, [1, 1]));
    assert.deepEqual(ids(u.slice(5, 7)), ['5@1', '6@1']);
    assert.throws(() => u.slice(4, 6), RaftInvariantError);
    assert.throws(() => u.slice(5, 8), RaftInvariantError);
    assert.throws(() => u.slice(6, 5), RaftInvariantError);
  });
});

describe('RaftLog basics', () => {
  it('first/last index and terms span storage and the unstable tail', () => {
    const log = raftLog([1, 1, 2], [3, 3]);
    assert.equal(log.firstIndex(), 1);
    assert.equal(log.lastIndex(), 5);
    assert.equal(log.lastTerm(), 3);
    assert.deepEqual(logTerms(log), ['1@1', '2@1', '3@2', '4@3', '5@3']);
    assert.equal(log.term(0), 0);
    assert.throws(() => log.term(6), LogUnavailableError);
  });

  it('the term just before the first index survives compaction; earlier ones are LogCompactedError', () => {
    const s = new MemoryStorage();
    s.append(ents(1, [1, 1, 2, 2, 3]));
    s.compact(3);
    const log = new RaftLog(s, Infinity);
    assert.equal(log.firstIndex(), 4);
    assert.equal(log.term(3), 2);
    assert.equal(log.termOrUndefined(2), undefined);
    assert.throws(() => log.term(2), LogCompactedError);
    assert.equal(log.committed, 3, 'everything up to the snapshot counts as committed and applied');
    assert.equal(log.applied, 3);
  });

  it('isUpToDate compares the last term first, then the last index (§5.4.1)', () => {
    const log = raftLog([1, 1, 2, 2]); // last 4@2
    assert.equal(log.isUpToDate(2, 3), true, 'shorter log with a newer last term wins');
    assert.equal(log.isUpToDate(100, 1), false, 'longer log with an older last term loses');
    assert.equal(log.isUpToDate(4, 2), true, 'equal');
    assert.equal(log.isUpToDate(5, 2), true, 'same term, longer');
    assert.equal(log.isUpToDate(3, 2), false, 'same term, shorter');
  });

  it('commitTo never decreases, and refuses to commit beyond the last index', () => {
    const log = raftLog([1, 1, 1]);
    log.commitTo(2);
    log.commitTo(1);
    assert.equal(log.committed, 2);
    assert.throws(() => log.commitTo(4), RaftInvariantError);
    assert.equal(log.committed, 2);
  });

  it('maybeCommit commits only an entry of the given term (§5.4.2)', () => {
    const log = raftLog([1, 1, 2, 2, 3]);
    assert.equal(log.maybeCommit(4, 3), false, 'entry 4 is of term 2, not the current term 3');
    assert.equal(log.committed, 0);
    assert.equal(log.maybeCommit(5, 3), true);
    assert.equal(log.committed, 5);
    assert.equal(log.maybeCommit(4, 2), false, 'never back');
  });

  it('append refuses to start at or below the commit index', () => {
    const log = raftLog([1, 1, 1]);
    log.commitTo(2);
    assert.throws(() => log.append(ents(2, [2])), RaftInvariantError);
    assert.equal(log.append(ents(3, [2])), 3);
    assert.equal(log.lastTerm(), 2);
    assert.equal(log.append([]), 3);
  });

  it('appliedTo stays within [applied, committed]', () => {
    const log = raftLog([1, 1, 1, 1]);
    log.commitTo(3);
    log.appliedTo(2);
    assert.equal(log.applied, 2);
    assert.equal(log.applying, 2);
    assert.throws(() => log.appliedTo(4), RaftInvariantError, 'beyond commit');
    assert.throws(() => log.appliedTo(1), RaftInvariantError, 'going back');
    assert.throws(() => log.acceptApplying(4), RaftInvariantError);
  });

  it('restore replaces the log with a snapshot', () => {
    const log = raftLog([1, 1, 1], [1]);
    log.restore(snap(10, 5));
    assert.equal(log.committed, 10);
    assert.equal(log.firstIndex(), 11);
    assert.equal(log.lastIndex(), 10);
    assert.equal(log.lastTerm(), 5);
    assert.equal(log.hasNextOrInProgressSnapshot(), true);
    assert.equal(log.persistedLastIndex(), 0, 'nothing consistent with the snapshot is durable yet');
  });

  it('persistedLastIndex: durable entries below the first unstable one', () => {
    const log = raftLog([1, 1, 1, 1], [2]);
    assert.equal(log.persistedLastIndex(), 4);
    // Overwrite 3.. in memory: storage still has 3@1 and 4@1 but they are no longer ours.
    log.append(ents(3, [3]));
    assert.equal(log.persistedLastIndex(), 2);
  });
});

describe('RaftLog.maybeAppend (the follower side of AppendEntries)', () => {
  it('rejects when prevLogIndex/prevLogTerm do not match, changing nothing', () => {
    const log = raftLog([1, 1, 2]);
    assert.equal(log.maybeAppend(3, 1, 3, ents(4, [3])), undefined, 'term mismatch at 3');
    assert.equal(log.maybeAppend(5, 2, 3, ents(6, [3])), undefined, 'beyond our log');
    assert.deepEqual(logTerms(log), ['1@1', '2@1', '3@2']);
    assert.equal(log.committed, 0);
  });

  it('appends new entries and returns the last index the message covered', () => {
    const log = raftLog([1, 1]);
    assert.equal(log.maybeAppend(2, 1, 0, ents(3, [2, 2])), 4);
    assert.deepEqual(logTerms(log), ['1@1', '2@1', '3@2', '4@2']);
  });

  it('a duplicate of an append already applied truncates nothing', () => {
    const log = raftLog([1, 1, 2, 2, 2]);
    assert.equal(log.maybeAppend(2, 1, 0, ents(3, [2, 2])), 4);
    assert.equal(log.lastIndex(), 5, 'entry 5 survives');
    assert.equal(log.unstable.hasNextEntries(), false, 'nothing to rewrite');
  });

  it('a stale, shorter append (delayed from earlier) truncates nothing', () => {
    const log = raftLog([1, 1, 2, 2, 2]);
    assert.equal(log.maybeAppend(0, 0, 0, ents(1, [1])), 1);
    assert.equal(log.maybeAppend(1, 1, 0, []), 1, 'an empty append (heartbeat-like) too');
    assert.deepEqual(logTerms(log), ['1@1', '2@1', '3@2', '4@2', '5@2']);
  });

  it('truncates only the conflicting suffix, from the first entry whose term differs', () => {
    const log = raftLog([1, 1, 2, 2, 2, 2]);
    // 4@2 matches, 5 conflicts: 5.. are replaced; 4 is not rewritten.
    assert.equal(log.maybeAppend(3, 2, 0, [ent(4, 2), ent(5, 3)]), 5);
    assert.deepEqual(logTerms(log), ['1@1', '2@1', '3@2', '4@2', '5@3']);
    assert.deepEqual(ids(log.unstable.nextEntries()), ['5@3'], 'only the replaced part needs writing');
  });

  it('sets commit = min(leaderCommit, last index of the message), not our last index', () => {
    // Our log has stale entries 5..6 beyond what the leader's message covers.
    const a = raftLog([1, 1, 2, 2, 2, 2]);
    a.maybeAppend(3, 2, 100, [ent(4, 2)]);
    assert.equal(a.committed, 4, 'limited by the message (entries 5, 6 may be stale)');
    const b = raftLog([1, 1, 2, 2]);
    b.maybeAppend(2, 1, 3, ents(3, [2, 2]));
    assert.equal(b.committed, 3, 'limited by leaderCommit');
    const c = raftLog([1, 1, 2, 2, 2, 2]);
    c.maybeAppend(4, 2, 100, []);
    assert.equal(c.committed, 4, 'an empty append covers up to prevLogIndex');
  });

  it('never lowers the commit index', () => {
    const log = raftLog([1, 1, 2, 2]);
    log.commitTo(4);
    assert.equal(log.maybeAppend(2, 1, 1, [ent(3, 2)]), 3);
    assert.equal(log.committed, 4);
  });

  it('refuses (RaftInvariantError) to overwrite a committed entry', () => {
    const log = raftLog([1, 1, 2, 2]);
    log.commitTo(3);
    assert.throws(() => log.maybeAppend(2, 1, 3, [ent(3, 5)]), RaftInvariantError);
    assert.deepEqual(logTerms(log), ['1@1', '2@1', '3@2', '4@2'], 'log untouched');
  });

  it('findConflict: the first entry missing or with another term; 0 when all present', () => {
    const log = raftLog([1, 1, 2, 2]);
    assert.equal(log.findConflict([]), 0);
    assert.equal(log.findConflict(ents(1, [1, 1, 2])), 0);
    assert.equal(log.findConflict(ents(3, [2, 2, 2])), 5, 'missing');
    assert.equal(log.findConflict(ents(2, [1, 3, 3])), 3, 'different term');
  });
});

describe('RaftLog.findConflictByTerm (fast backtracking, §5.3 end)', () => {
  // Indexes 1..3 @1, 4..6 @3, 7..9 @5.
  const terms = [1, 1, 1, 3, 3, 3, 5, 5, 5];

  const cases: [index: number, term: number, want: [number, number]][] = [
    [9, 5, [9, 5]], // matches as is
    [9, 6, [9, 5]], // our term is lower: could match here
    [9, 4, [6, 3]], // skip all of term 5
    [9, 3, [6, 3]],
    [9, 2, [3, 1]], // skip terms 5 and 3 at once
    [5, 2, [3, 1]],
    [9, 0, [0, 0]], // nothing matches: start from scratch
    [12, 3, [12, 0]], // beyond our log: unknown
  ];
  for (const [index, term, want] of cases) {
    it(`(${index}, ${term}) -> ${JSON.stringify(want)}`, () => {
      assert.deepEqual(raftLog(terms).findConflictByTerm(index, term), want);
    });
  }

  it('with a compacted prefix: unknown (term 0) below the first index', () => {
    const s = new MemoryStorage();
    s.append(ents(1, terms));
    s.compact(4); // first index 5; term(4) = 3 kept
    const log = new RaftLog(s, Infinity);
    assert.deepEqual(log.findConflictByTerm(9, 4), [6, 3]);
    assert.deepEqual(log.findConflictByTerm(9, 3), [6, 3]);
    assert.deepEqual(log.findConflictByTerm(9, 2), [3, 0], 'all we keep is newer: somewhere below 4');
    assert.deepEqual(log.findConflictByTerm(2, 1), [2, 0], 'compacted index');
  });
});

describe('RaftLog.slice size limits', () => {
  const SIZE = 100; // payload bytes per entry
  const per = SIZE + ENTRY_OVERHEAD_BYTES;
  // Stable 1..5, unstable 6..8, every entry `per` bytes.
  function sized(): RaftLog {
    const s = new MemoryStorage();
    s.append(ents(1, [1, 1, 1, 1, 1], SIZE));
    const log = new RaftLog(s, Infinity);
    log.append(ents(6, [2, 2, 2], SIZE));
    return log;
  }

  it('without a limit returns the whole range across storage and the unstable tail', () => {
    assert.deepEqual(ids(sized().slice(1, 9, Infinity)), ['1@1', '2@1', '3@1', '4@1', '5@1', '6@2', '7@2', '8@2']);
  });

  it('stops inside storage when the limit is hit there', () => {
    assert.deepEqual(ids(sized().slice(1, 9, 3 * per)), ['1@1', '2@1', '3@1']);
    assert.deepEqual(ids(sized().slice(1, 9, 3 * per + per - 1)), ['1@1', '2@1', '3@1']);
  });

  it('continues into the unstable tail while the total stays within the limit', () => {
    assert.deepEqual(ids(sized().slice(1, 9, 6 * per)), ['1@1', '2@1', '3@1', '4@1', '5@1', '6@2']);
    assert.deepEqual(ids(sized().slice(4, 9, 4 * per)), ['4@1', '5@1', '6@2', '7@2']);
  });

  it('limits a range wholly in the unstable tail', () => {
    assert.deepEqual(ids(sized().slice(6, 9, 2 * per)), ['6@2', '7@2']);
  });

  it('returns at least one entry, however small the limit', () => {
    assert.deepEqual(ids(sized().slice(1, 9, 1)), ['1@1']);
    assert.deepEqual(ids(sized().slice(7, 9, 0)), ['7@2']);
  });

  it('refuses compacted and unavailable ranges', () => {
    const s = new MemoryStorage();
    s.append(ents(1, [1, 1, 1, 1]));
    s.compact(2);
    const log = new RaftLog(s, Infinity);
    assert.throws(() => log.slice(2, 4, Infinity), LogCompactedError);
    assert.throws(() => log.slice(3, 6, Infinity), LogUnavailableError);
    assert.throws(() => log.slice(4, 3, Infinity), RaftInvariantError);
    assert.deepEqual(log.slice(3, 3, Infinity), []);
    assert.deepEqual(log.entries(5, Infinity), []);
  });

  it('nextCommittedEnts respects maxApplyingBytes, resumes after what is being applied, and waits for a pending snapshot', () => {
    const s = new MemoryStorage();
    s.append(ents(1, [1, 1, 1, 1, 1], SIZE));
    const log = new RaftLog(s, 2 * per);
    log.commitTo(5);
    assert.deepEqual(ids(log.nextCommittedEnts()), ['1@1', '2@1']);
    log.acceptApplying(2);
    assert.deepEqual(ids(log.nextCommittedEnts()), ['3@1', '4@1']);
    log.acceptApplying(4);
    assert.equal(log.hasNextCommittedEnts(), true);
    log.appliedTo(4);
    log.acceptApplying(5);
    assert.equal(log.hasNextCommittedEnts(), false);
    assert.deepEqual(log.nextCommittedEnts(), []);
    // A snapshot waiting to be installed holds back applying.
    const l2 = raftLog([1, 1, 1]);
    l2.commitTo(2);
    l2.unstable.snapshot = snap(2, 1);
    assert.equal(l2.hasNextCommittedEnts(), false);
    assert.deepEqual(l2.nextCommittedEnts(), []);
  });
});
