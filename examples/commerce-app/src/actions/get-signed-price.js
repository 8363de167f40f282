'use strict'
// A data action: signs a price with a secret read through msdyn365Commerce.secretManager, on
// the server. A missing secret degrades the result; only its code is logged, never a value.
const crypto = require('crypto')
const { msdyn365Commerce } = require('../msdyn365-commerce')

async function getSignedPrice(input, ctx) {
  const manager = msdyn365Commerce.secretManager
  if (!manager) return { productId: input.productId, price: input.price, signature: undefined }
  const key = await manager.getSecretValue('priceSigningKey', ctx.requestContext.apiSettings.baseUrl)
  if (key.error) {
    ctx.trace(`priceSigningKey unavailable: ${key.error.code}`)
    return { productId: input.productId, price: input.price, signature: undefined }
  }
  const signature = crypto.createHmac('sha256', key.value).update(`${input.productId}:${input.price}`).digest('hex')
  return { productId: input.productId, price: input.price, signature }
}

module.exports = { getSignedPrice }
