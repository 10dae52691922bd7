import { fstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { softwareKernelIfMade } from '../chooser';
import { parseFdinfo } from '../fdinfo';
import { COMMON_OPTIONS, errorCode, formatSize, table, UsageError, type Command } from './common';
import { decodeBytes, jsonText, shown } from '../escape';

/*
 * Per-process dma-buf usage, like Android's dmabuf_dump: for every process (or the pids
 * given) its dma-bufs from /proc/<pid>/fd (links read `/dmabuf:<name>`; `anon_inode:dmabuf`
 * on old kernels) and /proc/<pid>/fdinfo (size, count, exp_name, name, ino), plus buffers it
 * only maps (/proc/<pid>/maps). A buffer is identified by its inode (device and number), so a
 * buffer shared between processes, or held through several fds, is counted once in every total.
 * The software framework's buffers (memfds named `dma-heap:<exporter>`) are listed too, marked
 * as such: they are what a laptop without dma-heaps has.
 * Where debugfs is mounted and readable, /sys/kernel/debug/dma_buf/bufinfo adds every buffer
 * the kernel has, with the devices attached to it.
 *
 * Names (of buffers, processes, memfds) are set by whoever owns them, hostile or not: they are
 * read as bytes (decodeBytes: nothing lost, invalid UTF-8 included), never trimmed or split,
 * and printed only through shown() (lib/escape.ts).
 */

export type BufferKind = 'dma-buf' | 'software';

export interface ProcBuffer {
  /** `${st_dev}:${st_ino}`: one buffer, however many fds and processes hold it */
  key: string;
  ino: number;
  kind: BufferKind;
  size: number;
  exporter: string;
  name?: string;
  /** false on a software buffer whose name (if it has one) only its owning process knows (see ownSoftwareNames) */
  nameVisible?: false;
  /** the fds this process holds it by (empty: only mapped) */
  fds: number[];
  /** bytes of it this process has mapped */
  mapped: number;
  /** fdinfo `count`: references to the file, all processes together */
  count?: number;
}

export interface ProcReport {
  pid: number;
  comm: string;
  /** why it could not be read (EACCES: not yours; ENOENT: gone) */
  error?: string;
  buffers: ProcBuffer[];
  count: number;
  bytes: number;
}

export interface DebugfsBuffer {
  ino: number;
  size: number;
  exporter: string;
  name?: string;
  count: number;
  attachments: string[];
}

export interface DumpReport {
  processes: ProcReport[];
  /** processes this user may not read, and why: reported, never skipped silently */
  unreadable: Array<{ pid: number; comm: string; error: string }>;
  scanned: number;
  exporters: Array<{ exporter: string; kind: BufferKind; count: number; bytes: number }>;
  shared: Array<{ ino: number; exporter: string; name?: string; nameVisible?: false; size: number; pids: number[] }>;
  total: { count: number; bytes: number; dmaBufs: { count: number; bytes: number }; software: { count: number; bytes: number } };
  debugfs: { path: string; status: string; buffers?: DebugfsBuffer[] };
}

const DEBUGFS = '/sys/kernel/debug/dma_buf/bufinfo';

/** A procfs or debugfs file as the kernel wrote it: bytes, decoded losslessly. */
function readText(file: string): string {
  return decodeBytes(readFileSync(file));
}

/** /proc/<pid>/comm is printed raw (PR_SET_NAME takes any bytes), then one '\n' */
function comm(pid: number): string {
  try {
    return readText(`/proc/${pid}/comm`).replace(/\n$/, '');
  } catch {
    return '?';
  }
}

/**
 * What a /proc/<pid>/fd link or maps path says the file is: a dma-buf, a software buffer, or
 * neither. The `s` flag matters: a name may hold '\n' or '\r' (which `.` alone does not
 * match), and a buffer whose name did was missed, from the list and the totals.
 */
function classify(target: string): { kind: BufferKind; exporter?: string; name?: string } | undefined {
  let m = /^\/dmabuf:(.*)$/s.exec(target);
  if (m) return { kind: 'dma-buf', name: m[1] || undefined };
  if (target === 'anon_inode:dmabuf') return { kind: 'dma-buf' };
  m = /^\/memfd:dma-heap:(.*?)(?: \(deleted\))?$/s.exec(target);
  if (m) return { kind: 'software', exporter: m[1] };
  return undefined;
}

/**
 * The names of the software buffers this process's own framework holds, by `dev:ino`. A
 * software buffer is a memfd named `dma-heap:<exporter>` when it is made; its dma-buf name
 * (setName, alloc's `name`) comes later, and a memfd's name never changes, so that name lives
 * only in the JS of the process that owns the buffer: no procfs file of it carries it. We do
 * not publish it elsewhere (a file of our own would be a second source any process could
 * forge, and would outlive a crash). So dump says the name is not visible (nameVisible: false)
 * rather than show nothing, except where it can know: the buffers this process holds through
 * the package's default framework — dumping itself, or a buffer it shares with the process
 * dumped (the same inode is the same buffer, so the same name). Never creates the framework.
 */
function ownSoftwareNames(): Map<string, string | null> {
  const names = new Map<string, string | null>(); // null: ours, and never named
  const fw = softwareKernelIfMade();
  if (fw?.backing !== 'memfd') return names; // JS-memory buffers are no memfds: dump never sees them
  for (const fd of fw.fds()) {
    const buf = fw.dmaBuf(fd);
    if (!buf) continue;
    try {
      const st = fstatSync(fd);
      names.set(`${st.dev}:${st.ino}`, buf.name);
    } catch {
      // closed meanwhile
    }
  }
  return names;
}

/** a buffer's name where procfs has none to give: ours if we hold it, else "not visible" for a software one */
function nameFromOwnFramework(buf: ProcBuffer, names: Map<string, string | null>): void {
  if (buf.kind !== 'software') return;
  if (!names.has(buf.key)) buf.nameVisible = false;
  else if (names.get(buf.key) !== null) buf.name = names.get(buf.key)!;
}

function scanProcess(pid: number, names: Map<string, string | null>): ProcReport {
  const report: ProcReport = { pid, comm: comm(pid), buffers: [], count: 0, bytes: 0 };
  const byKey = new Map<string, ProcBuffer>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    report.error = errorCode(err);
    return report;
  }
  for (const entry of fds) {
    const fd = Number(entry);
    let what: ReturnType<typeof classify>;
    let key: string;
    let size: number;
    let ino: number;
    try {
      what = classify(decodeBytes(readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: 'buffer' })));
      if (!what) continue;
      const st = statSync(`/proc/${pid}/fd/${fd}`);
      key = `${st.dev}:${st.ino}`;
      size = st.size;
      ino = st.ino;
    } catch {
      continue; // closed meanwhile
    }
    let buf = byKey.get(key);
    if (!buf) {
      buf = { key, ino, kind: what.kind, size, exporter: what.exporter ?? '?', fds: [], mapped: 0 };
      if (what.name) buf.name = what.name;
      byKey.set(key, buf);
    }
    buf.fds.push(fd);
    if (what.kind === 'dma-buf') {
      try {
        const f = parseFdinfo(readText(`/proc/${pid}/fdinfo/${fd}`));
        if (f.exporter) buf.exporter = f.exporter;
        if (f.name) buf.name = f.name;
        if (Number.isFinite(f.size)) buf.size = f.size;
        if (Number.isFinite(f.count)) buf.count = f.count;
      } catch {
        // fdinfo went away with the fd: the link said enough
      }
    }
  }
  // Buffers it maps (perhaps with every fd closed): `start-end perms offset dev inode path`.
  // The kernel writes a '\n' in a path as `\012` (seq_file_path), so lines split safely; a
  // buffer known only from here shows that escape as a newline (a name holding a literal
  // `\012` is rarer than one holding '\n').
  try {
    for (const line of readText(`/proc/${pid}/maps`).split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+)\s+\S+\s+\S+\s+([0-9a-f]+):([0-9a-f]+)\s+(\d+)\s+(.*)$/s.exec(line);
      if (!m) continue;
      const what = classify(m[6].replaceAll('\\012', '\n'));
      if (!what) continue;
      const bytes = parseInt(m[2], 16) - parseInt(m[1], 16);
      const ino = Number(m[5]);
      // maps gives major:minor in hex; st_dev is makedev(major, minor)
      const major = parseInt(m[3], 16);
      const minor = parseInt(m[4], 16);
      const dev = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12);
      const key = `${dev}:${ino}`;
      let buf = byKey.get(key);
      if (!buf) {
        buf = { key, ino, kind: what.kind, size: NaN, exporter: what.exporter ?? '?', fds: [], mapped: 0 };
        if (what.name) buf.name = what.name;
        byKey.set(key, buf);
      }
      buf.mapped += bytes;
    }
  } catch {
    // maps unreadable while fd was not: keep what the fds said
  }
  for (const b of byKey.values()) {
    if (!Number.isFinite(b.size)) b.size = b.mapped; // mapped only: the mapping is what we know
    nameFromOwnFramework(b, names);
  }
  report.buffers = [...byKey.values()].sort((a, b) => (a.fds[0] ?? Infinity) - (b.fds[0] ?? Infinity) || a.ino - b.ino);
  report.count = report.buffers.length;
  report.bytes = report.buffers.reduce((s, b) => s + b.size, 0);
  return report;
}

/**
 * debugfs bufinfo (drivers/dma-buf/dma-buf.c, dma_buf_debug_show): a header line, then per
 * buffer `%08zu\t%08x\t%08x\t%08ld\t%s\t%08lu\t%s` (size flags mode count exp_name ino
 * name), its fences, "\tAttached Devices:", one "\t<device>" line per attachment, "Total N
 * devices attached". Any process may put newlines in its buffer's name, so the lines after a
 * header are partly the name's: read so that no name can forge what the kernel says.
 * - A buffer line needs at least 46 bytes (four 8-digit fields, an 8-digit ino, six tabs);
 *   a name has at most 31, so no line a name makes can pass for a buffer.
 * - A buffer's block runs to the next buffer line; its attachments are the N lines before the
 *   block's LAST "Total N devices attached" (the kernel's, printed after the name), and only
 *   where "\tAttached Devices:" stands right before them.
 * - Its name is the rest of the buffer line: a name's later lines are not told apart from
 *   fence lines here (dump shows the name read from procfs, which is exact).
 */
// the name field takes anything up to the newline: `.` stops at CR, U+2028 and U+2029, which a
// name may hold, and a line that failed here merged its buffer into the one before
const BUFINFO_BUFFER = /^(\d{8,})\t([0-9a-f]{8,})\t([0-9a-f]{8,})\t(\d{8,})\t([^\t\n]+)\t(\d{8,})\t([^\n]*)$/;

/** The fd column: a few fds and a count past them. A process holding thousands of fds of one
 *  buffer made one cell of every fd, and every row was padded to it: 42 MB of text for 3,000
 *  fds (the whole list stays in --json). */
export function fdList(fds: readonly number[]): string {
  if (fds.length === 0) return '-';
  return fds.length <= FDS_SHOWN ? fds.join(',') : `${fds.slice(0, FDS_SHOWN).join(',')},... (${fds.length} fds)`;
}
const FDS_SHOWN = 8;

export function parseBufinfo(text: string): DebugfsBuffer[] {
  const lines = text.split('\n');
  const starts: number[] = [];
  lines.forEach((line, i) => BUFINFO_BUFFER.test(line) && starts.push(i));
  return starts.map((at, k) => {
    const m = BUFINFO_BUFFER.exec(lines[at])!;
    const buffer: DebugfsBuffer = { size: Number(m[1]), count: Number(m[4]), exporter: m[5], ino: Number(m[6]), attachments: [] };
    if (m[7] !== '<none>' && m[7] !== '') buffer.name = m[7];
    const block = lines.slice(at + 1, k + 1 < starts.length ? starts[k + 1] : lines.length);
    for (let t = block.length - 1; t >= 0; t--) {
      const total = /^Total (\d+) devices attached$/.exec(block[t]);
      if (!total) continue;
      const n = Number(total[1]);
      const first = t - n;
      if (first >= 1 && block[first - 1] === '\tAttached Devices:') {
        buffer.attachments = block.slice(first, t).map((l) => l.replace(/^\t/, ''));
      }
      break;
    }
    return buffer;
  });
}

function readDebugfs(): DumpReport['debugfs'] {
  try {
    return { path: DEBUGFS, status: 'read', buffers: parseBufinfo(readText(DEBUGFS)) };
  } catch (err) {
    const code = errorCode(err);
    let status = `unreadable (${code})`;
    if (code === 'ENOENT') {
      let mounted = false;
      try {
        mounted = readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[2] === 'debugfs');
      } catch {
        // no /proc/self/mounts: say what we know
      }
      status = mounted ? 'absent (debugfs is mounted, but this kernel has no dma_buf/bufinfo)' : 'not mounted (mount -t debugfs none /sys/kernel/debug, as root)';
    } else if (code === 'EACCES' || code === 'EPERM') {
      status = `not readable by this user (${code}; root only)`;
    }
    return { path: DEBUGFS, status };
  }
}

export function dumpReport(pids?: number[]): DumpReport {
  const explicit = pids !== undefined && pids.length > 0;
  const all = explicit
    ? [...new Set(pids)] // `dump P P` is P once: not two processes sharing every buffer
    : readdirSync('/proc')
        .filter((e) => /^\d+$/.test(e))
        .map(Number)
        .sort((a, b) => a - b);
  const processes: ProcReport[] = [];
  const unreadable: DumpReport['unreadable'] = [];
  const names = ownSoftwareNames();
  for (const pid of all) {
    const r = scanProcess(pid, names);
    if (r.error) {
      // a process that exited between readdir and now is no news, unless it was asked for
      if (r.error !== 'ENOENT' || explicit) unreadable.push({ pid, comm: r.comm, error: r.error });
      continue;
    }
    if (r.count > 0 || explicit) processes.push(r);
  }

  const unique = new Map<string, { buf: ProcBuffer; pids: number[] }>();
  for (const p of processes) {
    for (const b of p.buffers) {
      const u = unique.get(b.key);
      if (u) {
        u.pids.push(p.pid);
        if (!Number.isFinite(u.buf.size) || (u.buf.fds.length === 0 && b.fds.length > 0)) u.buf = b;
      } else {
        unique.set(b.key, { buf: b, pids: [p.pid] });
      }
    }
  }
  const exporters = new Map<string, DumpReport['exporters'][number]>();
  const total: DumpReport['total'] = { count: 0, bytes: 0, dmaBufs: { count: 0, bytes: 0 }, software: { count: 0, bytes: 0 } };
  for (const { buf } of unique.values()) {
    const k = `${buf.kind}\0${buf.exporter}`;
    const e = exporters.get(k) ?? { exporter: buf.exporter, kind: buf.kind, count: 0, bytes: 0 };
    e.count++;
    e.bytes += buf.size;
    exporters.set(k, e);
    total.count++;
    total.bytes += buf.size;
    const t = buf.kind === 'dma-buf' ? total.dmaBufs : total.software;
    t.count++;
    t.bytes += buf.size;
  }
  const shared = [...unique.values()]
    .filter((u) => u.pids.length > 1)
    .map(({ buf, pids }) => ({
      ino: buf.ino,
      exporter: buf.exporter,
      ...(buf.name ? { name: buf.name } : {}),
      ...(buf.nameVisible === false ? { nameVisible: false as const } : {}),
      size: buf.size,
      pids,
    }));

  return {
    processes,
    unreadable,
    scanned: all.length,
    exporters: [...exporters.values()].sort((a, b) => b.bytes - a.bytes),
    shared,
    total,
    debugfs: readDebugfs(),
  };
}

function printReport(r: DumpReport, out: (line: string) => void): void {
  if (r.processes.length === 0) out('no process holds or maps a dma-buf (or a software framework buffer)');
  for (const p of r.processes) {
    out(`${shown(p.comm)} (pid ${p.pid}): ${p.count} buffer${p.count === 1 ? '' : 's'}, ${formatSize(p.bytes)}`);
    if (p.count === 0) continue;
    const rows = [['fd', 'size', 'exporter', 'name', 'ino', 'mapped', '']];
    for (const b of p.buffers) {
      rows.push([
        fdList(b.fds),
        formatSize(b.size),
        shown(b.exporter),
        b.name === undefined ? '' : shown(b.name),
        String(b.ino),
        b.mapped ? formatSize(b.mapped) : '-',
        // said in this column, which no name reaches: a name could read "(not visible)"
        b.kind === 'software' ? `(software framework memfd${b.nameVisible === false ? '; name visible only in its process' : ''})` : '',
      ]);
    }
    for (const line of table(rows, '    ')) out(line);
  }
  out('');
  out('by exporter (each buffer counted once):');
  if (r.exporters.length === 0) out('  (none)');
  for (const line of table(r.exporters.map((e) => [shown(e.exporter) + (e.kind === 'software' ? ' (software)' : ''), `${e.count} buffer${e.count === 1 ? '' : 's'}`, formatSize(e.bytes)]))) out(line);
  for (const s of r.shared) {
    out(`shared: ino ${s.ino} (${shown(s.exporter)}${s.name ? ` '${shown(s.name)}'` : ''}, ${formatSize(s.size)}) by pids ${s.pids.join(', ')}, counted once`);
  }
  out(
    `total: ${r.total.dmaBufs.count} dma-buf${r.total.dmaBufs.count === 1 ? '' : 's'}, ${formatSize(r.total.dmaBufs.bytes)}` +
      (r.total.software.count ? `; ${r.total.software.count} software framework buffer${r.total.software.count === 1 ? '' : 's'}, ${formatSize(r.total.software.bytes)}` : '') +
      ` (${r.scanned} process${r.scanned === 1 ? '' : 'es'} scanned)`,
  );
  if (r.unreadable.length) {
    const why = new Map<string, string[]>();
    for (const u of r.unreadable) why.set(u.error, [...(why.get(u.error) ?? []), u.comm === '?' ? String(u.pid) : `${u.pid} ${shown(u.comm)}`]);
    for (const [code, list] of why) {
      const some = `${list.slice(0, 12).join(', ')}${list.length > 12 ? ', ...' : ''}`;
      // only pids asked for are reported gone (one that exits mid-scan is no news)
      if (code === 'ENOENT') out(`no such process: ${some}`);
      else out(`${list.length} process${list.length === 1 ? '' : 'es'} ${code === 'EACCES' || code === 'EPERM' ? 'not readable by this user (run as root to see them)' : `unreadable (${code})`}: ${some}`);
    }
  }
  if (r.debugfs.buffers) {
    const attached = r.debugfs.buffers.filter((b) => b.attachments.length);
    out(`debugfs ${r.debugfs.path}: ${r.debugfs.buffers.length} buffers in the kernel, ${attached.length} with devices attached`);
    for (const b of attached) out(`  ino ${b.ino} (${shown(b.exporter)}${b.name ? ` '${shown(b.name)}'` : ''}, ${formatSize(b.size)}): ${b.attachments.map(shown).join(', ')}`);
  } else {
    out(`debugfs ${r.debugfs.path}: ${r.debugfs.status}; attachments not shown`);
  }
}

export const dump: Command = {
  name: 'dump',
  summary: "per-process dma-buf usage, like Android's dmabuf_dump",
  usage: 'dump [pid...] [--json]',
  help: `For each process (or each pid given): the dma-bufs it holds or maps, from /proc/<pid>/fd,
/proc/<pid>/fdinfo and /proc/<pid>/maps: fd, size, exporter, name, inode. Totals per
process and per exporter, with a buffer shared between processes (or fds) counted once.
Processes this user may not read are reported, not skipped. Where debugfs is readable
(/sys/kernel/debug/dma_buf/bufinfo, root), the devices attached to each buffer too.
The software framework's buffers (memfds named dma-heap:<exporter>) are listed, marked; their
names live only in the process that owns them, so another process's show as not visible.`,
  options: { ...COMMON_OPTIONS },
  positionals: true,
  run(values, positionals, io) {
    const pids = positionals.map((p) => {
      // pid_t is an int: anything past 2^31-1 is no process, and would print as 1e+21
      if (!/^\d{1,10}$/.test(p) || Number(p) <= 0 || Number(p) > 0x7fffffff) throw new UsageError(`not a pid: '${p}'`);
      return Number(p);
    });
    const r = dumpReport(pids);
    if (values.json) io.out(jsonText(r, 2));
    else printReport(r, io.out);
    // a pid that was asked for and is not there is an error; unreadable ones are a report
    return r.unreadable.some((u) => u.error === 'ENOENT') ? 1 : 0;
  },
};
