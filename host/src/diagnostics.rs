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
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .unwrap_or("syntax")
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
