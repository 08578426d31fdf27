//! Targets: the machines a playbook runs against, given as `provider:id`
//! on the command line, in a playbook's `[targets]`, or in a targets file
//! (one per line, `#` comments, optional `region=`/`account=`/`key=value`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::diagnostics::{Diagnostics, SourceMap};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TargetSpec {
    pub provider: String,
    pub id: String,
    pub region: Option<String>,
    pub account: Option<String>,
    pub attributes: Vec<(String, String)>,
}

impl TargetSpec {
    /// Parse `provider:id`.
    pub fn parse(text: &str) -> Result<TargetSpec, String> {
        let text = text.trim();
        let Some((provider, id)) = text.split_once(':') else {
            return Err(format!("target `{text}` is not `provider:id`"));
        };
        let valid_provider = !provider.is_empty()
            && provider
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_provider {
            return Err(format!(
                "target `{text}`: provider `{provider}` must be lowercase letters, digits or `-`"
            ));
        }
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            return Err(format!("target `{text}`: the id is empty or has spaces"));
        }
        Ok(TargetSpec {
            provider: provider.to_string(),
            id: id.to_string(),
            region: None,
            account: None,
            attributes: Vec::new(),
        })
    }

    /// Read a targets file.
    pub fn load_file(path: &Path) -> Result<Vec<TargetSpec>, Diagnostics> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostics::unreadable(path, "targets file", &e))?;
        let source = SourceMap::new(path, &text);
        let mut targets = Vec::new();
        let mut problems = Vec::new();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let content = line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let lead = line.len() - line.trim_start().len();
            let mut words = content.split_whitespace();
            let first = words.next().unwrap_or_default();
            match TargetSpec::parse(first) {
                Ok(mut target) => {
                    for word in words {
                        match word.split_once('=') {
                            Some(("region", v)) => target.region = Some(v.to_string()),
                            Some(("account", v)) => target.account = Some(v.to_string()),
                            Some((k, v)) if !k.is_empty() => {
                                target.attributes.push((k.to_string(), v.to_string()))
                            }
                            _ => problems.push(source.diagnostic(
                                start + lead..start + lead,
                                "target",
                                format!("`{word}` is not key=value"),
                                Some("write `aws:i-0abc region=us-east-1`"),
                            )),
                        }
                    }
                    targets.push(target);
                }
                Err(e) => problems.push(source.diagnostic(
                    start + lead..start + lead,
                    "target",
                    e,
                    Some("one target per line, as `provider:id`"),
                )),
            }
        }
        if problems.is_empty() {
            Ok(targets)
        } else {
            Err(Diagnostics(problems))
        }
    }

    /// The `provider:id` label used in journals and output.
    pub fn label(&self) -> String {
        format!("{}:{}", self.provider, self.id)
    }
}

impl std::fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.provider, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_provider_and_id() {
        let t = TargetSpec::parse("aws:i-0abc").unwrap();
        assert_eq!((t.provider.as_str(), t.id.as_str()), ("aws", "i-0abc"));
        assert!(TargetSpec::parse("i-0abc").is_err());
        assert!(TargetSpec::parse("AWS:x").is_err());
        assert!(TargetSpec::parse("aws:").is_err());
    }

    #[test]
    fn targets_file_with_comments_and_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.txt");
        std::fs::write(
            &path,
            "# fleet\naws:i-1 region=eu-west-1 owner=ops\n\n  test:b # trailing\n",
        )
        .unwrap();
        let targets = TargetSpec::load_file(&path).unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].region.as_deref(), Some("eu-west-1"));
        assert_eq!(targets[0].attributes, vec![("owner".into(), "ops".into())]);
        std::fs::write(&path, "aws:i-1\nbogus\n").unwrap();
        let d = TargetSpec::load_file(&path).unwrap_err().0.remove(0);
        assert_eq!(d.line, 2);
    }
}
