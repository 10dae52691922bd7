#!/usr/bin/env node
'use strict';
// A Debian trixie root holding GStreamer 1.26 (the host's bookworm has 1.22: no unixfd elements),
// for tests that run real GStreamer pipelines next to the package: `unixfdsink`/`unixfdsrc`
// (gst-plugins-bad's unixfd plugin, buffers as memfds/dma-bufs over AF_UNIX), `videotestsrc`,
// `v4l2src` (dma-bufs from vivid in the VM), gst-launch-1.0 and gst-inspect-1.0.
//
// No debootstrap (minutes, and a 1.2 GB tree): a private apt setup (test/vm/userland.js) resolves
// the closure of the few GStreamer *library* packages (an empty dpkg status,
// --no-install-recommends), downloads it and unpacks every .deb with `dpkg-deb -x` into a folder
// whose bin, sbin, lib, lib64 are merged-/usr symlinks; no maintainer script runs. The plugin
// packages (plugins-base, -good, -bad: together they pull in ~350 packages, LLVM and GTK among
// them) are downloaded without their dependencies and only the plugins named in PLUGINS are kept,
// each checked to load (no blacklisted plugin, every wanted element present). The plugin
// registry is written once at build time and launches use it as it is (GST_REGISTRY_UPDATE=no):
// no plugin scan per launch, which matters under TCG.
//
// Cached at $DMA_HEAP_VM_CACHE/gstreamer/<hash of suite+packages+plugins>/ (default cache
// ~/.cache/dma-heap-vm, the folder CI keeps for the kernels), built in a temporary folder beside
// it and renamed into place, so a half-built root is never seen.
//
//   node test/gstreamer/root.js      prints the root's path, building it if missing
//
// Tests: cachedGstRoot() (never builds), gstLaunch([...pipeline], { root }) (a ChildProcess
// running `chroot ROOT gst-launch-1.0 ...`), gstSocketDir(root) for a socket path both sides see.
// Inside the VM rig (DMA_HEAP_IN_VM=1) test/vm/run.js mounts /dev, /proc, /sys and a tmpfs /tmp
// into the root before the command runs (see gstRootMounts()).

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync, spawn } = require('child_process');
const { privateApt } = require('../vm/userland.js');

const SUITE = 'trixie';
const ARCH = 'amd64';
// Installed with their dependency closure: the libraries the kept plugins and tools link against.
const PACKAGES = [
  'gstreamer1.0-tools', // gst-launch-1.0, gst-inspect-1.0
  'libgstreamer1.0-0', // libgstreamer, libgstbase, libgstnet; coreelements (fakesink, filesink, queue, tee, ...)
  'libgstreamer-plugins-base1.0-0', // libgstvideo, libgstallocators (memfd and dma-buf allocators), libgstapp, libgstaudio
  'liborc-0.4-0t64', // videotestsrc
  'libgudev-1.0-0', 'libv4l-0t64', // v4l2src
];
// Downloaded without dependencies; only these plugins (libgst<name>.so) are kept.
const PLUGINS = {
  'gstreamer1.0-plugins-base': ['videotestsrc', 'app', 'videoconvertscale', 'rawparse', 'videorate'],
  'gstreamer1.0-plugins-good': ['video4linux2'],
  'gstreamer1.0-plugins-bad': ['unixfd', 'debugutilsbad'],
};
// What the build checks gst-inspect-1.0 finds (a missing library would blacklist a plugin).
const ELEMENTS = ['unixfdsink', 'unixfdsrc', 'videotestsrc', 'v4l2src', 'fakesink', 'filesink', 'appsrc', 'appsink',
  'videoconvert', 'rawvideoparse', 'fakevideosink', 'capsfilter', 'queue'];
// Bulk nothing reads: documentation, translations, iso-codes' tables.
const PRUNE = ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'usr/share/lintian',
  'usr/share/bug', 'usr/share/iso-codes', 'usr/share/xml/iso-codes', 'usr/share/bash-completion', 'usr/share/gdb'];
const PLUGIN_DIR = 'usr/lib/x86_64-linux-gnu/gstreamer-1.0';
const REGISTRY = '/var/cache/gstreamer-1.0/registry.x86_64.bin';
const INFO = 'dma-heap-gst.json'; // at the root's top: written last, so its presence means "complete"
const RECIPE = 1; // bump when the recipe below changes in a way the lists above do not show

const log = (m) => process.stderr.write(`dma-heap-gst: ${m}\n`);
const sh = (file, args, opts = {}) => execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30, ...opts }).toString();

function cacheDir() {
  return process.env.DMA_HEAP_VM_CACHE || path.join(os.homedir(), '.cache', 'dma-heap-vm');
}

function rootHash() {
  return crypto.createHash('sha256')
    .update(JSON.stringify({ SUITE, ARCH, PACKAGES, PLUGINS, PRUNE, RECIPE })).digest('hex').slice(0, 12);
}

/** where the root for the current package lists lives (whether or not it is built) */
function gstRootPath(cache = cacheDir()) {
  return path.join(cache, 'gstreamer', rootHash());
}

/** the root's path when it is built and this process can use it (x86-64), else null; never builds */
function cachedGstRoot(cache = cacheDir()) {
  if (process.arch !== 'x64') return null;
  const root = gstRootPath(cache);
  return fs.existsSync(path.join(root, INFO)) ? root : null;
}

/** the environment gst-launch-1.0 gets inside the root (clean: the host's would leak in) */
function gstEnv(env = {}) {
  return {
    PATH: '/usr/bin:/usr/sbin', HOME: '/tmp', LANG: 'C.UTF-8',
    GST_REGISTRY: REGISTRY, GST_REGISTRY_UPDATE: 'no', // the registry built with the root: no scan
    ...env,
  };
}

function chrootRun(root, args, env) {
  return sh('/usr/sbin/chroot', [root, ...args], { env: gstEnv(env) });
}

function build(cache) {
  const base = path.join(cache, 'gstreamer');
  fs.mkdirSync(base, { recursive: true });
  for (const old of fs.readdirSync(base)) { // leftovers of killed builds
    const p = path.join(base, old);
    if (old.startsWith('tmp-') && Date.now() - fs.statSync(p).mtimeMs > 3600e3) fs.rmSync(p, { recursive: true, force: true });
  }
  const work = fs.mkdtempSync(path.join(base, 'tmp-'));
  const t0 = Date.now();
  try {
    log(`building the GStreamer root (Debian ${SUITE}: ${PACKAGES.join(' ')}; plugins ${Object.values(PLUGINS).flat().join(' ')}) ...`);
    const apt = privateApt(work, { arch: ARCH, suite: SUITE });
    // The closure, as apt resolves it for an empty system: "Inst <pkg> (<version> ...".
    const sim = apt('apt-get', ['-s', '-q', '--no-install-recommends', 'install', ...PACKAGES]);
    const closure = [...sim.matchAll(/^Inst (\S+) \((\S+)/gm)].map((m) => `${m[1]}=${m[2]}`);
    if (!closure.length) throw new Error(`apt resolved nothing for ${PACKAGES}:\n${sim}`);
    const debs = path.join(work, 'debs');
    fs.mkdirSync(debs);
    apt('apt-get', ['-q', 'download', ...closure, ...Object.keys(PLUGINS)], { cwd: debs });
    const tDownload = Date.now();

    const root = path.join(work, 'root');
    for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'etc', 'dev', 'proc', 'sys', 'var/cache/gstreamer-1.0']) {
      fs.mkdirSync(path.join(root, d), { recursive: true });
    }
    for (const d of ['bin', 'sbin', 'lib', 'lib64']) fs.symlinkSync(`usr/${d}`, path.join(root, d)); // merged /usr
    fs.mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 });
    fs.chmodSync(path.join(root, 'tmp'), 0o1777);
    const plugins = path.join(work, 'plugins');
    const versions = {};
    for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb')).sort()) {
      const pkg = deb.split('_')[0];
      versions[pkg] = sh('dpkg-deb', ['-f', path.join(debs, deb), 'Version']).trim();
      sh('dpkg-deb', ['-x', path.join(debs, deb), PLUGINS[pkg] ? plugins : root]);
    }
    for (const [pkg, names] of Object.entries(PLUGINS)) {
      for (const n of names) {
        const f = path.join(plugins, PLUGIN_DIR, `libgst${n}.so`);
        if (!fs.existsSync(f)) throw new Error(`${pkg} ${versions[pkg]} has no ${PLUGIN_DIR}/libgst${n}.so`);
        fs.copyFileSync(f, path.join(root, PLUGIN_DIR, `libgst${n}.so`));
      }
    }
    for (const d of PRUNE) fs.rmSync(path.join(root, d), { recursive: true, force: true });
    // glib asks who the user is; ld.so needs no cache (Debian's searches the multiarch dirs).
    fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/tmp:/bin/false\n');
    fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\n');
    // On the host the root's /dev is this folder (the VM binds the real /dev over it).
    if (process.getuid && process.getuid() === 0) {
      for (const [name, minor] of [['null', 3], ['zero', 5], ['random', 8], ['urandom', 9]]) {
        sh('mknod', ['-m', '666', path.join(root, 'dev', name), 'c', '1', String(minor)]);
      }
    }

    // The registry, once: every kept plugin must load and every wanted element must be there.
    const black = chrootRun(root, ['gst-inspect-1.0', '-b'], { GST_REGISTRY_UPDATE: 'yes' });
    if (!/Total count: 0 blacklisted/.test(black)) throw new Error(`plugins that do not load in the root:\n${black}`);
    for (const e of ELEMENTS) {
      try { chrootRun(root, ['gst-inspect-1.0', '--exists', e]); } catch { throw new Error(`no element ${e} in the root`); }
    }
    const gstVersion = /version (\S+)/.exec(chrootRun(root, ['gst-launch-1.0', '--version']))[1];
    const info = {
      suite: SUITE, gstreamer: gstVersion, packages: versions, plugins: PLUGINS, registry: REGISTRY,
      seconds: Math.round((Date.now() - t0) / 1000), downloadSeconds: Math.round((tDownload - t0) / 1000),
      bytes: Number(sh('du', ['-sb', root]).split('\t')[0]),
    };
    fs.writeFileSync(path.join(root, INFO), JSON.stringify(info, null, 2) + '\n');
    const dest = gstRootPath(cache);
    try { fs.renameSync(root, dest); } catch (e) {
      if (!fs.existsSync(path.join(dest, INFO))) throw e; // else a parallel build won
    }
    log(`built the GStreamer root (GStreamer ${gstVersion}, ${Object.keys(versions).length} packages, ` +
      `${(info.bytes / 1e6).toFixed(0)} MB) in ${info.seconds} s: ${dest}`);
    return dest;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** the root's path, building it first if it is not cached (about a minute on a fast mirror) */
function gstRoot(cache = cacheDir()) {
  if (process.arch !== 'x64') throw new Error(`the GStreamer root is ${ARCH}; this is ${process.arch}`);
  return cachedGstRoot(cache) || build(cache);
}

/** what the root's info file says (versions, build time, size) */
function gstRootInfo(root) {
  return JSON.parse(fs.readFileSync(path.join(root, INFO), 'utf8'));
}

/**
 * Why gst-launch-1.0 cannot run here (a reason for testIf), or null when it can: the root must be
 * built (CI builds it before the host suite), this process must be root (chroot), and inside the
 * VM the rig must have mounted /dev, /proc, /sys and /tmp into it.
 */
function gstUnavailable(root = cachedGstRoot()) {
  if (process.arch !== 'x64') return `the GStreamer root is ${ARCH} only`;
  if (!root) return 'no GStreamer root is built (node test/gstreamer/root.js builds it)';
  if (!process.getuid || process.getuid() !== 0) return 'gst-launch-1.0 runs in a chroot: needs root';
  if (process.env.DMA_HEAP_IN_VM === '1' && !fs.existsSync(path.join(root, 'proc/self'))) {
    return 'the VM rig did not mount /proc into the GStreamer root';
  }
  return null;
}

/**
 * A socket folder both sides see: `inside` is the path for a pipeline in the root
 * (`unixfdsink socket-path=${inside}/s.sock`), `host` the same folder for this process (root +
 * inside). Remove it with fs.rmSync(host, { recursive: true }) when done. Throws when a socket
 * named `name` in it would not fit sun_path (108 bytes with the NUL) from either side.
 */
function gstSocketDir(root, name = 'gst.sock') {
  const host = fs.mkdtempSync(path.join(root, 'tmp', 'dma-heap-'));
  const inside = '/' + path.relative(root, host);
  const longest = Buffer.byteLength(path.join(host, name));
  if (longest > 107) {
    fs.rmSync(host, { recursive: true, force: true });
    throw new Error(`socket path ${path.join(host, name)} is ${longest} bytes: sun_path holds 107 (set DMA_HEAP_VM_CACHE shorter)`);
  }
  return { host, inside, hostSocket: path.join(host, name), insideSocket: path.join(inside, name) };
}

/**
 * `chroot ROOT gst-launch-1.0 ...pipelineArgs` as a ChildProcess (spawned, never waited for here),
 * e.g. gstLaunch(['videotestsrc', 'num-buffers=5', '!', 'unixfdsink', `socket-path=${insideSocket}`]).
 * env adds to the clean environment the launcher gets (GST_DEBUG=3, ...); -q and -e are the
 * caller's to pass. spawnOptions go to child_process.spawn (stdio, ...).
 */
function gstLaunch(pipelineArgs, { root = cachedGstRoot(), env = {}, ...spawnOptions } = {}) {
  if (!root) throw new Error('no GStreamer root is built (node test/gstreamer/root.js builds it)');
  return spawn('/usr/sbin/chroot', [root, 'gst-launch-1.0', ...pipelineArgs], { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions, env: gstEnv(env) });
}

/**
 * The guest's shell commands that make the root usable inside the VM (test/vm/run.js runs them in
 * its init, before the command): the guest's /dev (dma-heaps, video devices, /dev/shm), /proc,
 * /sys, and a tmpfs /tmp for sockets. `r` is the root as the guest's init sees it.
 */
function gstRootMounts(r) {
  return `mount --rbind /dev ${r}/dev && mount -t proc proc ${r}/proc && mount -t sysfs sys ${r}/sys && ` +
    `mount -t tmpfs -o mode=1777 gsttmp ${r}/tmp`;
}

module.exports = {
  SUITE, PACKAGES, PLUGINS, ELEMENTS,
  gstRoot, cachedGstRoot, gstRootPath, gstRootInfo, gstUnavailable, gstSocketDir, gstLaunch, gstEnv, gstRootMounts,
};

if (require.main === module) {
  try { console.log(gstRoot()); } catch (e) { log(e.message); process.exit(1); }
}
