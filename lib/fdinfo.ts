/**
 * /proc/<pid>/fdinfo/<fd>: the one parser every fdinfo read goes through, and (for the software
 * framework, which has no procfs) the one renderer, its inverse.
 */

/** What /proc/<pid>/fdinfo/<fd> says about a dma-buf (6.12 format; vendor kernels add lines). */
/** A dma-buf's /proc/self/fdinfo entry, parsed ({@link DmaBuf.info}). */
export interface DmaBufInfo {
  /** bytes, as the kernel sized it */
  size: number;
  /** references to the struct file: fds sharing it (dup) and mappings */
  count: number;
  /** the exporter: the heap's name, 'udmabuf', ... */
  exporter: string;
  /** the name set with setName(), if any */
  name?: string;
  /** identifies the buffer across processes */
  ino: number;
  /** the file's open flags (octal in fdinfo) */
  flags: number;
  /** every line, as key → value, for what this parser does not know */
  fields: Record<string, string>;
}

/** DMA_BUF_NAME_LEN less its NUL: no name has more characters than this (each is >= 1 byte) */
const NAME_MAX = 31;

/**
 * The name, exactly as set. dma_buf_show_fdinfo prints `name:\t%s\n` as its last line and
 * any process may put spaces, CR or newlines in a name, so the name is everything after
 * `name:\t` up to the text's final newline, untrimmed. Only where that is longer than any
 * name can be (a vendor kernel printing lines after it) does it end at its first newline.
 */
function splitName(text: string): { head: string; name?: string } {
  const m = /(?:^|\n)name:\t/.exec(text);
  if (!m) return { head: text };
  const head = text.slice(0, m.index + m[0].length - 'name:\t'.length);
  const rest = text.slice(m.index + m[0].length);
  const whole = rest.endsWith('\n') ? rest.slice(0, -1) : rest;
  const nl = whole.indexOf('\n');
  if (nl < 0 || [...whole].length <= NAME_MAX) return { head, name: whole };
  return { head: head + whole.slice(nl + 1), name: whole.slice(0, nl) };
}

/** Lenient: unknown lines are kept in `fields`; missing numbers read as NaN... never thrown on. */
export function parseFdinfo(text: string): DmaBufInfo {
  const { head, name } = splitName(text);
  const fields: Record<string, string> = {};
  for (const line of head.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim();
    if (!(key in fields)) fields[key] = line.slice(colon + 1).trim();
  }
  if (name !== undefined) fields.name = name;
  const num = (k: string) => (fields[k] !== undefined ? Number(fields[k]) : NaN);
  const info: DmaBufInfo = {
    size: num('size'),
    count: num('count'),
    exporter: fields.exp_name ?? '',
    ino: num('ino'),
    flags: fields.flags !== undefined ? parseInt(fields.flags, 8) : NaN,
    fields,
  };
  if (name !== undefined) info.name = name;
  return info;
}

/** fdinfo lines after procfs's common ones (a file's show_fdinfo), in order */
/**
 * fdinfo lines as [key, value] pairs, in order.
 *
 * @inline
 */
export type FdinfoLines = Array<[key: string, value: string | number]>;

/**
 * Render fdinfo as fs/proc/fd.c does: pos, flags (octal with a leading 0), mnt_id, ino, then
 * the file's own lines as "key:\tvalue". parseFdinfo(renderFdinfo(x)) gives x back.
 */
export function renderFdinfo(common: { flags: number; ino: number }, lines: FdinfoLines = []): string {
  let text = `pos:\t0\nflags:\t0${common.flags.toString(8)}\nmnt_id:\t0\nino:\t${common.ino}\n`;
  for (const [key, value] of lines) text += `${key}:\t${value}\n`;
  return text;
}
