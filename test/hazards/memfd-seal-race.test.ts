/**
 * A peer's memfd is adopted only once it is sealed against shrinking, at the size read after
 * the seal. Read the other way round (size, then seals), a sender that shrank its memfd and
 * then sealed it between the two reads got it adopted at the old size: the tail of every
 * mapping was past the file's end, and touching it was SIGBUS, the receiver dead. The peer's
 * move (truncate, then seal) is played here in-process, just before the receiver reads the seals.
 */
import fs from 'node:fs';
import { fromFd } from '../../lib';
import { Framework } from '../../lib/framework';
import { loadAddon } from '../../lib/native/load';
import { F_SEAL_SHRINK } from '../../lib/uapi';
import { newFds, openFds } from '../helpers/fds';
import { testIf } from '../helpers/skip';

const addon = loadAddon();

testIf(addon !== null, 'memfds from a peer need the native addon')('a memfd shrunk and then sealed while it is being adopted is adopted at the size it has, never its old one', () => {
  const page = 4096;
  const fd = addon!.memfdBuffer('peer', 2 * page, 0); // unsealed, two pages
  const before = openFds();
  let played = false;
  // the addon object is frozen: the framework's kernel gets an object over it whose getSeals
  // lets the peer move first
  const fw = new Framework();
  const real = addon!;
  const view = Object.create(real, {
    getSeals: {
      value: (f: number) => {
        if (!played && fs.readlinkSync(`/proc/self/fd/${f}`).startsWith('/memfd:peer')) {
          played = true; // the peer's move lands now: it shrinks its memfd, then seals it
          fs.ftruncateSync(f, page);
          real.addSeals(f, F_SEAL_SHRINK);
        }
        return real.getSeals(f);
      },
    },
  }) as typeof real;
  (fw.kernel as unknown as { addon: typeof real }).addon = view;
  try {
    const adopted = fromFd(fd, { framework: fw });
    expect(played).toBe(true);
    expect(adopted.size).toBe(page); // the old order adopted 8192 bytes over a 4096-byte file
    expect(adopted.read(page - 1, 1)).toEqual(Buffer.from([0])); // the last byte is there
    adopted.close();
  } finally {
    fs.closeSync(fd);
    fw.dispose();
  }
  expect(newFds(before)).toEqual([]);
});
