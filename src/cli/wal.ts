// `raftkv wal verify DIR` and `raftkv wal dump DIR`: the operator's view of
// a member's data directory. Both only read; verify exits 1 when anything is
// damaged, naming the file, the offset and the log index.

import { NodeFileSystem } from '../storage/nodeFs.js';
import { type DumpRecord, dumpDataDir, verifyDataDir } from '../storage/inspect.js';
import { StorageError } from '../storage/errors.js';
import { type FlagSpec, UsageError, formatHelp, parseFlags } from './args.js';

const VERIFY_FLAGS: Record<string, FlagSpec> = {
  json: { kind: 'boolean', help: 'print the report as JSON' },
  help: { kind: 'boolean', help: 'show this help' },
};

const DUMP_FLAGS: Record<string, FlagSpec> = {
  data: { kind: 'boolean', help: 'show each entry\'s data (as text where printable, else hex; first 64 bytes)' },
  help: { kind: 'boolean', help: 'show this help' },
};

const USAGE = `usage: raftkv wal verify DIR [--json]
       raftkv wal dump DIR [--data]

DIR is a member's data directory (holding wal/ and snap/, or etcd's member/wal).
verify recovers it as the member would at start, without changing it, and
checks every snapshot file: exit status 0 if intact, 1 if anything is damaged.
dump prints every record of every segment (offset, type, index, term, size).`;

export async function walCommand(argv: readonly string[]): Promise<number> {
  const [sub, dir, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'verify' && sub !== 'dump') throw new UsageError(`wal: unknown subcommand "${sub}" (expected verify or dump)\n\n${USAGE}`);
  const specs = sub === 'verify' ? VERIFY_FLAGS : DUMP_FLAGS;
  if (dir === '--help') {
    process.stdout.write(formatHelp(USAGE, specs));
    return 0;
  }
  if (dir === undefined || dir.startsWith('--')) throw new UsageError(`wal ${sub}: a data directory is required\n\n${USAGE}`);
  const f = parseFlags(rest, specs, `wal ${sub}`);
  if (f.help) {
    process.stdout.write(formatHelp(USAGE, specs));
    return 0;
  }
  try {
    return sub === 'verify' ? verify(dir, f.json === true) : dump(dir, f.data === true);
  } catch (err) {
    // No data directory there, or the disk refused a read: say so plainly.
    if (err instanceof StorageError || (err as NodeJS.ErrnoException).code !== undefined) {
      process.stderr.write(`raftkv wal ${sub}: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
}

const num = (n: number) => n.toLocaleString('en-US');

function verify(dir: string, json: boolean): number {
  const r = verifyDataDir(new NodeFileSystem(), dir);
  if (json) {
    const { refusal, ...rest } = r;
    const out = refusal ? { ...rest, refusal: { code: refusal.code, message: refusal.message } } : rest;
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return r.corrupt ? 1 : 0;
  }
  const lines: string[] = [`data directory ${r.dir}`];
  if (r.clusterId !== undefined) lines.push(`  member ${r.memberId} of cluster "${r.clusterId}"`);
  if (!r.refusal) {
    lines.push(`  wal: ${r.segments} segment(s), ${num(r.records)} records, ${num(r.bytes)} bytes`);
    lines.push(
      r.lastIndex >= r.firstIndex
        ? `  log: entries ${num(r.firstIndex)}..${num(r.lastIndex)}`
        : `  log: no entries${r.snapshotIndex > 0 ? ` after the snapshot at ${num(r.snapshotIndex)}` : ''}`,
    );
    lines.push(`  hard state: term ${r.hardState.term}, vote ${r.hardState.vote}, commit ${num(r.hardState.commit)}`);
    lines.push(`  starts from: ${r.snapshotIndex > 0 ? `the snapshot at index ${num(r.snapshotIndex)}` : 'the beginning of the log'}`);
  }
  for (const s of r.snapshots) {
    lines.push(`  snapshot ${s.name} (index ${num(s.index)}, term ${s.term}): ${s.problem ? `DAMAGED: ${s.problem}` : 'ok'}`);
  }
  if (r.tornTail) {
    lines.push(`  torn tail: ${r.tornTail.file} at offset ${r.tornTail.offset}, ${r.tornTail.bytes} bytes (a write cut short by a crash; recovery cuts it off)`);
  }
  for (const name of r.leftovers) lines.push(`  leftover: ${name} (from an interrupted operation; recovery removes it)`);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (r.refusal) {
    process.stdout.write(`CORRUPT: ${r.refusal.message}\nThe member would refuse to start.\n`);
    return 1;
  }
  if (r.corrupt) {
    process.stdout.write('CORRUPT: a snapshot file is damaged. The member would still start (from an older snapshot and the log).\n');
    return 1;
  }
  process.stdout.write('OK\n');
  return 0;
}

function dump(dir: string, showData: boolean): number {
  const out = process.stdout;
  const pad = (s: string | number, n: number) => String(s).padEnd(n);
  dumpDataDir(new NodeFileSystem(), dir, {
    segment(name) {
      out.write(`${name}\n  ${pad('offset', 12)}${pad('record', 11)}${pad('index', 12)}${pad('term', 8)}${pad('bytes', 9)}detail\n`);
    },
    record(r: DumpRecord) {
      const rec = r.record;
      let index = '';
      let term = '';
      let detail = '';
      switch (rec.type) {
        case 'header':
          detail = `member ${rec.memberId}, cluster "${rec.clusterId}", segment ${rec.seq}, first index ${rec.firstIndex}, format v${rec.version}, ${rec.segmentBytes} bytes preallocated`;
          break;
        case 'entry':
          index = String(rec.entry.index);
          term = String(rec.entry.term);
          detail = rec.entry.type + (showData ? ` ${showBytes(rec.entry.data)}` : '');
          break;
        case 'hardState':
          term = String(rec.hardState.term);
          detail = `vote ${rec.hardState.vote}, commit ${rec.hardState.commit}`;
          break;
        case 'snapshot':
          index = String(rec.index);
          term = String(rec.term);
          detail = `${rec.reset ? 'installed from the leader (the log restarts after it)' : 'taken locally'}; voters ${rec.confState.voters.join(',') || '-'}`;
          break;
        case 'seal':
          detail = `continues in segment ${rec.nextSeq}`;
          break;
        case 'flush':
          detail = 'end of one write + fdatasync';
          break;
        case 'malformed':
          detail = `MALFORMED: ${rec.reason}`;
          break;
      }
      out.write(`  ${pad(r.offset, 12)}${pad(rec.type, 11)}${pad(index, 12)}${pad(term, 8)}${pad(r.size, 9)}${detail}\n`);
    },
    end(e) {
      const why =
        e.stop === 'eof' ? 'the end of the file' : e.stop === 'zero' ? `zeros (the unused part, to ${e.fileSize})` : `${e.stop}: DAMAGED or torn`;
      out.write(`  ${pad(e.offset, 12)}end: ${why}\n`);
    },
  });
  return 0;
}

function showBytes(data: Uint8Array): string {
  const head = data.subarray(0, 64);
  const more = data.length > head.length ? '…' : '';
  const printable = head.every((b) => b >= 0x20 && b < 0x7f);
  if (printable) return JSON.stringify(Buffer.from(head).toString('latin1')) + more;
  return Buffer.from(head).toString('hex') + more;
}
