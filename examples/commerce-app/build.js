'use strict'
// Builds this app's server or client bundle the way the Commerce SDK does, with no
// configuration specific to commerce-secret-manager:
//   node build.js webpack4|webpack5|esbuild node|web [appDir]
// webpack 4 with the SDK's server settings (target node, commonjs2, one chunk, __dirname and
// __filename left to Node, node_modules read by webpack's own parser with no loader); webpack 5
// with the same; esbuild --bundle --platform=node. Client bundles: target web / --platform=browser.
// Writes <appDir>/build/<server|client>.js and prints { errors, warnings } as JSON.
// webpack 4 under Node >= 17 needs NODE_OPTIONS=--openssl-legacy-provider, as the SDK's build.
const path = require('path')

const [bundler, target, appDirArg] = process.argv.slice(2)
const appDir = path.resolve(appDirArg || __dirname)
const server = target === 'node'
const entry = path.join(appDir, 'src', server ? 'server.js' : 'client.js')
const outDir = path.join(appDir, 'build')
const filename = server ? 'server.js' : 'client.js'

function report(errors, warnings) {
  console.log(JSON.stringify({ errors, warnings }))
  process.exitCode = errors.length > 0 ? 1 : 0
}

function webpackConfig() {
  return {
    mode: 'production',
    context: appDir,
    entry,
    target: server ? 'node' : 'web',
    output: server
      ? { path: outDir, filename, libraryTarget: 'commonjs2' }
      : { path: outDir, filename },
    node: server ? { __dirname: false, __filename: false } : undefined,
    optimization: { splitChunks: false, runtimeChunk: false, minimize: false },
    devtool: false,
    performance: { hints: false },
  }
}

if (bundler === 'webpack4' || bundler === 'webpack5') {
  const webpack = require(bundler === 'webpack4' ? 'webpack4' : 'webpack')
  webpack(webpackConfig(), (err, stats) => {
    if (err) return report([String(err.stack || err)], [])
    const info = stats.toJson({ all: false, errors: true, warnings: true })
    const text = (m) => (typeof m === 'string' ? m : `${m.moduleName || ''} ${m.message}`)
    report(info.errors.map(text), info.warnings.map(text))
  })
} else if (bundler === 'esbuild') {
  require('esbuild')
    .build({
      entryPoints: [entry],
      bundle: true,
      platform: server ? 'node' : 'browser',
      format: server ? 'cjs' : 'iife',
      outfile: path.join(outDir, filename),
      logLevel: 'silent',
    })
    .then(
      (r) => report(r.errors.map((e) => e.text), r.warnings.map((w) => w.text)),
      (e) => report((e.errors || [e]).map((x) => x.text || String(x)), (e.warnings || []).map((w) => w.text)),
    )
} else {
  console.error('usage: node build.js webpack4|webpack5|esbuild node|web [appDir]')
  process.exitCode = 2
}
