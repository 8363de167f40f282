'use strict'
// One name for a secret, and push invalidation that reaches it (issue 19): every form of a Key
// Vault secret shares one cache entry; secretChanged(vault, name) refreshes what that pair
// serves and nothing else; the Event Grid handler is a thin adapter over it. Loopback fakes.
const http = require('node:http')
const { SecretManager, createEventGridHandler } = require('..')
const { isolateEnv } = require('./helpers')
const { startAad, startVault } = require('./fakes/azure')

isolateEnv(['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT',
  'COMMERCE_SECRETS_VAULT_URLS', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE', 'AZURE_ADDITIONALLY_ALLOWED_TENANTS'])
const open = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})
const track = (x) => {
  open.push(x)
  return x
}
const SHARED = 'a-shared-secret-of-some-length'
const V1 = '11111111111111111111111111111111'
const V2 = '22222222222222222222222222222222'

let vault
beforeEach(async () => {
  const aad = track(await startAad())
  vault = track(await startVault({ db: { value: 'first', currentVersion: V1, versions: { [V1]: 'first' } }, api: { value: 'api-1' } }))
  process.env.AZURE_AUTHORITY_HOST = aad.url
  process.env.AZURE_CLIENT_ID = 'app-id'
  process.env.AZURE_CLIENT_SECRET = 'client-secret-value'
})

function manager(options = {}) {
  return track(new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, ...options }))
}
const origin = (fake) => fake.url.replace(/\/$/, '')
const gets = (fake, name) => fake.requests.filter((r) => r.headers.authorization && r.path === `/secrets/${name}`).length
const challenges = (fake) => fake.requests.filter((r) => !r.headers.authorization).length
const rotate = (fake, name, value, version) => {
  fake.secrets[name].value = value
  fake.secrets[name].currentVersion = version
}

async function serve(handler) {
  const server = http.createServer(handler)
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  track({ close: () => new Promise((r) => server.close(r)) })
  return `http://127.0.0.1:${server.address().port}/?code=${SHARED}`
}
async function post(url, body) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: r.status, json: await r.json().catch(() => undefined) }
}
let nextId = 0
function event(data, id = `ev-${++nextId}`) {
  return { id, eventType: 'Microsoft.KeyVault.SecretNewVersionCreated', subject: data.ObjectName, eventTime: new Date().toISOString(), data, dataVersion: '1', metadataVersion: '1' }
}
const newVersion = (fake, name, id) => event({ Id: `${fake.url}secrets/${name}/${V2}`, ObjectType: 'Secret', ObjectName: name, Version: V2 }, id)

describe('one cache entry per secret, whatever form the key takes', () => {
  test('a name, its full id and the App Service reference share one entry and one flight (one vault)', async () => {
    const m = manager()
    const forms = ['db', `${vault.url}secrets/db`, `@Microsoft.KeyVault(SecretUri=${vault.url}secrets/db)`, `@microsoft.keyvault(secreturi=${vault.url.toUpperCase()}secrets/db/)`]
    const answers = await Promise.all(forms.map((k) => m.getSecretValue(k, '')))
    expect(answers.map((a) => a.value)).toEqual(['first', 'first', 'first', 'first'])
    for (const k of forms) expect((await m.getSecretValue(k, '')).value).toBe('first')
    expect(gets(vault, 'db')).toBe(1)
    expect(m.stats().entries).toBe(1)
  })

  test('a pinned version is its own entry; names compare as Key Vault does, ignoring case', async () => {
    const m = manager()
    expect((await m.getSecretValue(`${vault.url}secrets/db/${V1}`, '')).value).toBe('first')
    expect((await m.getSecretValue('db', '')).value).toBe('first')
    expect(m.stats().entries).toBe(2)
    expect((await m.getSecretValue('DB', '')).value).toBe('first') // the same secret: the same entry
    expect(m.stats().entries).toBe(2)
    expect(gets(vault, 'db')).toBe(1)
  })

  test('an event naming the secret in another case refreshes it', async () => {
    const m = manager()
    await m.getSecretValue('db', '')
    rotate(vault, 'db', 'second', V2)
    await expect(m.secretChanged(vault.url, 'DB')).resolves.toEqual({ refreshed: 1 })
    expect((await m.getSecretValue('db', '')).value).toBe('second')
  })

  test('a scheme in capitals is a url, not an invalid name', async () => {
    const r = await manager().getSecretValue(`HTTP://${vault.url.slice('http://'.length)}secrets/db`, '')
    expect(r.error).toBeUndefined()
    expect(r.value).toBe('first')
  })

  test('a reference to a configured vault is that vault: no second challenge round trip (two vaults)', async () => {
    const second = track(await startVault({}))
    const m = manager({ vaultUrls: [vault.url, second.url] })
    expect((await m.getSecretValue('db', '')).value).toBe('first')
    expect((await m.getSecretValue(`${vault.url}secrets/api`, '')).value).toBe('api-1')
    expect(challenges(vault)).toBe(1)
  })

  test('invalidate through any form forgets the one entry', async () => {
    const m = manager()
    await m.getSecretValue('db', '')
    m.invalidate(`@Microsoft.KeyVault(SecretUri=${vault.url}secrets/db)`)
    expect(m.stats().entries).toBe(0)
  })
})

describe('secretChanged(vault, name)', () => {
  test('refreshes every cached entry the pair serves, plain and reference keys, not pinned versions', async () => {
    const second = track(await startVault({}))
    const m = manager({ vaultUrls: [vault.url, second.url] })
    const ref = `@Microsoft.KeyVault(SecretUri=${vault.url}secrets/db)`
    const pinned = `${vault.url}secrets/db/${V1}`
    for (const k of ['db', ref, pinned]) expect((await m.getSecretValue(k, '')).value).toBe('first')
    rotate(vault, 'db', 'second', V2)
    const before = vault.requests.length
    await expect(m.secretChanged(vault.url, 'db')).resolves.toEqual({ refreshed: 2})
    expect(vault.requests.length - before).toBe(2) // the plain entry and the reference's; not the pinned one
    expect((await m.getSecretValue('db', '')).value).toBe('second')
    expect((await m.getSecretValue(ref, '')).value).toBe('second')
    expect((await m.getSecretValue(`${vault.url}secrets/db`, '')).value).toBe('second')
    expect((await m.getSecretValue(pinned, '')).value).toBe('first')
  })

  test('a secret this instance never read is left alone: nothing fetched, nothing cached', async () => {
    const m = manager()
    await m.getSecretValue('db', '')
    const before = vault.requests.length
    await expect(m.secretChanged(vault.url, 'api')).resolves.toEqual({ refreshed: 0})
    expect(vault.requests.length).toBe(before)
    expect(m.stats().entries).toBe(1)
  })

  test('30 calls at once: at most two reads, and every caller sees a read that began after it asked', async () => {
    const m = manager()
    await m.getSecretValue('db', '')
    rotate(vault, 'db', 'second', V2)
    vault.delayMs = 50
    const before = gets(vault, 'db')
    const results = await Promise.all(Array.from({ length: 30 }, () => m.secretChanged(origin(vault), 'db')))
    expect(results.every((r) => r.refreshed === 1)).toBe(true)
    expect(gets(vault, 'db') - before).toBeLessThanOrEqual(2)
    expect((await m.getSecretValue('db', '')).value).toBe('second')
  })

  test.each([
    ['a reference as the name', (v) => [v.url, `${v.url}secrets/db`], 'INVALID_ARGUMENT'],
    ['a name with a version', (v) => [v.url, `db/${V1}`], 'INVALID_ARGUMENT'],
    ['a vault url with a path', (v) => [`${v.url}secrets/db`, 'db'], 'INVALID_ARGUMENT'],
    ['another vault', () => ['https://other.vault.azure.net', 'db'], 'HOST_NOT_ALLOWED'],
    ['the same name in another cloud', () => ['https://myvault.vault.azure.cn', 'db'], 'HOST_NOT_ALLOWED'],
    ['a loopback look-alike', () => ['http://127.other-cloud.example', 'db'], 'HOST_NOT_ALLOWED'],
    ['a vault name that is no vault name', () => ['my.vault', 'db'], 'INVALID_ARGUMENT'],
    ['not strings', () => [1, null], 'INVALID_ARGUMENT'],
  ])('refused, nothing sent: %s', async (_, args, code) => {
    const m = manager()
    await m.getSecretValue('db', '')
    const before = vault.requests.length
    const err = await m.secretChanged(...args(vault)).catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect(err.code).toBe(code)
    expect(vault.requests.length).toBe(before)
  })

  test('a bare vault name matches the configured vault of the cloud exactly', async () => {
    const m = track(new SecretManager({ vaultUrls: ['https://myvault.vault.azure.net'] }))
    await expect(m.secretChanged('myvault', 'db')).resolves.toEqual({ refreshed: 0})
    await expect(m.secretChanged('https://MyVault.vault.azure.net/', 'db')).resolves.toEqual({ refreshed: 0})
    await expect(m.secretChanged('https://myvault.vault.azure.cn', 'db')).rejects.toMatchObject({ code: 'HOST_NOT_ALLOWED' })
    await expect(m.secretChanged('myvault2', 'db')).rejects.toMatchObject({ code: 'HOST_NOT_ALLOWED' })
  })

  test('is for the key-vault source only', async () => {
    const m = track(new SecretManager({ secrets: { db: 'x' } }))
    await expect(m.secretChanged('myvault', 'db')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})

describe('the Event Grid handler', () => {
  test('an ObjectName that is a reference is refused, and the other vault receives nothing', async () => {
    const other = track(await startVault({ x: { value: 'x' } }))
    const m = manager()
    await m.getSecretValue('db', '')
    const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
    const r = await post(url, [event({ Id: `${vault.url}secrets/db/${V2}`, ObjectName: `${other.url}secrets/x` })])
    expect(r.status).toBe(400)
    expect(other.requests).toHaveLength(0)
  })

  test.each([
    ['the same vault name in another cloud', 'https://127.vault.azure.cn/secrets/db/1'],
    ['a host that only begins like the vault', 'http://127.other-cloud.example/secrets/db/1'],
    ['the vault on another port', 'http://127.0.0.1:1/secrets/db/1'],
  ])('an event for another vault (%s): 403, nothing refreshed', async (_, id) => {
    const m = manager()
    await m.getSecretValue('db', '')
    const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
    const before = vault.requests.length
    const r = await post(url, [event({ Id: id, ObjectName: 'db' })])
    expect(r.status).toBe(403)
    expect(vault.requests.length).toBe(before)
  })

  test('30 concurrent deliveries of one rotation: at most two reads (the same id: one)', async () => {
    const m = manager()
    await m.getSecretValue('db', '')
    rotate(vault, 'db', 'second', V2)
    vault.delayMs = 50
    const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
    let before = gets(vault, 'db')
    const same = await Promise.all(Array.from({ length: 30 }, () => post(url, [newVersion(vault, 'db', 'one-id')])))
    expect(same.every((r) => r.status === 200)).toBe(true)
    expect(gets(vault, 'db') - before).toBe(1)
    // Fan-out: 30 different ids for the same change.
    before = gets(vault, 'db')
    const fanned = await Promise.all(Array.from({ length: 30 }, () => post(url, [newVersion(vault, 'db')])))
    expect(fanned.every((r) => r.status === 200)).toBe(true)
    expect(gets(vault, 'db') - before).toBeLessThanOrEqual(2)
    expect((await m.getSecretValue('db', '')).value).toBe('second')
  })

  test('a redelivered event id costs nothing', async () => {
    const m = manager()
    await m.getSecretValue('db', '')
    const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
    expect((await post(url, [newVersion(vault, 'db', 'again')])).status).toBe(200)
    const before = vault.requests.length
    const r = await post(url, [newVersion(vault, 'db', 'again'), newVersion(vault, 'db', 'again')])
    expect(r).toMatchObject({ status: 200, json: { refreshed: [], repeated: 2 } })
    expect(vault.requests.length).toBe(before)
  })

  test('reference keys are refreshed by an event; an unread secret is untouched', async () => {
    const m = manager()
    const ref = `@Microsoft.KeyVault(SecretUri=${vault.url}secrets/db)`
    expect((await m.getSecretValue(ref, '')).value).toBe('first')
    const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
    rotate(vault, 'db', 'second', V2)
    const r = await post(url, [newVersion(vault, 'db'), newVersion(vault, 'api')])
    expect(r).toMatchObject({ status: 200, json: { refreshed: [{ name: 'db', ok: true, refreshed: 1 }, { name: 'api', ok: true, refreshed: 0 }] } })
    expect(gets(vault, 'api')).toBe(0)
    expect((await m.getSecretValue(ref, '')).value).toBe('second')
    expect((await m.getSecretValue(`${vault.url}secrets/db`, '')).value).toBe('second')
  })

  test('a batch of 500 names against a 100 ms vault is answered well inside Event Grid\'s 30 s', async () => {
    const names = Array.from({ length: 500 }, (_, i) => `s${i}`)
    for (const n of names) vault.secrets[n] = { value: `${n}-1` }
    const m = manager({ timeoutMs: 60000 })
    const warm = await m.getSecretValues(names, '')
    expect(warm.every((r) => r.error === undefined)).toBe(true)
    for (const n of names) vault.secrets[n].value = `${n}-2`
    vault.delayMs = 100
    const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
    const started = Date.now()
    const r = await post(url, names.map((n) => newVersion(vault, n)))
    const took = Date.now() - started
    expect(r.status).toBe(200)
    expect(r.json.refreshed).toHaveLength(500)
    expect(r.json.refreshed.every((x) => x.ok && x.refreshed === 1)).toBe(true)
    expect(took).toBeLessThan(10000) // one at a time would be 50 s
    expect((await m.getSecretValue('s499', '')).value).toBe('s499-2')
  }, 60000)
})
