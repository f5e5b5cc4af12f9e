// Exactly-once commands through client sessions (Raft dissertation §6.3,
// RIFL's lowest-unacknowledged sequence): a retry gets the original result
// without being applied again, acknowledged results are discarded, idle
// sessions expire by the log's clock, identically on every member, and the
// table survives a snapshot.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  type ClientSession,
  type KvOperation,
  type KvResult,
  type PutResponse,
  KvError,
  KvStateMachine,
  encodeCommand,
  rangeRequest,
  validateCommand,
} from '../../src/kv/index.js';

const b = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const s = (u: Uint8Array) => Buffer.from(u).toString('latin1');

function put(key: string, value: string): KvOperation {
  return {
    type: 'put',
    request: { key: b(key), value: b(value), lease: 0n, prevKv: true, ignoreValue: false, ignoreLease: false },
  };
}

const inc = (key: string, delta = 1): KvOperation => ({ type: 'increment', request: { key: b(key), delta } });

const HOUR = 3_600_000;
const T0 = 1_700_000_000_000;

class Member {
  readonly sm: KvStateMachine;
  index = 0;
  constructor(ttl?: number, maxOutstanding?: number) {
    this.sm = new KvStateMachine({
      ...(ttl !== undefined ? { sessionTtlMs: ttl } : {}),
      ...(maxOutstanding !== undefined ? { maxOutstandingPerClient: maxOutstanding } : {}),
    });
  }
  apply(op: KvOperation, time: number, session?: ClientSession): KvResult {
    return this.sm.apply(encodeCommand(session ? { op, time, session } : { op, time }), ++this.index);
  }
  value(key: string): string | undefined {
    const kv = this.sm.range(rangeRequest({ key: b(key), serializable: true })).kvs[0];
    return kv === undefined ? undefined : s(kv.value);
  }
}

const sess = (clientId: string, seq: number, lowestUnackedSeq = 1): ClientSession => ({ clientId, seq, lowestUnackedSeq });

function code(r: KvResult): string | undefined {
  return r instanceof KvError ? r.code : undefined;
}

describe('kv sessions: exactly once', () => {
  it('a retry returns the original response and is not applied again', () => {
    const m = new Member();
    const first = m.apply(inc('n'), T0, sess('c1', 1)) as { value: number; header: { revision: number } };
    assert.equal(first.value, 1);
    const retry = m.apply(inc('n'), T0 + 10, sess('c1', 1)) as { value: number; header: { revision: number } };
    assert.deepEqual(retry, first, 'the same response, revision included');
    assert.notEqual(retry, first, 'a fresh copy, not the object handed out before');
    assert.equal(m.value('n'), '1');
    assert.equal(m.sm.revision, 2);
    // A new sequence number is a new request.
    assert.equal((m.apply(inc('n'), T0 + 20, sess('c1', 2)) as { value: number }).value, 2);
  });

  it('an error result is saved and repeated like any other', () => {
    const m = new Member();
    m.apply(put('k', 'text'), T0);
    const e1 = m.apply(inc('k'), T0, sess('c', 1));
    assert.equal(code(e1), 'NOT_AN_INTEGER');
    m.apply(put('k', '5'), T0);
    const e2 = m.apply(inc('k'), T0, sess('c', 1));
    assert.ok(e2 instanceof KvError);
    assert.deepEqual([e2.code, e2.grpcStatus, e2.message], [(e1 as KvError).code, (e1 as KvError).grpcStatus, (e1 as KvError).message]);
    assert.equal(m.value('k'), '5', 'the retry did not increment');
  });

  it('keeps several outstanding requests and answers retries of each, in any order', () => {
    const m = new Member();
    const r1 = m.apply(put('a', '1'), T0, sess('c', 1)) as PutResponse;
    const r3 = m.apply(put('b', '3'), T0, sess('c', 3)) as PutResponse;
    const r2 = m.apply(put('a', '2'), T0, sess('c', 2)) as PutResponse;
    const rev = m.sm.revision;
    assert.deepEqual(m.apply(put('b', 'x'), T0, sess('c', 3)), r3);
    assert.deepEqual(m.apply(put('a', 'x'), T0, sess('c', 1)), r1);
    assert.deepEqual(m.apply(put('a', 'x'), T0, sess('c', 2)), r2);
    assert.equal(m.sm.revision, rev);
    assert.deepEqual([m.value('a'), m.value('b')], ['2', '3']);
  });

  it('discards results below the lowest unacknowledged seq; a retry of one is refused', () => {
    const m = new Member();
    m.apply(inc('n'), T0, sess('c', 1, 1));
    m.apply(inc('n'), T0, sess('c', 2, 1));
    // The client has the response to 1: it says so with its next request.
    m.apply(inc('n'), T0, sess('c', 3, 2));
    const late = m.apply(inc('n'), T0, sess('c', 1, 1));
    assert.ok(late instanceof KvError);
    assert.equal(late.code, 'SEQUENCE_ACKNOWLEDGED');
    assert.equal(late.grpcStatus, 9);
    assert.match(late.message, /^raftkv: request sequence 1 of client "c" already acknowledged/);
    // 2 is still answered from the table.
    assert.equal((m.apply(inc('n'), T0, sess('c', 2, 2)) as { value: number }).value, 2);
    assert.equal(m.value('n'), '3');
    // The lowest unacknowledged seq only moves forward: an older claim does not resurrect 1.
    assert.equal(code(m.apply(inc('n'), T0, sess('c', 1, 1))), 'SEQUENCE_ACKNOWLEDGED');
  });

  it('a mutated response does not change what a retry gets', () => {
    const m = new Member();
    m.apply(put('k', 'a'), T0);
    const r = m.apply(put('k', 'b'), T0, sess('c', 1)) as PutResponse;
    r.header.memberId = 42n; // what the server does when it fills the header
    r.prevKv!.value[0] = 0x7a;
    const again = m.apply(put('k', 'b'), T0, sess('c', 1)) as PutResponse;
    assert.equal(again.header.memberId, 0n);
    assert.equal(s(again.prevKv!.value), 'a');
  });

  it('refuses a request that would keep more than maxOutstandingPerClient results', () => {
    const m = new Member(undefined, 3);
    for (let i = 1; i <= 3; i++) assert.equal(code(m.apply(inc('n'), T0, sess('c', i))), undefined);
    const r = m.apply(inc('n'), T0, sess('c', 4));
    assert.equal(code(r), 'TOO_MANY_OUTSTANDING');
    assert.equal((r as KvError).grpcStatus, 8);
    assert.equal(m.value('n'), '3');
    // Acknowledging frees room.
    assert.equal((m.apply(inc('n'), T0, sess('c', 4, 3)) as { value: number }).value, 4);
  });

  it('validateCommand checks the session before proposing', () => {
    const bad = (session: ClientSession) => () => validateCommand({ op: inc('n'), time: T0, session });
    assert.throws(bad(sess('', 1)), (e: KvError) => e.code === 'INVALID_SESSION');
    assert.throws(bad(sess('c', 0)), (e: KvError) => e.code === 'INVALID_SESSION');
    assert.throws(bad(sess('c', 2, 3)), (e: KvError) => e.code === 'INVALID_SESSION');
    assert.throws(() => validateCommand({ op: inc('n'), time: -1 }), (e: KvError) => e.code === 'INVALID_NUMBER');
    assert.doesNotThrow(bad(sess('c', 5, 5)));
    // Apply refuses one that skipped the check, and keeps no session for it.
    const m = new Member();
    assert.equal(code(m.apply(inc('n'), T0, sess('c', 2, 3))), 'INVALID_SESSION');
    assert.equal(m.sm.sessionCount, 0);
    assert.equal(m.value('n'), undefined);
  });
});

describe('kv sessions: expiry by log time', () => {
  it('expires a session idle for longer than the TTL; a client that had acknowledged results is told so', () => {
    const m = new Member(HOUR);
    m.apply(inc('n'), T0, sess('c', 1));
    m.apply(inc('n'), T0, sess('d', 1));
    // d stays active; c goes quiet.
    m.apply(inc('n'), T0 + HOUR - 1, sess('d', 2, 2));
    assert.equal(m.sm.sessionCount, 2);
    m.apply(inc('other'), T0 + HOUR, sess('d', 3, 3));
    assert.equal(m.sm.sessionCount, 2, 'exactly the TTL is not yet expired');
    m.apply(inc('other'), T0 + HOUR + 1);
    assert.equal(m.sm.sessionCount, 1, 'c expired one ms later, d did not');
    const r = m.apply(inc('n'), T0 + HOUR + 2, sess('c', 2, 2));
    assert.equal(code(r), 'SESSION_EXPIRED');
    assert.equal((r as KvError).grpcStatus, 9);
    assert.equal(m.value('n'), '3', 'not applied');
    // A new client id starts a new session.
    assert.equal(code(m.apply(inc('n'), T0 + HOUR + 3, sess('c2', 1))), undefined);
  });

  it('the clock is the largest time applied so far: a proposer with a slow clock does not move it back', () => {
    const m = new Member(1000);
    m.apply(inc('n'), T0 + 5000, sess('a', 1));
    assert.equal(m.sm.logTime, T0 + 5000);
    m.apply(inc('n'), T0, sess('b', 1)); // b is seen at T0 + 5000, not T0
    assert.equal(m.sm.logTime, T0 + 5000);
    m.apply(inc('x'), T0 + 6000);
    assert.equal(m.sm.sessionCount, 2, 'b was seen at the log time, so it has not expired');
    m.apply(inc('x'), T0 + 6001);
    assert.equal(m.sm.sessionCount, 0);
  });

  it('every member expires the same sessions at the same index, whatever its own clock', () => {
    const a = new Member(10_000);
    const c = new Member(10_000);
    const script: [KvOperation, number, ClientSession | undefined][] = [];
    let t = T0;
    for (let i = 0; i < 300; i++) {
      t += (i * 7919) % 3000; // irregular gaps; a client idle for about 10 s expires
      const client = `c${i % 7}`;
      script.push([inc(`k${i % 5}`), t - ((i * 31) % 500), i % 3 === 0 ? undefined : sess(client, 1000 + i, 1)]);
    }
    const counts: number[][] = [[], []];
    for (const [op, time, session] of script) {
      const ra = a.apply(op, time, session);
      const rc = c.apply(op, time, session);
      assert.deepEqual(ra, rc);
      counts[0]!.push(a.sm.sessionCount);
      counts[1]!.push(c.sm.sessionCount);
    }
    assert.deepEqual(counts[0], counts[1]);
    assert.ok(Math.min(...counts[0]!) < Math.max(...counts[0]!), 'sessions came and went');
    assert.equal(a.sm.hash(), c.sm.hash());
    assert.deepEqual(a.sm.snapshot(), c.sm.snapshot());
  });

  it('the session table travels in the snapshot: a member restored from it answers retries', () => {
    const a = new Member(HOUR);
    const orig = a.apply(inc('n', 5), T0, sess('c', 1)) as { value: number };
    a.apply(inc('n', 5), T0, sess('d', 1));
    const b2 = new Member(HOUR);
    b2.sm.restore(a.sm.snapshot(), a.index);
    assert.equal(b2.sm.sessionCount, 2);
    assert.equal(b2.sm.logTime, T0);
    assert.deepEqual(b2.apply(inc('n', 5), T0 + 1, sess('c', 1)), orig);
    assert.equal(b2.value('n'), '10');
    // And expiry continues from the restored clock (the retry refreshed c at T0 + 1).
    b2.apply(inc('z'), T0 + HOUR + 1);
    assert.equal(b2.sm.sessionCount, 1);
    b2.apply(inc('z'), T0 + HOUR + 2);
    assert.equal(b2.sm.sessionCount, 0);
  });
});
