// The visualiser's sandbox (src/sim/sandbox.ts): each control does what it
// says on the running simulator, a run replays exactly from its seed and
// recorded actions, and the view stays bounded.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { message } from '../../src/raft/types.js';
import { Sandbox, SandboxError, createSandbox, describeMessageForView } from '../../src/sim/sandbox.js';
import type { ClusterView, MemberView } from '../../src/ui/view.js';

function sandbox(seed = 11, nodes = 3): Sandbox {
  return createSandbox({ seed, nodes }) as Sandbox;
}

function leaderOf(v: ClusterView): MemberView | undefined {
  const leaders = v.members.filter((m) => m.role === 'leader');
  return leaders.sort((a, b) => b.term - a.term)[0];
}

/** Advances until a leader that all running members follow, or fails. */
function settle(s: Sandbox, limitMs = 5000): MemberView {
  const until = s.now + limitMs;
  while (s.now < until) {
    s.advance(20);
    const v = s.view();
    const l = leaderOf(v);
    if (l && l.commitIndex > 0 && v.members.every((m) => m.role === 'down' || m.leader === l.id)) return l;
  }
  assert.fail(`no settled leader within ${limitMs} ms`);
}

function member(s: Sandbox, id: string): MemberView {
  const m = s.view().members.find((x) => x.id === id);
  assert.ok(m, `member ${id} in the view`);
  return m;
}

describe('sandbox controls', () => {
  it('elects a leader on its own, with heartbeats shorter than a few message flights', () => {
    const s = sandbox();
    const l = settle(s);
    assert.ok(s.now < 2000, `elected by ${s.now} ms`);
    assert.ok(s.timeline().some((e) => e.kind === 'leader' && e.member === l.id));
    const v = s.view();
    for (const m of v.messages) {
      const flight = m.deliverAt - m.sentAt;
      assert.ok(flight >= 10 && flight <= 15, `flight of ${flight} ms`);
    }
    assert.equal(s.violation(), undefined);
  });

  it('crash takes a node down: it sends nothing until restarted, then rejoins', () => {
    const s = sandbox();
    const l = settle(s);
    const f = s.view().members.find((m) => m.id !== l.id)!;
    s.crash(f.id);
    const crashedAt = s.now;
    assert.equal(member(s, f.id).role, 'down');
    for (let i = 0; i < 50; i++) {
      s.advance(10);
      assert.ok(!s.view().messages.some((m) => m.from === f.id && m.sentAt >= crashedAt), 'no message from a crashed node');
    }
    // Messages sent to it are drawn as lost.
    assert.ok(s.view().messages.filter((m) => m.to === f.id).every((m) => m.dropped));
    assert.ok(s.timeline().some((e) => e.kind === 'crash' && e.member === f.id));
    s.restart(f.id);
    assert.notEqual(member(s, f.id).role, 'down');
    s.advance(300);
    assert.equal(member(s, f.id).leader, l.id);
    assert.ok(s.timeline().some((e) => e.kind === 'restart' && e.member === f.id));
  });

  it('a cut link drops its messages, one way only; isolating the leader elects another', () => {
    const s = sandbox();
    const l = settle(s);
    const f = s.view().members.find((m) => m.id !== l.id)!;
    s.cutLink(l.id, f.id);
    assert.deepEqual(s.view().cutLinks, [{ from: l.id, to: f.id }]);
    let sawDropped = false;
    let sawReverse = false;
    // The follower hears nothing, times out and campaigns: its votes requests still reach the leader.
    for (let i = 0; i < 50; i++) {
      s.advance(10);
      for (const m of s.view().messages) {
        if (m.from === l.id && m.to === f.id) {
          assert.equal(m.dropped, true);
          sawDropped = true;
        }
        if (m.from === f.id && m.to === l.id && !m.dropped) sawReverse = true;
      }
    }
    assert.ok(sawDropped, 'messages on the cut link are drawn dropped');
    assert.ok(sawReverse, 'the other direction still works');
    s.restoreLink(l.id, f.id);
    assert.deepEqual(s.view().cutLinks, []);

    s.isolate([l.id]);
    assert.equal(s.view().cutLinks.length, 4);
    const until = s.now + 3000;
    while (s.now < until && !s.view().members.some((m) => m.role === 'leader' && m.id !== l.id)) s.advance(20);
    const other = s.view().members.find((m) => m.role === 'leader' && m.id !== l.id);
    assert.ok(other, 'the majority elects a new leader');
    assert.ok(other.term > l.term);
    s.heal();
    assert.deepEqual(s.view().cutLinks, []);
    assert.ok(s.timeline().some((e) => e.kind === 'partition') && s.timeline().some((e) => e.kind === 'heal'));
  });

  it('message loss drops that share of messages', () => {
    const s = sandbox();
    settle(s);
    s.setLoss(0.5);
    let total = 0;
    let dropped = 0;
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) {
      s.advance(5);
      for (const m of s.view().messages) {
        if (seen.has(m.key)) continue;
        seen.add(m.key);
        total++;
        if (m.dropped) dropped++;
      }
    }
    assert.ok(total > 100, `${total} messages`);
    assert.ok(dropped / total > 0.3 && dropped / total < 0.7, `${dropped} of ${total} lost`);
    assert.throws(() => s.setLoss(1), SandboxError);
    assert.throws(() => s.setLoss(-0.1), SandboxError);
  });

  it('a request is applied everywhere and answered; with no majority it fails', () => {
    const s = sandbox();
    const l = settle(s);
    const f = s.view().members.find((m) => m.id !== l.id)!;
    const id = s.request({ op: 'set', key: 'x', value: '7' }, f.id);
    assert.equal(s.requests()[0]!.status, 'pending');
    s.advance(500);
    const r = s.requests().find((x) => x.id === id)!;
    assert.equal(r.status, 'ok');
    assert.equal(r.sentTo, f.id);
    assert.equal(r.attempts, 1);
    assert.ok(r.answeredAt! > r.sentAt);
    for (const m of s.view().members) {
      assert.equal(s.sim.nodes.get(Number(m.id))!.sm.read('x'), '7');
      assert.ok(m.log.some((e) => e.label === 'set x=7'));
    }
    const inc = s.request({ op: 'inc', key: 'x' });
    s.advance(500);
    assert.equal(s.requests().find((x) => x.id === inc)!.result, '8');

    for (const m of s.view().members.filter((x) => x.id !== l.id)) s.crash(m.id);
    const lost = s.request({ op: 'set', key: 'y', value: '1' }, l.id);
    s.advance(7000);
    const failed = s.requests().find((x) => x.id === lost)!;
    assert.equal(failed.status, 'failed');
    assert.ok(failed.attempts >= 2, 'retried before giving up');
    assert.throws(() => s.request({ op: 'set', key: '', value: '1' }), SandboxError);
  });

  it('addNode adds a learner, then promotes it; removeNode removes a member', () => {
    const s = sandbox();
    settle(s);
    const id = s.addNode();
    assert.equal(id, '4');
    assert.equal(s.view().members.length, 4);
    let sawLearner = false;
    const until = s.now + 3000;
    while (s.now < until && !member(s, id).voter) {
      s.advance(10);
      if (member(s, id).role === 'learner') sawLearner = true;
    }
    assert.ok(sawLearner, 'a learner first');
    assert.ok(member(s, id).voter, 'then a voter');
    const l = leaderOf(s.view())!;
    assert.equal(l.progress!.length, 3);
    const labels = l.log.map((e) => e.label);
    assert.ok(labels.includes('learner 4') && labels.includes('add 4'), labels.join('|'));

    const victim = s.view().members.find((m) => m.id !== l.id && m.id !== id)!.id;
    s.removeNode(victim);
    s.advance(1000);
    assert.deepEqual(
      s.view().members.map((m) => m.id).sort(),
      ['1', '2', '3', '4'].filter((x) => x !== victim),
    );
    assert.ok(leaderOf(s.view())!.log.some((e) => e.label === `remove ${victim}`));
    assert.throws(() => s.crash(victim), SandboxError);
    assert.equal(s.violation(), undefined);
  });

  it('transferLeader hands leadership over with MsgTimeoutNow', () => {
    const s = sandbox();
    const l = settle(s);
    const to = s.view().members.find((m) => m.id !== l.id)!.id;
    s.transferLeader(to);
    let sawTimeoutNow = false;
    for (let i = 0; i < 50 && leaderOf(s.view())?.id !== to; i++) {
      s.advance(5);
      if (s.view().messages.some((m) => m.kind === 'timeoutNow' && m.to === to)) sawTimeoutNow = true;
    }
    assert.ok(sawTimeoutNow);
    assert.equal(leaderOf(s.view())!.id, to);
  });

  it('snapshot compacts the node log; campaign starts an election now', () => {
    const s = sandbox();
    const l = settle(s);
    s.request({ op: 'set', key: 'k', value: 'v' });
    s.advance(400);
    s.snapshot(l.id);
    const after = member(s, l.id);
    assert.equal(after.snapshotIndex, after.appliedIndex);
    assert.ok(after.log.every((e) => e.index > after.snapshotIndex));
    assert.ok(s.timeline().some((e) => e.kind === 'snapshot' && e.member === l.id && e.index === after.snapshotIndex));

    const f = s.view().members.find((m) => m.id !== l.id)!;
    s.campaign(f.id);
    const c = member(s, f.id);
    assert.equal(c.role, 'candidate');
    assert.equal(c.term, l.term + 1);
    assert.ok(s.timeline().some((e) => e.kind === 'election' && e.member === f.id && e.term === l.term + 1));
  });

  it('rejects bad input with a SandboxError', () => {
    assert.throws(() => createSandbox({ seed: 1, nodes: 2 }), SandboxError);
    assert.throws(() => createSandbox({ seed: 1, nodes: 8 }), SandboxError);
    assert.throws(() => createSandbox({ seed: 1, nodes: 3, story: 'nope' }), SandboxError);
    const s = sandbox();
    assert.throws(() => s.crash('n9'), SandboxError);
    assert.throws(() => s.cutLink('1', '1'), SandboxError);
    assert.throws(() => s.advance(-1), SandboxError);
    assert.doesNotThrow(() => s.crash('n2'));
    assert.equal(s.actions().length, 1, 'refused actions are not recorded');
  });
});

describe('sandbox replay', () => {
  /** A run with user actions between irregular frames, and steps. */
  function play(): Sandbox {
    const s = sandbox(21, 5);
    const frames = [16.7, 33.3, 8.1, 16.6, 50];
    let f = 0;
    const frame = () => s.advance(frames[f++ % frames.length]!);
    while (s.now < 800) frame();
    s.request({ op: 'set', key: 'a', value: '1' });
    for (let i = 0; i < 10; i++) frame();
    s.crash('2');
    s.cutLink('1', '3');
    for (let i = 0; i < 7; i++) s.stepEvent();
    s.request({ op: 'inc', key: 'a' }, '4');
    s.setLoss(0.2);
    for (let i = 0; i < 30; i++) frame();
    s.isolate(['5']);
    s.stepEvent();
    s.campaign('5');
    for (let i = 0; i < 30; i++) frame();
    s.heal();
    s.restart('2');
    s.addNode();
    for (let i = 0; i < 60; i++) frame();
    return s;
  }

  it('the same seed and actions give the same run', () => {
    const a = play();
    const b = play();
    assert.equal(a.sim.trace.digest(), b.sim.trace.digest());
    assert.deepEqual(a.view(), b.view());
  });

  it('replaying the recorded actions reproduces the run exactly', () => {
    const a = play();
    const actions = a.actions();
    assert.ok(actions.length >= 10);
    const b = createSandbox({ seed: 21, nodes: 5, actions }) as Sandbox;
    // Different frames: the replay does not depend on how the page paces it.
    while (b.now + 100 <= a.now) b.advance(100);
    b.advance(a.now - b.now);
    assert.equal(b.now, a.now);
    assert.equal(b.sim.trace.digest(), a.sim.trace.digest());
    assert.deepEqual(b.view(), a.view());
    assert.deepEqual(b.requests(), a.requests());
    assert.deepEqual(b.timeline(), a.timeline());
    assert.deepEqual(b.actions(), actions);
    // And the actions survive a URL: JSON round trip.
    const c = createSandbox({ seed: 21, nodes: 5, actions: JSON.parse(JSON.stringify(actions)) }) as Sandbox;
    c.advance(a.now);
    assert.equal(c.sim.trace.digest(), a.sim.trace.digest());
  });

  it('a different seed gives a different run', () => {
    const a = sandbox(1);
    const b = sandbox(2);
    a.advance(1000);
    b.advance(1000);
    assert.notEqual(a.sim.trace.digest(), b.sim.trace.digest());
  });
});

describe('sandbox view', () => {
  it('stepEvent processes one event and describes it', () => {
    const s = sandbox();
    const before = s.sim.stats.events;
    const line = s.stepEvent()!;
    assert.equal(s.sim.stats.events, before + 1);
    assert.match(line, /^t=[\d.]+ms n\d tick/);
    settle(s);
    let delivery: string | undefined;
    for (let i = 0; i < 200 && !delivery; i++) {
      const d = s.stepEvent()!;
      if (/n\d → n\d Msg/.test(d)) delivery = d;
    }
    assert.ok(delivery, 'a delivery is described');
  });

  it('stays bounded: log tails, messages, event log', () => {
    const s = sandbox(5, 7);
    settle(s);
    for (let i = 0; i < 60; i++) {
      s.request({ op: 'set', key: `k${i % 3}`, value: String(i) });
      s.advance(30);
    }
    s.advance(3000);
    const v = s.view();
    assert.ok(v.members.every((m) => m.log.length <= 30));
    assert.ok(v.members.some((m) => m.log.length === 30 && m.lastIndex > 60));
    assert.ok(v.messages.length < 100, `${v.messages.length} messages in flight`);
    assert.ok(s.log().length <= 300);
    assert.ok(s.requests().every((r) => r.status === 'ok'));
    const t0 = performance.now();
    for (let i = 0; i < 60; i++) s.view();
    assert.ok(performance.now() - t0 < 200, 'a second of frames costs little');
  });

  it('classifies messages by kind, with short labels', () => {
    const e = { index: 5, term: 2, type: 'normal' as const, data: new Uint8Array() };
    const cases: [Parameters<typeof message>[0], string, RegExp][] = [
      [{ type: 'MsgVote', from: 1, to: 2, term: 3, index: 7, logTerm: 2 }, 'vote', /vote for n1, term 3, last 7@2/],
      [{ type: 'MsgPreVote', from: 1, to: 2, term: 3 }, 'vote', /pre-vote/],
      [{ type: 'MsgVoteResp', from: 2, to: 1, term: 3, reject: true }, 'voteResponse', /refused/],
      [{ type: 'MsgPreVoteResp', from: 2, to: 1, term: 3 }, 'voteResponse', /granted/],
      [{ type: 'MsgApp', from: 1, to: 2, term: 2, index: 4, logTerm: 2, commit: 4, entries: [e] }, 'append', /append 5 after 4@2, commit 4/],
      [{ type: 'MsgApp', from: 1, to: 2, term: 2, index: 4, logTerm: 2 }, 'heartbeat', /empty/],
      [{ type: 'MsgHeartbeat', from: 1, to: 2, term: 2, commit: 3 }, 'heartbeat', /heartbeat, commit 3/],
      [{ type: 'MsgAppResp', from: 2, to: 1, term: 2, index: 7 }, 'appendResponse', /ok index 7/],
      [{ type: 'MsgAppResp', from: 2, to: 1, term: 2, index: 7, reject: true, rejectHint: 3 }, 'appendResponse', /reject 7 \(hint 3\)/],
      [{ type: 'MsgHeartbeatResp', from: 2, to: 1, term: 2 }, 'appendResponse', /heartbeat ok/],
      [{ type: 'MsgTimeoutNow', from: 1, to: 2, term: 2 }, 'timeoutNow', /timeout/],
      [{ type: 'MsgProp', from: 2, to: 1, term: 0, entries: [e] }, 'other', /forward 1 proposal/],
    ];
    for (const [fields, kind, label] of cases) {
      const d = describeMessageForView(message(fields));
      assert.equal(d.kind, kind, fields.type);
      assert.match(d.label, label);
    }
  });
});

describe('the simulator stays browser-safe', () => {
  it('src/sim uses no Node.js APIs', () => {
    let dir = dirname(fileURLToPath(import.meta.url));
    while (!existsSync(join(dir, 'src', 'sim', 'sandbox.ts'))) dir = dirname(dir);
    const simDir = join(dir, 'src', 'sim');
    for (const file of readdirSync(simDir).filter((f) => f.endsWith('.ts'))) {
      const src = readFileSync(join(simDir, file), 'utf8');
      assert.doesNotMatch(src, /from 'node:|\bBuffer\.|\bprocess\./, file);
    }
  });
});
