/*
 * The frame format. Every message is one frame: a 12-byte header, then UTF-8 JSON
 * `{"buffers":[ItemMeta...],"payload":...}`, with the fds in SCM_RIGHTS: one description per
 * fd, in order. A description without `kind` is a dma-buf (BufferMeta, as before sync_files
 * could travel); `{"kind":"sync-file"}` is a sync_file (SyncFileMeta).
 *   0 u32le magic 'DMAB'   4 u8 version (1)   5 u8 flags   6 u16le fd count   8 u32le JSON length
 * flags: 0 a message; FLAG_LENT a lent message, its body also has `"lend": id` (the receiver
 * gives it back); FLAG_RELEASE a release, body `{"release":[id...]}`, no fds. A receiver that
 * predates a flag refuses the frame (any flag it does not know), as version 1 always said.
 * seqpacket: one frame = one sendmsg = one recvmsg, fds with it.
 * stream: the sender starts every frame with a sendmsg of its own carrying the frame's
 * fds (the rest, if the send was short, follows without fds). Linux hands fds to the
 * recvmsg that reads the first byte of their sendmsg and stops after it, so the
 * receiver never reads past the current frame (it asks for the header, then exactly
 * the JSON length): a frame's fds arrive with the read of its first byte, nowhere else.
 */
import { invalidArgValue, outOfRange, validateInteger } from '../args';
import type { Tier } from '../dmabuf';

/** SCM_MAX_FD: Linux refuses more fds in one sendmsg. */
export const MAX_FDS_PER_MESSAGE = 253;

/** What travels beside each fd: enough for the receiver to check it got what was meant. */
export interface BufferMeta {
  /** absent in frames of senders that knew only buffers */
  kind?: 'dma-buf';
  size: number;
  tier: Tier;
  name?: string;
}

export const SHAREABLE: readonly Tier[] = ['dma-heap', 'udmabuf', 'memfd', 'imported'];
export const isRealTier = (tier: Tier) => tier === 'dma-heap' || tier === 'udmabuf' || tier === 'imported';

/** A sync_file beside its fd: the fd says the rest (SYNC_IOC_FILE_INFO). */
export interface SyncFileMeta {
  kind: 'sync-file';
}

/** The description of one fd of a message. */
export type ItemMeta = BufferMeta | SyncFileMeta;

export const isSyncFileMeta = (m: ItemMeta): m is SyncFileMeta => m.kind === 'sync-file';

/** Check a peer's description of one fd; returns why it is wrong, or undefined. */
export function badMeta(m: unknown): string | undefined {
  if (!m || typeof m !== 'object') return 'a buffer description is not an object';
  const { kind, size, tier, name } = m as Record<string, unknown>;
  if (kind === 'sync-file') return undefined;
  if (kind !== undefined && kind !== 'dma-buf') return `bad item kind ${JSON.stringify(kind)}`;
  if (!Number.isSafeInteger(size) || (size as number) <= 0) return `bad buffer size ${JSON.stringify(size)}`;
  if (!SHAREABLE.includes(tier as Tier)) return `bad buffer tier ${JSON.stringify(tier)}`;
  if (name !== undefined && typeof name !== 'string') return 'bad buffer name';
  return undefined;
}

const MAGIC = 0x42414d44; // 'DMAB'
const VERSION = 1;
/** flags: a lent message (its body has `lend`), and a release (its body has `release`) */
export const FLAG_LENT = 0x01;
export const FLAG_RELEASE = 0x02;
/** a lend id: an integer in [1, 2^32 - 1] (a u32 in any peer's language), unique while it is out */
export const MAX_LEND_ID = 0xffffffff;
/** the most ids one release frame may name */
export const MAX_RELEASE_IDS = 1024;

export const isLendId = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= MAX_LEND_ID;
export const HEADER = 12;
const DEFAULT_MAX_FDS = 64;
const DEFAULT_MAX_PAYLOAD = 64 * 1024;
/** a seqpacket receive allocates maxPayload up front; metadata this big is a mistake */
const MAX_PAYLOAD = 16 * 1024 * 1024;

export interface Header {
  /** 0, FLAG_LENT or FLAG_RELEASE */
  flags: number;
  fdCount: number;
  length: number;
}

/** A message's frame; `lend` (an id) makes it a lent one. */
export function encodeFrame(metas: ItemMeta[], payload: unknown, maxPayload: number, lend?: number): Buffer {
  let text: string;
  try {
    const body: { buffers: ItemMeta[]; lend?: number; payload?: unknown } = { buffers: metas };
    if (lend !== undefined) body.lend = lend;
    if (payload !== undefined) body.payload = payload;
    text = JSON.stringify(body);
  } catch (err) {
    // a BigInt, a cycle, a throwing toJSON: the payload is the caller's to fix
    throw Object.assign(invalidArgValue('payload', payload, `can't be sent as JSON (${err instanceof Error ? err.message : 'JSON.stringify threw'})`), { cause: err });
  }
  const json = Buffer.from(text, 'utf8');
  if (json.length > maxPayload) {
    throw outOfRange("the message's JSON bytes", `<= maxPayload (${maxPayload})`, json.length);
  }
  return framed(json, lend === undefined ? 0 : FLAG_LENT, metas.length);
}

/** A release frame naming `ids` (1 to MAX_RELEASE_IDS of them): no fds. */
export function encodeRelease(ids: readonly number[]): Buffer {
  return framed(Buffer.from(JSON.stringify({ release: ids }), 'utf8'), FLAG_RELEASE, 0);
}

function framed(json: Buffer, flags: number, fdCount: number): Buffer {
  const frame = Buffer.alloc(HEADER + json.length);
  frame.writeUInt32LE(MAGIC, 0);
  frame.writeUInt8(VERSION, 4);
  frame.writeUInt8(flags, 5);
  frame.writeUInt16LE(fdCount, 6);
  frame.writeUInt32LE(json.length, 8);
  json.copy(frame, HEADER);
  return frame;
}

/** A release frame's ids, or why it is not one (its body parsed; the fds were counted before). */
export function releaseIds(body: unknown): number[] | string {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return 'a release is not a JSON object';
  const { buffers, release } = body as Record<string, unknown>;
  if (buffers !== undefined && !(Array.isArray(buffers) && buffers.length === 0)) return 'a release describes buffers';
  if (!Array.isArray(release)) return 'a release has no "release" list';
  if (release.length === 0) return 'a release names no id';
  if (release.length > MAX_RELEASE_IDS) return `a release names ${release.length} ids, more than ${MAX_RELEASE_IDS}`;
  if (!release.every(isLendId)) return `a release names an id that is not an integer in [1, ${MAX_LEND_ID}]`;
  return release as number[];
}

/** the header, or why it is not one */
export function decodeHeader(bytes: Buffer, maxPayload: number): Header | string {
  if (bytes.length < HEADER) return `${bytes.length} bytes are not a frame header`;
  if (bytes.readUInt32LE(0) !== MAGIC) return 'not a dma-heap frame (bad magic)';
  if (bytes[4] !== VERSION) return `unknown frame version ${bytes[4]}`;
  const flags = bytes[5];
  if (flags !== 0 && flags !== FLAG_LENT && flags !== FLAG_RELEASE) return `unknown frame flags ${flags}`;
  const length = bytes.readUInt32LE(8);
  if (length > maxPayload) return `the frame's JSON is ${length} bytes, more than maxPayload (${maxPayload})`;
  return { flags, fdCount: bytes.readUInt16LE(6), length };
}

/** A channel's limits, checked: most fds and most JSON bytes one message may carry. */
export function limits(options: { maxFds?: number; maxPayload?: number }): { maxFds: number; maxPayload: number } {
  const maxFds = validateInteger(options.maxFds === undefined ? DEFAULT_MAX_FDS : options.maxFds, 'options.maxFds', 0, MAX_FDS_PER_MESSAGE);
  const maxPayload = validateInteger(options.maxPayload === undefined ? DEFAULT_MAX_PAYLOAD : options.maxPayload, 'options.maxPayload', 64, MAX_PAYLOAD);
  return { maxFds, maxPayload };
}
