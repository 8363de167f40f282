//! Which tenant a token is asked for, as the Azure SDKs decide it (`processMultiTenantRequest`):
//! a configured tenant (`tenantId` / AZURE_TENANT_ID) is the one used; a Key Vault challenge
//! naming another is refused unless `additionallyAllowedTenants` (or
//! AZURE_ADDITIONALLY_ALLOWED_TENANTS) allows it (`*`: any). With no tenant configured, a
//! challenge's tenant is used only when it is a well-formed tenant id or domain name.

use super::*;

/// A tenant id (a GUID) or a domain name: `[0-9a-zA-Z.-]+`, not starting with `-` (so it can
/// never be taken for an option of `az` or `azd`), at most 256 characters.
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 256
        && !t.starts_with('-')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The tenant policy of one manager.
#[derive(Debug, Default, Clone)]
pub struct Tenants {
    pub configured: Option<String>,
    pub additionally_allowed: Vec<String>,
}

impl Tenants {
    /// The tenant to ask a token for, given the one a challenge names (if any).
    pub fn resolve(&self, challenge: Option<&str>) -> Result<Option<String>, String> {
        let shown = |t: &str| {
            if valid_tenant(t) {
                format!("'{t}'")
            } else {
                "a malformed tenant".to_owned()
            }
        };
        let Some(configured) = self.configured.as_deref() else {
            return match challenge {
                None => Ok(None),
                Some(t) if valid_tenant(t) => Ok(Some(t.to_owned())),
                Some(t) => Err(format!(
                    "the vault's challenge names {}, which is not a tenant id or domain name; no token was requested",
                    shown(t)
                )),
            };
        };
        if !valid_tenant(configured) {
            return Err(format!(
                "the configured tenant (tenantId or AZURE_TENANT_ID) {} is not a tenant id or domain name",
                shown(configured)
            ));
        }
        let Some(asked) = challenge else {
            return Ok(Some(configured.to_owned()));
        };
        // Azure Stack's ADFS has no tenants: the challenge's is not used (as the SDKs do).
        if asked.eq_ignore_ascii_case(configured) || configured.eq_ignore_ascii_case("adfs") {
            return Ok(Some(configured.to_owned()));
        }
        let allowed = valid_tenant(asked)
            && self
                .additionally_allowed
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(asked));
        if allowed {
            return Ok(Some(asked.to_owned()));
        }
        Err(format!(
            "the vault's challenge names tenant {}, but tenant '{configured}' is configured (tenantId or AZURE_TENANT_ID); \
             to allow it, add it to the additionallyAllowedTenants option (or AZURE_ADDITIONALLY_ALLOWED_TENANTS, \
             comma-separated), or '*' for any tenant; no token was requested",
            shown(asked)
        ))
    }
}

/// A provider behind the tenant policy: it is asked only for the tenant `Tenants` resolves.
pub struct TenantGate {
    pub inner: Box<dyn Provider>,
    pub tenants: Tenants,
    /// The credentials given at construction, scrubbed from messages while the provider lives.
    pub held: Vec<Scrubbed>,
}

impl Provider for TenantGate {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move {
            let resolved = self.tenants.resolve(tenant).map_err(fail)?;
            self.inner
                .fetch(http, resource, resolved.as_deref(), deadline)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(configured: Option<&str>, allowed: &[&str]) -> Tenants {
        Tenants {
            configured: configured.map(str::to_owned),
            additionally_allowed: allowed.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_configured_tenant_is_the_one_used() {
        let mine = t(Some("my-tenant"), &[]);
        assert_eq!(mine.resolve(None).unwrap().as_deref(), Some("my-tenant"));
        assert_eq!(
            mine.resolve(Some("MY-TENANT")).unwrap().as_deref(),
            Some("my-tenant")
        );
        let e = mine.resolve(Some("attacker-tenant")).unwrap_err();
        assert!(
            e.contains("'attacker-tenant'")
                && e.contains("'my-tenant'")
                && e.contains("additionallyAllowedTenants")
                && e.contains("AZURE_ADDITIONALLY_ALLOWED_TENANTS"),
            "{e}"
        );
        let some = t(Some("my-tenant"), &["other-tenant"]);
        assert_eq!(
            some.resolve(Some("Other-Tenant")).unwrap().as_deref(),
            Some("Other-Tenant")
        );
        assert!(some.resolve(Some("third")).is_err());
        let any = t(Some("my-tenant"), &["*"]);
        assert_eq!(
            any.resolve(Some("x.example")).unwrap().as_deref(),
            Some("x.example")
        );
        assert!(
            any.resolve(Some("--debug")).is_err(),
            "'*' allows tenants, not arguments"
        );
        assert_eq!(
            t(Some("adfs"), &[]).resolve(Some("x")).unwrap().as_deref(),
            Some("adfs")
        );
        assert!(t(Some("--tenant"), &[]).resolve(None).is_err());
    }

    #[test]
    fn with_no_tenant_configured_only_a_well_formed_challenge_tenant_is_used() {
        let none = t(None, &[]);
        assert_eq!(none.resolve(None).unwrap(), None);
        for ok in [
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "contoso.onmicrosoft.com",
        ] {
            assert_eq!(none.resolve(Some(ok)).unwrap().as_deref(), Some(ok));
        }
        for bad in ["--debug", "-x", "", "a b", "a/b", "a_b", "ten%41nt", "a;b"] {
            let e = none.resolve(Some(bad)).unwrap_err();
            assert!(!e.contains(bad) || bad.is_empty(), "{e}");
        }
    }
}
