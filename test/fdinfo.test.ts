import { parseFdinfo, renderFdinfo } from '../lib/fdinfo';

/*
 * lib/fdinfo.ts: the software framework renders fdinfo as the kernel prints it, and the one
 * parser reads both; parse(render(x)) must give x back, names above all (any process may
 * put spaces, CR or newlines in one, and a name must read back exactly as set).
 */

const render = (name?: string, extra: Array<[string, string | number]> = []) =>
  renderFdinfo({ flags: 0o2000002, ino: 42 }, [['size', 8192], ['count', 1], ['exp_name', 'system'], ...(name === undefined ? [] : [['name', name] as [string, string]]), ...extra]);

test.each([' padded ', 'line\nbreak', 'cr\r', '\n', '\n\n', 'x\nsize:\t1\nexp_name:\tevil', 'name:\tx', '', 'é😀', 'x'.repeat(31), '\n'.repeat(31)])('parse(render(x)) gives the name back: %j', (name) => {
  const info = parseFdinfo(render(name));
  expect(info).toMatchObject({ name, size: 8192, count: 1, exporter: 'system', ino: 42, flags: 0o2000002 });
  expect(info.fields.name).toBe(name);
});

test('no name line: no name; the other fields as before', () => {
  const info = parseFdinfo(render());
  expect(info.name).toBeUndefined();
  expect(info.fields).toEqual({ pos: '0', flags: '02000002', mnt_id: '0', ino: '42', size: '8192', count: '1', exp_name: 'system' });
});

test('a vendor kernel printing lines after the name: the name ends at its newline, the lines are fields', () => {
  const info = parseFdinfo(render('camera0', [['vendor_pid', 1234], ['vendor_comm', 'some-long-process-name']]));
  expect(info.name).toBe('camera0');
  expect(info.fields).toMatchObject({ vendor_pid: '1234', vendor_comm: 'some-long-process-name' });
});
