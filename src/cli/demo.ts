// `raftkv demo` (`npm run demo`): a simulated
// 5-node cluster in real time in the terminal. The real Raft core runs in
// the deterministic simulator, with clients writing and reading while nodes
// crash and restart and the network drops messages and partitions; each
// node has a live status line, notable events scroll below, and every
// safety invariant is checked after every event.

import { randomInt } from 'node:crypto';
import { type FaultKind, type SimOptions, type TraceRecord, Simulator, TICK_US, formatRecord, parseFaults } from '../sim/index.js';
import { type FlagSpec, UsageError, formatHelp, parseFlags } from './args.js';

const DEMO_FLAGS: Record<string, FlagSpec> = {
  seed: { kind: 'integer', help: 'seed (the same seed replays the same run)', default: 'random' },
  nodes: { kind: 'integer', help: 'nodes, 1 to 9', default: '5' },
  speed: { kind: 'integer', help: 'simulated ticks per second of real time (a tick is 10 ms)', default: '20' },
  faults: { kind: 'string', help: 'all, none, or a list (see raftkv sim --help)', default: 'crash,partition,loss,reorder,transfer,snapshot' },
  duration: { kind: 'integer', help: 'stop after this many seconds (default: run until Ctrl-C)' },
  help: { kind: 'boolean', help: 'show this help' },
};

/** Events worth showing in the feed (ticks and messages are too many). */
const NOTABLE = new Set<TraceRecord['kind']>(['role', 'crash', 'restart', 'partition', 'heal', 'conf', 'transfer', 'snapshot', 'violation']);

const color = (code: number, s: string, on: boolean) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

export async function demoCommand(argv: readonly string[]): Promise<number> {
  const f = parseFlags(argv, DEMO_FLAGS, 'demo');
  if (f.help) {
    process.stdout.write(formatHelp('usage: raftkv demo [--seed N] [--nodes N] [--speed N] [--duration S]', DEMO_FLAGS));
    return 0;
  }
  const nodes = (f.nodes as number | undefined) ?? 5;
  if (nodes < 1 || nodes > 9) throw new UsageError(`demo: --nodes must be 1 to 9, got ${nodes}`);
  const speed = (f.speed as number | undefined) ?? 20;
  if (speed < 1) throw new UsageError(`demo: --speed must be at least 1, got ${speed}`);
  let faults: Set<FaultKind>;
  try {
    faults = parseFaults((f.faults as string | undefined) ?? 'crash,partition,loss,reorder,transfer,snapshot');
  } catch (e) {
    throw new UsageError(`demo: ${(e as Error).message}`);
  }
  const seed = (f.seed as number | undefined) ?? randomInt(1, 1_000_000);
  const duration = f.duration as number | undefined;
  const tty = process.stdout.isTTY === true;
  const feed: string[] = [];
  const options: SimOptions = {
    seed,
    nodes,
    // Long enough never to reach the heal phase: the weather never clears.
    ticks: 100_000_000,
    faults,
    swarm: false, // the faults named are the faults shown
    clients: 4,
    electionTick: 10,
    heartbeatTick: 1,
    traceBuffer: 64,
    onTrace: (rec) => {
      if (!NOTABLE.has(rec.kind)) return;
      const line = formatRecord(rec);
      if (tty) {
        feed.push(line);
        if (feed.length > 12) feed.shift();
      } else {
        process.stdout.write(`${line}\n`);
      }
    },
  };
  const sim = new Simulator(options);
  const out = process.stdout;
  out.write(`raftkv demo: ${nodes} simulated nodes running the real Raft core, seed ${seed} (replay with --seed ${seed})\n`);
  out.write(`faults: ${[...faults].join(', ') || 'none'}; every safety invariant is checked after every event. Ctrl-C stops.\n\n`);

  const started = Date.now();
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let lastStatus = 0;
  let drawnLines = 0;
  while (!stopped && !sim.done) {
    const elapsed = (Date.now() - started) / 1000;
    if (duration !== undefined && elapsed >= duration) break;
    sim.runUntil(Math.floor(elapsed * speed * TICK_US));
    if (tty) {
      const screen = [...statusLines(sim, true), '', ...feed];
      if (drawnLines > 0) out.write(`\x1b[${drawnLines}A`);
      out.write(screen.map((l) => `\x1b[2K${l}`).join('\n') + '\n');
      drawnLines = screen.length;
    } else if (Date.now() - lastStatus > 5000) {
      lastStatus = Date.now();
      out.write(`${statusLines(sim, false).join('\n')}\n`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.removeListener('SIGINT', stop);
  process.removeListener('SIGTERM', stop);
  const r = sim.result();
  const s = r.stats;
  out.write(
    `\n${(sim.now / TICK_US).toFixed(0)} ticks simulated: ${s.leadersElected} leaders elected, commit index ${s.committed}, ` +
      `${s.clientOpsCompleted} client operations completed, ${s.events} events; trace hash ${r.traceHash}\n`,
  );
  if (r.violation) {
    out.write(color(31, `safety violation: ${r.violation.property}: ${r.violation.detail}\n`, tty));
    return 1;
  }
  out.write('every invariant held.\n');
  return 0;
}

function statusLines(sim: Simulator, tty: boolean): string[] {
  const lines = [
    `t=${(sim.now / 1000).toFixed(1)} ms simulated (${(sim.now / TICK_US).toFixed(0)} ticks); ` +
      `${sim.stats.clientOpsCompleted} client operations completed; ${sim.network.cutCount} links cut`,
  ];
  for (const node of sim.nodes.values()) {
    const id = `n${node.id}`;
    if (!node.up) {
      lines.push(`${id}  ${color(90, 'DOWN (crashed)', tty)}`);
      continue;
    }
    const r = node.raw!.raft;
    const log = r.raftLog;
    const role = r.state === 'preCandidate' ? 'pre-candidate' : r.state;
    const roleText = role.toUpperCase().padEnd(13);
    const styled = r.state === 'leader' ? color(32, roleText, tty) : r.state === 'follower' ? roleText : color(33, roleText, tty);
    const member = r.isLearner ? ' learner' : r.promotable() ? '' : ' (not a voter)';
    lines.push(
      `${id}  ${styled} term ${String(r.term).padStart(4)}  commit ${String(log.committed).padStart(6)}  ` +
        `applied ${String(log.applied).padStart(6)}  last ${log.lastIndex()}@${log.lastTerm()}  ` +
        `snapshot ${node.storage.snapshotIndex()}${member}`,
    );
  }
  return lines;
}
