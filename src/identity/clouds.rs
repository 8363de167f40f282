//! The Azure clouds: the authorities that issue their tokens and their Key Vault domains, and
//! whether an authority (configured, or named by a vault's challenge) belongs to one.

use super::*;

/// The Azure clouds: the authorities that issue their tokens, and their Key Vault domain.
pub struct Cloud {
    pub name: &'static str,
    pub authorities: &'static [&'static str],
    pub vault_suffix: &'static str,
}

pub const CLOUDS: &[Cloud] = &[
    Cloud {
        name: "public",
        authorities: &[
            "login.microsoftonline.com",
            "login.windows.net",
            "sts.windows.net",
        ],
        vault_suffix: "vault.azure.net",
    },
    Cloud {
        name: "China",
        authorities: &["login.chinacloudapi.cn", "login.partner.microsoftonline.cn"],
        vault_suffix: "vault.azure.cn",
    },
    Cloud {
        name: "US Government",
        authorities: &["login.microsoftonline.us", "login.usgovcloudapi.net"],
        vault_suffix: "vault.usgovcloudapi.net",
    },
];

/// The cloud an authority host belongs to.
pub fn cloud_of(host: &str) -> Option<&'static Cloud> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    CLOUDS
        .iter()
        .find(|c| c.authorities.contains(&host.as_str()))
}

/// Whether a Key Vault challenge's authority (`challenge_host`) belongs to the configured
/// cloud (`configured`: the authority host setting, else the public cloud). An authority
/// outside the known clouds (Azure Stack, a private cloud) must be the configured host itself;
/// a loopback authority (tests, local fakes, with allowInsecureLoopback) checks nothing.
pub fn authority_belongs(
    configured: Option<&str>,
    challenge_host: &str,
    loopback_ok: bool,
) -> Result<(), String> {
    let configured = configured.unwrap_or(AUTHORITY_DEFAULT);
    let Ok(url) = Url::parse(configured) else {
        return Err("the authority host setting is not a url".into());
    };
    if loopback_ok && crate::hosts::is_loopback(&url) {
        return Ok(());
    }
    // A plain-http loopback authority without allowInsecureLoopback: the identity refuses it
    // for what it is (`insecure_authority`), before any token is asked for, whatever the
    // challenge; no "not of the configured cloud" about the challenge.
    if insecure_authority(Some(configured), loopback_ok).is_some() {
        return Ok(());
    }
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let ok = match cloud_of(&host) {
        Some(cloud) => cloud.authorities.contains(&challenge_host),
        None => challenge_host == host,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the challenge's authority {challenge_host} is not of the configured cloud ({}; set authorityHost or AZURE_AUTHORITY_HOST for another cloud)",
            cloud_of(&host).map(|c| c.name).unwrap_or(host.as_str())
        ))
    }
}

/// Why the authority host setting cannot be used, when it is plain http to loopback without
/// `allowInsecureLoopback` (a fake's address left in the environment): every provider then
/// refuses, saying so, and nothing is sent anywhere.
pub fn insecure_authority(configured: Option<&str>, loopback_ok: bool) -> Option<String> {
    let url = Url::parse(configured?).ok()?;
    (url.scheme() == "http" && is_loopback(&url) && !loopback_ok).then(|| {
        format!(
            "the authority host (authorityHost or AZURE_AUTHORITY_HOST) {} is plain http: that needs allowInsecureLoopback (or COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK=1), for a local fake only; nothing was sent",
            url.origin().ascii_serialization()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_authorities_belong_to_the_configured_cloud() {
        assert!(authority_belongs(None, "login.microsoftonline.com", false).is_ok());
        assert!(authority_belongs(None, "login.windows.net", false).is_ok());
        assert!(authority_belongs(None, "login.chinacloudapi.cn", false).is_err());
        assert!(authority_belongs(None, "login.attacker.example", false).is_err());
        let china = Some("https://login.chinacloudapi.cn");
        assert!(authority_belongs(china, "login.chinacloudapi.cn", false).is_ok());
        assert!(authority_belongs(china, "login.microsoftonline.com", false).is_err());
        let gov = Some("https://login.microsoftonline.us/");
        assert!(authority_belongs(gov, "login.microsoftonline.us", false).is_ok());
        assert!(authority_belongs(gov, "login.microsoftonline.com", false).is_err());
        let stack = Some("https://adfs.local.azurestack.external/");
        assert!(authority_belongs(stack, "adfs.local.azurestack.external", false).is_ok());
        assert!(authority_belongs(stack, "login.microsoftonline.com", false).is_err());
        assert!(authority_belongs(
            Some("http://127.0.0.1:5000/"),
            "login.microsoftonline.com",
            true
        )
        .is_ok());
        // Plain http to loopback without the opt-in: the identity refuses it for what it is.
        assert!(authority_belongs(
            Some("http://127.0.0.1:5000/"),
            "login.microsoftonline.com",
            false
        )
        .is_ok());
        let none = provider_from(&IdentitySettings {
            choice: "auto".into(),
            authority_host: Some("http://127.0.0.1:5000/".into()),
            ..Default::default()
        });
        assert!(none
            .describe()
            .contains("is plain http: that needs allowInsecureLoopback"));
        assert!(authority_belongs(
            Some("http://login.example.com/"),
            "login.microsoftonline.com",
            false
        )
        .is_err());
    }
}
