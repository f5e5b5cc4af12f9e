// The live key-value panel: browse keys by prefix, and get, put, del and
// inc, through the serving member's JSON gateway (etcd 3.4's /v3/kv/*).

import { GatewayError, deleteRequest, getRequest, incRequest, parseDelete, parseInc, parseRange, parseRevision, putRequest, rangePrefixRequest, type GatewayRequest } from '../kvGateway.js';
import { button, el, labelled, setText } from './dom.js';

const BROWSE_LIMIT = 50;

export class KvPanel {
  readonly element: HTMLElement;
  private readonly prefix: HTMLInputElement;
  private readonly key: HTMLInputElement;
  private readonly value: HTMLInputElement;
  private readonly list: HTMLElement;
  private readonly result: HTMLElement;

  constructor(private readonly base: string) {
    this.prefix = el('input', { id: 'kv-prefix', type: 'text', placeholder: 'prefix (empty: all keys)', autocomplete: 'off' });
    this.key = el('input', { id: 'kv-key', type: 'text', placeholder: 'key', autocomplete: 'off' });
    this.value = el('input', { id: 'kv-value', type: 'text', placeholder: 'value', autocomplete: 'off' });
    this.list = el('ul', { id: 'kv-list', class: 'kv-list', 'aria-label': 'Keys under the prefix' });
    this.result = el('output', { id: 'kv-result', class: 'message', 'aria-live': 'polite' });
    this.prefix.addEventListener('keydown', (e) => e.key === 'Enter' && void this.browse());
    this.key.addEventListener('keydown', (e) => e.key === 'Enter' && void this.get());
    this.element = el(
      'section',
      { class: 'panel kv', 'data-testid': 'kv-panel' },
      el('h2', {}, 'Keys and values'),
      el('div', { class: 'row' }, labelled('Prefix', this.prefix), button('kv-browse', 'Browse', 'List the keys under the prefix', () => void this.browse())),
      this.list,
      el('div', { class: 'row' }, labelled('Key', this.key), labelled('Value', this.value)),
      el(
        'div',
        { class: 'row wrap' },
        button('kv-get', 'Get', 'Read the key', () => void this.get()),
        button('kv-put', 'Put', 'Write the value under the key', () => void this.put()),
        button('kv-del', 'Del', 'Delete the key', () => void this.del()),
        button('kv-inc', 'Inc', 'Increment the key\'s number (raftkv extension)', () => void this.inc()),
      ),
      this.result,
    );
  }

  private async call(request: () => GatewayRequest): Promise<unknown> {
    const r = request();
    const response = await fetch(new URL(r.path, this.base), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(r.body) });
    const text = await response.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new GatewayError(`HTTP ${response.status}: ${text.slice(0, 120)}`);
    }
    if (!response.ok) {
      const message = (json as { message?: string; error?: string }).message ?? (json as { error?: string }).error ?? text;
      throw new GatewayError(`HTTP ${response.status}: ${message}`);
    }
    return json;
  }

  private async run(f: () => Promise<string>): Promise<void> {
    setText(this.result, '…');
    try {
      setText(this.result, await f());
    } catch (e) {
      setText(this.result, `Error: ${(e as Error).message}`);
    }
  }

  private browse(): Promise<void> {
    return this.run(async () => {
      const r = parseRange(await this.call(() => rangePrefixRequest(this.prefix.value, BROWSE_LIMIT)));
      this.list.replaceChildren(
        ...r.kvs.map((kv) => {
          const item = el('button', { type: 'button', class: 'kv-item', title: `version ${kv.version}, modified at revision ${kv.modRevision}` }, `${kv.key} = ${kv.value}`);
          item.addEventListener('click', () => {
            this.key.value = kv.key;
            this.value.value = kv.value;
          });
          return el('li', {}, item);
        }),
      );
      return `${r.kvs.length}${r.more ? ` of ${r.count}` : ''} key(s) at revision ${r.revision}`;
    });
  }

  private get(): Promise<void> {
    return this.run(async () => {
      const r = parseRange(await this.call(() => getRequest(this.key.value)));
      const kv = r.kvs[0];
      if (!kv) return `${this.key.value}: not found (revision ${r.revision})`;
      this.value.value = kv.value;
      return `${kv.key} = ${kv.value} (version ${kv.version}, revision ${kv.modRevision})`;
    });
  }

  private put(): Promise<void> {
    return this.run(async () => `put ${this.key.value}: revision ${parseRevision(await this.call(() => putRequest(this.key.value, this.value.value)))}`);
  }

  private del(): Promise<void> {
    return this.run(async () => `deleted ${parseDelete(await this.call(() => deleteRequest(this.key.value)))} key(s)`);
  }

  private inc(): Promise<void> {
    return this.run(async () => {
      const value = String(parseInc(await this.call(() => incRequest(this.key.value))));
      this.value.value = value;
      return `${this.key.value} is now ${value}`;
    });
  }
}
