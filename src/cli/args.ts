// Command-line flags: --name value, --name=value and boolean --name. Every
// command declares its flags; anything else is an error that names the flag.

export class UsageError extends Error {
  readonly code = 'CLI_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type FlagKind = 'string' | 'integer' | 'boolean';

export interface FlagSpec {
  readonly kind: FlagKind;
  readonly help: string;
  /** Shown in help; the command applies its own defaults. */
  readonly default?: string;
}

export type FlagValues = Record<string, string | number | boolean | undefined>;

/**
 * `singleDash` also accepts -name (Go's flag package, which etcd uses,
 * takes both forms, and etcd's documentation uses either).
 */
export function parseFlags(
  argv: readonly string[],
  specs: Readonly<Record<string, FlagSpec>>,
  command: string,
  singleDash = false,
): FlagValues {
  const out: FlagValues = {};
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    if (singleDash && /^-[a-z]/.test(arg)) arg = `-${arg}`;
    if (!arg.startsWith('--')) throw new UsageError(`${command}: unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const spec = specs[name];
    if (!spec) {
      const known = Object.keys(specs).map((k) => `--${k}`).join(', ');
      throw new UsageError(`${command}: unknown flag --${name} (known flags: ${known})`);
    }
    if (spec.kind === 'boolean') {
      if (eq >= 0) {
        const v = arg.slice(eq + 1);
        if (v !== 'true' && v !== 'false') throw new UsageError(`${command}: --${name} takes true or false, got "${v}"`);
        out[name] = v === 'true';
      } else {
        out[name] = true;
      }
      continue;
    }
    let value: string;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${command}: --${name} needs a value`);
      value = next;
      i++;
    }
    if (spec.kind === 'integer') {
      if (!/^-?\d+$/.test(value)) throw new UsageError(`${command}: --${name} must be an integer, got "${value}"`);
      out[name] = Number(value);
    } else {
      out[name] = value;
    }
  }
  return out;
}

export function formatHelp(usage: string, specs: Readonly<Record<string, FlagSpec>>): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const flag = s.kind === 'boolean' ? `--${name}` : `--${name} <${s.kind === 'integer' ? 'n' : 'value'}>`;
    return `  ${flag.padEnd(26)} ${s.help}${s.default !== undefined ? ` (default ${s.default})` : ''}`;
  });
  return `${usage}\n\n${rows.join('\n')}\n`;
}
