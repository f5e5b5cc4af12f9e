// The simulator for sandbox mode, bundled into the page: the same src/raft
// code as the servers, driven by src/sim. The one place the page imports it.

export { STORIES, createSandbox } from '../../sim/sandbox.js';
