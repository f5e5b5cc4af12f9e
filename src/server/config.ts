// A member's configuration from etcd's own flags, so that a command line
// written for etcd starts raftkv: the same names, defaults and checks, and a
// clear error naming the flag when something is wrong.
//
// Identity follows etcd (server/etcdserver/api/membership): a member's id is
// the SHA-1 of its sorted peer URLs and the cluster token; the cluster's id
// the SHA-1 of its members' ids. Two clusters started with different
// --initial-cluster-token values therefore have different ids, and the
// transport refuses messages across them. raftkv keeps member ids within
// 53 bits (the top bits of etcd's 64-bit value) so that they are exact
// JavaScript numbers, which is what the Raft core uses as node ids.

import { createHash } from 'node:crypto';

import { type FlagSpec, type FlagValues, UsageError } from '../cli/args.js';

export interface MemberConfig {
  readonly name: string;
  readonly id: number;
  readonly peerURLs: readonly string[];
}

export interface ServerConfig {
  readonly name: string;
  readonly dataDir: string;
  readonly listenClientURLs: readonly URL[];
  readonly advertiseClientURLs: readonly string[];
  readonly listenPeerURLs: readonly URL[];
  readonly initialAdvertisePeerURLs: readonly string[];
  readonly initialCluster: readonly MemberConfig[];
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  readonly clusterId: bigint;
  /** This member's id (from its advertised peer URLs and the token). */
  readonly memberId: number;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly snapshotCount: number;
  readonly maxRequestBytes: number;
  readonly maxTxnOps: number;
  readonly listenMetricsURLs: readonly URL[];
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
}

/** etcd's flags that raftkv serves, with etcd's defaults. */
export const SERVE_FLAGS: Readonly<Record<string, FlagSpec>> = {
  name: { kind: 'string', help: 'human-readable name of this member', default: 'default' },
  'data-dir': { kind: 'string', help: 'path to the data directory', default: '${name}.etcd' },
  'listen-client-urls': { kind: 'string', help: 'URLs to listen on for client traffic (comma-separated)', default: 'http://localhost:2379' },
  'advertise-client-urls': { kind: 'string', help: "this member's client URLs to advertise to the cluster", default: 'http://localhost:2379' },
  'listen-peer-urls': { kind: 'string', help: 'URLs to listen on for peer traffic', default: 'http://localhost:2380' },
  'initial-advertise-peer-urls': { kind: 'string', help: "this member's peer URLs to advertise to the cluster", default: 'http://localhost:2380' },
  'initial-cluster': { kind: 'string', help: 'initial cluster configuration: name=peerURL,...', default: '${name}=${initial-advertise-peer-urls}' },
  'initial-cluster-state': { kind: 'string', help: 'new (bootstrapping a cluster) or existing (joining one)', default: 'new' },
  'initial-cluster-token': { kind: 'string', help: 'cluster token: clusters with different tokens never talk to each other', default: 'etcd-cluster' },
  'heartbeat-interval': { kind: 'integer', help: 'time (ms) of a heartbeat interval', default: '100' },
  'election-timeout': { kind: 'integer', help: 'time (ms) for an election to time out', default: '1000' },
  'snapshot-count': { kind: 'integer', help: 'number of applied entries between snapshots', default: '10000' },
  'max-request-bytes': { kind: 'integer', help: 'maximum client request size in bytes', default: '1572864' },
  'max-txn-ops': { kind: 'integer', help: 'maximum number of operations in a transaction', default: '128' },
  'listen-metrics-urls': { kind: 'string', help: 'extra URLs to serve /metrics and /health on (they are served on client URLs too)' },
  'log-level': { kind: 'string', help: 'debug, info, warn or error', default: 'info' },
};

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

function str(f: FlagValues, name: string, fallback: string): string {
  const v = f[name];
  return typeof v === 'string' ? v : fallback;
}

function int(f: FlagValues, name: string, fallback: number, min: number): number {
  const v = f[name];
  const n = typeof v === 'number' ? v : fallback;
  if (n < min) throw new UsageError(`serve: --${name} must be at least ${min}, got ${n}`);
  return n;
}

/** Parses a comma-separated URL list, as etcd does: http:// only (raftkv has no TLS yet), with a port. */
export function parseURLs(flag: string, value: string): URL[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`serve: --${flag} is empty`);
  return parts.map((s) => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new UsageError(`serve: --${flag}: "${s}" is not a URL (expected e.g. http://127.0.0.1:2379)`);
    }
    if (u.protocol === 'https:') throw new UsageError(`serve: --${flag}: "${s}": TLS is not supported yet; use http://`);
    if (u.protocol !== 'http:') throw new UsageError(`serve: --${flag}: "${s}" must use http://`);
    if (u.port === '') throw new UsageError(`serve: --${flag}: "${s}" has no port`);
    if (u.pathname !== '/' && u.pathname !== '') throw new UsageError(`serve: --${flag}: "${s}" must not have a path`);
    return u;
  });
}

/** The URL as etcd prints it: scheme, host and port, no trailing slash. */
export function urlString(u: URL): string {
  return `${u.protocol}//${u.host}`;
}

/** etcd's computeMemberID (SHA-1 of sorted peer URLs + token), kept to 53 bits. */
export function memberIdOf(peerURLs: readonly string[], token: string): number {
  const h = createHash('sha1').update([...peerURLs].sort().join('') + token).digest();
  const id = Number(h.readBigUInt64BE(0) >> 11n);
  return id === 0 ? 1 : id;
}

/** etcd's RaftCluster.genID: SHA-1 of the members' ids, in ascending order, big-endian. */
export function clusterIdOf(memberIds: readonly number[]): bigint {
  const sorted = [...memberIds].sort((a, b) => a - b);
  const b = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => b.writeBigUInt64BE(BigInt(id), 8 * i));
  return createHash('sha1').update(b).digest().readBigUInt64BE(0);
}

/** Parses --initial-cluster: name=url[,name=url...]; one member may list several URLs. */
export function parseInitialCluster(value: string, token: string): MemberConfig[] {
  const byName = new Map<string, string[]>();
  for (const part of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new UsageError(`serve: --initial-cluster: "${part}" is not name=URL`);
    const name = part.slice(0, eq);
    const [url] = parseURLs('initial-cluster', part.slice(eq + 1));
    const list = byName.get(name) ?? [];
    list.push(urlString(url!));
    byName.set(name, list);
  }
  if (byName.size === 0) throw new UsageError('serve: --initial-cluster is empty');
  const members = [...byName].map(([name, peerURLs]) => ({ name, peerURLs, id: memberIdOf(peerURLs, token) }));
  const seen = new Map<number, string>();
  for (const m of members) {
    const other = seen.get(m.id);
    if (other !== undefined) throw new UsageError(`serve: --initial-cluster: members "${other}" and "${m.name}" have the same peer URLs`);
    seen.set(m.id, m.name);
  }
  return members;
}

export function serverConfig(f: FlagValues): ServerConfig {
  const name = str(f, 'name', 'default');
  const token = str(f, 'initial-cluster-token', 'etcd-cluster');
  if (token === '') throw new UsageError('serve: --initial-cluster-token must not be empty');
  const advertisePeer = parseURLs('initial-advertise-peer-urls', str(f, 'initial-advertise-peer-urls', 'http://localhost:2380')).map(urlString);
  const initialCluster = parseInitialCluster(str(f, 'initial-cluster', `${name}=${advertisePeer.join(`,${name}=`)}`), token);
  const self = initialCluster.find((m) => m.name === name);
  if (!self) {
    throw new UsageError(
      `serve: --initial-cluster has no member named "${name}" (--name); it lists ${initialCluster.map((m) => `"${m.name}"`).join(', ')}`,
    );
  }
  const listed = [...self.peerURLs].sort().join(',');
  if (listed !== [...advertisePeer].sort().join(',')) {
    throw new UsageError(
      `serve: --initial-cluster has ${name}=${self.peerURLs.join(',')} but --initial-advertise-peer-urls is ${advertisePeer.join(',')}: they must match`,
    );
  }
  const state = str(f, 'initial-cluster-state', 'new');
  if (state !== 'new' && state !== 'existing') throw new UsageError(`serve: --initial-cluster-state must be "new" or "existing", got "${state}"`);
  const heartbeat = int(f, 'heartbeat-interval', 100, 1);
  const election = int(f, 'election-timeout', 1000, 1);
  // etcd's check (embed/config.go): the election timeout must span several heartbeats.
  if (election < 5 * heartbeat) {
    throw new UsageError(`serve: --election-timeout[${election}ms] should be at least 5 times --heartbeat-interval[${heartbeat}ms]`);
  }
  const logLevel = str(f, 'log-level', 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`serve: --log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const metrics = f['listen-metrics-urls'];
  return {
    name,
    dataDir: str(f, 'data-dir', `${name}.etcd`),
    listenClientURLs: parseURLs('listen-client-urls', str(f, 'listen-client-urls', 'http://localhost:2379')),
    advertiseClientURLs: parseURLs('advertise-client-urls', str(f, 'advertise-client-urls', 'http://localhost:2379')).map(urlString),
    listenPeerURLs: parseURLs('listen-peer-urls', str(f, 'listen-peer-urls', 'http://localhost:2380')),
    initialAdvertisePeerURLs: advertisePeer,
    initialCluster,
    initialClusterState: state,
    initialClusterToken: token,
    clusterId: clusterIdOf(initialCluster.map((m) => m.id)),
    memberId: self.id,
    heartbeatIntervalMs: heartbeat,
    electionTimeoutMs: election,
    snapshotCount: int(f, 'snapshot-count', 10000, 1),
    maxRequestBytes: int(f, 'max-request-bytes', 1572864, 1),
    maxTxnOps: int(f, 'max-txn-ops', 128, 1),
    listenMetricsURLs: typeof metrics === 'string' ? parseURLs('listen-metrics-urls', metrics) : [],
    logLevel: logLevel as ServerConfig['logLevel'],
  };
}
