/**
 * @jest-environment jsdom
 */
'use strict'
// The test double under Jest's jsdom environment (the SDK's preset): every fault, delay and
// control, as under node (testing-double.test.js).
const { faultSuite } = require('./fakes/double-faults')

test('this is jsdom: window exists', () => {
  expect(typeof window).toBe('object')
})

faultSuite()
