// The contract between the node runtime (src/node/) and a peer transport.
// The runtime hands over the messages of one Ready at a time; the transport
// delivers what it can and reports what it could not, the way
// etcd-io/raft's RawNode expects (ReportUnreachable, ReportSnapshot).
// TcpTransport (src/transport/tcp.ts) is the production implementation;
// tests may use an in-process one with the same shape.

import type { Message, NodeId } from '../raft/index.js';

export interface TransportHandlers {
  /** A message from a peer that passed the handshake (right cluster, known member). */
  onMessage(m: Message): void;
  /** Sending to `to` failed (connection down, queue full): the core should probe it again later. */
  onUnreachable(to: NodeId): void;
  /** A MsgSnap to `to` was delivered in full (ok) or failed (not ok). */
  onSnapshotStatus(to: NodeId, ok: boolean): void;
}

export interface Transport {
  /** Starts listening (if it listens) and wires the handlers. */
  start(handlers: TransportHandlers): Promise<void>;
  /**
   * Queues messages for their peers. Messages given in one call to the same
   * peer go out in one write, in order. Never blocks and never throws for a
   * peer that is down: that peer is reported through onUnreachable.
   */
  send(messages: readonly Message[]): void;
  /** Adds or updates a peer's address (a URL such as http://10.0.0.2:2380). */
  addPeer(id: NodeId, url: string): void;
  removePeer(id: NodeId): void;
  /** Closes every connection and the listener. */
  close(): Promise<void>;
}
