import { openHeap, type DmaBuf, type Heap } from '../index';
import { COMMON_OPTIONS, formatSize, parseSize, UsageError, withUserValues, type Command } from './common';
import { jsonText, shown } from '../escape';

export const alloc: Command = {
  name: 'alloc',
  summary: 'allocate a buffer, report it, optionally hold it until Ctrl-C',
  usage: 'alloc <size> [--heap NAME] [--name NAME] [--backend auto|kernel|software] [--hold] [--json]',
  help: `Allocates one buffer of <size> bytes (4096, 64k, 4M, 1G: binary units; the kernel rounds
up to pages) from a heap (default system) and reports fd, size, tier, exporter, name and
inode. With --hold it keeps the buffer until SIGINT (Ctrl-C) or SIGTERM, then releases it
and exits 0: for testing a consumer, or to watch it in 'dma-heap dump <pid>'.`,
  options: {
    ...COMMON_OPTIONS,
    heap: { type: 'string', default: 'system' },
    name: { type: 'string' },
    backend: { type: 'string', default: 'auto' },
    hold: { type: 'boolean', default: false },
  },
  positionals: true,
  async run(values, positionals, io) {
    if (positionals.length !== 1) throw new UsageError(`alloc takes one size, got ${positionals.length ? positionals.join(' ') : 'none'}`);
    const size = parseSize(positionals[0]);
    const backend = values.backend as string;
    if (backend !== 'auto' && backend !== 'kernel' && backend !== 'software') {
      throw new UsageError(`--backend must be auto, kernel or software, got "${backend}"`);
    }
    let heap: Heap | undefined;
    let buf: DmaBuf | undefined;
    const release = () => {
      buf?.close();
      heap?.close();
    };
    try {
      heap = withUserValues(() => openHeap(values.heap as string, { backend }));
      const opened = heap;
      buf = withUserValues(() => opened.alloc(size, values.name === undefined ? {} : { name: values.name as string }));
      const info = buf.info();
      const report = {
        pid: process.pid,
        heap: heap.name,
        backend: heap.backend,
        ...(heap.fallbackReason ? { fallbackReason: heap.fallbackReason } : {}),
        fd: buf.fd,
        size: buf.size,
        tier: buf.tier,
        isDmaBuf: buf.isDmaBuf,
        exporter: info.exporter,
        ...(info.name !== undefined ? { name: info.name } : {}),
        ino: info.ino,
      };
      if (values.json) {
        io.out(jsonText(report));
      } else {
        io.out(
          `allocated ${formatSize(report.size)} (${report.size} bytes) from ${heap.backend} heap ${shown(heap.name)}: ` +
            `fd ${report.fd}, tier ${report.tier}, exporter ${shown(report.exporter)}, name ${report.name === undefined ? '(none)' : shown(report.name)}, ino ${report.ino}, pid ${report.pid}`,
        );
        if (heap.fallbackReason) io.out(`(the software framework serves it: ${shown(heap.fallbackReason)})`);
      }
    } catch (err) {
      release();
      throw err;
    }
    if (!values.hold) {
      release();
      return 0;
    }
    io.err(`holding it (pid ${process.pid}); Ctrl-C or SIGTERM releases it. Watch it with: dma-heap dump ${process.pid}`);
    return new Promise<number>((resolve) => {
      const keepAlive = setInterval(() => {}, 1 << 30);
      const stop = (signal: NodeJS.Signals) => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        clearInterval(keepAlive);
        release();
        io.err(`${signal}: released`);
        resolve(0);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  },
};
