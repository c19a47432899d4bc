//! Built-in lists: mail providers and DNS list operators never reported, words lookalikes
//! add, suffixes people confuse. Users extend them in the config.

/// Major mailbox providers and their regional domains (`data/mail_providers.txt`, with
/// its sources). Many are one edit from each other (`gmx.com`/`gmail.com`,
/// `mail.com`/`gmail.com`) and all are real destinations, so none is a lookalike.
const MAIL_PROVIDERS: &str = include_str!("data/mail_providers.txt");

/// The built-in mail providers, one domain each.
pub fn mail_providers() -> impl Iterator<Item = &'static str> {
    entries(MAIL_PROVIDERS)
}

/// DNS list operators (`data/dns_lists.txt`): names under them are lookups about a
/// domain put in front (`army.mil.dbl.spamhaus.org`), never mail to it.
const DNS_LISTS: &str = include_str!("data/dns_lists.txt");

/// The built-in DNS list operators, one domain each.
pub fn dns_lists() -> impl Iterator<Item = &'static str> {
    entries(DNS_LISTS)
}

fn entries(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Words phishing domains glue onto a real name (`army-login.mil`, `securepaypal.com`).
pub const WORDS: &[&str] = &[
    "account",
    "accounts",
    "admin",
    "app",
    "auth",
    "bank",
    "billing",
    "cloud",
    "connect",
    "corp",
    "dashboard",
    "docs",
    "email",
    "files",
    "global",
    "group",
    "help",
    "helpdesk",
    "hr",
    "id",
    "info",
    "invoice",
    "it",
    "login",
    "logon",
    "mail",
    "mfa",
    "mobile",
    "my",
    "net",
    "news",
    "office",
    "official",
    "online",
    "pay",
    "payment",
    "payments",
    "portal",
    "recovery",
    "remote",
    "reset",
    "secure",
    "security",
    "service",
    "services",
    "shop",
    "signin",
    "sso",
    "staff",
    "store",
    "support",
    "team",
    "update",
    "verify",
    "vpn",
    "web",
    "webmail",
];

/// Suffixes that get typed or remembered for each other.
pub const SUFFIX_SWAPS: &[(&str, &str)] = &[
    ("mil", "ml"),
    ("com", "co"),
    ("com", "cm"),
    ("com", "om"),
    ("com", "net"),
    ("org", "net"),
    ("gov", "gv"),
    ("gov", "go"),
    ("co.uk", "com"),
    ("co.uk", "uk"),
    ("gov.uk", "gov"),
    ("org.uk", "org"),
    ("com.au", "com"),
    ("edu", "ed"),
    ("net", "ne"),
];
