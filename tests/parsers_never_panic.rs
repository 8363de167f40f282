//! Property tests: the parsers of untrusted input (secrets.json, token replies, OData and
//! Retail Server error bodies, Key Vault replies and challenges, keys, urls) never panic,
//! whatever they are given.
use commerce_secret_manager::identity::parse_token_reply;
use commerce_secret_manager::secret::{Secret, SecretString};
use commerce_secret_manager::source::challenge::{parse_challenge, resource_belongs};
use commerce_secret_manager::source::local::parse_secrets_file;
use commerce_secret_manager::source::reference::{parse_key, parse_reference};
use commerce_secret_manager::source::retail_server::{error_details, secret_url, version_problem};
use proptest::prelude::*;

/// Bytes that look like JSON often enough to reach deep into the parsers.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(
            prop::sample::select(b"{}[]\",:\\ \n01-.eEtrufalsn\xEF\xBB\xBFvalue@odata.contextErrorResourceIdLocalizedMessageexpires_onaccess_token".to_vec()),
            0..300
        ),
        any::<String>().prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn secrets_file_parser(bytes in jsonish()) {
        let _ = parse_secrets_file(&bytes);
    }

    #[test]
    fn token_reply_parser(bytes in jsonish(), now in any::<f64>()) {
        let _ = parse_token_reply(&bytes, now);
    }

    #[test]
    fn retail_server_parsers(bytes in jsonish(), base in any::<String>(), key in any::<String>(), version in any::<String>()) {
        let _ = error_details(&bytes);
        let _ = secret_url(&base, &key);
        let _ = secret_url("https://scu1.commerce.dynamics.com/", &key);
        let _ = version_problem(Some(&version));
    }

    #[test]
    fn key_vault_parsers(header in any::<String>(), key in any::<String>(), resource in any::<String>()) {
        let _ = parse_challenge(&header);
        let _ = parse_challenge(&format!("Bearer authorization=\"{header}\", resource=\"{resource}\""));
        let _ = parse_key(&key);
        let _ = parse_reference(&key, "vault.azure.net");
        let _ = parse_reference(&format!("@Microsoft.KeyVault({header})"), "vault.azure.net");
        let vault = url::Url::parse("https://myvault.vault.azure.net").unwrap();
        let _ = resource_belongs(&vault, &resource, true);
        let _ = resource_belongs(&vault, &resource, false);
    }

    #[test]
    fn an_accepted_challenge_always_names_a_tenant_and_a_url(header in any::<String>()) {
        if let Some(c) = parse_challenge(&header) {
            prop_assert!(!c.tenant.is_empty());
            prop_assert!(url::Url::parse(&c.resource).is_ok());
        }
    }

    #[test]
    fn a_secret_never_shows_in_debug(value in "[A-Za-z0-9]{8,40}") {
        let s = Secret::new(value.clone());
        let shown = format!("{s:?} {:?} {:#?}", s.value, s);
        prop_assert!(!shown.contains(&value));
    }
}

#[test]
fn a_panic_message_built_from_a_secret_shows_no_value() {
    let secret = Secret {
        value: SecretString::new("SENTINEL-PANIC".into()),
        id: None,
        expires_at: None,
    };
    let caught = std::panic::catch_unwind(|| panic!("while handling {secret:?}"));
    let payload = caught.unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("<redacted>"), "{message}");
    assert!(!message.contains("SENTINEL"), "{message}");
}
