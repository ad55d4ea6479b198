//! `ipaddress`: finds the IP addresses of an event and puts them where rules look for them.
//!
//! Every source names its addresses differently (CloudTrail `sourceIPAddress`, VPC flow
//! `srcaddr`, CloudFront `c-ip`, G Suite `ipAddress`, proxies `X-Forwarded-For`), and some
//! send values that are not addresses at all (`123.456.253.226`, `AWS Internal`, `-`). This
//! plugin looks at every field whose *name* says it holds an address, at any depth of
//! `details` (through arrays too), and keeps only values that `std::net` parses strictly
//! after removing what surrounds an address in logs: a port (`1.2.3.4:443`, `[::1]:80`),
//! brackets (`[2001:db8::1]`), an IPv6 zone (`fe80::1%eth0`), and comma lists
//! (`X-Forwarded-For: 203.0.113.7, 10.0.0.1`). Values are written in their canonical text
//! (`2001:db8::1`, IPv4-mapped IPv6 as IPv4).
//!
//! It then sets:
//! - `details._ipaddresses`: every valid address found, unique, in order of appearance
//!   (document order, depth first). Invalid values are never collected.
//! - `details.sourceipaddress`: the best source candidate, see [`SOURCE_FIELDS`].
//! - `details.destinationipaddress`: the best destination candidate, see
//!   [`DESTINATION_FIELDS`].
//!
//! A `sourceipaddress` / `destinationipaddress` that already holds exactly a valid address is
//! left alone. One that holds something else (an invalid value, an address with a port, a
//! list) is replaced by the best candidate, and its original value is kept under
//! `sourceipaddress_original` (`destinationipaddress_original`), so nothing is lost.
//!
//! # Which fields are looked at
//! A field name is compared after lower-casing it and removing every character that is not a
//! letter or digit (`c-ip` → `cip`, `src_ip` → `srcip`, `cs(X-Forwarded-For)` →
//! `csxforwardedfor` is not matched, but `x-forwarded-for` → `xforwardedfor` is). It is an
//! address field when the result is in [`SOURCE_FIELDS`], [`DESTINATION_FIELDS`] or
//! [`GENERIC_FIELDS`]. A generic field (`ip`, `address`…) inside an object named in
//! [`SOURCE_PARENTS`] or [`DESTINATION_PARENTS`] (Elastic Common Schema's `source.ip`,
//! Okta's `client.ipAddress`) takes that object's role.
//!
//! # How the source and destination are chosen
//! Among the candidates of a role, the one listed earliest wins (the tables are ordered most
//! specific first; then role-giving parents; then, for the source only, a generic field at
//! the top level of `details`, like G Suite's `ipAddress`); ties go to the shallower field,
//! then to the first in document order. A generic field deeper down (a CloudTrail
//! `requestParameters.ipAddress`) is collected into `_ipaddresses` but never taken as the
//! source: it describes the request, not who made it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::plugin::{Plugin, PluginError, Registration, Stage, Trigger, Verdict};
use crate::shell::{Event, insert_keeping_both};

/// Where the event's source address is written.
pub const SOURCE_KEY: &str = "sourceipaddress";
/// Where the event's destination address is written.
pub const DESTINATION_KEY: &str = "destinationipaddress";
/// Where every valid address of the event is listed. Not searched itself.
pub const ALL_KEY: &str = "_ipaddresses";

/// Field names (normalized: lower case, letters and digits only) of the source address: the
/// client, the caller, the remote peer. Most specific first.
pub const SOURCE_FIELDS: &[&str] = &[
    "sourceipaddress",
    "sourceip",
    "sourceaddress",
    "sourceaddr",
    "srcaddr",
    "srcip",
    "src",
    "clientip",
    "clientipaddress",
    "clientaddress",
    "clientaddr",
    "cip",
    "remoteip",
    "remoteipaddress",
    "remoteaddr",
    "remoteaddress",
    "remotehost",
    "callerip",
    "actorip",
    "userip",
    "pktsrcaddr",
    "xforwardedfor",
    "xrealip",
    "trueclientip",
    "cfconnectingip",
];

/// Field names (normalized) of the destination address: the server, the local side of a
/// server log. Most specific first.
pub const DESTINATION_FIELDS: &[&str] = &[
    "destinationipaddress",
    "destinationip",
    "destinationaddress",
    "destinationaddr",
    "dstaddr",
    "dstip",
    "dst",
    "serverip",
    "serveripaddress",
    "serveraddress",
    "serveraddr",
    "sip",
    "pktdstaddr",
];

/// Field names (normalized) that hold an address without saying whose.
pub const GENERIC_FIELDS: &[&str] = &[
    "ipaddress",
    "ip",
    "ipaddr",
    "ipv4",
    "ipv6",
    "address",
    "addr",
    "hostip",
    "hostaddress",
    "localip",
    "localaddress",
    "peerip",
    "peeraddress",
];

/// Object names (normalized) whose generic address fields are source addresses.
pub const SOURCE_PARENTS: &[&str] = &["source", "src", "client", "remote", "caller", "actor"];

/// Object names (normalized) whose generic address fields are destination addresses.
pub const DESTINATION_PARENTS: &[&str] = &["destination", "dst", "server"];

/// The plugin; it has no settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpAddress;

impl Plugin for IpAddress {
    fn name(&self) -> &'static str {
        "ipaddress"
    }

    fn registration(&self) -> Registration {
        Registration::new(Stage::Enrich, 0, vec![Trigger::Always])
    }

    fn process(&self, event: &mut Event) -> Result<Verdict, PluginError> {
        let mut found = Found::default();
        walk(&event.details, None, 0, &mut found);
        if found.all.is_empty() {
            return Ok(Verdict::Unchanged);
        }
        // Each address is written as text once, whatever the fields it goes to.
        let texts: Vec<String> = found.all.iter().map(address_text).collect();
        let text_of = |best: Candidate| {
            let at = found.all.iter().position(|a| *a == best.address);
            Value::String(texts[at.expect("every candidate is collected")].clone())
        };
        let mut changed = false;
        if let Some(best) = found.source {
            changed |= set_keeping_original(&mut event.details, SOURCE_KEY, text_of(best));
        }
        if let Some(best) = found.destination {
            changed |= set_keeping_original(&mut event.details, DESTINATION_KEY, text_of(best));
        }
        let all = Value::Array(texts.into_iter().map(Value::String).collect());
        if event.details.get(ALL_KEY) != Some(&all) {
            event.details.insert(ALL_KEY.to_string(), all);
            changed = true;
        }
        Ok(if changed {
            Verdict::Changed
        } else {
            Verdict::Unchanged
        })
    }
}

/// An address's canonical text, as its `Display` writes it; IPv4 without the formatting
/// machinery, which cost more than finding the address.
fn address_text(address: &IpAddr) -> String {
    let IpAddr::V4(v4) = address else {
        return address.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// Whose address a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Destination,
    /// Says nothing about whose: collected, and a source only at the top level.
    Generic,
}

/// A candidate for `sourceipaddress` or `destinationipaddress`; lower `rank`, then lower
/// `depth`, wins; the first found wins ties.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    address: IpAddr,
    rank: usize,
    depth: usize,
}

/// What a walk over `details` found.
#[derive(Debug, Default)]
struct Found {
    all: Vec<IpAddr>,
    source: Option<Candidate>,
    destination: Option<Candidate>,
}

impl Found {
    fn add(&mut self, address: IpAddr, role: Role, rank: usize, depth: usize) {
        if !self.all.contains(&address) {
            self.all.push(address);
        }
        let slot = match role {
            Role::Source => &mut self.source,
            Role::Destination => &mut self.destination,
            Role::Generic if depth == 0 => &mut self.source,
            Role::Generic => return,
        };
        let candidate = Candidate {
            address,
            rank,
            depth,
        };
        if slot.is_none_or(|best| (rank, depth) < (best.rank, best.depth)) {
            *slot = Some(candidate);
        }
    }
}

/// Visits a map in document order; `parent` is the role its own name gives to generic fields.
fn walk(map: &Map<String, Value>, parent: Option<(Role, usize)>, depth: usize, found: &mut Found) {
    for (key, value) in map {
        if depth == 0 && key == ALL_KEY {
            continue;
        }
        let mut buffer = [0u8; 32];
        // Most keys are lower-case letters and digits already (lowercase_keys ran): they are
        // their own normalized name.
        let name = if crate::bytewise::any_not_lowercase_alphanumeric(key.as_bytes()) {
            normalize(key, &mut buffer)
        } else {
            Some(key.as_bytes())
        };
        let meaning = name.and_then(meaning);
        let field = meaning.and_then(|m| m.field_role(parent));
        let child_parent = meaning.and_then(|m| m.parent);
        visit(value, field, child_parent, depth, found);
    }
}

/// Visits one value: collects addresses when its field is an address field, and descends.
fn visit(
    value: &Value,
    field: Option<(Role, usize)>,
    child_parent: Option<(Role, usize)>,
    depth: usize,
    found: &mut Found,
) {
    match value {
        Value::String(text) => {
            if let Some((role, rank)) = field {
                for address in addresses_in(text) {
                    found.add(address, role, rank, depth);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                visit(item, field, child_parent, depth, found);
            }
        }
        Value::Object(child) => walk(child, child_parent, depth + 1, found),
        _ => {}
    }
}

/// Lower-cases `key` into `buffer`, keeping letters and digits only; `None` when too long to
/// be an address field name or not ASCII.
fn normalize<'b>(key: &str, buffer: &'b mut [u8; 32]) -> Option<&'b [u8]> {
    let mut len = 0;
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() {
            *buffer.get_mut(len)? = byte.to_ascii_lowercase();
            len += 1;
        } else if !byte.is_ascii() {
            return None;
        }
    }
    Some(&buffer[..len])
}

/// What a normalized name means in the tables above.
#[derive(Debug, Clone, Copy, Default)]
struct Meaning {
    /// A named source or destination field, with its rank.
    field: Option<(Role, usize)>,
    /// A generic address field, with its place in [`GENERIC_FIELDS`].
    generic: Option<usize>,
    /// The role (and rank) this name gives to generic fields of an object it names.
    parent: Option<(Role, usize)>,
}

impl Meaning {
    /// The role and rank of a field of this name, given the role its parent object gives.
    fn field_role(self, parent: Option<(Role, usize)>) -> Option<(Role, usize)> {
        if self.field.is_some() {
            return self.field;
        }
        let generic = self.generic?;
        Some(parent.unwrap_or((
            Role::Generic,
            SOURCE_FIELDS.len() + SOURCE_PARENTS.len() + generic,
        )))
    }
}

/// Every name of the tables, prepared once: this plugin looks at every key of every event, so
/// most keys must be turned away without a string comparison.
struct Names {
    /// For each first letter `a`..`z`, its names and their meanings (a few each): compared
    /// by length first, so a name is rarely compared byte by byte.
    by_letter: [Vec<(&'static [u8], Meaning)>; 26],
    /// For each first letter `a`..`z`, a bit per length that some name of that letter has
    /// (every name starts with a letter and is shorter than 32).
    shapes: [u32; 26],
}

static NAMES: LazyLock<Names> = LazyLock::new(|| {
    let mut meanings: BTreeMap<&'static [u8], Meaning> = BTreeMap::new();
    for (rank, name) in SOURCE_FIELDS.iter().enumerate() {
        meanings.entry(name.as_bytes()).or_default().field = Some((Role::Source, rank));
    }
    for (rank, name) in DESTINATION_FIELDS.iter().enumerate() {
        meanings.entry(name.as_bytes()).or_default().field = Some((Role::Destination, rank));
    }
    for (i, name) in GENERIC_FIELDS.iter().enumerate() {
        meanings.entry(name.as_bytes()).or_default().generic = Some(i);
    }
    for (i, name) in SOURCE_PARENTS.iter().enumerate() {
        meanings.entry(name.as_bytes()).or_default().parent =
            Some((Role::Source, SOURCE_FIELDS.len() + i));
    }
    for (i, name) in DESTINATION_PARENTS.iter().enumerate() {
        meanings.entry(name.as_bytes()).or_default().parent =
            Some((Role::Destination, DESTINATION_FIELDS.len() + i));
    }
    let mut shapes = [0u32; 26];
    let mut by_letter: [Vec<(&'static [u8], Meaning)>; 26] = Default::default();
    for (name, meaning) in meanings {
        let letter = usize::from(name[0] - b'a');
        shapes[letter] |= 1 << name.len();
        by_letter[letter].push((name, meaning));
    }
    Names { by_letter, shapes }
});

/// What a normalized name means, if anything.
fn meaning(name: &[u8]) -> Option<Meaning> {
    let names = &*NAMES;
    let first = usize::from(name.first()?.wrapping_sub(b'a'));
    let shapes = *names.shapes.get(first)?;
    if name.len() >= 32 || shapes & (1 << name.len()) == 0 {
        return None;
    }
    names.by_letter[first]
        .iter()
        .find(|(known, _)| known.len() == name.len() && *known == name)
        .map(|(_, meaning)| *meaning)
}

/// Writes `value` under `key` unless it holds exactly that already; a different value that
/// was there is kept under `<key>_original`. Says whether anything changed.
pub(crate) fn set_keeping_original(
    details: &mut Map<String, Value>,
    key: &str,
    value: Value,
) -> bool {
    if details.get(key) == Some(&value) {
        return false;
    }
    if let Some(original) = details.insert(key.to_string(), value) {
        insert_keeping_both(details, format!("{key}_original"), original);
    }
    true
}

/// The valid addresses in a field's text: one address, or a comma-separated list.
pub fn addresses_in(text: &str) -> impl Iterator<Item = IpAddr> + '_ {
    text.split(',').filter_map(parse_address)
}

/// One address as logs write it, validated strictly with `std::net`: surrounding spaces, a
/// port (`1.2.3.4:443`, `[2001:db8::1]:443`), brackets and an IPv6 zone (`fe80::1%eth0`) are
/// removed; anything else that does not parse (`999.1.1.1`, `010.1.1.1`, a host name, a CIDR
/// block) is not an address. IPv4-mapped IPv6 addresses come back as IPv4.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    let host = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        inside
    } else {
        match text.rsplit_once(':') {
            // A colon after an IPv4 address starts a port; an unbracketed IPv6 address with
            // a port cannot be told apart from one without, so only IPv4 gets here.
            Some((host, port)) if !host.contains(':') => is_port(port).then_some(host)?,
            _ => text,
        }
    };
    let host = match host.split_once('%') {
        Some((address, zone)) if address.contains(':') && is_zone(zone) => address,
        Some(_) => return None,
        None => host,
    };
    host.parse::<IpAddr>()
        .ok()
        .map(|address| address.to_canonical())
}

/// A TCP/UDP port number.
fn is_port(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u32>().is_ok_and(|port| port <= 65_535)
}

/// An IPv6 zone: an interface name or number.
fn is_zone(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::RecordKind;
    use crate::sources::testing::process_json;
    use chrono::Utc;
    use serde_json::json;

    fn run(details: Value) -> (Verdict, Value) {
        let (verdict, event) = process_json(&IpAddress, &details.to_string());
        (verdict, Value::Object(event.details))
    }

    fn parsed(text: &str) -> Option<String> {
        parse_address(text).map(|a| a.to_string())
    }

    #[test]
    fn parses_addresses_strictly() {
        let cases: &[(&str, Option<&str>)] = &[
            ("1.2.3.4", Some("1.2.3.4")),
            (" 1.2.3.4 ", Some("1.2.3.4")),
            ("2001:DB8::1", Some("2001:db8::1")),
            ("::1", Some("::1")),
            ("::ffff:198.51.100.7", Some("198.51.100.7")),
            ("0.0.0.0", Some("0.0.0.0")),
            ("123.456.253.226", None),
            ("999.1.1.1", None),
            ("1.2.3", None),
            ("1.2.3.4.5", None),
            ("010.1.1.1", None),
            ("10.0.0.0/8", None),
            ("example.com", None),
            ("AWS Internal", None),
            ("lambda.amazonaws.com", None),
            ("-", None),
            ("", None),
            ("1.2.3.4 extra", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parsed(input).as_deref(), *expected, "{input:?}");
        }
    }

    #[test]
    fn strips_ports_brackets_and_zones() {
        let cases: &[(&str, Option<&str>)] = &[
            ("1.2.3.4:443", Some("1.2.3.4")),
            ("1.2.3.4:65535", Some("1.2.3.4")),
            ("1.2.3.4:65536", None),
            ("1.2.3.4:", None),
            ("1.2.3.4:http", None),
            ("[::1]:80", Some("::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:8443", Some("2001:db8::1")),
            ("[2001:db8::1]x", None),
            ("[1.2.3.4]:80", Some("1.2.3.4")),
            ("fe80::1%eth0", Some("fe80::1")),
            ("[fe80::1%25]:22", Some("fe80::1")),
            ("fe80::1%", None),
            ("1.2.3.4%eth0", None),
            ("999.1.1.1:80", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parsed(input).as_deref(), *expected, "{input:?}");
        }
    }

    #[test]
    fn splits_comma_lists_and_drops_invalid_entries() {
        let found: Vec<String> = addresses_in("203.0.113.7, 10.0.0.1,bogus, [2001:db8::2]:443")
            .map(|a| a.to_string())
            .collect();
        assert_eq!(found, ["203.0.113.7", "10.0.0.1", "2001:db8::2"]);
    }

    #[test]
    fn field_names_are_matched_whatever_their_punctuation() {
        let mut buffer = [0u8; 32];
        for (key, expected) in [
            ("c-ip", Some(Role::Source)),
            ("src_ip", Some(Role::Source)),
            ("sourceIPAddress", Some(Role::Source)),
            ("X-Forwarded-For", Some(Role::Source)),
            ("dst-addr", Some(Role::Destination)),
            ("s-ip", Some(Role::Destination)),
            ("ipAddress", Some(Role::Generic)),
            ("eventname", None),
            ("ipaddresses", None),
            ("a_very_long_field_name_that_is_no_address_field", None),
        ] {
            let role = normalize(key, &mut buffer)
                .and_then(meaning)
                .and_then(|m| m.field_role(None))
                .map(|(role, _)| role);
            assert_eq!(role, expected, "{key}");
        }
    }

    #[test]
    fn each_field_name_has_one_meaning_and_is_normalized() {
        let fields: Vec<&str> = [SOURCE_FIELDS, DESTINATION_FIELDS, GENERIC_FIELDS].concat();
        let parents: Vec<&str> = [SOURCE_PARENTS, DESTINATION_PARENTS].concat();
        for names in [&fields, &parents] {
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(
                sorted.len(),
                names.len(),
                "a name is listed twice: {names:?}"
            );
        }
        for name in fields.iter().chain(&parents) {
            let mut buffer = [0u8; 32];
            assert_eq!(
                normalize(name, &mut buffer),
                Some(name.as_bytes()),
                "{name} is not normalized"
            );
            assert!(meaning(name.as_bytes()).is_some(), "{name}");
            assert!(
                name.len() < 32 && name.as_bytes()[0].is_ascii_lowercase(),
                "{name}"
            );
        }
    }

    #[test]
    fn cloudtrail_source_is_kept_and_collected() {
        let (verdict, details) = run(json!({"sourceipaddress": "54.21.12.27", "eventname": "x"}));
        assert_eq!(verdict, Verdict::Changed);
        assert_eq!(details["sourceipaddress"], "54.21.12.27");
        assert_eq!(details["_ipaddresses"], json!(["54.21.12.27"]));
        assert!(details.get("sourceipaddress_original").is_none());
    }

    #[test]
    fn vpc_flow_sets_source_and_destination() {
        let (_, details) = run(json!({"srcaddr": "198.51.100.1", "dstaddr": "192.0.2.1"}));
        assert_eq!(details["sourceipaddress"], "198.51.100.1");
        assert_eq!(details["destinationipaddress"], "192.0.2.1");
        assert_eq!(
            details["_ipaddresses"],
            json!(["192.0.2.1", "198.51.100.1"])
        );
    }

    #[test]
    fn cloudfront_client_ip_is_the_source_and_a_dash_is_ignored() {
        let (_, details) = run(json!({"c-ip": "139.59.66.23", "x-forwarded-for": "-"}));
        assert_eq!(details["sourceipaddress"], "139.59.66.23");
        assert_eq!(details["_ipaddresses"], json!(["139.59.66.23"]));
    }

    #[test]
    fn an_invalid_gsuite_address_is_never_collected() {
        let (verdict, details) =
            run(json!({"ipaddress": "123.456.253.226", "actor": {"email": "a@x"}}));
        assert_eq!(verdict, Verdict::Unchanged);
        assert!(details.get("sourceipaddress").is_none());
        assert!(details.get("_ipaddresses").is_none());
    }

    #[test]
    fn a_valid_top_level_generic_address_becomes_the_source() {
        let (_, details) = run(json!({"ipaddress": "203.0.113.9"}));
        assert_eq!(details["sourceipaddress"], "203.0.113.9");
    }

    #[test]
    fn x_forwarded_for_lists_are_split_and_the_first_entry_is_the_source() {
        let (_, details) = run(json!({"x-forwarded-for": "203.0.113.7, 10.0.0.1, 999.0.0.1"}));
        assert_eq!(details["sourceipaddress"], "203.0.113.7");
        assert_eq!(details["_ipaddresses"], json!(["203.0.113.7", "10.0.0.1"]));
    }

    #[test]
    fn more_specific_source_fields_win_over_forwarded_and_generic_ones() {
        let (_, details) = run(json!({
            "ip": "192.0.2.50",
            "x-forwarded-for": "203.0.113.7",
            "clientip": "198.51.100.20",
        }));
        assert_eq!(details["sourceipaddress"], "198.51.100.20");
        assert_eq!(
            details["_ipaddresses"],
            json!(["198.51.100.20", "192.0.2.50", "203.0.113.7"])
        );
    }

    #[test]
    fn nested_and_array_fields_are_found_in_document_order() {
        let (_, details) = run(json!({
            "a": {"source": {"ip": "198.51.100.1", "port": 443}, "destination": {"ip": "192.0.2.1"}},
            "b": [
                {"remote_addr": "[2001:db8::5]:443"},
                [{"dst_ip": "192.0.2.2"}],
                {"peers": [{"ip": "192.0.2.3"}]},
            ],
            "c-ip": ["203.0.113.1", "not-an-ip"],
        }));
        assert_eq!(
            details["_ipaddresses"],
            json!([
                "192.0.2.1",
                "198.51.100.1",
                "2001:db8::5",
                "192.0.2.2",
                "192.0.2.3",
                "203.0.113.1"
            ])
        );
        // `c-ip` and `remote_addr` are named source fields and `c-ip` is listed earlier; both
        // beat `source.ip`, whose role comes from its parent.
        assert_eq!(details["sourceipaddress"], "203.0.113.1");
        // `dst_ip` is a named destination field; it beats `destination.ip` (a parent's role).
        assert_eq!(details["destinationipaddress"], "192.0.2.2");
    }

    #[test]
    fn shallower_fields_win_ties() {
        let (_, details) = run(json!({"deep": {"srcaddr": "192.0.2.1"}, "srcaddr": "192.0.2.2"}));
        assert_eq!(details["sourceipaddress"], "192.0.2.2");
    }

    #[test]
    fn a_nested_generic_address_is_collected_but_not_taken_as_the_source() {
        let (_, details) = run(json!({
            "sourceipaddress": "AWS Internal",
            "requestparameters": {"ipaddress": "192.0.2.8"},
        }));
        assert_eq!(details["sourceipaddress"], "AWS Internal");
        assert_eq!(details["_ipaddresses"], json!(["192.0.2.8"]));
    }

    #[test]
    fn an_invalid_or_unclean_source_is_replaced_and_its_original_kept() {
        let (_, details) = run(json!({"sourceipaddress": "1.2.3.4:5678"}));
        assert_eq!(details["sourceipaddress"], "1.2.3.4");
        assert_eq!(details["sourceipaddress_original"], "1.2.3.4:5678");

        let (_, details) = run(json!({"sourceipaddress": "-", "srcaddr": "192.0.2.1"}));
        assert_eq!(details["sourceipaddress"], "192.0.2.1");
        assert_eq!(details["sourceipaddress_original"], "-");
    }

    #[test]
    fn a_valid_source_is_never_replaced() {
        let (_, details) = run(json!({"sourceipaddress": "192.0.2.1", "clientip": "192.0.2.2"}));
        assert_eq!(details["sourceipaddress"], "192.0.2.1");
        assert_eq!(details["_ipaddresses"], json!(["192.0.2.2", "192.0.2.1"]));
    }

    #[test]
    fn running_twice_changes_nothing_the_second_time() {
        let mut event = Event::empty(Utc::now(), RecordKind::Json);
        event.details = json!({"c-ip": "1.2.3.4:80", "dstaddr": "::ffff:192.0.2.1"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(IpAddress.process(&mut event).unwrap(), Verdict::Changed);
        let once = event.details.clone();
        assert_eq!(IpAddress.process(&mut event).unwrap(), Verdict::Unchanged);
        assert_eq!(event.details, once);
        assert_eq!(event.details["destinationipaddress"], "192.0.2.1");
    }

    #[test]
    fn addresses_outside_address_fields_are_not_collected() {
        let (verdict, details) =
            run(json!({"message": "login from 192.0.2.1", "ips": ["192.0.2.2"], "port": 443}));
        assert_eq!(verdict, Verdict::Unchanged);
        assert!(details.get("_ipaddresses").is_none());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn address_text_is_what_display_writes(address in any::<IpAddr>()) {
                prop_assert_eq!(address_text(&address), address.to_string());
            }

            #[test]
            fn what_parses_is_canonical_and_parses_again_to_itself(
                text in prop_oneof![
                    ".{0,40}",
                    "[0-9a-fA-F:.\\[\\]%, ]{0,40}",
                    "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{0,6})?",
                ]
            ) {
                for address in addresses_in(&text) {
                    let canonical = address.to_string();
                    prop_assert_eq!(canonical.parse::<IpAddr>().ok(), Some(address));
                    prop_assert_eq!(parse_address(&canonical), Some(address));
                }
            }

            #[test]
            fn only_valid_addresses_are_ever_written(
                values in prop::collection::vec(
                    (
                        prop::sample::select(vec!["srcaddr", "c-ip", "ip", "dst_ip", "x-forwarded-for"]),
                        "[0-9a-f:.\\[\\], ]{0,30}",
                    ),
                    0..6,
                )
            ) {
                let details: Map<String, Value> = values
                    .into_iter()
                    .enumerate()
                    .map(|(i, (key, value))| (format!("n{i}"), json!({key: value})))
                    .collect();
                let (_, details) = run(Value::Object(details));
                let written = [details.get(ALL_KEY), details.get(SOURCE_KEY), details.get(DESTINATION_KEY)];
                for value in written.into_iter().flatten() {
                    let texts: Vec<&Value> = match value {
                        Value::Array(items) => items.iter().collect(),
                        single => vec![single],
                    };
                    for text in texts {
                        let text = text.as_str().unwrap();
                        prop_assert!(text.parse::<IpAddr>().is_ok(), "{text}");
                    }
                }
            }
        }
    }
}
