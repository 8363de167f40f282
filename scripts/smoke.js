#!/usr/bin/env node
'use strict'
// Smoke test of a release: pack the main package and the platform package npm/<platform>/ (its
// binary in place), install both into an empty project, and answer a memory-source secret
// there. Needs only node and npm: used by the release workflow on each OS and Node version,
// and by __test__/package.test.js (with only node and npm on PATH).
//   node scripts/smoke.js <platform>        e.g. linux-x64-gnu, win32-x64-msvc
const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawnSync } = require('child_process')

const root = path.join(__dirname, '..')
const platform = process.argv[2]
if (!platform) {
  console.error('usage: node scripts/smoke.js <platform>')
  process.exit(2)
}
const platformDir = path.join(root, 'npm', platform)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', shell: process.platform === 'win32', timeout: 600000 })
  if (r.status !== 0) {
    console.error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`)
    process.exit(1)
  }
  return r.stdout
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-smoke-'))
try {
  const packed = (dir) => {
    const info = JSON.parse(run(npm, ['pack', '--silent', '--json', '--pack-destination', work], dir))[0]
    return { file: path.join(work, info.filename), files: info.files.map((f) => f.path) }
  }
  const main = packed(root)
  const plat = packed(platformDir)
  if (main.files.some((f) => f.endsWith('.node'))) throw new Error('the main tarball carries a binary')
  if (!plat.files.some((f) => f.endsWith('.node'))) throw new Error(`the ${platform} tarball carries no binary`)
  const project = path.join(work, 'project')
  fs.mkdirSync(project)
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'smoke', version: '1.0.0', private: true }))
  run(npm, ['install', '--no-audit', '--no-fund', main.file, plat.file], project)
  const script = [
    "const { createSecretManager } = require('commerce-secret-manager')",
    "const m = createSecretManager({ source: 'memory', secrets: { apiKey: 'from-the-tarballs' } })",
    "m.getSecretValue('apiKey', '').then(async (r) => { console.log(JSON.stringify({ value: r.value, error: r.error && r.error.message })); await m.close() })",
  ].join('\n')
  const out = spawnSync(process.execPath, ['-e', script], { cwd: project, encoding: 'utf8', timeout: 60000 })
  const result = JSON.parse(out.stdout || '{}')
  if (result.value !== 'from-the-tarballs') {
    console.error(`smoke test failed: ${out.stdout} ${out.stderr}`)
    process.exit(1)
  }
  console.log(`smoke ok: ${platform}, Node ${process.version}, ${main.file.split(path.sep).pop()} + ${plat.file.split(path.sep).pop()}`)
} finally {
  fs.rmSync(work, { recursive: true, force: true })
}
