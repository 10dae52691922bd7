/**
 * Issue 18, item 3: a closed SyncFile is one error wherever it is used — its own methods,
 * DmaBuf.importSyncFile, sending it — a DmaBufStateError with code ERR_SYNC_FILE_CLOSED
 * (importSyncFile and the SyncFile's own methods threw a plain Error, sending it a
 * DmaBufStateError). Runs on every host: the software framework's sync_files suffice.
 */
import { DmaBufStateError, openHeap, spawnWithBuffers } from '../../lib';
import { Framework } from '../../lib/framework';

const closedError = expect.objectContaining({ name: 'DmaBufStateError', code: 'ERR_SYNC_FILE_CLOSED' });

test('a closed SyncFile: the same DmaBufStateError from every place that uses it', async () => {
  const fw = new Framework();
  try {
    const buf = openHeap('system', { framework: fw }).alloc(4096);
    const sf = buf.exportSyncFile('read');
    sf.close();
    const thrown: unknown[] = [];
    for (const use of [() => sf.info(), () => sf.dup(), () => buf.importSyncFile(sf, 'read'), () => spawnWithBuffers(process.execPath, ['-e', '0'], [sf])]) {
      try {
        use();
      } catch (err) {
        thrown.push(err);
      }
    }
    thrown.push(await sf.wait().catch((err: unknown) => err));
    expect(thrown).toHaveLength(5);
    for (const err of thrown) {
      expect(err).toBeInstanceOf(DmaBufStateError);
      expect(err).toEqual(closedError);
    }
  } finally {
    fw.dispose();
  }
});
