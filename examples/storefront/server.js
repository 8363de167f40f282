'use strict'
// A small storefront: renders a product page on the server with two secrets used there
// (a recommendations API key, a price-signing key), and ships a client bundle that hydrates it.
//
//   node examples/storefront/server.js [--port N] [--secrets-file F]
//
// `--deliberately-leak` puts the API key into the page: the end-to-end test runs it to show
// that its audit catches such a leak. Never use it otherwise.
const http = require('node:http')
const path = require('node:path')
const esbuild = require('esbuild')
const { install } = require('commerce-secret-manager')
const { getRecommendationsAction, getPriceTokenAction } = require('./data-actions')
const { startRecommendations } = require('./recommendations-service')

const PRODUCTS = { 'SKU-1001': { name: 'Trail running shoe', price: 129.95 } }

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])
}

function page(sku, product, recommendations, price) {
  const state = { sku, price: { token: price.token }, recommendations: recommendations.items ?? [], debugKey: recommendations.debugKey }
  const items = recommendations.items
    ? `<ul id="recommendations">${recommendations.items.map((i) => `<li data-sku="${escapeHtml(i.sku)}">${escapeHtml(i.name)}</li>`).join('')}</ul>`
    : `<p id="recommendations-degraded" class="degraded">${escapeHtml(recommendations.degraded)}</p>`
  const priceLine = price.token
    ? `<p id="price">$${product.price.toFixed(2)} <span id="price-verified">price signed</span></p>`
    : `<p id="price">$${product.price.toFixed(2)} <span id="price-degraded" class="degraded">${escapeHtml(price.degraded)}</span></p>`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(product.name)}</title>
<style>body{font-family:sans-serif;margin:2em}.degraded{color:#a60}li{margin:.2em 0}</style></head>
<body data-hydrated="false">
<h1 id="product-name">${escapeHtml(product.name)}</h1>
${priceLine}
<button id="add-to-cart" disabled>Add to cart</button> <span>Cart: <span id="cart-count">0</span></span>
<h2>You may also like</h2>
${items}
<script id="state" type="application/json">${JSON.stringify(state).replace(/</g, '\\u003c')}</script>
<script src="/client.js"></script>
</body></html>`
}

async function createStorefront({ port = 0, secretsFile, deliberatelyLeak = false, log = console.error } = {}) {
  const file = secretsFile ?? path.join(__dirname, '..', 'secrets', 'secrets.json')
  const msdyn365Commerce = { isBrowser: false }
  install(msdyn365Commerce, { source: 'local', secretsFile: file })

  // The recommendations service checks the key it was given; it learns it from the same store.
  const serviceKey = await msdyn365Commerce.secretManager.getSecretValue('recommendationsApiKey', '')
  const recommendations = await startRecommendations(serviceKey.value || 'no-key-configured')
  const recommendationsUrl = `http://127.0.0.1:${recommendations.address().port}/`

  const bundle = (
    await esbuild.build({ entryPoints: [path.join(__dirname, 'client.js')], bundle: true, platform: 'browser', format: 'iife', write: false, minify: true })
  ).outputFiles[0].text

  let cartCount = 0
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://127.0.0.1')
      if (url.pathname === '/client.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' })
        return res.end(bundle)
      }
      if (url.pathname === '/api/cart' && req.method === 'POST') {
        cartCount++
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ count: cartCount }))
      }
      const m = /^\/product\/([A-Z0-9-]+)$/.exec(url.pathname)
      const product = m && PRODUCTS[m[1]]
      if (!product) {
        res.writeHead(404, { 'content-type': 'text/plain' })
        return res.end('not found')
      }
      const ctx = {
        msdyn365Commerce,
        requestContext: { apiSettings: { baseUrl: 'https://scu1234ret.commerce.dynamics.com/' } },
        recommendationsUrl,
        deliberatelyLeak,
        log,
      }
      const [recs, price] = await Promise.all([getRecommendationsAction(m[1], ctx), getPriceTokenAction(m[1], product.price, ctx)])
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      res.end(page(m[1], product, recs, price))
    } catch (e) {
      log(`request failed: ${e && e.name}`)
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end('error')
    }
  })
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    async close() {
      server.closeAllConnections()
      recommendations.closeAllConnections()
      await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => recommendations.close(r))])
      await msdyn365Commerce.secretManager.close()
    },
  }
}

if (require.main === module) {
  const args = process.argv.slice(2)
  const arg = (name) => {
    const i = args.indexOf(name)
    return i >= 0 ? args[i + 1] : undefined
  }
  createStorefront({
    port: Number(arg('--port') ?? 3000),
    secretsFile: arg('--secrets-file'),
    deliberatelyLeak: args.includes('--deliberately-leak'),
  }).then((s) => {
    console.log(`storefront listening on ${s.url}product/SKU-1001`)
    const stop = () => s.close().then(() => process.exit(0))
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
}

module.exports = { createStorefront }
