//! CloudWatch embedded metric format (EMF): one JSON log line per event, which Lambda's log
//! pipeline turns into metrics on the [`NAMESPACE`] namespace with no API call. Written to
//! standard output, where the Lambda runtime captures it, or to any [`Sink`].
//!
//! The format is CloudWatch's published specification ("Specification: Embedded metric
//! format", CloudWatch User Guide): its JSON schema is transcribed in
//! `tests/fixtures/emf-schema.json`, and [`violations`] checks the rules its prose states
//! that the schema cannot.

use std::sync::Arc;

use serde_json::{json, Map, Value};

/// The namespace every metric of this service is published on.
pub const NAMESPACE: &str = "ResizeOnMiss";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Milliseconds.
    Milliseconds,
    /// Bytes.
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One EMF record: metrics, the dimension sets they are published under, and properties
/// (searchable in CloudWatch Logs Insights, not metrics).
#[derive(Debug, Clone, Default)]
pub struct Record {
    metrics: Vec<(&'static str, f64, Unit)>,
    dimensions: Vec<Vec<&'static str>>,
    members: Map<String, Value>,
}

impl Record {
    /// A record whose metrics are published without dimensions (service-wide totals).
    pub fn new() -> Self {
        Self { dimensions: vec![vec![]], ..Self::default() }
    }

    /// Adds a metric value.
    pub fn metric(mut self, name: &'static str, value: f64, unit: Unit) -> Self {
        self.metrics.push((name, value, unit));
        self
    }

    /// Also publishes every metric per value of `name` (set with [`Record::dimension`]).
    pub fn by(mut self, name: &'static str) -> Self {
        self.dimensions.push(vec![name]);
        self
    }

    /// A dimension's value (also searchable as a property).
    pub fn dimension(self, name: &'static str, value: &str) -> Self {
        self.property(name, value)
    }

    /// A property: logged, not a metric.
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.members.insert(name.to_owned(), value.into());
        self
    }

    /// The record as one JSON object, stamped with `timestamp_ms` (milliseconds since the
    /// Unix epoch).
    pub fn to_json(&self, timestamp_ms: u64) -> Value {
        let mut root = self.members.clone();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        for (name, value, _) in &self.metrics {
            root.insert((*name).to_owned(), json!(value));
        }
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": self.dimensions,
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// Prints the record as one line on standard output, stamped now.
    pub fn emit(&self) {
        write_line(&self.to_json(now_ms()));
    }

    /// Hands the record, stamped now, to `sink`.
    pub fn emit_to(&self, sink: &Sink) {
        sink(&self.to_json(now_ms()));
    }
}

/// Where records go: called once per record with its JSON object.
pub type Sink = Arc<dyn Fn(&Value) + Send + Sync>;

/// The sink [`Record::emit`] uses: one line per record on standard output, which Lambda
/// sends to CloudWatch Logs, where EMF lines become metrics.
pub fn stdout_sink() -> Sink {
    Arc::new(write_line)
}

/// Prints `record` as one line. `println!` writes the line and its newline under standard
/// output's lock, as the tracing subscriber writes each of its JSON lines, so neither can
/// land inside the other: CloudWatch reads EMF only from a line that is one whole JSON
/// object. (`println!` rather than a raw write so that the test harness captures it; like
/// any `println!` it would panic on a closed standard output, which Lambda's never is.)
fn write_line(record: &Value) {
    println!("{record}");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The specification's rules that its JSON schema does not state, each broken rule as a
/// sentence (none for a valid document): every dimension a DimensionSet names is a root
/// member with a string of at most 1,024 characters; every metric a MetricDefinition names
/// is a root member holding a number or an array of at most 100 numbers; at most 100
/// MetricDefinitions per directive; StorageResolution 1 or 60; at most 1 MB in all.
pub fn violations(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let Some(root) = doc.as_object() else {
        return vec!["the document is not a JSON object".into()];
    };
    if doc.to_string().len() > 1_000_000 {
        found.push("the document is larger than 1 MB".into());
    }
    let directives = root
        .get("_aws")
        .and_then(|aws| aws.get("CloudWatchMetrics"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for directive in directives {
        let sets = directive.get("Dimensions").and_then(Value::as_array);
        for name in sets.into_iter().flatten().filter_map(Value::as_array).flatten() {
            let name = name.as_str().unwrap_or_default();
            match root.get(name) {
                None => found.push(format!("dimension {name:?} is not a root member")),
                Some(Value::String(v)) if v.chars().count() > 1024 => {
                    found.push(format!("dimension {name:?} is longer than 1024 characters"))
                }
                Some(Value::String(_)) => {}
                Some(other) => found.push(format!("dimension {name:?} is not a string: {other}")),
            }
        }
        let metrics = directive.get("Metrics").and_then(Value::as_array);
        if metrics.is_some_and(|m| m.len() > 100) {
            found.push("a directive defines more than 100 metrics".into());
        }
        for definition in metrics.into_iter().flatten() {
            let name = definition.get("Name").and_then(Value::as_str).unwrap_or_default();
            match root.get(name) {
                None => found.push(format!("metric {name:?} is not a root member")),
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                Some(other) => found.push(format!("metric {name:?} is not numeric: {other}")),
            }
            match definition.get("StorageResolution") {
                None => {}
                Some(r) if r == 1 || r == 60 => {}
                Some(r) => found.push(format!("metric {name:?} has StorageResolution {r}")),
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CloudWatch's published schema for EMF documents.
    const SCHEMA: &str = include_str!("../tests/fixtures/emf-schema.json");

    /// Checks `value` against `schema`, for the keywords the EMF schema uses. Any other
    /// keyword panics, so a constraint added to the fixture is never silently skipped.
    fn schema_errors(schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(schema) = schema.as_object() else { panic!("{at}: a schema is an object") };
        for (keyword, rule) in schema {
            let fail =
                |errors: &mut Vec<String>, what: String| errors.push(format!("{at}: {what}"));
            match keyword.as_str() {
                "$comment" | "$id" | "title" | "examples" => {}
                "type" => {
                    let ok = match rule.as_str().unwrap() {
                        "object" => value.is_object(),
                        "array" => value.is_array(),
                        "string" => value.is_string(),
                        "integer" => value.is_i64() || value.is_u64(),
                        "number" => value.is_number(),
                        other => panic!("type {other}"),
                    };
                    if !ok {
                        fail(errors, format!("{value} is not of type {rule}"));
                    }
                }
                "required" => {
                    for name in rule.as_array().unwrap() {
                        let name = name.as_str().unwrap();
                        if value.is_object() && value.get(name).is_none() {
                            fail(errors, format!("{name} is required"));
                        }
                    }
                }
                "properties" => {
                    for (name, sub) in rule.as_object().unwrap() {
                        if let Some(member) = value.as_object().and_then(|o| o.get(name)) {
                            schema_errors(sub, member, &format!("{at}/{name}"), errors);
                        }
                    }
                }
                "items" => {
                    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                        schema_errors(rule, item, &format!("{at}/{i}"), errors);
                    }
                }
                "minItems" | "maxItems" => {
                    if let Some(items) = value.as_array() {
                        let bound = rule.as_u64().unwrap() as usize;
                        let min = keyword == "minItems";
                        if (min && items.len() < bound) || (!min && items.len() > bound) {
                            fail(errors, format!("{} items breaks {keyword} {bound}", items.len()));
                        }
                    }
                }
                "minLength" | "maxLength" => {
                    if let Some(text) = value.as_str() {
                        let (len, bound) = (text.chars().count(), rule.as_u64().unwrap() as usize);
                        let min = keyword == "minLength";
                        if (min && len < bound) || (!min && len > bound) {
                            fail(errors, format!("{text:?} breaks {keyword} {bound}"));
                        }
                    }
                }
                "pattern" => {
                    let pattern = regex::Regex::new(rule.as_str().unwrap()).unwrap();
                    if let Some(text) = value.as_str() {
                        if !pattern.is_match(text) {
                            fail(errors, format!("{text:?} does not match {pattern}"));
                        }
                    }
                }
                other => panic!("the schema checker does not know the keyword {other}"),
            }
        }
    }

    /// Every way `doc` breaks the published schema.
    fn schema_only(doc: &Value) -> Vec<String> {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let mut errors = Vec::new();
        schema_errors(&schema, doc, "", &mut errors);
        errors
    }

    /// Every way `doc` breaks the published schema or the specification's other rules.
    fn emf_errors(doc: &Value) -> Vec<String> {
        let mut errors = schema_only(doc);
        errors.extend(violations(doc));
        errors
    }

    fn record() -> Record {
        Record::new()
            .metric("Misses", 1.0, Unit::Count)
            .metric("Latency", 12.5, Unit::Milliseconds)
            .metric("BytesIn", 48_213.0, Unit::Bytes)
            .by("Outcome")
            .dimension("Outcome", "made")
            .property("Key", "300x300/photos/cat.jpg")
            .property("Status", 307)
    }

    #[test]
    fn a_record_is_a_valid_emf_document() {
        let doc = record().to_json(1_700_000_000_123);
        assert_eq!(emf_errors(&doc), Vec::<String>::new(), "{doc:#}");
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_123_u64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([[], ["Outcome"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                { "Name": "Misses", "Unit": "Count" },
                { "Name": "Latency", "Unit": "Milliseconds" },
                { "Name": "BytesIn", "Unit": "Bytes" },
            ])
        );
        assert_eq!((doc["Misses"].as_f64(), doc["Latency"].as_f64()), (Some(1.0), Some(12.5)));
        assert_eq!((doc["Outcome"].as_str(), doc["Status"].as_u64()), (Some("made"), Some(307)));
    }

    /// A change that breaks a valid document.
    type Edit = fn(&mut Value);

    #[test]
    fn the_schema_check_refuses_what_the_schema_forbids() {
        let valid = record().to_json(1);
        let broken = |edit: Edit| {
            let mut doc = valid.clone();
            edit(&mut doc);
            schema_only(&doc)
        };
        assert_eq!(broken(|_| {}), Vec::<String>::new());
        let cases: [(&str, Edit); 7] = [
            ("no _aws", |d| drop(d.as_object_mut().unwrap().remove("_aws"))),
            ("a timestamp in seconds as text", |d| d["_aws"]["Timestamp"] = json!("1700000000")),
            ("a fractional timestamp", |d| d["_aws"]["Timestamp"] = json!(1.5)),
            ("no namespace", |d| {
                drop(d["_aws"]["CloudWatchMetrics"][0].as_object_mut().unwrap().remove("Namespace"))
            }),
            ("no dimension sets", |d| d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([])),
            ("31 dimensions in a set", |d| {
                let names: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
                for name in &names {
                    d[name.as_str()] = json!("a value");
                }
                d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([names]);
            }),
            ("a unit CloudWatch does not have", |d| {
                d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Requests")
            }),
        ];
        for (what, edit) in cases {
            assert!(!broken(edit).is_empty(), "{what} passed");
        }
    }

    #[test]
    fn targets_must_be_root_members_of_the_right_type() {
        #[track_caller]
        fn case(doc: Value, expected: &[&str]) {
            let found = violations(&doc);
            assert_eq!(found.len(), expected.len(), "{found:?}");
            for (found, expected) in found.iter().zip(expected) {
                assert!(found.contains(expected), "{found:?} should say {expected:?}");
            }
        }
        let valid = record().to_json(1);
        case(valid.clone(), &[]);
        let mut doc = valid.clone();
        doc.as_object_mut().unwrap().remove("Outcome");
        case(doc, &["dimension \"Outcome\" is not a root member"]);
        let mut doc = valid.clone();
        doc["Outcome"] = json!(404);
        case(doc, &["dimension \"Outcome\" is not a string"]);
        let mut doc = valid.clone();
        doc["Outcome"] = json!("x".repeat(1025));
        case(doc, &["longer than 1024"]);
        let mut doc = valid.clone();
        doc.as_object_mut().unwrap().remove("Latency");
        case(doc, &["metric \"Latency\" is not a root member"]);
        let mut doc = valid.clone();
        doc["Latency"] = json!("12.5");
        case(doc, &["metric \"Latency\" is not numeric"]);
        let mut doc = valid.clone();
        doc["Latency"] = json!(vec![1.0; 101]);
        case(doc, &["metric \"Latency\" is not numeric"]);
        let mut doc = valid.clone();
        doc["Latency"] = json!([1.0, 2.5]);
        case(doc, &[]);
        let mut doc = valid.clone();
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] = json!(30);
        case(doc, &["StorageResolution 30"]);
        let many = (0..101).fold(Record::new(), |r, i| {
            let name: &'static str = Box::leak(format!("M{i}").into_boxed_str());
            r.metric(name, 1.0, Unit::Count)
        });
        case(many.to_json(1), &["more than 100 metrics"]);
    }

    #[test]
    fn a_sink_receives_the_stamped_record() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink: Sink = {
            let seen = seen.clone();
            Arc::new(move |doc: &Value| seen.lock().unwrap().push(doc.clone()))
        };
        let before = now_ms();
        record().emit_to(&sink);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let stamp = seen[0]["_aws"]["Timestamp"].as_u64().unwrap();
        assert!((before..=now_ms()).contains(&stamp), "{stamp}");
        assert_eq!(emf_errors(&seen[0]), Vec::<String>::new());
    }
}
