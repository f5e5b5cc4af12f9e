// The public surface of the Raft core.

export * from './types.js';
export * from './errors.js';
export { type Storage, type InitialState, MemoryStorage } from './storage.js';
export { type RaftConfig, Raft } from './raft.js';
export { type Ready, type Status, type ProgressStatus, RawNode, bootstrapState } from './rawNode.js';
export { type ReadOnlyOption } from './readOnly.js';
export { type ProgressState } from './progress.js';
export { encodeConfChange, decodeConfChange, describeConfChange, validateConfChange } from './confchange.js';
