// Colours of the drawing. A colour is never the only signal: every term
// colour comes with the term number printed, every role with a shape and a
// label. The palettes are chosen to stay apart for common colour-vision
// deficiencies (after Okabe & Ito's palette) and against both text colours.

/** Term colours, cycled: consecutive terms always differ. */
const TERM_PALETTE = [
  '#56B4E9', // sky blue
  '#E69F00', // orange
  '#009E73', // bluish green
  '#CC79A7', // reddish purple
  '#F0E442', // yellow
  '#0072B2', // blue
  '#D55E00', // vermillion
  '#999999', // grey
] as const;

/** The fill colour of an entry or band of `term` (term 0: no colour). */
export function termColor(term: number): string {
  if (term <= 0) return '#e6e6e6';
  return TERM_PALETTE[(term - 1) % TERM_PALETTE.length]!;
}

/** Text colour readable on termColor(term). */
export function termTextColor(term: number): string {
  if (term <= 0) return '#333333';
  const dark = new Set(['#0072B2', '#D55E00', '#009E73']);
  return dark.has(termColor(term)) ? '#ffffff' : '#111111';
}

/** Role colours; the role is also told by shape and label. */
export const ROLE_COLORS: Readonly<Record<string, string>> = {
  leader: '#E69F00',
  candidate: '#CC79A7',
  preCandidate: '#e9c4da',
  follower: '#56B4E9',
  learner: '#bfe3f5',
  down: '#bbbbbb',
};
