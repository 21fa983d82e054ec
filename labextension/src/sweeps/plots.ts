/**
 * The sweep panel's plots, drawn as plain SVG themed by JupyterLab's CSS variables (classes in
 * style/base.css), so they follow the light and dark themes without a chart library:
 * optimization history, parallel coordinates, parameter importances.
 */
import { IHistoryPoint, ISpaceEntry, ITrialRow } from '../api';
import { el, svgEl } from '../util/dom';
import { formatValue } from '../util/format';

function text(x: number, y: number, s: string, cls: string, anchor = 'middle'): SVGElement {
  const t = svgEl('text', { x, y, class: cls, 'text-anchor': anchor });
  t.textContent = s;
  return t;
}

function frame(W: number, H: number, label: string): SVGSVGElement {
  const svg = svgEl('svg', {
    viewBox: `0 0 ${W} ${H}`,
    width: W,
    height: H,
    role: 'img',
    'aria-label': label,
    class: 'jp-offload-sweep-plot'
  }) as SVGSVGElement;
  return svg;
}

/** Trial value (dots) and best so far (step line) by trial number. */
export function historyPlot(points: IHistoryPoint[], objective: string, maximize: boolean): HTMLElement {
  const fig = el('figure', { class: 'jp-offload-sweep-figure', 'data-plot': 'history' });
  fig.append(el('figcaption', {}, `Optimization history: ${objective} (${maximize ? 'higher' : 'lower'} is better)`));
  if (!points.length) {
    fig.append(el('div', { class: 'jp-offload-muted jp-offload-sweep-noplot' }, 'No trial has completed yet.'));
    return fig;
  }
  const W = 420;
  const H = 200;
  const L = 56;
  const R = 12;
  const T = 10;
  const B = 28;
  const xs = points.map(p => p.number);
  const ys = points.flatMap(p => [p.value, p.best]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) {
    x0 -= 1;
    x1 += 1;
  }
  if (y0 === y1) {
    const d = Math.abs(y0) * 0.1 || 1;
    y0 -= d;
    y1 += d;
  }
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const svg = frame(W, H, `${objective} by trial`);
  svg.append(
    svgEl('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'jp-offload-sweep-axis' }),
    svgEl('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'jp-offload-sweep-axis' }),
    text(L - 4, sy(y1) + 4, formatValue(y1), 'jp-offload-sweep-tick', 'end'),
    text(L - 4, sy(y0) + 4, formatValue(y0), 'jp-offload-sweep-tick', 'end'),
    text(sx(x0), H - B + 14, String(Math.round(x0)), 'jp-offload-sweep-tick'),
    text(sx(x1), H - B + 14, String(Math.round(x1)), 'jp-offload-sweep-tick'),
    text((L + W - R) / 2, H - 2, 'trial', 'jp-offload-sweep-label')
  );
  const sorted = [...points].sort((a, b) => a.number - b.number);
  let d = '';
  sorted.forEach((p, i) => {
    d += i === 0 ? `M${sx(p.number)},${sy(p.best)}` : `H${sx(p.number)}V${sy(p.best)}`;
  });
  svg.append(svgEl('path', { d, class: 'jp-offload-sweep-best' }));
  for (const p of sorted) {
    const c = svgEl('circle', {
      cx: sx(p.number),
      cy: sy(p.value),
      r: 3.5,
      class: p.value === p.best ? 'jp-offload-sweep-dot jp-mod-best' : 'jp-offload-sweep-dot',
      'data-trial': p.number
    });
    const title = svgEl('title');
    title.textContent = `trial ${p.number}: ${formatValue(p.value)} (best so far ${formatValue(p.best)})`;
    c.append(title);
    svg.append(c);
  }
  fig.append(svg);
  return fig;
}

interface IAxis {
  name: string;
  pos: (v: any) => number | null; // 0..1
  ticks: [number, string][];
}

function axisFor(name: string, entry: ISpaceEntry | undefined, values: any[]): IAxis {
  const nums = values.filter(v => typeof v === 'number') as number[];
  if (entry && (entry.type === 'float' || entry.type === 'int') && nums.length === values.length) {
    let lo = entry.low ?? Math.min(...nums);
    let hi = entry.high ?? Math.max(...nums);
    const log = !!entry.log && lo > 0;
    const f = (v: number) => (log ? Math.log(v) : v);
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    return {
      name,
      pos: v => (typeof v === 'number' ? (f(v) - f(lo)) / (f(hi) - f(lo) || 1) : null),
      ticks: [
        [0, formatValue(lo)],
        [1, formatValue(hi)]
      ]
    };
  }
  const choices = entry?.choices ?? [...new Set(values.map(v => JSON.stringify(v)))].map(s => JSON.parse(s));
  const keys = choices.map(c => JSON.stringify(c));
  const n = Math.max(1, keys.length - 1);
  return {
    name,
    pos: v => {
      const i = keys.indexOf(JSON.stringify(v));
      return i < 0 ? null : keys.length === 1 ? 0.5 : i / n;
    },
    ticks: choices.map((c, i) => [keys.length === 1 ? 0.5 : i / n, formatValue(c)] as [number, string])
  };
}

/** One vertical axis per searched parameter and one for the objective; a line per finished trial,
 * darker the better its objective, the best one highlighted. */
export function parallelCoordinates(
  trials: ITrialRow[],
  space: Record<string, ISpaceEntry>,
  objective: string,
  maximize: boolean
): HTMLElement {
  const fig = el('figure', { class: 'jp-offload-sweep-figure', 'data-plot': 'parallel' });
  fig.append(el('figcaption', {}, 'Parallel coordinates'));
  const done = trials.filter(t => t.state === 'COMPLETE' && typeof t.value === 'number');
  if (!done.length) {
    fig.append(el('div', { class: 'jp-offload-muted jp-offload-sweep-noplot' }, 'No trial has completed yet.'));
    return fig;
  }
  const names = Object.keys(space).filter(k => space[k].type !== 'fixed');
  const axes = names.map(n => axisFor(n, space[n], done.map(t => t.params[n])));
  const vals = done.map(t => t.value as number);
  axes.push(
    axisFor(objective, { type: 'float', low: Math.min(...vals), high: Math.max(...vals) }, vals)
  );
  const W = Math.max(360, 110 * axes.length);
  const H = 220;
  const L = 50;
  const R = 50;
  const T = 22;
  const B = 22;
  const ax = (i: number) => L + (i / Math.max(1, axes.length - 1)) * (W - L - R);
  const ay = (p: number) => H - B - p * (H - T - B);
  const svg = frame(W, H, 'parallel coordinates of the trials');
  const [vlo, vhi] = [Math.min(...vals), Math.max(...vals)];
  const quality = (v: number) => (vhi === vlo ? 1 : maximize ? (v - vlo) / (vhi - vlo) : (vhi - v) / (vhi - vlo));
  const best = [...done].sort((a, b) => quality(a.value as number) - quality(b.value as number));
  for (const t of best) {
    const pts: string[] = [];
    axes.forEach((a, i) => {
      const p = a.pos(i === axes.length - 1 ? t.value : t.params[a.name]);
      if (p !== null) {
        pts.push(`${ax(i)},${ay(p)}`);
      }
    });
    const q = quality(t.value as number);
    const line = svgEl('polyline', {
      points: pts.join(' '),
      class: t === best[best.length - 1] ? 'jp-offload-sweep-pc jp-mod-best' : 'jp-offload-sweep-pc',
      'stroke-opacity': (0.25 + 0.75 * q).toFixed(2),
      'data-trial': t.number
    });
    const title = svgEl('title');
    title.textContent = `trial ${t.number}: ${objective} ${formatValue(t.value)}`;
    line.append(title);
    svg.append(line);
  }
  axes.forEach((a, i) => {
    svg.append(svgEl('line', { x1: ax(i), y1: T, x2: ax(i), y2: H - B, class: 'jp-offload-sweep-axis' }));
    svg.append(text(ax(i), T - 8, a.name, 'jp-offload-sweep-label'));
    for (const [p, s] of a.ticks) {
      svg.append(text(ax(i) + 4, ay(p) + (p === 0 ? -2 : p === 1 ? 10 : 4), s, 'jp-offload-sweep-tick', 'start'));
    }
  });
  fig.append(svg);
  return fig;
}

/** Horizontal bars of fANOVA importances, largest first. */
export function importanceBars(importances: Record<string, number>, nComplete: number): HTMLElement {
  const fig = el('figure', { class: 'jp-offload-sweep-figure', 'data-plot': 'importances' });
  fig.append(el('figcaption', {}, 'Parameter importances'));
  const entries = Object.entries(importances).sort((a, b) => b[1] - a[1]);
  if (!entries.length) {
    fig.append(
      el(
        'div',
        { class: 'jp-offload-muted jp-offload-sweep-noplot' },
        `Shown once 4 trials have completed with different parameters (${nComplete} so far).`
      )
    );
    return fig;
  }
  const list = el('div', { class: 'jp-offload-sweep-importances', role: 'list' });
  for (const [name, v] of entries) {
    const bar = el('div', { class: 'jp-offload-sweep-bar' });
    bar.style.width = `${Math.max(1, Math.round(v * 100))}%`;
    list.append(
      el(
        'div',
        { class: 'jp-offload-sweep-imp-row', role: 'listitem', 'data-param': name },
        el('span', { class: 'jp-offload-sweep-imp-name' }, name),
        el('span', { class: 'jp-offload-sweep-bar-track' }, bar),
        el('span', { class: 'jp-offload-sweep-imp-value' }, v.toFixed(2))
      )
    );
  }
  fig.append(list);
  return fig;
}
