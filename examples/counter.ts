// A replicated counter on the node runtime: three members in one process,
// talking over the in-process transport, each persisting to its own
// write-ahead log in a temporary directory. Increments go through every
// member (followers forward them to the leader); then the leader is stopped,
// the other two elect a new one and carry on; the stopped member restarts
// from its data directory and catches up. Every member ends with the same
// count.
//
//   npm ci && node dist/examples/counter.js

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LocalNetwork, type RaftNode, type StateMachine, createNode } from '../src/node/index.js';

/** The state machine: a number, incremented by the 32-bit amount each command carries. */
class Counter implements StateMachine<number> {
  value = 0;

  apply(command: Uint8Array): number {
    const by = new DataView(command.buffer, command.byteOffset, command.byteLength).getInt32(0);
    this.value += by;
    return this.value;
  }

  snapshot(): Uint8Array {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setFloat64(0, this.value);
    return out;
  }

  restore(data: Uint8Array): void {
    this.value = new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(0);
  }
}

function increment(by: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, by);
  return out;
}

const ids = [1, 2, 3];
const dir = mkdtempSync(join(tmpdir(), 'raftkv-counter-'));
const network = new LocalNetwork();
const counters = new Map<number, Counter>();
const nodes = new Map<number, RaftNode<number>>();

async function start(id: number): Promise<RaftNode<number>> {
  const counter = new Counter();
  counters.set(id, counter);
  const node = await createNode<number>({
    id,
    initialVoters: ids, // used only the first time, when the data directory is empty
    peers: Object.fromEntries(ids.map((peer) => [peer, `local://${peer}`])),
    dataDir: join(dir, `member-${id}`),
    segmentBytes: 1024 * 1024, // small log segments: a demo needs no 64 MiB preallocations
    transport: network.transport(id),
    stateMachine: counter,
    tickMs: 20,
  });
  node.on('leaderChange', ({ leader, term }) => {
    if (leader !== 0) console.log(`  member ${id}: leader is ${leader} (term ${term})`);
  });
  nodes.set(id, node);
  return node;
}

async function leader(): Promise<RaftNode<number>> {
  for (;;) {
    const running = [...nodes.values()];
    const l = running.find((n) => n.status().role === 'leader');
    if (l && running.every((n) => n.leader === l.id)) return l;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Increments `count` times by 1, through every running member in turn. */
async function increments(count: number): Promise<number> {
  const running = [...nodes.values()];
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) => running[i % running.length]!.propose(increment(1))),
  );
  return Math.max(...results);
}

async function show(label: string): Promise<void> {
  // A linearizable read on each member: it waits until the member has
  // applied everything committed before the read began.
  const line: string[] = [];
  for (const [id, node] of nodes) {
    await node.readIndex();
    line.push(`member ${id} = ${counters.get(id)!.value}`);
  }
  console.log(`${label}: ${line.join(', ')}`);
}

async function main(): Promise<void> {
  console.log(`data in ${dir}`);
  for (const id of ids) await start(id);
  const first = await leader();
  console.log(`member ${first.id} leads`);

  console.log(`after 100 increments the count is ${await increments(100)}`);
  await show('every member agrees');

  console.log(`stopping the leader, member ${first.id}`);
  await first.stop();
  nodes.delete(first.id);
  const second = await leader();
  console.log(`member ${second.id} leads now`);
  console.log(`after 50 more increments the count is ${await increments(50)}`);
  await show('the two left agree');

  console.log(`restarting member ${first.id} from its data directory`);
  await start(first.id);
  await leader();
  await show('all three agree again');

  const values = [...counters.values()].map((c) => c.value);
  if (values.some((v) => v !== 150)) throw new Error(`the members disagree: ${values.join(', ')}`);
  for (const node of nodes.values()) await node.stop();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
