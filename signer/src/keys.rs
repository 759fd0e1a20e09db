//! CloudFront key material: the private key that signs (RSA-2048 or ECDSA P-256, PEM in
//! PKCS#1, PKCS#8 or SEC1 form), the public keys that verify, and the hash algorithm.

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};

/// The digest signed under the key: SHA-1 is CloudFront's default and accepted by every
/// distribution; SHA-256 is announced with `Hash-Algorithm=SHA256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgorithm {
    /// SHA-1 (the default; nothing is added to the URL or cookies).
    #[default]
    Sha1,
    /// SHA-256.
    Sha256,
}

impl HashAlgorithm {
    /// Parses `SHA1` or `SHA256` (CloudFront's spelling, case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// The name CloudFront uses in `Hash-Algorithm` and `CloudFront-Hash-Algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub(crate) fn digest(self) -> MessageDigest {
        match self {
            Self::Sha1 => MessageDigest::sha1(),
            Self::Sha256 => MessageDigest::sha256(),
        }
    }
}

/// Why key material was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a PEM private or public key OpenSSL can read.
    #[error("not a PEM key (PKCS#1, PKCS#8, SEC1 or SubjectPublicKeyInfo): {0}")]
    Pem(String),
    /// A key of a type or size CloudFront does not accept.
    #[error("CloudFront accepts RSA-2048 and ECDSA P-256 keys; this is {0}")]
    Unsupported(String),
    /// The signing operation itself failed (OpenSSL error).
    #[error("signing failed: {0}")]
    Sign(String),
}

fn check_kind<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> Result<(), KeyError> {
    match key.id() {
        Id::RSA if key.bits() == 2048 => Ok(()),
        Id::RSA => Err(KeyError::Unsupported(format!("RSA-{}", key.bits()))),
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|ec| ec.group().curve_name());
            if curve == Some(Nid::X9_62_PRIME256V1) {
                Ok(())
            } else {
                Err(KeyError::Unsupported(format!("an EC key on {curve:?}")))
            }
        }
        other => Err(KeyError::Unsupported(format!("{other:?}"))),
    }
}

/// A private key that signs CloudFront policies. Parsed once; signing reuses it.
#[derive(Clone)]
pub struct SigningKey {
    key: PKey<Private>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, even in debug logs.
        write!(f, "SigningKey({:?}, {} bits)", self.key.id(), self.key.bits())
    }
}

impl SigningKey {
    /// Reads a PEM private key: `RSA PRIVATE KEY` (PKCS#1), `PRIVATE KEY` (PKCS#8) or
    /// `EC PRIVATE KEY` (SEC1). Encrypted keys are refused.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        if pem.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err(KeyError::Pem("encrypted keys are not supported".into()));
        }
        let key = PKey::private_key_from_pem(pem).map_err(|e| KeyError::Pem(first_error(&e)))?;
        check_kind(&key)?;
        Ok(Self { key })
    }

    /// Signs `message` (the policy text): PKCS#1 v1.5 for RSA, DER-encoded ECDSA for EC,
    /// as CloudFront verifies them.
    pub fn sign(&self, message: &[u8], hash: HashAlgorithm) -> Result<Vec<u8>, KeyError> {
        let mut signer = openssl::sign::Signer::new(hash.digest(), &self.key)
            .map_err(|e| KeyError::Sign(first_error(&e)))?;
        signer.sign_oneshot_to_vec(message).map_err(|e| KeyError::Sign(first_error(&e)))
    }

    /// The matching public key, PEM (SubjectPublicKeyInfo), as uploaded to CloudFront.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        let der = self.key.public_key_to_pem().map_err(|e| KeyError::Pem(first_error(&e)))?;
        Ok(String::from_utf8_lossy(&der).into_owned())
    }

    /// The matching public key, for verification.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_pem(self.public_key_pem()?.as_bytes())
    }
}

/// A public key that verifies CloudFront signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    key: PKey<Public>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({:?}, {} bits)", self.key.id(), self.key.bits())
    }
}

impl VerifyingKey {
    /// Reads a PEM public key (`PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key = match PKey::public_key_from_pem(pem) {
            Ok(key) => key,
            Err(first) => openssl::rsa::Rsa::public_key_from_pem_pkcs1(pem)
                .and_then(PKey::from_rsa)
                .map_err(|_| KeyError::Pem(first_error(&first)))?,
        };
        check_kind(&key)?;
        Ok(Self { key })
    }

    /// Whether `signature` is a valid signature of `message` under this key.
    pub fn verify(&self, message: &[u8], signature: &[u8], hash: HashAlgorithm) -> bool {
        openssl::sign::Verifier::new(hash.digest(), &self.key)
            .and_then(|mut v| v.verify_oneshot(signature, message))
            .unwrap_or(false)
    }
}

fn first_error(stack: &openssl::error::ErrorStack) -> String {
    stack
        .errors()
        .first()
        .map(|e| e.reason().unwrap_or("unknown reason").to_owned())
        .unwrap_or_else(|| stack.to_string())
}
