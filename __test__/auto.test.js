'use strict'
// The `auto` rules of api.md, read from options and the environment, and the default instance.
const path = require('node:path')
const { SecretManager, createSecretManager } = require('..')
const { tempDir, inDir, URL, isolateEnv } = require('./helpers')

const VARS = ['NODE_ENV', 'COMMERCE_SECRETS_SOURCE', 'COMMERCE_SECRETS_VAULT_URLS', 'IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT']
isolateEnv(VARS)
let t
beforeEach(() => {
  t = tempDir()
})
afterEach(() => {
  t.cleanup()
})

test('NODE_ENV=development picks local, before a managed identity', async () => {
  process.env.NODE_ENV = 'development'
  process.env.IDENTITY_ENDPOINT = 'http://127.0.0.1:41741/msi/token/'
  await inDir(t.dir, async () => {
    t.write('secrets/secrets.json', '{"k": "dev"}')
    const m = new SecretManager()
    expect(m.source).toBe('local')
    expect((await m.getSecretValue('k', URL)).value).toBe('dev')
  })
})

test.each(['IDENTITY_ENDPOINT', 'MSI_ENDPOINT'])('%s picks retail-server', (variable) => {
  process.env[variable] = 'http://127.0.0.1:41741/msi/token/'
  expect(new SecretManager().source).toBe('retail-server')
})

test('COMMERCE_SECRETS_VAULT_URLS picks key-vault', () => {
  // Only the choice: a call would go to the vault, and tests talk to loopback fakes only.
  process.env.COMMERCE_SECRETS_VAULT_URLS = 'https://a.vault.azure.net'
  expect(new SecretManager().source).toBe('key-vault')
})

test('source key-vault without a vault answers NOT_CONFIGURED saying how to name one', async () => {
  const r = await new SecretManager({ source: 'key-vault' }).getSecretValue('k', URL)
  expect(r.error.code).toBe('NOT_CONFIGURED')
  expect(r.error.message).toMatch(/vaultUrls|COMMERCE_SECRETS_VAULT_URLS/)
})

test('explicit beats implicit: vault urls win over the App Service identity App Service always sets', () => {
  process.env.IDENTITY_ENDPOINT = 'http://127.0.0.1:1/'
  process.env.IDENTITY_HEADER = 'h'
  process.env.COMMERCE_SECRETS_VAULT_URLS = 'https://a.vault.azure.net'
  expect(new SecretManager().source).toBe('key-vault')
  delete process.env.COMMERCE_SECRETS_VAULT_URLS
  expect(new SecretManager({ vaultUrls: ['https://a.vault.azure.net'] }).source).toBe('key-vault')
  process.env.NODE_ENV = 'development'
  expect(new SecretManager({ vaultUrls: ['https://a.vault.azure.net'] }).source).toBe('key-vault')
  expect(new SecretManager({ secretsFile: 'x.json' }).source).toBe('local')
  expect(new SecretManager({ source: 'retail-server', vaultUrls: ['https://a.vault.azure.net'] }).source).toBe('retail-server')
  delete process.env.NODE_ENV
  expect(new SecretManager().source).toBe('retail-server') // nothing explicit: the identity implies Commerce
})

test('otherwise local when a secrets file exists, else NOT_CONFIGURED with how to configure', async () => {
  await inDir(t.dir, async () => {
    const none = new SecretManager()
    const r = await none.getSecretValue('k', URL)
    expect(r.error.code).toBe('NOT_CONFIGURED')
    expect(r.error.message).toMatch(/NODE_ENV=development/)
    expect(r.error.message).toMatch(/COMMERCE_SECRETS_VAULT_URLS/)
    t.write('build/secrets/secrets.json', '{"k": "built"}')
    const m = new SecretManager()
    expect(m.source).toBe('local')
    expect((await m.getSecretValue('k', URL)).value).toBe('built')
  })
})

test('the source option and COMMERCE_SECRETS_SOURCE choose explicitly', () => {
  process.env.NODE_ENV = 'development'
  process.env.COMMERCE_SECRETS_SOURCE = 'memory'
  expect(new SecretManager().source).toBe('memory')
  expect(new SecretManager({ source: 'local' }).source).toBe('local')
  process.env.COMMERCE_SECRETS_SOURCE = 'nonsense'
  expect(() => new SecretManager()).toThrow(/COMMERCE_SECRETS_SOURCE/)
})

test('a secrets option picks the memory source', () => {
  expect(createSecretManager({ secrets: { a: 'b' } }).source).toBe('memory')
})

test('the default instance is built from the environment on first use and never throws', async () => {
  process.env.NODE_ENV = 'development'
  await inDir(t.dir, async () => {
    t.write('secrets/secrets.json', '{"k": "default"}')
    jest.isolateModules(() => {
      const { secretManager } = require('..')
      globalThis.__sm = secretManager
    })
    expect((await globalThis.__sm.getSecretValue('k', URL)).value).toBe('default')
  })
  process.env.COMMERCE_SECRETS_SOURCE = 'bogus'
  let fresh
  jest.isolateModules(() => {
    fresh = require('..').secretManager
  })
  const r = await fresh.getSecretValue('k', URL)
  expect(r.error.code).toBe('NOT_CONFIGURED')
  expect(r.error).toBeInstanceOf(Error)
  delete globalThis.__sm
})

test('source reports the resolved source', () => {
  expect(new SecretManager({ source: 'local', secretsFile: path.join(t.dir, 'x.json') }).source).toBe('local')
})
