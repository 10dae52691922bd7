/*
 * The CLI against a process holding thousands of fds (3,000 dups of one buffer and 3,000 more
 * buffers), and a reader that leaves mid-output. What it tests is the CLI's own JS (procfs
 * reads, the table, the pipe): the host runs it; the VM rows leave it out (test/kernel.js
 * HOST_ONLY), where the holder's 6,000 allocations and the scans cost minutes under TCG.
 */
import { BROKEN_PIPE, cli, holder, PIPE_HOLDS, stop } from './hostile-helpers';

describe('a process with thousands of fds, and a reader that leaves mid-output', () => {
  let h: Awaited<ReturnType<typeof holder>>;
  beforeAll(async () => {
    h = await holder({ dups: 3000, buffers: 3000 });
  });
  afterAll(() => stop(h.child));

  test('every fd and every buffer is counted', async () => {
    expect(h.dups + h.buffers).toBeGreaterThan(500); // else the fd limit (ulimit -n) is absurdly low
    const r = await cli(['dump', String(h.pid), '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const p = JSON.parse(r.stdout.toString()).processes[0];
    expect(p.count).toBe(1 + h.buffers);
    expect(p.buffers.find((b: { fds: number[] }) => b.fds.length > 1).fds).toHaveLength(1 + h.dups);
  });

  test.each([[['dump']], [['dump', '--json']]])('%j: stdout closed after its first chunk, a quiet exit 141', async (args) => {
    // only output larger than a pipe holds can meet a closed reader: say so if the limit kept it small
    const whole = await cli([...args, String(h.pid)]);
    expect(whole.stdout.length).toBeGreaterThan(PIPE_HOLDS);
    const r = await cli([...args, String(h.pid)], { close: 'first-chunk' });
    expect(r).toMatchObject({ code: BROKEN_PIPE, signal: null, stderr: '' });
  });
});

