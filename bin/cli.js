#!/usr/bin/env node
'use strict'
// npx commerce-secret-manager get|validate|doctor — see `--help`.
// Exit codes: 0 success; 1 a key failed, a check found a fault, or the configuration (the
// environment, a file) is at fault; 2 a usage error (the command line itself).
// Secret values go to stdout only for `get`; nothing here prints a value anywhere else.

const fs = require('fs')
const path = require('path')
const { spawnSync } = require('child_process')
const util = require('util')
const { SecretManager } = require('../index.js')

const INTERNALS = Symbol.for('commerce-secret-manager.internals')

const HELP = `Usage: commerce-secret-manager <command> [options]

Commands:
  get KEY [--url URL] [--json]   print one secret's value (or the ISecretValue as JSON)
  validate [KEY...] [--url URL]  fetch each key (default: every key of the local file) and
                                 print "Validation successful" or the error per key
  doctor [--offline]             which source and identity are picked and why, the secrets
                                 file (and whether it parses, and whether secrets/ is
                                 git-ignored), identity variables, hosts; then whether a token
                                 can be had (not with --offline: no network request at all)

Options (every command):
  --source S          auto | local | memory | retail-server | key-vault
  --secrets-file F    the local secrets file
  --vault-url U       a Key Vault url (repeat for a second vault)
  --oun N             the operating unit number sent to Retail Server
  --url URL           the base Retail Server url (default: '')
  --allow-insecure-loopback
                      let a token go over http to loopback (local fakes, tests)
  --json              get: print the whole ISecretValue as JSON
  -V, --version       the version
  -h, --help          this text

Environment variables read:
  NODE_ENV                         development selects the local source (auto)
  COMMERCE_SECRETS_SOURCE          the source, as --source
  COMMERCE_SECRETS_VAULT_URLS      Key Vault urls, comma-separated
  COMMERCE_SECRETS_OUN             the OUN header for Retail Server
  COMMERCE_SECRETS_ALLOWED_HOSTS   more hosts that may receive a token, comma-separated
                                   ('host' or '*.domain'), added to the defaults
  COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK
                                   1 or true: let a token go over http to loopback
  COMMERCE_SECRETS_NATIVE_PATH     the addon's .node file, when it is not found by itself
  COMMERCE_SECRETS_EXTRA_CA_CERTS  extra trusted CA certificates (PEM)
  MSDyn365Commerce_RSVERSION       Retail Server's version (below 9.24.2: not configured)
  IDENTITY_ENDPOINT, IDENTITY_HEADER, IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC, IDENTITY_SERVER_THUMBPRINT
                                   App Service managed identity (with IMDS_ENDPOINT: Azure Arc;
                                   with IDENTITY_SERVER_THUMBPRINT: Service Fabric)
  MSI_ENDPOINT, MSI_SECRET         legacy App Service managed identity (MSI_ENDPOINT alone:
                                   Cloud Shell)
  AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH,
  AZURE_FEDERATED_TOKEN_FILE       service principal, certificate, workload identity
  AZURE_ADDITIONALLY_ALLOWED_TENANTS
                                   tenants a vault's challenge may name besides AZURE_TENANT_ID
                                   (comma-separated; * for any)
  AZURE_AUTHORITY_HOST             the cloud's authority (public, China, US Government)
  AZURE_POD_IDENTITY_AUTHORITY_HOST
                                   IMDS's address
  PATH                             where az and azd are looked for

Exit codes:
  0  success
  1  a key failed, a check found a fault, or the configuration is at fault (an environment
     variable with a value that cannot be used, a secrets file that does not parse, no binary)
  2  a usage error: an unknown command or option, a bad option value, a missing KEY (get; and
     validate on a source that cannot list its keys)`

class Usage extends Error {}

function parse(argv) {
  let parsed
  try {
    parsed = util.parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
        json: { type: 'boolean' },
        offline: { type: 'boolean' },
        'allow-insecure-loopback': { type: 'boolean' },
        url: { type: 'string' },
        source: { type: 'string' },
        'secrets-file': { type: 'string' },
        'vault-url': { type: 'string', multiple: true },
        oun: { type: 'string' },
      },
    })
  } catch (e) {
    throw new Usage(String(e && e.message).replace(/\. To specify a positional argument.*$/, ''))
  }
  const v = parsed.values
  const out = {
    command: parsed.positionals[0],
    keys: parsed.positionals.slice(1),
    url: v.url !== undefined ? v.url : '',
    json: v.json === true,
    offline: v.offline === true,
    help: v.help === true,
    version: v.version === true,
    options: {},
  }
  if (v['allow-insecure-loopback']) out.options.allowInsecureLoopback = true
  if (v.source !== undefined) out.options.source = v.source
  if (v['secrets-file'] !== undefined) out.options.secretsFile = v['secrets-file']
  if (v['vault-url'] !== undefined) out.options.vaultUrls = v['vault-url']
  if (v.oun !== undefined) out.options.oun = v.oun
  return out
}

function say(line) {
  process.stdout.write(line + '\n')
}

function complain(line) {
  process.stderr.write(line + '\n')
}

async function get(manager, args) {
  if (args.keys.length !== 1) throw new Usage('get takes exactly one KEY')
  const result = await manager.getSecretValue(args.keys[0], args.url)
  if (args.json) {
    const shown = { value: result.value, id: result.id, expiresOn: result.expiresOn }
    if (result.error) shown.error = { code: result.error.code, message: result.error.message, status: result.error.status }
    say(JSON.stringify(shown))
  } else if (!result.error) {
    say(result.value)
  }
  if (result.error) {
    complain(`${result.error.code}: ${result.error.message}`)
    return 1
  }
  return 0
}

async function validate(manager, args) {
  let keys = args.keys
  const d = manager[INTERNALS]().describe()
  if (!d.configured) {
    complain(`NOT_CONFIGURED: ${d.reason.replace(/^none: /, '')}`)
    return 1
  }
  if (keys.length === 0 && d.source !== 'local') {
    throw new Usage(`validate needs KEY… with the ${d.source} source (only the local source can list its keys)`)
  }
  if (keys.length === 0) {
    const listed = manager[INTERNALS]().localKeys()
    if (listed.code !== undefined) {
      complain(`${listed.code}: ${listed.message}`)
      return 1
    }
    keys = listed.keys
    if (keys.length === 0) {
      complain('the secrets file has no keys to validate')
      return 1
    }
  }
  const results = await manager.getSecretValues(keys, args.url)
  let failed = 0
  results.forEach((r, i) => {
    if (r.error) {
      failed++
      say(`${keys[i]}: ${r.error.code} ${r.error.message}`)
    } else {
      say(`${keys[i]}: Validation successful`)
    }
  })
  return failed === 0 ? 0 : 1
}

// git without any command a repository's configuration could make it run (core.fsmonitor is
// run by check-ignore; hooks, pagers, ssh, credential helpers, external diff for good measure),
// without the system configuration, and without taking the index lock.
const GIT_SAFE = [
  '-c', 'core.fsmonitor=false', '-c', 'core.hooksPath=/dev/null', '-c', 'core.untrackedCache=false',
  '-c', 'core.pager=cat', '-c', 'core.sshCommand=', '-c', 'core.askPass=', '-c', 'credential.helper=',
  '-c', 'diff.external=', '-c', 'protocol.allow=never',
]

function gitEnv() {
  const env = Object.assign({}, process.env, {
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_OPTIONAL_LOCKS: '0',
    GIT_TERMINAL_PROMPT: '0',
    GIT_PAGER: 'cat',
  })
  for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_EXTERNAL_DIFF', 'GIT_SSH', 'GIT_SSH_COMMAND', 'GIT_ASKPASS', 'GIT_CONFIG_PARAMETERS', 'GIT_CONFIG_COUNT']) delete env[k]
  return env
}

// Whether <cwd>/secrets/ is git-ignored: git's own answer when this is a repository,
// else a look at .gitignore.
function secretsIgnored(cwd) {
  const probe = spawnSync('git', GIT_SAFE.concat(['check-ignore', '-q', 'secrets/secrets.json']), {
    cwd,
    stdio: 'ignore',
    env: gitEnv(),
    timeout: 10000,
  })
  if (probe.status === 0) return { ignored: true, how: 'git check-ignore' }
  if (probe.status === 1) return { ignored: false, how: 'git check-ignore' }
  let text = ''
  try {
    text = fs.readFileSync(path.join(cwd, '.gitignore'), 'utf8')
  } catch (e) {
    return { ignored: false, how: 'no .gitignore' }
  }
  const ignored = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .some((l) => ['secrets', 'secrets/', '/secrets', '/secrets/', 'secrets/*', 'secrets/**'].includes(l))
  return { ignored, how: '.gitignore' }
}

const IDENTITY_VARS = [
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC',
  'IMDS_ENDPOINT',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'AZURE_CLIENT_ID',
  'AZURE_TENANT_ID',
  'AZURE_ADDITIONALLY_ALLOWED_TENANTS',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_AUTHORITY_HOST',
]

async function doctor(manager, args) {
  const internals = manager[INTERNALS]()
  const d = internals.describe()
  let faults = 0
  say(`source: ${d.source}${d.configured ? '' : ' (not configured)'}`)
  say(`  why: ${d.reason}`)
  if (d.source === 'local') {
    say(`secrets file: ${d.secretsFileInUse !== undefined && d.secretsFileInUse !== null ? d.secretsFileInUse : 'none found'}`)
    say(`  looked for: ${d.secretsFiles.join(', ')}`)
    say(`  reload on change: ${d.watch ? 'yes' : 'no'}`)
    if (!d.secretsFileInUse) faults++
    else {
      const listed = internals.localKeys()
      if (listed.code !== undefined) {
        say(`  FAULT: ${listed.code}: ${listed.message}`)
        faults++
      } else {
        say(`  parses: yes, ${listed.keys.length} key${listed.keys.length === 1 ? '' : 's'} (names not shown)`)
      }
    }
  }
  const cwd = process.cwd()
  if (fs.existsSync(path.join(cwd, 'secrets'))) {
    const g = secretsIgnored(cwd)
    if (g.ignored) say(`git: secrets/ is ignored (${g.how})`)
    else {
      say(`WARNING: secrets/ is not git-ignored (${g.how}); add "secrets/" to .gitignore so no secret is committed`)
      faults++
    }
  }
  const present = IDENTITY_VARS.filter((v) => typeof process.env[v] === 'string' && process.env[v] !== '')
  say(`identity variables set: ${present.length > 0 ? present.join(', ') : 'none'} (values not shown)`)
  say(`identity: ${d.identity}${d.identityProvider ? ` -> ${d.identityProvider}` : ''}`)
  if (d.identityProvider && d.configured && args.offline) {
    say('token: not checked (--offline: no network request was made)')
  } else if (d.identityProvider && d.configured) {
    const check = await internals.checkToken()
    if (check.ok) say(`token: ${check.message} (not shown)`)
    else {
      say(`token: cannot be had: ${check.code} ${check.message}`)
      faults++
    }
  }
  say('hosts allowed to receive a token (https):')
  d.allowedHosts.forEach((h, i) => say(`  ${h}  (${d.allowedHostOrigins[i]})`))
  say(`loopback over http: ${d.allowInsecureLoopback ? 'allowed' : 'not allowed'} (${d.allowInsecureLoopbackOrigin})`)
  if (d.source === 'retail-server') say(`oun: ${d.oun} (from ${d.ounOrigin})`)
  if (d.vaultUrls.length > 0) say(`vaults: ${d.vaultUrls.join(', ')}`)
  say(`cache: ${d.cacheEnabled ? 'on' : 'off'}; deadline per call: ${d.timeoutMs} ms`)
  say(`telemetry: ${telemetryLine()}`)
  return d.configured && faults === 0 ? 0 : 1
}

// Whether OpenTelemetry is on and where it goes: the API, the providers registered (in this
// process: an app registers its own at start-up), an Application Insights connection string
// (its ingestion host only; never the key).
function telemetryLine() {
  const t = require('../telemetry.js').describe()
  if (!t.api) return 'off: @opentelemetry/api is not installed (npm install @opentelemetry/api and an SDK to turn it on)'
  const providers = t.tracerProvider || t.meterProvider
    ? `tracer provider: ${t.tracerProvider || 'none'}, meter provider: ${t.meterProvider || 'none'}`
    : 'no provider registered in this process, so nothing is recorded here (the app registers one at start-up, e.g. useAzureMonitor())'
  let where = ''
  const cs = process.env.APPLICATIONINSIGHTS_CONNECTION_STRING
  if (typeof cs === 'string' && cs !== '') {
    const m = /(?:^|;)\s*IngestionEndpoint\s*=\s*([^;]+)/i.exec(cs)
    let host = 'the default ingestion endpoint'
    if (m) {
      try {
        host = new URL(m[1].trim()).host
      } catch (e) {
        host = 'an ingestion endpoint that is not a url'
      }
    }
    where = `; APPLICATIONINSIGHTS_CONNECTION_STRING is set (Application Insights at ${host})`
  }
  return `@opentelemetry/api present; ${providers}${where}`
}

// Whether the constructor's error came from the environment: the same options build a manager
// once the variables the configuration reads are set aside (and put back).
const CONFIG_VARS = /^(COMMERCE_SECRETS_(?!NATIVE_PATH$|EXTRA_CA_CERTS$)|AZURE_|IDENTITY_|MSI_|IMDS_)|^(NODE_ENV|DEPLOYMENT_ENV|MSDyn365Commerce_RSVERSION)$/

async function environmentCaused(options) {
  const saved = {}
  for (const k of Object.keys(process.env)) {
    if (CONFIG_VARS.test(k)) {
      saved[k] = process.env[k]
      delete process.env[k]
    }
  }
  try {
    const probe = new SecretManager(Object.assign({}, options, { watch: false }))
    await probe.close()
    return true
  } catch (e) {
    return false
  } finally {
    Object.assign(process.env, saved)
  }
}

async function main(argv) {
  let args
  try {
    args = parse(argv)
  } catch (e) {
    if (!(e instanceof Usage)) throw e
    complain(`${e.message}\n\n${HELP}`)
    return 2
  }
  if (args.version) {
    say(require('../package.json').version)
    return 0
  }
  if (args.help || args.command === undefined) {
    ;(args.help ? say : complain)(HELP)
    return args.help ? 0 : 2
  }
  if (!['get', 'validate', 'doctor'].includes(args.command)) {
    complain(`unknown command '${args.command}'\n\n${HELP}`)
    return 2
  }
  let manager
  try {
    manager = new SecretManager(args.options)
  } catch (e) {
    complain(`configuration: ${e.message}`)
    // The command line's fault (a bad --source…) is a usage error; the environment's (a bad
    // COMMERCE_SECRETS_SOURCE…) or the installation's (no binary) a configuration fault.
    if (e && e.code === 'NATIVE_BINDING_MISSING') return 1
    return (await environmentCaused(args.options)) ? 1 : 2
  }
  try {
    if (args.command === 'get') return await get(manager, args)
    if (args.command === 'validate') return await validate(manager, args)
    return await doctor(manager, args)
  } catch (e) {
    if (e instanceof Usage) {
      complain(`${e.message}\n\n${HELP}`)
      return 2
    }
    throw e
  } finally {
    await manager.close()
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e) => {
    complain(`internal error: ${e && e.message}`)
    process.exitCode = 1
  },
)
