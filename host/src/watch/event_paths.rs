//! Reading an event (a JSON object) by dotted path: every value at a path
//! (arrays fan out), the text of a scalar, and `{path}` templates.

use serde_json::Value;

use crate::target::TargetSpec;

pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Every value at a dotted path (see the module docs).
pub fn lookup<'a>(event: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![event];
    for segment in path.split('.') {
        let mut next = Vec::new();
        for value in current {
            descend(value, segment, &mut next);
        }
        current = next;
    }
    // A path that ends on an array means its elements.
    current
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

fn descend<'a>(value: &'a Value, segment: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if let Some(v) = map.get(segment) {
                out.push(v);
            }
        }
        Value::Array(items) => match segment.parse::<usize>() {
            Ok(i) => out.extend(items.get(i)),
            Err(_) => {
                for item in items {
                    descend(item, segment, out);
                }
            }
        },
        _ => {}
    }
}

/// Replace `{dotted.path}` with the event's value there; `{target.id}`,
/// `{target.provider}` and `{target}` name the first target. Unknown
/// paths become `unknown`.
pub fn render(template: &str, event: &Value, target: Option<&TargetSpec>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let key = after[..close].trim();
        let value = match (key, target) {
            ("target", Some(t)) => Some(t.label()),
            ("target.id", Some(t)) => Some(t.id.clone()),
            ("target.provider", Some(t)) => Some(t.provider.clone()),
            _ => lookup(event, key).into_iter().find_map(scalar_text),
        };
        out.push_str(value.as_deref().unwrap_or("unknown"));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}
