// The page's state in the URL hash, so a link reopens the same view and a
// sandbox run replays exactly: the seed plus the recorded actions at their
// simulated times (SandboxControls.actions()). Format:
//
//   #mode=sandbox&seed=42&nodes=5&story=split-vote&loss=0.05&actions=<list>
//
// where <list> is the actions joined by ";", each "at,action,arg,arg..."
// with every part URI-encoded (numbers are tagged "n:" to round-trip types).

import type { SandboxAction } from './view.js';

export type Mode = 'live' | 'sandbox';

export interface UrlState {
  readonly mode?: Mode;
  readonly seed?: number;
  readonly nodes?: number;
  readonly story?: string;
  readonly loss?: number;
  readonly actions?: readonly SandboxAction[];
}

export class UrlStateError extends Error {
  readonly code = 'UI_BAD_URL_STATE';
  constructor(message: string) {
    super(message);
    this.name = 'UrlStateError';
  }
}

export const MIN_NODES = 3;
export const MAX_NODES = 7;

/** Parses a location hash (with or without the leading "#"); throws UrlStateError on a malformed part. */
export function parseHash(hash: string): UrlState {
  const params = new URLSearchParams(hash.startsWith('#') ? hash.slice(1) : hash);
  const out: { -readonly [K in keyof UrlState]: UrlState[K] } = {};
  const mode = params.get('mode');
  if (mode !== null) {
    if (mode !== 'live' && mode !== 'sandbox') throw new UrlStateError(`mode must be live or sandbox, got "${mode}"`);
    out.mode = mode;
  }
  const seed = params.get('seed');
  if (seed !== null) out.seed = integer('seed', seed, 0, 2 ** 32 - 1);
  const nodes = params.get('nodes');
  if (nodes !== null) out.nodes = integer('nodes', nodes, MIN_NODES, MAX_NODES);
  const story = params.get('story');
  if (story) out.story = story;
  const loss = params.get('loss');
  if (loss !== null) {
    const value = Number(loss);
    if (!(value >= 0 && value < 1)) throw new UrlStateError(`loss must be in [0, 1), got "${loss}"`);
    out.loss = value;
  }
  const actions = params.get('actions');
  if (actions) out.actions = decodeActions(actions);
  return out;
}

/** Formats a state as a hash (with the leading "#"), leaving out what is unset. */
export function formatHash(state: UrlState): string {
  const parts: string[] = [];
  if (state.mode) parts.push(`mode=${state.mode}`);
  if (state.seed !== undefined) parts.push(`seed=${state.seed}`);
  if (state.nodes !== undefined) parts.push(`nodes=${state.nodes}`);
  if (state.story) parts.push(`story=${encodeURIComponent(state.story)}`);
  if (state.loss) parts.push(`loss=${state.loss}`);
  if (state.actions && state.actions.length > 0) parts.push(`actions=${encodeURIComponent(encodeActions(state.actions))}`);
  return `#${parts.join('&')}`;
}

export function encodeActions(actions: readonly SandboxAction[]): string {
  return actions
    .map((a) => [String(a.at), encodeURIComponent(a.action), ...a.args.map(encodeArg)].join(','))
    .join(';');
}

export function decodeActions(text: string): SandboxAction[] {
  return text.split(';').map((item, i) => {
    const [at, action, ...args] = item.split(',');
    const time = Number(at);
    if (!Number.isFinite(time) || time < 0 || !action) throw new UrlStateError(`action ${i + 1} is malformed: "${item}"`);
    return { at: time, action: decodeURIComponent(action), args: args.map(decodeArg) };
  });
}

function encodeArg(arg: string | number): string {
  return typeof arg === 'number' ? `n:${arg}` : `s:${encodeURIComponent(arg)}`;
}

function decodeArg(text: string): string | number {
  if (text.startsWith('n:')) {
    const n = Number(text.slice(2));
    if (!Number.isFinite(n)) throw new UrlStateError(`bad number argument "${text}"`);
    return n;
  }
  if (text.startsWith('s:')) return decodeURIComponent(text.slice(2));
  throw new UrlStateError(`argument "${text}" must start with n: or s:`);
}

function integer(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UrlStateError(`${name} must be an integer from ${min} to ${max}, got "${text}"`);
  return n;
}

/**
 * The mode to open in: what the URL asks for (?mode= or #mode=), else live
 * when a member serves the page (http, under /ui), else the sandbox (a
 * file:// copy has no cluster to watch).
 */
export function initialMode(location: { readonly protocol: string; readonly pathname: string; readonly search: string }, hashMode: Mode | undefined): Mode {
  const query = new URLSearchParams(location.search).get('mode');
  if (query === 'live' || query === 'sandbox') return query;
  if (hashMode) return hashMode;
  const served = (location.protocol === 'http:' || location.protocol === 'https:') && /^\/ui(\/|$)/.test(location.pathname);
  return served ? 'live' : 'sandbox';
}
