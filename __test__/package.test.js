'use strict'
// Distribution (issue 13): the main tarball carries no binary, the linux-x64-gnu platform
// package carries one built with a glibc 2.17 floor, and both installed into an empty project
// whose PATH has only node and npm (no cargo, no compiler) load and answer a secret. A platform
// with no binary gets a load error that says what to do.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const binding = require('../binding.js')
const pkg = require('../package.json')

const root = path.join(__dirname, '..')
const platformDir = path.join(root, 'npm', 'linux-x64-gnu')
const binaryName = 'commerce-secret-manager.linux-x64-gnu.node'
let work

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, Object.assign({ encoding: 'utf8', timeout: 600000 }, opts))
  if (r.error) throw r.error
  return r
}

function pack(dir) {
  const r = run('npm', ['pack', '--silent', '--json', '--pack-destination', work], { cwd: dir })
  expect(r.status).toBe(0)
  const info = JSON.parse(r.stdout)[0]
  return { file: path.join(work, info.filename), files: info.files.map((f) => f.path) }
}

const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64'
const linuxTest = onLinuxX64 ? test : test.skip

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-package-'))
  if (!onLinuxX64) return
  // The release build of the platform binary (napi's cross toolchain, glibc 2.17 sysroot).
  const r = run('bash', [path.join(root, 'scripts', 'build-release.sh')], { cwd: root })
  if (r.status !== 0) throw new Error(`build-release failed:\n${r.stdout}\n${r.stderr}`)
}, 900000)

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

linuxTest('the linux-x64-gnu binary needs glibc 2.17 at most, and is stripped', () => {
  const r = run('objdump', ['-T', path.join(platformDir, binaryName)])
  expect(r.status).toBe(0)
  const versions = [...r.stdout.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])])
  expect(versions.length).toBeGreaterThan(0)
  const max = versions.reduce((a, b) => (a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]) ? a : b))
  expect(max[0] * 1000 + max[1]).toBeLessThanOrEqual(2017)
  expect(run('objdump', ['-h', path.join(platformDir, binaryName)]).stdout).not.toMatch(/\.debug_info/)
})

test('every target has its platform package, listed in optionalDependencies at the same version', () => {
  const dirs = fs.readdirSync(path.join(root, 'npm')).sort()
  expect(dirs).toEqual(expect.arrayContaining(['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl',
    'darwin-x64', 'darwin-arm64', 'win32-x64-msvc']))
  expect(dirs).toHaveLength(pkg.napi.targets.length)
  for (const d of dirs) {
    const p = JSON.parse(fs.readFileSync(path.join(root, 'npm', d, 'package.json'), 'utf8'))
    expect(p.name).toBe(`commerce-secret-manager-${d}`)
    expect(p.version).toBe(pkg.version)
    expect(pkg.optionalDependencies[p.name]).toBe(pkg.version)
    expect(p.main).toBe(`commerce-secret-manager.${d}.node`)
    expect(p.license).toBe('MIT')
    expect(p.engines).toEqual(pkg.engines)
    expect(p.os).toEqual([d.split('-')[0]])
    expect(p.cpu).toEqual([d.split('-')[1]])
    if (d.startsWith('linux-')) expect(p.libc).toEqual([d.endsWith('musl') ? 'musl' : 'glibc'])
    expect(fs.existsSync(path.join(root, 'npm', d, 'LICENSE'))).toBe(true)
  }
})

linuxTest('the main tarball carries no binary, and carries LICENSE, README and the types', () => {
  const main = pack(root)
  expect(main.files.filter((f) => f.endsWith('.node'))).toEqual([])
  expect(main.files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'index.d.ts', 'testing.d.ts', 'native.d.ts',
    'index.js', 'binding.js', 'shared.js', 'testing.js', 'browser.js', 'package.json']))
  const platform = pack(platformDir)
  expect(platform.files.sort()).toEqual(['LICENSE', 'README.md', binaryName, 'package.json'].sort())
})

linuxTest('installed from the two tarballs in an empty project with only node and npm on PATH, it answers a secret', () => {
  const bin = path.join(work, 'bin')
  fs.mkdirSync(bin)
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  const npmCli = run('bash', ['-c', 'readlink -f "$(command -v npm)"']).stdout.trim()
  fs.symlinkSync(npmCli, path.join(bin, 'npm'))
  const env = { PATH: bin, HOME: path.join(work, 'home'), npm_config_cache: path.join(work, 'npm-cache'), npm_config_update_notifier: 'false' }
  // No compiler or Rust toolchain can be found from here.
  for (const tool of ['cargo', 'rustc', 'cc', 'gcc']) expect(run('/bin/sh', ['-c', `command -v ${tool}`], { env }).status).not.toBe(0)
  // The release workflow's smoke test, as it runs on each OS and Node version.
  const r = run(path.join(bin, 'node'), [path.join(root, 'scripts', 'smoke.js'), 'linux-x64-gnu'], { cwd: root, env })
  expect(r.stderr).toBe('')
  expect(r.stdout).toMatch(/^smoke ok: linux-x64-gnu, Node v\d+/)
}, 300000)

test('on a platform with no binary, the load error names platform, architecture and libc, the package, and how to build', () => {
  const cases = [
    { platform: 'linux', arch: 'x64', libc: 'musl', pkg: 'commerce-secret-manager-linux-x64-musl', shown: '(linux, x64, musl;' },
    { platform: 'darwin', arch: 'arm64', pkg: 'commerce-secret-manager-darwin-arm64', shown: '(darwin, arm64;' },
    { platform: 'win32', arch: 'x64', pkg: 'commerce-secret-manager-win32-x64-msvc', shown: '(win32, x64;' },
  ]
  for (const c of cases) {
    // `here` and `cwd` have no binary and no platform package: as an install on that platform
    // whose optional package npm skipped.
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-noplatform-'))
    try {
      let err
      try {
        binding.load({ platform: c.platform, arch: c.arch, libc: c.libc, env: {}, here: empty, cwd: empty })
      } catch (e) {
        err = e
      }
      expect(err.code).toBe('NATIVE_BINDING_MISSING')
      expect(err.message).toContain(c.shown)
      expect(err.message).toContain(`npm install ${c.pkg}`)
      expect(err.message).toMatch(/build the addon from source \(Rust toolchain/)
      expect(err.message).not.toMatch(/npm has a bug/)
    } finally {
      fs.rmSync(empty, { recursive: true, force: true })
    }
  }
})
