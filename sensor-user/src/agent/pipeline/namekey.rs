//! The installation's name-tag key (`sensor_common::tag`): drawn at random by the first
//! agent, kept in `AGENT_STATE` with the pins so the kernel and every later agent use the
//! same one, and never written anywhere else (whoever knows it can compute collisions).

use std::io::Read;

use sensor_common::{
    maps::AGENT_NAME_KEY,
    qname::{MAX_QNAME_WIRE, encode_name},
    tag::name_tag,
};

use super::{super::enforcer::Enforcer, ledger::BlockLedger};

/// Eight random bytes from the kernel, as a key (never 0, which means "none").
fn draw() -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(u64::from_ne_bytes(b).max(1))
}

impl<E: Enforcer> BlockLedger<E> {
    /// Reads the key the pins hold, or draws and writes one. Without one, whole-name
    /// blocks are kept untagged: met by any name with the same hash, as before tags.
    pub fn ensure_name_key(&mut self) {
        let key = match self.enforcer.agent_slot(AGENT_NAME_KEY) {
            Ok(0) => match draw() {
                Ok(k) => match self.enforcer.set_agent_slot(AGENT_NAME_KEY, k) {
                    Ok(()) => k,
                    Err(e) => {
                        self.map_error("writing the name-tag key", e);
                        0
                    }
                },
                Err(e) => {
                    log::error!("drawing the name-tag key: {e}; name blocks stay untagged");
                    0
                }
            },
            Ok(k) => k,
            Err(e) => {
                self.map_error("reading the name-tag key", e);
                0
            }
        };
        self.name_key = key;
    }

    /// The key (0: none).
    pub fn name_key(&self) -> u64 {
        self.name_key
    }

    /// The keyed tag of a name written as text (`None`: no key, or no name).
    pub fn text_tag(&self, name: &str) -> Option<u64> {
        let mut wire = [0u8; MAX_QNAME_WIRE];
        let n = encode_name(name, &mut wire)?;
        (self.name_key != 0).then(|| name_tag(self.name_key, &wire[..n]))
    }

    /// Keeps the clean verdict under `h` as `tag`'s own (`NAME_TAGS[tag] = h`), so the
    /// verdict lifts the prefix rule for that name only. Keyed by the secret tag, never
    /// by the hash: a block learned under a computed hash writes its own tag there, and
    /// took the verdict's place (the legitimate name's answers were then dropped). At most
    /// `CLEAN_TAGS_MAX`, oldest out first.
    pub(super) fn tag_clean(&mut self, h: u64, tag: u64) {
        if self.name_key == 0 {
            return;
        }
        if let Err(e) = self.enforcer.tag_name(tag, h) {
            self.map_error("tagging a clean verdict", e);
            return;
        }
        self.keep_clean_tags([tag]);
    }

    /// Forgets the tags kept for clean verdicts (the verdicts are being forgotten),
    /// a previous agent's included: every `NAME_TAGS` entry but a block's own tag.
    pub(super) fn forget_clean_tags(&mut self) {
        self.clean_tags.clear();
        for key in self.clean_tag_keys() {
            self.untag(key);
        }
    }

    /// Takes over the tags a previous agent kept for the clean verdicts it leaves (the
    /// same policy's, so they stand): bounded as this agent's own, where before they
    /// stayed in `NAME_TAGS` for good, one more set each restart.
    pub(super) fn adopt_clean_tags(&mut self) {
        let keys = self.clean_tag_keys();
        self.keep_clean_tags(keys);
    }

    /// Counts `tags` (`NAME_TAGS` keys already written) among the clean verdicts' tags,
    /// the oldest beyond `CLEAN_TAGS_MAX` forgotten.
    fn keep_clean_tags(&mut self, tags: impl IntoIterator<Item = u64>) {
        for tag in tags {
            if !self.clean_tags.contains(&tag) {
                self.clean_tags.push_back(tag);
            }
        }
        while self.clean_tags.len() > CLEAN_TAGS_MAX {
            self.forget_oldest_clean_tag();
        }
    }

    /// The `NAME_TAGS` keys that are no name block's: clean verdicts' tags.
    fn clean_tag_keys(&mut self) -> Vec<u64> {
        match self.enforcer.name_tags() {
            // Not a block's, in the ledger or the kernel: a pinned block the ledger
            // could not read must keep its tag.
            Ok(tags) => tags
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| {
                    !self.names.contains_key(k) && matches!(self.enforcer.name_entry(*k), Ok(None))
                })
                .collect(),
            Err(e) => {
                self.map_error("reading the name tags", e);
                Vec::new()
            }
        }
    }

    /// Forgets the oldest clean verdict's tag.
    fn forget_oldest_clean_tag(&mut self) {
        if let Some(tag) = self.clean_tags.pop_front() {
            self.untag(tag);
        }
    }
}

/// Most clean verdicts' tags kept: the names the prefix rule covers that the agent judges
/// clean (a blocklist's lookups about a protected name, say) are few.
pub const CLEAN_TAGS_MAX: usize = 4_096;
