export type BadReason = 'controlTruncated' | 'foreignControl' | 'truncated' | 'malformed' | 'fdCount' | 'notDmaBuf' | 'notSyncFile';
export type ClosedReason = 'closed' | 'peerClosed' | 'midMessage' | 'error';

/**
 * code 'ERR_DMA_HEAP_BAD_MESSAGE' (reason: BadReason): a message was refused and every
 * fd it carried closed; code 'ERR_DMA_HEAP_CHANNEL_CLOSED' (reason: ClosedReason): the
 * channel is over, by close(), the peer, or an error (in `cause`).
 */
export const CHANNEL_ERROR_CODES = ['ERR_DMA_HEAP_BAD_MESSAGE', 'ERR_DMA_HEAP_CHANNEL_CLOSED'] as const;
export type DmaBufChannelErrorCode = (typeof CHANNEL_ERROR_CODES)[number];

export class DmaBufChannelError extends Error {
  code: DmaBufChannelErrorCode;
  reason: BadReason | ClosedReason;
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

