// The public surface of commerce-secret-manager (hand-written; the addon's own generated
// types are in native.d.ts and are not part of the API).

/** The Dynamics 365 Commerce contract, unchanged. */
export interface ISecretValue {
  /** The secret; '' when it could not be read. */
  value: string
  /** The store's identifier of the secret (for Key Vault, its full id URL). */
  id?: string
  /** Set when retrieval failed; the promise still resolves. */
  error?: SecretError
  /** Unix time in seconds until which the value may be used (local source: always 1, as the platform). */
  expiresOn: number
}

export interface ISecretManager {
  getSecretValue(secretKey: string, baseRetailServerUrl: string): Promise<ISecretValue>
}

export type SecretErrorCode =
  /** key or url not a string, empty, too long, bad characters */
  | 'INVALID_ARGUMENT'
  /** key absent (local file, Retail Server, Key Vault 404) */
  | 'NOT_FOUND'
  /** no secrets file where it was looked for (the message lists the paths) */
  | 'LOCAL_FILE_MISSING'
  /** not JSON (the message has line and column), not an object, a non-string value, over 4 MiB */
  | 'LOCAL_FILE_INVALID'
  /** the url's host may not receive a token; nothing was sent */
  | 'HOST_NOT_ALLOWED'
  /** 401, after one token refresh */
  | 'UNAUTHORIZED'
  /** 403, disabled secret included */
  | 'FORBIDDEN'
  /** 429 still, after honouring Retry-After */
  | 'THROTTLED'
  /** the call's deadline passed */
  | 'TIMEOUT'
  /** connection refused/reset, 5xx, after retries */
  | 'UNAVAILABLE'
  /** malformed, unexpected or oversized reply */
  | 'BAD_RESPONSE'
  /** no managed identity / token endpoint failed */
  | 'IDENTITY_UNAVAILABLE'
  /** no source could be chosen; the message says how to configure one */
  | 'NOT_CONFIGURED'
  /** the manager was closed */
  | 'CLOSED'

/** A real Error (`instanceof Error` holds, in Jest too). Never carries a value or a token. */
export declare class SecretError extends Error {
  constructor(code: SecretErrorCode, message: string, secretKey?: string, status?: number, requestId?: string)
  code: SecretErrorCode
  /** The name, never the value. */
  secretKey?: string
  /** Upstream HTTP status, when there was one. */
  status?: number
  /** The store's request id (Key Vault x-ms-request-id, Retail Server's), when it gave one. */
  requestId?: string
}

export type SecretSource = 'local' | 'memory' | 'retail-server' | 'key-vault'

export interface CacheOptions {
  /** Serve cached, refresh in the background after this many seconds (default 300, jittered ±10%). */
  refreshAfterSeconds?: number
  /** Hard expiry in seconds; also bounded by Key Vault `exp` (default 86400). */
  maxAgeSeconds?: number
  /**
   * How long past maxAge a last good value may still be served on timeout/5xx/429/connection
   * errors (default 3600); never after 401/403/404.
   */
  staleIfErrorSeconds?: number
  /** Remember NOT_FOUND this long (default 5). */
  negativeTtlSeconds?: number
  /** Least recently used entries are evicted past this (default 10000, 1..10000000, an integer). */
  maxEntries?: number
  /**
   * A refresh that finds the same version doubles that key's interval up to this many seconds
   * (default 3600); a change resets it.
   */
  maxRefreshAfterSeconds?: number
}

export interface SecretManagerOptions {
  /** Default 'auto' (see the README); env COMMERCE_SECRETS_SOURCE. */
  source?: 'auto' | SecretSource
  /** local: default the first of <cwd>/build/secrets/secrets.json, <cwd>/secrets/secrets.json. */
  secretsFile?: string
  /** local: reload the file when it changes (default true). */
  watch?: boolean
  /** memory (for app tests): the secrets. Given with source 'auto', it selects the memory source. */
  secrets?: Record<string, string>
  /**
   * retail-server: the OUN header; else env COMMERCE_SECRETS_OUN, else secretsManagerOUN in
   * <cwd>/src/settings/platform.settings.json, else '128'.
   */
  oun?: string
  /** Hosts that may receive a bearer token, added to *.commerce.dynamics.com and the Key Vault clouds. */
  allowedHosts?: string[]
  /** Allow http:// to 127.0.0.0/8, localhost, [::1] (tests, local fakes); default false. */
  allowInsecureLoopback?: boolean
  /** Who asks for the token; 'auto' follows the order in the README. */
  identity?:
    | 'auto'
    | 'app-service'
    | 'imds'
    | 'client-secret'
    | 'client-certificate'
    | 'workload-identity'
    | 'azure-cli'
    | 'azure-developer-cli'
  /** Else AZURE_CLIENT_ID. */
  clientId?: string
  /** Else AZURE_TENANT_ID. */
  tenantId?: string
  /** Tenants a vault's challenge may name besides tenantId ('*': any); else
   *  AZURE_ADDITIONALLY_ALLOWED_TENANTS (comma-separated). */
  additionallyAllowedTenants?: string[]
  /** Else AZURE_CLIENT_SECRET. */
  clientSecret?: string
  /** PEM with certificate and private key; else AZURE_CLIENT_CERTIFICATE_PATH. */
  clientCertificatePath?: string
  /** Workload identity; else AZURE_FEDERATED_TOKEN_FILE (re-read per token request). */
  federatedTokenFile?: string
  /** Else AZURE_AUTHORITY_HOST, else https://login.microsoftonline.com. */
  authorityHost?: string
  /** key-vault: one or two, tried in order; env COMMERCE_SECRETS_VAULT_URLS (comma-separated). */
  vaultUrls?: string[]
  /** false turns the cache off (concurrent calls of one key still share one upstream request). */
  cache?: false | CacheOptions
  /** Deadline of one getSecretValue, retries included (default 10000, 1..600000). */
  timeoutMs?: number
  /** Called for every event; a throwing listener is ignored. */
  onEvent?: (event: SecretEvent) => void
  /**
   * OpenTelemetry (when @opentelemetry/api is installed and a provider registered); false turns
   * it off; secretNames: put the key's name on spans (default false).
   */
  telemetry?: false | { secretNames?: boolean }
}

/** Also published on diagnostics_channel 'commerce-secret-manager'. Never a value, never a token. */
export interface SecretEvent {
  type: 'hit' | 'miss' | 'stale' | 'refresh' | 'rotate' | 'error' | 'evict'
  secretKey: string
  source: SecretSource
  durationMs?: number
  code?: SecretErrorCode
  /** On 'refresh': the value differs from the one it replaced. */
  changed?: boolean
  /** On 'refresh' and 'rotate': the Key Vault version, when known. */
  version?: string
  /** key-vault: the vault's host, and its place (0/1) in the ordered fallback. */
  vault?: string
  vaultIndex?: number
  /** The store's request id, when it gave one. */
  requestId?: string
  /** On 'error' (and 'stale'): the failure in words, per code; never upstream text. */
  reason?: string
}

export interface WithSecretOptions {
  /** Whether `fn`'s error means the value was refused (default: `status`/`statusCode` 401 or 403). */
  isAuthFailure?: (err: unknown) => boolean
}

export interface ReadyState {
  ready: boolean
  /** Keys started at start-up not (yet) answered with a value. */
  pending: string[]
}

/** install's options: the manager's, plus the reads to start at once. */
export type InstallOptions = SecretManagerOptions & {
  /** Keys to read now (server start), so they are cached before traffic; see `ready()`. */
  prefetch?: string[]
  /** The base Retail Server url of those reads (retail-server source); default ''. */
  url?: string
}

export interface SecretManagerStats {
  entries: number
  hits: number
  misses: number
  staleServed: number
  upstreamRequests: number
  upstreamErrors: number
  inFlight: number
}

export declare class SecretManager implements ISecretManager {
  /** Throws a TypeError naming the option on misuse (unknown option, wrong type, negative number). */
  constructor(options?: SecretManagerOptions)
  readonly source: SecretSource
  /** Never rejects: failures resolve as `{ value: '', error, expiresOn }`. */
  getSecretValue(secretKey: string, baseRetailServerUrl: string): Promise<ISecretValue>
  /** The same, for several keys, in the same order. */
  getSecretValues(secretKeys: string[], baseRetailServerUrl: string): Promise<ISecretValue[]>
  /** Warm the cache at start-up; `spreadMs` spreads the requests over that window (default 0). */
  prefetch(secretKeys: string[], baseRetailServerUrl: string, options?: { spreadMs?: number }): Promise<ISecretValue[]>
  /** Go upstream now (after rotation). On failure the error is returned and the cached value kept (unless 401/403/404). */
  refresh(secretKey: string, baseRetailServerUrl: string): Promise<ISecretValue>
  /** Forget one key (every form of it: a Key Vault name, its full id, its references; under every url), or everything. */
  invalidate(secretKey?: string): void
  /**
   * Push invalidation (key-vault): the secret `name` of `vault` (a vault url, e.g.
   * `https://myvault.vault.azure.net`, or a vault name) changed. Refreshes, one coalesced flight
   * per entry, every cached entry that pair serves: plain and reference keys alike, not pinned
   * versions; nothing for a secret the cache does not hold. `refreshed`: the entries that now
   * hold what the store says (a refresh that failed keeps the last good value, as `refresh`
   * does, and is an 'error' event).
   * Rejects with a SecretError, sending nothing, when `vault` is not a vault this manager reads
   * (`HOST_NOT_ALLOWED`) or `name` is not a Key Vault secret name (`INVALID_ARGUMENT`).
   */
  secretChanged(vault: string, name: string): Promise<{ refreshed: number }>
  /**
   * Runs `fn` with the secret's value and returns its result. When `fn` fails with an
   * authentication failure (default: an error whose `status` or `statusCode` is 401 or 403; or
   * `options.isAuthFailure(err)` true), refreshes the secret once and runs `fn` again with the
   * new value: many callers failing at once cause one refresh, and a key is refreshed this way
   * at most once per 5 s (within that, a failing caller retries with the cached value). The
   * second failure is the caller's (rejects with fn's error). The one method that rejects for
   * a store failure: with the SecretError, when the secret cannot be had.
   */
  withSecret<T>(
    secretKey: string,
    baseRetailServerUrl: string,
    fn: (value: string) => T | Promise<T>,
    options?: WithSecretOptions,
  ): Promise<T>
  /**
   * Resolves when what `install({ prefetch })` / `prefetch()` started has answered, or when
   * `timeoutMs` (default 30000, 0..600000) passed; at once `{ ready: true, pending: [] }` when
   * nothing was started. `pending`: the keys not (yet) answered with a value. A key whose read
   * had failed is asked again by each call.
   */
  ready(options?: { timeoutMs?: number }): Promise<ReadyState>
  stats(): SecretManagerStats
  /** Wipes cached values; later calls answer CLOSED. */
  close(): Promise<void>
}

/** undefined in a browser bundle. */
export declare function createSecretManager(options?: SecretManagerOptions): SecretManager | undefined
/**
 * The default instance: a SecretManager with the whole surface, built from the environment on
 * first use (a bad environment answers NOT_CONFIGURED, never throws); undefined in a browser bundle.
 */
export declare const secretManager: SecretManager | undefined
/**
 * Makes `target.secretManager` ours (e.g. on the platform's msdyn365Commerce, whose
 * `secretManager` is a getter-only accessor over `_secretManager`): the default instance, or
 * one built from `options`. Wins whatever the platform assigns to `_secretManager` later.
 * In a browser (the browser entry, or `target.isBrowser` true) it changes nothing and returns
 * undefined. A target that cannot take it (null, frozen, a non-configurable own
 * `secretManager`) gets a TypeError and is left as it was.
 */
export declare function install(target: object, options?: InstallOptions): SecretManager | undefined

/** What a readiness handler reads of a request and writes to a response (Node's http and Express fit). */
export interface ReadinessRequest {
  method?: string
}
export interface ReadinessResponse {
  headersSent?: boolean
  writeHead(status: number, headers?: Record<string, string | number>): unknown
  end(body?: string): unknown
}

/**
 * A health-check endpoint (App Service Health check, a readiness probe): 503 until
 * `manager.ready()` says ready, then 200. Body `{ ready, pending }`, `pending` a count (never
 * key names, never a value). `timeoutMs`: how long one request waits for ready (default 1000).
 * The browser entry's answers 200 `{ ready: true, pending: 0 }` (nothing to wait for there).
 */
export declare function createReadinessHandler(
  manager: SecretManager,
  options?: { timeoutMs?: number },
): (req: ReadinessRequest, res: ReadinessResponse, next?: (err?: unknown) => void) => void

/**
 * Azure Event Grid push invalidation for Key Vault events: a Node http / Express handler. It
 * answers the subscription handshake (Event Grid schema and CloudEvents 1.0) and calls
 * `manager.secretChanged(vault of the event, data.ObjectName)` for
 * `Microsoft.KeyVault.SecretNewVersionCreated`, `SecretNearExpiry` or `SecretExpired` (the
 * vault: the origin of `data.Id`, else `data.VaultName`). Every request must carry the shared
 * secret (query `code` or header `x-commerce-secrets-code`); anything else gets 401 and
 * changes nothing. A redelivered event id costs nothing; a batch is handled concurrently (at
 * most 32 at once). Bodies over 1 MiB get 413; not JSON, other event types, an ObjectName that
 * is not a secret name: 400; an event for a vault this instance does not read (exact host): 403.
 */
export declare function createEventGridHandler(
  manager: SecretManager,
  /** `spreadMs`: refresh at a random moment within this window and answer 202 at once (a fleet
   *  that fans events out to every instance); default 0: refresh now, then answer 200. */
  options: { sharedSecret: string; spreadMs?: number },
): (req: EventGridRequest, res: EventGridResponse, next?: (err?: unknown) => void) => void

/** What the handler reads of a request: Node's `IncomingMessage` (and Express's) fits. */
export interface EventGridRequest {
  method?: string
  url?: string
  headers: Record<string, string | string[] | undefined>
  /** A body Express already parsed, if any. */
  body?: unknown
  on(event: string, listener: (...args: any[]) => void): unknown
  pause(): unknown
}

/** What the handler writes: Node's `ServerResponse` (and Express's) fits. */
export interface EventGridResponse {
  headersSent?: boolean
  writeHead(status: number, headers?: Record<string, string | number>): unknown
  end(body?: string): unknown
}
