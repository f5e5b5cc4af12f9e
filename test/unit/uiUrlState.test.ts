// The URL hash of the visualiser (src/ui/urlState.ts): a sandbox run as
// seed + actions round-trips, bad input is named, the mode is chosen.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { UrlStateError, decodeActions, encodeActions, formatHash, initialMode, parseHash } from '../../src/ui/urlState.js';
import type { SandboxAction } from '../../src/ui/view.js';

describe('URL hash', () => {
  it('round-trips a sandbox run with actions whose arguments need escaping', () => {
    const actions: SandboxAction[] = [
      { at: 0, action: 'crash', args: ['2'] },
      { at: 1234.5, action: 'request', args: ['set', 'a,b;c=d&e', 'värde %', 3] },
      { at: 2000, action: 'heal', args: [] },
    ];
    const hash = formatHash({ mode: 'sandbox', seed: 42, nodes: 5, story: 'split-vote', loss: 0.05, actions });
    assert.match(hash, /^#mode=sandbox&seed=42&nodes=5&story=split-vote&loss=0.05&actions=/);
    assert.deepEqual(parseHash(hash), { mode: 'sandbox', seed: 42, nodes: 5, story: 'split-vote', loss: 0.05, actions });
    assert.deepEqual(decodeActions(encodeActions(actions)), actions);
  });

  it('keeps numbers and numeric-looking strings apart', () => {
    const actions = [{ at: 1, action: 'x', args: ['7', 7] }];
    assert.deepEqual(decodeActions(encodeActions(actions))[0]!.args, ['7', 7]);
  });

  it('leaves out what is unset and parses an empty hash', () => {
    assert.equal(formatHash({ mode: 'live' }), '#mode=live');
    assert.deepEqual(parseHash(''), {});
    assert.deepEqual(parseHash('#'), {});
  });

  it('names what is wrong in a bad hash', () => {
    const bad = (hash: string, word: RegExp): void => {
      assert.throws(
        () => parseHash(hash),
        (e: unknown) => e instanceof UrlStateError && e.code === 'UI_BAD_URL_STATE' && word.test(e.message),
      );
    };
    bad('#mode=movie', /mode/);
    bad('#seed=-1', /seed/);
    bad('#seed=1.5', /seed/);
    bad('#nodes=8', /nodes must be an integer from 3 to 7/);
    bad('#nodes=2', /nodes/);
    bad('#loss=1', /loss/);
    bad('#actions=abc', /action 1/);
    bad('#actions=5,crash,2', /n: or s:/);
    bad('#actions=5,crash,n:x', /number/);
  });
});

describe('initialMode', () => {
  const at = (protocol: string, pathname: string, search = '') => ({ protocol, pathname, search });

  it('is live when a member serves the page, the sandbox from a file', () => {
    assert.equal(initialMode(at('http:', '/ui/'), undefined), 'live');
    assert.equal(initialMode(at('https:', '/ui'), undefined), 'live');
    assert.equal(initialMode(at('file:', '/home/x/dist/ui/index.html'), undefined), 'sandbox');
    assert.equal(initialMode(at('http:', '/elsewhere/index.html'), undefined), 'sandbox');
    assert.equal(initialMode(at('http:', '/uix/'), undefined), 'sandbox');
  });

  it('follows ?mode= first, then the hash', () => {
    assert.equal(initialMode(at('http:', '/ui/', '?mode=sandbox'), 'live'), 'sandbox');
    assert.equal(initialMode(at('http:', '/ui/'), 'sandbox'), 'sandbox');
    assert.equal(initialMode(at('file:', '/x'), 'live'), 'live');
    assert.equal(initialMode(at('http:', '/ui/', '?mode=bogus'), undefined), 'live');
  });
});
