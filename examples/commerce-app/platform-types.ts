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
