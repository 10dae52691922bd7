import { fdList, parseBufinfo } from '../../lib/cli/dump';

// /sys/kernel/debug/dma_buf/bufinfo as Debian's 6.12.117 printed it in the VM (two system-heap
// buffers), with a device attachment and a fence line added in the kernel's format
// (dma_buf_debug_show, dma_resv_describe) for a buffer a driver imported.
const TEXT = `
Dma-buf Objects:
size    \tflags   \tmode    \tcount   \texp_name\tino     \tname
01048576\t00000002\t00080007\t00000004\tsystem\t00000002\tframe0
\tAttached Devices:
Total 0 devices attached

04194304\t00000002\t00080007\t00000001\tsystem\t00000001\t<none>
\twrite fence: vgem vgem seq 1 unsignalled
\tAttached Devices:
\tvgem
\t0000:00:02.0
Total 2 devices attached


Total 2 objects, 5242880 bytes
`;

test('bufinfo: every buffer with size, count, exporter, ino, name and attached devices', () => {
  expect(parseBufinfo(TEXT)).toEqual([
    { size: 1048576, count: 4, exporter: 'system', ino: 2, name: 'frame0', attachments: [] },
    { size: 4194304, count: 1, exporter: 'system', ino: 1, attachments: ['vgem', '0000:00:02.0'] },
  ]);
});

test('bufinfo: nothing recognisable is no buffers, not a throw', () => {
  expect(parseBufinfo('')).toEqual([]);
  expect(parseBufinfo('garbage\n\tAttached Devices:\n\tx\n')).toEqual([]);
});

// Any process may name its buffers, newlines included (31 bytes at most): what a name can make
// of the lines after its buffer's must never pass for a buffer or an attachment.
test('bufinfo: a name cannot forge a buffer, an attachment or the end of its block', () => {
  const forgedBuffer = '1 0 0 1 fake 9 x'; // the old parser's \s+ took this for a buffer
  const forgedDevice = 'y\n\tAttached Devices:\n\tgpu'; // the old parser added 'gpu' to y's devices
  const forgedEnd = 'z\nTotal 0 devices attached'; // the old parser lost z's real devices after it
  for (const name of [`x\n${forgedBuffer}`, forgedDevice, forgedEnd]) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(31);
  const text = [
    'Dma-buf Objects:',
    '00004096\t00000002\t00080007\t00000001\tsystem\t00000007\tx',
    forgedBuffer,
    '\tAttached Devices:',
    'Total 0 devices attached',
    '',
    `00008192\t00000002\t00080007\t00000001\tsystem\t00000008\t${forgedDevice}`,
    '\tAttached Devices:',
    'Total 0 devices attached',
    '',
    `00012288\t00000002\t00080007\t00000001\tsystem\t00000009\t${forgedEnd}`,
    '\tAttached Devices:',
    '\tvgem',
    'Total 1 devices attached',
    '',
  ].join('\n');
  expect(parseBufinfo(text)).toEqual([
    { size: 4096, count: 1, exporter: 'system', ino: 7, name: 'x', attachments: [] },
    { size: 8192, count: 1, exporter: 'system', ino: 8, name: 'y', attachments: [] },
    { size: 12288, count: 1, exporter: 'system', ino: 9, name: 'z', attachments: ['vgem'] },
  ]);
});

test('dump: the fd column shows a few fds and a count, not thousands (rows are padded to the widest)', () => {
  expect(fdList([])).toBe('-');
  expect(fdList([3, 4, 5])).toBe('3,4,5');
  const many = Array.from({ length: 3001 }, (_, i) => i + 10);
  expect(fdList(many)).toBe('10,11,12,13,14,15,16,17,... (3001 fds)');
});

test('bufinfo: a name holding CR, U+2028 or U+2029 keeps its buffer line (a regex `.` stops at them)', () => {
  const text = [
    '00004096\t00000002\t00080007\t00000001\tsystem\t00000007\tcr\rname',
    '\tAttached Devices:',
    'Total 0 devices attached',
    '',
    '00008192\t00000002\t00080007\t00000001\tsystem\t00000008\tsep\u2028\u2029',
    '\tAttached Devices:',
    '\tgpu0',
    'Total 1 devices attached',
    '',
  ].join('\n');
  expect(parseBufinfo(text)).toEqual([
    { size: 4096, count: 1, exporter: 'system', ino: 7, name: 'cr\rname', attachments: [] },
    { size: 8192, count: 1, exporter: 'system', ino: 8, name: 'sep\u2028\u2029', attachments: ['gpu0'] },
  ]);
});
