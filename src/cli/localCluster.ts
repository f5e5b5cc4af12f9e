// A cluster of `raftkv serve` processes on this machine: what `npm start`
// runs, and what the end-to-end tests kill, stop and restart. Each member is
// a real child process with etcd's flags, its own data directory and ports,
// so everything a user does against a real deployment (etcdctl, kill -9,
// SIGSTOP) works the same here.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as net from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = resolve(fileURLToPath(import.meta.url), '..', 'main.js');

export interface LocalMember {
  readonly name: string;
  readonly clientURL: string;
  readonly peerURL: string;
  readonly dataDir: string;
  process: ChildProcess | undefined;
  /** Everything the member wrote to stdout and stderr (its structured log), kept for failure reports. */
  log: string;
}

export interface LocalClusterOptions {
  readonly size: number;
  /** Where the members' data directories go (created). */
  readonly dataDir: string;
  /** First client port; member i uses clientPort + i (peer port: + 100). 0 picks free ports. */
  readonly clientPort?: number;
  readonly host?: string;
  /**
   * A host per member instead of one for all (e.g. each in its own network
   * namespace, so that a test can cut the links between them); needs
   * clientPort, as a free port can only be looked for on this host.
   */
  readonly hosts?: readonly string[];
  /** A command member i runs under, before node (e.g. `ip netns exec NS`): it must exec node in its place, keeping the pid that signals go to. */
  readonly runUnder?: (i: number) => readonly string[];
  readonly token?: string;
  /** More `serve` flags for every member (e.g. --snapshot-count 100). */
  readonly extraFlags?: readonly string[];
  /** Echo the members' logs to this stream as they come. */
  readonly echo?: NodeJS.WritableStream;
  readonly clusterName?: string;
  /** Flags for the members' node itself, before the script (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
}

/** A TCP port nothing listens on at `host` right now (the OS picks it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export class LocalCluster {
  readonly members: LocalMember[] = [];
  private readonly initialCluster: string;

  private constructor(
    private readonly options: LocalClusterOptions,
    members: LocalMember[],
  ) {
    this.members = members;
    this.initialCluster = members.map((m) => `${m.name}=${m.peerURL}`).join(',');
  }

  static async create(options: LocalClusterOptions): Promise<LocalCluster> {
    if (options.hosts !== undefined && (options.hosts.length !== options.size || !options.clientPort)) {
      throw new Error(`LocalCluster: hosts needs one host per member (${options.size}) and a clientPort`);
    }
    const members: LocalMember[] = [];
    for (let i = 0; i < options.size; i++) {
      const host = options.hosts?.[i] ?? options.host ?? '127.0.0.1';
      const clientPort = options.clientPort ? options.clientPort + i : await freePort(host);
      const peerPort = options.clientPort ? options.clientPort + 100 + i : await freePort(host);
      const name = `${options.clusterName ?? 'm'}${i + 1}`;
      const dataDir = join(options.dataDir, name);
      mkdirSync(dataDir, { recursive: true });
      members.push({ name, clientURL: `http://${host}:${clientPort}`, peerURL: `http://${host}:${peerPort}`, dataDir, process: undefined, log: '' });
    }
    return new LocalCluster(options, members);
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientURL);
  }

  /** The flags member `i` runs with: etcd's, as one would write them for etcd. */
  flags(i: number): string[] {
    const m = this.members[i]!;
    return [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientURL,
      '--advertise-client-urls', m.clientURL,
      '--listen-peer-urls', m.peerURL,
      '--initial-advertise-peer-urls', m.peerURL,
      '--initial-cluster', this.initialCluster,
      '--initial-cluster-token', this.options.token ?? 'raftkv-local',
      '--initial-cluster-state', 'new',
      ...(this.options.extraFlags ?? []),
    ];
  }

  /** Starts member i (again, after a kill: it rejoins from its data directory). */
  start(i: number, extraFlags: readonly string[] = []): ChildProcess {
    const m = this.members[i]!;
    if (m.process && m.process.exitCode === null && m.process.signalCode === null) {
      throw new Error(`member ${m.name} is already running`);
    }
    mkdirSync(m.dataDir, { recursive: true });
    const command = [...(this.options.runUnder?.(i) ?? []), process.execPath, ...(this.options.nodeArgs ?? []), MAIN, 'serve', ...this.flags(i), ...extraFlags];
    const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer): void => {
      const s = d.toString();
      m.log = (m.log + s).slice(-1_000_000);
      this.options.echo?.write(s);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    m.process = child;
    return child;
  }

  startAll(): void {
    for (let i = 0; i < this.members.length; i++) this.start(i);
  }

  /** Sends a signal to member i: SIGKILL (kill -9), SIGSTOP, SIGCONT, SIGTERM. */
  signal(i: number, sig: NodeJS.Signals): void {
    this.members[i]!.process?.kill(sig);
  }

  running(i: number): boolean {
    const p = this.members[i]!.process;
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  /** kill -9 member i and waits for it to be gone. */
  async kill(i: number): Promise<void> {
    const p = this.members[i]!.process;
    if (!p || !this.running(i)) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGCONT'); // a stopped process must be able to die
    p.kill('SIGKILL');
    await exited;
  }

  /** Stops member i gracefully (SIGTERM), waiting up to `ms` before kill -9. */
  async stop(i: number, ms = 5000): Promise<void> {
    const p = this.members[i]!.process;
    if (!p || !this.running(i)) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGCONT');
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), ms);
    await exited;
    clearTimeout(timer);
  }

  async stopAll(ms = 5000): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.stop(i, ms)));
  }

  /** Waits until member i answers /health with a leader, or throws after `ms`. */
  async waitHealthy(i: number, ms = 20000): Promise<void> {
    const m = this.members[i]!;
    const deadline = Date.now() + ms;
    let last = '';
    while (Date.now() < deadline) {
      if (!this.running(i)) throw new Error(`member ${m.name} exited (${m.process?.exitCode ?? m.process?.signalCode}):\n${m.log.slice(-4000)}`);
      try {
        const res = await fetch(`${m.clientURL}/health`, { signal: AbortSignal.timeout(1000) });
        const body = await res.text();
        if (res.status === 200) return;
        last = body;
      } catch (e) {
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`member ${m.name} not healthy after ${ms} ms (last: ${last}):\n${m.log.slice(-4000)}`);
  }

  async waitAllHealthy(ms = 20000): Promise<void> {
    await Promise.all(this.members.map((_, i) => (this.running(i) ? this.waitHealthy(i, ms) : Promise.resolve())));
  }
}
