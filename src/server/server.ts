// One raftkv member: the node runtime (src/node) over the write-ahead log,
// the TCP transport to its peers, the key-value state machine (src/kv), and
// etcd's gRPC API (src/server/grpc.ts) on its client URLs beside /metrics
// and /health.
//
// Request paths, as in etcd's server:
// - writes (Put, DeleteRange, Txn with writes, Compact, Increment) are
//   validated, encoded with the client's exactly-once session and the
//   proposer's clock, proposed through Raft (a follower's core forwards them
//   to the leader), and answered with the result of applying them here;
// - linearizable reads wait for a ReadIndex round (batched, diss. §6.4) and
//   the local apply to reach it, then read the local store; serializable
//   reads read the local store at once.

import { randomInt } from 'node:crypto';
import { join } from 'node:path';

import { type RaftNode, createNode } from '../node/index.js';
import { LeaderChangedError, NodeFailedError, NodeStoppedError, RequestTimeoutError } from '../node/errors.js';
import { ProposalDroppedError } from '../raft/errors.js';
import { type KvCommand, type KvOperation, KvError, type KvResult, isReadOnlyTxn, validateCommand } from '../kv/index.js';
import type * as kv from '../kv/types.js';
import { TcpTransport } from '../transport/tcp.js';
import type { ServerConfig } from './config.js';
import { type EtcdHandlers, GrpcError, GrpcServer, type ServerCall, addEtcdServices, sessionMetadata } from './grpc.js';
import { gatewayRoutes } from './gateway.js';
import { etcdHashKV } from './hashKV.js';
import { type ClientListener, type Http2ConnectionHandler, httpRoutes, listenClient } from './listen.js';
import type { Logger } from './log.js';
import { ServerMetrics } from './metrics.js';
import { MemberTable, ServerStateMachine, describeCommand } from './stateMachine.js';
import { LOG_TAIL_ENTRIES, UiFeed, buildMemberView, memberHex, recordNodeEvents } from './uiFeed.js';
import { uiStaticRoutes } from './uiStatic.js';
import { GrpcStatus } from './types.js';

/** The version etcd clients see: etcd 3.4's API, served by raftkv. */
export const SERVER_VERSION = '3.4.0+raftkv.0.1.0';

export interface StartOptions {
  readonly log: Logger;
}

export interface RaftkvServer {
  readonly node: RaftNode<KvResult | undefined>;
  readonly clientPorts: readonly number[];
  /** Settles when the member stopped itself on a fatal error (a failed fsync...). */
  readonly failed: Promise<Error>;
  stop(): Promise<void>;
}

/** etcd's errors for requests that did not make it through Raft (rpctypes/error.go). */
function requestError(e: unknown): Error {
  if (e instanceof KvError || e instanceof GrpcError) return e;
  if (e instanceof ProposalDroppedError) {
    if (e.reason === 'no-leader') return new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: no leader');
    if (e.reason === 'transferring') return new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: leader changed');
    if (e.reason === 'uncommitted-limit') return new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: too many requests');
    return new GrpcError(GrpcStatus.UNAVAILABLE, `etcdserver: proposal dropped (${e.reason})`);
  }
  if (e instanceof LeaderChangedError) return new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: leader changed');
  if (e instanceof RequestTimeoutError) return new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: request timed out');
  if (e instanceof NodeStoppedError || e instanceof NodeFailedError) return new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: server stopped');
  return e instanceof Error ? e : new Error(String(e));
}

export async function startServer(config: ServerConfig, options: StartOptions): Promise<RaftkvServer> {
  const log = options.log;
  const startedAt = Date.now();
  const metrics = new ServerMetrics();
  const members = new MemberTable(config.initialCluster.map((m) => ({ id: m.id, name: m.name, peerURLs: [...m.peerURLs], clientURLs: [], isLearner: false })));
  const stateMachine = new ServerStateMachine(members);
  const peers = new Map<number, string>();
  for (const m of config.initialCluster) if (m.id !== config.memberId) peers.set(m.id, m.peerURLs[0]!);

  const transport = new TcpTransport({
    selfId: config.memberId,
    clusterId: config.clusterId,
    listen: config.listenPeerURLs[0]!.toString(),
    peers,
    logger: log.child({ part: 'transport' }),
    random: { int: (n: number) => randomInt(n) },
    onRoundTrip: (peer, ms) => metrics.peerRoundTripSeconds.observe({ To: peer.toString(16) }, ms / 1000),
  });
  const tickMs = config.heartbeatIntervalMs;
  const node = await createNode<KvResult | undefined>({
    id: config.memberId,
    ...(config.initialClusterState === 'new' ? { initialVoters: config.initialCluster.map((m) => m.id) } : { join: true }),
    peers,
    dataDir: join(config.dataDir, 'member'),
    clusterId: config.clusterId.toString(16),
    memberId: config.memberId,
    transport,
    stateMachine,
    tickMs,
    heartbeatTicks: 1,
    electionTicks: Math.max(2, Math.round(config.electionTimeoutMs / tickMs)),
    snapshotCount: config.snapshotCount,
    logger: log.child({ part: 'raft' }),
  });
  // From here on: a node that fails while the member is still starting (a
  // full disk as it catches up) must stop the start, not go unnoticed.
  let resolveFailed!: (e: Error) => void;
  const failed = new Promise<Error>((r) => (resolveFailed = r));
  node.on('fatal', (e) => resolveFailed(e));

  // The visualiser's live feed (GET /ui/events) and its timeline, from the start.
  const feed = new UiFeed({
    memberId: config.memberId,
    name: config.name,
    startedAt,
    log: log.child({ part: 'ui' }),
    view: () =>
      buildMemberView({
        name: config.name,
        status: node.status(),
        electionTimer: node.electionTimer(),
        logTail: node.logTail(LOG_TAIL_ENTRIES),
        describeCommand,
      }),
    sentCounts: () => {
      const counts = new Map<string, number>();
      for (const id of node.peerUrls().keys()) {
        if (id !== config.memberId) counts.set(memberHex(id), transport.peerStatus(id)?.sentMessages ?? 0);
      }
      return counts;
    },
    peers: () => {
      const st = node.status();
      const ids = [...new Set([...st.confState.voters, ...st.confState.votersOutgoing, ...st.confState.learners])];
      return members.list(ids, st.confState.learners, node.peerUrls()).map((m) => ({ id: m.id.toString(16), name: m.name, clientURLs: m.clientURLs }));
    },
  });
  recordNodeEvents(node, feed, config.name);

  // Logs and metrics from the node's events.
  node.on('leaderChange', ({ leader, previous, term }) => {
    metrics.leaderChanges.inc();
    metrics.hasLeader.set(leader !== 0 ? 1 : 0);
    metrics.isLeader.set(leader === config.memberId ? 1 : 0);
    log.info({ leader: leader.toString(16), previous: previous.toString(16), term }, leader === 0 ? 'lost the leader' : 'leader changed');
  });
  node.on('election', ({ term, kind }) => log.info({ term, kind }, kind === 'preVote' ? 'starting a pre-election' : 'starting an election'));
  node.on('persisted', ({ durationMs }) => metrics.walFsyncSeconds.observe(durationMs / 1000));
  node.on('snapshotTaken', (s) => {
    metrics.snapshotsTaken.inc();
    log.info(s, 'snapshot taken');
  });
  node.on('snapshotInstalled', (s) => {
    metrics.snapshotsInstalled.inc();
    log.info(s, 'snapshot installed from the leader');
  });
  node.on('confChangeApplied', ({ index, change, url }) => log.info({ index, change, url }, 'membership change applied'));
  node.on('fatal', (e) => log.error({ err: e }, 'member failed'));

  const header = (revision: number): kv.ResponseHeader => ({
    clusterId: config.clusterId,
    memberId: BigInt(config.memberId),
    revision,
    raftTerm: node.term,
  });

  const propose = async <R>(op: KvOperation, call: ServerCall): Promise<R> => {
    const s = sessionMetadata(call);
    const command: KvCommand = {
      op,
      time: Date.now(),
      ...(s ? { session: { clientId: s.clientId.toString(16).padStart(16, '0'), seq: s.seq, lowestUnackedSeq: s.ack } } : {}),
    };
    validateCommand(command, config.maxTxnOps);
    const entry = stateMachine.encodeKv(command);
    // etcd's check (etcdserver/v3_server.go): a request is bounded in the log
    // by --max-request-bytes, below the gRPC layer's larger receive limit.
    if (entry.byteLength > config.maxRequestBytes) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'etcdserver: request is too large');
    let result: KvResult | undefined;
    try {
      result = await node.propose(entry);
    } catch (e) {
      throw requestError(e);
    }
    if (result instanceof KvError) throw result;
    if (result === undefined) throw new GrpcError(GrpcStatus.INTERNAL, 'raftkv: no result for a key-value command');
    const response = result as unknown as { header: kv.ResponseHeader };
    response.header = header(response.header.revision);
    return response as unknown as R;
  };

  const linearize = async (serializable: boolean): Promise<void> => {
    if (serializable) return;
    try {
      await node.readIndex();
    } catch (e) {
      throw requestError(e);
    }
  };

  const grpc = new GrpcServer({
    maxReceiveMessageBytes: config.maxRequestBytes + 512 * 1024,
    onHandlerError: (e, path) => log.error({ err: e, path }, 'request handler failed'),
  });
  const handlers: EtcdHandlers = {
    range: async (req) => {
      await linearize(req.serializable);
      const res = stateMachine.kv.range(req);
      res.header = header(res.header.revision);
      return res;
    },
    put: (req, call) => propose({ type: 'put', request: req }, call),
    deleteRange: (req, call) => propose({ type: 'deleteRange', request: req }, call),
    txn: async (req, call) => {
      if (!isReadOnlyTxn(req)) return propose({ type: 'txn', request: req }, call);
      validateCommand({ op: { type: 'txn', request: req }, time: 0 }, config.maxTxnOps);
      await linearize(req.success.concat(req.failure).every((op) => 'requestRange' in op && op.requestRange.serializable));
      const res = stateMachine.kv.readTxn(req);
      res.header = header(res.header.revision);
      return res;
    },
    compact: (req, call) => propose({ type: 'compact', request: req }, call),
    increment: (req, call) => propose({ type: 'increment', request: req }, call),
    status: async () => {
      const st = node.status();
      return {
        header: header(stateMachine.kv.revision),
        version: SERVER_VERSION,
        dbSize: stateMachine.kv.sizeBytes,
        leader: BigInt(st.leader),
        raftIndex: st.commit,
        raftTerm: st.term,
        raftAppliedIndex: st.applied,
        errors: node.failure ? [node.failure.message] : [],
        dbSizeInUse: stateMachine.kv.sizeBytes,
        isLearner: st.confState.learners.includes(config.memberId),
      };
    },
    // No header, as etcd 3.4 answers (etcdctl alarm list -w json prints {}).
    alarm: async () => ({ alarms: [] }),
    // Served locally, as etcd does: compare members at one revision.
    hashKV: async (req) => {
      const view = stateMachine.kv.hashView(req.revision);
      return { header: header(view.revision), hash: await etcdHashKV(view.versions), compactRevision: view.compactRevision };
    },
    // etcd's maintenanceServer.MoveLeader: only the leader hands over, to a
    // voter, and answers once it sees the target lead.
    moveLeader: async (req) => {
      const st = node.status();
      if (st.leader !== config.memberId) throw new GrpcError(GrpcStatus.FAILED_PRECONDITION, 'etcdserver: not leader');
      const target = Number(req.targetId);
      if (!st.confState.voters.includes(target) || BigInt(target) !== req.targetId) {
        throw new GrpcError(GrpcStatus.FAILED_PRECONDITION, 'etcdserver: bad leader transferee');
      }
      try {
        await node.transferLeadership(target);
      } catch (e) {
        if (e instanceof RequestTimeoutError) {
          throw new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: request timed out, leader transfer took too long');
        }
        throw requestError(e);
      }
      log.info({ from: memberHex(config.memberId), to: memberHex(target) }, 'leadership moved on request');
      return { header: header(stateMachine.kv.revision) };
    },
    memberList: async () => {
      const st = node.status();
      const ids = [...st.confState.voters, ...st.confState.votersOutgoing, ...st.confState.learners];
      return {
        header: header(0),
        members: members.list([...new Set(ids)], st.confState.learners, node.peerUrls()),
      };
    },
  };
  addEtcdServices(grpc, handlers);

  const routes = httpRoutes({
    '/metrics': async (_req, res) => {
      const m = node.metrics();
      metrics.proposalsCommitted.set(node.status().commit);
      metrics.proposalsApplied.set(node.status().applied);
      metrics.proposalsPending.set(m.proposalsPending);
      metrics.proposalsFailedTotal(m.proposalsFailed);
      metrics.applyLag.set(m.applyLag);
      const { contentType, body } = await metrics.render();
      res.writeHead(200, { 'content-type': contentType }).end(body);
    },
    // etcd's /health: healthy when this member knows a leader and has no alarm.
    '/health': (_req, res) => {
      const st = node.status();
      const reason = st.state !== 'running' ? `member ${st.state}` : st.leader === 0 ? 'RAFT NO LEADER' : '';
      res.writeHead(reason === '' ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ health: reason === '' ? 'true' : 'false', reason }));
    },
    '/ui/events': (req, res) => feed.handle(req, res),
    ...uiStaticRoutes(),
    ...gatewayRoutes({
      handlers,
      maxReceiveMessageBytes: grpc.maxReceiveMessageBytes,
      statusOf: (e, path) => grpc.statusOf(e, path),
    }),
  });
  // Publish this member's name and client URLs through the log, as etcd
  // does, and serve clients only once that entry is applied here: the
  // member has then caught up with the cluster's log at least to that
  // point, so a restarted member never answers (even a serializable read)
  // from a state older than one it served before (etcd's ReadyNotify).
  let stopped = false;
  const publish = async (): Promise<void> => {
    while (!stopped && node.failure === undefined) {
      try {
        await node.propose(stateMachine.encodeMember({ id: config.memberId, name: config.name, clientURLs: [...config.advertiseClientURLs] }));
        log.info({ clientURLs: config.advertiseClientURLs }, 'published this member to the cluster');
        return;
      } catch {
        await new Promise((r) => setTimeout(r, config.heartbeatIntervalMs * 5));
      }
    }
  };
  const listeners: ClientListener[] = [];
  try {
    await publish();
    if (node.failure) throw node.failure;
    const serveGrpc: Http2ConnectionHandler = (socket, head) => grpc.serveConnection(socket, head);
    for (const url of config.listenClientURLs) listeners.push(await listenClient(url, serveGrpc, routes));
    for (const url of config.listenMetricsURLs) listeners.push(await listenClient(url, serveGrpc, routes));
  } catch (e) {
    await Promise.all(listeners.map((l) => l.close()));
    await node.stop();
    throw e;
  }
  log.info(
    {
      member: config.memberId.toString(16),
      cluster: config.clusterId.toString(16),
      clientURLs: config.advertiseClientURLs,
      peerURLs: config.initialAdvertisePeerURLs,
      dataDir: config.dataDir,
    },
    'serving',
  );


  // A leader that stops hands over first, as etcd does on a graceful stop:
  // the others need not wait an election timeout without a leader. The most
  // up-to-date active voter gets it (diss. §3.10); a transfer that does not
  // finish within an election timeout is given up, and the stop goes on.
  const handOverLeadership = async (): Promise<void> => {
    const st = node.status();
    if (st.role !== 'leader' || !st.progress) return;
    let target = 0;
    let best = -1;
    for (const [id, pr] of st.progress) {
      if (id === config.memberId || pr.isLearner || !pr.recentActive || !st.confState.voters.includes(id)) continue;
      if (pr.matchIndex > best) {
        best = pr.matchIndex;
        target = id;
      }
    }
    if (target === 0) return;
    log.info({ to: target.toString(16) }, 'stopping: handing leadership over');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      node.transferLeadership(target).catch((e: unknown) => log.warn({ err: e }, 'leadership hand-over failed')),
      new Promise((r) => (timer = setTimeout(r, config.electionTimeoutMs))),
    ]);
    clearTimeout(timer);
  };

  return {
    node,
    clientPorts: listeners.map((l) => l.port),
    failed,
    async stop() {
      if (stopped) return;
      stopped = true;
      await handOverLeadership();
      feed.close();
      await Promise.all(listeners.map((l) => l.close()));
      await grpc.close(0);
      await node.stop();
      log.info({}, 'stopped');
    },
  };
}
