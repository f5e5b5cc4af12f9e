// MemoryStorage (src/raft/storage.ts): the stable log with its snapshot
// placeholder, compaction, snapshots and typed errors.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  LogCompactedError,
  LogUnavailableError,
  RaftInvariantError,
  SnapshotOutOfDateError,
} from '../../src/raft/errors.js';
import { MemoryStorage, limitSize } from '../../src/raft/storage.js';
import { type ConfState, type Entry, EMPTY_CONF_STATE, ENTRY_OVERHEAD_BYTES } from '../../src/raft/types.js';

function ent(index: number, term: number, size = 0): Entry {
  return { index, term, type: 'normal', data: new Uint8Array(size) };
}
const ents = (first: number, terms: number[], size = 0) => terms.map((t, k) => ent(first + k, t, size));
const ids = (es: readonly Entry[]) => es.map((e) => `${e.index}@${e.term}`);

/** Storage with entries 1..5 of terms 1,1,2,2,3. */
function five(): MemoryStorage {
  const s = new MemoryStorage();
  s.append(ents(1, [1, 1, 2, 2, 3]));
  return s;
}

const CS: ConfState = { voters: [1, 2, 3], learners: [4], votersOutgoing: [], learnersNext: [], autoLeave: false };

describe('MemoryStorage', () => {
  it('starts empty: first index 1, last index 0, term(0) = 0, empty state', () => {
    const s = new MemoryStorage();
    assert.equal(s.firstIndex(), 1);
    assert.equal(s.lastIndex(), 0);
    assert.equal(s.term(0), 0);
    assert.deepEqual(s.initialState(), { hardState: { term: 0, vote: 0, commit: 0 }, confState: EMPTY_CONF_STATE });
    assert.equal(s.snapshot().metadata.index, 0);
  });

  it('keeps the hard state it is given', () => {
    const s = new MemoryStorage();
    s.setHardState({ term: 4, vote: 2, commit: 7 });
    assert.deepEqual(s.getHardState(), { term: 4, vote: 2, commit: 7 });
    assert.deepEqual(s.initialState().hardState, { term: 4, vote: 2, commit: 7 });
  });

  describe('append', () => {
    it('appends after the last entry', () => {
      const s = five();
      s.append(ents(6, [3, 3]));
      assert.equal(s.lastIndex(), 7);
      assert.deepEqual(ids(s.entries(5, 8, Infinity)), ['5@3', '6@3', '7@3']);
    });

    it('replaces a conflicting suffix (and everything after it)', () => {
      const s = five();
      s.append(ents(3, [4]));
      assert.equal(s.lastIndex(), 3);
      assert.deepEqual(ids(s.entries(1, 4, Infinity)), ['1@1', '2@1', '3@4']);
    });

    it('skips the part already compacted', () => {
      const s = five();
      s.compact(3);
      s.append(ents(2, [1, 2, 2, 5]));
      assert.equal(s.firstIndex(), 4);
      assert.deepEqual(ids(s.entries(4, 6, Infinity)), ['4@2', '5@5']);
      s.append(ents(1, [1, 1])); // wholly compacted: ignored
      assert.equal(s.lastIndex(), 5);
    });

    it('refuses a gap (RaftInvariantError)', () => {
      const s = five();
      assert.throws(() => s.append(ents(7, [3])), RaftInvariantError);
      assert.equal(s.lastIndex(), 5);
    });

    it('ignores an empty batch', () => {
      const s = five();
      s.append([]);
      assert.equal(s.lastIndex(), 5);
    });
  });

  describe('entries and term', () => {
    it('returns [lo, hi) limited in bytes, at least one entry', () => {
      const s = new MemoryStorage();
      s.append(ents(1, [1, 1, 1, 1], 10));
      const per = 10 + ENTRY_OVERHEAD_BYTES;
      assert.deepEqual(ids(s.entries(1, 5, 2 * per)), ['1@1', '2@1']);
      assert.deepEqual(ids(s.entries(2, 5, 0)), ['2@1']);
      assert.deepEqual(ids(s.entries(1, 5, Infinity)), ['1@1', '2@1', '3@1', '4@1']);
    });

    it('throws LogCompactedError below the first index and LogUnavailableError beyond the last', () => {
      const s = five();
      s.compact(2);
      assert.throws(() => s.entries(2, 4, Infinity), LogCompactedError);
      assert.throws(() => s.entries(3, 7, Infinity), LogUnavailableError);
      assert.throws(() => s.term(1), LogCompactedError);
      assert.throws(() => s.term(6), LogUnavailableError);
      assert.equal(s.term(2), 1, 'the compacted entry just before the first keeps its term');
    });

    it('the errors carry stable codes and the indexes involved', () => {
      const s = five();
      s.compact(2);
      try {
        s.term(1);
        assert.fail('expected LogCompactedError');
      } catch (e) {
        assert.ok(e instanceof LogCompactedError);
        assert.equal(e.code, 'LOG_COMPACTED');
        assert.equal(e.index, 1);
        assert.equal(e.firstIndex, 3);
      }
      try {
        s.term(9);
        assert.fail('expected LogUnavailableError');
      } catch (e) {
        assert.ok(e instanceof LogUnavailableError);
        assert.equal(e.code, 'LOG_UNAVAILABLE');
        assert.equal(e.lastIndex, 5);
      }
    });
  });

  describe('compact', () => {
    it('drops entries up to and including the index', () => {
      const s = five();
      s.compact(3);
      assert.equal(s.firstIndex(), 4);
      assert.equal(s.lastIndex(), 5);
      assert.equal(s.term(3), 2);
      assert.deepEqual(ids(s.entries(4, 6, Infinity)), ['4@2', '5@3']);
    });

    it('ignores an index already compacted', () => {
      const s = five();
      s.compact(3);
      s.compact(2);
      s.compact(3);
      assert.equal(s.firstIndex(), 4);
    });

    it('refuses to compact beyond the last index', () => {
      const s = five();
      assert.throws(() => s.compact(6), RaftInvariantError);
      assert.equal(s.firstIndex(), 1);
    });

    it('can compact everything', () => {
      const s = five();
      s.compact(5);
      assert.equal(s.firstIndex(), 6);
      assert.equal(s.lastIndex(), 5);
      assert.equal(s.term(5), 3);
    });
  });

  describe('createSnapshot', () => {
    it('records index, term and configuration without compacting', () => {
      const s = five();
      const data = new Uint8Array([7, 7]);
      const snap = s.createSnapshot(4, CS, data);
      assert.deepEqual(snap.metadata, { index: 4, term: 2, confState: CS });
      assert.equal(snap.data, data);
      assert.equal(s.snapshot(), snap);
      assert.equal(s.latestSnapshot(), snap);
      assert.equal(s.snapshotIndex(), 4);
      assert.equal(s.firstIndex(), 1, 'not compacted');
      assert.deepEqual(s.initialState().confState, CS, 'the configuration is part of the snapshot');
    });

    it('refuses an index not newer than the current snapshot (SnapshotOutOfDateError)', () => {
      const s = five();
      s.createSnapshot(4, CS, new Uint8Array(0));
      assert.throws(() => s.createSnapshot(4, CS, new Uint8Array(0)), SnapshotOutOfDateError);
      assert.throws(() => s.createSnapshot(3, CS, new Uint8Array(0)), (e: unknown) => {
        assert.ok(e instanceof SnapshotOutOfDateError);
        assert.equal(e.code, 'SNAPSHOT_OUT_OF_DATE');
        return true;
      });
      assert.equal(s.snapshotIndex(), 4);
    });

    it('refuses an index beyond the last entry', () => {
      const s = five();
      assert.throws(() => s.createSnapshot(6, CS, new Uint8Array(0)), RaftInvariantError);
    });
  });

  describe('applySnapshot', () => {
    it('replaces the whole log with the snapshot', () => {
      const s = five();
      s.applySnapshot({ metadata: { index: 10, term: 4, confState: CS }, data: new Uint8Array(0) });
      assert.equal(s.firstIndex(), 11);
      assert.equal(s.lastIndex(), 10);
      assert.equal(s.term(10), 4);
      assert.throws(() => s.term(5), LogCompactedError);
      assert.deepEqual(s.initialState().confState, CS);
      s.append(ents(11, [4]));
      assert.equal(s.lastIndex(), 11);
    });

    it('refuses a snapshot not newer than the current one', () => {
      const s = five();
      s.applySnapshot({ metadata: { index: 10, term: 4, confState: CS }, data: new Uint8Array(0) });
      assert.throws(
        () => s.applySnapshot({ metadata: { index: 9, term: 4, confState: CS }, data: new Uint8Array(0) }),
        SnapshotOutOfDateError,
      );
      assert.throws(
        () => s.applySnapshot({ metadata: { index: 10, term: 4, confState: CS }, data: new Uint8Array(0) }),
        SnapshotOutOfDateError,
      );
      assert.equal(s.lastIndex(), 10);
    });
  });
});

describe('limitSize', () => {
  it('takes entries while the total stays within the limit, at least one', () => {
    const per = 5 + ENTRY_OVERHEAD_BYTES;
    const es = ents(1, [1, 1, 1], 5);
    assert.equal(limitSize(es, 3 * per), es, 'everything fits: the same array');
    assert.equal(limitSize(es, 2 * per).length, 2);
    assert.equal(limitSize(es, 2 * per - 1).length, 1);
    assert.equal(limitSize(es, 0).length, 1);
    assert.deepEqual(limitSize([], 0), []);
  });
});
