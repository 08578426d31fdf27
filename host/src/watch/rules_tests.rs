//! Unit tests of rules files: parsing, matching, targets, templates.

use super::*;
use crate::watch::conditions::glob_match;
use serde_json::json;

const RULES: &str = r#"
[watch]
concurrency = 2
dedup_window = "10m"

[[rules]]
name = "gd"
playbook = "rules.toml"
case = "gd-{detail.id}"
target = { provider = "aws", id = "detail.resource.instanceDetails.instanceId", region = "region" }

[rules.match]
"detail-type" = "GuardDuty Finding"
"detail.type" = { glob = ["UnauthorizedAccess:EC2/*", "Backdoor:EC2/*"] }
"detail.severity" = { gte = 7 }
"detail.resource.resourceType" = ["Instance"]
"#;

fn rules(text: &str) -> Result<Rules, Diagnostics> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, text).unwrap();
    Rules::load(&path)
}

fn finding(severity: f64, kind: &str) -> Value {
    json!({
        "detail-type": "GuardDuty Finding",
        "region": "us-east-1",
        "detail": {
            "id": "abc/def",
            "type": kind,
            "severity": severity,
            "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-1"}}
        }
    })
}

#[test]
fn guardduty_style_rule_matches_and_extracts() {
    let r = rules(RULES).unwrap();
    assert_eq!(r.concurrency, 2);
    assert_eq!(r.dedup_window, Duration::from_secs(600));
    let hit = finding(8.0, "UnauthorizedAccess:EC2/SSHBruteForce");
    let rule = r.first_match(&hit).unwrap();
    let targets = rule.targets(&hit);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].label(), "aws:i-1");
    assert_eq!(targets[0].region.as_deref(), Some("us-east-1"));
    assert_eq!(
        rule.case_id(&hit, targets.first()).unwrap().as_str(),
        "gd-abc-def"
    );
    assert!(r
        .first_match(&finding(5.0, "Backdoor:EC2/C&CActivity.B"))
        .is_none());
    assert!(r
        .first_match(&finding(9.0, "Recon:IAMUser/TorIPCaller"))
        .is_none());
}

#[test]
fn unknown_fields_and_bad_conditions_are_located() {
    let e = rules(&RULES.replace("concurrency = 2", "concurency = 2")).unwrap_err();
    let d = &e.0[0];
    assert_eq!((d.line, d.field.as_str()), (3, "concurency"), "{e}");
    let e = rules(&RULES.replace("{ gte = 7 }", "{ atleast = 7 }")).unwrap_err();
    assert!(e.to_string().contains("unknown condition `atleast`"), "{e}");
    assert!(e.to_string().contains("rules.toml:15:21"), "{e}");
}

#[test]
fn paths_fan_out_over_arrays_and_globs_match() {
    let v = json!({"a": [{"b": 1}, {"b": 2}], "c": ["x", "y"]});
    assert_eq!(lookup(&v, "a.b"), vec![&json!(1), &json!(2)]);
    assert_eq!(lookup(&v, "a.1.b"), vec![&json!(2)]);
    assert_eq!(lookup(&v, "c"), vec![&json!("x"), &json!("y")]);
    assert!(glob_match("Backdoor:EC2/*", "Backdoor:EC2/C&CActivity.B"));
    assert!(glob_match("a?c*", "abcdef"));
    assert!(!glob_match("a?c", "abcd"));
    assert_eq!(CaseId::sanitize("../x y").as_str(), "x-y");
    assert!(!CaseId::is_valid("../etc"));
}

#[test]
fn an_events_account_is_a_target_account_only_when_it_is_12_digits() {
    let text = RULES.replace(
        r#"region = "region" }"#,
        r#"region = "region", account = "account" }"#,
    );
    let r = rules(&text).unwrap();
    let mut event = finding(8.0, "UnauthorizedAccess:EC2/SSHBruteForce");
    event["account"] = json!("111122223333");
    let rule = r.first_match(&event).unwrap();
    let targets = rule.targets(&event);
    assert_eq!(targets[0].account.as_deref(), Some("111122223333"));
    // A hostile event cannot steer `{account}` of a grant's role ARN.
    event["account"] = json!("111122223333:role/Admin");
    assert!(rule.targets(&event).is_empty());
}
