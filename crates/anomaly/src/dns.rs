//! DNS tunnelling and exfiltration, per client and base domain (`exfil.example.com`,
//! `city.lg.jp`): tunnel-like names (long or high-entropy subdomains), many unique
//! subdomains, large TXT/NULL answers; and query volume per client.

use std::net::IpAddr;

use serde_json::json;
use zonewatch_types::Timestamp;

use crate::alert::{AnomalyAlert, Category};
use crate::common::{secs, ts_secs, Common, Detector, Inputs};
use crate::obs::DnsObs;
use crate::sketch::Distinct;
use crate::table::{hash64, seeded_hasher, Table, TableStats};
use crate::yaml::Section;

/// One tunnel-like query name (lower severity).
pub const SID_NAME: u32 = 9_000_300;
/// Many unique subdomains of one domain from one client.
pub const SID_UNIQUE: u32 = 9_000_301;
/// Large TXT/NULL answers.
pub const SID_LARGE_ANSWERS: u32 = 9_000_302;
/// Query volume per client.
pub const SID_VOLUME: u32 = 9_000_303;

/// Second-level labels under which registrations are one level deeper (`city.lg.jp`).
const SECOND_LEVELS: &[&str] = &[
    "ac", "ad", "co", "com", "ed", "edu", "go", "gov", "gr", "lg", "ne", "net", "or", "org",
];

/// Settings (`rules/detectors/dns-tunnel.yaml`).
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Shared keys.
    pub common: Common,
    /// Window, seconds.
    pub window: u64,
    /// A name is tunnel-like when its subdomain part is at least this long ...
    pub min_subdomain_len: u64,
    /// ... and its characters' Shannon entropy is at least this (bits/char) ...
    pub min_entropy: f64,
    /// ... or when one label is at least this long ...
    pub max_label_len: u64,
    /// ... or when one label this long is all hex digits, with digits and letters
    /// (dnscat2-style encodings).
    pub min_hex_label_len: u64,
    /// Unique subdomains of one base domain per client in the window.
    pub unique_subdomains: u64,
    /// A TXT/NULL answer this large (rdata bytes) counts as large ...
    pub large_answer_bytes: u64,
    /// ... and this many large answers per client and domain raise an alert.
    pub large_answers: u64,
    /// Queries per client in the window.
    pub queries_per_client: u64,
    /// Base domains never reported (exact or parent match).
    pub allow_domains: Vec<String>,
    /// Clients never reported (resolvers, for the volume check).
    pub allow_clients: Vec<ipnet::IpNet>,
    /// Maximum clients tracked for query volume.
    pub max_clients: usize,
}

impl DnsConfig {
    /// Reads the `detector:` section.
    pub fn read(s: &Section, common: Common) -> Self {
        DnsConfig {
            common,
            window: s.u64("window", 600, 1, 86_400),
            min_subdomain_len: s.u64("min-subdomain-len", 40, 1, 255),
            min_entropy: s.f64("min-entropy", 3.8, 0.0, 8.0),
            max_label_len: s.u64("max-label-len", 50, 1, 63),
            min_hex_label_len: s.u64("min-hex-label-len", 24, 1, 63),
            unique_subdomains: s.u64("unique-subdomains", 60, 2, 1 << 24),
            large_answer_bytes: s.u64("large-answer-bytes", 180, 1, 65_535),
            large_answers: s.u64("large-answers", 10, 1, 1 << 24),
            queries_per_client: s.u64("queries-per-client", 3000, 1, 1 << 32),
            allow_domains: s
                .list("allow-domains")
                .unwrap_or_default()
                .into_iter()
                .map(|(d, _)| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            allow_clients: s.nets("allow-clients"),
            max_clients: s.u64("max-clients", 65_536, 1, 1 << 24) as usize,
        }
    }
}

/// The registrable base domain of a name (last two labels, three under `co.jp`-like
/// second levels) and the subdomain part before it.
pub fn split_base(name: &str) -> (&str, &str) {
    let name = name.trim_end_matches('.');
    let dots: Vec<usize> = name.rmatch_indices('.').map(|(i, _)| i).take(3).collect();
    let labels_wanted = match dots.get(1) {
        Some(&i) => {
            let second = &name[i + 1..dots[0]];
            if SECOND_LEVELS.contains(&second.to_ascii_lowercase().as_str()) && name.len() > 2 {
                3
            } else {
                2
            }
        }
        None => 2,
    };
    match dots.get(labels_wanted - 1) {
        Some(&i) => (&name[i + 1..], &name[..i]),
        None => (name, ""),
    }
}

/// Shannon entropy (bits per character) of the name's characters, dots excluded.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes().filter(|b| *b != b'.') {
        counts[b.to_ascii_lowercase() as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

struct DomState {
    domain: String,
    client: IpAddr,
    win_start: i64,
    queries: u64,
    unique: Distinct,
    tunnel_like: u64,
    large: u64,
    large_bytes: u64,
    samples: Vec<String>,
    name_alerted: bool,
    alerted: [i64; 2],
    alerts: [u32; 2],
}

/// Which alert of a (client, domain) a finding raises: the first two repeat every
/// `update-interval` (their slot in `DomState::alerted`), a tunnel-like name alerts once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DomAlert {
    UniqueSubdomains = 0,
    LargeAnswers = 1,
    TunnelLikeName = 2,
}

/// A finding that raises an alert.
#[derive(Clone, Copy)]
struct Raised {
    sid: u32,
    signature: &'static str,
    severity: u8,
    which: DomAlert,
}

impl DomState {
    /// Starts a new window at `now`.
    fn roll(&mut self, now: i64) {
        self.win_start = now;
        self.queries = 0;
        self.unique.clear();
        self.tunnel_like = 0;
        self.large = 0;
        self.large_bytes = 0;
    }

    fn due(&self, which: DomAlert, now: i64, cfg: &DnsConfig) -> bool {
        let last = self.alerted[which as usize];
        last == 0 || now - last >= secs(cfg.common.update_interval)
    }

    /// A response: counts a large TXT/NULL answer; raises when their count reaches the
    /// threshold.
    fn judge_answer(&mut self, o: &DnsObs, cfg: &DnsConfig) -> Option<Raised> {
        if (o.txt_null_bytes as u64) < cfg.large_answer_bytes {
            return None;
        }
        self.large += 1;
        self.large_bytes += o.txt_null_bytes as u64;
        let raise =
            self.large == cfg.large_answers && self.due(DomAlert::LargeAnswers, o.ts.0, cfg);
        raise.then_some(Raised {
            sid: SID_LARGE_ANSWERS,
            signature: "ZW DNS large TXT/NULL answers (tunnel downstream)",
            severity: cfg.common.severity,
            which: DomAlert::LargeAnswers,
        })
    }

    /// A query: keeps sample names, counts unique subdomains and tunnel-like names; raises
    /// for the first tunnel-like name and for many unique subdomains, in that order.
    fn judge_query(
        &mut self,
        o: &DnsObs,
        sub: &str,
        hsub: u64,
        tunnel_like: bool,
        cfg: &DnsConfig,
    ) -> [Option<Raised>; 3] {
        let mut raised = [None; 3];
        self.queries += 1;
        // Samples: the first name seen, replaced by tunnel-like ones as they come.
        if self.samples.len() < 3 && (tunnel_like || self.samples.is_empty()) {
            if !tunnel_like {
                self.samples.clear();
            }
            if !self.samples.iter().any(|s| s == o.qname) {
                self.samples.push(o.qname.to_string());
            }
        }
        if !sub.is_empty() {
            self.unique.insert(hsub);
        }
        if tunnel_like {
            self.tunnel_like += 1;
            if !self.name_alerted {
                self.name_alerted = true;
                raised[1] = Some(Raised {
                    sid: SID_NAME,
                    signature: "ZW DNS tunnel-like query name",
                    severity: cfg.common.lower_severity(),
                    which: DomAlert::TunnelLikeName,
                });
            }
        }
        if self.unique.estimate() >= cfg.unique_subdomains
            && self.due(DomAlert::UniqueSubdomains, o.ts.0, cfg)
        {
            raised[2] = Some(Raised {
                sid: SID_UNIQUE,
                signature: "ZW DNS many unique subdomains of one domain (tunnel/exfiltration)",
                severity: cfg.common.severity,
                which: DomAlert::UniqueSubdomains,
            });
        }
        raised
    }

    /// The alert for a finding, with this (client, domain)'s evidence.
    fn alert(&mut self, r: Raised, o: &DnsObs, cfg: &DnsConfig) -> AnomalyAlert {
        let (update, count) = match r.which {
            DomAlert::TunnelLikeName => (false, 1),
            which => {
                let slot = which as usize;
                let update = self.alerted[slot] != 0;
                self.alerted[slot] = o.ts.0.max(1);
                self.alerts[slot] += 1;
                (update, self.alerts[slot])
            }
        };
        AnomalyAlert {
            ts: o.ts,
            detector: "dns-tunnel",
            category: Category::DnsTunnel,
            signature: r.signature.into(),
            signature_id: r.sid,
            severity: r.severity,
            src_ip: self.client,
            dest_ip: Some(o.server),
            src_port: None,
            dest_port: Some(53),
            proto: Some(o.proto),
            update,
            evidence: json!({
                "domain": self.domain,
                "window_secs": cfg.window,
                "window_start": ts_secs(self.win_start),
                "queries": self.queries,
                "unique_subdomains": self.unique.estimate(),
                "tunnel_like_names": self.tunnel_like,
                "large_answers": self.large,
                "large_answer_bytes": self.large_bytes,
                "qtype": o.qtype,
                "sample_names": self.samples,
                "name_length": o.qname.len(),
                "name_entropy": (entropy(split_base(o.qname).1) * 100.0).round() / 100.0,
                "alert_count": count,
            }),
        }
    }
}

struct ClientState {
    win_start: i64,
    queries: u64,
    domains: Distinct,
    alerted: i64,
    alerts: u32,
}

/// The DNS tunnel detector.
pub struct DnsDetector {
    cfg: DnsConfig,
    doms: Table<u64, DomState>,
    clients: Table<IpAddr, ClientState>,
    seed: u64,
    /// Alerts raised, updates included.
    pub alerts: u64,
}

impl DnsDetector {
    /// A detector with its tables.
    pub fn new(cfg: DnsConfig) -> Self {
        let idle = cfg.window + cfg.common.update_interval;
        DnsDetector {
            doms: Table::new(cfg.common.max_entries, idle, cfg.common.seed ^ 0xd05),
            clients: Table::new(cfg.max_clients, idle, cfg.common.seed ^ 0xc11),
            seed: cfg.common.seed ^ 0xd0,
            cfg,
            alerts: 0,
        }
    }

    /// Whether a name looks like a tunnel's (long/high-entropy subdomain or a huge label).
    pub fn tunnel_like(&self, qname: &str) -> bool {
        let (_, sub) = split_base(qname);
        let longest = sub.split('.').map(str::len).max().unwrap_or(0) as u64;
        let hexy = sub.split('.').any(|l| {
            l.len() as u64 >= self.cfg.min_hex_label_len
                && l.bytes().all(|b| b.is_ascii_hexdigit())
                && l.bytes().filter(u8::is_ascii_digit).count() * 4 >= l.len()
                && l.bytes().any(|b| b.is_ascii_alphabetic())
        });
        hexy || longest >= self.cfg.max_label_len
            || (sub.len() as u64 >= self.cfg.min_subdomain_len
                && entropy(sub) >= self.cfg.min_entropy)
    }

    /// Per DNS message.
    pub fn observe(&mut self, o: &DnsObs, out: &mut Vec<AnomalyAlert>) {
        let (base, sub) = split_base(o.qname);
        if base.is_empty() || self.domain_allowed(base) {
            return;
        }
        if !o.response && !self.cfg.allow_clients.iter().any(|n| n.contains(&o.client)) {
            self.count_client_query(o, base, out);
        }
        self.observe_domain(o, base, sub, out);
    }

    /// Whether `base` is an allowed domain or under one (ASCII case ignored).
    fn domain_allowed(&self, base: &str) -> bool {
        self.cfg.allow_domains.iter().any(|d| {
            base.len() >= d.len()
                && base.as_bytes()[base.len() - d.len()..].eq_ignore_ascii_case(d.as_bytes())
                && (base.len() == d.len() || base.as_bytes()[base.len() - d.len() - 1] == b'.')
        })
    }

    /// Query volume per client: one alert when the window's count reaches the threshold.
    fn count_client_query(&mut self, o: &DnsObs, base: &str, out: &mut Vec<AnomalyAlert>) {
        let now = o.ts.0;
        let cfg = &self.cfg;
        let hd = hash64(self.seed, base);
        let c = self.clients.entry(o.client, now, || ClientState {
            win_start: now,
            queries: 0,
            domains: Distinct::default(),
            alerted: 0,
            alerts: 0,
        });
        if now - c.win_start >= secs(cfg.window) {
            c.win_start = now;
            c.queries = 0;
            c.domains.clear();
        }
        c.queries += 1;
        c.domains.insert(hd);
        let due = c.alerted == 0 || now - c.alerted >= secs(cfg.common.update_interval);
        if c.queries != cfg.queries_per_client || !due {
            return;
        }
        let update = c.alerted != 0;
        c.alerted = now.max(1);
        c.alerts += 1;
        self.alerts += 1;
        out.push(AnomalyAlert {
            ts: o.ts,
            detector: "dns-tunnel",
            category: Category::DnsTunnel,
            signature: "ZW DNS high query volume from one client".into(),
            signature_id: SID_VOLUME,
            severity: cfg.common.lower_severity(),
            src_ip: o.client,
            dest_ip: Some(o.server),
            src_port: None,
            dest_port: Some(53),
            proto: Some(o.proto),
            update,
            evidence: json!({
                "window_secs": cfg.window, "window_start": ts_secs(c.win_start),
                "queries": c.queries, "threshold": cfg.queries_per_client,
                "distinct_domains": c.domains.estimate(), "alert_count": c.alerts,
            }),
        });
    }

    /// Per (client, base domain): tunnel-like names, unique subdomains, large answers.
    fn observe_domain(&mut self, o: &DnsObs, base: &str, sub: &str, out: &mut Vec<AnomalyAlert>) {
        let now = o.ts.0;
        let key = {
            use std::hash::{Hash, Hasher};
            // Base domains are keyed without regard to ASCII case.
            let mut h = seeded_hasher(self.seed);
            o.client.hash(&mut h);
            for b in base.bytes() {
                h.write_u8(b.to_ascii_lowercase());
            }
            h.finish()
        };
        let tunnel_like = !o.response && self.tunnel_like(o.qname);
        let hsub = hash64(self.seed ^ 1, sub);
        let cfg = &self.cfg;
        let d = self.doms.entry(key, now, || DomState {
            domain: base.to_ascii_lowercase(),
            client: o.client,
            win_start: now,
            queries: 0,
            unique: Distinct::default(),
            tunnel_like: 0,
            large: 0,
            large_bytes: 0,
            samples: Vec::new(),
            name_alerted: false,
            alerted: [0; 2],
            alerts: [0; 2],
        });
        if now - d.win_start >= secs(cfg.window) {
            d.roll(now);
        }
        let raised = if o.response {
            [d.judge_answer(o, cfg), None, None]
        } else {
            d.judge_query(o, sub, hsub, tunnel_like, cfg)
        };
        for r in raised.into_iter().flatten() {
            self.alerts += 1;
            out.push(d.alert(r, o, cfg));
        }
    }
    /// Expires idle entries.
    pub fn expire(&mut self, now: Timestamp) {
        self.doms.expire(now.0);
        self.clients.expire(now.0);
    }
}

impl Detector for DnsDetector {
    fn inputs(&self) -> Inputs {
        Inputs {
            dns: true,
            ..Inputs::default()
        }
    }
    fn observe_dns(&mut self, o: &DnsObs, out: &mut Vec<AnomalyAlert>) {
        self.observe(o, out);
    }
    fn expire(&mut self, now: Timestamp) {
        DnsDetector::expire(self, now);
    }
    fn table_stats(&self) -> TableStats {
        // The (client, domain) table is the one counted; the clients table's bytes are added.
        let mut t = self.doms.stats();
        t.bytes += self.clients.approx_bytes();
        t
    }
    fn alerts(&self) -> u64 {
        self.alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_domains_and_entropy() {
        assert_eq!(split_base("a.b.example.com"), ("example.com", "a.b"));
        assert_eq!(split_base("www.city.lg.jp"), ("city.lg.jp", "www"));
        assert_eq!(split_base("example.com"), ("example.com", ""));
        assert_eq!(split_base("localhost"), ("localhost", ""));
        assert!(entropy("aaaa") < 0.01);
        assert!(entropy("mzxw6ytboi3tenbtgq2dmnrwha4dsmbr") > 3.8);
    }
}
