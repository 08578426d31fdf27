//! Targets: the machines a playbook runs against, given as `provider:id`
//! on the command line, in a playbook's `[targets]`, or in a targets file
//! (one per line, `#` comments, optional `region=`/`account=`/`key=value`).
//! AWS targets may carry their account and region in the id
//! (`aws:111122223333/eu-west-1/i-0abc`) or be an instance ARN
//! (`arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc`); an AWS account
//! is 12 digits.

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
    /// Parse `provider:id`, `aws:ACCOUNT/REGION/ID` or an EC2 instance ARN.
    pub fn parse(text: &str) -> Result<TargetSpec, String> {
        let text = text.trim();
        if text.starts_with("arn:") {
            return Self::parse_instance_arn(text);
        }
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
        let mut target = TargetSpec {
            provider: provider.to_string(),
            id: id.to_string(),
            region: None,
            account: None,
            attributes: Vec::new(),
        };
        if provider == "aws" && id.contains('/') {
            let [account, region, instance] = id.splitn(3, '/').collect::<Vec<_>>()[..] else {
                return Err(format!(
                    "target `{text}`: an AWS target is `aws:ID` or `aws:ACCOUNT/REGION/ID`"
                ));
            };
            if region.is_empty() || instance.is_empty() || instance.contains('/') {
                return Err(format!(
                    "target `{text}`: an AWS target is `aws:ID` or `aws:ACCOUNT/REGION/ID`"
                ));
            }
            target
                .set_account(account)
                .map_err(|e| format!("target `{text}`: {e}"))?;
            target.region = Some(region.to_string());
            target.id = instance.to_string();
        }
        Ok(target)
    }

    /// `arn:PARTITION:ec2:REGION:ACCOUNT:instance/ID`.
    fn parse_instance_arn(text: &str) -> Result<TargetSpec, String> {
        let bad = || {
            format!(
                "target `{text}` is not an EC2 instance ARN: arn:aws:ec2:REGION:ACCOUNT:instance/ID"
            )
        };
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let ["arn", partition, "ec2", region, account, resource] = parts[..] else {
            return Err(bad());
        };
        let id = resource.strip_prefix("instance/").ok_or_else(bad)?;
        if !partition.starts_with("aws")
            || region.is_empty()
            || id.is_empty()
            || id.contains(['/', ' '])
        {
            return Err(bad());
        }
        let mut target = TargetSpec::parse(&format!("aws:{id}"))?;
        target
            .set_account(account)
            .map_err(|e| format!("target `{text}`: {e}"))?;
        target.region = Some(region.to_string());
        Ok(target)
    }

    /// Set the target's account; an AWS account is 12 digits (it selects
    /// the role a grant assumes, so nothing else may pass for one).
    pub fn set_account(&mut self, account: &str) -> Result<(), String> {
        if self.provider == "aws"
            && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("`{account}` is not an AWS account: 12 digits"));
        }
        self.account = Some(account.to_string());
        Ok(())
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
                            Some(("account", v)) => {
                                if let Err(e) = target.set_account(v) {
                                    problems.push(source.diagnostic(
                                        start + lead..start + lead,
                                        "target.account",
                                        e,
                                        None,
                                    ));
                                }
                            }
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
    fn aws_targets_carry_account_and_region_in_the_id_or_an_arn() {
        let t = TargetSpec::parse("aws:111122223333/eu-west-1/i-0abc").unwrap();
        assert_eq!(t.id, "i-0abc");
        assert_eq!(t.account.as_deref(), Some("111122223333"));
        assert_eq!(t.region.as_deref(), Some("eu-west-1"));
        let t = TargetSpec::parse("arn:aws:ec2:us-west-2:444455556666:instance/i-0def").unwrap();
        assert_eq!(t.label(), "aws:i-0def");
        assert_eq!(t.account.as_deref(), Some("444455556666"));
        assert_eq!(t.region.as_deref(), Some("us-west-2"));
        for bad in [
            "aws:1234/eu-west-1/i-0abc",
            "aws:111122223333/eu-west-1",
            "aws:111122223333//i-1",
            "arn:aws:ec2:us-west-2:444455556666:volume/vol-1",
            "arn:aws:s3:::bucket",
            "arn:aws:ec2:us-west-2:4444:instance/i-1",
        ] {
            assert!(TargetSpec::parse(bad).is_err(), "{bad}");
        }
        let mut t = TargetSpec::parse("aws:i-1").unwrap();
        assert!(t.set_account("111111111111:role/Admin").is_err());
        assert_eq!(t.account, None);
        let mut other = TargetSpec::parse("test:a").unwrap();
        other.set_account("anything").unwrap();
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
        std::fs::write(&path, "aws:i-1 account=12345\n").unwrap();
        let d = TargetSpec::load_file(&path).unwrap_err().0.remove(0);
        assert!(d.message.contains("12 digits"), "{}", d.message);
    }
}
