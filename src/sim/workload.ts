// Simulated clients: each runs one operation at a time against the cluster
// (set, get, del, inc on a few keys, so operations contend), retries on a
// timeout or refusal at another node with the same sequence number, and
// records the history that the linearizability checker reads.

import type { NodeId } from '../raft/types.js';
import type { KvInput, KvOutput, Operation } from './linearizability.js';
import type { ClientReply, ClientRequest } from './node.js';
import type { Random } from './random.js';

/** Client ids start here, apart from node ids. */
export const CLIENT_ID_BASE = 1000;

export interface ClientOp {
  readonly seq: number;
  readonly input: KvInput;
  readonly call: number;
  attempt: number;
  /** Set when a response arrived. */
  output?: KvOutput;
  ret?: number;
}

export interface ClientHost {
  /** Sends a request to a node over the network. */
  sendRequest(to: NodeId, req: ClientRequest): void;
  /** Asks to be woken at `at` with `token`. */
  wake(client: SimClient, at: number, token: number): void;
  nodeIds(): readonly NodeId[];
  /** An operation finished; `session` is the session it ran in. */
  onComplete(client: SimClient, op: ClientOp, session: number): void;
}

export class SimClient {
  /** The session, once registered (diss. §6.3). */
  private session: number | undefined;
  /** Attempts at registering the current session, while registering. */
  private registering = 0;
  /**
   * Registration attempts over the client's life: each attempt's number is
   * unique, so that a lagging node applying an old registration entry
   * cannot answer a newer registration with the old (expired) session.
   */
  private registrationAttempts = 0;
  /** The number of the current registration's first attempt: answers to earlier ones are stale. */
  private registrationStart = 0;
  private seq = 0;
  current: ClientOp | undefined;
  readonly history: ClientOp[] = [];
  private leaderGuess: NodeId | undefined;
  /** Only the latest wake-up counts. */
  private token = 0;
  stopped = false;
  /** Times this client was told its session had expired. */
  sessionsExpired = 0;

  constructor(
    readonly id: number,
    private readonly rng: Random,
    private readonly host: ClientHost,
    private readonly keys: number,
    private readonly timeoutUs: number,
    private readonly thinkUs: number,
  ) {}

  start(now: number): void {
    this.schedule(now + this.rng.int(this.thinkUs + 1));
  }

  private schedule(at: number): void {
    this.token++;
    this.host.wake(this, at, this.token);
  }

  /**
   * The node to try: usually the last known leader, sometimes any node.
   * Reads go to any node half the time, as clients spread reads over their
   * endpoints (a follower forwards the read to the leader it believes in).
   */
  private target(read = false): NodeId {
    const guess = this.leaderGuess;
    const stick = read ? 0.5 : 0.8;
    return guess !== undefined && this.rng.chance(stick) ? guess : this.rng.pick(this.host.nodeIds());
  }

  /**
   * Woken by its timer: register if there is no session, start the next
   * operation, or retry after a timeout.
   */
  wake(now: number, token: number): void {
    if (token !== this.token) return;
    if (this.registering > 0 || (this.session === undefined && !this.current && !this.stopped)) {
      this.register(now);
      return;
    }
    if (this.current) {
      // The outcome is unknown: retry with the same sequence number, so
      // that the state machine applies the command at most once.
      this.leaderGuess = undefined;
      this.attempt(now);
      return;
    }
    if (this.stopped) return;
    const input = this.nextInput();
    this.current = { seq: ++this.seq, input, call: now, attempt: 0 };
    this.history.push(this.current);
    this.attempt(now);
  }

  private register(now: number): void {
    if (this.registering++ === 0) this.registrationStart = this.registrationAttempts + 1;
    this.host.sendRequest(this.target(), {
      client: this.id,
      register: true,
      session: 0,
      seq: 0,
      input: undefined,
      attempt: ++this.registrationAttempts,
    });
    this.schedule(now + this.timeoutUs);
  }

  private nextInput(): KvInput {
    const key = `k${this.rng.int(this.keys)}`;
    return this.rng.weighted<KvInput>([
      [{ op: 'get', key }, 4],
      [{ op: 'set', key, value: String(this.rng.int(100)) }, 3],
      [{ op: 'inc', key }, 2],
      [{ op: 'del', key }, 1],
    ]);
  }

  private attempt(now: number): void {
    const op = this.current!;
    op.attempt++;
    this.host.sendRequest(this.target(op.input.op === 'get'), {
      client: this.id,
      register: false,
      session: this.session!,
      seq: op.seq,
      input: op.input,
      attempt: op.attempt,
    });
    this.schedule(now + this.timeoutUs);
  }

  onReply(now: number, r: ClientReply): void {
    if (this.registering > 0) {
      if (r.opSession !== undefined) return; // a late answer about an operation of the old session
      if (r.session === undefined) return this.retrySoon(now, r);
      // The answer to a registration of an earlier session, applied late by a lagging node.
      if (r.registration === undefined || r.registration < this.registrationStart) return;
      this.session = r.session;
      this.seq = 0;
      this.registering = 0;
      this.leaderGuess = r.from;
      this.schedule(now + this.rng.int(this.thinkUs + 1));
      return;
    }
    const op = this.current;
    // Sequence numbers start over in each session: an answer must name this one.
    if (!op || r.seq !== op.seq || r.opSession !== this.session) return; // an answer to something already finished
    if (r.error === 'session-expired') {
      this.sessionsExpired++;
      // Our session is gone: this operation's outcome stays unknown (it may
      // have been applied before the session expired). Start a new session.
      this.current = undefined;
      this.session = undefined;
      this.schedule(now);
      return;
    }
    if (r.error !== undefined) return this.retrySoon(now, r);
    op.output = r.output;
    op.ret = now;
    this.current = undefined;
    this.leaderGuess = r.from;
    this.host.onComplete(this, op, this.session!);
    this.schedule(now + this.rng.int(this.thinkUs + 1));
  }

  /** Refused (no leader, transfer in progress...): nothing was applied. Try again shortly. */
  private retrySoon(now: number, r: ClientReply): void {
    this.leaderGuess = r.leaderHint || undefined;
    this.schedule(now + Math.min(this.timeoutUs, 2000 + this.rng.int(20000)));
  }

  /** The history as the linearizability checker takes it; unfinished operations have an unknown outcome. */
  operations(): Operation<KvInput, KvOutput>[] {
    const out: Operation<KvInput, KvOutput>[] = [];
    for (const op of this.history) out.push({ client: this.id, input: op.input, output: op.output, call: op.call, ret: op.ret ?? Infinity });
    return out;
  }
}
