#!/usr/bin/env node
// The `raftkv` command.

import { demoCommand } from './demo.js';
import { UsageError } from './args.js';
import { simCommand } from './sim.js';
import { walCommand } from './wal.js';
import { serveCommand } from './serve.js';
import { localCommand } from './local.js';
import { kvCommand } from './kv.js';
import { DataDirLockedError, StorageError } from '../storage/errors.js';

const COMMANDS: Record<string, { run: (argv: readonly string[]) => Promise<number>; help: string }> = {
  sim: { run: simCommand, help: 'run the deterministic cluster simulator (one seed, or a sweep)' },
  demo: { run: demoCommand, help: 'watch a simulated cluster live in the terminal' },
  serve: { run: serveCommand, help: "run one member of a raftkv cluster (etcd's flags)" },
  local: { run: localCommand, help: 'run a local 3-member cluster (what npm start runs)' },
  put: { run: kvCommand('put'), help: 'put KEY VALUE into a cluster (--endpoints)' },
  get: { run: kvCommand('get'), help: 'get KEY (or --prefix) from a cluster' },
  del: { run: kvCommand('del'), help: 'delete KEY (or --prefix)' },
  inc: { run: kvCommand('inc'), help: 'atomically increment the decimal integer at KEY' },
  wal: { run: walCommand, help: 'verify or dump a data directory (write-ahead log and snapshots)' },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.help}`);
  return `usage: raftkv <command> [flags]\n\ncommands:\n${rows.join('\n')}\n\nraftkv <command> --help shows a command's flags.\n`;
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) throw new UsageError(`unknown command "${name}"\n\n${usage()}`);
  return cmd.run(rest);
}

/**
 * What a command that failed prints. An error with a stable code is one
 * the operator can act on (a damaged data directory, a port in use, a full
 * disk): its message and code, without a stack trace; anything else is a
 * bug, printed with its stack.
 */
function describeFailure(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[A-Z][A-Z0-9_]+$/.test(code)) return e.stack ?? e.message;
  // Damage is for `wal verify` to show; a directory in use is not damaged.
  const hint = e instanceof StorageError && !(e instanceof DataDirLockedError) ? '; `raftkv wal verify <data-dir>` checks the directory' : '';
  return `${e.message} (${code}${hint})`;
}

// Output piped into `head` and the like: stop quietly when the reader goes.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`raftkv: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`raftkv: ${describeFailure(e)}\n`);
    process.exitCode = 1;
  },
);
