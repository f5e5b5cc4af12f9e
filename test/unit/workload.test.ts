// The simulator's clients (src/sim/workload.ts): one operation at a time,
// retried with the same sequence number, a new session when the old one
// expired, and answers matched to the operation they answer.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { NodeId } from '../../src/raft/types.js';
import type { ClientReply, ClientRequest } from '../../src/sim/node.js';
import { Random } from '../../src/sim/random.js';
import { type ClientHost, type ClientOp, SimClient } from '../../src/sim/workload.js';

/** A host that records what the client sends and completes, and lets the test fire its timer. */
class Host implements ClientHost {
  readonly sent: ClientRequest[] = [];
  readonly completed: ClientOp[] = [];
  wakeAt = 0;
  token = 0;
  sendRequest(_to: NodeId, req: ClientRequest): void {
    this.sent.push(req);
  }
  wake(_client: SimClient, at: number, token: number): void {
    this.wakeAt = at;
    this.token = token;
  }
  nodeIds(): readonly NodeId[] {
    return [1, 2, 3];
  }
  onComplete(_client: SimClient, op: ClientOp): void {
    this.completed.push(op);
  }
  last(): ClientRequest {
    return this.sent[this.sent.length - 1]!;
  }
}

function client(): { c: SimClient; host: Host; fire: () => void } {
  const host = new Host();
  const c = new SimClient(1000, new Random(1), host, 1, 100_000, 0);
  const fire = () => c.wake(host.wakeAt, host.token);
  c.start(0);
  return { c, host, fire };
}

describe('SimClient', () => {
  it('registers, then numbers its operations within the session', () => {
    const { c, host, fire } = client();
    fire();
    assert.equal(host.last().register, true);
    c.onReply(10, { client: 1000, seq: 0, from: 1, session: 7, registration: host.last().attempt });
    fire();
    const op = host.last();
    assert.deepEqual([op.register, op.session, op.seq], [false, 7, 1]);
    c.onReply(20, { client: 1000, seq: 1, opSession: 7, from: 1, output: { ok: true, value: '1' } });
    assert.equal(host.completed.length, 1);
  });

  it('after its session expired, takes no late answer from the old session for one in the new (sequence numbers start over)', () => {
    const { c, host, fire } = client();
    fire();
    c.onReply(10, { client: 1000, seq: 0, from: 1, session: 7, registration: host.last().attempt });
    fire(); // seq 1 in session 7
    c.onReply(20, { client: 1000, seq: 1, opSession: 7, from: 1, error: 'session-expired' });
    assert.equal(c.sessionsExpired, 1);
    assert.equal(host.completed.length, 0, 'the expired operation has no known outcome');
    fire();
    assert.equal(host.last().register, true, 'a new session');
    // A late answer about session 7 while registering is not about the registration: it changes nothing.
    const [sentBefore, timerBefore] = [host.sent.length, host.token];
    c.onReply(25, { client: 1000, seq: 1, opSession: 7, from: 2, error: 'no-leader' });
    assert.deepEqual([host.sent.length, host.token], [sentBefore, timerBefore]);
    c.onReply(30, { client: 1000, seq: 0, from: 1, session: 9, registration: host.last().attempt });
    fire();
    const op = host.last();
    assert.deepEqual([op.session, op.seq], [9, 1]);
    const stale: ClientReply = { client: 1000, seq: 1, opSession: 7, from: 3, output: { ok: true, value: '5' } };
    c.onReply(40, stale);
    assert.equal(host.completed.length, 0, 'an answer from session 7 does not complete seq 1 of session 9');
    c.onReply(50, { client: 1000, seq: 1, opSession: 9, from: 1, output: { ok: true, value: '2' } });
    assert.equal(host.completed.length, 1);
    assert.deepEqual(host.completed[0]!.output, { ok: true, value: '2' });
  });

  it('takes no answer to an earlier registration as the answer to a new one (seed 15294)', () => {
    // A lagging node applies the client's old registration entry late and
    // answers the client's new registration with the old, expired session:
    // the client would then number operations in that session, and the same
    // node, still replaying, would answer them with old results.
    const { c, host, fire } = client();
    fire();
    const first = host.last().attempt;
    c.onReply(10, { client: 1000, seq: 0, from: 1, session: 7, registration: first });
    fire();
    c.onReply(20, { client: 1000, seq: 1, opSession: 7, from: 1, error: 'session-expired' });
    fire();
    const again = host.last();
    assert.equal(again.register, true);
    assert.notEqual(again.attempt, first, 'registration attempts are numbered over the client\'s life');
    c.onReply(25, { client: 1000, seq: 0, from: 3, session: 7, registration: first });
    fire();
    assert.equal(host.last().register, true, 'still registering: the answer was about the old registration');
    c.onReply(30, { client: 1000, seq: 0, from: 1, session: 12, registration: host.last().attempt });
    fire();
    assert.deepEqual([host.last().register, host.last().session, host.last().seq], [false, 12, 1]);
  });
});
