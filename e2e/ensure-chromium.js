'use strict'
// The end-to-end test drives Debian's Chromium (no browser download). Install it when missing.
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')

const path = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
if (fs.existsSync(path)) process.exit(0)
const root = typeof process.getuid === 'function' && process.getuid() === 0
if (!root || spawnSync('which', ['apt-get']).status !== 0) {
  console.error(`Chromium is not at ${path}. Install Debian's chromium package (apt-get install chromium) or set CHROMIUM_PATH.`)
  process.exit(1)
}
console.log('Installing Chromium (apt-get install chromium)...')
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'chromium']]) {
  const r = spawnSync('apt-get', args, { stdio: 'inherit', env })
  if (r.status !== 0) {
    console.error(`apt-get ${args.join(' ')} failed`)
    process.exit(1)
  }
}
process.exit(fs.existsSync(path) ? 0 : 1)
