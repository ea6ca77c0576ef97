//! The zone-separation policy: zones by CIDR and a table of which zone may reach which, on
//! which ports, through which relay hosts. Checked on each flow's first packet.
//!
//! Rules are tried in order; the first rule whose `from`/`to` zones, `ports` and `via` hosts
//! all match the flow decides (`allow` or `deny`). A flow no rule matches is a violation when
//! some rule names its zone pair (the pair is *governed*: e.g. LGWAN → internet is allowed
//! only on tcp/443 through the relays), and otherwise follows `default` (`allow` unless set).
//! Flows within one zone are not checked. An address in no zone is in zone `unknown`, which
//! only `any` matches.
//!
//! Example (in the main config file, beside `zones:`):
//!
//! ```yaml
//! zones:
//!   mynumber: [10.10.0.0/16]
//!   lgwan: [10.20.0.0/16]
//!   internet: [10.0.0.0/16]
//!   dmz: [192.0.2.0/24]
//!   external: [0.0.0.0/0, "::/0"]
//! zone-policy:
//!   default: allow
//!   rules:
//!     - name: mynumber-isolated
//!       from: mynumber
//!       to: any
//!       action: deny
//!     - name: nothing-into-mynumber
//!       from: any
//!       to: mynumber
//!       action: deny
//!     - name: lgwan-web-via-relay
//!       from: lgwan
//!       to: [internet, external]
//!       ports: [tcp/80, tcp/443]
//!       via: [10.20.0.10, 10.20.0.11]
//!       action: allow
//!     - name: lgwan-mail-relay
//!       from: lgwan
//!       to: dmz
//!       ports: [tcp/25]
//!       via: [192.0.2.25]
//!       action: allow
//! ```

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::json;
use zonewatch_types::{ipproto, proto_name};

use crate::alert::{AnomalyAlert, Category};
use crate::common::{secs, Common, Detector, Inputs};
use crate::obs::PacketObs;
use crate::table::{Table, TableStats};
use crate::yaml::{Errors, Kind, Node, Section};
use zonewatch_config::ZoneMap;

/// A deny rule matched.
pub const SID_DENY: u32 = 9_000_700;
/// A governed zone pair, and no rule allows this flow (wrong port or not via a relay).
pub const SID_NOT_ALLOWED: u32 = 9_000_701;
/// The default action is deny and no rule names the pair.
pub const SID_DEFAULT_DENY: u32 = 9_000_702;

/// One port selector: protocol (None = any) and an inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// IP protocol, or None for any.
    pub proto: Option<u8>,
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

impl PortSpec {
    /// Parses `tcp/443`, `udp/53`, `tcp/8000-8080`, `443` (any protocol), `icmp`.
    pub fn parse(s: &str) -> Option<PortSpec> {
        let s = s.trim().to_ascii_lowercase();
        let (proto, range) = match s.split_once('/') {
            Some((p, r)) => (Some(p.to_string()), Some(r.to_string())),
            None if s.chars().all(|c| c.is_ascii_digit() || c == '-') => (None, Some(s)),
            None => (Some(s), None),
        };
        let proto = match proto.as_deref() {
            None => None,
            Some("tcp") => Some(ipproto::TCP),
            Some("udp") => Some(ipproto::UDP),
            Some("sctp") => Some(ipproto::SCTP),
            Some("icmp") => Some(ipproto::ICMP),
            Some("icmp6" | "ipv6-icmp") => Some(ipproto::ICMPV6),
            Some(n) => Some(n.parse::<u8>().ok()?),
        };
        let (lo, hi) = match range {
            None => (0, u16::MAX),
            Some(r) => match r.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let p = r.parse().ok()?;
                    (p, p)
                }
            },
        };
        (lo <= hi).then_some(PortSpec { proto, lo, hi })
    }
    fn matches(&self, proto: u8, port: u16) -> bool {
        self.proto.is_none_or(|p| p == proto) && port >= self.lo && port <= self.hi
    }
}

/// One row of the policy table.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    /// Name written in alerts.
    pub name: String,
    /// Source zones (`any` matches every zone).
    pub from: Vec<String>,
    /// Destination zones.
    pub to: Vec<String>,
    /// Ports (empty: any).
    pub ports: Vec<PortSpec>,
    /// Relay hosts: the flow's source or destination must be one of them (empty: any).
    pub via: Vec<IpNet>,
    /// Allow (true) or deny.
    pub allow: bool,
    /// Severity of violations of this rule (default: the detector's).
    pub severity: Option<u8>,
    /// Line in the config file (0 when built in code).
    pub line: usize,
}

impl PolicyRule {
    fn zones_match(&self, from: &str, to: &str) -> bool {
        let m = |list: &[String], z: &str| list.iter().any(|x| x == "any" || x == z);
        m(&self.from, from) && m(&self.to, to)
    }
    fn matches(&self, from: &str, to: &str, o: &PacketObs) -> bool {
        self.zones_match(from, to)
            && (self.ports.is_empty() || self.ports.iter().any(|p| p.matches(o.proto, o.dport)))
            && (self.via.is_empty()
                || self
                    .via
                    .iter()
                    .any(|n| n.contains(&o.src) || n.contains(&o.dst)))
    }
    fn describe(&self) -> String {
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|p| {
                let proto = p.proto.map(|x| proto_name(x).to_lowercase());
                let range = if p.lo == p.hi {
                    p.lo.to_string()
                } else {
                    format!("{}-{}", p.lo, p.hi)
                };
                match proto {
                    Some(pr) => format!("{pr}/{range}"),
                    None => range,
                }
            })
            .collect();
        let via: Vec<String> = self.via.iter().map(|n| n.to_string()).collect();
        format!(
            "{} {} -> {}{}{}",
            if self.allow { "allow" } else { "deny" },
            self.from.join(","),
            self.to.join(","),
            if ports.is_empty() {
                String::new()
            } else {
                format!(" on {}", ports.join(","))
            },
            if via.is_empty() {
                String::new()
            } else {
                format!(" via {}", via.join(","))
            }
        )
    }
}

/// A flow the policy does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation<'a> {
    /// [`SID_DENY`], [`SID_NOT_ALLOWED`] or [`SID_DEFAULT_DENY`].
    pub sid: u32,
    /// Source zone.
    pub from: &'a str,
    /// Destination zone.
    pub to: &'a str,
    /// The rule that denied the flow or governs the zone pair (its index), None for the
    /// default.
    pub rule: Option<usize>,
}

/// Zones and the policy table.
#[derive(Debug, Clone, PartialEq)]
pub struct ZonePolicy {
    zones: ZoneMap,
    rules: Vec<PolicyRule>,
    default_allow: bool,
}

impl ZonePolicy {
    /// From the configuration's zones and rules.
    pub fn new(zones: ZoneMap, rules: Vec<PolicyRule>, default_allow: bool) -> Self {
        ZonePolicy {
            zones,
            rules,
            default_allow,
        }
    }

    /// Reads the `zone-policy:` section of the configuration (`section`: the tree the
    /// config crate took from the file, None when the file has none) over the
    /// configuration's zones (read once, by the config crate). Errors are
    /// `file:line: message`, all of them.
    pub fn read(
        section: Option<&Node>,
        zones: ZoneMap,
        file: &str,
    ) -> Result<ZonePolicy, Vec<String>> {
        let errors = Errors::default();
        let (rules, default_allow) = match section {
            Some(p) => read_policy(p, &errors),
            None => (Vec::new(), true),
        };
        for r in &rules {
            for z in r.from.iter().chain(&r.to) {
                if z != "any" && z != "unknown" && !zones.names().any(|n| n == z) {
                    errors
                        .borrow_mut()
                        .push((r.line, format!("rule `{}`: unknown zone `{z}`", r.name)));
                }
            }
        }
        let errs = errors.into_inner();
        if !errs.is_empty() {
            return Err(errs
                .into_iter()
                .map(|(l, m)| format!("{file}:{l}: {m}"))
                .collect());
        }
        Ok(ZonePolicy::new(zones, rules, default_allow))
    }

    /// Reads `zones:` and `zone-policy:` from configuration text (tests and tools; the
    /// sensor takes both from its `Config`). Errors are `file:line: message`.
    pub fn from_config_yaml(text: &str, file: &str) -> Result<ZonePolicy, Vec<String>> {
        let mut cfg = zonewatch_config::Config::default();
        cfg.apply_yaml(text, file)
            .map_err(|e| e.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>())?;
        ZonePolicy::read(cfg.zone_policy.as_ref(), cfg.zone_map(), file)
    }

    /// The zone of an address (most specific prefix), `unknown` when none.
    pub fn zone_of(&self, ip: IpAddr) -> &str {
        self.zones.zone_of(ip).unwrap_or("unknown")
    }

    /// The rules.
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    /// Whether zone pairs no rule names are allowed (`default: allow`).
    pub fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// Checks one flow (its first packet): `None` when allowed.
    pub fn check(&self, o: &PacketObs) -> Option<Violation<'_>> {
        let from = self.zone_of(o.src);
        let to = self.zone_of(o.dst);
        if from == to {
            return None;
        }
        let violation = |sid, rule| {
            Some(Violation {
                sid,
                from,
                to,
                rule,
            })
        };
        if let Some(i) = self.rules.iter().position(|r| r.matches(from, to, o)) {
            return if self.rules[i].allow {
                None
            } else {
                violation(SID_DENY, Some(i))
            };
        }
        match self.rules.iter().position(|r| r.zones_match(from, to)) {
            Some(i) => violation(SID_NOT_ALLOWED, Some(i)),
            None if self.default_allow => None,
            None => violation(SID_DEFAULT_DENY, None),
        }
    }
}

fn read_policy(p: &Node, errors: &Errors) -> (Vec<PolicyRule>, bool) {
    let s = Section::new(p, "zone-policy", errors);
    let default = s.string("default", "allow");
    let default_allow = match default.as_str() {
        "allow" => true,
        "deny" => false,
        other => {
            errors.borrow_mut().push((
                p.get("default").map_or(p.line, |n| n.line),
                format!("zone-policy.default: {other:?} is not allow or deny"),
            ));
            true
        }
    };
    let mut rules = Vec::new();
    if let Some(list) = s.node("rules") {
        match &list.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    rules.push(read_rule(item, i, errors));
                }
            }
            _ => errors
                .borrow_mut()
                .push((list.line, "zone-policy.rules must be a list".into())),
        }
    }
    s.finish();
    (rules, default_allow)
}

fn read_rule(item: &Node, i: usize, errors: &Errors) -> PolicyRule {
    let path = format!("zone-policy.rules[{i}]");
    let s = Section::new(item, &path, errors);
    let name = s.string("name", &format!("rule-{}", i + 1));
    let zones = |key: &'static str| -> Vec<String> {
        match s.list(key) {
            Some(l) if !l.is_empty() => l.into_iter().map(|(z, _)| z).collect(),
            _ => {
                errors
                    .borrow_mut()
                    .push((item.line, format!("{path}: `{key}` is required")));
                Vec::new()
            }
        }
    };
    let from = zones("from");
    let to = zones("to");
    let mut ports = Vec::new();
    for (p, line) in s.list("ports").unwrap_or_default() {
        match PortSpec::parse(&p) {
            Some(ps) => ports.push(ps),
            None => errors.borrow_mut().push((
                line,
                format!("{path}.ports: {p:?} is not like tcp/443, udp/53, tcp/8000-8080"),
            )),
        }
    }
    let via = s.nets("via");
    let action = s.string("action", "");
    let allow = match action.as_str() {
        "allow" => true,
        "deny" => false,
        _ => {
            errors
                .borrow_mut()
                .push((item.line, format!("{path}: `action` must be allow or deny")));
            false
        }
    };
    let severity = s.node("severity").map(|_| s.u64("severity", 1, 1, 4) as u8);
    s.finish();
    PolicyRule {
        name,
        from,
        to,
        ports,
        via,
        allow,
        severity,
        line: item.line,
    }
}

/// Settings (`rules/detectors/zone-policy.yaml`); the policy itself is in the config.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// Shared keys.
    pub common: Common,
    /// Alerts per source and rule in `window` before further ones are only counted.
    pub max_alerts_per_source: u64,
    /// Alerts per rule (all sources) in `window` before further ones are only counted.
    pub max_alerts_per_rule: u64,
    /// Window for the limits above, seconds.
    pub window: u64,
}

impl ZoneConfig {
    /// Reads the `detector:` section.
    pub fn read(s: &Section, common: Common) -> Self {
        ZoneConfig {
            common,
            max_alerts_per_source: s.u64("max-alerts-per-source", 20, 1, 1 << 32),
            max_alerts_per_rule: s.u64("max-alerts-per-rule", 200, 1, 1 << 32),
            window: s.u64("window", 60, 1, 86_400),
        }
    }
}

#[derive(Clone, Copy)]
struct Limit {
    start: i64,
    sent: u64,
    suppressed: u64,
}

/// Alerts of one rule (all sources) in the current window.
#[derive(Clone, Copy)]
struct RuleWindow {
    start: i64,
    sent: u64,
}

/// What the per-source limit counts by: the source, the sid and the rule (index, or
/// `u32::MAX` for the default).
type LimitKey = (IpAddr, u32, u32);

/// The zone policy detector.
pub struct ZoneDetector {
    cfg: ZoneConfig,
    policy: ZonePolicy,
    limits: Table<LimitKey, Limit>,
    /// Per rule (index; the last slot is the default).
    per_rule: Vec<RuleWindow>,
    /// Alerts raised.
    pub alerts: u64,
    /// Violations over the per-source limit (counted, not alerted).
    pub suppressed: u64,
}

impl ZoneDetector {
    /// A detector for `policy`.
    pub fn new(cfg: ZoneConfig, policy: ZonePolicy) -> Self {
        ZoneDetector {
            limits: Table::new(
                cfg.common.max_entries,
                cfg.window * 2,
                cfg.common.seed ^ 0x20e,
            ),
            per_rule: vec![
                RuleWindow {
                    start: i64::MIN,
                    sent: 0
                };
                policy.rules.len() + 1
            ],
            cfg,
            policy,
            alerts: 0,
            suppressed: 0,
        }
    }

    /// Per packet: checks first packets only.
    pub fn observe(&mut self, o: &PacketObs, out: &mut Vec<AnomalyAlert>) {
        if !o.is_first() {
            return;
        }
        let Some(Violation {
            sid,
            from,
            to,
            rule,
        }) = self.policy.check(o)
        else {
            return;
        };
        let now = o.ts.0;
        let lim = self.limits.entry(
            (o.src, sid, rule.map_or(u32::MAX, |r| r as u32)),
            now,
            || Limit {
                start: now,
                sent: 0,
                suppressed: 0,
            },
        );
        if now - lim.start >= secs(self.cfg.window) {
            lim.start = now;
            lim.sent = 0;
        }
        let ri = rule.unwrap_or(self.per_rule.len() - 1);
        let pr = &mut self.per_rule[ri];
        if now.saturating_sub(pr.start) >= secs(self.cfg.window) {
            *pr = RuleWindow {
                start: now,
                sent: 0,
            };
        }
        if lim.sent >= self.cfg.max_alerts_per_source || pr.sent >= self.cfg.max_alerts_per_rule {
            lim.suppressed += 1;
            self.suppressed += 1;
            return;
        }
        lim.sent += 1;
        pr.sent += 1;
        let suppressed_before = std::mem::take(&mut lim.suppressed);
        self.alerts += 1;
        let r = rule.map(|i| &self.policy.rules[i]);
        let rule_name = r.map_or("default".to_string(), |r| r.name.clone());
        let signature = match sid {
            SID_DENY => format!("ZW ZONE {from} -> {to} denied by rule {rule_name}"),
            SID_NOT_ALLOWED => {
                format!("ZW ZONE {from} -> {to} not allowed by rule {rule_name}")
            }
            _ => format!("ZW ZONE {from} -> {to} denied by default policy"),
        };
        out.push(AnomalyAlert {
            ts: o.ts,
            detector: "zone-policy",
            category: Category::ZonePolicyViolation,
            signature,
            signature_id: sid,
            severity: r
                .and_then(|r| r.severity)
                .unwrap_or(self.cfg.common.severity),
            src_ip: o.src,
            dest_ip: Some(o.dst),
            src_port: Some(o.sport),
            dest_port: Some(o.dport),
            proto: Some(o.proto),
            update: false,
            evidence: json!({
                "src_zone": from,
                "dest_zone": to,
                "rule": rule_name,
                "rule_text": r.map_or("default deny".to_string(), |r| r.describe()),
                "rule_line": r.map_or(0, |r| r.line),
                "proto": proto_name(o.proto),
                "dest_port": o.dport,
                "suppressed_before": suppressed_before,
            }),
        });
    }

    /// Expires idle rate-limit entries.
    pub fn expire(&mut self, now: zonewatch_types::Timestamp) {
        self.limits.expire(now.0);
    }
}

impl Detector for ZoneDetector {
    fn inputs(&self) -> Inputs {
        Inputs {
            packets: true,
            ..Inputs::default()
        }
    }
    fn observe_packet(&mut self, o: &PacketObs, out: &mut Vec<AnomalyAlert>) {
        self.observe(o, out);
    }
    fn expire(&mut self, now: zonewatch_types::Timestamp) {
        ZoneDetector::expire(self, now);
    }
    fn table_stats(&self) -> TableStats {
        self.limits.stats()
    }
    fn alerts(&self) -> u64 {
        self.alerts
    }
    fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        vec![("suppressed", self.suppressed)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zonewatch_types::Timestamp;

    const CFG: &str = include_str!("../../../docs/detectors.md");

    fn policy() -> ZonePolicy {
        // The example in docs/detectors.md is the one tested.
        let start = CFG.find("```yaml\nzones:").expect("example in docs") + 8;
        let end = start + CFG[start..].find("```").unwrap();
        ZonePolicy::from_config_yaml(&CFG[start..end], "detectors.md").unwrap()
    }

    fn first(src: &str, dst: &str, dport: u16) -> PacketObs {
        let mut o = PacketObs::new(
            Timestamp(1),
            src.parse().unwrap(),
            dst.parse().unwrap(),
            ipproto::TCP,
        );
        o.dport = dport;
        o.sport = 40000;
        o
    }

    #[test]
    fn documented_example_policy_decides() {
        let p = policy();
        assert_eq!(p.zone_of("10.10.1.1".parse().unwrap()), "mynumber");
        assert_eq!(p.zone_of("8.8.8.8".parse().unwrap()), "external");
        // My Number talks to nothing else.
        let v = p.check(&first("10.10.1.1", "10.20.1.1", 443)).unwrap();
        assert_eq!((v.sid, v.from, v.to), (SID_DENY, "mynumber", "lgwan"));
        assert_eq!(p.rules()[v.rule.unwrap()].name, "mynumber-isolated");
        // LGWAN to the internet: only via the relays, only web ports.
        assert!(p.check(&first("10.20.0.10", "8.8.8.8", 443)).is_none());
        let v = p.check(&first("10.20.5.5", "8.8.8.8", 443)).unwrap();
        assert_eq!(
            (v.sid, v.from, v.to),
            (SID_NOT_ALLOWED, "lgwan", "external")
        );
        assert!(p.check(&first("10.20.0.10", "8.8.8.8", 22)).is_some());
        // Same zone, and pairs no rule names, follow the default (allow).
        assert!(p.check(&first("10.20.5.5", "10.20.9.9", 22)).is_none());
        assert!(p.check(&first("192.0.2.7", "8.8.8.8", 22)).is_none());
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = ZonePolicy::from_config_yaml(
            "zones:\n  a: [10.0.0.0/8]\nzone-policy:\n  rules:\n    - name: x\n      from: a\n      to: nowhere\n      ports: [tcp/http]\n      action: allow\n",
            "c.yaml",
        )
        .unwrap_err();
        assert!(
            e.iter()
                .any(|m| m.starts_with("c.yaml:8:") && m.contains("tcp/http")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("c.yaml:5:") && m.contains("nowhere")),
            "{e:?}"
        );
    }
}
