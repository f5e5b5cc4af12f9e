// The deterministic cluster simulator: the real Raft core under a seeded
// network, disk and clock, with safety checked after every event.

export { Simulator, type SimResult, type SimStats, type Violation } from './simulator.js';
export {
  type SimOptions,
  type Swarm,
  type FaultKind,
  FAULT_KINDS,
  DEFAULT_OPTIONS,
  TICK_US,
  parseFaults,
  describeFaults,
  describeSwarm,
  pickSwarm,
} from './options.js';
export { type Property, SafetyViolation, Checker } from './checker.js';
export { Random } from './random.js';
export { type TraceRecord, formatRecord, describeMessage } from './trace.js';
export { KvStateMachine, type KvEntry, type KvCommand, type ApplyResult } from './kv.js';
export * from './linearizability.js';
export { ManualCluster, type ManualNode, type MessageFilter, type NodeConfig } from './manual.js';
