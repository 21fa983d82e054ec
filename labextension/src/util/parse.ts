/**
 * Parsing what the user types into the forms: durations (90m, 4h, 4:00:00) and parameter
 * values as their declared Python type.
 */

export function parseDuration(text: string): number | null {
  const s = text.trim().toLowerCase();
  const m = /^(\d+(?:\.\d+)?)\s*([smhd]?)$/.exec(s);
  if (m) {
    const mult: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };
    const v = parseFloat(m[1]) * mult[m[2]];
    return v > 0 ? v : null;
  }
  const hms = /^(\d+):(\d{1,2})(?::(\d{1,2}))?$/.exec(s);
  if (hms) {
    const [h, mi, se] = hms[3] !== undefined ? [+hms[1], +hms[2], +hms[3]] : [0, +hms[1], +hms[2]];
    const v = h * 3600 + mi * 60 + se;
    return v > 0 ? v : null;
  }
  return null;
}

/** Parse a parameter's text as its declared type; an error message when it does not fit. */
export function parseParameter(text: string, type: string): { value?: any; error?: string } {
  const t = text.trim();
  switch (type) {
    case 'int':
      return /^[+-]?\d+$/.test(t) ? { value: parseInt(t, 10) } : { error: 'must be a whole number' };
    case 'float': {
      const v = Number(t);
      return t !== '' && Number.isFinite(v) ? { value: v } : { error: 'must be a number' };
    }
    case 'bool':
      if (/^(true|false)$/i.test(t)) {
        return { value: t.toLowerCase() === 'true' };
      }
      return { error: 'must be True or False' };
    case 'str': {
      const q = /^(['"])(.*)\1$/s.exec(t);
      return { value: q ? q[2] : text };
    }
    case 'list':
    case 'dict':
    case 'tuple': {
      try {
        const json = t
          .replace(/\bTrue\b/g, 'true')
          .replace(/\bFalse\b/g, 'false')
          .replace(/\bNone\b/g, 'null')
          .replace(/'/g, '"')
          .replace(/^\(/, '[')
          .replace(/\)$/, ']');
        const v = JSON.parse(json);
        const ok = type === 'dict' ? v && typeof v === 'object' && !Array.isArray(v) : Array.isArray(v);
        return ok ? { value: v } : { error: `must be a ${type}` };
      } catch {
        return { error: `must be a ${type} literal, e.g. ${type === 'dict' ? "{'a': 1}" : '[1, 2]'}` };
      }
    }
    default:
      if (/^(true|false)$/i.test(t)) {
        return { value: t.toLowerCase() === 'true' };
      }
      if (t !== '' && Number.isFinite(Number(t))) {
        return { value: Number(t) };
      }
      if (/^(none|null)$/i.test(t)) {
        return { value: null };
      }
      {
        const q = /^(['"])(.*)\1$/s.exec(t);
        return { value: q ? q[2] : text };
      }
  }
}
