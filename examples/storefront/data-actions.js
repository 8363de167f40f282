'use strict'
// Commerce-style data actions: each reads what it needs through
// msdyn365Commerce.secretManager, uses the secret on the server, and returns only results.
const crypto = require('node:crypto')

async function getRecommendationsAction(sku, ctx) {
  const secrets = ctx.msdyn365Commerce.secretManager
  if (!secrets) return { degraded: 'Recommendations are loaded on the server' }
  const key = await secrets.getSecretValue('recommendationsApiKey', ctx.requestContext.apiSettings.baseUrl)
  if (key.error) {
    ctx.log(`recommendationsApiKey unavailable: ${key.error.code}`)
    return { degraded: 'Recommendations are unavailable right now' }
  }
  const res = await fetch(`${ctx.recommendationsUrl}recommendations?sku=${encodeURIComponent(sku)}`, {
    headers: { 'x-api-key': key.value },
  })
  if (!res.ok) {
    ctx.log(`recommendations service answered ${res.status}`)
    return { degraded: 'Recommendations are unavailable right now' }
  }
  return { items: await res.json(), debugKey: ctx.deliberatelyLeak ? key.value : undefined }
}

// A price token the checkout can verify: sku, price and expiry, signed with the signing key.
async function getPriceTokenAction(sku, price, ctx) {
  const secrets = ctx.msdyn365Commerce.secretManager
  if (!secrets) return { degraded: 'Prices are signed on the server' }
  const key = await secrets.getSecretValue('priceSigningKey', ctx.requestContext.apiSettings.baseUrl)
  if (key.error) {
    ctx.log(`priceSigningKey unavailable: ${key.error.code}`)
    return { degraded: 'Price signing is unavailable right now' }
  }
  const payload = Buffer.from(JSON.stringify({ sku, price, exp: Math.floor(Date.now() / 1000) + 900 })).toString('base64url')
  const signature = crypto.createHmac('sha256', key.value).update(payload).digest('base64url')
  return { token: `${payload}.${signature}` }
}

module.exports = { getRecommendationsAction, getPriceTokenAction }
