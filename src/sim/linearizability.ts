/**
 * Linearizability checker.
 *
 * Implements the Wing & Gong depth-first search over a history of call/return
 * events, with Lowe's memoization of (set of linearized operations, model
 * state) configurations, as popularised by Knossos and Porcupine.  A model may
 * split a history into independent sub-histories (P-compositionality, Horn &
 * Kroening); each is then checked on its own, which is what keeps multi-key KV
 * histories tractable.
 *
 * Time semantics: operation A happens-before operation B only if
 * `A.ret < B.call`.  An operation whose call time equals another's return time
 * is treated as concurrent with it.  This is the permissive (and standard)
 * choice: with coarse timestamps (e.g. whole virtual milliseconds) two events
 * sharing a tick cannot be ordered, and claiming an order we did not observe
 * could report violations that did not happen.
 *
 * Unknown outcomes: an operation whose `output` is `undefined` (a timeout, or a
 * client that crashed) may take effect at any point after its call, or never.
 * Its `ret` is ignored and treated as +Infinity, because a request that timed
 * out may still be in flight and apply later.  The search succeeds as soon as
 * every operation with a known outcome has been linearized; unknown operations
 * left over are the ones that "never happened".
 *
 * See docs/linearizability.md for a longer description.
 */

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

export interface Operation<I, O> {
  /** Client id (for reporting only). */
  client: number;
  input: I;
  /** `undefined` = outcome unknown (timed out / crashed): may or may not have taken effect. */
  output: O | undefined;
  /** Invocation time (any monotone number, e.g. virtual ms). */
  call: number;
  /** Response time; Infinity when the outcome is unknown (ignored, and taken as Infinity, when `output` is undefined). */
  ret: number;
}

export interface Model<S, I, O> {
  init(): S;
  /**
   * Returns the next state if applying `input` in state `s` could legally
   * produce `output` (when output is undefined, any output is acceptable),
   * else undefined.  Must not mutate `s`: the search backtracks to old states.
   */
  step(s: S, input: I, output: O | undefined): S | undefined;
  /** Stable key for memoizing states; equal states must give equal keys. */
  key(s: S): string;
  /**
   * Optional P-compositionality: split a history into independent
   * sub-histories (e.g. by KV key).  Every operation must appear in exactly
   * one sub-history.
   */
  partition?(ops: Operation<I, O>[]): Operation<I, O>[][];
  /**
   * Optional search hint: true only if *every* legal step for this input and
   * output leaves the state unchanged (e.g. a read; a compare-and-set that
   * reported failure).  The checker then linearizes such an op as soon as it
   * is legal and skips the alternatives, which prunes read-heavy histories a
   * lot.  Answering true wrongly makes the checker unsound; false is always safe.
   */
  readOnly?(input: I, output: O | undefined): boolean;
  /** Human-readable rendering of one operation, for reports. */
  describe?(input: I, output: O | undefined): string;
}

export type CheckResult =
  | { outcome: 'ok' }
  | {
      outcome: 'violation';
      /** Index of the offending sub-history in the model's partition (0 when the model does not partition). */
      partition: number;
      /** The longest linearizable prefix found and the operations that could not be placed, human readable. */
      explanation: string;
    }
  | { outcome: 'unknown'; reason: string };

export interface CheckOptions {
  /** Search budget per partition, in search-loop iterations. Default {@link DEFAULT_MAX_STEPS}. */
  maxSteps?: number;
}

export const DEFAULT_MAX_STEPS = 5_000_000;

export type LinearizabilityErrorCode = 'invalid-history' | 'invalid-partition' | 'invalid-options' | 'internal';

/** Thrown for malformed input (never for a non-linearizable history: that is a result, not an error). */
export class LinearizabilityError extends Error {
  readonly code: LinearizabilityErrorCode;

  constructor(code: LinearizabilityErrorCode, message: string) {
    super(message);
    this.name = 'LinearizabilityError';
    this.code = code;
  }
}

/**
 * Checks whether `history` is linearizable with respect to `model`.
 *
 * Returns `ok`, a `violation` (for the first sub-history found not to be
 * linearizable), or `unknown` when some sub-history exhausted its step budget
 * and no other one was found to be violated.
 */
export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  opts?: CheckOptions,
): CheckResult {
  const maxSteps = opts?.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!Number.isInteger(maxSteps) || maxSteps < 1) {
    throw new LinearizabilityError('invalid-options', `maxSteps must be a positive integer, got ${maxSteps}`);
  }
  history.forEach(validateOperation);

  const partitions = model.partition ? model.partition(history) : [history];
  const partitioned = partitions.reduce((n, p) => n + p.length, 0);
  if (partitioned !== history.length) {
    throw new LinearizabilityError(
      'invalid-partition',
      `model.partition returned ${partitioned} operations in total for a history of ${history.length}`,
    );
  }

  // Lets reports refer to operations by their position in the caller's history.
  const historyIndex = new Map<Operation<I, O>, number>();
  for (let i = 0; i < history.length; i++) historyIndex.set(history[i]!, i);

  const unknownReasons: string[] = [];
  for (let p = 0; p < partitions.length; p++) {
    // Numbering ops in call order keeps the search's bitsets compact (see Bitset).
    const ops = [...partitions[p]!].sort(byCall);
    if (ops.length === 0) continue;
    const result = checkPartition(model, ops, maxSteps);
    if (result.outcome === 'violation') {
      const explanation = explainViolation(model, ops, result, p, partitions.length, historyIndex);
      return { outcome: 'violation', partition: p, explanation };
    }
    if (result.outcome === 'unknown') {
      // Keep going: a definite violation in another partition is more useful than "unknown".
      unknownReasons.push(`partition ${p} (${ops.length} ops): search budget of ${maxSteps} steps exhausted`);
    }
  }
  if (unknownReasons.length > 0) {
    return { outcome: 'unknown', reason: unknownReasons.join('; ') };
  }
  return { outcome: 'ok' };
}

function validateOperation(op: Operation<unknown, unknown>, index: number): void {
  if (typeof op.call !== 'number' || !Number.isFinite(op.call)) {
    throw new LinearizabilityError('invalid-history', `operation #${index}: call time must be a finite number, got ${op.call}`);
  }
  if (op.output === undefined) return; // ret is ignored for unknown outcomes
  if (typeof op.ret !== 'number' || Number.isNaN(op.ret)) {
    throw new LinearizabilityError('invalid-history', `operation #${index}: return time must be a number, got ${op.ret}`);
  }
  if (op.ret < op.call) {
    throw new LinearizabilityError('invalid-history', `operation #${index}: returns (${op.ret}) before it is called (${op.call})`);
  }
}

// ---------------------------------------------------------------------------
// Bitset with incremental hashing
// ---------------------------------------------------------------------------

/** murmur3's 32-bit finalizer: a cheap, well-mixing integer hash. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** FNV-1a over UTF-16 code units. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

/**
 * Set of linearized operation ids.
 *
 * The hash is maintained incrementally (Zobrist style: XOR of a per-id
 * random-looking value), so set/clear are O(1) and only a probable cache hit
 * pays for a word-by-word comparison.
 *
 * Ops are numbered in call order, and the search linearizes them roughly in
 * that order, so any reachable set is "all ops below some point, plus a few
 * concurrent ones".  We therefore track `low` (the first word that is not all
 * ones) and `high` (one past the last non-zero word): the set is fully
 * described by `low` and the window `words[low, high)`, which is what the
 * cache stores.  That keeps memory per cached configuration proportional to
 * the concurrency, not to the history length.
 */
class Bitset {
  private readonly words: Uint32Array;
  private readonly salts: Uint32Array;
  hash = 0;
  low = 0;
  private high = 0;

  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
    this.salts = new Uint32Array(size);
    for (let i = 0; i < size; i++) this.salts[i] = mix32(Math.imul(i + 1, 0x9e3779b9));
  }

  set(i: number): void {
    const w = i >>> 5;
    this.words[w]! |= 1 << (i & 31);
    this.hash = (this.hash ^ this.salts[i]!) >>> 0;
    if (w >= this.high) this.high = w + 1;
    while (this.low < this.words.length && this.words[this.low] === 0xffffffff) this.low++;
  }

  clear(i: number): void {
    const w = i >>> 5;
    this.words[w]! &= ~(1 << (i & 31));
    this.hash = (this.hash ^ this.salts[i]!) >>> 0;
    if (w < this.low) this.low = w;
    while (this.high > 0 && this.words[this.high - 1] === 0) this.high--;
  }

  /** The words that, with `low`, identify the set. */
  window(): Uint32Array {
    return this.words.slice(this.low, Math.max(this.low, this.high));
  }

  /** Whether this set equals the one snapshotted as (`low`, `window`). */
  matches(low: number, window: Uint32Array): boolean {
    if (low !== this.low || window.length !== Math.max(0, this.high - this.low)) return false;
    const w = this.words;
    for (let i = 0; i < window.length; i++) if (w[low + i] !== window[i]) return false;
    return true;
  }
}

interface CacheEntry {
  low: number;
  window: Uint32Array;
  stateKey: string;
}

/** Lowe's memo: configurations (linearized set, state) already explored or on the current path. */
class ConfigCache {
  private readonly buckets = new Map<number, CacheEntry | CacheEntry[]>();

  /** Adds the configuration; returns false if it was already present. */
  add(bits: Bitset, stateKey: string): boolean {
    const h = (bits.hash ^ Math.imul(hashString(stateKey), 0x27d4eb2d)) >>> 0;
    const found = this.buckets.get(h);
    // Buckets almost always hold one entry; avoid an array for that case.
    if (found === undefined) {
      this.buckets.set(h, this.entry(bits, stateKey));
      return true;
    }
    if (!Array.isArray(found)) {
      if (found.stateKey === stateKey && bits.matches(found.low, found.window)) return false;
      this.buckets.set(h, [found, this.entry(bits, stateKey)]);
      return true;
    }
    for (const e of found) {
      if (e.stateKey === stateKey && bits.matches(e.low, e.window)) return false;
    }
    found.push(this.entry(bits, stateKey));
    return true;
  }

  private entry(bits: Bitset, stateKey: string): CacheEntry {
    return { low: bits.low, window: bits.window(), stateKey };
  }
}

// ---------------------------------------------------------------------------
// Search over one partition
// ---------------------------------------------------------------------------

type PartitionResult<S> =
  | { outcome: 'ok' }
  | { outcome: 'unknown' }
  | {
      outcome: 'violation';
      /** Op ids (indices into the partition) of the longest linearizable prefix found, in order. */
      bestPrefix: number[];
      /** Model state after that prefix. */
      bestState: S;
    };

/** Effective return time: unknown outcomes may take effect arbitrarily late. */
function effectiveRet(op: Operation<unknown, unknown>): number {
  return op.output === undefined ? Infinity : op.ret;
}

/**
 * Builds the event list: one call and one return entry per op, sorted by time;
 * at equal times calls come first, so an op returning at t and one called at t
 * overlap (see the header comment).  Remaining ties are broken by op id to keep
 * the search, and hence reports, deterministic.
 *
 * Entry e in [0, 2n) is a call if `isCall[e]`; `opOf[e]` is its op id and
 * `match[e]` the entry of the other half of the same op.
 */
// Comparators and callbacks live at module level: V8 optimizes a closure
// made per call again for every call that gets hot.

function byCall(a: Operation<unknown, unknown>, b: Operation<unknown, unknown>): number {
  return a.call - b.call;
}

function byEventOrder(a: { time: number; isCall: boolean; op: number }, b: { time: number; isCall: boolean; op: number }): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
  return a.op - b.op;
}

function buildEntries(ops: Operation<unknown, unknown>[]) {
  const n = ops.length;
  const events: { time: number; isCall: boolean; op: number }[] = [];
  for (let i = 0; i < n; i++) {
    events.push({ time: ops[i]!.call, isCall: true, op: i });
    events.push({ time: effectiveRet(ops[i]!), isCall: false, op: i });
  }
  events.sort(byEventOrder);
  const isCall = new Uint8Array(2 * n);
  const opOf = new Int32Array(2 * n);
  const match = new Int32Array(2 * n);
  const callEntryOf = new Int32Array(n);
  const retEntryOf = new Int32Array(n);
  for (let e = 0; e < events.length; e++) {
    const ev = events[e]!;
    isCall[e] = ev.isCall ? 1 : 0;
    opOf[e] = ev.op;
    if (ev.isCall) callEntryOf[ev.op] = e;
    else retEntryOf[ev.op] = e;
  }
  for (let i = 0; i < n; i++) {
    match[callEntryOf[i]!] = retEntryOf[i]!;
    match[retEntryOf[i]!] = callEntryOf[i]!;
  }
  return { isCall, opOf, match, callEntryOf, retEntryOf };
}

function checkPartition<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[], maxSteps: number): PartitionResult<S> {
  return new PartitionSearch(model, ops).run(maxSteps);
}

/**
 * The search over one partition. A class rather than closures in
 * checkPartition: closures made per call are optimized again for every
 * call that gets hot, which in a sweep of seeds is every call.
 */
class PartitionSearch<S, I, O> {
  private readonly isCall: Uint8Array;
  private readonly opOf: Int32Array;
  private readonly match: Int32Array;
  /**
   * Doubly-linked list of entries not yet linearized, in time order.  Node
   * 2n is the head sentinel; -1 is the end.  Lifting an op unlinks its call
   * and return entries; unlifting relinks them in reverse order (dancing
   * links).
   */
  private readonly head: number;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly known: boolean[];
  /**
   * Partial-order reduction.  Say op r is legal in the current state, leaves
   * it unchanged, and the scan reached its call entry (so no pending op
   * returned before r was called).  If any linearization from here exists,
   * the one obtained by moving r to the front is valid too: r sees the same
   * state and changes nothing, and moving r earlier breaks no real-time
   * order.  So when the model vouches that r never changes the state
   * (`readOnly`), the search places r and does not explore the alternatives
   * at that level.
   */
  private readonly readOnly: Uint8Array;
  /**
   * The history is linearizable once every op with a known outcome is
   * placed; leftover unknown-outcome ops are taken never to have happened.
   */
  private readonly knownCount: number;
  private knownRemaining: number;
  private readonly bits: Bitset;
  private readonly cache = new ConfigCache();
  /** Call entries of the linearized ops, in order. */
  private readonly callStack: number[] = [];
  /** The state before each of them. */
  private readonly stateStack: S[] = [];
  private state: S;
  private bestPrefix: number[] = [];
  private bestKnown = 0;
  private bestState: S;
  /** How many leading entries of callStack bestPrefix still shares: a new best copies only the rest (else a long history costs O(n²)). */
  private bestShared = 0;

  constructor(
    private readonly model: Model<S, I, O>,
    private readonly ops: Operation<I, O>[],
  ) {
    const n = ops.length;
    const { isCall, opOf, match } = buildEntries(ops);
    this.isCall = isCall;
    this.opOf = opOf;
    this.match = match;
    const head = 2 * n;
    this.head = head;
    this.next = new Int32Array(2 * n + 1);
    this.prev = new Int32Array(2 * n + 1);
    for (let e = 0; e <= head; e++) {
      this.next[e] = e + 1 < 2 * n ? e + 1 : -1;
      this.prev[e] = e - 1;
    }
    this.next[head] = n > 0 ? 0 : -1;
    this.prev[0] = head;
    this.known = new Array<boolean>(n);
    this.readOnly = new Uint8Array(n);
    let knownCount = 0;
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      this.known[i] = op.output !== undefined;
      if (this.known[i]) knownCount++;
      this.readOnly[i] = model.readOnly?.(op.input, op.output) ? 1 : 0;
    }
    this.knownCount = knownCount;
    this.knownRemaining = this.knownCount;
    this.bits = new Bitset(n);
    this.state = model.init();
    this.bestState = this.state;
  }

  private unlink(e: number): void {
    const p = this.prev[e]!;
    const q = this.next[e]!;
    this.next[p] = q;
    if (q !== -1) this.prev[q] = p;
  }

  private relink(e: number): void {
    const p = this.prev[e]!;
    const q = this.next[e]!;
    this.next[p] = e;
    if (q !== -1) this.prev[q] = e;
  }

  private lift(callEntry: number): void {
    this.unlink(callEntry);
    this.unlink(this.match[callEntry]!);
  }

  private unlift(callEntry: number): void {
    this.relink(this.match[callEntry]!);
    this.relink(callEntry);
  }

  /**
   * Undoes linearizations until one leaves an alternative to try, and
   * returns the entry to resume scanning from; -1 when the whole search
   * space is exhausted.  An op placed as read-only was the only candidate
   * worth trying at its level (see `readOnly`), so its siblings are skipped.
   */
  private backtrack(): number {
    for (;;) {
      const e = this.callStack.pop();
      if (e === undefined) return -1;
      if (this.bestShared > this.callStack.length) this.bestShared = this.callStack.length;
      this.state = this.stateStack.pop()!;
      const op = this.opOf[e]!;
      this.bits.clear(op);
      this.unlift(e);
      if (this.known[op]) this.knownRemaining++;
      if (this.readOnly[op] === 0) return this.next[e]!;
    }
  }

  run(maxSteps: number): PartitionResult<S> {
    const { model, ops, isCall, opOf, next, bits, cache, callStack, readOnly } = this;
    const violation = (): PartitionResult<S> => ({ outcome: 'violation', bestPrefix: this.bestPrefix, bestState: this.bestState });
    let cur = next[this.head]!;
    let steps = 0;
    while (this.knownRemaining > 0) {
      if (++steps > maxSteps) return { outcome: 'unknown' };

      if (cur === -1) {
        // Unreachable: a known op still in the list has a finite return entry,
        // which stops the scan.  Fail loudly rather than loop.
        throw new LinearizabilityError('internal', 'search ran off the end of the entry list');
      }

      if (isCall[cur] === 1) {
        const op = opOf[cur]!;
        const nextState = model.step(this.state, ops[op]!.input, ops[op]!.output);
        if (nextState !== undefined) {
          bits.set(op);
          if (cache.add(bits, model.key(nextState))) {
            callStack.push(cur);
            this.stateStack.push(this.state);
            this.state = nextState;
            this.lift(cur);
            if (this.known[op]) this.knownRemaining--;
            // Best = most known-outcome ops placed, then fewest unknown ones
            // (they are padding the reader does not need to see).
            const placedKnown = this.knownCount - this.knownRemaining;
            if (placedKnown > this.bestKnown || (placedKnown === this.bestKnown && callStack.length < this.bestPrefix.length)) {
              this.bestKnown = placedKnown;
              this.bestPrefix.length = this.bestShared;
              for (let k = this.bestShared; k < callStack.length; k++) this.bestPrefix.push(opOf[callStack[k]!]!);
              this.bestShared = callStack.length;
              this.bestState = this.state;
            }
            cur = next[this.head]!;
            continue;
          }
          // Configuration already explored and failed (it cannot be on the
          // current path: bitsets only grow along a path).
          bits.clear(op);
          if (readOnly[op] === 1) {
            // Placing a legal read-only op first is never worse than any
            // alternative, so this configuration fails as a whole.
            cur = this.backtrack();
            if (cur === -1) return violation();
            continue;
          }
        }
        cur = next[cur]!;
      } else {
        // A return entry: its op must be linearized before anything that starts
        // later, and every candidate before it has been tried.  Backtrack.
        cur = this.backtrack();
        if (cur === -1) return violation();
      }
    }
    return { outcome: 'ok' };
  }
}

// ---------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------

const MAX_PREFIX_LINES = 10;
const MAX_CANDIDATE_LINES = 20;

function formatTime(t: number): string {
  return Number.isFinite(t) ? String(t) : '∞';
}

function defaultDescribe(input: unknown, output: unknown): string {
  return `${JSON.stringify(input)} -> ${output === undefined ? '?' : JSON.stringify(output)}`;
}

function formatOp<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>, historyIndex: Map<Operation<I, O>, number>): string {
  const idx = historyIndex.get(op);
  const what = model.describe ? model.describe(op.input, op.output) : defaultDescribe(op.input, op.output);
  const id = idx === undefined ? '' : `#${idx} `;
  return `${id}client ${op.client} [${formatTime(op.call)}, ${formatTime(effectiveRet(op))}]: ${what}`;
}

/**
 * Renders a failed search: the longest linearizable prefix found and, at its
 * end, the op that had to be linearized next (the earliest pending return)
 * together with every op that could have gone before it, and why each did not
 * lead anywhere.
 */
function explainViolation<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  result: Extract<PartitionResult<S>, { outcome: 'violation' }>,
  partition: number,
  partitionCount: number,
  historyIndex: Map<Operation<I, O>, number>,
): string {
  const { bestPrefix, bestState } = result;
  const lines: string[] = [];
  const where = partitionCount > 1 ? `Partition ${partition} of ${partitionCount}` : 'History';
  lines.push(`${where} (${ops.length} ops) is not linearizable.`);
  lines.push(
    `Longest linearizable prefix found: ${bestPrefix.length} of ${ops.length} ops; model state after it: ${model.key(bestState)}.`,
  );

  if (bestPrefix.length > 0) {
    lines.push('Its last ops, in linearization order:');
    const start = Math.max(0, bestPrefix.length - MAX_PREFIX_LINES);
    if (start > 0) lines.push(`  ... ${start} earlier ops`);
    for (let i = start; i < bestPrefix.length; i++) lines.push(`  ${formatOp(model, ops[bestPrefix[i]!]!, historyIndex)}`);
  }

  // Replay the entry order without the prefix to find where the scan stopped.
  const { isCall, opOf } = buildEntries(ops);
  const placed = new Set(bestPrefix);
  const candidates: number[] = [];
  let blocker = -1;
  for (let e = 0; e < isCall.length; e++) {
    const op = opOf[e]!;
    if (placed.has(op)) continue;
    if (isCall[e] === 1) {
      candidates.push(op);
    } else {
      blocker = op;
      break;
    }
  }

  if (blocker !== -1) {
    const blockerOp = ops[blocker]!;
    lines.push(
      `It cannot be extended: ${formatOp(model, blockerOp, historyIndex)} must take effect by t=${formatTime(effectiveRet(blockerOp))}, ` +
        `but no op that may go next (${candidates.length} candidates) leads to a linearization:`,
    );
    for (const op of candidates.slice(0, MAX_CANDIDATE_LINES)) {
      const legal = model.step(bestState, ops[op]!.input, ops[op]!.output) !== undefined;
      const why = legal ? 'legal here, but the remaining ops then cannot be linearized' : 'not a legal step in this state';
      lines.push(`  ${formatOp(model, ops[op]!, historyIndex)} -- ${why}`);
    }
    if (candidates.length > MAX_CANDIDATE_LINES) lines.push(`  ... ${candidates.length - MAX_CANDIDATE_LINES} more`);
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// Key-value model
// ---------------------------------------------------------------------------

export type KvInput =
  | { op: 'get'; key: string }
  | { op: 'set'; key: string; value: string }
  | { op: 'del'; key: string }
  /** Atomic increment of a decimal integer value; a missing key counts as 0. */
  | { op: 'inc'; key: string }
  /** Compare-and-set; `expected` undefined means the key must be absent. */
  | { op: 'cas'; key: string; expected: string | undefined; value: string };

/**
 * Outputs, per operation:
 *  - get: `{ ok: true, value }`, value undefined (or omitted) when the key is absent;
 *  - set: `{ ok: true }` (no value);
 *  - del: `{ ok: true, deleted }`, whether the key existed;
 *  - inc: `{ ok: true, value }` with the new value as a decimal string, or
 *         `{ ok: false, error: 'not-integer' }` (no effect) when the current value is not an integer;
 *  - cas: `{ ok: true, swapped }`.
 * Any other shape for an operation is rejected as illegal.
 */
export type KvOutput =
  | { ok: true; value?: string | undefined }
  | { ok: true; deleted: boolean }
  | { ok: true; swapped: boolean }
  | { ok: false; error: 'not-integer' };

/** Key → value.  Treated as immutable: `step` copies on write. */
export type KvState = ReadonlyMap<string, string>;

/** Decimal integers, optionally negative; leading zeros are accepted ("007" + 1 = "8"). */
const INTEGER_RE = /^-?\d+$/;

/** The new value after an increment, or undefined if `current` is not an integer. Missing counts as 0. */
export function kvIncrement(current: string | undefined): string | undefined {
  if (current === undefined) return '1';
  if (!INTEGER_RE.test(current)) return undefined;
  // BigInt: values are strings of arbitrary length, so avoid float rounding.
  return (BigInt(current) + 1n).toString();
}

function isPlainOk(out: KvOutput): boolean {
  return out.ok && !('deleted' in out) && !('swapped' in out);
}

function withValue(s: KvState, key: string, value: string | undefined): KvState {
  if (s.get(key) === value) return s;
  const m = new Map(s);
  if (value === undefined) m.delete(key);
  else m.set(key, value);
  return m;
}

/**
 * What an input does to the value of its key (`current`): the new value to
 * write (`write` false: the key is left as it is) and the output.
 */
export function kvEffect(current: string | undefined, input: KvInput): { write: boolean; value: string | undefined; output: KvOutput } {
  switch (input.op) {
    case 'get':
      return { write: false, value: current, output: { ok: true, value: current } };
    case 'set':
      return { write: true, value: input.value, output: { ok: true } };
    case 'del':
      return { write: true, value: undefined, output: { ok: true, deleted: current !== undefined } };
    case 'inc': {
      const next = kvIncrement(current);
      if (next === undefined) return { write: false, value: current, output: { ok: false, error: 'not-integer' } };
      return { write: true, value: next, output: { ok: true, value: next } };
    }
    case 'cas': {
      const swapped = current === input.expected;
      return { write: swapped, value: swapped ? input.value : current, output: { ok: true, swapped } };
    }
  }
}

/** The model's effect and output, for an input applied in state `s`. */
export function kvApply(s: KvState, input: KvInput): { state: KvState; output: KvOutput } {
  const { write, value, output } = kvEffect(s.get(input.key), input);
  return { state: write ? withValue(s, input.key, value) : s, output };
}

/** Whether `actual` is exactly the output the model produces (`expected`) for an op of kind `op`. */
function kvOutputMatches(op: KvInput['op'], expected: KvOutput, actual: KvOutput): boolean {
  if (!expected.ok) return !actual.ok && actual.error === expected.error;
  if (!actual.ok) return false;
  switch (op) {
    case 'get':
    case 'set':
    case 'inc': {
      if (!isPlainOk(actual)) return false;
      // A set's expected output has no value, so this also rejects a set output carrying one.
      const actualValue = 'value' in actual ? actual.value : undefined;
      const expectedValue = 'value' in expected ? expected.value : undefined;
      return actualValue === expectedValue;
    }
    case 'del':
      return 'deleted' in actual && 'deleted' in expected && actual.deleted === expected.deleted;
    case 'cas':
      return 'swapped' in actual && 'swapped' in expected && actual.swapped === expected.swapped;
  }
}

function describeKvValue(v: string | undefined): string {
  return v === undefined ? 'absent' : JSON.stringify(v);
}

function describeKv(input: KvInput, output: KvOutput | undefined): string {
  const k = JSON.stringify(input.key);
  let call: string;
  switch (input.op) {
    case 'get':
    case 'del':
    case 'inc':
      call = `${input.op}(${k})`;
      break;
    case 'set':
      call = `set(${k}, ${JSON.stringify(input.value)})`;
      break;
    case 'cas':
      call = `cas(${k}, ${describeKvValue(input.expected)} => ${JSON.stringify(input.value)})`;
      break;
  }
  let result: string;
  if (output === undefined) result = '? (outcome unknown)';
  else if (!output.ok) result = `error ${output.error}`;
  else if ('deleted' in output) result = output.deleted ? 'deleted' : 'was absent';
  else if ('swapped' in output) result = output.swapped ? 'swapped' : 'not swapped';
  else if (input.op === 'set') result = 'ok';
  else result = describeKvValue(output.value);
  return `${call} -> ${result}`;
}

/** Ops that can never change the state when their output is as reported. */
function kvReadOnly(input: KvInput, output: KvOutput | undefined): boolean {
  switch (input.op) {
    case 'get':
      return true;
    case 'set':
      return false;
    case 'del':
      // A delete that found nothing; one of unknown outcome may delete.
      return output !== undefined && 'deleted' in output && !output.deleted;
    case 'inc':
      return output !== undefined && !output.ok;
    case 'cas':
      return output !== undefined && 'swapped' in output && !output.swapped;
  }
}

/** Each key is an independent register, so the history splits by key (in order of first appearance). */
function partitionKv(ops: Operation<KvInput, KvOutput>[]): Operation<KvInput, KvOutput>[][] {
  const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
  for (const op of ops) {
    let group = byKey.get(op.input.key);
    if (group === undefined) {
      group = [];
      byKey.set(op.input.key, group);
    }
    group.push(op);
  }
  return [...byKey.values()];
}

/**
 * A strict key-value store model: every output must be exactly what a
 * sequential store would have returned (see {@link KvOutput}).
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => new Map(),
  step(s, input, output) {
    const applied = kvApply(s, input);
    if (output !== undefined && !kvOutputMatches(input.op, applied.output, output)) return undefined;
    return applied.state;
  },
  key(s) {
    // A JSON object with sorted keys, so equal maps built in different orders
    // share a key.  Partitions hold one key, so that case goes first.
    if (s.size <= 1) {
      for (const [k, v] of s) return `{${JSON.stringify(k)}:${JSON.stringify(v)}}`;
      return '{}';
    }
    const entries = [...s.entries()];
    if (entries.length > 1) entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
  },
  partition: partitionKv,
  readOnly: kvReadOnly,
  describe: describeKv,
};
