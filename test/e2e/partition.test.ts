// Network partitions of a real cluster: each `raftkv serve` member runs in
// a network namespace of its own (fixtures/netns.ts), and the links between
// members are cut with blackhole routes, so their packets vanish as on a
// broken network while this process, a client on the network, still
// reaches every member.
//
// - An isolated leader: the other two elect a leader of their own in a
//   later term and go on serving; the old one steps down once it has not
//   heard from a quorum for an election timeout (CheckQuorum, dissertation
//   §6.2), refuses writes and linearizable reads ("etcdserver: no leader"),
//   and a write sent to it is never applied. Healed, it follows the new
//   leader and holds what the majority acknowledged.
// - A follower cut off from the leader alone (the third member still
//   reaches both): it must not disturb the leader (PreVote, §9.6, and the
//   other follower ignoring votes while it hears from the leader, §4.2.3),
//   so the term and the leader stay as they were and writes go on.
// - An increment sent to the leader just as it is cut off: the client
//   gives up on that attempt and sends it again through the majority with
//   the same sequence number, within its default 5 s timeout, and it is
//   applied once (the old leader's uncommitted copy is replaced).
// - Random partitions (an isolated leader, an isolated member, one cut
//   link, an isolated leader killed and restarted while still cut off)
//   while clients read, write and compare-and-set through every member;
//   the history must be linearizable and the replicas agree.
//
// Needs Linux, root and iproute2 (scripts/install-deps.sh); otherwise the
// tests skip and say why. PART_SEED picks the random choices (printed);
// PART_SECONDS how long the random partitions go on (default 20).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { GrpcStatus, GrpcStatusError, type RaftKvClient } from '../../src/client/index.js';
import { Random } from '../../src/sim/random.js';
import { SharedCluster, type TestCluster, assertReplicasAgree, findLeader, sleep, waitFor } from './fixtures/cluster.js';
import { History, memberIdList, namedLeader, startWorkload, text, withTimeout } from './fixtures/history.js';
import { TestNetwork, netnsSkipReason } from './fixtures/netns.js';

const SEED = Number(process.env.PART_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PARTITION_MS = Number(process.env.PART_SECONDS ?? 20) * 1000;
/** FAST_FLAGS' election timeout. */
const ELECTION_MS = 500;

/** Member i's view: the leader it names and its term (within 1 s: an isolated member still answers its clients). */
async function view(tc: TestCluster, admin: RaftKvClient, i: number): Promise<{ leader: bigint; term: number }> {
  const st = await withTimeout(admin.status(tc.cluster.endpoints[i]!), 1000);
  return { leader: st.leader, term: st.raftTerm };
}

/** A call failed because the member has no leader (etcd's UNAVAILABLE "no leader"), or timed out waiting for one. */
const leaderless = (e: unknown): boolean =>
  e instanceof GrpcStatusError &&
  ((e.grpcStatus === GrpcStatus.UNAVAILABLE && /no leader/.test(e.message)) || e.grpcStatus === GrpcStatus.DEADLINE_EXCEEDED);

const skip = netnsSkipReason();

describe('network partitions (each member in its own network namespace)', { skip, timeout: 240_000 }, () => {
  let net: TestNetwork;
  let shared: SharedCluster;

  before(async () => {
    net = TestNetwork.create(3);
    shared = new SharedCluster('partition', { size: 3, hosts: net.hosts, clientPort: 2379, runUnder: (i) => net.runUnder(i) });
    await shared.start();
  });

  after(async () => {
    net?.heal();
    await shared?.finish();
    net?.destroy();
  });

  it('an isolated leader steps down, the majority elects another and serves; healed, the old one follows', () =>
    shared.run(async (tc) => {
      const { cluster } = tc;
      const admin = tc.client({ timeoutMs: 5000 });
      const old = await findLeader(tc, admin);
      const majority = [0, 1, 2].filter((i) => i !== old.index);
      const viaMajority = tc.client({ endpoints: majority.map((i) => cluster.endpoints[i]!), timeoutMs: 5000 });
      const atOld = tc.client({ endpoints: [cluster.endpoints[old.index]!], timeoutMs: 1500 });
      await admin.put('iso/k', 'before');
      // Every member has applied it (its own serializable read sees it).
      await waitFor('every member applies the first write', 5000, async () => {
        const v = await atOld.get('iso/k', { serializable: true });
        return text(v.kvs[0]?.value) === 'before' ? true : undefined;
      });

      net.isolate(old.index);
      const cutAt = performance.now();
      let next: { leader: bigint; term: number };
      try {
        next = await waitFor('the majority elects a leader of its own', 10_000, async () => {
          const views = await Promise.all(majority.map((i) => view(tc, admin, i)));
          const v = views[0]!;
          const agreed = views.every((w) => w.leader === v.leader && w.term === v.term);
          return agreed && v.leader !== 0n && v.leader !== old.id ? v : undefined;
        });
        const electedMs = performance.now() - cutAt;
        assert.ok(next.term > old.term, `the new leader's term ${next.term} is after the old one's ${old.term}`);
        await viaMajority.put('iso/k', 'during');

        // CheckQuorum: an election timeout without a quorum and it steps down.
        await waitFor('the isolated leader steps down', 10 * ELECTION_MS, async () => ((await view(tc, admin, old.index)).leader === 0n ? true : undefined));
        const steppedDownMs = performance.now() - cutAt;
        await assert.rejects(atOld.put('iso/k', 'lost'), leaderless, 'a write to the isolated member fails');
        await assert.rejects(atOld.get('iso/k'), leaderless, 'a linearizable read at the isolated member fails');
        // A serializable read is its own copy, stale by design (etcd's --consistency=s).
        assert.equal(text((await atOld.get('iso/k', { serializable: true })).kvs[0]?.value), 'before');
        console.log(
          `partition: leader ${cluster.members[old.index]!.name} (term ${old.term}) isolated; the majority elected ${next.leader.toString(16)} ` +
            `(term ${next.term}) after ${electedMs.toFixed(0)} ms; the old leader stepped down after ${steppedDownMs.toFixed(0)} ms`,
        );
      } finally {
        net.heal();
      }

      // Healed: it follows the new leader and holds what the majority acknowledged.
      await waitFor('the old leader follows the new one', 15_000, async () => {
        const v = await view(tc, admin, old.index);
        return v.leader !== 0n && v.leader !== old.id ? v : undefined;
      });
      const after = await atOld.get('iso/k');
      assert.equal(text(after.kvs[0]?.value), 'during');
      // Two puts ("before", "during"): the write sent to the isolated member was never applied.
      assert.equal(after.kvs[0]?.version, 2, 'the key was written twice');
      await assertReplicasAgree(cluster, admin, 'after healing the isolated leader');
    }));

  it('a follower cut off from the leader alone does not disturb it (PreVote, CheckQuorum)', () =>
    shared.run(async (tc) => {
      const { cluster } = tc;
      const admin = tc.client({ timeoutMs: 5000 });
      const leader = await findLeader(tc, admin);
      const cutOff = (leader.index + 1) % 3;
      const bridge = (leader.index + 2) % 3;
      const writer = tc.client({ endpoints: [cluster.endpoints[leader.index]!, cluster.endpoints[bridge]!], timeoutMs: 5000 });

      net.cut(leader.index, cutOff);
      let writes = 0;
      try {
        // Six election timeouts: the cut-off follower campaigns again and again.
        const until = performance.now() + 6 * ELECTION_MS;
        while (performance.now() < until) {
          await writer.put('cut/k', `v${++writes}`);
          await sleep(20);
        }
        const views = await Promise.all([leader.index, bridge].map((i) => view(tc, admin, i)));
        for (const v of views) {
          assert.equal(v.leader, leader.id, 'the leader is still the leader');
          assert.equal(v.term, leader.term, 'the term did not move');
        }
        // PreVote: its campaigns never raised its own term either.
        assert.equal((await view(tc, admin, cutOff)).term, leader.term, "the cut-off follower's term did not move");
      } finally {
        net.heal();
      }
      console.log(`partition: ${cluster.members[cutOff]!.name} cut off from leader ${cluster.members[leader.index]!.name} only: ${writes} writes, term ${leader.term} throughout`);

      // Healed, it catches up (its own read sees the last write).
      const atCutOff = tc.client({ endpoints: [cluster.endpoints[cutOff]!], timeoutMs: 5000 });
      await waitFor('the cut-off follower catches up', 15_000, async () => {
        const v = await atCutOff.get('cut/k', { serializable: true });
        return text(v.kvs[0]?.value) === `v${writes}` ? true : undefined;
      });
      await assertReplicasAgree(cluster, admin, 'after healing the cut link');
    }));

  it('an increment sent to a leader as it is cut off, sent again by the client through the majority, is applied once', () =>
    shared.run(async (tc) => {
      const { cluster } = tc;
      const admin = tc.client({ timeoutMs: 5000 });
      const KEY = 'once/counter';
      await admin.increment(KEY);
      const leader = await findLeader(tc, admin);
      const majority = [0, 1, 2].filter((i) => i !== leader.index).map((i) => cluster.endpoints[i]!);
      // The leader first: the increment goes there, and the client (exactly-once
      // and a 5 s timeout, the defaults) gives up on that attempt after a
      // third of it and sends it again, same sequence number, elsewhere. The
      // cut-off leader would hold it until its own request timeout (~6 s here).
      const client = tc.client({ endpoints: [cluster.endpoints[leader.index]!, ...majority], timeoutMs: 5000 });
      await client.get(KEY); // connected to the leader
      net.isolate(leader.index);
      const sent = performance.now();
      let res: Awaited<ReturnType<RaftKvClient['increment']>>;
      try {
        res = await client.increment(KEY);
      } finally {
        net.heal();
      }
      const tookMs = performance.now() - sent;
      assert.equal(res.value, 2, 'the retried increment answers 2');
      // Answered through the majority, after the first attempt was given up.
      assert.ok(tookMs > 1000, `answered after ${tookMs.toFixed(0)} ms: the first attempt, at the cut-off leader, cannot have been answered`);
      // Healed: every member holds the counter at 2, written twice (the old
      // leader's uncommitted copy of the increment was replaced, not applied).
      for (let i = 0; i < 3; i++) {
        const alone = tc.client({ endpoints: [cluster.endpoints[i]!], timeoutMs: 5000 });
        const kv = await waitFor(`${cluster.members[i]!.name} applies the increment`, 15_000, async () => {
          const got = (await alone.get(KEY, { serializable: true })).kvs[0];
          return got !== undefined && text(got.value) === '2' ? got : undefined;
        });
        assert.equal(kv.version, 2, `${cluster.members[i]!.name}: the key was written twice`);
      }
      await assertReplicasAgree(cluster, admin, 'after the retried increment');
      console.log(`partition: an increment sent to the cut-off leader ${cluster.members[leader.index]!.name} was answered ${res.value} after ${tookMs.toFixed(0)} ms, applied once on every member`);
    }));

  it(`concurrent get/put/txn-cas stay linearizable through random partitions (PART_SEED=${SEED})`, () =>
    shared.run(async (tc) => {
      const { cluster } = tc;
      console.log(`partition e2e: PART_SEED=${SEED}`);
      const rng = new Random(SEED);
      const admin = tc.client({ timeoutMs: 5000 });
      const ids = await memberIdList(cluster, admin);
      const history = new History();
      const faults: string[] = [];
      const names = cluster.members.map((m) => m.name);

      const nemesis = async (): Promise<void> => {
        const r = rng.fork('nemesis');
        const end = performance.now() + PARTITION_MS;
        while (performance.now() < end) {
          await sleep(r.range(300, 1000));
          const leader = await namedLeader(cluster, admin, ids);
          const holdMs = r.range(1000, 3000);
          const kind = r.weighted<'leader' | 'member' | 'link' | 'restart'>([
            ['leader', 4],
            ['member', 3],
            ['link', 3],
            ['restart', 2],
          ]);
          if (kind === 'link') {
            const a = r.int(3);
            const b = (a + 1 + r.int(2)) % 3;
            faults.push(`cut ${names[a]}–${names[b]} for ${holdMs} ms`);
            net.cut(a, b);
            await sleep(holdMs);
          } else {
            const victim = kind !== 'member' && leader !== undefined ? leader : r.int(3);
            const who = `${victim === leader ? 'leader ' : ''}${names[victim]}`;
            net.isolate(victim);
            if (kind === 'restart') {
              // It comes back from its disk while still cut off, and must
              // rejoin without disturbing the leader elected meanwhile.
              faults.push(`isolate ${who}, kill -9 and restart it while isolated, heal after ${holdMs} ms`);
              await sleep(holdMs / 2);
              await cluster.kill(victim);
              cluster.start(victim);
              await sleep(holdMs / 2);
            } else {
              faults.push(`isolate ${who} for ${holdMs} ms`);
              await sleep(holdMs);
            }
          }
          net.heal();
        }
      };

      const started = performance.now();
      const workload = startWorkload(cluster.endpoints, rng, history, { clients: 8, timeoutMs: 2000 });
      try {
        await nemesis();
        await cluster.waitAllHealthy();
        await sleep(500);
      } finally {
        net.heal();
        await workload.stop();
      }
      console.log(`partition e2e: ${((performance.now() - started) / 1000).toFixed(1)} s, ${faults.length} partitions: ${faults.join('; ')}`);
      history.assertLinearizable(`partition e2e (PART_SEED=${SEED})`, () => `PART_SEED=${SEED}`);
      assert.ok(faults.length >= 5, `only ${faults.length} partitions made`);
      await assertReplicasAgree(cluster, admin, 'after the partitions');
    }));
});
