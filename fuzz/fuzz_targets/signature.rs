//! CloudFront's signed URL and cookie verification (`signer::cloudfront::TrustedKeys`, which
//! the devserver's edge runs for every private request) and the policy parser.
//!
//! Input: a selector byte, 4 bytes of client IPv4 address, 4 bytes of clock, then
//! `{url}\0{cookie header}\0{policy JSON}`. Invariants: nothing panics; a verified request
//! names the trusted key and has not expired; a policy that parses prints (custom_json) to
//! text that parses back to the same policy; CloudFront base64 round-trips; a CIDR prints
//! to text that parses back to it; and (when the selector asks: RSA signing is slow) what
//! the signer signs for a URL under a parsed policy, the verifier accepts for that URL.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use signer::cloudfront::{parse_cookie_header, CloudFrontSigner, SignedRequest, TrustedKeys};
use signer::keys::{HashAlgorithm, SigningKey};
use signer::policy::{cf_base64, cf_base64_decode, Ipv4Cidr, Policy};

const KEY_ID: &str = "K2JCJMDEHXQW5F";
const BASE: &str = "https://cdn.example.com/";

static KEYS: LazyLock<(CloudFrontSigner, CloudFrontSigner, TrustedKeys)> = LazyLock::new(|| {
    let pem = include_bytes!("../../signer/tests/data/rsa2048-pkcs1.pem");
    let key = SigningKey::from_pem(pem).expect("the test key parses");
    let mut trusted = TrustedKeys::new();
    trusted.insert(KEY_ID, key.verifying_key().expect("a public key"));
    let sha1 = CloudFrontSigner::new(KEY_ID, key.clone(), HashAlgorithm::Sha1);
    let sha256 = CloudFrontSigner::new(KEY_ID, key, HashAlgorithm::Sha256);
    (sha1, sha256, trusted)
});

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let (head, rest) = data.split_at(9);
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let selector = head[0];
    let client_ip = IpAddr::V4(Ipv4Addr::new(head[1], head[2], head[3], head[4]));
    let now = u64::from(u32::from_le_bytes([head[5], head[6], head[7], head[8]]));
    let mut parts = text.splitn(3, '\0');
    let url = parts.next().unwrap_or_default();
    let cookie_header = parts.next();
    let policy_text = parts.next().unwrap_or_default();
    let (sha1, sha256, trusted) = &*KEYS;

    // The verifier on whatever arrived.
    let request = SignedRequest { url, cookie_header, client_ip, now };
    if let Ok(verified) = trusted.verify(&request) {
        assert_eq!(verified.key_pair_id, KEY_ID);
        assert!(now < verified.expires);
    }
    let _ = parse_cookie_header(cookie_header.unwrap_or(url));

    // Encodings and the policy's own parser.
    if let Some(bytes) = cf_base64_decode(url) {
        assert_eq!(cf_base64_decode(&cf_base64(&bytes)).as_deref(), Some(&bytes[..]));
    }
    if let Ok(cidr) = Ipv4Cidr::parse(url) {
        assert_eq!(Ipv4Cidr::parse(&cidr.to_string()), Ok(cidr));
    }
    let Ok(policy) = Policy::parse_json(policy_text.as_bytes()) else { return };
    let printed = policy.custom_json();
    assert_eq!(Policy::parse_json(printed.as_bytes()).as_ref(), Ok(&policy), "{printed}");
    if policy.is_canned() {
        let resource = policy.resource.as_deref().unwrap_or_default();
        let canned = Policy::canned_json(resource, policy.date_less_than);
        assert_eq!(Policy::parse_json(canned.as_bytes()).as_ref(), Ok(&policy), "{canned}");
    }

    // Sign, then verify: what the signer issues for a path the signer's API would sign (no
    // query: it signs paths only), the verifier accepts.
    if selector & 3 != 0 || url.contains(['?', '#']) {
        return;
    }
    let start = policy.date_greater_than.unwrap_or(0);
    if start >= policy.date_less_than {
        return;
    }
    let ip = match policy.ip_address {
        None => client_ip,
        Some(cidr) => {
            let text = cidr.to_string();
            let addr = text.split_once('/').map_or(text.as_str(), |(a, _)| a);
            IpAddr::V4(addr.parse().expect("a CIDR prints its address"))
        }
    };
    let signer = if selector & 4 == 0 { sha1 } else { sha256 };
    let url = format!("{BASE}{url}");
    if let Ok(signed) = signer.sign_url(&url, &policy) {
        let request =
            SignedRequest { url: &signed, cookie_header: None, client_ip: ip, now: start };
        let verified = trusted.verify(&request);
        assert!(verified.is_ok(), "{signed} under {policy:?}: {verified:?}");
    }
    if policy.resource.as_deref().is_some_and(|r| keyspace::wildcard_match(r, &url)) {
        let cookies = signer.sign_cookies(&policy).expect("cookies sign");
        let header =
            cookies.pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
        let request =
            SignedRequest { url: &url, cookie_header: Some(&header), client_ip: ip, now: start };
        let verified = trusted.verify(&request);
        assert!(verified.is_ok(), "cookies {header} for {url} under {policy:?}: {verified:?}");
    }
});
