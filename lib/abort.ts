/**
 * What every aborted wait of the package rejects with (a pool's acquireAsync, a dma-buf's
 * idle and cpuAccessAsync, a sync_file's wait): Node's own AbortError, `code` 'ABORT_ERR', the
 * signal's reason as `cause`, as timers/promises and events.once reject. One shape, so that
 * `err.name === 'AbortError'` means the same everywhere, and a reason that is no Error (a
 * string, 0, null) or one the caller froze is carried, never thrown or written on.
 */
export function abortError(signal: AbortSignal, what: string): Error {
  return Object.assign(new Error(`${what} was aborted`, { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}
