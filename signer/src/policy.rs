//! CloudFront policy statements: the canned policy (byte-exact as CloudFront rebuilds it),
//! custom policies (DateLessThan, DateGreaterThan, IpAddress, wildcard Resource), their
//! JSON text and CloudFront's URL-safe base64.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;

/// An IPv4 network in CIDR form (`192.0.2.0/24`), as `AWS:SourceIp` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

/// Why a CIDR did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an IPv4 address or CIDR (a.b.c.d or a.b.c.d/n)")]
pub struct CidrError(pub String);

impl Ipv4Cidr {
    /// Parses `a.b.c.d/n`, or a bare address as `/32`. Host bits must be zero, as AWS
    /// requires of a network.
    pub fn parse(text: &str) -> Result<Self, CidrError> {
        let err = || CidrError(text.to_owned());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => {
                let prefix: u8 = p.parse().map_err(|_| err())?;
                if prefix > 32 || p.starts_with('+') || (p.len() > 1 && p.starts_with('0')) {
                    return Err(err());
                }
                (a, prefix)
            }
            None => (text, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        let cidr = Self { addr, prefix };
        if u32::from(addr) & !cidr.mask() != 0 {
            return Err(err());
        }
        Ok(cidr)
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// Whether `ip` is inside this network. IPv6 clients never match (CloudFront's
    /// `AWS:SourceIp` in a policy is IPv4 only).
    pub fn contains(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4,
                None => return false,
            },
        };
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One policy statement. A canned policy is the case with only `resource` and
/// `date_less_than`, written in CloudFront's exact canned form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The URL or wildcard pattern the signature opens. `None` only for parsed custom
    /// policies that omit it (they then apply to every URL of the key group).
    pub resource: Option<String>,
    /// Expiry, seconds since the epoch: the request must arrive strictly before it.
    pub date_less_than: u64,
    /// Start, seconds since the epoch: the request must not arrive before it.
    pub date_greater_than: Option<u64>,
    /// The network the client must come from.
    pub ip_address: Option<Ipv4Cidr>,
}

impl Policy {
    /// A policy that CloudFront can express as canned: one exact URL and an expiry.
    pub fn canned(resource: &str, date_less_than: u64) -> Self {
        Self {
            resource: Some(resource.to_owned()),
            date_less_than,
            date_greater_than: None,
            ip_address: None,
        }
    }

    /// Whether this policy has only what a canned policy may have (an exact resource, no
    /// wildcard, no start time, no IP condition).
    pub fn is_canned(&self) -> bool {
        self.date_greater_than.is_none()
            && self.ip_address.is_none()
            && self.resource.as_deref().is_some_and(|r| !r.contains(['*', '?']))
    }

    /// The canned policy text CloudFront rebuilds from the request and checks the
    /// signature against: field order and spacing are fixed.
    pub fn canned_json(resource: &str, date_less_than: u64) -> String {
        let mut out = String::with_capacity(resource.len() + 96);
        out.push_str(r#"{"Statement":[{"Resource":"#);
        push_json_string(&mut out, resource);
        out.push_str(r#","Condition":{"DateLessThan":{"AWS:EpochTime":"#);
        out.push_str(&date_less_than.to_string());
        out.push_str("}}}]}");
        out
    }

    /// The custom policy text, compact, in the field order AWS's own signers use
    /// (Resource, Condition: DateLessThan, IpAddress, DateGreaterThan), so the bytes equal
    /// botocore's `build_policy` for the same inputs.
    pub fn custom_json(&self) -> String {
        let mut out = String::with_capacity(160);
        out.push_str(r#"{"Statement":[{"#);
        if let Some(resource) = &self.resource {
            out.push_str(r#""Resource":"#);
            push_json_string(&mut out, resource);
            out.push(',');
        }
        out.push_str(r#""Condition":{"DateLessThan":{"AWS:EpochTime":"#);
        out.push_str(&self.date_less_than.to_string());
        out.push('}');
        if let Some(ip) = self.ip_address {
            out.push_str(r#","IpAddress":{"AWS:SourceIp":"#);
            push_json_string(&mut out, &ip.to_string());
            out.push('}');
        }
        if let Some(start) = self.date_greater_than {
            out.push_str(r#","DateGreaterThan":{"AWS:EpochTime":"#);
            out.push_str(&start.to_string());
            out.push('}');
        }
        out.push_str("}}]}");
        out
    }

    /// Parses a custom policy as CloudFront reads one: exactly one statement, a
    /// DateLessThan, optional DateGreaterThan and IpAddress, optional Resource. Epoch
    /// times may be numbers or numeric strings.
    pub fn parse_json(text: &[u8]) -> Result<Self, PolicyError> {
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        let statements = value
            .get("Statement")
            .and_then(|s| s.as_array())
            .ok_or(PolicyError::Shape("Statement must be an array"))?;
        let [statement] = statements.as_slice() else {
            return Err(PolicyError::Shape("a policy has exactly one statement"));
        };
        let resource = match statement.get("Resource") {
            None => None,
            Some(serde_json::Value::String(r)) => Some(r.clone()),
            Some(_) => return Err(PolicyError::Shape("Resource must be a string")),
        };
        let condition = statement
            .get("Condition")
            .and_then(|c| c.as_object())
            .ok_or(PolicyError::Shape("Condition must be an object"))?;
        let epoch = |name: &'static str| -> Result<Option<u64>, PolicyError> {
            let Some(cond) = condition.get(name) else { return Ok(None) };
            let time =
                cond.get("AWS:EpochTime").ok_or(PolicyError::Shape("missing AWS:EpochTime"))?;
            match time {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .map(Some)
            .ok_or(PolicyError::Shape("AWS:EpochTime must be a whole number of seconds"))
        };
        let date_less_than =
            epoch("DateLessThan")?.ok_or(PolicyError::Shape("DateLessThan is required"))?;
        let date_greater_than = epoch("DateGreaterThan")?;
        let ip_address = match condition.get("IpAddress") {
            None => None,
            Some(ip) => {
                let text = ip
                    .get("AWS:SourceIp")
                    .and_then(|v| v.as_str())
                    .ok_or(PolicyError::Shape("IpAddress needs an AWS:SourceIp string"))?;
                Some(Ipv4Cidr::parse(text).map_err(|_| PolicyError::Shape("bad AWS:SourceIp"))?)
            }
        };
        Ok(Self { resource, date_less_than, date_greater_than, ip_address })
    }
}

/// Why a policy document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The text is not JSON.
    #[error("policy is not JSON: {0}")]
    Json(String),
    /// JSON, but not a CloudFront policy.
    #[error("policy: {0}")]
    Shape(&'static str),
}

/// Appends `s` as a JSON string literal, escaped as Python's `json.dumps` does (quotes,
/// backslashes, control characters and every non-ASCII character escaped), so a resource
/// can never close the string and inject policy text, and the bytes match AWS's signers.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// CloudFront's URL-safe base64: standard base64 with `+` as `-`, `=` as `_`, `/` as `~`.
pub fn cf_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(data)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

/// Reverses [`cf_base64`]. `None` when the text is not CloudFront base64.
pub fn cf_base64_decode(text: &str) -> Option<Vec<u8>> {
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::STANDARD.decode(standard).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_policy_is_byte_exact() {
        assert_eq!(
            Policy::canned_json("https://d111111abcdef8.cloudfront.net/image.jpg", 1_357_034_400),
            r#"{"Statement":[{"Resource":"https://d111111abcdef8.cloudfront.net/image.jpg","Condition":{"DateLessThan":{"AWS:EpochTime":1357034400}}}]}"#
        );
    }

    #[test]
    fn custom_policy_orders_conditions_like_aws_signers() {
        let policy = Policy {
            resource: Some("https://d.net/*".into()),
            date_less_than: 2_000_000_000,
            date_greater_than: Some(1_900_000_000),
            ip_address: Some(Ipv4Cidr::parse("192.0.2.0/24").unwrap()),
        };
        assert_eq!(
            policy.custom_json(),
            r#"{"Statement":[{"Resource":"https://d.net/*","Condition":{"DateLessThan":{"AWS:EpochTime":2000000000},"IpAddress":{"AWS:SourceIp":"192.0.2.0/24"},"DateGreaterThan":{"AWS:EpochTime":1900000000}}}]}"#
        );
        assert_eq!(Policy::parse_json(policy.custom_json().as_bytes()).unwrap(), policy);
    }

    #[test]
    fn quotes_and_backslashes_in_a_resource_cannot_inject_policy_text() {
        let hostile = r#"https://d.net/a.jpg"}],"x":[{"Resource":"*"#;
        let policy = Policy::canned(hostile, 10);
        let json = policy.custom_json();
        let parsed = Policy::parse_json(json.as_bytes()).unwrap();
        assert_eq!(parsed.resource.as_deref(), Some(hostile));
        let canned = Policy::canned_json("https://d.net/a\\b\"c\u{1}é", 5);
        assert!(canned.contains(r#""https://d.net/a\\b\"c\u0001\u00e9""#), "{canned}");
        let value: serde_json::Value = serde_json::from_str(&canned).unwrap();
        assert_eq!(value["Statement"][0]["Resource"], "https://d.net/a\\b\"c\u{1}é");
    }

    #[test]
    fn cloudfront_base64_swaps_three_characters_and_round_trips() {
        let data = [0xfb, 0xff, 0xfe, 0x3e, 0x00];
        let encoded = cf_base64(&data);
        assert_eq!(encoded, "-~~-PgA_");
        assert_eq!(cf_base64_decode(&encoded).unwrap(), data);
        assert_eq!(cf_base64_decode("not base64!"), None);
    }

    #[test]
    fn cidrs_parse_strictly_and_match_by_prefix() {
        let net = Ipv4Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(Ipv4Cidr::parse("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert!(Ipv4Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.1.0.1/16", "10.1.0.0/33", "10.1.0.0/", "10.1.0.0/08", "::1/128", "x"] {
            assert!(Ipv4Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parsed_policies_need_one_statement_and_an_expiry() {
        for bad in [
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Condition":{}}]}"#,
            r#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":-1}}}]}"#,
            r#"{"Statement":[{"Resource":1,"Condition":{"DateLessThan":{"AWS:EpochTime":1}}}]}"#,
            "not json",
        ] {
            assert!(Policy::parse_json(bad.as_bytes()).is_err(), "{bad}");
        }
        let p = Policy::parse_json(
            br#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":"7"}}}]}"#,
        )
        .unwrap();
        assert_eq!((p.resource, p.date_less_than), (None, 7));
    }
}
