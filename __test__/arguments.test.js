'use strict'
// Bad arguments resolve with INVALID_ARGUMENT; misuse of the constructor throws a TypeError
// naming the option. getSecretValue never throws or rejects.
const { SecretManager } = require('..')
const { URL } = require('./helpers')

const m = new SecretManager({ source: 'memory', secrets: { ok: 'v' } })

test.each([
  ['a number', 42],
  ['undefined', undefined],
  ['null', null],
  ['an object', { toString: () => 'ok' }],
  ['an array', ['ok']],
  ['empty', ''],
  ['over 256 characters', 'k'.repeat(257)],
  ['a NUL', 'a\0b'],
  ['a newline', 'a\nb'],
  ['a DEL', 'a\u007fb'],
  ['a C1 control', 'a\u0085b'],
])('a key that is %s resolves with INVALID_ARGUMENT', async (_, key) => {
  let p
  expect(() => {
    p = m.getSecretValue(key, URL)
  }).not.toThrow()
  const r = await p
  expect(r.value).toBe('')
  expect(r.error).toBeInstanceOf(Error)
  expect(r.error.code).toBe('INVALID_ARGUMENT')
  expect(r.error.message).not.toMatch(/[\0\n]/)
})

test('a key of exactly 256 characters (not bytes) is accepted', async () => {
  expect((await m.getSecretValue('é'.repeat(256), URL)).error.code).toBe('NOT_FOUND')
})

test.each([
  ['undefined', undefined],
  ['a number', 1],
  ['null', null],
  ['an object', {}],
])('a baseRetailServerUrl that is %s resolves with INVALID_ARGUMENT naming the key', async (_, url) => {
  const r = await m.getSecretValue('ok', url)
  expect(r.error.code).toBe('INVALID_ARGUMENT')
  expect(r.error.secretKey).toBe('ok')
  expect(r.error.message).toMatch(/baseRetailServerUrl/)
})

test.each([
  [{ bogus: 1 }, /unknown option `bogus`/],
  [{ source: 'cloud' }, /`source`/],
  [{ secretsFile: 3 }, /`secretsFile`/],
  [{ watch: 'yes' }, /`watch`/],
  [{ secrets: { a: 1 } }, /`secrets\.a`/],
  [{ timeoutMs: -5 }, /`timeoutMs`/],
  [{ timeoutMs: 'soon' }, /`timeoutMs`/],
  [{ cache: { maxAgeSeconds: -1 } }, /`cache\.maxAgeSeconds`/],
  [{ cache: { maxEntries: 0 } }, /`cache\.maxEntries`/],
  [{ cache: { ttl: 1 } }, /`cache\.ttl`/],
  [{ cache: 'no' }, /`cache`/],
  [{ onEvent: 'log' }, /`onEvent`/],
  [{ vaultUrls: ['https://a.vault.azure.net', 'https://b.vault.azure.net', 'https://c.vault.azure.net'] }, /`vaultUrls`/],
  [{ allowedHosts: 'x' }, /`allowedHosts`/],
  [{ identity: 'magic' }, /`identity`/],
  [{ secretsFile: () => 'x' }, /`secretsFile`/],
  ['options', /options must be an object/],
  [[1], /options must be an object/],
])('constructor misuse %p throws a TypeError naming it', (options, pattern) => {
  let thrown
  try {
    new SecretManager(options)
  } catch (e) {
    thrown = e
  }
  expect(thrown).toBeInstanceOf(TypeError)
  expect(thrown.message).toMatch(pattern)
})

test('getSecretValues keeps order and rejects only a non-array', async () => {
  const r = await m.getSecretValues(['ok', 'missing', ''], URL)
  expect(r.map((x) => x.value)).toEqual(['v', '', ''])
  expect(r.map((x) => x.error && x.error.code)).toEqual([undefined, 'NOT_FOUND', 'INVALID_ARGUMENT'])
  await expect(m.getSecretValues('ok', URL)).rejects.toBeInstanceOf(TypeError)
})
