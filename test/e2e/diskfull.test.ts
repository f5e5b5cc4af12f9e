// A member whose disk fills up: its data directory is a small tmpfs, and
// 1 MiB values are written to the cluster until the member can no longer
// append to its log. It must stop (exit 1, naming the error) rather than
// go on acknowledging what it cannot keep; the other two go on serving;
// restarted on the still full disk it stops again (it must not hang half
// started); given room again and restarted, it recovers what it had (a write cut
// short by the full disk is a torn tail, never corruption), catches up,
// and holds the same history as the others. Nothing acknowledged is lost.
//
// Needs Linux and root (to mount the tmpfs); otherwise it skips and says
// why.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { assertReplicasAgree, logLines, sleep, withCluster } from './fixtures/cluster.js';

/** The full member's disk: room for its first segment's records and little more. */
const SMALL_MIB = 40;
const VALUE = Buffer.alloc(1 << 20, 0x61);

function skipReason(): string | undefined {
  if (process.platform !== 'linux') return 'mounting a tmpfs is done the Linux way';
  if (process.getuid?.() !== 0) return 'mounting a small tmpfs as a full disk needs root';
  const probe = mkdtempSync(join(tmpdir(), 'raftkv-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
  } catch (e) {
    return `cannot mount a tmpfs here: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    rmdirSync(probe);
  }
  return undefined;
}

/**
 * Fills member 3's small disk with 1 MiB puts; `extraFlags` for every
 * member. With a small --snapshot-count the disk fills while a snapshot
 * file is being written; with the default, while the log is appended to.
 */
const fillTheDisk = (extraFlags: readonly string[]) => () =>
  withCluster('diskfull', { size: 3, start: false, extraFlags }, async (tc) => {
    const { cluster } = tc;
    const full = 2;
    const mountPoint = cluster.members[full]!.dataDir;
    mkdirSync(mountPoint, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SMALL_MIB}m`, 'tmpfs', mountPoint]);
    try {
      cluster.startAll();
      await cluster.waitAllHealthy();
      const client = tc.client({ timeoutMs: 10_000 });
      const key = (n: number) => `full/${String(n).padStart(4, '0')}`;

      // Write until the small disk's member has stopped, then a few more.
      let written = 0;
      while (cluster.running(full)) {
        assert.ok(written < 4 * SMALL_MIB, `${cluster.members[full]!.name} still runs after ${written} MiB were written`);
        await client.put(key(written), VALUE);
        written++;
      }
      const stoppedAfter = written;
      for (let n = 0; n < 5; n++) await client.put(key(written++), VALUE);
      const exit = cluster.members[full]!.process!.exitCode;
      assert.equal(exit, 1, 'the member exits with status 1');
      const fatal = logLines(cluster, full, /^member stopped on a fatal error$/);
      assert.equal(fatal.length, 1, 'it logs why it stopped');
      assert.match(JSON.stringify(fatal[0]), /ENOSPC|no space left/i);

      // Restarted on the still full disk it fails again as it catches up, and
      // must exit, not hang half-started.
      const before = cluster.members[full]!.log.length;
      const again = cluster.start(full);
      const status = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 30_000);
        again.once('exit', (code) => (clearTimeout(timer), resolve(code)));
      });
      const restartLog = cluster.members[full]!.log.slice(before);
      assert.equal(status, 1, `restarted on a full disk it exits with status 1 (got ${status}):\n${restartLog.slice(-2000)}`);
      assert.match(restartLog, /^raftkv: node stopped after a fatal storage error: .*(ENOSPC|no space left).*\(NODE_FAILED\)$/m);

      // Room again: it recovers its log and catches up.
      execFileSync('mount', ['-o', 'remount,size=512m', mountPoint]);
      const from = cluster.members[full]!.log.length;
      cluster.start(full);
      await cluster.waitHealthy(full);
      const atFull = tc.client({ endpoints: [cluster.endpoints[full]!], timeoutMs: 10_000 });
      const last = await atFull.get(key(written - 1));
      assert.equal(last.kvs[0]?.value.length, VALUE.length);
      const count = await atFull.get('full/', { prefix: true, countOnly: true, serializable: true });
      assert.equal(count.count, written, `${cluster.members[full]!.name} holds every acknowledged key`);
      await assertReplicasAgree(cluster, client, 'after the full disk');
      // It says what it found on its disk.
      const recovered = logLines(cluster, full, /^recovered the log$/, from);
      assert.equal(recovered.length, 1, 'it logs what it recovered');
      const torn = logLines(cluster, full, /^cut a torn write off the end of the log/, from);
      const leftovers = logLines(cluster, full, /^removed leftovers of interrupted file writes$/, from);
      // Nothing half-written is left lying on its disk (a failed snapshot
      // write removes its own file; an open removes what a crash left).
      const snapDir = join(mountPoint, 'member', 'snap');
      assert.deepEqual(readdirSync(snapDir).filter((n) => n.endsWith('.tmp')), [], `temporary files in ${snapDir}`);
      console.log(
        `disk full: ${cluster.members[full]!.name} on a ${SMALL_MIB} MiB tmpfs stopped after ${stoppedAfter} puts of 1 MiB ` +
          `(${JSON.stringify(fatal[0]?.err ?? fatal[0]).slice(0, 200)}); ${written} acknowledged in all; restarted with room, ` +
          `it holds all of them; recovered ${recovered[0]!.records} records, last index ${recovered[0]!.lastIndex}` +
          (torn.length > 0 ? `; ${String(torn[0]!.msg)}` : '; no torn write') +
          (leftovers.length > 0 ? `; removed ${JSON.stringify(leftovers[0]!.files)}` : ''),
      );
    } finally {
      await cluster.stopAll(2000);
      await sleep(100);
      execFileSync('umount', ['-l', mountPoint]);
    }
  });

describe('a full disk', { skip: skipReason(), timeout: 180_000 }, () => {
  it('stops the member whose log cannot be appended to; the others go on; given room, it recovers and catches up', fillTheDisk([]));
  it('the same when the disk fills during a snapshot', fillTheDisk(['--snapshot-count', '12']));
});
