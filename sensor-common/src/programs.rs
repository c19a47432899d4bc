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

/// The SMTP ports the agent watches unless configured otherwise (`agent.smtp_ports`).
///
/// The connect programs come in two builds: one that knows these ports as constants and
/// reads no memory on a connect to any other port, attached while the agent watches
/// exactly these; and one that looks each port up in `SMTP_PORTS`, attached while it
/// watches any other set. A lookup is a cache line the connect path touches for nothing
/// else: on a VM, 15-20 ns on every connect of the host.
pub const STANDARD_SMTP_PORTS: [u16; 3] = [25, 465, 587];

/// Which build of a program runs, where there are two (the connect programs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSet {
    /// The agent watches exactly `STANDARD_SMTP_PORTS`: ports are constants.
    Standard,
    /// Any other set: each port is looked up in `SMTP_PORTS`.
    Configured,
}

impl PortSet {
    /// The build for watching `ports` (in any order).
    pub fn of(ports: &[u16]) -> Self {
        let all_standard = ports.iter().all(|p| STANDARD_SMTP_PORTS.contains(p));
        if all_standard && STANDARD_SMTP_PORTS.iter().all(|p| ports.contains(p)) {
            Self::Standard
        } else {
            Self::Configured
        }
    }
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

    /// The name in the kernel object and the kernel of its build for `ports`: the
    /// programs that do not look at ports have one build, named as the program.
    pub const fn build_name(self, ports: PortSet) -> &'static str {
        match (self, ports) {
            (Program::Connect4, PortSet::Configured) => "mx_connect4_cfg",
            (Program::Connect6, PortSet::Configured) => "mx_connect6_cfg",
            _ => self.name(),
        }
    }

    /// Every build of every program in the kernel object, with its program.
    pub fn builds() -> impl Iterator<Item = (&'static str, Program)> {
        Program::ALL.into_iter().flat_map(|p| {
            let (a, b) = (
                p.build_name(PortSet::Standard),
                p.build_name(PortSet::Configured),
            );
            core::iter::once((a, p)).chain((a != b).then_some((b, p)))
        })
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

    /// The program called `name`, or whose build is called `name`, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Program> {
        Program::builds().find(|(b, _)| *b == name).map(|(_, p)| p)
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

    #[test]
    fn builds_have_distinct_kernel_names_and_find_their_program() {
        let mut builds = [("", Program::Connect4); Program::ALL.len() + 2];
        let mut n = 0;
        for b in Program::builds() {
            builds[n] = b;
            n += 1;
        }
        assert_eq!(n, builds.len());
        for (i, (name, p)) in builds.iter().enumerate() {
            // The kernel keeps 15 bytes of a program's name.
            assert!(name.len() <= 15, "{name}");
            assert_eq!(Program::from_name(name), Some(*p));
            assert!(builds[..i].iter().all(|(n, _)| n != name), "{name} twice");
        }
        assert_eq!(
            Program::Connect4.build_name(PortSet::Configured),
            "mx_connect4_cfg"
        );
        assert_eq!(
            Program::DnsIngress.build_name(PortSet::Configured),
            "mx_dns_ingress"
        );
    }

    #[test]
    fn only_exactly_the_standard_ports_take_the_standard_build() {
        assert_eq!(PortSet::of(&[587, 25, 465]), PortSet::Standard);
        assert_eq!(PortSet::of(&[25, 465, 587, 25]), PortSet::Standard);
        assert_eq!(PortSet::of(&[25, 465]), PortSet::Configured);
        assert_eq!(PortSet::of(&[25, 465, 587, 2525]), PortSet::Configured);
        assert_eq!(PortSet::of(&[]), PortSet::Configured);
    }
}
