/**
 * How the CLI (and NODE_DEBUG=dma-heap) shows text it did not write: buffer names (any process may set one,
 * DMA_BUF_SET_NAME), process names (/proc/<pid>/comm, prctl PR_SET_NAME), exporter and memfd
 * names, device paths, arguments. Such text may hold ESC sequences, BEL, CR or bidi overrides
 * that a terminal would act on, for whoever runs the tool (often root). The rule, in one place:
 *
 * - shown as themselves: every other character, printable and safe;
 * - `\\` for a backslash, so that two different texts are never shown alike;
 * - `\n`, `\r`, `\t`; `\xHH` for any other C0 control and DEL (U+0000-U+001F, U+007F);
 * - `\uHHHH` for C1 controls (U+0080-U+009F: U+009B is a CSI to some terminals), for the
 *   bidi controls that reorder a line (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)
 *   and for the line and paragraph separators (U+2028, U+2029);
 * - `\xHH` (HH >= 80) for each byte that is not part of valid UTF-8 (see decodeBytes).
 *
 * `--json` output keeps the raw text (jsonText: parsed, it is exactly what was read), written
 * with `\uHHHH` for every character above that JSON.stringify would leave raw.
 */

// with the u flag a surrogate matches only when lone: an emoji's pair is one character
const SPECIAL = /[\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]/gu;
const NAMED: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

/** `text` as it is safe to print on a terminal: visible, distinct, acting on nothing. */
export function shown(text: string): string {
  return text.replace(SPECIAL, (c) => {
    const code = c.charCodeAt(0);
    if (NAMED[c]) return NAMED[c];
    if (code < 0x20 || code === 0x7f) return `\\x${hex(code, 2)}`;
    // a byte decodeBytes could not decode; other lone surrogates are not UTF-8 either
    if (code >= 0xdc80 && code <= 0xdcff) return `\\x${hex(code - 0xdc00, 2)}`;
    return `\\u${hex(code, 4)}`;
  });
}

/** The length of the valid UTF-8 sequence at `i` (Unicode table 3-7), or 0 if there is none. */
function sequenceLength(b: Uint8Array, i: number): number {
  const c = b[i];
  const cont = (j: number, lo = 0x80, hi = 0xbf) => j < b.length && b[j] >= lo && b[j] <= hi;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) return cont(i + 1, c === 0xe0 ? 0xa0 : 0x80, c === 0xed ? 0x9f : 0xbf) && cont(i + 2) ? 3 : 0;
  if (c >= 0xf0 && c <= 0xf4) return cont(i + 1, c === 0xf0 ? 0x90 : 0x80, c === 0xf4 ? 0x8f : 0xbf) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

/**
 * Bytes from the kernel (a name is bytes, not necessarily UTF-8) as a string that loses
 * nothing: valid UTF-8 decoded, each other byte B as the lone surrogate U+DC00+B (Python's
 * surrogateescape). No UTF-8 text decodes to one, so two different byte strings never give
 * the same string; shown() prints them as `\xHH`, and JSON.stringify as `\udcHH`.
 */
export function decodeBytes(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buf.toString('utf8');
  if (!text.includes('\ufffd')) return text; // no replacement: it was valid UTF-8
  let out = '';
  for (let i = 0; i < buf.length; ) {
    const n = sequenceLength(buf, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + buf[i]);
      i++;
    } else {
      out += buf.toString('utf8', i, i + n);
      i += n;
    }
  }
  return out;
}

// JSON.stringify leaves these raw; inside a JSON string `\uHHHH` means the same character
const JSON_UNSAFE = /[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `--json` output: the raw strings, parsed back exactly, but with no byte a terminal acts on
 * if someone reads it there (JSON.stringify escapes C0 itself, not DEL, C1 or bidi controls).
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(JSON_UNSAFE, (c) => `\\u${hex(c.charCodeAt(0), 4)}`);
}
