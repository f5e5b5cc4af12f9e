// etcdctl against raftkv and against etcd itself, side by side: each command
// goes to a fresh 3-member raftkv cluster and to a fresh etcd 3.4 member
// (Debian's etcd-server), in the same order, so both stores walk through
// the same revisions. What etcdctl prints must be the same: the exit code,
// the output (for -w json, everything but the ids and the term in the
// response header, which name a different cluster), and the error line.
// etcd's answers are the specification; nothing here is written down by
// hand.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { type EtcdctlResult, etcdctl } from './fixtures/etcdctl.js';
import { type SideBySide, etcdSkipReason, startSideBySide } from './fixtures/etcdServer.js';

/**
 * The response without the fields of its header that name the cluster, the
 * member and its term (they differ between any two clusters). Only the
 * outer header has them: the headers of a txn's responses carry a revision
 * alone, in etcd as here, and are compared whole.
 */
function withoutClusterFields(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || !('header' in v)) return v;
  const { cluster_id: _c, member_id: _m, raft_term: _t, ...header } = (v as { header: Record<string, unknown> }).header;
  return { ...v, header };
}

/** What a user sees of a run: exit code, output (JSON without the cluster's ids) and etcdctl's "Error: ..." line. */
function seen(r: EtcdctlResult, json: boolean): { code: number; out: unknown; error: string | undefined } {
  // -w fields prints the same header fields as "ClusterID" : ... lines.
  let out: unknown = r.stdout.replace(/^"(ClusterID|MemberID|RaftTerm)" : \d+\n/gm, '');
  if (json && r.code === 0) out = withoutClusterFields(JSON.parse(r.stdout));
  const error = r.stderr.split('\n').find((l) => l.startsWith('Error:'));
  return { code: r.code, out, error };
}

const skip = etcdSkipReason();

describe('etcdctl: raftkv answers as etcd 3.4 does', { skip, timeout: 180_000 }, () => {
  let servers: SideBySide | undefined;

  before(async () => {
    servers = await startSideBySide('etcddiff');
  });

  after(() => servers?.stop());

  /** Runs `etcdctl args` (stdin `input`) on both; what they print must agree. Returns raftkv's run. */
  async function same(args: string[], input?: string): Promise<EtcdctlResult> {
    const json = args.includes('json');
    const ours = await etcdctl(servers!.cluster.endpoints, args, input);
    const theirs = await etcdctl([servers!.etcd.url], args, input);
    assert.deepEqual(seen(ours, json), seen(theirs, json), `etcdctl ${args.join(' ')}`);
    return ours;
  }

  it('put and get: --prev-kv, --ignore-value, --hex, --print-value-only, ranges, --from-key, --rev', async () => {
    for (const [k, v] of [['k1', 'v1'], ['k2', 'v2'], ['k3', 'v3'], ['other', 'x']]) await same(['put', k, v]);
    await same(['put', 'k1', 'v1b', '--prev-kv', '-w', 'json']);
    await same(['put', 'k1', 'v1c', '--prev-kv']);
    await same(['put', 'k2', '--ignore-value', '-w', 'json']);
    await same(['put', 'missing', '--ignore-value']);
    await same(['put', 'k9', 'v', '--lease=1234']);
    await same(['put', 'k1', 'v1d', '--ignore-lease', '-w', 'json']);
    for (const args of [
      ['get', 'k1'],
      ['get', 'k1', '-w', 'json'],
      ['get', 'k1', '--print-value-only'],
      ['get', 'k1', '--hex'],
      ['get', 'k1', '-w', 'fields'],
      ['get', 'nothing', '-w', 'json'],
      ['get', 'k1', 'k3'],
      ['get', 'k1', 'k3', '-w', 'json'],
      ['get', 'k2', '--from-key', '--keys-only'],
      ['get', '', '--from-key', '-w', 'json'],
      ['get', 'k', '--prefix', '--limit=2', '-w', 'json'],
      ['get', 'k', '--prefix', '--keys-only'],
      ['get', 'k1', '--rev=2', '-w', 'json'],
      ['get', 'k', '--prefix', '--rev=3'],
      ['get', 'k1', '--rev=1000'],
    ]) {
      await same(args);
    }
  });

  it('sorting by every target, both orders', async () => {
    await same(['put', 'k3', 'a-smallest']); // k3 is now the newest and the smallest value
    for (const target of ['KEY', 'CREATE', 'MODIFY', 'VALUE', 'VERSION']) {
      for (const order of ['ASCEND', 'DESCEND']) await same(['get', 'k', '--prefix', `--sort-by=${target}`, `--order=${order}`, '-w', 'json']);
    }
    await same(['get', 'k', '--prefix', '--order=DESCEND', '--limit=2']);
    await same(['get', 'k', '--prefix', '--sort-by=BOGUS']);
  });

  it('del: --prev-kv, --prefix, --from-key, a key that is not there', async () => {
    await same(['put', 'd1', '1']);
    await same(['put', 'd2', '2']);
    await same(['put', 'd3', '3']);
    await same(['del', 'd1', '--prev-kv', '-w', 'json']);
    await same(['del', 'd1']);
    await same(['del', 'd', '--prefix', '--prev-kv']);
    await same(['put', 'zz1', '1']);
    await same(['put', 'zz2', '2']);
    await same(['del', 'zz', '--from-key', '-w', 'json']);
    for (const k of ['r1', 'r2', 'r3']) await same(['put', k, k]);
    await same(['del', 'r1', 'r3', '--prev-kv', '-w', 'json']);
  });

  it('txn: every comparison, both branches, nested reads, bad input', async () => {
    await same(['put', 't/a', '1']);
    await same(['put', 't/b', '2']);
    const txn = (compares: string[], success: string[], failure: string[]) => `${compares.join('\n')}\n\n${success.join('\n')}\n\n${failure.join('\n')}\n`;
    await same(['txn', '-w', 'json'], txn(['value("t/a") = "1"', 'version("t/b") > "0"', 'create("t/a") < "1000"', 'mod("t/b") > "1"'], ['put t/c 3', 'get t/a', 'del t/b'], ['put t/else 1']));
    await same(['txn'], txn(['value("t/a") = "nope"'], ['put t/never 1'], ['put t/else 2', 'get t/ --prefix']));
    await same(['txn', '-w', 'json'], txn(['value("t/a") != "1"'], ['put t/x 1'], ['get t/ --prefix --keys-only']));
    await same(['txn', '-w', 'json'], txn(['version("t/missing") = "0"', 'create("t/missing") = "0"'], ['put t/missing made'], []));
    await same(['txn', '-w', 'json'], txn(['lease("t/a") = "0"', 'mod("t/a") < "3"'], ['get t/a'], ['get t/b']));
    await same(['txn', '-w', 'json'], txn([], ['get t/ --prefix --limit=1'], []));
    await same(['txn'], txn([], Array.from({ length: 129 }, (_, i) => `put t/many${i} v`), []));
  });

  it('compaction: reading below it, compacting again, a future revision', async () => {
    await same(['put', 'c/1', 'a']);
    await same(['put', 'c/1', 'b']);
    const status = await etcdctl(servers!.cluster.endpoints, ['get', 'c/1', '-w', 'json']);
    const rev = (JSON.parse(status.stdout) as { header: { revision: number } }).header.revision;
    await same(['compaction', String(rev - 1)]);
    await same(['get', 'c/1', `--rev=${rev - 2}`]);
    await same(['get', 'c/1', `--rev=${rev - 1}`, '-w', 'json']);
    await same(['compaction', String(rev - 2)]);
    await same(['compaction', String(rev + 100)]);
    await same(['put', 'c/1', 'c']);
    await same(['compaction', '--physical', String(rev)]);
    await same(['get', 'c/1', `--rev=${rev}`, '-w', 'json']);
    await same(['get', 'c/1', `--rev=${rev + 100}`]);
  });

  it('bad input: an empty key, a request over --max-request-bytes', async () => {
    await same(['put', '', 'v']);
    await same(['get', '']);
    // 1.6 MiB through stdin (too long for one argument): over etcd's 1.5 MiB default.
    await same(['put', 'big'], 'x'.repeat(1_600_000));
    await same(['get', 'big']);
  });

  it('alarms: none', async () => {
    await same(['alarm', 'list']);
    await same(['alarm', 'list', '-w', 'json']);
  });
});
