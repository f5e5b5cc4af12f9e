// Membership changes: single-server changes, and joint consensus (§6) in the
// form of etcd's ConfChangeV2 (enter C_old,new, then leave to C_new, with an
// optional automatic leave). Each operation computes a new configuration and
// progress map from the current ones without touching them, so a refused
// change leaves the node as it was.

import { InvalidConfChangeError } from './errors.js';
import { Progress, type ProgressTracker, type TrackerConfig } from './progress.js';
import { JointConfig, MajorityConfig } from './quorum.js';
import type { ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfState, NodeId } from './types.js';

export interface ChangeResult {
  readonly config: TrackerConfig;
  readonly progress: Map<NodeId, Progress>;
}

/** A mutable working copy of a configuration. */
interface WorkingConfig {
  incoming: Set<NodeId>;
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

/** Whether this change is carried out through a joint configuration, and whether it leaves it automatically. */
export function enterJoint(cc: ConfChange): { joint: boolean; autoLeave: boolean } {
  if (cc.changes.length === 0) return { joint: false, autoLeave: false };
  const joint = cc.transition !== 'auto' || cc.changes.length > 1;
  return { joint, autoLeave: joint && cc.transition !== 'explicit' };
}

/** An empty change is the request to leave a joint configuration. */
export function leavesJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}

export class Changer {
  constructor(
    private readonly tracker: ProgressTracker,
    /** The leader's last index: new members are probed from here. */
    private readonly lastIndex: number,
  ) {}

  /**
   * Enters a joint configuration: the current voters become C_old (outgoing)
   * and the changes are applied to C_new (incoming).
   */
  enterJoint(autoLeave: boolean, changes: readonly ConfChangeSingle[]): ChangeResult {
    const { cfg, progress } = this.checkAndCopy();
    if (cfg.outgoing.size > 0) throw new InvalidConfChangeError('config is already joint');
    if (cfg.incoming.size === 0) {
      // Adding nodes to an empty configuration is allowed (bootstrap), but it cannot be made joint.
      throw new InvalidConfChangeError("can't make a zero-voter config joint");
    }
    cfg.outgoing = new Set(cfg.incoming);
    this.apply(cfg, progress, changes);
    cfg.autoLeave = autoLeave;
    return this.checkAndReturn(cfg, progress);
  }

  /** Leaves the joint configuration: C_new alone is in force; C_old-only members go. */
  leaveJoint(): ChangeResult {
    const { cfg, progress } = this.checkAndCopy();
    if (cfg.outgoing.size === 0) throw new InvalidConfChangeError("can't leave a non-joint config");
    for (const id of cfg.learnersNext) {
      cfg.learners.add(id);
      progress.get(id)!.isLearner = true;
    }
    cfg.learnersNext.clear();
    for (const id of cfg.outgoing) {
      if (!cfg.incoming.has(id) && !cfg.learners.has(id)) progress.delete(id);
    }
    cfg.outgoing.clear();
    cfg.autoLeave = false;
    return this.checkAndReturn(cfg, progress);
  }

  /**
   * A change that alters at most one voter: any two majorities of the old
   * and new configurations then intersect, so no joint phase is needed (§4.1
   * of the dissertation).
   */
  simple(changes: readonly ConfChangeSingle[]): ChangeResult {
    const { cfg, progress } = this.checkAndCopy();
    if (cfg.outgoing.size > 0) {
      throw new InvalidConfChangeError("can't apply simple config change in joint config");
    }
    const before = new Set(cfg.incoming);
    this.apply(cfg, progress, changes);
    let changed = 0;
    for (const id of before) if (!cfg.incoming.has(id)) changed++;
    for (const id of cfg.incoming) if (!before.has(id)) changed++;
    if (changed > 1) {
      throw new InvalidConfChangeError('more than one voter changed without entering joint config');
    }
    return this.checkAndReturn(cfg, progress);
  }

  private apply(cfg: WorkingConfig, progress: Map<NodeId, Progress>, changes: readonly ConfChangeSingle[]): void {
    for (const cc of changes) {
      if (!Number.isInteger(cc.nodeId) || cc.nodeId <= 0) {
        throw new InvalidConfChangeError(`invalid node id ${String(cc.nodeId)} in ${cc.type}`);
      }
      switch (cc.type) {
        case 'addNode':
          this.makeVoter(cfg, progress, cc.nodeId);
          break;
        case 'addLearner':
          this.makeLearner(cfg, progress, cc.nodeId);
          break;
        case 'removeNode':
          this.remove(cfg, progress, cc.nodeId);
          break;
        default:
          throw new InvalidConfChangeError(`unexpected conf change type ${String((cc as ConfChangeSingle).type)}`);
      }
    }
    if (cfg.incoming.size === 0) throw new InvalidConfChangeError('removed all voters');
  }

  private makeVoter(cfg: WorkingConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
    const pr = progress.get(id);
    if (!pr) {
      this.initProgress(cfg, progress, id, false);
      return;
    }
    pr.isLearner = false;
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    cfg.incoming.add(id);
  }

  private makeLearner(cfg: WorkingConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
    const pr = progress.get(id);
    if (!pr) {
      this.initProgress(cfg, progress, id, true);
      return;
    }
    if (pr.isLearner) return;
    // Remove it as a voter of C_new, but keep its progress.
    this.remove(cfg, progress, id);
    progress.set(id, pr);
    // A voter of C_old cannot become a learner until the joint
    // configuration is left: it still votes there.
    if (cfg.outgoing.has(id)) {
      cfg.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      cfg.learners.add(id);
    }
  }

  private remove(cfg: WorkingConfig, progress: Map<NodeId, Progress>, id: NodeId): void {
    if (!progress.has(id)) return;
    cfg.incoming.delete(id);
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    // A voter of C_old keeps its progress until the joint configuration is left.
    if (!cfg.outgoing.has(id)) progress.delete(id);
  }

  private initProgress(cfg: WorkingConfig, progress: Map<NodeId, Progress>, id: NodeId, isLearner: boolean): void {
    if (isLearner) cfg.learners.add(id);
    else cfg.incoming.add(id);
    // Probe from the last index: a new member usually has an empty log and
    // will reject, backing nextIndex off (or get a snapshot). It counts as
    // recently active so that CheckQuorum does not depose the leader before
    // the newcomer had a chance to answer.
    progress.set(id, new Progress(Math.max(this.lastIndex, 1), this.tracker.newInflights(), isLearner, true));
  }

  /** Copies the tracker's configuration and progress so a failed change leaves them untouched. */
  private checkAndCopy(): { cfg: WorkingConfig; progress: Map<NodeId, Progress> } {
    const c = this.tracker.config;
    const cfg: WorkingConfig = {
      incoming: new Set(c.voters.incoming.ids),
      outgoing: new Set(c.voters.outgoing.ids),
      learners: new Set(c.learners),
      learnersNext: new Set(c.learnersNext),
      autoLeave: c.autoLeave,
    };
    checkInvariants(cfg, this.tracker.progress);
    const progress = new Map<NodeId, Progress>();
    for (const [id, pr] of this.tracker.progress) {
      // Progress objects are copied (not shared) because isLearner may change.
      const copy = new Progress(pr.nextIndex, pr.inflights, pr.isLearner, pr.recentActive);
      copy.matchIndex = pr.matchIndex;
      copy.state = pr.state;
      copy.pendingSnapshot = pr.pendingSnapshot;
      copy.msgAppFlowPaused = pr.msgAppFlowPaused;
      copy.roundAcked = pr.roundAcked;
      copy.sentCommit = pr.sentCommit;
      progress.set(id, copy);
    }
    return { cfg, progress };
  }

  private checkAndReturn(cfg: WorkingConfig, progress: Map<NodeId, Progress>): ChangeResult {
    checkInvariants(cfg, progress);
    return {
      config: {
        voters: new JointConfig(new MajorityConfig(cfg.incoming), new MajorityConfig(cfg.outgoing)),
        learners: cfg.learners,
        learnersNext: cfg.learnersNext,
        autoLeave: cfg.autoLeave,
      },
      progress,
    };
  }
}

/** The configuration's structural rules; a violation means a bug, not bad input. */
function checkInvariants(cfg: WorkingConfig, progress: Map<NodeId, Progress>): void {
  const fail = (why: string) => {
    throw new InvalidConfChangeError(`invalid configuration: ${why}`);
  };
  for (const set of [cfg.incoming, cfg.outgoing, cfg.learners, cfg.learnersNext]) {
    for (const id of set) if (!progress.has(id)) fail(`no progress for ${id}`);
  }
  // learnersNext are voters of C_old that will become learners: they must be in C_old and not learners yet.
  for (const id of cfg.learnersNext) {
    if (!cfg.outgoing.has(id)) fail(`${id} is in learnersNext but not an outgoing voter`);
    if (progress.get(id)!.isLearner) fail(`${id} is in learnersNext but already marked learner`);
  }
  // Learners and voters are disjoint.
  for (const id of cfg.learners) {
    if (cfg.outgoing.has(id)) fail(`${id} is in learners and outgoing voters`);
    if (cfg.incoming.has(id)) fail(`${id} is in learners and incoming voters`);
    if (!progress.get(id)!.isLearner) fail(`${id} is in learners but not marked learner`);
  }
  if (cfg.outgoing.size === 0) {
    if (cfg.learnersNext.size > 0) fail('learnersNext outside a joint config');
    if (cfg.autoLeave) fail('autoLeave outside a joint config');
  }
}

/**
 * Rebuilds the configuration recorded in a ConfState (from a snapshot or at
 * start-up) by replaying it as changes from an empty configuration: the
 * outgoing voters first (as if they were the only configuration), then the
 * step into the joint configuration.
 */
export function restoreConfState(tracker: ProgressTracker, lastIndex: number, cs: ConfState): ChangeResult {
  const outgoing: ConfChangeSingle[] = cs.votersOutgoing.map((id) => ({ type: 'addNode', nodeId: id }));
  const incoming: ConfChangeSingle[] = [
    // Remove every outgoing voter so C_new starts empty, then add its members.
    ...cs.votersOutgoing.map((id): ConfChangeSingle => ({ type: 'removeNode', nodeId: id })),
    ...cs.voters.map((id): ConfChangeSingle => ({ type: 'addNode', nodeId: id })),
    ...cs.learners.map((id): ConfChangeSingle => ({ type: 'addLearner', nodeId: id })),
    ...cs.learnersNext.map((id): ConfChangeSingle => ({ type: 'addLearner', nodeId: id })),
  ];
  const step = (apply: (c: Changer) => ChangeResult) => {
    const r = apply(new Changer(tracker, lastIndex));
    tracker.install(r.config, r.progress);
  };
  if (outgoing.length === 0) {
    for (const cc of incoming) step((c) => c.simple([cc]));
  } else {
    for (const cc of outgoing) step((c) => c.simple([cc]));
    step((c) => c.enterJoint(cs.autoLeave, incoming));
  }
  return { config: tracker.config, progress: tracker.progress };
}

/** Applies a committed ConfChange to the tracker's configuration, returning the result. */
export function applyChange(tracker: ProgressTracker, lastIndex: number, cc: ConfChange): ChangeResult {
  const changer = new Changer(tracker, lastIndex);
  if (leavesJoint(cc)) return changer.leaveJoint();
  const { joint, autoLeave } = enterJoint(cc);
  return joint ? changer.enterJoint(autoLeave, cc.changes) : changer.simple(cc.changes);
}

// ---------------------------------------------------------------------------
// Encoding of ConfChange entries. Membership changes are rare, so a compact
// JSON form keeps them readable in `wal dump` and traces.

const TRANSITIONS: readonly ConfChangeTransition[] = ['auto', 'implicit', 'explicit'];
const CHANGE_TYPES: readonly ConfChangeType[] = ['addNode', 'removeNode', 'addLearner'];
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export function encodeConfChange(cc: ConfChange): Uint8Array {
  validateConfChange(cc);
  const json = {
    t: cc.transition,
    c: cc.changes.map((c) => [c.type, c.nodeId]),
    ...(cc.context && cc.context.byteLength > 0 ? { x: Array.from(cc.context) } : {}),
  };
  return textEncoder.encode(JSON.stringify(json));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  // The empty payload is the leader's automatic "leave joint" (it can never be refused for size).
  if (data.byteLength === 0) return { transition: 'auto', changes: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(textDecoder.decode(data));
  } catch (e) {
    throw new InvalidConfChangeError(`undecodable conf change entry: ${(e as Error).message}`);
  }
  const obj = raw as { t?: unknown; c?: unknown; x?: unknown };
  if (typeof obj !== 'object' || obj === null || !Array.isArray(obj.c)) {
    throw new InvalidConfChangeError('conf change entry lacks its list of changes');
  }
  const cc: ConfChange = {
    transition: obj.t as ConfChangeTransition,
    changes: obj.c.map((pair: unknown) => {
      const [type, nodeId] = Array.isArray(pair) ? pair : [];
      return { type: type as ConfChangeType, nodeId: nodeId as number };
    }),
    ...(obj.x !== undefined ? { context: decodeBytes(obj.x) } : {}),
  };
  validateConfChange(cc);
  return cc;
}

function decodeBytes(x: unknown): Uint8Array {
  if (!Array.isArray(x) || !x.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    throw new InvalidConfChangeError('conf change context is not a byte array');
  }
  return new Uint8Array(x as number[]);
}

export function validateConfChange(cc: ConfChange): void {
  if (!TRANSITIONS.includes(cc.transition)) {
    throw new InvalidConfChangeError(`unknown transition ${JSON.stringify(cc.transition)}`);
  }
  for (const c of cc.changes) {
    if (!CHANGE_TYPES.includes(c.type)) throw new InvalidConfChangeError(`unknown change type ${JSON.stringify(c.type)}`);
    if (!Number.isSafeInteger(c.nodeId) || c.nodeId <= 0) {
      throw new InvalidConfChangeError(`invalid node id ${JSON.stringify(c.nodeId)}`);
    }
  }
}

export function describeConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave-joint';
  const body = cc.changes
    .map((c) => `${c.type === 'addNode' ? 'v' : c.type === 'addLearner' ? 'l' : 'r'}${c.nodeId}`)
    .join(' ');
  return cc.transition === 'auto' ? body : `${body} (${cc.transition})`;
}
