//! Case ids: the [`CaseId`] newtype that names a case directory
//! (`cases/<case-id>/`) and its journal. Every case id the host accepts
//! went through [`CaseId::parse`], [`CaseId::sanitize`] or [`CaseId::new`],
//! so none can leave the cases directory.

use std::fmt;

use rand::Rng;

/// The most characters a case id may have.
pub const MAX_LEN: usize = 128;

/// What a valid case id looks like (for error messages).
pub const RULE: &str = "1-128 of A-Z a-z 0-9 . _ -, not starting with . or -";

/// A valid case id: 1-128 of `A-Z a-z 0-9 . _ -`, not starting with `.`
/// or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseId(String);

impl CaseId {
    /// A new case id: date, time and a random suffix, sortable and unique.
    #[allow(clippy::new_without_default)]
    pub fn new() -> CaseId {
        let suffix: u32 = rand::rng().random();
        CaseId(format!(
            "case-{}-{suffix:08x}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    }

    /// Accept `text` as it is, or say why it is not a case id.
    pub fn parse(text: &str) -> Result<CaseId, String> {
        if Self::is_valid(text) {
            Ok(CaseId(text.to_string()))
        } else {
            Err(format!("`{text}` is not a valid case id: {RULE}"))
        }
    }

    /// Whether `text` is a valid case id.
    pub fn is_valid(text: &str) -> bool {
        !text.is_empty()
            && text.len() <= MAX_LEN
            && !text.starts_with(['.', '-'])
            && text.chars().all(allowed)
    }

    /// Make any text (a rendered template) a valid case id: other
    /// characters become `-`, leading `.`/`-` are dropped, at most 128 are
    /// kept; nothing left gives a new id.
    pub fn sanitize(text: &str) -> CaseId {
        let mut id: String = text
            .chars()
            .map(|c| if allowed(c) { c } else { '-' })
            .take(MAX_LEN)
            .collect();
        while id.starts_with(['.', '-']) {
            id.remove(0);
        }
        if id.is_empty() {
            CaseId::new()
        } else {
            CaseId(id)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CaseId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for CaseId {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl std::str::FromStr for CaseId {
    type Err = String;
    fn from_str(text: &str) -> Result<CaseId, String> {
        CaseId::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_what_could_leave_the_cases_directory() {
        assert!(CaseId::parse("IR-42.a_b").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", &"x".repeat(129)] {
            assert!(CaseId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sanitize_and_new_give_valid_ids() {
        assert_eq!(CaseId::sanitize("../x y").as_str(), "x-y");
        assert!(CaseId::is_valid(CaseId::sanitize("...").as_str()));
        let id = CaseId::new();
        assert!(id.as_str().starts_with("case-"), "{id}");
        assert!(CaseId::is_valid(id.as_str()));
    }
}
