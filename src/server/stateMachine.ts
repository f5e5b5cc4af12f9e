// What a raftkv member replicates: the key-value store, and the members'
// published attributes (name and client URLs, which etcd also publishes
// through the log so that every member can answer MemberList). Each command
// starts with a tag byte saying which of the two it is for; a snapshot holds
// both.

import type { SnapshotTask, StateMachine } from '../node/stateMachine.js';
import { joinParts } from '../storage/bytes.js';
import { type KvCommand, KvSnapshotError, KvStateMachine, type KvResult, decodeCommand, encodeCommand } from '../kv/index.js';
import type { Member } from '../kv/types.js';
import type { NodeId } from '../raft/types.js';

const TAG_KV = 1;
const TAG_MEMBER = 2;
/**
 * A server snapshot's layouts: version 2, the member table first, so that
 * the bytes of two snapshots with the same members start alike as far as
 * their key-value snapshots do (kv/snapshot.ts); version 1 (earlier
 * builds, still read) started with the key-value snapshot's length.
 */
const SNAPSHOT_V1 = 1;
const SNAPSHOT_V2 = 2;

export interface MemberAttributes {
  readonly id: NodeId;
  readonly name: string;
  readonly clientURLs: readonly string[];
}

export interface MemberInfo {
  readonly id: NodeId;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** Members' names and URLs: from --initial-cluster, then as published. */
export class MemberTable {
  private readonly byId = new Map<NodeId, MemberInfo>();

  constructor(initial: readonly MemberInfo[]) {
    for (const m of initial) this.byId.set(m.id, { ...m, peerURLs: [...m.peerURLs], clientURLs: [...m.clientURLs] });
  }

  publish(a: MemberAttributes): void {
    const m = this.byId.get(a.id);
    if (m) {
      m.name = a.name;
      m.clientURLs = [...a.clientURLs];
    } else {
      this.byId.set(a.id, { id: a.id, name: a.name, peerURLs: [], clientURLs: [...a.clientURLs], isLearner: false });
    }
  }

  /** The members of the configuration, in etcd's form (a member not yet published has an empty name, as in etcd). */
  list(ids: readonly NodeId[], learners: readonly NodeId[], peerUrls: ReadonlyMap<NodeId, string>): Member[] {
    return [...ids].sort((a, b) => a - b).map((id) => {
      const m = this.byId.get(id);
      const url = peerUrls.get(id);
      return {
        id: BigInt(id),
        name: m?.name ?? '',
        peerURLs: m && m.peerURLs.length > 0 ? [...m.peerURLs] : url ? [url] : [],
        clientURLs: m ? [...m.clientURLs] : [],
        isLearner: learners.includes(id),
      };
    });
  }

  toJSON(): MemberAttributes[] {
    return [...this.byId.values()].map((m) => ({ id: m.id, name: m.name, clientURLs: m.clientURLs }));
  }
}

/**
 * A short label for a command of this state machine, for the visualiser's
 * log tail: "put foo", "del foo", "inc visits", "txn", "compact 42",
 * "publish infra1". Undefined for bytes that are no such command.
 */
export function describeCommand(command: Uint8Array): string | undefined {
  const body = command.subarray(1);
  try {
    if (command[0] === TAG_MEMBER) return `publish ${(JSON.parse(Buffer.from(body).toString()) as MemberAttributes).name}`;
    if (command[0] !== TAG_KV) return undefined;
    const op = decodeCommand(body).op;
    switch (op.type) {
      case 'put':
        return `put ${shortKey(op.request.key)}`;
      case 'deleteRange':
        return `del ${shortKey(op.request.key)}${op.request.rangeEnd.length > 0 ? '…' : ''}`;
      case 'increment':
        return `inc ${shortKey(op.request.key)}`;
      case 'txn':
        return 'txn';
      case 'compact':
        return `compact ${op.request.revision}`;
    }
  } catch {
    return undefined;
  }
}

/** A key as text for a label: at most 24 characters, control characters shown as "?". */
function shortKey(key: Uint8Array): string {
  const text = Buffer.from(key.subarray(0, 96)).toString('utf8').replace(/[\u0000-\u001f\u007f]/g, '?');
  return text.length > 24 || key.length > 96 ? `${text.slice(0, 23)}…` : text;
}

/** The parts of a server snapshot, in order: [version 2][members JSON length u32][members JSON], then the key-value snapshot's parts. */
function frame(kvParts: readonly Uint8Array[], membersBytes: Uint8Array): Uint8Array[] {
  const head = Buffer.alloc(5 + membersBytes.length);
  head[0] = SNAPSHOT_V2;
  head.writeUInt32BE(membersBytes.length, 1);
  head.set(membersBytes, 5);
  return [head, ...kvParts];
}

export class ServerStateMachine implements StateMachine<KvResult | undefined> {
  readonly kv = new KvStateMachine();

  constructor(private readonly members: MemberTable) {}

  encodeKv(command: KvCommand): Uint8Array {
    const body = encodeCommand(command);
    const out = new Uint8Array(body.length + 1);
    out[0] = TAG_KV;
    out.set(body, 1);
    return out;
  }

  encodeMember(a: MemberAttributes): Uint8Array {
    const body = Buffer.from(JSON.stringify(a));
    const out = new Uint8Array(body.length + 1);
    out[0] = TAG_MEMBER;
    out.set(body, 1);
    return out;
  }

  apply(command: Uint8Array, index: number): KvResult | undefined {
    const body = command.subarray(1);
    switch (command[0]) {
      case TAG_KV:
        return this.kv.apply(body, index);
      case TAG_MEMBER:
        this.members.publish(JSON.parse(Buffer.from(body).toString()) as MemberAttributes);
        return undefined;
      default:
        // Deterministic on every member: an entry no version of raftkv writes.
        throw new KvSnapshotError(`log entry ${index} has an unknown command tag ${command[0]}`);
    }
  }

  snapshot(): Uint8Array {
    return Buffer.concat(frame([this.kv.snapshot()], this.membersBytes()));
  }

  /**
   * A snapshot in slices: the key-value store through its SnapshotEncoder
   * (from the last one's parts after the first: KvStateMachine.beginSnapshot),
   * the member table as of now.
   */
  beginSnapshot(): SnapshotTask {
    const kv = this.kv.beginSnapshot();
    const members = this.membersBytes();
    let framed: Uint8Array[] | undefined;
    const parts = (): Uint8Array[] => (framed ??= frame(kv.parts(), members));
    return {
      step: () => kv.step(),
      parts,
      result: () => joinParts(parts()),
    };
  }

  private membersBytes(): Uint8Array {
    return Buffer.from(JSON.stringify(this.members.toJSON()));
  }

  restore(data: Uint8Array, index: number): void {
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const where = `server snapshot at index ${index}`;
    if (b.length < 5 || (b[0] !== SNAPSHOT_V1 && b[0] !== SNAPSHOT_V2)) throw new KvSnapshotError(`${where}: unknown format (version byte ${b[0]})`);
    const length = b.readUInt32BE(1);
    if (5 + length > b.length) throw new KvSnapshotError(`${where}: truncated (${b[0] === SNAPSHOT_V1 ? 'key-value part' : 'member table'} of ${length} bytes)`);
    // Version 1: [1][kv length][kv][members]; version 2: [2][members length][members][kv].
    const [kv, membersJson] = b[0] === SNAPSHOT_V1 ? [b.subarray(5, 5 + length), b.subarray(5 + length)] : [b.subarray(5 + length), b.subarray(5, 5 + length)];
    let attrs: MemberAttributes[];
    try {
      attrs = JSON.parse(membersJson.toString()) as MemberAttributes[];
    } catch {
      throw new KvSnapshotError(`${where}: the member table is damaged`);
    }
    this.kv.restore(kv, index);
    for (const a of attrs) this.members.publish(a);
  }
}
