'use strict'
// `npm start`: runs the example data action on the bundled demo secrets, then `validate`.
//
// It runs from examples/, as a Commerce app runs from its own root: NODE_ENV=development and
// the default path rule find examples/secrets/secrets.json with no option at all.
const path = require('node:path')
const fs = require('node:fs')
const Module = require('node:module')
const { spawnSync } = require('node:child_process')
const { transformSync } = require('esbuild')

const here = __dirname
process.chdir(here)
process.env.NODE_ENV = 'development'

// Load the TypeScript example as CommonJS (esbuild strips the types).
const file = path.join(here, 'data-action.ts')
const { code } = transformSync(fs.readFileSync(file, 'utf8'), { loader: 'ts', format: 'cjs', target: 'node18' })
const mod = new Module(file, module)
mod.filename = file
mod.paths = Module._nodeModulePaths(here)
mod._compile(code, file)
const { getSignedQuoteAction, msdyn365Commerce } = mod.exports

async function main() {
  const ctx = {
    requestContext: { apiSettings: { baseUrl: 'https://scu1234ret.commerce.dynamics.com/' } },
    trace: (m) => console.log(`  trace: ${m}`),
  }
  console.log(`secretManager installed: ${msdyn365Commerce.secretManager !== undefined}`)
  const quote = await getSignedQuoteAction('SKU-1001', 49.95, ctx)
  console.log(`signed quote: ${quote.sku} at ${quote.price}, signature ${quote.signature ?? quote.degraded}`)

  console.log('\nnpx commerce-secret-manager validate')
  const cli = spawnSync(process.execPath, [path.join(here, '..', 'bin', 'cli.js'), 'validate'], { stdio: 'inherit' })
  return quote.signature !== undefined && cli.status === 0 ? 0 : 1
}

main().then((code) => {
  process.exitCode = code
})
