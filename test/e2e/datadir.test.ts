// A member refuses a data directory it cannot trust, and says why in one
// line an operator can act on (no stack trace): a log of another cluster,
// and a log damaged in the middle (synced data lost: serving from it could
// forget acknowledged entries). `raftkv wal verify` names the same damage.
// And a directory a running member holds is refused to a second one.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { freePort } from '../../src/cli/localCluster.js';
import { withCluster } from './fixtures/cluster.js';

const MAIN = join(process.cwd(), 'dist/src/cli/main.js');

describe('a data directory a member cannot trust', { timeout: 120_000 }, () => {
  it('is refused in one line naming what is wrong: another cluster, a damaged record', () =>
    withCluster('datadir', { size: 1 }, async (tc) => {
      const { cluster } = tc;
      const client = tc.client();
      for (let i = 0; i < 200; i++) await client.put(`dd/${i}`, `value ${i}`);
      await cluster.stop(0);
      const flags = cluster.flags(0);
      const serve = (extra: readonly string[] = []) => spawnSync(process.execPath, [MAIN, 'serve', ...flags, ...extra], { encoding: 'utf8', timeout: 30_000 });
      const oneLine = (stderr: string) => {
        const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
        assert.equal(lines.length, 1, `one line, no stack trace:\n${stderr}`);
        return lines[0]!;
      };

      // Another cluster's member (another token, so another cluster id) on this directory.
      const foreign = serve(['--initial-cluster-token', 'another-cluster']);
      assert.equal(foreign.status, 1);
      assert.match(oneLine(foreign.stderr), /^raftkv: .*cluster.*\(WAL_[A-Z_]+; `raftkv wal verify <data-dir>` checks the directory\)$/);

      // A flipped bit in a record in the middle of the log, later writes after it.
      const dataDir = cluster.members[0]!.dataDir;
      const dump = spawnSync(process.execPath, [MAIN, 'wal', 'dump', dataDir], { encoding: 'utf8' });
      const entries = [...dump.stdout.matchAll(/^(\S+\.wal)$|^\s+(\d+)\s+entry\s+(\d+)/gm)];
      let file = '';
      const records: { file: string; offset: number; index: number }[] = [];
      for (const m of entries) {
        if (m[1]) file = m[1];
        else records.push({ file, offset: Number(m[2]), index: Number(m[3]) });
      }
      assert.ok(records.length > 150, `${records.length} entries in the dump`);
      const victim = records[Math.floor(records.length / 2)]!;
      const path = join(dataDir, 'member', 'wal', victim.file);
      const bytes = readFileSync(path);
      bytes[victim.offset + 20]! ^= 0x04; // inside the record's payload
      writeFileSync(path, bytes);

      const damaged = serve();
      assert.equal(damaged.status, 1);
      const line = oneLine(damaged.stderr);
      const named = new RegExp(`^raftkv: write-ahead log corrupt: ${victim.file.replace('.', '\\.')} at offset ${victim.offset} \\(index ${victim.index}\\): .*\\(WAL_CORRUPT; `);
      assert.match(line, named);
      const verify = spawnSync(process.execPath, [MAIN, 'wal', 'verify', dataDir], { encoding: 'utf8' });
      assert.equal(verify.status, 1);
      assert.match(verify.stdout, new RegExp(`CORRUPT: write-ahead log corrupt: ${victim.file.replace('.', '\\.')} at offset ${victim.offset} \\(index ${victim.index}\\)`));
      console.log(`data dir: another cluster: ${oneLine(foreign.stderr)}\ndata dir: damaged: ${line}`);
    }));

  it('in use by a running member is refused to a second one, which touches nothing of it', () =>
    withCluster('datadir-lock', { size: 1 }, async (tc) => {
      const { cluster } = tc;
      const client = tc.client();
      for (let i = 0; i < 50; i++) await client.put(`lock/${i}`, `v${i}`);
      const walDir = join(cluster.members[0]!.dataDir, 'member', 'wal');
      const before = readdirSync(walDir).sort();
      // The same member started again by mistake (its ports elsewhere, so
      // only the directory is shared): it opened the log and removed the
      // running member's preallocated next segment as a "leftover".
      const [client2, peer2] = [await freePort(), await freePort()];
      const flags = cluster.flags(0).map((f) =>
        f.replace(/127\.0\.0\.1:\d+/, (hostPort) => (hostPort === new URL(cluster.members[0]!.clientURL).host ? `127.0.0.1:${client2}` : `127.0.0.1:${peer2}`)),
      );
      const second = spawnSync(process.execPath, [MAIN, 'serve', ...flags], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(second.status, 1, second.stderr);
      const lines = second.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
      assert.equal(lines.length, 1, second.stderr);
      assert.match(lines[0]!, new RegExp(`^raftkv: .* is in use by another process \\(pid ${cluster.members[0]!.process!.pid}\\).*\\(DATA_DIR_LOCKED\\)$`));
      assert.deepEqual(readdirSync(walDir).sort(), before, 'the running member\'s files are as they were');
      // The first goes on, and after kill -9 its restart takes the lock over.
      for (let i = 50; i < 100; i++) await client.put(`lock/${i}`, `v${i}`);
      cluster.members[0]!.process!.kill('SIGKILL');
      await cluster.stop(0);
      cluster.start(0);
      await cluster.waitAllHealthy(20_000);
      const all = await client.get('lock/', { prefix: true, countOnly: true });
      assert.equal(all.count, 100);
      console.log(`data dir in use: ${lines[0]}`);
    }));
});
