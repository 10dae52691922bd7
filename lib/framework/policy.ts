import { types } from 'node:util';
import { invalidArgValue, validateArray, validateInteger, validateOptions } from '../args';
/**
 * Who may open a simulated heap device. The real nodes are `crw------- root` (0600) by
 * default, which in software would only ever say "no" to a normal user, so the framework's
 * default is to allow; a policy reproduces a real setup (mode/uid/gid, as a udev rule would
 * set) or any rule at all (a predicate). A denied open fails EACCES like open(2) does.
 */
export interface Credentials {
  /** user id */
  uid: number;
  /** group id */
  gid: number;
  /** supplementary groups */
  groups: number[];
}

/** What an access policy predicate is given: the opener's credentials and the heap. */
export interface AccessContext extends Credentials {
  /** the heap's name */
  heap: string;
  /** its device path */
  path: string;
}

/** Who may open a heap: 'allow', 'deny', a device node's mode and owner, or a predicate. A denial is EACCES from open. */
export type AccessPolicy =
  | 'allow'
  | 'deny'
  /** a device node's owner and permission bits; uid/gid default to 0 (root) */
  | {
      /** the permission bits, e.g. 0o660 */
      mode: number;
      /** the owner (default 0) */
      uid?: number;
      /** the group (default 0) */
      gid?: number;
    }
  | ((ctx: AccessContext) => boolean);

/** the process's own credentials (uid 0 where the platform has none, as on Windows) */
export function processCredentials(): Credentials {
  return {
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    groups: process.getgroups?.() ?? [],
  };
}

/** a uid or gid: what the kernel's kuid_t holds (u32; (u32)-1 is "no id", refused) */
const ID_MAX = 0xfffffffe;

/**
 * options.credentials: each of uid, gid and groups the process's own when absent. A key given
 * as null (or anything but a u32 id) is refused: spread over the defaults it used to stand,
 * unchecked, for an id every policy then compared against.
 */
export function validateCredentials(options: Partial<Credentials> | undefined): Credentials {
  const given = validateOptions(options, ['uid', 'gid', 'groups'], 'options.credentials');
  const own = processCredentials();
  const id = (value: unknown, what: string, fallback: number) => (value === undefined ? fallback : validateInteger(value, what, 0, ID_MAX));
  let groups = own.groups;
  if (given.groups !== undefined) {
    validateArray(given.groups, 'options.credentials.groups', 'an array of group ids');
    groups = given.groups.map((g, i) => validateInteger(g, `options.credentials.groups[${i}]`, 0, ID_MAX));
  }
  return { uid: id(given.uid, 'options.credentials.uid', own.uid), gid: id(given.gid, 'options.credentials.gid', own.gid), groups };
}

/** May `ctx` open the node for reading (heaps are opened O_RDONLY)? */
export function mayOpen(policy: AccessPolicy, ctx: AccessContext): boolean {
  if (policy === 'allow') return true;
  if (policy === 'deny') return false;
  if (typeof policy === 'function') return policy(ctx) === true;
  // generic_permission for MAY_READ; root passes by CAP_DAC_OVERRIDE
  if (ctx.uid === 0) return true;
  const owner = policy.uid ?? 0;
  const group = policy.gid ?? 0;
  if (ctx.uid === owner) return (policy.mode & 0o400) !== 0;
  if (ctx.gid === group || ctx.groups.includes(group)) return (policy.mode & 0o040) !== 0;
  return (policy.mode & 0o004) !== 0;
}

export function validatePolicy(policy: AccessPolicy): void {
  if (policy === 'allow' || policy === 'deny' || typeof policy === 'function') return;
  // an object policy is read on every open: a Proxy's traps would run there (or throw, revoked)
  if (policy && typeof policy === 'object' && !types.isProxy(policy) && Number.isInteger(policy.mode) && policy.mode >= 0 && policy.mode <= 0o7777 &&
    [policy.uid, policy.gid].every((id) => id === undefined || (Number.isInteger(id) && id >= 0)))
    return;
  throw invalidArgValue('policy', policy, "must be 'allow', 'deny', { mode, uid?, gid? } or (ctx) => boolean");
}
