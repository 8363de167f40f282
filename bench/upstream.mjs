// Loopback fakes of the App Service identity endpoint and Retail Server for the benchmark,
// in their own process so the measured process has its event loop to itself.
// Prints {"identity": url, "retail": url} and serves until stdin closes.
import http from 'node:http'
import https from 'node:https'
import { readFileSync } from 'node:fs'

function listen(handler) {
  return new Promise((resolve) => {
    const server = http.createServer(handler)
    server.keepAliveTimeout = 30000
    server.listen(0, '127.0.0.1', () => resolve(server))
  })
}

const identity = await listen((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({
    access_token: 'bench-token',
    expires_on: String(Math.floor(Date.now() / 1000) + 3600),
    resource: 'https://commerce.dynamics.com',
    token_type: 'Bearer',
  }))
})
const retail = await listen((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ '@odata.context': 'x/$metadata#Edm.String', value: 'bench-value' }))
})

// With a certificate and key (argv), Retail Server over https too: a real `https://…/` base url.
const [certFile, keyFile] = process.argv.slice(2)
let retailHttps
if (certFile && keyFile) {
  const server = https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ '@odata.context': 'x/$metadata#Edm.String', value: 'bench-value' }))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  retailHttps = `https://127.0.0.1:${server.address().port}/`
}

console.log(JSON.stringify({
  identity: `http://127.0.0.1:${identity.address().port}/msi/token/`,
  retail: `http://127.0.0.1:${retail.address().port}/`,
  retailHttps,
}))
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
