//! What a DNS response teaches: the CNAME chain, the addresses at its end, the mail
//! exchangers and their glue addresses.
//!
//! A hostile answer can repeat one exchanger or one address thousands of times (64 KiB
//! over TCP holds about 4,000 records), so the records are read through per-message
//! indexes and deduplicated, and the exchanger x address product is bounded: the work
//! and the facts grow with the message, never with its square.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use super::parse::{Data, Message};

/// Longest CNAME chain followed (resolvers stop near here too).
const MAX_CHAIN: usize = 16;
/// Glue addresses kept per exchanger (an MTA tries a handful: Postfix 5 by default).
pub const MAX_GLUE_PER_EXCHANGER: usize = 32;
/// Glue pairs kept per message, the most preferred exchangers first.
pub const MAX_GLUE: usize = 1024;

/// Facts from one response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Learned {
    /// The question name, then each CNAME target in order.
    pub chain: Vec<String>,
    /// Addresses of the names in `chain`, each once, with their (lowest) TTLs.
    pub addrs: Vec<(IpAddr, u32)>,
    /// Mail exchangers of the names in `chain`, each once, with their (lowest) TTLs.
    pub mx: Vec<(String, u32)>,
    /// Addresses of those exchangers found in the same message: (exchange, address, TTL).
    pub glue: Vec<(String, IpAddr, u32)>,
    /// Glue pairs past `MAX_GLUE_PER_EXCHANGER` or `MAX_GLUE`, not kept.
    pub glue_skipped: usize,
}

impl Learned {
    /// The name resolved to something usable for mail (an address or an exchanger).
    pub fn resolved(&self) -> bool {
        !self.addrs.is_empty() || !self.mx.is_empty()
    }
}

/// One message's records, indexed by owner name.
struct Index<'m> {
    /// The first CNAME of each owner.
    cname: HashMap<&'m str, &'m str>,
    /// The addresses of each owner, each once, with the lowest TTL seen.
    addrs: HashMap<&'m str, Vec<(IpAddr, u32)>>,
}

impl<'m> Index<'m> {
    fn new(m: &'m Message) -> Self {
        let mut cname = HashMap::new();
        let mut addrs: HashMap<&str, Vec<(IpAddr, u32)>> = HashMap::new();
        let mut at: HashMap<(&str, IpAddr), usize> = HashMap::new();
        for r in &m.records {
            match &r.data {
                Data::Cname(t) => {
                    cname.entry(r.name.as_str()).or_insert(t.as_str());
                }
                Data::Addr(ip) => {
                    let list = addrs.entry(r.name.as_str()).or_default();
                    match at.get(&(r.name.as_str(), *ip)) {
                        // An RRset's records share one TTL (RFC 2181): a repeat must not
                        // make a fact outlive the shortest.
                        Some(&i) => list[i].1 = list[i].1.min(r.ttl),
                        None => {
                            at.insert((r.name.as_str(), *ip), list.len());
                            list.push((*ip, r.ttl));
                        }
                    }
                }
                _ => {}
            }
        }
        Self { cname, addrs }
    }

    /// Follows CNAMEs from `start`.
    fn chain(&self, start: &str) -> Vec<String> {
        let mut chain = vec![start.to_string()];
        while chain.len() < MAX_CHAIN {
            match self.cname.get(chain[chain.len() - 1].as_str()) {
                Some(t) if !chain.iter().any(|c| c == t) => chain.push((*t).to_string()),
                _ => break,
            }
        }
        chain
    }

    /// Up to `limit` addresses of `names`, each once (lowest TTL), and how many address
    /// records of theirs were past the limit.
    fn addrs_of(&self, names: &[String], limit: usize) -> (Vec<(IpAddr, u32)>, usize) {
        let mut out: Vec<(IpAddr, u32)> = Vec::new();
        let mut at: HashMap<IpAddr, usize> = HashMap::new();
        let mut past = 0;
        if limit == 0 {
            let all = names.iter().filter_map(|n| self.addrs.get(n.as_str()));
            return (out, all.map(Vec::len).sum());
        }
        for n in names {
            for &(ip, ttl) in self.addrs.get(n.as_str()).into_iter().flatten() {
                match at.get(&ip) {
                    Some(&i) => out[i].1 = out[i].1.min(ttl),
                    None if out.len() < limit => {
                        at.insert(ip, out.len());
                        out.push((ip, ttl));
                    }
                    None => past += 1,
                }
            }
        }
        (out, past)
    }
}

/// Reads what a response teaches.
pub fn learn(m: &Message) -> Learned {
    let index = Index::new(m);
    let chain = index.chain(&m.qname);
    // Addresses of the question's own chain are all kept: each is a record in the message.
    let (addrs, _) = index.addrs_of(&chain, usize::MAX);
    let on_chain: HashSet<&str> = chain.iter().map(String::as_str).collect();
    // Exchangers, each once, the most preferred first (what an MTA tries first).
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut exchangers: Vec<(u16, &str, u32)> = Vec::new();
    for r in &m.records {
        if let Data::Mx {
            preference,
            exchange,
        } = &r.data
            && on_chain.contains(r.name.as_str())
        {
            match by_name.get(exchange.as_str()) {
                Some(&i) => {
                    let e = &mut exchangers[i];
                    e.0 = e.0.min(*preference);
                    e.2 = e.2.min(r.ttl);
                }
                None => {
                    by_name.insert(exchange, exchangers.len());
                    exchangers.push((*preference, exchange, r.ttl));
                }
            }
        }
    }
    let mx = exchangers
        .iter()
        .map(|&(_, ex, ttl)| (ex.to_string(), ttl))
        .collect();
    let mut ordered = exchangers.clone();
    ordered.sort_by_key(|&(pref, _, _)| pref);
    let (mut glue, mut glue_skipped) = (Vec::new(), 0);
    for (_, exchange, _) in ordered {
        // An exchanger may itself be a CNAME (not allowed by RFC 2181, seen anyway).
        let room = MAX_GLUE_PER_EXCHANGER.min(MAX_GLUE - glue.len());
        let (found, past) = index.addrs_of(&index.chain(exchange), room);
        glue_skipped += past;
        glue.extend(
            found
                .into_iter()
                .map(|(ip, ttl)| (exchange.to_string(), ip, ttl)),
        );
    }
    Learned {
        chain,
        addrs,
        mx,
        glue,
        glue_skipped,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::dns::parse::{Answer, QType};

    fn rec(name: &str, data: Data) -> Answer {
        Answer {
            name: name.into(),
            ttl: 60,
            data,
        }
    }

    fn msg(qname: &str, records: Vec<Answer>) -> Message {
        Message::answer_of(qname, QType::Mx, records)
    }

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

    #[test]
    fn cname_chain_to_addresses() {
        let m = msg(
            "www.army.ml",
            vec![
                rec("www.army.ml", Data::Cname("edge.army.ml".into())),
                rec("edge.army.ml", Data::Cname("host.cdn.example".into())),
                rec("host.cdn.example", Data::Addr(IP)),
                rec("unrelated.example", Data::Addr(OTHER)),
            ],
        );
        let l = learn(&m);
        assert_eq!(l.chain, ["www.army.ml", "edge.army.ml", "host.cdn.example"]);
        assert_eq!(l.addrs, [(IP, 60)]);
        assert!(l.resolved());
    }

    #[test]
    fn mx_with_glue_through_a_cname_d_exchanger() {
        let m = msg(
            "army.ml",
            vec![
                rec(
                    "army.ml",
                    Data::Mx {
                        preference: 10,
                        exchange: "mx.army.ml".into(),
                    },
                ),
                rec("mx.army.ml", Data::Cname("smtp.army.ml".into())),
                rec("smtp.army.ml", Data::Addr(IP)),
            ],
        );
        let l = learn(&m);
        assert_eq!(l.mx, [("mx.army.ml".to_string(), 60)]);
        assert_eq!(l.glue, [("mx.army.ml".to_string(), IP, 60)]);
    }

    #[test]
    fn loops_and_empty_answers() {
        let m = msg(
            "a.example",
            vec![
                rec("a.example", Data::Cname("b.example".into())),
                rec("b.example", Data::Cname("a.example".into())),
            ],
        );
        let l = learn(&m);
        assert_eq!(l.chain.len(), 2);
        assert!(!l.resolved());
    }

    fn mx(preference: u16, exchange: &str) -> Data {
        Data::Mx {
            preference,
            exchange: exchange.into(),
        }
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    // The defect: 2,040 MX records naming one exchanger and 2,040 glue addresses of it
    // (one 64 KiB TCP answer) gave 4.16 million glue facts, each a route learned.
    #[test]
    fn one_exchanger_repeated_with_many_addresses_stays_bounded() {
        let mut records: Vec<Answer> = (0..2040)
            .map(|i| rec("army.ml", mx(i as u16, "mx.army.ml")))
            .collect();
        records.extend((0..2040).map(|i| rec("mx.army.ml", Data::Addr(v4(i)))));
        let l = learn(&msg("army.ml", records));
        assert_eq!(l.mx, [("mx.army.ml".to_string(), 60)]);
        assert_eq!(l.glue.len(), MAX_GLUE_PER_EXCHANGER);
        assert_eq!(l.glue_skipped, 2040 - MAX_GLUE_PER_EXCHANGER);
    }

    #[test]
    fn many_exchangers_through_one_cname_stay_bounded() {
        let mut records: Vec<Answer> = (0..2000)
            .map(|i| rec("army.ml", mx(10, &format!("mx{i}.army.ml"))))
            .collect();
        records.extend(
            (0..2000).map(|i| rec(&format!("mx{i}.army.ml"), Data::Cname("h.army.ml".into()))),
        );
        records.extend((0..2000).map(|i| rec("h.army.ml", Data::Addr(v4(i)))));
        let l = learn(&msg("army.ml", records));
        assert_eq!(l.mx.len(), 2000);
        assert_eq!(l.glue.len(), MAX_GLUE);
        assert_eq!(l.glue_skipped, 2000 * 2000 - MAX_GLUE);
    }

    // Bounded, the glue kept is the preferred exchanger's, wherever it stands.
    #[test]
    fn the_preferred_exchanger_s_glue_is_kept_when_it_comes_last() {
        let mut records = Vec::new();
        for e in 0..64u32 {
            let pref = if e == 63 { 0 } else { 50 };
            records.push(rec("army.ml", mx(pref, &format!("mx{e}.army.ml"))));
            for a in 0..MAX_GLUE_PER_EXCHANGER as u32 {
                records.push(rec(&format!("mx{e}.army.ml"), Data::Addr(v4(e * 100 + a))));
            }
        }
        let l = learn(&msg("army.ml", records));
        assert_eq!(l.glue.len(), MAX_GLUE);
        assert!(
            l.glue
                .iter()
                .any(|(ex, ip, _)| ex == "mx63.army.ml" && *ip == v4(6300))
        );
        assert_eq!(l.glue[0].0, "mx63.army.ml");
    }

    #[test]
    fn repeated_records_are_learned_once_with_the_lowest_ttl() {
        let mut short = rec("mx.army.ml", Data::Addr(IP));
        short.ttl = 5;
        let mut short_mx = rec("army.ml", mx(20, "mx.army.ml"));
        short_mx.ttl = 7;
        let m = msg(
            "army.ml",
            vec![
                rec("army.ml", mx(10, "mx.army.ml")),
                short_mx,
                rec("mx.army.ml", Data::Addr(IP)),
                short,
                rec("army.ml", Data::Addr(OTHER)),
                rec("army.ml", Data::Addr(OTHER)),
            ],
        );
        let l = learn(&m);
        assert_eq!(l.mx, [("mx.army.ml".to_string(), 7)]);
        assert_eq!(l.glue, [("mx.army.ml".to_string(), IP, 5)]);
        assert_eq!(l.addrs, [(OTHER, 60)]);
    }
}
