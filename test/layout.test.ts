/**
 * The layout keeps its promises (issue 12): only lib/native/, lib/framework/ and
 * lib/share/socket.ts reach the addon; lib/ has no import cycles; the simulated kernel
 * never imports the public validator; the package's public exports stay what they were.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const LIB = path.resolve(__dirname, '..', 'lib');
const rel = (file: string) => path.relative(LIB, file).split(path.sep).join('/');

function sources(dir = LIB): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sources(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

interface Edge {
  to: string;
  /** erased at compile time: `import type`, `export type`, or only `type` specifiers */
  typeOnly: boolean;
}

/** Every import/export-from/require/import() of a file, resolved within lib/ (packages keep their name). */
function edges(file: string): Edge[] {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: Edge[] = [];
  const add = (spec: string, typeOnly: boolean) => {
    if (!spec.startsWith('.')) return out.push({ to: spec, typeOnly });
    const base = path.resolve(path.dirname(file), spec);
    const hit = [`${base}.ts`, path.join(base, 'index.ts'), base].find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
    out.push({ to: hit ? rel(hit) : rel(base), typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const c = node.importClause;
      const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
      const typeOnly = !!c && (c.isTypeOnly || (!c.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier.text, typeOnly);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause.elements : undefined;
      add(node.moduleSpecifier.text, node.isTypeOnly || (!!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require')) &&
      node.arguments.length === 1 &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      add(node.arguments[0].text, false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      add(node.argument.literal.text, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

const graph = new Map(sources().map((f) => [rel(f), edges(f)]));

/** The addon itself: its loader and its typed surface (and the loader's own means). */
const ADDON = new Set(['native/load.ts', 'native/addon.ts', 'node-gyp-build']);
const mayReachAddon = (file: string) => file.startsWith('native/') || file.startsWith('framework/') || file === 'share/socket.ts';

test('only lib/native/, lib/framework/ and lib/share/socket.ts import the addon', () => {
  expect(graph.size).toBeGreaterThan(20);
  const offenders = [...graph].flatMap(([file, es]) =>
    mayReachAddon(file) ? [] : es.filter((e) => ADDON.has(e.to) || e.to.endsWith('.node')).map((e) => `${file} -> ${e.to}`),
  );
  expect(offenders).toEqual([]);
  // and lib/native/index.ts, the one door the rest may use, does not hand the addon out
  const door = fs.readFileSync(path.join(LIB, 'native/index.ts'), 'utf8');
  expect(door).not.toMatch(/\bloadAddon\b|\bAddon\b/);
});

test('the check above can fail: it sees an addon import where one is', () => {
  expect(graph.get('share/socket.ts')!.some((e) => e.to === 'native/load.ts')).toBe(true);
  expect(graph.get('framework/framework.ts')!.some((e) => e.to === 'native/load.ts')).toBe(true);
});

test('lib/ has no import cycles (imports that survive compilation)', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const walk = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const e of graph.get(file) ?? []) {
      if (e.typeOnly || !graph.has(e.to)) continue;
      if (state.get(e.to) === 'open') cycles.push([...stack.slice(stack.indexOf(e.to)), e.to].join(' -> '));
      else if (!state.has(e.to)) walk(e.to);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) walk(file);
  expect(cycles).toEqual([]);
});

test('the simulated kernel never imports the public validator', () => {
  const offenders = [...graph].flatMap(([file, es]) =>
    file.startsWith('framework/') ? es.filter((e) => e.to === 'validate.ts').map((e) => `${file} -> ${e.to}`) : [],
  );
  expect(offenders).toEqual([]);
});

test('the framework has no instanceof chains over file kinds: files dispatch through their f_op table', () => {
  const text = fs.readFileSync(path.join(LIB, 'framework/framework.ts'), 'utf8');
  expect(text).not.toMatch(/priv instanceof (DmaHeap|DmaBuf)/);
});

/** The package's public surface as it was before the layout changed (values and types), plus the pools (issue 11). */
// The 1.0 surface (issue 18): what a user needs from `dma-heap`, and what a test or a heap
// author needs from `dma-heap/framework`. A change here is an API change: CHANGELOG it.
const PUBLIC = {
  values: [
    'BufferPool', 'CONTIGUOUS_HEAP_NAMES', 'DmaBuf', 'DmaBufChannel', 'DmaBufChannelError', 'DmaBufServer', 'DmaBufStateError',
    'DmaHeapError', 'Heap', 'PooledBuffer', 'SyncFile', 'TIERS', 'addonStatus', 'allocShareable', 'createShareablePool', 'fromFd', 'inheritedBuffers', 'inheritedItems',
    'listHeaps', 'openContiguousHeap', 'openHeap', 'spawnWithBuffers', 'udmabufSizeLimit',
    // issue 18: one guard for every error code
    'isDmaHeapError',
    // issue 20: GStreamer's unixfd protocol both ways
    'UnixFdFrame', 'UnixFdSink', 'UnixFdSource',
    // issue 19: heaps that appear after start-up
    'HeapWatcher', 'watchHeaps',
  ].sort(),
  types: [
    'AcquireOptions', 'AllocOptions', 'Backend', 'Backing', 'BufferPoolOptions', 'BufferPoolStats', 'BufferSource', 'ChannelMessage', 'ChannelOptions', 'ChannelType', 'CpuAccess', 'DmaBufInfo',
    'FromFdOptions', 'HeapAbi', 'HeapEntry', 'HeapFeatures', 'ListedHeap', 'OpenHeapOptions', 'ShareableOptions', 'SyncFileInfo', 'SyncFileStatus', 'Tier',
    'WaitOptions', 'DmaBufChannelEvents', 'DmaBufServerEvents', 'ShareItem', 'ShareableTier',
    // issue 18: error codes as unions
    'AddonMissingError', 'DmaBufChannelErrorCode', 'DmaBufStateErrorCode', 'DmaHeapErrorCode', 'DmaHeapErrorDetail', 'DmaHeapErrorOf', 'ErrnoCode',
    // issue 20 item 5: who may connect
    'ListenOptions', 'PeerCredentials', 'RefusedConnectionReason',
    // issue 20 item 3: lending between processes
    'LendItem', 'LendResult',
    // issue 20: GStreamer's unixfd protocol (caps and video meta in GStreamer's words)
    'GstCaps', 'GstCapsValue', 'GstFraction', 'GstVideoMeta', 'UnixFdBufferInit', 'UnixFdMemory', 'UnixFdMemoryInit', 'UnixFdMemoryType',
    'UnixFdSinkEvents', 'UnixFdSinkOptions', 'UnixFdSourceEvents', 'UnixFdSourceOptions',
    // issue 19: what a heap is; heaps that appear
    'HeapKind', 'HeapWatcherEvents',
  ].sort(),
};
const FRAMEWORK = {
  values: ['DEFAULT_CMA_SIZE', 'Errno', 'Framework', 'SoftwareFence', 'SoftwareFenceSource', 'errno'],
  types: [
    'AccessContext', 'AccessPolicy', 'AllocationFault', 'BackingMemory', 'Cma', 'CmaBuffer', 'CpuAccessState', 'Credentials', 'DmaBufExportInfo', 'DmaBufOps',
    'DmaDataDirection', 'DmaHeap', 'DmaHeapExportInfo', 'DmaHeapOps', 'Faults', 'FenceSourceOptions', 'FrameworkOptions', 'KernelDmaBuf', 'Profile',
    'MemfdPolicy', 'SimulatedKernel', 'Vma',
    // issue 19: the kernel followed, its CMA regions and protected heaps
    'CmaRegion', 'KernelRelease', 'ProtectedHeapId',
  ].sort(),
};

/** the names an entry point's source exports: values (at run time) and types (declarations only) */
function exportsOf(file: string): { values: string[]; types: string[] } {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const values = Object.keys(require(file) as Record<string, unknown>).sort();
  const src = ts.createSourceFile(path.basename(file), fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022);
  const names = src.statements.flatMap((st) =>
    ts.isExportDeclaration(st) && st.exportClause && ts.isNamedExports(st.exportClause) ? st.exportClause.elements.map((e) => e.name.text) : [],
  );
  expect(values.filter((n) => !names.includes(n))).toEqual([]);
  return { values, types: names.filter((n) => !values.includes(n)).sort() };
}

test('the public exports: dma-heap is the user\'s API, dma-heap/framework the simulated kernel\'s', () => {
  expect(exportsOf(path.join(LIB, 'index.ts'))).toEqual(PUBLIC);
  expect(exportsOf(path.join(LIB, 'framework', 'index.ts'))).toEqual(FRAMEWORK);
  // no name means two things across the two entry points
  expect([...PUBLIC.values, ...PUBLIC.types].filter((n) => [...FRAMEWORK.values, ...FRAMEWORK.types].includes(n))).toEqual([]);
  // and the exports map publishes both
  const pkg = JSON.parse(fs.readFileSync(path.join(LIB, '..', 'package.json'), 'utf8'));
  expect(Object.keys(pkg.exports)).toEqual(['.', './framework', './package.json']);
});

test("the package's own error codes are all listed in the README, and nothing else is", () => {
  const root = path.resolve(__dirname, '..');
  const inCode = new Set<string>();
  for (const dir of ['lib', 'src']) {
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const full = path.join(d, e.name);
        if (e.isDirectory()) walk(full);
        // ERR_SYNC_ too: issue 18 found ERR_SYNC_FILE_CLOSED thrown and missing from the table
        else for (const m of fs.readFileSync(full, 'utf8').matchAll(/ERR_(?:DMA|SYNC)_[A-Z_]+/g)) inCode.add(m[0]);
      }
    };
    walk(path.join(root, dir));
  }
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const listed = new Set([...readme.matchAll(/^\| `(ERR_(?:DMA|SYNC)_[A-Z_]+)` \|/gm)].map((m) => m[1]));
  expect([...inCode].sort()).toEqual([...listed].sort());
});
