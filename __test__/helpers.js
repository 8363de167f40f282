'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const TEST_CONTROL = Symbol.for('commerce-secret-manager.testControl')
const URL = 'https://scu1234ret.commerce.dynamics.com/'

// A fresh temporary directory, removed by cleanup().
function tempDir(prefix = 'csm-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  return {
    dir,
    write(rel, content) {
      const p = path.join(dir, rel)
      fs.mkdirSync(path.dirname(p), { recursive: true })
      fs.writeFileSync(p, content)
      return p
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

// Run fn with the working directory set to dir.
async function inDir(dir, fn) {
  const before = process.cwd()
  process.chdir(dir)
  try {
    return await fn()
  } finally {
    process.chdir(before)
  }
}

// Poll until check() is truthy (bounded), for effects that land after a background step.
async function until(check, { timeoutMs = 2000, stepMs = 5 } = {}) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(stepMs)
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

module.exports = { TEST_CONTROL, URL, tempDir, inDir, until, sleep }
