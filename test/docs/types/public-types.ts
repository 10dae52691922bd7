// Type-checked (never run) by code-blocks.test.ts against the built .d.ts, as a user's
// TypeScript sees them: the types users write against exist, and misuse does not compile.
import {
  allocShareable,
  DmaBufChannel,
  Framework,
  openHeap,
  TIERS,
  type AccessPolicy,
  type AllocationFault,
  type DmaBuf,
  type DmaBufServerEvents,
  type DmaHeapOps,
  type FrameworkOptions,
  type Profile,
  type ShareableTier,
  type Tier,
} from 'dma-heap';

const profile: Profile = 'v14';
const options: FrameworkOptions = { profile, cma: { size: 1 << 20 } };
const framework = new Framework(options);
const policy: AccessPolicy = (ctx) => ctx.uid === 0 || ctx.groups.includes(44);
framework.setAccess('system', policy);
const fault: AllocationFault = { nth: 2, code: 'ENOMEM', heap: 'system' };
framework.faults.failAllocation(fault);

// a heap's ops written on their own, typed, then registered
const ops: DmaHeapOps = {
  allocate(heap, len, fdFlags) {
    const size = Number(len);
    const backing = framework.allocBacking(size, heap.name);
    return framework.exportBacking({ expName: heap.name, size, flags: fdFlags, backing, priv: backing });
  },
};
framework.addHeap({ name: 'carveout', ops });

// server events are typed: the listener gets a DmaBufChannel, and unknown events are errors
export function serve(path: string): void {
  const server = DmaBufChannel.listen(path);
  server.on('connection', (channel) => {
    const c: DmaBufChannel = channel;
    c.on('refused', (err) => console.error(err.reason));
    c.once('close', (why) => console.log(why.code));
    c.close();
  });
  server.once('error', (err) => console.error(err.message));
  server.on('close', () => undefined);
  server.on('refused', (err, channel) => console.error(err.code, channel.type));
  // @ts-expect-error: no such event
  server.on('conection', () => undefined);
  const args: DmaBufServerEvents['connection'] = [DmaBufChannel.pair()[0]];
  server.emit('connection', ...args);
}

// fd is read-only; options are checked
export function misuse(buf: DmaBuf): void {
  // @ts-expect-error: fd cannot be assigned
  buf.fd = 3;
  // @ts-expect-error: a misspelled option
  openHeap('system', { backnd: 'software' });
}

// allocShareable's tiers are the ones it can allocate from; a buffer's tier may also be 'imported'
export function tiers(buf: DmaBuf): ShareableTier[] {
  allocShareable(4096, { tiers: ['udmabuf', 'memfd'] }).close();
  // @ts-expect-error: 'imported' is no tier to allocate from (allocShareable refuses it at run time too)
  allocShareable(4096, { tiers: ['imported'] });
  const tier: Tier = buf.tier;
  if (tier === 'imported') console.log('exported by another driver');
  return [...TIERS];
}
