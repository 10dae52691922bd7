/**
 * Why a message was refused (code 'ERR_DMA_HEAP_BAD_MESSAGE').
 *
 * @inline
 */
export type BadReason =
  | 'controlTruncated'
  | 'foreignControl'
  | 'truncated'
  | 'malformed'
  | 'fdCount'
  | 'notDmaBuf'
  | 'notSyncFile'
  /** a lent message whose id this end still holds from an earlier one (not released yet) */
  | 'loanReused'
  /** a release frame that is not one: fds with it, a bad or empty id list, more than 1024 ids */
  | 'badRelease'
  /** a release naming ids this end did not lend, or that came back already (the others are released) */
  | 'unknownLoan';
/**
 * Why a channel ended (code 'ERR_DMA_HEAP_CHANNEL_CLOSED').
 *
 * @inline
 */
export type ClosedReason = 'closed' | 'peerClosed' | 'midMessage' | 'error';

/** DmaBufChannelError's codes. */
export const CHANNEL_ERROR_CODES = ['ERR_DMA_HEAP_BAD_MESSAGE', 'ERR_DMA_HEAP_CHANNEL_CLOSED'] as const;
/**
 * DmaBufChannelError's `code`: 'ERR_DMA_HEAP_BAD_MESSAGE' or 'ERR_DMA_HEAP_CHANNEL_CLOSED'.
 *
 * @useDeclaredType
 */
export type DmaBufChannelErrorCode = (typeof CHANNEL_ERROR_CODES)[number];

/**
 * code 'ERR_DMA_HEAP_BAD_MESSAGE' (reason: BadReason): a message was refused and every
 * fd it carried closed; code 'ERR_DMA_HEAP_CHANNEL_CLOSED' (reason: ClosedReason): the
 * channel is over, by close(), the peer, or an error (in `cause`).
 */
export class DmaBufChannelError extends Error {
  /** 'ERR_DMA_HEAP_BAD_MESSAGE' (a message refused, the channel goes on) or 'ERR_DMA_HEAP_CHANNEL_CLOSED' (the channel is over) */
  code: DmaBufChannelErrorCode;
  /** the finer why: a BadReason for a bad message, a ClosedReason for an end */
  reason: BadReason | ClosedReason;
  /**
   * The package makes these; a test double may too.
   *
   * @param code 'ERR_DMA_HEAP_BAD_MESSAGE' or 'ERR_DMA_HEAP_CHANNEL_CLOSED'
   * @param reason why, as `reason`
   * @param message what happened, in words
   * @param cause the underlying error, if any (as `cause`)
   * @throws Nothing.
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * const [a, b] = DmaBufChannel.pair();
   * a.close();
   * await b.receive().catch((err) => console.log(err.code, err.reason)); // 'ERR_DMA_HEAP_CHANNEL_CLOSED' 'peerClosed'
   * ```
   */
  constructor(code: DmaBufChannelError['code'], reason: DmaBufChannelError['reason'], message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DmaBufChannelError';
    this.code = code;
    this.reason = reason;
  }
}

export const bad = (reason: BadReason, message: string) =>
  new DmaBufChannelError('ERR_DMA_HEAP_BAD_MESSAGE', reason, `bad message refused, its fds closed: ${message}`);
export const closed = (reason: ClosedReason, message: string, cause?: unknown) =>
  new DmaBufChannelError('ERR_DMA_HEAP_CHANNEL_CLOSED', reason, message, cause);

