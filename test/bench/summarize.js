#!/usr/bin/env node
// Merge several `node test/bench/run.js --json FILE` results into Markdown tables (as in
// test/bench/README.md): per cell the median over every run of every file, the JS/C ratio of
// those medians, the range of the per-file ratios, and the ratio of the best (fastest) runs,
// which shrugs off interference from other work on the machine.
//
//   node test/bench/summarize.js host1.json host2.json host3.json
'use strict';
const fs = require('node:fs');

const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: node test/bench/summarize.js RESULT.json...');
  process.exit(2);
}
const results = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sizeLabel = (n) => (n >= 1 << 20 ? `${n / (1 << 20)} MiB` : `${n / 1024} KiB`);
const us = (x) => (x >= 10000 ? `${(x / 1000).toFixed(1)} ms` : x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${x.toFixed(x >= 100 ? 0 : 1)} µs`);
const spread = (xs) => (xs.length > 1 ? ((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100 : 0);

const m = results[0].meta;
const commits = [...new Set(results.map((r) => r.meta.commit || '?'))].join(', ');
console.log(`${files.length} file(s) × ${m.options.runs} run(s); commit ${commits}; Node ${m.node}, Linux ${m.kernel}${m.inVm ? ' (qemu TCG)' : ''}\n`);

// headline
const keys = results[0].cells.map((c) => `${c.id}|${c.size}`);
console.log('| tier | JS path | size | C / op | JS / op | JS/C | JS/C per file | JS/C best | spread C, JS |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const key of keys) {
  const cells = results.map((r) => r.cells.find((c) => `${c.id}|${c.size}` === key)).filter(Boolean);
  const cAll = cells.flatMap((c) => c.c_runs_us);
  const jsAll = cells.flatMap((c) => c.js_runs_us);
  const perFile = cells.map((c) => c.ratio);
  const [tier, pathName] = cells[0].id.split('/');
  console.log(
    `| ${tier} | ${pathName} | ${sizeLabel(cells[0].size)} | ${us(median(cAll))} | ${us(median(jsAll))} | ` +
      `**${(median(jsAll) / median(cAll)).toFixed(2)}** | ${Math.min(...perFile).toFixed(2)}–${Math.max(...perFile).toFixed(2)} | ` +
      `${(Math.min(...jsAll) / Math.min(...cAll)).toFixed(2)} | ±${(spread(cAll) / 2).toFixed(0)}%, ±${(spread(jsAll) / 2).toFixed(0)}% |`,
  );
}

// per step: median over files
if (results.every((r) => r.phases && r.phases.length)) {
  console.log('\nPer step, C / JS (median of the files\' one per-step run):\n');
  console.log('| tier | JS path | size | alloc | map | fill | unmap + close |');
  console.log('|---|---|---|---|---|---|---|');
  for (const p0 of results[0].phases) {
    const ps = results.map((r) => r.phases.find((p) => p.id === p0.id && p.size === p0.size)).filter(Boolean);
    const step = (k) => {
      const c = ps.filter((p) => p.c).map((p) => p.c[k]);
      const js = ps.map((p) => p.js[k]);
      return `${c.length ? us(median(c)) : '-'} / ${us(median(js))}`;
    };
    const [tier, pathName] = p0.id.split('/');
    console.log(`| ${tier} | ${pathName} | ${sizeLabel(p0.size)} | ${step('alloc')} | ${step('map')} | ${step('fill')} | ${step('close')} |`);
  }
}

// allocAsync
if (results.every((r) => r.async)) {
  console.log(`\nallocAsync on ${results[0].async.label} (µs/op wall, median of the files; x sync per file):\n`);
  console.log('| size | path | in flight | per op | x sync (median) | x sync per file |');
  console.log('|---|---|---|---|---|---|');
  for (const r0 of results[0].async.rows) {
    const rows = results.map((r) => r.async.rows.find((x) => x.size === r0.size && x.mode === r0.mode && x.inflight === r0.inflight));
    const xs = results.map((r, i) => r.async.rows.find((x) => x.size === r0.size && x.mode === 'sync').us_per_op / rows[i].us_per_op);
    console.log(
      `| ${sizeLabel(r0.size)} | ${r0.mode} | ${r0.mode === 'sync' ? '-' : r0.inflight} | ${us(median(rows.map((x) => x.us_per_op)))} | ` +
        `${median(xs).toFixed(2)} | ${xs.map((x) => x.toFixed(2)).join(', ')} |`,
    );
  }
}

// extra calls
if (results.every((r) => r.extras)) {
  console.log('\nExtra calls, µs per call (median of the files):\n');
  console.log('| impl | call | on | per call |');
  console.log('|---|---|---|---|');
  for (const impl of ['c', 'js']) {
    for (const x0 of results[0].extras[impl]) {
      const xs = results.map((r) => r.extras[impl].find((x) => x.name === x0.name && x.on === x0.on)).filter(Boolean);
      console.log(`| ${impl === 'c' ? 'C' : 'JS'} | ${x0.name} | ${x0.on} | ${us(median(xs.map((x) => x.us_per_call)))} |`);
    }
  }
}
