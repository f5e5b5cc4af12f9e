// The members table (every member's Raft state, the numbers of Figure 2)
// and the leader's progress table (etcd's Progress: match, next, state),
// each a fixed number of rows so the page does not jump as members come
// and go.

import { currentLeader, progressRows } from '../summary.js';
import type { ClusterView } from '../view.js';
import { el, setAttr, setText } from './dom.js';

/** Up to 7 members (the sandbox's limit; a live cluster rarely has more). */
const MAX_ROWS = 7;

function table(caption: string, headers: readonly string[], testid: string, rowCount: number): { element: HTMLTableElement; rows: HTMLTableCellElement[][] } {
  const rows: HTMLTableCellElement[][] = [];
  const body = el('tbody');
  for (let r = 0; r < rowCount; r++) {
    const cells = headers.map(() => el('td'));
    rows.push(cells);
    body.append(el('tr', {}, ...cells));
  }
  const element = el(
    'table',
    { class: 'numbers', 'data-testid': testid },
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))),
    body,
  );
  return { element, rows };
}

function fill(rows: HTMLTableCellElement[][], values: readonly (readonly string[])[]): void {
  rows.forEach((cells, r) => {
    const row = values[r];
    setAttr(cells[0]!.parentElement!, 'class', row ? '' : 'blank');
    cells.forEach((c, i) => setText(c, row?.[i] ?? ''));
  });
}

export class MembersTable {
  readonly element: HTMLTableElement;
  private readonly rows: HTMLTableCellElement[][];

  constructor() {
    ({ element: this.element, rows: this.rows } = table('Members', ['node', 'role', 'term', 'vote', 'commit', 'applied', 'last/term', 'snap'], 'members', MAX_ROWS));
  }

  render(view: ClusterView): void {
    const names = new Map(view.members.map((m) => [m.id, m.name]));
    fill(
      this.rows,
      view.members.map((m) => [
        m.name,
        m.role === 'preCandidate' ? 'pre-cand.' : m.role,
        String(m.term),
        m.vote ? (names.get(m.vote) ?? m.vote) : '–',
        String(m.commitIndex),
        String(m.appliedIndex),
        `${m.lastIndex}/${m.lastTerm}`,
        String(m.snapshotIndex),
      ]),
    );
  }
}

export class ProgressTable {
  readonly element: HTMLTableElement;
  private readonly rows: HTMLTableCellElement[][];

  constructor() {
    ({ element: this.element, rows: this.rows } = table('Leader\'s view of followers', ['follower', 'match', 'next', 'state', 'lag', 'active'], 'progress', MAX_ROWS - 1));
  }

  render(view: ClusterView): void {
    const leader = currentLeader(view);
    const caption = this.element.caption!;
    setText(caption, leader ? `${leader.name}'s view of its followers (term ${leader.term})` : 'Leader\'s view of followers: no leader');
    fill(
      this.rows,
      leader
        ? progressRows(view, leader).map((p) => [p.name, String(p.matchIndex), String(p.nextIndex), p.state, String(p.lag), p.recentActive ? 'yes' : 'no'])
        : [],
    );
  }
}
