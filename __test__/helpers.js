'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const INTERNALS = Symbol.for('commerce-secret-manager.internals')
// Test hooks of the memory source: a function of the addon, not a method of the class.
function control(manager, c = {}) {
  return require('../binding.js').load().testControl(manager[INTERNALS]().native, c)
}
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
// Wide bound for a loaded CI machine; measured on the monotonic clock (Date may be faked).
async function until(check, { timeoutMs = 10000, stepMs = 5 } = {}) {
  const { performance } = require('node:perf_hooks')
  const end = performance.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v) return v
    if (performance.now() > end) throw new Error('condition not met in time')
    await sleep(stepMs)
  }
}

// Clear these environment variables before each test of the file and put them back after.
// (Jest gives each test file its own copy of process.env; the addon is handed that copy.)
function isolateEnv(names) {
  let saved
  beforeEach(() => {
    saved = Object.fromEntries(names.map((k) => [k, process.env[k]]))
    for (const k of names) delete process.env[k]
  })
  afterEach(() => {
    for (const k of names) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  })
}

// Run the command line without blocking (fakes may run in this process), with only PATH and
// `env` in its environment; resolves with its exit code and output.
function runCli(args, { env = {}, cwd } = {}) {
  const { spawn } = require('node:child_process')
  const cli = path.join(__dirname, '..', 'bin', 'cli.js')
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd, env: { PATH: process.env.PATH, ...env } })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const timer = setTimeout(() => child.kill(), 15000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
  })
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms))
}

// An injected clock: Date (faked by Jest; timers stay real) and the addon's cache clock move
// together, so policy times are tested without sleeping through them.
function fakeClock() {
  jest.useFakeTimers({
    doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask', 'requestAnimationFrame', 'cancelAnimationFrame',
      'requestIdleCallback', 'cancelIdleCallback', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval',
      'setTimeout', 'clearTimeout'],
  })
  return {
    advance(ms, ...managers) {
      jest.setSystemTime(Date.now() + ms)
      for (const m of managers) control(m, { advanceMs: ms })
    },
    restore() {
      jest.useRealTimers()
    },
  }
}

module.exports = { control, fakeClock, INTERNALS, URL, tempDir, inDir, until, sleep, isolateEnv, runCli }
