//! Key Vault's challenge-based authentication: the first request to a vault goes without a
//! token; its 401 `WWW-Authenticate` names the tenant and the resource. Parsing it, and
//! whether its resource may be given a token by the vault that sent it.

use crate::hosts::is_loopback;
use url::Url;

/// The public cloud's Key Vault token resource (a loopback fake's challenge may name it).
pub const PUBLIC_RESOURCE: &str = "https://vault.azure.net";

#[derive(Clone, Debug, PartialEq)]
pub struct Challenge {
    pub tenant: String,
    /// The host of the challenge's authority, e.g. `login.microsoftonline.com`.
    pub authority_host: String,
    /// The token's resource, e.g. `https://vault.azure.net` (scope: resource + `/.default`).
    pub resource: String,
}

/// Parses a `WWW-Authenticate: Bearer authorization="…/{tenant}", resource="…"` header
/// (`authorization_uri` and `scope` are accepted too). Never panics, whatever the text.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let rest = header
        .trim()
        .strip_prefix("Bearer")
        .or_else(|| header.trim().strip_prefix("bearer"))?;
    let mut authorization = None;
    let mut resource = None;
    let mut scope = None;
    let mut s = rest;
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(eq) = s.find('=') else { break };
        let name = s[..eq].trim().to_ascii_lowercase();
        s = &s[eq + 1..];
        let value;
        if let Some(quoted) = s.strip_prefix('"') {
            let end = quoted.find('"')?;
            value = &quoted[..end];
            s = &quoted[end + 1..];
        } else {
            let end = s.find([',', ' ']).unwrap_or(s.len());
            value = &s[..end];
            s = &s[end..];
        }
        match name.as_str() {
            "authorization" | "authorization_uri" => authorization = Some(value.to_owned()),
            "resource" => resource = Some(value.to_owned()),
            "scope" => scope = Some(value.to_owned()),
            _ => {}
        }
    }
    let authority = Url::parse(&authorization?).ok()?;
    let tenant = authority
        .path_segments()?
        .rfind(|p| !p.is_empty())?
        .to_owned();
    let resource =
        resource.or_else(|| scope.map(|s| s.trim_end_matches("/.default").to_owned()))?;
    Url::parse(&resource).ok()?;
    Some(Challenge {
        authority_host: authority.host_str().unwrap_or("").to_ascii_lowercase(),
        tenant,
        resource: resource.trim_end_matches('/').to_owned(),
    })
}

/// Whether a challenge's resource may be given a token by this vault: the vault's own host,
/// or a Key Vault token resource (`https://vault.azure.net`, `https://vault.azure.cn`,
/// `https://vault.usgovcloudapi.net`); for a vault in a Key Vault domain, only its own
/// cloud's. Never some other parent domain of the vault's host (a "vault" at
/// `x.commerce.dynamics.com` must not get a token for `https://commerce.dynamics.com`). A
/// loopback vault (tests, local fakes, only with allowInsecureLoopback) cannot be in a Key
/// Vault domain; it may name itself or the public `https://vault.azure.net`.
pub fn resource_belongs(vault: &Url, resource: &str, loopback_allowed: bool) -> bool {
    let Ok(r) = Url::parse(resource) else {
        return false;
    };
    let (Some(rh), Some(vh)) = (r.host_str(), vault.host_str()) else {
        return false;
    };
    let (rh, vh) = (rh.to_ascii_lowercase(), vh.to_ascii_lowercase());
    let vh = vh.strip_suffix('.').unwrap_or(&vh);
    if r.scheme() != "https" && !(loopback_allowed && is_loopback(&r)) {
        return false;
    }
    if loopback_allowed && is_loopback(vault) {
        return rh == vh || resource.trim_end_matches('/') == PUBLIC_RESOURCE;
    }
    if vault.scheme() != "https" {
        return false;
    }
    if rh == vh {
        return true;
    }
    let in_domain = |suffix: &str| {
        vh.strip_suffix(suffix)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
    };
    let resources = crate::identity::CLOUDS.iter().map(|c| c.vault_suffix);
    match crate::identity::CLOUDS
        .iter()
        .find(|c| in_domain(c.vault_suffix))
    {
        Some(cloud) => rh == cloud.vault_suffix,
        // A vault on a host of the caller's own (allowedHosts: a private endpoint, say):
        // a Key Vault token resource of any cloud, nothing else.
        None => resources.into_iter().any(|suffix| rh == suffix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_as_recorded_and_variants() {
        let c = parse_challenge(
            r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge {
                tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
                authority_host: "login.microsoftonline.com".into(),
                resource: "https://vault.azure.net".into()
            }
        );
        let c = parse_challenge(r#"Bearer authorization_uri="https://login.windows.net/t1/", scope="https://vault.azure.net/.default""#).unwrap();
        assert_eq!(
            (c.tenant.as_str(), c.resource.as_str()),
            ("t1", "https://vault.azure.net")
        );
        for bad in [
            "",
            "Basic realm=x",
            "Bearer",
            r#"Bearer resource="https://vault.azure.net""#,
            r#"Bearer authorization="x", resource="y""#,
            "Bearer authorization=\"unterminated",
        ] {
            assert!(parse_challenge(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn parse_challenge_never_panics() {
        let alphabet: Vec<char> =
            "Bearer authorization_uri=\"https://a/b\", resource=scope,./é\u{0}"
                .chars()
                .collect();
        let mut seed = 0x9e37_79b9_u64;
        for len in 0..300 {
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = parse_challenge(&s);
        }
    }

    #[test]
    fn a_challenge_must_name_the_vaults_own_domain() {
        let v = Url::parse("https://myvault.vault.azure.net").unwrap();
        assert!(resource_belongs(&v, "https://vault.azure.net", false));
        assert!(!resource_belongs(&v, "https://management.azure.com", false));
        assert!(resource_belongs(
            &v,
            "https://myvault.vault.azure.net/",
            false
        ));
        assert!(!resource_belongs(&v, "https://azure.net", false));
        assert!(!resource_belongs(&v, "https://net", false));
        assert!(!resource_belongs(&v, "http://vault.azure.net", false));
        assert!(!resource_belongs(&v, "https://evilvault.azure.net", false));
        assert!(
            !resource_belongs(&v, "https://vault.azure.cn", false),
            "another cloud's"
        );
        assert!(!resource_belongs(&v, "https://x.vault.azure.net", false));
        // Not a Key Vault domain: never its parent domain (a Retail Server's audience, say).
        let rs = Url::parse("https://x.commerce.dynamics.com").unwrap();
        assert!(!resource_belongs(
            &rs,
            "https://commerce.dynamics.com",
            false
        ));
        assert!(resource_belongs(&rs, "https://vault.azure.net", false));
        let private = Url::parse("https://kv.privatelink.vaultcore.azure.net").unwrap();
        assert!(!resource_belongs(
            &private,
            "https://vaultcore.azure.net",
            false
        ));
        assert!(resource_belongs(&private, "https://vault.azure.net", false));
        let lo = Url::parse("http://127.0.0.1:9999").unwrap();
        assert!(resource_belongs(&lo, "https://vault.azure.net", true));
        assert!(resource_belongs(&lo, "http://127.0.0.1:9999", true));
        assert!(!resource_belongs(&lo, "https://management.azure.com", true));
        assert!(!resource_belongs(&lo, "https://vault.azure.net", false));
    }
}
