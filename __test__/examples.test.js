'use strict'
// The examples type-check strictly against index.d.ts, and the demo data action runs.
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const root = path.join(__dirname, '..')

test('examples type-check with tsc --noEmit --strict against index.d.ts', () => {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'examples', 'tsconfig.json'), '--noEmit', '--strict'], {
    encoding: 'utf8',
    timeout: 60000,
  })
  expect(r.stdout + r.stderr).toBe('')
  expect(r.status).toBe(0)
})

test('the demo signs a quote and validates every demo key', () => {
  const r = spawnSync(process.execPath, [path.join(root, 'examples', 'demo.js')], { encoding: 'utf8', timeout: 30000 })
  expect(r.status).toBe(0)
  expect(r.stdout).toMatch(/signature [0-9a-f]{64}/)
  expect(r.stdout.match(/Validation successful/g)).toHaveLength(3)
  expect(r.stdout).not.toMatch(/demo-.*-key/)
})
