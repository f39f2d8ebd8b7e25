//! The network policy: which address and port a guest may use for what. Deny by default.
//!
//! A policy is a list of allow and deny rules. Each rule names the uses it covers
//! (`udp-bind`, `udp-send`, ...), an address range in CIDR form and a port range. An
//! operation is allowed when an allow rule matches it and no deny rule does (deny wins).
//!
//! Text form of a rule (`weir run --allow` / `--deny`): `USES=CIDR[:PORTS]`, for example
//! `udp-send=127.0.0.0/8:5000-5999`, `udp-bind,udp-receive=0.0.0.0/0`, `udp-send=[::1]/128:53`
//! or `*=*` (every use, every address, every port). A bare address is a single host
//! (`/32` or `/128`).
//!
//! `ip-name-lookup` rules name host-name patterns instead of addresses:
//! `ip-name-lookup=localhost`, `ip-name-lookup=*.example.com` (subdomains of example.com) or
//! `ip-name-lookup=*` (any name). A rule naming other uses too (like `*=*`) covers name
//! lookups only when its address is `*` and its ports are all ports. IP literals given to
//! `resolve-addresses` involve no lookup and are not subject to these rules.
//!
//! `http-request` rules (outgoing `wasi:http` requests) name host patterns and ports:
//! `http-request=api.example.com:443`, `http-request=*.example.com`,
//! `http-request=127.0.0.1:8000-8999`, `http-request=[::1]:80`. A request is checked
//! against the authority it names, before any lookup or connect (which the request makes
//! itself, outside the socket rules).
//!
//! TOML form (`weir run --policy FILE`):
//!
//! ```toml
//! [[allow]]
//! uses = ["udp-send", "udp-receive"]
//! cidr = "127.0.0.0/8"
//! ports = "5000-5999"
//!
//! [[deny]]
//! uses = ["udp-send"]
//! cidr = "127.0.0.2"
//!
//! [[allow]]
//! uses = ["ip-name-lookup"]
//! names = ["localhost", "*.example.com"]
//!
//! [[allow]]
//! uses = ["http-request"]
//! names = ["api.example.com"]
//! ports = "443"
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;

/// What a guest wants to do with an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkUse {
    /// Bind a UDP socket to a local address.
    UdpBind,
    /// Send UDP datagrams to (or connect a UDP socket to) a remote address.
    UdpSend,
    /// Receive UDP datagrams from a remote address.
    UdpReceive,
    /// Bind a TCP socket.
    TcpBind,
    /// Connect a TCP socket.
    TcpConnect,
    /// Listen on a TCP socket.
    TcpListen,
    /// Accept a TCP connection from a remote address.
    TcpAccept,
    /// Resolve host names.
    IpNameLookup,
    /// Send an HTTP request (`wasi:http/outgoing-handler`) to a host name (or IP literal)
    /// and port; rules name host-name patterns, like `ip-name-lookup`'s, and ports.
    HttpRequest,
}

impl NetworkUse {
    /// Every use.
    pub const ALL: [NetworkUse; 9] = [
        NetworkUse::UdpBind,
        NetworkUse::UdpSend,
        NetworkUse::UdpReceive,
        NetworkUse::TcpBind,
        NetworkUse::TcpConnect,
        NetworkUse::TcpListen,
        NetworkUse::TcpAccept,
        NetworkUse::IpNameLookup,
        NetworkUse::HttpRequest,
    ];

    /// The UDP uses.
    pub const UDP: [NetworkUse; 3] = [
        NetworkUse::UdpBind,
        NetworkUse::UdpSend,
        NetworkUse::UdpReceive,
    ];

    /// The TCP uses.
    pub const TCP: [NetworkUse; 4] = [
        NetworkUse::TcpBind,
        NetworkUse::TcpConnect,
        NetworkUse::TcpListen,
        NetworkUse::TcpAccept,
    ];

    /// The rule-file name of this use.
    pub fn name(self) -> &'static str {
        match self {
            NetworkUse::UdpBind => "udp-bind",
            NetworkUse::UdpSend => "udp-send",
            NetworkUse::UdpReceive => "udp-receive",
            NetworkUse::TcpBind => "tcp-bind",
            NetworkUse::TcpConnect => "tcp-connect",
            NetworkUse::TcpListen => "tcp-listen",
            NetworkUse::TcpAccept => "tcp-accept",
            NetworkUse::IpNameLookup => "ip-name-lookup",
            NetworkUse::HttpRequest => "http-request",
        }
    }
}

impl fmt::Display for NetworkUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NetworkUse {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        NetworkUse::ALL
            .into_iter()
            .find(|u| u.name() == s)
            .ok_or_else(|| {
                PolicyError(format!(
                    "unknown network use `{s}` (known: udp-bind, udp-send, udp-receive, \
                     tcp-bind, tcp-connect, tcp-listen, tcp-accept, ip-name-lookup, http-request, *)"
                ))
            })
    }
}

/// A malformed rule or policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// An address range in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Every IPv4 and IPv6 address (written `*`).
    pub const ANY: Cidr = Cidr {
        address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        prefix: 0,
    };

    fn any_family(&self) -> bool {
        *self == Cidr::ANY
    }

    /// Whether `ip` is in the range. IPv4-mapped IPv6 addresses match IPv4 ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.any_family() {
            return true;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        if s == "*" {
            return Ok(Cidr::ANY);
        }
        let bad = || PolicyError(format!("`{s}` is not an address or CIDR range"));
        // Brackets around IPv6 are optional: `[::1]/128`, `[fd00::/8]`, `::1`.
        let unbracketed: String = s.chars().filter(|c| !matches!(c, '[' | ']')).collect();
        let (address, prefix) = match unbracketed.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (unbracketed.as_str(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any_family() {
            return f.write_str("*");
        }
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn parse_ports(s: &str) -> Result<RangeInclusive<u16>, PolicyError> {
    if s == "*" {
        return Ok(0..=u16::MAX);
    }
    let bad = || PolicyError(format!("`{s}` is not a port or port range (`N` or `N-M`)"));
    let (low, high) = s.split_once('-').unwrap_or((s, s));
    let low: u16 = low.parse().map_err(|_| bad())?;
    let high: u16 = high.parse().map_err(|_| bad())?;
    if low > high {
        return Err(bad());
    }
    Ok(low..=high)
}

/// The host names an `ip-name-lookup` rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamePattern {
    /// Every name (`*`).
    Any,
    /// Exactly this name (compared without case and without a trailing dot).
    Exact(String),
    /// Every subdomain of this name (`*.example.com`), not the name itself.
    Subdomains(String),
    /// No name: the rule is about addresses only.
    Nothing,
}

impl NamePattern {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let name = normalize_name(name);
        match self {
            NamePattern::Any => true,
            NamePattern::Exact(exact) => name == *exact,
            NamePattern::Subdomains(parent) => name
                .strip_suffix(parent.as_str())
                .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
            NamePattern::Nothing => false,
        }
    }
}

fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl FromStr for NamePattern {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        if s == "*" {
            return Ok(NamePattern::Any);
        }
        let (subdomains, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(PolicyError(format!(
                "`{s}` is not a host-name pattern (`*`, `NAME` or `*.NAME`, ASCII)"
            )));
        }
        let name = normalize_name(name);
        Ok(if subdomains {
            NamePattern::Subdomains(name)
        } else {
            NamePattern::Exact(name)
        })
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamePattern::Any => f.write_str("*"),
            NamePattern::Exact(name) => f.write_str(name),
            NamePattern::Subdomains(name) => write!(f, "*.{name}"),
            NamePattern::Nothing => f.write_str("(no names)"),
        }
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The rule permits what it matches.
    Allow,
    /// The rule forbids what it matches (and wins over any allow).
    Deny,
}

/// One rule of a [`NetworkPolicy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Allow or deny.
    pub action: Action,
    /// The uses it covers.
    pub uses: Vec<NetworkUse>,
    /// The addresses it covers.
    pub cidr: Cidr,
    /// The ports it covers.
    pub ports: RangeInclusive<u16>,
    /// The host names it covers, if it covers `ip-name-lookup`.
    pub names: NamePattern,
}

impl Rule {
    /// A rule about addresses: `uses` of `cidr` on `ports`. It covers name lookups (if
    /// `uses` includes `ip-name-lookup`) only when it covers every address and port.
    pub fn addresses(
        action: Action,
        uses: Vec<NetworkUse>,
        cidr: Cidr,
        ports: RangeInclusive<u16>,
    ) -> Rule {
        let names = if cidr == Cidr::ANY && ports == (0..=u16::MAX) {
            NamePattern::Any
        } else {
            NamePattern::Nothing
        };
        Rule {
            action,
            uses,
            cidr,
            ports,
            names,
        }
    }

    /// A rule about `ip-name-lookup` of the names matching `names`.
    pub fn names(action: Action, names: NamePattern) -> Rule {
        Rule {
            action,
            uses: vec![NetworkUse::IpNameLookup],
            cidr: Cidr::ANY,
            ports: 0..=u16::MAX,
            names,
        }
    }

    /// A rule about `http-request`s to hosts matching `hosts` on `ports`.
    pub fn http_requests(action: Action, hosts: NamePattern, ports: RangeInclusive<u16>) -> Rule {
        Rule {
            action,
            uses: vec![NetworkUse::HttpRequest],
            cidr: Cidr::ANY,
            ports,
            names: hosts,
        }
    }

    /// Parses `USES=CIDR[:PORTS]`, `ip-name-lookup=PATTERN` or
    /// `http-request=PATTERN[:PORTS]` (see the module docs).
    pub fn parse(action: Action, text: &str) -> Result<Rule, PolicyError> {
        let (uses, target) = text.split_once('=').ok_or_else(|| {
            PolicyError(format!(
                "`{text}`: expected USES=CIDR[:PORTS], e.g. udp-send=127.0.0.0/8:5000-5999, \
                 or ip-name-lookup=NAME-PATTERN"
            ))
        })?;
        let uses = parse_uses(uses.split(','))?;
        if uses == [NetworkUse::IpNameLookup] {
            return Ok(Rule::names(action, target.parse()?));
        }
        if uses == [NetworkUse::HttpRequest] {
            let (hosts, ports) = split_host_target(target);
            return Ok(Rule::http_requests(
                action,
                parse_host_pattern(hosts)?,
                match ports {
                    Some(p) => parse_ports(p)?,
                    None => 0..=u16::MAX,
                },
            ));
        }
        if uses.contains(&NetworkUse::HttpRequest) && uses.len() < NetworkUse::ALL.len() {
            return Err(PolicyError(format!(
                "`{text}`: http-request rules name hosts, not addresses: give them on their own \
                 (http-request=HOST-PATTERN[:PORTS])"
            )));
        }
        let (cidr, ports) = split_target(target);
        Ok(Rule::addresses(
            action,
            uses,
            cidr.parse()?,
            match ports {
                Some(p) => parse_ports(p)?,
                None => 0..=u16::MAX,
            },
        ))
    }

    fn matches_http_request(&self, host: &str, port: u16) -> bool {
        self.uses.contains(&NetworkUse::HttpRequest)
            && self
                .names
                .matches(host.trim_start_matches('[').trim_end_matches(']'))
            && self.ports.contains(&port)
    }

    fn matches_name(&self, name: &str) -> bool {
        self.uses.contains(&NetworkUse::IpNameLookup) && self.names.matches(name)
    }

    fn matches(&self, network_use: NetworkUse, address: SocketAddr) -> bool {
        self.uses.contains(&network_use)
            && self.cidr.contains(address.ip())
            && self.ports.contains(&address.port())
    }
}

fn parse_uses<'a>(names: impl Iterator<Item = &'a str>) -> Result<Vec<NetworkUse>, PolicyError> {
    let mut uses = Vec::new();
    for name in names {
        let name = name.trim();
        if name == "*" || name == "all" {
            uses.extend(NetworkUse::ALL);
        } else {
            uses.push(name.parse()?);
        }
    }
    if uses.is_empty() {
        return Err(PolicyError("a rule must name at least one use".into()));
    }
    Ok(uses)
}

/// Splits `HOST-PATTERN[:PORTS]`, where an IPv6 literal is written in brackets (`[::1]:80`).
fn split_host_target(target: &str) -> (&str, Option<&str>) {
    if let Some(rest) = target.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        let after = &rest[end + 1..];
        return (&rest[..end], after.strip_prefix(':'));
    }
    match target.rsplit_once(':') {
        Some((hosts, ports)) => (hosts, Some(ports)),
        None => (target, None),
    }
}

/// A host-name pattern, or an IP literal (IPv6 without its brackets).
fn parse_host_pattern(text: &str) -> Result<NamePattern, PolicyError> {
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(NamePattern::Exact(ip.to_string())),
        Err(_) => text.parse(),
    }
}

/// Splits `CIDR[:PORTS]`, where an IPv6 CIDR is written in brackets (`[::1]/128:53`).
fn split_target(target: &str) -> (&str, Option<&str>) {
    if let Some(rest) = target.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        let after = &rest[end + 1..];
        // `[addr]/prefix:ports`, `[addr/prefix]:ports` or `[addr]:ports`.
        return match after.rfind(':') {
            Some(colon) => (&target[..end + 2 + colon], Some(&after[colon + 1..])),
            None => (target, None),
        };
    }
    if target.matches(':').count() > 1 {
        // An unbracketed IPv6 address: no ports.
        return (target, None);
    }
    match target.split_once(':') {
        Some((cidr, ports)) => (cidr, Some(ports)),
        None => (target, None),
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
        };
        let uses: Vec<&str> = self.uses.iter().map(|u| u.name()).collect();
        if self.uses == [NetworkUse::IpNameLookup] {
            return write!(f, "{action} ip-name-lookup={}", self.names);
        }
        if self.uses == [NetworkUse::HttpRequest] {
            return write!(
                f,
                "{action} http-request={}:{}-{}",
                self.names,
                self.ports.start(),
                self.ports.end()
            );
        }
        write!(
            f,
            "{action} {}={}:{}-{}",
            uses.join(","),
            self.cidr,
            self.ports.start(),
            self.ports.end()
        )
    }
}

/// The outcome of a policy check, naming the deciding rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Allowed by this rule.
    Allowed(&'a Rule),
    /// Denied by this rule, or by default (`None`: no allow rule matched).
    Denied(Option<&'a Rule>),
}

impl Decision<'_> {
    /// Whether the operation may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// Deny wins; otherwise the first matching allow rule; otherwise denied by default.
fn decide<'a>(matching: impl Iterator<Item = &'a Rule>) -> Decision<'a> {
    let mut allowed_by = None;
    for rule in matching {
        match rule.action {
            Action::Deny => return Decision::Denied(Some(rule)),
            Action::Allow => allowed_by = allowed_by.or(Some(rule)),
        }
    }
    match allowed_by {
        Some(rule) => Decision::Allowed(rule),
        None => Decision::Denied(None),
    }
}

/// A set of allow/deny rules; everything not allowed is denied.
///
/// ```
/// use weir::sockets::{NetworkPolicy, NetworkUse};
/// let policy = NetworkPolicy::deny_all()
///     .allow("udp-send=127.0.0.0/8:5000-5999").unwrap()
///     .deny("udp-send=127.0.0.2").unwrap();
/// assert!(policy.is_allowed(NetworkUse::UdpSend, "127.0.0.1:5000".parse().unwrap()));
/// assert!(!policy.is_allowed(NetworkUse::UdpSend, "127.0.0.2:5000".parse().unwrap()));
/// assert!(!policy.is_allowed(NetworkUse::UdpSend, "127.0.0.1:6000".parse().unwrap()));
/// assert!(!policy.is_allowed(NetworkUse::UdpBind, "127.0.0.1:5000".parse().unwrap()));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    rules: Vec<Rule>,
}

impl NetworkPolicy {
    /// No network access at all (the default).
    pub fn deny_all() -> Self {
        NetworkPolicy::default()
    }

    /// Every use of every address, and every name lookup.
    pub fn allow_all() -> Self {
        NetworkPolicy::deny_all().with_rule(Rule::addresses(
            Action::Allow,
            NetworkUse::ALL.to_vec(),
            Cidr::ANY,
            0..=u16::MAX,
        ))
    }

    /// Every UDP and TCP use of every address, but no name lookups (`weir run -S
    /// inherit-network`, as in Wasmtime, where lookups need `-S allow-ip-name-lookup`).
    pub fn allow_all_sockets() -> Self {
        let uses = NetworkUse::UDP.into_iter().chain(NetworkUse::TCP).collect();
        NetworkPolicy::deny_all().with_rule(Rule::addresses(
            Action::Allow,
            uses,
            Cidr::ANY,
            0..=u16::MAX,
        ))
    }

    /// Adds a rule.
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds an allow rule in text form.
    pub fn allow(self, rule: &str) -> Result<Self, PolicyError> {
        Ok(self.with_rule(Rule::parse(Action::Allow, rule)?))
    }

    /// Adds a deny rule in text form.
    pub fn deny(self, rule: &str) -> Result<Self, PolicyError> {
        Ok(self.with_rule(Rule::parse(Action::Deny, rule)?))
    }

    /// Adds the rules of a TOML policy (see the module docs).
    pub fn with_toml(mut self, text: &str) -> Result<Self, PolicyError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            allow: Vec<TomlRule>,
            #[serde(default)]
            deny: Vec<TomlRule>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct TomlRule {
            uses: Vec<String>,
            #[serde(default)]
            cidr: Option<String>,
            #[serde(default)]
            ports: Option<String>,
            #[serde(default)]
            names: Option<Vec<String>>,
        }
        let file: File =
            toml::from_str(text).map_err(|e| PolicyError(format!("policy file: {e}")))?;
        for (action, rules) in [(Action::Allow, file.allow), (Action::Deny, file.deny)] {
            for rule in rules {
                let uses = parse_uses(rule.uses.iter().map(String::as_str))?;
                if uses == [NetworkUse::HttpRequest] {
                    if rule.cidr.is_some() {
                        return Err(PolicyError(
                            "policy file: an http-request rule takes `names` (host patterns) \
                             and `ports`, not `cidr`"
                                .into(),
                        ));
                    }
                    let ports = parse_ports(rule.ports.as_deref().unwrap_or("*"))?;
                    for host in rule.names.unwrap_or_else(|| vec!["*".into()]) {
                        self.rules.push(Rule::http_requests(
                            action,
                            parse_host_pattern(&host)?,
                            ports.clone(),
                        ));
                    }
                    continue;
                }
                if let Some(names) = rule.names {
                    if uses != [NetworkUse::IpNameLookup] || rule.cidr.is_some() {
                        return Err(PolicyError(
                            "policy file: `names` goes with uses = [\"ip-name-lookup\"] and no \
                             `cidr`"
                                .into(),
                        ));
                    }
                    for name in names {
                        self.rules.push(Rule::names(action, name.parse()?));
                    }
                    continue;
                }
                if uses == [NetworkUse::IpNameLookup] {
                    // Addresses say nothing about names: such a rule would match no lookup.
                    if rule.cidr.is_some() || rule.ports.is_some() {
                        return Err(PolicyError(
                            "policy file: an ip-name-lookup rule takes `names`, not `cidr` or \
                             `ports`"
                                .into(),
                        ));
                    }
                    self.rules.push(Rule::names(action, NamePattern::Any));
                    continue;
                }
                self.rules.push(Rule::addresses(
                    action,
                    uses,
                    rule.cidr.as_deref().unwrap_or("*").parse()?,
                    parse_ports(rule.ports.as_deref().unwrap_or("*"))?,
                ));
            }
        }
        Ok(self)
    }

    /// The rules, in the order they were added.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Decides whether `network_use` of `address` is allowed, naming the deciding rule.
    pub fn check(&self, network_use: NetworkUse, address: SocketAddr) -> Decision<'_> {
        decide(
            self.rules
                .iter()
                .filter(|r| r.matches(network_use, address)),
        )
    }

    /// Decides whether the guest may look up `name`, naming the deciding rule.
    pub fn check_name(&self, name: &str) -> Decision<'_> {
        decide(self.rules.iter().filter(|r| r.matches_name(name)))
    }

    /// Decides whether the guest may send an HTTP request to `host` (a name or an IP
    /// literal, IPv6 with or without brackets) on `port`, naming the deciding rule.
    ///
    /// ```
    /// use weir::sockets::NetworkPolicy;
    /// let policy = NetworkPolicy::deny_all()
    ///     .allow("http-request=*.example.com:443").unwrap()
    ///     .allow("http-request=127.0.0.1:8000-8999").unwrap();
    /// assert!(policy.check_http_request("api.example.com", 443).is_allowed());
    /// assert!(!policy.check_http_request("api.example.com", 80).is_allowed());
    /// assert!(policy.check_http_request("127.0.0.1", 8080).is_allowed());
    /// assert!(!NetworkPolicy::deny_all().check_http_request("127.0.0.1", 80).is_allowed());
    /// ```
    pub fn check_http_request(&self, host: &str, port: u16) -> Decision<'_> {
        decide(
            self.rules
                .iter()
                .filter(|r| r.matches_http_request(host, port)),
        )
    }

    /// Shorthand for `check(..).is_allowed()`.
    pub fn is_allowed(&self, network_use: NetworkUse, address: SocketAddr) -> bool {
        self.check(network_use, address).is_allowed()
    }

    /// Whether any rule could allow `network_use` at all (for `ip-name-lookup`: a rule that
    /// names at least one host name).
    pub fn may_allow(&self, network_use: NetworkUse) -> bool {
        self.rules.iter().any(|r| {
            r.action == Action::Allow
                && r.uses.contains(&network_use)
                && (network_use != NetworkUse::IpNameLookup || r.names != NamePattern::Nothing)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn http_request_rules_name_hosts_and_ports_and_deny_wins() {
        let policy = NetworkPolicy::deny_all()
            .allow("http-request=*.example.com:443")
            .unwrap()
            .allow("http-request=127.0.0.1:8000-8999")
            .unwrap()
            .allow("http-request=[::1]:80")
            .unwrap()
            .deny("http-request=bad.example.com")
            .unwrap();
        let allowed = |host: &str, port| policy.check_http_request(host, port).is_allowed();
        assert!(allowed("api.example.com", 443));
        assert!(
            allowed("API.Example.com.", 443),
            "names compare without case"
        );
        assert!(!allowed("api.example.com", 80));
        assert!(!allowed("example.com", 443), "`*.` covers subdomains only");
        assert!(!allowed("bad.example.com", 443), "deny wins");
        assert!(allowed("127.0.0.1", 8080));
        assert!(!allowed("127.0.0.1", 9000));
        assert!(allowed("[::1]", 80) && allowed("::1", 80));
        assert!(!allowed("::1", 81));
        // Socket rules never allow HTTP requests, and HTTP rules allow no socket use.
        assert!(
            !NetworkPolicy::allow_all_sockets()
                .check_http_request("a", 80)
                .is_allowed()
        );
        assert!(!policy.is_allowed(NetworkUse::TcpConnect, addr("127.0.0.1:8080")));
        assert!(
            NetworkPolicy::allow_all()
                .check_http_request("a", 80)
                .is_allowed()
        );
        let error = NetworkPolicy::deny_all()
            .allow("http-request,tcp-connect=127.0.0.1")
            .unwrap_err();
        assert!(error.0.contains("on their own"), "{error}");
        assert!(NetworkPolicy::deny_all().allow("http-request=a b").is_err());

        let toml = NetworkPolicy::deny_all()
            .with_toml(
                "[[allow]]\nuses = [\"http-request\"]\nnames = [\"api.example.com\", \"::1\"]\nports = \"443\"\n",
            )
            .unwrap();
        assert!(toml.check_http_request("api.example.com", 443).is_allowed());
        assert!(toml.check_http_request("[::1]", 443).is_allowed());
        assert!(!toml.check_http_request("api.example.com", 80).is_allowed());
        let cidr = NetworkPolicy::deny_all()
            .with_toml("[[allow]]\nuses = [\"http-request\"]\ncidr = \"10.0.0.0/8\"\n");
        assert!(cidr.is_err());
        assert_eq!(
            policy.rules()[0].to_string(),
            "allow http-request=*.example.com:443-443"
        );
    }

    #[test]
    fn name_lookups_are_enabled_only_by_a_rule_that_names_names() {
        assert!(!NetworkPolicy::deny_all().may_allow(NetworkUse::IpNameLookup));
        assert!(!NetworkPolicy::allow_all_sockets().may_allow(NetworkUse::IpNameLookup));
        // Every use, but only of some addresses: no names.
        let addresses_only = NetworkPolicy::deny_all().allow("*=10.0.0.0/8").unwrap();
        assert!(!addresses_only.may_allow(NetworkUse::IpNameLookup));
        assert!(addresses_only.may_allow(NetworkUse::UdpSend));
        assert!(NetworkPolicy::allow_all().may_allow(NetworkUse::IpNameLookup));
        let one_name = NetworkPolicy::deny_all()
            .allow("ip-name-lookup=localhost")
            .unwrap();
        assert!(one_name.may_allow(NetworkUse::IpNameLookup));
    }

    #[test]
    fn deny_is_the_default() {
        let policy = NetworkPolicy::deny_all();
        assert_eq!(
            policy.check(NetworkUse::UdpSend, addr("127.0.0.1:1")),
            Decision::Denied(None)
        );
    }

    #[test]
    fn deny_wins_over_allow_in_any_order() {
        let policy = NetworkPolicy::deny_all()
            .deny("udp-send=10.0.0.0/8:53")
            .unwrap()
            .allow("*=*")
            .unwrap();
        assert!(!policy.is_allowed(NetworkUse::UdpSend, addr("10.1.2.3:53")));
        assert!(policy.is_allowed(NetworkUse::UdpSend, addr("10.1.2.3:54")));
        assert!(policy.is_allowed(NetworkUse::UdpReceive, addr("10.1.2.3:53")));
        match policy.check(NetworkUse::UdpSend, addr("10.1.2.3:53")) {
            Decision::Denied(Some(rule)) => {
                assert_eq!(rule.to_string(), "deny udp-send=10.0.0.0/8:53-53")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cidr_and_port_ranges() {
        let policy = NetworkPolicy::deny_all()
            .allow("udp-bind,udp-receive=192.168.4.0/22:1000-2000")
            .unwrap()
            .allow("udp-send=[::1]/128:53")
            .unwrap()
            .allow("udp-send=[fd00::/8]")
            .unwrap();
        assert!(policy.is_allowed(NetworkUse::UdpBind, addr("192.168.7.255:1000")));
        assert!(!policy.is_allowed(NetworkUse::UdpBind, addr("192.168.8.0:1000")));
        assert!(!policy.is_allowed(NetworkUse::UdpBind, addr("192.168.4.1:2001")));
        assert!(!policy.is_allowed(NetworkUse::UdpSend, addr("192.168.4.1:1500")));
        assert!(policy.is_allowed(NetworkUse::UdpSend, addr("[::1]:53")));
        assert!(!policy.is_allowed(NetworkUse::UdpSend, addr("[::1]:54")));
        assert!(policy.is_allowed(NetworkUse::UdpSend, addr("[fd12::1]:9")));
        // IPv4-mapped IPv6 addresses are judged as IPv4.
        assert!(policy.is_allowed(NetworkUse::UdpReceive, addr("[::ffff:192.168.5.5]:1500")));
    }

    #[test]
    fn malformed_rules_are_clear_errors() {
        for (rule, needle) in [
            ("udp-send", "expected USES=CIDR"),
            ("udp-sned=127.0.0.1", "unknown network use `udp-sned`"),
            ("udp-send=127.0.0.1/33", "not an address or CIDR"),
            ("udp-send=127.0.0.1:99999", "not a port"),
            ("udp-send=127.0.0.1:9-1", "not a port"),
            ("udp-send=localhost", "not an address"),
        ] {
            let error = NetworkPolicy::deny_all()
                .allow(rule)
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{rule}: {error}");
        }
    }

    #[test]
    fn toml_policy() {
        let policy = NetworkPolicy::deny_all()
            .with_toml(
                r#"
                [[allow]]
                uses = ["udp-send", "udp-receive"]
                cidr = "127.0.0.0/8"
                ports = "5000-5999"
                [[deny]]
                uses = ["udp-send"]
                cidr = "127.0.0.2"
                "#,
            )
            .unwrap();
        assert!(policy.is_allowed(NetworkUse::UdpSend, addr("127.0.0.1:5000")));
        assert!(!policy.is_allowed(NetworkUse::UdpSend, addr("127.0.0.2:5000")));
        assert!(policy.is_allowed(NetworkUse::UdpReceive, addr("127.0.0.2:5000")));
        let error = NetworkPolicy::deny_all()
            .with_toml("[[allow]]\nuse = 1")
            .unwrap_err();
        assert!(error.to_string().contains("policy file"), "{error}");
    }

    #[test]
    fn name_lookup_rules() {
        let policy = NetworkPolicy::deny_all()
            .allow("ip-name-lookup=localhost")
            .unwrap()
            .allow("ip-name-lookup=*.example.com")
            .unwrap()
            .deny("ip-name-lookup=bad.example.com")
            .unwrap();
        assert!(policy.check_name("localhost").is_allowed());
        assert!(policy.check_name("LOCALHOST.").is_allowed());
        assert!(policy.check_name("www.example.com").is_allowed());
        assert!(
            !policy.check_name("example.com").is_allowed(),
            "subdomains only"
        );
        assert!(!policy.check_name("notexample.com").is_allowed());
        assert!(
            !policy.check_name("bad.example.com").is_allowed(),
            "deny wins"
        );
        assert!(!policy.check_name("other.org").is_allowed());
        assert_eq!(
            policy.rules()[1].to_string(),
            "allow ip-name-lookup=*.example.com"
        );
        // Address rules cover lookups only when they cover every address and port.
        assert!(NetworkPolicy::allow_all().check_name("x.org").is_allowed());
        assert!(
            !NetworkPolicy::allow_all_sockets()
                .check_name("x.org")
                .is_allowed()
        );
        let narrow = NetworkPolicy::deny_all().allow("*=127.0.0.1").unwrap();
        assert!(!narrow.check_name("localhost").is_allowed());
        assert!(NetworkPolicy::deny_all().check_name("localhost") == Decision::Denied(None));
        let error = NetworkPolicy::deny_all()
            .allow("ip-name-lookup=exa mple.com")
            .unwrap_err();
        assert!(error.to_string().contains("host-name pattern"), "{error}");
        let toml = NetworkPolicy::deny_all()
            .with_toml("[[allow]]\nuses = [\"ip-name-lookup\"]\nnames = [\"localhost\"]")
            .unwrap();
        assert!(toml.check_name("localhost").is_allowed());
        assert!(!toml.check_name("example.com").is_allowed());
        let error = NetworkPolicy::deny_all()
            .with_toml("[[deny]]\nuses = [\"ip-name-lookup\"]\ncidr = \"10.0.0.0/8\"")
            .unwrap_err();
        assert!(error.to_string().contains("takes `names`"), "{error}");
        let all_names = NetworkPolicy::deny_all()
            .with_toml("[[allow]]\nuses = [\"ip-name-lookup\"]")
            .unwrap();
        assert!(all_names.check_name("example.com").is_allowed());
    }
}
