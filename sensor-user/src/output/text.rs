//! Text for a terminal: what came from the network or a file is shown with its control
//! characters escaped, so a hostile name cannot move the cursor or rewrite the screen.

use std::{borrow::Cow, fmt::Write as _};

/// `s` with every control character (C0, DEL, C1, and the bidi controls) written as
/// `\u{…}`; unchanged (and not copied) when it has none.
pub fn escape(s: &str) -> Cow<'_, str> {
    let bad =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("army.ml"), "army.ml");
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\u{202e}lm.ymra"), "x\\u{202e}lm.ymra");
        assert_eq!(escape("\r\n\u{7f}\u{85}"), "\\u{d}\\u{a}\\u{7f}\\u{85}");
    }
}
