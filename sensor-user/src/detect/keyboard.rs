//! Which keys sit next to each other on the common keyboard layouts.
//!
//! Computed from the row layouts and their stagger rather than listed by hand, so a typo
//! on QWERTY, QWERTZ or AZERTY is "adjacent" whichever layout the sender used.

use std::sync::OnceLock;

/// Rows of each layout, top (digits) to bottom, and each row's horizontal stagger in keys.
const LAYOUTS: [[&str; 4]; 3] = [
    ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"],
    ["1234567890", "qwertzuiop", "asdfghjkl", "yxcvbnm"],
    ["1234567890", "azertyuiop", "qsdfghjklm", "wxcvbn"],
];
const STAGGER: [f32; 4] = [0.0, 0.5, 0.75, 1.25];

fn table() -> &'static [u128; 128] {
    static TABLE: OnceLock<[u128; 128]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u128; 128];
        for rows in LAYOUTS {
            let keys: Vec<(u8, f32, f32)> = rows
                .iter()
                .enumerate()
                .flat_map(|(r, row)| {
                    row.bytes()
                        .enumerate()
                        .map(move |(c, b)| (b, r as f32, c as f32 + STAGGER[r]))
                })
                .collect();
            for &(a, ra, xa) in &keys {
                for &(b, rb, xb) in &keys {
                    let (dy, dx) = ((ra - rb).abs(), (xa - xb).abs());
                    let near = (dy == 0.0 && dx == 1.0) || (dy == 1.0 && dx < 1.0);
                    if near {
                        t[a as usize] |= 1u128 << b;
                    }
                }
            }
        }
        t
    })
}

/// True when `a` and `b` are neighbouring keys on QWERTY, QWERTZ or AZERTY.
pub fn adjacent(a: char, b: char) -> bool {
    match (u8::try_from(a), u8::try_from(b)) {
        (Ok(a), Ok(b)) if a < 128 && b < 128 => table()[a as usize] & (1u128 << b) != 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::adjacent;

    #[test]
    fn neighbours_on_each_layout() {
        assert!(adjacent('a', 's'));
        assert!(adjacent('q', 'w'));
        assert!(adjacent('m', 'n'));
        assert!(adjacent('e', '3'));
        assert!(adjacent('x', 'd'));
        // QWERTZ puts z next to t; AZERTY puts a next to z.
        assert!(adjacent('t', 'z'));
        assert!(adjacent('a', 'z'));
        assert!(!adjacent('a', 'p'));
        assert!(!adjacent('q', 'm'));
        assert!(!adjacent('é', 'e'));
    }
}
