import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';

import {
  checkLinearizability,
  kvModel,
  LinearizabilityError,
  type CheckResult,
  type KvInput,
  type KvOutput,
  type Model,
  type Operation,
} from '../../src/sim/linearizability.js';

type KvOp = Operation<KvInput, KvOutput>;

/** Shorthand for a KV operation; `ret` defaults to Infinity when the output is unknown. */
function op(client: number, call: number, ret: number, input: KvInput, output: KvOutput | undefined): KvOp {
  return { client, call, ret: output === undefined ? Infinity : ret, input, output };
}

const get = (key: string): KvInput => ({ op: 'get', key });
const set = (key: string, value: string): KvInput => ({ op: 'set', key, value });
const del = (key: string): KvInput => ({ op: 'del', key });
const inc = (key: string): KvInput => ({ op: 'inc', key });
const cas = (key: string, expected: string | undefined, value: string): KvInput => ({ op: 'cas', key, expected, value });

const OK: KvOutput = { ok: true };
const val = (value: string | undefined): KvOutput => ({ ok: true, value });
const deleted = (d: boolean): KvOutput => ({ ok: true, deleted: d });
const swapped = (s: boolean): KvOutput => ({ ok: true, swapped: s });
const NOT_INTEGER: KvOutput = { ok: false, error: 'not-integer' };

function check(history: KvOp[], maxSteps?: number): CheckResult {
  return checkLinearizability(kvModel, history, maxSteps === undefined ? undefined : { maxSteps });
}

function assertOk(history: KvOp[]): void {
  const r = check(history);
  assert.deepEqual(r, { outcome: 'ok' }, r.outcome === 'violation' ? r.explanation : undefined);
}

function assertViolation(history: KvOp[]): Extract<CheckResult, { outcome: 'violation' }> {
  const r = check(history);
  assert.equal(r.outcome, 'violation');
  return r as Extract<CheckResult, { outcome: 'violation' }>;
}

describe('checkLinearizability with kvModel', () => {
  it('accepts an empty history', () => {
    assertOk([]);
  });

  it('accepts a sequential history', () => {
    assertOk([
      op(1, 0, 1, get('x'), val(undefined)),
      op(1, 2, 3, set('x', 'a'), OK),
      op(2, 4, 5, get('x'), val('a')),
      op(1, 6, 7, set('x', 'b'), OK),
      op(2, 8, 9, get('x'), val('b')),
      op(2, 10, 11, del('x'), deleted(true)),
      op(1, 12, 13, get('x'), val(undefined)),
    ]);
  });

  it('rejects a sequential history with a wrong read', () => {
    assertViolation([op(1, 0, 1, set('x', 'a'), OK), op(2, 2, 3, get('x'), val(undefined))]);
  });

  it('allows either order for overlapping writes, and reads concurrent with them', () => {
    const writes = [op(1, 0, 10, set('x', 'a'), OK), op(2, 1, 9, set('x', 'b'), OK)];
    // After both writes complete, either value may have won...
    assertOk([...writes, op(3, 11, 12, get('x'), val('a'))]);
    assertOk([...writes, op(3, 11, 12, get('x'), val('b'))]);
    // ...and a read overlapping them may see nothing, either value, ...
    assertOk([...writes, op(3, 2, 8, get('x'), val(undefined))]);
    assertOk([...writes, op(3, 2, 8, get('x'), val('b'))]);
    // ...or even both, in either order, as long as later reads agree.
    assertOk([...writes, op(3, 2, 3, get('x'), val('a')), op(3, 4, 5, get('x'), val('b')), op(3, 11, 12, get('x'), val('b'))]);
    assertOk([...writes, op(3, 2, 3, get('x'), val('b')), op(3, 4, 5, get('x'), val('a')), op(3, 11, 12, get('x'), val('a'))]);
    // But two sequential reads cannot flip back: a, then b, then a again.
    assertViolation([
      ...writes,
      op(3, 2, 3, get('x'), val('a')),
      op(3, 4, 5, get('x'), val('b')),
      op(3, 11, 12, get('x'), val('a')),
    ]);
  });

  it('reports a stale read after a later write completed as a violation', () => {
    const r = assertViolation([
      op(1, 0, 1, set('x', 'old'), OK),
      op(1, 2, 3, set('x', 'new'), OK),
      op(2, 4, 5, get('x'), val('old')),
    ]);
    assert.equal(r.partition, 0);
    assert.match(r.explanation, /not linearizable/);
    assert.match(r.explanation, /get\("x"\) -> "old"/);
    assert.match(r.explanation, /client 2 \[4, 5\]/);
    assert.match(r.explanation, /Longest linearizable prefix found: 2 of 3/);
  });

  it('reports a read of a value never written as a violation', () => {
    assertViolation([op(1, 0, 10, set('x', 'a'), OK), op(2, 1, 9, get('x'), val('zzz'))]);
    assertViolation([op(2, 0, 1, get('x'), val('')), op(1, 2, 3, set('x', ''), OK)]);
  });

  it('treats an op returning at t and one called at t as concurrent', () => {
    // The read may be linearized before the write: their intervals touch.
    assertOk([op(1, 0, 5, set('x', 'a'), OK), op(2, 5, 10, get('x'), val(undefined))]);
    // With a gap they are ordered, and the read is stale.
    assertViolation([op(1, 0, 5, set('x', 'a'), OK), op(2, 6, 10, get('x'), val(undefined))]);
    // Zero-length operations are fine too.
    assertOk([op(1, 3, 3, set('x', 'a'), OK), op(2, 3, 3, get('x'), val(undefined)), op(2, 4, 4, get('x'), val('a'))]);
  });

  it('lets an unknown-outcome write take effect or not', () => {
    const lost = op(1, 0, Infinity, set('x', 'a'), undefined);
    assertOk([lost, op(2, 5, 6, get('x'), val('a'))]);
    assertOk([lost, op(2, 5, 6, get('x'), val(undefined))]);
    // It may even take effect long after everything else...
    assertOk([lost, op(2, 5, 6, get('x'), val(undefined)), op(2, 100, 101, get('x'), val('a'))]);
    // ...but once observed it cannot be undone.
    assertViolation([lost, op(2, 5, 6, get('x'), val('a')), op(2, 10, 11, get('x'), val(undefined))]);
    // And it cannot take effect before it was called.
    assertViolation([op(2, 0, 1, get('x'), val('a')), op(1, 5, Infinity, set('x', 'a'), undefined)]);
  });

  it('ignores ret for unknown outcomes: a timed-out request may still apply later', () => {
    const timedOut: KvOp = { client: 1, call: 0, ret: 3, input: set('x', 'a'), output: undefined };
    assertOk([timedOut, op(2, 5, 6, get('x'), val(undefined)), op(2, 10, 11, get('x'), val('a'))]);
  });

  it('checks unknown-outcome reads and incs against the state they would see', () => {
    assertOk([
      op(1, 0, 1, set('x', 'nope'), OK),
      op(2, 2, Infinity, inc('x'), undefined), // not-integer: no effect either way
      op(1, 3, 4, get('x'), val('nope')),
      op(3, 5, Infinity, get('x'), undefined),
    ]);
  });

  it('implements inc strictly', () => {
    assertOk([op(1, 0, 10, inc('n'), val('1')), op(2, 1, 9, inc('n'), val('2'))]);
    assertOk([op(1, 0, 10, inc('n'), val('2')), op(2, 1, 9, inc('n'), val('1'))]);
    assertViolation([op(1, 0, 10, inc('n'), val('1')), op(2, 1, 9, inc('n'), val('1'))]);
    // Sequential incs from an explicit value, including one beyond 2^53.
    assertOk([
      op(1, 0, 1, set('n', '41'), OK),
      op(1, 2, 3, inc('n'), val('42')),
      op(1, 4, 5, set('n', '9007199254740993'), OK),
      op(1, 6, 7, inc('n'), val('9007199254740994')),
      op(1, 8, 9, set('n', '-1'), OK),
      op(1, 10, 11, inc('n'), val('0')),
    ]);
    // inc must report the new value, not the old one.
    assertViolation([op(1, 0, 1, set('n', '5'), OK), op(1, 2, 3, inc('n'), val('5'))]);
    // On a non-integer it fails without effect; claiming success is a violation.
    assertOk([op(1, 0, 1, set('n', 'abc'), OK), op(1, 2, 3, inc('n'), NOT_INTEGER), op(1, 4, 5, get('n'), val('abc'))]);
    assertViolation([op(1, 0, 1, set('n', 'abc'), OK), op(1, 2, 3, inc('n'), val('1'))]);
    assertViolation([op(1, 0, 1, set('n', '3'), OK), op(1, 2, 3, inc('n'), NOT_INTEGER)]);
    assertViolation([op(1, 0, 1, set('n', '1.5'), OK), op(1, 2, 3, inc('n'), val('2.5'))]);
  });

  it('implements cas strictly', () => {
    assertOk([
      op(1, 0, 1, cas('x', undefined, 'a'), swapped(true)),
      op(1, 2, 3, cas('x', undefined, 'b'), swapped(false)),
      op(1, 4, 5, cas('x', 'a', 'c'), swapped(true)),
      op(1, 6, 7, get('x'), val('c')),
    ]);
    // Two concurrent cas from the same expected value: exactly one may win.
    const racers = [op(1, 0, 10, cas('x', undefined, 'a'), swapped(true)), op(2, 1, 9, cas('x', undefined, 'b'), swapped(false))];
    assertOk([...racers, op(3, 11, 12, get('x'), val('a'))]);
    assertViolation([...racers, op(3, 11, 12, get('x'), val('b'))]);
    assertViolation([op(1, 0, 10, cas('x', undefined, 'a'), swapped(true)), op(2, 1, 9, cas('x', undefined, 'b'), swapped(true))]);
    // A failed cas has no effect.
    assertViolation([op(1, 0, 1, cas('x', 'zzz', 'a'), swapped(false)), op(1, 2, 3, get('x'), val('a'))]);
    // An unknown-outcome cas swaps exactly when its expectation holds.
    assertOk([op(1, 0, Infinity, cas('x', undefined, 'a'), undefined), op(2, 5, 6, get('x'), val('a'))]);
    assertViolation([
      op(1, 0, 1, set('x', 'q'), OK),
      op(1, 2, Infinity, cas('x', undefined, 'a'), undefined),
      op(2, 5, 6, get('x'), val('a')),
    ]);
  });

  it('implements del strictly', () => {
    assertOk([
      op(1, 0, 1, del('x'), deleted(false)),
      op(1, 2, 3, set('x', 'a'), OK),
      op(1, 4, 5, del('x'), deleted(true)),
      op(1, 6, 7, get('x'), val(undefined)),
    ]);
    assertViolation([op(1, 0, 1, del('x'), deleted(true))]);
    assertViolation([op(1, 0, 1, set('x', 'a'), OK), op(1, 2, 3, del('x'), deleted(false))]);
    // Two concurrent deletes of an existing key: only one can have deleted it.
    assertOk([op(1, 0, 1, set('x', 'a'), OK), op(1, 2, 9, del('x'), deleted(true)), op(2, 3, 8, del('x'), deleted(false))]);
    assertViolation([op(1, 0, 1, set('x', 'a'), OK), op(1, 2, 9, del('x'), deleted(true)), op(2, 3, 8, del('x'), deleted(true))]);
  });

  it('rejects outputs of the wrong shape', () => {
    assertViolation([op(1, 0, 1, set('x', 'a'), val('a'))]);
    assertViolation([op(1, 0, 1, get('x'), deleted(false))]);
    assertViolation([op(1, 0, 1, del('x'), val(undefined))]);
    assertViolation([op(1, 0, 1, cas('x', undefined, 'a'), OK)]);
    assertViolation([op(1, 0, 1, get('x'), NOT_INTEGER)]);
  });

  it('checks keys independently and names the offending partition', () => {
    const history = [
      // Key x: fine, although it would contradict y's history if they shared a register.
      op(1, 0, 1, set('x', 'a'), OK),
      op(2, 2, 3, get('x'), val('a')),
      // Key y: fine.
      op(3, 0, 1, set('y', 'b'), OK),
      op(4, 2, 3, get('y'), val('b')),
    ];
    assertOk(history);
    const r = assertViolation([...history, op(5, 4, 5, set('z', 'c'), OK), op(5, 6, 7, get('z'), val('a'))]);
    assert.equal(r.partition, 2); // partitions are in order of first appearance: x, y, z
    assert.match(r.explanation, /Partition 2 of 3/);
    assert.match(r.explanation, /#5 client 5 \[6, 7\]: get\("z"\) -> "a"/);
  });

  it('rejects malformed histories with a typed error', () => {
    assert.throws(
      () => check([op(1, 5, 4, get('x'), val(undefined))]),
      (e: unknown) => e instanceof LinearizabilityError && e.code === 'invalid-history',
    );
    assert.throws(
      () => check([op(1, Number.NaN, 4, get('x'), val(undefined))]),
      (e: unknown) => e instanceof LinearizabilityError && e.code === 'invalid-history',
    );
    assert.throws(
      () => check([op(1, 0, 1, get('x'), val(undefined))], 0),
      (e: unknown) => e instanceof LinearizabilityError && e.code === 'invalid-options',
    );
    const lossy: Model<number, string, string> = { ...counterModel, partition: (ops) => [ops.slice(1)] };
    assert.throws(
      () => checkLinearizability(lossy, [{ client: 0, call: 0, ret: 1, input: 'x', output: '1' }, { client: 0, call: 2, ret: 3, input: 'x', output: '2' }]),
      (e: unknown) => e instanceof LinearizabilityError && e.code === 'invalid-partition',
    );
  });
});

/** A minimal non-partitioning model: a counter whose every operation increments and returns the new value. */
const counterModel: Model<number, string, string> = {
  init: () => 0,
  step: (s, _input, output) => (output === undefined || output === String(s + 1) ? s + 1 : undefined),
  key: (s) => String(s),
};

describe('checkLinearizability with a custom model', () => {
  it('works without partition or describe', () => {
    const ops: Operation<string, string>[] = [
      { client: 1, call: 0, ret: 10, input: 'inc', output: '2' },
      { client: 2, call: 1, ret: 9, input: 'inc', output: '1' },
      { client: 3, call: 11, ret: Infinity, input: 'inc', output: undefined },
      { client: 3, call: 12, ret: 13, input: 'inc', output: '4' },
    ];
    assert.deepEqual(checkLinearizability(counterModel, ops), { outcome: 'ok' });
    const bad = [...ops, { client: 1, call: 14, ret: 15, input: 'inc', output: '4' }];
    const r = checkLinearizability(counterModel, bad);
    assert.equal(r.outcome, 'violation');
    if (r.outcome !== 'violation') return;
    assert.equal(r.partition, 0);
    assert.match(r.explanation, /^History \(5 ops\) is not linearizable/);
    assert.match(r.explanation, /#4 client 1 \[14, 15\]: "inc" -> "4"/);
  });
});

// ---------------------------------------------------------------------------
// Randomised histories
// ---------------------------------------------------------------------------

/** mulberry32: a small, seeded PRNG, so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface GeneratedOp extends KvOp {
  /** Where the op really took effect (strictly inside its interval); undefined if it never did. */
  linearizedAt: number | undefined;
}

/**
 * Simulates clients issuing operations with random, overlapping intervals
 * against one real, atomic store, so the resulting history is linearizable
 * by construction.  The store here is written independently of kvModel so
 * the test does not check the model against itself.
 *
 * Set and cas values are either small integers (so incs and cas comparisons
 * succeed often) or globally unique tokens (so the stale-read test below can
 * pick a value that only one op ever wrote).
 */
function generateHistory(seed: number, opCount: number, keyCount: number, clientCount: number): GeneratedOp[] {
  const rand = prng(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  const keys = Array.from({ length: keyCount }, (_, i) => `k${i}`);
  const clientClock = Array.from({ length: clientCount }, () => int(10));
  let tokens = 0;
  const someValue = (): string => (rand() < 0.5 ? String(int(10)) : `t${tokens++}`);

  const ops: GeneratedOp[] = [];
  for (let i = 0; i < opCount; i++) {
    const client = int(clientCount);
    const call = clientClock[client]! + 1 + int(5);
    const linearizedAt = call + 1 + int(30);
    const ret = linearizedAt + 1 + int(30);
    clientClock[client] = ret;
    const key = keys[int(keyCount)]!;
    const r = rand();
    let input: KvInput;
    if (r < 0.35) input = { op: 'get', key };
    else if (r < 0.6) input = { op: 'set', key, value: someValue() };
    else if (r < 0.75) input = { op: 'inc', key };
    else if (r < 0.85) input = { op: 'del', key };
    else input = { op: 'cas', key, expected: rand() < 0.2 ? undefined : String(int(10)), value: someValue() };
    // About 1% of requests time out; half of those still took effect.
    const unknown = rand() < 0.01;
    const applied = !unknown || rand() < 0.5;
    ops.push({
      client,
      call,
      ret: unknown ? Infinity : ret,
      input,
      output: undefined,
      linearizedAt: applied ? linearizedAt : undefined,
    });
  }

  // Run the operations against the real store in the order they took effect.
  const store = new Map<string, string>();
  const outputs = new Map<GeneratedOp, KvOutput>();
  const effective = ops.filter((o) => o.linearizedAt !== undefined).sort((a, b) => a.linearizedAt! - b.linearizedAt!);
  for (const o of effective) {
    const input = o.input;
    const current = store.get(input.key);
    let output: KvOutput;
    switch (input.op) {
      case 'get':
        output = { ok: true, value: current };
        break;
      case 'set':
        store.set(input.key, input.value);
        output = { ok: true };
        break;
      case 'del':
        store.delete(input.key);
        output = { ok: true, deleted: current !== undefined };
        break;
      case 'inc':
        if (current !== undefined && !/^-?\d+$/.test(current)) {
          output = { ok: false, error: 'not-integer' };
        } else {
          const next = String(Number(current ?? '0') + 1);
          store.set(input.key, next);
          output = { ok: true, value: next };
        }
        break;
      case 'cas':
        if (current === input.expected) store.set(input.key, input.value);
        output = { ok: true, swapped: current === input.expected };
        break;
    }
    outputs.set(o, output);
  }
  for (const o of ops) if (o.ret !== Infinity) o.output = outputs.get(o);
  return ops;
}

/**
 * Corrupts one read into a stale one: it returns a token written by a set that
 * was certainly overwritten (by another set or a delete that started after the
 * set returned) before the read was called.  Tokens are unique, so nothing
 * else could have written the value again.  Returns the corrupted op.
 */
function corruptOneRead(history: GeneratedOp[]): GeneratedOp {
  const known = history.filter((o) => o.output !== undefined);
  const reads = known.filter((o) => o.input.op === 'get');
  // Prefer a read in the middle of the history, so the search has real work to do.
  reads.sort((a, b) => Math.abs(a.call - 2000) - Math.abs(b.call - 2000));
  for (const read of reads) {
    const sameKey = known.filter((o) => o.input.key === read.input.key);
    for (const stale of sameKey) {
      if (stale.input.op !== 'set' || !stale.input.value.startsWith('t') || stale.ret >= read.call) continue;
      const overwritten = sameKey.some(
        (w) =>
          (w.input.op === 'set' || w.input.op === 'del') &&
          w !== stale &&
          stale.ret < w.call &&
          w.ret < read.call,
      );
      if (overwritten) {
        read.output = { ok: true, value: stale.input.value };
        return read;
      }
    }
  }
  throw new Error('no stale read candidate found; adjust the generator');
}

/**
 * Reference checker for tiny histories: tries every order that respects
 * real time (an op may go next unless some other pending op returned before
 * it was called), stopping once every known-outcome op is placed.
 */
function bruteForceLinearizable(history: KvOp[]): boolean {
  const effRet = (o: KvOp): number => (o.output === undefined ? Infinity : o.ret);
  const search = (state: ReturnType<typeof kvModel.init>, remaining: KvOp[]): boolean => {
    if (remaining.every((o) => o.output === undefined)) return true;
    return remaining.some((candidate) => {
      if (remaining.some((o) => o !== candidate && effRet(o) < candidate.call)) return false;
      const next = kvModel.step(state, candidate.input, candidate.output);
      return next !== undefined && search(next, remaining.filter((o) => o !== candidate));
    });
  };
  return search(kvModel.init(), history);
}

describe('checkLinearizability against a brute-force reference', () => {
  it('agrees on 2,000 small random histories', () => {
    const rand = prng(42);
    const int = (n: number): number => Math.floor(rand() * n);
    const value = (): string => String(int(3));
    let linearizable = 0;
    for (let round = 0; round < 2000; round++) {
      const history: KvOp[] = [];
      const size = 1 + int(6);
      for (let i = 0; i < size; i++) {
        const call = int(10);
        const ret = call + int(6);
        const r = rand();
        let input: KvInput;
        let output: KvOutput;
        if (r < 0.3) [input, output] = [get('x'), val(rand() < 0.2 ? undefined : value())];
        else if (r < 0.55) [input, output] = [set('x', value()), OK];
        else if (r < 0.7) [input, output] = [inc('x'), rand() < 0.1 ? NOT_INTEGER : val(value())];
        else if (r < 0.85) [input, output] = [del('x'), deleted(rand() < 0.5)];
        else [input, output] = [cas('x', rand() < 0.3 ? undefined : value(), value()), swapped(rand() < 0.5)];
        history.push(op(i, call, ret, input, rand() < 0.15 ? undefined : output));
      }
      const expected = bruteForceLinearizable(history);
      if (expected) linearizable++;
      const r = check(history);
      assert.equal(r.outcome, expected ? 'ok' : 'violation', JSON.stringify(history));
    }
    // Make sure the generator produces a useful mix of both answers.
    assert.ok(linearizable > 200 && linearizable < 1800, `${linearizable} of 2000 linearizable`);
  });
});

describe('checkLinearizability on large random histories', () => {
  const OPS = 2000;
  const KEYS = 5;
  const CLIENTS = 10;

  it('accepts a linearizable history of 2,000 ops over 5 keys and 10 clients, quickly', (t) => {
    for (const seed of [1, 2, 3]) {
      const history = generateHistory(seed, OPS, KEYS, CLIENTS);
      const started = performance.now();
      const r = check(history);
      const elapsed = performance.now() - started;
      t.diagnostic(`seed ${seed}: ${OPS} ops checked in ${elapsed.toFixed(1)} ms`);
      assert.deepEqual(r, { outcome: 'ok' }, r.outcome === 'violation' ? r.explanation : undefined);
      assert.ok(elapsed < 5000, `took ${elapsed} ms`);
    }
  });

  it('finds a single stale read in the same history', (t) => {
    for (const seed of [1, 2, 3]) {
      const history = generateHistory(seed, OPS, KEYS, CLIENTS);
      const corrupted = corruptOneRead(history);
      const started = performance.now();
      const r = check(history);
      const elapsed = performance.now() - started;
      t.diagnostic(`seed ${seed}: violation found in ${elapsed.toFixed(1)} ms`);
      assert.equal(r.outcome, 'violation');
      if (r.outcome !== 'violation') return;
      const key = corrupted.input.key;
      const expectedPartition = [...new Set(history.map((o) => o.input.key))].indexOf(key);
      assert.equal(r.partition, expectedPartition);
      assert.ok(r.explanation.includes(`get("${key}")`), r.explanation);
      assert.ok(elapsed < 5000, `took ${elapsed} ms`);
    }
  });

  it('gives the same verdicts without the read-only search hint', () => {
    const plainKv: Model<ReturnType<typeof kvModel.init>, KvInput, KvOutput> = {
      init: kvModel.init,
      step: kvModel.step,
      key: kvModel.key,
      partition: kvModel.partition!,
    };
    for (const seed of [4, 5]) {
      const history = generateHistory(seed, OPS, KEYS, CLIENTS);
      assert.deepEqual(checkLinearizability(plainKv, history), { outcome: 'ok' });
      corruptOneRead(history);
      assert.equal(checkLinearizability(plainKv, history).outcome, 'violation');
      assert.equal(check(history).outcome, 'violation');
    }
  });

  it('returns unknown when the step budget runs out', () => {
    const history = generateHistory(1, OPS, KEYS, CLIENTS);
    const r = check(history, 100);
    assert.equal(r.outcome, 'unknown');
    if (r.outcome === 'unknown') assert.match(r.reason, /budget of 100 steps/);
  });

  it('returns unknown, not a hang, on an exponential search', () => {
    // Many writes of unknown outcome followed by an impossible read: proving the
    // violation means trying every subset of the writes, in every order.
    const history: KvOp[] = [];
    for (let i = 0; i < 25; i++) history.push(op(i, i, Infinity, set('x', `v${i}`), undefined));
    history.push(op(99, 100, 101, get('x'), val('never written')));
    const started = performance.now();
    const r = check(history, 200_000);
    assert.equal(r.outcome, 'unknown');
    assert.ok(performance.now() - started < 5000);
  });

  it('still reports a violation in one partition when another exhausts its budget', () => {
    const hard: KvOp[] = [];
    for (let i = 0; i < 25; i++) hard.push(op(i, i, Infinity, set('x', `v${i}`), undefined));
    hard.push(op(99, 100, 101, get('x'), val('never written')));
    const r = check([...hard, op(1, 0, 1, set('y', 'a'), OK), op(1, 2, 3, get('y'), val('b'))], 10_000);
    assert.equal(r.outcome, 'violation');
    if (r.outcome === 'violation') assert.equal(r.partition, 1);
  });
});
