// The black-box fault test: a 3-member cluster of real `raftkv serve`
// processes, concurrent clients reading, writing and compare-and-setting a
// few keys through the client library while a nemesis SIGKILLs and restarts
// members and SIGSTOPs and resumes them (often the leader). Every call's
// invocation and response times and its result are recorded, and the whole
// history is checked by the project's own linearizability checker
// (src/sim/linearizability.ts: Wing & Gong's search with Lowe's memo, as in
// Knossos and Porcupine).
//
// Unknown outcomes: a write that failed in any way (a timeout, UNAVAILABLE
// after the request went out, a member killed under it) may still take
// effect later, so it is recorded with an unknown output (the checker lets
// it happen at any time after its call, or never). A failed read changes
// nothing and is left out.
//
// The checker must be able to fail: the second test makes a member serve a
// stale serializable read (etcd's --consistency=s) after a newer write was
// acknowledged, and the checker must call that history a violation.
//
// LIN_SEED picks the nemesis's and the clients' random choices (printed);
// LIN_SECONDS how long the faults go on (default 20).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { LocalCluster } from '../../src/cli/localCluster.js';
import { RaftKvClient } from '../../src/client/index.js';
import { CompareResult, CompareTarget } from '../../src/kv/types.js';
import { type KvInput, type KvOutput, type Operation, checkLinearizability, kvModel } from '../../src/sim/linearizability.js';
import { Random } from '../../src/sim/random.js';
import { assertReplicasAgree } from './fixtures/cluster.js';

const SEED = Number(process.env.LIN_SEED ?? Math.floor(Math.random() * 2 ** 31));
const FAULT_MS = Number(process.env.LIN_SECONDS ?? 20) * 1000;
const CLIENTS = 8;
const KEYS = ['a', 'b', 'c', 'd'];
/** Fast failover, as a test wants it: a leader is suspected after 500 ms of silence. */
const FLAGS = ['--heartbeat-interval', '50', '--election-timeout', '500'];
const CLIENT_TIMEOUT_MS = 2000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------
// Recording a history

type KvOp = Operation<KvInput, KvOutput>;

class History {
  readonly ops: KvOp[] = [];
  readonly counts = { ok: 0, unknown: 0, failedReads: 0 };
  readonly errors = new Map<string, number>();

  /**
   * Runs one call and records it: its output if it answered; an unknown
   * output if it was a write that failed (it may have run, or still run); a
   * failed read is dropped.
   */
  async record(client: number, input: KvInput, call: () => Promise<KvOutput>): Promise<KvOutput | undefined> {
    const start = performance.now();
    try {
      const output = await call();
      this.ops.push({ client, input, output, call: start, ret: performance.now() });
      this.counts.ok++;
      return output;
    } catch (e) {
      const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      this.errors.set(what, (this.errors.get(what) ?? 0) + 1);
      if (input.op === 'get') {
        this.counts.failedReads++;
      } else {
        this.ops.push({ client, input, output: undefined, call: start, ret: Infinity });
        this.counts.unknown++;
      }
      return undefined;
    }
  }
}

/** The model's operations as etcd v3 calls. */
async function run(client: RaftKvClient, input: KvInput, serializable = false): Promise<KvOutput> {
  switch (input.op) {
    case 'get': {
      const res = await client.get(input.key, { serializable });
      const kv = res.kvs[0];
      return { ok: true, value: kv ? text(kv.value) : undefined };
    }
    case 'set':
      await client.put(input.key, input.value);
      return { ok: true };
    case 'cas': {
      const key = Buffer.from(input.key);
      // An absent key has version 0 (etcd compares a missing key's value as
      // always failing, so "absent" must be asked through its version).
      const compare =
        input.expected === undefined
          ? { result: CompareResult.EQUAL, target: CompareTarget.VERSION, key, targetUnion: { version: 0 }, rangeEnd: EMPTY }
          : { result: CompareResult.EQUAL, target: CompareTarget.VALUE, key, targetUnion: { value: Buffer.from(input.expected) }, rangeEnd: EMPTY };
      const res = await client.txn({
        compare: [compare],
        success: [{ requestPut: { key, value: Buffer.from(input.value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } }],
        failure: [],
      });
      return { ok: true, swapped: res.succeeded };
    }
    default:
      throw new Error(`the workload does not issue ${input.op}`);
  }
}

// ---------------------------------------------------------------------------
// The cluster's leader, as the members see it

/** Member ids by index, asked of each member once. */
async function memberIds(cluster: LocalCluster, admin: RaftKvClient): Promise<bigint[]> {
  return Promise.all(cluster.endpoints.map(async (e) => (await admin.status(e)).header.memberId));
}

/** The promise, or a rejection after `ms` (status() would wait the client's whole timeout on a paused member). */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The index of the member some running member names as leader, or undefined. */
async function findLeader(cluster: LocalCluster, admin: RaftKvClient, ids: bigint[]): Promise<number | undefined> {
  for (const e of cluster.endpoints) {
    try {
      const leader = (await withTimeout(admin.status(e), 1000)).leader;
      const i = ids.indexOf(leader);
      if (i >= 0) return i;
    } catch {
      // Down or stopped: ask the next one.
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------

describe('linearizability of a real cluster under kills and pauses', { timeout: 120_000 }, () => {
  let dir: string;
  let cluster: LocalCluster;
  let admin: RaftKvClient;
  let ids: bigint[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftkv-lin-'));
    cluster = await LocalCluster.create({ size: 3, dataDir: dir, extraFlags: FLAGS });
    cluster.startAll();
    await cluster.waitAllHealthy();
    // Patient: the machine may be busy, and a slow answer here harms nothing.
    admin = new RaftKvClient({ endpoints: cluster.endpoints, timeoutMs: 5000 });
    ids = await memberIds(cluster, admin);
  });

  after(async () => {
    admin?.close();
    await cluster?.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Member logs for a failure report. */
  const logs = () => cluster.members.map((m) => `--- ${m.name} (last 3000 chars)\n${m.log.slice(-3000)}`).join('\n');

  it(`concurrent get/put/txn-cas stay linearizable through SIGKILL and SIGSTOP (LIN_SEED=${SEED})`, async () => {
    console.log(`linearizability e2e: LIN_SEED=${SEED}`);
    const rng = new Random(SEED);
    const history = new History();
    const faults: string[] = [];
    let stopping = false;

    // Each client fails over across every member, starting at its own.
    const clients = Array.from({ length: CLIENTS }, (_, c) => {
      const n = cluster.endpoints.length;
      const endpoints = cluster.endpoints.map((_, i) => cluster.endpoints[(c + i) % n]!);
      return new RaftKvClient({ endpoints, timeoutMs: CLIENT_TIMEOUT_MS, connectTimeoutMs: 1000 });
    });

    const worker = async (c: number): Promise<void> => {
      const r = rng.fork(`client ${c}`);
      const client = clients[c]!;
      // The last value this client read per key: what its cas expects, so
      // that some of them succeed.
      const seen = new Map<string, string | undefined>();
      for (let n = 0; !stopping; n++) {
        const key = r.pick(KEYS);
        const value = `${c}.${n}`;
        const input = r.weighted<KvInput>([
          [{ op: 'get', key }, 4],
          [{ op: 'set', key, value }, 3],
          [{ op: 'cas', key, expected: r.chance(0.15) ? undefined : seen.get(key), value }, 3],
        ]);
        const out = await history.record(c, input, () => run(client, input));
        if (out && input.op === 'get' && 'value' in out) seen.set(key, out.value);
        if (!out) await sleep(r.range(10, 50)); // no tight loop against a member that is down
      }
    };

    const nemesis = async (): Promise<void> => {
      const r = rng.fork('nemesis');
      const end = performance.now() + FAULT_MS;
      while (performance.now() < end) {
        await sleep(r.range(700, 1500));
        const leader = await findLeader(cluster, admin, ids);
        const victim = leader !== undefined && r.chance(0.6) ? leader : r.int(cluster.members.length);
        const role = victim === leader ? 'leader' : 'member';
        if (r.chance(0.5)) {
          const downMs = r.range(200, 1500);
          faults.push(`kill -9 ${role} ${cluster.members[victim]!.name}, restart after ${downMs} ms`);
          await cluster.kill(victim);
          await sleep(downMs);
          cluster.start(victim);
        } else {
          const pauseMs = r.range(1000, 3000);
          faults.push(`SIGSTOP ${role} ${cluster.members[victim]!.name} for ${pauseMs} ms`);
          cluster.signal(victim, 'SIGSTOP');
          await sleep(pauseMs);
          cluster.signal(victim, 'SIGCONT');
        }
      }
    };

    const started = performance.now();
    try {
      const workers = clients.map((_, c) => worker(c));
      await nemesis();
      // Healed: everything runs. Let the clients go on a little against a
      // whole cluster, then stop them.
      for (let i = 0; i < cluster.members.length; i++) {
        if (!cluster.running(i)) cluster.start(i);
        cluster.signal(i, 'SIGCONT');
      }
      await cluster.waitAllHealthy();
      await sleep(500);
      stopping = true;
      await Promise.all(workers);
    } finally {
      stopping = true;
      for (const c of clients) c.close();
    }
    const ranMs = performance.now() - started;

    const checkStart = performance.now();
    const result = checkLinearizability(kvModel, history.ops);
    const checkMs = performance.now() - checkStart;
    const byOp = (op: KvInput['op']) => history.ops.filter((o) => o.input.op === op && o.output !== undefined).length;
    const swapped = history.ops.filter((o) => o.output && 'swapped' in o.output && o.output.swapped).length;
    console.log(
      `linearizability e2e: ${(ranMs / 1000).toFixed(1)} s, ${faults.length} faults; ${history.ops.length} ops recorded ` +
        `(${history.counts.ok} answered: ${byOp('get')} get, ${byOp('set')} put, ${byOp('cas')} txn-cas of which ${swapped} swapped; ` +
        `${history.counts.unknown} writes of unknown outcome; ${history.counts.failedReads} failed reads dropped); ` +
        `checked in ${checkMs.toFixed(0)} ms: ${result.outcome}`,
    );
    console.log(`faults: ${faults.join('; ')}`);
    console.log(`errors: ${[...history.errors].map(([e, n]) => `${n}x ${e}`).join('; ')}`);

    assert.equal(result.outcome, 'ok', `LIN_SEED=${SEED}: ${result.outcome === 'violation' ? result.explanation : result.outcome === 'unknown' ? result.reason : ''}\n${logs()}`);
    // Not vacuous: the clients got through, including through the faults.
    assert.ok(history.counts.ok > 200, `only ${history.counts.ok} calls answered`);
    assert.ok(byOp('get') > 50 && byOp('set') > 50 && byOp('cas') > 50, 'every kind of call was answered many times');
    assert.ok(swapped > 10, `only ${swapped} compare-and-sets succeeded`);
    assert.ok(faults.length >= 5, `only ${faults.length} faults injected`);
    // And the replicas hold the same history after all that.
    await assertReplicasAgree(cluster, admin, 'after the faults');
  });

  it('catches a stale serializable read (the checker bites)', async () => {
    // A follower is paused (SIGSTOP) and a newer value is acknowledged by
    // the other two; then those two are paused as well, a serializable read
    // (etcd's --consistency=s) is sent to the paused follower, and the
    // follower is resumed. The leader's append carrying the new value waits
    // in the follower's peer socket, and the read in its client socket; if
    // the follower reads the client socket first it answers from its store
    // before it has even seen the new value: "old" after "new" was
    // acknowledged, which is not linearizable. To have the client socket
    // read first, a throwaway request is sent on the same connection before
    // the leader's append arrives: Linux's epoll reports ready sockets in
    // the order they became ready, and Node serves them in that order. A
    // heartbeat arriving first can still win the race, so up to three
    // rounds are tried, each on its own key.
    await cluster.waitAllHealthy();
    const history = new History();
    const leader = await findLeader(cluster, admin, ids);
    assert.ok(leader !== undefined, 'a leader');
    const follower = (leader + 1) % 3;
    const others = [0, 1, 2].filter((i) => i !== follower);
    const viaOthers = new RaftKvClient({ endpoints: others.map((i) => cluster.endpoints[i]!), timeoutMs: 5000 });
    const atFollower = new RaftKvClient({ endpoints: [cluster.endpoints[follower]!], timeoutMs: 5000 });
    const serializableGet = (key: string) => run(atFollower, { op: 'get', key }, true);
    const paused = new Set<number>();
    const pause = (i: number) => (cluster.signal(i, 'SIGSTOP'), paused.add(i));
    const resume = (i: number) => (cluster.signal(i, 'SIGCONT'), paused.delete(i));
    let staleKey: string | undefined;
    try {
      for (let round = 1; round <= 3 && staleKey === undefined; round++) {
        const key = `stale-${round}`;
        assert.deepEqual(await history.record(0, { op: 'set', key, value: 'old' }, () => run(viaOthers, { op: 'set', key, value: 'old' })), { ok: true });
        // The follower has applied "old" (its own serializable reads say so);
        // this also leaves the client connected to it. These polls are not
        // part of the history: they may legitimately lag (that is what
        // serializable means), and the violation checked below is a later one.
        for (let tries = 0; ; tries++) {
          const out = await serializableGet(key).catch(() => undefined);
          if (out && 'value' in out && out.value === 'old') break;
          assert.ok(tries < 100, `the follower never applied "old": ${JSON.stringify(out)}`);
          await sleep(20);
        }

        pause(follower);
        const throwaway = serializableGet('unrelated').catch(() => undefined);
        await sleep(20); // the throwaway request reaches the paused follower's client socket
        assert.deepEqual(await history.record(0, { op: 'set', key, value: 'new' }, () => run(viaOthers, { op: 'set', key, value: 'new' })), { ok: true });
        await sleep(200); // the leader sends the entry and its commit towards the paused follower
        for (const i of others) pause(i);
        const read = history.record(1, { op: 'get', key }, () => serializableGet(key));
        await sleep(100); // the request waits in the paused follower's socket buffer
        resume(follower);
        const answer = await read;
        await throwaway;
        for (const i of others) resume(i);
        if (answer && 'value' in answer && answer.value === 'old') staleKey = key;
        else assert.deepEqual(answer, { ok: true, value: 'new' }, `round ${round}: the follower answers "old" or "new"`);

        // Healed, a linearizable read at the follower sees "new" (recorded: it is legal).
        await cluster.waitAllHealthy();
        assert.deepEqual(await history.record(1, { op: 'get', key }, () => run(atFollower, { op: 'get', key })), { ok: true, value: 'new' });
      }
    } finally {
      for (const i of paused) cluster.signal(i, 'SIGCONT');
      viaOthers.close();
      atFollower.close();
    }
    assert.ok(staleKey !== undefined, 'in three rounds the resumed follower always applied "new" before answering the read');

    const result = checkLinearizability(kvModel, history.ops);
    assert.ok(result.outcome === 'violation', `a read of "old" after "new" was acknowledged is not linearizable; the checker said ${result.outcome}`);
    assert.match(result.explanation, new RegExp(`get\\("${staleKey}"\\) -> "old" -- not a legal step in this state`));
    console.log(`stale read caught (key ${staleKey}):\n${result.explanation}`);
    // Without the stale read the same history is linearizable: the violation is that read.
    const newAcked = history.ops.find((o) => o.input.op === 'set' && o.input.key === staleKey && o.input.value === 'new')!;
    const staleOps = history.ops.filter(
      (o) => o.input.op === 'get' && o.input.key === staleKey && o.call > newAcked.ret && o.output && 'value' in o.output && o.output.value === 'old',
    );
    assert.equal(staleOps.length, 1);
    assert.equal(checkLinearizability(kvModel, history.ops.filter((o) => o !== staleOps[0])).outcome, 'ok');
  });
});
