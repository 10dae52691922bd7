/**
 * The real kernel, reached through the addon (src/). Outside lib/native/, lib/framework/ and
 * lib/share/socket.ts nothing touches the addon itself (test/layout.test.ts checks it): the
 * rest of the package goes through the Kernel interface (lib/kernel.ts) and the chooser.
 */
export { addonStatus, debug } from './load';
export { NativeKernel, loadNativeKernel, devNumbers, type NativeKernelDirs } from './kernel';
export { UDMABUF_PATH, hasUdmabuf, udmabufSizeLimit } from './udmabuf';
