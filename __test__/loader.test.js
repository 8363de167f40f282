'use strict'
// The native loader finds the addon only where the package itself is (COMMERCE_SECRETS_NATIVE_PATH,
// beside the entry, Node's resolution from the entry's own folder), never from the working
// directory; it loads only .node files (never a platform package's `main`), and refuses a
// module that is not this addon. Each case runs in a child node whose cwd is a planted folder.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const root = path.join(__dirname, '..')
const binary = fs.readdirSync(root).find((f) => /^commerce-secret-manager\..*\.node$/.test(f))
const platform = binary ? binary.split('.')[1] : undefined
let work
let marker

beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-loader-'))
  marker = path.join(work, 'EVIL-RAN')
})
afterEach(() => fs.rmSync(work, { recursive: true, force: true }))

// The package's JS and package.json, without any binary, at dir.
function copyPackage(dir) {
  fs.mkdirSync(dir, { recursive: true })
  for (const f of fs.readdirSync(root)) {
    if (f.endsWith('.js') || f.endsWith('.mjs') || f === 'package.json') fs.copyFileSync(path.join(root, f), path.join(dir, f))
  }
  return dir
}

// A package whose `main` (and index.js) would write the marker if it were ever run.
function plantEvil(dir, name) {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '9.9.9', main: 'evil.js' }))
  const evil = `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran'); module.exports = { NativeManager: function () {} }\n`
  fs.writeFileSync(path.join(dir, 'evil.js'), evil)
  fs.writeFileSync(path.join(dir, 'index.js'), evil)
}

function tryLoad(entryDir, cwd, env = {}) {
  const script = `try { const m = new (require(${JSON.stringify(path.join(entryDir, 'index.js'))}).SecretManager)({ source: 'memory', secrets: {} });` +
    ` m.close(); console.log('LOADED') } catch (e) { console.log(e.code); console.log(e.message) }`
  const r = spawnSync(process.execPath, ['-e', script], { cwd, encoding: 'utf8', timeout: 30000, env: { PATH: process.env.PATH, ...env } })
  return r.stdout + r.stderr
}

const linuxTest = platform && process.platform === 'linux' ? test : test.skip

linuxTest('a node_modules planted in the working directory is never used: neither a platform package\'s main nor a .node', () => {
  const entry = copyPackage(path.join(work, 'pkg'))
  const cwd = path.join(work, 'app')
  plantEvil(path.join(cwd, 'node_modules', `commerce-secret-manager-${platform}`), `commerce-secret-manager-${platform}`)
  const planted = path.join(cwd, 'node_modules', 'commerce-secret-manager')
  plantEvil(planted, 'commerce-secret-manager')
  fs.copyFileSync(path.join(root, binary), path.join(planted, binary))
  fs.copyFileSync(path.join(root, binary), path.join(cwd, 'node_modules', `commerce-secret-manager-${platform}`, binary))
  const out = tryLoad(entry, cwd)
  expect(out).toMatch(/^NATIVE_BINDING_MISSING\n/)
  expect(out).not.toMatch(/LOADED/)
  expect(out).not.toContain(cwd) // not even looked at
  expect(out).toMatch(/\(linux, x64, (gnu|musl); Node \d/) // the report is kept: platform, arch, libc, places looked
  expect(out).toContain(path.join(entry, binary))
  expect(fs.existsSync(marker)).toBe(false)
})

linuxTest('installed: the platform package is found from the entry\'s folder, its binary by name, its main never run', () => {
  const modules = path.join(work, 'app', 'node_modules')
  const entry = copyPackage(path.join(modules, 'commerce-secret-manager'))
  const platformDir = path.join(modules, `commerce-secret-manager-${platform}`)
  plantEvil(platformDir, `commerce-secret-manager-${platform}`)
  fs.copyFileSync(path.join(root, binary), path.join(platformDir, binary))
  expect(tryLoad(entry, os.tmpdir())).toBe('LOADED\n')
  expect(fs.existsSync(marker)).toBe(false)
})

linuxTest('a module that is not this addon, or a file that is not a .node, is refused with NATIVE_BINDING_MISSING naming it', () => {
  const entry = copyPackage(path.join(work, 'pkg'))
  const other = ['@napi-rs/tar-linux-x64-gnu/tar.linux-x64-gnu.node', '@parcel/watcher-linux-x64-glibc/watcher.node']
    .map((f) => path.join(root, 'node_modules', f))
    .find((f) => fs.existsSync(f))
  if (other) {
    const out = tryLoad(entry, work, { COMMERCE_SECRETS_NATIVE_PATH: other })
    expect(out).toMatch(/^NATIVE_BINDING_MISSING\n/)
    expect(out).toContain(`${other} (COMMERCE_SECRETS_NATIVE_PATH): it is not commerce-secret-manager's addon (it does not export NativeManager); refused`)
  }
  plantEvil(path.join(work, 'evil'), 'evil')
  const js = tryLoad(entry, work, { COMMERCE_SECRETS_NATIVE_PATH: path.join(work, 'evil', 'evil.js') })
  expect(js).toMatch(/^NATIVE_BINDING_MISSING\n/)
  expect(js).toMatch(/evil\.js \(COMMERCE_SECRETS_NATIVE_PATH\): not a \.node file; not loaded/)
  expect(fs.existsSync(marker)).toBe(false)
})
