// The etcd3 npm client (on @grpc/grpc-js), unchanged, against a 3-member
// raftkv cluster of real processes: the same operations an application
// using etcd would do, and etcd's errors.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Etcd3, GRPCInvalidArgumentError } from 'etcd3';

import { LocalCluster } from '../../src/cli/localCluster.js';

describe('the etcd3 npm client against raftkv', { timeout: 60_000 }, () => {
  let dir: string;
  let cluster: LocalCluster;
  let client: Etcd3;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftkv-etcd3-'));
    cluster = await LocalCluster.create({ size: 3, dataDir: dir, extraFlags: ['--heartbeat-interval', '50', '--election-timeout', '500', '--max-request-bytes', '65536'] });
    cluster.startAll();
    await cluster.waitAllHealthy();
    client = new Etcd3({ hosts: cluster.endpoints });
  });

  after(async () => {
    client?.close();
    await cluster?.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('put, get, prefix, delete', async () => {
    await client.put('app/a').value('one');
    await client.put('app/b').value('two');
    assert.equal(await client.get('app/a').string(), 'one');
    assert.deepEqual(await client.getAll().prefix('app/').strings(), { 'app/a': 'one', 'app/b': 'two' });
    assert.equal(await client.getAll().prefix('app/').count(), 2);
    const del = await client.delete().prefix('app/');
    assert.equal(del.deleted, '2');
    assert.equal(await client.get('app/a').string(), null);
  });

  it('a compare-and-set transaction', async () => {
    await client.put('cfg').value('v1');
    const won = await client.if('cfg', 'Value', '==', 'v1').then(client.put('cfg').value('v2')).else(client.get('cfg')).commit();
    assert.equal(won.succeeded, true);
    const lost = await client.if('cfg', 'Value', '==', 'v1').then(client.put('cfg').value('v3')).else(client.get('cfg')).commit();
    assert.equal(lost.succeeded, false);
    assert.equal(Buffer.from(lost.responses[0]!.response_range!.kvs[0]!.value).toString(), 'v2');
    assert.equal(await client.get('cfg').string(), 'v2');
  });

  it('status, members, and etcd\'s errors', async () => {
    const st = await client.maintenance.status();
    assert.notEqual(st.leader, '0');
    const members = await client.cluster.memberList({});
    assert.deepEqual(members.members.map((m) => m.name).sort(), ['m1', 'm2', 'm3']);
    await assert.rejects(
      async () => await client.put('').value('x'),
      (e: unknown) => e instanceof GRPCInvalidArgumentError && /etcdserver: key is not provided/.test(e.message),
    );
    // Over --max-request-bytes (64 KiB here) but under the gRPC limit: etcd's "request is too large", nothing applied.
    await assert.rejects(
      async () => await client.put('big').value(Buffer.alloc(100_000, 1)),
      (e: unknown) => e instanceof Error && /etcdserver: request is too large/.test(e.message),
    );
    assert.equal(await client.get('big').string(), null);
  });

  it('without a quorum: etcd\'s "no leader", and nothing half-applied', async () => {
    await cluster.kill(1);
    await cluster.kill(2);
    const alone = new Etcd3({ hosts: [cluster.endpoints[0]!], dialTimeout: 2000 });
    try {
      // The lone member loses its leader within an election timeout (CheckQuorum, PreVote).
      let health = '';
      for (let i = 0; i < 50 && !health.includes('NO LEADER'); i++) {
        await new Promise((r) => setTimeout(r, 100));
        health = await (await fetch(`${cluster.endpoints[0]}/health`)).text();
      }
      assert.match(health, /"health":"false".*RAFT NO LEADER/);
      await assert.rejects(async () => await alone.put('orphan').value('x'), (e: unknown) => e instanceof Error && /etcdserver: no leader/.test(e.message));
    } finally {
      alone.close();
    }
    cluster.start(1);
    cluster.start(2);
    await cluster.waitAllHealthy();
    assert.equal(await client.get('orphan').string(), null);
  });
});
