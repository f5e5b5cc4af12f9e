// The visualiser's live feed (src/server/uiFeed.ts) and page (src/server/uiStatic.ts):
// the remembered timeline's bounds, Server-Sent Events framing, the
// MemberView built from a node's status (roles, progress, log tail labels),
// message rates, the stream over real HTTP (hello, statuses, events,
// disconnects, a slow client), and the static files (types, caching, no
// path traversal, the "not built" answer).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { encodeCommand } from '../../src/kv/index.js';
import { rangeRequest } from '../../src/kv/types.js';
import type { NodeStatus } from '../../src/node/node.js';
import { encodeEnvelope } from '../../src/node/envelope.js';
import { encodeConfChange } from '../../src/raft/confchange.js';
import type { ProgressStatus } from '../../src/raft/rawNode.js';
import type { Entry } from '../../src/raft/types.js';
import { httpRoutes } from '../../src/server/listen.js';
import type { Logger } from '../../src/server/log.js';
import { MemberTable, ServerStateMachine, describeCommand } from '../../src/server/stateMachine.js';
import { RateMeter, TimelineHistory, UiFeed, buildMemberView, entryView, sseFrame } from '../../src/server/uiFeed.js';
import { UI_NOT_BUILT, resolveUiPath, uiStaticRoutes } from '../../src/server/uiStatic.js';
import type { FeedMessage, MemberView, TimelineEvent } from '../../src/ui/view.js';
import { openStream } from '../fixtures/sse.js';

const event = (time: number, term = 1): TimelineEvent => ({ time, kind: 'leader', member: 'a', term });

describe('TimelineHistory', () => {
  it('keeps the newest maxEvents events, oldest first, across wrap-arounds', () => {
    const h = new TimelineHistory({ maxEvents: 3 });
    for (let t = 1; t <= 7; t++) h.add(event(t));
    assert.equal(h.size, 3);
    assert.deepEqual(h.list(8).map((e) => e.time), [5, 6, 7]);
    h.add(event(8));
    assert.deepEqual(h.list(8).map((e) => e.time), [6, 7, 8]);
  });

  it('forgets events older than retainMs and keeps the rest', () => {
    const h = new TimelineHistory({ retainMs: 1000, maxEvents: 100 });
    for (const t of [0, 100, 500, 999, 1500]) h.add(event(t));
    assert.deepEqual(h.list(1500).map((e) => e.time), [500, 999, 1500]);
    assert.deepEqual(h.list(2499).map((e) => e.time), [1500]);
    assert.equal(h.size, 1);
    assert.deepEqual(h.list(2501), []);
    h.add(event(2600));
    assert.deepEqual(h.list(2600).map((e) => e.time), [2600]);
  });

  it('covers an hour and 20,000 events by default, and refuses nonsense bounds', () => {
    const h = new TimelineHistory();
    assert.equal(h.retainMs, 3_600_000);
    assert.equal(h.maxEvents, 20_000);
    for (let i = 0; i < 20_005; i++) h.add(event(i));
    assert.equal(h.size, 20_000);
    assert.equal(h.list(20_005)[0]!.time, 5);
    assert.throws(() => new TimelineHistory({ maxEvents: 0 }), RangeError);
    assert.throws(() => new TimelineHistory({ retainMs: 0 }), RangeError);
  });
});

describe('sseFrame', () => {
  it('puts one message on one data line, whatever its strings hold', () => {
    const msg: FeedMessage = { type: 'event', event: { time: 1, kind: 'crash', member: 'a', term: 2, detail: 'line one\nline two\r\n\u2028' } };
    const frame = sseFrame(msg);
    assert.ok(frame.startsWith('data: '));
    assert.ok(frame.endsWith('\n\n'));
    const lines = frame.slice(0, -2).split(/\r\n|\r|\n/);
    assert.equal(lines.length, 1);
    assert.deepEqual(JSON.parse(lines[0]!.slice('data: '.length)), msg);
  });
});

// ---------------------------------------------------------------------------

const sm = new ServerStateMachine(new MemberTable([]));
const kvEntry = (index: number, term: number, op: Parameters<typeof encodeCommand>[0]['op']): Entry => ({
  index,
  term,
  type: 'normal',
  data: encodeEnvelope({ proposer: 1, nonce: 1, seq: index }, sm.encodeKv({ op, time: 1 })),
});
const key = (s: string) => Buffer.from(s);

function status(fields: Partial<NodeStatus> = {}): NodeStatus {
  return {
    id: 0x8e9e05c52164,
    role: 'follower',
    term: 3,
    vote: 0,
    leader: 0,
    commit: 5,
    applied: 4,
    firstIndex: 1,
    lastIndex: 6,
    lastTerm: 3,
    snapshotIndex: 0,
    leadTransferee: 0,
    confState: { voters: [0x8e9e05c52164, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    progress: undefined,
    state: 'running',
    ...fields,
  };
}

const view = (st: NodeStatus, logTail: Entry[] = []): MemberView =>
  buildMemberView({ name: 'infra1', status: st, electionTimer: { elapsed: 4, timeout: 17 }, logTail, describeCommand });

describe('buildMemberView', () => {
  it("labels the log tail: commands, the new leader's empty entry, membership changes, member publications", () => {
    const tail: Entry[] = [
      { index: 1, term: 1, type: 'confChange', data: encodeConfChange({ transition: 'auto', changes: [{ type: 'addNode', nodeId: 0x1e9e05c5216469 }] }) },
      { index: 2, term: 1, type: 'confChange', data: encodeConfChange({ transition: 'auto', changes: [{ type: 'addLearner', nodeId: 0xabc }, { type: 'removeNode', nodeId: 0x1f }] }) },
      { index: 3, term: 2, type: 'normal', data: new Uint8Array(0) },
      kvEntry(4, 2, { type: 'put', request: { key: key('foo'), value: key('1'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } }),
      kvEntry(5, 2, { type: 'deleteRange', request: { key: key('foo'), rangeEnd: new Uint8Array(0), prevKv: false } }),
      kvEntry(6, 3, { type: 'deleteRange', request: { key: key('a'), rangeEnd: key('b'), prevKv: false } }),
      kvEntry(7, 3, { type: 'increment', request: { key: key('visits'), delta: 1 } }),
      kvEntry(8, 3, { type: 'txn', request: { compare: [], success: [{ requestRange: rangeRequest({ key: key('x') }) }], failure: [] } }),
      kvEntry(9, 3, { type: 'compact', request: { revision: 42, physical: false } }),
      kvEntry(10, 3, { type: 'put', request: { key: key('a-very-long-key-name-that-goes-on-and-on'), value: key(''), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } }),
      { index: 11, term: 3, type: 'normal', data: encodeEnvelope({ proposer: 1, nonce: 1, seq: 1 }, sm.encodeMember({ id: 2, name: 'infra2', clientURLs: [] })) },
      { index: 12, term: 3, type: 'normal', data: encodeEnvelope({ proposer: 1, nonce: 1, seq: 1 }, Uint8Array.of(1, 99, 0)) },
      { index: 13, term: 3, type: 'normal', data: Uint8Array.of(7, 7) },
    ];
    const log = view(status(), tail).log;
    assert.deepEqual(
      log.map((e) => [e.index, e.term, e.kind, e.label]),
      [
        [1, 1, 'conf', `add ${(0x1e9e05c5216469).toString(16)}`],
        [2, 1, 'conf', 'add learner abc, remove 1f'],
        [3, 2, 'empty', undefined],
        [4, 2, 'normal', 'put foo'],
        [5, 2, 'normal', 'del foo'],
        [6, 3, 'normal', 'del a…'],
        [7, 3, 'normal', 'inc visits'],
        [8, 3, 'normal', 'txn'],
        [9, 3, 'normal', 'compact 42'],
        [10, 3, 'normal', 'put a-very-long-key-name-th…'],
        [11, 3, 'normal', 'publish infra2'],
        // Undecodable bytes get no label rather than an error.
        [12, 3, 'normal', undefined],
        [13, 3, 'normal', undefined],
      ],
    );
    assert.ok(!('label' in log[2]!), 'an absent label is left out of the JSON');
  });

  it("reports a follower's state with ids in hex and no progress", () => {
    const v = view(status({ vote: 2, leader: 0x1f }));
    assert.equal(v.id, '8e9e05c52164');
    assert.equal(v.name, 'infra1');
    assert.equal(v.role, 'follower');
    assert.equal(v.vote, '2');
    assert.equal(v.leader, '1f');
    assert.deepEqual([v.term, v.commitIndex, v.appliedIndex, v.lastIndex, v.lastTerm, v.snapshotIndex], [3, 5, 4, 6, 3, 0]);
    assert.deepEqual([v.electionElapsed, v.electionTimeout], [4, 17]);
    assert.equal(v.voter, true);
    assert.equal(v.progress, undefined);
    const nobody = view(status());
    assert.equal(nobody.vote, undefined);
    assert.equal(nobody.leader, undefined);
  });

  it("gives a leader's progress for every other member", () => {
    const pr = (matchIndex: number, state: ProgressStatus['state']): ProgressStatus => ({
      matchIndex,
      nextIndex: matchIndex + 1,
      state,
      paused: false,
      inflight: 0,
      recentActive: state !== 'probe',
      isLearner: false,
      pendingSnapshot: 0,
    });
    const self = 0x8e9e05c52164;
    const v = view(
      status({
        role: 'leader',
        leader: self,
        vote: self,
        progress: new Map([
          [self, pr(6, 'replicate')],
          [2, pr(5, 'replicate')],
          [3, pr(0, 'probe')],
        ]),
      }),
    );
    assert.equal(v.role, 'leader');
    assert.deepEqual(v.progress, [
      { id: '2', matchIndex: 5, nextIndex: 6, state: 'replicate', recentActive: true },
      { id: '3', matchIndex: 0, nextIndex: 1, state: 'probe', recentActive: false },
    ]);
  });

  it("draws a learner as a learner (not a voter) and a stopped member as down", () => {
    const learner = view(status({ confState: { voters: [2, 3], learners: [0x8e9e05c52164], votersOutgoing: [], learnersNext: [], autoLeave: false } }));
    assert.equal(learner.role, 'learner');
    assert.equal(learner.voter, false);
    assert.equal(view(status({ state: 'failed', role: 'leader' })).role, 'down');
    assert.equal(view(status({ role: 'candidate' })).role, 'candidate');
    assert.equal(view(status({ role: 'preCandidate' })).role, 'preCandidate');
  });

  it('entryView of an entry that is no envelope leaves the label out', () => {
    assert.deepEqual(entryView({ index: 1, term: 1, type: 'normal', data: Uint8Array.of(1, 2) }, () => 'never'), { index: 1, term: 1, kind: 'normal' });
  });
});

describe('RateMeter', () => {
  it('gives messages per second per peer over the last window; a counter that went down restarts', () => {
    const m = new RateMeter('a', 1000);
    assert.deepEqual(m.sample(0, new Map([['b', 0]])), [{ from: 'a', to: 'b', perSecond: 0 }]);
    assert.deepEqual(m.sample(500, new Map([['b', 5], ['c', 3]])), [
      { from: 'a', to: 'b', perSecond: 10 },
      { from: 'a', to: 'c', perSecond: 0 },
    ]);
    m.sample(1000, new Map([['b', 10], ['c', 13]]));
    // The base is the newest sample at or before the window's start (250): the one at 0, which knew no c.
    assert.deepEqual(m.sample(1250, new Map([['b', 15], ['c', 13]])), [
      { from: 'a', to: 'b', perSecond: 12 },
      { from: 'a', to: 'c', perSecond: 0 },
    ]);
    // Window start 600: the base moves to 500; b sent 15 in 1.1 s, c 10.
    assert.deepEqual(m.sample(1600, new Map([['b', 20], ['c', 13]])), [
      { from: 'a', to: 'b', perSecond: 13.6 },
      { from: 'a', to: 'c', perSecond: 9.1 },
    ]);
    assert.deepEqual(m.sample(1700, new Map([['b', 2]])), [{ from: 'a', to: 'b', perSecond: 0 }]);
  });
});

// ---------------------------------------------------------------------------
// The stream over HTTP

interface LogLine {
  readonly level: string;
  readonly obj: Record<string, unknown>;
  readonly msg: string;
}

function capturingLogger(lines: LogLine[]): Logger {
  const at =
    (level: string) =>
    (obj: object, msg: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('UiFeed over HTTP', () => {
  let server: http.Server;
  let base: string;
  let feed: UiFeed;
  let big = false;
  let sent = 0;
  const logs: LogLine[] = [];

  before(async () => {
    const history = new TimelineHistory();
    history.add({ time: Date.now() - 10_000, kind: 'restart', member: '1', term: 0, detail: 'started' });
    feed = new UiFeed({
      memberId: 1,
      name: 'infra1',
      startedAt: 1234,
      log: capturingLogger(logs),
      history,
      intervalMs: 20,
      maxClientBacklogBytes: 1024 * 1024,
      view: () => ({ ...view(status({ id: 1 })), name: big ? 'x'.repeat(256 * 1024) : 'infra1' }),
      sentCounts: () => new Map([['2', (sent += 3)]]),
      peers: () => [{ id: '1', name: 'infra1', clientURLs: ['http://127.0.0.1:2379'] }],
    });
    server = httpRoutes({ '/ui/events': (req, res) => feed.handle(req, res) });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    feed.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('opens with hello (member, peers, history) and a status, then statuses with rates, to any origin', async () => {
    const s = await openStream(`${base}/ui/events`);
    try {
      assert.equal(s.res.statusCode, 200);
      assert.match(s.res.headers['content-type']!, /^text\/event-stream/);
      assert.equal(s.res.headers['access-control-allow-origin'], '*');
      assert.equal(s.res.headers['cache-control'], 'no-cache, no-transform');
      await s.until((m) => m.filter((x) => x.type === 'status').length >= 4);
      const hello = s.messages[0]!;
      assert.equal(hello.type, 'hello');
      if (hello.type !== 'hello') return;
      assert.equal(hello.member, '1');
      assert.equal(hello.name, 'infra1');
      assert.equal(hello.startedAt, 1234);
      assert.deepEqual(hello.peers, [{ id: '1', name: 'infra1', clientURLs: ['http://127.0.0.1:2379'] }]);
      assert.deepEqual(hello.history.map((e) => e.detail), ['started']);
      const statuses = s.messages.filter((m) => m.type === 'status');
      for (const st of statuses) if (st.type === 'status') assert.equal(st.member.id, '1');
      const last = statuses.at(-1)!;
      assert.ok(last.type === 'status' && last.rates.length === 1 && last.rates[0]!.to === '2' && last.rates[0]!.perSecond > 0, JSON.stringify(last));
      assert.ok(s.lines.includes('retry: 1000'));
    } finally {
      s.close();
    }
  });

  it('sends events to every client as they are recorded, and remembers them for the next hello', async () => {
    const a = await openStream(`${base}/ui/events`);
    const b = await openStream(`${base}/ui/events`);
    try {
      await a.until((m) => m.length >= 2);
      await b.until((m) => m.length >= 2);
      assert.equal(feed.clientCount, 2);
      feed.record({ kind: 'leader', member: '2', term: 7, detail: 'leader of term 7' });
      const isLeader = (m: FeedMessage[]) => m.some((x) => x.type === 'event' && x.event.kind === 'leader' && x.event.term === 7);
      await a.until(isLeader);
      await b.until(isLeader);
    } finally {
      a.close();
      b.close();
    }
    const c = await openStream(`${base}/ui/events`);
    try {
      await c.until((m) => m.length >= 1);
      const hello = c.messages[0]!;
      assert.ok(hello.type === 'hello' && hello.history.some((e) => e.kind === 'leader' && e.term === 7 && typeof e.time === 'number'));
    } finally {
      c.close();
    }
  });

  it('forgets a client that disconnects, and stops its timers when none is left', async () => {
    const s = await openStream(`${base}/ui/events`);
    await s.until((m) => m.length >= 2);
    s.close();
    const deadline = Date.now() + 2000;
    while (feed.clientCount > 0 && Date.now() < deadline) await sleep(10);
    assert.equal(feed.clientCount, 0);
    assert.ok(logs.some((l) => l.level === 'debug' && l.msg === 'visualiser client disconnected'));
  });

  it('skips statuses for a client that does not read, and cuts it off when events back up too far', async () => {
    big = true;
    logs.length = 0;
    const s = await openStream(`${base}/ui/events`);
    try {
      s.res.pause();
      // 256 KiB statuses every 20 ms fill the socket buffers of a client that does not read.
      await sleep(600);
      for (let i = 0; i < 10 && feed.clientCount > 0; i++) {
        feed.record({ kind: 'snapshot', member: '1', term: 1, index: i, detail: 'y'.repeat(256 * 1024) });
        await sleep(5);
      }
      const deadline = Date.now() + 2000;
      while (feed.clientCount > 0 && Date.now() < deadline) await sleep(10);
      assert.equal(feed.clientCount, 0, 'the slow client was disconnected');
      assert.ok(logs.some((l) => l.msg === 'visualiser client too slow: disconnecting it'));
      const bye = logs.find((l) => l.msg === 'visualiser client disconnected');
      assert.ok(bye !== undefined && (bye.obj.droppedStatuses as number) > 0, JSON.stringify(bye?.obj));
    } finally {
      big = false;
      s.close();
    }
  });

  it('takes GET only', async () => {
    const res = await fetch(`${base}/ui/events`, { method: 'POST' });
    assert.equal(res.status, 405);
    await res.text();
  });
});

// ---------------------------------------------------------------------------
// The page

function rawGet(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  // http.request sends the path as given: no client-side dot-segment normalisation.
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('the page at /ui/', () => {
  let dir: string;
  let server: http.Server;
  let base: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'raftkv-ui-'));
    mkdirSync(join(dir, 'ui', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'ui', 'index.html'), '<!doctype html><title>raftkv</title>');
    writeFileSync(join(dir, 'ui', 'app.js'), 'console.log(1)');
    writeFileSync(join(dir, 'ui', 'app.css'), 'body{}');
    writeFileSync(join(dir, 'ui', 'assets', 'logo.svg'), '<svg/>');
    writeFileSync(join(dir, 'secret.txt'), 'do not serve');
    server = httpRoutes({ ...uiStaticRoutes(join(dir, 'ui')), '/other/': (_q, r) => void r.end('other') });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('redirects /ui to /ui/ and serves index.html and the bundle with their content types', async () => {
    const r = await rawGet(base, '/ui');
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, '/ui/');
    const index = await rawGet(base, '/ui/');
    assert.equal(index.status, 200);
    assert.equal(index.body, '<!doctype html><title>raftkv</title>');
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.equal(index.headers['access-control-allow-origin'], undefined);
    assert.equal((await rawGet(base, '/ui/index.html')).body, index.body);
    assert.equal((await rawGet(base, '/ui/app.js')).headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal((await rawGet(base, '/ui/app.css')).headers['content-type'], 'text/css; charset=utf-8');
    const svg = await rawGet(base, '/ui/assets/logo.svg');
    assert.equal(svg.status, 200);
    assert.equal(svg.headers['content-type'], 'image/svg+xml');
  });

  it('answers 304 to a revalidation of an unchanged file', async () => {
    const first = await rawGet(base, '/ui/app.js');
    const again = await rawGet(base, '/ui/app.js', { 'if-none-match': first.headers.etag! });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
  });

  it('never serves a file outside the directory', async () => {
    for (const path of ['/ui/..%2fsecret.txt', '/ui/%2e%2e%2fsecret.txt', '/ui/assets/..%2f..%2fsecret.txt', '/ui/..%5csecret.txt', '/ui/%00index.html', '/ui/%E0%A4%A']) {
      const r = await rawGet(base, path);
      assert.equal(r.status, 400, path);
      assert.doesNotMatch(r.body, /do not serve/);
    }
    // Dot segments the URL parser resolves leave /ui/ altogether.
    for (const path of ['/ui/../secret.txt', '/ui/%2e%2e/secret.txt', '/ui/assets/../../secret.txt']) {
      const r = await rawGet(base, path);
      assert.equal(r.status, 404, path);
      assert.doesNotMatch(r.body, /do not serve/);
    }
    assert.equal(resolveUiPath('/srv/ui', '/ui/a/b.js'), '/srv/ui/a/b.js');
    assert.equal(resolveUiPath('/srv/ui', '/ui/'), '/srv/ui/index.html');
    assert.equal(resolveUiPath('/srv/ui', '/ui/..%2fui2/x'), undefined);
    assert.equal(resolveUiPath('/srv/ui', '/ui/%2fetc%2fpasswd'), undefined);
  });

  it('answers 404 for a missing file and a directory, 405 for other methods', async () => {
    assert.equal((await rawGet(base, '/ui/nope.js')).status, 404);
    assert.equal((await rawGet(base, '/ui/assets')).status, 404);
    const post = await fetch(`${base}/ui/app.js`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.text();
  });

  it('says how to build the page when it is not built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'raftkv-ui-empty-'));
    const s = httpRoutes(uiStaticRoutes(join(empty, 'ui')));
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    try {
      const r = await rawGet(`http://127.0.0.1:${(s.address() as AddressInfo).port}`, '/ui/');
      assert.equal(r.status, 404);
      assert.equal(r.body, UI_NOT_BUILT);
      assert.match(r.body, /the visualiser is not built: run npm run build/);
    } finally {
      await new Promise<void>((resolve) => s.close(() => resolve()));
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
