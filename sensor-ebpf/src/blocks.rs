//! What is blocked: names (their answers dropped), addresses (connects refused), MX
//! answers held while the agent judges their question, and legitimate answers that
//! contest a learned address block.
//!
//! Every entry carries its expiry (kernel monotonic time): an expired entry is ignored
//! here, so no block outlives its TTL or its lease even when no agent runs. Entries are
//! only read on a hit, so the clock is only read then.

use aya_ebpf::{helpers::bpf_ktime_get_ns, maps::lpm_trie::Key, programs::SkBuffContext};
use sensor_common::{
    BlockEntry, QnameHashes,
    event::{CaptureStat, Direction},
    maps::{
        AGENT_ALIVE_UNTIL, AGENT_LEARNED_ADDRS, AGENT_NAME_KEY, BLOCK_CONTESTED, BLOCK_HOLD,
        BLOCK_LEARNED, BLOCK_PREFIX, BLOCK_SUBTREE, HOLD_NS, QTYPE_MX,
    },
};

use crate::{
    capture::note,
    maps::{
        AGENT_STATE, BLOCKED_NAMES, BLOCKED_V4, BLOCKED_V6, CLEAN_NAMES, HOLD_PENDING, NAME_TAGS,
    },
    nametag::question_tag,
};

/// `bpf_map_update_elem` flags.
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;
/// Most resource records of one answer looked at for addresses.
const MAX_RECORDS: u32 = 12;
/// Record types A and AAAA.
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// Whether `e` applies now; the clock is read only for an entry that expires (a
/// connect's hit, once).
#[inline(always)]
fn in_force_now(e: &BlockEntry) -> bool {
    // SAFETY: a plain helper call valid in every program type we attach.
    in_force(e, || unsafe { bpf_ktime_get_ns() })
}

/// The flags of the `BLOCKED_NAMES` entry under `key` when it is in force and has the
/// flag `kind` (or, for `kind == 0`, is a whole-name entry: neither subtree nor prefix).
#[inline(always)]
fn name_entry(key: u64, kind: u32, now: u64) -> Option<u32> {
    if key == 0 {
        return None;
    }
    // SAFETY: read-only lookup; the value is copied out at once.
    let e = *unsafe { BLOCKED_NAMES.get(key) }?;
    let matches = if kind == 0 {
        e.flags & BLOCK_PREFIX == 0
    } else {
        e.flags & kind != 0
    };
    (matches && in_force(&e, || now)).then_some(e.flags)
}

/// Whether `e` applies at the kernel time `now` gives (asked only if `e` expires); an
/// entry without expiry applies until it is contested.
#[inline(always)]
fn in_force(e: &BlockEntry, now: impl FnOnce() -> u64) -> bool {
    if e.expires_ns == 0 {
        return e.flags & BLOCK_CONTESTED == 0;
    }
    e.in_force(now())
}

/// Whether the agent judged `full` not to be blocked (and that still holds).
#[inline(always)]
fn judged_clean(full: u64, now: u64) -> bool {
    // SAFETY: read-only lookup of a plain u64 value.
    match unsafe { CLEAN_NAMES.get(full) } {
        Some(until) => now < *until,
        None => false,
    }
}

/// The question's keyed tag (hashes `h`, first bytes `head`) against the one kept under
/// its hash in `NAME_TAGS`: `None` when none is kept or no key was drawn (nothing to
/// check), else whether they are the same (a difference counted).
#[inline(always)]
fn same_tag(h: &QnameHashes, head: &[u8], key: u64) -> Option<bool> {
    if key == 0 {
        return None;
    }
    // SAFETY: read-only lookup of a plain u64 value, copied out at once.
    let tag = (unsafe { NAME_TAGS.get(h.full) }).copied()?;
    let end = u32::from(h.records).wrapping_sub(5);
    let same = question_tag(head, end, key) == Some(tag);
    if !same {
        note(CaptureStat::NameTagMismatch);
    }
    Some(same)
}

/// The installation's tag key (0: none drawn yet).
#[inline(always)]
fn tag_key() -> u64 {
    AGENT_STATE.get(AGENT_NAME_KEY).copied().unwrap_or(0)
}

/// Whether a whole-name block under the question's hash is its own: no tag kept (or no
/// key), or the same keyed tag.
#[inline(always)]
fn block_is_its_own(h: &QnameHashes, head: &[u8]) -> bool {
    same_tag(h, head, tag_key()) != Some(false)
}

/// Whether a clean verdict lifts the prefix rule for the question: the agent judged it
/// clean (still in force) and kept the verdict's name in `NAME_TAGS` under that name's
/// keyed tag. A verdict under the hash with no such entry is another name's: one
/// computed to share the hash of a lookalike the prefix rule covers, looked up and judged
/// clean, lifted it. Keyed by the secret tag rather than the public hash, the entry is
/// out of reach of whoever computes collisions: a whole-name block under a computed
/// hash (its own tag under that hash) cannot take its place. Without a key (none drawn
/// yet) a verdict lifts it as before tags.
#[inline(always)]
fn clean_lifts(h: &QnameHashes, head: &[u8], now: u64) -> bool {
    if !judged_clean(h.full, now) {
        return false;
    }
    let key = tag_key();
    if key == 0 {
        return true;
    }
    let end = u32::from(h.records).wrapping_sub(5);
    let own = question_tag(head, end, key)
        // SAFETY: read-only lookup of a plain u64 value, copied out at once.
        .and_then(|t| unsafe { NAME_TAGS.get(t) }.copied())
        == Some(h.full);
    if !own {
        note(CaptureStat::NameTagMismatch);
    }
    own
}

/// Whether an agent is alive to judge held questions.
#[inline(always)]
fn agent_alive(now: u64) -> bool {
    match AGENT_STATE.get(AGENT_ALIVE_UNTIL) {
        Some(until) if *until != 0 => now < *until,
        _ => false,
    }
}

/// The block decision for a DNS message's question: the flags of the entry that blocks
/// its answers, `BLOCK_HOLD` for an MX answer held for the agent's verdict, or `None`.
///
/// In order: the whole name (an operator's or a learned name), a blocked lookalike domain
/// above it (`BLOCK_SUBTREE`), a protected `block` entry with one to three labels
/// appended (`BLOCK_PREFIX`, unless the agent judged the name clean), and an MX question
/// the agent has not judged yet, for at most `HOLD_NS` and only while it is alive.
///
/// `now` is the packet's timestamp, read once by the caller: a clock read here would cost
/// a second helper call per message, and one on demand would split the verifier's
/// states at every lookup (read or not yet), which the TCP path's rounds multiply.
///
/// A whole-name entry with a tag in `NAME_TAGS` is met only by a question whose keyed tag
/// is that tag (`nametag.rs`): another name with the same hash passes, counted. A clean
/// verdict lifts the prefix rule only with the name's own tag kept beside it.
#[inline(always)]
pub fn answer_hit(hashes: &QnameHashes, head: &[u8], now: u64) -> Option<u32> {
    let h = hashes;
    if let Some(f) = name_entry(h.full, 0, now)
        .filter(|_| block_is_its_own(h, head))
        .or_else(|| name_entry(h.last2, BLOCK_SUBTREE, now))
        .or_else(|| name_entry(h.last3, BLOCK_SUBTREE, now))
    {
        return Some(f);
    }
    let prefix = name_entry(h.stem1, BLOCK_PREFIX, now)
        .or_else(|| name_entry(h.stem2, BLOCK_PREFIX, now))
        .or_else(|| name_entry(h.stem3, BLOCK_PREFIX, now));
    if let Some(f) = prefix
        && !clean_lifts(h, head, now)
    {
        return Some(f);
    }
    if h.qtype == QTYPE_MX {
        // SAFETY: read-only lookup of a plain u64 value.
        if let Some(asked) = unsafe { HOLD_PENDING.get(h.full) }
            && now < asked.saturating_add(HOLD_NS)
            && agent_alive(now)
        {
            return Some(BLOCK_HOLD);
        }
    }
    None
}

/// A DNS message in a packet, as `capture` located it.
pub struct Message<'a> {
    /// The packet.
    pub ctx: &'a SkBuffContext,
    /// Offset of the message in the packet.
    pub off: u32,
    /// Bytes of the message in this packet.
    pub len: u32,
}

/// After a question was judged (`hit` is what `answer_hit` said): an MX query nobody
/// has judged yet is noted so its answer is held for the agent's verdict. A local
/// resolver's upstream query is not: its answer is never dropped, and the asker's own
/// query is the one that counts. `now` is the packet's timestamp.
#[inline(always)]
pub fn note_query(
    hashes: &QnameHashes,
    direction: Direction,
    answer: bool,
    exempt: bool,
    now: u64,
) {
    if direction != Direction::Egress || answer || exempt || hashes.qtype != QTYPE_MX {
        return;
    }
    if agent_alive(now) && !judged_clean(hashes.full, now) {
        // The first query's time stays: a retry does not extend the hold.
        let _ = HOLD_PENDING.insert(hashes.full, now, BPF_NOEXIST);
    }
}

/// Whether a legitimate (unblocked) answer should contest learned address blocks: only
/// while the agent has learned some.
#[inline(always)]
pub fn wants_contest() -> bool {
    matches!(AGENT_STATE.get(AGENT_LEARNED_ADDRS), Some(n) if *n != 0)
}

/// Marks learned address blocks `BLOCK_CONTESTED` for every A/AAAA record of a legitimate
/// answer (owner names compressed or the root, as servers write them; the walk stops at
/// anything else). The MTA that asked connects microseconds later, before any agent could
/// lift the block: a mail host shared with a lookalike is never refused.
///
/// Read from the packet with `bpf_skb_load_bytes`, whose offset the verifier need not
/// know: the walk's offsets then never split its states, and the loop stays cheap to
/// verify. Only this packet's bytes are looked at (a TCP answer split across segments is
/// contested by the agent when it reads the answer).
#[inline(always)]
pub fn contest(m: &Message, records: u32) {
    let load = |at: u32| -> Option<[u8; 2]> { m.ctx.load::<[u8; 2]>((m.off + at) as usize).ok() };
    let (Some(an), Some(ns), Some(ar)) = (load(6), load(8), load(10)) else {
        return;
    };
    let total = u16::from_be_bytes(an) as u32
        + u16::from_be_bytes(ns) as u32
        + u16::from_be_bytes(ar) as u32;
    let mut off = records;
    let mut n = 0;
    while n < MAX_RECORDS && n < total {
        // Owner: the root (one zero byte) or a compression pointer (two bytes).
        let Some(first) = m.ctx.load::<u8>((m.off + off) as usize).ok() else {
            return;
        };
        let owner = match first {
            0 => 1,
            b if b & 0xc0 == 0xc0 => 2,
            _ => return,
        };
        let head = off + owner;
        // Type, class, TTL, data length.
        let Some(fixed) = m.ctx.load::<[u8; 10]>((m.off + head) as usize).ok() else {
            return;
        };
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as u32;
        let rdata = m.off + head + 10;
        if rtype == TYPE_A && rdlen == 4 {
            if let Ok(a) = m.ctx.load::<[u8; 4]>(rdata as usize) {
                contest_v4(a);
            }
        } else if rtype == TYPE_AAAA
            && rdlen == 16
            && let Ok(a) = m.ctx.load::<[u8; 16]>(rdata as usize)
        {
            contest_v6(a);
        }
        off = head + 10 + rdlen;
        if off >= m.len {
            return;
        }
        n += 1;
    }
}

#[inline(always)]
fn contested(e: &BlockEntry) -> Option<BlockEntry> {
    (e.flags & BLOCK_LEARNED != 0 && e.flags & BLOCK_CONTESTED == 0).then_some(BlockEntry {
        flags: e.flags | BLOCK_CONTESTED,
        ..*e
    })
}

#[inline(always)]
fn contest_v4(addr: [u8; 4]) {
    if let Some(e) = BLOCKED_V4.get(Key::new(32, addr)).and_then(contested) {
        // Another CPU may have changed it meanwhile; both writes mean "not refused".
        let _ = BLOCKED_V4.insert(Key::new(32, addr), e, BPF_EXIST);
    }
}

#[inline(always)]
fn contest_v6(addr: [u8; 16]) {
    if let Some(e) = BLOCKED_V6.get(Key::new(128, addr)).and_then(contested) {
        let _ = BLOCKED_V6.insert(Key::new(128, addr), e, BPF_EXIST);
    }
}

/// The flags of the blocks on IPv4 address `v4` in force now, if any.
#[inline(always)]
pub fn addr_hit_v4(v4: [u8; 4]) -> Option<u32> {
    let e = BLOCKED_V4.get(Key::new(32, v4))?;
    if e.flags & BLOCK_LEARNED == 0 {
        return in_force_now(e).then_some(e.flags);
    }
    with_cover(e, BLOCKED_V4.get(Key::new(31, v4)))
}

/// A learned entry `e`'s flags if in force now, with those of the wider entry it shadows
/// (`cover`: the trie returns the longest match only) if that one is an operator's in
/// force. An operator's range enforced over a lookalike's host applied neither while the
/// agent's learned entry there carried no enforce flag (monitor mode) nor once it lapsed
/// or was contested with no agent to sweep it. Only a learned hit pays the second lookup.
/// (Flags and a flag for the hit rather than `Option`s of entries: a copied `None`'s
/// payload is a read of an unwritten register to the verifier.)
#[inline(always)]
fn with_cover(e: &BlockEntry, cover: Option<&BlockEntry>) -> Option<u32> {
    let mut hit = in_force_now(e);
    let mut flags = if hit { e.flags } else { 0 };
    if let Some(c) = cover
        && c.flags & BLOCK_LEARNED == 0
        && in_force_now(c)
    {
        hit = true;
        flags |= c.flags;
    }
    hit.then_some(flags)
}

/// The flags of the block on IPv6 address `v6` in force now (a v4-mapped address,
/// `::ffff:a.b.c.d`, is looked up in `BLOCKED_V4`), if any.
#[inline(always)]
pub fn addr_hit_v6(v6: &[u8; 16]) -> Option<u32> {
    let mapped = v6[..10].iter().all(|b| *b == 0) && v6[10] == 0xff && v6[11] == 0xff;
    if mapped {
        return addr_hit_v4([v6[12], v6[13], v6[14], v6[15]]);
    }
    let e = BLOCKED_V6.get(Key::new(128, *v6))?;
    if e.flags & BLOCK_LEARNED == 0 {
        return in_force_now(e).then_some(e.flags);
    }
    with_cover(e, BLOCKED_V6.get(Key::new(127, *v6)))
}
