//! The guard against webhook URLs that reach inside our network (SSRF): users choose where
//! Strata POSTs, so a URL is only accepted when it is http(s) and every address its host
//! resolves to is public, unless an operator allow-listed it (`STRATA_WEBHOOK_ALLOW`).
//!
//! The api checks a URL when a job is submitted, so a refusal is a 422 the user sees; the
//! worker checks again before each delivery and connects only to addresses the guard passed,
//! because a name can be re-pointed at an internal address in between (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// The longest webhook URL accepted, in characters: longer ones are abuse, not addresses.
pub const MAX_URL_CHARS: usize = 2048;

/// How long resolving a webhook's host may take before the URL is refused as unresolved.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Hosts and networks a webhook may reach although internal (configuration `webhooks.allow`,
/// env STRATA_WEBHOOK_ALLOW).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allow {
    /// Host names, lowercased, without a trailing dot; matched exactly.
    hosts: Vec<String>,
    /// Networks; a single address is a /32 or /128.
    networks: Vec<IpNet>,
}

impl Allow {
    /// From entries such as "hooks.internal", "127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"; an
    /// entry that is neither a valid host name nor an address/CIDR is an Err naming it. Blank
    /// entries are skipped.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Allow, String> {
        let mut allow = Allow::default();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            match parse_entry(entry) {
                Some(Entry::Network(network)) => {
                    if !allow.networks.contains(&network) {
                        allow.networks.push(network);
                    }
                }
                Some(Entry::Host(host)) => {
                    if !allow.hosts.contains(&host) {
                        allow.hosts.push(host);
                    }
                }
                None => {
                    return Err(format!(
                        "webhook allow-list entry {entry:?} is neither a host name nor an IP \
                         address or network (such as hooks.internal, 10.0.0.1 or 10.0.0.0/8)"
                    ))
                }
            }
        }
        Ok(allow)
    }

    /// Whether nothing is allow-listed, the usual case.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.networks.is_empty()
    }

    /// Whether `host` (a name, compared case-insensitively, trailing dot ignored) is
    /// allow-listed by name.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Whether `ip` lies in an allow-listed network. An IPv6 address carrying an IPv4 one
    /// (::ffff:10.0.0.1) is allowed when either form is, as it is judged by the IPv4 address.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let carried = match ip {
            IpAddr::V6(v6) => carried_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.networks
            .iter()
            .any(|network| network.contains(&ip) || carried.is_some_and(|v4| network.contains(&v4)))
    }
}

/// A comma-separated list, as STRATA_WEBHOOK_ALLOW is written.
impl FromStr for Allow {
    type Err = String;

    fn from_str(list: &str) -> Result<Allow, String> {
        Allow::parse(list.split(','))
    }
}

/// One allow-list entry, understood.
enum Entry {
    Host(String),
    Network(IpNet),
}

fn parse_entry(entry: &str) -> Option<Entry> {
    if entry.contains('/') {
        return entry
            .parse::<IpNet>()
            .ok()
            .map(|network| Entry::Network(network.trunc()));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(Entry::Network(IpNet::from(ip)));
    }
    // Parsed as a URL host is, so an entry means what the same text in a webhook URL means:
    // "[::1]", "0x7f.1" and international names written in Unicode all come out as in URLs.
    match Host::parse(entry).ok()? {
        Host::Ipv4(ip) => Some(Entry::Network(IpNet::from(IpAddr::V4(ip)))),
        Host::Ipv6(ip) => Some(Entry::Network(IpNet::from(IpAddr::V6(ip)))),
        Host::Domain(name) => {
            let name = name.strip_suffix('.').unwrap_or(&name);
            is_host_name(name).then(|| Entry::Host(name.to_owned()))
        }
    }
}

/// Whether `name` (lowercase ASCII) is made of DNS labels; the url crate accepts much more in
/// a host (`*`, `!`, ...), which in an allow-list would be a typo that never matches anything.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// Why a webhook URL is refused; Display is a sentence that reads well after "webhook_url: ".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The text does not parse as an absolute URL; the parser's reason.
    #[error("not a valid absolute URL ({0})")]
    NotAUrl(String),
    /// A scheme other than http or https.
    #[error("the scheme is {0}; webhooks use http or https")]
    Scheme(String),
    /// No host to send to.
    #[error("the URL has no host")]
    NoHost,
    /// A user name or password in the URL: it would be stored, logged and shown with the job.
    #[error(
        "the URL carries a user name or password, which would be stored and shown with the job; \
         webhook deliveries are signed instead"
    )]
    Credentials,
    /// Longer than [`MAX_URL_CHARS`]; the length found.
    #[error("the URL is {0} characters long; at most {MAX_URL_CHARS} are accepted")]
    TooLong(usize),
    /// The host's name does not resolve (or resolves to nothing, or not in time); most likely
    /// a typo, so it is refused at submission rather than failing at every delivery.
    #[error("{host} does not resolve: {reason}")]
    Unresolved { host: String, reason: String },
    /// The host is, or resolves to, an address that is not public: `class` as from
    /// [`internal_class`].
    #[error("{}", internal_sentence(host, *ip, class))]
    Internal {
        host: String,
        ip: IpAddr,
        class: &'static str,
    },
}

fn internal_sentence(host: &str, ip: IpAddr, class: &str) -> String {
    let article = if class.starts_with(['a', 'e', 'i', 'o']) || class.starts_with("unspecified") {
        "an"
    } else {
        "a"
    };
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let reaches = if literal.parse::<IpAddr>() == Ok(ip) {
        format!("{host} is")
    } else {
        format!("{host} resolves to {ip},")
    };
    format!(
        "{reaches} {article} {class} address; webhooks go to public addresses only \
         (an operator may allow it with STRATA_WEBHOOK_ALLOW)"
    )
}

/// The syntax checks, no network: an absolute http or https URL with a host, no user name or
/// password in it, at most 2,048 characters. Returns the parsed URL.
///
/// The url crate normalises hosts as browsers do, so IPv4 written in hex, octal or as one
/// number (`0x7f.1`, `2130706433`) comes back as the address it means and is judged as such;
/// an IPv6 zone id (`[fe80::1%25eth0]`) is not valid in a URL and is refused here.
pub fn parse_url(text: &str) -> Result<Url, Refusal> {
    let chars = text.chars().count();
    if chars > MAX_URL_CHARS {
        return Err(Refusal::TooLong(chars));
    }
    let url = Url::parse(text).map_err(|err| match err {
        url::ParseError::EmptyHost => Refusal::NoHost,
        err => Refusal::NotAUrl(err.to_string()),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    if url.host().is_none() {
        return Err(Refusal::NoHost);
    }
    Ok(url)
}

/// IPv4 networks that are not public, most specific first: the first that holds an address
/// names its class.
const IPV4_INTERNAL: &[(Ipv4Net, &str)] = &[
    // Instance metadata services hand out cloud credentials: the classic SSRF target.
    (v4(169, 254, 169, 254, 32), "cloud metadata"), // AWS, GCP, Azure, OpenStack, Oracle
    (v4(169, 254, 170, 2, 32), "cloud metadata"),   // AWS ECS task metadata
    (v4(100, 100, 100, 200, 32), "cloud metadata"), // Alibaba Cloud
    (v4(192, 0, 0, 192, 32), "cloud metadata"),     // Oracle Cloud (legacy)
    (v4(0, 0, 0, 0, 32), "unspecified"),
    (v4(0, 0, 0, 0, 8), "current-network"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(169, 254, 0, 0, 16), "link-local"),
    (v4(100, 64, 0, 0, 10), "carrier-grade NAT"),
    (v4(192, 0, 0, 0, 24), "reserved"), // IETF protocol assignments
    (v4(192, 0, 2, 0, 24), "documentation"),
    (v4(198, 51, 100, 0, 24), "documentation"),
    (v4(203, 0, 113, 0, 24), "documentation"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(192, 88, 99, 0, 24), "reserved"), // the retired 6to4 relay anycast
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
];

/// IPv6 networks that are not public, most specific first. Addresses carrying an IPv4 one are
/// judged by it before this table (see [`carried_ipv4`]), and anything outside 2000::/3, the
/// only global unicast space allocated, is "reserved" after it.
const IPV6_INTERNAL: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (
        v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        "cloud metadata",
    ), // AWS
    (
        v6([0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254], 128),
        "cloud metadata",
    ), // GCP
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use NAT64"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), "Teredo"),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), "benchmarking"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), "reserved"), // IETF protocol assignments
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique local"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
    )
}

/// Why `ip` is not a public address, if it is not: "loopback", "private", "link-local",
/// "cloud metadata", "unspecified", "current-network", "carrier-grade NAT", "multicast",
/// "broadcast", "reserved", "documentation", "benchmarking", "unique local", "site-local",
/// "local-use NAT64", "discard-only", "Teredo". IPv4-mapped, IPv4-compatible, NAT64 and 6to4
/// IPv6 addresses are judged by the IPv4 address they carry.
pub fn internal_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => ipv4_class(v4),
        IpAddr::V6(v6) => match carried_ipv4(v6) {
            Some(v4) => ipv4_class(v4),
            None => IPV6_INTERNAL
                .iter()
                .find(|(network, _)| network.contains(&v6))
                .map(|&(_, class)| class)
                .or_else(|| (!GLOBAL_UNICAST.contains(&v6)).then_some("reserved")),
        },
    }
}

fn ipv4_class(ip: Ipv4Addr) -> Option<&'static str> {
    IPV4_INTERNAL
        .iter()
        .find(|(network, _)| network.contains(&ip))
        .map(|&(_, class)| class)
}

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that reach IPv4
/// hosts: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated), NAT64
/// (64:ff9b::a.b.c.d) or 6to4 (2002:aabb:ccdd::/48). `::` and `::1` are IPv6's own.
fn carried_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// Judges addresses `host` resolved to: Ok with them when the host is allow-listed by name, or
/// every address is public or allow-listed; else the Refusal naming the first address refused
/// and its class. No addresses at all is a Refusal too.
pub fn check_addrs(
    host: &str,
    addrs: &[SocketAddr],
    allow: &Allow,
) -> Result<Vec<SocketAddr>, Refusal> {
    if addrs.is_empty() {
        return Err(Refusal::Unresolved {
            host: host.to_owned(),
            reason: "no addresses".to_owned(),
        });
    }
    if allow.allows_host(host) {
        return Ok(addrs.to_vec());
    }
    // All or nothing: a name with one internal address among public ones is a rebinding setup
    // or a misconfiguration, and either way not a host to deliver to.
    for addr in addrs {
        let ip = addr.ip();
        if let Some(class) = internal_class(ip) {
            if !allow.allows_ip(ip) {
                return Err(Refusal::Internal {
                    host: host.to_owned(),
                    ip,
                    class,
                });
            }
        }
    }
    Ok(addrs.to_vec())
}

/// Resolves `host` (a name) to its addresses with `port`, bounded by [`RESOLVE_TIMEOUT`];
/// failing, or finding nothing, is [`Refusal::Unresolved`].
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    let unresolved = |reason: String| Refusal::Unresolved {
        host: host.to_owned(),
        reason,
    };
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| unresolved(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs())))?
        .map_err(|err| unresolved(err.to_string()))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(unresolved("no addresses".to_owned()));
    }
    Ok(addrs)
}

/// `parse_url`, then resolves the host (an IP literal is judged as is; a name via
/// tokio::net::lookup_host with the URL's port or the scheme's default, bounded by
/// [`RESOLVE_TIMEOUT`]) and `check_addrs`. What the api calls at submission and the worker
/// before each delivery.
pub async fn check(text: &str, allow: &Allow) -> Result<(Url, Vec<SocketAddr>), Refusal> {
    let url = parse_url(text)?;
    let port = url
        .port_or_known_default()
        .expect("parse_url admits only http and https, which have default ports");
    let addrs = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(Host::Domain(name)) => resolve(name, port).await?,
        None => return Err(Refusal::NoHost),
    };
    let host = url.host_str().unwrap_or_default();
    let addrs = check_addrs(host, &addrs, allow)?;
    Ok((url, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<&'static str> {
        internal_class(ip.parse().expect("a test address"))
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a test socket address")
    }

    fn allow(entries: &[&str]) -> Allow {
        Allow::parse(entries.iter().copied()).expect("a valid allow-list")
    }

    #[test]
    fn ipv4_internal_addresses_are_classed() {
        for (ip, expected) in [
            ("127.0.0.1", "loopback"),
            ("127.5.5.5", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.170.2", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "current-network"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("192.0.0.8", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.99", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
        ] {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv6_internal_addresses_are_classed() {
        for (ip, expected) in [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fd20:ce::254", "cloud metadata"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("2001:2::1", "benchmarking"),
            ("2001::1", "Teredo"),
            ("100::1", "discard-only"),
            ("64:ff9b:1::1", "local-use NAT64"),
            // Unallocated space outside 2000::/3.
            ("4000::1", "reserved"),
        ] {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn ipv6_addresses_carrying_ipv4_are_judged_by_it() {
        for (ip, expected) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::a00:1", "private"),
            ("64:ff9b::169.254.169.254", "cloud metadata"),
            ("2002:7f00:1::1", "loopback"),
            ("2002:c0a8:101::1", "private"),
        ] {
            assert_eq!(class(ip), Some(expected), "{ip}");
        }
        for public in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert_eq!(class(public), None, "{public}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82b::200e",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn parse_url_refuses_what_is_not_an_http_url() {
        assert_eq!(
            parse_url("ftp://example.com/hook"),
            Err(Refusal::Scheme("ftp".into()))
        );
        assert_eq!(
            parse_url("javascript:alert(1)"),
            Err(Refusal::Scheme("javascript".into()))
        );
        assert_eq!(
            parse_url("file:///etc/passwd"),
            Err(Refusal::Scheme("file".into()))
        );
        assert!(matches!(parse_url("not a url"), Err(Refusal::NotAUrl(_))));
        assert!(matches!(
            parse_url("/relative/hook"),
            Err(Refusal::NotAUrl(_))
        ));
        assert_eq!(
            parse_url("http://user:pw@example.com/"),
            Err(Refusal::Credentials)
        );
        assert_eq!(
            parse_url("https://token@example.com/"),
            Err(Refusal::Credentials)
        );
        assert_eq!(parse_url("http://"), Err(Refusal::NoHost));
        assert_eq!(parse_url("https://"), Err(Refusal::NoHost));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(parse_url(&long), Err(Refusal::TooLong(long.len())));
    }

    #[test]
    fn parse_url_refuses_ipv6_zone_ids() {
        assert!(matches!(
            parse_url("http://[fe80::1%25eth0]/hook"),
            Err(Refusal::NotAUrl(_))
        ));
        assert!(matches!(
            parse_url("http://[fe80::1%eth0]/hook"),
            Err(Refusal::NotAUrl(_))
        ));
    }

    #[test]
    fn parse_url_passes_http_urls() {
        let url = parse_url("https://example.com/hook").unwrap();
        assert_eq!(url.host_str(), Some("example.com"));
        let url = parse_url("http://[2606:4700:4700::1111]:8080/x").unwrap();
        assert_eq!(
            url.host(),
            Some(Host::Ipv6("2606:4700:4700::1111".parse().unwrap()))
        );
        assert_eq!(url.port(), Some(8080));
        let exactly_max = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS - 20));
        assert_eq!(exactly_max.len(), MAX_URL_CHARS);
        assert!(parse_url(&exactly_max).is_ok());
    }

    #[test]
    fn url_crate_normalises_ipv4_spellings() {
        // What the guard relies on: odd spellings of 127.0.0.1 arrive as the address itself.
        for text in [
            "http://0x7f.1/x",
            "http://2130706433/x",
            "http://0177.0.0.1/x",
            "http://127.1/x",
            "http://0x7f000001/x",
        ] {
            let url = parse_url(text).unwrap();
            assert_eq!(url.host(), Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), "{text}");
        }
    }

    #[tokio::test]
    async fn check_refuses_internal_literals_with_their_class() {
        let none = Allow::default();
        for (text, ip, expected) in [
            ("http://127.0.0.1:9/x", "127.0.0.1", "loopback"),
            ("http://10.0.0.1/x", "10.0.0.1", "private"),
            (
                "http://169.254.169.254/latest/meta-data",
                "169.254.169.254",
                "cloud metadata",
            ),
            ("http://0x7f.1/x", "127.0.0.1", "loopback"),
            ("http://2130706433/x", "127.0.0.1", "loopback"),
            ("http://[::1]:8080/x", "::1", "loopback"),
            (
                "http://[::ffff:127.0.0.1]/x",
                "::ffff:127.0.0.1",
                "loopback",
            ),
            (
                "http://[fd00:ec2::254]/latest",
                "fd00:ec2::254",
                "cloud metadata",
            ),
        ] {
            match check(text, &none).await {
                Err(Refusal::Internal {
                    ip: found, class, ..
                }) => {
                    assert_eq!(found, ip.parse::<IpAddr>().unwrap(), "{text}");
                    assert_eq!(class, expected, "{text}");
                }
                other => panic!("{text}: expected an internal refusal, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn check_refuses_names_resolving_to_loopback() {
        // localhost is in /etc/hosts: no network is needed.
        match check("http://localhost:8080/x", &Allow::default()).await {
            Err(Refusal::Internal { host, ip, class }) => {
                assert_eq!(host, "localhost");
                assert!(ip.is_loopback(), "{ip}");
                assert_eq!(class, "loopback");
            }
            other => panic!("expected a loopback refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn check_passes_public_literals_with_the_port() {
        let (url, addrs) = check("https://1.1.1.1/hook", &Allow::default())
            .await
            .unwrap();
        assert_eq!(url.as_str(), "https://1.1.1.1/hook");
        assert_eq!(addrs, vec![addr("1.1.1.1:443")]);
        let (_, addrs) = check("http://[2606:4700:4700::1111]:8080/x", &Allow::default())
            .await
            .unwrap();
        assert_eq!(addrs, vec![addr("[2606:4700:4700::1111]:8080")]);
    }

    #[tokio::test]
    async fn check_passes_what_is_allow_listed() {
        let (_, addrs) = check("http://127.0.0.1:9/x", &allow(&["127.0.0.1/32"]))
            .await
            .unwrap();
        assert_eq!(addrs, vec![addr("127.0.0.1:9")]);

        let (_, addrs) = check("http://localhost:9/", &allow(&["localhost"]))
            .await
            .unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));

        // Allowing one network does not open the others.
        assert!(matches!(
            check("http://10.0.0.1/x", &allow(&["127.0.0.0/8"])).await,
            Err(Refusal::Internal {
                class: "private",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn check_refuses_before_resolving_what_is_malformed() {
        assert_eq!(
            check("ftp://localhost/", &Allow::default()).await,
            Err(Refusal::Scheme("ftp".into()))
        );
    }

    #[test]
    fn check_addrs_is_all_or_nothing() {
        let none = Allow::default();
        let mixed = [addr("8.8.8.8:443"), addr("10.1.2.3:443")];
        assert_eq!(
            check_addrs("rebind.example", &mixed, &none),
            Err(Refusal::Internal {
                host: "rebind.example".into(),
                ip: "10.1.2.3".parse().unwrap(),
                class: "private",
            })
        );
        let public = [addr("8.8.8.8:443"), addr("[2606:4700:4700::1111]:443")];
        assert_eq!(
            check_addrs("dns.example", &public, &none),
            Ok(public.to_vec())
        );
    }

    #[test]
    fn check_addrs_refuses_no_addresses() {
        assert!(matches!(
            check_addrs("empty.example", &[], &Allow::default()),
            Err(Refusal::Unresolved { .. })
        ));
        // Even an allow-listed name needs an address to go to.
        assert!(check_addrs("hooks.internal", &[], &allow(&["hooks.internal"])).is_err());
    }

    #[test]
    fn check_addrs_honours_the_allow_list() {
        let internal = [addr("10.0.0.5:80"), addr("127.0.0.1:80")];
        assert!(check_addrs("hooks.internal", &internal, &allow(&["hooks.internal"])).is_ok());
        assert!(check_addrs("Hooks.Internal.", &internal, &allow(&["hooks.internal"])).is_ok());
        assert!(check_addrs("other.internal", &internal, &allow(&["hooks.internal"])).is_err());
        assert!(check_addrs("x", &internal, &allow(&["10.0.0.0/8", "127.0.0.1"])).is_ok());
        assert!(check_addrs("x", &internal, &allow(&["10.0.0.0/8"])).is_err());
    }

    #[test]
    fn allow_parses_hosts_addresses_and_networks() {
        let list = allow(&[
            "Hooks.Internal.",
            " 127.0.0.1 ",
            "",
            "10.0.0.0/8",
            "::1",
            "fd00::/8",
            "[fe80::1]",
        ]);
        assert!(list.allows_host("hooks.internal"));
        assert!(list.allows_host("HOOKS.internal."));
        assert!(!list.allows_host("evil.hooks.internal"));
        for ip in [
            "127.0.0.1",
            "10.200.3.4",
            "::1",
            "fd12::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(list.allows_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.2", "192.168.1.1", "fe80::2", "fc00::1"] {
            assert!(!list.allows_ip(ip.parse().unwrap()), "{ip}");
        }
        assert!(Allow::parse(["", "  "]).unwrap().is_empty());
    }

    #[test]
    fn allow_parses_the_environment_form() {
        let list: Allow = "hooks.internal, 10.0.0.0/8,,::1".parse().unwrap();
        assert_eq!(list, allow(&["hooks.internal", "10.0.0.0/8", "::1"]));
    }

    #[test]
    fn allow_errors_name_the_bad_entry() {
        for bad in [
            "10.0.0.0/33",
            "not a host",
            "*.internal",
            "hooks..internal",
            "300.1.1.1",
            "fd00::/129",
            "http://x/",
        ] {
            let err = Allow::parse(["ok.internal", bad]).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn refusals_read_as_sentences() {
        let literal = Refusal::Internal {
            host: "10.0.0.1".into(),
            ip: "10.0.0.1".parse().unwrap(),
            class: "private",
        };
        assert_eq!(
            literal.to_string(),
            "10.0.0.1 is a private address; webhooks go to public addresses only \
             (an operator may allow it with STRATA_WEBHOOK_ALLOW)"
        );
        let named = Refusal::Internal {
            host: "localhost".into(),
            ip: "127.0.0.1".parse().unwrap(),
            class: "loopback",
        };
        assert!(named
            .to_string()
            .starts_with("localhost resolves to 127.0.0.1, a loopback address;"));
        let v6 = Refusal::Internal {
            host: "[::]".into(),
            ip: "::".parse().unwrap(),
            class: "unspecified",
        };
        assert!(v6
            .to_string()
            .starts_with("[::] is an unspecified address;"));
        assert_eq!(
            Refusal::Scheme("ftp".into()).to_string(),
            "the scheme is ftp; webhooks use http or https"
        );
    }
}
