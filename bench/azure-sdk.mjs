// The Azure SDK side of the comparison: @azure/keyvault-secrets with @azure/identity's
// ManagedIdentityCredential (App Service), against the fake vault of vault.mjs. Run by
// index.mjs with NODE_EXTRA_CA_CERTS (the run-time certificate) and -r loopback-only.cjs.
// Prints one JSON object of figures.
import { Bench } from 'tinybench'
import { SecretClient } from '@azure/keyvault-secrets'
import { ManagedIdentityCredential } from '@azure/identity'

const vaultUrl = process.env.BENCH_VAULT_URL
const counter = process.env.IDENTITY_ENDPOINT
const BATCH = 1000
// The vault is on 127.0.0.1, not in a Key Vault domain: the SDK's own check must be told.
const newClient = () => new SecretClient(vaultUrl, new ManagedIdentityCredential(), { disableChallengeResourceVerification: true })
const counts = async () => (await fetch(`${counter}__counts`)).json()
const reset = () => fetch(`${counter}__reset`)

const warm = newClient()
const first = await warm.getSecret('bench-secret')
if (first.value !== 'bench-value') throw new Error('the SDK did not read the fake vault')
const map = new Map()
const cached = async (name) => map.get(name) ?? (map.set(name, await warm.getSecret(name)), map.get(name))
await cached('bench-secret')

const bench = new Bench({ time: 2000, warmupTime: 300 })
bench
  .add('sdk + Map: hit', async () => {
    for (let i = 0; i < BATCH; i++) await cached('bench-secret')
  })
  .add('sdk: get (a vault round trip)', () => warm.getSecret('bench-secret'))
  .add('sdk: cold miss (new client)', () => newClient().getSecret('bench-secret'))
await bench.run()
const ms = Object.fromEntries(bench.tasks.map((t) => [t.name, t.result.latency.mean]))

await reset()
const herdClient = newClient()
await Promise.all(Array.from({ length: 1000 }, () => herdClient.getSecret('bench-secret')))
const herd = await counts()

console.log(JSON.stringify({
  hitNs: (ms['sdk + Map: hit'] * 1e6) / BATCH,
  roundTripUs: ms['sdk: get (a vault round trip)'] * 1000,
  coldMissUs: ms['sdk: cold miss (new client)'] * 1000,
  herdRequests: herd.challenges + herd.gets + herd.tokens,
  herd,
}))
