/**
 * GStreamer caps strings (gst_caps_to_string), read far enough to use a frame: the first
 * structure's media type, features and fields, with the video fields a reader needs pulled out.
 *
 *   video/x-raw(memory:DMABuf), format=(string)DMA_DRM, drm-format=(string)YVYU, width=(int)640, ...
 *
 * A value is `(type)value` or a bare value; strings may be quoted with backslash escapes; lists
 * `{ a, b }`, arrays `< a, b >` and ranges `[ a, b ]` are kept as their text. Nothing a peer sends
 * can make this throw: what it can't read, it leaves out (the whole string stays in `string`).
 */

/** a `(fraction)n/d` value, e.g. a framerate */
export interface GstFraction {
  /** numerator */
  num: number;
  /** denominator */
  den: number;
}

/** One field's value: typed where the caps said int, double, boolean, fraction or string; else its text. */
export type GstCapsValue = string | number | boolean | GstFraction;

/** GstCaps, parsed (the first structure; a peer sending several is rare for unixfd). */
export interface GstCaps {
  /** the caps as the peer sent them */
  string: string;
  /** e.g. 'video/x-raw' */
  mediaType: string;
  /** caps features, e.g. ['memory:DMABuf'] */
  features: string[];
  /** every field of the first structure */
  fields: Record<string, GstCapsValue>;
  /** `format` (e.g. 'RGBA', 'NV12'; 'DMA_DRM' for dma-buf caps, then see drmFormat) */
  format?: string;
  /** `width`, in pixels */
  width?: number;
  /** `height`, in pixels */
  height?: number;
  /** `framerate`, frames per second as a fraction (0/1: variable) */
  framerate?: GstFraction;
  /** `drm-format`: a DRM fourcc, with `:0x...` modifier when not linear (dma-buf caps name their layout this way) */
  drmFormat?: string;
}

const CLOSERS: Record<string, string> = { '{': '}', '[': ']', '<': '>', '(': ')' };

/** Read caps. Never throws: a field it can't read is left out. */
export function parseCaps(text: string): GstCaps {
  const caps: GstCaps = { string: text, mediaType: '', features: [], fields: {} };
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n && /\s/.test(text[i])) i++;
  };
  ws();
  let start = i;
  while (i < n && !',;('.includes(text[i]) && !/\s/.test(text[i])) i++;
  caps.mediaType = text.slice(start, i);
  ws();
  if (text[i] === '(') {
    const end = text.indexOf(')', i);
    if (end < 0) return caps;
    caps.features = text
      .slice(i + 1, end)
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
    i = end + 1;
  }
  for (;;) {
    ws();
    if (i >= n || text[i] === ';') break;
    if (text[i] !== ',') break;
    i++;
    ws();
    start = i;
    while (i < n && text[i] !== '=' && text[i] !== ',' && text[i] !== ';') i++;
    if (text[i] !== '=') break;
    const name = text.slice(start, i).trim();
    i++;
    ws();
    let type = '';
    if (text[i] === '(') {
      const end = text.indexOf(')', i);
      if (end < 0) break;
      type = text.slice(i + 1, end).trim();
      i = end + 1;
      ws();
    }
    const raw = readValue();
    if (raw === null) break;
    if (name) caps.fields[name] = typed(type, raw.text, raw.quoted);
  }
  const f = caps.fields;
  if (typeof f.format === 'string') caps.format = f.format;
  if (typeof f.width === 'number') caps.width = f.width;
  if (typeof f.height === 'number') caps.height = f.height;
  if (typeof f.framerate === 'object') caps.framerate = f.framerate;
  if (typeof f['drm-format'] === 'string') caps.drmFormat = f['drm-format'];
  return caps;

  /** a value up to the next top-level ',' or ';': quoted, bracketed, or bare */
  function readValue(): { text: string; quoted: boolean } | null {
    if (text[i] === '"') {
      let out = '';
      i++;
      while (i < n && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < n) i++;
        out += text[i++];
      }
      if (i >= n) return null;
      i++;
      return { text: out, quoted: true };
    }
    const start = i;
    const stack: string[] = [];
    while (i < n) {
      const c = text[i];
      if (c === '\\' && i + 1 < n) {
        i += 2;
        continue;
      }
      if (CLOSERS[c]) stack.push(CLOSERS[c]);
      else if (stack.length && c === stack[stack.length - 1]) stack.pop();
      else if (!stack.length && (c === ',' || c === ';')) break;
      i++;
    }
    return { text: text.slice(start, i).trim().replace(/\\(.)/g, '$1'), quoted: false };
  }
}

function typed(type: string, raw: string, quoted: boolean): GstCapsValue {
  if (quoted) return raw;
  switch (type) {
    case 'int':
    case 'i':
    case 'uint':
    case 'int64':
    case 'guint64':
    case 'double':
    case 'd':
    case 'float':
    case 'f': {
      const v = Number(raw);
      return Number.isFinite(v) ? v : raw;
    }
    case 'boolean':
    case 'bool':
    case 'b':
      return /^(true|yes|t|1)$/i.test(raw) ? true : /^(false|no|f|0)$/i.test(raw) ? false : raw;
    case 'fraction': {
      const m = /^(-?\d+)\s*\/\s*(\d+)$/.exec(raw);
      return m ? { num: Number(m[1]), den: Number(m[2]) } : raw;
    }
    default:
      return raw;
  }
}
