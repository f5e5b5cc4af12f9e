// The guided stories (src/sim/stories.ts), run headless to their end: each
// must finish, break no safety property, and actually show its mechanism
// (asserted on the event log, the timeline and the nodes, not on captions).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { STORIES, Sandbox, createSandbox } from '../../src/sim/sandbox.js';

/** Runs a story to its end (page-like frames), failing if it does not finish. */
function run(id: string, frameMs = 16.7): Sandbox {
  const s = createSandbox({ seed: 0, nodes: 3, story: id }) as Sandbox;
  while (!s.story()!.done && s.now < 15_000 && s.violation() === undefined) s.advance(frameMs);
  const p = s.story()!;
  assert.equal(s.violation(), undefined);
  assert.ok(p.done, `${id} stopped at step ${p.step}/${p.steps} at ${s.now} ms: ${p.captions.at(-1)}`);
  assert.equal(p.captions.length, p.steps);
  for (const c of p.captions) assert.ok(c.length > 0 && c.length < 300, `caption too long: ${c}`);
  return s;
}

const lines = (s: Sandbox, re: RegExp) => s.log().filter((l) => re.test(l));
const vars = (s: Sandbox) => s.vars as Record<string, number>;
const value = (s: Sandbox, id: number, key: string) => s.sim.nodes.get(id)!.sm.read(key);

describe('guided stories', () => {
  it('there are nine, each with a seed, a node count and steps', () => {
    assert.equal(STORIES.length, 9);
    assert.equal(new Set(STORIES.map((s) => s.id)).size, 9);
    for (const s of STORIES) {
      assert.ok(s.title && s.summary && s.steps.length >= 3, s.id);
      assert.ok(s.nodes >= 3 && s.nodes <= 7);
    }
  });

  it('first election: a candidate gets votes from a majority and leads', () => {
    const s = run('first-election');
    const leaders = s.view().members.filter((m) => m.role === 'leader');
    assert.equal(leaders.length, 1);
    assert.ok(lines(s, new RegExp(`→ n${vars(s).candidate} vote granted`)).length >= 1);
    assert.ok(s.timeline().some((e) => e.kind === 'election'));
    assert.ok(s.view().members.every((m) => m.leader === leaders[0]!.id && m.term === leaders[0]!.term));
  });

  it('replication: the write is committed on a majority and applied everywhere', () => {
    const s = run('replication');
    const { index } = vars(s);
    assert.equal(s.requests()[0]!.status, 'ok');
    for (const m of s.view().members) {
      assert.ok(m.appliedIndex >= index!);
      assert.equal(m.log.find((e) => e.index === index)?.label, 'set x=1');
      assert.equal(value(s, Number(m.id), 'x'), '1');
    }
  });

  it('leader crash: a new leader in a higher term keeps the committed write', () => {
    const s = run('leader-crash');
    const { old, leader } = vars(s);
    assert.notEqual(leader, old);
    const t = s.timeline();
    const crash = t.findIndex((e) => e.kind === 'crash' && e.member === String(old));
    const elected = t.findIndex((e, i) => i > crash && e.kind === 'leader' && e.member === String(leader));
    assert.ok(crash >= 0 && elected > crash);
    assert.ok(t[elected]!.term > vars(s).oldTerm!);
    for (const id of [1, 2, 3]) assert.equal(value(s, id, 'x'), '1');
  });

  it('nextIndex: the lagging follower rejects an append and nextIndex moves back', () => {
    const s = run('next-index');
    const { lagging, sentNext, laggingLast, backedOff } = vars(s);
    assert.ok(sentNext! > laggingLast! + 1, `nextIndex ${sentNext} beyond the follower's log (${laggingLast})`);
    assert.ok(lines(s, new RegExp(`n${lagging} → n\\d append rejected`)).length >= 1);
    assert.ok(backedOff! < sentNext! && backedOff! <= laggingLast! + 1, `backed off to ${backedOff}`);
    const views = s.view().members;
    assert.ok(views.every((m) => m.lastIndex === views[0]!.lastIndex));
    assert.equal(value(s, lagging!, 'd'), '4');
  });

  it('up-to-date rule: the stale candidate is refused and never leads', () => {
    const s = run('up-to-date');
    const { stale, staleTerm, newLeader } = vars(s);
    assert.ok(lines(s, new RegExp(`n\\d → n${stale} vote refused \\(term ${staleTerm}\\)`)).length >= 1);
    assert.ok(!s.timeline().some((e) => e.kind === 'leader' && e.member === String(stale)));
    assert.ok(s.timeline().some((e) => e.kind === 'stepDown' && e.member === String(vars(s).leader)));
    assert.notEqual(newLeader, stale);
    assert.equal(value(s, stale!, 'y'), '2');
  });

  it('partition: the minority leader cannot commit; after the heal it steps down and all agree', () => {
    const s = run('partition');
    const { old, leader, xIndex, oldCommitLater } = vars(s);
    assert.notEqual(leader, old);
    assert.ok(oldCommitLater! < xIndex!, `the minority leader committed only up to ${oldCommitLater} < ${xIndex}`);
    const t = s.timeline();
    assert.ok(t.some((e) => e.kind === 'partition') && t.some((e) => e.kind === 'heal'));
    assert.ok(t.some((e) => e.kind === 'stepDown' && e.member === String(old)));
    const r = s.requests();
    assert.ok(r.every((x) => x.status === 'ok'));
    assert.ok(r[1]!.attempts >= 2, 'set x=1 was retried');
    for (const m of s.view().members) {
      assert.equal(value(s, Number(m.id), 'x'), '1');
      assert.equal(value(s, Number(m.id), 'y'), '2');
    }
  });

  it('snapshot: the lagging follower gets InstallSnapshot and installs it', () => {
    const s = run('snapshot');
    const { lagging, snapIndex } = vars(s);
    assert.ok(lines(s, new RegExp(`→ n${lagging} snapshot at \\d+ delivered`)).length >= 1);
    assert.ok(s.timeline().some((e) => e.kind === 'snapshot' && e.member === String(lagging) && e.index! >= snapIndex!));
    assert.ok(s.sim.nodes.get(lagging!)!.storage.snapshotIndex() >= snapIndex!);
    assert.equal(value(s, lagging!, 'z'), '1');
    assert.equal(s.sim.stats.snapshotsInstalled >= 1, true);
  });

  it('joint consensus: C_old,new then C_new, and the old member leaves', () => {
    const s = run('joint');
    const { old, added } = vars(s);
    const confs = s.timeline().filter((e) => e.kind === 'confChange').map((e) => e.detail!);
    const joint = confs.findIndex((d) => d.startsWith('configuration joint'));
    assert.ok(joint >= 0, confs.join(' / '));
    assert.ok(confs[joint]!.includes(`n${old}`) && confs[joint]!.includes(`n${added}`));
    const after = confs.slice(joint + 1).find((d) => d.startsWith('configuration voters'));
    assert.ok(after && after.includes(`n${added}`) && !after.includes(`n${old}`), confs.join(' / '));
    assert.ok(!s.view().members.some((m) => m.id === String(old)));
    assert.ok(s.view().members.find((m) => m.id === String(added))!.voter);
  });

  it('retry: the request is sent twice, logged twice and applied once', () => {
    const s = run('retry');
    const r = s.requests()[0]!;
    assert.equal(r.status, 'ok');
    assert.ok(r.attempts >= 2);
    assert.equal(r.result, '1');
    assert.ok(vars(s).copies! >= 2, 'the retry is a second entry');
    for (const m of s.view().members) assert.equal(value(s, Number(m.id), 'x'), '1');
  });

  it('a story plays the same whatever the frame rate', () => {
    const a = run('partition', 16.7);
    const b = run('partition', 50);
    assert.deepEqual(a.story()!.captions, b.story()!.captions);
    assert.deepEqual(a.timeline(), b.timeline());
  });
});
