// `commerce-secret-manager/testing`: a memory-source manager in pure JS for app tests (no
// native code; the same under node and browser conditions, so under Jest's jsdom too).
import type { SecretManager, SecretManagerOptions } from './index'

export { SecretError } from './index'

/** A memory-source manager with the whole SecretManager surface and the same result and error shapes. */
export declare function createTestSecretManager(
  secrets: Record<string, string>,
  options?: SecretManagerOptions,
): SecretManager

/**
 * Installs one on `target` (e.g. msdyn365Commerce) even where `target.isBrowser` is true (jsdom),
 * for data-action tests; returns it. A target that cannot take it gets a TypeError.
 */
export declare function installTestSecretManager(
  target: object,
  secrets: Record<string, string>,
  options?: SecretManagerOptions,
): SecretManager
