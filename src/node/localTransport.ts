// An in-process transport: the members of a cluster running in one Node.js
// process (tests, examples, an embedded cluster) exchange messages through a
// LocalNetwork. It keeps the contract of the TCP transport (transport/types.ts)
// so the runtime cannot tell them apart:
// - delivery is asynchronous (never inside send()), in order per pair;
// - a message reaches only a peer the sender was told about (addPeer) and
//   that is started; otherwise the sender hears onUnreachable;
// - a MsgSnap is followed by onSnapshotStatus (ok once delivered);
// - messages are copied on the way: no object is shared between members,
//   as no object is shared across a socket.
// Tests can cut links (partitions) and drop or inspect messages with a filter.

import type { Message, NodeId } from '../raft/index.js';
import type { Transport, TransportHandlers } from '../transport/types.js';

/** Decides whether a message is delivered (true) or lost (false). */
export type MessageFilter = (m: Message) => boolean;

export class LocalNetwork {
  private readonly started = new Map<NodeId, LocalTransport>();
  /** Cut one-way links "from>to". */
  private readonly cut = new Set<string>();
  /** Consulted for every message; tests use it to drop or count. */
  filter: MessageFilter | undefined;
  /** Messages delivered so far, by type (for tests and the example's summary). */
  readonly delivered = new Map<string, number>();

  /** The transport of member `id`. One per member incarnation: create a new one after close(). */
  transport(id: NodeId): LocalTransport {
    return new LocalTransport(this, id);
  }

  /** Cuts every link to and from `id` (both directions). */
  isolate(id: NodeId): void {
    for (const other of this.started.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  /** Cuts the link between a and b, in one direction or both. */
  cutLink(from: NodeId, to: NodeId, bothWays = true): void {
    this.cut.add(`${from}>${to}`);
    if (bothWays) this.cut.add(`${to}>${from}`);
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear();
  }

  /** @internal */
  attach(t: LocalTransport): void {
    const existing = this.started.get(t.id);
    if (existing && existing !== t) throw new Error(`member ${t.id} is already on this network`);
    this.started.set(t.id, t);
  }

  /** @internal */
  detach(t: LocalTransport): void {
    if (this.started.get(t.id) === t) this.started.delete(t.id);
  }

  /** @internal Delivers (later) what `from` sent. */
  route(from: LocalTransport, batch: readonly Message[]): void {
    // One task per send() call keeps each pair's messages in order.
    const copies = batch.map(copyMessage);
    setImmediate(() => {
      for (const m of copies) this.deliverOne(from, m);
    });
  }

  private deliverOne(from: LocalTransport, m: Message): void {
    if (!from.isOpen) return;
    const to = this.started.get(m.to);
    const reachable = to !== undefined && to.isOpen && from.knows(m.to) && !this.cut.has(`${m.from}>${m.to}`);
    if (!reachable) {
      // Like a connection that cannot be made: the sender learns of it.
      from.unreachable(m);
      return;
    }
    if (this.filter && !this.filter(m)) {
      // Lost on the way without a trace, as a packet dropped mid-path.
      if (m.type === 'MsgSnap') from.snapshotStatus(m.to, false);
      return;
    }
    this.delivered.set(m.type, (this.delivered.get(m.type) ?? 0) + 1);
    to.receive(m);
    if (m.type === 'MsgSnap') from.snapshotStatus(m.to, true);
  }
}

export class LocalTransport implements Transport {
  private handlers: TransportHandlers | undefined;
  private readonly peers = new Map<NodeId, string>();
  private closed = false;

  constructor(
    private readonly network: LocalNetwork,
    readonly id: NodeId,
  ) {}

  get isOpen(): boolean {
    return this.handlers !== undefined && !this.closed;
  }

  async start(handlers: TransportHandlers): Promise<void> {
    if (this.closed) throw new Error(`transport of member ${this.id} was closed: create a new one`);
    this.handlers = handlers;
    this.network.attach(this);
  }

  send(messages: readonly Message[]): void {
    if (!this.isOpen || messages.length === 0) return;
    this.network.route(this, messages);
  }

  addPeer(id: NodeId, url: string): void {
    this.peers.set(id, url);
  }

  removePeer(id: NodeId): void {
    this.peers.delete(id);
  }

  /** The peers this member was told about, with their URLs. */
  peerUrls(): ReadonlyMap<NodeId, string> {
    return this.peers;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.network.detach(this);
  }

  /** @internal */
  knows(id: NodeId): boolean {
    return this.peers.has(id);
  }

  /** @internal */
  receive(m: Message): void {
    this.handlers?.onMessage(m);
  }

  /** @internal */
  unreachable(m: Message): void {
    if (!this.isOpen) return;
    this.handlers!.onUnreachable(m.to);
    if (m.type === 'MsgSnap') this.handlers!.onSnapshotStatus(m.to, false);
  }

  /** @internal */
  snapshotStatus(to: NodeId, ok: boolean): void {
    if (this.isOpen) this.handlers!.onSnapshotStatus(to, ok);
  }
}

/**
 * A deep copy of a message. (Not structuredClone: for a Uint8Array that is a
 * view into a larger buffer it copies the whole buffer.)
 */
function copyMessage(m: Message): Message {
  return {
    ...m,
    entries: m.entries.length === 0 ? m.entries : m.entries.map((e) => ({ ...e, data: e.data.slice() })),
    snapshot: m.snapshot && { metadata: structuredClone(m.snapshot.metadata), data: m.snapshot.data.slice() },
    context: m.context?.slice(),
  };
}
