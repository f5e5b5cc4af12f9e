// The simulated network between nodes (and between clients and nodes):
// per-message delay, loss and duplication, and cut links. A cut is one-way
// (from -> to), so symmetric partitions, asymmetric ones and partially
// isolated nodes are all sets of cuts.

import type { NodeId } from '../raft/types.js';
import type { Random } from './random.js';

export interface LinkWeather {
  minDelayUs: number;
  maxDelayUs: number;
  lossRate: number;
  duplicateRate: number;
}

export type PartitionKind = 'split' | 'oneWay' | 'isolate' | 'isolateLeader' | 'leaderMinority';

/** No delivery: a message lost (shared; not frozen, which would make for-of over it slow). */
const LOST: readonly number[] = [];

export class Network {
  /** cuts.has(key(from, to)): messages from `from` to `to` are dropped. */
  private readonly cuts = new Set<number>();

  constructor(
    private readonly rng: Random,
    readonly weather: LinkWeather,
  ) {}

  private static key(from: NodeId, to: NodeId): number {
    return from * 4096 + to;
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cuts.size > 0 && this.cuts.has(Network.key(from, to));
  }

  cut(from: NodeId, to: NodeId): void {
    this.cuts.add(Network.key(from, to));
  }

  /** Restores one direction of a link. */
  restore(from: NodeId, to: NodeId): void {
    this.cuts.delete(Network.key(from, to));
  }

  heal(): void {
    this.cuts.clear();
  }

  get cutCount(): number {
    return this.cuts.size;
  }

  /** The links currently cut, as [from, to] pairs (for display). */
  cutLinks(): [NodeId, NodeId][] {
    return [...this.cuts].sort(ascending).map((k) => [Math.floor(k / 4096), k % 4096]);
  }

  /**
   * Cuts links among `nodes` in one of these shapes and returns a
   * description: a symmetric split into two sides, one-way cuts (A hears B
   * but B does not hear A), one node cut off from some of the others, the
   * leader cut off from everyone, or a split that leaves the leader on the
   * minority side (the moment a deposed leader and its successor overlap).
   */
  partition(kind: PartitionKind, nodes: readonly NodeId[], leader: NodeId | undefined): string {
    const r = this.rng;
    switch (kind) {
      case 'split': {
        const shuffled = r.shuffle([...nodes]);
        return this.split(shuffled, r.range(1, Math.max(1, shuffled.length - 1)));
      }
      case 'leaderMinority': {
        if (leader === undefined) return this.partition('split', nodes, undefined);
        // The leader first, so it lands on the smaller side.
        const others = r.shuffle(nodes.filter((x) => x !== leader));
        const minority = Math.max(1, Math.floor(nodes.length / 2) - (nodes.length % 2 === 0 ? 1 : 0));
        return this.split([leader, ...others], Math.min(minority, nodes.length - 1));
      }
      case 'isolateLeader': {
        if (leader === undefined) return this.partition('isolate', nodes, undefined);
        for (const o of nodes) {
          if (o === leader) continue;
          this.cut(leader, o);
          this.cut(o, leader);
        }
        return `leader ${leader} cut off from everyone`;
      }
      case 'oneWay': {
        const pairs: string[] = [];
        const n = r.range(1, Math.max(1, nodes.length - 1));
        for (let i = 0; i < n; i++) {
          const from = r.pick(nodes);
          const to = r.pick(nodes);
          if (from === to) continue;
          this.cut(from, to);
          pairs.push(`${from}->${to}`);
        }
        return `one-way cuts ${pairs.join(' ') || '(none)'}`;
      }
      case 'isolate': {
        const victim = r.pick(nodes);
        const others = nodes.filter((x) => x !== victim && r.chance(0.6));
        for (const o of others) {
          this.cut(victim, o);
          this.cut(o, victim);
        }
        return `node ${victim} cut off from {${others.join(',')}}`;
      }
    }
  }

  /** Cuts every link between the first k of `ordered` and the rest. */
  private split(ordered: readonly NodeId[], k: number): string {
    const a = ordered.slice(0, k).sort(ascending);
    const b = ordered.slice(k).sort(ascending);
    for (const x of a) {
      for (const y of b) {
        this.cut(x, y);
        this.cut(y, x);
      }
    }
    return `split {${a.join(',')}} | {${b.join(',')}}`;
  }

  /**
   * The delays (µs) after which a message sent now arrives: none if it is
   * dropped, two if it is duplicated. Cuts apply only when `partitionable`
   * (node-to-node links).
   */
  deliveries(from: NodeId, to: NodeId, partitionable: boolean): readonly number[] {
    if (partitionable && this.isCut(from, to)) return LOST;
    const w = this.weather;
    const r = this.rng;
    if (w.lossRate > 0 && r.chance(w.lossRate)) return LOST;
    const span = w.maxDelayUs - w.minDelayUs + 1;
    if (w.duplicateRate > 0 && r.chance(w.duplicateRate)) return [w.minDelayUs + r.int(span), w.minDelayUs + r.int(span)];
    return [w.minDelayUs + r.int(span)];
  }
}

/** Numeric order for sort() (at module level: V8 optimizes a closure made per call again for every call that gets hot). */
function ascending(a: number, b: number): number {
  return a - b;
}
