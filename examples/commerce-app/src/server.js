'use strict'
// The server bundle's entry: app modules load (and install), then the platform's start-up
// assigns its own manager, then a request runs the data action.
require('./install-secrets')
const { msdyn365Commerce } = require('./msdyn365-commerce')
const { getSignedPrice } = require('./actions/get-signed-price')

// The platform's start-up, after app modules have loaded.
msdyn365Commerce.setSecretManager({
  getSecretValue: () => Promise.resolve({ value: '', error: new Error('the platform manager'), expiresOn: 0 }),
})

const ctx = {
  requestContext: { apiSettings: { baseUrl: 'https://scu1234ret.commerce.dynamics.com/' } },
  trace: (message) => console.error(message),
}

getSignedPrice({ productId: 'P-100', price: 25 }, ctx).then(async (result) => {
  const manager = msdyn365Commerce.secretManager
  console.log(JSON.stringify({ result, source: manager.source, stats: manager.stats() }))
  await manager.close()
  process.exitCode = result.signature ? 0 : 1
})
