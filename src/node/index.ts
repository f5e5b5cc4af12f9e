// The public surface of the node runtime: a Raft member that persists to the
// write-ahead log, talks to its peers through a transport, and applies the
// committed log to a state machine of the user's.

export { type NodeEvents, type NodeMetrics, type NodeStatus, RaftNode, createNode } from './node.js';
export {
  type NodeClock,
  type NodeLogger,
  type NodeStorage,
  type RaftNodeOptions,
  SILENT_NODE_LOGGER,
  SYSTEM_CLOCK,
} from './options.js';
export { type SnapshotTask, type StateMachine } from './stateMachine.js';
export {
  EnvelopeError,
  InvalidNodeOptionsError,
  InvalidRequestError,
  LeaderChangedError,
  NodeError,
  NodeFailedError,
  NodeStoppedError,
  RequestTimeoutError,
  SnapshotNotReadyError,
} from './errors.js';
export { ProposalDroppedError, type DropReason } from '../raft/errors.js';
export { LocalNetwork, LocalTransport, type MessageFilter } from './localTransport.js';
