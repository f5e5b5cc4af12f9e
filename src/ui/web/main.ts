// The visualiser's entry point (bundled into dist/ui/app.js by
// scripts/build-ui.mjs). Chooses the mode (live when a member serves the
// page, sandbox from file:// or when asked), draws the header, runs the
// animation loop and the global keyboard shortcuts.

import { UrlStateError, initialMode, parseHash, type Mode, type UrlState } from '../urlState.js';
import { el, setHidden, setText } from './dom.js';
import { LiveMode } from './liveMode.js';
import * as simulator from './sandboxLoader.js';
import { SandboxMode, type Status } from './sandboxMode.js';

interface ModeView {
  readonly element: HTMLElement;
  frame(realMs: number): Status;
}

function main(): void {
  let state: UrlState = {};
  let urlProblem = '';
  try {
    state = parseHash(location.hash);
  } catch (e) {
    if (!(e instanceof UrlStateError)) throw e;
    urlProblem = `Ignoring the link's settings: ${e.message}`;
  }
  const canLive = location.protocol === 'http:' || location.protocol === 'https:';
  let mode: Mode = initialMode(location, state.mode);

  const leader = el('span', { class: 'leader', 'data-testid': 'leader', 'aria-live': 'polite' });
  const time = el('span', { class: 'sim-time', 'data-testid': 'sim-time' });
  const violation = el('strong', { class: 'violation', 'data-testid': 'violation', role: 'alert', hidden: true });
  const tabs = (['live', 'sandbox'] as const).map((m) => {
    const tab = el('button', { id: `tab-${m}`, type: 'button', role: 'tab', class: 'tab' }, m === 'live' ? 'Live cluster' : 'Sandbox');
    tab.addEventListener('click', () => select(m));
    return tab;
  });
  const body = el('main', { class: 'body' });
  const notice = el('p', { class: 'notice', role: 'status' }, urlProblem);
  setHidden(notice, !urlProblem);
  document.body.replaceChildren(
    el(
      'header',
      { class: 'top' },
      el('h1', {}, 'raftkv'),
      el('nav', { role: 'tablist', 'aria-label': 'Mode' }, ...tabs),
      leader,
      time,
      violation,
      el('span', { class: 'keys hint' }, 'space: pause · .: step · Enter on a node: crash/restart'),
    ),
    notice,
    body,
  );

  const views = new Map<Mode, ModeView>();
  let current: ModeView | undefined;

  function select(next: Mode): void {
    mode = next;
    tabs.forEach((t) => {
      t.setAttribute('aria-selected', String(t.id === `tab-${next}`));
      t.classList.toggle('active', t.id === `tab-${next}`);
    });
    let view = views.get(next);
    if (!view) {
      if (next === 'live' && !canLive) {
        const element = el('section', { class: 'panel offline' }, el('h2', {}, 'Live mode needs a member'), el('p', {}, 'Start a cluster with `npm start` and open the link it prints (http://…/ui/). This copy of the page was opened from a file, so only the sandbox runs here.'));
        view = { element, frame: () => ({ leader: '', time: '', violation: undefined }) };
      } else if (next === 'live') {
        view = new LiveMode(location.origin);
      } else {
        const sandbox = new SandboxMode(simulator, state);
        view = { element: sandbox.element, frame: (ms) => sandbox.frame(ms) };
        shortcuts = sandbox;
      }
      views.set(next, view);
    }
    if (next === 'live') history.replaceState(null, '', '#mode=live');
    else shortcuts?.writeUrl();
    current = view;
    body.replaceChildren(view.element);
    document.body.dataset['mode'] = next;
  }

  let shortcuts: SandboxMode | undefined;
  document.addEventListener('keydown', (e) => {
    if (mode !== 'sandbox' || !shortcuts || e.ctrlKey || e.metaKey || e.altKey) return;
    const target = e.target as HTMLElement | null;
    // Space and "." belong to whatever control has focus (typing, pressing a button).
    if (target && (target.closest('input, select, textarea, button, [role="button"]') !== null)) return;
    if (e.key === ' ') {
      e.preventDefault();
      shortcuts.togglePause();
    } else if (e.key === '.') {
      e.preventDefault();
      shortcuts.stepOnce();
    }
  });

  select(mode);
  let last = performance.now();
  const loop = (t: number): void => {
    // The first frame's timestamp may precede the clock read before it.
    const status = current!.frame(Math.max(0, t - last));
    last = t;
    setText(leader, status.leader);
    setText(time, status.time);
    setText(violation, status.violation ? `Safety violation: ${status.violation}` : '');
    setHidden(violation, !status.violation);
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
}

main();
