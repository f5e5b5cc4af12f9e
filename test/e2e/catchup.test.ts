// A member stopped while 50,000 writes happen rejoins through a snapshot.
//
// With --snapshot-count 5000, the members snapshot every 5000 applied
// entries and compact their logs but for a 5000-entry margin (etcd's
// SnapshotCatchUpEntries), so after 50,000 writes the entries the stopped
// member lacks are gone from the leader's log: the leader must send it a
// snapshot (MsgSnap, streamed by the TCP transport), and the member must
// install it and then follow the log from there. Its own reads
// (serializable) must then see every key, and its applied index reach the
// leader's.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { RaftKvClient } from '../../src/client/index.js';
import { assertReplicasAgree, findLeader, logLines, metric, sleep, withCluster } from './fixtures/cluster.js';

const WRITES = 50_000;
const IN_FLIGHT = 256;
/** The endpoints starting at member `first` (the leader: writes sent there are not forwarded). */
const endpointsFrom = (endpoints: readonly string[], first: number) => endpoints.map((_, k) => endpoints[(first + k) % endpoints.length]!);
const key = (n: number) => `cu/${String(n).padStart(6, '0')}`;

/** Puts keys 0..count-1 with `inFlight` requests outstanding at a time. */
async function writeAll(client: RaftKvClient, count: number, inFlight: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const n = next++;
        await client.put(key(n), `value ${n}`);
      }
    }),
  );
}

describe('catching up after 50,000 writes', { timeout: 120_000 }, () => {
  it('a member stopped during 50,000 writes rejoins through a snapshot', async () => {
    await withCluster('catchup', { size: 3, extraFlags: ['--snapshot-count', '5000'] }, async (tc) => {
      const { cluster } = tc;
      const admin = tc.client({ timeoutMs: 20_000 });
      const leader = await findLeader(tc, admin);
      const lagging = (leader.index + 1) % 3;
      const laggingName = cluster.members[lagging]!.name;
      const stoppedAt = (await admin.status(cluster.endpoints[lagging]!)).raftAppliedIndex;
      await cluster.stop(lagging);

      const writer = tc.client({ endpoints: endpointsFrom(cluster.endpoints, leader.index).filter((e) => e !== cluster.endpoints[lagging]), timeoutMs: 20_000 });
      const t0 = Date.now();
      await writeAll(writer, WRITES, IN_FLIGHT);
      const writeMs = Date.now() - t0;
      const target = await admin.status(cluster.endpoints[leader.index]!);
      const taken = logLines(cluster, leader.index, /^snapshot taken$/);
      const compactedTo = Math.max(0, ...taken.map((l) => Number(l.compactedTo ?? 0)));
      assert.ok(compactedTo > stoppedAt, `the leader's log still holds what ${laggingName} lacks (compacted to ${compactedTo}, ${laggingName} stopped at ${stoppedAt})`);
      assert.ok(taken.length >= 5, `the leader took ${taken.length} snapshots of ${WRITES} writes with --snapshot-count 5000`);

      const from = cluster.members[lagging]!.log.length;
      const t1 = Date.now();
      cluster.start(lagging);
      await cluster.waitHealthy(lagging);
      const alone = tc.client({ endpoints: [cluster.endpoints[lagging]!], timeoutMs: 5000 });
      const deadline = Date.now() + 30_000;
      let applied = 0;
      for (;;) {
        applied = (await alone.status(cluster.endpoints[lagging]!)).raftAppliedIndex;
        if (applied >= target.raftAppliedIndex) break;
        assert.ok(Date.now() < deadline, `${laggingName} applied up to ${applied}, the leader was at ${target.raftAppliedIndex}, after 30 s`);
        await sleep(100);
      }
      const catchUpMs = Date.now() - t1;

      // Its own reads see everything.
      const last = await alone.get(key(WRITES - 1), { serializable: true });
      assert.equal(Buffer.from(last.kvs[0]?.value ?? []).toString(), `value ${WRITES - 1}`, `${laggingName} lacks the last key`);
      const count = await alone.get('cu/', { prefix: true, serializable: true, countOnly: true });
      assert.equal(count.count, WRITES, `${laggingName} holds ${count.count} of the ${WRITES} keys`);
      const sample = await alone.get(key(12_345), { serializable: true });
      assert.equal(Buffer.from(sample.kvs[0]!.value).toString(), 'value 12345');

      // And it got there through a snapshot, not by replaying the log from where it stopped.
      const installed = logLines(cluster, lagging, /^snapshot installed from the leader$/, from);
      assert.ok(installed.length >= 1, `${laggingName} logged no 'snapshot installed from the leader'`);
      const snapIndex = Number(installed[0]!.index);
      assert.ok(snapIndex > compactedTo, `the installed snapshot (index ${snapIndex}) is not past the leader's compaction (${compactedTo})`);
      assert.ok((await metric(cluster, lagging, 'raftkv_server_snapshots_installed_total')) >= 1, 'raftkv_server_snapshots_installed_total is 0');
      assert.ok(logLines(cluster, leader.index, /^sent database snapshot$/).length >= 1, "the leader logged no 'sent database snapshot'");
      // The history it restored from the snapshot is the others' (versions, revisions, compaction).
      const agreedAt = await assertReplicasAgree(cluster, tc.client(), 'after the catch-up');

      console.log(
        `catch-up: ${WRITES} puts (${IN_FLIGHT} in flight) in ${(writeMs / 1000).toFixed(1)} s (${Math.round(WRITES / (writeMs / 1000))}/s); ` +
          `${laggingName} stopped at ${stoppedAt}, leader compacted to ${compactedTo}; ${laggingName} restarted, installed snapshot ${snapIndex} and reached applied index ${applied} ` +
          `(leader ${target.raftAppliedIndex}) in ${(catchUpMs / 1000).toFixed(1)} s; the replicas agree at revision ${agreedAt} (HashKV)`,
      );
    });
  });
});
