//! The API actions a grant allows or a plugin's verb declares, IAM-style
//! (`ec2:Describe*`): the list the egress checks every cloud call against.

use std::fmt;

/// The API actions a grant allows, IAM-style: `ec2:DescribeInstances`,
/// `ec2:Describe*`, `ec2:*`; ARM: `Microsoft.Compute/virtualMachines/read`,
/// `Microsoft.Compute/*`. Matching ignores case, as IAM does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionList(Vec<String>);

impl ActionList {
    pub fn new(actions: Vec<String>) -> Self {
        ActionList(actions)
    }

    /// Every action (a grant naming only a service, or `azure = "arm"`).
    pub fn everything(prefix: &str) -> Self {
        ActionList(vec![format!("{prefix}*")])
    }

    pub fn entries(&self) -> &[String] {
        &self.0
    }

    /// Whether the list allows `action`.
    pub fn allows(&self, action: &str) -> bool {
        self.0.iter().any(|pattern| wildcard_match(pattern, action))
    }

    /// Whether an entry allows every action of `prefix` (`ec2:`).
    pub fn is_unbounded(&self, prefix: &str) -> bool {
        self.0
            .iter()
            .any(|p| *p == format!("{prefix}*") || p == "*")
    }
}

impl fmt::Display for ActionList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// The API actions one verb of a plugin declared it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredActions {
    pub verb: String,
    pub actions: ActionList,
}

impl DeclaredActions {
    /// Why a call of `action` is refused, if it is: the verb did not
    /// declare it.
    pub fn refuses(&self, action: &str) -> Option<String> {
        (!self.actions.allows(action)).then(|| {
            let declared = if self.actions.entries().is_empty() {
                "none".to_string()
            } else {
                self.actions.to_string()
            };
            format!(
                "{action} is not among the API actions `{}` declares ({declared})",
                self.verb
            )
        })
    }
}

/// IAM's matching: `*` any run of characters, `?` one; case-insensitive.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verb_is_refused_what_it_did_not_declare() {
        let declared = DeclaredActions {
            verb: "snapshot".into(),
            actions: ActionList::new(vec!["ec2:CreateSnapshots".into(), "ec2:Describe*".into()]),
        };
        assert_eq!(declared.refuses("ec2:DescribeVolumes"), None);
        let reason = declared.refuses("ec2:TerminateInstances").unwrap();
        assert!(
            reason.contains(
                "ec2:TerminateInstances is not among the API actions `snapshot` declares"
            ),
            "{reason}"
        );
        let nothing = DeclaredActions {
            verb: "seal".into(),
            actions: ActionList::default(),
        };
        assert!(nothing
            .refuses("ec2:CreateTags")
            .unwrap()
            .contains("(none)"));
    }

    #[test]
    fn lists_match_like_iam() {
        let list = ActionList::new(vec!["ec2:Describe*".into(), "ec2:CreateSnapshots".into()]);
        assert!(list.allows("ec2:DescribeInstances"));
        assert!(list.allows("EC2:createsnapshots"));
        assert!(!list.allows("ec2:ModifySnapshotAttribute"));
        assert!(!list.allows("ec2:TerminateInstances"));
        assert!(!list.allows("s3:DescribeInstances"));
        assert!(ActionList::everything("ec2:").allows("ec2:TerminateInstances"));
        assert!(!ActionList::everything("ec2:").allows("s3:PutObject"));
        let arm = ActionList::new(vec!["Microsoft.Compute/virtualMachines/read".into()]);
        assert!(arm.allows("Microsoft.Compute/virtualMachines/read"));
        assert!(!arm.allows("Microsoft.Compute/virtualMachines/delete"));
    }
}
