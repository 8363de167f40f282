// `commerce-secret-manager/testing`: a memory-source manager in pure JS for app tests (no
// native code; the same under node and browser conditions, so under Jest's jsdom too).
import type { SecretManager, SecretManagerOptions, SecretErrorCode } from './index'

export { SecretError, createReadinessHandler } from './index'

/** What a TestSecretManager was asked, in order (one entry per key and call). */
export interface TestSecretManagerCall {
  method: 'getSecretValue' | 'getSecretValues' | 'prefetch' | 'refresh' | 'withSecret' | 'invalidate'
  secretKey: string | undefined
  url: string | undefined
}

export interface FailOptions {
  /** How many reads fail (default: every one until reset()). */
  times?: number
  /** The error's `status` (default: none, as the addon's memory source). */
  status?: number
  /** The error's message (default: the addon's, naming the key and the code). */
  message?: string
}

/**
 * A memory-source SecretManager (the whole surface, the addon's result, error and event shapes,
 * its option checks) that a test drives.
 */
export interface TestSecretManager extends SecretManager {
  /** The value changes now: in the store and for the next read (the cached entry is dropped). */
  set(secretKey: string, value: string): void
  /**
   * A rotation: the store has the new value; the cache serves the old one until a refresh
   * (refresh(), withSecret's retry, refresh-ahead, expiry), which emits `refresh` with
   * `changed: true`, then `rotate`.
   */
  rotate(secretKey: string, value: string): void
  /**
   * The next `times` reads of the key (default: until reset) fail with `code`. THROTTLED,
   * TIMEOUT and UNAVAILABLE serve the last good value stale past expiry, as the addon does;
   * UNAUTHORIZED, FORBIDDEN and NOT_FOUND drop the cached value.
   */
  fail(secretKey: string, code: SecretErrorCode, options?: FailOptions): void
  /** Reads of the key take `ms` (0: none); setTimeout, so Jest's fake timers drive it. */
  delay(secretKey: string, ms: number): void
  /** Values back to the originals; faults, delays, the cache, stats and calls cleared. */
  reset(): void
  /** What was asked, in order. */
  calls(): TestSecretManagerCall[]
}

/** A memory-source manager with the whole SecretManager surface and the same result and error shapes. */
export declare function createTestSecretManager(
  secrets: Record<string, string>,
  options?: SecretManagerOptions,
): TestSecretManager

/**
 * Installs one on `target` (e.g. msdyn365Commerce) even where `target.isBrowser` is true (jsdom),
 * for data-action tests; returns it. A target that cannot take it gets a TypeError.
 */
export declare function installTestSecretManager(
  target: object,
  secrets: Record<string, string>,
  options?: SecretManagerOptions,
): TestSecretManager

export declare const TestSecretManager: {
  new (secrets: Record<string, string>, options?: SecretManagerOptions): TestSecretManager
}
