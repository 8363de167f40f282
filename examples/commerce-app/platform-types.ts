// Type-checks (tsc --strict, __test__/examples.test.js) that install() and the testing entry
// accept the platform's own object as @msdyn365-commerce/core types it: a getter-only
// `secretManager` whose ISecretValue.error is a plain Error.
import { install, SecretManager } from 'commerce-secret-manager'
import { installTestSecretManager, createTestSecretManager } from 'commerce-secret-manager/testing'

interface PlatformSecretValue {
  value: string
  id?: string
  error?: Error
  expiresOn: number
}
interface PlatformSecretManager {
  getSecretValue(secretKey: string, baseRetailServerUrl: string): Promise<PlatformSecretValue>
}
declare class MSDyn365Commerce {
  get secretManager(): PlatformSecretManager | undefined
  get isBrowser(): boolean
}
declare const msdyn365Commerce: MSDyn365Commerce

const installed: SecretManager | undefined = install(msdyn365Commerce)
if (installed) void installed.refresh('paymentApiKey', 'https://scu1234ret.commerce.dynamics.com/')

// What the platform's getter hands a data action is ours, and fits the platform's type.
const asPlatform: PlatformSecretManager | undefined = installed
void asPlatform

const test: SecretManager = installTestSecretManager(msdyn365Commerce, { paymentApiKey: 'test-key' })
void test.prefetch(['paymentApiKey'], '')
void createTestSecretManager({}, { cache: { maxEntries: 10 } }).stats().hits

// withSecret's result type follows fn's; ready(); install's prefetch; the readiness handler.
import { createReadinessHandler } from 'commerce-secret-manager'
async function typed(m: SecretManager): Promise<number> {
  const n: number = await m.withSecret('paymentApiKey', '', async (key: string) => key.length, {
    isAuthFailure: (err: unknown) => err instanceof Error,
  })
  const s: string = await m.withSecret('paymentApiKey', '', (key) => key)
  const r = await m.ready({ timeoutMs: 1000 })
  const pending: string[] = r.pending
  return n + s.length + pending.length + (r.ready ? 1 : 0)
}
void typed
const warmed = install(msdyn365Commerce, { prefetch: ['paymentApiKey'], url: 'https://scu1234ret.commerce.dynamics.com/' })
if (warmed) void createReadinessHandler(warmed, { timeoutMs: 500 })

// The test double's controls.
const double = createTestSecretManager({ paymentApiKey: 'old' })
double.rotate('paymentApiKey', 'new')
double.set('paymentApiKey', 'newer')
double.fail('paymentApiKey', 'UNAVAILABLE', { times: 2, status: 503 })
double.delay('paymentApiKey', 100)
const asked: { method: string; secretKey: string | undefined; url: string | undefined }[] = double.calls()
void asked
double.reset()
