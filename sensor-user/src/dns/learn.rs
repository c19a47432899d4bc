//! What a DNS response teaches: the CNAME chain, the addresses at its end, the mail
//! exchangers and their glue addresses.

use std::net::IpAddr;

use super::parse::{Data, Message};

/// Longest CNAME chain followed (resolvers stop near here too).
const MAX_CHAIN: usize = 16;

/// Facts from one response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Learned {
    /// The question name, then each CNAME target in order.
    pub chain: Vec<String>,
    /// Addresses of the names in `chain`, with their TTLs.
    pub addrs: Vec<(IpAddr, u32)>,
    /// Mail exchangers of the names in `chain`, with their TTLs.
    pub mx: Vec<(String, u32)>,
    /// Addresses of those exchangers found in the same message: (exchange, address, TTL).
    pub glue: Vec<(String, IpAddr, u32)>,
}

impl Learned {
    /// The name resolved to something usable for mail (an address or an exchanger).
    pub fn resolved(&self) -> bool {
        !self.addrs.is_empty() || !self.mx.is_empty()
    }
}

/// Follows CNAMEs from `start` inside the message's records.
fn chain(m: &Message, start: &str) -> Vec<String> {
    let mut chain = vec![start.to_string()];
    while chain.len() < MAX_CHAIN {
        let last = &chain[chain.len() - 1];
        let next = m.records.iter().find_map(|r| match &r.data {
            Data::Cname(t) if r.name == *last => Some(t.clone()),
            _ => None,
        });
        match next {
            Some(t) if !chain.contains(&t) => chain.push(t),
            _ => break,
        }
    }
    chain
}

fn addrs_of<'a>(m: &'a Message, names: &'a [String]) -> impl Iterator<Item = (IpAddr, u32)> + 'a {
    m.records.iter().filter_map(move |r| match r.data {
        Data::Addr(ip) if names.contains(&r.name) => Some((ip, r.ttl)),
        _ => None,
    })
}

/// Reads what a response teaches.
pub fn learn(m: &Message) -> Learned {
    let chain = chain(m, &m.qname);
    let addrs: Vec<(IpAddr, u32)> = addrs_of(m, &chain).collect();
    let mx: Vec<(String, u32)> = m
        .records
        .iter()
        .filter_map(|r| match &r.data {
            Data::Mx { exchange, .. } if chain.contains(&r.name) => Some((exchange.clone(), r.ttl)),
            _ => None,
        })
        .collect();
    let mut glue = Vec::new();
    for (exchange, _) in &mx {
        // An exchanger may itself be a CNAME (not allowed by RFC 2181, seen anyway).
        let names = self::chain(m, exchange);
        glue.extend(addrs_of(m, &names).map(|(ip, ttl)| (exchange.clone(), ip, ttl)));
    }
    Learned {
        chain,
        addrs,
        mx,
        glue,
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
        Message {
            id: 1,
            response: true,
            nxdomain: false,
            failed: false,
            truncated: false,
            qname: qname.into(),
            qtype: QType::Mx,
            records,
            partial: false,
        }
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
}
