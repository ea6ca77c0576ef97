//! Zones by CIDR and the one answer to "which zone is this address in".

use ipnet::IpNet;
use std::net::IpAddr;

/// The zones of the configuration (`zones:`, `--set zones.<name>=...`), in the order
/// listed, and the lookup every user of zones shares: the most specific prefix wins;
/// between equally specific prefixes of two zones, the zone listed first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneMap {
    zones: Vec<(String, Vec<IpNet>)>,
    /// Every zone's prefixes with the zone's index, longest prefix first (stable: in
    /// listing order within a length).
    by_prefix: Vec<(IpNet, usize)>,
}

impl ZoneMap {
    /// From (name, CIDRs) pairs in listing order.
    pub fn new(zones: &[(String, Vec<IpNet>)]) -> Self {
        let mut by_prefix: Vec<(IpNet, usize)> = zones
            .iter()
            .enumerate()
            .flat_map(|(i, (_, nets))| nets.iter().map(move |n| (*n, i)))
            .collect();
        by_prefix.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        ZoneMap {
            zones: zones.to_vec(),
            by_prefix,
        }
    }

    /// Gives zone `name` these CIDRs: a zone already listed keeps its place (so ties
    /// still go to the zone listed first), a new one is listed last.
    pub fn set(&mut self, name: &str, nets: Vec<IpNet>) {
        let mut zones = std::mem::take(&mut self.zones);
        match zones.iter_mut().find(|(n, _)| n == name) {
            Some(z) => z.1 = nets,
            None => zones.push((name.to_string(), nets)),
        }
        *self = ZoneMap::new(&zones);
    }

    /// The zone of an address, None when it is in no zone.
    pub fn zone_of(&self, ip: IpAddr) -> Option<&str> {
        self.by_prefix
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, i)| self.zones[*i].0.as_str())
    }

    /// The zone names, in listing order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.zones.iter().map(|(n, _)| n.as_str())
    }

    /// The zones as listed: (name, CIDRs).
    pub fn zones(&self) -> &[(String, Vec<IpNet>)] {
        &self.zones
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_prefix_wins_then_the_first_listed() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let m = ZoneMap::new(&[
            ("internet".into(), vec![net("0.0.0.0/0")]),
            ("lgwan".into(), vec![net("10.20.0.0/16")]),
            ("a".into(), vec![net("192.0.2.0/24")]),
            ("b".into(), vec![net("192.0.2.0/24")]),
        ]);
        let zone = |ip: &str| m.zone_of(ip.parse().unwrap());
        assert_eq!(zone("10.20.1.1"), Some("lgwan"));
        assert_eq!(zone("8.8.8.8"), Some("internet"));
        assert_eq!(zone("192.0.2.9"), Some("a"));
        assert_eq!(zone("2001:db8::1"), None);
    }

    #[test]
    fn set_replaces_a_zone_in_place_and_appends_a_new_one() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let mut m = ZoneMap::new(&[
            ("a".into(), vec![net("10.0.0.0/8")]),
            ("b".into(), vec![net("192.0.2.0/24")]),
        ]);
        // Same prefix as b, but a stays listed first: a wins the tie.
        m.set("a", vec![net("192.0.2.0/24")]);
        m.set("c", vec![net("198.51.100.0/24")]);
        assert_eq!(m.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(m.zone_of("192.0.2.1".parse().unwrap()), Some("a"));
        assert_eq!(m.zone_of("10.1.1.1".parse().unwrap()), None);
        assert_eq!(m.zone_of("198.51.100.7".parse().unwrap()), Some("c"));
    }
}
