'use strict'
// examples/commerce-app as a user's app would have it: the packed package installed in its
// node_modules, server bundles built by webpack 4 (the SDK's settings), webpack 5 and esbuild
// and run from the app folder, client bundles checked for native loading code, and the app's
// own Jest test run under jsdom with the testing entry.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const root = path.join(__dirname, '..')
const example = path.join(root, 'examples', 'commerce-app')
const SIGNING_KEY = 'example-signing-key-7f3a'
const EXPECTED = require('node:crypto').createHmac('sha256', SIGNING_KEY).update('P-100:25').digest('hex')

let work
let app

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, Object.assign({ encoding: 'utf8', timeout: 120000 }, opts))
  if (r.error) throw r.error
  return r
}

function build(bundler, target) {
  const r = run(process.execPath, [path.join(example, 'build.js'), bundler, target, app], {
    cwd: root,
    env: Object.assign({}, process.env, { NODE_OPTIONS: '--openssl-legacy-provider' }),
  })
  expect(r.stderr).toBe('')
  const out = JSON.parse(r.stdout)
  expect(out).toEqual({ errors: [], warnings: [] })
  return fs.readFileSync(path.join(app, 'build', target === 'node' ? 'server.js' : 'client.js'), 'utf8')
}

// Runs a server bundle from a folder the way the SDK's server runs build/server.js.
function serve(cwd, bundle, env) {
  return run(process.execPath, [bundle], {
    cwd,
    timeout: 30000,
    env: Object.assign({ PATH: process.env.PATH, NODE_ENV: 'development' }, env),
  })
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-commerce-app-'))
  const packed = run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root })
  expect(packed.status).toBe(0)
  const tgz = path.join(work, packed.stdout.trim().split('\n').pop())
  app = path.join(work, 'app')
  const pkgDir = path.join(app, 'node_modules', 'commerce-secret-manager')
  fs.mkdirSync(pkgDir, { recursive: true })
  expect(run('tar', ['xzf', tgz, '-C', pkgDir, '--strip-components=1']).status).toBe(0)
  // The main tarball has no binary: the platform package (npm/<platform>/, here with the binary
  // this checkout built) is installed beside it, as npm does with optionalDependencies.
  const binary = fs.readdirSync(root).find((f) => /^commerce-secret-manager\..*\.node$/.test(f))
  const platform = binary.split('.')[1]
  const staged = path.join(work, `platform-${platform}`)
  fs.cpSync(path.join(root, 'npm', platform), staged, { recursive: true })
  fs.copyFileSync(path.join(root, binary), path.join(staged, binary))
  const platformPacked = run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: staged })
  expect(platformPacked.status).toBe(0)
  const platformDir = path.join(app, 'node_modules', `commerce-secret-manager-${platform}`)
  fs.mkdirSync(platformDir, { recursive: true })
  const platformTgz = path.join(work, platformPacked.stdout.trim().split('\n').pop())
  expect(run('tar', ['xzf', platformTgz, '-C', platformDir, '--strip-components=1']).status).toBe(0)
  for (const f of ['src', '__tests__', 'package.json']) fs.cpSync(path.join(example, f), path.join(app, f), { recursive: true })
  fs.mkdirSync(path.join(app, 'secrets'))
  fs.writeFileSync(path.join(app, 'secrets', 'secrets.json'), JSON.stringify({ priceSigningKey: SIGNING_KEY }))
}, 120000)

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

for (const bundler of ['webpack4', 'webpack5', 'esbuild']) {
  test(`${bundler}: the server bundle builds without errors or warnings and, run from the app folder, answers the secret`, () => {
    const code = build(bundler, 'node')
    expect(code).not.toMatch(/#[a-zA-Z_]\w* = |Cannot find module/)
    const r = serve(app, 'build/server.js')
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const out = JSON.parse(r.stdout)
    // Our manager answered, not the one the platform's start-up assigned after install.
    expect(out.result.signature).toBe(EXPECTED)
    expect(out.source).toBe('local')
    expect(r.stdout).not.toContain(SIGNING_KEY)
  }, 120000)

  test(`${bundler}: the client bundle carries no native loading code, and secretManager is undefined there`, () => {
    const code = build(bundler, 'web')
    expect(code).not.toMatch(/createRequire|dlopen|\.node\b|NativeManager|binding\.js|process\.report|diagnostics_channel/)
    const sandbox = {}
    sandbox.globalThis = sandbox
    sandbox.window = sandbox
    require('node:vm').runInNewContext(code, sandbox)
    expect(sandbox.commerceAppResult).toEqual({ secretManager: undefined })
  }, 120000)
}

test('the binary is found beside the bundle, or where COMMERCE_SECRETS_NATIVE_PATH says; else NOT_CONFIGURED', () => {
  build('esbuild', 'node')
  const alone = path.join(work, 'deployed')
  fs.mkdirSync(path.join(alone, 'secrets'), { recursive: true })
  fs.copyFileSync(path.join(app, 'build', 'server.js'), path.join(alone, 'server.js'))
  fs.copyFileSync(path.join(app, 'secrets', 'secrets.json'), path.join(alone, 'secrets', 'secrets.json'))
  const pkgDir = fs
    .readdirSync(path.join(app, 'node_modules'))
    .filter((d) => d.startsWith('commerce-secret-manager-'))
    .map((d) => path.join(app, 'node_modules', d))[0]
  const binary = fs.readdirSync(pkgDir).find((f) => f.endsWith('.node'))

  // No node_modules, no binary: the data action degrades, with the reason in the error.
  const none = serve(alone, 'server.js')
  expect(none.status).toBe(1)
  expect(none.stderr).toBe('priceSigningKey unavailable: NOT_CONFIGURED\n')

  const viaEnv = serve(alone, 'server.js', { COMMERCE_SECRETS_NATIVE_PATH: path.join(pkgDir, binary) })
  expect(JSON.parse(viaEnv.stdout).result.signature).toBe(EXPECTED)

  fs.copyFileSync(path.join(pkgDir, binary), path.join(alone, binary))
  const beside = serve(alone, 'server.js')
  expect(JSON.parse(beside.stdout).result.signature).toBe(EXPECTED)
}, 120000)

test("the app's own Jest test passes under jsdom with the testing entry (browser condition)", () => {
  const r = run(process.execPath, [path.join(root, 'node_modules', 'jest', 'bin', 'jest.js'), '--config', path.join(app, 'package.json'), '--ci'], {
    cwd: app,
    env: Object.assign({}, process.env, { FORCE_COLOR: '0' }),
  })
  expect(r.stderr).toMatch(/Tests:\s+3 passed, 3 total/)
  expect(r.status).toBe(0)
}, 120000)

test('the package tarball ships the entries, the testing entry, no generated loader and no binary', () => {
  const files = fs.readdirSync(path.join(app, 'node_modules', 'commerce-secret-manager'))
  expect(files).toEqual(expect.arrayContaining(['index.js', 'browser.js', 'shared.js', 'binding.js', 'testing.js', 'testing.d.ts']))
  expect(files).not.toContain('native.js')
  expect(files.filter((f) => f.endsWith('.node'))).toEqual([])
})
