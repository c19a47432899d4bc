//! The closed sets of names the event log and the metric labels use, as enums.

use serde::Serialize;

/// Declares a closed set of names: an enum serialised as its snake_case name, with
/// `name()` for metric labels and `ALL` for exporting every label at zero.
macro_rules! names {
    ($(#[$doc:meta])* $ty:ident { $($(#[$vdoc:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
        #[serde(rename_all = "snake_case")]
        pub enum $ty { $($(#[$vdoc])* $v),+ }

        impl $ty {
            /// Every value.
            pub const ALL: &[$ty] = &[$($ty::$v),+];

            /// The name used in events and metric labels.
            pub const fn name(self) -> &'static str {
                match self { $($ty::$v => $s),+ }
            }
        }
    };
}

names! {
    /// Severity, as alert rules and Alertmanager use it.
    Severity {
        /// For the record.
        Info = "info",
        /// Someone should look.
        Warning = "warning",
        /// Someone should look now.
        Critical = "critical",
    }
}

names! {
    /// What a block refused (and, in a detection, how enforce mode would have stopped it).
    BlockKind {
        /// An SMTP connect refused with EPERM.
        Connect = "connect",
        /// A DNS answer dropped before the asking socket saw it.
        DnsAnswer = "dns_answer",
    }
}

names! {
    /// What made the agent read its config again.
    ReloadTrigger {
        /// SIGHUP.
        Sighup = "sighup",
        /// The file's contents changed.
        File = "file",
    }
}

names! {
    /// How a config (re)load ended.
    ReloadResult {
        /// Applied.
        Ok = "ok",
        /// Refused; the running config stays.
        Error = "error",
    }
}

names! {
    /// How an alert push to Alertmanager ended.
    PushResult {
        /// Alertmanager took it.
        Ok = "ok",
        /// Every attempt failed.
        Failed = "failed",
        /// The queue was full: dropped without trying.
        Dropped = "dropped",
    }
}

names! {
    /// A change in the local resolvers the agent knows.
    ResolverState {
        /// A process serving port 53 was found.
        Found = "found",
        /// It exited.
        Gone = "gone",
    }
}
