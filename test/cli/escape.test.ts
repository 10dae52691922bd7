import { decodeBytes, shown } from '../../lib/escape';

/*
 * The CLI's display rule for text it did not write (lib/escape.ts): visible, distinct,
 * inert on a terminal. The spawned suite (hostile.test.ts) checks the commands use it.
 */

test('controls, DEL, C1, bidi controls and backslash are escaped; the rest shows as itself', () => {
  expect(shown('a\x1b[31mred\x07')).toBe('a\\x1b[31mred\\x07');
  expect(shown('nl\ncr\rtab\tbs\b')).toBe('nl\\ncr\\rtab\\tbs\\x08');
  expect(shown('\x00\x7f\u0080\u009b\u009f')).toBe('\\x00\\x7f\\u0080\\u009b\\u009f');
  expect(shown('x\u202eevil\u2066\u2069\u200f\u061c\u2028')).toBe('x\\u202eevil\\u2066\\u2069\\u200f\\u061c\\u2028');
  expect(shown('back\\slash')).toBe('back\\\\slash');
  expect(shown(' padded  é 😀 カメラ ')).toBe(' padded  é 😀 カメラ ');
});

test('two different texts never show alike, and nothing shown holds a control', () => {
  const texts = ['a\x1b', 'a\\x1b', 'a\\\x1b', 'a\n', 'a\\n', 'a\u202e', 'a\\u202e', decodeBytes(Buffer.from([0x61, 0x9b])), 'a\u009b'];
  const out = texts.map(shown);
  expect(new Set(out).size).toBe(texts.length);
  for (const s of out) expect(s).toMatch(/^[\x20-\x7e]*$/);
});

test('decodeBytes keeps valid UTF-8 and turns each other byte into U+DC00+byte, shown as \\xHH', () => {
  expect(decodeBytes(Buffer.from('camera0 é 😀'))).toBe('camera0 é 😀');
  // a stray byte, a truncated sequence, an encoded surrogate (ED A0 80), an overlong '/' (C0 AF)
  const raw = Buffer.from([0x61, 0xff, 0xc3, 0xa9, 0xe2, 0x82, 0xed, 0xa0, 0x80, 0xc0, 0xaf, 0xf0, 0x9f, 0x98, 0x80, 0xc3]);
  const text = decodeBytes(raw);
  expect(shown(text)).toBe('a\\xffé\\xe2\\x82\\xed\\xa0\\x80\\xc0\\xaf😀\\xc3');
  // and in JSON as \udcHH: valid JSON, the bytes recoverable
  expect(JSON.stringify(text)).toBe('"a\\udcffé\\udce2\\udc82\\udced\\udca0\\udc80\\udcc0\\udcaf😀\\udcc3"');
});
