//! Who may receive a bearer token: the default hosts (with where each comes from), the ones an
//! app or an operator adds, and the loopback opt-in. Both the configuration (which checks
//! `vaultUrls` up front) and the HTTP layer (which checks every request) use this one policy.

use url::{Host, Url};

/// A host pattern that may receive a token, and where it came from (shown by `doctor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    /// `host` (exactly that host) or `*.domain` (any host one label below `domain`).
    pub pattern: String,
    pub origin: String,
}

/// Which store a token is for: each source's tokens go only to its own kind of host (a Key
/// Vault reference cannot send a vault token to a Retail Server host, nor the other way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFor {
    RetailServer,
    KeyVault,
}

/// Hosts that may receive a bearer token without being listed, by store: the Retail Servers
/// Microsoft operates for Commerce, and the Key Vault clouds. The README ("Allowed hosts")
/// says where each one is documented.
pub const DEFAULT_TOKEN_HOSTS: &[(TokenFor, &str, &str)] = &[
    (
        TokenFor::RetailServer,
        "*.commerce.dynamics.com",
        "default: Commerce Scale Unit (Retail Server)",
    ),
    (
        TokenFor::RetailServer,
        "*.sandbox.operations.dynamics.com",
        "default: Retail Server of a sandbox (UAT) environment",
    ),
    (
        TokenFor::RetailServer,
        "*.cloudax.dynamics.com",
        "default: Retail Server of a cloud-hosted (tier-1) development environment",
    ),
    (
        TokenFor::KeyVault,
        "*.vault.azure.net",
        "default: Azure Key Vault (public cloud)",
    ),
    (
        TokenFor::KeyVault,
        "*.vault.azure.cn",
        "default: Azure Key Vault (China)",
    ),
    (
        TokenFor::KeyVault,
        "*.vault.usgovcloudapi.net",
        "default: Azure Key Vault (US Government)",
    ),
];

/// What an operator sets to allow a host (named in HOST_NOT_ALLOWED messages).
pub const ALLOWED_HOSTS_VAR: &str = "COMMERCE_SECRETS_ALLOWED_HOSTS";
pub const ALLOW_INSECURE_LOOPBACK_VAR: &str = "COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK";

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(a)) => a.is_loopback(),
        Some(Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// Why `pattern` is not a host pattern (`host` or `*.domain`), or Ok.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let bare = pattern.strip_prefix("*.").unwrap_or(pattern);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) {
        return Err(format!(
            "'{}' is not a host name (use 'host' or '*.domain')",
            pattern.escape_debug()
        ));
    }
    Ok(())
}

/// Which hosts may receive a bearer token.
#[derive(Clone, Debug)]
pub struct HostPolicy {
    hosts: Vec<AllowedHost>,
    allow_insecure_loopback: bool,
}

impl HostPolicy {
    /// The defaults, then `extra` (already checked with `check_pattern`).
    pub fn new(store: TokenFor, extra: &[AllowedHost], allow_insecure_loopback: bool) -> Self {
        let hosts = DEFAULT_TOKEN_HOSTS
            .iter()
            .filter(|(kind, _, _)| *kind == store)
            .map(|(_, p, o)| AllowedHost {
                pattern: (*p).to_owned(),
                origin: (*o).to_owned(),
            })
            .chain(extra.iter().map(|h| AllowedHost {
                pattern: h.pattern.to_ascii_lowercase(),
                origin: h.origin.clone(),
            }))
            .collect();
        HostPolicy {
            hosts,
            allow_insecure_loopback,
        }
    }

    /// Only the defaults, no loopback (for tests and for what needs no configuration).
    pub fn defaults(store: TokenFor) -> Self {
        HostPolicy::new(store, &[], false)
    }

    pub fn allow_insecure_loopback(&self) -> bool {
        self.allow_insecure_loopback
    }

    pub fn hosts(&self) -> &[AllowedHost] {
        &self.hosts
    }

    /// `*.domain` matches a host exactly one label below `domain` (`a.domain`, not
    /// `a.b.domain`, not `domain`); anything else matches exactly. Case-insensitive, and a
    /// trailing dot (the DNS root) is ignored.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        self.hosts
            .iter()
            .any(|h| match h.pattern.strip_prefix("*.") {
                Some(domain) => match host.split_once('.') {
                    Some((label, rest)) => !label.is_empty() && rest == domain,
                    None => false,
                },
                None => host == h.pattern,
            })
    }

    /// Why `url` may not receive a bearer token, or Ok. The reason says what to set.
    pub fn check_token_url(&self, url: &Url) -> Result<(), String> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the url carries user info".into());
        }
        if self.allow_insecure_loopback
            && is_loopback(url)
            && matches!(url.scheme(), "http" | "https")
        {
            return Ok(());
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(url) => {
                return Err(format!(
                "plain http is allowed only to loopback, and only with the allowInsecureLoopback \
                     option or {ALLOW_INSECURE_LOOPBACK_VAR}=1"
            ))
            }
            "http" => return Err("a token is sent only over https".into()),
            other => return Err(format!("the scheme '{other}' is not https")),
        }
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_owned(),
            Some(Host::Ipv4(a)) => a.to_string(),
            Some(Host::Ipv6(a)) => a.to_string(),
            None => return Err("the url has no host".into()),
        };
        if self.host_allowed(&host) {
            Ok(())
        } else {
            Err(format!(
                "the host '{host}' may not receive a token (allowed: {}); to allow it, add '{host}' \
                 to the allowedHosts option or to {ALLOWED_HOSTS_VAR} (comma-separated)",
                self.hosts
                    .iter()
                    .map(|h| h.pattern.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn extra(p: &[&str]) -> Vec<AllowedHost> {
        p.iter()
            .map(|p| AllowedHost {
                pattern: (*p).into(),
                origin: "test".into(),
            })
            .collect()
    }

    #[test]
    fn token_hosts() {
        let p = HostPolicy::new(
            TokenFor::RetailServer,
            &extra(&["api.contoso.com", "*.contoso.net"]),
            false,
        );
        let kv = HostPolicy::new(TokenFor::KeyVault, &extra(&["api.contoso.com"]), false);
        for ok in [
            "https://scu1.commerce.dynamics.com/",
            "https://contosoret.sandbox.operations.dynamics.com/",
            "https://contoso-uatret.sandbox.operations.dynamics.com/Commerce/",
            "https://usnconeboxax1ret.cloudax.dynamics.com/",
            "https://api.contoso.com/",
            "https://x.contoso.net/",
        ] {
            assert!(p.check_token_url(&url(ok)).is_ok(), "{ok}");
        }
        for ok in [
            "https://myvault.vault.azure.net",
            "https://MyVault.Vault.Azure.Net",
            "https://myvault.vault.azure.net./",
            "https://v.vault.azure.cn",
            "https://v.vault.usgovcloudapi.net",
            "https://api.contoso.com/",
        ] {
            assert!(kv.check_token_url(&url(ok)).is_ok(), "{ok}");
        }
        // Each store's tokens go to its own kind of host only.
        assert!(p
            .check_token_url(&url("https://myvault.vault.azure.net"))
            .is_err());
        assert!(kv
            .check_token_url(&url("https://scu1.commerce.dynamics.com/"))
            .is_err());
        assert!(kv
            .check_token_url(&url("https://x.cloudax.dynamics.com/"))
            .is_err());
        for bad in [
            "https://commerce.dynamics.com/",
            "https://a.b.commerce.dynamics.com/x",
            "https://x.y.vault.azure.net/",
            "https://sandbox.operations.dynamics.com/",
            "https://x.operations.dynamics.com/",
            "https://cloudax.dynamics.com/",
            "https://evilcommerce.dynamics.com.attacker.io/",
            "https://commerce.dynamics.com.attacker.io/",
            "https://xcommerce.dynamics.com/",
            "https://xsandbox.operations.dynamics.com/",
            "http://scu1.commerce.dynamics.com/",
            "http://contosoret.sandbox.operations.dynamics.com/",
            "https://user:pw@scu1.commerce.dynamics.com/",
            "https://user@scu1.commerce.dynamics.com/",
            "ftp://scu1.commerce.dynamics.com/",
            "https://10.0.0.1/",
            "http://127.0.0.1:8080/",
            "https://contoso.net/",
            "https://a.b.contoso.net/",
            "https://api.contoso.com.evil/",
        ] {
            assert!(p.check_token_url(&url(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_refusal_says_what_to_set() {
        let why = HostPolicy::defaults(TokenFor::RetailServer)
            .check_token_url(&url("https://rs.contoso.com/"))
            .unwrap_err();
        assert!(why.contains("add 'rs.contoso.com' to the allowedHosts option or to COMMERCE_SECRETS_ALLOWED_HOSTS"), "{why}");
        let why = HostPolicy::defaults(TokenFor::RetailServer)
            .check_token_url(&url("http://127.0.0.1:9/"))
            .unwrap_err();
        assert!(
            why.contains("COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK"),
            "{why}"
        );
    }

    #[test]
    fn loopback_only_when_opted_in() {
        let strict = HostPolicy::new(TokenFor::RetailServer, &[], false);
        let loose = HostPolicy::new(TokenFor::RetailServer, &[], true);
        for u in [
            "http://127.0.0.1:1/",
            "http://127.8.9.10/",
            "http://localhost:3/",
            "http://[::1]:4/",
            "https://127.0.0.1/",
        ] {
            assert!(strict.check_token_url(&url(u)).is_err(), "{u}");
            assert!(loose.check_token_url(&url(u)).is_ok(), "{u}");
        }
        assert!(loose.check_token_url(&url("http://10.0.0.1/")).is_err());
        assert!(loose
            .check_token_url(&url("http://u:p@127.0.0.1/"))
            .is_err());
        assert!(loose.check_token_url(&url("http://example.com/")).is_err());
    }

    #[test]
    fn patterns() {
        for ok in ["rs.contoso.com", "*.contoso.com", "localhost", "a-b.c1"] {
            assert!(check_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*",
            "*.",
            "host/path",
            "a..b",
            "-a.com",
            "a b",
            "https://x.com",
            "*.*.x.com",
            "x.com:443",
        ] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
    }
}
