// The member's Prometheus metrics, under etcd's names where etcd has the
// metric (server/etcdserver/metrics.go, server/storage/wal/metrics.go,
// server/etcdserver/api/rafthttp/metrics.go), so dashboards and alerts
// written for etcd work unchanged; raftkv's own carry a raftkv_ prefix.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly hasLeader: Gauge;
  readonly isLeader: Gauge;
  readonly leaderChanges: Counter;
  readonly proposalsCommitted: Gauge;
  readonly proposalsApplied: Gauge;
  readonly proposalsPending: Gauge;
  /** Fed from the node's running total at each scrape (proposalsFailedTotal). */
  readonly proposalsFailed: Counter;
  private proposalsFailedReported = 0;
  readonly applyLag: Gauge;
  readonly walFsyncSeconds: Histogram;
  readonly peerRoundTripSeconds: Histogram;
  readonly snapshotsTaken: Counter;
  readonly snapshotsInstalled: Counter;

  constructor(defaultMetrics = true) {
    const registers = [this.registry];
    this.hasLeader = new Gauge({ name: 'etcd_server_has_leader', help: 'Whether or not a leader exists. 1 is existence, 0 is not.', registers });
    this.isLeader = new Gauge({ name: 'etcd_server_is_leader', help: 'Whether or not this member is a leader. 1 if is, 0 otherwise.', registers });
    this.leaderChanges = new Counter({ name: 'etcd_server_leader_changes_seen_total', help: 'The number of leader changes seen.', registers });
    this.proposalsCommitted = new Gauge({ name: 'etcd_server_proposals_committed_total', help: 'The total number of consensus proposals committed.', registers });
    this.proposalsApplied = new Gauge({ name: 'etcd_server_proposals_applied_total', help: 'The total number of consensus proposals applied.', registers });
    this.proposalsPending = new Gauge({ name: 'etcd_server_proposals_pending', help: 'The current number of pending proposals to commit.', registers });
    this.proposalsFailed = new Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers });
    this.applyLag = new Gauge({ name: 'raftkv_server_apply_lag_entries', help: 'Committed entries not yet applied on this member.', registers });
    this.walFsyncSeconds = new Histogram({
      name: 'etcd_disk_wal_fsync_duration_seconds',
      help: 'The latency distributions of fsync called by WAL.',
      // etcd's buckets: 1 ms doubling to about 8 s.
      buckets: Array.from({ length: 14 }, (_, i) => 0.001 * 2 ** i),
      registers,
    });
    this.peerRoundTripSeconds = new Histogram({
      name: 'etcd_network_peer_round_trip_time_seconds',
      help: 'Round-Trip-Time histogram between peers',
      labelNames: ['To'],
      buckets: Array.from({ length: 16 }, (_, i) => 0.0001 * 2 ** i),
      registers,
    });
    this.snapshotsTaken = new Counter({ name: 'raftkv_server_snapshots_taken_total', help: 'Snapshots this member took of its state machine.', registers });
    this.snapshotsInstalled = new Counter({ name: 'raftkv_server_snapshots_installed_total', help: 'Snapshots received from a leader and installed.', registers });
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The node's running total of failed proposals: a Counter only goes up, so it is given what is new since the last call. */
  proposalsFailedTotal(total: number): void {
    if (total > this.proposalsFailedReported) this.proposalsFailed.inc(total - this.proposalsFailedReported);
    this.proposalsFailedReported = total;
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
