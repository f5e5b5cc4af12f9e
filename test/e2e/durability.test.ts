// kill -9 every member of a 3-member cluster during a write load; after the
// restart every acknowledged write is there, with its value and the
// revision its response reported.
//
// Concurrent clients put unique keys; while they run, every member is
// SIGKILLed -- all at once, or one by one in a random order (the cluster
// loses its quorum after the second, and the last to die may be a leader
// that has just appended entries nobody else has) -- then all restart from
// their data directories. A put the cluster acknowledged was committed, so
// it is in the logs of a majority (each fsynced before acknowledging), and
// a majority of the restarted members must bring it back (Raft §5.4, the
// Leader Completeness property). A put that failed or timed out may or may
// not have been applied, but if its key is there it must hold its value.
// KILL_SEED picks the kill orders and moments.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { RaftKvClient } from '../../src/client/index.js';
import { Random } from '../../src/sim/random.js';
import { type TestCluster, assertReplicasAgree, sleep, withCluster } from './fixtures/cluster.js';

const SEED = Number(process.env.KILL_SEED ?? 1);
const WORKERS = 12;
const PREFIX = 'dur/';

interface Acked {
  readonly value: string;
  /** The revision of the put's response header: the key's mod_revision. */
  readonly revision: number;
}

/** What the clients did: acknowledged puts, and puts whose outcome is unknown. */
class Load {
  readonly acked = new Map<string, Acked>();
  readonly unknown = new Map<string, string>();
  private stopped = false;
  private readonly done: Promise<void>[] = [];
  round = 0;

  constructor(clients: readonly RaftKvClient[]) {
    clients.forEach((c, w) => this.done.push(this.worker(c, w)));
  }

  private async worker(client: RaftKvClient, w: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const key = `${PREFIX}${String(w).padStart(2, '0')}/${String(n).padStart(6, '0')}`;
      const value = `w${w} n${n} round ${this.round}`;
      try {
        const res = await client.put(key, value);
        this.acked.set(key, { value, revision: res.header.revision });
      } catch {
        // Timed out, or the member failed: the put may have been applied or not.
        this.unknown.set(key, value);
        await sleep(20);
      }
    }
  }

  /** Resolves once `n` more puts have been acknowledged. */
  async acks(n: number, ms = 20_000): Promise<void> {
    const target = this.acked.size + n;
    const deadline = Date.now() + ms;
    while (this.acked.size < target) {
      if (Date.now() > deadline) throw new Error(`only ${this.acked.size - target + n} of ${n} puts acknowledged within ${ms} ms (round ${this.round})`);
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.done);
  }
}

/** Every put acknowledged before the read started is in a linearizable read of the prefix, as it was written. */
async function verify(client: RaftKvClient, load: Load, where: string): Promise<number> {
  const expected = new Map(load.acked);
  const res = await client.get(PREFIX, { prefix: true });
  const found = new Map(res.kvs.map((kv) => [Buffer.from(kv.key).toString(), kv]));
  const lost: string[] = [];
  for (const [key, a] of expected) {
    const kv = found.get(key);
    if (kv === undefined) {
      lost.push(key);
      continue;
    }
    assert.equal(Buffer.from(kv.value).toString(), a.value, `${where}: ${key} holds another value`);
    assert.equal(kv.modRevision, a.revision, `${where}: ${key} was acknowledged at revision ${a.revision}, holds mod_revision ${kv.modRevision}`);
  }
  assert.deepEqual(lost.slice(0, 20), [], `${where}: ${lost.length} of ${expected.size} acknowledged puts are gone (first ones listed)`);
  for (const [key, kv] of found) {
    const value = Buffer.from(kv.value).toString();
    const attempted = load.acked.get(key)?.value ?? load.unknown.get(key);
    // A key not yet acknowledged may be a put still in flight: its value is the one being written.
    if (attempted !== undefined) assert.equal(value, attempted, `${where}: ${key} holds a value never written`);
    else assert.match(value, /^w\d+ n\d+ round \d+$/, `${where}: ${key} holds a value never written`);
  }
  return expected.size;
}

/** Every member, read alone (serializable), holds every put acknowledged before `expected` was taken. */
async function verifyEachMember(tc: TestCluster, expected: ReadonlyMap<string, Acked>, where: string): Promise<void> {
  for (let i = 0; i < tc.cluster.members.length; i++) {
    const alone = tc.client({ endpoints: [tc.cluster.endpoints[i]!] });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await alone.get(PREFIX, { prefix: true, serializable: true, keysOnly: true });
      const keys = new Set(res.kvs.map((kv) => Buffer.from(kv.key).toString()));
      const missing = [...expected.keys()].filter((k) => !keys.has(k));
      if (missing.length === 0) break;
      if (Date.now() > deadline) assert.fail(`${where}: member ${tc.cluster.members[i]!.name} still lacks ${missing.length} acknowledged keys, e.g. ${missing[0]}`);
      await sleep(100);
    }
  }
}

describe('kill -9 every member during a write load', { timeout: 120_000 }, () => {
  it(`every acknowledged put survives, kills all at once and one by one (seed ${SEED})`, async () => {
    await withCluster('durability', { size: 3 }, async (tc) => {
      const { cluster } = tc;
      const rng = new Random(SEED).fork('durability');
      const checker = tc.client({ timeoutMs: 15_000 });
      const load = new Load(Array.from({ length: WORKERS }, () => tc.client({ timeoutMs: 8000 })));
      const started = Date.now();
      const rounds: string[] = [];
      try {
        for (const [round, how] of (['at once', 'one by one', 'at once'] as const).entries()) {
          load.round = round;
          const t0 = Date.now();
          await load.acks(300);
          const t1 = Date.now();
          await sleep(rng.range(0, 200));
          if (how === 'at once') {
            await Promise.all(cluster.members.map((_, i) => cluster.kill(i)));
          } else {
            const order = rng.shuffle([0, 1, 2]);
            for (const i of order) {
              await cluster.kill(i);
              await sleep(rng.range(50, 300));
            }
          }
          const ackedAtKill = load.acked.size;
          await sleep(rng.range(100, 500));
          cluster.startAll();
          await cluster.waitAllHealthy();
          const t2 = Date.now();
          const checked = await verify(checker, load, `round ${round} (${how}), just after the restart`);
          await load.acks(300);
          rounds.push(`${how}: ${ackedAtKill} acked at the kill, ${checked} checked after the restart (load ${t1 - t0} ms, kill to healthy ${t2 - t1} ms)`);
        }
        await load.stop();
        const where = 'after the last round';
        await verify(checker, load, where);
        await verifyEachMember(tc, load.acked, where);
        const rev = await assertReplicasAgree(cluster, checker, where);
        rounds.push(`replicas agree at revision ${rev} (HashKV)`);
      } finally {
        await load.stop();
      }
      console.log(
        `durability: ${load.acked.size} puts acknowledged, ${load.unknown.size} with an unknown outcome, in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
          rounds.join('; '),
      );
    });
  });
});
