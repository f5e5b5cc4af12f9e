// The visualiser's live mode against a 3-member cluster of real `raftkv
// serve` processes: every member's /ui/events stream, merged as the page
// merges them, shows exactly one leader that all agree on; after the leader
// is killed (SIGKILL) the others' streams show a new leader in a higher term
// and mark it with a `leader` event; the key-value panel's JSON gateway
// writes through a follower and reads through another member; /ui/ serves
// the page, or says how to build it.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import type { FeedMessage, MemberView } from '../../src/ui/view.js';
import { type Stream, openStream } from '../fixtures/sse.js';
import { withCluster } from './fixtures/cluster.js';

const UI_BUILT = existsSync(fileURLToPath(new URL('../../ui/index.html', import.meta.url)));

/** The latest status a stream carried. */
function latest(s: Stream): MemberView | undefined {
  for (let i = s.messages.length - 1; i >= 0; i--) {
    const m = s.messages[i]!;
    if (m.type === 'status') return m.member;
  }
  return undefined;
}

const statusCount = (m: FeedMessage[]): number => m.filter((x) => x.type === 'status').length;

/** Waits until every stream's latest status agrees on one leader and term, reported as leader by exactly one of them. */
async function agreedLeader(streams: readonly Stream[], minTerm: number, ms = 10_000): Promise<{ leader: string; term: number }> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    const views = streams.map(latest);
    if (views.every((v) => v !== undefined)) {
      const vs = views as MemberView[];
      const leaders = vs.filter((v) => v.role === 'leader');
      const first = vs[0]!;
      if (leaders.length === 1 && first.term > minTerm && vs.every((v) => v.term === first.term && v.leader === leaders[0]!.id)) {
        return { leader: leaders[0]!.id, term: first.term };
      }
      last = vs.map((v) => `${v.name}: ${v.role} term ${v.term} leader ${v.leader}`).join('; ');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the streams did not agree on one leader above term ${minTerm} within ${ms} ms (last: ${last})`);
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function gateway(endpoint: string, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${endpoint}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('the live feed of a real cluster', { timeout: 60_000 }, () => {
  it('shows one leader, a new leader after the leader is killed, and serves the key-value panel and the page', async () => {
    await withCluster('uifeed', { size: 3 }, async (tc) => {
      const endpoints = tc.cluster.endpoints;
      const streams = await Promise.all(endpoints.map((e) => openStream(`${e}/ui/events`)));
      try {
        await Promise.all(streams.map((s) => s.until((m) => statusCount(m) >= 2)));

        // hello: each member names itself and knows everyone's client URLs.
        const hellos = streams.map((s) => s.messages[0]!);
        const ids: string[] = [];
        for (const [i, h] of hellos.entries()) {
          assert.equal(h.type, 'hello');
          if (h.type !== 'hello') continue;
          assert.equal(h.name, tc.cluster.members[i]!.name);
          assert.match(h.member, /^[0-9a-f]+$/);
          assert.deepEqual(h.peers.map((p) => p.clientURLs[0]).sort(), [...endpoints].sort());
          assert.ok(h.history.some((e) => e.kind === 'restart' && e.member === h.member && e.detail === 'started'));
          ids.push(h.member);
        }
        assert.equal(new Set(ids).size, 3);

        const first = await agreedLeader(streams, 0);
        const leaderIndex = ids.indexOf(first.leader);
        assert.ok(leaderIndex >= 0);
        // The leader's status carries its view of the two followers, and it sends to both.
        const leaderView = latest(streams[leaderIndex]!)!;
        assert.deepEqual(leaderView.progress!.map((p) => p.id).sort(), ids.filter((id) => id !== first.leader).sort());
        assert.ok(leaderView.log.length > 0 && leaderView.log.every((e) => e.term <= first.term));
        await streams[leaderIndex]!.until((m) => {
          const s = m.at(-1)!;
          return s.type === 'status' && s.rates.length === 2 && s.rates.every((r) => r.perSecond > 0);
        });

        // Kill the leader: the others elect a new one in a higher term, and say so.
        await tc.cluster.kill(leaderIndex);
        const survivors = streams.filter((_, i) => i !== leaderIndex);
        await streams[leaderIndex]!.until(() => streams[leaderIndex]!.ended, 5000);
        const second = await agreedLeader(survivors, first.term);
        assert.notEqual(second.leader, first.leader);
        for (const s of survivors) {
          await s.until((m) => m.some((x) => x.type === 'event' && x.event.kind === 'leader' && x.event.member === second.leader && x.event.term === second.term));
        }

        // The key-value panel: put through a follower, read through another member.
        const followerIndex = ids.findIndex((id, i) => i !== leaderIndex && id !== second.leader);
        const newLeaderIndex = ids.indexOf(second.leader);
        const put = await gateway(endpoints[followerIndex]!, '/v3/kv/put', { key: b64('ui/greeting'), value: b64('hello') });
        assert.equal(put.status, 200, JSON.stringify(put.json));
        const header = put.json.header as Record<string, string>;
        assert.equal(BigInt(header.member_id!).toString(16), ids[followerIndex]);
        assert.equal(header.raft_term, String(second.term));
        const got = await gateway(endpoints[newLeaderIndex]!, '/v3/kv/range', { key: b64('ui/'), range_end: b64('ui0') });
        assert.equal(got.status, 200);
        assert.deepEqual(
          (got.json.kvs as { key: string; value: string }[]).map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]),
          [['ui/greeting', 'hello']],
        );
        const inc = await gateway(endpoints[followerIndex]!, '/v3/kv/increment', { key: b64('ui/visits'), delta: '2' });
        assert.equal(inc.json.value, '2');
        // The write shows in the log tails of the survivors' streams, labelled.
        for (const s of survivors) await s.until(() => latest(s)!.log.some((e) => e.label === 'put ui/greeting' && e.term === second.term));

        // The page.
        const page = await fetch(`${endpoints[newLeaderIndex]}/ui/`);
        const text = await page.text();
        if (UI_BUILT) {
          assert.equal(page.status, 200);
          assert.match(page.headers.get('content-type')!, /^text\/html/);
        } else {
          assert.equal(page.status, 404);
          assert.equal(text, 'the visualiser is not built: run npm run build\n');
        }
      } finally {
        for (const s of streams) s.close();
      }
    });
  });
});
