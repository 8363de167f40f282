//! Service Fabric managed identity: `IDENTITY_ENDPOINT` (https, on the node), `IDENTITY_HEADER`
//! sent as `secret`, and `IDENTITY_SERVER_THUMBPRINT`: the endpoint's certificate is
//! self-signed, so it is trusted only if its SHA-1 thumbprint is that one (and never otherwise;
//! no CA, no name check). The secret header goes nowhere else: the TLS handshake fails first.

use super::*;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct PinnedThumbprint {
    sha1: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedThumbprint {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, end_entity.as_ref());
        if d.as_ref() == self.sha1.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub struct ServiceFabric {
    pub endpoint: Url,
    pub header: SecretString,
    pub client_id: Option<String>,
    client: Result<reqwest::Client, String>,
}

impl ServiceFabric {
    pub fn new(
        endpoint: Url,
        header: SecretString,
        thumbprint: &str,
        client_id: Option<String>,
    ) -> Result<Self, String> {
        let hex: String = thumbprint
            .chars()
            .filter(|c| !matches!(c, ':' | ' '))
            .collect();
        if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(
                "IDENTITY_SERVER_THUMBPRINT is not a SHA-1 thumbprint (40 hex digits)".into(),
            );
        }
        let sha1 = (0..20)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| "IDENTITY_SERVER_THUMBPRINT is not hex".to_owned())?;
        if endpoint.scheme() != "https" {
            return Err("IDENTITY_ENDPOINT of Service Fabric must be https".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|_| "no TLS protocol version for Service Fabric".to_owned())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedThumbprint { sha1, provider }))
            .with_no_client_auth();
        Ok(ServiceFabric {
            endpoint,
            header,
            client_id,
            client: crate::http::build_client(Some(config)),
        })
    }
}

impl Provider for ServiceFabric {
    fn describe(&self) -> String {
        format!("service-fabric managed identity (IDENTITY_ENDPOINT {}, certificate pinned by IDENTITY_SERVER_THUMBPRINT)", self.endpoint)
    }

    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        _tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move {
            let client = self
                .client
                .as_ref()
                .map_err(|m| fail(format!("Service Fabric identity: {m}")))?;
            let mut url = self.endpoint.clone();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("api-version", "2019-07-01-preview");
                q.append_pair("resource", resource);
                if let Some(id) = &self.client_id {
                    q.append_pair("client_id", id);
                }
            }
            let mut call = Call::get(url);
            call.secret_headers.push(("secret", &self.header));
            token_request_via(
                http,
                Some(client),
                call,
                deadline,
                "the Service Fabric identity endpoint",
            )
            .await
        })
    }
}
