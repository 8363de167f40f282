'use strict'
// Server side only: the browser entry loads no native code and no Node API, and install()
// leaves secretManager undefined in a browser.
const fs = require('node:fs')
const path = require('node:path')
const vm = require('node:vm')
const { spawnSync } = require('node:child_process')
const esbuild = require('esbuild')
const { install, secretManager, SecretManager } = require('..')
const { tempDir } = require('./helpers')

const root = path.join(__dirname, '..')

function node(args, cwd = root) {
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 15000 })
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${r.stderr}`)
  return r.stdout.trim()
}

test('node --conditions=browser loads the stub: nothing native, no secretManager', () => {
  const out = node([
    '--conditions=browser',
    '-e',
    `const m = require('commerce-secret-manager')
     const target = { secretManager: null }
     const loaded = Object.keys(require.cache).map((f) => require('path').basename(f))
     console.log(JSON.stringify({
       secretManager: m.secretManager === undefined,
       created: m.createSecretManager({ source: 'memory' }) === undefined,
       installed: m.install(target) === undefined && target.secretManager === null,
       loaded,
     }))`,
  ])
  const r = JSON.parse(out)
  expect(r).toMatchObject({ secretManager: true, created: true, installed: true })
  expect(r.loaded.sort()).toEqual(['browser.js', 'shared.js'])
})

test('the ESM browser entry too', () => {
  const out = node([
    '--conditions=browser',
    '--input-type=module',
    '-e',
    `import { secretManager, createSecretManager } from 'commerce-secret-manager'
     console.log(secretManager === undefined && createSecretManager() === undefined)`,
  ])
  expect(out).toBe('true')
})

test('the browser entry references no native loader, fs, path or process.env', () => {
  for (const file of ['browser.js', 'browser.mjs', 'shared.js', 'testing.js', 'testing.mjs']) {
    const text = fs.readFileSync(path.join(root, file), 'utf8')
    const code = text.replace(/^\s*\/\/.*$/gm, '').replace(/require\('\.\/shared\.js'\)/g, '')
    expect(code).not.toMatch(/native|\.node\b|require\(|import\(|from ['"](node:)?(fs|path)|process\.env/)
  }
})

test('an esbuild bundle for the browser of an app that imports the package has no native loader', async () => {
  const t = tempDir()
  try {
    fs.mkdirSync(path.join(t.dir, 'node_modules'))
    fs.symlinkSync(root, path.join(t.dir, 'node_modules', 'commerce-secret-manager'), 'dir')
    const entry = t.write(
      'app.js',
      `import { secretManager, install } from 'commerce-secret-manager'
       const msdyn365Commerce = { isBrowser: true }
       install(msdyn365Commerce)
       globalThis.result = { secretManager, installed: msdyn365Commerce.secretManager }`,
    )
    const built = await esbuild.build({ entryPoints: [entry], bundle: true, platform: 'browser', write: false, format: 'iife' })
    const code = built.outputFiles[0].text
    expect(code).not.toMatch(/NativeManager|\.node['"]|process\.dlopen|native\.js|linux-x64|diagnostics_channel|process\.env/)
    // And it runs where there is no Node at all.
    const sandbox = {}
    vm.runInNewContext(code, sandbox)
    expect(sandbox.result).toEqual({ secretManager: undefined, installed: undefined })
  } finally {
    t.cleanup()
  }
})

test('install sets secretManager on the server, and leaves it undefined when target.isBrowser', async () => {
  const server = {}
  expect(install(server)).toBe(secretManager)
  expect(server.secretManager).toBe(secretManager)

  const withOptions = {}
  const m = install(withOptions, { source: 'memory', secrets: { k: 'v' } })
  expect(m).toBeInstanceOf(SecretManager)
  expect(withOptions.secretManager).toBe(m)
  expect((await withOptions.secretManager.getSecretValue('k', '')).value).toBe('v')

  const browser = { isBrowser: true, secretManager: null }
  expect(install(browser)).toBeUndefined()
  expect(browser.secretManager).toBeNull() // changed nothing
  expect(() => install(undefined)).toThrow(TypeError)
})
