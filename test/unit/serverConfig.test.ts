// `raftkv serve`'s flags (etcd's names, defaults and checks) and the client
// port that serves gRPC and plain HTTP side by side.

import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { describe, it } from 'node:test';

import { SERVE_FLAGS, clusterIdOf, memberIdOf, serverConfig } from '../../src/server/config.js';
import { httpRoutes, listenClient } from '../../src/server/listen.js';
import { GrpcServer } from '../../src/server/grpc.js';
import { UsageError, parseFlags } from '../../src/cli/args.js';

const parse = (...argv: string[]) => serverConfig(parseFlags(argv, SERVE_FLAGS, 'serve', true));

const THREE = 'a=http://127.0.0.1:12380,b=http://127.0.0.1:22380,c=http://127.0.0.1:32380';

describe('serve flags', () => {
  it("takes etcd's defaults", () => {
    const c = parse();
    assert.equal(c.name, 'default');
    assert.equal(c.dataDir, 'default.etcd');
    assert.deepEqual(c.advertiseClientURLs, ['http://localhost:2379']);
    assert.equal(c.initialCluster.length, 1);
    assert.equal(c.heartbeatIntervalMs, 100);
    assert.equal(c.electionTimeoutMs, 1000);
    assert.equal(c.snapshotCount, 10000);
    assert.equal(c.maxRequestBytes, 1572864);
    assert.equal(c.maxTxnOps, 128);
    assert.equal(c.initialClusterState, 'new');
  });

  it('reads a three-member cluster, with -flag or --flag=value', () => {
    const c = parse('-name', 'b', '--initial-cluster=' + THREE, '--initial-advertise-peer-urls', 'http://127.0.0.1:22380', '--data-dir', '/tmp/b');
    assert.equal(c.initialCluster.length, 3);
    assert.equal(c.memberId, c.initialCluster[1]!.id);
    assert.ok(Number.isSafeInteger(c.memberId) && c.memberId > 0);
    assert.equal(c.dataDir, '/tmp/b');
  });

  it('derives ids from peer URLs and the token, as etcd does', () => {
    const a = memberIdOf(['http://127.0.0.1:12380'], 'etcd-cluster');
    assert.equal(a, memberIdOf(['http://127.0.0.1:12380'], 'etcd-cluster'));
    assert.notEqual(a, memberIdOf(['http://127.0.0.1:12380'], 'other-token'));
    assert.equal(clusterIdOf([3, 1, 2]), clusterIdOf([1, 2, 3]));
    const one = parse('--name', 'a', '--initial-cluster', THREE, '--initial-advertise-peer-urls', 'http://127.0.0.1:12380');
    const other = parse('--name', 'a', '--initial-cluster', THREE, '--initial-advertise-peer-urls', 'http://127.0.0.1:12380', '--initial-cluster-token', 't2');
    assert.notEqual(one.clusterId, other.clusterId);
  });

  const bad: [string[], RegExp][] = [
    [['--nmae', 'x'], /unknown flag --nmae/],
    [['--heartbeat-interval', 'fast'], /--heartbeat-interval must be an integer/],
    [['--election-timeout', '300'], /--election-timeout\[300ms\] should be at least 5 times --heartbeat-interval\[100ms\]/],
    [['--listen-client-urls', 'localhost:2379'], /--listen-client-urls: "localhost:2379" must use http:\/\//],
    [['--listen-client-urls', 'https://127.0.0.1:2379'], /TLS is not supported/],
    [['--listen-client-urls', 'http://127.0.0.1'], /has no port/],
    [['--name', 'z', '--initial-cluster', THREE], /no member named "z"/],
    [['--name', 'a', '--initial-cluster', THREE], /--initial-advertise-peer-urls is http:\/\/localhost:2380: they must match/],
    [['--initial-cluster-state', 'old'], /must be "new" or "existing"/],
    [['--initial-cluster', 'a'], /"a" is not name=URL/],
    [['--snapshot-count', '0'], /--snapshot-count must be at least 1/],
    [['--log-level', 'loud'], /--log-level must be one of/],
  ];
  for (const [argv, message] of bad) {
    it(`refuses ${argv.join(' ')}`, () => {
      assert.throws(() => parse(...argv), (e: unknown) => e instanceof UsageError && message.test(e.message));
    });
  }
});

describe('client port', () => {
  it('serves HTTP/2 and HTTP/1.1 on one port, routed by the connection preface', async () => {
    const grpc = new GrpcServer();
    const h1 = httpRoutes({ '/health': (_req, res) => void res.end('over h1') });
    const l = await listenClient(new URL('http://127.0.0.1:0'), (socket, head) => grpc.serveConnection(socket, head), h1);
    try {
      const session = http2.connect(`http://127.0.0.1:${l.port}`);
      for (let i = 0; i < 3; i++) {
        // The gRPC server answers anything but a POST with 405.
        const req = session.request({ ':path': '/x' });
        const status = await new Promise((r) => req.on('response', (h) => r(h[':status'])));
        assert.equal(status, 405);
        await new Promise((r) => req.on('close', r));
      }
      session.close();
      const ok = await fetch(`http://127.0.0.1:${l.port}/health`);
      assert.equal(await ok.text(), 'over h1');
      const missing = await fetch(`http://127.0.0.1:${l.port}/nope`);
      assert.equal(missing.status, 404);
    } finally {
      await l.close();
      await grpc.close(0);
    }
  });
});
