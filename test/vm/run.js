#!/usr/bin/env node
'use strict';
// Runs one command inside a real Linux kernel under qemu TCG, on a copy-on-write view of this
// machine's root filesystem, so tests can reach /dev/dma_heap/* and /dev/udmabuf. The kernel is
// Debian trixie's linux-image-amd64 (6.12) by default, or one the project builds itself
// (test/kernel/build.js: x86-64 and arm64, CMA heap, vgem, vivid, sw_sync). An arm64 kernel runs
// a foreign userland (test/vm/userland.js: arm64, or 32-bit armv7) layered over the host root.
// See README.md next to this file.
//
//   node test/vm/run.js [--kernel debian|<built kernel>] [--userland host|arm64|armv7]
//     [--append 'cma=64M ...'] [--out DIR] [--timeout SECONDS] [--mem MB] [--modules vgem,vivid]
//     [--dtb cma-regions] [--refresh] -- <command> [args...]
//
// Exit status: the command's, 124 on timeout, 125 if the VM failed before/while running the
// command, 2 on usage errors or missing host tools.

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { spawn, execFileSync } = require('child_process');
const kernels = require('../kernel/build.js');
const userlands = require('./userland.js');
const gst = require('../gstreamer/root.js');
const dtbs = require('./dtb.js');

// Kernel modules the guest needs (9p for the host root, overlay to make it writable); their
// dependencies are found from each module's own modinfo, so kernel updates don't break this.
const MODULES = ['9pnet_virtio', '9p', 'overlay'];
// Device drivers a test may ask for with --modules (each extracted with its dependencies and
// loaded only when asked): vgem plays a GPU attaching fences, vivid a V4L2 camera.
const OPTIONAL_MODULES = ['vgem', 'vivid'];
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
// 9p mount options for the read-only host root. cache=loose lets the guest cache file data
// and metadata; it is several times faster for Node's module loading and safe for a
// read-only view of a tree nobody should change during the run.
const HOST_9P = 'trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose';
// The out share is written by the guest: no cache, so everything reaches the host at once.
const OUT_9P = 'trans=virtio,version=9p2000.L,msize=512000';

function die(code, msg) {
  process.stderr.write(`dma-heap-vm: ${msg}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const usage = 'usage: node test/vm/run.js [--kernel debian|' + Object.keys(kernels.KERNELS).join('|') + '] ' +
    '[--userland host|arm64|armv7] [--append ARGS] [--out DIR] [--timeout SECONDS] [--mem MB] [--modules vgem,vivid] ' +
    `[--dtb ${Object.keys(dtbs.OVERLAYS).join('|')}] [--refresh] -- <command> [args...]`;
  const o = { out: null, timeout: 600, mem: 2048, refresh: false, modules: [], cmd: [], kernel: 'debian', userland: null, append: [], dtb: null };
  let i = 0;
  for (; i < argv.length && argv[i] !== '--'; i++) {
    const a = argv[i];
    const val = () => (++i < argv.length ? argv[i] : die(2, `${a} needs a value\n${usage}`));
    if (a === '--out') o.out = path.resolve(val());
    else if (a === '--timeout') o.timeout = Number(val());
    else if (a === '--mem') o.mem = Number(val());
    else if (a === '--refresh') o.refresh = true;
    else if (a === '--modules') o.modules = val().split(',').filter(Boolean);
    else if (a === '--kernel') o.kernel = val();
    else if (a === '--userland') o.userland = val();
    else if (a === '--append') o.append.push(val());
    else if (a === '--dtb') o.dtb = val();
    else if (a === '-h' || a === '--help') { console.log(usage); process.exit(0); }
    else die(2, `unknown option ${a}\n${usage}`);
  }
  o.cmd = argv.slice(i + 1);
  if (!o.cmd.length) die(2, usage);
  if (!(o.timeout > 0)) die(2, '--timeout must be a positive number of seconds');
  if (!(Number.isInteger(o.mem) && o.mem >= 256)) die(2, '--mem must be an integer >= 256 (MB)');
  for (const m of o.modules) if (!OPTIONAL_MODULES.includes(m)) die(2, `--modules: ${m} is not one of ${OPTIONAL_MODULES}`);
  if (o.kernel !== 'debian' && !kernels.KERNELS[o.kernel]) die(2, `--kernel: ${o.kernel} is not debian or one of ${Object.keys(kernels.KERNELS)}`);
  o.arch = o.kernel === 'debian' ? 'x86_64' : kernels.KERNELS[o.kernel].arch;
  if (o.userland === null) o.userland = o.arch === 'arm64' ? 'arm64' : 'host';
  const okUserland = o.arch === 'arm64' ? ['arm64', 'armv7'] : ['host'];
  if (!okUserland.includes(o.userland)) die(2, `--userland ${o.userland} does not run on an ${o.arch} kernel (use ${okUserland})`);
  if (o.dtb !== null) {
    if (!dtbs.OVERLAYS[o.dtb]) die(2, `--dtb: ${o.dtb} is not one of ${Object.keys(dtbs.OVERLAYS)}`);
    if (o.arch !== 'arm64') die(2, '--dtb needs an arm64 kernel (qemu virt boots x86-64 without a device tree)');
  }
  return o;
}

function which(name) {
  const dirs = (process.env.PATH || '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin']);
  for (const d of dirs) {
    const f = path.join(d || '.', name);
    try { fs.accessSync(f, fs.constants.X_OK); return f; } catch {}
  }
  return null;
}

// The initramfs has no libc, so busybox must be the static build: an ELF without PT_INTERP.
function isStaticElf(file) {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return false;
  const phoff = Number(b.readBigUInt64LE(32)), size = b.readUInt16LE(54), n = b.readUInt16LE(56);
  for (let i = 0; i < n; i++) if (b.readUInt32LE(phoff + i * size) === 3) return false;
  return true;
}

function checkHostTools(arch) {
  const tools = {};
  const missing = [];
  const qemu = arch === 'arm64' ? ['qemu-system-aarch64', 'qemu-system-arm'] : ['qemu-system-x86_64', 'qemu-system-x86'];
  for (const [tool, pkg] of [qemu, ['xz', 'xz-utils'],
    ['apt-get', 'apt'], ['apt-cache', 'apt'], ['dpkg-deb', 'dpkg']]) {
    tools[tool] = which(tool);
    if (!tools[tool]) missing.push(`${tool} (package ${pkg})`);
  }
  tools.busybox = which('busybox');
  if (!tools.busybox || !isStaticElf(tools.busybox)) missing.push('a static busybox (package busybox-static)');
  if (!fs.existsSync(KEYRING)) missing.push(`${KEYRING} (package debian-archive-keyring)`);
  if (missing.length) {
    die(2, `missing host tools:\n  ${missing.join('\n  ')}\n` +
      `install with: apt-get install ${qemu[1]} busybox-static xz-utils`);
  }
  tools.qemu = tools[qemu[0]];
  return tools;
}

function run(file, args, opts = {}) {
  return execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30, ...opts });
}

// ---------------------------------------------------------------------------------------
// Kernel: a private apt setup (nothing of the system's apt state is read or written except
// its keyring and the mirror URI) downloads the image package linux-image-amd64 points to.

function mirrorURI() {
  const f = '/etc/apt/sources.list.d/debian.sources';
  let m = fs.existsSync(f) && /^URIs:\s*(\S+)/m.exec(fs.readFileSync(f, 'utf8'));
  if (!m && fs.existsSync('/etc/apt/sources.list')) {
    m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(fs.readFileSync('/etc/apt/sources.list', 'utf8'));
  }
  if (!m) throw new Error(`cannot find a Debian mirror URI in ${f}`);
  return m[1].replace(/\/+$/, '');
}

function fetchKernel(cache, tools) {
  // Everything is fetched into a private temporary directory (so parallel first runs don't
  // fight over apt's locks) and only the finished kernel directory is moved into the cache.
  for (const old of fs.readdirSync(cache)) { // leftovers of killed runs
    const p = path.join(cache, old);
    if (old.startsWith('tmp-') && Date.now() - fs.statSync(p).mtimeMs > 3600e3) fs.rmSync(p, { recursive: true, force: true });
  }
  const tmp = fs.mkdtempSync(path.join(cache, 'tmp-'));
  try {
    const apt = path.join(tmp, 'apt');
    for (const d of ['lists/partial', 'cache/archives/partial']) fs.mkdirSync(path.join(apt, d), { recursive: true });
    fs.writeFileSync(path.join(apt, 'sources.list'), `deb [signed-by=${KEYRING}] ${mirrorURI()} trixie main\n`);
    const opts = [
      `Dir::Etc::SourceList=${apt}/sources.list`, 'Dir::Etc::SourceParts=/dev/null',
      'Dir::Etc::Preferences=/dev/null', 'Dir::Etc::PreferencesParts=/dev/null',
      `Dir::State::Lists=${apt}/lists`, 'Dir::State::status=/dev/null', `Dir::Cache=${apt}/cache`,
      'APT::Architecture=amd64', 'APT::Architectures=amd64', 'APT::Default-Release=',
      'Acquire::Retries=5', 'Acquire::Languages=none',
      // Downloads land in our own directory, which apt's unprivileged _apt user can't write.
      'APT::Sandbox::User=root',
    ].flatMap((o) => ['-o', o]);
    const aptRun = (tool, args) => {
      try { return run(tools[tool], [...opts, ...args], { cwd: tmp }).toString(); } catch (e) {
        throw new Error(`${tool} ${args.join(' ')} failed:\n${e.stdout || ''}${e.stderr || e.message}`);
      }
    };
    console.error('dma-heap-vm: fetching Debian trixie linux-image-amd64 ...');
    const upd = aptRun('apt-get', ['-q', 'update']);
    if (/NO_PUBKEY|not signed|EXPKEYSIG|^W: .*GPG/m.test(upd)) throw new Error(`trixie signature check failed:\n${upd}`);
    const dep = /Depends: (linux-image-\S+)/.exec(aptRun('apt-cache', ['depends', 'linux-image-amd64']));
    if (!dep) throw new Error('cannot resolve what linux-image-amd64 depends on in trixie');
    aptRun('apt-get', ['-q', 'download', dep[1]]);
    const deb = path.join(tmp, fs.readdirSync(tmp).find((f) => f.endsWith('.deb')));
    const version = run(tools['dpkg-deb'], ['-f', deb, 'Version']).toString().trim();
    const x = path.join(tmp, 'x');
    run(tools['dpkg-deb'], ['-x', deb, x]);
    const out = path.join(tmp, 'kernel');
    fs.mkdirSync(path.join(out, 'modules'), { recursive: true });
    const vmlinuz = fs.readdirSync(path.join(x, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    const kver = vmlinuz.slice('vmlinuz-'.length);
    fs.copyFileSync(path.join(x, 'boot', vmlinuz), path.join(out, 'vmlinuz'));
    fs.copyFileSync(path.join(x, 'boot', `config-${kver}`), path.join(out, 'config'));
    const order = extractModules(x, kver, path.join(out, 'modules'), tools, MODULES, []);
    // each optional module's own load order, after what `order` already loaded
    const optional = {};
    for (const m of OPTIONAL_MODULES) optional[m] = extractModules(x, kver, path.join(out, 'modules'), tools, [m], order);
    const info = { package: dep[1], version, kver, modules: MODULES, optionalModules: OPTIONAL_MODULES, order, optional };
    fs.writeFileSync(path.join(out, 'kernel.json'), JSON.stringify(info, null, 2) + '\n');
    const name = `${dep[1]}_${version}`;
    try { fs.renameSync(out, path.join(cache, name)); } catch (e) {
      if (!fs.existsSync(path.join(cache, name, 'kernel.json'))) throw e; // else a parallel run won
    }
    fs.writeFileSync(path.join(tmp, 'current'), name + '\n');
    fs.renameSync(path.join(tmp, 'current'), path.join(cache, 'current'));
    for (const old of fs.readdirSync(cache)) {
      if (old.startsWith('linux-image-') && old !== name) fs.rmSync(path.join(cache, old), { recursive: true, force: true });
    }
    console.error(`dma-heap-vm: cached ${name} in ${cache}`);
    return name;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// Decompresses MODULES and everything they depend on (from the `depends=` modinfo string;
// the .deb ships no modules.dep, depmod runs at install time) and returns the insmod order.
function extractModules(root, kver, dest, tools, wanted, loaded) {
  const files = {};
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.xz)?$/.test(e.name)) files[e.name.replace(/\.ko(\.xz)?$/, '').replace(/-/g, '_')] = p;
    }
  };
  for (const base of ['usr/lib/modules', 'lib/modules']) {
    const d = path.join(root, base, kver);
    if (fs.existsSync(d)) walk(d);
  }
  const order = [];
  const visit = (name) => {
    if (order.includes(name) || loaded.includes(name)) return;
    if (!files[name]) throw new Error(`kernel ${kver} has no module ${name}`);
    const ko = files[name].endsWith('.xz') ? run(tools.xz, ['-dc', files[name]]) : fs.readFileSync(files[name]);
    const m = /\0depends=([^\0]*)\0/.exec(ko.toString('latin1'));
    for (const d of (m ? m[1].split(',') : []).filter(Boolean)) visit(d.replace(/-/g, '_'));
    fs.writeFileSync(path.join(dest, `${name}.ko`), ko);
    order.push(name);
  };
  wanted.forEach(visit);
  return order;
}

function kernelDir(cache, refresh, tools) {
  fs.mkdirSync(cache, { recursive: true });
  let name = null;
  try { name = fs.readFileSync(path.join(cache, 'current'), 'utf8').trim(); } catch {}
  const ok = (n) => {
    try {
      const info = JSON.parse(fs.readFileSync(path.join(cache, n, 'kernel.json'), 'utf8'));
      return String(info.modules) === String(MODULES) && String(info.optionalModules) === String(OPTIONAL_MODULES);
    } catch { return false; }
  };
  if (refresh || !name || !ok(name)) name = fetchKernel(cache, tools);
  return path.join(cache, name);
}

// ---------------------------------------------------------------------------------------
// initramfs: written directly as "newc" cpio so no root (for mknod) or cpio tool is needed.

function cpio(entries) {
  const parts = [];
  let ino = 1, len = 0;
  const put = (b) => { parts.push(b, Buffer.alloc(-b.length & 3)); len += b.length + (-b.length & 3); };
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 }]) {
    const data = e.data ? Buffer.from(e.data) : Buffer.alloc(0);
    const rdev = e.rdev || [0, 0];
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    const f = [ino++, e.mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], Buffer.byteLength(e.name) + 1, 0];
    put(Buffer.from('070701' + f.map((v) => v.toString(16).padStart(8, '0')).join('') + e.name + '\0'));
    put(data);
  }
  return Buffer.concat(parts, len);
}
const dir = (name) => ({ name, mode: 0o40755 });
const file = (name, data, mode = 0o100644) => ({ name, mode, data });

// PID 1 in the guest. Everything that varies per run is in /job (a second cpio archive
// appended to the cached one), so this script and the archive stay constant.
const INIT = String.raw`#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
. /job/env
# reboot -f, not poweroff: a tiny kernel without ACPI cannot power off; qemu runs with -no-reboot.
fail() { echo "dma-heap-vm: guest setup failed: $*"; reboot -f; }
# A serial console reports a 0x0 size, which confuses progress/table output; and without
# onlcr the command's output reaches the host log with plain \n line ends.
stty cols 160 rows 50 -onlcr
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || fail "insmod $m"; done
for m in $EXTRA_MODULES; do grep -qw "^$m" /proc/modules || insmod /lib/modules/$m.ko || fail "insmod $m"; done
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
ln -s /proc/self/fd /dev/fd; ln -s fd/0 /dev/stdin; ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr
mount -t 9p -o "$HOST_9P" host /host || fail "mount host root over 9p"
mount -t tmpfs -o mode=755 rw /rw && mkdir /rw/upper /rw/work || fail "tmpfs for the overlay"
LOWER=/host
if [ -n "$USERLAND" ]; then
  # A foreign userland (arm64 or armv7 libraries, Node, busybox) above the host root.
  mkdir -p /userland && mount -t 9p -o "$HOST_9P" userland /userland || fail "mount the userland over 9p"
  LOWER=/userland:/host
fi
mount -t overlay -o lowerdir=$LOWER,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "overlay"
if [ -n "$USERLAND" ]; then
  # The host's x86 programs cannot run here: every busybox applet stands in for them.
  # (--list names busybox itself: linking that would replace the binary with a loop to itself)
  for a in $(/newroot/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "/newroot/usr/bin/$a"; done
fi
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null # sw_sync lives there
# cgroup v2 where systemd puts it, on kernels with CONFIG_CGROUPS (memory accounting tests)
[ -d /sys/fs/cgroup ] && mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# No tmpfs over /tmp: the overlay already makes it writable, and the checkout may live there.
mount --rbind /dev /newroot/dev && mount --bind /proc /newroot/proc && mount --rbind /sys /newroot/sys || fail "bind mounts"
if [ -n "$OUT" ]; then
  mkdir -p "/newroot$OUT" && mount -t 9p -o "$OUT_9P" out "/newroot$OUT" || fail "mount out share at $OUT"
fi
if [ -n "$GST_ROOT" ]; then
  # test/gstreamer/root.js's trixie root (cached on the host's disk, so here through 9p): the
  # guest's /dev, /proc, /sys and a tmpfs /tmp for sockets, so a test can chroot gst-launch-1.0 in it.
  R="/newroot$GST_ROOT"
  eval "$GST_MOUNTS" || echo "dma-heap-vm: WARNING: could not mount /dev, /proc, /sys, /tmp into the GStreamer root $GST_ROOT"
fi
mkdir -p /newroot/run/dma-heap-vm && cp /job/job.sh /newroot/run/dma-heap-vm/ || fail "copy job"
echo "dma-heap-vm: kernel $(uname -r) $(uname -m), $(nproc) CPUs, $(free -m | awk '/Mem:/{print $2}') MB, $(grep CmaTotal /proc/meminfo | tr -s ' ')"
ls -l /dev/dma_heap/ /dev/udmabuf
[ -e /dev/dma_heap/system ] && [ -e /dev/udmabuf ] || echo "dma-heap-vm: WARNING: /dev/dma_heap/system or /dev/udmabuf is missing"
echo "$TOKEN start"
chroot /newroot /bin/sh /run/dma-heap-vm/job.sh </dev/null
rc=$?
sync
[ -n "$OUT" ] && umount "/newroot$OUT"
echo; echo "$TOKEN exit=$rc" # own line even if the output did not end in a newline
reboot -f
`;

// kdir: the kernel's cache folder (kernel.json; Debian's also has modules/). busyboxFile: a static
// busybox for the kernel's architecture (PID 1 runs it before any userland is mounted).
function baseInitramfs(kdir, busyboxFile) {
  const info = JSON.parse(fs.readFileSync(path.join(kdir, 'kernel.json'), 'utf8'));
  info.order = info.order || []; // self-built kernels have everything built in
  info.optional = info.optional || {};
  const busybox = fs.readFileSync(busyboxFile);
  const hash = crypto.createHash('sha256').update(INIT).update(busybox).update(info.order.join(','))
    .update(JSON.stringify(info.optional))
    .digest('hex').slice(0, 16);
  const f = path.join(kdir, `initramfs-${hash}.cpio`);
  if (fs.existsSync(f)) return f;
  const entries = [
    ...['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'host', 'rw', 'newroot', 'lib', 'lib/modules'].map(dir),
    // The kernel opens /dev/console for PID 1 before devtmpfs exists.
    { name: 'dev/console', mode: 0o20600, rdev: [5, 1] },
    file('bin/busybox', busybox, 0o100755),
    file('init', INIT, 0o100755),
    file('lib/modules/order', info.order.join('\n') + '\n'),
    ...[...info.order, ...new Set(Object.values(info.optional).flat())]
      .map((m) => file(`lib/modules/${m}.ko`, fs.readFileSync(path.join(kdir, 'modules', `${m}.ko`)))),
  ];
  const tmp = `${f}.${process.pid}`;
  fs.writeFileSync(tmp, cpio(entries));
  fs.renameSync(tmp, f);
  for (const old of fs.readdirSync(kdir)) {
    if (/^initramfs-\w+\.cpio$/.test(old) && path.join(kdir, old) !== f) fs.rmSync(path.join(kdir, old), { force: true });
  }
  return f;
}

const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

function jobArchive(o, token, kdir, userland, cache, testModules) {
  // A foreign userland: its /usr/bin first (host programs elsewhere on PATH cannot run).
  const env = { PATH: userland ? '/usr/bin:/usr/sbin:/bin:/sbin' : GUEST_PATH, HOME: '/tmp' };
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(CI|DMA_HEAP_\w+|JEST_\w+)$/.test(k)) env[k] = v;
  }
  // jest's resolver (unrs-resolver, a napi-rs addon) has only its x64 binding in node_modules.
  if (userland) env.NAPI_RS_NATIVE_LIBRARY_PATH = userland.info.unrs;
  env.DMA_HEAP_IN_VM = '1';
  // the guest's HOME is /tmp: name the host's cache, where the kernels' and GStreamer's roots are
  env.DMA_HEAP_VM_CACHE = cache;
  // the kernel's out-of-tree test modules (test/kernel/modules/), built beside its image: a test
  // loads them itself (insmod), nothing loads them at boot
  if (testModules) env.DMA_HEAP_VM_MODULES = testModules;
  const cwd = process.cwd();
  // Runs inside the chroot with the host's /bin/sh; env -i gives the command a clean environment.
  const job = `cd ${q(cwd)} || { echo dma-heap-vm: cannot cd to ${q(cwd)}; exit 125; }\n` +
    `exec env -i ${Object.entries(env).map(([k, v]) => q(`${k}=${v}`)).join(' ')} ${o.cmd.map(q).join(' ')}\n`;
  const info = JSON.parse(fs.readFileSync(path.join(kdir, 'kernel.json'), 'utf8'));
  // Self-built kernels have vgem and vivid built in: --modules asks for nothing there.
  const extra = [...new Set(o.modules.flatMap((m) => (info.optional || {})[m] || []))];
  // the GStreamer root (x86-64) when it is built: the init mounts what gst-launch-1.0 needs into it
  const gstRoot = o.arch === 'x86_64' && !userland ? gst.cachedGstRoot(cache) : null;
  const vars = {
    TOKEN: token, OUT: o.out || '', HOST_9P, OUT_9P, EXTRA_MODULES: extra.join(' '), USERLAND: userland ? '1' : '',
    GST_ROOT: gstRoot || '', GST_MOUNTS: gstRoot ? gst.gstRootMounts('"$R"') : '',
  };
  return cpio([dir('job'), file('job/job.sh', job),
    file('job/env', Object.entries(vars).map(([k, v]) => `${k}=${q(v)}\n`).join(''))]);
}

// ---------------------------------------------------------------------------------------

function main() {
  const o = parseArgs(process.argv.slice(2));
  const tools = checkHostTools(o.arch);
  if (o.dtb && !which('dtc')) die(2, 'missing host tools:\n  dtc (package device-tree-compiler), for --dtb\ninstall with: apt-get install device-tree-compiler');
  const cache = process.env.DMA_HEAP_VM_CACHE || path.join(os.homedir(), '.cache', 'dma-heap-vm');
  let kdir, image, info = null;
  if (o.kernel === 'debian') {
    kdir = kernelDir(cache, o.refresh, tools);
    image = path.join(kdir, 'vmlinuz');
  } else {
    info = kernels.ensureKernel(o.kernel); // built once, then cached (a cold build takes 10-20 min)
    image = info.image;
    kdir = path.dirname(image);
  }
  const userland = o.userland === 'host' ? null : userlands.ensureUserland(o.userland, cache);
  // PID 1's busybox: the host's static one for x86-64, the arm64 userland's for arm64.
  const busybox = o.arch === 'arm64'
    ? path.join(userlands.ensureUserland(o.userland === 'armv7' ? 'armv7' : 'arm64', cache).dir, 'usr/bin/busybox')
    : tools.busybox;
  const base = baseInitramfs(kdir, busybox);
  if (o.out) fs.mkdirSync(o.out, { recursive: true });

  const token = `@@dma-heap-vm-${crypto.randomBytes(6).toString('hex')}`;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-vm-'));
  const initrd = path.join(work, 'initrd.cpio');
  // Linux unpacks concatenated cpio archives in order: the cached base, then this run's /job.
  fs.writeFileSync(initrd, Buffer.concat([fs.readFileSync(base), jobArchive(o, token, kdir, userland, cache, info && info.testModules)]));

  const virtfs = (p, tag, ro) => ['-virtfs', `local,path=${p.replace(/,/g, ',,')},mount_tag=${tag},` +
    `security_model=none,multidevs=remap${ro ? ',readonly=on' : ''}`];
  const machine = o.arch === 'arm64'
    // pauth-impdef: TCG's architected pointer-auth hash is slow; the impdef one is much quicker.
    ? ['-M', 'virt', '-cpu', 'max,pauth-impdef=on']
    : ['-cpu', 'max', // all the CPU features TCG can emulate, like the host has (and faster here than qemu64)
      '-bios', 'qboot.rom']; // minimal firmware (in qemu-system-data): quicker than SeaBIOS, prints nothing
  const console_ = o.arch === 'arm64' ? 'ttyAMA0' : 'ttyS0';
  const machineArgs = ['-accel', 'tcg', ...machine, '-smp', '2', '-m', String(o.mem)];
  // a device tree of our own: qemu's for this very machine, plus the overlay's nodes (dtb.js)
  const dtb = o.dtb ? dtbs.ensureDtb(o.dtb, tools.qemu, machineArgs, cache) : null;
  const args = [
    ...machineArgs, ...(dtb ? ['-dtb', dtb] : []),
    '-nographic', '-nodefaults', '-no-user-config', '-serial', 'stdio', '-no-reboot',
    '-kernel', image, '-initrd', initrd,
    ...virtfs('/', 'host', true), ...(userland ? virtfs(userland.dir, 'userland', true) : []),
    ...(o.out ? virtfs(o.out, 'out', false) : []),
    '-append', [`console=${console_}`, 'panic=-1', 'quiet', ...o.append].join(' '),
  ];
  if (info) console.error(`dma-heap-vm: kernel ${info.name} ${info.release} (${info.source} ${info.sourceVersion}, config ${info.configHash})` +
    `${userland ? `, ${o.userland} userland` : ''}${dtb ? `, device tree ${o.dtb}` : ''}`);
  boot(args, tools, token, work, o, 1);
}

// A boot that never reaches the command is retried once: TCG boots occasionally oops while the
// kernel patches its own code (seen: "Oops: int3" in sched_clock_cpu, 1 boot in ~17). Once the
// command has started nothing is retried: a crash then may be ours.
function boot(args, tools, token, work, o, attempt) {
  const t0 = Date.now();
  // stdin is a pipe we never write: the guest gets no input and qemu leaves the terminal alone.
  const qemu = spawn(tools.qemu, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let started = false, status = null, timedOut = false, tail = '';
  qemu.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    const lines = (tail + chunk.toString('latin1')).split('\n');
    tail = lines.pop().slice(-200);
    for (const l of lines) {
      if (l.includes(`${token} start`)) {
        started = true;
        console.error(`dma-heap-vm: command started ${((Date.now() - t0) / 1000).toFixed(1)} s after qemu`);
      }
      const m = new RegExp(`${token} exit=(\\d+)`).exec(l);
      if (m) status = Number(m[1]);
    }
  });
  const timer = setTimeout(() => { timedOut = true; qemu.kill('SIGKILL'); }, o.timeout * 1000);
  let interrupted = null;
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { interrupted = sig; qemu.kill('SIGKILL'); });

  qemu.on('error', (e) => die(125, `cannot start qemu: ${e.message}`));
  qemu.on('close', (code, sig) => {
    clearTimeout(timer);
    if (!started && !timedOut && !interrupted && attempt === 1) {
      console.error(`dma-heap-vm: the VM stopped before it reached the command (boot failure); booting once more`);
      return boot(args, tools, token, work, o, attempt + 1);
    }
    fs.rmSync(work, { recursive: true, force: true });
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    if (interrupted) die(interrupted === 'SIGINT' ? 130 : 143, `${interrupted}: killed the VM`);
    if (timedOut) die(124, `timed out after ${o.timeout} s; killed the VM`);
    if (status !== null) {
      console.error(`dma-heap-vm: command exited with status ${status} (VM ran ${secs} s)`);
      process.exit(status);
    }
    const how = sig ? `signal ${sig}` : `status ${code}`;
    if (!started) die(125, `the VM stopped (qemu ${how}) before it reached the command: boot failure`);
    die(125, `the VM stopped (qemu ${how}) without reporting the command's exit status (guest crash, panic or OOM?)`);
  });
}

try { main(); } catch (e) { die(125, e.message); }
