// The browser side: bundled by esbuild for the browser from code that imports the package,
// as a Commerce module would. It gets the browser stub: secretManager is undefined here.
import { secretManager } from 'commerce-secret-manager'

const state = JSON.parse(document.getElementById('state').textContent)
window.__storefront = { secretManagerIsUndefined: secretManager === undefined, sku: state.sku }

const button = document.getElementById('add-to-cart')
const count = document.getElementById('cart-count')
button.disabled = false
button.addEventListener('click', async () => {
  const res = await fetch('/api/cart', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sku: state.sku, priceToken: state.price.token }) })
  const cart = await res.json()
  count.textContent = String(cart.count)
})
document.body.dataset.hydrated = 'true'
console.log(`hydrated ${state.sku}; secretManager in the browser: ${String(secretManager)}`)
