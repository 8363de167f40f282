'use strict'
// The local source through the public surface: path rules, each fault with its own code,
// reload on change.
const fs = require('node:fs')
const path = require('node:path')
const { SecretManager } = require('..')
const { tempDir, inDir, URL } = require('./helpers')

let t
beforeEach(() => {
  t = tempDir()
})
afterEach(() => t.cleanup())

function local(file, extra = {}) {
  return new SecretManager({ source: 'local', secretsFile: file, ...extra })
}

test('a found key resolves with the value and expiresOn 1, as the platform does', async () => {
  const file = t.write('secrets.json', JSON.stringify({ paymentKey: 'pk-123' }))
  const r = await local(file).getSecretValue('paymentKey', URL)
  expect(r).toEqual({ value: 'pk-123', expiresOn: 1 })
  expect(r.error).toBeUndefined()
})

test('default paths: build/secrets/secrets.json first, then secrets/secrets.json, relative to cwd', async () => {
  await inDir(t.dir, async () => {
    const m = new SecretManager({ source: 'local' })
    const missing = await m.getSecretValue('k', URL)
    expect(missing.error.code).toBe('LOCAL_FILE_MISSING')
    expect(missing.error.message).toContain(path.join(t.dir, 'build', 'secrets', 'secrets.json'))
    expect(missing.error.message).toContain(path.join(t.dir, 'secrets', 'secrets.json'))
    expect(missing.error.secretKey).toBe('k')

    t.write('secrets/secrets.json', '{"k": "from-secrets"}')
    expect((await m.getSecretValue('k', URL)).value).toBe('from-secrets')
    t.write('build/secrets/secrets.json', '{"k": "from-build"}')
    expect((await m.getSecretValue('k', URL)).value).toBe('from-build')
  })
})

test('a relative secretsFile is resolved against the working directory', async () => {
  t.write('conf/s.json', '{"k": "v"}')
  await inDir(t.dir, async () => {
    expect((await local('conf/s.json').getSecretValue('k', URL)).value).toBe('v')
  })
})

test.each([
  ['an empty file', '', 'LOCAL_FILE_INVALID', /is empty/],
  ['invalid JSON', '{\n  "a": "1",\n  nope\n}', 'LOCAL_FILE_INVALID', /line 3, column 3/],
  ['a top-level array', '["a"]', 'LOCAL_FILE_INVALID', /not an array/],
  ['a top-level scalar', '42', 'LOCAL_FILE_INVALID', /not a number/],
  ['a non-string value', '{"k": 5}', 'LOCAL_FILE_INVALID', /'k'.*a number/],
  ['a missing key', '{"other": "x"}', 'NOT_FOUND', /'k' is not in/],
])('%s has its own code and a message naming the file and key', async (_, content, code, pattern) => {
  const file = t.write('secrets.json', content)
  const r = await local(file).getSecretValue('k', URL)
  expect(r.value).toBe('')
  expect(r.error).toBeInstanceOf(Error)
  expect(r.error.code).toBe(code)
  expect(r.error.message).toMatch(pattern)
  expect(r.error.message).toContain(file)
  expect(r.error.secretKey).toBe('k')
})

test('a non-string value fails only its own key', async () => {
  const file = t.write('secrets.json', '{"good": "g", "bad": true}')
  const m = local(file)
  expect((await m.getSecretValue('good', URL)).value).toBe('g')
  expect((await m.getSecretValue('bad', URL)).error.message).toMatch(/a boolean; values must be strings/)
})

test('a file over 4 MiB is refused', async () => {
  const file = t.write('secrets.json', `{"k": "${'x'.repeat(4 * 1024 * 1024)}"}`)
  const r = await local(file).getSecretValue('k', URL)
  expect(r.error.code).toBe('LOCAL_FILE_INVALID')
  expect(r.error.message).toMatch(/larger than 4 MiB/)
})

test('a UTF-8 byte order mark is accepted', async () => {
  const file = t.write('secrets.json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"k": "bom"}')]))
  expect((await local(file).getSecretValue('k', URL)).value).toBe('bom')
})

test('no message ever quotes a value from the file', async () => {
  const file = t.write('secrets.json', '{"k": "SENTINEL-1", "n": 1, "broken": "SENTINEL-2" oops}')
  const r = await local(file).getSecretValue('k', URL)
  expect(r.error.code).toBe('LOCAL_FILE_INVALID')
  expect(JSON.stringify(r.error)).not.toMatch(/SENTINEL/)
  expect(r.error.message + r.error.stack).not.toMatch(/SENTINEL/)
})

test('edits are served by the next call; a bad edit answers LOCAL_FILE_INVALID until fixed', async () => {
  const file = t.write('secrets.json', '{"k": "v1"}')
  const m = local(file)
  expect((await m.getSecretValue('k', URL)).value).toBe('v1')
  fs.writeFileSync(file, '{"k": "v2", "added": "a"}')
  expect((await m.getSecretValue('k', URL)).value).toBe('v2')
  expect((await m.getSecretValue('added', URL)).value).toBe('a')
  fs.writeFileSync(file, '{"k": ')
  expect((await m.getSecretValue('k', URL)).error.code).toBe('LOCAL_FILE_INVALID')
  expect((await m.getSecretValue('added', URL)).error.code).toBe('LOCAL_FILE_INVALID')
  fs.writeFileSync(file, '{"k": "v3"}')
  expect((await m.getSecretValue('k', URL)).value).toBe('v3')
  fs.rmSync(file)
  expect((await m.getSecretValue('k', URL)).error.code).toBe('LOCAL_FILE_MISSING')
  fs.writeFileSync(file, '{"k": "back"}')
  expect((await m.getSecretValue('k', URL)).value).toBe('back')
})

test('a file replaced by rename (as editors save) is seen', async () => {
  const file = t.write('secrets.json', '{"k": "v1"}')
  const m = local(file)
  expect((await m.getSecretValue('k', URL)).value).toBe('v1')
  const tmp = t.write('secrets.json.tmp', '{"k": "v2"}')
  fs.renameSync(tmp, file)
  expect((await m.getSecretValue('k', URL)).value).toBe('v2')
})

test('watch: false keeps the first parse', async () => {
  const file = t.write('secrets.json', '{"k": "v1"}')
  const m = local(file, { watch: false })
  expect((await m.getSecretValue('k', URL)).value).toBe('v1')
  fs.writeFileSync(file, '{"k": "v2-changed"}')
  expect((await m.getSecretValue('k', URL)).value).toBe('v1')
})

test('the url is not used locally: any string works', async () => {
  const file = t.write('secrets.json', '{"k": "v"}')
  const m = local(file)
  for (const url of ['', 'not a url', URL]) expect((await m.getSecretValue('k', url)).value).toBe('v')
})
