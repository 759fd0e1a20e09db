//! CloudFront's cache as the behaviours' cache policies and the distribution's error
//! caching settings make it: a response is kept for a TTL worked out from its status and
//! Cache-Control. Emulated so that what CloudFront would cache (a redirect without
//! Cache-Control under a policy with a DefaultTTL, say) is cached here too, and a test can
//! see a loop or a stale answer before AWS does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::distribution::CachePolicy;

/// Statuses CloudFront caches like a 200 (per the cache policy).
const CACHEABLE: [u16; 7] = [200, 203, 300, 301, 302, 307, 308];
/// Error statuses CloudFront caches, for the error caching minimum TTL (default 10 s).
const CACHEABLE_ERRORS: [u16; 10] = [400, 403, 404, 405, 414, 500, 501, 502, 503, 504];
/// CloudFront's error caching minimum TTL when the distribution does not set one.
pub const DEFAULT_ERROR_CACHING_MIN_TTL: u64 = 10;

/// A cached response.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    stored: Instant,
    ttl: Duration,
}

impl Entry {
    /// Seconds since it was stored (CloudFront's `Age`).
    pub fn age(&self) -> u64 {
        self.stored.elapsed().as_secs()
    }
}

/// The edge's cache, keyed by what the cache policy puts in the key (here: the path).
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Directives {
    no_store: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
}

fn directives(headers: &HeaderMap) -> Directives {
    let mut d = Directives::default();
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        for part in value.to_str().unwrap_or("").split(',').map(str::trim) {
            let (name, arg) = part.split_once('=').unwrap_or((part, ""));
            match name.to_ascii_lowercase().as_str() {
                "no-store" | "no-cache" | "private" => d.no_store = true,
                "max-age" => d.max_age = arg.trim_matches('"').parse().ok(),
                "s-maxage" => d.s_maxage = arg.trim_matches('"').parse().ok(),
                _ => {}
            }
        }
    }
    d
}

/// How long CloudFront keeps a response with `status` and `headers` under `policy`
/// (`error_min_ttl`: the distribution's ErrorCachingMinTTL for this status, if set).
pub fn ttl(
    policy: &CachePolicy,
    status: u16,
    headers: &HeaderMap,
    error_min_ttl: Option<u64>,
) -> u64 {
    if !policy.caches() {
        return 0;
    }
    let d = directives(headers);
    if CACHEABLE.contains(&status) {
        if d.no_store && policy.min_ttl == 0 {
            return 0;
        }
        return match d.s_maxage.or(d.max_age) {
            Some(age) => age.clamp(policy.min_ttl, policy.max_ttl),
            None => policy.default_ttl.clamp(policy.min_ttl, policy.max_ttl),
        };
    }
    if CACHEABLE_ERRORS.contains(&status) {
        let min = error_min_ttl.unwrap_or(DEFAULT_ERROR_CACHING_MIN_TTL);
        if d.no_store && min == 0 {
            return 0;
        }
        return d.s_maxage.or(d.max_age).unwrap_or(0).max(min);
    }
    0
}

impl Cache {
    /// A live entry for `key`.
    pub fn get(&self, key: &str) -> Option<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some(e) if e.stored.elapsed() < e.ttl => Some(e.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps a response for `ttl_secs` (nothing when 0).
    pub fn put(
        &self,
        key: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
        ttl_secs: u64,
    ) {
        if ttl_secs == 0 {
            return;
        }
        let entry = Entry {
            status,
            headers: headers.clone(),
            body: body.clone(),
            stored: Instant::now(),
            ttl: Duration::from_secs(ttl_secs),
        };
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), entry);
    }

    /// Drops every entry whose key matches `pattern` (CloudFront's invalidation paths take
    /// a trailing `*`).
    pub fn invalidate(&self, pattern: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|key, _| !keyspace::wildcard_match(pattern, key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGES: CachePolicy = CachePolicy { min_ttl: 0, default_ttl: 0, max_ttl: 31_536_000 };

    fn cc(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if !value.is_empty() {
            h.insert(http::header::CACHE_CONTROL, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn ttls_follow_cloudfronts_rules() {
        let year = "public, max-age=31536000, immutable";
        assert_eq!(ttl(&IMAGES, 200, &cc(year), None), 31_536_000);
        assert_eq!(ttl(&IMAGES, 307, &cc(""), None), 0);
        assert_eq!(ttl(&IMAGES, 307, &cc("no-store"), None), 0);
        // A redirect without Cache-Control under a policy with a DefaultTTL is cached.
        let day = CachePolicy { default_ttl: 86_400, ..IMAGES };
        assert_eq!(ttl(&day, 307, &cc(""), None), 86_400);
        assert_eq!(ttl(&day, 307, &cc("no-store"), None), 0);
        // Errors: the error caching minimum, 10 s unless the distribution says otherwise.
        assert_eq!(ttl(&IMAGES, 404, &cc("no-store"), None), 10);
        assert_eq!(ttl(&IMAGES, 404, &cc("no-store"), Some(0)), 0);
        assert_eq!(ttl(&IMAGES, 404, &cc("max-age=60"), Some(0)), 60);
        assert_eq!(ttl(&IMAGES, 413, &cc(""), None), 0);
        let disabled = CachePolicy { min_ttl: 0, default_ttl: 0, max_ttl: 0 };
        assert_eq!(ttl(&disabled, 200, &cc(year), None), 0);
    }

    #[test]
    fn entries_expire_and_invalidate() {
        let cache = Cache::default();
        cache.put("/a", StatusCode::OK, &HeaderMap::new(), &Bytes::from_static(b"x"), 60);
        cache.put("/b", StatusCode::OK, &HeaderMap::new(), &Bytes::from_static(b"y"), 0);
        assert!(cache.get("/a").is_some());
        assert!(cache.get("/b").is_none());
        cache.invalidate("/a*");
        assert!(cache.get("/a").is_none());
    }
}
