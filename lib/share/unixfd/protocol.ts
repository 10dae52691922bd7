/**
 * GStreamer's unixfd protocol (gst-plugins-bad gst/unixfd, since 1.24; as 1.26 speaks it), the
 * bytes only. Every command is an 8-byte header `u32 type, u32 payload size` followed by the
 * payload, sent in one sendmsg on a SOCK_STREAM socket with its fds (SCM_RIGHTS) on it.
 *
 *   NEW_BUFFER (0)      sink -> src: NewBufferPayload (56 bytes), n_memory x MemoryPayload
 *                       {u64 size, u64 offset}, then n_meta serialized metas; one fd per memory
 *   RELEASE_BUFFER (1)  src -> sink: u64 id
 *   CAPS (2)            sink -> src: the caps string with its NUL
 *   EOS (3)             sink -> src: empty
 *
 * GStreamer writes the structs in the host's byte order (gstunixfd.h: plain C structs) and the
 * metas little-endian (gst_meta_serialize). Every platform this package builds for is
 * little-endian, so all of it is read and written little-endian here.
 *
 * Unknown command types are ignored by both of GStreamer's elements ("the protocol could have
 * been extended"), and so here.
 */

export const NEW_BUFFER = 0;
export const RELEASE_BUFFER = 1;
export const CAPS = 2;
export const EOS = 3;

/** the command header: u32 type, u32 payload size */
export const COMMAND_HEADER = 8;
/** sizeof (NewBufferPayload), without its memories */
const NEW_BUFFER_FIXED = 56;
/** sizeof (MemoryPayload) */
const MEMORY_PAYLOAD = 16;
/** GST_CLOCK_TIME_NONE, and GST_BUFFER_OFFSET_NONE */
const NONE = 0xffffffffffffffffn;

/** UnixFdMemoryType: what a NEW_BUFFER's fds are. GStreamer sends one type for all of a buffer's memories. */
export type UnixFdMemoryType = 'shm' | 'dmabuf';
const MEMORY_TYPES: readonly UnixFdMemoryType[] = ['shm', 'dmabuf'];

/** One memory of a buffer: `size` bytes at `offset` in its fd. */
export interface MemoryRange {
  size: number;
  offset: number;
}

/** A serialized GstMeta: [u32le total size][u32le name length][name][NUL][u8 version][data] */
export interface SerializedMeta {
  name: string;
  version: number;
  data: Buffer;
}

/** A NEW_BUFFER command's payload. Times in nanoseconds; null is GStreamer's NONE. */
export interface NewBuffer {
  /** the sender's id for this buffer, given back in RELEASE_BUFFER */
  id: bigint;
  pts: bigint | null;
  dts: bigint | null;
  duration: bigint | null;
  offset: bigint | null;
  offsetEnd: bigint | null;
  flags: number;
  memoryType: UnixFdMemoryType;
  memories: MemoryRange[];
  metas: SerializedMeta[];
}

/** One command, as sent: header and payload in one buffer. */
export function encodeCommand(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(COMMAND_HEADER + payload.length);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(payload.length, 4);
  payload.copy(out, COMMAND_HEADER);
  return out;
}

/** A command header: its type and the payload length that follows. */
export interface CommandHeader {
  type: number;
  length: number;
}

/** The header, or why the stream cannot be followed past it (a payload longer than `maxPayload`). */
export function decodeCommandHeader(head: Buffer, maxPayload: number): CommandHeader | string {
  const type = head.readUInt32LE(0);
  const length = head.readUInt32LE(4);
  if (length > maxPayload) return `a command of type ${type} says ${length} bytes of payload, more than maxPayload (${maxPayload})`;
  return { type, length };
}

const time = (v: bigint): bigint | null => (v === NONE ? null : v);

/** A u64 the program will use as a JS number (a size, an offset into an fd) */
function safeNumber(v: bigint): number | null {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}

/**
 * NEW_BUFFER's payload, or why it is malformed, with the buffer's id when its fixed part was
 * there to read (so a refused buffer can still be given back).
 */
export function decodeNewBuffer(p: Buffer): NewBuffer | { bad: string; id: bigint | null } {
  if (p.length < NEW_BUFFER_FIXED) return { bad: `a new-buffer payload of ${p.length} bytes is shorter than its ${NEW_BUFFER_FIXED}-byte header`, id: null };
  const id = p.readBigUInt64LE(0);
  const bad = (why: string) => ({ bad: why, id });
  const type = p.readUInt8(52);
  const nMemory = p.readUInt8(53);
  const nMeta = p.readUInt16LE(54);
  const memoryType = MEMORY_TYPES[type];
  if (memoryType === undefined) return bad(`unknown memory type ${type}`);
  const metasAt = NEW_BUFFER_FIXED + nMemory * MEMORY_PAYLOAD;
  if (p.length < metasAt) return bad(`a new-buffer payload of ${p.length} bytes is too short for its ${nMemory} memories`);
  const memories: MemoryRange[] = [];
  for (let i = 0; i < nMemory; i++) {
    const at = NEW_BUFFER_FIXED + i * MEMORY_PAYLOAD;
    const size = safeNumber(p.readBigUInt64LE(at));
    const offset = safeNumber(p.readBigUInt64LE(at + 8));
    if (size === null || offset === null || size + offset > Number.MAX_SAFE_INTEGER) return bad(`memory ${i}'s size or offset is out of range`);
    memories.push({ size, offset });
  }
  const metas: SerializedMeta[] = [];
  let at = metasAt;
  for (let i = 0; i < nMeta; i++) {
    const meta = decodeMeta(p, at);
    if (typeof meta === 'string') return bad(`meta ${i}: ${meta}`);
    metas.push(meta.meta);
    at += meta.consumed;
  }
  return {
    id,
    pts: time(p.readBigUInt64LE(8)),
    dts: time(p.readBigUInt64LE(16)),
    duration: time(p.readBigUInt64LE(24)),
    offset: time(p.readBigUInt64LE(32)),
    offsetEnd: time(p.readBigUInt64LE(40)),
    flags: p.readUInt32LE(48),
    memoryType,
    memories,
    metas,
  };
}

/** gst_meta_deserialize's framing: the meta at `at`, and how many bytes it took; or why not. */
function decodeMeta(p: Buffer, at: number): { meta: SerializedMeta; consumed: number } | string {
  if (p.length - at < 8) return 'truncated header';
  const total = p.readUInt32LE(at);
  const nameLen = p.readUInt32LE(at + 4);
  const headerSize = 8 + nameLen + 2;
  if (total > p.length - at || total < headerSize) return `total size ${total} does not fit`;
  if (p[at + 8 + nameLen] !== 0) return 'its name is not NUL-terminated';
  return {
    meta: {
      name: p.toString('latin1', at + 8, at + 8 + nameLen),
      version: p[at + headerSize - 1],
      data: Buffer.from(p.subarray(at + headerSize, at + total)),
    },
    consumed: total,
  };
}

function encodeMeta(m: SerializedMeta): Buffer {
  const name = Buffer.from(m.name, 'latin1');
  const headerSize = 8 + name.length + 2;
  const out = Buffer.alloc(headerSize + m.data.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt32LE(name.length, 4);
  name.copy(out, 8);
  out[headerSize - 1] = m.version;
  m.data.copy(out, headerSize);
  return out;
}

const u64 = (v: bigint | null): bigint => (v === null ? NONE : v);

/** NEW_BUFFER's payload for `b`. */
export function encodeNewBuffer(b: NewBuffer): Buffer {
  const fixed = Buffer.alloc(NEW_BUFFER_FIXED + b.memories.length * MEMORY_PAYLOAD);
  fixed.writeBigUInt64LE(b.id, 0);
  fixed.writeBigUInt64LE(u64(b.pts), 8);
  fixed.writeBigUInt64LE(u64(b.dts), 16);
  fixed.writeBigUInt64LE(u64(b.duration), 24);
  fixed.writeBigUInt64LE(u64(b.offset), 32);
  fixed.writeBigUInt64LE(u64(b.offsetEnd), 40);
  fixed.writeUInt32LE(b.flags, 48);
  fixed.writeUInt8(MEMORY_TYPES.indexOf(b.memoryType), 52);
  fixed.writeUInt8(b.memories.length, 53);
  fixed.writeUInt16LE(b.metas.length, 54);
  b.memories.forEach((m, i) => {
    fixed.writeBigUInt64LE(BigInt(m.size), NEW_BUFFER_FIXED + i * MEMORY_PAYLOAD);
    fixed.writeBigUInt64LE(BigInt(m.offset), NEW_BUFFER_FIXED + i * MEMORY_PAYLOAD + 8);
  });
  return Buffer.concat([fixed, ...b.metas.map(encodeMeta)]);
}

/** RELEASE_BUFFER's payload: the id, or why it is malformed (GStreamer reads the first 8 bytes of a longer one; so do we). */
export function decodeRelease(p: Buffer): bigint | string {
  if (p.length < 8) return `a release-buffer payload of ${p.length} bytes is shorter than its 8-byte id`;
  return p.readBigUInt64LE(0);
}

export function encodeRelease(id: bigint): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(id);
  return p;
}

/** CAPS's payload: the caps string, or why it is malformed (no NUL at its end, or one inside). */
export function decodeCaps(p: Buffer): string | { bad: string } {
  if (p.length < 1 || p[p.length - 1] !== 0) return { bad: 'the caps string is not NUL-terminated' };
  const caps = p.toString('utf8', 0, p.length - 1);
  if (caps.includes('\0')) return { bad: 'the caps string has a NUL inside' };
  return caps;
}

export function encodeCaps(caps: string): Buffer {
  return Buffer.from(`${caps}\0`, 'utf8');
}

/** GstVideoMeta, as gst_video_meta's serialize writes it (version 0). */
export interface GstVideoMeta {
  /** GstVideoFrameFlags */
  flags: number;
  /** GstVideoFormat's number (the caps' `format` names it) */
  format: number;
  /** in pixels */
  width: number;
  /** in pixels */
  height: number;
  /** per plane: where it starts and how far apart its rows are */
  planes: {
    /** the plane's offset in the buffer (its memories one after another) */
    offset: number;
    /** bytes from one row to the next */
    stride: number;
  }[];
}

export const VIDEO_META = 'GstVideoMeta';
/** GST_VIDEO_MAX_PLANES */
const MAX_PLANES = 4;

/** A GstVideoMeta's data, or why it is malformed. */
export function decodeVideoMeta(m: SerializedMeta): GstVideoMeta | string {
  if (m.version !== 0) return `GstVideoMeta version ${m.version} is not 0`;
  const d = m.data;
  if (d.length < 20) return 'GstVideoMeta is truncated';
  const nPlanes = d.readUInt32LE(16);
  if (nPlanes > MAX_PLANES) return `GstVideoMeta has ${nPlanes} planes (at most ${MAX_PLANES})`;
  if (d.length < 36 + nPlanes * 16) return 'GstVideoMeta is truncated';
  const planes: GstVideoMeta['planes'] = [];
  for (let i = 0; i < nPlanes; i++) {
    const offset = safeNumber(d.readBigUInt64LE(20 + i * 8));
    if (offset === null) return `plane ${i}'s offset is out of range`;
    planes.push({ offset, stride: d.readInt32LE(20 + nPlanes * 8 + i * 4) });
  }
  return { flags: d.readInt32LE(0), format: d.readInt32LE(4), width: d.readUInt32LE(8), height: d.readUInt32LE(12), planes };
}

/** A GstVideoMeta for `v` (no alignment padding), as unixfdsrc deserializes it. */
export function encodeVideoMeta(v: GstVideoMeta): SerializedMeta {
  const n = v.planes.length;
  const d = Buffer.alloc(36 + n * 16);
  d.writeInt32LE(v.flags, 0);
  d.writeInt32LE(v.format, 4);
  d.writeUInt32LE(v.width, 8);
  d.writeUInt32LE(v.height, 12);
  d.writeUInt32LE(n, 16);
  v.planes.forEach((p, i) => {
    d.writeBigUInt64LE(BigInt(p.offset), 20 + i * 8);
    d.writeInt32LE(p.stride, 20 + n * 8 + i * 4);
  });
  // padding top/bottom/left/right and stride_align: zero
  return { name: VIDEO_META, version: 0, data: d };
}
