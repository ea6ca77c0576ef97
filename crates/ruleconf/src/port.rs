//! Port groups as in rule headers and `vars.port-groups`: `any`, `80`,
//! ranges `1:1024`, `1024:` (to 65535), `:1023` (from 0), lists, nested
//! lists, negation (`!80`, `![80,443]`) and `$VARS` (grammar in
//! [`crate::group`]).
//!
//! A group compiles to a [`PortSet`]: sorted, disjoint ranges (a few
//! bytes for typical rules, where a 65536-bit bitmap would cost 8 KiB per
//! rule side) and a binary search per lookup.

use crate::group::{parse_group, GroupError, GroupSet, VarRefError};
use crate::set::RangeSet;

/// A compiled port group.
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub struct PortSet {
    ranges: RangeSet<u16>,
}

impl PortSet {
    /// Every port (`any`).
    pub fn any() -> Self {
        PortSet {
            ranges: RangeSet::full(),
        }
    }

    /// Whether `port` is in the group.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.ranges.contains(port)
    }

    /// Whether the group is `any`.
    pub fn is_any(&self) -> bool {
        self.ranges.is_full()
    }

    /// Whether the group matches no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The group as inclusive ranges, ascending (for grouping rules by
    /// port).
    pub fn ranges(&self) -> &[(u16, u16)] {
        self.ranges.ranges()
    }

    /// The single port, if the group is exactly one port.
    pub fn single(&self) -> Option<u16> {
        match self.ranges.ranges() {
            [(a, b)] if a == b => Some(*a),
            _ => None,
        }
    }

    /// Parses a group that uses no variables. Use [`crate::Vars::port`]
    /// for rule headers.
    pub fn parse_literal(s: &str) -> Result<PortSet, GroupError> {
        parse_port_with(s, |_| Err(VarRefError::Unknown))
    }
}

impl GroupSet for PortSet {
    fn full() -> Self {
        PortSet::any()
    }
    fn is_empty(&self) -> bool {
        PortSet::is_empty(self)
    }
    fn complement(&self) -> Self {
        PortSet {
            ranges: self.ranges.complement(),
        }
    }
    fn difference(&self, other: &Self) -> Self {
        PortSet {
            ranges: self.ranges.difference(&other.ranges),
        }
    }
    fn union_all(sets: Vec<Self>) -> Self {
        let mut v = Vec::new();
        for s in &sets {
            v.extend_from_slice(s.ranges.ranges());
        }
        PortSet {
            ranges: RangeSet::normalize(v),
        }
    }
}

pub(crate) fn parse_port_with<V>(s: &str, var: V) -> Result<PortSet, GroupError>
where
    V: FnMut(&str) -> Result<PortSet, VarRefError>,
{
    parse_group(s, parse_port_atom, var)
}

fn parse_port_num(s: &str) -> Result<u16, String> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a port number".to_string());
    }
    s.parse::<u16>()
        .map_err(|_| "port number above 65535".to_string())
}

fn parse_port_atom(tok: &str) -> Result<PortSet, String> {
    let (lo, hi) = match tok.split_once(':') {
        Some(("", "")) => return Err("empty port range".to_string()),
        Some((a, "")) => (parse_port_num(a)?, u16::MAX),
        Some(("", b)) => (0, parse_port_num(b)?),
        Some((a, b)) => {
            let (a, b) = (parse_port_num(a)?, parse_port_num(b)?);
            if a > b {
                return Err("port range start is above its end".to_string());
            }
            (a, b)
        }
        None => {
            let p = parse_port_num(tok)?;
            (p, p)
        }
    };
    Ok(PortSet {
        ranges: RangeSet::range(lo, hi),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupErrorKind;

    fn lit(s: &str) -> PortSet {
        PortSet::parse_literal(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn forms() {
        assert!(lit("any").is_any());
        let p = lit("80");
        assert!(p.contains(80) && !p.contains(81) && p.single() == Some(80));
        let p = lit("[80,443]");
        assert!(p.contains(443) && !p.contains(444) && p.single().is_none());
        let p = lit("1024:");
        assert!(p.contains(1024) && p.contains(65535) && !p.contains(1023));
        let p = lit(":1023");
        assert!(p.contains(0) && p.contains(1023) && !p.contains(1024));
        let p = lit("1:1024");
        assert!(!p.contains(0) && p.contains(1) && p.contains(1024) && !p.contains(1025));
        let p = lit("!80");
        assert!(!p.contains(80) && p.contains(79) && p.contains(81));
        let p = lit("![80,443]");
        assert!(!p.contains(443) && p.contains(8080));
        let p = lit("[1:1024,!80, ![443]]");
        assert!(p.contains(22) && !p.contains(80) && !p.contains(443) && !p.contains(2000));
        let p = lit("[[80,81],[8000:8080]]");
        assert_eq!(p.ranges(), &[(80, 81), (8000, 8080)]);
        assert_eq!(lit("0").ranges(), &[(0, 0)]);
        assert_eq!(lit("65535").ranges(), &[(65535, 65535)]);
    }

    #[test]
    fn errors() {
        let e = PortSet::parse_literal("[80,65536]").unwrap_err();
        assert_eq!((e.column, e.token.as_str()), (5, "65536"));
        assert!(e.to_string().contains("65535"), "{e}");
        for bad in [
            "",
            "http",
            "443:80",
            ":",
            "-1",
            "80:90:100",
            "!any",
            "[80,!80]",
            "[80",
        ] {
            assert!(PortSet::parse_literal(bad).is_err(), "{bad}");
        }
        let e = PortSet::parse_literal("$HTTP_PORTS").unwrap_err();
        assert!(matches!(e.kind, GroupErrorKind::UnknownVar(ref n) if n == "HTTP_PORTS"));
    }
}
