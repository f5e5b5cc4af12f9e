// `raftkv local` (what `npm start` runs): a 3-member raftkv cluster on this
// machine, as three `raftkv serve` processes with etcd's flags. It prints the
// endpoints and a ready-to-paste etcdctl line, keeps each member's log in its
// data directory, and stops every member cleanly on Ctrl-C.

import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { type FlagSpec, UsageError, formatHelp, parseFlags } from './args.js';
import { LocalCluster } from './localCluster.js';

const FLAGS: Record<string, FlagSpec> = {
  size: { kind: 'integer', help: 'members', default: '3' },
  'data-dir': { kind: 'string', help: 'folder for the members\' data directories and logs', default: './raftkv-data' },
  'client-port': { kind: 'integer', help: 'first client port (member i: +i; peer ports: +100+i)', default: '2379' },
  help: { kind: 'boolean', help: 'show this help' },
};

export async function localCommand(argv: readonly string[]): Promise<number> {
  const f = parseFlags(argv, FLAGS, 'local');
  if (f.help) {
    process.stdout.write(formatHelp('usage: raftkv local [--size N] [--data-dir DIR] [--client-port P]', FLAGS));
    return 0;
  }
  const size = (f.size as number | undefined) ?? 3;
  if (size < 1 || size > 9) throw new UsageError(`local: --size must be 1 to 9, got ${size}`);
  const dataDir = resolve((f['data-dir'] as string | undefined) ?? './raftkv-data');
  const clientPort = (f['client-port'] as number | undefined) ?? 2379;
  mkdirSync(dataDir, { recursive: true });

  const cluster = await LocalCluster.create({ size, dataDir, clientPort, host: '127.0.0.1', token: 'raftkv-local' });
  cluster.startAll();
  cluster.members.forEach((m, i) => {
    const out = createWriteStream(join(m.dataDir, 'member.log'), { flags: 'a' });
    cluster.members[i]!.process!.stdout!.pipe(out);
    cluster.members[i]!.process!.stderr!.pipe(out);
  });
  process.stdout.write(`raftkv: starting ${size} members, data in ${dataDir}\n`);
  try {
    await cluster.waitAllHealthy(30000);
  } catch (e) {
    process.stderr.write(`raftkv: the cluster did not come up: ${(e as Error).message}\n`);
    await cluster.stopAll();
    return 1;
  }
  const endpoints = cluster.endpoints.map((e) => e.replace('http://', '')).join(',');
  process.stdout.write(
    [
      '',
      `raftkv: ${size} members up`,
      ...cluster.members.map((m) => `  ${m.name}  client ${m.clientURL}  peer ${m.peerURL}  log ${join(m.dataDir, 'member.log')}`),
      '',
      'try:',
      `  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} put greeting hello`,
      `  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} get greeting`,
      `  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} endpoint status -w table`,
      `  npx raftkv inc visits --endpoints ${endpoints}`,
      `  metrics: ${cluster.members[0]!.clientURL}/metrics   health: ${cluster.members[0]!.clientURL}/health`,
      '',
      `visualiser: ${cluster.members[0]!.clientURL}/ui/`,
      '',
      'Ctrl-C stops the cluster (the data stays; starting again rejoins it).',
      '',
    ].join('\n'),
  );
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      process.stdout.write('\nraftkv: stopping the members...\n');
      cluster.stopAll().then(() => {
        process.stdout.write('raftkv: stopped\n');
        resolveExit(0);
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    cluster.members.forEach((m, i) =>
      m.process!.once('exit', (code, signal) => {
        if (stopping) return;
        process.stderr.write(`raftkv: member ${m.name} exited (${code ?? signal}); its log: ${join(cluster.members[i]!.dataDir, 'member.log')}\n`);
      }),
    );
  });
}
