// A fake Key Vault over https (certificate from the parent) and a fake App Service identity
// endpoint over http, for the Azure SDK comparison. Counts what reaches it; GET /__counts on
// the identity server reports and /__reset clears. Serves until stdin closes.
import http from 'node:http'
import https from 'node:https'
import { readFileSync } from 'node:fs'

const [certFile, keyFile] = process.argv.slice(2)
const counts = { challenges: 0, gets: 0, tokens: 0 }

const vault = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  if (!req.headers.authorization) {
    counts.challenges++
    res.writeHead(401, {
      'content-type': 'application/json; charset=utf-8',
      'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/bench-tenant", resource="https://vault.azure.net"',
    })
    return res.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }))
  }
  counts.gets++
  const name = req.url.split('?')[0].split('/')[2]
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify({
    value: 'bench-value',
    id: `https://127.0.0.1:${vault.address().port}/secrets/${name}/0123456789abcdef0123456789abcdef`,
    attributes: { enabled: true, created: 1739463503, updated: 1739463503, recoveryLevel: 'Recoverable+Purgeable' },
  }))
})
const identity = http.createServer((req, res) => {
  if (req.url.startsWith('/__counts')) {
    res.writeHead(200, { 'content-type': 'application/json' })
    return res.end(JSON.stringify(counts))
  }
  if (req.url.startsWith('/__reset')) {
    Object.assign(counts, { challenges: 0, gets: 0, tokens: 0 })
    return res.end('{}')
  }
  counts.tokens++
  const resource = new URL(req.url, 'http://x').searchParams.get('resource')
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ access_token: 'bench-token', expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource, token_type: 'Bearer', client_id: 'bench' }))
})
await new Promise((r) => vault.listen(0, '127.0.0.1', r))
await new Promise((r) => identity.listen(0, '127.0.0.1', r))
console.log(JSON.stringify({ vault: `https://127.0.0.1:${vault.address().port}`, identity: `http://127.0.0.1:${identity.address().port}/` }))
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
