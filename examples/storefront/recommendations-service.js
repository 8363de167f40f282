'use strict'
// A loopback stand-in for a recommendations service that needs an API key.
const http = require('node:http')

const CATALOG = {
  'SKU-1001': [
    { sku: 'SKU-2002', name: 'Trail running socks' },
    { sku: 'SKU-3003', name: 'Waterproof jacket' },
    { sku: 'SKU-4004', name: 'Insulated bottle' },
  ],
}

function startRecommendations(apiKey) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    if (req.headers['x-api-key'] !== apiKey) {
      res.writeHead(401, { 'content-type': 'application/json' })
      return res.end('{"error":"bad api key"}')
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(CATALOG[url.searchParams.get('sku')] ?? []))
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

module.exports = { startRecommendations }
