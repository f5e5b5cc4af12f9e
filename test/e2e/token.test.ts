// A member started with another --initial-cluster-token is refused (etcd:
// the token goes into every member id and the cluster id, so clusters
// bootstrapped with different tokens never mistake each other's members).
//
// Member m3 of a 3-member cluster is stopped, and a rogue process takes its
// place: same name, same peer and client URLs, same --initial-cluster, a
// fresh data directory, but another token. Its member ids and cluster id
// differ from the cluster's, so the transport's handshake refuses every
// connection between it and m1, m2 (src/transport/inbound.ts logs the
// refusal, the dialer logs the refusal it was sent): the cluster's term and
// leader do not move, its data is untouched and writes go on, the rogue
// never gets a leader, never publishes itself nor serves a client (as an
// etcd member that cannot join), and the member list
// never holds it. Then the real m3 comes back and catches up.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import type { RaftKvClient } from '../../src/client/index.js';
import { type TestCluster, logLines, sleep, withCluster } from './fixtures/cluster.js';

const TOKEN = 'raftkv-e2e-token';
const ROGUE_TOKEN = 'someone-elses-cluster';

/** Waits until member i has logged, after `from`, a line whose msg matches. */
async function waitForLog(tc: TestCluster, i: number, msg: RegExp, from: number, ms = 15_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = logLines(tc.cluster, i, msg, from)[0];
    if (found !== undefined) return found;
    if (Date.now() > deadline) assert.fail(`member ${tc.cluster.members[i]!.name} did not log ${msg} within ${ms} ms`);
    await sleep(100);
  }
}

async function keys(client: RaftKvClient, serializable = false): Promise<string[]> {
  const res = await client.get('tok/', { prefix: true, serializable });
  // Sorted as strings, to compare with the expected list (etcd sorts by key bytes).
  return res.kvs.map((kv) => `${Buffer.from(kv.key).toString()}=${Buffer.from(kv.value).toString()}`).sort();
}

describe('--initial-cluster-token', { timeout: 90_000 }, () => {
  it('a member with a different token in the place of a stopped member is refused', async () => {
    await withCluster('token', { size: 3, token: TOKEN }, async (tc) => {
      const { cluster } = tc;
      const healthy = tc.client({ endpoints: cluster.endpoints.slice(0, 2) });
      const probe = tc.client();
      await healthy.put('tok/before', '1');
      const members = (await healthy.memberList()).members.map((m) => m.id).sort();
      assert.equal(members.length, 3);

      await cluster.stop(2);
      const from = cluster.members.map((m) => m.log.length);
      const [s0, s1] = [await probe.status(cluster.endpoints[0]!), await probe.status(cluster.endpoints[1]!)];
      assert.equal(s0.leader, s1.leader);
      assert.notEqual(s0.leader, 0n, 'm1 and m2 have a leader');

      cluster.start(2, ['--initial-cluster-token', ROGUE_TOKEN, '--data-dir', join(tc.dir, 'rogue')]);
      // m1 and m2 refuse the rogue's connections, and the rogue theirs.
      let roguePeer: unknown;
      for (const i of [0, 1]) {
        const line = await waitForLog(tc, i, /from another cluster .*check --initial-cluster-token/, from[i]!);
        assert.equal(line.refusal, 'cluster-mismatch');
        roguePeer ??= line.peer;
        assert.equal(line.peer, roguePeer);
      }
      // The token is part of the member id too.
      assert.ok(!members.map((id) => id.toString(16)).includes(String(roguePeer)), 'the rogue has a member id of the cluster');
      await waitForLog(tc, 2, /from another cluster .*check --initial-cluster-token/, from[2]!);
      await waitForLog(tc, 2, /refused our connection: .*check --initial-cluster-token/, from[2]!);

      // Writes go on while the rogue tries, for several of its election timeouts.
      for (let n = 0; n < 20; n++) {
        await healthy.put(`tok/during/${n}`, String(n));
        await sleep(100);
      }
      const [a0, a1] = [await probe.status(cluster.endpoints[0]!), await probe.status(cluster.endpoints[1]!)];
      assert.equal(a0.raftTerm, s0.raftTerm, 'the rogue disturbed the term of m1');
      assert.equal(a1.raftTerm, s1.raftTerm, 'the rogue disturbed the term of m2');
      assert.equal(a0.leader, s0.leader, 'the leader changed');
      assert.equal(a1.leader, s0.leader, 'the leader changed');

      // Like an etcd member that never joins its cluster, the rogue never
      // publishes itself, so it never serves clients: nothing can be read
      // from it, stale or otherwise.
      await assert.rejects(fetch(`${cluster.endpoints[2]}/health`), 'the rogue serves clients');
      assert.equal(logLines(tc.cluster, 2, /published this member/, from[2]!).length, 0, 'the rogue published itself');
      assert.equal(logLines(tc.cluster, 2, /snapshot installed|leader changed/, from[2]!).length, 0, 'the rogue got a snapshot or a leader');
      for (const i of [0, 1]) {
        const list = (await tc.client({ endpoints: [cluster.endpoints[i]!] }).memberList()).members.map((m) => m.id).sort();
        assert.deepEqual(list, members, `member ${cluster.members[i]!.name}'s member list changed`);
      }
      const expected = ['tok/before=1', ...Array.from({ length: 20 }, (_, n) => `tok/during/${n}=${n}`)].sort();
      assert.deepEqual(await keys(healthy), expected);

      // The real m3 comes back, is accepted, and catches up.
      await cluster.stop(2);
      cluster.start(2);
      await cluster.waitHealthy(2);
      const alone = tc.client({ endpoints: [cluster.endpoints[2]!], timeoutMs: 2000 });
      const deadline = Date.now() + 10_000;
      let seen: string[] = [];
      while ((seen = await keys(alone, true)).length < expected.length && Date.now() < deadline) await sleep(100);
      assert.deepEqual(seen, expected, 'the real m3 did not catch up');
    });
  });
});
