//! Where a key or an array element sits in the file, so checks made after parsing (a
//! value out of range, a duplicate, a conflict) still name their line.

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

/// The parsed file with its spans; empty when the text is not TOML (the parse error
/// that follows says where).
pub struct Spans<'a> {
    text: &'a str,
    root: Option<Spanned<DeTable<'a>>>,
}

impl<'a> Spans<'a> {
    /// Parses `text` for its spans.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            root: DeTable::parse(text).ok(),
        }
    }

    /// Whether the file sets nothing at all (empty, blank or only comments).
    pub fn is_empty(&self) -> bool {
        self.root.as_ref().is_some_and(|r| r.get_ref().is_empty())
    }

    fn value(&self, section: &str, key: &str) -> Option<&Spanned<DeValue<'a>>> {
        let root = self.root.as_ref()?.get_ref();
        root.get(section)?.get_ref().as_table()?.get(key)
    }

    fn line_at(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    /// "line N: " for `section.key`, or "" when the key is not in the file (a default or
    /// a command-line value).
    pub fn at(&self, section: &str, key: &str) -> String {
        self.value(section, key)
            .map(|v| format!("line {}: ", self.line_at(v.span().start)))
            .unwrap_or_default()
    }

    /// "line N: " for element `i` of the array `section.key`.
    pub fn at_item(&self, section: &str, key: &str, i: usize) -> String {
        self.value(section, key)
            .and_then(|v| v.get_ref().as_array()?.get(i).map(|e| e.span().start))
            .map(|start| format!("line {}: ", self.line_at(start)))
            .unwrap_or_else(|| self.at(section, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_keys_and_elements() {
        let s = Spans::new(
            "# c\n[events]\nkeep = 0\n[policy]\nprotect = [\n \"a.com\",\n \"b.com\"]\n",
        );
        assert_eq!(s.at("events", "keep"), "line 3: ");
        assert_eq!(s.at_item("policy", "protect", 1), "line 7: ");
        assert_eq!(s.at("events", "max_bytes"), "");
        assert!(!s.is_empty());
        assert!(Spans::new("\n# only a comment\n").is_empty());
        assert!(!Spans::new("not = [toml").is_empty());
    }
}
