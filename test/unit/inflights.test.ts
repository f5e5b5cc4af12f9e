// Flow control (src/raft/inflights.ts): the ring buffer of append messages
// in flight to one follower, bounded in count and in bytes.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Inflights } from '../../src/raft/inflights.js';

describe('Inflights', () => {
  it('starts empty and not full', () => {
    const f = new Inflights(3, 0);
    assert.equal(f.count, 0);
    assert.equal(f.bytes, 0);
    assert.equal(f.full(), false);
  });

  it('is full once maxCount messages are in flight, and refuses another', () => {
    const f = new Inflights(3, 0);
    f.add(1, 10);
    f.add(2, 10);
    assert.equal(f.full(), false);
    f.add(3, 10);
    assert.equal(f.full(), true);
    assert.equal(f.count, 3);
    assert.equal(f.bytes, 30);
    assert.throws(() => f.add(4, 10), RangeError);
    assert.equal(f.count, 3, 'a refused add changes nothing');
  });

  it('is full once maxBytes is reached, and a single message may overshoot it', () => {
    const f = new Inflights(10, 100);
    f.add(1, 60);
    assert.equal(f.full(), false);
    f.add(2, 60); // 120 > 100: allowed, but now full
    assert.equal(f.full(), true);
    f.freeLE(1);
    assert.equal(f.bytes, 60);
    assert.equal(f.full(), false);
    const g = new Inflights(10, 100);
    g.add(1, 100); // exactly the limit
    assert.equal(g.full(), true);
  });

  it('maxBytes 0 means no byte limit', () => {
    const f = new Inflights(2, 0);
    f.add(1, 1e9);
    assert.equal(f.full(), false);
  });

  it('freeLE frees every message whose last index is <= the acknowledged one', () => {
    const f = new Inflights(5, 0);
    for (const [i, b] of [[2, 1], [4, 2], [6, 4], [8, 8]] as const) f.add(i, b);
    f.freeLE(1); // below everything: nothing freed
    assert.equal(f.count, 4);
    f.freeLE(5); // frees 2 and 4
    assert.equal(f.count, 2);
    assert.equal(f.bytes, 12);
    f.freeLE(5); // a duplicate acknowledgement changes nothing
    assert.equal(f.count, 2);
    f.freeLE(100);
    assert.equal(f.count, 0);
    assert.equal(f.bytes, 0);
  });

  it('wraps around the ring buffer correctly', () => {
    const f = new Inflights(3, 0);
    let next = 1;
    // Keep the window at two or three messages for many laps around the ring.
    f.add(next++, 1);
    f.add(next++, 1);
    for (let lap = 0; lap < 20; lap++) {
      f.add(next++, 1);
      assert.equal(f.full(), true);
      f.freeLE(next - 3); // free the oldest one
      assert.equal(f.count, 2);
      assert.equal(f.bytes, 2);
    }
    f.freeLE(next - 2);
    assert.equal(f.count, 1);
    f.freeLE(next - 1);
    assert.equal(f.count, 0);
  });

  it('freeFirstOne frees exactly the oldest message; a no-op when empty', () => {
    const f = new Inflights(3, 0);
    f.freeFirstOne();
    assert.equal(f.count, 0);
    f.add(5, 10);
    f.add(7, 20);
    f.add(9, 30);
    assert.equal(f.full(), true);
    f.freeFirstOne();
    assert.equal(f.count, 2);
    assert.equal(f.bytes, 50);
    assert.equal(f.full(), false);
    f.freeLE(7);
    assert.equal(f.count, 1);
    assert.equal(f.bytes, 30);
  });

  it('reset empties the window', () => {
    const f = new Inflights(2, 50);
    f.add(1, 30);
    f.add(2, 30);
    f.reset();
    assert.equal(f.count, 0);
    assert.equal(f.bytes, 0);
    assert.equal(f.full(), false);
    f.add(3, 1);
    f.add(4, 1);
    assert.equal(f.full(), true);
  });
});
