// The node runtime's smaller parts on their own: the envelope codecs and the
// in-process transport.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  decodeConfContext,
  decodeEnvelope,
  decodeNodeSnapshot,
  encodeConfContext,
  encodeEnvelope,
  encodeNodeSnapshot,
} from '../../src/node/envelope.js';
import { EnvelopeError } from '../../src/node/errors.js';
import { LocalNetwork } from '../../src/node/localTransport.js';
import { type Message, type NodeId, message } from '../../src/raft/types.js';
import type { TransportHandlers } from '../../src/transport/types.js';
import { settle } from './nodeHarness.js';

describe('node envelopes', () => {
  it('round-trips a proposal envelope, ids up to 2^53', () => {
    for (const id of [
      { proposer: 1, nonce: 0, seq: 1 },
      { proposer: 0x7fffffff, nonce: 0x7ffffffe, seq: 2 ** 40 + 3 },
      { proposer: Number.MAX_SAFE_INTEGER, nonce: 127, seq: 128 },
    ]) {
      const payload = new Uint8Array([9, 8, 7]);
      const env = decodeEnvelope(encodeEnvelope(id, payload));
      assert.deepEqual({ proposer: env.proposer, nonce: env.nonce, seq: env.seq }, id);
      assert.deepEqual([...env.payload], [9, 8, 7]);
    }
    assert.equal(decodeEnvelope(encodeEnvelope({ proposer: 1, nonce: 1, seq: 1 }, new Uint8Array(0))).payload.length, 0);
  });

  it('refuses what it did not write', () => {
    assert.throws(() => decodeEnvelope(new Uint8Array(0)), EnvelopeError);
    assert.throws(() => decodeEnvelope(new TextEncoder().encode('plain text')), EnvelopeError);
    const good = encodeEnvelope({ proposer: 300, nonce: 300, seq: 300 }, new Uint8Array(0));
    assert.throws(() => decodeEnvelope(good.subarray(0, 3)), /truncated/);
    assert.throws(() => decodeEnvelope(new Uint8Array([0xa1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), /too long/);
  });

  it('carries a conf change’s proposal id and URL', () => {
    const ctx = encodeConfContext({ proposer: 2, nonce: 5, seq: 9 }, 'http://10.0.0.4:2380');
    const { id, url } = decodeConfContext(ctx);
    assert.deepEqual(id, { proposer: 2, nonce: 5, seq: 9 });
    assert.equal(url, 'http://10.0.0.4:2380');
    assert.equal(decodeConfContext(encodeConfContext({ proposer: 2, nonce: 5, seq: 9 }, undefined)).url, undefined);
    assert.deepEqual(decodeConfContext(undefined), { id: undefined, url: undefined });
  });

  it('round-trips a snapshot with its members’ URLs', () => {
    const members = new Map<NodeId, string>([
      [3, 'local://3'],
      [1, 'local://1'],
    ]);
    const data = new Uint8Array([1, 2, 3, 4]);
    const decoded = decodeNodeSnapshot(encodeNodeSnapshot(members, data));
    assert.deepEqual([...decoded.members], [
      [1, 'local://1'],
      [3, 'local://3'],
    ]);
    assert.deepEqual([...decoded.data], [1, 2, 3, 4]);
    assert.throws(() => decodeNodeSnapshot(data), EnvelopeError);
    const damaged = encodeNodeSnapshot(members, data);
    damaged[3] = 0x7b; // inside the JSON
    assert.throws(() => decodeNodeSnapshot(damaged), EnvelopeError);
  });
});

describe('LocalNetwork', () => {
  function recorder() {
    const got: Message[] = [];
    const unreachable: NodeId[] = [];
    const snapshots: [NodeId, boolean][] = [];
    const handlers: TransportHandlers = {
      onMessage: (m) => got.push(m),
      onUnreachable: (to) => unreachable.push(to),
      onSnapshotStatus: (to, ok) => snapshots.push([to, ok]),
    };
    return { got, unreachable, snapshots, handlers };
  }

  it('delivers later, in order, copies, only to known and started peers', async () => {
    const net = new LocalNetwork();
    const a = net.transport(1);
    const b = net.transport(2);
    const ra = recorder();
    const rb = recorder();
    await a.start(ra.handlers);
    await b.start(rb.handlers);
    const data = new Uint8Array([1, 2, 3]);
    const m = (index: number) => message({ type: 'MsgApp', from: 1, to: 2, term: 1, index, entries: [{ index, term: 1, type: 'normal', data }] });

    a.send([m(1)]);
    await settle();
    assert.equal(rb.got.length, 0, 'not to a peer it was not told about');
    assert.deepEqual(ra.unreachable, [2]);

    a.addPeer(2, 'local://2');
    a.send([m(2), m(3)]);
    assert.equal(rb.got.length, 0, 'never inside send()');
    await settle();
    assert.deepEqual(rb.got.map((x) => x.index), [2, 3]);
    assert.notEqual(rb.got[0]!.entries[0]!.data, data, 'a copy');
    assert.deepEqual([...rb.got[0]!.entries[0]!.data], [1, 2, 3]);

    net.isolate(2);
    a.send([m(4)]);
    await settle();
    assert.equal(rb.got.length, 2);
    assert.deepEqual(ra.unreachable, [2, 2]);
    net.heal();

    const snap = message({ type: 'MsgSnap', from: 1, to: 2, term: 1, snapshot: { metadata: { index: 5, term: 1, confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data } });
    a.send([snap]);
    await settle();
    assert.deepEqual(ra.snapshots, [[2, true]]);
    await b.close();
    a.send([snap]);
    await settle();
    assert.deepEqual(ra.snapshots, [[2, true], [2, false]], 'a snapshot to a closed peer fails');
    await a.close();
  });
});
