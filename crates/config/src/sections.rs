//! Sections of the configuration that belong to one component each, as typed structs that
//! read their own keys (below the section's name; errors name the whole key, and the
//! caller adds the file and line).

use std::net::SocketAddr;
use std::path::PathBuf;

use zonewatch_defrag::FragPolicy;
use zonewatch_stream::OverlapPolicy;
use zonewatch_types::UtcOffset;

use crate::{account_name, overlap_policy, parse_bool, parse_listen, KeyValue, EVENT_TYPES};

/// `syslog:`: the log inputs (listeners and replay) and the Sigma thread's queue.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogConfig {
    /// `syslog.tls.cert`: certificate chain (PEM) of `tls://` syslog listeners.
    pub tls_cert: Option<PathBuf>,
    /// `syslog.tls.key`: private key (PEM) of `tls://` syslog listeners.
    pub tls_key: Option<PathBuf>,
    /// `syslog.tls.client-ca`: when set, TLS syslog clients must present a
    /// certificate signed by one of these CAs (PEM).
    pub tls_client_ca: Option<PathBuf>,
    /// `syslog.max-frame-size`: longer syslog frames are truncated (and counted).
    pub max_frame_bytes: usize,
    /// `syslog.channel-size`: records queued between the listeners/replay and
    /// the Sigma thread (listeners drop and count when it is full; replay waits).
    pub channel_records: usize,
    /// `syslog.idle-timeout`: seconds a silent TCP/TLS syslog connection stays open.
    pub idle_timeout_secs: u64,
    /// `syslog.max-connections`: concurrent TCP/TLS syslog connections per listener.
    pub max_connections: usize,
    /// `syslog.max-connections-per-source`: concurrent TCP/TLS syslog connections
    /// from one source address per listener (0: no limit).
    pub max_connections_per_source: usize,
    /// `syslog.frame-timeout`: seconds a TCP/TLS syslog frame (or TLS handshake)
    /// may take from its first byte; then it is cut and the connection closed.
    pub frame_timeout_secs: u64,
    /// `syslog.buffer-memcap`: bytes of unfinished frames all TCP/TLS connections
    /// of one listener may hold together.
    pub buffer_memcap_bytes: usize,
    /// `syslog.include-message`: write the raw log message in Sigma alerts'
    /// evidence (off by default: messages can hold personal data).
    pub include_message: bool,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            max_frame_bytes: 64 << 10,
            channel_records: 65_536,
            idle_timeout_secs: 300,
            max_connections: 4096,
            max_connections_per_source: 64,
            frame_timeout_secs: 10,
            buffer_memcap_bytes: 32 << 20,
            include_message: false,
        }
    }
}

impl SyslogConfig {
    /// Sets the field a `syslog.*` key names; false for a key this section does not have.
    /// (The ranges are checked as the values are read, by the key table.)
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        let Some(key) = v.key.strip_prefix("syslog.") else {
            return Ok(false);
        };
        match key {
            "tls.cert" => self.tls_cert = Some(v.scalar()?.into()),
            "tls.key" => self.tls_key = Some(v.scalar()?.into()),
            // Empty: no client certificates asked for.
            "tls.client-ca" => {
                self.tls_client_ca =
                    Some(PathBuf::from(v.scalar()?)).filter(|p| !p.as_os_str().is_empty())
            }
            "max-frame-size" => self.max_frame_bytes = v.size()? as usize,
            "channel-size" => self.channel_records = v.num()?,
            "idle-timeout" => self.idle_timeout_secs = v.secs()?,
            "max-connections" => self.max_connections = v.num()?,
            "max-connections-per-source" => self.max_connections_per_source = v.num()?,
            "frame-timeout" => self.frame_timeout_secs = v.secs()?,
            "buffer-memcap" => self.buffer_memcap_bytes = v.size()? as usize,
            "include-message" => self.include_message = v.bool()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `run-as:`: the account to become once captures, listeners, output and spool are open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunAs {
    /// `run-as.user`: after opening captures, listeners, output and spool
    /// as root, become this user (name or numeric uid).
    pub user: Option<String>,
    /// `run-as.group`: the group to become (default: the user's primary group).
    pub group: Option<String>,
}

impl RunAs {
    /// Sets the field a `run-as.*` key names; false for a key this section does not have.
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "run-as.user" => self.user = Some(account_name(v.scalar()?)?),
            "run-as.group" => self.group = Some(account_name(v.scalar()?)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `pipeline:` and `workers`: the worker threads and the batches the reader sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// `pipeline.batch-packets`: packets per batch sent to a worker (1..=4096).
    pub batch_packets: usize,
    /// `pipeline.queue-batches`: batches queued per worker (1..=65536); a full queue makes
    /// the file reader wait and live capture drop (counted).
    pub queue_batches: usize,
    /// `workers` (or `threading.workers`): worker threads; 0 = one per core.
    pub workers: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_packets: 128,
            queue_batches: 256,
            workers: 0,
        }
    }
}

impl PipelineConfig {
    /// Sets the field a `pipeline.*` or `workers` key names; false for a key this section
    /// does not have. (The ranges are checked as the values are read, by the key table.)
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "pipeline.batch-packets" => self.batch_packets = v.num()?,
            "pipeline.queue-batches" => self.queue_batches = v.num()?,
            "workers" | "threading.workers" => self.workers = v.num()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// How live packets are read (`capture.method`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CaptureMethod {
    /// `pcap` (or `libpcap`): one reader thread, portable.
    #[default]
    Pcap,
    /// `af-packet`: Linux; each worker reads its own ring of a fanout group.
    AfPacket,
}

/// `capture.af-packet:`: the rings of `capture.method: af-packet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// `capture.af-packet.ring-size`: bytes of one ring (per worker and interface).
    pub ring_bytes: usize,
    /// `capture.af-packet.block-size`: bytes of one ring block (a multiple of 4 KiB).
    pub block_bytes: usize,
    /// `capture.af-packet.block-timeout`: milliseconds before the kernel hands over a
    /// block that is not full.
    pub block_timeout_ms: u32,
    /// `capture.af-packet.cluster-id`: the PACKET_FANOUT group id.
    pub cluster_id: u16,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            ring_bytes: 32 << 20,
            block_bytes: 1 << 20,
            block_timeout_ms: 10,
            cluster_id: 99,
        }
    }
}

/// `capture:`: live capture (libpcap or AF_PACKET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// `capture.snaplen`: bytes kept of each packet (0: libpcap's default).
    pub snaplen: i32,
    /// `capture.promisc`: put interfaces in promiscuous mode.
    pub promisc: bool,
    /// `capture.buffer-size`: libpcap's kernel buffer, in bytes.
    pub buffer_bytes: u64,
    /// `capture.bpf` (or `--bpf`): a BPF filter for live capture.
    pub bpf: Option<String>,
    /// `capture.method`: libpcap or AF_PACKET rings (`--capture` overrides it).
    pub method: CaptureMethod,
    /// `capture.af-packet.*`.
    pub af_packet: AfPacketConfig,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            snaplen: 65535,
            promisc: true,
            buffer_bytes: 64 << 20,
            bpf: None,
            method: CaptureMethod::Pcap,
            af_packet: AfPacketConfig::default(),
        }
    }
}

impl CaptureConfig {
    /// Sets the field a `capture.*` key names; false for a key this section does not have.
    /// (The ranges are checked as the values are read, by the key table.)
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        let Some(key) = v.key.strip_prefix("capture.") else {
            return Ok(false);
        };
        match key {
            "snaplen" => self.snaplen = v.num()?,
            "promisc" => self.promisc = v.bool()?,
            "buffer-size" => self.buffer_bytes = v.size()?,
            "method" => {
                self.method = match v.scalar()? {
                    "pcap" | "libpcap" => CaptureMethod::Pcap,
                    "af-packet" => CaptureMethod::AfPacket,
                    other => {
                        return Err(format!(
                            "`capture.method` is pcap or af-packet, not {other:?}"
                        ))
                    }
                }
            }
            "af-packet.ring-size" => self.af_packet.ring_bytes = v.size()? as usize,
            "af-packet.block-size" => self.af_packet.block_bytes = v.size()? as usize,
            "af-packet.block-timeout" => self.af_packet.block_timeout_ms = v.num()?,
            "af-packet.cluster-id" => self.af_packet.cluster_id = v.num()?,
            "bpf" => self.bpf = Some(v.scalar()?.to_string()).filter(|s| !s.is_empty()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `defrag:`: IP fragment reassembly on the reader (Suricata's `defrag` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefragConfig {
    /// `defrag.memcap`: bytes of fragments (with their overhead) held at once.
    pub memcap_bytes: u64,
    /// `defrag.timeout`: seconds a fragment waits for the rest of its datagram.
    pub timeout_secs: u64,
    /// `defrag.trackers`: datagrams being reassembled at once.
    pub trackers: usize,
    /// `defrag.policy`: how overlapping fragments are resolved (Suricata's
    /// host-os-policy names).
    pub policy: FragPolicy,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            memcap_bytes: 32 << 20,
            timeout_secs: 60,
            trackers: 65535,
            policy: FragPolicy::Bsd,
        }
    }
}

impl DefragConfig {
    /// Sets the field a `defrag.*` key names; false for a key this section does not have.
    /// (The ranges are checked as the values are read, by the key table.)
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "defrag.memcap" => self.memcap_bytes = v.size()?,
            "defrag.timeout" => self.timeout_secs = v.secs()?,
            "defrag.trackers" => self.trackers = v.num()?,
            "defrag.policy" => {
                let name = overlap_policy(v.scalar()?)?;
                self.policy = FragPolicy::from_name(&name)
                    .ok_or_else(|| format!("unknown defrag policy {name:?}"))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The defragmenter's settings.
    pub fn build(&self) -> zonewatch_defrag::DefragConfig {
        zonewatch_defrag::DefragConfig {
            memcap_bytes: self.memcap_bytes,
            timeout_secs: self.timeout_secs,
            max_trackers: self.trackers,
            policy: self.policy,
            ..Default::default()
        }
    }
}

/// `app-layer.protocols:`: the application-layer parsers zonewatch has, by protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLayerConfig {
    /// `app-layer.protocols.http.enabled`.
    pub http: bool,
    /// `app-layer.protocols.dns.enabled`.
    pub dns: bool,
    /// `app-layer.protocols.tls.enabled`.
    pub tls: bool,
    /// `app-layer.protocols.ssh.enabled`.
    pub ssh: bool,
    /// `app-layer.protocols.http.libhtp.default-config.request-body-limit`: bytes of one
    /// HTTP request body kept per transaction.
    pub http_request_body_limit_bytes: u64,
    /// `app-layer.protocols.http.libhtp.default-config.response-body-limit`: bytes of one
    /// HTTP response body kept per transaction.
    pub http_response_body_limit_bytes: u64,
    /// `app-layer.protocols.tls.encryption-handling` (or Suricata 6's `encrypt-handling`)
    /// is `full`: keep inspecting a TLS session once it is encrypted.
    pub tls_inspect_encrypted: bool,
    /// `app-layer.protocols.ssh.encryption-handling` is `full`: keep inspecting an SSH
    /// session once it is encrypted.
    pub ssh_inspect_encrypted: bool,
    /// `app-layer.protocols.smtp.enabled`.
    pub smtp: bool,
    /// `app-layer.protocols.smtp.mime.header-value-depth`: bytes of a mail header value kept.
    pub smtp_header_value_depth: u64,
    /// `app-layer.protocols.smtp.inspected-tracker.content-limit`: decoded bytes of each
    /// attachment kept for `file_data` rules.
    pub smtp_file_data_depth: u64,
    /// `app-layer.protocols.smtp.log-subject` (zonewatch's): write the mail subject in
    /// `email` records; off by default (personal data).
    pub smtp_log_subject: bool,
    /// `app-layer.files.force-hash` (Suricata's `force-hash` list): `md5` and/or `sha1`
    /// besides sha256 in `fileinfo`.
    pub force_hash: Vec<String>,
}

impl Default for AppLayerConfig {
    fn default() -> Self {
        AppLayerConfig {
            http: true,
            dns: true,
            tls: true,
            ssh: true,
            http_request_body_limit_bytes: 100 * 1024,
            http_response_body_limit_bytes: 100 * 1024,
            tls_inspect_encrypted: false,
            ssh_inspect_encrypted: false,
            smtp: true,
            smtp_header_value_depth: 2000,
            smtp_file_data_depth: 100 * 1024,
            smtp_log_subject: false,
            force_hash: Vec::new(),
        }
    }
}

impl AppLayerConfig {
    /// Sets the field an `app-layer.*` key names; false for a key this section does not
    /// have (Suricata's other app-layer keys are handled by the caller).
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        if v.key == "app-layer.files.force-hash" {
            let list = v.list()?;
            if let Some(h) = list
                .iter()
                .find(|h| !matches!(h.as_str(), "md5" | "sha1" | "sha256"))
            {
                return Err(format!("{h:?} is not md5, sha1 or sha256"));
            }
            self.force_hash = list;
            return Ok(true);
        }
        let Some(key) = v.key.strip_prefix("app-layer.protocols.") else {
            return Ok(false);
        };
        let full = || -> Result<bool, String> {
            match v.scalar()?.trim() {
                "full" => Ok(true),
                "default" | "bypass" => Ok(false),
                s => Err(format!("{s:?} is not default, bypass or full")),
            }
        };
        match key {
            "http.enabled" => self.http = v.bool()?,
            "dns.enabled" => self.dns = v.bool()?,
            "tls.enabled" => self.tls = v.bool()?,
            "ssh.enabled" => self.ssh = v.bool()?,
            "http.libhtp.default-config.request-body-limit" => {
                self.http_request_body_limit_bytes = v.size()?
            }
            "http.libhtp.default-config.response-body-limit" => {
                self.http_response_body_limit_bytes = v.size()?
            }
            "tls.encryption-handling" | "tls.encrypt-handling" => {
                self.tls_inspect_encrypted = full()?
            }
            "ssh.encryption-handling" => self.ssh_inspect_encrypted = full()?,
            "smtp.enabled" => self.smtp = v.bool()?,
            "smtp.mime.header-value-depth" => self.smtp_header_value_depth = v.size()?,
            "smtp.inspected-tracker.content-limit" => self.smtp_file_data_depth = v.size()?,
            "smtp.log-subject" => self.smtp_log_subject = v.bool()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether any parser is on.
    pub fn any_enabled(&self) -> bool {
        self.http || self.dns || self.tls || self.ssh || self.smtp
    }

    /// The app layer's settings (its other bounds at their defaults).
    pub fn build(&self) -> zonewatch_applayer::AppConfig {
        zonewatch_applayer::AppConfig {
            http: self.http,
            dns: self.dns,
            tls: self.tls,
            ssh: self.ssh,
            http_request_body_limit: self.http_request_body_limit_bytes as usize,
            http_response_body_limit: self.http_response_body_limit_bytes as usize,
            tls_inspect_encrypted: self.tls_inspect_encrypted,
            ssh_inspect_encrypted: self.ssh_inspect_encrypted,
            smtp: self.smtp,
            smtp_max_header_value: self.smtp_header_value_depth.max(1) as usize,
            smtp_file_data_depth: self.smtp_file_data_depth as usize,
            smtp_log_subject: self.smtp_log_subject,
            file_hashes: zonewatch_applayer::FileHashes {
                md5: self.force_hash.iter().any(|h| h == "md5"),
                sha1: self.force_hash.iter().any(|h| h == "sha1"),
            },
            ..Default::default()
        }
    }
}

/// `stream:`: TCP session tracking and reassembly (Suricata's `stream` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// `stream.memcap`: bytes of TCP sessions, shared evenly by the workers.
    pub memcap_bytes: u64,
    /// `stream.midstream`: pick up sessions whose handshake was not seen.
    pub midstream: bool,
    /// `stream.async-oneside`: track sessions of which only one direction is seen.
    pub async_oneside: bool,
    /// `stream.reassembly.memcap`: bytes of buffered segments, shared evenly by the workers.
    pub reassembly_memcap_bytes: u64,
    /// `stream.reassembly.depth`: bytes reassembled per direction (0: no limit).
    pub reassembly_depth_bytes: u64,
    /// `stream.reassembly.policy`: how overlapping segments are resolved.
    pub policy: OverlapPolicy,
    /// `stream.reassembly.check-overlap-different-data`: keep unacknowledged bytes to
    /// notice retransmissions with different data.
    pub check_overlap_different_data: bool,
    /// `stream.checksum-validation` (`yes`, `no` or `auto`; `-k` overrides): which
    /// checksums the reader checks (a segment with a bad one is kept out of its stream).
    pub checksum_validation: ChecksumMode,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            memcap_bytes: 256 << 20,
            midstream: false,
            async_oneside: false,
            reassembly_memcap_bytes: 1 << 30,
            reassembly_depth_bytes: 1 << 20,
            policy: OverlapPolicy::Bsd,
            check_overlap_different_data: false,
            checksum_validation: ChecksumMode::Auto,
        }
    }
}

impl StreamConfig {
    /// Sets the field a `stream.*` key names; false for a key this section does not have.
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "stream.checksum-validation" => {
                self.checksum_validation = match v.scalar()? {
                    "auto" => ChecksumMode::Auto,
                    s if parse_bool(s)? => ChecksumMode::All,
                    _ => ChecksumMode::None,
                }
            }
            "stream.memcap" => self.memcap_bytes = v.size()?,
            "stream.midstream" => self.midstream = v.bool()?,
            "stream.async-oneside" => self.async_oneside = v.bool()?,
            "stream.reassembly.check-overlap-different-data" => {
                self.check_overlap_different_data = v.bool()?
            }
            "stream.reassembly.memcap" => self.reassembly_memcap_bytes = v.size()?,
            "stream.reassembly.depth" => self.reassembly_depth_bytes = v.size()?,
            "stream.reassembly.policy" => {
                let name = overlap_policy(v.scalar()?)?;
                self.policy = OverlapPolicy::from_name(&name)
                    .ok_or_else(|| format!("unknown overlap policy {name:?}"))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The reassembler's settings for one of `workers` workers (the reassembly memcap is
    /// shared evenly, like the flow memcap).
    pub fn build(&self, workers: usize) -> zonewatch_stream::StreamConfig {
        zonewatch_stream::StreamConfig {
            depth: self.reassembly_depth_bytes,
            memcap_bytes: self.reassembly_memcap_bytes / workers.max(1) as u64,
            midstream: self.midstream,
            async_oneside: self.async_oneside,
            policy: self.policy,
            retain_unacked_bytes: if self.check_overlap_different_data {
                zonewatch_stream::StreamConfig::default().retain_unacked_bytes
            } else {
                0
            },
            ..Default::default()
        }
    }
}

/// `sensor:`: who writes the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorConfig {
    /// `sensor.name` (or Suricata's `sensor-name`): written as `host` in every event.
    pub name: String,
    /// `sensor.tenant`: the tenant (e.g. the municipality code) written in every event;
    /// empty = none.
    pub tenant: Option<String>,
    /// `sensor.timezone`: the UTC offset timestamps are rendered in.
    pub timezone: UtcOffset,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            name: "zonewatch".into(),
            tenant: None,
            timezone: UtcOffset(0),
        }
    }
}

impl SensorConfig {
    /// Sets the field a `sensor.*` key names; false for a key this section does not have.
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "sensor.name" | "sensor-name" => self.name = v.scalar()?.to_string(),
            "sensor.tenant" => {
                self.tenant = Some(v.scalar()?.to_string()).filter(|s| !s.is_empty())
            }
            "sensor.timezone" => self.timezone = UtcOffset::parse(v.scalar()?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Timeouts of one protocol, in seconds (Suricata's `flow-timeouts`): the
/// flow table's own type, with its defaults (Suricata's shipped values).
pub use zonewatch_flow::StateTimeouts as ProtoTimeouts;
/// `flow-timeouts:`: per protocol, Suricata's `tcp`, `udp`, `icmp` and
/// `default` (the flow table's type and defaults).
pub use zonewatch_flow::Timeouts as FlowTimeouts;

/// The slot `flow-timeouts.<protocol>.<state>` names by its state.
fn timeout_slot<'a>(t: &'a mut ProtoTimeouts, state: &str) -> Option<&'a mut u64> {
    Some(match state {
        "new" => &mut t.new,
        "established" => &mut t.established,
        "closed" => &mut t.closed,
        "emergency-new" => &mut t.emergency_new,
        "emergency-established" => &mut t.emergency_established,
        "emergency-closed" => &mut t.emergency_closed,
        _ => return None,
    })
}

/// `flow:` and `flow-timeouts:`: the flow tables of the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// `flow.memcap`: bytes of flows, shared evenly by the workers.
    pub memcap_bytes: u64,
    /// `flow.hash-seed`: seed of the worker-assignment and flow-id hashes.
    pub hash_seed: u64,
    /// `flow-timeouts.*`.
    pub timeouts: FlowTimeouts,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            memcap_bytes: 256 << 20,
            hash_seed: 0x5eed,
            timeouts: FlowTimeouts::default(),
        }
    }
}

impl FlowConfig {
    /// Sets the field a `flow.*` or `flow-timeouts.<protocol>.<state>` key names; false
    /// for a key this section does not have (Suricata's `bypassed` timeouts among them).
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "flow.memcap" => self.memcap_bytes = v.size()?,
            "flow.hash-seed" => self.hash_seed = v.num()?,
            key => {
                let Some(rest) = key.strip_prefix("flow-timeouts.") else {
                    return Ok(false);
                };
                let Some((proto, state)) = rest.split_once('.') else {
                    return Ok(false);
                };
                let t = match proto {
                    "tcp" => &mut self.timeouts.tcp,
                    "udp" => &mut self.timeouts.udp,
                    "icmp" => &mut self.timeouts.icmp,
                    "default" => &mut self.timeouts.default,
                    _ => return Ok(false),
                };
                let Some(slot) = timeout_slot(t, state) else {
                    return Ok(false);
                };
                *slot = v.secs()?;
            }
        }
        Ok(true)
    }
}

/// `community-id:`: the Community ID flow hash written in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunityIdConfig {
    /// `community-id.enabled` (or `community-id`): write `community_id` in events.
    pub enabled: bool,
    /// `community-id.seed` (or `community-id-seed`).
    pub seed: u16,
}

impl Default for CommunityIdConfig {
    fn default() -> Self {
        CommunityIdConfig {
            enabled: true,
            seed: 0,
        }
    }
}

impl CommunityIdConfig {
    /// Sets the field a `community-id.*` key names; false for a key this section does
    /// not have.
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "community-id.enabled" | "community-id" => self.enabled = v.bool()?,
            "community-id.seed" | "community-id-seed" => self.seed = v.num()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The seed when Community IDs are written, None when they are not.
    pub fn seed_if_enabled(&self) -> Option<u16> {
        self.enabled.then_some(self.seed)
    }
}

/// `stream.checksum-validation` (Suricata's `-k`): which TCP/UDP checksums are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChecksumMode {
    /// `auto`: validate until a sample of the first packets shows offloading.
    #[default]
    Auto,
    /// `yes` (`all`): always validate.
    All,
    /// `no` (`none`): never validate.
    None,
}

/// `alert:`: what of the packet an alert carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertConfig {
    /// `alert.payload`: the packet's payload (`payload`, base64); off by default: a
    /// city network's packets carry personal data.
    pub payload: bool,
    /// `alert.payload-printable`: `payload_printable`.
    pub payload_printable: bool,
    /// `alert.packet`: the whole packet (`packet`, base64).
    pub packet: bool,
}

impl AlertConfig {
    /// Sets the field an `alert.*` key names; false for a key this section does not have.
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "alert.payload" => self.payload = v.bool()?,
            "alert.payload-printable" => self.payload_printable = v.bool()?,
            "alert.packet" => self.packet = v.bool()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `output:`, `stats:` and `metrics:`: where events, periodic stats and metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    /// `output.path` (`-` = stdout; `--output` overrides).
    pub path: Option<String>,
    /// `output.types`: the event types written.
    pub types: Vec<String>,
    /// `stats.interval`: seconds between periodic stats events; 0 = only at the end.
    pub stats_interval_secs: u64,
    /// `metrics.listen`: address of the Prometheus endpoint (`GET /metrics`); none
    /// (the default, `off`) = no endpoint.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            path: None,
            types: EVENT_TYPES.iter().map(|s| s.to_string()).collect(),
            stats_interval_secs: 0,
            metrics_listen: None,
        }
    }
}

impl OutputConfig {
    /// Sets the field an `output.*`, `stats.interval` or `metrics.listen` key names;
    /// false for a key this section does not have.
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "output.path" => self.path = Some(v.scalar()?.to_string()),
            "output.types" => {
                let types = v.list()?;
                if let Some(t) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
                    return Err(format!(
                        "unknown event type {t:?} in `{}` (known: {})",
                        v.key,
                        EVENT_TYPES.join(", ")
                    ));
                }
                self.types = types;
            }
            "stats.interval" => self.stats_interval_secs = v.secs()?,
            "metrics.listen" => self.metrics_listen = parse_listen(v.scalar()?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `detect:` and the detection files: settings of the signature engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectConfig {
    /// `detect.stream-window`: bytes of already inspected stream kept per direction,
    /// so patterns and relative matches spanning segments match.
    pub stream_window_bytes: u64,
    /// `classification-file`: replaces the built-in classification.config.
    pub classification_file: Option<PathBuf>,
    /// `threshold-file`: Suricata's threshold.config.
    pub threshold_file: Option<PathBuf>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            stream_window_bytes: 1024,
            classification_file: None,
            threshold_file: None,
        }
    }
}

impl DetectConfig {
    /// Sets the field a `detect.*`, `classification-file` or `threshold-file` key names;
    /// false for a key this section does not have (Suricata's other `detect` keys are
    /// handled by the caller).
    pub(crate) fn apply(&mut self, v: &KeyValue) -> Result<bool, String> {
        match v.key {
            "detect.stream-window" => self.stream_window_bytes = v.size()?,
            "classification-file" => self.classification_file = Some(v.scalar()?.into()),
            "threshold-file" => self.threshold_file = Some(v.scalar()?.into()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}
