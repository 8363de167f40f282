//! Options + environment + the `auto` rules.
//!
//! The JS layer hands over the options object (less `onEvent`), the environment variables
//! this module reads, and the working directory. Nothing here reads the process environment
//! itself: Jest gives each test file its own copy of `process.env`, and tests set it freely.

use crate::cache::Policy;
use crate::hosts::{
    self, AllowedHost, HostPolicy, TokenFor, ALLOWED_HOSTS_VAR, ALLOW_INSECURE_LOOPBACK_VAR,
};
use crate::identity::IdentitySettings;
use crate::secret::SecretString;
pub use crate::source::SourceKind;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use url::Url;

/// The environment variables read by the configuration (and passed in by the JS layer).
pub const ENV_VARS: &[&str] = &[
    "NODE_ENV",
    "COMMERCE_SECRETS_SOURCE",
    "COMMERCE_SECRETS_OUN",
    "COMMERCE_SECRETS_VAULT_URLS",
    "COMMERCE_SECRETS_ALLOWED_HOSTS",
    "COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IMDS_ENDPOINT",
    "IDENTITY_SERVER_THUMBPRINT",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "DEPLOYMENT_ENV",
    "MSDyn365Commerce_RSVERSION",
];

#[derive(Debug)]
pub struct Config {
    pub source: SourceKind,
    /// Set when no source could be chosen: every call answers NOT_CONFIGURED with this.
    pub not_configured: Option<String>,
    /// Why `source` was chosen, for `doctor`.
    pub reason: String,
    /// Where the local source looks, in order (an explicit `secretsFile` is the only one).
    pub secrets_files: Vec<PathBuf>,
    pub watch: bool,
    /// memory: the secrets (SecretString: wiped on drop, redacted in `Debug`).
    pub secrets: Vec<(String, SecretString)>,
    pub oun: String,
    pub oun_origin: &'static str,
    /// Hosts added to the defaults (the allowedHosts option, COMMERCE_SECRETS_ALLOWED_HOSTS).
    pub allowed_hosts: Vec<AllowedHost>,
    pub allow_insecure_loopback: bool,
    /// Where `allow_insecure_loopback` came from (for `doctor`).
    pub allow_insecure_loopback_origin: &'static str,
    pub identity: IdentitySettings,
    /// `MSDyn365Commerce_RSVERSION`, when set.
    pub retail_server_version: Option<String>,
    pub vault_urls: Vec<String>,
    pub policy: Policy,
    pub timeout_ms: f64,
}

pub const DEFAULT_TIMEOUT_MS: f64 = 10_000.0;

type Env = HashMap<String, String>;

fn env_get<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    env.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn bad(option: &str, wanted: &str, got: &Value) -> String {
    format!(
        "option `{option}` must be {wanted} (got {})",
        type_name(got)
    )
}

fn opt_string(o: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && !s.chars().any(char::is_control) => {
            Ok(Some(s.clone()))
        }
        Some(Value::String(_)) => Err(format!(
            "option `{name}` must be a non-empty string without control characters"
        )),
        Some(v) => Err(bad(name, "a string", v)),
    }
}

fn opt_bool(o: &Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(name, "a boolean", v)),
    }
}

/// The range of each number option (api.md: "Every number option has a range"); the JS layer
/// (shared.js `NUMBER_OPTIONS`) checks the same bounds first, so both say the same thing.
pub struct Range {
    pub min: f64,
    pub max: f64,
    pub integer: bool,
}

const YEAR: f64 = 31_536_000.0;
pub const TIMEOUT_MS: Range = Range {
    min: 1.0,
    max: 600_000.0,
    integer: false,
};
pub const REFRESH_AFTER: Range = Range {
    min: 0.0,
    max: YEAR,
    integer: false,
};
pub const MAX_AGE: Range = Range {
    min: 0.001,
    max: YEAR,
    integer: false,
};
pub const STALE_IF_ERROR: Range = Range {
    min: 0.0,
    max: YEAR,
    integer: false,
};
pub const NEGATIVE_TTL: Range = Range {
    min: 0.0,
    max: YEAR,
    integer: false,
};
pub const MAX_ENTRIES: Range = Range {
    min: 1.0,
    max: 10_000_000.0,
    integer: true,
};
pub const MAX_REFRESH_AFTER: Range = Range {
    min: 0.001,
    max: YEAR,
    integer: false,
};

fn fmt_bound(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A number within `range`, or a message naming the option and the range.
fn opt_number(
    o: &Map<String, Value>,
    name: &str,
    label: &str,
    range: &Range,
) -> Result<Option<f64>, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x)
                if x.is_finite()
                    && x >= range.min
                    && x <= range.max
                    && (!range.integer || x.fract() == 0.0) =>
            {
                Ok(Some(x))
            }
            _ => Err(format!(
                "option `{label}` must be {} from {} to {} (got {n})",
                if range.integer {
                    "an integer"
                } else {
                    "a number"
                },
                fmt_bound(range.min),
                fmt_bound(range.max)
            )),
        },
        Some(v) => Err(bad(label, "a number", v)),
    }
}

fn opt_string_list(o: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
                _ => Err(format!(
                    "option `{name}[{i}]` must be a non-empty string (got {})",
                    type_name(v)
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(bad(name, "an array of strings", v)),
    }
}

const KNOWN: &[&str] = &[
    "source",
    "secretsFile",
    "watch",
    "secrets",
    "oun",
    "allowedHosts",
    "allowInsecureLoopback",
    "identity",
    "clientId",
    "tenantId",
    "additionallyAllowedTenants",
    "clientSecret",
    "clientCertificatePath",
    "federatedTokenFile",
    "authorityHost",
    "vaultUrls",
    "cache",
    "timeoutMs",
    "telemetry",
];

/// `telemetry`: false, or an object with an optional boolean `secretNames`. Consumed by the JS
/// layer (telemetry.js); checked here so the constructor says what is wrong, as for any option.
fn check_telemetry(v: Option<&Value>) -> Result<(), String> {
    let o = match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(()),
        Some(Value::Object(o)) => o,
        Some(v) => return Err(bad("telemetry", "false or an object", v)),
    };
    if let Some(k) = o.keys().find(|k| k.as_str() != "secretNames") {
        return Err(format!(
            "unknown option `telemetry.{k}` (known: secretNames)"
        ));
    }
    match o.get("secretNames") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => Ok(()),
        Some(v) => Err(bad("telemetry.secretNames", "a boolean", v)),
    }
}

const CACHE_KNOWN: &[&str] = &[
    "refreshAfterSeconds",
    "maxAgeSeconds",
    "staleIfErrorSeconds",
    "negativeTtlSeconds",
    "maxEntries",
    "maxRefreshAfterSeconds",
];

fn parse_policy(v: Option<&Value>) -> Result<Policy, String> {
    let mut p = Policy::default();
    let o = match v {
        None | Some(Value::Null) | Some(Value::Bool(true)) => return Ok(p),
        Some(Value::Bool(false)) => {
            p.enabled = false;
            return Ok(p);
        }
        Some(Value::Object(o)) => o,
        Some(v) => return Err(bad("cache", "false or an object", v)),
    };
    if let Some(k) = o.keys().find(|k| !CACHE_KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown option `cache.{k}` (known: {})",
            CACHE_KNOWN.join(", ")
        ));
    }
    let num = |name: &str, range: &Range| opt_number(o, name, &format!("cache.{name}"), range);
    if let Some(x) = num("refreshAfterSeconds", &REFRESH_AFTER)? {
        p.refresh_after = x;
    }
    if let Some(x) = num("maxAgeSeconds", &MAX_AGE)? {
        p.max_age = x;
    }
    if let Some(x) = num("staleIfErrorSeconds", &STALE_IF_ERROR)? {
        p.stale_if_error = x;
    }
    if let Some(x) = num("negativeTtlSeconds", &NEGATIVE_TTL)? {
        p.negative_ttl = x;
    }
    if let Some(x) = num("maxEntries", &MAX_ENTRIES)? {
        p.max_entries = x as usize;
    }
    if let Some(x) = num("maxRefreshAfterSeconds", &MAX_REFRESH_AFTER)? {
        p.max_refresh_after = x;
    }
    Ok(p)
}

/// The default places of the local secrets file, in the order they are tried.
pub fn default_secrets_files(cwd: &Path) -> Vec<PathBuf> {
    vec![
        cwd.join("build").join("secrets").join("secrets.json"),
        cwd.join("secrets").join("secrets.json"),
    ]
}

/// `secretsManagerOUN` from `<cwd>/src/settings/platform.settings.json`, when readable.
fn platform_settings_oun(cwd: &Path) -> Option<String> {
    let path = cwd
        .join("src")
        .join("settings")
        .join("platform.settings.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
    match v.get("secretsManagerOUN")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub const NOT_CONFIGURED_HELP: &str = "no secrets source could be chosen. Configure one of: \
NODE_ENV=development with a secrets/secrets.json file (local); a managed identity \
(IDENTITY_ENDPOINT, as on Commerce's App Service) for Retail Server; COMMERCE_SECRETS_VAULT_URLS \
(or the vaultUrls option) for Azure Key Vault; or pass { source: 'memory', secrets } for tests. \
COMMERCE_SECRETS_SOURCE or the source option picks one explicitly.";

impl Config {
    /// Which store this configuration's tokens are for (the host defaults that apply).
    pub fn token_store(&self) -> TokenFor {
        match self.source {
            SourceKind::KeyVault => TokenFor::KeyVault,
            _ => TokenFor::RetailServer,
        }
    }

    pub fn from_parts(options: &Value, env: &Env, cwd: &Path) -> Result<Config, String> {
        let empty = Map::new();
        let o = match options {
            Value::Null => &empty,
            Value::Object(o) => o,
            v => return Err(format!("options must be an object (got {})", type_name(v))),
        };
        if let Some(k) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "unknown option `{k}` (known: {}, onEvent)",
                KNOWN.join(", ")
            ));
        }
        check_telemetry(o.get("telemetry"))?;

        let (requested, requested_by) = match opt_string(o, "source")? {
            Some(s) => match SourceKind::parse(&s) {
                Some(k) => (k, "the source option"),
                None => {
                    return Err(format!(
                        "option `source` must be one of 'auto', 'local', 'memory', 'retail-server', 'key-vault' (got '{}')",
                        s.escape_debug()
                    ))
                }
            },
            None => match env_get(env, "COMMERCE_SECRETS_SOURCE") {
                Some(s) => match SourceKind::parse(s) {
                    Some(k) => (k, "COMMERCE_SECRETS_SOURCE"),
                    None => {
                        return Err(format!(
                            "environment variable COMMERCE_SECRETS_SOURCE must be one of auto, local, memory, retail-server, key-vault (got '{}')",
                            s.escape_debug()
                        ))
                    }
                },
                None => (None, "default"),
            },
        };

        let secrets_file = opt_string(o, "secretsFile")?;
        let secrets_files = match &secrets_file {
            Some(f) => vec![cwd.join(f)],
            None => default_secrets_files(cwd),
        };

        let secrets = match o.get("secrets") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(
                m.iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k.clone(), SecretString::new(s.clone()))),
                        v => Err(format!(
                            "option `secrets.{k}` must be a string (got {})",
                            type_name(v)
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(v) => return Err(bad("secrets", "an object of strings", v)),
        };

        // Faults of the environment (not of the caller's options): the manager is built, and
        // every call answers NOT_CONFIGURED naming the variable (never a silent ignore).
        let mut env_faults: Vec<String> = Vec::new();
        let (allow_insecure_loopback, allow_insecure_loopback_origin) = match opt_bool(
            o,
            "allowInsecureLoopback",
        )? {
            Some(b) => (b, "the allowInsecureLoopback option"),
            None => match env_get(env, ALLOW_INSECURE_LOOPBACK_VAR) {
                None => (false, "the default"),
                Some(v) => match v.to_ascii_lowercase().as_str() {
                    "1" | "true" => (true, ALLOW_INSECURE_LOOPBACK_VAR),
                    "0" | "false" => (false, ALLOW_INSECURE_LOOPBACK_VAR),
                    _ => {
                        env_faults.push(format!(
                                "environment variable {ALLOW_INSECURE_LOOPBACK_VAR} must be 1, true, 0 or false (got '{}')",
                                v.escape_debug()
                            ));
                        (false, ALLOW_INSECURE_LOOPBACK_VAR)
                    }
                },
            },
        };
        let vault_urls = match opt_string_list(o, "vaultUrls")? {
            Some(v) => v,
            None => env_get(env, "COMMERCE_SECRETS_VAULT_URLS")
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        };
        if vault_urls.len() > 2 {
            return Err(format!(
                "option `vaultUrls` takes one or two vaults (got {})",
                vault_urls.len()
            ));
        }
        // Both add to the defaults: the option (the app's code) and the variable (the
        // operator's, which is how the default instance is told).
        let mut allowed_hosts = Vec::new();
        for h in opt_string_list(o, "allowedHosts")?.unwrap_or_default() {
            hosts::check_pattern(&h).map_err(|why| format!("option `allowedHosts`: {why}"))?;
            allowed_hosts.push(AllowedHost {
                pattern: h.to_ascii_lowercase(),
                origin: "the allowedHosts option".into(),
            });
        }
        if let Some(list) = env_get(env, ALLOWED_HOSTS_VAR) {
            for h in list.split(',').map(str::trim) {
                match hosts::check_pattern(h) {
                    Ok(()) => allowed_hosts.push(AllowedHost {
                        pattern: h.to_ascii_lowercase(),
                        origin: ALLOWED_HOSTS_VAR.into(),
                    }),
                    Err(why) => env_faults.push(format!(
                        "environment variable {ALLOWED_HOSTS_VAR} (comma-separated hosts): {why}"
                    )),
                }
            }
        }

        // A vault receives tokens: https, a Key Vault cloud or an allowed host, nothing else.
        let token_hosts =
            HostPolicy::new(TokenFor::KeyVault, &allowed_hosts, allow_insecure_loopback);
        for u in &vault_urls {
            let shown = u.escape_debug();
            let parsed = Url::parse(u)
                .map_err(|_| format!("option `vaultUrls`: '{shown}' is not an absolute url"))?;
            if !matches!(parsed.path(), "" | "/")
                || parsed.query().is_some()
                || parsed.fragment().is_some()
            {
                return Err(format!("option `vaultUrls`: '{shown}' must be just the vault's address, e.g. https://myvault.vault.azure.net"));
            }
            token_hosts
                .check_token_url(&parsed)
                .map_err(|why| format!("option `vaultUrls`: '{shown}': {why}"))?;
        }

        let identity = opt_string(o, "identity")?.unwrap_or_else(|| "auto".into());
        if !crate::identity::IDENTITY_KINDS.contains(&identity.as_str()) {
            return Err(format!(
                "option `identity` must be one of {} (got '{}')",
                crate::identity::IDENTITY_KINDS
                    .iter()
                    .map(|k| format!("'{k}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                identity.escape_debug()
            ));
        }
        // The option, else the variable (comma-separated); each a tenant id, a domain or '*'.
        let additionally_allowed_tenants = match opt_string_list(o, "additionallyAllowedTenants")? {
            Some(list) => {
                for t in &list {
                    if t != "*" && !crate::identity::valid_tenant(t) {
                        return Err(format!(
                            "option `additionallyAllowedTenants`: '{}' is not a tenant id, a domain name or '*'",
                            t.escape_debug()
                        ));
                    }
                }
                list
            }
            None => {
                let mut list = Vec::new();
                for t in env_get(env, "AZURE_ADDITIONALLY_ALLOWED_TENANTS")
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                {
                    if t == "*" || crate::identity::valid_tenant(t) {
                        list.push(t.to_owned());
                    } else {
                        env_faults.push(format!(
                            "environment variable AZURE_ADDITIONALLY_ALLOWED_TENANTS (comma-separated tenant ids, domain names or '*'): '{}' is not a tenant id or domain name",
                            t.escape_debug()
                        ));
                    }
                }
                list
            }
        };
        let secret_env = |name: &str| env_get(env, name).map(|v| SecretString::new(v.to_owned()));
        let identity = IdentitySettings {
            choice: identity,
            identity_endpoint: env_get(env, "IDENTITY_ENDPOINT").map(String::from),
            identity_header: secret_env("IDENTITY_HEADER"),
            user_assigned_client_id: env_get(env, "IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC")
                .map(String::from),
            msi_endpoint: env_get(env, "MSI_ENDPOINT").map(String::from),
            msi_secret: secret_env("MSI_SECRET"),
            client_id: opt_string(o, "clientId")?
                .or_else(|| env_get(env, "AZURE_CLIENT_ID").map(String::from)),
            tenant_id: opt_string(o, "tenantId")?
                .or_else(|| env_get(env, "AZURE_TENANT_ID").map(String::from)),
            additionally_allowed_tenants,
            client_secret: opt_string(o, "clientSecret")?
                .map(SecretString::new)
                .or_else(|| secret_env("AZURE_CLIENT_SECRET")),
            client_certificate_path: opt_string(o, "clientCertificatePath")?
                .or_else(|| env_get(env, "AZURE_CLIENT_CERTIFICATE_PATH").map(String::from))
                .map(|p| cwd.join(p).display().to_string()),
            federated_token_file: opt_string(o, "federatedTokenFile")?
                .or_else(|| env_get(env, "AZURE_FEDERATED_TOKEN_FILE").map(String::from))
                .map(|p| cwd.join(p).display().to_string()),
            authority_host: opt_string(o, "authorityHost")?
                .or_else(|| env_get(env, "AZURE_AUTHORITY_HOST").map(String::from)),
            pod_identity_host: env_get(env, "AZURE_POD_IDENTITY_AUTHORITY_HOST").map(String::from),
            imds_endpoint: env_get(env, "IMDS_ENDPOINT").map(String::from),
            identity_server_thumbprint: env_get(env, "IDENTITY_SERVER_THUMBPRINT")
                .map(String::from),
            path: env.get("PATH").cloned(),
            allow_insecure_loopback,
        };

        let (oun, oun_origin) = match opt_string(o, "oun")? {
            Some(v) => (v, "the oun option"),
            None => match env_get(env, "COMMERCE_SECRETS_OUN") {
                Some(v) => (v.to_owned(), "COMMERCE_SECRETS_OUN"),
                None => match platform_settings_oun(cwd) {
                    Some(v) => (
                        v,
                        "secretsManagerOUN in src/settings/platform.settings.json",
                    ),
                    None => ("128".to_owned(), "the platform default"),
                },
            },
        };

        let mut policy = parse_policy(o.get("cache"))?;
        let timeout_ms =
            opt_number(o, "timeoutMs", "timeoutMs", &TIMEOUT_MS)?.unwrap_or(DEFAULT_TIMEOUT_MS);
        // A refresh handed out holds its key until it ends, at most one call's deadline.
        policy.refresh_claim = timeout_ms / 1000.0;
        let watch = opt_bool(o, "watch")?.unwrap_or(true);

        // The rules of api.md, "explicit beats implicit": the source option, then
        // COMMERCE_SECRETS_SOURCE; then what an option implies (secrets, vaultUrls, secretsFile);
        // then COMMERCE_SECRETS_VAULT_URLS; then NODE_ENV=development; then an App Service
        // identity; then a secrets file that exists.
        let vault_urls_option = o.get("vaultUrls").is_some_and(|v| !v.is_null());
        let secrets_file_option = secrets_file.is_some();
        let mut not_configured = (!env_faults.is_empty()).then(|| env_faults.join("; "));
        let (source, reason) = match requested {
            Some(k) => (k, format!("{} was chosen by {requested_by}", k.as_str())),
            None if secrets.is_some() => (SourceKind::Memory, "memory: the secrets option was given".to_owned()),
            None if vault_urls_option && !vault_urls.is_empty() => {
                (SourceKind::KeyVault, "key-vault: the vaultUrls option was given".to_owned())
            }
            None if secrets_file_option => {
                (SourceKind::Local, "local: the secretsFile option was given".to_owned())
            }
            None if !vault_urls.is_empty() => {
                (SourceKind::KeyVault, "key-vault: COMMERCE_SECRETS_VAULT_URLS is set".to_owned())
            }
            None if env_get(env, "NODE_ENV") == Some("development") => {
                (SourceKind::Local, "local: NODE_ENV is development".to_owned())
            }
            None if env_get(env, "IDENTITY_ENDPOINT").is_some() || env_get(env, "MSI_ENDPOINT").is_some() => (
                SourceKind::RetailServer,
                "retail-server: an App Service managed identity is present (IDENTITY_ENDPOINT or MSI_ENDPOINT)".to_owned(),
            ),
            None => match secrets_files.iter().find(|p| p.is_file()) {
                Some(p) => (SourceKind::Local, format!("local: the secrets file {} exists", p.display())),
                None => {
                    not_configured.get_or_insert_with(|| NOT_CONFIGURED_HELP.to_owned());
                    (SourceKind::Local, format!("none: {NOT_CONFIGURED_HELP}"))
                }
            },
        };

        let reason = if env_faults.is_empty() {
            reason
        } else {
            format!("none: {}", env_faults.join("; "))
        };
        Ok(Config {
            source,
            not_configured,
            reason,
            secrets_files,
            watch,
            secrets: secrets.unwrap_or_default(),
            oun,
            oun_origin,
            allowed_hosts,
            allow_insecure_loopback,
            allow_insecure_loopback_origin,
            identity,
            retail_server_version: env_get(env, "MSDyn365Commerce_RSVERSION").map(String::from),
            vault_urls,
            policy,
            timeout_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cfg(o: Value, e: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_parts(&o, &env(e), Path::new("/nonexistent-cwd"))
    }

    #[test]
    fn debug_of_a_configuration_shows_no_secret() {
        let c = cfg(
            json!({"secrets": {"k": "SENTINEL-MEMORY-VALUE"}, "clientSecret": "SENTINEL-CLIENT-SECRET"}),
            &[("IDENTITY_HEADER", "SENTINEL-HEADER"), ("MSI_SECRET", "SENTINEL-MSI")],
        )
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("SENTINEL"), "{shown}");
        assert!(shown.contains("\"k\""), "the key name is shown");
    }

    #[test]
    fn auto_rules_in_order() {
        let c = cfg(
            json!({}),
            &[
                ("NODE_ENV", "development"),
                ("IDENTITY_ENDPOINT", "http://x"),
            ],
        )
        .unwrap();
        assert_eq!(c.source, SourceKind::Local);
        // Explicit beats implicit: vault urls (an option, or their own variable) beat the App
        // Service identity that App Service always sets.
        let c = cfg(
            json!({}),
            &[
                ("IDENTITY_ENDPOINT", "http://x"),
                ("COMMERCE_SECRETS_VAULT_URLS", "https://v.vault.azure.net"),
            ],
        )
        .unwrap();
        assert_eq!(c.source, SourceKind::KeyVault);
        let c = cfg(
            json!({"vaultUrls": ["https://v.vault.azure.net"]}),
            &[
                ("IDENTITY_ENDPOINT", "http://x"),
                ("NODE_ENV", "development"),
            ],
        )
        .unwrap();
        assert_eq!(c.source, SourceKind::KeyVault);
        assert!(c.reason.contains("vaultUrls option"), "{}", c.reason);
        let c = cfg(
            json!({"secretsFile": "s.json"}),
            &[
                ("IDENTITY_ENDPOINT", "http://x"),
                ("COMMERCE_SECRETS_VAULT_URLS", "https://v.vault.azure.net"),
            ],
        )
        .unwrap();
        assert_eq!(c.source, SourceKind::Local);
        let c = cfg(
            json!({}),
            &[
                ("COMMERCE_SECRETS_VAULT_URLS", "https://v.vault.azure.net"),
                ("NODE_ENV", "development"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.source,
            SourceKind::KeyVault,
            "the variable names a source; NODE_ENV only implies one"
        );
        let c = cfg(
            json!({"source": "retail-server", "vaultUrls": ["https://v.vault.azure.net"]}),
            &[("COMMERCE_SECRETS_SOURCE", "local")],
        )
        .unwrap();
        assert_eq!(
            c.source,
            SourceKind::RetailServer,
            "the source option beats everything"
        );
        let c = cfg(json!({}), &[("IDENTITY_ENDPOINT", "http://x")]).unwrap();
        assert_eq!(c.source, SourceKind::RetailServer);
        let c = cfg(json!({}), &[("MSI_ENDPOINT", "http://x")]).unwrap();
        assert_eq!(c.source, SourceKind::RetailServer);
        let c = cfg(
            json!({}),
            &[(
                "COMMERCE_SECRETS_VAULT_URLS",
                "https://a.vault.azure.net, https://b.vault.azure.net",
            )],
        )
        .unwrap();
        assert_eq!(c.source, SourceKind::KeyVault);
        assert_eq!(
            c.vault_urls,
            ["https://a.vault.azure.net", "https://b.vault.azure.net"]
        );
        let c = cfg(json!({}), &[]).unwrap();
        assert!(c.not_configured.is_some());
        let c = cfg(
            json!({"secrets": {"a": "b"}}),
            &[("NODE_ENV", "development")],
        )
        .unwrap();
        assert_eq!(c.source, SourceKind::Memory);
    }

    #[test]
    fn auto_picks_local_when_a_secrets_file_exists() {
        let dir = std::env::temp_dir().join(format!("csm-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(dir.join("secrets/secrets.json"), "{}").unwrap();
        let c = Config::from_parts(&json!({}), &env(&[]), &dir).unwrap();
        assert_eq!(c.source, SourceKind::Local);
        assert!(c.not_configured.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn additionally_allowed_tenants_from_the_option_else_the_environment() {
        let var = "AZURE_ADDITIONALLY_ALLOWED_TENANTS";
        let c = cfg(
            json!({"additionallyAllowedTenants": ["t1", "*"]}),
            &[(var, "ignored")],
        )
        .unwrap();
        assert_eq!(c.identity.additionally_allowed_tenants, ["t1", "*"]);
        let c = cfg(
            json!({"source": "memory"}),
            &[(var, " a.example , 72f988bf-86f1-41af-91ab-2d7cd011db47 ,")],
        )
        .unwrap();
        assert_eq!(
            c.identity.additionally_allowed_tenants,
            ["a.example", "72f988bf-86f1-41af-91ab-2d7cd011db47"]
        );
        assert!(c.not_configured.is_none());
        let c = cfg(json!({"source": "key-vault"}), &[(var, "ok,--debug")]).unwrap();
        assert!(c.not_configured.as_deref().is_some_and(|m| m.contains(var)));
        for bad in [json!("t1"), json!([1]), json!(["a b"]), json!(["-x"])] {
            let e = cfg(json!({ "additionallyAllowedTenants": bad }), &[]).unwrap_err();
            assert!(e.contains("additionallyAllowedTenants"), "{e}");
        }
    }

    #[test]
    fn allowed_hosts_from_the_option_and_the_environment() {
        let c = cfg(
            json!({"source": "retail-server", "allowedHosts": ["RS.Contoso.com"]}),
            &[
                (
                    "COMMERCE_SECRETS_ALLOWED_HOSTS",
                    " *.retail.fabrikam.net , rs2.contoso.com",
                ),
                ("COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK", "TRUE"),
            ],
        )
        .unwrap();
        assert!(c.not_configured.is_none());
        let got: Vec<_> = c
            .allowed_hosts
            .iter()
            .map(|h| (h.pattern.as_str(), h.origin.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("rs.contoso.com", "the allowedHosts option"),
                ("*.retail.fabrikam.net", "COMMERCE_SECRETS_ALLOWED_HOSTS"),
                ("rs2.contoso.com", "COMMERCE_SECRETS_ALLOWED_HOSTS"),
            ]
        );
        assert!(c.allow_insecure_loopback);
        assert_eq!(
            c.allow_insecure_loopback_origin,
            "COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK"
        );
        // The option beats the variable.
        let c = cfg(
            json!({"allowInsecureLoopback": false}),
            &[("COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK", "1")],
        )
        .unwrap();
        assert!(!c.allow_insecure_loopback);
    }

    #[test]
    fn a_bad_host_variable_is_not_configured_naming_it() {
        for (var, value) in [
            (
                "COMMERCE_SECRETS_ALLOWED_HOSTS",
                "rs.contoso.com,https://x.com",
            ),
            ("COMMERCE_SECRETS_ALLOWED_HOSTS", "*"),
            ("COMMERCE_SECRETS_ALLOWED_HOSTS", "a,,b"),
            ("COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK", "yes"),
        ] {
            let c = cfg(json!({"source": "retail-server"}), &[(var, value)]).unwrap();
            let why = c.not_configured.expect(value);
            assert!(why.contains(var), "{why}");
            assert!(c.reason.contains(var), "{}", c.reason);
        }
        // The option is the caller's: a TypeError at construction, as before.
        assert!(cfg(json!({"allowedHosts": ["x/y"]}), &[])
            .unwrap_err()
            .contains("allowedHosts"));
    }

    #[test]
    fn explicit_source_wins_and_env_source_is_read() {
        assert_eq!(
            cfg(json!({"source": "memory"}), &[("NODE_ENV", "development")])
                .unwrap()
                .source,
            SourceKind::Memory
        );
        assert_eq!(
            cfg(json!({}), &[("COMMERCE_SECRETS_SOURCE", "key-vault")])
                .unwrap()
                .source,
            SourceKind::KeyVault
        );
        assert!(cfg(json!({}), &[("COMMERCE_SECRETS_SOURCE", "vault")])
            .unwrap_err()
            .contains("COMMERCE_SECRETS_SOURCE"));
    }

    #[test]
    fn misuse_names_the_option() {
        for (o, needle) in [
            (json!({"bogus": 1}), "unknown option `bogus`"),
            (json!({"source": "cloud"}), "`source`"),
            (
                json!({"secretsFile": 3}),
                "`secretsFile` must be a string (got a number)",
            ),
            (json!({"watch": "yes"}), "`watch` must be a boolean"),
            (json!({"secrets": {"a": 1}}), "`secrets.a` must be a string"),
            (json!({"secrets": []}), "`secrets`"),
            (
                json!({"timeoutMs": -1}),
                "option `timeoutMs` must be a number from 1 to 600000 (got -1)",
            ),
            (json!({"timeoutMs": 0}), "`timeoutMs`"),
            (json!({"cache": {"maxEntries": 1.5}}), "`cache.maxEntries`"),
            (
                json!({"cache": {"maxAgeSeconds": -3}}),
                "`cache.maxAgeSeconds`",
            ),
            (
                json!({"cache": {"refreshAfterSeconds": -1}}),
                "`cache.refreshAfterSeconds`",
            ),
            (json!({"cache": {"ttl": 1}}), "unknown option `cache.ttl`"),
            (json!({"cache": 5}), "`cache` must be false or an object"),
            (json!({"vaultUrls": ["a", "b", "c"]}), "one or two"),
            (json!({"vaultUrls": ["http://v.vault.azure.net"]}), "https"),
            (
                json!({"vaultUrls": ["https://v.example.com"]}),
                "may not receive a token",
            ),
            (
                json!({"vaultUrls": ["https://v.vault.azure.net/secrets/x"]}),
                "just the vault's address",
            ),
            (json!({"vaultUrls": ["not a url"]}), "not an absolute url"),
            (
                json!({"vaultUrls": "https://x"}),
                "`vaultUrls` must be an array",
            ),
            (json!({"allowedHosts": ["https://x/"]}), "`allowedHosts`"),
            (json!({"identity": "magic"}), "`identity`"),
            (json!({"oun": ""}), "`oun`"),
            (json!({"clientSecret": 5}), "`clientSecret`"),
            (json!([1]), "options must be an object"),
            (
                json!({"telemetry": true}),
                "option `telemetry` must be false or an object (got a boolean)",
            ),
            (
                json!({"telemetry": "on"}),
                "`telemetry` must be false or an object",
            ),
            (
                json!({"telemetry": {"secretNames": "yes"}}),
                "option `telemetry.secretNames` must be a boolean (got a string)",
            ),
            (
                json!({"telemetry": {"names": true}}),
                "unknown option `telemetry.names`",
            ),
        ] {
            let err = cfg(o.clone(), &[]).unwrap_err();
            assert!(err.contains(needle), "{o}: {err}");
        }
    }

    #[test]
    fn numbers_may_be_fractional_and_cache_false_disables() {
        let c = cfg(json!({"cache": {"refreshAfterSeconds": 0.05, "maxAgeSeconds": 0.2, "maxEntries": 3}, "timeoutMs": 50}), &[])
            .unwrap();
        assert_eq!(
            (
                c.policy.refresh_after,
                c.policy.max_age,
                c.policy.max_entries,
                c.timeout_ms
            ),
            (0.05, 0.2, 3, 50.0)
        );
        assert!(!cfg(json!({"cache": false}), &[]).unwrap().policy.enabled);
        assert_eq!(cfg(json!({}), &[]).unwrap().policy, Policy::default());
    }

    #[test]
    fn debug_of_a_config_shows_no_secret() {
        let c = cfg(
            json!({"clientSecret": "SENTINEL-1", "clientId": "id"}),
            &[
                ("IDENTITY_HEADER", "SENTINEL-2"),
                ("MSI_SECRET", "SENTINEL-3"),
            ],
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("SENTINEL"), "{shown}");
        assert!(shown.contains("\"id\""));
    }

    #[test]
    fn oun_chain() {
        assert_eq!(
            cfg(json!({"oun": "77"}), &[("COMMERCE_SECRETS_OUN", "5")])
                .unwrap()
                .oun,
            "77"
        );
        assert_eq!(
            cfg(json!({}), &[("COMMERCE_SECRETS_OUN", "5")])
                .unwrap()
                .oun,
            "5"
        );
        assert_eq!(cfg(json!({}), &[]).unwrap().oun, "128");
    }

    #[test]
    fn null_options_are_absent() {
        let c = cfg(
            json!({"secretsFile": null, "cache": null, "timeoutMs": null}),
            &[],
        )
        .unwrap();
        assert_eq!(c.timeout_ms, DEFAULT_TIMEOUT_MS);
    }
}
