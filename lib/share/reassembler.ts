/**
 * Frames on a stream socket, put back together from reads: a channel's (frame.ts) and
 * GStreamer's unixfd commands (unixfd/protocol.ts) alike, each a fixed header that says how
 * long the body is. The reader asks for the header, then exactly the body's length (want()),
 * so a read never crosses into the next frame, and a frame's fds arrive with its first byte.
 * A frame found bad on the way (control trouble, fds mid-frame) is read to its end and then
 * refused, so the stream stays in step; a bad header leaves nothing to follow the stream by.
 */
import { bad, type DmaBufChannelError } from './errors';
import { closeAll, type Sockets } from './socket';

/** what a header must say: how many body bytes follow it */
export interface FrameHeader {
  length: number;
}

export type Fed<Header extends FrameHeader> =
  | { kind: 'more' }
  | { kind: 'frame'; header: Header; body: Buffer; fds: number[] }
  /** the frame was read to its end and is refused (its fds closed); its header says what it was */
  | { kind: 'refused'; err: DmaBufChannelError; header: Header }
  /** a bad header: the stream can't be followed past this point */
  | { kind: 'unfollowable'; reason: string };

export class StreamReassembler<Header extends FrameHeader> {
  readonly #head: Buffer;
  #headLen = 0;
  #header: Header | null = null;
  #body: Buffer = Buffer.alloc(0);
  #bodyGot = 0;
  #fds: number[] = [];
  #bad: DmaBufChannelError | null = null;

  /**
   * @param sock the socket calls (to close fds of refused frames)
   * @param headerSize the header's fixed size
   * @param decode the header, or why the stream can't be followed past it
   */
  constructor(
    private readonly sock: Sockets,
    headerSize: number,
    private readonly decode: (head: Buffer) => Header | string,
  ) {
    this.#head = Buffer.alloc(headerSize);
  }

  /** no byte of the next frame has been read */
  get atStart(): boolean {
    return this.#headLen === 0;
  }

  /** how many bytes the next read may take without reading past this frame */
  want(): number {
    return this.#header ? this.#body.length - this.#bodyGot : this.#head.length - this.#headLen;
  }

  /** one read's bytes and fds, and what was wrong with its control data (if anything) */
  feed(bytes: Buffer, fds: number[], problem: DmaBufChannelError | null): Fed<Header> {
    const atStart = this.atStart;
    if (problem) this.#poison(problem);
    if (fds.length) {
      if (atStart && !this.#bad) this.#fds = fds;
      else {
        closeAll(this.sock, fds);
        if (!atStart) this.#poison(bad('malformed', 'fds arrived in the middle of a frame'));
      }
    }
    if (!this.#header) {
      bytes.copy(this.#head, this.#headLen);
      this.#headLen += bytes.length;
      if (this.#headLen < this.#head.length) return { kind: 'more' };
      const header = this.decode(this.#head);
      if (typeof header === 'string') return { kind: 'unfollowable', reason: header };
      this.#header = header;
      this.#body = Buffer.alloc(header.length);
      this.#bodyGot = 0;
    } else {
      bytes.copy(this.#body, this.#bodyGot);
      this.#bodyGot += bytes.length;
    }
    if (this.#bodyGot < this.#body.length) return { kind: 'more' };
    const header = this.#header;
    const body = this.#body;
    const held = this.#fds;
    const poisoned = this.#bad;
    this.#headLen = 0;
    this.#header = null;
    this.#body = Buffer.alloc(0);
    this.#bodyGot = 0;
    this.#fds = [];
    this.#bad = null;
    return poisoned ? { kind: 'refused', err: poisoned, header } : { kind: 'frame', header, body, fds: held };
  }

  /** the channel is over: close the fds of a frame half read */
  drop(): void {
    closeAll(this.sock, this.#fds);
    this.#fds = [];
  }

  /** The frame being read is bad: drop its fds now, refuse it when its last byte is read. */
  #poison(err: DmaBufChannelError): void {
    closeAll(this.sock, this.#fds);
    this.#fds = [];
    this.#bad ??= err;
  }
}
