/**
 * Devices for the fence and capture tests on a real kernel: vgem (a DRM driver whose fence
 * ioctls let a test play a GPU) and vivid (a V4L2 test camera). The C helpers next to this
 * file are compiled here with the host's cc (the x86 VM guest runs host binaries).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** the part of the addon (lib's typed surface) these helpers use */
export interface SocketAddon {
  readonly abi: { SOCK_SEQPACKET: number };
  socketpair(type: number): [number, number];
  close(fd: number): void;
  sendFds(fd: number, payload: Uint8Array, fds: number[]): number;
  recvFds(fd: number, maxPayload: number, maxFds: number): { payload: Buffer; fds: number[]; eof: boolean };
  poll(fd: number, events: number, callback: (err: Error | null, events: number) => void): Poller;
}
interface Poller {
  stop(): void;
}

/** Compile test/devices/<name>.c once per source (cached by its hash); returns the binary. */
export function buildHelper(name: 'vgem-fence' | 'vivid-capture'): string {
  const src = path.join(__dirname, `${name}.c`);
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), 'dma-heap-devices');
  const bin = path.join(dir, `${name}-${hash}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}`;
  execFileSync(process.env.CC || 'cc', ['-O2', '-Wall', '-o', tmp, src], { stdio: 'inherit' });
  renameSync(tmp, bin);
  return bin;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface Reply {
  text: string;
  fd?: number;
}

/**
 * A vgem "GPU" in a child process, driven over a SOCK_SEQPACKET socket: import our dma-buf
 * fds (PRIME_FD_TO_HANDLE), attach read/write fences, signal them, export drm dma-bufs.
 * Every call returns a promise: the event loop keeps running while the device works.
 */
export class Vgem {
  private constructor(
    private readonly addon: SocketAddon,
    private readonly sock: number,
    private readonly child: ChildProcess,
  ) {}

  static async open(addon: SocketAddon): Promise<Vgem> {
    const bin = buildHelper('vgem-fence');
    const [mine, theirs] = addon.socketpair(addon.abi.SOCK_SEQPACKET);
    let child: ChildProcess;
    try {
      child = spawn(bin, [], { stdio: ['ignore', 'inherit', 'inherit', theirs] });
    } finally {
      addon.close(theirs);
    }
    const vgem = new Vgem(addon, mine, child);
    const hello = await vgem.receive();
    if (hello.text !== 'ready') {
      vgem.close();
      throw new Error(`vgem-fence: ${hello.text}`);
    }
    return vgem;
  }

  private receive(): Promise<Reply> {
    return new Promise((resolve, reject) => {
      let poller: Poller | null = null;
      const attempt = (): boolean => {
        try {
          const m = this.addon.recvFds(this.sock, 256, 1);
          if (m.eof) throw new Error('vgem-fence exited');
          resolve({ text: m.payload.toString('utf8'), ...(m.fds.length ? { fd: m.fds[0] } : {}) });
        } catch (e) {
          if ((e as { code?: string }).code === 'EAGAIN') return false;
          reject(e);
        }
        return true;
      };
      if (attempt()) return;
      poller = this.addon.poll(this.sock, 1, (err) => {
        if (err) {
          poller?.stop();
          reject(err);
        } else if (attempt()) poller?.stop();
      });
    });
  }

  /** requests run one at a time: one reply per command, and one uv_poll per fd number */
  private queue: Promise<unknown> = Promise.resolve();

  /** one command; rejects with an Error carrying `errno` on "err" replies */
  request(text: string, fd?: number): Promise<Reply> {
    const next = this.queue.then(() => this.exchange(text, fd));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async exchange(text: string, fd?: number): Promise<Reply> {
    this.addon.sendFds(this.sock, Buffer.from(text), fd === undefined ? [] : [fd]);
    const r = await this.receive();
    if (r.text.startsWith('err ')) {
      const [, num, ...what] = r.text.split(' ');
      throw Object.assign(new Error(`vgem ${text}: ${what.join(' ')} (errno ${num})`), { errno: Number(num) });
    }
    return r;
  }

  /** DRM_IOCTL_PRIME_FD_TO_HANDLE: vgem imports the dma-buf; returns the GEM handle */
  async import(fd: number): Promise<number> {
    return Number((await this.request('import', fd)).text.split(' ')[1]);
  }

  /** DRM_IOCTL_VGEM_FENCE_ATTACH: a pending read or write fence on the buffer; returns its id */
  async attach(handle: number, access: 'read' | 'write'): Promise<number> {
    return Number((await this.request(`attach ${handle} ${access === 'write' ? 'w' : 'r'}`)).text.split(' ')[1]);
  }

  /** DRM_IOCTL_VGEM_FENCE_SIGNAL */
  async signal(fence: number): Promise<void> {
    await this.request(`signal ${fence}`);
  }

  /** a vgem dumb buffer exported as a dma-buf (exporter "drm"); the fd is the caller's */
  async dumb(bytes: number): Promise<number> {
    const r = await this.request(`dumb ${bytes}`);
    if (r.fd === undefined) throw new Error('vgem dumb: no fd came back');
    return r.fd;
  }

  /** closing the socket ends the helper; vgem signals its remaining fences as its file closes */
  close(): void {
    try {
      this.addon.close(this.sock);
    } catch {
      // closed already
    }
  }

  /** close, and wait until the helper has exited (its fences are signalled by then) */
  async closed(): Promise<void> {
    this.close();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await new Promise((resolve) => this.child.once('exit', resolve));
  }
}

export interface VividFormat {
  device: string;
  width: number;
  height: number;
  bytesPerLine: number;
  sizeImage: number;
}

function parseFormat(out: string): VividFormat {
  const device = /^device (\S+)/m.exec(out)?.[1] ?? '';
  const f = /^format (\d+) (\d+) (\d+) (\d+)/m.exec(out);
  if (!f) throw new Error(`vivid-capture printed no format:\n${out}`);
  return { device, width: +f[1], height: +f[2], bytesPerLine: +f[3], sizeImage: +f[4] };
}

/** vivid's capture node and the YUYV format it agrees to for width x height */
export function vividProbe(width: number, height: number, device?: string): VividFormat {
  const env = { ...process.env, VIVID_DEVICE: device ?? '' };
  return parseFormat(execFileSync(buildHelper('vivid-capture'), ['probe', String(width), String(height)], { env }).toString());
}

/**
 * The capture node of the first vivid instance that uses vmalloc (vivid.allocators: 0
 * vmalloc, 1 dma-contig; instance 0 unless the parameter says otherwise). dma-contig refuses
 * system-heap memory (EFAULT at QBUF, measured), so capture tests use a vmalloc instance.
 */
export function vividVmallocNode(): string | undefined {
  let allocators: string[] = [];
  try {
    allocators = readFileSync('/sys/module/vivid/parameters/allocators', 'utf8').trim().split(',');
  } catch {
    // built without the parameter readable: instance 0, vmalloc by default
  }
  const instance = Math.max(0, allocators.findIndex((a) => a.trim() === '0' || a.trim() === ''));
  const name = `vivid-${String(instance).padStart(3, '0')}-vid-cap`;
  for (const v of listDir('/sys/class/video4linux')) {
    try {
      if (readFileSync(`/sys/class/video4linux/${v}/name`, 'utf8').trim() === name) return `/dev/${v}`;
    } catch {
      // vanished
    }
  }
  return undefined;
}

export interface Frame {
  index: number;
  bytesUsed: number;
  sequence: number;
}

/**
 * vivid captures `frames` frames into the dma-bufs `fds` (V4L2_MEMORY_DMABUF), in a child
 * process; resolves with the format and the frames in dequeue order. Each buffer holds one
 * of the last frames when it resolves.
 */
export function vividCapture(
  fds: number[],
  width: number,
  height: number,
  frames: number,
  device?: string,
): Promise<{ format: VividFormat; frames: Frame[] }> {
  const bin = buildHelper('vivid-capture');
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['capture', String(width), String(height), String(fds.length), String(frames)], {
      stdio: ['ignore', 'pipe', 'pipe', ...fds],
      env: { ...process.env, VIVID_DEVICE: device ?? '' },
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`vivid-capture exited ${code}: ${err.trim()}`));
      const list = [...out.matchAll(/^frame (\d+) (\d+) (\d+)$/gm)].map((m) => ({ index: +m[1], bytesUsed: +m[2], sequence: +m[3] }));
      resolve({ format: parseFormat(out), frames: list });
    });
  });
}
