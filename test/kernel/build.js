#!/usr/bin/env node
'use strict';
// Builds the matrix's own kernels from Debian's kernel source packages with config fragments
// this project owns (test/kernel/*.config), reproducibly, and caches them by
// (source version, config hash, arch, page size) under DMA_HEAP_VM_CACHE
// (default ~/.cache/dma-heap-vm). A kernel is rebuilt only when one of those changes; the
// build tree is kept per (kernel, source version), so a changed fragment is an incremental make.
//
//   node test/kernel/build.js [--list] [--jobs N] [--force] [<kernel>...]   (default: all)
//
// Prints one line per kernel: "<kernel> <image path>". Exit 1 on a build or config failure.

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync, spawnSync } = require('child_process');

const HERE = __dirname;
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

// The kernels. `source`: which Debian source package ('linux-source-6.12', or 'newest' for the
// highest linux-source-7.* any suite offers). `fragments`: applied in order on tinyconfig.
// `testModules`: the kernel has CONFIG_MODULES and gets test/kernel/modules/ built against it.
const KERNELS = {
  'x86_64-6.12': {
    arch: 'x86_64', pageSize: 4096, source: 'linux-source-6.12',
    fragments: ['common', 'linux-6.12', 'x86_64', 'vgem', 'vivid'],
  },
  'arm64-6.12-4k': {
    arch: 'arm64', pageSize: 4096, source: 'linux-source-6.12',
    fragments: ['common', 'linux-6.12', 'arm64', 'arm64-4k-compat'],
  },
  'arm64-7-16k': {
    arch: 'arm64', pageSize: 16384, source: 'newest',
    fragments: ['common', 'arm64', 'arm64-16k', 'arm64-7'], testModules: true,
  },
};

// Suites searched for the newest linux-source-7.*: the host's own, then newer ones reached
// with a private sources list built from the host's mirror URI (no mirror host in the repo).
const NEWER_SUITES = ['trixie-backports', 'forky', 'sid'];

// Fixed identity: the same source and config give byte-identical images.
const BUILD_ENV = {
  KBUILD_BUILD_TIMESTAMP: 'Thu Jan  1 00:00:00 UTC 2026',
  KBUILD_BUILD_USER: 'dma-heap',
  KBUILD_BUILD_HOST: 'dma-heap-vm',
  KBUILD_BUILD_VERSION: '1',
  LC_ALL: 'C',
};

const ARCH = {
  x86_64: { make: ['ARCH=x86_64'], image: 'arch/x86/boot/bzImage', aptArch: 'amd64' },
  arm64: { make: ['ARCH=arm64', 'CROSS_COMPILE=aarch64-linux-gnu-'], image: 'arch/arm64/boot/Image', aptArch: 'arm64' },
};

const log = (m) => process.stderr.write(`dma-heap-kernel: ${m}\n`);
const cacheDir = () => process.env.DMA_HEAP_VM_CACHE || path.join(os.homedir(), '.cache', 'dma-heap-vm');
const sh = (file, args, opts = {}) => execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30, ...opts }).toString();

function mirrorURI() {
  const f = '/etc/apt/sources.list.d/debian.sources';
  const m = fs.existsSync(f) && /^URIs:\s*(\S+)/m.exec(fs.readFileSync(f, 'utf8'));
  if (!m) throw new Error(`cannot find a Debian mirror URI in ${f}`);
  return m[1].replace(/\/+$/, '');
}

// A private apt state (lists, cache) under the kernel cache: the system's apt state is only read
// for its keyring and mirror URIs. `suites`: [uri, suite] pairs. Returns a function running
// apt-get/apt-cache with it.
function privateApt(dir, suites) {
  fs.mkdirSync(path.join(dir, 'lists/partial'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'cache/archives/partial'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'sources.list'),
    suites.map(([u, s]) => `deb [signed-by=${KEYRING}] ${u} ${s} main\n`).join(''));
  const opts = [
    `Dir::Etc::SourceList=${dir}/sources.list`, 'Dir::Etc::SourceParts=/dev/null',
    'Dir::Etc::Preferences=/dev/null', 'Dir::Etc::PreferencesParts=/dev/null',
    `Dir::State::Lists=${dir}/lists`, 'Dir::State::status=/dev/null', `Dir::Cache=${dir}/cache`,
    'APT::Architecture=amd64', 'APT::Architectures=amd64', 'APT::Default-Release=',
    'Acquire::Retries=5', 'Acquire::Languages=none', 'APT::Sandbox::User=root',
  ].flatMap((o) => ['-o', o]);
  return (tool, args, cwd) => sh(tool, [...opts, ...args], { cwd: cwd || dir });
}

// Which source package and version: 'linux-source-6.12' from the host's suites plus the newer
// ones, 'newest' = the highest linux-source-7.* (or newer) found. Cached for a day so warm runs
// don't touch the network; --refresh-sources (or a missing cache) looks again.
function resolveSource(spec, cache, refresh) {
  const stamp = path.join(cache, 'src', 'resolved.json');
  let resolved = {};
  try { resolved = JSON.parse(fs.readFileSync(stamp, 'utf8')); } catch {}
  const key = spec.source;
  if (!refresh && resolved[key]) return resolved[key];
  // Every (URI, suite) of the host's sources (security included: Debian's 6.12 source updates
  // land there first), the -backports of its releases, and the newer suites on the main URI.
  const lines = [];
  const f = '/etc/apt/sources.list.d/debian.sources';
  for (const block of fs.readFileSync(f, 'utf8').split(/\n\s*\n/)) {
    const u = /^URIs:\s*(\S+)/m.exec(block), s = /^Suites:\s*(.+)$/m.exec(block);
    if (!u || !s) continue;
    for (const suite of s[1].trim().split(/\s+/)) {
      lines.push([u[1], suite]);
      if (!suite.includes('-') && /\/debian\/?$/.test(u[1])) lines.push([u[1], `${suite}-backports`]);
    }
  }
  for (const suite of NEWER_SUITES) lines.push([mirrorURI(), suite]);
  const suites = [...new Map(lines.map((l) => [l.join(' '), l])).values()];
  const aptDir = path.join(cache, 'src', 'apt');
  const apt = privateApt(aptDir, suites);
  log(`looking for ${key} in ${suites.map((x) => x[1]).join(', ')} ...`);
  apt('apt-get', ['-q', 'update']);
  const names = apt('apt-cache', ['pkgnames', 'linux-source-']).split('\n').filter((n) => /^linux-source-\d+\.\d+$/.test(n));
  const num = (n) => n.slice('linux-source-'.length).split('.').map(Number);
  let pkg = key;
  if (key === 'newest') {
    const sorted = names.sort((a, b) => { const x = num(a), y = num(b); return x[0] - y[0] || x[1] - y[1]; });
    pkg = sorted[sorted.length - 1];
    if (!pkg || num(pkg)[0] < 7) throw new Error(`no linux-source-7.* in ${suites.map((x) => x[1]).join(', ')} (found: ${names.join(' ') || 'none'})`);
  }
  const policy = apt('apt-cache', ['policy', pkg]);
  const cand = /Candidate:\s*(\S+)/.exec(policy);
  if (!cand || cand[1] === '(none)') throw new Error(`${pkg} has no candidate in ${suites.map((x) => x[1]).join(', ')}`);
  resolved[key] = { pkg, version: cand[1], suites };
  fs.mkdirSync(path.dirname(stamp), { recursive: true });
  fs.writeFileSync(stamp, JSON.stringify(resolved, null, 2) + '\n');
  return resolved[key];
}

// Extracts the source tarball once per version: $CACHE/src/<version>/linux-source-X.Y
function sourceTree(src, cache) {
  const base = path.join(cache, 'src', src.version.replace(/[^\w.+~-]/g, '_'));
  const done = path.join(base, '.extracted');
  const tree = () => path.join(base, fs.readdirSync(base).find((d) => d.startsWith('linux-source-')));
  if (fs.existsSync(done)) return tree();
  const aptDir = path.join(cache, 'src', 'apt');
  const apt = privateApt(aptDir, src.suites);
  const tmp = fs.mkdtempSync(path.join(cache, 'src', 'tmp-'));
  try {
    log(`downloading ${src.pkg} ${src.version} ...`);
    apt('apt-get', ['-q', 'download', `${src.pkg}=${src.version}`], tmp);
    const deb = path.join(tmp, fs.readdirSync(tmp).find((f) => f.endsWith('.deb')));
    sh('dpkg-deb', ['-x', deb, path.join(tmp, 'x')]);
    const usrSrc = path.join(tmp, 'x', 'usr', 'src');
    const tarball = fs.readdirSync(usrSrc).find((f) => /^linux-source-.*\.tar\.(xz|bz2|gz)$/.test(f));
    fs.rmSync(base, { recursive: true, force: true });
    fs.mkdirSync(base, { recursive: true });
    log(`extracting ${tarball} ...`);
    sh('tar', ['-xf', path.join(usrSrc, tarball), '-C', base]);
    fs.writeFileSync(done, `${src.pkg} ${src.version}\n`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return tree();
}

function fragmentText(spec) {
  return spec.fragments.map((f) => `# --- ${f}.config\n` + fs.readFileSync(path.join(HERE, `${f}.config`), 'utf8')).join('');
}

// Wanted options: "CONFIG_X=v" and "# CONFIG_X is not set" lines of the fragments (later wins).
function wantedOptions(text) {
  const want = new Map();
  for (const line of text.split('\n')) {
    let m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (m) { want.set(m[1], m[2]); continue; }
    m = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (m) want.set(m[1], 'n');
  }
  return want;
}

function readConfig(file) {
  const have = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (m) have.set(m[1], m[2]);
  }
  return have;
}

// CPU seconds of every waited-for descendant (cutime + cstime): what a build costs, whatever the
// machine's load (wall time on a shared machine says more about the neighbours).
function childCpuSeconds() {
  try {
    const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(f[13]) + Number(f[14])) / 100; // fields 16 and 17, USER_HZ = 100
  } catch { return 0; }
}

function make(tree, obj, spec, args, logFile, jobs) {
  const a = ['-C', tree, `O=${obj}`, ...ARCH[spec.arch].make, ...(jobs ? [`-j${jobs}`] : []), ...args];
  const fd = fs.openSync(logFile, 'a');
  fs.writeSync(fd, `\n$ make ${a.join(' ')}\n`);
  const r = spawnSync('nice', ['-n', '19', 'make', ...a], { stdio: ['ignore', fd, fd], env: { ...process.env, ...BUILD_ENV } });
  fs.closeSync(fd);
  if (r.status !== 0) throw new Error(`make ${args.join(' ')} failed (status ${r.status}); see ${logFile}`);
}

// tinyconfig, the fragments appended, olddefconfig; the fragments again (options whose
// dependencies only the first round switched on), olddefconfig; then every wanted option checked.
function configure(tree, obj, spec, text, logFile) {
  const cfg = path.join(obj, '.config');
  make(tree, obj, spec, ['tinyconfig'], logFile);
  for (let round = 0; round < 2; round++) {
    fs.appendFileSync(cfg, '\n' + text);
    make(tree, obj, spec, ['olddefconfig'], logFile);
  }
  const have = readConfig(cfg);
  const bad = [];
  for (const [k, v] of wantedOptions(text)) {
    const got = have.get(k) || 'n';
    if (got !== v) bad.push(`${k}: wanted ${v}, got ${got}`);
  }
  if (bad.length) throw new Error(`config check failed for ${spec.name}:\n  ${bad.join('\n  ')}`);
}

function ensureKernel(name, opts = {}) {
  const spec = { name, ...KERNELS[name] };
  if (!KERNELS[name]) throw new Error(`unknown kernel ${name} (have: ${Object.keys(KERNELS).join(', ')})`);
  const cache = cacheDir();
  const src = resolveSource(spec, cache, opts.refreshSources);
  const text = fragmentText(spec);
  const configHash = crypto.createHash('sha256').update(text).digest('hex').slice(0, 12);
  const key = `${name}_${src.version.replace(/[^\w.+-]/g, '_')}_${spec.arch}_${spec.pageSize}_${configHash}`;
  const out = path.join(cache, 'kernels', key);
  const infoFile = path.join(out, 'kernel.json');
  // One build tree per (kernel, source version): a changed fragment rebuilds incrementally.
  const obj = path.join(cache, 'build', `${name}_${src.version.replace(/[^\w.+-]/g, '_')}`);
  const withModules = (info) => (spec.testModules ? { ...info, testModules: ensureTestModules(spec, src, obj, out) } : info);
  if (!opts.force && fs.existsSync(infoFile)) return withModules(JSON.parse(fs.readFileSync(infoFile, 'utf8')));

  const tree = sourceTree(src, cache);
  fs.mkdirSync(obj, { recursive: true });
  return withModules(withTreeLock(obj, () => {
    // Whoever held the tree before us may have built this very kernel.
    if (!opts.force && fs.existsSync(infoFile)) return JSON.parse(fs.readFileSync(infoFile, 'utf8'));
    return build(spec, src, tree, obj, text, configHash, key, out, opts);
  }));
}

// The out-of-tree test modules (test/kernel/modules/: sources and Kbuild), built against the
// kernel's own build tree (its Module.symvers, from `make modules`) into a folder beside the
// image, keyed by the sources' hash: changing a module rebuilds only the module (seconds), never
// the kernel. Returns the folder holding the .ko files; the VM rig names it to the guest
// (DMA_HEAP_VM_MODULES), where a test loads a module itself.
function ensureTestModules(spec, src, obj, out) {
  const dir = path.join(HERE, 'modules');
  const files = fs.readdirSync(dir).filter((f) => f === 'Kbuild' || /\.[ch]$/.test(f)).sort();
  const h = crypto.createHash('sha256');
  for (const f of files) h.update(f).update('\0').update(fs.readFileSync(path.join(dir, f)));
  const dest = path.join(out, `modules-${h.digest('hex').slice(0, 12)}`);
  if (fs.existsSync(dest)) return dest;
  if (!fs.existsSync(path.join(obj, 'Module.symvers'))) {
    throw new Error(`cannot build test/kernel/modules for ${spec.name}: ${obj} has no Module.symvers ` +
      '(the build tree is gone or was built without CONFIG_MODULES): rebuild the kernel with --force');
  }
  return withTreeLock(obj, () => {
    if (fs.existsSync(dest)) return dest;
    const logFile = `${out}.modules.log`;
    fs.writeFileSync(logFile, '');
    // a copy: kbuild writes its objects beside the sources, and the checkout may be read-only
    const tmp = fs.mkdtempSync(path.join(path.dirname(out), 'modules-tmp-'));
    try {
      for (const f of files) fs.copyFileSync(path.join(dir, f), path.join(tmp, f));
      // -C <build tree> M=: kbuild's external-module build; it reads the tree, never rebuilds it
      const fd = fs.openSync(logFile, 'a');
      const a = ['-C', obj, ...ARCH[spec.arch].make, `M=${tmp}`, 'modules'];
      fs.writeSync(fd, `$ make ${a.join(' ')}\n`);
      const r = spawnSync('nice', ['-n', '19', 'make', ...a], { stdio: ['ignore', fd, fd], env: { ...process.env, ...BUILD_ENV } });
      fs.closeSync(fd);
      if (r.status !== 0) throw new Error(`building test/kernel/modules for ${spec.name} failed (status ${r.status}); see ${logFile}`);
      const built = fs.readdirSync(tmp).filter((f) => f.endsWith('.ko'));
      if (!built.length) throw new Error(`building test/kernel/modules for ${spec.name} made no .ko; see ${logFile}`);
      const stage = `${dest}.tmp-${process.pid}`;
      fs.mkdirSync(stage, { recursive: true });
      for (const f of built) fs.copyFileSync(path.join(tmp, f), path.join(stage, f));
      fs.renameSync(stage, dest);
      log(`built test modules for ${spec.name}: ${built.join(' ')} in ${dest}`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    return dest;
  });
}

// Two builds in one object tree corrupt it (fixdep: missing .o.d files, measured when CI and a
// developer both built arm64 at once): one holder per tree, others wait. A lock whose holder
// died is taken over.
function withTreeLock(obj, fn) {
  const lock = `${obj}.lock`;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let told = false;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let pid = 0;
      try { pid = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8')); } catch {}
      if (pid && !alive(pid)) { fs.rmSync(lock, { recursive: true, force: true }); continue; }
      if (!told) { log(`waiting for build ${pid || '?'} to leave ${obj}`); told = true; }
      Atomics.wait(nap, 0, 0, 5000); // a build script with nothing else to do: blocking is fine
    }
  }
  try { return fn(); } finally { fs.rmSync(lock, { recursive: true, force: true }); }
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}

function build(spec, src, tree, obj, text, configHash, key, out, opts) {
  const { name } = spec;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const logFile = path.join(path.dirname(out), `${key}.log`);
  fs.writeFileSync(logFile, '');
  const t0 = Date.now();
  const cpu0 = childCpuSeconds();
  log(`building ${name} from ${src.pkg} ${src.version} (config ${configHash}); log: ${logFile}`);
  configure(tree, obj, spec, text, logFile);
  const t1 = Date.now();
  // A kernel with CONFIG_MODULES also builds `modules`: its Module.symvers is what an
  // out-of-tree module (test/kernel/modules/) is linked against.
  const targets = [ARCH[spec.arch].image.split('/').pop()];
  if (readConfig(path.join(obj, '.config')).get('CONFIG_MODULES') === 'y') targets.push('modules');
  make(tree, obj, spec, targets, logFile, opts.jobs || os.cpus().length);
  const secs = Math.round((Date.now() - t0) / 1000);
  const release = fs.readFileSync(path.join(obj, 'include/config/kernel.release'), 'utf8').trim();
  const tmp = `${out}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const image = path.basename(ARCH[spec.arch].image);
  fs.copyFileSync(path.join(obj, ARCH[spec.arch].image), path.join(tmp, image));
  fs.copyFileSync(path.join(obj, '.config'), path.join(tmp, 'config'));
  const sha = crypto.createHash('sha256').update(fs.readFileSync(path.join(tmp, image))).digest('hex');
  const info = {
    name, key, arch: spec.arch, pageSize: spec.pageSize, source: src.pkg, sourceVersion: src.version,
    release, configHash, fragments: spec.fragments, image: path.join(out, image), imageSha256: sha,
    buildSeconds: secs, configureSeconds: Math.round((t1 - t0) / 1000), cpuSeconds: Math.round(childCpuSeconds() - cpu0),
    builtAt: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(tmp, 'kernel.json'), JSON.stringify(info, null, 2) + '\n');
  fs.rmSync(out, { recursive: true, force: true });
  fs.renameSync(tmp, out);
  log(`built ${name}: ${release}, ${image} ${fs.statSync(info.image).size} bytes, sha256 ${sha.slice(0, 16)}, ${secs} s (${info.cpuSeconds} CPU s)`);
  return info;
}

module.exports = { KERNELS, ensureKernel, cacheDir, resolveSource, sourceTree };

if (require.main === module) {
  const argv = process.argv.slice(2);
  const o = { jobs: 0, force: false, refreshSources: false, names: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--jobs') o.jobs = Number(argv[++i]);
    else if (argv[i] === '--force') o.force = true;
    else if (argv[i] === '--refresh-sources') o.refreshSources = true;
    else if (argv[i] === '--list') { console.log(Object.keys(KERNELS).join('\n')); process.exit(0); }
    else o.names.push(argv[i]);
  }
  let status = 0;
  for (const name of o.names.length ? o.names : Object.keys(KERNELS)) {
    try {
      const info = ensureKernel(name, o);
      console.log(`${name} ${info.image}`);
    } catch (e) {
      log(`${name}: ${e.message}`);
      status = 1;
    }
  }
  process.exit(status);
}
