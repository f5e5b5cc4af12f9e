// Logs side by side: one row per member, one column per log index, each
// cell coloured by its entry's term with the term printed in it, so a
// divergent suffix (different terms at the same index) and its repair are
// seen column by column. A bar marks each member's commit index; compacted
// entries (in the snapshot) are shaded.

import { termColor, termTextColor } from '../colors.js';
import type { ClusterView, EntryView, MemberView } from '../view.js';
import { el, setAttr, setText } from './dom.js';

const LOG_COLUMNS = 14;

interface Row {
  readonly name: HTMLElement;
  readonly cells: HTMLElement[];
}

export class LogsPanel {
  readonly element: HTMLElement;
  private readonly header: HTMLElement[] = [];
  private rows: Row[] = [];
  private readonly grid: HTMLElement;

  constructor() {
    this.grid = el('div', { class: 'log-grid', role: 'table', 'aria-label': 'Logs, one row per member, one column per index' });
    const head = el('div', { class: 'log-row log-head', role: 'row' }, el('span', { class: 'log-name', role: 'columnheader' }, 'index'));
    for (let i = 0; i < LOG_COLUMNS; i++) {
      const c = el('span', { class: 'log-index', role: 'columnheader' });
      this.header.push(c);
      head.append(c);
    }
    this.grid.append(head);
    this.element = el(
      'section',
      { class: 'panel logs', 'data-testid': 'logs' },
      el('h2', {}, 'Logs'),
      this.grid,
      el('p', { class: 'hint' }, 'Cell: entry\'s term. Solid: committed, striped: not yet, ▍ commit index, ░ in a snapshot, C conf change, ∅ no-op.'),
    );
  }

  render(view: ClusterView): void {
    if (this.rows.length !== view.members.length) this.buildRows(view.members.length);
    let hi = 0;
    for (const m of view.members) hi = Math.max(hi, m.lastIndex);
    const lo = Math.max(1, hi - LOG_COLUMNS + 1);
    this.header.forEach((c, i) => setText(c, lo + i <= hi ? String(lo + i) : ''));
    view.members.forEach((m, r) => this.renderRow(this.rows[r]!, m, lo, hi));
  }

  private buildRows(count: number): void {
    for (const row of this.rows) row.name.parentElement!.remove();
    this.rows = [];
    for (let r = 0; r < count; r++) {
      const name = el('span', { class: 'log-name', role: 'rowheader' });
      const cells = Array.from({ length: LOG_COLUMNS }, () => el('span', { class: 'cell', role: 'cell' }));
      this.grid.append(el('div', { class: 'log-row', role: 'row' }, name, ...cells));
      this.rows.push({ name, cells });
    }
  }

  private renderRow(row: Row, m: MemberView, lo: number, hi: number): void {
    setText(row.name, m.name);
    setAttr(row.name, 'title', `${m.name}: last ${m.lastIndex} (term ${m.lastTerm}), commit ${m.commitIndex}, applied ${m.appliedIndex}, snapshot ${m.snapshotIndex}`);
    setAttr(row.name.parentElement!, 'class', m.role === 'down' ? 'log-row down' : 'log-row');
    const byIndex = new Map<number, EntryView>(m.log.map((e) => [e.index, e]));
    row.cells.forEach((cell, i) => {
      const index = lo + i;
      const entry = byIndex.get(index);
      let cls = 'cell';
      let text = '';
      let bg = '';
      let fg = '';
      let title = '';
      if (index > hi || index > m.lastIndex) {
        cls += ' vacant';
      } else if (entry) {
        cls += index <= m.commitIndex ? ' committed' : ' uncommitted';
        if (entry.kind !== 'normal') cls += ` kind-${entry.kind}`;
        text = `${entry.kind === 'conf' ? 'C' : entry.kind === 'empty' ? '∅' : ''}${entry.term}`;
        bg = termColor(entry.term);
        fg = termTextColor(entry.term);
        title = `${m.name} #${index}, term ${entry.term}${entry.label ? `: ${entry.label}` : ''}${index <= m.commitIndex ? ' (committed)' : ''}`;
      } else if (index <= m.snapshotIndex) {
        cls += ' compacted';
        title = `${m.name} #${index}: compacted into the snapshot at ${m.snapshotIndex}`;
      } else {
        cls += ' unknown';
        title = `${m.name} #${index}: not in the reported tail`;
      }
      if (index === m.commitIndex) cls += ' commit-mark';
      setAttr(cell, 'class', cls);
      setText(cell, text);
      if (cell.style.backgroundColor !== bg) cell.style.backgroundColor = bg;
      if (cell.style.color !== fg) cell.style.color = fg;
      setAttr(cell, 'title', title);
    });
  }
}
