'use strict'
// The command line: get, validate, doctor, exit codes; values only on get's stdout.
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { tempDir } = require('./helpers')

const cli = path.join(__dirname, '..', 'bin', 'cli.js')

function run(args, { cwd, env = {} } = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 15000,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

let t
beforeEach(() => {
  t = tempDir()
  t.write('secrets/secrets.json', JSON.stringify({ alpha: 'SENTINEL-A', beta: 'SENTINEL-B' }))
})
afterEach(() => t.cleanup())

test('get prints the value, or with --json the ISecretValue', () => {
  const plain = run(['get', 'alpha', '--source', 'local'], { cwd: t.dir })
  expect(plain).toMatchObject({ code: 0, out: 'SENTINEL-A\n', err: '' })
  const json = run(['get', 'alpha', '--json', '--url', 'https://x/'], { cwd: t.dir, env: { NODE_ENV: 'development' } })
  expect(json.code).toBe(0)
  expect(JSON.parse(json.out)).toEqual({ value: 'SENTINEL-A', expiresOn: 1 })
})

test('get of a missing key exits 1 with the code on stderr and no value anywhere', () => {
  const r = run(['get', 'gamma', '--secrets-file', 'secrets/secrets.json'], { cwd: t.dir })
  expect(r.code).toBe(1)
  expect(r.out).toBe('')
  expect(r.err).toMatch(/^NOT_FOUND: secret 'gamma' is not in/)
  expect(r.err).not.toMatch(/SENTINEL/)
})

test('validate checks every key of the local file by default', () => {
  const r = run(['validate', '--source', 'local'], { cwd: t.dir })
  expect(r.code).toBe(0)
  expect(r.out).toBe('alpha: Validation successful\nbeta: Validation successful\n')
})

test('validate names the keys that fail and exits 1', () => {
  const r = run(['validate', 'alpha', 'nope', '--source', 'local'], { cwd: t.dir })
  expect(r.code).toBe(1)
  expect(r.out).toMatch(/^alpha: Validation successful\nnope: NOT_FOUND /)
  expect(r.out + r.err).not.toMatch(/SENTINEL/)
})

test('validate reports a broken file', () => {
  t.write('secrets/secrets.json', '{ nope')
  const r = run(['validate', '--source', 'local'], { cwd: t.dir })
  expect(r.code).toBe(1)
  expect(r.err).toMatch(/LOCAL_FILE_INVALID: .*line 1, column 3/)
})

test('doctor says which source auto picks and why, and warns when secrets/ is not git-ignored', () => {
  const r = run(['doctor'], { cwd: t.dir, env: { NODE_ENV: 'development', AZURE_CLIENT_SECRET: 'SENTINEL-CS' } })
  expect(r.out).toMatch(/^source: local\n  why: local: NODE_ENV is development/)
  expect(r.out).toContain(path.join(t.dir, 'secrets', 'secrets.json'))
  expect(r.out).toMatch(/WARNING: secrets\/ is not git-ignored/)
  expect(r.out).toMatch(/identity variables set: AZURE_CLIENT_SECRET \(values not shown\)/)
  expect(r.out).toMatch(/\*\.commerce\.dynamics\.com/)
  expect(r.out + r.err).not.toMatch(/SENTINEL/)
  expect(r.code).toBe(1)

  t.write('.gitignore', 'node_modules/\nsecrets/\n')
  const ok = run(['doctor'], { cwd: t.dir, env: { NODE_ENV: 'development' } })
  expect(ok.out).toMatch(/secrets\/ is ignored/)
  expect(ok.code).toBe(0)
})

test('doctor says whether telemetry is on and where it goes (the ingestion host, never the key)', () => {
  const key = '11111111-2222-4333-8444-555555555555'
  const r = run(['doctor', '--offline'], {
    cwd: t.dir,
    env: { NODE_ENV: 'development', APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${key};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/` },
  })
  expect(r.out).toMatch(/^telemetry: @opentelemetry\/api present; no provider registered in this process/m)
  expect(r.out).toContain('Application Insights at westeurope-5.in.applicationinsights.azure.com')
  expect(r.out).not.toContain(key)
})

test('doctor explains NOT_CONFIGURED', () => {
  const empty = tempDir()
  try {
    const r = run(['doctor'], { cwd: empty.dir })
    expect(r.out).toMatch(/source: local \(not configured\)/)
    expect(r.out).toMatch(/NODE_ENV=development/)
    expect(r.code).toBe(1)
  } finally {
    empty.cleanup()
  }
})

test('usage errors exit 2; --help exits 0', () => {
  expect(run(['--help']).code).toBe(0)
  expect(run(['--help']).out).toMatch(/get KEY/)
  expect(run([]).code).toBe(2)
  expect(run(['frobnicate']).code).toBe(2)
  expect(run(['get']).code).toBe(2)
  expect(run(['get', 'a', '--bogus']).code).toBe(2)
  expect(run(['get', 'a', '--source']).code).toBe(2)
  const bad = run(['get', 'a', '--source', 'cloud'])
  expect(bad.code).toBe(2)
  expect(bad.err).toMatch(/`source`/)
})

test('--version prints the version; --help lists the environment variables read', () => {
  const v = run(['--version'])
  expect(v.code).toBe(0)
  expect(v.out.trim()).toBe(require('../package.json').version)
  expect(run(['-V']).out.trim()).toBe(require('../package.json').version)
  const help = run(['--help']).out
  for (const name of ['COMMERCE_SECRETS_SOURCE', 'COMMERCE_SECRETS_VAULT_URLS', 'COMMERCE_SECRETS_OUN', 'IDENTITY_ENDPOINT',
    'MSI_ENDPOINT', 'AZURE_CLIENT_ID', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_AUTHORITY_HOST',
    'COMMERCE_SECRETS_NATIVE_PATH', 'NODE_ENV']) {
    expect(help).toContain(name)
  }
})

test('doctor exits non-zero when the secrets file does not parse, and says where', () => {
  const t = tempDir()
  try {
    t.write('secrets/secrets.json', '{ "a": "1", ')
    t.write('.gitignore', 'secrets/\n')
    const r = run(['doctor'], { cwd: t.dir, env: { NODE_ENV: 'development' } })
    expect(r.out).toMatch(/FAULT: LOCAL_FILE_INVALID: .*secrets\.json is not valid JSON: .* at line 1, column/)
    expect(r.code).toBe(1)
    t.write('secrets/secrets.json', '{ "a": "SENTINEL-VALUE" }')
    const ok = run(['doctor'], { cwd: t.dir, env: { NODE_ENV: 'development' } })
    expect(ok.out).toMatch(/parses: yes, 1 key \(names not shown\)/)
    expect(ok.out).not.toMatch(/SENTINEL/)
    expect(ok.code).toBe(0)
  } finally {
    t.cleanup()
  }
})

test('doctor --offline makes no network request', () => {
  // An identity endpoint that would be asked for a token: nothing listens there, and with
  // --offline nothing may try.
  const r = run(['doctor', '--offline', '--source', 'retail-server'], {
    env: { IDENTITY_ENDPOINT: 'http://127.0.0.1:9/msi/token/', IDENTITY_HEADER: 'h' },
  })
  expect(r.out).toMatch(/token: not checked \(--offline: no network request was made\)/)
  expect(r.out).not.toMatch(/cannot be had/)
  expect(r.code).toBe(0)
})

test('validate with nothing configured explains NOT_CONFIGURED and how to configure a source', () => {
  const empty = tempDir()
  try {
    const r = run(['validate'], { cwd: empty.dir })
    expect(r.err).toMatch(/^NOT_CONFIGURED: .*Configure one of/)
    expect(r.err).not.toMatch(/cannot list its keys/)
    expect(r.code).toBe(1)
  } finally {
    empty.cleanup()
  }
})

test('doctor runs git without the repository\'s configured commands: a core.fsmonitor script is never run', () => {
  const git = (...args) => spawnSync('git', args, { cwd: t.dir, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: t.dir } })
  expect(git('init', '-q', '.').status).toBe(0)
  const marker = path.join(t.dir, 'FSMONITOR-RAN')
  const hook = t.write('fsmonitor.sh', `#!/bin/sh\ntouch '${marker}'\n`)
  require('node:fs').chmodSync(hook, 0o755)
  expect(git('config', 'core.fsmonitor', hook).status).toBe(0)
  expect(git('config', 'core.hooksPath', t.dir).status).toBe(0)
  // Plain git would run it (the index is read): the hazard is real here.
  git('check-ignore', '-q', 'secrets/secrets.json')
  const real = require('node:fs').existsSync(marker)
  require('node:fs').rmSync(marker, { force: true })
  t.write('.gitignore', 'secrets/\n')
  const r = run(['doctor', '--offline'], { cwd: t.dir, env: { NODE_ENV: 'development' } })
  expect(r.out).toMatch(/git: secrets\/ is ignored \(git check-ignore\)/)
  expect(require('node:fs').existsSync(marker)).toBe(false)
  expect(r.code).toBe(0)
  expect(real).toBe(true)
})

test('exit codes: a bad environment variable is a configuration fault (1); a bad option on the command line a usage error (2)', () => {
  const env = run(['get', 'a'], { cwd: t.dir, env: { COMMERCE_SECRETS_SOURCE: 'cloud' } })
  expect(env.code).toBe(1)
  expect(env.err).toMatch(/^configuration: environment variable COMMERCE_SECRETS_SOURCE must be one of/)
  const vaults = run(['get', 'a'], { cwd: t.dir, env: { COMMERCE_SECRETS_VAULT_URLS: 'not a url' } })
  expect(vaults.code).toBe(1)
  const flag = run(['get', 'a', '--source', 'cloud'], { cwd: t.dir, env: { COMMERCE_SECRETS_SOURCE: 'local' } })
  expect(flag.code).toBe(2)
  expect(flag.err).toMatch(/option `source` must be one of/)
})

test('validate with no KEY on a source that cannot list its keys is a usage error: exit 2 with the usage text', () => {
  const r = run(['validate', '--source', 'key-vault', '--vault-url', 'https://myvault.vault.azure.net'], { cwd: t.dir })
  expect(r.code).toBe(2)
  expect(r.err).toMatch(/^validate needs KEY… with the key-vault source \(only the local source can list its keys\)\n\nUsage: /)
  const help = run(['--help']).out
  expect(help).toMatch(/Exit codes:\n  0  success\n  1  .*configuration is at fault/)
  expect(help).toMatch(/  2  a usage error/)
})
