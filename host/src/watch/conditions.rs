//! The conditions of a rule's `[rules.match]`: equality, one of, globs,
//! numeric bounds, existence, negations; how each holds on the values an
//! event has at a path.

use serde_json::Value;

/// A test on the values at one path; all parts must hold.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    pub eq: Option<Value>,
    pub ne: Option<Value>,
    pub one_of: Option<Vec<Value>>,
    pub not_in: Option<Vec<Value>>,
    pub glob: Option<Vec<String>>,
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
    pub exists: Option<bool>,
}

impl Condition {
    /// A condition as a rules file writes it: a value (equality), a list
    /// (one of), or a table of tests.
    pub fn parse(value: &toml::Value) -> Result<Condition, String> {
        let json = |v: &toml::Value| serde_json::to_value(v).map_err(|e| e.to_string());
        let number = |key: &str, v: &toml::Value| match v {
            toml::Value::Integer(i) => Ok(*i as f64),
            toml::Value::Float(f) => Ok(*f),
            _ => Err(format!("`{key}` needs a number")),
        };
        let list = |key: &str, v: &toml::Value| match v {
            toml::Value::Array(a) => a.iter().map(json).collect::<Result<Vec<_>, _>>(),
            _ => Err(format!("`{key}` needs a list")),
        };
        let mut c = Condition::default();
        match value {
            toml::Value::Table(table) => {
                if table.is_empty() {
                    return Err("an empty condition".into());
                }
                for (key, v) in table {
                    match key.as_str() {
                        "eq" => c.eq = Some(json(v)?),
                        "ne" => c.ne = Some(json(v)?),
                        "in" => c.one_of = Some(list(key, v)?),
                        "not_in" => c.not_in = Some(list(key, v)?),
                        "glob" => {
                            c.glob = Some(match v {
                                toml::Value::String(s) => vec![s.clone()],
                                toml::Value::Array(a) => a
                                    .iter()
                                    .map(|g| g.as_str().map(str::to_string))
                                    .collect::<Option<Vec<_>>>()
                                    .ok_or("`glob` needs a string or a list of strings")?,
                                _ => {
                                    return Err("`glob` needs a string or a list of strings".into())
                                }
                            })
                        }
                        "gt" => c.gt = Some(number(key, v)?),
                        "gte" => c.gte = Some(number(key, v)?),
                        "lt" => c.lt = Some(number(key, v)?),
                        "lte" => c.lte = Some(number(key, v)?),
                        "exists" => {
                            c.exists = Some(v.as_bool().ok_or("`exists` needs true or false")?)
                        }
                        other => return Err(format!("unknown condition `{other}`")),
                    }
                }
            }
            toml::Value::Array(_) => c.one_of = Some(list("in", value)?),
            other => c.eq = Some(json(other)?),
        }
        Ok(c)
    }

    /// Whether the values found at a path satisfy this condition.
    pub fn holds(&self, values: &[&Value]) -> bool {
        if let Some(exists) = self.exists {
            if exists == values.is_empty() {
                return false;
            }
        }
        let value_tests = self.eq.is_some()
            || self.one_of.is_some()
            || self.glob.is_some()
            || self.gt.is_some()
            || self.gte.is_some()
            || self.lt.is_some()
            || self.lte.is_some();
        if let Some(ne) = &self.ne {
            if values.iter().any(|v| equal(v, ne)) {
                return false;
            }
        }
        if let Some(not_in) = &self.not_in {
            if values.iter().any(|v| not_in.iter().any(|n| equal(v, n))) {
                return false;
            }
        }
        if !value_tests {
            return true;
        }
        values.iter().any(|v| self.value_holds(v))
    }

    fn value_holds(&self, v: &Value) -> bool {
        if let Some(eq) = &self.eq {
            if !equal(v, eq) {
                return false;
            }
        }
        if let Some(set) = &self.one_of {
            if !set.iter().any(|s| equal(v, s)) {
                return false;
            }
        }
        if let Some(globs) = &self.glob {
            let Some(text) = v.as_str() else {
                return false;
            };
            if !globs.iter().any(|g| glob_match(g, text)) {
                return false;
            }
        }
        let bounds = [self.gt, self.gte, self.lt, self.lte];
        if bounds.iter().any(Option::is_some) {
            let Some(n) = as_number(v) else {
                return false;
            };
            if self.gt.is_some_and(|b| n <= b)
                || self.gte.is_some_and(|b| n < b)
                || self.lt.is_some_and(|b| n >= b)
                || self.lte.is_some_and(|b| n > b)
            {
                return false;
            }
        }
        true
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// `*` matches any run of characters, `?` any one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}
