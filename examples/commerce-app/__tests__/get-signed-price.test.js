/**
 * @jest-environment jsdom
 */
'use strict'
// Under jsdom, as the Commerce SDK's Jest preset runs: `window` exists, so msdyn365Commerce
// says isBrowser and install() leaves it alone. The testing entry installs a memory-source
// manager anyway, and the data action reads the secret as it would on the server.
const crypto = require('crypto')
const { installTestSecretManager } = require('commerce-secret-manager/testing')
const { msdyn365Commerce } = require('../src/msdyn365-commerce')
const { getSignedPrice } = require('../src/actions/get-signed-price')

const ctx = (traces) => ({
  requestContext: { apiSettings: { baseUrl: 'https://scu1234ret.commerce.dynamics.com/' } },
  trace: (m) => traces.push(m),
})

test('jsdom: the platform object says isBrowser, so the server install left it alone', () => {
  require('../src/install-secrets')
  expect(typeof window).toBe('object')
  expect(msdyn365Commerce.isBrowser).toBe(true)
  expect(msdyn365Commerce.secretManager).toBeUndefined()
})

test('the data action signs with the secret the test installed', async () => {
  const secrets = installTestSecretManager(msdyn365Commerce, { priceSigningKey: 'test-signing-key' })
  const traces = []
  const result = await getSignedPrice({ productId: 'P-100', price: 25 }, ctx(traces))
  const expected = crypto.createHmac('sha256', 'test-signing-key').update('P-100:25').digest('hex')
  expect(result).toEqual({ productId: 'P-100', price: 25, signature: expected })
  expect(secrets.stats().misses).toBe(1)
  expect(traces).toEqual([])
})

test('a missing secret degrades the result and traces only the code', async () => {
  installTestSecretManager(msdyn365Commerce, {})
  const traces = []
  const result = await getSignedPrice({ productId: 'P-100', price: 25 }, ctx(traces))
  expect(result.signature).toBeUndefined()
  expect(traces).toEqual(['priceSigningKey unavailable: NOT_FOUND'])
})
