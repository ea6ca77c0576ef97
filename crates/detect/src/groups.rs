//! Signature groups: the packet rules that can match a packet, chosen by
//! protocol class, flow direction and the server's port before any byte is
//! scanned (Suricata's signature group heads).
//!
//! Most ET rules name a direction (`flow:to_server`) and many a server port
//! (`-> $EXTERNAL_NET 22`, `$HTTP_PORTS -> ...`). One prefilter over every
//! rule scanned a server's HTTP response against the patterns of client
//! requests, and checked the flags-only scan rules of port 22, 1433, 3389,
//! ... on every TCP packet. Here each (class, direction, server port) has
//! its own prefilter and its own list of rules without a fast pattern,
//! holding only rules whose direction and port sets admit such a packet.
//! Every candidate is still fully verified (the detector's `eval`), so a group
//! may hold rules that cannot match, never miss one that can.

use crate::prefilter::{Catalogue, Filter, RulePattern};
use crate::rule::{class_of, proto_in_class, FastPattern, Rule, CLASSES, CLASS_TCP, CLASS_UDP};
use hashbrown::HashMap;
use zonewatch_rules::{HeaderTest, UintCmp};

/// Port groups per (class, direction) at most; rarer port sets share one.
/// (ET Open needs 126.) Tests use a low cap so that merging is exercised.
const MAX_PORT_GROUPS: usize = if cfg!(test) { 32 } else { 1024 };

/// Whether a rule can match packets of a protocol class: its protocol, and
/// an `ip_proto:N` test, which Suricata also uses to place a rule (ET's
/// `alert ip ... (ip_proto:41; ...)` is no candidate for TCP packets).
fn rule_in_class(r: &Rule, class: usize) -> bool {
    proto_in_class(r.proto, class)
        && r.tests.iter().all(|t| match t {
            HeaderTest::IpProto(UintCmp::Eq(n)) => {
                u8::try_from(*n).is_ok_and(|n| class_of(n) == class)
            }
            _ => true,
        })
}

/// The rules one packet is checked against.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Its index in [`Groups`] (the key of its rule profile).
    pub(crate) id: u32,
    /// Scanning tables of the fast patterns of the group's rules (patterns
    /// in [`Groups::catalogue`]).
    pub(crate) filter: Filter,
    /// Bit per engine rule index: the rule is in the group. A pattern's
    /// rules in the catalogue are those of every group; a hit marks only
    /// this group's.
    rules: Vec<u64>,
    /// The group's rules without a fast pattern, except IP-only ones.
    pub(crate) always: Vec<u32>,
    /// The group's IP-only rules without a fast pattern (reputation lists
    /// too wide for the address index): checked only on the first packet
    /// of each flow direction, as Suricata does, so they are candidates
    /// only there.
    pub(crate) iponly: Vec<u32>,
}

impl Group {
    /// Whether the rule is in the group.
    #[inline]
    pub(crate) fn has_rule(&self, rule: u32) -> bool {
        self.rules
            .get(rule as usize / 64)
            .is_some_and(|w| w & (1 << (rule % 64)) != 0)
    }
}

/// One packet rule as grouping sees it.
pub(crate) struct Member {
    /// Engine index.
    pub(crate) rule: u32,
    /// Its fast pattern; `None`: checked on every packet of its groups.
    pub(crate) fast: Option<FastPattern>,
}

/// All groups and the map from packets to them.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    /// Every packet rule's fast pattern, stored once for all groups.
    pub(crate) catalogue: Catalogue,
    /// Pattern id of each member's fast pattern.
    member_pattern: Vec<Option<u32>>,
    rule_words: usize,
    groups: Vec<Group>,
    /// Packets without flow direction or ports, per protocol class: every
    /// rule of the class.
    fallback: [u32; CLASSES],
    /// TCP (0) and UDP (1) packets of a flow: [class][to_server 0 /
    /// to_client 1][server port] → group.
    by_port: [[Vec<u16>; 2]; 2],
}

/// Direction of a packet within its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToServer,
    ToClient,
}

impl Groups {
    /// Groups the members. `rules` are the engine's rules, indexed by
    /// `Member::rule`.
    pub(crate) fn build(rules: &[Rule], members: &[Member]) -> Groups {
        let items: Vec<RulePattern> = members
            .iter()
            .map(|m| match &m.fast {
                Some(fp) => (fp.bytes.clone(), fp.nocase, m.rule),
                None => (Vec::new(), false, m.rule),
            })
            .collect();
        let (catalogue, member_pattern) = Catalogue::build(&items);
        let mut g = Groups {
            catalogue,
            member_pattern,
            rule_words: rules.len().div_ceil(64),
            ..Default::default()
        };
        for class in 0..CLASSES {
            let ids: Vec<usize> = (0..members.len())
                .filter(|&m| rule_in_class(&rules[members[m].rule as usize], class))
                .collect();
            g.fallback[class] = g.push(rules, members, &ids);
        }
        for (ci, class) in [CLASS_TCP, CLASS_UDP].into_iter().enumerate() {
            for (di, dir) in [Dir::ToServer, Dir::ToClient].into_iter().enumerate() {
                g.by_port[ci][di] = g.build_ports(rules, members, class, dir);
            }
        }
        g
    }

    fn push(&mut self, rules_all: &[Rule], members: &[Member], ids: &[usize]) -> u32 {
        let mut patterns = Vec::new();
        let mut always = Vec::new();
        let mut iponly = Vec::new();
        let mut rules = vec![0u64; self.rule_words];
        for &m in ids {
            let r = members[m].rule;
            rules[r as usize / 64] |= 1 << (r % 64);
            match self.member_pattern[m] {
                Some(id) => patterns.push(id),
                None if rules_all[r as usize].iponly => iponly.push(r),
                None => always.push(r),
            }
        }
        self.groups.push(Group {
            id: self.groups.len() as u32,
            filter: Filter::build(&self.catalogue, patterns),
            rules,
            always,
            iponly,
        });
        (self.groups.len() - 1) as u32
    }

    /// The port → group map of one class and direction. Ports whose set of
    /// port-specific rules is the same share a group.
    fn build_ports(
        &mut self,
        rules: &[Rule],
        members: &[Member],
        class: usize,
        dir: Dir,
    ) -> Vec<u16> {
        let (base, ranges) = port_ranges(rules, members, class, dir);
        let mut boundaries: Vec<Boundary> = Vec::with_capacity(ranges.len() * 2);
        for r in &ranges {
            boundaries.push(Boundary {
                port: r.lo as u32,
                start: true,
                member: r.member,
            });
            boundaries.push(Boundary {
                port: r.hi as u32 + 1,
                start: false,
                member: r.member,
            });
        }
        boundaries.sort_unstable();
        let segments = segments(&boundaries, members.len());
        let sets = DistinctSets::of(&segments);
        // Second sweep: the members of each kept set get their own group.
        let mut group_of: Vec<Option<u32>> = vec![None; sets.sizes.len()];
        let mut active = ActiveSet::new(members.len());
        let mut b = 0;
        for seg in &segments {
            while b < boundaries.len() && boundaries[b].port == seg.lo {
                active.apply(boundaries[b]);
                b += 1;
            }
            let d = sets.index[&seg.hash];
            if sets.kept[d] && group_of[d].is_none() {
                let mut ids = base.clone();
                ids.extend_from_slice(&active.list);
                ids.sort_unstable();
                group_of[d] = Some(self.push(rules, members, &ids));
            }
        }
        let merged: Vec<(u32, u32)> = segments
            .iter()
            .filter(|s| !sets.kept[sets.index[&s.hash]])
            .map(|s| (s.lo, s.hi))
            .collect();
        // The merged group: every member with a range meeting a merged
        // segment (binary search per range, not a walk of each segment's
        // active set).
        let rest_group = (!merged.is_empty()).then(|| {
            let mut ids = base.clone();
            for r in &ranges {
                let i = merged.partition_point(|&(_, hi)| hi <= r.lo as u32);
                if merged.get(i).is_some_and(|&(lo, _)| lo <= r.hi as u32) {
                    ids.push(r.member);
                }
            }
            ids.sort_unstable();
            ids.dedup();
            self.push(rules, members, &ids)
        });
        let mut map = vec![0u16; PORTS as usize];
        for seg in &segments {
            let gid = group_of[sets.index[&seg.hash]]
                .or(rest_group)
                .expect("every segment has a group");
            let gid = u16::try_from(gid).expect("fewer than 65536 groups");
            map[seg.lo as usize..seg.hi as usize].fill(gid);
        }
        map
    }

    /// The group of a packet: its protocol class, its direction in its flow
    /// (`Some(true)`: to the server) and its (source, destination) ports.
    #[inline]
    pub(crate) fn select(
        &self,
        class: usize,
        to_server: Option<bool>,
        ports: (Option<u16>, Option<u16>),
    ) -> &Group {
        let ci = match class {
            CLASS_TCP => 0,
            CLASS_UDP => 1,
            _ => return &self.groups[self.fallback[class] as usize],
        };
        let (Some(to_server), (Some(sp), Some(dp))) = (to_server, ports) else {
            return &self.groups[self.fallback[class] as usize];
        };
        let (di, port) = if to_server { (0, dp) } else { (1, sp) };
        &self.groups[self.by_port[ci][di][port as usize] as usize]
    }

    /// Distinct fast patterns of the largest group.
    pub(crate) fn largest_prefilter(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.filter.len())
            .max()
            .unwrap_or(0)
    }

    /// Number of groups.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// What selects each group, by group index, for a person reading a
    /// rule profile: `tcp to_server port 80,8080-8088` (at most a few port
    /// ranges, then a count), or `tcp (no flow or ports)` for a class's
    /// fallback group.
    pub(crate) fn labels(&self) -> Vec<String> {
        const SHOWN: usize = 4;
        let mut ranges: Vec<Vec<(usize, usize, u32, u32)>> = vec![Vec::new(); self.groups.len()];
        for (ci, class) in [CLASS_TCP, CLASS_UDP].into_iter().enumerate() {
            for di in 0..2 {
                let map = &self.by_port[ci][di];
                let mut lo = 0;
                for port in 1..=map.len() {
                    if port == map.len() || map[port] != map[lo] {
                        let g = map[lo] as usize;
                        ranges[g].push((class, di, lo as u32, port as u32 - 1));
                        lo = port;
                    }
                }
            }
        }
        (0..self.groups.len())
            .map(|g| {
                if let Some(class) = self.fallback.iter().position(|&f| f as usize == g) {
                    return format!("{} (no flow or ports)", CLASS_NAMES[class]);
                }
                let Some(&(class, di, _, _)) = ranges[g].first() else {
                    return format!("group {g}");
                };
                let dir = if di == 0 { "to_server" } else { "to_client" };
                let mut shown: Vec<String> = ranges[g]
                    .iter()
                    .take(SHOWN)
                    .map(|&(_, _, lo, hi)| {
                        if lo == hi {
                            lo.to_string()
                        } else {
                            format!("{lo}-{hi}")
                        }
                    })
                    .collect();
                if ranges[g].len() > SHOWN {
                    shown.push(format!("+{} ranges", ranges[g].len() - SHOWN));
                }
                format!("{} {dir} port {}", CLASS_NAMES[class], shown.join(","))
            })
            .collect()
    }
}

/// Names of the protocol classes, by class index.
const CLASS_NAMES: [&str; CLASSES] = ["tcp", "udp", "icmp", "other"];

/// Number of TCP/UDP ports.
const PORTS: u32 = 65536;

/// A port range (inclusive) of one port-specific member.
struct PortRange {
    lo: u16,
    hi: u16,
    member: usize,
}

/// Where a member's port range starts or ends (`port` is one past the
/// range's end). Sorted by port, ends before starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Boundary {
    port: u32,
    start: bool,
    member: usize,
}

/// Ports `lo..hi` over which the set of active members is constant: its
/// Zobrist hash and size.
struct Segment {
    lo: u32,
    hi: u32,
    hash: u64,
    size: usize,
}

/// The members of one class and direction whose server port is any
/// (`base`), and the port ranges of the others.
fn port_ranges(
    rules: &[Rule],
    members: &[Member],
    class: usize,
    dir: Dir,
) -> (Vec<usize>, Vec<PortRange>) {
    let mut base: Vec<usize> = Vec::new();
    let mut ranges: Vec<PortRange> = Vec::new();
    for (m, member) in members.iter().enumerate() {
        let r = &rules[member.rule as usize];
        if !rule_in_class(r, class) {
            continue;
        }
        let wrong_dir = match dir {
            Dir::ToServer => r.flow.to_client,
            Dir::ToClient => r.flow.to_server,
        };
        if wrong_dir {
            continue;
        }
        // The server's port is the destination port of a packet to the
        // server and the source port of one to the client; `<>` rules
        // match either way round.
        let (own, other) = match dir {
            Dir::ToServer => (&r.dport, &r.sport),
            Dir::ToClient => (&r.sport, &r.dport),
        };
        if own.is_any() || r.bidir && other.is_any() {
            base.push(m);
            continue;
        }
        let sides = if r.bidir {
            &[own, other][..]
        } else {
            &[own][..]
        };
        for side in sides {
            for &(lo, hi) in side.ranges() {
                ranges.push(PortRange { lo, hi, member: m });
            }
        }
    }
    (base, ranges)
}

/// A random key per member for the Zobrist hash of a set (SplitMix64).
fn member_key(m: usize) -> u64 {
    let mut z = (m as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sweeps the port space: between two consecutive boundaries the set of
/// active members is constant. Sets are told apart by a Zobrist hash (XOR
/// of a random key per member) kept up to date at each boundary, so a
/// sweep costs O(boundaries) whatever the sets' sizes; only the sets that
/// get their own group are materialised later. (A hostile rule file of
/// 20,000 negated port lists would otherwise copy a 20,000-member set at
/// each of 80,000 boundaries.)
fn segments(boundaries: &[Boundary], members: usize) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut count = vec![0u32; members];
    let (mut hash, mut size) = (0u64, 0usize);
    let mut b = 0;
    let mut lo = 0u32;
    while lo < PORTS {
        while b < boundaries.len() && boundaries[b].port == lo {
            let Boundary { start, member, .. } = boundaries[b];
            if start {
                count[member] += 1;
                if count[member] == 1 {
                    hash ^= member_key(member);
                    size += 1;
                }
            } else {
                count[member] -= 1;
                if count[member] == 0 {
                    hash ^= member_key(member);
                    size -= 1;
                }
            }
            b += 1;
        }
        let hi = boundaries.get(b).map_or(PORTS, |x| x.port.min(PORTS));
        segments.push(Segment { lo, hi, hash, size });
        lo = hi;
    }
    segments
}

/// The distinct member sets of the segments, and which get their own group.
struct DistinctSets {
    /// Set hash → index.
    index: HashMap<u64, usize>,
    /// Size of each set.
    sizes: Vec<usize>,
    /// The set gets its own group.
    kept: Vec<bool>,
}

impl DistinctSets {
    /// Past the cap, the sets with the fewest rules are merged into one
    /// group (more candidates there, never fewer). The ports without
    /// specific rules, if any, always keep their own group.
    fn of(segments: &[Segment]) -> DistinctSets {
        let mut sizes: Vec<usize> = Vec::new();
        let mut index: HashMap<u64, usize> = HashMap::new();
        for s in segments {
            index.entry(s.hash).or_insert_with(|| {
                sizes.push(s.size);
                sizes.len() - 1
            });
        }
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.sort_by_key(|&d| (sizes[d] != 0, std::cmp::Reverse(sizes[d]), d));
        let keep = if sizes.len() > MAX_PORT_GROUPS {
            MAX_PORT_GROUPS - 1
        } else {
            sizes.len()
        };
        let mut kept = vec![false; sizes.len()];
        for &d in &order[..keep] {
            kept[d] = true;
        }
        DistinctSets { index, sizes, kept }
    }
}

/// The members active at the sweep's position, as a list (swap-remove,
/// with each member's slot) plus a count of its open ranges.
struct ActiveSet {
    count: Vec<u32>,
    slot: Vec<usize>,
    list: Vec<usize>,
}

impl ActiveSet {
    fn new(members: usize) -> ActiveSet {
        ActiveSet {
            count: vec![0; members],
            slot: vec![usize::MAX; members],
            list: Vec::new(),
        }
    }

    fn apply(&mut self, b: Boundary) {
        let m = b.member;
        if b.start {
            self.count[m] += 1;
            if self.count[m] == 1 {
                self.slot[m] = self.list.len();
                self.list.push(m);
            }
        } else {
            self.count[m] -= 1;
            if self.count[m] == 0 {
                let i = self.slot[m];
                self.list.swap_remove(i);
                if let Some(&moved) = self.list.get(i) {
                    self.slot[moved] = i;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rule::class_of;
    use crate::DetectConfig;
    use crate::Engine;

    /// Whatever the packet, its group holds every rule whose protocol,
    /// direction and ports admit it, on random rules with single ports,
    /// ranges, lists, negations and `<>`, and more distinct port sets than
    /// get their own group (so merged groups are checked too).
    #[test]
    fn a_packets_group_holds_every_rule_that_could_match_it() {
        let mut next = crate::test_rng(0x9e37_79b9_7f4a_7c15u64);
        let ports = [22u16, 53, 80, 443, 1024, 8080, 65535];
        let port_expr = |next: &mut dyn FnMut(u64) -> u64| -> String {
            match next(6) {
                0 | 1 => "any".to_string(),
                2 => ports[next(ports.len() as u64) as usize].to_string(),
                3 => format!("{}:{}", 1000 + next(100), 2000 + next(100)),
                4 => format!(
                    "[{},{}]",
                    100 + next(200),
                    ports[next(ports.len() as u64) as usize]
                ),
                _ => format!("!{}", ports[next(ports.len() as u64) as usize]),
            }
        };
        let mut text = String::new();
        for sid in 1..=400u64 {
            let proto = ["tcp", "udp", "ip"][next(3) as usize];
            let sp = port_expr(&mut next);
            let mut dp = port_expr(&mut next);
            if sid <= 100 {
                // Distinct single ports: more port sets than groups.
                dp = (3000 + sid).to_string();
            }
            let (proto, sp, dp) = if proto == "ip" {
                (proto, "any".to_string(), "any".to_string())
            } else {
                (proto, sp, dp)
            };
            let dir = if next(5) == 0 { "<>" } else { "->" };
            let flow = ["", "flow:to_server; ", "flow:to_client; "][next(3) as usize];
            let content = if next(3) == 0 {
                String::new()
            } else {
                format!("content:\"pat{}\"; ", next(50))
            };
            text.push_str(&format!(
                "alert {proto} any {sp} {dir} any {dp} ({flow}{content}sid:{sid};)\n"
            ));
        }
        let engine = Engine::from_texts(&[("t.rules", &text)], &DetectConfig::default());
        assert_eq!(engine.report.errors.len(), 0, "{:?}", engine.report.errors);
        assert!(engine.groups.len() > 4 * 2);
        let mut probes: Vec<u16> = ports.to_vec();
        probes.extend([3001, 3050, 3100, 1500, 150, 7]);
        for proto in [6u8, 17] {
            let class = class_of(proto);
            for to_server in [true, false] {
                for &sp in &probes {
                    for &dp in &probes {
                        let g = engine
                            .groups
                            .select(class, Some(to_server), (Some(sp), Some(dp)));
                        for (i, r) in engine.rules.iter().enumerate() {
                            let proto_ok = crate::rule::proto_in_class(r.proto, class);
                            let dir_ok =
                                !(r.flow.to_server && !to_server || r.flow.to_client && to_server);
                            let ports_ok = r.sport.contains(sp) && r.dport.contains(dp)
                                || r.bidir && r.sport.contains(dp) && r.dport.contains(sp);
                            if proto_ok && dir_ok && ports_ok {
                                assert!(
                                    g.has_rule(i as u32),
                                    "sid {} missing for proto {proto} to_server {to_server} {sp} -> {dp}",
                                    r.meta.sid
                                );
                            }
                        }
                    }
                }
            }
        }
        // Grouping must also leave rules out: port 22 to the server does
        // not carry the rules of ports 3001..3100 alone.
        let g = engine.groups.select(0, Some(true), (Some(40000), Some(22)));
        let held = (0..engine.rules.len() as u32)
            .filter(|&r| g.has_rule(r))
            .count();
        assert!(
            held < engine.rules.len() / 2,
            "{held} of {}",
            engine.rules.len()
        );
        // The filter holds exactly the fast patterns of the group's rules.
        let cat = &engine.groups.catalogue;
        for id in 0..cat.len() as u32 {
            assert_eq!(
                g.filter.has(id),
                cat.rules(id).iter().any(|&r| g.has_rule(r)),
                "pattern {id}"
            );
        }
    }

    /// Thousands of rules with negated port lists (each active almost
    /// everywhere, each adding boundaries): grouping stays linear in the
    /// boundaries and still gives every packet all rules that could match.
    #[test]
    fn many_negated_port_lists_group_correctly() {
        let mut text = String::new();
        for sid in 1..=5000u32 {
            let (a, b) = (1 + sid * 7 % 60000, 2 + sid * 13 % 60000);
            text.push_str(&format!(
                "alert tcp any any -> any ![{a},{b}] (flow:to_server; content:\"p{sid}\"; sid:{sid};)\n"
            ));
        }
        let engine = Engine::from_texts(&[("t.rules", &text)], &DetectConfig::default());
        assert_eq!(engine.report.loaded, 5000);
        for port in [1u16, 8, 15, 80, 443, 30000, 65535] {
            let g = engine
                .groups
                .select(0, Some(true), (Some(40000), Some(port)));
            for (i, r) in engine.rules.iter().enumerate() {
                if r.dport.contains(port) {
                    assert!(g.has_rule(i as u32), "sid {} port {port}", r.meta.sid);
                }
            }
        }
    }

    /// `ip_proto:N` places a rule in N's protocol class only.
    #[test]
    fn ip_proto_rules_are_only_in_their_protocols_class() {
        let text = "\
alert ip any any -> any any (msg:\"6in4\"; ip_proto:41; sid:1;)
alert ip any any -> any any (msg:\"tcp by number\"; ip_proto:6; sid:2;)
alert ip any any -> any any (msg:\"not udp\"; ip_proto:!17; sid:3;)
";
        let engine = Engine::from_texts(&[("t.rules", text)], &DetectConfig::default());
        let held = |g: &super::Group| -> Vec<u64> {
            (0..engine.rules.len() as u32)
                .filter(|&r| g.has_rule(r))
                .map(|r| engine.rules[r as usize].meta.sid)
                .collect()
        };
        let tcp = engine
            .groups
            .select(class_of(6), Some(true), (Some(40000), Some(80)));
        assert_eq!(held(tcp), vec![2, 3]);
        let udp = engine
            .groups
            .select(class_of(17), Some(true), (Some(40000), Some(53)));
        assert_eq!(held(udp), vec![3]);
        let other = engine.groups.select(class_of(41), None, (None, None));
        assert_eq!(held(other), vec![1, 3]);
    }
}
