// Type-checked (never run) by code-blocks.test.ts against the built .d.ts, as a user's
// TypeScript sees them: the types users write against exist, and misuse does not compile.
import {
  allocShareable,
  DmaBuf as DmaBufClass,
  DmaBufChannel,
  DmaBufServer,
  Heap,
  openHeap,
  PooledBuffer,
  SyncFile,
  TIERS,
  type DmaBuf,
  type DmaBufServerEvents,
  type DmaBufStateError,
  type DmaHeapError,
  type ShareableTier,
  type Tier,
} from 'dma-heap';
import {
  Framework,
  type AccessPolicy,
  type AllocationFault,
  type BackingMemory,
  type DmaHeap,
  type DmaHeapOps,
  type FrameworkOptions,
  type KernelDmaBuf,
  type Profile,
} from 'dma-heap/framework';
// @ts-expect-error: the software framework is its own entry point (dma-heap/framework), not the user's API
import { Framework as NotInTheMainEntry } from 'dma-heap';

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

// a heap author's own function, typed with the framework's names: its dma-buf is a
// KernelDmaBuf (struct dma_buf), which no longer collides with the public DmaBuf handle
function carve(heap: DmaHeap, len: bigint, fdFlags: number): KernelDmaBuf<BackingMemory> {
  const backing = framework.allocBacking(Number(len), heap.name);
  return framework.exportBacking({ expName: heap.name, size: Number(len), flags: fdFlags, backing, priv: backing });
}
framework.addHeap({ name: 'carved', ops: { allocate: carve } });
// the simulated kernel is behind the configuration, not on it
// @ts-expect-error: ioctl is the kernel's (framework.kernel.ioctl), not the configuration's
framework.ioctl(0, 0, null);
void NotInTheMainEntry;

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

// Made by factories only: every such constructor takes a token the package never exports, so
// none compiles (once, stripInternal left an implicit `new Heap()` that crashed at run time)
export function constructors(buf: DmaBuf): void {
  // @ts-expect-error: openHeap() opens heaps
  new Heap();
  // @ts-expect-error: a symbol of one's own is not the token
  new Heap(Symbol('internal'), undefined, 'system');
  // @ts-expect-error: heap.alloc(), allocShareable() or DmaBuf.fromFd()
  new DmaBufClass(buf.fd, { tier: 'memfd', readOnly: false });
  // @ts-expect-error: buf.exportSyncFile() or SyncFile.fromFd()
  new SyncFile();
  // @ts-expect-error: pool.acquire()
  new PooledBuffer();
  // @ts-expect-error: DmaBufChannel.connect(), pair(), fromFd()
  new DmaBufChannel();
  // @ts-expect-error: DmaBufChannel.listen()
  new DmaBufServer();
  // a subclass inherits the constructor, token and all
  class MyHeap extends Heap {}
  // @ts-expect-error: no more constructible than Heap
  new MyHeap();
}

// error codes are unions: a misspelt code in a comparison never matches, so it does not compile
export function codes(err: DmaHeapError, state: DmaBufStateError): string {
  // @ts-expect-error: ENOMEN is no errno
  if (err.code === 'ENOMEN') return 'never';
  // @ts-expect-error: no such state code
  if (state.code === 'ERR_DMA_BUF_CLOSD') return 'never';
  return err.code === 'ENOMEM' || state.code === 'ERR_DMA_BUF_CLOSED' ? 'handled' : 'other';
}

// Payloads typed by the user: Receive for what arrives (the user's word: JSON from a peer is not
// validated), Send for what is sent (default: the same). A server's channels have its types.
interface Frame {
  seq: number;
  format: string;
}
interface Ack {
  seq: number;
}
export async function payloads(bufs: DmaBuf[], where: string): Promise<void> {
  const [producer, consumer] = DmaBufChannel.pair<Ack, Frame>(); // the producer sends Frames
  await producer.send(bufs, { seq: 1, format: 'NV12' });
  // @ts-expect-error: a Frame is required
  await producer.send(bufs);
  // @ts-expect-error: not a Frame
  await producer.send(bufs, { seq: '1', format: 'NV12' });
  const format: string = (await consumer.receive()).payload.format;
  for await (const { payload } of consumer) await consumer.send([], { seq: payload.seq });
  // @ts-expect-error: the consumer sends Acks
  await consumer.send([], { seq: 2, format });
  const ack: Ack = (await producer.receive()).payload;

  // untyped, as before: the payload is unknown and may be left out
  const [plain] = DmaBufChannel.pair();
  await plain.send([]);
  const got = (await plain.receive()).payload;
  // @ts-expect-error: unknown until the receiver checks it
  console.log(got.seq, ack.seq);

  const server = DmaBufChannel.listen<Frame, Ack>(where);
  server.on('connection', async (channel) => {
    for await (const { payload } of channel) await channel.send([], { seq: payload.seq });
  });
  server.on('refused', (_err, channel) => {
    const typed: DmaBufChannel<Frame, Ack> = channel;
    typed.close();
  });
  const client = DmaBufChannel.connect<Ack, Frame>(where);
  await client.send(bufs, { seq: 3, format: 'NV12' });
  const reply: Ack = (await client.receive()).payload;
  console.log(reply.seq);
}
