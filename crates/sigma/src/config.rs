//! How Sigma's vocabulary maps onto syslog records: field names and log sources.

use std::collections::HashMap;

/// A record attribute a Sigma field name resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldRef {
    /// The free-text message.
    Message,
    /// HOSTNAME.
    Hostname,
    /// APP-NAME / program.
    AppName,
    /// PROCID / pid.
    ProcId,
    /// MSGID.
    MsgId,
    /// Facility keyword (`auth`).
    Facility,
    /// Severity keyword (`err`).
    Severity,
    /// `<PRI>` as a number.
    Pri,
    /// Peer address of the sender (network listeners only).
    SourceAddr,
    /// An extracted field (`key=value`, JSON member, well-known), then an SD parameter of
    /// the same name.
    Extracted(String),
}

/// Sigma field name → record attribute. Names not in the map resolve to
/// [`FieldRef::Extracted`] with the same name.
#[derive(Debug, Clone)]
pub struct FieldMapping {
    map: HashMap<String, FieldRef>,
}

impl Default for FieldMapping {
    fn default() -> Self {
        let mut m = HashMap::new();
        let mut put = |names: &[&str], r: FieldRef| {
            for n in names {
                m.insert((*n).to_owned(), r.clone());
            }
        };
        put(
            &["message", "Message", "msg", "MESSAGE", "raw"],
            FieldRef::Message,
        );
        put(
            &[
                "hostname",
                "Hostname",
                "host",
                "host.name",
                "ComputerName",
                "Computer",
            ],
            FieldRef::Hostname,
        );
        put(
            &[
                "app_name",
                "appname",
                "program",
                "ProgramName",
                "SYSLOG_IDENTIFIER",
                "process.name",
            ],
            FieldRef::AppName,
        );
        put(
            &["procid", "pid", "ProcessId", "process.pid"],
            FieldRef::ProcId,
        );
        put(&["msgid", "MsgId"], FieldRef::MsgId);
        put(&["facility", "syslog.facility"], FieldRef::Facility);
        put(&["severity", "syslog.severity"], FieldRef::Severity);
        put(&["pri", "syslog.priority"], FieldRef::Pri);
        put(&["source_addr", "log.source.address"], FieldRef::SourceAddr);
        let ext = |s: &str| FieldRef::Extracted(s.to_owned());
        // Sigma's webserver / proxy taxonomy (W3C names) → access-log fields.
        put(
            &[
                "c-ip",
                "src_ip",
                "SourceIp",
                "source.ip",
                "client.ip",
                "ClientIP",
            ],
            ext("src_ip"),
        );
        put(&["src_host", "SourceHostname", "rhost"], ext("src_host"));
        put(
            &["cs-method", "http.request.method", "method"],
            ext("http.method"),
        );
        put(
            &[
                "cs-uri-query",
                "cs-uri-stem",
                "cs-uri",
                "c-uri",
                "c-uri-query",
                "c-uri-stem",
                "url.original",
                "uri",
            ],
            ext("http.uri"),
        );
        put(
            &["sc-status", "http.response.status_code", "status"],
            ext("http.status"),
        );
        put(
            &["c-useragent", "user_agent.original", "useragent"],
            ext("http.user_agent"),
        );
        put(
            &["cs-referrer", "cs-referer", "http.request.referrer"],
            ext("http.referer"),
        );
        put(
            &[
                "cs-username",
                "user",
                "User",
                "user.name",
                "TargetUserName",
                "username",
            ],
            ext("user"),
        );
        FieldMapping { map: m }
    }
}

impl FieldMapping {
    /// No mapping at all: every name is an extracted field.
    pub fn empty() -> Self {
        FieldMapping {
            map: HashMap::new(),
        }
    }
    /// Maps `sigma_name` onto `target`: one of `message hostname app_name procid msgid facility
    /// severity pri source_addr`, else the name of an extracted field (e.g. `srcip`).
    pub fn insert(&mut self, sigma_name: &str, target: &str) {
        let r = match target {
            "message" => FieldRef::Message,
            "hostname" => FieldRef::Hostname,
            "app_name" => FieldRef::AppName,
            "procid" => FieldRef::ProcId,
            "msgid" => FieldRef::MsgId,
            "facility" => FieldRef::Facility,
            "severity" => FieldRef::Severity,
            "pri" => FieldRef::Pri,
            "source_addr" => FieldRef::SourceAddr,
            other => FieldRef::Extracted(other.to_owned()),
        };
        self.map.insert(sigma_name.to_owned(), r);
    }
    /// Resolves a Sigma field name.
    pub fn resolve(&self, name: &str) -> FieldRef {
        self.map
            .get(name)
            .cloned()
            .unwrap_or_else(|| FieldRef::Extracted(name.to_owned()))
    }
}

/// One way a record can belong to a log source; a source matches if any of its conditions does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceCond {
    /// Every record.
    Any,
    /// APP-NAME equals this (case-insensitive) or starts with it followed by `(`, `-`, `/`, `[`.
    App(String),
    /// Syslog facility number.
    Facility(u8),
    /// The message contains this text.
    MessageContains(String),
    /// This extracted field exists.
    HasField(String),
}

/// Sigma `logsource` (product, service, category) → [`SourceCond`]s.
#[derive(Debug, Clone)]
pub struct LogsourceMapping {
    /// Products whose rules can apply to syslog records (`linux`, `unix`, ...). Rules with no
    /// product also apply. Other products never match.
    pub products: Vec<String>,
    /// `service` → conditions. A service not listed never matches.
    pub services: HashMap<String, Vec<SourceCond>>,
    /// `category` → conditions. A category not listed never matches.
    pub categories: HashMap<String, Vec<SourceCond>>,
}

impl Default for LogsourceMapping {
    fn default() -> Self {
        use SourceCond::*;
        let app = |names: &[&str]| {
            names
                .iter()
                .map(|n| App((*n).to_owned()))
                .collect::<Vec<_>>()
        };
        let mut services = HashMap::new();
        services.insert(
            "sshd".to_owned(),
            app(&["sshd", "sshd-session", "dropbear"]),
        );
        let mut auth = app(&[
            "sshd",
            "sshd-session",
            "sudo",
            "su",
            "login",
            "passwd",
            "useradd",
            "usermod",
            "groupadd",
            "chpasswd",
            "systemd-logind",
            "pam",
            "polkitd",
            "dropbear",
            "vsftpd",
            "proftpd",
            "dovecot",
        ]);
        auth.push(Facility(4));
        auth.push(Facility(10));
        services.insert("auth".to_owned(), auth);
        services.insert("sudo".to_owned(), app(&["sudo"]));
        services.insert("su".to_owned(), app(&["su"]));
        services.insert("cron".to_owned(), {
            let mut v = app(&["cron", "crond", "anacron"]);
            v.push(Facility(9));
            v
        });
        services.insert("syslog".to_owned(), vec![Any]);
        services.insert("auditd".to_owned(), {
            let mut v = app(&["auditd", "audit", "audispd", "audisp-syslog"]);
            v.push(MessageContains("msg=audit(".to_owned()));
            v
        });
        services.insert("clamav".to_owned(), app(&["clamd", "freshclam", "clamav"]));
        services.insert("vsftpd".to_owned(), app(&["vsftpd"]));
        services.insert("guacamole".to_owned(), app(&["guacd", "guacamole"]));
        services.insert("apache".to_owned(), app(&["apache", "apache2", "httpd"]));
        services.insert("nginx".to_owned(), app(&["nginx"]));
        services.insert("squid".to_owned(), app(&["squid"]));
        let mut categories = HashMap::new();
        let web = vec![HasField("http.method".to_owned())];
        categories.insert("webserver".to_owned(), web.clone());
        categories.insert("proxy".to_owned(), web);
        categories.insert(
            "firewall".to_owned(),
            vec![
                HasField("SRC".to_owned()),
                HasField("srcip".to_owned()),
                HasField("src".to_owned()),
                App("kernel".to_owned()),
            ],
        );
        LogsourceMapping {
            products: vec!["linux".into(), "unix".into(), "zonewatch".into()],
            services,
            categories,
        }
    }
}

/// Loader and engine settings.
#[derive(Debug, Clone, Default)]
pub struct SigmaConfig {
    /// Field names.
    pub fields: FieldMapping,
    /// Log sources.
    pub logsources: LogsourceMapping,
    /// Evaluate every rule on every record, ignoring `logsource` (for benchmarks and for
    /// collections whose log sources do not describe syslog).
    pub ignore_logsource: bool,
    /// Correlation state limits.
    pub limits: CorrelationLimits,
}

/// Bounds on correlation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelationLimits {
    /// Groups kept per correlation rule; at the cap, expired groups are purged, then the least
    /// recently seen of a sample is evicted (counted).
    pub max_groups: usize,
    /// Distinct values kept per group for `value_count` (beyond that the group's count is
    /// already above any sane threshold; new values are counted as one).
    pub max_values_per_group: usize,
    /// Event timestamps kept per group by a sliding `event_count` window (it needs at most
    /// its threshold; upper-bounded windows keep only a counter).
    pub max_events_per_group: usize,
    /// Key of the group tables' SipHash (set it from the sensor's configured seed): the same
    /// seed gives the same eviction order on every run; a secret one resists hash flooding.
    pub hash_seed: u64,
}

impl Default for CorrelationLimits {
    fn default() -> Self {
        CorrelationLimits {
            max_groups: 65_536,
            max_values_per_group: 1024,
            max_events_per_group: 4096,
            hash_seed: 0x7a6f_6e65_7761_7463,
        }
    }
}
