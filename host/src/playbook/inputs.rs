//! What a run may set: a playbook's `[inputs]`, each with a type and
//! optionally the values or the pattern it must have and a default.
//! `irhost run --param`, the API's `params` and a watch rule's templates
//! may set only these; the rest (an account to share evidence with, a
//! bucket, an endpoint, a CIDR) lives in the playbook.
//!
//! ```toml
//! [inputs.ticket]
//! type = "string"              # string, integer, number, boolean
//! pattern = "INC-[0-9]+"       # the whole value must match
//! [inputs.retention_days]
//! type = "integer"
//! values = [30, 365]           # one of these
//! default = 30                 # set when a run does not
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use toml::Spanned;

use super::raw::RawInput;
use crate::diagnostics::{Diagnostic, SourceMap};

/// The type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    String,
    Integer,
    Number,
    Boolean,
}

impl InputType {
    pub fn parse(text: &str) -> Result<InputType, String> {
        match text {
            "string" => Ok(InputType::String),
            "integer" => Ok(InputType::Integer),
            "number" => Ok(InputType::Number),
            "boolean" => Ok(InputType::Boolean),
            other => Err(format!(
                "unknown input type `{other}`: string, integer, number or boolean"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
        }
    }

    /// `value` as this type; text (from the command line or a template) is
    /// read as one.
    fn coerce(self, value: &Value) -> Option<Value> {
        match (self, value) {
            (InputType::String, Value::String(_)) => Some(value.clone()),
            (InputType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => {
                Some(value.clone())
            }
            (InputType::Number, Value::Number(_)) => Some(value.clone()),
            (InputType::Boolean, Value::Bool(_)) => Some(value.clone()),
            (InputType::Integer, Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
            (InputType::Number, Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            (InputType::Boolean, Value::String(s)) => {
                s.trim().parse::<bool>().ok().map(Value::Bool)
            }
            _ => None,
        }
    }
}

/// One declared input.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub name: String,
    pub kind: InputType,
    /// The values it may have, when listed.
    pub values: Option<Vec<Value>>,
    /// The pattern its whole (string) value must match, when given.
    pub pattern: Option<String>,
    pub default: Option<Value>,
    pub description: String,
}

impl InputSpec {
    /// Check (and type) one value of this input.
    pub fn check(&self, value: &Value) -> Result<Value, String> {
        let name = &self.name;
        let typed = self.kind.coerce(value).ok_or_else(|| {
            format!(
                "parameter `{name}`: {value} is not of type {}",
                self.kind.as_str()
            )
        })?;
        if let Some(values) = &self.values {
            if !values.contains(&typed) {
                let listed: Vec<String> = values.iter().map(Value::to_string).collect();
                return Err(format!(
                    "parameter `{name}`: {typed} is not one of {}",
                    listed.join(", ")
                ));
            }
        }
        if let (Some(pattern), Some(text)) = (&self.pattern, typed.as_str()) {
            if !full_match(pattern, text)? {
                return Err(format!(
                    "parameter `{name}`: `{text}` does not match the pattern `{pattern}`"
                ));
            }
        }
        Ok(typed)
    }
}

/// Whether all of `text` matches `pattern`.
pub fn full_match(pattern: &str, text: &str) -> Result<bool, String> {
    let anchored = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("`{pattern}` is not a pattern: {e}"))?;
    Ok(anchored.is_match(text))
}

/// A playbook's declared inputs, by name.
#[derive(Debug, Clone, Default)]
pub struct Inputs(pub BTreeMap<String, InputSpec>);

impl Inputs {
    /// Check a run's parameters: each one declared and valid; the defaults
    /// of those not given are added. The error names the parameter.
    pub fn check(&self, params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
        let mut checked = Map::new();
        for (name, value) in params {
            let Some(spec) = self.0.get(name) else {
                return Err(if self.0.is_empty() {
                    format!("parameter `{name}`: the playbook declares no inputs, so a run may set no parameters (declare it under [inputs] in the playbook)")
                } else {
                    format!(
                        "parameter `{name}` is not an input of the playbook: its inputs are {}",
                        self.0.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                });
            };
            checked.insert(name.clone(), spec.check(value)?);
        }
        for (name, spec) in &self.0 {
            if let Some(default) = &spec.default {
                checked
                    .entry(name.clone())
                    .or_insert_with(|| default.clone());
            }
        }
        Ok(checked)
    }
}

/// Parameters the host sets from a plugin's grant and the environment
/// (the isolation's kept services, the cloud's endpoint and region): no
/// input may carry their names, or a run could override them.
pub const HOST_SET: &[&str] = &["isolation_keeps", "endpoint_url", "region"];

/// The playbook's `[inputs]`, checked where each is written.
pub(super) fn from_raw(
    source: &SourceMap,
    raw: BTreeMap<String, Spanned<RawInput>>,
    problems: &mut Vec<Diagnostic>,
) -> Inputs {
    let mut inputs = BTreeMap::new();
    for (name, spanned) in raw {
        let span = spanned.span();
        let raw = spanned.into_inner();
        let field = |f: &str| format!("inputs.{name}.{f}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            problems.push(source.diagnostic(
                span.clone(),
                &format!("inputs.{name}"),
                format!("input name `{name}` must be letters, digits or `_`"),
                None,
            ));
        }
        if HOST_SET.contains(&name.as_str()) {
            problems.push(source.diagnostic(
                span.clone(),
                &format!("inputs.{name}"),
                format!("`{name}` is set by the host from the plugin's grant and environment: a run cannot set it"),
                Some("security settings live in the playbook's grant or config, which a run does not change"),
            ));
        }
        let kind = match InputType::parse(raw.kind.get_ref()) {
            Ok(kind) => kind,
            Err(e) => {
                problems.push(source.diagnostic(raw.kind.span(), &field("type"), e, None));
                continue;
            }
        };
        let json = |v: &toml::Value| serde_json::to_value(v).unwrap_or(Value::Null);
        let mut spec = InputSpec {
            name: name.clone(),
            kind,
            values: None,
            pattern: None,
            default: None,
            description: raw.description,
        };
        if let Some(p) = &raw.pattern {
            match (kind, full_match(p.get_ref(), "")) {
                (InputType::String, Ok(_)) => spec.pattern = Some(p.get_ref().clone()),
                (InputType::String, Err(e)) => {
                    problems.push(source.diagnostic(p.span(), &field("pattern"), e, None))
                }
                _ => problems.push(source.diagnostic(
                    p.span(),
                    &field("pattern"),
                    "a pattern applies to a string input",
                    None,
                )),
            }
        }
        if let Some(values) = &raw.values {
            let mut typed = Vec::new();
            for v in values.get_ref() {
                match kind.coerce(&json(v)).filter(|t| t == &json(v)) {
                    Some(t) => typed.push(t),
                    None => problems.push(source.diagnostic(
                        values.span(),
                        &field("values"),
                        format!("{v} is not of type {}", kind.as_str()),
                        None,
                    )),
                }
            }
            spec.values = Some(typed);
        }
        if let Some(default) = &raw.default {
            match spec.check(&json(default.get_ref())) {
                Ok(v) => spec.default = Some(v),
                Err(e) => problems.push(source.diagnostic(
                    default.span(),
                    &field("default"),
                    e.replace(&format!("parameter `{name}`: "), ""),
                    None,
                )),
            }
        }
        inputs.insert(name, spec);
    }
    Inputs(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs() -> Inputs {
        let mut map = BTreeMap::new();
        map.insert(
            "ticket".to_string(),
            InputSpec {
                name: "ticket".into(),
                kind: InputType::String,
                values: None,
                pattern: Some("INC-[0-9]+".into()),
                default: None,
                description: String::new(),
            },
        );
        map.insert(
            "days".to_string(),
            InputSpec {
                name: "days".into(),
                kind: InputType::Integer,
                values: Some(vec![json!(30), json!(365)]),
                pattern: None,
                default: Some(json!(30)),
                description: String::new(),
            },
        );
        Inputs(map)
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn only_declared_valid_parameters_pass_and_defaults_fill_in() {
        let checked = inputs()
            .check(&params(json!({"ticket": "INC-42"})))
            .unwrap();
        assert_eq!(
            Value::Object(checked),
            json!({"ticket": "INC-42", "days": 30})
        );
        // Text is read as the declared type.
        let checked = inputs().check(&params(json!({"days": "365"}))).unwrap();
        assert_eq!(checked["days"], json!(365));
        for (bad, says) in [
            (
                json!({"forensic_account": "999999999999"}),
                "`forensic_account` is not an input",
            ),
            (json!({"ticket": "INC-42; rm"}), "does not match"),
            (json!({"ticket": "xINC-42"}), "does not match"),
            (json!({"days": 7}), "not one of 30, 365"),
            (json!({"days": "many"}), "is not of type integer"),
        ] {
            let e = inputs().check(&params(bad.clone())).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = Inputs::default()
            .check(&params(json!({"x": 1})))
            .unwrap_err();
        assert!(e.contains("declares no inputs"), "{e}");
    }
}
