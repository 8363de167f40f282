'use strict'
// install() on an object shaped exactly like the platform's msdyn365Commerce, the default
// instance's whole surface, and the loader's run-time search.
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const acorn = require('acorn')
const pkg = require('../package.json')
const { install, secretManager, SecretManager } = require('..')
const browserEntry = require('../browser.js')
const binding = require('../binding.js')
const { URL } = require('./helpers')

const root = path.join(__dirname, '..')

// The platform's class (core-internal MSDyn365Commerce, 1.27.15): `secretManager` a
// getter-only accessor on the prototype over `_secretManager`, which the server start-up
// assigns through a prototype method after app modules loaded; `isBrowser` a prototype getter.
class MSDyn365Commerce {
  constructor() {
    this._secretManager = undefined
  }
  get secretManager() {
    return this._secretManager
  }
  get isBrowser() {
    return typeof window !== 'undefined'
  }
  setSecretManager(m) {
    this._secretManager = m
  }
}
const platformManager = { getSecretValue: async () => ({ value: 'platform', expiresOn: 0 }) }

test('the platform object: plain assignment throws there, which is why install defines its own property', () => {
  'use strict'
  const o = new MSDyn365Commerce()
  expect(() => {
    o.secretManager = {}
  }).toThrow(/only a getter/)
})

test('install on the platform object wins when the platform assigns _secretManager afterwards', async () => {
  const o = new MSDyn365Commerce()
  const m = install(o, { source: 'memory', secrets: { k: 'v' } })
  expect(o.secretManager).toBe(m)
  o.setSecretManager(platformManager) // the platform's start-up, after app modules loaded
  expect(o.secretManager).toBe(m)
  expect((await o.secretManager.getSecretValue('k', URL)).value).toBe('v')
  await m.close()
})

test('install on the platform object wins when the platform assigned _secretManager before', () => {
  const o = new MSDyn365Commerce()
  o.setSecretManager(platformManager)
  const m = install(o, { source: 'memory', secrets: {} })
  expect(o.secretManager).toBe(m)
})

test('install(target) puts the default instance there: a SecretManager with the whole surface', () => {
  const o = new MSDyn365Commerce()
  expect(install(o)).toBe(secretManager)
  expect(o.secretManager).toBe(secretManager)
  expect(secretManager).toBeInstanceOf(SecretManager)
  for (const m of ['getSecretValue', 'getSecretValues', 'prefetch', 'refresh', 'invalidate', 'stats', 'close']) {
    expect(typeof secretManager[m]).toBe('function')
  }
})

test('on a plain object it still works, and a second install replaces the first', () => {
  const o = {}
  const a = install(o, { source: 'memory', secrets: {} })
  const b = install(o, { source: 'memory', secrets: {} })
  expect(o.secretManager).toBe(b)
  expect(a).not.toBe(b)
})

test('isBrowser true (the platform object under jsdom): install changes nothing and throws nothing', () => {
  class BrowserCommerce extends MSDyn365Commerce {
    get isBrowser() {
      return true
    }
  }
  const o = new BrowserCommerce()
  expect(install(o)).toBeUndefined()
  expect(Object.getOwnPropertyNames(o)).toEqual(['_secretManager'])
  expect(o.secretManager).toBeUndefined()
})

test('the browser entry: install changes nothing and never throws, whatever the target', () => {
  const o = new MSDyn365Commerce()
  expect(browserEntry.install(o)).toBeUndefined()
  expect(Object.getOwnPropertyNames(o)).toEqual(['_secretManager'])
  expect(browserEntry.install(null)).toBeUndefined()
  expect(browserEntry.install(Object.freeze({}))).toBeUndefined()
})

test('bad targets: a TypeError saying what was expected, and nothing half-installed', () => {
  expect(() => install(null)).toThrow(/install takes the object to install on, e\.g\. msdyn365Commerce \(got null\)/)
  expect(() => install('x')).toThrow(TypeError)
  const frozen = Object.freeze(new MSDyn365Commerce())
  expect(() => install(frozen)).toThrow(/frozen or not extensible/)
  expect(frozen.secretManager).toBeUndefined()
  const fixed = {}
  Object.defineProperty(fixed, 'secretManager', { value: platformManager, configurable: false })
  expect(() => install(fixed)).toThrow(/non-configurable own property/)
  expect(fixed.secretManager).toBe(platformManager)
  // Bad options: the target keeps what it had.
  const o = new MSDyn365Commerce()
  o.setSecretManager(platformManager)
  expect(() => install(o, { timeoutMs: -1 })).toThrow(TypeError)
  expect(o.secretManager).toBe(platformManager)
  expect(Object.getOwnPropertyNames(o)).toEqual(['_secretManager'])
})

test('the default instance built from a bad environment answers NOT_CONFIGURED on every method, never throws', () => {
  const script = `
    const { secretManager } = require('.')
    ;(async () => {
      const a = await secretManager.getSecretValue('k', '')
      const all = await secretManager.getSecretValues(['k'], '')
      const r = await secretManager.refresh('k', '')
      secretManager.invalidate('k')
      const s = secretManager.stats()
      await secretManager.close()
      console.log(JSON.stringify({ a: a.error.code, msg: a.error.message, all: all[0].error.code, r: r.error.code, s }))
    })()`
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 15000,
    env: { PATH: process.env.PATH, COMMERCE_SECRETS_SOURCE: 'bogus' },
  })
  expect(r.stderr).toBe('')
  const out = JSON.parse(r.stdout)
  expect(out).toMatchObject({ a: 'NOT_CONFIGURED', all: 'NOT_CONFIGURED', r: 'NOT_CONFIGURED' })
  expect(out.msg).toMatch(/COMMERCE_SECRETS_SOURCE/)
  expect(out.s.entries).toBe(0)
})

test('the default instance answers from the environment (local source) through its whole surface', () => {
  const script = `
    const { secretManager } = require(${JSON.stringify(root)})
    ;(async () => {
      const a = await secretManager.getSecretValue('demoKey', '')
      const [b] = await secretManager.prefetch(['demoKey'], '')
      const c = await secretManager.refresh('demoKey', '')
      console.log(JSON.stringify({ source: secretManager.source, a: a.value, b: b.value, c: c.value }))
      await secretManager.close()
    })()`
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'csm-default-'))
  try {
    fs.mkdirSync(path.join(dir, 'secrets'))
    fs.writeFileSync(path.join(dir, 'secrets', 'secrets.json'), '{"demoKey":"demo-value"}')
    const r = spawnSync(process.execPath, ['-e', script], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 15000,
      env: { PATH: process.env.PATH, NODE_ENV: 'development' },
    })
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual({ source: 'local', a: 'demo-value', b: 'demo-value', c: 'demo-value' })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('every JS file the package ships parses at ES2018 (webpack 4 reads them unaltered)', () => {
  const shipped = pkg.files.filter((f) => f.endsWith('.js'))
  shipped.push(...fs.readdirSync(path.join(root, 'bin')).map((f) => `bin/${f}`))
  expect(shipped).toEqual(expect.arrayContaining(['index.js', 'browser.js', 'shared.js', 'binding.js', 'testing.js']))
  for (const f of shipped) {
    const code = fs.readFileSync(path.join(root, f), 'utf8').replace(/^#!.*/, '')
    expect(() => acorn.parse(code, { ecmaVersion: 2018, sourceType: 'script' })).not.toThrow()
  }
  for (const f of pkg.files.filter((x) => x.endsWith('.mjs'))) {
    const code = fs.readFileSync(path.join(root, f), 'utf8')
    expect(() => acorn.parse(code, { ecmaVersion: 2018, sourceType: 'module' })).not.toThrow()
  }
})

test('the shipped JS requires built-ins without the node: scheme (webpack 4 does not know it)', () => {
  for (const f of ['index.js', 'shared.js', 'binding.js', 'browser.js', 'testing.js']) {
    expect(fs.readFileSync(path.join(root, f), 'utf8')).not.toMatch(/require\(['"]node:/)
  }
})

test('a platform without a binary: the error names platform, architecture, libc, the package and what to do', () => {
  let err
  try {
    binding.load({ platform: 'linux', arch: 'riscv64', libc: 'musl', env: {}, here: root, cwd: root })
  } catch (e) {
    err = e
  }
  expect(err).toBeInstanceOf(Error)
  expect(err.code).toBe('NATIVE_BINDING_MISSING')
  expect(err.message).toMatch(/no native binary for this platform \(linux, riscv64, musl; Node /)
  expect(err.message).toMatch(/commerce-secret-manager-linux-riscv64-musl/)
  expect(err.message).toMatch(/npm install commerce-secret-manager-linux-riscv64-musl/)
  expect(err.message).toMatch(/build the addon from source/)
  expect(err.message).toMatch(/COMMERCE_SECRETS_NATIVE_PATH/)
  expect(err.message).toMatch(/commerce-secret-manager\.linux-riscv64-musl\.node \(beside the package entry/)
  expect(() => binding.load({ platform: 'darwin', arch: 'arm64', env: {}, here: root, cwd: root })).toThrow(
    /\(darwin, arm64; Node .*commerce-secret-manager-darwin-arm64/s,
  )
})

test('COMMERCE_SECRETS_NATIVE_PATH names the file, and only it is tried', () => {
  const file = fs.readdirSync(root).find((f) => f.endsWith('.node'))
  const loaded = binding.load({ env: { COMMERCE_SECRETS_NATIVE_PATH: file }, cwd: root, here: '/nonexistent' })
  expect(typeof loaded.NativeManager).toBe('function')
  expect(() => binding.load({ env: { COMMERCE_SECRETS_NATIVE_PATH: '/nope/x.node' }, cwd: root, here: root })).toThrow(
    /\/nope\/x\.node \(COMMERCE_SECRETS_NATIVE_PATH\): not there/,
  )
})

test('a manager cannot be made without a binary: the load error, not a TypeError about options', () => {
  const r = spawnSync(
    process.execPath,
    ['-e', `const { createSecretManager, secretManager } = require('.')
      try { createSecretManager({ source: 'memory', secrets: {} }) } catch (e) { console.log(e.code) }
      secretManager.getSecretValue('k', '').then((r) => console.log(r.error.code, /no native binary/.test(r.error.message)))`],
    { cwd: root, encoding: 'utf8', timeout: 15000, env: { PATH: process.env.PATH, COMMERCE_SECRETS_NATIVE_PATH: '/nope.node' } },
  )
  expect(r.stdout.trim().split('\n')).toEqual(['NATIVE_BINDING_MISSING', 'NOT_CONFIGURED true'])
})
