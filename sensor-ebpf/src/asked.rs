//! The questions a DNS client socket asked, so that each answer it receives is matched
//! to one of them.
//!
//! A stub resolver may take an answer for a question it did not ask: musl matches an
//! answer to its query by id alone, and glibc's TCP reader does not compare the question
//! either. The kernel decides on the question an answer carries, which the answer's
//! writer chooses: a lookalike's server answering `army.ml MX` with the question of an
//! innocent name and its own exchanger got the answer past a block on `army.ml`. So each
//! question a client socket sends (its id, type and name hash) is kept in the socket's
//! storage, the latest `ASKED_SLOTS` of them, and an answer with records that carries
//! the id of one of them but another question (name or type) counts as blocked.
//!
//! An answer whose id no remembered question has (asked before the programs were
//! attached, or one of more questions outstanding than the slots) is not judged, nor is
//! any answer at a socket whose questions the kernel could not all read (a TCP stream
//! whose framing was lost or taken up mid-way): what was asked is unknown there, and
//! legitimate answers must pass. A stub ignores an answer with an id it did not use, so
//! the one the attack needs is always one the socket was seen using.

use aya_ebpf::{
    bindings::{__sk_buff, BPF_SK_STORAGE_GET_F_CREATE},
    helpers::generated::bpf_sk_storage_get,
};
use sensor_common::maps::{ASKED_SLOTS, ASKED_VALUE_SIZE};

use crate::maps::ASKED;

/// An `ASKED` value.
#[repr(C)]
pub struct Asked {
    /// Each slot's question name hash.
    hashes: [u64; ASKED_SLOTS],
    /// Each slot's message id (low 16 bits) and question type (high 16 bits).
    keys: [u32; ASKED_SLOTS],
    /// Questions remembered so far: the next goes in slot `next % ASKED_SLOTS`.
    next: u32,
    /// Non-zero: the socket asked what the kernel could not read; it is not checked.
    unknown: u32,
}

const _: () = assert!(core::mem::size_of::<Asked>() == ASKED_VALUE_SIZE);
const _: () = assert!(ASKED_SLOTS.is_power_of_two());

/// `settle` flag: the message is an answer.
pub const ANSWER: u32 = 1;
/// `settle` flag: the message carries answer records.
pub const RECORDS: u32 = 2;
/// `settle` flag: the message arrives (ingress).
pub const INGRESS: u32 = 4;
/// `settle` flag: the message is not matched to a question (a zone transfer's later
/// message, which has none), or it already counts as blocked.
pub const UNCHECKED: u32 = 8;

/// `lookup`: the socket is not checked for this answer: no question with its id is
/// remembered (asked before the programs were attached, or one of more than
/// `ASKED_SLOTS` outstanding), or the socket asked what the kernel could not read.
const UNKNOWN: u32 = 0;
/// `lookup`: the answer is to a question the socket asked.
const ASKED_IT: u32 = 1;
/// `lookup`: the socket asked a question with the answer's id, and another one.
const NOT_ASKED: u32 = 2;

/// For a message at a socket that is not a local resolver's upstream one, whose question
/// name hashes to `hash`, with `key` its id (low 16 bits) and question type (high 16),
/// and `flags` (`ANSWER`...): a question sent is remembered; returns 1 for an arriving
/// answer with records whose id is that of a question the socket asked, but whose
/// question is another: it counts as blocked. (An answer's writer must use the id of a
/// question outstanding, or the stub ignores it; an id no slot holds is not judged, so
/// a socket with more questions outstanding than the slots loses nothing.)
///
/// Not inlined: called where the capture's frame leaves no room (6.1 allows the entry,
/// the capture and one call 512 bytes of stack), it takes its inputs as scalars and
/// keeps its state in registers.
#[inline(never)]
pub fn settle(skb: *mut __sk_buff, hash: u64, key: u32, flags: u32) -> u32 {
    if flags & (ANSWER | INGRESS) == 0 {
        remember(skb, key, hash);
        return 0;
    }
    let answer = ANSWER | RECORDS | INGRESS;
    if flags & (answer | UNCHECKED) != answer {
        return 0;
    }
    u32::from(lookup(skb, key, hash) == NOT_ASKED)
}

/// The storage of the packet's socket (created if `create`), or `None`.
#[inline(always)]
fn storage(skb: *mut __sk_buff, create: bool) -> Option<&'static mut Asked> {
    // SAFETY: `skb` is the program's context; `sk` is a readable field (a socket or null).
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    let map = core::ptr::from_ref(&ASKED).cast_mut().cast();
    let flags = if create {
        u64::from(BPF_SK_STORAGE_GET_F_CREATE)
    } else {
        0
    };
    // SAFETY: `sk` is the packet's socket (non-null); the helper returns its storage,
    // zeroed when created, or null.
    let p = unsafe { bpf_sk_storage_get(map, sk.cast(), core::ptr::null_mut(), flags) };
    // SAFETY: non-null storage of `Asked`, ours while the socket is.
    (!p.is_null()).then(|| unsafe { &mut *p.cast::<Asked>() })
}

/// Remembers a question the packet's socket sends: its `key` (id and type) and name
/// `hash`. (Without storage, the socket's answers are not checked: nothing is lost.)
#[inline(always)]
fn remember(skb: *mut __sk_buff, key: u32, hash: u64) {
    let Some(a) = storage(skb, true) else {
        return;
    };
    // Not atomic (a fetch-and-add needs a newer instruction set than the programs are
    // built for): two threads sending on one socket from two CPUs at the same instant may
    // take one slot; the answer to the question overwritten is then not judged (its id
    // is in no slot).
    let n = a.next;
    a.next = n.wrapping_add(1);
    let i = n as usize & (ASKED_SLOTS - 1);
    if let (Some(h), Some(k)) = (a.hashes.get_mut(i), a.keys.get_mut(i)) {
        *h = hash;
        *k = key;
    }
}

/// Whether the packet's socket asked the question `key` (id and type) with name `hash`
/// (`UNKNOWN`, `ASKED_IT`, `NOT_ASKED`).
#[inline(always)]
fn lookup(skb: *mut __sk_buff, key: u32, hash: u64) -> u32 {
    let Some(a) = storage(skb, false) else {
        return UNKNOWN;
    };
    if a.unknown != 0 {
        return UNKNOWN;
    }
    let mut found = UNKNOWN;
    for i in 0..ASKED_SLOTS {
        // A slot never written (hash 0) holds no question, though its id reads as 0.
        if a.hashes[i] != 0 && a.keys[i] & 0xffff == key & 0xffff {
            if a.keys[i] == key && a.hashes[i] == hash {
                return ASKED_IT;
            }
            found = NOT_ASKED;
        }
    }
    found
}

/// The packet's socket asked what the kernel could not read (its TCP stream's framing
/// was lost): its answers are not checked from now on.
#[inline(never)]
pub fn unknown(skb: *mut __sk_buff) {
    if let Some(a) = storage(skb, true) {
        a.unknown = 1;
    }
}
