/**
 * GStreamer's unixfd protocol both ways: UnixFdSource (a client of `unixfdsink`: GStreamer into
 * Node) and UnixFdSink (a server for `unixfdsrc`: Node into GStreamer).
 */
export { type GstCaps, type GstCapsValue, type GstFraction } from './caps';
export { type UnixFdMemoryType, type GstVideoMeta } from './protocol';
export { UnixFdFrame, UnixFdSource, type UnixFdMemory, type UnixFdSourceEvents, type UnixFdSourceOptions } from './source';
export { UnixFdSink, type UnixFdBufferInit, type UnixFdMemoryInit, type UnixFdSinkEvents, type UnixFdSinkOptions } from './sink';
