// Exactly-once increments (Raft dissertation §6.3) against real processes:
// a client whose leader is killed while its increment is in flight sends it
// again, with the same client id and sequence number, to another member; the
// cluster must apply it once and answer the retry with the original result.
//
// - Under load: clients increment one counter while the leader is SIGSTOPped
//   with requests pending at it and then SIGKILLed, or SIGKILLed at a random
//   moment; after every round every increment must have been acknowledged,
//   and the values the increments returned must be exactly base+1..base+N
//   (a double-applied retry would skip a value), the counter base+N.
// - Committed but unanswered: a TCP proxy in front of the leader swallows
//   its responses, so the increment is certainly applied and the client
//   certainly has no answer when the leader is killed; the retry must get
//   the original response.
// - A duplicate sent by hand (same client id and sequence number, crafted
//   metadata) to each member gets the saved response; once acknowledged,
//   it is refused, never applied.
// - Sent to a frozen member (SIGSTOP): the client gives up on that attempt
//   and the next member answers within the call's timeout; resumed, the
//   frozen member may propose the copy waiting in its socket, which is not
//   applied again.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { GrpcStatus, GrpcStatusError, type RaftKvClient } from '../../src/client/index.js';
import { Channel } from '../../src/client/transport.js';
import type * as kv from '../../src/kv/types.js';
import { methods } from '../../src/server/etcdpb.js';
import { ACK_HEADER, CLIENT_ID_HEADER, SEQ_HEADER } from '../../src/server/types.js';
import { Random } from '../../src/sim/random.js';
import { SharedCluster, type TestCluster, findLeader, sleep } from './fixtures/cluster.js';

const SEED = Number(process.env.KILL_SEED ?? 1);

async function counter(client: RaftKvClient, key: string): Promise<kv.KeyValue | undefined> {
  return (await client.get(key)).kvs[0];
}

const valueOf = (kv: kv.KeyValue | undefined): number => (kv === undefined ? 0 : Number(Buffer.from(kv.value).toString()));

/** Endpoints starting at member `first`, so a client's calls go there first. */
function endpointsFrom(tc: TestCluster, first: number): string[] {
  const e = tc.cluster.endpoints;
  return e.map((_, k) => e[(first + k) % e.length]!);
}

describe('exactly-once increments when the leader is killed', { timeout: 120_000 }, () => {
  const shared = new SharedCluster('exactlyonce', { size: 3 });
  before(() => shared.start());
  after(() => shared.finish());

  it(`under load, every increment is acknowledged and applied once (seed ${SEED})`, async () => {
    await shared.run(async (tc) => {
      const { cluster } = tc;
      const rng = new Random(SEED).fork('exactlyonce');
      const admin = tc.client();
      const KEY = 'counter/load';
      const WORKERS = 9;
      const returned: number[] = [];
      const failures: string[] = [];
      let stopped = false;
      // Each worker starts at another member: some send to the leader, some to followers that forward.
      const workers = Array.from({ length: WORKERS }, async (_, w) => {
        const client = tc.client({ endpoints: endpointsFrom(tc, w % 3), timeoutMs: 20_000 });
        while (!stopped) {
          try {
            returned.push((await client.increment(KEY)).value);
          } catch (e) {
            failures.push(`worker ${w}: ${(e as Error).message}`);
            return;
          }
        }
      });
      const rounds: string[] = [];
      try {
        for (let round = 0; round < 3; round++) {
          const before = returned.length;
          while (returned.length < before + 200 && failures.length === 0) await sleep(10);
          const leader = await findLeader(tc, admin);
          let how: string;
          if (round % 2 === 0) {
            // Frozen: whatever the workers send it stays pending, unread, until the kill.
            cluster.signal(leader.index, 'SIGSTOP');
            await sleep(rng.range(200, 700));
            how = 'SIGSTOP, then SIGKILL';
          } else {
            await sleep(rng.range(0, 50));
            how = 'SIGKILL while serving';
          }
          const atKill = returned.length;
          await cluster.kill(leader.index);
          await sleep(rng.range(100, 400));
          cluster.start(leader.index);
          await cluster.waitAllHealthy();
          rounds.push(`${how} leader ${cluster.members[leader.index]!.name} (term ${leader.term}) after ${atKill - before} increments`);
        }
        const last = returned.length;
        while (returned.length < last + 100 && failures.length === 0) await sleep(10);
      } finally {
        stopped = true;
        await Promise.all(workers);
      }
      assert.deepEqual(failures, [], 'an increment failed: its outcome is unknown, so the count cannot be checked exactly');
      const final = valueOf(await counter(admin, KEY));
      const sorted = [...returned].sort((a, b) => a - b);
      const skipped = sorted.filter((v, i) => v !== i + 1).slice(0, 5);
      assert.deepEqual(skipped, [], `the increments returned ${sorted.length} values, not exactly 1..${sorted.length} (first out of place listed): a retry was applied twice, or one was lost`);
      assert.equal(final, returned.length, `${returned.length} increments acknowledged, the counter is ${final}`);
      console.log(`exactly-once under load: ${returned.length} increments, each applied once; ${rounds.join('; ')}`);
    });
  });

  it('an increment committed but unanswered when the leader dies: the retry gets the original response', async () => {
    await shared.run(async (tc) => {
      const { cluster } = tc;
      const observer = tc.client();
      const KEY = 'counter/proxied';
      for (let round = 0; round < 2; round++) {
        const leader = await findLeader(tc, observer);
        const proxy = await ResponseSwallowingProxy.start(cluster.endpoints[leader.index]!);
        try {
          const others = endpointsFrom(tc, leader.index).slice(1);
          const client = tc.client({ endpoints: [proxy.endpoint, ...others], timeoutMs: 20_000 });
          await client.status(proxy.endpoint); // the connection through the proxy is up
          const before = await counter(observer, KEY);
          proxy.swallow = true;
          const increment = client.increment(KEY);
          // Applied: a linearizable read sees it (the leader answered the proxy, which kept the answer).
          let applied: kv.KeyValue | undefined;
          const deadline = Date.now() + 10_000;
          while (valueOf((applied = await counter(observer, KEY))) === valueOf(before)) {
            assert.ok(Date.now() < deadline, `round ${round}: the increment sent through the proxy was never applied`);
            await sleep(20);
          }
          assert.equal(valueOf(applied), valueOf(before) + 1, `round ${round}: one increment moved the counter from ${valueOf(before)} to ${valueOf(applied)}`);
          await cluster.kill(leader.index);
          const res = await increment;
          assert.equal(res.value, valueOf(applied), `round ${round}: the retry answered ${res.value}, the original increment made ${valueOf(applied)}`);
          assert.equal(res.kv.modRevision, applied!.modRevision, `round ${round}: the retry's answer is not the original's (mod_revision)`);
          assert.equal(res.header.revision, applied!.modRevision, `round ${round}: the retry's header revision is not the original's`);
          const after = await counter(observer, KEY);
          assert.equal(valueOf(after), valueOf(applied), `round ${round}: the retry was applied again`);
          assert.equal(after!.version, applied!.version, `round ${round}: the key was written again`);
          cluster.start(leader.index);
          await cluster.waitAllHealthy();
        } finally {
          proxy.close();
        }
      }
      // The restarted members agree: each, read alone, has the counter at 2.
      for (let i = 0; i < 3; i++) {
        const alone = tc.client({ endpoints: [cluster.endpoints[i]!] });
        const deadline = Date.now() + 10_000;
        let v = 0;
        while ((v = valueOf((await alone.get(KEY, { serializable: true })).kvs[0])) !== 2 && Date.now() < deadline) await sleep(50);
        assert.equal(v, 2, `member ${cluster.members[i]!.name} has the counter at ${v}`);
      }
    });
  });

  it('a duplicate with the same client id and sequence number gets the saved response from every member', async () => {
    await shared.run(async (tc) => {
      const { cluster } = tc;
      const observer = tc.client();
      const channels = cluster.endpoints.map((url) => new Channel(url, { connectTimeoutMs: 2000 }));
      try {
        const id = '5eed0123456789ab';
        const meta = (seq: number, ack: number) => ({ [CLIENT_ID_HEADER]: id, [SEQ_HEADER]: String(seq), [ACK_HEADER]: String(ack) });
        const increment = (member: number, delta: number, seq: number, ack: number) =>
          channels[member]!.unary(methods.increment, { key: Buffer.from('counter/dup'), delta }, meta(seq, ack), 10_000);

        const first = await increment(0, 5, 1, 1);
        assert.equal(first.value, 5);
        for (const member of [0, 1, 2]) {
          const again = await increment(member, 5, 1, 1);
          assert.equal(again.value, 5, `member ${member} applied the duplicate`);
          assert.equal(again.header.revision, first.header.revision, `member ${member}: the duplicate's revision is not the original's`);
          assert.equal(again.kv.modRevision, first.kv.modRevision);
          assert.equal(again.kv.version, 1);
        }
        // The saved response belongs to the sequence number: the same seq with another
        // request is still the one request the client sent, answered as it was.
        assert.equal((await increment(2, 100, 1, 1)).value, 5);
        let now = (await observer.get('counter/dup')).kvs[0]!;
        assert.equal(Buffer.from(now.value).toString(), '5');
        assert.equal(now.version, 1, 'the key was written once');

        // The next request acknowledges seq 1: its result is forgotten, and a late
        // duplicate of it is refused, never applied.
        assert.equal((await increment(1, 1, 2, 2)).value, 6);
        for (const member of [0, 1, 2]) {
          await assert.rejects(increment(member, 5, 1, 1), (e: unknown) => {
            assert.ok(e instanceof GrpcStatusError, String(e));
            assert.equal(e.grpcStatus, GrpcStatus.FAILED_PRECONDITION, e.message);
            assert.match(e.message, /sequence 1 of client "5eed0123456789ab" already acknowledged/);
            return true;
          });
        }
        now = (await observer.get('counter/dup')).kvs[0]!;
        assert.equal(Buffer.from(now.value).toString(), '6');
        assert.equal(now.version, 2);
      } finally {
        for (const c of channels) c.close();
      }
    });
  });

  it("writes refused before they were proposed do not stop the client's next writes, each applied once", async () => {
    await shared.run(async (tc) => {
      // A new client whose first writes are refused by validation (they use up
      // sequence numbers but never reach the log, so no session is made).
      const client = tc.client();
      await assert.rejects(client.put('', 'x'), /etcdserver: key is not provided/);
      await assert.rejects(client.increment('', 1), /etcdserver: key is not provided/);
      for (let i = 1; i <= 3; i++) assert.equal((await client.increment('counter/after-refusals', 1)).value, i);
      const kv = (await client.get('counter/after-refusals')).kvs[0]!;
      assert.equal(Buffer.from(kv.value).toString(), '3');
      assert.equal(kv.version, 3, 'each increment applied once');
    });
  });

  it('an increment sent to a frozen member (SIGSTOP) is answered through the next one in time; resumed, the frozen copy is not applied again', async () => {
    await shared.run(async (tc) => {
      const { cluster } = tc;
      const KEY = 'counter/frozen';
      const observer = tc.client();
      const leader = await findLeader(tc, observer);
      const frozen = (leader.index + 1) % 3;
      // The frozen member first; the default 5 s timeout.
      const client = tc.client({ endpoints: endpointsFrom(tc, frozen), timeoutMs: 5000 });
      await client.get(KEY); // connected to it
      cluster.signal(frozen, 'SIGSTOP');
      let took: number;
      try {
        const t0 = performance.now();
        const res = await client.increment(KEY);
        took = performance.now() - t0;
        assert.equal(res.value, 1);
      } finally {
        cluster.signal(frozen, 'SIGCONT');
      }
      // Resumed, the frozen member finds the increment waiting in its socket
      // (and, after it, the client's cancel); if it proposes it, the entry
      // carries the same client id and sequence number, so it is answered
      // from the session table, not applied again.
      await cluster.waitAllHealthy();
      await sleep(500);
      for (let i = 0; i < 3; i++) {
        const kv = (await tc.client({ endpoints: [cluster.endpoints[i]!] }).get(KEY)).kvs[0];
        assert.equal(valueOf(kv), 1, `${cluster.members[i]!.name} has the counter at ${valueOf(kv)}`);
        assert.equal(kv!.version, 1, `${cluster.members[i]!.name}: written once`);
      }
      console.log(`exactly-once: an increment sent to frozen ${cluster.members[frozen]!.name} was answered after ${took.toFixed(0)} ms through the next member; applied once`);
    });
  });
});

/**
 * A TCP proxy to one member's client port that passes requests on and,
 * once `swallow` is set, drops the member's responses: the member applies
 * a write and the client never hears of it. When the member dies, the
 * client's connection is closed, as it would be without the proxy.
 */
class ResponseSwallowingProxy {
  swallow = false;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly endpoint: string,
  ) {}

  static async start(target: string): Promise<ResponseSwallowingProxy> {
    const { hostname, port } = new URL(target);
    let proxy!: ResponseSwallowingProxy;
    const server = net.createServer((client) => {
      const upstream = net.connect(Number(port), hostname);
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          proxy.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d) => {
        if (!proxy.swallow) client.write(d);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new ResponseSwallowingProxy(server, `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    return proxy;
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}
