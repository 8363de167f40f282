'use strict'
// The client bundle's entry: the same modules, in the browser. The package's browser entry
// loads no native code, install changes nothing, and secretManager stays undefined.
require('./install-secrets')
const { msdyn365Commerce } = require('./msdyn365-commerce')

globalThis.commerceAppResult = { secretManager: msdyn365Commerce.secretManager }
