// etcd's v3 wire as real clients see it: the lean gRPC server
// (src/server/grpc.ts) with an in-memory fake of the key-value layer,
// driven by (a) etcdctl 3.4 (/usr/bin/etcdctl, a separate process), (b) the
// etcd3 npm client (on @grpc/grpc-js), (c) raftkv's own client. Outputs,
// exit codes and error messages are checked as etcdctl prints them.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';

import { Etcd3, GRPCInvalidArgumentError } from 'etcd3';

import { GrpcStatusError, RaftKvClient } from '../../src/client/index.js';
import { type EtcdHandlers, GrpcError, GrpcServer, type GrpcServerOptions, addEtcdServices } from '../../src/server/grpc.js';
import { GrpcStatus } from '../../src/server/types.js';
import { CLUSTER_ID, FAKE_HASH, FakeEtcd, MEMBER_ID } from './fixtures/etcdFake.js';

function findEtcdctl(): string | undefined {
  for (const path of [process.env.ETCDCTL_BIN, '/usr/bin/etcdctl', '/usr/local/bin/etcdctl']) {
    if (path === undefined) continue;
    try {
      const v = execFileSync(path, ['version'], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
      if (/etcdctl version: 3\./.test(v)) return path;
    } catch {
      // not there, or not runnable
    }
  }
  return undefined;
}

const ETCDCTL = findEtcdctl();
const SKIP_ETCDCTL = ETCDCTL === undefined ? 'etcdctl not found: run scripts/install-deps.sh' : false;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function etcdctl(port: number, args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      ETCDCTL!,
      [`--endpoints=127.0.0.1:${port}`, '--dial-timeout=2s', '--command-timeout=3s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 15000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

/** The last line etcdctl wrote to stderr (it logs retries as JSON lines before its "Error: ..." line). */
function lastError(r: Run): string {
  return r.stderr.trim().split('\n').at(-1) ?? '';
}

async function serve(handlers: EtcdHandlers, options: GrpcServerOptions = {}): Promise<{ server: GrpcServer; port: number }> {
  const server = new GrpcServer(options);
  addEtcdServices(server, handlers);
  const { port } = await server.listen(0);
  return { server, port };
}

describe('etcdctl 3.4 against the lean gRPC server', { skip: SKIP_ETCDCTL }, () => {
  const fake = new FakeEtcd();
  let server: GrpcServer;
  let port: number;

  before(async () => {
    ({ server, port } = await serve(fake.handlers()));
  });
  after(() => server.close(100));

  it('put, get, get --prefix, get -w json and del', async () => {
    assert.deepEqual(await etcdctl(port, ['put', 'foo', 'bar']), { code: 0, stdout: 'OK\n', stderr: '' });
    await etcdctl(port, ['put', 'foo/a', '1']);
    await etcdctl(port, ['put', 'foo/b', 'two words']);
    assert.equal((await etcdctl(port, ['get', 'foo'])).stdout, 'foo\nbar\n');
    assert.equal((await etcdctl(port, ['get', '--prefix', 'foo/'])).stdout, 'foo/a\n1\nfoo/b\ntwo words\n');
    assert.equal((await etcdctl(port, ['get', '--print-value-only', 'foo/b'])).stdout, 'two words\n');
    const missing = await etcdctl(port, ['get', 'nope']);
    assert.deepEqual(missing, { code: 0, stdout: '', stderr: '' });

    const json = await etcdctl(port, ['get', 'foo', '-w', 'json']);
    assert.equal(json.code, 0);
    // uint64 ids are beyond JSON numbers' precision: check them in the text.
    assert.match(json.stdout, new RegExp(`"cluster_id":${CLUSTER_ID},"member_id":${MEMBER_ID},"revision":${fake.revision},"raft_term":3`));
    const parsed = JSON.parse(json.stdout) as { kvs: { key: string; value: string; version: number }[]; count: number };
    assert.equal(parsed.count, 1);
    assert.equal(Buffer.from(parsed.kvs[0]!.key, 'base64').toString(), 'foo');
    assert.equal(Buffer.from(parsed.kvs[0]!.value, 'base64').toString(), 'bar');

    assert.deepEqual(await etcdctl(port, ['del', '--prefix', 'foo/']), { code: 0, stdout: '2\n', stderr: '' });
    assert.equal((await etcdctl(port, ['get', '--prefix', 'foo/'])).stdout, '');
  });

  it('prints etcd\'s error for an empty key and exits 1', async () => {
    const r = await etcdctl(port, ['put', '', 'x']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(lastError(r), 'Error: etcdserver: key is not provided');
  });

  it('txn from stdin: compares, success and failure branches', async () => {
    await etcdctl(port, ['put', 'tk', 'v1']);
    const ok = await etcdctl(port, ['txn'], 'value("tk") = "v1"\nversion("none") = "0"\n\nput tk2 yes\nget tk\ndel none\n\nput tk no\n\n');
    assert.deepEqual(ok, { code: 0, stdout: 'SUCCESS\n\nOK\n\ntk\nv1\n\n0\n', stderr: '' });
    const failed = await etcdctl(port, ['txn'], 'value("tk") = "other"\n\nput tk2 yes\n\nput tk no\n\n');
    assert.deepEqual(failed, { code: 0, stdout: 'FAILURE\n\nOK\n', stderr: '' });
    assert.equal((await etcdctl(port, ['get', 'tk', '--print-value-only'])).stdout, 'no\n');
  });

  it('compaction', async () => {
    const rev = fake.revision;
    assert.deepEqual(await etcdctl(port, ['compaction', String(rev)]), { code: 0, stdout: `compacted revision ${rev}\n`, stderr: '' });
    assert.equal(fake.compacted, rev);
    const again = await etcdctl(port, ['compaction', String(rev)]);
    assert.equal(again.code, 1);
    assert.equal(lastError(again), 'Error: etcdserver: mvcc: required revision has been compacted');
  });

  it('endpoint status -w json and the table', async () => {
    const r = await etcdctl(port, ['endpoint', 'status', '-w', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^\\[\\{"Endpoint":"127.0.0.1:${port}","Status":\\{"header":\\{"cluster_id":${CLUSTER_ID},"member_id":${MEMBER_ID},`));
    assert.match(r.stdout, new RegExp(`"version":"3.4.0","dbSize":20480,"leader":${MEMBER_ID},"raftIndex":\\d+,"raftTerm":3,"raftAppliedIndex":\\d+,"dbSizeInUse":16384\\}\\}\\]`));
    const table = await etcdctl(port, ['endpoint', 'status']);
    assert.match(table.stdout, new RegExp(`^127.0.0.1:${port}, ${MEMBER_ID.toString(16)}, 3.4.0, 20 kB, true, false, 3, \\d+, \\d+, \\n$`));
  });

  it('endpoint hashkv: a hash above 2^31 arrives unsigned', async () => {
    const r = await etcdctl(port, ['endpoint', 'hashkv', '-w', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^\\[\\{"Endpoint":"127.0.0.1:${port}","HashKV":\\{"header":\\{"cluster_id":${CLUSTER_ID},.*"hash":${FAKE_HASH}`));
    assert.equal((await etcdctl(port, ['endpoint', 'hashkv'])).stdout, `127.0.0.1:${port}, ${FAKE_HASH}\n`);
  });

  it('endpoint health', async () => {
    const r = await etcdctl(port, ['endpoint', 'health']);
    assert.equal(r.code, 0);
    assert.match(r.stderr, new RegExp(`^127.0.0.1:${port} is healthy: successfully committed proposal: took = `));
    const json = await etcdctl(port, ['endpoint', 'health', '-w', 'json']);
    assert.match(json.stdout, new RegExp(`^\\[\\{"endpoint":"127.0.0.1:${port}","health":true,"took":"[^"]+"\\}\\]`));
  });

  it('member list -w json and the table', async () => {
    const r = await etcdctl(port, ['member', 'list', '-w', 'json']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`"members":\\[\\{"ID":${MEMBER_ID},"name":"node1","peerURLs":\\["http://127.0.0.1:2380"\\],"clientURLs":\\["http://127.0.0.1:2379"\\]\\}\\]`));
    const table = await etcdctl(port, ['member', 'list']);
    assert.equal(table.stdout, `${MEMBER_ID.toString(16)}, started, node1, http://127.0.0.1:2380, http://127.0.0.1:2379, false\n`);
  });

  it('alarm list (etcd 3.5+ endpoint health also asks for alarms)', async () => {
    assert.deepEqual(await etcdctl(port, ['alarm', 'list']), { code: 0, stdout: '', stderr: '' });
    fake.alarms = [{ memberId: MEMBER_ID, alarm: 1 }];
    try {
      assert.equal((await etcdctl(port, ['alarm', 'list'])).stdout, `memberID:${MEMBER_ID} alarm:NOSPACE \n`);
    } finally {
      fake.alarms = [];
    }
  });

  it('calls only the methods raftkv serves', () => {
    const served = new Set([
      '/etcdserverpb.KV/Range',
      '/etcdserverpb.KV/Put',
      '/etcdserverpb.KV/DeleteRange',
      '/etcdserverpb.KV/Txn',
      '/etcdserverpb.KV/Compact',
      '/etcdserverpb.Maintenance/Status',
      '/etcdserverpb.Maintenance/Alarm',
      '/etcdserverpb.Maintenance/HashKV',
      '/etcdserverpb.Cluster/MemberList',
    ]);
    assert.ok(fake.calls.length > 10);
    for (const c of fake.calls) assert.ok(served.has(c), c);
  });
});

describe('etcdctl 3.4: errors, health and deadlines', { skip: SKIP_ETCDCTL }, () => {
  const fake = new FakeEtcd();
  let rangeBehaviour: 'permission denied' | 'unavailable' | 'crash' | 'hang' = 'hang';
  let server: GrpcServer;
  let port: number;

  before(async () => {
    const handlers = fake.handlers();
    handlers.range = () => {
      switch (rangeBehaviour) {
        case 'permission denied':
          throw new GrpcError(GrpcStatus.PERMISSION_DENIED, 'etcdserver: permission denied');
        case 'unavailable':
          throw new GrpcError(GrpcStatus.UNAVAILABLE, 'etcdserver: request timed out');
        case 'crash':
          throw new Error('not for the client to see');
        case 'hang':
          return new Promise(() => {});
      }
    };
    // The 'crash' case is logged through onHandlerError; keep the test output clean.
    ({ server, port } = await serve(handlers, { onHandlerError: () => {} }));
  });
  after(() => server.close(100));

  it('counts "permission denied" as healthy, as etcdctl 3.4 does', async () => {
    rangeBehaviour = 'permission denied';
    const r = await etcdctl(port, ['endpoint', 'health']);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /is healthy/);
  });

  it('reports an endpoint whose reads fail as unhealthy', async () => {
    rangeBehaviour = 'unavailable';
    const r = await etcdctl(port, ['endpoint', 'health', '--command-timeout=1s']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`127.0.0.1:${port} is unhealthy: failed to commit proposal: `));
    assert.match(lastError(r), /^Error: unhealthy cluster$/);
  });

  it('shows other errors as gRPC statuses, without the server\'s details', async () => {
    rangeBehaviour = 'crash';
    const r = await etcdctl(port, ['get', 'k']);
    assert.equal(r.code, 1);
    assert.equal(lastError(r), 'Error: rpc error: code = Unknown desc = raftkv: internal server error');
  });

  it('gives up at its command timeout with "context deadline exceeded"', async () => {
    rangeBehaviour = 'hang';
    const t0 = performance.now();
    const r = await etcdctl(port, ['get', 'k', '--command-timeout=300ms']);
    assert.equal(r.code, 1);
    assert.equal(lastError(r), 'Error: context deadline exceeded');
    assert.ok(performance.now() - t0 < 5000);
  });
});

describe('the etcd3 npm client against the lean gRPC server', () => {
  const fake = new FakeEtcd();
  let server: GrpcServer;
  let client: Etcd3;

  before(async () => {
    const s = await serve(fake.handlers());
    server = s.server;
    client = new Etcd3({ hosts: `http://127.0.0.1:${s.port}` });
  });
  after(async () => {
    client.close();
    await server.close(100);
  });

  it('put, get, prefix, delete', async () => {
    await client.put('e/1').value('one');
    await client.put('e/2').value('two');
    assert.equal(await client.get('e/1').string(), 'one');
    assert.deepEqual(await client.getAll().prefix('e/').strings(), { 'e/1': 'one', 'e/2': 'two' });
    assert.equal(await client.getAll().prefix('e/').count(), 2);
    const del = await client.delete().prefix('e/');
    assert.equal(del.deleted, '2');
    assert.equal(await client.get('e/1').string(), null);
  });

  it('txn through its if/then/else builder', async () => {
    await client.put('t').value('a');
    const r = await client.if('t', 'Value', '==', 'a').then(client.put('t').value('b')).else(client.put('t').value('c')).commit();
    assert.equal(r.succeeded, true);
    assert.equal(await client.get('t').string(), 'b');
    const r2 = await client.if('t', 'Version', '>', 5).then(client.put('t').value('x')).else(client.get('t')).commit();
    assert.equal(r2.succeeded, false);
    assert.equal(Buffer.from(r2.responses[0]!.response_range!.kvs[0]!.value).toString(), 'b');
  });

  it('maintenance status, member list and errors', async () => {
    const st = await client.maintenance.status();
    assert.equal(st.version, '3.4.0');
    assert.equal(st.leader, String(MEMBER_ID));
    const members = await client.cluster.memberList({});
    assert.equal(members.members[0]!.name, 'node1');
    assert.equal(members.members[0]!.ID, String(MEMBER_ID));
    await assert.rejects(async () => await client.put('').value('x'), (e: unknown) => e instanceof GRPCInvalidArgumentError && e.message === '3 INVALID_ARGUMENT: etcdserver: key is not provided');
  });
});

describe('raftkv\'s client against the lean gRPC server', () => {
  it('put, get, increment, errors, status and members', async () => {
    const fake = new FakeEtcd();
    const { server, port } = await serve(fake.handlers());
    const client = new RaftKvClient({ endpoints: [`127.0.0.1:${port}`] });
    try {
      await client.put('k', 'v');
      assert.equal(Buffer.from((await client.get('k')).kvs[0]!.value).toString(), 'v');
      assert.equal((await client.increment('n', 41)).value, 41);
      assert.equal((await client.increment('n')).value, 42);
      await assert.rejects(client.put('', 'v'), (e: unknown) => e instanceof GrpcStatusError && e.message === 'etcdserver: key is not provided');
      assert.equal((await client.status()).header.clusterId, CLUSTER_ID);
      assert.equal((await client.memberList()).members.length, 1);
      assert.equal(fake.sessions.filter((s) => s?.clientId.toString(16).padStart(16, '0') === client.clientId).length, 3);
    } finally {
      client.close();
      await server.close(100);
    }
  });
});
