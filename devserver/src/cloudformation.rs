//! The subset of CloudFormation the devserver needs to read template.yaml: parameter
//! values (the template's defaults, or ours), `Conditions`, and the intrinsics that choose
//! between shapes (`Fn::If`, `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`,
//! `Ref` to a parameter or `AWS::NoValue`). Other intrinsics (`Fn::Sub`, `Fn::GetAtt`,
//! `Ref` to a resource) are left as they are, as one-key maps (`{"!Sub": ...}`), for the
//! reader to interpret; [`Template::substitute`] fills a `Fn::Sub` over parameters (a
//! CloudFront Function's code written with a setting).
//!
//! So the devserver's edge is built from the same description AWS deploys: a behaviour,
//! origin or route added to the template appears in the devserver, or stops it at start-up
//! when it is of a kind the devserver cannot emulate.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The project's template.yaml as of this build.
pub const TEMPLATE: &str = include_str!("../../template.yaml");

/// A template whose conditions are evaluated for one set of parameter values.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
    parameters: HashMap<String, String>,
    /// `AWS::Region`: the devserver's region unless the overrides name another.
    region: String,
    conditions: HashMap<String, bool>,
}

/// What stops the template from being read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Not YAML, or not a mapping.
    #[error("template.yaml does not parse: {0}")]
    Parse(String),
    /// A construct the devserver cannot evaluate.
    #[error("template.yaml: {0}")]
    Unsupported(String),
}

fn unsupported(what: impl Into<String>) -> TemplateError {
    TemplateError::Unsupported(what.into())
}

/// A YAML document as JSON, CloudFormation's short-form tags as one-key maps
/// (`!Ref X` becomes `{"!Ref": "X"}`), which is how the tests read the template too.
pub fn yaml_to_json(text: &str) -> Result<Value, TemplateError> {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| TemplateError::Parse(e.to_string()))?;
    serde_json::to_value(yaml).map_err(|e| TemplateError::Parse(e.to_string()))
}

/// The long and short names of an intrinsic, so `Fn::If` and `!If` read the same.
fn intrinsic<'a>(value: &'a Value, short: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let long = match short {
        "!Ref" => "Ref",
        "!Condition" => "Condition",
        other => return map.get(other).or_else(|| map.get(&format!("Fn::{}", &other[1..]))),
    };
    map.get(short).or_else(|| map.get(long))
}

impl Template {
    /// Reads `text` with `overrides` for some parameters and the template's defaults for the
    /// rest (a parameter with neither reads as the empty string), then evaluates every
    /// condition. An override of `AWS::Region` reads the template as a stack in that region
    /// would (the devserver's own is [`crate::REGION`]).
    pub fn parse(text: &str, overrides: &HashMap<String, String>) -> Result<Self, TemplateError> {
        let root = yaml_to_json(text)?;
        let mut parameters = HashMap::new();
        if let Some(params) = root.get("Parameters").and_then(Value::as_object) {
            for (name, spec) in params {
                let value = match spec.get("Default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::Bool(b)) => b.to_string(),
                    _ => String::new(),
                };
                parameters.insert(name.clone(), value);
            }
        }
        let mut region = crate::REGION.to_owned();
        for (name, value) in overrides {
            if name == "AWS::Region" {
                region.clone_from(value);
                continue;
            }
            if !parameters.contains_key(name) {
                return Err(unsupported(format!("no parameter {name} to set")));
            }
            parameters.insert(name.clone(), value.clone());
        }
        let mut template = Self { root, parameters, region, conditions: HashMap::new() };
        let names: Vec<String> = template
            .root
            .get("Conditions")
            .and_then(Value::as_object)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        for name in names {
            let value = template.condition(&name, 0)?;
            template.conditions.insert(name, value);
        }
        Ok(template)
    }

    /// A parameter's value.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// A named condition's value.
    pub fn is(&self, condition: &str) -> Result<bool, TemplateError> {
        self.conditions
            .get(condition)
            .copied()
            .ok_or_else(|| unsupported(format!("no condition {condition}")))
    }

    fn condition(&self, name: &str, depth: usize) -> Result<bool, TemplateError> {
        if let Some(v) = self.conditions.get(name) {
            return Ok(*v);
        }
        let expr = self
            .root
            .get("Conditions")
            .and_then(|c| c.get(name))
            .ok_or_else(|| unsupported(format!("no condition {name}")))?
            .clone();
        self.eval_condition(&expr, depth + 1)
    }

    fn eval_condition(&self, expr: &Value, depth: usize) -> Result<bool, TemplateError> {
        if depth > 32 {
            return Err(unsupported("conditions nest too deep"));
        }
        if let Some(Value::String(name)) = intrinsic(expr, "!Condition") {
            return self.condition(name, depth);
        }
        if let Some(args) = intrinsic(expr, "!Equals").and_then(Value::as_array) {
            let [a, b] = args.as_slice() else { return Err(unsupported("Fn::Equals takes two")) };
            return Ok(self.scalar(a)? == self.scalar(b)?);
        }
        if let Some(args) = intrinsic(expr, "!Not").and_then(Value::as_array) {
            let [a] = args.as_slice() else { return Err(unsupported("Fn::Not takes one")) };
            return Ok(!self.eval_condition(a, depth + 1)?);
        }
        if let Some(args) = intrinsic(expr, "!And").and_then(Value::as_array) {
            for a in args {
                if !self.eval_condition(a, depth + 1)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        if let Some(args) = intrinsic(expr, "!Or").and_then(Value::as_array) {
            for a in args {
                if self.eval_condition(a, depth + 1)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        Err(unsupported(format!("cannot evaluate condition {expr}")))
    }

    /// A scalar in a condition: a literal, or a `Ref` to a parameter or pseudo parameter.
    fn scalar(&self, v: &Value) -> Result<String, TemplateError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => match intrinsic(v, "!Ref").and_then(Value::as_str) {
                Some("AWS::Region") => Ok(self.region.clone()),
                Some(name) => self
                    .parameter(name)
                    .map(str::to_owned)
                    .ok_or_else(|| unsupported(format!("Ref {name} in a condition"))),
                None => Err(unsupported(format!("cannot evaluate {v} in a condition"))),
            },
        }
    }

    /// `value` with every `Fn::If` decided and every `AWS::NoValue` removed; `None` when the
    /// whole value is `AWS::NoValue`.
    pub fn resolve(&self, value: &Value) -> Result<Option<Value>, TemplateError> {
        if let Some(args) = intrinsic(value, "!If") {
            let Some([Value::String(cond), yes, no]) = args.as_array().map(Vec::as_slice) else {
                return Err(unsupported(format!("malformed Fn::If {args}")));
            };
            return self.resolve(if self.is(cond)? { yes } else { no });
        }
        if intrinsic(value, "!Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
            return Ok(None);
        }
        Ok(Some(match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(v) = self.resolve(item)? {
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    if let Some(v) = self.resolve(v)? {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }))
    }

    /// A resource, resolved, when it exists and its `Condition` (if any) holds.
    pub fn resource(&self, name: &str) -> Result<Option<Value>, TemplateError> {
        let Some(raw) = self.root.get("Resources").and_then(|r| r.get(name)) else {
            return Ok(None);
        };
        if let Some(cond) = raw.get("Condition").and_then(Value::as_str) {
            if !self.is(cond)? {
                return Ok(None);
            }
        }
        self.resolve(raw)
    }

    /// Every resource of `kind` that exists under the conditions, by logical name.
    pub fn resources_of(&self, kind: &str) -> Result<Vec<(String, Value)>, TemplateError> {
        let names: Vec<String> = self
            .root
            .get("Resources")
            .and_then(Value::as_object)
            .map(|r| {
                r.iter()
                    .filter(|(_, v)| v.get("Type").and_then(Value::as_str) == Some(kind))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for name in names {
            if let Some(r) = self.resource(&name)? {
                out.push((name, r));
            }
        }
        Ok(out)
    }
}

impl Template {
    /// A string that may be an `Fn::Sub` over parameters (its one-string form): the text
    /// with each `${Name}` replaced by the parameter's value and `${!Text}` written as
    /// `${Text}`, and the names of the parameters it used. A reference to a resource or a
    /// pseudo parameter other than `AWS::Region` is refused: the devserver has no value
    /// for it.
    pub fn substitute(&self, value: &Value) -> Result<(String, Vec<String>), TemplateError> {
        let text = match (value, intrinsic(value, "!Sub")) {
            (Value::String(s), _) => return Ok((s.clone(), Vec::new())),
            (_, Some(Value::String(s))) => s,
            _ => return Err(unsupported(format!("cannot substitute {value}"))),
        };
        let mut out = String::with_capacity(text.len());
        let mut used = Vec::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            rest = &rest[at + 2..];
            if let Some(literal) = rest.strip_prefix('!') {
                out.push_str("${");
                rest = literal;
                continue;
            }
            let end = rest.find('}').ok_or_else(|| unsupported("an unclosed ${ in Fn::Sub"))?;
            let name = &rest[..end];
            let value = match name {
                "AWS::Region" => self.region.as_str(),
                _ => self.parameter(name).ok_or_else(|| {
                    unsupported(format!("Fn::Sub of {name}, which is no parameter"))
                })?,
            };
            out.push_str(value);
            if !used.iter().any(|u| u == name) {
                used.push(name.to_owned());
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok((out, used))
    }
}

/// The name of the resource a `Ref` or `Fn::GetAtt` names (`X` in `!Ref X` and
/// `!GetAtt X.Attr`), if `value` is one.
pub fn referenced_resource(value: &Value) -> Option<String> {
    if let Some(name) = intrinsic(value, "!Ref").and_then(Value::as_str) {
        return Some(name.to_owned());
    }
    match intrinsic(value, "!GetAtt")? {
        Value::String(s) => s.split('.').next().map(str::to_owned),
        Value::Array(parts) => parts.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The parameter a `Ref` names, if `value` is a `Ref` to one of `template`'s parameters.
pub fn referenced_parameter<'t>(template: &'t Template, value: &Value) -> Option<&'t str> {
    let name = intrinsic(value, "!Ref").and_then(Value::as_str)?;
    template.parameter(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
Parameters:
  Mode: { Type: String, Default: a, AllowedValues: [a, b] }
  Name: { Type: String }
Conditions:
  IsB: !Equals [!Ref Mode, b]
  NotB: !Not [!Condition IsB]
  Both: !And [!Condition IsB, !Equals [!Ref Name, x]]
Resources:
  Thing:
    Type: AWS::X::Y
    Properties:
      List: [1, !If [IsB, 2, !Ref AWS::NoValue], 3]
      Pick: !If [NotB, first, second]
      Kept: !Sub "${Name}-z"
  OnlyB:
    Type: AWS::X::Y
    Condition: IsB
    Properties: {}
"#;

    fn with(mode: &str) -> Template {
        Template::parse(SMALL, &HashMap::from([("Mode".to_owned(), mode.to_owned())])).unwrap()
    }

    #[test]
    fn conditions_and_ifs_follow_the_parameters() {
        let a = with("a");
        let thing = a.resource("Thing").unwrap().unwrap();
        assert_eq!(thing["Properties"]["List"], serde_json::json!([1, 3]));
        assert_eq!(thing["Properties"]["Pick"], "first");
        assert_eq!(thing["Properties"]["Kept"], serde_json::json!({"!Sub": "${Name}-z"}));
        assert!(a.resource("OnlyB").unwrap().is_none());
        assert!(!a.is("Both").unwrap());

        let b = with("b");
        let thing = b.resource("Thing").unwrap().unwrap();
        assert_eq!(thing["Properties"]["List"], serde_json::json!([1, 2, 3]));
        assert_eq!(thing["Properties"]["Pick"], "second");
        assert!(b.resource("OnlyB").unwrap().is_some());
        assert_eq!(b.resources_of("AWS::X::Y").unwrap().len(), 2);
    }

    #[test]
    fn the_region_is_the_devservers_unless_overridden() {
        const REGIONAL: &str = r#"
Conditions:
  Virginia: !Equals [!Ref AWS::Region, us-east-1]
Resources: {}
"#;
        let here = Template::parse(REGIONAL, &HashMap::new()).unwrap();
        assert!(here.is("Virginia").unwrap());
        let ireland = HashMap::from([("AWS::Region".to_owned(), "eu-west-1".to_owned())]);
        assert!(!Template::parse(REGIONAL, &ireland).unwrap().is("Virginia").unwrap());
    }

    #[test]
    fn unknown_parameters_and_conditions_are_refused() {
        let err = Template::parse(SMALL, &HashMap::from([("Nope".to_owned(), "1".to_owned())]));
        assert!(err.is_err());
        assert!(with("a").is("Missing").is_err());
    }

    #[test]
    fn references_name_their_resource() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(referenced_resource(&v(r#"{"!Ref":"A"}"#)).as_deref(), Some("A"));
        assert_eq!(referenced_resource(&v(r#"{"!GetAtt":"B.Arn"}"#)).as_deref(), Some("B"));
        assert_eq!(referenced_resource(&v(r#"{"Fn::GetAtt":["C","Arn"]}"#)).as_deref(), Some("C"));
        assert_eq!(referenced_resource(&v(r#""plain""#)), None);
    }

    #[test]
    fn sub_fills_parameters_and_keeps_escaped_text() {
        let t = with("b");
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let (text, used) = t.substitute(&v(r#"{"!Sub":"m=${Mode} ${!Mode} ${Mode}"}"#)).unwrap();
        assert_eq!(text, "m=b ${Mode} b");
        assert_eq!(used, ["Mode"]);
        assert_eq!(t.substitute(&v(r#""plain ${x}""#)).unwrap(), ("plain ${x}".into(), vec![]));
        assert!(t.substitute(&v(r#"{"!Sub":"${Thing.Arn}"}"#)).is_err());
        assert!(t.substitute(&v(r#"{"!Sub":"${Mode"}"#)).is_err());
    }

    #[test]
    fn the_project_template_reads_in_both_modes() {
        for mode in ["redirect", "failover"] {
            let t = Template::parse(
                TEMPLATE,
                &HashMap::from([("DeliveryMode".to_owned(), mode.to_owned())]),
            )
            .unwrap();
            assert!(t.resource("Distribution").unwrap().is_some(), "{mode}");
        }
    }
}
