// Small DOM helpers: build elements declaratively, and update attributes and
// text only when they change (the page redraws every frame; untouched nodes
// cost nothing and cause no layout).

type Attrs = Record<string, string | number | boolean | undefined>;
type Child = Node | string;

function apply(e: Element, attrs: Attrs, children: Child[]): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    e.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) e.append(child);
}

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  apply(e, attrs, children);
  return e;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG_NS, tag);
  apply(e, attrs, children);
  return e;
}

export function setAttr(e: Element, name: string, value: string): void {
  if (e.getAttribute(name) !== value) e.setAttribute(name, value);
}

export function setText(e: Node, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

export function setHidden(e: HTMLElement | SVGElement, hidden: boolean): void {
  if (e.hasAttribute('hidden') !== hidden) e.toggleAttribute('hidden', hidden);
}

/** A labelled control: <label>text <control></label>. */
export function labelled(text: string, control: HTMLElement): HTMLLabelElement {
  return el('label', { class: 'field' }, el('span', {}, text), control);
}

export function button(id: string, text: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', { id, type: 'button', title }, text);
  b.addEventListener('click', onClick);
  return b;
}

/** Replaces a <select>'s options when they differ, keeping the selection if still offered. */
export function setOptions(select: HTMLSelectElement, options: readonly { value: string; text: string }[]): void {
  const same = select.options.length === options.length && options.every((o, i) => select.options[i]!.value === o.value && select.options[i]!.text === o.text);
  if (same) return;
  const keep = select.value;
  select.replaceChildren(...options.map((o) => el('option', { value: o.value }, o.text)));
  if (options.some((o) => o.value === keep)) select.value = keep;
}
