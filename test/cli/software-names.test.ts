/**
 * Issue 18, item 6: a software framework buffer's name (setName, alloc's `name`) lives only
 * in the JS of the process that owns it (its memfd's name is fixed at `dma-heap:<exporter>`),
 * so `dump` of another process says the name is not visible (`nameVisible: false`, and the
 * text's last column) instead of showing nothing, and shows it where this process holds the
 * buffer through the package's default framework: dumping itself, or a buffer it shares.
 * Needs the addon: without it software buffers are JS memory, which /proc never shows.
 */
import { spawn } from 'node:child_process';
import { fstatSync } from 'node:fs';
import path from 'node:path';
import { addonStatus, openHeap, spawnWithBuffers } from '../../lib';
import { dumpReport } from '../../lib/cli/dump';
import { testIf } from '../helpers/skip';

const root = path.resolve(__dirname, '..', '..');
const CLI = path.join(root, 'dist', 'cli.js');
// software buffers other processes can see are memfds: the addon makes them
const testAddon = testIf(addonStatus().loaded, 'needs the native addon (memfd buffers)');

const keyOf = (fd: number) => {
  const st = fstatSync(fd);
  return `${st.dev}:${st.ino}`;
};
const bufferOf = (pid: number, key: string) => dumpReport([pid]).processes[0].buffers.find((b) => b.key === key);

/** a node child that runs `code`, and the first line it prints */
async function child(code: string): Promise<{ pid: number; line: string; kill: () => Promise<void> }> {
  const c = spawn(process.execPath, ['-e', code], { env: { ...process.env, DMA_HEAP_BACKEND: 'software' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    c.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    c.once('exit', (status) => reject(new Error(`child exited (${status}): ${out}`)));
  });
  return { pid: c.pid!, line, kill: () => new Promise<void>((r) => (c.once('exit', () => r()), c.kill())) };
}

testAddon("dumping this process: its software buffers' names are shown, an unnamed one has none", () => {
  using heap = openHeap('system', { backend: 'software' });
  using named = heap.alloc(4096, { name: 'mine0' });
  using unnamed = heap.alloc(4096);
  expect(named.tier).toBe('memfd');
  expect(bufferOf(process.pid, keyOf(named.fd))).toMatchObject({ kind: 'software', name: 'mine0' });
  const plain = bufferOf(process.pid, keyOf(unnamed.fd))!;
  expect(plain.name).toBeUndefined();
  expect(plain.nameVisible).toBeUndefined();
  named.setName('renamed'); // read afresh: the framework's current name, not the first
  expect(bufferOf(process.pid, keyOf(named.fd))?.name).toBe('renamed');
});

testAddon("another process's software buffer: the name is said to be not visible (JSON and text), not left blank", async () => {
  const dist = JSON.stringify(path.join(root, 'dist'));
  const c = await child(`const b = require(${dist}).openHeap('system').alloc(4096, { name: 'theirs0' }); console.log(b.fd); setInterval(() => {}, 1000);`);
  try {
    const fd = Number(c.line);
    const buf = dumpReport([c.pid]).processes[0].buffers.find((b) => b.fds.includes(fd));
    expect(buf).toMatchObject({ kind: 'software', nameVisible: false });
    expect(buf?.name).toBeUndefined();
    const text = await new Promise<string>((resolve) => {
      const d = spawn(process.execPath, [CLI, 'dump', String(c.pid)]);
      let out = '';
      d.stdout.on('data', (x) => (out += x));
      d.once('close', () => resolve(out));
    });
    expect(text).toMatch(/\(software framework memfd; name visible only in its process\)/);
  } finally {
    await c.kill();
  }
});

testAddon('a software buffer this process shares with another: its name is shown in the other too (same inode, same buffer)', async () => {
  using heap = openHeap('system', { backend: 'software' });
  using buf = heap.alloc(4096, { name: 'shared1' });
  const c = spawnWithBuffers(process.execPath, ['-e', 'console.log("ready"); setInterval(() => {}, 1000)'], [buf], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((r) => c.stdout!.once('data', r));
    expect(bufferOf(c.pid!, keyOf(buf.fd))).toMatchObject({ kind: 'software', name: 'shared1' });
  } finally {
    await new Promise<void>((r) => (c.once('exit', () => r()), c.kill()));
  }
});
