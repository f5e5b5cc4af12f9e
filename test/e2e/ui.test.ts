// The visualiser in a real browser (Debian's chromium, driven headless by
// playwright-core): the live page served by a member of a real 3-member
// cluster shows one leader, and a new one in a higher term after the leader
// is SIGKILLed (the killed member drawn as down); the sandbox replays a
// seeded guided story to its last step and reaches the state the story
// promises, with no safety violation; a run shared by URL replays the same
// crash. Screenshots go to artifacts/ui/ (docs/img/ holds copies).
//
// Without chromium the tests skip and say why; in CI (CI=true) a missing
// chromium is a failure: scripts/install-deps.sh installs it.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { type Browser, type Page, chromium } from 'playwright-core';

import { waitFor as poll, withCluster } from './fixtures/cluster.js';

/** The page is polled every 100 ms. */
const waitFor = <T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> => poll(what, ms, probe, 100);

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const PAGE = fileURLToPath(new URL('../../ui/index.html', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../../../artifacts/ui/', import.meta.url));

function whyNot(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const reason = `chromium not found at ${CHROMIUM}: run scripts/install-deps.sh (Debian's chromium) or set CHROMIUM_PATH`;
  if (process.env.CI) throw new Error(`${reason} (in CI it must be installed)`);
  return reason;
}
const skip = whyNot();

let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  assert.ok(existsSync(PAGE), `the visualiser is not built (${PAGE}): run npm run build`);
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
});

async function newPage(): Promise<Page> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  (page as Page & { errors: string[] }).errors = errors;
  return page;
}

/** What the drawing shows: each node's role and term, by node id. */
async function roles(page: Page): Promise<Map<string, { role: string; term: number }>> {
  const nodes = await page.$$eval('[data-testid^="node-"]', (els) =>
    els.map((e) => [e.getAttribute('data-testid')!.slice('node-'.length), e.getAttribute('data-role') ?? '', Number(e.getAttribute('data-term'))] as const),
  );
  return new Map(nodes.map(([id, role, term]) => [id, { role, term }]));
}

/** Moves the speed slider to its maximum, as a user dragging it would. */
async function fullSpeed(page: Page): Promise<void> {
  // A string, evaluated in the page: this file is compiled without the DOM's types.
  await page.evaluate(`(() => {
    const input = document.querySelector('#speed');
    input.value = input.max;
    input.dispatchEvent(new Event('input', { bubbles: true }));
  })()`);
}

/** The one leader the drawing shows, if exactly one node is drawn as leader. */
async function oneLeader(page: Page): Promise<{ id: string; term: number } | undefined> {
  const leaders = [...(await roles(page))].filter(([, v]) => v.role === 'leader');
  return leaders.length === 1 ? { id: leaders[0]![0], term: leaders[0]![1].term } : undefined;
}

describe('the visualiser in a browser', { skip, timeout: 120_000 }, () => {
  it('live: one leader, then a new one in a higher term after the leader is killed', async () => {
    await withCluster('ui', { size: 3 }, async (tc) => {
      const page = await newPage();
      try {
        await page.goto(`${tc.cluster.members[0]!.clientURL}/ui/`);
        const first = await waitFor('one leader drawn, with every member connected', 15_000, async () => {
          const r = await roles(page);
          const leader = await oneLeader(page);
          return r.size === 3 && leader && [...r.values()].every((v) => v.term === leader.term) ? leader : undefined;
        });
        const summary = await page.textContent('[data-testid="leader"]');
        const name = summary?.match(/^(\S+) leads term (\d+)/);
        assert.ok(name, `the leader summary names the leader: ${summary}`);
        assert.equal(Number(name[2]), first.term);
        await page.screenshot({ path: `${ARTIFACTS}live-leader.png` });

        const victim = tc.cluster.members.findIndex((m) => m.name === name[1]);
        assert.ok(victim >= 0, `a member named ${name[1]}`);
        await tc.cluster.kill(victim);
        const next = await waitFor('a new leader in a higher term, the old one drawn down', 20_000, async () => {
          const leader = await oneLeader(page);
          const old = (await roles(page)).get(first.id);
          return leader && leader.id !== first.id && leader.term > first.term && old?.role === 'down' ? leader : undefined;
        });
        assert.match((await page.textContent('[data-testid="leader"]')) ?? '', new RegExp(`leads term ${next.term}`));
        await page.screenshot({ path: `${ARTIFACTS}live-new-leader.png` });
        // The killed member's stream is cut and then fails to reconnect: the browser logs that, and nothing else.
        const errors = (page as Page & { errors: string[] }).errors.filter((e) => !/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_INCOMPLETE_CHUNKED_ENCODING/.test(e));
        assert.deepEqual(errors, [], 'no errors in the page');
      } finally {
        await page.close();
      }
    });
  });

  it('sandbox: the leader-crash story replays to its end and reaches the state it promises', async () => {
    const page = await newPage();
    try {
      await page.goto(`${pathToFileURL(PAGE).href}#mode=sandbox&story=leader-crash`);
      // Full speed: the story's simulated half-second passes in a fraction of that.
      await fullSpeed(page);
      const caption = await waitFor('the story to reach its last step', 30_000, async () => {
        const text = (await page.textContent('[data-testid="story-caption"]')) ?? '';
        const m = text.match(/Step (\d+)\/(\d+)/);
        return m && m[1] === m[2] ? text : undefined;
      });
      assert.match(caption, /catches up from the new leader/);
      const r = await roles(page);
      assert.equal(r.size, 3, 'three nodes drawn');
      const leader = await oneLeader(page);
      assert.ok(leader, 'one leader');
      assert.ok(leader.term >= 2, `the new leader is in a later term than the first (term ${leader.term})`);
      for (const [id, v] of r) assert.equal(v.term, leader.term, `n${id} has caught up to the leader's term`);
      assert.equal(((await page.textContent('[data-testid="violation"]')) ?? '').trim(), '', 'no safety violation');
      // The timeline marked the crash and the two leaderships.
      assert.ok((await page.textContent('[data-testid="event-log"]'))?.includes('crash'), 'the event log tells of the crash');
      await page.screenshot({ path: `${ARTIFACTS}sandbox-leader-crash.png` });
      assert.deepEqual((page as Page & { errors: string[] }).errors, [], 'no errors in the page');
    } finally {
      await page.close();
    }
  });

  it('sandbox: a run shared by URL replays the same actions', async () => {
    const page = await newPage();
    try {
      await page.goto(`${pathToFileURL(PAGE).href}#mode=sandbox&seed=42&nodes=5`);
      await fullSpeed(page);
      const first = await waitFor('a leader', 20_000, () => oneLeader(page));
      // Crash the leader by clicking it, as a user would.
      await page.click(`[data-testid="node-${first.id}"]`);
      await waitFor('the leader drawn down', 5_000, async () => ((await roles(page)).get(first.id)?.role === 'down' ? true : undefined));
      const url = page.url();
      assert.match(url, /actions=[^&]*crash/, `the URL records the crash: ${url}`);

      const replay = await newPage();
      try {
        await replay.goto(url);
        await fullSpeed(replay);
        // The same seed and the same crash at the same simulated time: the
        // same node goes down, and the same node leads first.
        await waitFor('the replay to crash the same node', 20_000, async () => ((await roles(replay)).get(first.id)?.role === 'down' ? true : undefined));
        assert.deepEqual((replay as Page & { errors: string[] }).errors, [], 'no errors in the replayed page');
      } finally {
        await replay.close();
      }
    } finally {
      await page.close();
    }
  });
});
