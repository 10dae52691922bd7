// Types of root.js (CommonJS, like the VM rig) for the TypeScript tests: import from './root'.
import type { ChildProcess, SpawnOptions } from 'node:child_process';

/** the Debian suite the root comes from */
export const SUITE: string;
/** installed with their dependency closure */
export const PACKAGES: readonly string[];
/** plugin package -> the plugins (libgst<name>.so) kept from it */
export const PLUGINS: Readonly<Record<string, readonly string[]>>;
/** the elements the build checks for */
export const ELEMENTS: readonly string[];

/** the root's path, building it first if it is not cached (never call it from a test: it downloads) */
export function gstRoot(cache?: string): string;
/** the root's path when it is built and usable by this process (x86-64), else null; never builds */
export function cachedGstRoot(cache?: string): string | null;
/** where the root for the current package lists lives, built or not */
export function gstRootPath(cache?: string): string;
/** the root's dma-heap-gst.json: GStreamer version, package versions, build seconds, bytes */
export function gstRootInfo(root: string): {
  suite: string; gstreamer: string; packages: Record<string, string>; plugins: Record<string, string[]>;
  registry: string; seconds: number; downloadSeconds: number; bytes: number;
};
/** why gst-launch-1.0 cannot run here (a reason for testIf), or null when it can */
export function gstUnavailable(root?: string | null): string | null;
/**
 * A fresh folder under ROOT/tmp: `inside` as the pipeline sees it, `host` as this process does;
 * `insideSocket`/`hostSocket` name `name` (default gst.sock) in it. The caller removes `host`.
 */
export function gstSocketDir(root: string, name?: string): { host: string; inside: string; hostSocket: string; insideSocket: string };
/** `chroot ROOT gst-launch-1.0 ...pipelineArgs`, spawned (stdio defaults to ['ignore', 'pipe', 'pipe']) */
export function gstLaunch(
  pipelineArgs: readonly string[],
  options?: { root?: string | null; env?: Record<string, string> } & Omit<SpawnOptions, 'env'>,
): ChildProcess;
/** the clean environment gst-launch-1.0 runs with, plus `env` */
export function gstEnv(env?: Record<string, string>): Record<string, string>;
/** the VM init's shell commands mounting /dev, /proc, /sys and a tmpfs /tmp into the root at `r` */
export function gstRootMounts(r: string): string;
