// The event log beside the drawing: recent happenings in words, newest
// last, in a fixed-height box that keeps to the bottom unless scrolled up.

import { el } from './dom.js';

const KEEP = 200;

export class EventLog {
  readonly element: HTMLElement;
  private readonly box: HTMLElement;
  private signature = '';

  constructor(title = 'Events') {
    this.box = el('div', { class: 'event-log', tabindex: 0, role: 'log', 'aria-label': title, 'data-testid': 'event-log' });
    this.element = el('div', { class: 'events' }, el('h2', { class: 'visually-hidden' }, title), this.box);
  }

  render(lines: readonly string[]): void {
    const signature = `${lines.length}|${lines[lines.length - 1] ?? ''}`;
    if (signature === this.signature) return;
    this.signature = signature;
    const atBottom = this.box.scrollTop + this.box.clientHeight >= this.box.scrollHeight - 4;
    this.box.textContent = lines.slice(-KEEP).join('\n');
    if (atBottom) this.box.scrollTop = this.box.scrollHeight;
  }
}
