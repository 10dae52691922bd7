/**
 * Property-based fuzz of every public function's arguments and options: hostile values of
 * every type (exotic objects, throwing getters and toString, Proxies, Symbols, BigInts,
 * huge/negative/NaN sizes). For every call:
 *  - it succeeds, or it throws an error with a `code` and a known `name` (a caller's own
 *    throwing getter or Proxy trap may propagate; a throwing toString may never: rendering
 *    a value in a message must not run it);
 *  - an argument of the wrong JS type (a string for a boolean, a primitive for options, an
 *    unknown option key, a class instance or Proxy as options) is refused with Node's
 *    ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE / ERR_OUT_OF_RANGE, never coerced;
 *  - afterwards (results closed) the process holds exactly the fds and buffer mappings it
 *    held before: no leak, no half-made buffer, no caller's fd closed or replaced.
 * Seeded: the seed is printed; DMA_HEAP_FUZZ_SEED=<seed> replays, DMA_HEAP_FUZZ_RUNS scales.
 */
import { mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, rmSync, statSync, writeFileSync, ftruncateSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { types } from 'node:util';
import { addonStatus, allocShareable, BufferPool, createShareablePool, DmaBuf, DmaBufChannel, DmaBufServer, fromFd, Heap, HeapWatcher, inheritedBuffers, watchHeaps, listHeaps, openContiguousHeap, openHeap, PooledBuffer, spawnWithBuffers, SyncFile, UnixFdSink, UnixFdSource } from '../../lib';
import { Framework, SoftwareFenceSource } from '../../lib/framework';
import {
  ARG_CODES,
  fdTable,
  fuzzSeed,
  gen,
  genOptions,
  GetterSentinel,
  HOSTILE,
  holdings,
  dataValue,
  isArrayOf,
  isPlainObject,
  leaked,
  optionsTypeOk,
  Rng,
  show,
  ToStringSentinel,
  typedProblem,
  typeOk,
  type Kind,
  type OptionSchema,
} from './helpers';

const SEED = fuzzSeed();
const RUNS = Number(process.env.DMA_HEAP_FUZZ_RUNS ?? 120);
const withAddon = addonStatus().loaded;
const LABEL = withAddon ? 'addon' : 'no-addon';

interface Ctx {
  rng: Rng;
  fw: Framework;
  heap: Heap;
  buf: DmaBuf;
  dir: string;
  /** fds the generator made for this call: closed after it unless they are gone */
  mine: Map<number, string>;
  /** a path for a socket, unique, inside dir */
  sockPath(): string;
}

interface Input {
  args: unknown[];
  /** whether every argument has the JS type it must have (so a type error would be wrong) */
  ok: boolean;
  /** the call runs user code on purpose (payload toJSON): its exceptions may propagate */
  userCode?: boolean;
  /** every argument is valid: the call must succeed (a refusal is a finding) */
  mustSucceed?: boolean;
}

/** listen's fully valid options: the socket file must have this mode and group afterwards */
const LISTEN_EXPECTS = new WeakMap<object, { mode: number; gid: number }>();

interface Target {
  name: string;
  needsAddon?: boolean;
  runs?: number;
  /** what the target keeps for the thread's life once used, made before the first holdings snapshot */
  warm?(): void;
  input(c: Ctx): Input;
  call(c: Ctx, args: unknown[]): unknown;
}

const valid = {
  page: () => 4096,
  size: (c: Ctx) => () => c.rng.pick([1, 4096, 4097, 65536, 4096n, 1n]),
  name: (c: Ctx) => () => c.rng.pick(['', 'frame0', 'x'.repeat(31), 'é']),
  bool: (c: Ctx) => () => c.rng.chance(0.5),
  backend: (c: Ctx) => () => c.rng.pick(['auto', 'software', ...(withAddon ? [] : [])]),
};

/** an argument of `kind`: valid (from `good`) or hostile, and whether its type is right */
function arg(c: Ctx, kind: Kind, good: () => unknown, optional = false): [unknown, boolean] {
  let v = gen(c.rng, good);
  // numbers 0..2 as fds would be this worker's stdio: every fd the fuzz hands over is its own
  if (kind === 'fd' && typeof v === 'number' && v >= 0 && v < 3) v = good();
  return [v, typeOk(kind, v, optional)];
}

function opts(c: Ctx, schema: OptionSchema, good: Partial<Record<string, () => unknown>>, extra: (o: Record<string, unknown>) => boolean = () => true): [unknown, boolean] {
  const o = genOptions(c.rng, schema, good);
  let ok = optionsTypeOk(o, schema) && (o === undefined || extra(o as Record<string, unknown>));
  // null options: Node's own functions take it as "none" in some places; either answer is fine
  if (o === null) ok = true;
  return [o, ok];
}

/** a real fd of some kind the test owns: a regular file, a pipe, a memfd, /dev/null... */
function ownFd(c: Ctx): number {
  const kind = c.rng.int(3);
  let fd: number;
  if (kind === 0) {
    const p = path.join(c.dir, `f${c.rng.int(1e9)}`);
    fd = openSync(p, 'w+');
    ftruncateSync(fd, 4096);
    rmSync(p);
  } else if (kind === 1) fd = openSync('/dev/null', 'r');
  else fd = openSync(c.dir, 'r');
  c.mine.set(fd, fdTable().get(fd)!);
  return fd;
}

const FW_CLASS = (o: unknown) => {
  const v = dataValue(o, 'framework');
  return v === undefined || (!types.isProxy(v) && v instanceof Framework);
};

const TARGETS: Target[] = [
  {
    name: 'openHeap',
    input(c) {
      const [name, okName] = arg(c, 'string', () => c.rng.pick(['system', 'default_cma_region', 'nope']));
      const [o, okO] = opts(c, { backend: 'string', framework: 'any' }, { backend: valid.backend(c), framework: () => c.fw }, FW_CLASS);
      return { args: [name, o], ok: okName && okO };
    },
    call: (_c, [name, o]) => openHeap(name as string, o as never),
  },
  {
    name: 'listHeaps',
    input(c) {
      const [o, ok] = opts(c, { backend: 'string', framework: 'any' }, { backend: valid.backend(c), framework: () => c.fw }, FW_CLASS);
      return { args: [o], ok };
    },
    call: (_c, [o]) => listHeaps(o as never),
  },
  {
    name: 'watchHeaps',
    input(c) {
      const [o, ok] = opts(c, { backend: 'string', framework: 'any' }, { backend: valid.backend(c), framework: () => c.fw }, FW_CLASS);
      return { args: [o], ok };
    },
    call: (_c, [o]) => watchHeaps(o as never),
  },
  {
    name: 'openContiguousHeap',
    input(c) {
      const [o, ok] = opts(c, { backend: 'string', framework: 'any' }, { backend: valid.backend(c), framework: () => c.fw }, FW_CLASS);
      return { args: [o], ok };
    },
    call: (_c, [o]) => openContiguousHeap(o as never),
  },
  ...(['alloc', 'allocAsync'] as const).map<Target>((method) => ({
    name: `heap.${method}`,
    input(c) {
      const [size, okS] = arg(c, 'size', valid.size(c));
      const [o, okO] = opts(c, { name: 'string', readOnly: 'bool', cloexec: 'bool' }, { name: valid.name(c), readOnly: valid.bool(c), cloexec: valid.bool(c) });
      return { args: [size, o], ok: okS && okO };
    },
    call: (c, [size, o]) => c.heap[method](size as number, o as never),
  })),
  {
    name: 'allocShareable',
    input(c) {
      const [size, okS] = arg(c, 'size', valid.size(c));
      const [o, okO] = opts(
        c,
        { tiers: 'any', requireDmaBuf: 'bool', heap: 'string', name: 'string', cloexec: 'bool' },
        {
          tiers: () => c.rng.pick([['memfd'], ['js'], ['memfd', 'js'], ['dma-heap', 'memfd', 'js']]),
          requireDmaBuf: valid.bool(c),
          heap: () => c.rng.pick(['system', 'nope']),
          name: valid.name(c),
          cloexec: valid.bool(c),
        },
        (x) => dataValue(x, 'tiers') === undefined || isArrayOf(dataValue(x, 'tiers'), (t) => typeof t === 'string'),
      );
      return { args: [size, o], ok: okS && okO };
    },
    // allocShareable keeps each tier's heap (udmabuf: /dev/udmabuf) open for the thread's life
    // (as libdmabufheap's BufferAllocator keeps its heap fds): one fd per tier that served, not a
    // leak per call
    warm: () => {
      for (const tiers of [['memfd'], ['js'], ['dma-heap'], ['udmabuf']] as const) {
        try {
          allocShareable(4096, { tiers: [...tiers] }).close();
        } catch {
          // this host lacks the tier: nothing is kept
        }
      }
    },
    call: (_c, [size, o]) => allocShareable(size as number, o as never),
  },
  {
    name: 'fromFd',
    input(c) {
      const [fd, okFd] = arg(c, 'fd', () => (c.rng.chance(0.5) ? c.buf.fd : ownFd(c)));
      const [o, okO] = opts(c, { dup: 'bool', framework: 'any' }, { dup: valid.bool(c), framework: () => c.fw }, FW_CLASS);
      return { args: [fd, o], ok: okFd && okO };
    },
    call(c, [fd, o]) {
      // dup: false on the fixture buffer's own fd would take it away from the fixture: use a
      // new open of its memory that no fd table knows (as a child or a peer would have)
      if (fd === c.buf.fd && dataValue(o, 'dup') !== true) {
        const d = openSync(`/proc/self/fd/${c.buf.fd}`, 'r+');
        c.mine.set(d, fdTable().get(d)!);
        return DmaBuf.fromFd(d, o as never);
      }
      return fromFd(fd as number, o as never);
    },
  },
  {
    name: 'buf.read',
    input(c) {
      const [offset, okO] = arg(c, 'int', () => c.rng.pick([0, 1, 4095, 4096]), true);
      const [length, okL] = arg(c, 'int', () => c.rng.pick([0, 1, 4096]), true);
      return { args: [offset, length], ok: okO && okL };
    },
    call: (c, [offset, length]) => c.buf.read(offset as number, length as number),
  },
  {
    name: 'buf.write',
    input(c) {
      const [data, okD] = arg(c, 'bytes', () => new Uint8Array(c.rng.pick([0, 1, 4096])));
      const [offset, okO] = arg(c, 'int', () => c.rng.pick([0, 1, 4095]), true);
      return { args: [data, offset], ok: okD && okO };
    },
    call: (c, [data, offset]) => c.buf.write(data as Uint8Array, offset as number),
  },
  {
    name: 'buf.beginCpuAccess+endCpuAccess',
    input(c) {
      const [access, ok] = arg(c, 'access', () => c.rng.pick(['read', 'write', 'readwrite']), true);
      return { args: [access], ok };
    },
    call(c, [access]) {
      c.buf.beginCpuAccess(access as never);
      c.buf.endCpuAccess(access as never);
    },
  },
  {
    name: 'buf.cpuAccess',
    input(c) {
      const [access, okA] = arg(c, 'access', () => c.rng.pick(['read', 'write', 'readwrite']));
      // a function that throws is the caller's (cpuAccess rethrows it): only non-functions are hostile here
      const picked = c.rng.chance(0.8) ? () => 1 : c.rng.pick(HOSTILE)[1]();
      const fn = typeof picked === 'function' ? () => 1 : picked;
      return { args: [access, fn], ok: okA && typeof fn === 'function' };
    },
    call: (c, [access, fn]) => c.buf.cpuAccess(access as never, fn as never),
  },
  {
    name: 'buf.setName',
    input(c) {
      const [name, ok] = arg(c, 'string', valid.name(c));
      return { args: [name], ok };
    },
    call: (c, [name]) => c.buf.setName(name as string),
  },
  {
    name: 'buf.dup',
    input(c) {
      const [o, ok] = opts(c, { cloexec: 'bool' }, { cloexec: valid.bool(c) });
      return { args: [o], ok };
    },
    call: (c, [o]) => c.buf.dup(o as never),
  },
  ...(['pair', 'listen', 'connect', 'fromFd'] as const).map<Target>((fn) => ({
    name: `DmaBufChannel.${fn}`,
    needsAddon: true,
    input(c) {
      const schema: OptionSchema = {
        type: 'string',
        maxFds: 'int',
        maxPayload: 'int',
        // who may connect (issue 20 item 5): a mode, a gid or group name, a function, a count
        ...(fn === 'listen' ? { backlog: 'int', mode: 'int', group: 'intOrString', allow: 'function', maxConnections: 'int' } : {}),
        ...(fn === 'fromFd' ? { dup: 'bool' } : {}),
      };
      const [o, okO] = opts(c, schema, {
        type: () => c.rng.pick(['seqpacket', 'stream']),
        maxFds: () => c.rng.pick([0, 1, 64, 253]),
        maxPayload: () => c.rng.pick([64, 65536]),
        backlog: () => 8,
        mode: () => c.rng.pick([0o600, 0o660, 0o666, 0]),
        group: () => c.rng.pick([0, process.getgid?.() ?? 0, 'root']),
        allow: () => () => c.rng.chance(0.5),
        maxConnections: () => c.rng.pick([1, 8, 0x7fffffff]),
        dup: valid.bool(c),
      });
      if (fn === 'pair') return { args: [o], ok: okO };
      if (fn === 'listen' && c.rng.chance(0.2)) {
        // all of who-may-connect at once, every value valid: it must listen, with that mode and group
        const all = {
          type: c.rng.pick(['seqpacket', 'stream']),
          backlog: c.rng.pick([0, 8, 511]),
          mode: c.rng.pick([0o600, 0o660, 0o666, 0]),
          group: c.rng.pick([0, 'root']),
          allow: () => true,
          maxConnections: c.rng.pick([1, 8, 0x7fffffff]),
        };
        LISTEN_EXPECTS.set(all, { mode: all.mode, gid: 0 });
        return { args: [c.sockPath(), all], ok: true, mustSucceed: true };
      }
      if (fn === 'fromFd') {
        const [fd, okFd] = arg(c, 'fd', () => ownFd(c));
        return { args: [fd, o], ok: okFd && okO };
      }
      const [p, okP] = arg(c, 'path', () => c.sockPath());
      return { args: [p, o], ok: okP && okO };
    },
    call(c, args) {
      if (fn === 'pair') return DmaBufChannel.pair(args[0] as never);
      if (fn === 'listen') {
        const server = DmaBufChannel.listen(args[0] as string, args[1] as never);
        const expects = LISTEN_EXPECTS.get(args[1] as object);
        if (expects) {
          const st = statSync(args[0] as string);
          if ((st.mode & 0o777) !== expects.mode || st.gid !== expects.gid) {
            server.close();
            throw new Error(`the socket file has mode 0o${(st.mode & 0o777).toString(8)} gid ${st.gid}, not 0o${expects.mode.toString(8)} gid ${expects.gid}`);
          }
        }
        return server;
      }
      if (fn === 'connect') return DmaBufChannel.connect(args[0] as string, args[1] as never);
      return DmaBufChannel.fromFd(args[0] as number, args[1] as never);
    },
  })),
  {
    name: 'UnixFdSource.connect',
    needsAddon: true,
    input(c) {
      const [o, okO] = opts(c, { maxPayload: 'int' }, { maxPayload: () => c.rng.pick([1, 64, 65536]) });
      const [p, okP] = arg(c, 'path', () => c.sockPath());
      return { args: [p, o], ok: okP && okO };
    },
    call(_c, [p, o]) {
      return UnixFdSource.connect(p as string, o as never);
    },
  },
  ...(['listen', 'setCaps'] as const).map<Target>((fn) => ({
    name: `UnixFdSink.${fn}`,
    needsAddon: true,
    input(c) {
      const caps = () => c.rng.pick(['video/x-raw', 'video/x-raw,format=RGBA,width=64,height=48', 'é']);
      if (fn === 'setCaps') {
        const [v, okV] = arg(c, 'string', caps);
        return { args: [v], ok: okV };
      }
      const schema: OptionSchema = { caps: 'string', backlog: 'int', mode: 'int', group: 'intOrString', allow: 'function', maxConnections: 'int' };
      const [o, okO] = opts(
        c,
        schema,
        { caps, backlog: () => 8, mode: () => c.rng.pick([0o600, 0o660]), group: () => 0, allow: () => () => true, maxConnections: () => 4 },
        // caps is required
        (x) => typeof dataValue(x, 'caps') === 'string',
      );
      const [p, okP] = arg(c, 'path', () => c.sockPath());
      return { args: [p, o], ok: okP && okO && o !== undefined && o !== null };
    },
    call(c, args) {
      if (fn === 'listen') return UnixFdSink.listen(args[0] as string, args[1] as never);
      const sink = UnixFdSink.listen(c.sockPath(), { caps: 'video/x-raw' });
      try {
        sink.setCaps(args[0] as string);
      } finally {
        sink.close();
      }
      return undefined;
    },
  })),
  {
    name: 'sink.send',
    needsAddon: true,
    input(c) {
      const time = () => c.rng.pick([0n, 33_333_333n, null, undefined]);
      const [o, okO] = opts(
        c,
        { memories: 'any', pts: 'any', dts: 'any', duration: 'any', offset: 'any', offsetEnd: 'any', flags: 'int' },
        {
          memories: () => c.rng.pick([[c.buf], [c.buf, c.buf], [{ buffer: c.buf, offset: 0, size: 16 }]]),
          pts: time, dts: time, duration: time, offset: time, offsetEnd: time,
          flags: () => c.rng.pick([0, 64]),
        },
        (x) => {
          const times = ['pts', 'dts', 'duration', 'offset', 'offsetEnd'].every((k) => {
            const v = dataValue(x, k);
            return v === undefined || v === null || typeof v === 'bigint';
          });
          const m = dataValue(x, 'memories');
          try {
            return times && Array.isArray(m) && m.length > 0 && m.every((e) => e instanceof DmaBuf || isPlainObject(e));
          } catch {
            return false; // a revoked Proxy
          }
        },
      );
      return { args: [o], ok: okO && o !== undefined && o !== null };
    },
    async call(c, [o]) {
      const sink = UnixFdSink.listen(c.sockPath(), { caps: 'video/x-raw' });
      try {
        await sink.send(o as never); // no client: back at once
      } finally {
        sink.close();
      }
    },
  },
  {
    name: 'channel.send',
    needsAddon: true,
    input(c) {
      const [buffers, okB] = arg(c, 'any', () => c.rng.pick([[], [c.buf], [c.buf, c.buf]]));
      const payload = c.rng.chance(0.5) ? c.rng.pick([undefined, 1, 'x', { a: [1] }]) : c.rng.pick(HOSTILE)[1]();
      return { args: [buffers, payload], ok: okB && isArrayOf(buffers, (b) => b instanceof DmaBuf), userCode: true };
    },
    async call(_c, [buffers, payload]) {
      const [a, b] = DmaBufChannel.pair();
      try {
        await a.send(buffers as DmaBuf[], payload);
        const m = await b.receive();
        for (const x of m.buffers) x.close();
      } finally {
        a.close();
        b.close();
      }
    },
  },
  {
    name: 'channel.lend',
    needsAddon: true,
    input(c) {
      const [items, okI] = arg(c, 'any', () => c.rng.pick([[], [c.buf], [c.buf, c.buf]]));
      const payload = c.rng.chance(0.5) ? c.rng.pick([undefined, 1, 'x', { a: [1] }]) : c.rng.pick(HOSTILE)[1]();
      // a lease from a pool of the call's own, added to a valid list: it must be back in its pool whatever happens
      return { args: [items, payload, c.rng.chance(0.5)], ok: okI && isArrayOf(items, (b) => b instanceof DmaBuf), userCode: true };
    },
    async call(c, [items, payload, withLease]) {
      const [a, b] = DmaBufChannel.pair();
      const pool = c.heap.createPool({ size: 4096, count: 1 });
      try {
        const list = withLease && isArrayOf(items, (x) => x instanceof DmaBuf) ? [...(items as DmaBuf[]), pool.acquire()] : items;
        const lent = a.lend(list as never, payload);
        // a refused lend rejects before anything arrives; a sent one is released by the receiver
        const result = await Promise.race([lent, b.receive().then((m) => (m.release(), lent))]);
        if (result !== 'released') throw new Error(`lend ended '${result}', not 'released'`);
      } finally {
        a.close();
        b.close();
        const { inUse } = pool.stats();
        pool.close();
        if (inUse !== 0) throw new Error(`a lent lease did not go back to its pool (${inUse} in use)`);
      }
    },
  },
  {
    name: 'spawnWithBuffers',
    runs: 30,
    input(c) {
      const [buffers, okB] = arg(c, 'any', () => c.rng.pick([[], [c.buf]]));
      const o = c.rng.chance(0.7) ? { stdio: 'ignore' } : c.rng.pick(HOSTILE)[1]();
      const okO = o === undefined || (isPlainObject(o) && Object.keys(o).every((k) => k === 'stdio') && [undefined, 'ignore'].includes(dataValue(o, 'stdio') as string));
      return { args: [buffers, o], ok: okB && isArrayOf(buffers, (b) => b instanceof DmaBuf) && okO };
    },
    async call(_c, [buffers, o]) {
      const child = spawnWithBuffers('/bin/true', [], buffers as DmaBuf[], o as never);
      await new Promise((resolve) => {
        child.on('error', resolve);
        child.on('close', resolve);
      });
    },
  },
  {
    name: 'inheritedBuffers',
    needsAddon: true,
    input(c) {
      // a new open of the buffer's memory that no framework's fd table knows: the child's situation
      let fd: number;
      if (c.rng.chance(0.5)) fd = ownFd(c);
      else {
        fd = openSync(`/proc/self/fd/${c.buf.fd}`, 'r+');
        c.mine.set(fd, fdTable().get(fd)!);
      }
      const entry: Record<string, unknown> = { fd, size: c.rng.pick([4096, 8192]), tier: c.rng.pick(['memfd', 'dma-heap', 'floppy']) };
      const pickEnv = c.rng.int(4);
      const text =
        pickEnv === 0
          ? JSON.stringify([entry])
          : pickEnv === 1
            ? c.rng.pick(['', '{', 'null', '[1]', '[{"fd":-1}]', '{"fd":3}', '[{"fd":1e300,"size":4096,"tier":"memfd"}]'])
            : pickEnv === 2
              ? safeJson([{ ...entry, size: c.rng.pick(HOSTILE)[1]() }])
              : JSON.stringify([entry, entry]);
      return { args: [text ?? '[]'], ok: true };
    },
    call(_c, [text]) {
      process.env.DMA_HEAP_FDS = text as string;
      try {
        return inheritedBuffers();
      } finally {
        delete process.env.DMA_HEAP_FDS;
      }
    },
  },
  // Pools (issue 17): every option of every pool function, and what release() is handed
  {
    name: 'heap.createPool',
    input(c) {
      const [o, ok] = opts(
        c,
        { size: 'size', count: 'int', max: 'int', name: 'string', zeroOnRelease: 'bool', cloexec: 'bool' },
        { size: valid.size(c), count: () => c.rng.pick([0, 1, 2]), max: () => c.rng.pick([2, 3]), name: valid.name(c), zeroOnRelease: valid.bool(c), cloexec: valid.bool(c) },
      );
      return { args: [o], ok: ok && o !== undefined && o !== null };
    },
    call: (c, [o]) => c.heap.createPool(o as never),
  },
  {
    name: 'createShareablePool',
    input(c) {
      const [o, ok] = opts(
        c,
        { size: 'size', count: 'int', max: 'int', zeroOnRelease: 'bool', tiers: 'any', requireDmaBuf: 'bool', heap: 'string', cloexec: 'bool' },
        {
          size: valid.size(c),
          count: () => c.rng.pick([0, 1]),
          max: () => 2,
          zeroOnRelease: valid.bool(c),
          tiers: () => c.rng.pick([['memfd'], ['js'], ['memfd', 'js']]),
          requireDmaBuf: () => false,
          heap: () => 'system',
          cloexec: valid.bool(c),
        },
        (x) => dataValue(x, 'tiers') === undefined || isArrayOf(dataValue(x, 'tiers'), (t) => typeof t === 'string'),
      );
      return { args: [o], ok: ok && o !== undefined && o !== null };
    },
    call: (_c, [o]) => createShareablePool(o as never),
  },
  {
    name: 'pool.acquireAsync',
    input(c) {
      const [o, ok] = opts(c, { signal: 'any' }, { signal: () => new AbortController().signal }, (x) => {
        const v = dataValue(x, 'signal');
        return v === undefined || (!types.isProxy(v) && v instanceof AbortSignal);
      });
      return { args: [o], ok };
    },
    async call(c, [o]) {
      using pool = c.heap.createPool({ size: 4096, count: 1 });
      const first = await pool.acquireAsync(o as never);
      first.release();
      expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1, waiting: 0 });
    },
  },
  {
    name: 'pool.release',
    input(c) {
      const [item, ok] = arg(c, 'any', () => c.buf);
      return { args: [item], ok: !types.isProxy(item) && (item instanceof DmaBuf || item instanceof PooledBuffer) };
    },
    call(c, [item]) {
      using pool = c.heap.createPool({ size: 4096, count: 1 });
      const lease = pool.acquire();
      try {
        pool.release(item as DmaBuf);
      } finally {
        lease.release();
      }
    },
  },
  // Fence waits and sync_files (issue 17)
  ...(['idle', 'cpuAccessAsync'] as const).map<Target>((method) => ({
    name: `buf.${method}`,
    input(c) {
      const [access, okA] = arg(c, 'access', () => c.rng.pick(['read', 'write', 'readwrite']), method === 'idle');
      const [o, okO] = opts(
        c,
        { signal: 'any', timeout: 'int' },
        { signal: () => new AbortController().signal, timeout: () => c.rng.pick([0, 10, 2 ** 31, Infinity]) },
        (x) => {
          const v = dataValue(x, 'signal');
          return v === undefined || (!types.isProxy(v) && v instanceof AbortSignal);
        },
      );
      return { args: [access, o], ok: okA && okO };
    },
    call(c, [access, o]) {
      // nothing pending on the fixture: a valid wait resolves at once, whatever its timeout
      if (method === 'idle') return c.buf.idle(access as never, o as never);
      return c.buf.cpuAccessAsync(access as never, () => 1, o as never);
    },
  })),
  {
    name: 'buf.exportSyncFile+importSyncFile',
    input(c) {
      const [exp, okE] = arg(c, 'access', () => c.rng.pick(['read', 'write', 'readwrite']), true);
      const [imp, okI] = arg(c, 'access', () => c.rng.pick(['read', 'write']));
      return { args: [exp, imp], ok: okE && okI };
    },
    call(c, [exp, imp]) {
      using sf = c.buf.exportSyncFile(exp as never);
      c.buf.importSyncFile(sf, imp as never);
    },
  },
  {
    name: 'SyncFile.fromFd',
    input(c) {
      const [fd, okFd] = arg(c, 'fd', () => (c.rng.chance(0.5) ? ownFd(c) : -1));
      const [o, okO] = opts(c, { dup: 'bool', framework: 'any' }, { dup: () => true, framework: () => c.fw }, FW_CLASS);
      return { args: [fd, o], ok: okFd && okO };
    },
    call(c, [fd, o]) {
      // a sync_file of the fixture's framework, half the time, so the success path is fuzzed too
      if (fd === -1) {
        using sf = c.buf.exportSyncFile('read');
        return SyncFile.fromFd(sf.fd, o as never);
      }
      return SyncFile.fromFd(fd as number, o as never);
    },
  },
  {
    name: 'syncFile.wait',
    input(c) {
      const [o, ok] = opts(c, { signal: 'any', timeout: 'int' }, { signal: () => new AbortController().signal, timeout: () => c.rng.pick([0, 2 ** 31, Infinity]) }, (x) => {
        const v = dataValue(x, 'signal');
        return v === undefined || (!types.isProxy(v) && v instanceof AbortSignal);
      });
      return { args: [o], ok };
    },
    async call(c, [o]) {
      using sf = c.buf.exportSyncFile('read');
      await sf.wait(o as never);
    },
  },
  {
    name: 'new SoftwareFenceSource+attach+signalAfter',
    input(c) {
      const [fw, okF] = arg(c, 'any', () => c.fw);
      const [o, okO] = opts(c, { name: 'string', timeout: 'int' }, { name: () => 'fuzz', timeout: () => c.rng.pick([0, 10_000, 2 ** 31]) });
      const [access, okA] = arg(c, 'access', () => c.rng.pick(['read', 'write']));
      const [ms, okM] = arg(c, 'int', () => c.rng.pick([0, 1, 2 ** 31]));
      return { args: [fw, o, access, ms], ok: !types.isProxy(fw) && fw instanceof Framework && okO && okA && okM };
    },
    call(c, [fw, o, access, ms]) {
      const source = new SoftwareFenceSource(fw as Framework, o as never);
      const fence = source.attach(c.buf, access as never);
      try {
        fence.signalAfter(ms as number);
      } finally {
        fence.signal(); // the fixture must be idle for the next input
      }
    },
  },
  {
    name: 'new Framework',
    input(c) {
      const [o, ok] = opts(
        c,
        { profile: 'string', release: 'string', pageSize: 'int', backing: 'string', builtins: 'bool', cma: 'any', protectedHeaps: 'any', memAccounting: 'bool', access: 'any', credentials: 'any' },
        {
          profile: () => c.rng.pick(['mainline', 'v14']),
          release: () => c.rng.pick(['7.3', '6.12', '6.6']),
          protectedHeaps: () => c.rng.pick([['secure-video'], ['trusted-ui', 'secure-video-record'], [], ['secure-video', 'secure-video'], ['tui']]),
          memAccounting: valid.bool(c),
          pageSize: () => c.rng.pick([4096, 16384, 4095]),
          backing: () => c.rng.pick(withAddon ? ['memfd', 'js'] : ['js']),
          builtins: valid.bool(c),
          cma: () => c.rng.pick([{ size: c.rng.pick([0, 1 << 20]) }, { size: 1 << 20, regions: [{ name: 'video-memory', size: 1 << 20 }] }, { regions: [{ name: 'a/b', size: 1 << 20 }] }]),
          access: () => c.rng.pick(['allow', 'deny']),
        },
        (x) => {
          if (!['cma', 'credentials'].every((k) => dataValue(x, k) === undefined || isPlainObject(dataValue(x, k)))) return false;
          const release = dataValue(x, 'release');
          if (release !== undefined && release !== '7.3' && release !== '6.12') return false;
          const regions = dataValue(dataValue(x, 'cma'), 'regions') as Array<{ name: string }> | undefined;
          if (regions !== undefined && regions.some((r) => r.name.includes('/'))) return false;
          const ids = dataValue(x, 'protectedHeaps');
          if (ids !== undefined && (!Array.isArray(ids) || types.isProxy(ids) || ids.some((id, i) => !['secure-video', 'trusted-ui', 'secure-video-record'].includes(id) || ids.indexOf(id) !== i))) return false;
          // the 7.3 heaps' options on an older kernel (or the v14 ABI) are refused
          const older = release === '6.12' || dataValue(x, 'profile') === 'v14';
          const asksIds = Array.isArray(ids) && ids.length > 0;
          if ((regions !== undefined || asksIds) && dataValue(x, 'builtins') === false) return false;
          // asking for the 7.3 heaps on an older kernel is refused; false and [] describe it too
          return !older || (regions === undefined && !asksIds && dataValue(x, 'memAccounting') !== true);
        },
      );
      return { args: [o], ok };
    },
    call(_c, [o]) {
      const fw = new Framework(o as never);
      fw.dispose();
    },
  },
  {
    name: 'framework.faults.failAllocation',
    input(c) {
      const [o, ok] = opts(
        c,
        { nth: 'int', every: 'bool', code: 'string', heap: 'string' },
        { nth: () => c.rng.pick([1, 2, 0]), every: valid.bool(c), code: () => c.rng.pick(['ENOMEM', 'EIO', 'EBOGUS']), heap: () => 'system' },
        (x) => dataValue(x, 'nth') !== undefined || !!Object.getOwnPropertyDescriptor(x, 'nth')?.get,
      );
      return { args: [o], ok: ok && o !== undefined && o !== null };
    },
    call(c, [o]) {
      const remove = c.fw.faults.failAllocation(o as never);
      remove();
    },
  },
];

/** Close whatever a call returned (buffers, heaps, channels, servers, arrays of them). */
async function release(r: unknown): Promise<void> {
  if (Array.isArray(r)) {
    for (const x of r) await release(x);
    return;
  }
  if (r instanceof DmaBuf || r instanceof Heap || r instanceof DmaBufChannel || r instanceof BufferPool || r instanceof SyncFile || r instanceof UnixFdSource || r instanceof UnixFdSink || r instanceof HeapWatcher) r.close();
  else if (r instanceof DmaBufServer) {
    r.close();
  }
}

interface Finding {
  target: string;
  args: string;
  problem: string;
}

const inputsTried: Record<string, number> = {};

describe(`fuzz of the public API (${LABEL}, seed ${SEED})`, () => {
  const home = process.cwd();
  let dir: string;
  beforeAll(() => {
    // eslint-disable-next-line no-console
    console.log(`adversarial fuzz seed ${SEED} (${LABEL}): replay with DMA_HEAP_FUZZ_SEED=${SEED}`);
    dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-fuzz-'));
    // A path cut short at a NUL lands relative to the cwd: keep that inside dir too.
    process.chdir(dir);
    // libuv opens one inotify fd per event loop at the first fs.watch and keeps it until the
    // loop ends: the runtime's, not a watcher's. Opened here, it is in every input's baseline.
    watch(dir).close();
  });
  afterAll(() => {
    process.chdir(home);
    const left = readdirSync(dir);
    rmSync(dir, { recursive: true, force: true });
    const out = path.join(home, '.test-results');
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, `adversarial-fuzz-${LABEL}.json`), JSON.stringify({ seed: SEED, runs: RUNS, inputsTried }, null, 2));
    expect(left).toEqual([]); // no socket file left behind
  });

  test.each(TARGETS.map((t) => [t.name, t] as const))('%s', async (_name, target) => {
    if (target.needsAddon && !withAddon) {
      // without the addon these refuse everything (ERR_DMA_HEAP_NO_ADDON): still fuzzed below
    }
    const rng = new Rng((SEED ^ hash(target.name)) >>> 0);
    const fw = new Framework({ cma: { size: 1 << 20 } });
    const heap = openHeap('system', { framework: fw });
    const buf = heap.alloc(8192);
    buf.map(); // the fixture's own mapping exists from the start (cpuAccess and map() keep it)
    let n = 0;
    const ctx: Ctx = {
      rng,
      fw,
      heap,
      buf,
      dir,
      mine: new Map(),
      sockPath: () => path.join(dir, `s${n++}.sock`),
    };
    target.warm?.();
    const findings: Finding[] = [];
    const runs = target.runs ?? RUNS;
    for (let i = 0; i < runs; i++) {
      const before = holdings();
      const fwFds = fw.kernel.fds().length;
      ctx.mine = new Map();
      const input = target.input(ctx);
      const shown = input.args.map(show).join(', ');
      let result: unknown;
      let thrown: unknown;
      let threw = false;
      try {
        result = await target.call(ctx, input.args);
      } catch (err) {
        threw = true;
        thrown = err;
      }
      try {
        await release(result);
      } catch (err) {
        findings.push({ target: target.name, args: shown, problem: `closing the result failed: ${(err as Error).message}` });
      }
      const problem = judge(input, threw, thrown, !withAddon && !!target.needsAddon);
      if (problem) findings.push({ target: target.name, args: shown, problem });
      // The caller's own fds: still open and still what they were, unless the call adopted them
      for (const [fd, target0] of ctx.mine) {
        const now = fdTable().get(fd);
        if (now === target0) closeSync(fd);
      }
      const leak = leaked(before);
      if (leak) findings.push({ target: target.name, args: shown, problem: `leaked: ${leak}` });
      if (fw.kernel.fds().length !== fwFds) findings.push({ target: target.name, args: shown, problem: `software framework holds ${fw.kernel.fds().length - fwFds} more fd(s)` });
      if (buf.closed || buf.read(0, 1).length !== 1) {
        findings.push({ target: target.name, args: shown, problem: 'the fixture buffer was broken' });
        break;
      }
      // the heap must stay usable: nothing half-made keeps a charge or an fd
      try {
        heap.alloc(4096).close();
      } catch (err) {
        findings.push({ target: target.name, args: shown, problem: `the heap is broken afterwards: ${(err as Error).message}` });
        break;
      }
    }
    inputsTried[target.name] = runs;
    buf.close();
    heap.close();
    fw.dispose();
    if (findings.length) {
      const unique = new Map(findings.map((f) => [`${f.problem.replace(/\d+/g, 'N')}`, f]));
      throw new Error(
        `seed ${SEED}: ${findings.length} finding(s) in ${runs} inputs, ${unique.size} distinct:\n` +
          [...unique.values()].slice(0, 12).map((f) => `  ${f.target}(${f.args}): ${f.problem}`).join('\n'),
      );
    }
  });
});

function judge(input: Input, threw: boolean, err: unknown, noAddon: boolean): string | undefined {
  if (!threw) return input.ok ? undefined : 'accepted an argument of the wrong type';
  if (input.mustSucceed && !(noAddon && (err as { code?: unknown })?.code === 'ERR_DMA_HEAP_NO_ADDON')) {
    return `refused valid arguments: ${(err as Error)?.message}`;
  }
  if (err instanceof GetterSentinel) return undefined; // the caller's getter or trap threw: theirs to see
  if (err instanceof ToStringSentinel && input.userCode) return undefined;
  const typed = typedProblem(err);
  if (typed) return `${typed}${err instanceof Error && err.stack ? `\n      at ${err.stack.split('\n').slice(1, 3).join(' | ').trim()}` : ''}`;
  const code = (err as { code: string }).code;
  if (!input.ok && !ARG_CODES.has(code) && !(noAddon && code === 'ERR_DMA_HEAP_NO_ADDON')) {
    return `an argument of the wrong type was refused with ${code} (${(err as Error).message}), not a Node argument error`;
  }
  return undefined;
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x)) ?? '[]';
  } catch {
    return '[{"fd":3}]';
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
