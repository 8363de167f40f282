//! What a key names in the key-vault source, parsed once: a secret name (in the configured
//! vaults, tried in order), or a Key Vault reference to one vault. Case-insensitive throughout:
//! URLs are (scheme, host, the `@Microsoft.KeyVault(` prefix and its field names), and so is
//! Key Vault ("object identifiers … should always be compared as case-insensitive strings"):
//! `SecretId`'s names and versions are lower-cased, so `Db` and `db` are one entry.

use url::Url;

/// `name`, `name/version` or `vault:///name[/version]`. Names: 1–127 of `0-9a-zA-Z-`.
pub fn parse_key(key: &str) -> Result<(&str, Option<&str>), String> {
    let bare = key.strip_prefix("vault:///").unwrap_or(key);
    let (name, version) = match bare.split_once('/') {
        Some((n, v)) => (n, Some(v)),
        None => (bare, None),
    };
    check_name(name)?;
    if let Some(v) = version {
        if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("a Key Vault secret version is 1 to 64 letters and digits".into());
        }
    }
    Ok((name, version))
}

/// A Key Vault secret name: 1–127 of `0-9a-zA-Z-`.
pub fn check_name(name: &str) -> Result<(), String> {
    if (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err("a Key Vault secret name is 1 to 127 characters of 0-9, a-z, A-Z and '-'".into())
    }
}

/// A vault's short name (as in `VaultName=` and Event Grid's `data.VaultName`): 3–24 of
/// `0-9a-zA-Z-` (Key Vault's rule); the host is `<name>.<the cloud's vault domain>`.
pub fn check_vault_name(name: &str) -> Result<(), String> {
    if (3..=24).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err("a vault name is 3 to 24 characters of 0-9, a-z, A-Z and '-'".into())
    }
}

/// The origin of a vault url as one string (`https://myvault.vault.azure.net`, scheme and host
/// lower-cased, a default port dropped): how vaults are compared.
pub fn vault_origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// A Key Vault reference written in a key: the vault, the secret name, the version if pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The vault's address, path `/`.
    pub vault: Url,
    pub name: String,
    pub version: Option<String>,
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A Key Vault reference in a key, as App Service and Key Vault write them:
/// `https://<vault>/secrets/<name>[/<version>]`, `@Microsoft.KeyVault(SecretUri=…)` or
/// `@Microsoft.KeyVault(VaultName=…;SecretName=…[;SecretVersion=…])`. `None`: not a reference;
/// `Some(Err)`: a reference that does not parse. `vault_suffix`: the configured cloud's
/// Key Vault domain, for `VaultName=`.
pub fn parse_reference(key: &str, vault_suffix: &str) -> Option<Result<Reference, String>> {
    const APP_SERVICE: &str = "@Microsoft.KeyVault(";
    let bad = |why: &str| Some(Err(format!("the Key Vault reference {why}")));
    let uri = if starts_with_ignore_case(key, APP_SERVICE) {
        let inner = &key[APP_SERVICE.len()..];
        let Some(inner) = inner.strip_suffix(')') else {
            return bad("does not end with ')'");
        };
        let mut fields = std::collections::HashMap::new();
        for part in inner.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return bad("has a part without '='");
            };
            fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        match (
            fields.get("secreturi"),
            fields.get("vaultname"),
            fields.get("secretname"),
        ) {
            (Some(u), None, None) => u.clone(),
            (None, Some(vault), Some(name)) => {
                if check_vault_name(vault).is_err() {
                    return bad("has a VaultName that is not a vault name");
                }
                let vault = vault.to_ascii_lowercase();
                match fields.get("secretversion") {
                    Some(v) => format!("https://{vault}.{vault_suffix}/secrets/{name}/{v}"),
                    None => format!("https://{vault}.{vault_suffix}/secrets/{name}"),
                }
            }
            _ => return bad("needs SecretUri=…, or VaultName=… and SecretName=…"),
        }
    } else if starts_with_ignore_case(key, "https://") || starts_with_ignore_case(key, "http://") {
        key.to_owned()
    } else {
        return None;
    };
    let Ok(url) = Url::parse(&uri) else {
        return bad("is not a url");
    };
    // http only to loopback (a local fake; the host policy still wants allowInsecureLoopback).
    let scheme_ok =
        url.scheme() == "https" || (url.scheme() == "http" && crate::hosts::is_loopback(&url));
    if !scheme_ok || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty()
    {
        return bad("must be an https url with no query, fragment or user info");
    }
    let segments: Vec<&str> = url
        .path()
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .collect();
    let (name, version) = match segments.as_slice() {
        ["secrets", name] => (*name, None),
        ["secrets", name, version] => (*name, Some(*version)),
        _ => return bad("must be https://<vault>/secrets/<name>[/<version>]"),
    };
    let joined = match version {
        Some(v) => format!("{name}/{v}"),
        None => name.to_owned(),
    };
    if let Err(why) = parse_key(&joined) {
        return Some(Err(why));
    }
    let mut vault = url.clone();
    vault.set_path("/");
    if vault.host_str().is_none() {
        return bad("has no vault host");
    }
    Some(Ok(Reference {
        vault,
        name: name.to_owned(),
        version: version.map(str::to_owned),
    }))
}

/// The secret a key names, in canonical form: one cache entry and one flight per secret,
/// whatever form the key was written in. Name and version are lower-case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretId {
    /// `None`: the configured vaults, in order (a plain name, or a reference to the only
    /// configured vault). `Some`: that vault only (its origin).
    pub vault: Option<String>,
    pub name: String,
    pub version: Option<String>,
}

impl SecretId {
    /// The cache key: `name[/version]` for the configured vaults, else
    /// `<vault origin>/secrets/<name>[/<version>]`. Itself a key that names the same secret.
    pub fn cache_key(&self) -> String {
        let tail = match &self.version {
            Some(v) => format!("{}/{v}", self.name),
            None => self.name.clone(),
        };
        match &self.vault {
            None => tail,
            Some(origin) => format!("{origin}/secrets/{tail}"),
        }
    }

    /// A pinned version never changes: push invalidation leaves it alone.
    pub fn pinned(&self) -> bool {
        self.version.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(k: &str) -> Reference {
        parse_reference(k, "vault.azure.net").unwrap().unwrap()
    }

    #[test]
    fn key_vault_references() {
        let r = reference("https://myvault.vault.azure.net/secrets/db-password");
        assert_eq!(
            (r.vault.as_str(), r.name.as_str(), r.version),
            ("https://myvault.vault.azure.net/", "db-password", None)
        );
        let r = reference(
            "https://myvault.vault.azure.net/secrets/db-password/0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f/",
        );
        assert_eq!(
            r.version.as_deref(),
            Some("0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f")
        );
        let r = reference(
            "@Microsoft.KeyVault(SecretUri=https://other.vault.azure.net/secrets/api-key/)",
        );
        assert_eq!(
            (r.vault.as_str(), r.name.as_str()),
            ("https://other.vault.azure.net/", "api-key")
        );
        let r = reference(
            "@Microsoft.KeyVault(VaultName=myvault; SecretName=api-key; SecretVersion=abc123)",
        );
        assert_eq!(
            (r.vault.as_str(), r.name.as_str(), r.version.as_deref()),
            (
                "https://myvault.vault.azure.net/",
                "api-key",
                Some("abc123")
            )
        );
        let r = parse_reference(
            "@Microsoft.KeyVault(VaultName=cnv;SecretName=k)",
            "vault.azure.cn",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.vault.as_str(), "https://cnv.vault.azure.cn/");
        assert!(parse_reference("db-password", "vault.azure.net").is_none());
        assert!(parse_reference("vault:///db-password", "vault.azure.net").is_none());
        for bad in [
            "https://myvault.vault.azure.net/keys/k",
            "https://myvault.vault.azure.net/secrets/",
            "https://myvault.vault.azure.net/secrets/a_b",
            "https://u:p@myvault.vault.azure.net/secrets/k",
            "https://myvault.vault.azure.net/secrets/k?x=1",
            "http://myvault.vault.azure.net/secrets/k",
            "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/k",
            "@Microsoft.KeyVault(VaultName=v)",
            "@Microsoft.KeyVault(VaultName=a.b;SecretName=k)",
            "@Microsoft.KeyVault(VaultName=ab;SecretName=k)",
        ] {
            assert!(
                parse_reference(bad, "vault.azure.net").unwrap().is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn case_insensitive_where_urls_are_exact_where_key_vault_is() {
        let a = reference("HTTPS://MyVault.Vault.Azure.NET/secrets/Db");
        let b =
            reference("@microsoft.keyvault(secreturi=https://myvault.vault.azure.net/secrets/Db)");
        let c = reference("@Microsoft.KeyVault(VAULTNAME=MyVault;SECRETNAME=Db)");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(vault_origin(&a.vault), "https://myvault.vault.azure.net");
        assert_eq!(a.name, "Db");
        let d = reference("https://myvault.vault.azure.net/secrets/db");
        assert_ne!(a.name, d.name, "names are exact");
        let lo = reference("HTTP://127.0.0.1:8200/secrets/k");
        assert_eq!(vault_origin(&lo.vault), "http://127.0.0.1:8200");
        let port = reference("https://myvault.vault.azure.net:443/secrets/k");
        assert_eq!(vault_origin(&port.vault), "https://myvault.vault.azure.net");
    }

    #[test]
    fn cache_keys() {
        let plain = SecretId {
            vault: None,
            name: "db".into(),
            version: None,
        };
        assert_eq!(plain.cache_key(), "db");
        let pinned = SecretId {
            version: Some("v1".into()),
            ..plain.clone()
        };
        assert_eq!(pinned.cache_key(), "db/v1");
        assert!(pinned.pinned() && !plain.pinned());
        let other = SecretId {
            vault: Some("https://o.vault.azure.net".into()),
            ..plain
        };
        assert_eq!(other.cache_key(), "https://o.vault.azure.net/secrets/db");
        // The cache key parses back to the same reference.
        let r = reference(&other.cache_key());
        assert_eq!(
            (vault_origin(&r.vault), r.name),
            ("https://o.vault.azure.net".into(), "db".into())
        );
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key("db-password").unwrap(), ("db-password", None));
        assert_eq!(
            parse_key("db-password/0123abcd").unwrap(),
            ("db-password", Some("0123abcd"))
        );
        assert_eq!(
            parse_key("vault:///db-password").unwrap(),
            ("db-password", None)
        );
        assert_eq!(parse_key(&"a".repeat(127)).unwrap().0.len(), 127);
        for bad in [
            "",
            "has space",
            "under_score",
            "dot.ted",
            "ü",
            "a/",
            "a/b/c",
            "a/ver-sion",
            "vault:///",
            &"a".repeat(128),
            "../x",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }
}
