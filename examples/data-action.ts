// A Commerce-style data action that signs a price quote with a secret read on the server.
//
// In a Commerce app, `msdyn365Commerce` comes from '@msdyn365-commerce/core' and the data
// action from `createObservableDataAction`; the few parts used here are declared below so the
// example type-checks and runs on its own.
import { createHmac } from 'crypto'
import { install, ISecretManager } from 'commerce-secret-manager'

interface IRequestContext {
  apiSettings: { baseUrl: string }
}
interface IActionContext {
  requestContext: IRequestContext
  trace(message: string): void
}
interface IMsdyn365Commerce {
  secretManager?: ISecretManager | null
  isBrowser: boolean
}

export const msdyn365Commerce: IMsdyn365Commerce = {
  isBrowser: typeof (globalThis as { window?: unknown }).window !== 'undefined',
}
// On the server this sets msdyn365Commerce.secretManager; in a browser it stays undefined.
install(msdyn365Commerce)

export interface SignedQuote {
  sku: string
  price: number
  /** HMAC-SHA256 of sku:price with the signing key; the key itself never leaves the server. */
  signature?: string
  /** Why there is no signature (browser, or the secret could not be read). */
  degraded?: string
}

export async function getSignedQuoteAction(sku: string, price: number, ctx: IActionContext): Promise<SignedQuote> {
  const secrets = msdyn365Commerce.secretManager
  if (!secrets) {
    return { sku, price, degraded: 'quotes are signed on the server' }
  }
  const key = await secrets.getSecretValue('priceSigningKey', ctx.requestContext.apiSettings.baseUrl)
  if (key.error) {
    // The error carries a code and names the key; it never contains a value.
    ctx.trace(`priceSigningKey unavailable: ${key.error.name}`)
    return { sku, price, degraded: 'price signing is unavailable' }
  }
  const signature = createHmac('sha256', key.value).update(`${sku}:${price}`).digest('hex')
  return { sku, price, signature }
}
