//! Who is calling and what they may sign. The identity comes from the claims API
//! Gateway's JWT authorizer validated and placed in `requestContext.authorizer.jwt.claims`;
//! this module never sees a token.
//!
//! Grants:
//! - every user owns `uploads/{user}/`: they may upload there, and sign URLs and presigned
//!   downloads for anything under it (originals and every size);
//! - a user may open the galleries their gallery claim lists: `private/galleries/{id}/`,
//!   by signed cookies for the whole gallery or a signed URL for one image.

use std::collections::HashMap;

use openssl::sha::sha256;

pub use keyspace::private::{GALLERY_PREFIX, UPLOAD_PREFIX};

/// The caller, from validated JWT claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim.
    pub subject: String,
    /// The user's key segment: `sub` itself when it is a safe path segment, otherwise `~`
    /// and the first 16 bytes of its SHA-256 in hex (stable, never a path trick, and never
    /// equal to a plain segment, which cannot contain `~`).
    pub segment: String,
    /// Gallery ids the gallery claim grants.
    pub galleries: Vec<String>,
}

/// Why the claims do not identify anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No claims, or no `sub`.
    #[error("no authenticated identity (no JWT claims with a sub)")]
    Missing,
}

fn is_safe_segment(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `id` is a valid gallery id: 1-64 of `A-Z a-z 0-9 - _`.
pub fn is_gallery_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a claim value into its items. API Gateway's JWT authorizer flattens an array
/// claim to `[a b c]`; a plain string may list items separated by spaces or commas.
pub fn claim_items(value: &str) -> Vec<String> {
    let inner = value.trim();
    let inner = inner.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(inner);
    inner
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|item| item.trim_matches('"'))
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Identity {
    /// Reads the identity from JWT claims; `gallery_claim` names the claim listing
    /// galleries. Unknown or malformed gallery ids are ignored.
    pub fn from_claims(
        claims: &HashMap<String, String>,
        gallery_claim: &str,
    ) -> Result<Self, IdentityError> {
        let subject = claims.get("sub").filter(|s| !s.is_empty()).ok_or(IdentityError::Missing)?;
        let segment = if is_safe_segment(subject) {
            subject.clone()
        } else {
            format!("~{}", hex::encode(&sha256(subject.as_bytes())[..16]))
        };
        let mut galleries: Vec<String> = claims
            .get(gallery_claim)
            .map(|v| claim_items(v))
            .unwrap_or_default()
            .into_iter()
            .filter(|g| is_gallery_id(g))
            .collect();
        galleries.sort();
        galleries.dedup();
        Ok(Self { subject: subject.clone(), segment, galleries })
    }

    /// The prefix this user uploads under.
    pub fn upload_prefix(&self) -> String {
        format!("{UPLOAD_PREFIX}{}/", self.segment)
    }

    /// Whether this user may read `key` (an original key, no size prefix): their own
    /// uploads, or an image of a gallery they were granted.
    pub fn may_read(&self, key: &str) -> bool {
        if key.split('/').any(|s| s == ".." || s == "." || s.is_empty()) {
            return false;
        }
        if key.starts_with(&self.upload_prefix()) {
            return true;
        }
        key.strip_prefix(GALLERY_PREFIX).and_then(|rest| rest.split_once('/')).is_some_and(
            |(gallery, rest)| !rest.is_empty() && self.galleries.iter().any(|g| g == gallery),
        )
    }

    /// Whether this user may open gallery `id`.
    pub fn may_open_gallery(&self, id: &str) -> bool {
        self.galleries.iter().any(|g| g == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn subject_is_required() {
        assert_eq!(Identity::from_claims(&claims(&[]), "galleries"), Err(IdentityError::Missing));
        assert_eq!(
            Identity::from_claims(&claims(&[("sub", "")]), "galleries"),
            Err(IdentityError::Missing)
        );
    }

    #[test]
    fn api_gateway_array_claims_are_split() {
        let id = Identity::from_claims(
            &claims(&[("sub", "alice"), ("galleries", "[g2 g1 ../x g1]")]),
            "galleries",
        )
        .unwrap();
        assert_eq!(id.galleries, ["g1", "g2"]);
        assert_eq!(claim_items("g1,g2"), ["g1", "g2"]);
        assert_eq!(claim_items("[\"a\",\"b\"]"), ["a", "b"]);
    }

    #[test]
    fn unsafe_subjects_become_a_hash_segment() {
        let id = Identity::from_claims(&claims(&[("sub", "auth0|12/../x")]), "galleries").unwrap();
        assert_eq!(id.segment.len(), 33);
        let hash = id.segment.strip_prefix('~').unwrap();
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        // A subject spelling out another's hash does not share its prefix.
        let mimic = Identity::from_claims(&claims(&[("sub", hash)]), "galleries").unwrap();
        assert_ne!(mimic.segment, id.segment);
        let plain = Identity::from_claims(&claims(&[("sub", "3f2a-bc_d.e")]), "galleries").unwrap();
        assert_eq!(plain.segment, "3f2a-bc_d.e");
        let dots = Identity::from_claims(&claims(&[("sub", "..")]), "galleries").unwrap();
        assert_ne!(dots.segment, "..");
    }

    #[test]
    fn users_read_their_uploads_and_granted_galleries_only() {
        let id =
            Identity::from_claims(&claims(&[("sub", "alice"), ("galleries", "[g1]")]), "galleries")
                .unwrap();
        assert!(id.may_read("uploads/alice/a.jpg"));
        assert!(!id.may_read("uploads/alicex/a.jpg"));
        assert!(!id.may_read("uploads/bob/a.jpg"));
        assert!(id.may_read("private/galleries/g1/cat.jpg"));
        assert!(id.may_read("private/galleries/g1/sub/cat.jpg"));
        assert!(!id.may_read("private/galleries/g1/"));
        assert!(!id.may_read("private/galleries/g2/cat.jpg"));
        assert!(!id.may_read("private/galleries/g1/../g2/cat.jpg"));
        assert!(!id.may_read("uploads/alice/../bob/a.jpg"));
        assert!(id.may_open_gallery("g1") && !id.may_open_gallery("g2"));
    }
}
