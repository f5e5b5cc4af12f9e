// The simulator's event trace (src/sim/trace.ts): the running hash that makes
// "same seed, same trace" checkable, and the ring of recent events.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { message } from '../../src/raft/types.js';
import { MESSAGE_TYPES_BY_CODE, Trace, messageCode } from '../../src/sim/trace.js';

describe('Trace', () => {
  it('gives each message type its own code, and the table of types by code agrees', () => {
    const types = MESSAGE_TYPES_BY_CODE.slice(1);
    assert.equal(types.length, 15);
    assert.equal(new Set(types).size, 15);
    types.forEach((type, k) => assert.equal(messageCode(type!), k + 1, type));
  });

  it('hashes a text given in parts exactly as the joined text, and prints it joined', () => {
    const numbers = [0, 7, 10, 99, 100, 4096, 123456789, 2 ** 31 - 1, 2 ** 31, 2 ** 40, -3, 1.5];
    const whole = new Trace(numbers.length);
    const parts = new Trace(numbers.length);
    for (const n of numbers) {
      whole.record(n, 'persist', 2, undefined, `ents ${n}..${n + 1} hs t${n}`);
      parts.record(n, 'persist', 2, undefined, ['ents ', n, '..', n + 1, ' hs t', n]);
    }
    assert.equal(parts.digest(), whole.digest());
    assert.deepEqual(parts.recent(), whole.recent());
    assert.equal(parts.recent(1)[0]!.text, 'ents 1.5..2.5 hs t1.5');
  });

  it('the hash depends on every field of an event and on their order', () => {
    const m = message({ type: 'MsgApp', from: 1, to: 2, term: 3, index: 4, logTerm: 3, commit: 2 });
    const digest = (f: (t: Trace) => void) => {
      const t = new Trace(1);
      f(t);
      return t.digest();
    };
    const base = digest((t) => t.record(10, 'send', 1, m));
    assert.equal(digest((t) => t.record(10, 'send', 1, m)), base, 'deterministic');
    const variants = [
      digest((t) => t.record(11, 'send', 1, m)),
      digest((t) => t.record(10, 'deliver', 1, m)),
      digest((t) => t.record(10, 'send', 2, m)),
      digest((t) => t.record(10, 'send', 1, { ...m, commit: 3 })),
      digest((t) => t.record(10, 'send', 1, m, 'x')),
      digest((t) => t.record(10, 'send', 1, m, ['x', 1])),
      digest((t) => t.record(10, 'send', 1, m, ['x', 2])),
    ];
    assert.equal(new Set([base, ...variants]).size, variants.length + 1);
    const ab = digest((t) => {
      t.tick(1, 1);
      t.tick(1, 2);
    });
    const ba = digest((t) => {
      t.tick(1, 2);
      t.tick(1, 1);
    });
    assert.notEqual(ab, ba);
  });

  it('keeps the latest events, oldest first, and hands each to the sink as it happens', () => {
    const seen: string[] = [];
    const t = new Trace(3, (r) => seen.push(`${r.kind}@${r.time}:${r.text ?? ''}`));
    t.tick(0, 1); // hashed, not kept
    for (let i = 1; i <= 5; i++) t.record(i, 'client', 1, undefined, ['c', i]);
    assert.deepEqual(
      t.recent().map((r) => `${r.time}:${r.text}`),
      ['3:c3', '4:c4', '5:c5'],
    );
    assert.deepEqual(t.recent(2).map((r) => r.time), [4, 5]);
    assert.deepEqual(seen, ['client@1:c1', 'client@2:c2', 'client@3:c3', 'client@4:c4', 'client@5:c5']);
    assert.equal(t.count, 6);
  });
});
