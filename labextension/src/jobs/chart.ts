/** The job view's metric charts: a small inline-SVG line chart per metric logged with steps. */
import { IMetricRecord } from '../api';
import { el, SVG_NS } from '../util/dom';
import { formatValue } from '../util/format';

/** A small line chart per metric logged with steps (inline SVG, themed by CSS variables). */
export function metricsChart(records: IMetricRecord[]): HTMLElement {
  const wrap = el('div', { class: 'jp-offload-charts' });
  const series = new Map<string, { step: number; value: number }[]>();
  for (const r of records) {
    if (r.step === null || r.step === undefined || typeof r.value !== 'number') {
      continue;
    }
    const s = series.get(r.name) ?? [];
    s.push({ step: r.step, value: r.value });
    series.set(r.name, s);
  }
  for (const [name, pts] of series) {
    if (pts.length < 2) {
      continue;
    }
    pts.sort((a, b) => a.step - b.step);
    const W = 260;
    const H = 90;
    const P = 6;
    const xs = pts.map(p => p.step);
    const ys = pts.map(p => p.value);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const sx = (x: number) => P + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * P);
    const sy = (y: number) => H - P - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * P);
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('width', String(W));
    svg.setAttribute('height', String(H));
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', `${name} by step`);
    svg.classList.add('jp-offload-chart');
    const line = document.createElementNS(SVG_NS, 'polyline');
    line.setAttribute('points', pts.map(p => `${sx(p.step)},${sy(p.value)}`).join(' '));
    line.setAttribute('class', 'jp-offload-chart-line');
    svg.append(line);
    const fig = el(
      'figure',
      { class: 'jp-offload-chart-figure', 'data-metric': name },
      el(
        'figcaption',
        {},
        `${name}: ${formatValue(pts[pts.length - 1].value)} (min ${formatValue(y0)}, max ${formatValue(y1)}, ${pts.length} steps)`
      )
    );
    fig.append(svg);
    wrap.append(fig);
  }
  return wrap;
}
