// Simulated clients: each runs one operation at a time against the cluster
// (set, get, del, inc on a few keys, so operations contend), retries on a
// timeout or refusal at another node with the same sequence number, and
// records the history that the linearizability checker reads. A scripted
// client (the visualiser's sandbox) runs only the operations submitted to it.

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

/** An operation submitted to a scripted client, and what became of it. */
export interface Submission {
  readonly input: KvInput;
  /** The node to try first (undefined: the client picks). */
  readonly to: NodeId | undefined;
  readonly at: number;
  /** The node the operation was first sent to. */
  sentTo?: NodeId;
  /** The operation, once started (after the client's session is registered). */
  op?: ClientOp;
  /** Why the client gave up, if it did (the outcome is then unknown). */
  failed?: string;
  failedAt?: number;
}

/** A scripted client gives up on an operation this long (µs) after it was submitted. */
export const SUBMISSION_DEADLINE_US = 5_000_000;

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
  /** A scripted client's submissions not yet finished, oldest (the one running) first. */
  private readonly submissions: Submission[] = [];
  /** The node the latest request went to: a scripted client retries elsewhere. */
  private lastTarget: NodeId | undefined;
  /**
   * Nodes this operation was sent to without a leader hint to follow: the
   * next such try goes to one not tried yet, so a client surrounded by
   * removed members (which never learn of their removal and keep pointing
   * at stale leaders) still reaches the real leader within a few timeouts
   * (soak seed 62015), as etcd's client balancer rotates through endpoints.
   */
  private readonly tried = new Set<NodeId>();
  /** The latest refusal's reason, for a scripted client that gives up. */
  private lastError: string | undefined;

  constructor(
    readonly id: number,
    private readonly rng: Random,
    private readonly host: ClientHost,
    private readonly keys: number,
    private readonly timeoutUs: number,
    private readonly thinkUs: number,
    /** Run only the operations submitted (submit()), instead of random ones. */
    private readonly scripted = false,
  ) {}

  /** Whether a scripted client has nothing to do (a new submission starts at once). */
  get idle(): boolean {
    return this.submissions.length === 0;
  }

  /** Submits an operation to a scripted client; it runs after those submitted before it. */
  submit(now: number, input: KvInput, to?: NodeId): Submission {
    const sub: Submission = { input, to, at: now };
    this.submissions.push(sub);
    if (this.submissions.length === 1) this.schedule(now);
    return sub;
  }

  /** A scripted client's running submission, past its deadline: give up on it. Returns whether it did. */
  private giveUp(now: number): boolean {
    const sub = this.submissions[0];
    if (!sub || now - sub.at < SUBMISSION_DEADLINE_US) return false;
    sub.failed = this.lastError !== undefined ? `refused (${this.lastError})` : 'no answer (outcome unknown)';
    sub.failedAt = now;
    if (this.current && this.current === sub.op) this.current = undefined;
    this.registering = 0;
    this.submissions.shift();
    if (this.submissions.length > 0) this.schedule(now);
    return true;
  }

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
    if (this.scripted) return this.scriptedTarget();
    const guess = this.leaderGuess;
    const stick = read ? 0.5 : 0.8;
    if (guess !== undefined && this.rng.chance(stick)) return guess;
    const ids = this.host.nodeIds();
    let untried = ids.filter((id) => !this.tried.has(id));
    if (untried.length === 0) {
      this.tried.clear();
      untried = [...ids];
    }
    const to = this.rng.pick(untried);
    this.tried.add(to);
    return to;
  }

  /**
   * A scripted client sends a new submission where asked, then follows the
   * leader hints it gets, and after a timeout tries another node than the
   * one that did not answer.
   */
  private scriptedTarget(): NodeId {
    const sub = this.submissions[0];
    const first = sub !== undefined && sub.sentTo === undefined;
    let to: NodeId;
    if (first && sub.to !== undefined) to = sub.to;
    else if (this.leaderGuess !== undefined) to = this.leaderGuess;
    else {
      const ids = this.host.nodeIds();
      const others = ids.filter((id) => id !== this.lastTarget);
      to = this.rng.pick(others.length > 0 ? others : ids);
    }
    this.lastTarget = to;
    return to;
  }

  /**
   * Woken by its timer: register if there is no session, start the next
   * operation, or retry after a timeout.
   */
  wake(now: number, token: number): void {
    if (token !== this.token) return;
    if (this.scripted && this.giveUp(now)) return;
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
    const sub = this.submissions[0];
    if (this.scripted && (sub === undefined || sub.op !== undefined)) return;
    const input = sub ? sub.input : this.nextInput();
    this.current = { seq: ++this.seq, input, call: now, attempt: 0 };
    this.history.push(this.current);
    this.lastError = undefined;
    this.tried.clear();
    if (sub) sub.op = this.current;
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
    const to = this.target(op.input.op === 'get');
    const sub = this.submissions[0];
    if (sub?.op === op && sub.sentTo === undefined) sub.sentTo = to;
    this.host.sendRequest(to, {
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
      const sub = this.submissions[0];
      if (sub?.op === op) {
        sub.failed = 'session expired (outcome unknown)';
        sub.failedAt = now;
        this.submissions.shift();
      }
      this.schedule(now);
      return;
    }
    if (r.error !== undefined) return this.retrySoon(now, r);
    op.output = r.output;
    op.ret = now;
    this.current = undefined;
    this.leaderGuess = r.from;
    if (this.submissions[0]?.op === op) this.submissions.shift();
    this.host.onComplete(this, op, this.session!);
    this.schedule(now + this.rng.int(this.thinkUs + 1));
  }

  /** Refused (no leader, transfer in progress...): nothing was applied. Try again shortly. */
  private retrySoon(now: number, r: ClientReply): void {
    this.lastError = r.error;
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
