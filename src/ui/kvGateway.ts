// The key-value panel's requests to a member: etcd 3.4's JSON gateway
// (grpc-gateway: bytes fields base64, int64 fields as strings, snake_case),
// POST /v3/kv/range, /v3/kv/put, /v3/kv/deleterange, and raftkv's
// POST /v3/kv/inc ({key, delta} -> {header, value, kv}; docs/server.md).
// Builders and parsers only; the page does the fetch.

export class GatewayError extends Error {
  readonly code = 'UI_GATEWAY_ERROR';
  constructor(message: string) {
    super(message);
    this.name = 'GatewayError';
  }
}

export interface GatewayRequest {
  readonly path: string;
  readonly body: Record<string, unknown>;
}

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function base64Encode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = bytes[i + 1];
    const c = bytes[i + 2];
    out += B64[a >> 2]! + B64[((a & 3) << 4) | ((b ?? 0) >> 4)]!;
    out += b === undefined ? '=' : B64[((b & 15) << 2) | ((c ?? 0) >> 6)]!;
    out += c === undefined ? '=' : B64[c & 63]!;
  }
  return out;
}

export function base64Decode(text: string): Uint8Array {
  const clean = text.replace(/=+$/, '');
  if (/[^A-Za-z0-9+/]/.test(clean) || clean.length % 4 === 1) throw new GatewayError(`not base64: "${text.slice(0, 40)}"`);
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let j = 0;
  for (const ch of clean) {
    acc = (acc << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

const utf8 = (s: string): string => base64Encode(new TextEncoder().encode(s));
const text = (b64: unknown): string => (typeof b64 === 'string' ? new TextDecoder().decode(base64Decode(b64)) : '');

/**
 * The range_end that selects every key starting with `prefix` (etcd's
 * clientv3.GetPrefixRangeEnd): the prefix with its last byte below 0xff
 * incremented and the rest dropped; "\0" (all keys) for an empty prefix or
 * one of only 0xff bytes.
 */
export function prefixRangeEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = prefix.slice(0, i + 1);
      end[i]! += 1;
      return end;
    }
  }
  return new Uint8Array([0]);
}

/** Lists the keys under a prefix (values included), at most `limit`. */
export function rangePrefixRequest(prefix: string, limit: number): GatewayRequest {
  const bytes = new TextEncoder().encode(prefix);
  return {
    path: '/v3/kv/range',
    body: { key: base64Encode(bytes.length > 0 ? bytes : new Uint8Array([0])), range_end: base64Encode(prefixRangeEnd(bytes)), limit: String(limit) },
  };
}

export function getRequest(key: string): GatewayRequest {
  return { path: '/v3/kv/range', body: { key: requireKey(key) } };
}

export function putRequest(key: string, value: string): GatewayRequest {
  return { path: '/v3/kv/put', body: { key: requireKey(key), value: utf8(value) } };
}

export function deleteRequest(key: string): GatewayRequest {
  return { path: '/v3/kv/deleterange', body: { key: requireKey(key) } };
}

export function incRequest(key: string): GatewayRequest {
  return { path: '/v3/kv/inc', body: { key: requireKey(key), delta: '1' } };
}

function requireKey(key: string): string {
  if (key.length === 0) throw new GatewayError('a key is required');
  return utf8(key);
}

/** The key-values of a range response (grpc-gateway leaves out empty fields). */
export function parseRange(json: unknown): { readonly kvs: KeyValue[]; readonly count: number; readonly more: boolean; readonly revision: number } {
  const body = object(json);
  checkError(body);
  const kvs = Array.isArray(body['kvs']) ? body['kvs'].map(parseKv) : [];
  return {
    kvs,
    count: int(body['count']),
    more: body['more'] === true,
    revision: int(object(body['header'] ?? {})['revision']),
  };
}

/** Deleted count of a deleterange response. */
export function parseDelete(json: unknown): number {
  const body = object(json);
  checkError(body);
  return int(body['deleted']);
}

/** The revision of a put (or any response with a header). */
export function parseRevision(json: unknown): number {
  const body = object(json);
  checkError(body);
  return int(object(body['header'] ?? {})['revision']);
}

/** The value after an increment: an int64 (a string; left out when 0, as jsonpb does). */
export function parseInc(json: unknown): number {
  const body = object(json);
  checkError(body);
  return int(body['value']);
}

function parseKv(raw: unknown): KeyValue {
  const kv = object(raw);
  return {
    key: text(kv['key']),
    value: text(kv['value']),
    createRevision: int(kv['create_revision']),
    modRevision: int(kv['mod_revision']),
    version: int(kv['version']),
  };
}

/** grpc-gateway reports errors as {error, code, message}. */
function checkError(body: Record<string, unknown>): void {
  const message = body['message'] ?? body['error'];
  if (typeof message === 'string' && body['code'] !== undefined && !('header' in body)) {
    throw new GatewayError(`${message} (code ${String(body['code'])})`);
  }
}

function object(x: unknown): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new GatewayError('expected a JSON object from the gateway');
  return x as Record<string, unknown>;
}

/** int64 fields come as strings; absent fields are zero. */
function int(x: unknown): number {
  if (x === undefined || x === null) return 0;
  const n = typeof x === 'number' ? x : Number(x);
  if (!Number.isFinite(n)) throw new GatewayError(`expected an integer, got ${JSON.stringify(x)}`);
  return n;
}
