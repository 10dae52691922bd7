/** What /proc/<pid>/fdinfo/<fd> says about a dma-buf (6.12 format; vendor kernels add lines). */
export interface DmaBufInfo {
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

/** Lenient: unknown lines are kept in `fields`; missing numbers read as NaN... never thrown on. */
export function parseFdinfo(text: string): DmaBufInfo {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim();
    if (!(key in fields)) fields[key] = line.slice(colon + 1).trim();
  }
  const num = (k: string) => (fields[k] !== undefined ? Number(fields[k]) : NaN);
  const info: DmaBufInfo = {
    size: num('size'),
    count: num('count'),
    exporter: fields.exp_name ?? '',
    ino: num('ino'),
    flags: fields.flags !== undefined ? parseInt(fields.flags, 8) : NaN,
    fields,
  };
  if (fields.name !== undefined) info.name = fields.name;
  return info;
}
