// `raftkv put|get|del|inc`: the explainers' key-value commands against a
// running cluster (any member; the client fails over between --endpoints),
// through raftkv's client with exactly-once retries.

import { RaftKvClient } from '../client/index.js';
import { type FlagSpec, UsageError, formatHelp, parseFlags } from './args.js';

const COMMON: Record<string, FlagSpec> = {
  endpoints: { kind: 'string', help: 'comma-separated client URLs or host:port', default: '127.0.0.1:2379' },
  'command-timeout': { kind: 'integer', help: 'ms before giving up (retries included)', default: '5000' },
  help: { kind: 'boolean', help: 'show this help' },
};

const SPECS: Record<string, { usage: string; args: number; flags: Record<string, FlagSpec> }> = {
  put: { usage: 'raftkv put KEY VALUE', args: 2, flags: {} },
  get: {
    usage: 'raftkv get KEY [--prefix] [--serializable] [--rev N] [--limit N]',
    args: 1,
    flags: {
      prefix: { kind: 'boolean', help: 'every key starting with KEY' },
      serializable: { kind: 'boolean', help: "read this member's local state (may be stale) instead of a linearizable read" },
      rev: { kind: 'integer', help: 'read at this revision' },
      limit: { kind: 'integer', help: 'at most this many keys' },
    },
  },
  del: { usage: 'raftkv del KEY [--prefix]', args: 1, flags: { prefix: { kind: 'boolean', help: 'every key starting with KEY' } } },
  inc: { usage: 'raftkv inc KEY [--by N]', args: 1, flags: { by: { kind: 'integer', help: 'the amount to add', default: '1' } } },
};

const text = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString();

export function kvCommand(name: 'put' | 'get' | 'del' | 'inc'): (argv: readonly string[]) => Promise<number> {
  return async (argv) => {
    const spec = SPECS[name]!;
    const flagSpecs = { ...spec.flags, ...COMMON };
    const positional: string[] = [];
    const flagArgs: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (a.startsWith('--')) {
        flagArgs.push(a);
        const s = flagSpecs[a.slice(2)];
        if (s && s.kind !== 'boolean' && !a.includes('=') && i + 1 < argv.length) flagArgs.push(argv[++i]!);
      } else {
        positional.push(a);
      }
    }
    const f = parseFlags(flagArgs, flagSpecs, name);
    if (f.help) {
      process.stdout.write(formatHelp(`usage: ${spec.usage} [--endpoints URLS]`, flagSpecs));
      return 0;
    }
    if (positional.length !== spec.args) throw new UsageError(`${name}: expected ${spec.args === 1 ? 'KEY' : 'KEY VALUE'}, got ${positional.length} argument(s)\nusage: ${spec.usage}`);
    const endpoints = ((f.endpoints as string | undefined) ?? '127.0.0.1:2379').split(',').map((e) => e.trim()).filter(Boolean);
    const client = new RaftKvClient({ endpoints, timeoutMs: (f['command-timeout'] as number | undefined) ?? 5000 });
    const key = positional[0]!;
    try {
      switch (name) {
        case 'put':
          await client.put(key, positional[1]!);
          process.stdout.write('OK\n');
          break;
        case 'get': {
          const res = await client.get(key, {
            prefix: f.prefix === true,
            serializable: f.serializable === true,
            ...(f.rev !== undefined ? { revision: f.rev as number } : {}),
            ...(f.limit !== undefined ? { limit: f.limit as number } : {}),
          });
          for (const kv of res.kvs) process.stdout.write(`${text(kv.key)}\n${text(kv.value)}\n`);
          if (res.kvs.length === 0 && f.prefix !== true) {
            process.stderr.write(`raftkv: key "${key}" not found\n`);
            return 1;
          }
          break;
        }
        case 'del': {
          const res = await client.delete(key, { prefix: f.prefix === true });
          process.stdout.write(`${res.deleted}\n`);
          break;
        }
        case 'inc': {
          const res = await client.increment(key, (f.by as number | undefined) ?? 1);
          process.stdout.write(`${res.value}\n`);
          break;
        }
      }
      return 0;
    } catch (e) {
      process.stderr.write(`Error: ${(e as Error).message}\n`);
      return 1;
    } finally {
      client.close();
    }
  };
}
