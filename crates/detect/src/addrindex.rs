//! Prefilter by address for rules without a fast pattern: IP reputation
//! lists (`alert ip [1.2.3.4,...] any -> $HOME_NET any`) are hundreds of
//! rules that would otherwise be checked on every packet. Each indexed rule
//! sits under the elementary address segments its narrow side covers; a
//! packet looks up its two addresses.

use std::net::IpAddr;
use zonewatch_ruleconf::AddressSet;

/// Address sets covering at most this many IPv4 addresses (or the IPv6
/// equivalent share) are narrow enough to index.
const NARROW_V4: u64 = 1 << 20;
const NARROW_V6: u128 = 1 << 100;

/// Whether a set is narrow enough to index, and then its ranges.
pub(crate) fn narrow(set: &AddressSet) -> bool {
    if set.is_any() || set.is_empty() {
        return false;
    }
    let v4: u64 = set
        .v4_ranges()
        .map(|(a, b)| u32::from(b) as u64 - u32::from(a) as u64 + 1)
        .sum();
    let v6: u128 = set
        .v6_ranges()
        .map(|(a, b)| (u128::from(b) - u128::from(a)).saturating_add(1))
        .fold(0u128, |acc, x| acc.saturating_add(x));
    v4 <= NARROW_V4 && v6 <= NARROW_V6
}

#[derive(Default)]
struct Segments<T: Ord + Copy> {
    /// Segment starts, ascending; segment i covers [starts[i], starts[i+1]).
    starts: Vec<T>,
    rules: Vec<Vec<u32>>,
}

impl<T: Ord + Copy> Segments<T> {
    fn build(mut ranges: Vec<(T, T, u32)>, next: impl Fn(T) -> Option<T>) -> Self {
        let mut bounds: Vec<T> = Vec::with_capacity(ranges.len() * 2);
        for &(a, b, _) in &ranges {
            bounds.push(a);
            if let Some(n) = next(b) {
                bounds.push(n);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        let mut rules = vec![Vec::new(); bounds.len()];
        ranges.sort_unstable_by_key(|r| (r.0, r.2));
        for (a, b, r) in ranges {
            let mut i = bounds.binary_search(&a).expect("start is a bound");
            while i < bounds.len() && bounds[i] <= b {
                rules[i].push(r);
                i += 1;
            }
        }
        for v in &mut rules {
            v.sort_unstable();
            v.dedup();
        }
        Segments {
            starts: bounds,
            rules,
        }
    }

    fn get(&self, x: T) -> &[u32] {
        match self.starts.binary_search(&x) {
            Ok(i) => &self.rules[i],
            Err(0) => &[],
            Err(i) => &self.rules[i - 1],
        }
    }
}

/// Rules by the addresses of their narrow side.
#[derive(Default)]
pub(crate) struct AddrIndex {
    v4: Segments<u32>,
    v6: Segments<u128>,
}

impl AddrIndex {
    /// Indexes each (rule, set).
    pub(crate) fn build(items: &[(u32, &AddressSet)]) -> AddrIndex {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for &(r, set) in items {
            for (a, b) in set.v4_ranges() {
                v4.push((u32::from(a), u32::from(b), r));
            }
            for (a, b) in set.v6_ranges() {
                v6.push((u128::from(a), u128::from(b), r));
            }
        }
        AddrIndex {
            v4: Segments::build(v4, |b: u32| b.checked_add(1)),
            v6: Segments::build(v6, |b: u128| b.checked_add(1)),
        }
    }

    /// Rules whose indexed set may contain `ip`.
    pub(crate) fn get(&self, ip: IpAddr) -> &[u32] {
        match ip {
            IpAddr::V4(a) => self.v4.get(u32::from(a)),
            IpAddr::V6(a) => self.v6.get(u128::from(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rules_by_address_only() {
        let a = AddressSet::parse_literal("[1.2.3.4,10.0.0.0/24]").unwrap();
        let b = AddressSet::parse_literal("[10.0.0.128/25,2001:db8::1]").unwrap();
        assert!(narrow(&a) && narrow(&b));
        assert!(!narrow(&AddressSet::parse_literal("!1.2.3.4").unwrap()));
        let idx = AddrIndex::build(&[(0, &a), (1, &b)]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(idx.get(ip("1.2.3.4")), &[0]);
        assert_eq!(idx.get(ip("1.2.3.5")), &[] as &[u32]);
        assert_eq!(idx.get(ip("10.0.0.1")), &[0]);
        assert_eq!(idx.get(ip("10.0.0.200")), &[0, 1]);
        assert_eq!(idx.get(ip("10.0.1.0")), &[] as &[u32]);
        assert_eq!(idx.get(ip("2001:db8::1")), &[1]);
    }
}
