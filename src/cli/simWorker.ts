// A worker thread of `raftkv sim --seeds`: runs the seeds it is handed and
// reports each outcome (seed, events, trace hash, violation if any).

import { parentPort, workerData } from 'node:worker_threads';
import { Simulator } from '../sim/index.js';
import type { RunOptions, SweepOutcome } from './sim.js';

const run = workerData as RunOptions;

parentPort!.on('message', ({ from, to }: { from: number; to: number }) => {
  const batch: SweepOutcome[] = [];
  for (let seed = from; seed <= to; seed++) {
    const r = new Simulator({ ...run, seed, traceBuffer: 1 }).run();
    batch.push({
      seed,
      events: r.stats.events,
      hash: r.traceHash,
      undecided: r.stats.linearizability === 'unknown',
      ...(r.violation ? { violation: { property: r.violation.property, detail: r.violation.detail } } : {}),
    });
  }
  parentPort!.postMessage(batch);
});
