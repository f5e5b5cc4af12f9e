// etcd's own client against a 3-member raftkv cluster of real processes:
// what a user of etcd types, and what etcd 3.4 answers (the expected outputs
// were taken from a real etcd 3.4.23 running the same commands).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { LocalCluster } from '../../src/cli/localCluster.js';
import { GrpcStatusError, RaftKvClient } from '../../src/client/index.js';
import { GrpcStatus } from '../../src/server/types.js';
import { metric } from './fixtures/cluster.js';
import { type EtcdctlResult, b64, etcdctl, etcdctlJson, etcdctlSkipReason, unb64 } from './fixtures/etcdctl.js';

interface KvJson {
  key: string;
  value?: string;
  create_revision: number;
  mod_revision: number;
  version: number;
}
type Status = { Endpoint: string; Status: { header: { member_id: number }; leader: number; raftIndex: number; raftTerm: number; dbSize: number; version: string } };

interface RangeJson {
  header: { cluster_id: number; member_id: number; revision: number; raft_term: number };
  kvs?: KvJson[];
  count?: number;
  more?: boolean;
}

const skip = etcdctlSkipReason();

describe('etcdctl 3.4 against raftkv', { skip, timeout: 120_000 }, () => {
  let dir: string;
  let cluster: LocalCluster;
  let all: string[];
  // Each member alone too: any member accepts any request. Endpoints are
  // written both ways users write them: `all` as URLs (with which etcdctl
  // 3.4's per-member commands such as `endpoint status` send the whole URL
  // as the HTTP/2 :authority, src/server/authorityRepair.ts), `one` as host:port.
  const one = (i: number): string[] => [cluster.endpoints[i]!.replace('http://', '')];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftkv-etcdctl-'));
    cluster = await LocalCluster.create({ size: 3, dataDir: dir, extraFlags: ['--heartbeat-interval', '50', '--election-timeout', '500'] });
    cluster.startAll();
    await cluster.waitAllHealthy();
    all = [...cluster.endpoints];
  });

  after(async () => {
    await cluster?.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('put and get, through every member', async () => {
    for (let i = 0; i < 3; i++) {
      const put = await etcdctl(one(i), ['put', `k${i}`, `v${i}`]);
      assert.equal(put.code, 0, put.stderr);
      assert.equal(put.stdout, 'OK\n');
    }
    for (let i = 0; i < 3; i++) {
      const get = await etcdctl(one((i + 1) % 3), ['get', `k${i}`]);
      assert.equal(get.stdout, `k${i}\nv${i}\n`);
    }
  });

  it('get --prefix, a range, --limit, --rev, --keys-only, --consistency=s', async () => {
    for (const [k, v] of [['fruit/apple', 'red'], ['fruit/banana', 'yellow'], ['fruit/cherry', 'dark'], ['veg/leek', 'green']]) {
      assert.equal((await etcdctl(all, ['put', k!, v!])).code, 0);
    }
    const prefix = await etcdctlJson<RangeJson>(all, ['get', 'fruit/', '--prefix']);
    assert.deepEqual(prefix.kvs!.map((kv) => [unb64(kv.key), unb64(kv.value!)]), [
      ['fruit/apple', 'red'],
      ['fruit/banana', 'yellow'],
      ['fruit/cherry', 'dark'],
    ]);
    assert.equal(prefix.count, 3);
    const range = await etcdctl(all, ['get', 'fruit/b', 'fruit/d']);
    assert.equal(range.stdout, 'fruit/banana\nyellow\nfruit/cherry\ndark\n');
    const limited = await etcdctlJson<RangeJson>(all, ['get', 'fruit/', '--prefix', '--limit', '2']);
    assert.equal(limited.kvs!.length, 2);
    assert.equal(limited.more, true);
    assert.equal(limited.count, 3);
    const keys = await etcdctl(all, ['get', 'fruit/', '--prefix', '--keys-only']);
    assert.equal(keys.stdout, 'fruit/apple\n\nfruit/banana\n\nfruit/cherry\n\n');

    // History: overwrite, then read the old value at its revision.
    const before = await etcdctlJson<RangeJson>(all, ['get', 'fruit/apple']);
    const rev = before.kvs![0]!.mod_revision;
    assert.equal((await etcdctl(all, ['put', 'fruit/apple', 'green'])).code, 0);
    const now = await etcdctlJson<RangeJson>(all, ['get', 'fruit/apple']);
    assert.equal(unb64(now.kvs![0]!.value!), 'green');
    assert.equal(now.kvs![0]!.version, 2);
    assert.equal(now.kvs![0]!.create_revision, rev);
    const old = await etcdctl(all, ['get', 'fruit/apple', `--rev=${rev}`]);
    assert.equal(old.stdout, 'fruit/apple\nred\n');
    // A serializable read is served by the member itself.
    const local = await etcdctl(one(2), ['get', 'fruit/apple', '--consistency=s']);
    assert.match(local.stdout, /^fruit\/apple\n(green|red)\n$/);
  });

  it('del, a prefix del, and del --prev-kv', async () => {
    await etcdctl(all, ['put', 'tmp/a', '1']);
    await etcdctl(all, ['put', 'tmp/b', '2']);
    await etcdctl(all, ['put', 'tmp/c', '3']);
    assert.equal((await etcdctl(all, ['del', 'tmp/a'])).stdout, '1\n');
    assert.equal((await etcdctl(all, ['del', 'tmp/a'])).stdout, '0\n');
    const prev = await etcdctl(all, ['del', 'tmp/', '--prefix', '--prev-kv']);
    assert.equal(prev.stdout, '2\ntmp/b\n2\ntmp/c\n3\n');
    assert.equal((await etcdctl(all, ['get', 'tmp/', '--prefix'])).stdout, '');
  });

  it('txn: compare, then success or failure', async () => {
    await etcdctl(all, ['put', 'lock', 'free']);
    const script = (expected: string) => `value("lock") = "${expected}"\n\nput lock taken\n\nget lock\n\n`;
    const won = await etcdctl(all, ['txn'], script('free'));
    assert.equal(won.code, 0, won.stderr);
    assert.equal(won.stdout, 'SUCCESS\n\nOK\n');
    const lost = await etcdctl(all, ['txn'], script('free'));
    assert.equal(lost.stdout, 'FAILURE\n\nlock\ntaken\n');
    const byVersion = await etcdctl(all, ['txn'], 'version("lock") = "2"\n\ndel lock\n\n\n');
    assert.equal(byVersion.stdout, 'SUCCESS\n\n1\n');
  });

  it('compaction, and reading below it fails as in etcd', async () => {
    await etcdctl(all, ['put', 'c', '1']);
    const r1 = (await etcdctlJson<RangeJson>(all, ['get', 'c'])).kvs![0]!.mod_revision;
    await etcdctl(all, ['put', 'c', '2']);
    const head = (await etcdctlJson<RangeJson>(all, ['get', 'c'])).header.revision;
    const compact = await etcdctl(all, ['compaction', String(head)]);
    assert.equal(compact.stdout, `compacted revision ${head}\n`);
    const old = await etcdctl(all, ['get', 'c', `--rev=${r1}`]);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /Error: etcdserver: mvcc: required revision has been compacted/);
    const again = await etcdctl(all, ['compaction', String(head)]);
    assert.match(again.stderr, /etcdserver: mvcc: required revision has been compacted/);
    assert.equal((await etcdctl(all, ['get', 'c'])).stdout, 'c\n2\n');
  });

  it('bad input gets etcd\'s errors and changes nothing', async () => {
    const before = (await etcdctlJson<RangeJson>(all, ['get', 'x'])).header.revision;
    const empty = await etcdctl(all, ['put', '', 'v']);
    assert.notEqual(empty.code, 0);
    assert.match(empty.stderr, /Error: etcdserver: key is not provided/);
    const future = await etcdctl(all, ['get', 'c', '--rev=999999']);
    assert.match(future.stderr, /etcdserver: mvcc: required revision is a future revision/);
    const after = (await etcdctlJson<RangeJson>(all, ['get', 'x'])).header.revision;
    assert.equal(after, before);
  });

  it('endpoint status and health, member list', async () => {
    const status = await etcdctlJson<Status[]>(all, ['endpoint', 'status']);
    assert.equal(status.length, 3);
    const leaders = new Set(status.map((s) => s.Status.leader));
    assert.equal(leaders.size, 1, 'every member names the same leader');
    const leader = [...leaders][0]!;
    assert.ok(status.some((s) => s.Status.header.member_id === leader), 'the leader is one of the members');
    for (const s of status) {
      assert.ok(s.Status.raftIndex > 0 && s.Status.raftTerm > 0 && s.Status.dbSize > 0, JSON.stringify(s));
    }
    const one0 = await etcdctlJson<Status[]>(one(0), ['endpoint', 'status']);
    assert.equal(one0[0]!.Status.leader, leader);
    const health = await etcdctl(all, ['endpoint', 'health']);
    assert.equal(health.code, 0, health.stderr);
    assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3);

    type Members = { members: { ID: number; name: string; peerURLs: string[]; clientURLs: string[] }[] };
    const members = await etcdctlJson<Members>(all, ['member', 'list']);
    const byName = new Map(members.members.map((m) => [m.name, m]));
    for (const m of cluster.members) {
      const listed = byName.get(m.name);
      assert.ok(listed, `member ${m.name} listed`);
      assert.deepEqual(listed.peerURLs, [m.peerURL]);
      assert.deepEqual(listed.clientURLs, [m.clientURL]);
    }
    const table = await etcdctl(all, ['member', 'list']);
    assert.equal(table.stdout.trim().split('\n').length, 3);
  });

  it('move-leader hands leadership to another member; an unknown one is refused as etcd does', async () => {
    const before = await etcdctlJson<Status[]>(all, ['endpoint', 'status']);
    const leader = before[0]!.Status.leader;
    const target = before.map((s) => s.Status.header.member_id).find((id) => id !== leader)!;
    const moved = await etcdctl(all, ['move-leader', target.toString(16)]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(moved.stdout, `Leadership transferred from ${leader.toString(16)} to ${target.toString(16)}\n`);
    const after = await etcdctlJson<Status[]>(all, ['endpoint', 'status']);
    assert.deepEqual(after.map((s) => s.Status.leader), [target, target, target]);
    const bad = await etcdctl(all, ['move-leader', 'abc123']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /etcdserver: bad leader transferee/);
    // Sent to a follower (etcdctl never does; raftkv's client can), etcd's answer.
    const client = new RaftKvClient({ endpoints: all });
    try {
      const follower = after.find((s) => s.Status.header.member_id !== target)!;
      const url = all.find((e) => e.endsWith(follower.Endpoint.replace(/^http:\/\//, '')))!;
      await assert.rejects(client.moveLeader(url, BigInt(leader)), (e: GrpcStatusError) => e.grpcStatus === GrpcStatus.FAILED_PRECONDITION && /etcdserver: not leader/.test(e.message));
    } finally {
      client.close();
    }
    // The cluster goes on under its new leader.
    await etcdctl(all, ['put', 'after-move', 'yes']);
    assert.equal(unb64((await etcdctlJson<RangeJson>(all, ['get', 'after-move'])).kvs![0]!.value!), 'yes');
  });

  it('keys and values are bytes, not strings', async () => {
    const key = 'bin/\u00e9\u4e2d';
    await etcdctl(all, ['put', key, 'caf\u00e9']);
    const got = await etcdctlJson<RangeJson>(all, ['get', key]);
    assert.equal(got.kvs![0]!.key, b64(key));
    assert.equal(unb64(got.kvs![0]!.value!), 'caf\u00e9');
  });

  it("/metrics: etcd's metric names, with values that follow the cluster", async () => {
    await etcdctl(all, ['put', 'metrics-probe', 'x']);
    const each = async (name: string) => Promise.all(cluster.members.map((_, i) => metric(cluster, i, name)));
    assert.deepEqual(await each('etcd_server_has_leader'), [1, 1, 1]);
    assert.equal((await each('etcd_server_is_leader')).reduce((a, b) => a + b, 0), 1, 'exactly one member says it leads');
    for (const name of ['etcd_server_leader_changes_seen_total', 'etcd_server_proposals_committed_total', 'etcd_server_proposals_applied_total', 'etcd_disk_wal_fsync_duration_seconds_count']) {
      for (const [i, v] of (await each(name)).entries()) assert.ok(v >= 1, `${name} of member ${i} is ${v}`);
    }
    // Heartbeats are answered, so every member has timed a round trip to a peer.
    for (const [i, v] of (await each('etcd_network_peer_round_trip_time_seconds_count')).entries()) assert.ok(v >= 1, `no peer round trip timed on member ${i}`);
    for (const name of ['etcd_server_proposals_pending', 'etcd_server_proposals_failed_total', 'raftkv_server_apply_lag_entries']) {
      for (const v of await each(name)) assert.ok(Number.isFinite(v) && v >= 0, `${name} = ${v}`);
    }
  });

  // Last: it freezes two members.
  it("alone, a member refuses writes with etcd's 'no leader' and counts them in etcd_server_proposals_failed_total", async () => {
    const before = await metric(cluster, 0, 'etcd_server_proposals_failed_total');
    cluster.signal(1, 'SIGSTOP');
    cluster.signal(2, 'SIGSTOP');
    try {
      // Within a few election timeouts (500 ms here) it knows no leader, as a follower or a leader that lost its quorum (check quorum).
      let refused: EtcdctlResult | undefined;
      for (let i = 0; i < 40 && refused === undefined; i++) {
        const r = await etcdctl(one(0), ['--command-timeout=1s', 'put', 'alone', 'x']);
        if (/etcdserver: no leader/.test(r.stderr)) refused = r;
        else await new Promise((res) => setTimeout(res, 250));
      }
      assert.ok(refused, 'member 0 alone never answered "etcdserver: no leader"');
      assert.notEqual(refused.code, 0);
      const after = await metric(cluster, 0, 'etcd_server_proposals_failed_total');
      assert.ok(after > before, `etcd_server_proposals_failed_total went from ${before} to ${after}`);
    } finally {
      cluster.signal(1, 'SIGCONT');
      cluster.signal(2, 'SIGCONT');
    }
    // Together again, they elect a leader and take writes (etcdctl does not retry "no leader" meanwhile).
    let last: EtcdctlResult | undefined;
    for (let i = 0; i < 40; i++) {
      last = await etcdctl(all, ['put', 'together', 'again']);
      if (last.code === 0) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    assert.equal(last!.code, 0, last!.stderr);
  });
});
