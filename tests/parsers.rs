//! Property test of the input parsers: `Playbook::parse` and the watch
//! `Rules::parse` (neither loads a plugin) fed mutations of the shipped
//! playbooks and rules file: cut at any point, lines and tables duplicated,
//! dropped or swapped, values retyped (string, integer, float, boolean,
//! array, inline table, date), huge values, odd Unicode (RTL overrides, NUL,
//! combining marks, BOM, zero-width), deep nesting, keys renamed to other
//! known keys, table headers inserted. Properties: no panic; the shipped
//! files are accepted; every rejection is at least one diagnostic with a
//! field, a message and a line:column inside the text.
//!
//! `PROPTEST_CASES` cases per parser (default 2,000, what `scripts/test`
//! runs); `scripts/bench-fuzz` runs 100,000 per parser.

use std::path::{Path, PathBuf};

use irhost::diagnostics::Diagnostics;
use irhost::playbook::Playbook;
use irhost::watch::rules::Rules;
use proptest::prelude::*;
use proptest::sample::Index;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (path, text) of files.
type Files = Vec<(PathBuf, String)>;

/// Every shipped playbook, and the rules file.
fn shipped() -> (Files, Files) {
    let read = |dir: PathBuf| {
        let mut files: Files = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect();
        files.sort();
        files
    };
    let playbooks = read(root().join("playbooks"));
    let rules = read(root().join("playbooks/rules"));
    assert!(playbooks.len() >= 5 && !rules.is_empty());
    (playbooks, rules)
}

/// Keys the two formats know, to rename a key into another valid one.
const KEYS: &[&str] = &[
    "account",
    "action",
    "after",
    "allow_hosts",
    "allow_unpreserved",
    "aws",
    "azure",
    "cloud",
    "config",
    "cpu_ms",
    "default",
    "description",
    "id",
    "inputs",
    "kind",
    "limits",
    "list",
    "max_output_kb",
    "memory_mb",
    "name",
    "on_error",
    "path",
    "pattern",
    "phase",
    "playbook",
    "plugin",
    "plugins",
    "region",
    "retries",
    "steps",
    "targets",
    "timeout",
    "values",
    "with",
    "type",
    "case",
    "concurrency",
    "dedup_window",
    "params",
    "provider",
    "rules",
    "target",
    "watch",
    "match",
    "gte",
    "gt",
    "lt",
    "lte",
    "in",
    "not_in",
    "ne",
    "glob",
    "exists",
    "source",
    "\"detail.severity\"",
    "\"a.b.0.c\"",
    "\"\"",
];

const HEADERS: &[&str] = &[
    "[playbook]",
    "[[steps]]",
    "[plugins.x]",
    "[plugins.test.limits]",
    "[inputs.note]",
    "[targets]",
    "[watch]",
    "[[rules]]",
    "[rules.match]",
    "[rules.params]",
    "[[plugins]]",
    "[steps]",
    "[[playbook]]",
    "[a.b.c.d.e.f]",
    "[\"\u{202e}\"]",
];

/// Odd text: bidi overrides, NUL, combining marks, BOM, zero-width, a lone
/// carriage return, escapes, quotes, brackets.
const ODD: &[&str] = &[
    "\u{202e}",
    "\u{202d}",
    "\u{2066}",
    "\u{200f}",
    "\0",
    "\u{301}",
    "e\u{301}\u{302}\u{303}",
    "\u{feff}",
    "\u{200b}",
    "\u{200d}",
    "\r",
    "\t",
    "\u{ffff}",
    "\u{10ffff}",
    "\u{1f600}",
    "\\",
    "\\u0000",
    "\\uD800",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "[",
    "]",
    "{",
    "}",
    "=",
    "#",
    ".",
    ",",
    "\n",
    "ǅ",
    "ß",
    "İ",
    "\u{85}",
    "\u{2028}",
];

/// A TOML value of any type, some huge, some deep.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        Just("99999999999999999999999".to_string()),
        Just("-0".to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-z0-9 ._:/-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "\\PC{0,16}".prop_map(|s| format!("{s:?}")),
        prop::sample::select(ODD).prop_map(|s| format!("\"{}\"", s.escape_default())),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("07:32:00".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[1, \"a\", true, {x = 1}]".to_string()),
        Just("{ a = 1, b = [2], c = { d = \"e\" } }".to_string()),
        (1usize..200_000).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
        (1usize..20_000).prop_map(|n| format!("[{}]", vec!["\"s\""; n].join(","))),
        (1usize..3_000).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        (1usize..3_000).prop_map(|n| format!("{}1{}", "{a=".repeat(n), "}".repeat(n))),
        (1usize..500).prop_map(|n| format!("\"{}\"", "\u{301}".repeat(n))),
    ]
}

/// One edit of a text.
#[derive(Debug, Clone)]
enum Mutation {
    Cut(Index),
    DuplicateLines(Index, usize),
    DropLine(Index),
    SwapLines(Index, Index),
    Retype(Index, String),
    RenameKey(Index, &'static str),
    InsertHeader(Index, &'static str),
    InsertOdd(Index, &'static str),
    InsertLine(Index, &'static str, String),
    Repeat(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<Index>;
    prop_oneof![
        2 => idx().prop_map(Mutation::Cut),
        1 => (idx(), 1usize..12).prop_map(|(i, n)| Mutation::DuplicateLines(i, n)),
        1 => idx().prop_map(Mutation::DropLine),
        1 => (idx(), idx()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        4 => (idx(), value()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        2 => (idx(), prop::sample::select(KEYS)).prop_map(|(i, k)| Mutation::RenameKey(i, k)),
        1 => (idx(), prop::sample::select(HEADERS)).prop_map(|(i, h)| Mutation::InsertHeader(i, h)),
        2 => (idx(), prop::sample::select(ODD)).prop_map(|(i, s)| Mutation::InsertOdd(i, s)),
        2 => (idx(), prop::sample::select(KEYS), value())
            .prop_map(|(i, k, v)| Mutation::InsertLine(i, k, v)),
        1 => (2usize..50).prop_map(Mutation::Repeat),
    ]
}

fn floor_char(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The largest text a mutation may make (mutations compound: four
/// repetitions of a huge value would otherwise reach gigabytes).
const MAX_TEXT: usize = 4 << 20;

impl Mutation {
    /// The mutated text, or `text` itself when the result would exceed
    /// [`MAX_TEXT`].
    fn apply(&self, text: &str) -> String {
        let out = self.apply_unbounded(text);
        if out.len() > MAX_TEXT {
            text.to_string()
        } else {
            out
        }
    }

    fn apply_unbounded(&self, text: &str) -> String {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        let n = lines.len();
        match self {
            Mutation::Cut(i) => return text[..floor_char(text, i.index(text.len() + 1))].into(),
            Mutation::InsertOdd(i, s) => {
                let at = floor_char(text, i.index(text.len() + 1));
                return format!("{}{s}{}", &text[..at], &text[at..]);
            }
            Mutation::Repeat(k) => return text.repeat((*k).min(MAX_TEXT / text.len().max(1) + 1)),
            Mutation::DuplicateLines(i, len) => {
                let start = i.index(n);
                let end = (start + len).min(n);
                let copy: Vec<String> = lines[start..end].to_vec();
                lines.splice(end..end, copy);
            }
            Mutation::DropLine(i) => {
                lines.remove(i.index(n));
            }
            Mutation::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
            Mutation::Retype(i, v) => {
                // The value of the i-th `key = value` line (or any line).
                let at = nth_assignment(&lines, i);
                let line = &lines[at];
                lines[at] = match line.split_once('=') {
                    Some((key, _)) => format!("{key}= {v}"),
                    None => format!("{line}{v}"),
                };
            }
            Mutation::RenameKey(i, k) => {
                let at = nth_assignment(&lines, i);
                if let Some((_, rest)) = lines[at].split_once('=') {
                    lines[at] = format!("{k} ={rest}");
                }
            }
            Mutation::InsertHeader(i, h) => lines.insert(i.index(n + 1), h.to_string()),
            Mutation::InsertLine(i, k, v) => lines.insert(i.index(n + 1), format!("{k} = {v}")),
        }
        lines.join("\n")
    }
}

fn nth_assignment(lines: &[String], i: &Index) -> usize {
    let assignments: Vec<usize> = (0..lines.len())
        .filter(|&l| lines[l].contains('='))
        .collect();
    if assignments.is_empty() {
        i.index(lines.len())
    } else {
        assignments[i.index(assignments.len())]
    }
}

/// Every diagnostic names a field, says something, and points inside `text`.
fn located(text: &str, diagnostics: &Diagnostics, file: &Path) -> Result<(), TestCaseError> {
    prop_assert!(
        !diagnostics.0.is_empty(),
        "a rejection without a diagnostic"
    );
    let lines: Vec<&str> = text.split('\n').collect();
    for d in &diagnostics.0 {
        prop_assert_eq!(&d.file, file);
        prop_assert!(!d.message.trim().is_empty(), "no message: {:?}", d);
        prop_assert!(!d.field.is_empty(), "no field: {:?}", d);
        prop_assert!(
            d.line >= 1 && d.line <= lines.len(),
            "line {} of {}: {:?}",
            d.line,
            lines.len(),
            d
        );
        prop_assert!(
            d.column >= 1 && d.column <= lines[d.line - 1].len() + 1,
            "column {} of a line of {} bytes: {:?}",
            d.column,
            lines[d.line - 1].len(),
            d
        );
        // It renders as file:line:column.
        let shown = d.to_string();
        let position = format!("{}:{}:{}: ", file.display(), d.line, d.column);
        prop_assert!(shown.starts_with(&position), "{}", shown);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a failure is enough; no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A shipped file and one to four mutations of it.
fn mutated(files: Files) -> impl Strategy<Value = (PathBuf, String, Vec<Mutation>)> {
    (
        prop::sample::select(files),
        prop::collection::vec(mutation(), 1..5),
    )
        .prop_map(|((path, text), ms)| {
            let mutated = ms.iter().fold(text, |t, m| m.apply(&t));
            (path, mutated, ms)
        })
}

/// Mostly files of the parser's own kind, sometimes of the other.
fn own_and_foreign(
    own: Files,
    foreign: Files,
) -> impl Strategy<Value = (PathBuf, String, Vec<Mutation>)> {
    prop_oneof![4 => mutated(own), 1 => mutated(foreign)]
}

#[test]
fn the_shipped_files_parse() {
    let (playbooks, rules) = shipped();
    for (path, text) in &playbooks {
        Playbook::parse(path, text).unwrap_or_else(|d| panic!("{d}"));
    }
    for (path, text) in &rules {
        Rules::parse(path, text).unwrap_or_else(|d| panic!("{d}"));
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn playbook_parse_never_panics_and_locates_every_rejection(
        (path, text, _mutations) in own_and_foreign(shipped().0, shipped().1)
    ) {
        // Parsed as a playbook in the playbooks directory.
        let path = root().join("playbooks").join(path.file_name().unwrap());
        if let Err(d) = Playbook::parse(&path, &text) {
            located(&text, &d, &path)?;
        }
    }

    #[test]
    fn rules_parse_never_panics_and_locates_every_rejection(
        (path, text, _mutations) in own_and_foreign(shipped().1, shipped().0)
    ) {
        let path = root().join("playbooks/rules").join(path.file_name().unwrap());
        if let Err(d) = Rules::parse(&path, &text) {
            located(&text, &d, &path)?;
        }
    }
}

#[test]
fn an_empty_key_is_named_as_written() {
    // Found by the property test: `"" = 1` gave a diagnostic with no field.
    let path = root().join("playbooks/x.toml");
    let d = Playbook::parse(&path, "[playbook]\n\"\" = 1\n").unwrap_err();
    assert_eq!(d.0[0].field, "\"\"");
    assert_eq!((d.0[0].line, d.0[0].column), (2, 1));
}
