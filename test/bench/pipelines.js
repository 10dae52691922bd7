#!/usr/bin/env node
// `npm run bench:pipelines`: GStreamer's unixfd protocol, Node against C, one run on this machine.
// Speed is measured and printed, never asserted: this exits 0 whatever the numbers are.
//
//   node test/bench/pipelines.js [--frames-small 5000] [--frames-large 1000] [--quick]
//                                [--only stream,ring] [--steps] [--profile DIR] [--json FILE] [--timeout 180]
//
// 1. stream: `videotestsrc is-live=false num-buffers=N pattern=solid-color ! RGBA WxH !
//    unixfdsink wait-for-connection=true` (GStreamer 1.26 in the cached trixie root,
//    test/gstreamer/root.js; needs root for chroot) into three consumers of the same stream, one
//    after another: Node (UnixFdSource in a child process: receive, buffer.bytes() per memory,
//    read one byte per page inside [offset, offset+size), release), C (test/bench/unixfd_client.c,
//    built by the bench into a temp dir: the same work with recvmsg/mmap/munmap/close/sendmsg),
//    and GStreamer (`unixfdsrc ! fakesink sync=false`, which maps nothing). At 64x48 and
//    1920x1080. Consumer CPU (user+sys of its process) per frame, frames per second, ratios.
// 2. ring: a producer lends a pool of 4 memfds, one at a time, to a consumer that maps, reads
//    one byte per page and releases: UnixFdSink + UnixFdSource in two Node processes against one
//    C program forking the same two sides over the same protocol. Both sides' CPU per frame.
//    Where the package has DmaBufChannel.lend(), the same ring over it (two Node processes) too.
// --steps adds a run of the Node consumer timing each step (process.cpuUsage() around receive,
// map, touch, release); --profile DIR one under --cpu-prof, its top functions printed.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const SECTIONS = ['stream', 'ring'];
const POOL = 4;
/** the stream sizes: [name, width, height] (RGBA) */
const STREAMS = [
  ['64x48', 64, 48],
  ['1920x1080', 1920, 1080],
];

function die(msg) {
  process.stderr.write(`dma-heap bench:pipelines: ${msg}\n`);
  process.exit(1);
}

/** the comment at the top, for --help: every line before 'use strict' */
const HEADER_LINES = fs.readFileSync(__filename, 'utf8').split('\n').indexOf("'use strict';");

function parseArgs(argv) {
  const o = { timeout: 180, framesSmall: 5000, framesLarge: 1000, warmupFrac: 0.1, only: new Set(SECTIONS), steps: false, profile: null, json: null, mode: 'main' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i] ?? die(`${a} needs a value`);
    if (a === '--frames-small') o.framesSmall = Number(v());
    else if (a === '--frames-large') o.framesLarge = Number(v());
    else if (a === '--quick') Object.assign(o, { framesSmall: 2000, framesLarge: 150 });
    else if (a === '--only') {
      o.only = new Set(v().split(','));
      for (const x of o.only) if (!SECTIONS.includes(x)) die(`--only takes ${SECTIONS.join(', ')}; not ${x}`);
    } else if (a === '--steps') o.steps = true;
    else if (a === '--timeout') o.timeout = Number(v());
    else if (a === '--profile') o.profile = path.resolve(v());
    else if (a === '--json') o.json = path.resolve(v());
    // internal: the child processes
    else if (a === '--child') o.mode = v();
    else if (a === '--socket') o.socket = v();
    else if (a === '--warmup') o.warmup = Number(v());
    else if (a === '--frames') o.frames = Number(v());
    else if (a === '--size') o.size = Number(v());
    else if (a === '-h' || a === '--help') {
      console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, HEADER_LINES).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
      process.exit(0);
    } else die(`unknown option ${a}`);
  }
  return o;
}

function loadPackage() {
  const dist = path.join(ROOT, 'dist', 'index.js');
  if (!fs.existsSync(dist)) die('dist/ is missing: run `npm run build` first (npm run bench:pipelines does)');
  return require(dist);
}

// ---- the children ----

/** the page-aligned offsets inside [offset, offset+size): one byte read at each */
function touch(view, offset, size) {
  let sum = 0;
  let pages = 0;
  for (let at = Math.ceil(offset / PAGE) * PAGE; at < offset + size; at += PAGE, pages++) sum += view[at];
  return [sum, pages];
}
const PAGE = 4096;

const cpuNow = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

/**
 * The Node consumer: UnixFdSource, per frame receive, map every memory, touch, release. CPU and
 * wall from the end of frame `warmup` to EOS (or to the sink going away: gst-launch exits at EOS
 * without waiting for releases, and a failed release ends the connection; the C client stops
 * there too). With --steps, each step's CPU per frame.
 */
async function childConsumer(o) {
  const { UnixFdSource } = loadPackage();
  const source = UnixFdSource.connect(o.socket);
  const steps = o.steps ? { receive: 0, map: 0, touch: 0, release: 0 } : null;
  let frames = 0;
  let pages = 0;
  let sum = 0;
  let end = 'EOS';
  let cpu0 = cpuNow();
  let wall0 = process.hrtime.bigint();
  for (;;) {
    let t0 = 0;
    if (steps) t0 = cpuNow();
    let f;
    try {
      f = await source.receive();
    } catch (err) {
      if (err.code !== 'ERR_DMA_HEAP_CHANNEL_CLOSED') throw err;
      end = 'peer gone';
      break;
    }
    if (f === null) break;
    if (steps) {
      const t1 = cpuNow();
      const views = f.memories.map((x) => x.buffer.bytes());
      const t2 = cpuNow();
      for (let i = 0; i < views.length; i++) {
        const [s, p] = touch(views[i], f.memories[i].offset, f.memories[i].size);
        sum += s;
        pages += p;
      }
      const t3 = cpuNow();
      f.release(); // closes the memories: unmapped here
      const t4 = cpuNow();
      if (frames >= o.warmup) {
        steps.receive += t1 - t0;
        steps.map += t2 - t1;
        steps.touch += t3 - t2;
        steps.release += t4 - t3;
      }
    } else {
      const ms = f.memories;
      for (let i = 0; i < ms.length; i++) {
        const [s, p] = touch(ms[i].buffer.bytes(), ms[i].offset, ms[i].size);
        sum += s;
        pages += p;
      }
      f.release();
    }
    if (source.closed) {
      end = 'peer gone'; // the release found the sink gone: this frame is not counted
      break;
    }
    if (++frames === o.warmup) {
      cpu0 = cpuNow();
      wall0 = process.hrtime.bigint();
    }
  }
  const cpuUs = cpuNow() - cpu0;
  const wallUs = Number(process.hrtime.bigint() - wall0) / 1e3;
  source.close();
  console.log(JSON.stringify({ side: 'consumer', frames, counted: frames - o.warmup, cpuUs, wallUs, pagesTouched: pages, sum, end, map: 'bytes()', steps }));
}

/** The Node producer of the ring: UnixFdSink lending a pool of 4 memfds, one frame at a time. */
async function childProducer(o) {
  const { UnixFdSink, createShareablePool } = loadPackage();
  const pool = createShareablePool({ size: o.size, count: POOL, max: POOL, tiers: ['memfd'] });
  const sink = UnixFdSink.listen(o.socket, { caps: 'video/x-raw,format=RGBA' });
  const connected = new Promise((r) => sink.once('connection', r));
  console.log('LISTENING');
  await connected;
  const out = new Set();
  let cpu0 = cpuNow();
  for (let n = 0; n < o.frames; n++) {
    const lease = await pool.acquireAsync();
    if (n === o.warmup) cpu0 = cpuNow();
    const back = sink.send({ memories: [lease] });
    out.add(back);
    back.then(() => out.delete(back));
  }
  await Promise.all(out);
  sink.eos();
  const cpuUs = cpuNow() - cpu0;
  console.log(JSON.stringify({ side: 'producer', frames: o.frames, counted: o.frames - o.warmup, cpuUs }));
  await new Promise((r) => (sink.clients ? sink.once('disconnect', r) : r()));
  sink.close();
  pool.close();
}

/** The ring over DmaBufChannel.lend() (when the package has it): producer lends pool leases. */
async function childLendProducer(o) {
  const { DmaBufChannel, createShareablePool } = loadPackage();
  const pool = createShareablePool({ size: o.size, count: POOL, max: POOL, tiers: ['memfd'] });
  const server = DmaBufChannel.listen(o.socket);
  const connected = new Promise((r) => server.once('connection', r));
  console.log('LISTENING');
  const channel = await connected;
  const out = new Set();
  let cpu0 = cpuNow();
  for (let n = 0; n < o.frames; n++) {
    const lease = await pool.acquireAsync();
    if (n === o.warmup) cpu0 = cpuNow();
    const back = channel.lend([lease]);
    out.add(back);
    back.then(() => out.delete(back));
  }
  await Promise.all(out);
  await channel.send([], { eos: true });
  const cpuUs = cpuNow() - cpu0;
  console.log(JSON.stringify({ side: 'producer', frames: o.frames, counted: o.frames - o.warmup, cpuUs }));
  channel.close(); // the eos message is in the consumer's socket already
  server.close();
  pool.close();
}

async function childLendConsumer(o) {
  const { DmaBufChannel } = loadPackage();
  const channel = DmaBufChannel.connect(o.socket);
  let frames = 0;
  let pages = 0;
  let sum = 0;
  let cpu0 = cpuNow();
  let wall0 = process.hrtime.bigint();
  for (;;) {
    const msg = await channel.receive();
    if (msg.payload && msg.payload.eos) break;
    for (const b of msg.buffers) {
      const [s, p] = touch(b.bytes(), 0, b.size);
      sum += s;
      pages += p;
    }
    msg.release();
    if (++frames === o.warmup) {
      cpu0 = cpuNow();
      wall0 = process.hrtime.bigint();
    }
  }
  const cpuUs = cpuNow() - cpu0;
  const wallUs = Number(process.hrtime.bigint() - wall0) / 1e3;
  channel.close();
  console.log(JSON.stringify({ side: 'consumer', frames, counted: frames - o.warmup, cpuUs, wallUs, pagesTouched: pages, sum, end: 'EOS' }));
}

// ---- the orchestra ----

function buildClient() {
  const cc = process.env.CC || 'cc';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-unixfd-'));
  const out = path.join(dir, 'unixfd_client');
  const args = ['-std=c11', '-O2', '-Wall', '-o', out, path.join(__dirname, 'unixfd_client.c')];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) die(`building test/bench/unixfd_client.c failed (${cc} ${args.join(' ')}):\n${r.stderr || r.error}`);
  return { file: out, dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

const running = new Set();
function killAll() {
  for (const c of running) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
process.on('exit', killAll);

/**
 * A run's promise, or an error after `ms`, its processes killed: GStreamer 1.26.2's unixfdsink
 * and unixfdsrc can deadlock each other (each blocked sending, the sink's release reader waiting
 * on its lock) once a few hundred buffers are out; seen at 20,000 64x48 frames.
 */
async function withTimeout(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => {
      killAll();
      reject(new Error(`${what}: no end after ${ms / 1000} s (killed)`));
    }, ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** a child run to its end: its stdout lines, stderr, exit code */
function run(file, args, opts = {}) {
  // its own process group: a run that hangs is killed with everything it started (chroot, gst-launch)
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...opts });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let out = '';
  let err = '';
  const lines = [];
  const waiters = [];
  child.stdout.on('data', (b) => {
    out += b;
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      lines.push(out.slice(0, i));
      out = out.slice(i + 1);
      for (const w of waiters.splice(0)) w();
    }
  });
  child.stderr.on('data', (b) => (err += b));
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code: code ?? signal, lines, stderr: err })));
  /** resolves once a line matching `re` was printed */
  const line = async (re, ms = 30000) => {
    const end = Date.now() + ms;
    for (;;) {
      const l = lines.find((x) => re.test(x));
      if (l) return l;
      if (child.exitCode !== null || Date.now() > end) throw new Error(`${path.basename(file)} ${args.join(' ')}: no line ${re}; stderr: ${err}`);
      await new Promise((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
  };
  return { child, done, line };
}

async function until(cond, what, ms = 30000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const lastJson = (lines, re = /^\{/) => JSON.parse(lines.filter((l) => re.test(l)).pop() ?? 'null');
const rusage = (lines) => {
  const l = lines.find((x) => x.startsWith('RUSAGE '));
  if (!l) return null;
  const r = JSON.parse(l.slice(7));
  return { cpuUs: r.userUs + r.sysUs, wallUs: r.wallUs, status: r.status };
};

function check(res, what) {
  if (res.code !== 0) throw new Error(`${what} exited with ${res.code}:\n${res.stderr.slice(-2000)}`);
  return res;
}

/** the node flags of a child: --cpu-prof into `prof` when profiling */
function nodeArgs(prof) {
  return prof ? ['--cpu-prof', '--cpu-prof-dir', prof, '--cpu-prof-interval', '100'] : [];
}

/**
 * One consumer of `videotestsrc ! unixfdsink`: the producer pipeline started (under the
 * client's rusage wrapper), then the consumer. kind: node | c | gst.
 */
async function streamRun(env, stream, frames, warmup, kind, extra = {}) {
  const { gstSocketDir, gstEnv } = env.gst;
  const [, w, h] = stream;
  const dir = gstSocketDir(env.root, 's.sock');
  try {
    const producer = run(env.client.file, ['rusage', '/usr/sbin/chroot', env.root, 'gst-launch-1.0', '-q',
      'videotestsrc', 'is-live=false', `num-buffers=${frames}`, 'pattern=solid-color', 'foreground-color=0xff112233',
      '!', `video/x-raw,format=RGBA,width=${w},height=${h},framerate=30/1`,
      '!', 'unixfdsink', 'sync=false', 'wait-for-connection=true', `socket-path=${dir.insideSocket}`], { env: gstEnv() });
    await until(() => fs.existsSync(dir.hostSocket) || producer.child.exitCode !== null, 'the unixfdsink socket');
    let consumer;
    if (kind === 'node') {
      consumer = run(process.execPath, [...nodeArgs(extra.profile), __filename, '--child', 'consumer', '--socket', dir.hostSocket, '--warmup', String(warmup), ...(extra.steps ? ['--steps'] : [])]);
    } else if (kind === 'c') {
      consumer = run(env.client.file, ['client', dir.hostSocket, String(warmup)]);
    } else {
      consumer = run(env.client.file, ['rusage', '/usr/sbin/chroot', env.root, 'gst-launch-1.0', '-q',
        'unixfdsrc', `socket-path=${dir.insideSocket}`, '!', 'fakesink', 'sync=false'], { env: gstEnv() });
    }
    const [p, c] = await withTimeout(Promise.all([producer.done, consumer.done]), env.timeoutMs, `stream ${stream[0]}, ${kind} consumer`);
    const pr = rusage(p.lines);
    if (!pr || pr.status !== 0) throw new Error(`the producer pipeline failed (${pr ? pr.status : p.code}):\n${p.stderr.slice(-2000)}`);
    check(c, `the ${kind} consumer`);
    if (kind === 'gst') {
      const r = rusage(c.lines);
      if (!r || r.status !== 0) throw new Error(`the unixfdsrc pipeline failed:\n${c.stderr.slice(-2000)}`);
      return { frames, cpuUs: r.cpuUs, wallUs: r.wallUs, producerCpuUs: pr.cpuUs };
    }
    return { ...lastJson(c.lines), producerCpuUs: pr.cpuUs };
  } finally {
    fs.rmSync(dir.host, { recursive: true, force: true });
  }
}

/** the ring, Node: UnixFdSink child + UnixFdSource child over a socket in the temp dir */
async function ringNode(env, size, frames, warmup, extra = {}) {
  const sock = path.join(env.client.dir, `ring-${process.pid}-${size}.sock`);
  fs.rmSync(sock, { force: true });
  const lend = extra.lend ? 'lend-' : '';
  const producer = run(process.execPath, [...nodeArgs(extra.profile), __filename, '--child', `${lend}producer`, '--socket', sock, '--frames', String(frames), '--size', String(size), '--warmup', String(warmup)]);
  await producer.line(/^LISTENING$/);
  const consumer = run(process.execPath, [...nodeArgs(extra.profile), __filename, '--child', `${lend}consumer`, '--socket', sock, '--warmup', String(warmup), ...(extra.steps ? ['--steps'] : [])]);
  const [p, c] = await withTimeout(Promise.all([producer.done, consumer.done]), env.timeoutMs, `ring ${size}, ${lend || 'unixfd '}Node`);
  check(p, 'the Node producer');
  check(c, 'the Node consumer');
  return { producer: lastJson(p.lines), consumer: lastJson(c.lines) };
}

async function ringC(env, size, frames, warmup) {
  const r = check(await run(env.client.file, ['ring', String(frames), String(size), String(warmup)]).done, 'the C ring');
  return { producer: lastJson(r.lines, /"side":"producer"/), consumer: lastJson(r.lines, /"side":"consumer"/) };
}

const perFrame = (x) => x.cpuUs / x.counted;
const fmt = (v, d = 1) => (v === undefined || v === null || Number.isNaN(v) ? '–' : v.toFixed(d));

/** the top functions of the .cpuprofile files written since `since`: self time, and inclusive time of the package's */
function summarizeProfiles(dir, since) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).mtimeMs >= since);
  const self = new Map();
  const incl = new Map();
  let total = 0;
  for (const f of files) {
    const p = JSON.parse(fs.readFileSync(f, 'utf8'));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of p.nodes) for (const c of n.children || []) parent.set(c, n.id);
    const key = (n) => {
      const cf = n.callFrame;
      const file = cf.url ? path.relative(ROOT, cf.url.replace(/^file:\/\//, '')) : '';
      return `${cf.functionName || '(anonymous)'} ${file}${file ? `:${cf.lineNumber + 1}` : ''}`;
    };
    for (let i = 0; i < p.samples.length; i++) {
      const dt = p.timeDeltas[i + 1] ?? 0;
      let n = byId.get(p.samples[i]);
      if (!n) continue;
      total += dt;
      self.set(key(n), (self.get(key(n)) || 0) + dt);
      const seen = new Set();
      for (; n; n = byId.get(parent.get(n.id))) {
        const k = key(n);
        if (seen.has(k)) continue;
        seen.add(k);
        incl.set(k, (incl.get(k) || 0) + dt);
      }
    }
  }
  const top = (m, filter = () => true) => [...m].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, us]) => ({ fn: k, pct: +((100 * us) / total).toFixed(1) }));
  return { files: files.length, totalMs: +(total / 1000).toFixed(1), self: top(self), inclusive: top(incl, (k) => / dist\//.test(k)) };
}

async function main(o) {
  if (o.only.has('stream') && (!process.getuid || process.getuid() !== 0)) die('the stream section runs gst-launch-1.0 in a chroot: run as root, or --only ring');
  const { addonStatus } = loadPackage();
  if (!addonStatus().loaded) die('passing fds needs the native addon (npm run build:native)');
  const gst = require(path.join(ROOT, 'test', 'gstreamer', 'root.js'));
  const root = o.only.has('stream') ? gst.cachedGstRoot() : null;
  if (o.only.has('stream') && !root) die('no GStreamer root is built: node test/gstreamer/root.js builds it (about 20 s)');
  const client = buildClient();
  const env = { gst, root, client, timeoutMs: o.timeout * 1000 };
  const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');
  const r = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, kernel: os.release(), node: process.version, gstreamer: root ? gst.gstRootInfo(root).gstreamer : null, loadBefore: load() },
    frames: { small: o.framesSmall, large: o.framesLarge, warmupFrac: o.warmupFrac },
    stream: [],
    ring: [],
    steps: [],
    profiles: [],
  };
  console.log(`pipelines bench: ${r.machine.cpus} CPUs (${r.machine.model}), Linux ${r.machine.kernel}, Node ${process.version}${root ? `, GStreamer ${r.machine.gstreamer}` : ''}; load ${r.machine.loadBefore}`);
  try {
    const cells = STREAMS.map((s) => ({ s, frames: s[1] * s[2] > 1e5 ? o.framesLarge : o.framesSmall }));
    if (o.only.has('stream')) {
      for (const { s, frames } of cells) {
        const warmup = Math.round(frames * o.warmupFrac);
        process.stdout.write(`\nstream ${s[0]} RGBA, ${frames} frames (${warmup} warm-up): `);
        const node = await streamRun(env, s, frames, warmup, 'node');
        process.stdout.write('node ');
        const c = await streamRun(env, s, frames, warmup, 'c');
        process.stdout.write('c ');
        let g;
        let g0;
        let gstError = null;
        try {
          g = await streamRun(env, s, frames, warmup, 'gst');
          // the same pipelines with only the warm-up's frames: start-up, negotiation, teardown
          g0 = await streamRun(env, s, warmup, warmup, 'gst');
        } catch (err) {
          gstError = err.message;
          g = g0 = { cpuUs: NaN, wallUs: NaN, producerCpuUs: NaN };
        }
        process.stdout.write('gst\n');
        const counted = frames - warmup;
        const cell = {
          stream: s[0], width: s[1], height: s[2], frameBytes: s[1] * s[2] * 4, frames, warmup, counted,
          node: { cpuUsPerFrame: perFrame(node), fps: (node.counted * 1e6) / node.wallUs, pagesPerFrame: node.pagesTouched / node.frames, producerCpuUsPerFrame: node.producerCpuUs / frames, consumed: node.frames, end: node.end, map: node.map },
          c: { cpuUsPerFrame: perFrame(c), fps: (c.counted * 1e6) / c.wallUs, pagesPerFrame: c.pagesTouched / c.frames, producerCpuUsPerFrame: c.producerCpuUs / frames, consumed: c.frames, end: c.end },
          gst: {
            cpuUsPerFrameGross: g.cpuUs / frames,
            cpuUsPerFrame: (g.cpuUs - g0.cpuUs) / counted,
            fps: (counted * 1e6) / (g.wallUs - g0.wallUs),
            startupCpuUs: g0.cpuUs,
            producerCpuUsPerFrame: g.producerCpuUs / frames,
            error: gstError,
          },
        };
        cell.nodeOverC = cell.node.cpuUsPerFrame / cell.c.cpuUsPerFrame;
        cell.gstOverC = cell.gst.cpuUsPerFrame / cell.c.cpuUsPerFrame;
        r.stream.push(cell);
        if (o.steps) {
          const st = await streamRun(env, s, frames, warmup, 'node', { steps: true });
          r.steps.push({ where: `stream ${s[0]}`, cpuUsPerFrame: perFrame(st), ...Object.fromEntries(Object.entries(st.steps).map(([k, v]) => [k, v / st.counted])) });
        }
        if (o.profile) {
          fs.mkdirSync(o.profile, { recursive: true });
          const since = Date.now();
          await streamRun(env, s, frames, warmup, 'node', { profile: o.profile });
          r.profiles.push({ where: `stream ${s[0]}`, ...summarizeProfiles(o.profile, since) });
        }
      }
    }
    if (o.only.has('ring')) {
      for (const { s, frames } of cells) {
        const size = s[1] * s[2] * 4;
        const warmup = Math.round(frames * o.warmupFrac);
        process.stdout.write(`\nring ${size} bytes (${s[0]} RGBA), ${frames} frames: `);
        const node = await ringNode(env, size, frames, warmup);
        process.stdout.write('node ');
        const hasLend = typeof loadPackage().DmaBufChannel?.prototype?.lend === 'function';
        const lent = hasLend ? await ringNode(env, size, frames, warmup, { lend: true }) : null;
        if (hasLend) process.stdout.write('lend ');
        const c = await ringC(env, size, frames, warmup);
        process.stdout.write('c\n');
        const side = (x) => ({ producer: perFrame(x.producer), consumer: perFrame(x.consumer), total: perFrame(x.producer) + perFrame(x.consumer), fps: (x.consumer.counted * 1e6) / x.consumer.wallUs });
        const cell = { size, stream: s[0], frames, warmup, node: side(node), c: side(c), lend: lent ? side(lent) : null };
        cell.nodeOverC = cell.node.total / cell.c.total;
        cell.consumerNodeOverC = cell.node.consumer / cell.c.consumer;
        cell.producerNodeOverC = cell.node.producer / cell.c.producer;
        if (lent) cell.lendOverC = cell.lend.total / cell.c.total;
        r.ring.push(cell);
        if (o.steps) {
          const st = await ringNode(env, size, frames, warmup, { steps: true });
          r.steps.push({ where: `ring ${s[0]}`, cpuUsPerFrame: perFrame(st.consumer), ...Object.fromEntries(Object.entries(st.consumer.steps).map(([k, v]) => [k, v / st.consumer.counted])) });
        }
        if (o.profile) {
          fs.mkdirSync(o.profile, { recursive: true });
          const since = Date.now();
          await ringNode(env, size, frames, warmup, { profile: o.profile });
          r.profiles.push({ where: `ring ${s[0]} (producer and consumer)`, ...summarizeProfiles(o.profile, since) });
        }
      }
    }
  } finally {
    client.cleanup();
  }
  r.machine.loadAfter = load();
  report(r);
  if (o.json) {
    fs.mkdirSync(path.dirname(o.json), { recursive: true });
    fs.writeFileSync(o.json, JSON.stringify(r, null, 2) + '\n');
    console.log(`\nwrote ${o.json}`);
  }
}

function report(r) {
  if (r.stream.length) {
    console.log('\nGStreamer -> consumer (videotestsrc RGBA solid-color ! unixfdsink; memfds, memory type shm)');
    console.log('  consumer CPU = user+sys of the consumer process per frame, frames after the warm-up;');
    console.log('  GStreamer = unixfdsrc ! fakesink sync=false (maps nothing), its gst-launch process, minus a run of the warm-up frames only');
    console.log(`  ${'stream'.padEnd(10)} ${'consumer'.padEnd(10)} ${'fps'.padStart(8)} ${'CPU µs/frame'.padStart(13)}  ${'producer µs/frame'.padStart(18)}`);
    for (const c of r.stream) {
      const row = (name, x, note = '') => console.log(`  ${c.stream.padEnd(10)} ${name.padEnd(10)} ${fmt(x.fps, 0).padStart(8)} ${fmt(x.cpuUsPerFrame).padStart(13)}  ${fmt(x.producerCpuUsPerFrame).padStart(18)}${note}`);
      row('Node', c.node, `   (${c.node.consumed} frames to ${c.node.end}; ${fmt(c.node.pagesPerFrame)} pages/frame; map: ${c.node.map})`);
      row('C', c.c, `   (${c.c.consumed} frames to ${c.c.end}; ${fmt(c.c.pagesPerFrame)} pages/frame)`);
      if (c.gst.error) console.log(`  ${c.stream.padEnd(10)} GStreamer: ${c.gst.error}`);
      row('GStreamer', c.gst, `   (gross, with start-up: ${fmt(c.gst.cpuUsPerFrameGross)} µs/frame; start-up run ${fmt(c.gst.startupCpuUs / 1000)} ms)`);
      console.log(`  ${c.stream.padEnd(10)} Node/C ${fmt(c.nodeOverC, 2)}× (target ≤ 1.2×: ${c.nodeOverC <= 1.2 ? 'met' : `NOT met, by ${fmt((c.nodeOverC / 1.2 - 1) * 100, 0)}%`}), GStreamer/C ${fmt(c.gstOverC, 2)}×`);
    }
  }
  if (r.ring.length) {
    console.log(`\nring: a pool of ${POOL} memfds lent one at a time, consumer maps, reads a byte per page, releases; CPU of both processes per frame`);
    console.log(`  ${'size'.padEnd(18)} ${'side'.padEnd(6)} ${'fps'.padStart(8)} ${'producer µs'.padStart(12)} ${'consumer µs'.padStart(12)} ${'total µs'.padStart(10)}`);
    for (const c of r.ring) {
      const row = (name, x) => console.log(`  ${`${c.size} (${c.stream})`.padEnd(18)} ${name.padEnd(6)} ${fmt(x.fps, 0).padStart(8)} ${fmt(x.producer).padStart(12)} ${fmt(x.consumer).padStart(12)} ${fmt(x.total).padStart(10)}`);
      row('Node', c.node);
      if (c.lend) row('lend', c.lend);
      row('C', c.c);
      if (c.lend) console.log(`  ${`${c.size} (${c.stream})`.padEnd(18)} lend/C ${fmt(c.lendOverC, 2)}× (DmaBufChannel.lend() between two Node processes, default channel type)`);
      console.log(`  ${`${c.size} (${c.stream})`.padEnd(18)} Node/C ${fmt(c.nodeOverC, 2)}× (target ≤ 1.5×: ${c.nodeOverC <= 1.5 ? 'met' : `NOT met, by ${fmt((c.nodeOverC / 1.5 - 1) * 100, 0)}%`}); producer ${fmt(c.producerNodeOverC, 2)}×, consumer ${fmt(c.consumerNodeOverC, 2)}×`);
    }
    if (!r.ring[0].lend) console.log('  (no DmaBufChannel.prototype.lend in this tree: not measured)');
  }
  if (r.steps.length) {
    console.log('\nNode consumer per step (--steps: process.cpuUsage() around each, a separate run; µs CPU per frame)');
    for (const s of r.steps) {
      console.log(`  ${s.where.padEnd(18)} all ${fmt(s.cpuUsPerFrame)}: receive+adopt ${fmt(s.receive)}, map ${fmt(s.map)}, touch ${fmt(s.touch)}, release ${fmt(s.release)}`);
    }
  }
  for (const p of r.profiles) {
    console.log(`\n--cpu-prof, ${p.where}: ${p.totalMs} ms sampled in ${p.files} process(es); self time:`);
    for (const x of p.self.slice(0, 12)) console.log(`  ${String(x.pct).padStart(5)}%  ${x.fn}`);
    console.log('  inclusive, the package (dist/):');
    for (const x of p.inclusive.slice(0, 12)) console.log(`  ${String(x.pct).padStart(5)}%  ${x.fn}`);
  }
  console.log(`\nload average before ${r.machine.loadBefore}, after ${r.machine.loadAfter}`);
}

const o = parseArgs(process.argv.slice(2));
const modes = { main: () => main(o), consumer: () => childConsumer(o), producer: () => childProducer(o), 'lend-producer': () => childLendProducer(o), 'lend-consumer': () => childLendConsumer(o) };
if (!modes[o.mode]) die(`unknown child mode ${o.mode}`);
modes[o.mode]().catch((err) => {
  console.error(err);
  process.exit(1);
});
