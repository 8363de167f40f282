//! Which provider the settings choose: an explicit `identity`, or `auto` in
//! DefaultAzureCredential's order (environment credential, workload identity, managed
//! identity, Azure CLI, Azure Developer CLI).

use super::*;

/// What the environment and options say about identity.
#[derive(Debug, Default)]
pub struct IdentitySettings {
    pub choice: String,
    pub identity_endpoint: Option<String>,
    pub identity_header: Option<SecretString>,
    pub user_assigned_client_id: Option<String>,
    pub msi_endpoint: Option<String>,
    pub msi_secret: Option<SecretString>,
    /// Azure Arc sets it beside IDENTITY_ENDPOINT.
    pub imds_endpoint: Option<String>,
    /// Service Fabric sets it beside IDENTITY_ENDPOINT and IDENTITY_HEADER.
    pub identity_server_thumbprint: Option<String>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    /// Tenants a vault's challenge may name besides `tenant_id` (`*`: any).
    pub additionally_allowed_tenants: Vec<String>,
    pub client_secret: Option<SecretString>,
    pub client_certificate_path: Option<String>,
    pub federated_token_file: Option<String>,
    /// The authority (the `authorityHost` option, else AZURE_AUTHORITY_HOST), if set.
    pub authority_host: Option<String>,
    pub pod_identity_host: Option<String>,
    /// The PATH of the manager's environment (the developer CLIs are looked for on it).
    pub path: Option<String>,
    pub allow_insecure_loopback: bool,
}

/// Every `identity` value api.md names.
pub const IDENTITY_KINDS: &[&str] = &[
    "auto",
    "app-service",
    "imds",
    "client-secret",
    "client-certificate",
    "workload-identity",
    "azure-cli",
    "azure-developer-cli",
];

type Built = Result<Box<dyn Provider>, String>;

/// The managed identity this environment offers, as DefaultAzureCredential looks for it:
/// App Service (or Service Fabric), Azure Arc, Cloud Shell, legacy App Service, else IMDS.
fn managed_identity(s: &IdentitySettings) -> Built {
    let parse = |u: &str, what: &str| Url::parse(u).map_err(|_| format!("{what} is not a url"));
    let client_id = || {
        s.user_assigned_client_id
            .clone()
            .or_else(|| s.client_id.clone())
    };
    if let Some(ep) = &s.identity_endpoint {
        if let Some(h) = &s.identity_header {
            if let Some(thumbprint) = &s.identity_server_thumbprint {
                return Ok(Box::new(ServiceFabric::new(
                    parse(ep, "IDENTITY_ENDPOINT")?,
                    SecretString::new(h.expose().to_owned()),
                    thumbprint,
                    client_id(),
                )?));
            }
            return Ok(Box::new(AppService {
                endpoint: parse(ep, "IDENTITY_ENDPOINT")?,
                header: SecretString::new(h.expose().to_owned()),
                client_id: client_id(),
                legacy: false,
            }));
        }
        if s.imds_endpoint.is_some() {
            return Ok(Box::new(AzureArc {
                endpoint: parse(ep, "IDENTITY_ENDPOINT")?,
                token_dir: arc_token_dir(),
                key: Mutex::new(None),
            }));
        }
    }
    if let Some(ep) = &s.msi_endpoint {
        return Ok(match &s.msi_secret {
            Some(secret) => Box::new(AppService {
                endpoint: parse(ep, "MSI_ENDPOINT")?,
                header: SecretString::new(secret.expose().to_owned()),
                client_id: client_id(),
                legacy: true,
            }),
            None => Box::new(CloudShell {
                endpoint: parse(ep, "MSI_ENDPOINT")?,
            }),
        });
    }
    Ok(Box::new(Imds::new(
        parse(
            s.pod_identity_host.as_deref().unwrap_or(IMDS_DEFAULT),
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        )?,
        s.client_id.clone(),
    )))
}

/// The provider `identity` names; `auto`: DefaultAzureCredential's order (api.md).
pub fn provider_from(s: &IdentitySettings) -> Box<dyn Provider> {
    // What may be sent is known now: scrubbed from any upstream text that echoes it, for as
    // long as the provider lives (the manager's life).
    let scrubbed: Vec<Scrubbed> = [&s.identity_header, &s.msi_secret, &s.client_secret]
        .into_iter()
        .flatten()
        .map(|c| Scrubbed::new(c.expose()))
        .collect();
    let authority = || -> Result<Url, String> {
        let a = s.authority_host.as_deref().unwrap_or(AUTHORITY_DEFAULT);
        let mut u = Url::parse(a).map_err(|_| {
            "the authority host (authorityHost or AZURE_AUTHORITY_HOST) is not a url".to_owned()
        })?;
        if !u.path().ends_with('/') {
            let p = format!("{}/", u.path());
            u.set_path(&p);
        }
        Ok(u)
    };
    let needs_client = |what: &str| format!("{what}: clientId (or AZURE_CLIENT_ID) is not set");
    let client_secret = || -> Built {
        match (&s.client_id, &s.client_secret) {
            (Some(id), Some(secret)) => Ok(Box::new(ClientSecret {
                authority: authority()?,
                tenant: s.tenant_id.clone(),
                client_id: id.clone(),
                secret: SecretString::new(secret.expose().to_owned()),
                allow_insecure_loopback: s.allow_insecure_loopback,
            })),
            _ => Err("client-secret identity: clientId and clientSecret (or AZURE_CLIENT_ID and AZURE_CLIENT_SECRET) are not set".into()),
        }
    };
    let client_certificate = || -> Built {
        let path = s.client_certificate_path.as_deref().ok_or("client-certificate identity: clientCertificatePath (or AZURE_CLIENT_CERTIFICATE_PATH) is not set")?;
        let id = s
            .client_id
            .clone()
            .ok_or_else(|| needs_client("client-certificate identity"))?;
        Ok(Box::new(ClientCertificate::load(
            authority()?,
            s.tenant_id.clone(),
            id,
            path.into(),
            s.allow_insecure_loopback,
        )?))
    };
    let workload_identity = || -> Built {
        let file = s.federated_token_file.as_deref().ok_or(
            "workload-identity: federatedTokenFile (or AZURE_FEDERATED_TOKEN_FILE) is not set",
        )?;
        let id = s
            .client_id
            .clone()
            .ok_or_else(|| needs_client("workload-identity"))?;
        Ok(Box::new(WorkloadIdentity {
            authority: authority()?,
            tenant: s.tenant_id.clone(),
            client_id: id,
            token_file: file.into(),
            allow_insecure_loopback: s.allow_insecure_loopback,
        }))
    };
    let cli = |kind: &'static str| -> Built {
        Ok(Box::new(DeveloperCli {
            kind,
            path: s.path.clone(),
            tenant: s.tenant_id.clone(),
        }))
    };
    let chosen: Built = match s.choice.as_str() {
        "app-service" => managed_identity(s).and_then(|p| {
            if p.describe().starts_with("app-service") { Ok(p) } else {
                Err("app-service identity: IDENTITY_ENDPOINT and IDENTITY_HEADER (or MSI_ENDPOINT and MSI_SECRET) are not set".into())
            }
        }),
        "imds" => Url::parse(s.pod_identity_host.as_deref().unwrap_or(IMDS_DEFAULT))
            .map_err(|_| "AZURE_POD_IDENTITY_AUTHORITY_HOST is not a url".to_owned())
            .map(|base| Box::new(Imds::new(base, s.client_id.clone())) as Box<dyn Provider>),
        "client-secret" => client_secret(),
        "client-certificate" => client_certificate(),
        "workload-identity" => workload_identity(),
        "azure-cli" => cli("azure-cli"),
        "azure-developer-cli" => cli("azure-developer-cli"),
        _ => {
            // DefaultAzureCredential's order; a credential the environment does not set up is
            // left out, with why (for doctor).
            let mut links: Vec<Box<dyn Provider>> = Vec::new();
            let mut skipped: Vec<String> = Vec::new();
            let env_credential = if s.client_secret.is_some() { client_secret() } else if s.client_certificate_path.is_some() { client_certificate() } else {
                Err("environment: neither a client secret nor a certificate is set".into())
            };
            for built in [env_credential, workload_identity(), managed_identity(s), cli("azure-cli"), cli("azure-developer-cli")] {
                match built {
                    Ok(p) => links.push(p),
                    Err(why) => skipped.push(why),
                }
            }
            Ok(Box::new(Chain::new(links, skipped)))
        }
    };
    let chosen = match insecure_authority(s.authority_host.as_deref(), s.allow_insecure_loopback) {
        Some(why) => Err(why),
        None => chosen,
    };
    let provider = chosen.unwrap_or_else(|why| Box::new(Unavailable(why)));
    // Every provider is asked only for the tenant the policy resolves (tenants.rs).
    Box::new(TenantGate {
        inner: provider,
        tenants: Tenants {
            configured: s.tenant_id.clone(),
            additionally_allowed: s.additionally_allowed_tenants.clone(),
        },
        held: scrubbed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_default_azure_credentials_order() {
        let mut s = IdentitySettings {
            choice: "auto".into(),
            path: Some("/nonexistent".into()),
            ..Default::default()
        };
        let order = |s: &IdentitySettings| provider_from(s).describe();
        let d = order(&s);
        assert!(d.starts_with("imds"), "{d}");
        assert!(
            d.contains("→ azure-cli") && d.contains("→ azure-developer-cli"),
            "{d}"
        );
        s.identity_endpoint = Some("http://127.0.0.1:41741/msi/token/".into());
        s.identity_header = Some(SecretString::new("h".into()));
        assert!(
            order(&s).starts_with("app-service (IDENTITY_ENDPOINT"),
            "{}",
            order(&s)
        );
        s.client_id = Some("c".into());
        s.federated_token_file = Some("/var/run/token".into());
        assert!(order(&s).starts_with("workload-identity"), "{}", order(&s));
        s.client_secret = Some(SecretString::new("sentinel-secret".into()));
        let d = order(&s);
        assert!(d.starts_with("client-secret"), "{d}");
        let chain = &d[d.find("the first of the chain").unwrap()..];
        let positions: Vec<usize> = [
            "client-secret",
            "workload-identity",
            "app-service",
            "azure-cli",
            "azure-developer-cli",
        ]
        .iter()
        .map(|k| chain.find(k).unwrap())
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{d}");
        // Explicit choices.
        s.choice = "imds".into();
        assert!(provider_from(&s).describe().starts_with("imds"));
        s.choice = "azure-cli".into();
        assert!(provider_from(&s).describe().starts_with("azure-cli"));
        let none = IdentitySettings {
            choice: "app-service".into(),
            ..Default::default()
        };
        assert!(provider_from(&none).describe().starts_with("none"));
        assert!(!format!("{:?}", s).contains("sentinel"));
        // Other managed identities.
        let arc = IdentitySettings {
            choice: "auto".into(),
            identity_endpoint: Some("http://localhost:40342/metadata/identity/oauth2/token".into()),
            imds_endpoint: Some("http://localhost:40342".into()),
            ..Default::default()
        };
        assert!(order(&arc).contains("azure-arc"), "{}", order(&arc));
        let shell = IdentitySettings {
            choice: "auto".into(),
            msi_endpoint: Some("http://localhost:50342/oauth2/token".into()),
            ..Default::default()
        };
        assert!(order(&shell).contains("cloud-shell"), "{}", order(&shell));
    }
}
