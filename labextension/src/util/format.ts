/** Formatting numbers, durations, money and sizes for display. */

export function formatDuration(s: number | null | undefined): string {
  if (s === null || s === undefined) {
    return '–';
  }
  s = Math.round(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
}

export function formatMoney(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : `$${v.toFixed(2)}`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** Significant digits of every number the views show (side panel, job view, gallery, sweeps). */
export const SIGNIFICANT_DIGITS = 4;

/**
 * The one number format of the extension: whole numbers as they are, others to 4 significant
 * digits without trailing zeros (0.01001, 12.5, 1.5e-7), so a value reads the same in the side
 * panel, the job view, the gallery, the sweep table and the notifications. `exactNumber` gives
 * the full value (what a title attribute or a written parameter holds).
 */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) {
    return String(v);
  }
  if (Number.isInteger(v) && Math.abs(v) < 1e15) {
    return String(v);
  }
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e6)) {
    const [m, e] = v.toExponential(SIGNIFICANT_DIGITS - 1).split('e');
    return `${trimZeros(m)}e${e.replace('+', '')}`;
  }
  if (a >= 10 ** SIGNIFICANT_DIGITS) {
    return String(Math.round(v)); // 12346, not 1.235e+4
  }
  return trimZeros(v.toPrecision(SIGNIFICANT_DIGITS));
}

/** The shortest text that reads back as exactly this number (as Python's repr writes floats). */
export function exactNumber(v: number): string {
  return String(v);
}

function trimZeros(s: string): string {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/** Any value (metric, parameter) as the views show it: numbers through `formatNumber`. */
export function formatValue(v: any): string {
  if (typeof v === 'number') {
    return formatNumber(v);
  }
  if (v === null || v === undefined) {
    return '\u2013';
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}
