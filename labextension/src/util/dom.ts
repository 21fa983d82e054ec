/** Small DOM helpers: elements with attributes and children, SVG elements, state badges. */
import { caretDownEmptyIcon } from '@jupyterlab/ui-components';

/** `document.createElement` with attributes (`class` sets className) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') {
      node.className = v;
    } else {
      node.setAttribute(k, v);
    }
  }
  for (const c of children) {
    node.append(c);
  }
  return node;
}

export const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element with attributes. */
export function svgEl(tag: string, attrs: Record<string, string | number> = {}): SVGElement {
  const node = document.createElementNS(SVG_NS, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  return node;
}

/** A job (or trial) state as a coloured badge (style/base.css: .jp-offload-state-<state>). */
export function stateBadge(state: string): HTMLSpanElement {
  return el('span', { class: `jp-offload-state jp-offload-state-${state}`, 'data-state': state }, state);
}

/**
 * A select styled as JupyterLab's own `HTMLSelect` (@jupyterlab/ui-components): the same
 * `jp-HTMLSelect jp-DefaultStyle` wrapper and caret icon, so it looks like every select of the
 * Lab (an arrow, the theme's colours) in both themes. Append `selectBox(select)` to the page.
 */
export function htmlSelect(attrs: Record<string, string> = {}): HTMLSelectElement {
  const select = el('select', attrs);
  const box = el('div', { class: 'jp-HTMLSelect jp-DefaultStyle jp-offload-select' }, select);
  box.append(caretDownEmptyIcon.element({ tag: 'span', stylesheet: 'select', right: '4px', top: '4px' }));
  return select;
}

/** The node to put on the page for a select made by `htmlSelect` (its styled wrapper). */
export function selectBox(select: HTMLSelectElement): HTMLElement {
  return (select.parentElement as HTMLElement | null) ?? select;
}
