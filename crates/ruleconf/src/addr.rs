//! Address groups as in rule headers, `vars.address-groups` and
//! `threshold.config` `ip` lists: `any`, IPv4/IPv6 addresses, CIDR blocks
//! (`10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `2001:db8::/32`; host bits are
//! ignored), ranges (`10.0.0.1-10.0.0.9`), lists, nested lists, negation and
//! `$VARS` (see [`crate::group`] for the grammar).
//!
//! A group compiles to an [`AddressSet`]: sorted, disjoint ranges per address
//! family with negation already folded in, so [`AddressSet::contains`] is
//! one binary search.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::group::{parse_group, GroupError, GroupSet, VarRefError};
use crate::set::RangeSet;

/// A compiled address group.
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub struct AddressSet {
    v4: RangeSet<u32>,
    v6: RangeSet<u128>,
}

impl AddressSet {
    /// Every IPv4 and IPv6 address (`any`).
    pub fn any() -> Self {
        AddressSet {
            v4: RangeSet::full(),
            v6: RangeSet::full(),
        }
    }

    /// No address at all (never produced by the parser, which rejects
    /// groups that match nothing).
    pub fn none() -> Self {
        AddressSet {
            v4: RangeSet::empty(),
            v6: RangeSet::empty(),
        }
    }

    /// Whether `ip` is in the group.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// Whether the group is `any` (every address of both families); the
    /// detection engine can skip the check.
    pub fn is_any(&self) -> bool {
        self.v4.is_full() && self.v6.is_full()
    }

    /// Whether the group matches no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The IPv4 part as inclusive ranges, ascending.
    pub fn v4_ranges(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
        self.v4
            .ranges()
            .iter()
            .map(|&(a, b)| (Ipv4Addr::from(a), Ipv4Addr::from(b)))
    }

    /// The IPv6 part as inclusive ranges, ascending.
    pub fn v6_ranges(&self) -> impl Iterator<Item = (Ipv6Addr, Ipv6Addr)> + '_ {
        self.v6
            .ranges()
            .iter()
            .map(|&(a, b)| (Ipv6Addr::from(a), Ipv6Addr::from(b)))
    }

    /// Parses a group that uses no variables (a `$VAR` is an "unknown
    /// variable" error). Use [`crate::Vars::address`] for rule headers.
    pub fn parse_literal(s: &str) -> Result<AddressSet, GroupError> {
        parse_address_with(s, |_| Err(VarRefError::Unknown))
    }
}

impl GroupSet for AddressSet {
    fn full() -> Self {
        AddressSet::any()
    }
    fn is_empty(&self) -> bool {
        AddressSet::is_empty(self)
    }
    fn complement(&self) -> Self {
        AddressSet {
            v4: self.v4.complement(),
            v6: self.v6.complement(),
        }
    }
    fn difference(&self, other: &Self) -> Self {
        AddressSet {
            v4: self.v4.difference(&other.v4),
            v6: self.v6.difference(&other.v6),
        }
    }
    fn union_all(sets: Vec<Self>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for s in &sets {
            v4.extend_from_slice(s.v4.ranges());
            v6.extend_from_slice(s.v6.ranges());
        }
        AddressSet {
            v4: RangeSet::normalize(v4),
            v6: RangeSet::normalize(v6),
        }
    }
}

/// Parses with a caller-supplied variable resolver.
pub(crate) fn parse_address_with<V>(s: &str, var: V) -> Result<AddressSet, GroupError>
where
    V: FnMut(&str) -> Result<AddressSet, VarRefError>,
{
    parse_group(s, parse_address_atom, var)
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse::<IpAddr>()
        .map_err(|_| "not an IPv4 or IPv6 address".to_string())
}

/// One value token: address, CIDR, netmask form or range.
fn parse_address_atom(tok: &str) -> Result<AddressSet, String> {
    let mut out = AddressSet::none();
    if let Some((a, b)) = tok.split_once('-') {
        let (a, b) = (parse_ip(a)?, parse_ip(b)?);
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b {
                    return Err("range start is above its end".to_string());
                }
                out.v4 = RangeSet::range(a, b);
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let (a, b) = (u128::from(a), u128::from(b));
                if a > b {
                    return Err("range start is above its end".to_string());
                }
                out.v6 = RangeSet::range(a, b);
            }
            _ => return Err("range mixes IPv4 and IPv6".to_string()),
        }
        return Ok(out);
    }
    if let Some((ip, mask)) = tok.split_once('/') {
        let ip = parse_ip(ip)?;
        match ip {
            IpAddr::V4(a) => {
                let prefix = if mask.contains('.') {
                    let m: Ipv4Addr = mask
                        .parse()
                        .map_err(|_| "invalid IPv4 netmask".to_string())?;
                    let m = u32::from(m);
                    if m.leading_ones() + m.trailing_zeros() != 32 {
                        return Err("netmask is not contiguous".to_string());
                    }
                    m.leading_ones()
                } else {
                    parse_prefix(mask, 32)?
                };
                let host_mask = u32::MAX.checked_shr(prefix).unwrap_or(0);
                let lo = u32::from(a) & !host_mask;
                out.v4 = RangeSet::range(lo, lo | host_mask);
            }
            IpAddr::V6(a) => {
                let prefix = parse_prefix(mask, 128)?;
                let host_mask = u128::MAX.checked_shr(prefix).unwrap_or(0);
                let lo = u128::from(a) & !host_mask;
                out.v6 = RangeSet::range(lo, lo | host_mask);
            }
        }
        return Ok(out);
    }
    match parse_ip(tok)? {
        IpAddr::V4(a) => out.v4 = RangeSet::range(u32::from(a), u32::from(a)),
        IpAddr::V6(a) => out.v6 = RangeSet::range(u128::from(a), u128::from(a)),
    }
    Ok(out)
}

fn parse_prefix(s: &str, max: u32) -> Result<u32, String> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid prefix length (0-{max})"));
    }
    match s.parse::<u32>() {
        Ok(p) if p <= max => Ok(p),
        _ => Err(format!("prefix length above {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupErrorKind;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn lit(s: &str) -> AddressSet {
        AddressSet::parse_literal(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn any_and_single_addresses() {
        let a = lit("any");
        assert!(a.is_any() && a.contains(ip("1.2.3.4")) && a.contains(ip("::1")));
        let a = lit("ANY");
        assert!(a.is_any());
        let a = lit("192.168.1.1");
        assert!(a.contains(ip("192.168.1.1")) && !a.contains(ip("192.168.1.2")));
        assert!(!a.contains(ip("::ffff:192.168.1.1")));
        let a = lit("2001:db8::1");
        assert!(a.contains(ip("2001:db8::1")) && !a.contains(ip("2001:db8::2")));
    }

    #[test]
    fn cidr_v4_v6_and_netmask() {
        let a = lit("10.0.0.0/8");
        assert!(a.contains(ip("10.255.255.255")) && !a.contains(ip("11.0.0.0")));
        // Host bits are ignored, as Suricata does.
        let a = lit("10.1.2.3/8");
        assert!(a.contains(ip("10.0.0.0")));
        let a = lit("192.168.0.0/255.255.0.0");
        assert!(a.contains(ip("192.168.200.1")) && !a.contains(ip("192.169.0.0")));
        assert!(lit("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(!lit("0.0.0.0/0").contains(ip("::1")));
        let a = lit("2001:db8::/32");
        assert!(a.contains(ip("2001:db8:ffff::1")) && !a.contains(ip("2001:db9::")));
        assert!(lit("::/0").contains(ip("ffff::1")));
        assert!(lit("1.2.3.4/32").contains(ip("1.2.3.4")));
    }

    #[test]
    fn ranges() {
        let a = lit("[10.0.0.1-10.0.0.9]");
        assert!(a.contains(ip("10.0.0.1")) && a.contains(ip("10.0.0.9")));
        assert!(!a.contains(ip("10.0.0.0")) && !a.contains(ip("10.0.0.10")));
        let a = lit("2001:db8::1-2001:db8::ff");
        assert!(a.contains(ip("2001:db8::80")));
    }

    #[test]
    fn lists_nesting_and_negation() {
        let a = lit("[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]");
        assert!(a.contains(ip("172.31.0.1")) && !a.contains(ip("172.32.0.1")));
        let a = lit("!10.0.0.0/8");
        assert!(!a.contains(ip("10.1.1.1")) && a.contains(ip("11.1.1.1")));
        assert!(a.contains(ip("::1")));
        let a = lit("![10.0.0.0/8, 192.168.0.0/16]");
        assert!(!a.contains(ip("192.168.1.1")) && a.contains(ip("8.8.8.8")));
        // Positive minus negated members.
        let a = lit("[10.0.0.0/8,!10.1.0.0/16]");
        assert!(a.contains(ip("10.2.0.1")) && !a.contains(ip("10.1.0.1")));
        assert!(!a.contains(ip("8.8.8.8")));
        // Only negated members: everything else.
        let a = lit("[!1.1.1.1,!2.2.2.2]");
        assert!(a.contains(ip("3.3.3.3")) && !a.contains(ip("2.2.2.2")));
        // Nested.
        let a = lit("[1.0.0.0/8,![1.1.0.0/16,!1.1.1.0/24]]");
        assert!(a.contains(ip("1.2.0.1")));
        assert!(!a.contains(ip("1.1.2.1")));
        assert!(a.contains(ip("1.1.1.1")));
        let a = lit("[[[1.2.3.4]], [5.6.7.8 , ::1]]");
        assert!(a.contains(ip("5.6.7.8")) && a.contains(ip("::1")));
        let a = lit("!!1.2.3.4");
        assert!(a.contains(ip("1.2.3.4")) && !a.contains(ip("1.2.3.5")));
    }

    fn err(s: &str) -> GroupError {
        AddressSet::parse_literal(s).expect_err(s)
    }

    #[test]
    fn errors_name_token_and_column() {
        let e = err("[10.0.0.0/8,10.0.0.300]");
        assert_eq!(e.column, 13);
        assert_eq!(e.token, "10.0.0.300");
        assert!(matches!(e.kind, GroupErrorKind::BadValue(_)));
        assert!(e.to_string().contains("column 13"), "{e}");
        let e = err("10.0.0.0/33");
        assert_eq!((e.column, e.token.as_str()), (1, "10.0.0.0/33"));
        let e = err("[1.2.3.4");
        assert!(matches!(e.kind, GroupErrorKind::UnexpectedEnd { .. }));
        assert_eq!(e.column, 9);
        let e = err("[1.2.3.4]]");
        assert_eq!(e.column, 10);
        let e = err("[1.2.3.4 5.6.7.8]");
        assert_eq!((e.column, e.token.as_str()), (10, "5"));
        assert!(matches!(err("").kind, GroupErrorKind::Empty));
        assert!(matches!(err("  ").kind, GroupErrorKind::Empty));
        assert!(matches!(err("[]").kind, GroupErrorKind::Unexpected { .. }));
        assert!(matches!(
            err("[1.2.3.4,]").kind,
            GroupErrorKind::Unexpected { .. }
        ));
        assert!(matches!(err("!any").kind, GroupErrorKind::MatchesNothing));
        assert!(matches!(
            err("[1.2.3.4,!1.2.3.4]").kind,
            GroupErrorKind::MatchesNothing
        ));
        assert!(matches!(
            err("$HOME_NET").kind,
            GroupErrorKind::UnknownVar(_)
        ));
        assert!(matches!(
            err("10.0.0.9-10.0.0.1").kind,
            GroupErrorKind::BadValue(_)
        ));
        assert!(matches!(
            err("10.0.0.1-::1").kind,
            GroupErrorKind::BadValue(_)
        ));
        assert!(matches!(
            err("10.0.0.0/255.0.255.0").kind,
            GroupErrorKind::BadValue(_)
        ));
        assert!(matches!(err("::/129").kind, GroupErrorKind::BadValue(_)));
        assert!(matches!(err("1.2.3.4/").kind, GroupErrorKind::BadValue(_)));
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(matches!(err(&deep).kind, GroupErrorKind::TooDeep));
        let wide = format!("[{}]", vec!["1.2.3.4"; 50_000].join(","));
        assert!(lit(&wide).contains(ip("1.2.3.4")));
        let e = err(&"x".repeat(1000));
        assert!(e.token.len() < 80);
        let e = err("[é");
        assert_eq!(e.column, 2);
    }
}
