//! The house rules of `host/src`, checked on the sources: every
//! `crate::`/`super::` path (in `use` lines and inline) and every
//! `irhost::` path of `main.rs` names a module its layer may use (see the
//! crate doc of `host/src/lib.rs`); no file is over 600 lines; `main.rs`
//! is under 100.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of the crate and the modules it may use, bottom
/// up. A module may always use itself.
const LAYERS: &[(&str, &[&str])] = &[
    // 1. vocabulary: nothing of the crate.
    ("diagnostics", &[]),
    ("events", &[]),
    ("case_id", &[]),
    ("digest", &[]),
    ("egress", &[]),
    ("http_auth", &[]),
    // 2. targets, the journal, the runtime.
    ("target", &["diagnostics"]),
    ("journal", &["digest", "events"]),
    ("runtime", &["digest", "egress", "events"]),
    // 3. cloud bindings, custody.
    ("cloud", &["egress", "events", "target"]),
    ("custody", &["digest", "events", "journal", "runtime"]),
    // 4. playbooks.
    (
        "playbook",
        &[
            "cloud",
            "diagnostics",
            "digest",
            "egress",
            "runtime",
            "target",
        ],
    ),
    // 5. plans.
    (
        "plan",
        &[
            "cloud",
            "diagnostics",
            "digest",
            "egress",
            "playbook",
            "runtime",
            "target",
        ],
    ),
    // 6. the engine.
    (
        "engine",
        &[
            "case_id",
            "custody",
            "diagnostics",
            "digest",
            "events",
            "journal",
            "plan",
            "playbook",
            "runtime",
            "target",
        ],
    ),
    // 7. the facade.
    (
        "facade",
        &[
            "case_id",
            "cloud",
            "custody",
            "diagnostics",
            "digest",
            "egress",
            "engine",
            "events",
            "journal",
            "plan",
            "playbook",
            "runtime",
            "target",
        ],
    ),
    // 8. front ends: the facade and the vocabulary below it.
    (
        "watch",
        &[
            "case_id",
            "diagnostics",
            "digest",
            "events",
            "facade",
            "http_auth",
            "journal",
            "target",
        ],
    ),
    (
        "serve",
        &[
            "case_id",
            "custody",
            "diagnostics",
            "digest",
            "events",
            "facade",
            "http_auth",
            "target",
        ],
    ),
    (
        "cli",
        &[
            "case_id",
            "custody",
            "diagnostics",
            "digest",
            "events",
            "facade",
            "http_auth",
            "journal",
            "serve",
            "target",
            "watch",
        ],
    ),
];

/// Modules no front end may reach past the facade.
const BEHIND_THE_FACADE: &[&str] = &["engine", "runtime", "cloud", "plan", "playbook"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `plan/load.rs` is `[plan, load]`,
/// `plan/mod.rs` is `[plan]`, `lib.rs` is `[]`.
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Code without comments (line comments; doc comments are comments).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal (a URL) is not a comment.
            Some(i) if line[..i].matches('"').count() % 2 == 0 => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file's `crate::` and `super::` paths name,
/// with the line of each (a group `crate::{a, b::C}` names each of its
/// items). `super::` is resolved from the file's module; after an inline
/// `mod NAME {` (test modules come last) one level deeper.
fn referenced_modules(module: &[String], text: &str) -> Vec<(usize, String)> {
    let code = code_of(text);
    // The module each line is in.
    let mut base = module.to_vec();
    let mut bases = Vec::new();
    for line in code.lines() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed
            .strip_prefix("mod ")
            .or_else(|| trimmed.strip_prefix("pub mod "))
            .and_then(|rest| rest.trim_end().strip_suffix('{'))
        {
            base.push(name.trim().to_string());
        }
        bases.push(base.clone());
    }
    let mut found = Vec::new();
    for prefix in ["crate::", "super::"] {
        for (i, _) in code.match_indices(prefix) {
            let preceded = code[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':');
            if preceded {
                continue;
            }
            let line = code[..i].matches('\n').count();
            let mut path = if prefix == "crate::" {
                Vec::new()
            } else {
                bases[line].clone()
            };
            let mut rest = &code[i + prefix.len()..];
            if prefix == "super::" {
                path.pop();
                while let Some(after) = rest.strip_prefix("super::") {
                    path.pop();
                    rest = after;
                }
            }
            let modules = match path.first() {
                Some(top) => vec![top.clone()],
                None => segments(rest),
            };
            found.extend(modules.into_iter().map(|m| (line + 1, m)));
        }
    }
    found.sort();
    found
}

/// The first segments a path's rest names: one for `plan::X`, each item's
/// for a group `{plan, engine::Y}`.
fn segments(rest: &str) -> Vec<String> {
    let Some(group) = rest.strip_prefix('{') else {
        return first_segment(rest).into_iter().collect();
    };
    let mut depth = 0usize;
    let mut items = vec![String::new()];
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(item) = items.last_mut() {
            item.push(c);
        }
    }
    items
        .iter()
        .filter_map(|item| first_segment(item.trim()))
        .collect()
}

/// The first path segment of `text` (`plan` of `plan::PlaybookPlan`).
fn first_segment(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    name.starts_with(|c: char| c.is_ascii_lowercase())
        .then_some(name)
}

fn allowed(module: &str) -> Option<BTreeSet<&'static str>> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(name, uses)| uses.iter().copied().chain([*name]).collect())
}

#[test]
fn layering_every_module_uses_only_the_layers_it_may() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let path = module_path(file);
        let Some(top) = path.first() else {
            continue; // lib.rs and main.rs: checked below
        };
        seen_modules.insert(top.clone());
        let Some(allowed) = allowed(top) else {
            problems.push(format!(
                "{}: module `{top}` has no layer in tests/layering.rs (and in the crate doc of lib.rs)",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, module) in referenced_modules(&path, &text) {
            if !allowed.contains(module.as_str()) {
                problems.push(format!(
                    "{}:{line}: `{top}` may not use `{module}`",
                    file.display()
                ));
            }
        }
    }
    for (name, _) in LAYERS {
        assert!(
            seen_modules.contains(*name),
            "LAYERS names `{name}`, which is not a module of host/src"
        );
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn layering_front_ends_stay_in_front_of_the_facade() {
    for front in ["cli", "watch", "serve"] {
        let uses = allowed(front).unwrap();
        for behind in BEHIND_THE_FACADE {
            assert!(
                !uses.contains(behind),
                "front end `{front}` must not use `{behind}`"
            );
        }
    }
}

#[test]
fn layering_main_only_starts_the_command_line() {
    let main = std::fs::read_to_string(src().join("main.rs")).unwrap();
    assert!(
        main.lines().count() < 100,
        "main.rs has {} lines",
        main.lines().count()
    );
    let code = code_of(&main);
    let used: BTreeSet<String> = code
        .match_indices("irhost::")
        .filter_map(|(i, _)| first_segment(&code[i + "irhost::".len()..]))
        .collect();
    assert_eq!(
        used,
        BTreeSet::from(["cli".to_string()]),
        "main.rs uses {used:?}"
    );
}

#[test]
fn layering_no_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:?}");
}

#[test]
fn layering_the_checker_sees_what_it_must() {
    let at = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let modules = |m: &[&str], text: &str| -> Vec<String> {
        referenced_modules(&at(m), text)
            .into_iter()
            .map(|(_, m)| m)
            .collect()
    };
    // Up and out of a module, however it is written.
    assert_eq!(
        modules(&["plan", "load"], "use super::super::engine::X;"),
        ["engine"]
    );
    assert_eq!(modules(&["plan"], "use super::engine;"), ["engine"]);
    assert_eq!(
        modules(&["plan", "load"], "use super::PlannedStep;"),
        ["plan"]
    );
    assert_eq!(
        modules(&["cli"], "let r = crate::runtime::PluginRuntime::new(c);"),
        ["runtime"]
    );
    assert_eq!(
        modules(
            &["cli"],
            "use crate::{\n    engine::{self, X},\n    plan,\n};"
        ),
        ["engine", "plan"]
    );
    // A test module is one level deeper.
    assert_eq!(
        modules(
            &["journal"],
            "mod tests {\n    use super::*;\n    use super::super::plan;"
        ),
        ["journal", "plan"]
    );
    // Comments and macro paths are not uses.
    assert!(modules(&["cli"], "/// see [`crate::engine`]\nlet x = $crate::y::z;").is_empty());
    assert_eq!(
        code_of(r#"let u = "http://x"; crate::plan::X"#),
        r#"let u = "http://x"; crate::plan::X"#
    );
}
