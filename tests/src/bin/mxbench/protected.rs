//! Synthetic protected sets for the benchmarks: pronounceable .com names from a fixed seed.

/// `n` distinct pronounceable domain names (`tamorelu.com`).
pub fn names(n: usize) -> Vec<String> {
    const C: &[u8] = b"bcdfghjklmnprstvz";
    const V: &[u8] = b"aeiou";
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = std::collections::BTreeSet::new();
    while out.len() < n {
        let syllables = 2 + (next() % 3) as usize;
        let mut label = String::new();
        for _ in 0..syllables {
            label.push(C[(next() % C.len() as u64) as usize] as char);
            label.push(V[(next() % V.len() as u64) as usize] as char);
        }
        out.insert(format!("{label}.com"));
    }
    out.into_iter().collect()
}

/// An agent config protecting `n` such names with action block.
pub fn config(state: &std::path::Path, n: usize) -> String {
    let entries: Vec<String> = names(n)
        .iter()
        .map(|d| format!("{{ entry = \"{d}\", action = \"block\" }}"))
        .collect();
    format!(
        "[agent]\nstate_dir = \"{}\"\n[policy]\nprotect = [{}]\n",
        state.display(),
        entries.join(", ")
    )
}
