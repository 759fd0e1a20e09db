//! S3 static-website semantics for `website-rules.json`: the WebsiteConfiguration JSON that
//! `aws s3api put-bucket-website --website-configuration` takes, validated as S3 validates it,
//! and the routing-rule evaluation S3 applies to each request.
//!
//! Pure: no I/O. The devserver's HTTP layer asks [`WebsiteConfiguration::route`] twice per
//! request, once before looking the object up (rules without an error-code condition) and
//! once with the error code the lookup produced.

use keyspace::routing::{location_key, LocationEncoding};
use serde::Deserialize;

/// S3 refuses a website configuration with more routing rules than this.
pub const MAX_ROUTING_RULES: usize = 50;

/// Placeholder for the resizer's host (and port) in website-rules.json.
pub const HOST_PLACEHOLDER: &str = "${RESIZER_HOST}";
/// Placeholder for the resizer's protocol (`https` in AWS, `http` locally).
pub const PROTOCOL_PLACEHOLDER: &str = "${RESIZER_PROTOCOL}";

/// The bucket's website configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WebsiteConfiguration {
    /// Appended to keys that are empty or end in `/`.
    pub index_document: Option<IndexDocument>,
    /// Served (with the error status) when an error matches no rule.
    pub error_document: Option<ErrorDocument>,
    /// Evaluated in order; the first match wins.
    #[serde(default)]
    pub routing_rules: Vec<RoutingRule>,
}

/// `IndexDocument.Suffix`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct IndexDocument {
    /// For example `index.html`.
    pub suffix: String,
}

/// `ErrorDocument.Key`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ErrorDocument {
    /// The object served for errors.
    pub key: String,
}

/// One rule: an optional condition and a redirect.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RoutingRule {
    /// When absent, the rule applies to every request.
    pub condition: Option<Condition>,
    /// Where to send the request.
    pub redirect: Redirect,
}

/// When a rule applies. With both fields, both must match.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Condition {
    /// The key starts with this.
    pub key_prefix_equals: Option<String>,
    /// The lookup produced this HTTP error code (a string in S3's JSON, e.g. `"404"`).
    pub http_error_code_returned_equals: Option<String>,
}

/// Where a matching request goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Redirect {
    /// `http` or `https`; the request's own protocol when absent.
    pub protocol: Option<String>,
    /// The host (and port); the request's own host when absent.
    pub host_name: Option<String>,
    /// Replaces the matched `KeyPrefixEquals` (or prefixes the key when there is none).
    pub replace_key_prefix_with: Option<String>,
    /// Replaces the whole key.
    pub replace_key_with: Option<String>,
    /// `301` when absent.
    pub http_redirect_code: Option<String>,
}

/// A configuration S3 would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Not JSON of the WebsiteConfiguration shape.
    #[error("website configuration is not valid JSON of the expected shape: {0}")]
    Json(String),
    /// A `${...}` placeholder was left unfilled.
    #[error("website configuration still contains the placeholder {0}")]
    Placeholder(String),
    /// No usable IndexDocument.
    #[error("{0}")]
    IndexDocument(String),
    /// More than [`MAX_ROUTING_RULES`].
    #[error("{0} routing rules; S3 allows at most {MAX_ROUTING_RULES}")]
    TooManyRules(usize),
    /// A rule field has a value S3 refuses.
    #[error("routing rule {index}: {reason}")]
    InvalidRule {
        /// 0-based position of the rule.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A redirect to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTo {
    /// The status code, 3xx.
    pub status: u16,
    /// The Location header value.
    pub location: String,
}

/// The request a rule is evaluated for.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `http` or `https`.
    pub protocol: &'a str,
    /// Host header value.
    pub host: &'a str,
    /// The path as the viewer sent it, without its leading `/` (still percent-encoded).
    pub requested: &'a str,
    /// How the key is written into a Location (undocumented on AWS; each reading is
    /// emulated, see `keyspace::routing`).
    pub encoding: LocationEncoding,
}

impl WebsiteConfiguration {
    /// Parses website-rules.json after filling the placeholders, then validates it.
    pub fn from_template(template: &str, protocol: &str, host: &str) -> Result<Self, RulesError> {
        let filled =
            template.replace(PROTOCOL_PLACEHOLDER, protocol).replace(HOST_PLACEHOLDER, host);
        if let Some(start) = filled.find("${") {
            let end = filled[start..].find('}').map_or(filled.len(), |e| start + e + 1);
            return Err(RulesError::Placeholder(filled[start..end].to_owned()));
        }
        Self::parse(&filled)
    }

    /// Parses and validates a filled configuration.
    pub fn parse(json: &str) -> Result<Self, RulesError> {
        let config: Self =
            serde_json::from_str(json).map_err(|e| RulesError::Json(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), RulesError> {
        // S3 needs an index document (or RedirectAllRequestsTo, which a resize-on-miss
        // bucket cannot use since it would redirect hits too).
        match &self.index_document {
            None => return Err(RulesError::IndexDocument("IndexDocument is required".into())),
            Some(d) if d.suffix.is_empty() || d.suffix.contains('/') => {
                return Err(RulesError::IndexDocument(format!(
                    "IndexDocument.Suffix {:?} must be a non-empty name without '/'",
                    d.suffix
                )))
            }
            Some(_) => {}
        }
        if self.routing_rules.len() > MAX_ROUTING_RULES {
            return Err(RulesError::TooManyRules(self.routing_rules.len()));
        }
        for (index, rule) in self.routing_rules.iter().enumerate() {
            rule.validate().map_err(|reason| RulesError::InvalidRule { index, reason })?;
        }
        Ok(())
    }

    /// The key a request path addresses: the index document for empty keys and keys
    /// ending in `/`.
    pub fn object_key(&self, key: &str) -> String {
        match &self.index_document {
            Some(index) if key.is_empty() || key.ends_with('/') => format!("{key}{}", index.suffix),
            _ => key.to_owned(),
        }
    }

    /// The first rule that matches `key` given the lookup's error code (`None` before the
    /// lookup), as a redirect. Rules with an error-code condition never match before the
    /// lookup; rules without one match before it, so a prefix-only rule redirects even when
    /// the object exists, as on S3.
    pub fn route(
        &self,
        key: &str,
        error_code: Option<u16>,
        origin: Origin<'_>,
    ) -> Option<RedirectTo> {
        self.routing_rules
            .iter()
            .find(|rule| rule.matches(key, error_code))
            .map(|rule| rule.redirect_to(key, origin))
    }
}

impl RoutingRule {
    fn validate(&self) -> Result<(), String> {
        if let Some(c) = &self.condition {
            if c.key_prefix_equals.is_none() && c.http_error_code_returned_equals.is_none() {
                return Err("Condition needs KeyPrefixEquals or HttpErrorCodeReturnedEquals".into());
            }
            if let Some(code) = &c.http_error_code_returned_equals {
                match code.parse::<u16>() {
                    Ok(400..=599) if code.len() == 3 => {}
                    _ => {
                        return Err(format!(
                            "HttpErrorCodeReturnedEquals {code:?} is not a 4xx or 5xx code"
                        ))
                    }
                }
            }
        }
        let r = &self.redirect;
        if r.protocol.is_none()
            && r.host_name.is_none()
            && r.replace_key_prefix_with.is_none()
            && r.replace_key_with.is_none()
            && r.http_redirect_code.is_none()
        {
            return Err("Redirect is empty".into());
        }
        if r.replace_key_prefix_with.is_some() && r.replace_key_with.is_some() {
            return Err("ReplaceKeyPrefixWith and ReplaceKeyWith cannot both be set".into());
        }
        if let Some(p) = &r.protocol {
            if p != "http" && p != "https" {
                return Err(format!("Protocol {p:?} must be http or https"));
            }
        }
        if let Some(h) = &r.host_name {
            if h.is_empty() || h.contains('/') || h.chars().any(char::is_whitespace) {
                return Err(format!("HostName {h:?} must be a bare host name"));
            }
        }
        if let Some(code) = &r.http_redirect_code {
            match code.parse::<u16>() {
                Ok(300..=399) if code.len() == 3 => {}
                _ => return Err(format!("HttpRedirectCode {code:?} is not a 3xx code")),
            }
        }
        Ok(())
    }

    fn matches(&self, key: &str, error_code: Option<u16>) -> bool {
        let Some(c) = &self.condition else {
            return true;
        };
        let prefix_ok = c.key_prefix_equals.as_deref().is_none_or(|p| key.starts_with(p));
        let code_ok = match (&c.http_error_code_returned_equals, error_code) {
            (None, _) => true,
            (Some(want), Some(got)) => want.parse::<u16>().ok() == Some(got),
            (Some(_), None) => false,
        };
        prefix_ok && code_ok
    }

    fn redirect_to(&self, key: &str, origin: Origin<'_>) -> RedirectTo {
        let r = &self.redirect;
        let protocol = r.protocol.as_deref().unwrap_or(origin.protocol);
        let host = r.host_name.as_deref().unwrap_or(origin.host);
        // Replacement text is used as written; the part of the request's key that survives
        // is written as the configured reading of S3 writes it.
        let matched =
            self.condition.as_ref().and_then(|c| c.key_prefix_equals.as_deref()).unwrap_or("");
        let rest = |key: &str| {
            let requested = origin.requested.strip_prefix(matched).unwrap_or(origin.requested);
            location_key(origin.encoding, &key[matched.len()..], requested)
        };
        let path = match (&r.replace_key_with, &r.replace_key_prefix_with) {
            (Some(whole), _) => whole.clone(),
            (None, Some(prefix)) => format!("{prefix}{}", rest(key)),
            (None, None) => location_key(origin.encoding, key, origin.requested),
        };
        let status = r.http_redirect_code.as_deref().and_then(|c| c.parse().ok()).unwrap_or(301);
        RedirectTo { status, location: format!("{protocol}://{host}/{path}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        protocol: "http",
        host: "bucket.example:8080",
        requested: "",
        encoding: LocationEncoding::Once,
    };

    fn config(rules: &str) -> WebsiteConfiguration {
        WebsiteConfiguration::parse(&format!(
            r#"{{"IndexDocument":{{"Suffix":"index.html"}},"RoutingRules":{rules}}}"#
        ))
        .expect("valid configuration")
    }

    #[track_caller]
    fn route_case(
        cfg: &WebsiteConfiguration,
        key: &str,
        code: Option<u16>,
        want: Option<(u16, &str)>,
    ) {
        let got = cfg.route(key, code, ORIGIN);
        assert_eq!(
            got,
            want.map(|(status, location)| RedirectTo { status, location: location.into() }),
            "key {key:?}, code {code:?}"
        );
    }

    #[test]
    fn the_project_rules_file_parses_and_sends_404s_to_the_resizer() {
        let template = include_str!("../../website-rules.json");
        let cfg =
            WebsiteConfiguration::from_template(template, "https", "api.example.com").unwrap();
        route_case(&cfg, "300x300/a.jpg", None, None);
        route_case(
            &cfg,
            "300x300/a b+c.jpg",
            Some(404),
            Some((307, "https://api.example.com/resize/300x300/a%20b%2Bc.jpg")),
        );
        route_case(&cfg, "300x300/a.jpg", Some(403), None);
        assert_eq!(cfg.object_key(""), "index.html");
        assert_eq!(cfg.object_key("docs/"), "docs/index.html");
        assert_eq!(cfg.object_key("docs"), "docs");
    }

    #[test]
    fn unfilled_placeholder_is_refused() {
        let template = include_str!("../../website-rules.json");
        let err = WebsiteConfiguration::parse(template).unwrap_err();
        assert!(matches!(err, RulesError::InvalidRule { .. }), "{err:?}");
        let err = WebsiteConfiguration::from_template(
            r#"{"RoutingRules":[{"Redirect":{"HostName":"${OTHER}"}}]}"#,
            "http",
            "h",
        )
        .unwrap_err();
        assert_eq!(err, RulesError::Placeholder("${OTHER}".into()));
    }

    #[test]
    fn error_code_condition_matches_only_after_lookup_and_only_that_code() {
        let cfg = config(
            r#"[{"Condition":{"HttpErrorCodeReturnedEquals":"404"},"Redirect":{"HostName":"r.example"}}]"#,
        );
        route_case(&cfg, "a.jpg", None, None);
        route_case(&cfg, "a.jpg", Some(403), None);
        route_case(&cfg, "a.jpg", Some(404), Some((301, "http://r.example/a.jpg")));
    }

    #[test]
    fn key_prefix_condition_applies_before_lookup() {
        let cfg = config(
            r#"[{"Condition":{"KeyPrefixEquals":"docs/"},"Redirect":{"ReplaceKeyPrefixWith":"documents/"}}]"#,
        );
        route_case(
            &cfg,
            "docs/a.html",
            None,
            Some((301, "http://bucket.example:8080/documents/a.html")),
        );
        route_case(&cfg, "doc/a.html", None, None);
        route_case(&cfg, "images/docs/a", None, None);
    }

    #[test]
    fn both_conditions_must_match() {
        let cfg = config(
            r#"[{"Condition":{"KeyPrefixEquals":"img/","HttpErrorCodeReturnedEquals":"404"},"Redirect":{"ReplaceKeyPrefixWith":"fallback/","HttpRedirectCode":"302"}}]"#,
        );
        route_case(&cfg, "img/a.png", None, None);
        route_case(&cfg, "other/a.png", Some(404), None);
        route_case(
            &cfg,
            "img/a.png",
            Some(404),
            Some((302, "http://bucket.example:8080/fallback/a.png")),
        );
    }

    #[test]
    fn first_matching_rule_wins() {
        let cfg = config(
            r#"[
              {"Condition":{"KeyPrefixEquals":"a/"},"Redirect":{"ReplaceKeyWith":"first.html"}},
              {"Condition":{"KeyPrefixEquals":"a/b/"},"Redirect":{"ReplaceKeyWith":"second.html"}},
              {"Condition":{"HttpErrorCodeReturnedEquals":"404"},"Redirect":{"ReplaceKeyWith":"third.html"}}
            ]"#,
        );
        route_case(&cfg, "a/b/c", None, Some((301, "http://bucket.example:8080/first.html")));
        route_case(&cfg, "x", Some(404), Some((301, "http://bucket.example:8080/third.html")));
    }

    #[test]
    fn rule_without_condition_matches_everything() {
        let cfg = config(r#"[{"Redirect":{"Protocol":"https","HostName":"new.example"}}]"#);
        route_case(&cfg, "any/key.txt", None, Some((301, "https://new.example/any/key.txt")));
    }

    #[test]
    fn redirect_fields_one_by_one() {
        // Protocol only: host and key kept.
        let cfg = config(r#"[{"Redirect":{"Protocol":"https"}}]"#);
        route_case(&cfg, "k", None, Some((301, "https://bucket.example:8080/k")));
        // HostName only.
        let cfg = config(r#"[{"Redirect":{"HostName":"h.example"}}]"#);
        route_case(&cfg, "k", None, Some((301, "http://h.example/k")));
        // ReplaceKeyPrefixWith without a prefix condition prefixes the whole key.
        let cfg = config(r#"[{"Redirect":{"ReplaceKeyPrefixWith":"resize/"}}]"#);
        route_case(
            &cfg,
            "300x/ảnh.jpg",
            None,
            Some((301, "http://bucket.example:8080/resize/300x/%E1%BA%A3nh.jpg")),
        );
        // ReplaceKeyWith replaces the whole key, as written.
        let cfg = config(r#"[{"Redirect":{"ReplaceKeyWith":"gone.html"}}]"#);
        route_case(&cfg, "a/b/c", None, Some((301, "http://bucket.example:8080/gone.html")));
        // HttpRedirectCode.
        for code in ["301", "302", "303", "307", "308"] {
            let cfg = config(&format!(r#"[{{"Redirect":{{"HttpRedirectCode":"{code}"}}}}]"#));
            let got = cfg.route("k", None, ORIGIN).unwrap();
            assert_eq!(got.status.to_string(), code);
        }
    }

    #[track_caller]
    fn invalid(rules: &str, fragment: &str) {
        let json =
            format!(r#"{{"IndexDocument":{{"Suffix":"index.html"}},"RoutingRules":{rules}}}"#);
        let err = WebsiteConfiguration::parse(&json).unwrap_err().to_string();
        assert!(err.contains(fragment), "{err:?} should mention {fragment:?}");
    }

    #[test]
    fn configurations_s3_refuses_are_refused() {
        invalid(r#"[{"Redirect":{}}]"#, "Redirect is empty");
        invalid(r#"[{"Condition":{},"Redirect":{"HostName":"h"}}]"#, "Condition needs");
        invalid(
            r#"[{"Redirect":{"ReplaceKeyWith":"a","ReplaceKeyPrefixWith":"b"}}]"#,
            "cannot both",
        );
        invalid(r#"[{"Redirect":{"Protocol":"ftp"}}]"#, "Protocol");
        invalid(r#"[{"Redirect":{"HttpRedirectCode":"200"}}]"#, "HttpRedirectCode");
        invalid(r#"[{"Redirect":{"HttpRedirectCode":"30x"}}]"#, "HttpRedirectCode");
        invalid(
            r#"[{"Condition":{"HttpErrorCodeReturnedEquals":"302"},"Redirect":{"HostName":"h"}}]"#,
            "4xx or 5xx",
        );
        invalid(r#"[{"Redirect":{"HostName":"h/x"}}]"#, "HostName");
        invalid(r#"[{"Redirect":{"Hostname":"h"}}]"#, "unknown field");
        let fifty_one = vec![r#"{"Redirect":{"HostName":"h"}}"#; 51].join(",");
        invalid(&format!("[{fifty_one}]"), "at most 50");
        let fifty = vec![r#"{"Redirect":{"HostName":"h"}}"#; 50].join(",");
        assert!(WebsiteConfiguration::parse(&format!(
            r#"{{"IndexDocument":{{"Suffix":"index.html"}},"RoutingRules":[{fifty}]}}"#
        ))
        .is_ok());
        let no_index = WebsiteConfiguration::parse(r#"{"RoutingRules":[]}"#).unwrap_err();
        assert!(no_index.to_string().contains("IndexDocument is required"), "{no_index}");
        let bad_index =
            WebsiteConfiguration::parse(r#"{"IndexDocument":{"Suffix":"a/b.html"}}"#).unwrap_err();
        assert!(bad_index.to_string().contains("Suffix"), "{bad_index}");
    }

    #[test]
    fn the_key_is_written_as_each_reading_of_s3_writes_it() {
        let cfg = config(
            r#"[{"Condition":{"HttpErrorCodeReturnedEquals":"404"},"Redirect":{"ReplaceKeyPrefixWith":"resize/"}}]"#,
        );
        let key = "300x300/a b&c#d ảnh.jpg";
        let requested = "300x300/a%20b&c%23d%20%E1%BA%A3nh.jpg";
        for (encoding, location) in [
            (LocationEncoding::Once, "resize/300x300/a%20b%26c%23d%20%E1%BA%A3nh.jpg"),
            (LocationEncoding::Twice, "resize/300x300/a%2520b%26c%2523d%2520%25E1%25BA%25A3nh.jpg"),
            (LocationEncoding::Raw, "resize/300x300/a b&c#d ảnh.jpg"),
        ] {
            let origin = Origin { requested, encoding, ..ORIGIN };
            let got = cfg.route(key, Some(404), origin).unwrap();
            assert_eq!(
                got.location,
                format!("http://bucket.example:8080/{location}"),
                "{encoding}"
            );
        }
    }
}
