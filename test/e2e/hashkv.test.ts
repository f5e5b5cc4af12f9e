// HashKV against etcd itself: the same commands go to a 3-member raftkv
// cluster and to a real etcd 3.4 member (Debian's etcd-server), and
// `etcdctl endpoint hashkv` must print the same hash and compaction
// revision from every raftkv member and from etcd, at every revision asked.
// The hash covers every version etcd keeps (revisions, create and mod
// revisions, versions, values, tombstones, what a compaction leaves), so
// this is also a check of raftkv's multi-version store against etcd's.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { LocalCluster } from '../../src/cli/localCluster.js';
import { etcdctl } from './fixtures/etcdctl.js';
import { type SideBySide, etcdSkipReason, startSideBySide } from './fixtures/etcdServer.js';

interface HashJson {
  Endpoint: string;
  HashKV: { header: { revision: number }; hash?: number; compact_revision?: number };
}

async function hashes(endpoints: readonly string[], rev: number): Promise<{ ok: true; values: string[] } | { ok: false; stderr: string }> {
  const r = await etcdctl(endpoints, ['endpoint', 'hashkv', `--rev=${rev}`, '-w', 'json']);
  if (r.code !== 0) return { ok: false, stderr: r.stderr };
  const rows = JSON.parse(r.stdout) as HashJson[];
  return { ok: true, values: rows.map((x) => `hash ${x.HashKV.hash ?? 0} compact ${x.HashKV.compact_revision ?? 0} at ${x.HashKV.header.revision}`) };
}

const skip = etcdSkipReason();

describe('HashKV: raftkv against etcd 3.4', { skip, timeout: 120_000 }, () => {
  let servers: SideBySide | undefined;
  let cluster: LocalCluster;
  let etcdUrl: string;

  before(async () => {
    servers = await startSideBySide('hashkv');
    cluster = servers.cluster;
    etcdUrl = servers.etcd.url;
  });

  after(() => servers?.stop());

  /** Runs one etcdctl command against raftkv and etcd alike; both must succeed. */
  async function both(args: string[], input?: string): Promise<void> {
    for (const endpoints of [cluster.endpoints, [etcdUrl]]) {
      const r = await etcdctl(endpoints, args, input);
      assert.equal(r.code, 0, `etcdctl ${args.join(' ')} on ${endpoints.join(',')}: ${r.stderr}`);
    }
  }

  /** Every raftkv member and etcd print the same hash at `rev` (or the same error). */
  async function sameHash(rev: number, what: string): Promise<void> {
    const ours = await hashes(cluster.endpoints, rev);
    const theirs = await hashes([etcdUrl], rev);
    if (!ours.ok || !theirs.ok) {
      assert.equal(ours.ok, theirs.ok, `${what}: raftkv ${ours.ok ? 'answered' : 'failed'}, etcd ${theirs.ok ? 'answered' : 'failed'}`);
      const msg = (s: string) => /etcdserver: [^"\n]*/.exec(s)?.[0];
      assert.equal(msg((ours as { stderr: string }).stderr), msg((theirs as { stderr: string }).stderr), what);
      return;
    }
    assert.equal(ours.values.length, 3);
    assert.deepEqual(ours.values, [theirs.values[0], theirs.values[0], theirs.values[0]], what);
  }

  it('agrees at every revision: puts, overwrites, deletes, a multi-operation txn, new generations, compaction, an empty keyspace', async () => {
    await both(['put', 'a', '1']); // 2
    await both(['put', 'b', '2']); // 3
    await both(['put', 'c', '3']); // 4
    await both(['put', 'a', '11']); // 5
    await both(['del', 'b']); // 6
    // One transaction, three changes at revision 7 (sub-revisions 0, 1, 2; a tombstone in the middle).
    await both(['txn'], '\nput d 4\ndel c\nput e 5\n\n\n'); // 7
    await both(['put', 'b', '22']); // 8: a new generation of b
    await both(['put', 'e', '55']); // 9
    for (let rev = 1; rev <= 9; rev++) await sameHash(rev, `before compaction, at ${rev}`);
    await sameHash(0, 'before compaction, current');
    await both(['compaction', '--physical', '6']);
    for (let rev = 5; rev <= 9; rev++) await sameHash(rev, `after compaction at 6, at ${rev}`);
    await both(['put', 'a', '111']); // 10
    await both(['del', '', '--from-key']); // 11: every key deleted
    for (let rev = 7; rev <= 11; rev++) await sameHash(rev, `after deleting every key, at ${rev}`);
    await sameHash(12, 'a future revision');
    await both(['compaction', '--physical', '10']);
    await both(['put', 'z', 'last']); // 12
    for (let rev = 10; rev <= 12; rev++) await sameHash(rev, `after compaction at 10, at ${rev}`);
  });

  it('agrees over more versions than one slice of the hashing (it yields every 2048)', async () => {
    // 20 transactions of 128 puts: 2,560 versions more, one revision each.
    for (let t = 0; t < 20; t++) {
      const puts = Array.from({ length: 128 }, (_, i) => `put many/${String(t * 128 + i).padStart(5, '0')} v${t}.${i}`);
      await both(['txn'], `\n${puts.join('\n')}\n\n\n`);
    }
    await sameHash(0, 'after 2,560 more puts');
    await sameHash(20, 'after 2,560 more puts, at revision 20');
  });
});
