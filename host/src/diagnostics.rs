//! Diagnostics of input files (playbooks, rules, target lists): a
//! [`Diagnostic`] names file:line:column and the field, with a hint; a
//! [`SourceMap`] turns toml spans into positions. Also the small readers
//! every TOML input shares (durations, tables as JSON, toml errors).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A problem in an input file, located and explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: `{}`: {}",
            self.file.display(),
            self.line,
            self.column,
            self.field,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// All the problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    /// A file that could not be read at all (`what`: "playbook", "rules file", ...).
    pub fn unreadable(path: &Path, what: &str, error: &std::io::Error) -> Self {
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: "file".into(),
            message: format!("cannot read the {what}: {error}"),
            hint: None,
        }])
    }
}

/// Turns byte offsets of one source text into line:column diagnostics.
#[derive(Debug, Clone)]
pub struct SourceMap {
    file: PathBuf,
    line_starts: Vec<usize>,
    text_len: usize,
}

impl SourceMap {
    pub fn new(file: &Path, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            file: file.to_path_buf(),
            line_starts,
            text_len: text.len(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text_len);
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.line_starts[line - 1] + 1)
    }

    pub fn diagnostic(
        &self,
        span: Range<usize>,
        field: &str,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> Diagnostic {
        let (line, column) = self.position(span.start);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }
}

/// Parse "30s", "2m", "500ms", "1h".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration: {e}"))
}

pub fn table_to_json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).unwrap_or(serde_json::Value::Null)
}

pub fn toml_diagnostic(source: &SourceMap, error: &toml::de::Error) -> Diagnostic {
    let message = error.message().trim().to_string();
    let span = error.span().unwrap_or(0..0);
    let field = match message.split('`').nth(1) {
        // An empty key (`"" = 1`) is named as written.
        Some("") if message.contains("field") => "\"\"",
        Some(name) if message.contains("field") => name,
        _ => "syntax",
    }
    .to_string();
    let hint = if message.starts_with("unknown field") {
        Some("remove it or fix its spelling; the fields this table accepts are listed above")
    } else if message.starts_with("missing field") {
        Some("this table needs that field")
    } else {
        Some("see the playbook format in README.md")
    };
    source.diagnostic(span, &field, message, hint)
}

/// Deepest nesting of arrays and inline tables a TOML input may have. The
/// `toml` crate stops well-formed input at a shallower depth itself, but
/// not input its error recovery re-opens on every line (`[a]\nt = {\n`
/// repeated: 3,000 times overflow a 2 MiB stack), so it is checked first.
pub const MAX_TOML_NESTING: usize = 128;

/// Deserialize a TOML input, every error a located diagnostic; input nested
/// deeper than [`MAX_TOML_NESTING`] is refused before the parser sees it.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    source: &SourceMap,
    text: &str,
) -> Result<T, Diagnostics> {
    if let Some(at) = nesting_beyond(text, MAX_TOML_NESTING) {
        return Err(Diagnostics(vec![source.diagnostic(
            at..at,
            "syntax",
            format!(
                "arrays and inline tables nested deeper than {MAX_TOML_NESTING} levels (or left unclosed)"
            ),
            Some("close each `[` and `{` on the line that opens it"),
        )]));
    }
    toml::from_str(text).map_err(|e| Diagnostics(vec![toml_diagnostic(source, &e)]))
}

/// The offset of the first `[` or `{` (outside strings and comments) that
/// opens a level beyond `limit`. Brackets of table headers open and close
/// on one line, so they never add up; a string left open at the end of its
/// line ends there (the parser will report it).
fn nesting_beyond(text: &str, limit: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                let escapes = q == b'"';
                if b[i..].starts_with(&[q, q, q]) {
                    i += 3;
                    while i < b.len() && !b[i..].starts_with(&[q, q, q]) {
                        i += if escapes && b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 3;
                    // Up to two quotes more belong to the string.
                    for _ in 0..2 {
                        if b.get(i) == Some(&q) {
                            i += 1;
                        }
                    }
                    continue;
                }
                i += 1;
                while i < b.len() && b[i] != q && b[i] != b'\n' {
                    i += if escapes && b[i] == b'\\' && b.get(i + 1) != Some(&b'\n') {
                        2
                    } else {
                        1
                    };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod toml_tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        let deep = |n: usize| format!("a = {}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(nesting_beyond(&deep(128), 128), None);
        assert_eq!(nesting_beyond(&deep(129), 128), Some(4 + 128));
        // Re-opened on every line, as error recovery sees it.
        assert!(nesting_beyond(&"[r]\nt = {\n".repeat(200), 128).is_some());
        // Brackets in strings, multi-line strings and comments do not count.
        let quoted =
            "a = \"[{[{\"\nb = '{{{{'\n# [[[[\nc = \"\"\"\n[[[\\\"\"\"{{\"\"\"\"\nd = '''[[['''\n";
        assert_eq!(nesting_beyond(&quoted.repeat(100), 1), None);
        assert_eq!(nesting_beyond("[x]\n[[y]]\nz = [1, {a = [2]}]\n", 3), None);
        // Every shipped playbook and rules file is far below the limit.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks");
        for dir in [root.clone(), root.join("rules")] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert_eq!(nesting_beyond(&text, 4), None, "{}", path.display());
                }
            }
        }
    }

    #[test]
    fn input_that_overflowed_the_parser_is_a_located_diagnostic() {
        // Found by tests/parsers.rs: a cut rules file repeated.
        let text = "[r]\nt = {\n".repeat(100_000);
        let source = SourceMap::new(Path::new("x.toml"), &text);
        let run = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse_toml::<toml::Table>(&source, &text).unwrap_err())
            .unwrap();
        let d = run.join().expect("no stack overflow");
        assert_eq!(d.0[0].field, "syntax");
        // The 129th `[r]` opens level 129.
        assert_eq!((d.0[0].line, d.0[0].column), (257, 1));
    }
}
