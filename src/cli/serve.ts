// `raftkv serve`: one member of a raftkv cluster, started with etcd's flags.
// It runs until SIGINT or SIGTERM, then stops gracefully: it stops taking
// requests, finishes the disk write in flight and closes the log. A fatal
// error (the disk refused a write: full, failing) stops it too, with exit
// status 1, as etcd exits when it cannot write its WAL: a member that can
// no longer persist must not keep its ports open and look alive to
// clients, load balancers and whatever supervises it.

import { SERVE_FLAGS, serverConfig } from '../server/config.js';
import { createLogger } from '../server/log.js';
import { startServer } from '../server/server.js';
import { type FlagSpec, formatHelp, parseFlags } from './args.js';

const FLAGS: Record<string, FlagSpec> = { ...SERVE_FLAGS, help: { kind: 'boolean', help: 'show this help' } };

export async function serveCommand(argv: readonly string[]): Promise<number> {
  const f = parseFlags(argv, FLAGS, 'serve', true);
  if (f.help) {
    process.stdout.write(formatHelp("usage: raftkv serve [etcd's flags]", FLAGS));
    return 0;
  }
  const config = serverConfig(f);
  const log = createLogger(config.logLevel, { name: config.name });
  const server = await startServer(config, { log });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: Record<string, unknown>, status: number): void => {
      if (stopping) return;
      stopping = true;
      log.info(why, 'stopping');
      server.stop().then(
        () => resolve(status),
        (e: unknown) => {
          log.error({ err: e }, 'stop failed');
          resolve(1);
        },
      );
    };
    process.once('SIGINT', () => stop({ signal: 'SIGINT' }, 0));
    process.once('SIGTERM', () => stop({ signal: 'SIGTERM' }, 0));
    server.failed.then((e) => {
      log.error({ err: e }, 'member stopped on a fatal error');
      stop({ fatal: e.message }, 1);
    });
  });
}
