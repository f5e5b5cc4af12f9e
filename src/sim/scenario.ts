// Scenario scripts: small stories that drive a ManualCluster command by
// command and record what happened, in the "datadriven" format of
// etcd-io/raft's interaction tests (testdata/*.txt):
//
//   # comments tell the story
//   command arg key=value
//   ----
//   the command's output
//   <blank line>
//
// runScenario(text) runs every command and returns the script with each
// command's actual output in place of the expected one; the scenario tests
// (test/unit/scenarios.test.ts) compare the two, and rewrite the files with
// REWRITE=1. parseScenario() and ScenarioRunner let a caller (the
// visualiser's guided stories) step through the commands one at a time.
//
// No Node.js APIs here: the browser visualiser reuses this file.
//
// Output conventions (every command):
// - A delivered message is printed with describeMessage; one that could not
//   be delivered (recipient down or missing, link cut) is followed by
//   "-- dropped: <why>".
// - After the command, every node whose state changed is printed with
//   ManualCluster.describe ("2: follower term=2 vote=1 lead=1 commit=4 ..."),
//   followed by indented details: entries it applied, its new
//   configuration, reads confirmed to it, a snapshot it installed.
// - A request the core refused prints "error: <code>: <message>".
// - A command with nothing to report prints "ok".
// Mistakes in the script itself (unknown command, bad argument, a node that
// does not exist or is down) throw a ScenarioError naming the line.

import { decodeConfChange, describeConfChange, encodeConfChange } from '../raft/confchange.js';
import { RaftError } from '../raft/errors.js';
import { describeConfig } from '../raft/progress.js';
import { bootstrapState } from '../raft/rawNode.js';
import type {
  ConfChange,
  ConfChangeSingle,
  ConfChangeTransition,
  ConfState,
  Entry,
  Message,
  MessageType,
  NodeId,
  Snapshot,
} from '../raft/types.js';
import { MESSAGE_TYPES } from '../raft/types.js';
import { ManualCluster, type MessageFilter, type NodeConfig, matchesFilter } from './manual.js';
import { describeMessage } from './trace.js';

// ---------------------------------------------------------------------------
// Parsing

/** A mistake in a script: unknown command, bad argument, impossible request. */
export class ScenarioError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(line > 0 ? `line ${line}: ${message}` : message);
    this.name = 'ScenarioError';
  }
}

/** One argument: `value` alone (positional) or `key=value`. Lists keep their parentheses: "(1 2 3)". */
export interface CommandArg {
  readonly key: string | undefined;
  readonly value: string;
}

export interface ScenarioCommand {
  /** 1-based line of the command in the script (0 for a command typed alone). */
  readonly line: number;
  /** The command line as written. */
  readonly text: string;
  readonly name: string;
  readonly args: readonly CommandArg[];
  /** The expected output written under the command, if any. */
  readonly expected: string | undefined;
}

export type ScenarioItem =
  /** A comment or blank line, kept verbatim. */
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'command'; readonly command: ScenarioCommand };

export interface ParsedScenario {
  readonly items: readonly ScenarioItem[];
  readonly commands: readonly ScenarioCommand[];
  /**
   * Comment lines directly above each command (the story's narration for
   * that step), without the leading "#": for the visualiser's captions.
   */
  readonly captions: readonly string[];
}

/** Splits a command line into words; "(...)" groups (also after "key=") stay one word. */
function tokenize(text: string, line: number): string[] {
  const words: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') {
      depth--;
      if (depth < 0) throw new ScenarioError(line, `unbalanced ")" in "${text}"`);
    }
    if (depth === 0 && /\s/.test(ch)) {
      if (cur) words.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (depth !== 0) throw new ScenarioError(line, `unbalanced "(" in "${text}"`);
  if (cur) words.push(cur);
  return words;
}

/** Parses one command line (the visualiser may also feed commands typed by hand, with line 0). */
export function parseCommand(text: string, line = 0, expected?: string): ScenarioCommand {
  const words = tokenize(text.trim(), line);
  if (words.length === 0) throw new ScenarioError(line, 'empty command');
  const [name, ...rest] = words as [string, ...string[]];
  const args = rest.map((w): CommandArg => {
    const eq = w.indexOf('=');
    // "a=b" is key=value unless the "=" sits inside a list.
    if (eq > 0 && !w.slice(0, eq).includes('(')) return { key: w.slice(0, eq), value: w.slice(eq + 1) };
    return { key: undefined, value: w };
  });
  return { line, text, name, args, expected };
}

/**
 * Parses a script. Lines that are blank or start with "#" are kept as text;
 * any other line is a command, optionally followed by "----" and its
 * expected output, which runs until the next blank line.
 */
export function parseScenario(text: string): ParsedScenario {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const items: ScenarioItem[] = [];
  const commands: ScenarioCommand[] = [];
  const captions: string[] = [];
  let caption: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    const trimmed = l.trim();
    if (trimmed === '' || trimmed.startsWith('#')) {
      items.push({ kind: 'text', text: l });
      if (trimmed.startsWith('#')) caption.push(trimmed.replace(/^#\s?/, ''));
      else caption = [];
      i++;
      continue;
    }
    const line = i + 1;
    i++;
    let expected: string | undefined;
    if (i < lines.length && lines[i] === '----') {
      i++;
      const out: string[] = [];
      while (i < lines.length && lines[i] !== '') out.push(lines[i++]!);
      expected = out.join('\n');
    }
    // The blank line that ends the block belongs to it.
    if (i < lines.length && lines[i] === '') i++;
    const command = parseCommand(l, line, expected);
    items.push({ kind: 'command', command });
    commands.push(command);
    captions.push(caption.join('\n'));
    caption = [];
  }
  return { items, commands, captions };
}

/** The script with outputs[k] as the output of the k-th command. */
export function renderScenario(parsed: ParsedScenario, outputs: readonly string[]): string {
  const out: string[] = [];
  let k = 0;
  for (const item of parsed.items) {
    if (item.kind === 'text') {
      out.push(item.text);
    } else {
      out.push(item.command.text, '----', outputs[k++] ?? '', '');
    }
  }
  return out.join('\n') + '\n';
}

/** Runs a whole script; returns it with every command's actual output filled in. */
export function runScenario(text: string): string {
  const parsed = parseScenario(text);
  const runner = new ScenarioRunner();
  return renderScenario(
    parsed,
    parsed.commands.map((c) => runner.run(c)),
  );
}

// ---------------------------------------------------------------------------
// Arguments


/** Reads a command's arguments, and complains about any it did not read. */
class Args {
  private readonly used = new Set<number>();

  constructor(private readonly cmd: ScenarioCommand) {}

  error(message: string): ScenarioError {
    return new ScenarioError(this.cmd.line, `${this.cmd.name}: ${message}`);
  }

  /** The positional arguments not read yet. */
  positional(): string[] {
    const out: string[] = [];
    this.cmd.args.forEach((a, i) => {
      if (a.key === undefined && !this.used.has(i)) {
        this.used.add(i);
        out.push(a.value);
      }
    });
    return out;
  }

  /** The next positional argument, or undefined. */
  next(): string | undefined {
    for (let i = 0; i < this.cmd.args.length; i++) {
      if (this.cmd.args[i]!.key === undefined && !this.used.has(i)) {
        this.used.add(i);
        return this.cmd.args[i]!.value;
      }
    }
    return undefined;
  }

  flag(word: string): boolean {
    for (let i = 0; i < this.cmd.args.length; i++) {
      const a = this.cmd.args[i]!;
      if (a.key === undefined && a.value === word && !this.used.has(i)) {
        this.used.add(i);
        return true;
      }
    }
    return false;
  }

  key(k: string): string | undefined {
    let found: string | undefined;
    this.cmd.args.forEach((a, i) => {
      if (a.key === k) {
        if (found !== undefined) throw this.error(`${k}= given twice`);
        this.used.add(i);
        found = a.value;
      }
    });
    return found;
  }

  int(v: string, what: string, min = 0): number {
    if (!/^\d+$/.test(v)) throw this.error(`${what} must be an integer, got "${v}"`);
    const n = Number(v);
    if (n < min) throw this.error(`${what} must be at least ${min}, got ${n}`);
    return n;
  }

  id(v: string | undefined, what = 'node id'): NodeId {
    if (v === undefined) throw this.error(`missing ${what}`);
    return this.int(v, what, 1);
  }

  intKey(k: string, min = 0): number | undefined {
    const v = this.key(k);
    return v === undefined ? undefined : this.int(v, `${k}=`, min);
  }

  boolKey(k: string): boolean | undefined {
    const v = this.key(k);
    if (v === undefined) return undefined;
    if (v !== 'true' && v !== 'false') throw this.error(`${k}= must be true or false, got "${v}"`);
    return v === 'true';
  }

  /** "(1 2 3)", "(1,2,3)" or a bare "1". */
  list(v: string, what: string): number[] {
    const body = v.startsWith('(') && v.endsWith(')') ? v.slice(1, -1) : v;
    const parts = body.split(/[\s,]+/).filter((p) => p !== '');
    return parts.map((p) => this.int(p, `${what} element`));
  }

  /** Fails on any argument nobody read. */
  done(): void {
    this.cmd.args.forEach((a, i) => {
      if (!this.used.has(i)) {
        throw this.error(`unexpected argument "${a.key === undefined ? a.value : `${a.key}=${a.value}`}"`);
      }
    });
  }
}

// ---------------------------------------------------------------------------
// Formatting

const textDecoder = new TextDecoder();

function bytesText(b: Uint8Array | undefined): string {
  if (!b || b.byteLength === 0) return '""';
  const s = textDecoder.decode(b);
  return /^[\x21-\x7e]{1,24}$/.test(s) ? s : `<${b.byteLength} bytes>`;
}

/** "5@2" for an empty entry, "5@2:x" with short data, "5@2[v4 l5]" for a conf change. */
export function formatEntry(e: Entry): string {
  const at = `${e.index}@${e.term}`;
  if (e.type === 'confChange') {
    try {
      return `${at}[${describeConfChange(decodeConfChange(e.data))}]`;
    } catch {
      return `${at}[?]`;
    }
  }
  if (e.data.byteLength === 0) return at;
  return `${at}:${bytesText(e.data)}`;
}

/** describeMessage, plus the read context on read-index messages. */
export function formatMessage(m: Message): string {
  let s = describeMessage(m);
  if (m.type === 'MsgReadIndex' || m.type === 'MsgReadIndexResp') s += ` ctx=${bytesText(m.context)}`;
  return s;
}

/** The commands, for help texts. */
export const SCENARIO_COMMANDS: readonly string[] = [
  'add-nodes <n> voters=(1 2 3) [learners=(4)] [log=(1 1 2) term=<t> vote=<id> commit=<i>] [joining] [options]',
  '  options: pre-vote= check-quorum= read-only=safe|lease election-tick= heartbeat-tick= max-size-per-msg=',
  '           max-inflight-msgs= disable-forwarding= step-down-on-removal=',
  'campaign <id>',
  'propose <id> <data>',
  'propose-conf-change <id> [transition=auto|implicit|explicit] [v<id>] [l<id>] [r<id>]   (none: leave joint)',
  'deliver-msgs [from=<id>] [to=<id>] [type=<MsgType>|(<MsgType> ...)]',
  'drop-msgs [from=] [to=] [type=]',
  'pending-msgs [from=] [to=] [type=]',
  'stabilize',
  'tick <id> [<n>]',
  'tick-election <id>',
  'tick-heartbeat <id>',
  'crash <id>',
  'restart <id>',
  'partition (1 2) (3)',
  'cut <from>-><to>',
  'heal',
  'read-index <id> <ctx>',
  'transfer-leader <id> <to>',
  'snapshot <id> [compact=<i>]',
  'status [<id> ...]',
  'log [<id> ...]',
  'applied [<id> ...]',
];

// ---------------------------------------------------------------------------
// Running

/** What the runner last reported about a node, to print only what changed. */
interface NodeView {
  readonly line: string;
  readonly incarnation: number;
  readonly applied: number;
  readonly reads: number;
  readonly config: string | undefined;
  readonly snapshot: number;
}

const STABILIZE_MAX_ROUNDS = 500;

export class ScenarioRunner {
  private clusterOrUndefined: ManualCluster | undefined;
  private readonly views = new Map<NodeId, NodeView>();
  /** Per node, what its state machine holds: the entries applied since it started (or its snapshot). */
  private readonly machines = new Map<NodeId, string[]>();
  /** Output of the command being run (kept when the core throws midway). */
  private out: string[] = [];

  /** The cluster, once add-nodes has created it. */
  get cluster(): ManualCluster | undefined {
    return this.clusterOrUndefined;
  }

  /** Runs one command; returns its output. Throws ScenarioError for mistakes in the script. */
  run(cmd: ScenarioCommand): string {
    this.out = [];
    try {
      this.exec(cmd);
    } catch (e) {
      if (e instanceof ScenarioError) throw e;
      if (e instanceof RaftError) {
        // The core refused to go on (an invariant broke): that is an outcome to record.
        this.out.push(`panic: ${e.code}: ${e.message}`);
        if (this.clusterOrUndefined) this.out.push(...this.changes());
      } else if (e instanceof Error) {
        throw new ScenarioError(cmd.line, `${cmd.name}: ${e.message}`);
      } else {
        throw e;
      }
    }
    return this.out.length > 0 ? this.out.join('\n') : 'ok';
  }

  private c(a: Args): ManualCluster {
    if (!this.clusterOrUndefined) throw a.error('no nodes yet: start with add-nodes');
    return this.clusterOrUndefined;
  }

  /** A node id that must exist (and, with `up`, be running). */
  private node(a: Args, v: string | undefined, up = true): NodeId {
    const id = a.id(v);
    const n = this.c(a).nodes.get(id);
    if (!n) throw a.error(`no node ${id}`);
    if (up && !n.up) throw a.error(`node ${id} is down`);
    return id;
  }

  private ids(a: Args): NodeId[] {
    const given = a.positional();
    if (given.length === 0) return this.c(a).ids();
    return given.map((v) => this.node(a, v, false));
  }

  private exec(cmd: ScenarioCommand): void {
    const a = new Args(cmd);
    const out = this.out;
    switch (cmd.name) {
      case 'add-nodes':
        this.addNodes(a);
        return;
      case 'campaign': {
        const id = this.node(a, a.next());
        a.done();
        this.c(a).campaign(id);
        break;
      }
      case 'propose': {
        const id = this.node(a, a.next());
        const data = a.next();
        if (data === undefined) throw a.error('missing data');
        a.done();
        this.refused(this.c(a).propose(id, data));
        break;
      }
      case 'propose-conf-change': {
        const id = this.node(a, a.next());
        const cc = this.confChange(a);
        a.done();
        this.refused(this.c(a).proposeConfChange(id, cc));
        break;
      }
      case 'deliver-msgs': {
        const f = this.filter(a);
        a.done();
        out.push(...this.deliver(f));
        break;
      }
      case 'drop-msgs': {
        const f = this.filter(a);
        a.done();
        for (const m of this.c(a).drop(f)) out.push(`dropped: ${formatMessage(m)}`);
        return;
      }
      case 'pending-msgs': {
        const f = this.filter(a);
        a.done();
        for (const m of this.c(a).pending) if (matchesFilter(m, f)) out.push(formatMessage(m));
        return;
      }
      case 'stabilize':
        a.done();
        this.stabilize(a);
        return;
      case 'tick': {
        const id = this.node(a, a.next());
        const n = a.next();
        a.done();
        this.c(a).tick(id, n === undefined ? 1 : a.int(n, 'tick count', 1));
        break;
      }
      case 'tick-election': {
        const id = this.node(a, a.next());
        a.done();
        this.c(a).tickElection(id);
        break;
      }
      case 'tick-heartbeat': {
        const id = this.node(a, a.next());
        a.done();
        this.c(a).tickHeartbeat(id);
        break;
      }
      case 'crash': {
        const id = this.node(a, a.next());
        a.done();
        const c = this.c(a);
        const lost = c.pending.filter((m) => m.to === id).length;
        c.crash(id);
        if (lost > 0) out.push(`(${lost} undelivered message${lost === 1 ? '' : 's'} to ${id} lost)`);
        break;
      }
      case 'restart': {
        const id = this.node(a, a.next(), false);
        a.done();
        if (this.c(a).node(id).up) throw a.error(`node ${id} is already up`);
        this.c(a).restart(id);
        break;
      }
      case 'partition': {
        const groups = a.positional().map((g) => a.list(g, 'group'));
        a.done();
        if (groups.length < 2) throw a.error('needs at least two groups, e.g. partition (1 2) (3)');
        for (const g of groups) for (const id of g) this.node(a, String(id), false);
        this.c(a).partition(...groups);
        break;
      }
      case 'cut': {
        const links = a.positional();
        a.done();
        if (links.length === 0) throw a.error('missing link, e.g. cut 1->2');
        for (const l of links) {
          const m = /^(\d+)->(\d+)$/.exec(l);
          if (!m) throw a.error(`a link is written <from>-><to>, got "${l}"`);
          this.c(a).cut(this.node(a, m[1], false), this.node(a, m[2], false));
        }
        break;
      }
      case 'heal':
        a.done();
        this.c(a).heal();
        break;
      case 'read-index': {
        const id = this.node(a, a.next());
        const ctx = a.next();
        if (ctx === undefined) throw a.error('missing read context');
        a.done();
        this.refused(this.c(a).readIndex(id, ctx));
        break;
      }
      case 'transfer-leader': {
        const id = this.node(a, a.next());
        const to = a.id(a.next(), 'transferee');
        a.done();
        this.refused(this.c(a).transferLeader(id, to));
        break;
      }
      case 'snapshot':
        this.snapshot(a);
        return;
      case 'status':
        for (const id of this.ids(a)) out.push(...this.status(id));
        a.done();
        return;
      case 'log':
        for (const id of this.ids(a)) out.push(this.log(id));
        a.done();
        return;
      case 'applied':
        for (const id of this.ids(a)) out.push(this.appliedLine(id));
        a.done();
        return;
      default:
        throw new ScenarioError(cmd.line, `unknown command "${cmd.name}"`);
    }
    out.push(...this.changes());
  }

  private refused(err: string | undefined): void {
    if (err !== undefined) this.out.push(`error: ${err}`);
  }

  // -------------------------------------------------------------------------
  // add-nodes

  private nodeConfig(a: Args): NodeConfig {
    const cfg: { -readonly [K in keyof NodeConfig]: NodeConfig[K] } = {};
    const b = (k: string) => a.boolKey(k);
    const preVote = b('pre-vote');
    if (preVote !== undefined) cfg.preVote = preVote;
    const checkQuorum = b('check-quorum');
    if (checkQuorum !== undefined) cfg.checkQuorum = checkQuorum;
    const readOnly = a.key('read-only');
    if (readOnly !== undefined) {
      if (readOnly !== 'safe' && readOnly !== 'lease') throw a.error(`read-only= must be safe or lease, got "${readOnly}"`);
      cfg.readOnlyOption = readOnly === 'lease' ? 'leaseBased' : 'safe';
    }
    const election = a.intKey('election-tick', 1);
    if (election !== undefined) cfg.electionTick = election;
    const heartbeat = a.intKey('heartbeat-tick', 1);
    if (heartbeat !== undefined) cfg.heartbeatTick = heartbeat;
    const maxSize = a.intKey('max-size-per-msg', 1);
    if (maxSize !== undefined) cfg.maxSizePerMsg = maxSize;
    const maxInflight = a.intKey('max-inflight-msgs', 1);
    if (maxInflight !== undefined) cfg.maxInflightMsgs = maxInflight;
    const noForward = b('disable-forwarding');
    if (noForward !== undefined) cfg.disableProposalForwarding = noForward;
    const stepDown = b('step-down-on-removal');
    if (stepDown !== undefined) cfg.stepDownOnRemoval = stepDown;
    return cfg;
  }

  private addNodes(a: Args): void {
    const count = a.int(a.next() ?? '', 'node count', 1);
    const joining = a.flag('joining');
    const votersArg = a.key('voters');
    const learnersArg = a.key('learners');
    const logArg = a.key('log');
    const term = a.intKey('term');
    const vote = a.intKey('vote');
    const commit = a.intKey('commit');
    const config = this.nodeConfig(a);
    a.done();
    if (!this.clusterOrUndefined) this.clusterOrUndefined = new ManualCluster();
    const c = this.clusterOrUndefined;
    const first = Math.max(0, ...c.ids()) + 1;
    const ids = Array.from({ length: count }, (_, i) => first + i);

    if (joining) {
      if (votersArg || learnersArg || logArg || term !== undefined || vote !== undefined || commit !== undefined) {
        throw a.error('a joining node starts empty: no voters=, learners=, log=, term=, vote= or commit=');
      }
      for (const id of ids) c.add(id, undefined, config);
    } else {
      if (!votersArg) throw a.error('needs voters=(...) (or "joining" for nodes added later by a conf change)');
      const voters = a.list(votersArg, 'voters');
      const learners = learnersArg ? a.list(learnersArg, 'learners') : [];
      if (voters.length === 0) throw a.error('voters=() is empty');
      if (new Set([...voters, ...learners]).size !== voters.length + learners.length) {
        throw a.error('voters and learners must be distinct ids');
      }
      if (logArg !== undefined) {
        // A preset history (the paper's Figures 7 and 8): entry 1 is a
        // snapshot holding the configuration, entries 2.. are empty entries
        // of the given terms.
        const terms = a.list(logArg, 'log');
        if (terms.length === 0 || terms.some((t) => t < 1)) throw a.error('log= lists the term (>= 1) of each entry from index 1');
        for (let i = 1; i < terms.length; i++) {
          if (terms[i]! < terms[i - 1]!) throw a.error('log= terms cannot decrease');
        }
        const lastTerm = terms[terms.length - 1]!;
        const hsTerm = term ?? lastTerm;
        if (hsTerm < lastTerm) throw a.error(`term=${hsTerm} is below the log's last term ${lastTerm}`);
        const hsCommit = commit ?? 1;
        if (hsCommit < 1 || hsCommit > terms.length) throw a.error(`commit= must be within the log (1..${terms.length})`);
        const confState: ConfState = { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false };
        const snapshot: Snapshot = {
          metadata: { index: 1, term: terms[0]!, confState },
          data: new Uint8Array(0),
        };
        const entries: Entry[] = terms.slice(1).map((t, i) => ({ term: t, index: i + 2, type: 'normal', data: new Uint8Array(0) }));
        for (const id of ids) {
          c.addWithState(id, { snapshot, entries, hardState: { term: hsTerm, vote: vote ?? 0, commit: hsCommit } }, config);
        }
      } else {
        if (term !== undefined || vote !== undefined || commit !== undefined) {
          throw a.error('term=, vote= and commit= go with log=');
        }
        if (learners.length === 0) {
          for (const id of ids) c.add(id, voters, config);
        } else {
          // The bootstrap entries of the voters, then one adding each learner, all committed.
          const boot = bootstrapState(voters);
          const entries: Entry[] = [...boot.entries];
          for (const l of learners) {
            const cc: ConfChange = { transition: 'auto', changes: [{ type: 'addLearner', nodeId: l }] };
            entries.push({ term: 1, index: entries.length + 1, type: 'confChange', data: encodeConfChange(cc) });
          }
          const hardState = { term: 1, vote: 0, commit: entries.length };
          for (const id of ids) c.addWithState(id, { entries, hardState }, config);
        }
      }
    }
    for (const id of ids) c.process(id);
    this.out.push(...this.changes());
  }

  private confChange(a: Args): ConfChange {
    const t = a.key('transition') ?? 'auto';
    if (t !== 'auto' && t !== 'implicit' && t !== 'explicit') {
      throw a.error(`transition= must be auto, implicit or explicit, got "${t}"`);
    }
    const changes: ConfChangeSingle[] = a.positional().map((w) => {
      const m = /^([vlr])(\d+)$/.exec(w);
      if (!m) throw a.error(`a change is v<id> (add voter), l<id> (add learner) or r<id> (remove), got "${w}"`);
      const type = m[1] === 'v' ? 'addNode' : m[1] === 'l' ? 'addLearner' : 'removeNode';
      return { type, nodeId: a.int(m[2]!, 'node id', 1) };
    });
    return { transition: t as ConfChangeTransition, changes };
  }

  // -------------------------------------------------------------------------
  // Messages

  private filter(a: Args): MessageFilter {
    const from = a.key('from');
    const to = a.key('to');
    const type = a.key('type');
    const f: { from?: NodeId; to?: NodeId; type?: MessageType[] } = {};
    if (from !== undefined) f.from = a.id(from, 'from=');
    if (to !== undefined) f.to = a.id(to, 'to=');
    if (type !== undefined) {
      const names = type.startsWith('(') ? type.slice(1, -1).split(/[\s,]+/).filter((s) => s) : [type];
      for (const n of names) {
        if (!MESSAGE_TYPES.includes(n as MessageType)) {
          throw a.error(`unknown message type "${n}" (one of ${MESSAGE_TYPES.join(' ')})`);
        }
      }
      f.type = names as MessageType[];
    }
    return f;
  }

  /** Delivers the matching messages; one line per message, saying why it was dropped if it was. */
  private deliver(filter: MessageFilter | undefined): string[] {
    const c = this.clusterOrUndefined!;
    const before = c.pending.slice();
    const delivered = new Set(c.deliver(filter));
    const still = new Set(c.pending);
    const lines: string[] = [];
    for (const m of before) {
      if (still.has(m)) continue;
      if (delivered.has(m)) {
        lines.push(formatMessage(m));
      } else {
        const to = c.nodes.get(m.to);
        const why = !to ? `no node ${m.to}` : !to.up ? `${m.to} is down` : `link ${m.from}->${m.to} is cut`;
        lines.push(`${formatMessage(m)} -- dropped: ${why}`);
      }
    }
    return lines;
  }

  /**
   * Delivers everything, round after round, until no message is left. Each
   * round delivers what was pending at its start; the state changes it
   * caused follow its messages.
   */
  private stabilize(a: Args): void {
    const c = this.c(a);
    c.processAll();
    this.out.push(...this.changes());
    for (let round = 1; c.pending.length > 0; round++) {
      if (round > STABILIZE_MAX_ROUNDS) throw a.error(`still not stable after ${STABILIZE_MAX_ROUNDS} rounds`);
      const lines = this.deliver(undefined);
      c.processAll();
      lines.push(...this.changes());
      this.out.push(...lines);
    }
  }

  // -------------------------------------------------------------------------
  // State

  private view(id: NodeId): NodeView {
    const c = this.clusterOrUndefined!;
    const n = c.node(id);
    return {
      line: c.describe(id),
      incarnation: n.incarnation,
      applied: n.applied.length,
      reads: n.readStates.length,
      config: n.up && n.raw ? describeConfig(n.raw.raft.prs.config) : undefined,
      snapshot: n.storage.snapshot().metadata.index,
    };
  }

  /** The nodes whose state changed since last reported, with details; updates the views. */
  private changes(): string[] {
    const c = this.clusterOrUndefined!;
    const lines: string[] = [];
    for (const id of c.ids()) {
      const n = c.node(id);
      const before = this.views.get(id);
      const now = this.view(id);
      this.views.set(id, now);
      const details: string[] = [];
      let machine = this.machines.get(id) ?? [];
      let appliedFrom = before ? before.applied : 0;
      const restarted = before !== undefined && before.incarnation !== now.incarnation;
      if (!before || restarted) {
        // A (re)started node's state machine begins from its snapshot.
        const snap = n.storage.snapshot().metadata;
        machine = snap.index > 0 ? [`snap=${snap.index}@${snap.term}`] : [];
      } else if (now.snapshot !== before.snapshot) {
        const snap = n.storage.snapshot().metadata;
        details.push(`  installed snapshot ${snap.index}@${snap.term}`);
        machine = [`snap=${snap.index}@${snap.term}`];
      }
      if (now.applied > appliedFrom) {
        const ents = n.applied.slice(appliedFrom);
        details.push(`  applied ${ents.map(formatEntry).join(' ')}`);
        machine = machine.concat(ents.map(formatEntry));
        appliedFrom = now.applied;
      }
      this.machines.set(id, machine);
      if (now.config !== undefined && now.config !== before?.config) details.push(`  config ${now.config}`);
      if (now.reads > (before?.reads ?? 0)) {
        for (const rs of n.readStates.slice(before?.reads ?? 0)) {
          details.push(`  read ${bytesText(rs.context)} at index ${rs.index}`);
        }
      }
      if (!before || before.line !== now.line || details.length > 0) lines.push(now.line, ...details);
    }
    return lines;
  }

  private status(id: NodeId): string[] {
    const c = this.clusterOrUndefined!;
    const lines = [c.describe(id)];
    const n = c.node(id);
    if (!n.up || !n.raw) return lines;
    const r = n.raw.raft;
    lines.push(`  config ${describeConfig(r.prs.config)}`);
    if (r.state !== 'leader') {
      lines.push(`  election timer ${r.electionElapsed}/${r.randomizedElectionTimeout}`);
    } else {
      r.prs.visit((pid, pr) => {
        if (pid !== id) lines.push(`  progress ${pid}: ${pr.toString()}`);
      });
      if (r.leadTransferee) lines.push(`  transferring leadership to ${r.leadTransferee}`);
    }
    return lines;
  }

  private log(id: NodeId): string {
    const c = this.clusterOrUndefined!;
    const n = c.node(id);
    if (!n.up || !n.raw) return `${id}: down`;
    const log = n.raw.raft.raftLog;
    const first = log.firstIndex();
    const last = log.lastIndex();
    const parts: string[] = [];
    if (first > 1) parts.push(`snap=${first - 1}@${log.term(first - 1)}`);
    if (last >= first) parts.push(...log.slice(first, last + 1, Number.MAX_SAFE_INTEGER).map(formatEntry));
    return `${id}: ${parts.length > 0 ? parts.join(' ') : '(empty)'}`;
  }

  private appliedLine(id: NodeId): string {
    const c = this.clusterOrUndefined!;
    const n = c.node(id);
    if (!n.up || !n.raw) return `${id}: down`;
    const m = this.machines.get(id) ?? [];
    return `${id}: applied=${n.raw.raft.raftLog.applied}${m.length > 0 ? ` ${m.join(' ')}` : ''}`;
  }

  private snapshot(a: Args): void {
    const id = this.node(a, a.next());
    const compact = a.intKey('compact', 1);
    a.done();
    const c = this.c(a);
    const applied = c.raw(id).raft.raftLog.applied;
    if (compact !== undefined && compact > applied) {
      throw a.error(`compact=${compact} is beyond the applied index ${applied}: only applied entries can be compacted`);
    }
    c.snapshot(id, compact);
    const snap = c.node(id).storage.snapshot().metadata;
    const log = c.raw(id).raft.raftLog;
    const first = log.firstIndex();
    const last = log.lastIndex();
    this.out.push(
      `${id}: snapshot at ${snap.index}@${snap.term}; log compacted up to ${first - 1}, ` +
        (last >= first ? `entries ${first}..${last} remain` : 'no entries remain'),
    );
    // Taking a snapshot is not installing one: do not report it as a change.
    const v = this.views.get(id);
    if (v) this.views.set(id, { ...v, snapshot: snap.index });
  }
}

