//! Unit tests of playbook parsing and its file-level checks.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::diagnostics::{Diagnostic, Diagnostics};

const GOOD: &str = r#"
[playbook]
name = "demo"

[plugins.test]
path = "t.wasm"
allow_hosts = ["127.0.0.1:8080"]
limits = { memory_mb = 64, timeout = "5s" }

[[steps]]
id = "snap"
plugin = "test"
action = "snapshot"

[[steps]]
id = "iso"
plugin = "test"
action = "isolate"
after = ["snap"]
timeout = "30s"
retries = 2
"#;

fn parse(text: &str) -> Result<Playbook, Diagnostics> {
    Playbook::parse(Path::new("pb/demo.toml"), text)
}

fn first(text: &str) -> Diagnostic {
    parse(text).unwrap_err().0.remove(0)
}

#[test]
fn a_good_playbook_parses_with_its_limits_and_relative_paths() {
    let pb = parse(GOOD).unwrap();
    assert_eq!(pb.steps.len(), 2);
    assert_eq!(pb.plugins["test"].path, Path::new("pb/t.wasm"));
    assert_eq!(pb.plugins["test"].limits.memory_bytes, 64 << 20);
    assert_eq!(pb.plugins["test"].limits.timeout, Duration::from_secs(5));
    assert_eq!(
        pb.step("iso").unwrap().timeout,
        Some(Duration::from_secs(30))
    );
}

#[test]
fn unknown_field_names_line_column_and_field() {
    let d = first(&GOOD.replace("retries = 2", "retries = 2\nretry = 3"));
    assert_eq!((d.line, d.field.as_str()), (22, "retry"));
    assert!(d.message.contains("unknown field"), "{d}");
    assert!(d.to_string().starts_with("pb/demo.toml:22:1:"), "{d}");
}

#[test]
fn syntax_error_is_located() {
    let d = first("[playbook]\nname = \"x\"\n[[steps]\n");
    assert_eq!(d.line, 3);
}

#[test]
fn unknown_plugin_and_step_are_reported_at_their_value() {
    let d = first(&GOOD.replace(
        "plugin = \"test\"\naction = \"isolate\"",
        "plugin = \"nope\"\naction = \"isolate\"",
    ));
    assert_eq!((d.line, d.column), (17, 10));
    assert!(d.message.contains("unknown plugin `nope`"));
    assert!(d.hint.unwrap().contains("test"));
    let d = first(&GOOD.replace("after = [\"snap\"]", "after = [\"snp\"]"));
    assert_eq!(d.line, 19);
    assert!(d.message.contains("unknown step `snp`"));
}

#[test]
fn cycles_are_reported_with_their_path() {
    let text = GOOD.replace(
        "action = \"snapshot\"",
        "action = \"snapshot\"\nafter = [\"iso\"]",
    );
    let d = first(&text);
    assert!(d.message.contains("dependency cycle"), "{d}");
    assert!(d.message.contains("snap") && d.message.contains("iso"));
}

#[test]
fn sealed_steps_depend_only_on_sealed_steps() {
    let sealed = format!("{GOOD}\n[[steps]]\nid = \"vault\"\nplugin = \"test\"\naction = \"store\"\nphase = \"sealed\"\n");
    let pb = parse(&sealed).unwrap();
    assert_eq!(pb.step("vault").unwrap().phase, StepPhase::Sealed);
    assert_eq!(pb.step("snap").unwrap().phase, StepPhase::Target);
    let d = first(&sealed.replace(
        "phase = \"sealed\"",
        "phase = \"sealed\"\nafter = [\"iso\"]",
    ));
    assert_eq!((d.line, d.field.as_str()), (28, "steps.vault.after"));
    assert!(d.message.contains("per-target step"), "{d}");
    let d = first(&sealed.replace("after = [\"snap\"]", "after = [\"vault\"]"));
    assert_eq!((d.line, d.field.as_str()), (19, "steps.iso.after"));
    let d = first(&sealed.replace("\"sealed\"", "\"soon\""));
    assert_eq!((d.line, d.field.as_str()), (27, "steps.vault.phase"));
}

#[test]
fn duplicate_ids_and_bad_values_are_all_reported() {
    let text = GOOD
        .replace("id = \"iso\"", "id = \"snap\"")
        .replace("\"5s\"", "\"soon\"");
    let all = parse(&text).unwrap_err().0;
    assert!(all.iter().any(|d| d.message.contains("duplicate step id")));
    assert!(all.iter().any(|d| d.field == "plugins.test.limits.timeout"));
}

#[test]
fn retries_are_capped_with_a_located_diagnostic() {
    let text = GOOD.replace("retries = 2", "retries = 11");
    let d = first(&text);
    assert_eq!(d.field, "steps.iso.retries", "{d:?}");
    assert!(d.message.contains("limit of 10"), "{d:?}");
    assert_eq!(
        d.line,
        text.lines().position(|l| l.starts_with("retries")).unwrap() + 1
    );
    let ok = parse(&GOOD.replace("retries = 2", "retries = 10")).unwrap();
    assert_eq!(ok.steps[1].retries, 10);
}

#[test]
fn an_input_may_not_take_a_host_set_parameters_name() {
    let text = format!("{GOOD}\n[inputs.isolation_keeps]\ntype = \"string\"\n");
    let d = first(&text);
    assert_eq!(d.field, "inputs.isolation_keeps");
    assert!(d.message.contains("set by the host"), "{}", d.message);
}
