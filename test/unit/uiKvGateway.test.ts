// The key-value panel's gateway requests (src/ui/kvGateway.ts): etcd 3.4
// grpc-gateway JSON, base64 keys and values, prefix ranges, and responses.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { GatewayError, base64Decode, base64Encode, deleteRequest, getRequest, incRequest, parseDelete, parseInc, parseRange, parseRevision, prefixRangeEnd, putRequest, rangePrefixRequest } from '../../src/ui/kvGateway.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('base64', () => {
  it('matches Node\'s encoding for every padding case and non-ASCII text', () => {
    for (const s of ['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar', 'värde ✓']) {
      assert.equal(base64Encode(new TextEncoder().encode(s)), b64(s), s);
      assert.equal(new TextDecoder().decode(base64Decode(b64(s))), s, s);
    }
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.equal(base64Encode(bytes), Buffer.from(bytes).toString('base64'));
    assert.deepEqual(base64Decode(Buffer.from(bytes).toString('base64')), bytes);
  });

  it('rejects what is not base64', () => {
    assert.throws(() => base64Decode('ab$d'), GatewayError);
    assert.throws(() => base64Decode('abcde'), GatewayError);
  });
});

describe('requests', () => {
  it('computes etcd\'s prefix range end', () => {
    assert.deepEqual(prefixRangeEnd(new Uint8Array([0x61, 0x62])), new Uint8Array([0x61, 0x63]));
    assert.deepEqual(prefixRangeEnd(new Uint8Array([0x61, 0xff])), new Uint8Array([0x62]));
    assert.deepEqual(prefixRangeEnd(new Uint8Array([0xff, 0xff])), new Uint8Array([0]));
    assert.deepEqual(prefixRangeEnd(new Uint8Array([])), new Uint8Array([0]));
  });

  it('builds range, put, deleterange and inc bodies as the gateway expects', () => {
    assert.deepEqual(rangePrefixRequest('app/', 50), { path: '/v3/kv/range', body: { key: b64('app/'), range_end: b64('app0'), limit: '50' } });
    assert.deepEqual(rangePrefixRequest('', 10).body, { key: 'AA==', range_end: 'AA==', limit: '10' }, 'empty prefix: every key');
    assert.deepEqual(getRequest('k'), { path: '/v3/kv/range', body: { key: b64('k') } });
    assert.deepEqual(putRequest('k', 'v ✓'), { path: '/v3/kv/put', body: { key: b64('k'), value: b64('v ✓') } });
    assert.deepEqual(deleteRequest('k'), { path: '/v3/kv/deleterange', body: { key: b64('k') } });
    assert.deepEqual(incRequest('n'), { path: '/v3/kv/inc', body: { key: b64('n'), delta: '1' } });
    assert.throws(() => putRequest('', 'v'), /a key is required/);
  });
});

describe('responses', () => {
  it('parses a range response with int64 strings and omitted fields', () => {
    const r = parseRange({
      header: { cluster_id: '1', member_id: '2', revision: '17', raft_term: '3' },
      kvs: [
        { key: b64('a'), value: b64('1'), create_revision: '5', mod_revision: '9', version: '2' },
        { key: b64('b'), create_revision: '6', mod_revision: '6', version: '1' },
      ],
      count: '2',
    });
    assert.deepEqual(r, {
      kvs: [
        { key: 'a', value: '1', createRevision: 5, modRevision: 9, version: 2 },
        { key: 'b', value: '', createRevision: 6, modRevision: 6, version: 1 },
      ],
      count: 2,
      more: false,
      revision: 17,
    });
    assert.deepEqual(parseRange({ header: { revision: '3' } }), { kvs: [], count: 0, more: false, revision: 3 });
  });

  it('parses put, delete and inc responses', () => {
    assert.equal(parseRevision({ header: { revision: '8' } }), 8);
    assert.equal(parseDelete({ header: { revision: '9' }, deleted: '1' }), 1);
    assert.equal(parseDelete({ header: { revision: '9' } }), 0);
    assert.equal(parseInc({ header: { revision: '10' }, value: '42', kv: { key: b64('n'), value: b64('42') } }), 42);
    assert.equal(parseInc({ header: { revision: '10' }, kv: { key: b64('n') } }), 0, 'zero is left out');
    assert.equal(parseInc({ value: -3 }), -3);
  });

  it('turns a gateway error into a GatewayError with its message', () => {
    assert.throws(
      () => parseRange({ error: 'etcdserver: request timed out', code: 14, message: 'etcdserver: request timed out' }),
      (e: unknown) => e instanceof GatewayError && e.code === 'UI_GATEWAY_ERROR' && /timed out \(code 14\)/.test(e.message),
    );
    assert.throws(() => parseRange([1]), GatewayError);
    assert.throws(() => parseRange({ count: 'many' }), /expected an integer/);
  });
});
