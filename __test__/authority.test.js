'use strict'
// A plain-http loopback authority (a fake's address left in AZURE_AUTHORITY_HOST) without
// allowInsecureLoopback is refused for what it is, before any token request, instead of an
// UNAUTHORIZED about the challenge's cloud. The vault is an https fake on localhost (its CA
// trusted through COMMERCE_SECRETS_EXTRA_CA_CERTS), so loopback over http is not needed for it.
const fs = require('node:fs')
const https = require('node:https')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { startAad } = require('./fakes/azure')
const { runCli } = require('./helpers')

let dir
let vault
let aad
const seen = []
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-authority-'))
  const f = (n) => path.join(dir, n)
  const ok = (...args) => expect(spawnSync('openssl', args, { encoding: 'utf8' }).status).toBe(0)
  ok('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-days', '1', '-subj', '/CN=csm-test-ca')
  ok('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', '/CN=localhost')
  fs.writeFileSync(f('ext'), 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n')
  ok('x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('leaf.pem'), '-days', '1', '-extfile', f('ext'))
  vault = https.createServer({ key: fs.readFileSync(f('leaf.key')), cert: fs.readFileSync(f('leaf.pem')) }, (req, res) => {
    seen.push(req.headers.authorization)
    res.writeHead(401, {
      'content-type': 'application/json',
      'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/tenant-x", resource="https://localhost:${vault.address().port}"`,
    })
    res.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }))
  })
  await new Promise((r) => vault.listen(0, '127.0.0.1', r))
  aad = await startAad()
})
afterAll(async () => {
  if (vault) await new Promise((r) => vault.close(r))
  if (aad) await aad.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

test('AZURE_AUTHORITY_HOST=http://127.0.0.1:… without allowInsecureLoopback: IDENTITY_UNAVAILABLE saying why, nothing sent', async () => {
  const r = await runCli(['get', 'k', '--vault-url', `https://localhost:${vault.address().port}`], {
    env: {
      AZURE_AUTHORITY_HOST: aad.url, AZURE_CLIENT_ID: 'app-id', AZURE_CLIENT_SECRET: 'SENTINEL-CLIENT-SECRET',
      COMMERCE_SECRETS_ALLOWED_HOSTS: 'localhost', COMMERCE_SECRETS_EXTRA_CA_CERTS: path.join(dir, 'ca.pem'),
    },
  })
  expect(r.code).toBe(1)
  expect(r.err).toMatch(/^IDENTITY_UNAVAILABLE: .*the authority host \(authorityHost or AZURE_AUTHORITY_HOST\) http:\/\/127\.0\.0\.1:\d+ is plain http: that needs allowInsecureLoopback/)
  expect(r.err).not.toMatch(/UNAUTHORIZED|configured cloud/)
  expect(r.out + r.err).not.toMatch(/SENTINEL/)
  expect(seen.length).toBeGreaterThan(0) // the vault was reached (its challenge), without a token
  expect(seen.every((a) => a === undefined)).toBe(true)
  expect(aad.requests).toHaveLength(0)
})
