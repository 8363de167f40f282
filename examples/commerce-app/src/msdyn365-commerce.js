'use strict'
// Stands in for `@msdyn365-commerce/core`'s msdyn365Commerce, in the platform's exact shape
// (core-internal MSDyn365Commerce, 1.27.15): `secretManager` is a getter-only accessor on the
// prototype over a private `_secretManager`, which the platform's server start-up assigns
// through a prototype method after the app's modules have loaded; `isBrowser` is a prototype
// getter.
class MSDyn365Commerce {
  constructor() {
    this._secretManager = undefined
  }

  get secretManager() {
    return this._secretManager
  }

  get isBrowser() {
    return typeof window !== 'undefined'
  }

  // What the platform's server start-up calls with its own SecretManager.
  setSecretManager(manager) {
    this._secretManager = manager
  }
}

module.exports = { msdyn365Commerce: new MSDyn365Commerce() }
