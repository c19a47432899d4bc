//! The kernel programs: their names and where each attaches, one list for both sides.
//!
//! The agent loads and attaches by this list, and a unit test parses the built kernel
//! object and checks that its programs are exactly these, attached as said here.

/// A cgroup hook a program attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `connect()` on an IPv4 socket (`cgroup/connect4`).
    Connect4,
    /// `connect()` on an IPv6 socket (`cgroup/connect6`).
    Connect6,
    /// `bind()` of an IPv4 socket (`cgroup/bind4`).
    Bind4,
    /// `bind()` of an IPv6 socket (`cgroup/bind6`).
    Bind6,
    /// `sendmsg()` with an address on an IPv4 UDP socket (`cgroup/sendmsg4`).
    Sendmsg4,
    /// `sendmsg()` with an address on an IPv6 UDP socket (`cgroup/sendmsg6`).
    Sendmsg6,
    /// Packets leaving a socket (`cgroup_skb/egress`).
    SkbEgress,
    /// Packets arriving at a socket (`cgroup_skb/ingress`).
    SkbIngress,
}

/// One kernel program of the sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// SMTP connects over IPv4 (and local resolvers' upstream connects).
    Connect4,
    /// SMTP connects over IPv6.
    Connect6,
    /// Processes binding port 53 over IPv4 (local resolvers).
    Bind4,
    /// Processes binding port 53 over IPv6.
    Bind6,
    /// Local resolvers' unconnected upstream sends over IPv4.
    Sendmsg4,
    /// Local resolvers' unconnected upstream sends over IPv6.
    Sendmsg6,
    /// DNS messages leaving (queries).
    DnsEgress,
    /// DNS messages arriving (answers; dropped for blocked names).
    DnsIngress,
}

impl Program {
    /// Every program, in attach order.
    pub const ALL: [Program; 8] = [
        Program::Connect4,
        Program::Connect6,
        Program::Bind4,
        Program::Bind6,
        Program::Sendmsg4,
        Program::Sendmsg6,
        Program::DnsEgress,
        Program::DnsIngress,
    ];

    /// The program's name in the kernel object, the kernel and the pin directory.
    pub const fn name(self) -> &'static str {
        match self {
            Program::Connect4 => "mx_connect4",
            Program::Connect6 => "mx_connect6",
            Program::Bind4 => "mx_bind4",
            Program::Bind6 => "mx_bind6",
            Program::Sendmsg4 => "mx_sendmsg4",
            Program::Sendmsg6 => "mx_sendmsg6",
            Program::DnsEgress => "mx_dns_egress",
            Program::DnsIngress => "mx_dns_ingress",
        }
    }

    /// Where it attaches.
    pub const fn hook(self) -> Hook {
        match self {
            Program::Connect4 => Hook::Connect4,
            Program::Connect6 => Hook::Connect6,
            Program::Bind4 => Hook::Bind4,
            Program::Bind6 => Hook::Bind6,
            Program::Sendmsg4 => Hook::Sendmsg4,
            Program::Sendmsg6 => Hook::Sendmsg6,
            Program::DnsEgress => Hook::SkbEgress,
            Program::DnsIngress => Hook::SkbIngress,
        }
    }

    /// The program called `name`, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Program> {
        Program::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found_back() {
        for p in Program::ALL {
            assert_eq!(Program::from_name(p.name()), Some(p));
            assert_eq!(
                Program::ALL.iter().filter(|q| q.hook() == p.hook()).count(),
                1
            );
        }
        assert_eq!(Program::from_name("mx_other"), None);
    }
}
