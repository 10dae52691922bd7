import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expects } from '../helpers/expect';

/*
 * Fallback that is loud and true: when the addon fails to load, the real error is in
 * addonStatus() and every fallbackReason, NODE_DEBUG=dma-heap says what was decided, and on a
 * machine that has /dev/dma_heap a one-time warning names the remedy. A process of its own per
 * case (the loader decides once per process), on the built package.
 */

const root = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);
const hasHeaps = existsSync('/dev/dma_heap');
const MISSING = '/nonexistent/dma_heap.node';

const SCRIPT = `
const warnings = [];
process.on('warning', (w) => warnings.push({ name: w.name, code: w.code, message: w.message }));
const d = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))});
const a = d.openHeap('system');
const b = d.openHeap('system');
a.close(); b.close();
setImmediate(() => console.log(JSON.stringify({ status: d.addonStatus(), reason: a.fallbackReason, backend: a.backend, warnings })));
`;

async function probe(env: NodeJS.ProcessEnv): Promise<{ out: any; stderr: string }> {
  const base = { ...process.env };
  delete base.DMA_HEAP_ADDON;
  delete base.DMA_HEAP_ADDON_PATH;
  delete base.DMA_HEAP_BACKEND;
  delete base.NODE_DEBUG;
  const r = await run(process.execPath, ['-e', SCRIPT], { env: { ...base, ...env } });
  return { out: JSON.parse(r.stdout), stderr: r.stderr };
}

test('an addon that fails to load: the real error in addonStatus() and fallbackReason, and NODE_DEBUG=dma-heap says so', async () => {
  const { out, stderr } = await probe({ DMA_HEAP_ADDON_PATH: MISSING, NODE_DEBUG: 'dma-heap' });
  expect(out.status.loaded).toBe(false);
  expect(out.status.reason).toMatch(/^native addon failed to load: Cannot find module '\/nonexistent\/dma_heap\.node' \(MODULE_NOT_FOUND\)$/);
  expect(out.backend).toBe('software');
  expect(out.reason).toBe(out.status.reason);
  expect(stderr).toMatch(/^DMA-HEAP \d+: native addon not loaded: native addon failed to load: Cannot find module/m);
  expect(stderr).toMatch(/^DMA-HEAP \d+: heap system: the software framework serves it: /m);
});

test(`the failure warns once, naming the remedy, where /dev/dma_heap exists (${hasHeaps ? 'it does here' : 'not here: no warning'})`, async () => {
  if (expects('system')) expect(hasHeaps).toBe(true);
  const { out } = await probe({ DMA_HEAP_ADDON_PATH: MISSING });
  if (hasHeaps) {
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]).toMatchObject({ name: 'DmaHeapWarning', code: 'DMA_HEAP_NO_ADDON' });
    expect(out.warnings[0].message).toMatch(/Cannot find module '\/nonexistent\/dma_heap\.node'/);
    expect(out.warnings[0].message).toMatch(/npm rebuild dma-heap/);
  } else {
    expect(out.warnings).toEqual([]);
  }
});

test('refusing the addon on purpose (DMA_HEAP_ADDON=0) is silent, and the reason says it was refused', async () => {
  const { out, stderr } = await probe({ DMA_HEAP_ADDON: '0' });
  expect(out.warnings).toEqual([]);
  expect(stderr).toBe('');
  expect(out.reason).toBe('the native addon is not loaded (disabled by DMA_HEAP_ADDON=0)');
});
