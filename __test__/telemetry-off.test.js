'use strict'
// OpenTelemetry absent, or present with no provider registered: the manager works as before,
// sends no traceparent (the client request id still goes), and its telemetry says so.
const { startVault, startAad } = require('./fakes/azure')
const { isolateEnv } = require('./helpers')

isolateEnv(['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT'])
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

async function readThrough(SecretManager) {
  const aad = await startAad()
  const vault = await startVault({ k: { value: 'v' } })
  process.env.AZURE_AUTHORITY_HOST = aad.url
  process.env.AZURE_CLIENT_ID = 'app-id'
  process.env.AZURE_CLIENT_SECRET = 'SENTINEL-CLIENT-SECRET'
  const m = new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true })
  try {
    expect((await m.getSecretValue('k', '')).value).toBe('v')
    expect((await m.getSecretValue('k', '')).value).toBe('v')
    for (const q of [...vault.requests, ...aad.requests]) {
      expect(q.headers.traceparent).toBeUndefined()
      expect(q.headers['x-ms-client-request-id']).toMatch(UUID_V4)
    }
    return m
  } finally {
    await m.close()
    await vault.close()
    await aad.close()
  }
}

test('the API absent: no telemetry object at all, reads work', async () => {
  let m
  let described
  await jest.isolateModulesAsync(async () => {
    jest.doMock('@opentelemetry/api', () => {
      throw new Error("Cannot find module '@opentelemetry/api'")
    })
    const { SecretManager } = require('..')
    m = await readThrough(SecretManager)
    described = require('../telemetry.js').describe()
  })
  expect(m._telemetry).toBeUndefined()
  expect(described).toMatchObject({ api: false })
})

test('the API present, no provider registered: nothing recorded, no traceparent; doctor would say so', async () => {
  let described
  jest.dontMock('@opentelemetry/api')
  await jest.isolateModulesAsync(async () => {
    const { SecretManager } = require('..')
    const m = await readThrough(SecretManager)
    expect(m._telemetry).toBeDefined()
    expect(m._telemetry.start('k', 'get')).toBeUndefined()
    described = require('../telemetry.js').describe()
  })
  expect(described).toMatchObject({ api: true, tracerProvider: undefined, meterProvider: undefined })
})
