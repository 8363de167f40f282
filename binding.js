'use strict'
// Finds and loads the native addon at run time.
//
// Written so that bundlers leave it alone: the only `require`s here name Node built-ins and
// this package's package.json; the binary is loaded through a `require` made by
// `module.createRequire`, which no bundler follows. So a server bundle made by webpack 4 or 5
// or esbuild carries this file as is, and the binary is found when the bundle runs.
//
// Where it looks, in order (the first that exists is loaded; README "Bundling"):
//  1. COMMERCE_SECRETS_NATIVE_PATH: the file it names, and nothing else.
//  2. Beside this file: the package folder when not bundled; beside the bundle when bundled.
//  3. The platform package (commerce-secret-manager-<platform>), found by Node's resolution from
//     this file's own folder: its binary, by name (its `main` is never run).
//  4. The package in node_modules above this file (a bundle whose node_modules is above it), and
//     its platform package.
// Nothing is resolved from the working directory: a node_modules planted there is never seen.
// Only a `.node` file is loaded, and one that does not export NativeManager is refused.

const fs = require('fs')
const path = require('path')
const Module = require('module')

const PACKAGE = 'commerce-secret-manager'

function libc() {
  if (process.platform !== 'linux') return ''
  try {
    let report = null
    if (process.report && typeof process.report.getReport === 'function') {
      process.report.excludeNetwork = true // no host name look-ups while making the report
      report = process.report.getReport()
    }
    if (report && report.header && report.header.glibcVersionRuntime) return 'gnu'
    if (report && Array.isArray(report.sharedObjects)) {
      if (report.sharedObjects.some((f) => f.indexOf('musl') >= 0)) return 'musl'
    }
  } catch (e) {
    // fall through to the file check
  }
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').indexOf('musl') >= 0 ? 'musl' : 'gnu'
  } catch (e) {
    return 'gnu'
  }
}

// napi-rs's platform names: linux-x64-gnu, linux-arm64-musl, darwin-arm64, win32-x64-msvc…
function platformName(platform, arch, libcName) {
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform === 'linux') return `linux-${arch}-${libcName}`
  return `${platform}-${arch}`
}

function requireFrom(dir) {
  return Module.createRequire(path.join(dir, 'noop.js'))
}

function exists(file) {
  try {
    return fs.statSync(file).isFile()
  } catch (e) {
    return false
  }
}

function resolveFrom(dir, request) {
  try {
    return requireFrom(dir).resolve(request)
  } catch (e) {
    return undefined
  }
}

// Every place to try, as { file, why }: .node files only.
function candidates(name, env, here, cwd) {
  const file = `${PACKAGE}.${name}.node`
  const platformPackage = `${PACKAGE}-${name}`
  const out = []
  if (env.COMMERCE_SECRETS_NATIVE_PATH) {
    // The operator's own setting (a relative path is taken from the working directory, as a
    // shell would): the one place looked at.
    out.push({ file: path.resolve(cwd, env.COMMERCE_SECRETS_NATIVE_PATH), why: 'COMMERCE_SECRETS_NATIVE_PATH' })
    return out
  }
  out.push({ file: path.join(here, file), why: 'beside the package entry (or the bundle)' })
  const platformIn = (dir) => {
    const manifest = resolveFrom(dir, `${platformPackage}/package.json`)
    if (manifest !== undefined) {
      out.push({ file: path.join(path.dirname(manifest), file), why: `the platform package ${platformPackage}` })
    }
  }
  platformIn(here)
  const manifest = resolveFrom(here, `${PACKAGE}/package.json`)
  if (manifest !== undefined && path.dirname(manifest) !== here) {
    const dir = path.dirname(manifest)
    out.push({ file: path.join(dir, file), why: `${PACKAGE} in node_modules` })
    platformIn(dir)
  }
  const seen = new Set()
  return out.filter((c) => !seen.has(c.file) && seen.add(c.file))
}

// The addon's own exports, or why the module is not it.
function notThisAddon(binding) {
  if (binding === null || (typeof binding !== 'object' && typeof binding !== 'function')) return 'it exports nothing'
  if (typeof binding.NativeManager !== 'function') return `it is not ${PACKAGE}'s addon (it does not export NativeManager)`
  return undefined
}

function missingMessage(platform, arch, name, platformPackage, tried) {
  const lines = [
    `${PACKAGE}: no native binary for this platform (${platform}, ${arch}` +
      `${platform === 'linux' ? `, ${name.split('-')[2]}` : ''}; Node ${process.versions.node}).`,
    `The package that serves it is ${platformPackage}: install it beside ${PACKAGE} ` +
      `(npm install ${platformPackage}), or build the addon from source (Rust toolchain: ` +
      '`npm run build` in the package folder), or point COMMERCE_SECRETS_NATIVE_PATH at the .node file.',
    'Looked in:',
  ]
  for (const t of tried) lines.push(`  ${t.file} (${t.why}): ${t.error}`)
  return lines.join('\n')
}

let loaded

// The addon's exports ({ NativeManager, noopAsync }). Throws an Error with code
// 'NATIVE_BINDING_MISSING' and a message naming the platform and what to do.
function load(overrides) {
  if (loaded !== undefined && overrides === undefined) return loaded
  const o = overrides || {}
  const platform = o.platform || process.platform
  const arch = o.arch || process.arch
  const name = platformName(platform, arch, o.libc || (platform === 'linux' ? libc() : ''))
  const env = o.env || process.env
  const here = o.here || __dirname
  const cwd = o.cwd || process.cwd()
  const tried = []
  for (const c of candidates(name, env, here, cwd)) {
    if (!exists(c.file)) {
      tried.push({ file: c.file, why: c.why, error: 'not there' })
      continue
    }
    if (path.extname(c.file) !== '.node') {
      tried.push({ file: c.file, why: c.why, error: 'not a .node file; not loaded' })
      continue
    }
    let binding
    try {
      binding = requireFrom(path.dirname(c.file))(c.file)
    } catch (e) {
      tried.push({ file: c.file, why: c.why, error: String(e && e.message).split('\n')[0] })
      continue
    }
    const wrong = notThisAddon(binding)
    if (wrong !== undefined) {
      tried.push({ file: c.file, why: c.why, error: `${wrong}; refused` })
      continue
    }
    if (overrides === undefined) loaded = binding
    return binding
  }
  const err = new Error(missingMessage(platform, arch, name, `${PACKAGE}-${name}`, tried))
  err.code = 'NATIVE_BINDING_MISSING'
  throw err
}

module.exports = { load, platformName }
