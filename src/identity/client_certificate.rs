//! A service principal with a certificate: a client assertion (a JWT signed RS256 with the
//! certificate's private key, `x5t` = the certificate's SHA-1 thumbprint) sent to AAD v2.
//! The PEM file holds the certificate and its RSA private key (PKCS#8 or PKCS#1); it is read
//! once, when the manager is made.

use super::client_secret::aad_client_credentials;
use super::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

pub struct ClientCertificate {
    pub authority: Url,
    pub tenant: Option<String>,
    pub client_id: String,
    pub path: std::path::PathBuf,
    key: RsaKeyPair,
    /// base64url of the SHA-1 of the certificate (DER).
    x5t: String,
    pub allow_insecure_loopback: bool,
}

/// The base64 bodies of the PEM blocks with this label.
fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(&begin) {
        let after = &rest[b + begin.len()..];
        let Some(e) = after.find(&end) else { break };
        let body: String = after[..e].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = STANDARD.decode(body.as_bytes()) {
            out.push(der);
        }
        rest = &after[e + end.len()..];
    }
    out
}

/// The largest certificate file read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;
/// The DER of the EC public key algorithm OID (1.2.840.10045.2.1), as a PKCS#8 EC key holds it.
const EC_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

fn looks_like_pfx(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("pfx") || e.eq_ignore_ascii_case("p12"))
}

impl ClientCertificate {
    pub fn load(
        authority: Url,
        tenant: Option<String>,
        client_id: String,
        path: std::path::PathBuf,
        allow_insecure_loopback: bool,
    ) -> Result<Self, String> {
        let shown = path.display().to_string();
        let mut bytes = super::files::read_small_regular(&path, MAX_PEM_BYTES)
            .map_err(|why| format!("client-certificate: {why}"))?;
        let pem = std::str::from_utf8(&bytes)
            .ok()
            .filter(|t| t.contains("-----BEGIN "));
        let Some(text) = pem else {
            let der = bytes.first() == Some(&0x30);
            zeroize::Zeroize::zeroize(&mut bytes);
            return Err(if der || looks_like_pfx(&path) {
                format!("client-certificate: {shown} looks like a PFX/PKCS#12 (or DER) file, and a PEM is needed: convert it to PEM with `openssl pkcs12 -in cert.pfx -out cert.pem -nodes`")
            } else {
                format!("client-certificate: {shown} is not a PEM file (no -----BEGIN block)")
            });
        };
        let certs = pem_blocks(text, "CERTIFICATE");
        let mut keys = pem_blocks(text, "PRIVATE KEY");
        let mut rsa_keys = pem_blocks(text, "RSA PRIVATE KEY");
        let encrypted = text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || text.contains("Proc-Type: 4,ENCRYPTED");
        let ec = text.contains("-----BEGIN EC PRIVATE KEY-----");
        zeroize::Zeroize::zeroize(&mut bytes);
        let wipe = |keys: &mut Vec<Vec<u8>>, rsa: &mut Vec<Vec<u8>>| {
            for k in keys.iter_mut().chain(rsa.iter_mut()) {
                zeroize::Zeroize::zeroize(k);
            }
        };
        if encrypted {
            wipe(&mut keys, &mut rsa_keys);
            return Err(format!(
                "client-certificate: the private key in {shown} is encrypted, which is not supported: decrypt it with `openssl pkey -in key.pem -out plain.pem` and use a PEM with the certificate and the plain key"
            ));
        }
        let Some(cert) = certs.first() else {
            wipe(&mut keys, &mut rsa_keys);
            return Err(format!(
                "client-certificate: {shown} holds no CERTIFICATE block"
            ));
        };
        let key = if let Some(k) = keys.first() {
            RsaKeyPair::from_pkcs8(k).map_err(|_| k.windows(EC_OID.len()).any(|w| w == EC_OID))
        } else if let Some(k) = rsa_keys.first() {
            RsaKeyPair::from_der(k).map_err(|_| false)
        } else {
            return Err(if ec {
                format!("client-certificate: the private key in {shown} is an EC key: only RSA keys are supported (make the certificate with an RSA key, e.g. `openssl req -x509 -newkey rsa:2048 …`)")
            } else {
                format!("client-certificate: {shown} holds no PRIVATE KEY or RSA PRIVATE KEY block")
            });
        };
        let key = match key {
            Ok(k) => k,
            Err(is_ec) => {
                wipe(&mut keys, &mut rsa_keys);
                return Err(if is_ec {
                    format!("client-certificate: the private key in {shown} is an EC key: only RSA keys are supported (make the certificate with an RSA key, e.g. `openssl req -x509 -newkey rsa:2048 …`)")
                } else {
                    format!("client-certificate: the private key in {shown} is not an RSA key this can sign with (only RSA keys are supported)")
                });
            }
        };
        for k in keys.iter_mut().chain(rsa_keys.iter_mut()) {
            zeroize::Zeroize::zeroize(k);
        }
        let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert);
        Ok(ClientCertificate {
            authority,
            tenant,
            client_id,
            path,
            key,
            x5t: URL_SAFE_NO_PAD.encode(thumbprint.as_ref()),
            allow_insecure_loopback,
        })
    }

    /// The signed client assertion for a token request to `audience`.
    fn assertion(&self, audience: &str) -> Result<String, SecretError> {
        let now = SystemClock.now().floor() as i64;
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti)
            .map_err(|_| fail("client-certificate: no randomness for the assertion id".into()))?;
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5t": self.x5t });
        let claims = serde_json::json!({
            "aud": audience, "iss": self.client_id, "sub": self.client_id,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "nbf": now, "iat": now, "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| fail("client-certificate: the assertion could not be signed".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(&signature)
        ))
    }
}

impl Provider for ClientCertificate {
    fn describe(&self) -> String {
        format!(
            "client-certificate (client {}, {} at {})",
            self.client_id,
            self.path.display(),
            self.authority
        )
    }

    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move {
            aad_client_credentials(
                http,
                "client-certificate",
                &self.authority,
                tenant.or(self.tenant.as_deref()),
                &self.client_id,
                |audience| {
                    let mut assertion = self.assertion(audience)?;
                    let scrubbed = Scrubbed::new(&assertion);
                    let credential = super::client_secret::assertion_credential(&assertion);
                    zeroize::Zeroize::zeroize(&mut assertion);
                    Ok((credential, scrubbed))
                },
                resource,
                deadline,
                self.allow_insecure_loopback,
            )
            .await
        })
    }
}
