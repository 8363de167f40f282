'use strict'
// Module-level: runs when the server bundle loads, before the platform's start-up assigns its
// own manager. install() defines an own `secretManager` on msdyn365Commerce, so it wins
// whatever the platform assigns later; in the browser (isBrowser) it changes nothing.
const { install } = require('commerce-secret-manager')
const { msdyn365Commerce } = require('./msdyn365-commerce')

install(msdyn365Commerce)
