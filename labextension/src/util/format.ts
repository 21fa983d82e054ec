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

export function formatValue(v: any): string {
  if (typeof v === 'number') {
    return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}
