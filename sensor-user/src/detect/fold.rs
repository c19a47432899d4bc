//! The visual key (skeleton) of a label: what it looks like, not what it spells.
//!
//! Non-ASCII characters go through the UTS #39 confusable skeleton, lose their combining
//! marks (UTS #39 keeps `ạ` apart from `a` on purpose; a reader of a mail log does not),
//! and Latin small capitals and hooked letters the skeleton leaves alone are mapped to
//! their ASCII letter. Then the ASCII confusables are merged: digits that are drawn like
//! letters (`0` → `o`, `1` → `l`) and digraphs that read as one letter (`rn` → `m`,
//! `vv` → `w`, `cl` → `d`). Two labels with the same key look the same on screen.
//!
//! Letters that only resemble each other (`m`/`n`, `c`/`e`, `i`/`l`) are *not* merged:
//! swapping one is a change, a likely one (see [`similar`]), and counts against the
//! same edit budget as a typing slip.

use unicode_normalization::{UnicodeNormalization as _, char::is_combining_mark};

/// Writes the visual key of `label` into `out` (cleared first). With `digraphs` false,
/// letter pairs are not merged: an edit that splits `cl` (`barc-lays`) is then still one
/// edit from the key of the protected name.
pub fn fold_into(label: &str, out: &mut Vec<char>, digraphs: bool) {
    out.clear();
    if label.is_ascii() {
        fold_ascii(label.chars(), out, digraphs);
        return;
    }
    let mut plain = Vec::with_capacity(label.len());
    for c in label.nfd().filter(|c| !is_combining_mark(*c)) {
        if c.is_ascii() {
            plain.push(c.to_ascii_lowercase());
            continue;
        }
        let mut buf = [0u8; 4];
        for s in unicode_security::skeleton(c.encode_utf8(&mut buf)) {
            for d in std::iter::once(s).nfd().filter(|d| !is_combining_mark(*d)) {
                push_supplement(d, &mut plain);
            }
        }
    }
    fold_ascii(plain.into_iter(), out, digraphs);
}

/// The visual key of `label` as a new vector.
pub fn fold(label: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(label.len());
    fold_into(label, &mut out, true);
    out
}

/// Whether two single characters look the same (same key).
pub fn same_glyph(a: char, b: char) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return class(a.to_ascii_lowercase()) == class(b.to_ascii_lowercase());
    }
    char_key(a) == char_key(b)
}

/// The key of one character (empty for a lone combining mark). Pairs inside its own
/// skeleton are merged: it is drawn as one glyph.
pub fn char_key(c: char) -> Vec<char> {
    let mut out = Vec::with_capacity(2);
    fold_into(c.encode_utf8(&mut [0; 4]), &mut out, true);
    out
}

/// The key of one ASCII character.
pub fn char_key_ascii(c: char) -> char {
    class(c.to_ascii_lowercase())
}

/// Two ASCII letters or digits that resemble each other without being the same glyph:
/// a likely misreading, cheaper than an unrelated substitution but still a change.
pub fn similar(a: char, b: char) -> bool {
    let pair = |x: char, y: char| (a == x && b == y) || (a == y && b == x);
    [
        ('m', 'n'),
        ('c', 'e'),
        ('b', 'd'),
        ('q', 'g'),
        ('u', 'v'),
        ('i', 'l'),
        ('i', 'j'),
        ('3', '8'),
        ('6', '9'),
        ('5', 's'),
        ('2', 'z'),
    ]
    .iter()
    .any(|&(x, y)| pair(x, y))
}

/// Two ASCII letters that resemble one without rendering like it (`nn` for `m`, `lb`
/// for `b`): a change, but one a reader easily misses.
pub fn resembles(a: char, b: char) -> Option<char> {
    Some(match (a, b) {
        ('n', 'n') | ('r', 'r') => 'm',
        ('d', 'l') => 'd',
        ('l', 'b') => 'b',
        ('l', 'h') | ('i', 'h') => 'h',
        ('l', 'c') | ('l', 'k') | ('i', 'k') => 'k',
        ('u', 'u') => 'w',
        _ => return None,
    })
}

/// Two ASCII letters that read as one, for the alignment: `rn` for `m`.
pub fn reads_as(a: char, b: char) -> Option<char> {
    digraph(a, b)
}

/// The keys of `label` with and without digraphs merged (one if they are the same).
pub fn variants(label: &str) -> Vec<Vec<char>> {
    let mut plain = Vec::with_capacity(label.len());
    fold_into(label, &mut plain, false);
    // Merging pairs changes nothing unless the plain key holds one (the common case).
    if !plain.windows(2).any(|w| digraph(w[0], w[1]).is_some()) {
        return vec![plain];
    }
    let full = fold(label);
    if plain == full {
        vec![full]
    } else {
        vec![full, plain]
    }
}

/// The coarse keys of `label` (with and without pairs merged): the visual key with the
/// letters that only resemble each other merged too (`m`/`n`/`nn`, `b`/`d`, `c`/`e`,
/// `i`/`l`...). Only for finding candidates: two labels with one coarse key may still
/// differ by several resembling letters, which the alignment then counts.
pub fn coarse_variants(label: &str) -> Vec<Vec<char>> {
    let mut plain = Vec::with_capacity(label.len());
    fold_into(label, &mut plain, false);
    let pair = |i: usize| {
        let b = *plain.get(i + 1)?;
        digraph(plain[i], b).or_else(|| resembles(plain[i], b))
    };
    if !(0..plain.len()).any(|i| pair(i).is_some()) {
        for c in &mut plain {
            *c = coarse(*c);
        }
        return vec![plain];
    }
    let mut full = Vec::with_capacity(plain.len());
    let mut i = 0;
    while i < plain.len() {
        match pair(i) {
            Some(c) => {
                full.push(coarse(c));
                i += 2;
            }
            None => {
                full.push(coarse(plain[i]));
                i += 1;
            }
        }
    }
    let flat = plain.iter().map(|&c| coarse(c)).collect();
    vec![full, flat]
}

/// One representative per group of letters that resemble each other.
fn coarse(c: char) -> char {
    match c {
        'm' => 'n',
        'b' => 'd',
        'c' => 'e',
        'q' => 'g',
        'v' => 'u',
        'i' | 'j' => 'l',
        '3' => '8',
        '9' => '6',
        '5' => 's',
        '2' => 'z',
        c => c,
    }
}

/// Letters UTS #39 leaves as themselves but that read as an ASCII letter.
fn push_supplement(c: char, out: &mut Vec<char>) {
    let mapped: &str = match c {
        'ᴀ' => "a",
        'ʙ' | 'ƅ' | 'ɓ' => "b",
        'ᴄ' | 'ƈ' => "c",
        'ᴅ' | 'ɗ' | 'ɖ' | 'đ' => "d",
        'ᴇ' | 'ɇ' | 'ə' => "e",
        'ꜰ' => "f",
        'ɢ' | 'ǥ' => "g",
        'ʜ' | 'ɦ' | 'ⱨ' | 'ħ' => "h",
        'ɪ' | 'ɨ' | 'ı' => "i",
        'ᴊ' | 'ɉ' | 'ʝ' => "j",
        'ᴋ' | 'ĸ' | 'ⱪ' => "k",
        'ʟ' | 'ł' | 'ɫ' => "l",
        'ᴍ' | 'ʍ' | 'ɱ' => "m",
        'ɴ' | 'ꞑ' | 'ŋ' => "n",
        'ᴏ' | 'ø' => "o",
        'ᴘ' | 'ƿ' | 'ƥ' => "p",
        'ʠ' => "q",
        'ʀ' | 'ɽ' | 'ɼ' | 'ɾ' | 'ɍ' => "r",
        'ꜱ' | 'ʂ' => "s",
        'ᴛ' | 'ƫ' | 'ŧ' => "t",
        'ᴜ' | 'ʉ' => "u",
        'ᴠ' | 'ᶌ' | 'ⱴ' | 'ⱱ' => "v",
        'ᴡ' | 'ⱳ' => "w",
        'ʏ' | 'ɏ' | 'ƴ' => "y",
        'ᴢ' | 'ⱬ' | 'ʐ' | 'ƶ' => "z",
        'ƻ' => "2",
        'ʒ' => "3",
        'ƽ' => "5",
        'æ' => "ae",
        'œ' => "oe",
        _ => {
            out.extend(c.to_lowercase());
            return;
        }
    };
    out.extend(mapped.chars());
}

/// Two ASCII letters that read as one (the UTS #39 confusables among ASCII pairs).
fn digraph(a: char, b: char) -> Option<char> {
    Some(match (class(a), class(b)) {
        ('r', 'n') => 'm',
        ('v', 'v') => 'w',
        ('c', 'l') => 'd',
        _ => return None,
    })
}

/// ASCII digits drawn like a letter become that letter; everything else is itself.
fn class(c: char) -> char {
    match c {
        '0' => 'o',
        '1' | 'I' => 'l',
        c => c.to_ascii_lowercase(),
    }
}

fn fold_ascii(chars: impl Iterator<Item = char>, out: &mut Vec<char>, digraphs: bool) {
    let mut pending: Option<char> = None;
    for c in chars {
        let c = c.to_ascii_lowercase();
        if !digraphs {
            out.push(class(c));
            continue;
        }
        match pending.take() {
            Some(p) => match digraph(p, c) {
                Some(d) => out.push(class(d)),
                None => {
                    out.push(class(p));
                    pending = Some(c);
                }
            },
            None => pending = Some(c),
        }
    }
    if let Some(p) = pending {
        out.push(class(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        fold(s).into_iter().collect()
    }

    #[test]
    fn ascii_lookalikes_share_a_key() {
        assert_eq!(key("rnicrosoft"), key("microsoft"));
        assert_eq!(key("paypa1"), key("paypal"));
        assert_eq!(key("g00gle"), key("google"));
        assert_eq!(key("vvikipedia"), key("wikipedia"));
        assert_eq!(key("clomain"), key("domain"));
        assert_ne!(key("army"), key("navy"));
    }

    #[test]
    fn letters_that_only_resemble_each_other_stay_apart() {
        // tmall is not gmail: t for g, l for i are two changes, not none.
        assert_ne!(key("tmall"), key("gmail"));
        assert_ne!(key("login"), key("logln"));
        assert_ne!(key("secure"), key("seeure"));
        assert!(similar('i', 'l') && similar('n', 'm') && !similar('t', 'g'));
        assert_eq!(reads_as('r', 'n'), Some('m'));
    }

    #[test]
    fn other_scripts_fold_through_the_skeleton() {
        // Cyrillic а, р, р, ӏ, е: the classic whole-script spoof of "apple".
        assert_eq!(key("аррӏе"), key("apple"));
        // Greek omicron, Armenian oh.
        assert_eq!(key("gοοgle"), key("google"));
        assert_eq!(key("gօօgle"), key("google"));
        // Cyrillic em reads as m only after the small-capital supplement.
        assert_eq!(key("аrмy"), key("army"));
    }

    #[test]
    fn diacritics_and_small_capitals_fold_away() {
        assert_eq!(key("ạrmy"), key("army"));
        assert_eq!(key("ʀᴍʏ"), key("rmy"));
        assert_eq!(key("ɫabel"), key("label"));
    }
}
