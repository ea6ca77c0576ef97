//! The `bench` traffic mix: many interleaved HTTP, TLS, DNS and SSH flows.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::content::{self, BodyKind, DnsAnswer, Msg, MsgBuilder};
use crate::packet::{self, Endpoint, TcpSeg, ACK, FIN, PSH, RST, SYN};
use crate::pcap::{PcapWriter, RECORD_HEADER_LEN};
use crate::rng::Rng;

/// Capture start: 2024-06-01 12:00:00 UTC, in microseconds.
pub const START_US: u64 = 1_717_243_200 * 1_000_000;
/// MAC of the upstream router: every public host is seen behind it.
pub const ROUTER_MAC: [u8; 6] = [0x00, 0x1c, 0x73, 0x0a, 0x0b, 0x01];

#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Stop starting new flows once the file would reach this many bytes.
    pub size_bytes: u64,
    /// Target number of flows (at least this many are generated).
    pub flows: u64,
    pub seed: u64,
    /// Number of concurrently active flows.
    pub active: usize,
    /// Mean gap between packets in microseconds.
    pub mean_gap_us: f64,
}

impl BenchConfig {
    pub fn new(size_bytes: u64, flows: u64, seed: u64) -> Self {
        BenchConfig {
            size_bytes,
            flows,
            seed,
            active: 2000,
            mean_gap_us: 20.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http = 0,
    Tls = 1,
    Dns = 2,
    Ssh = 3,
}

pub const PROTO_NAMES: [&str; 4] = ["http", "tls", "dns", "ssh"];

#[derive(Clone, Debug, Default)]
pub struct BenchSummary {
    pub packets: u64,
    pub file_bytes: u64,
    pub frame_bytes: u64,
    pub flows: u64,
    pub by_proto: [u64; 4],
    pub ipv6_flows: u64,
    pub rst_flows: u64,
    /// TCP flows that reused the 4-tuple of an earlier, closed flow.
    pub reused_tuples: u64,
    pub first_ts_us: u64,
    pub last_ts_us: u64,
}

impl BenchSummary {
    pub fn avg_frame(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.frame_bytes as f64 / self.packets as f64
        }
    }
}

impl fmt::Display for BenchSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "packets={} bytes={} avg_frame={:.1} flows={} (http={} tls={} dns={} ssh={}; ipv6={} rst={} reused={}) capture_span={:.3}s",
            self.packets,
            self.file_bytes,
            self.avg_frame(),
            self.flows,
            self.by_proto[0],
            self.by_proto[1],
            self.by_proto[2],
            self.by_proto[3],
            self.ipv6_flows,
            self.rst_flows,
            self.reused_tuples,
            self.last_ts_us.saturating_sub(self.first_ts_us) as f64 / 1e6
        )
    }
}

// ---------------------------------------------------------------- the world

struct Server {
    v4: [u8; 4],
    v6: [u8; 16],
    name: String,
    ttl: u8,
}

struct Client {
    ip: IpAddr,
    mac: [u8; 6],
    ttl: u8,
    next_port: u16,
}

/// A NAT gateway or proxy in front of many users: it opens short
/// `Connection: close` HTTP flows to one upstream server from a small pool
/// of source ports, so closed 4-tuples come back (as on a real span port,
/// where port reuse is what a sensor's TCP session handling must get right).
struct NatClient {
    ip: IpAddr,
    mac: [u8; 6],
    upstream: usize,
    /// Ports whose last flow has ended, oldest first.
    free: VecDeque<u16>,
    /// Ports ever used (a port is reused once it is in `free` again).
    used: HashSet<u16>,
    next_fresh: u16,
}

/// Source ports per NAT client: small, so ports come back often.
const NAT_PORTS: u16 = 4;

struct World {
    nat: Vec<NatClient>,
    servers: Vec<Server>,
    ssh_servers: Vec<usize>,
    resolvers: Vec<Server>,
    clients4: Vec<Client>,
    clients6: Vec<Client>,
    corpus: Vec<u8>,
}

const PREFIXES: &[&str] = &[
    "www", "api", "cdn", "static", "img", "login", "mail", "app", "m", "news", "shop", "video",
    "assets", "media", "auth", "edge",
];
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "ven", "tor", "zi", "pa", "nor", "el", "qu", "dex", "sol", "bri",
    "mon", "tal", "gra", "fi", "neo", "vox", "sta", "lin", "mar", "tek",
];
const TLDS: &[&str] = &[
    "com", "net", "org", "io", "de", "fr", "nl", "co.uk", "info", "eu",
];

fn host_name(rng: &mut Rng) -> String {
    let mut s = format!(
        "{}.{}{}",
        rng.pick(PREFIXES),
        rng.pick(SYLLABLES),
        rng.pick(SYLLABLES)
    );
    if rng.chance(0.3) {
        let syl = *rng.pick(SYLLABLES);
        s.push_str(syl);
    }
    if rng.chance(0.2) {
        s.push_str(&rng.range(1, 99).to_string());
    }
    s.push('.');
    let tld = *rng.pick(TLDS);
    s.push_str(tld);
    s
}

fn client_mac(ip: &IpAddr) -> [u8; 6] {
    let tail = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x42, tail[0] ^ tail[1], tail[1], tail[2], tail[3]]
}

fn server_ttl(rng: &mut Rng) -> u8 {
    let base: u64 = if rng.chance(0.8) { 64 } else { 128 };
    (base - rng.range(4, 22)) as u8
}

fn v6_addr(prefix: [u8; 6], iid: u64) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..6].copy_from_slice(&prefix);
    a[8..].copy_from_slice(&iid.to_be_bytes());
    a
}

impl World {
    fn new(rng: &mut Rng) -> World {
        let mut servers = Vec::with_capacity(3000);
        for i in 0..3000usize {
            let v4 = if i < 254 {
                [203, 0, 113, (i + 1) as u8]
            } else if i < 508 {
                [198, 51, 100, (i - 254 + 1) as u8]
            } else {
                let j = i - 508;
                [93, 184, (j / 254) as u8, (j % 254 + 1) as u8]
            };
            servers.push(Server {
                v4,
                v6: v6_addr([0x20, 0x01, 0x0d, 0xb8, 0x5e, 0x00], i as u64 + 1),
                name: host_name(rng),
                ttl: server_ttl(rng),
            });
        }
        let mut ssh_servers = Vec::new();
        while ssh_servers.len() < 150 {
            let i = rng.index(servers.len());
            if !ssh_servers.contains(&i) {
                ssh_servers.push(i);
            }
        }
        let resolvers = [
            ([203, 0, 113, 53], 0x53u64),
            ([198, 51, 100, 53], 0x5353),
            ([93, 184, 216, 53], 0x535353),
            ([93, 184, 217, 53], 0x53535353),
        ]
        .into_iter()
        .map(|(v4, iid)| Server {
            v4,
            v6: v6_addr([0x20, 0x01, 0x0d, 0xb8, 0x00, 0x53], iid),
            name: String::new(),
            ttl: server_ttl(rng),
        })
        .collect();

        let mut seen = HashSet::new();
        let mut clients4 = Vec::with_capacity(16_000);
        while clients4.len() < 16_000 {
            let ip = if clients4.len() < 12_000 {
                Ipv4Addr::new(
                    10,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                    rng.range(1, 254) as u8,
                )
            } else {
                Ipv4Addr::new(192, 168, rng.below(256) as u8, rng.range(1, 254) as u8)
            };
            if seen.insert(ip) {
                let ip = IpAddr::V4(ip);
                clients4.push(Client {
                    ip,
                    mac: client_mac(&ip),
                    ttl: if rng.chance(0.7) { 64 } else { 128 },
                    next_port: rng.range(32_768, 60_999) as u16,
                });
            }
        }
        let mut clients6 = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let ip = IpAddr::V6(Ipv6Addr::from(v6_addr(
                [0x20, 0x01, 0x0d, 0xb8, 0xc1, rng.below(16) as u8],
                rng.next_u64(),
            )));
            clients6.push(Client {
                ip,
                mac: client_mac(&ip),
                ttl: 64,
                next_port: rng.range(32_768, 60_999) as u16,
            });
        }
        let corpus = content::build_corpus(rng, 96 * 1024);
        let nat = (0..4u8)
            .map(|i| {
                let ip = IpAddr::V4(Ipv4Addr::new(10, 255, 0, i + 1));
                NatClient {
                    ip,
                    mac: client_mac(&ip),
                    upstream: usize::from(i % 4),
                    free: VecDeque::new(),
                    used: HashSet::new(),
                    next_fresh: 40_000 + 100 * u16::from(i),
                }
            })
            .collect();
        World {
            nat,
            servers,
            ssh_servers,
            resolvers,
            clients4,
            clients6,
            corpus,
        }
    }

    /// Popularity-skewed server choice.
    fn pick_server(&self, rng: &mut Rng) -> usize {
        let u = rng.f64();
        ((self.servers.len() as f64) * u * u * u) as usize % self.servers.len()
    }

    /// Picks a client and allocates it a fresh ephemeral port.
    fn client_endpoint(&mut self, rng: &mut Rng, v6: bool) -> Endpoint {
        let pool = if v6 {
            &mut self.clients6
        } else {
            &mut self.clients4
        };
        let i = rng.index(pool.len());
        let c = &mut pool[i];
        let port = c.next_port;
        let step = 1 + rng.below(7) as u16;
        c.next_port = if port >= 60_999 - step {
            32_768
        } else {
            port + step
        };
        Endpoint {
            mac: c.mac,
            ip: c.ip,
            port,
            ttl: c.ttl,
        }
    }
}

impl NatClient {
    /// The least recently freed port once the pool is used up, else a fresh
    /// one; `true` when the port (and so the 4-tuple) is reused.
    fn take_port(&mut self) -> (u16, bool) {
        if self.used.len() >= usize::from(NAT_PORTS) {
            if let Some(p) = self.free.pop_front() {
                return (p, true);
            }
        }
        let p = self.next_fresh;
        self.next_fresh += 1;
        self.used.insert(p);
        (p, false)
    }
}

fn server_endpoint(s: &Server, v6: bool, port: u16) -> Endpoint {
    Endpoint {
        mac: ROUTER_MAC,
        ip: if v6 {
            IpAddr::V6(Ipv6Addr::from(s.v6))
        } else {
            IpAddr::V4(Ipv4Addr::from(s.v4))
        },
        port,
        ttl: s.ttl,
    }
}

// ---------------------------------------------------------------- flows

/// Smallest tail segment when a message spans several segments.
const MIN_TAIL: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TcpState {
    Syn,
    SynAck,
    HandshakeAck,
    Data,
    Fin1,
    Fin2,
    Fin3,
    Rst,
    Done,
}

#[derive(Clone, Copy, Debug)]
enum Close {
    /// Orderly FIN/ACK close started by the client (or the server).
    Fin { client_first: bool },
    /// Abortive close with an RST from the client (or the server).
    Rst { from_client: bool },
}

struct TcpFlow {
    c: Endpoint,
    s: Endpoint,
    c_isn: u32,
    s_isn: u32,
    c_next: u32,
    s_next: u32,
    c_ipid: u32,
    s_ipid: u32,
    v6: bool,
    c_win: u16,
    s_win: u16,
    c_wscale: u8,
    s_wscale: u8,
    mss: usize,
    state: TcpState,
    msgs: VecDeque<Msg>,
    unacked: u32,
    unacked_from_client: bool,
    close: Close,
}

struct DnsFlow {
    c: Endpoint,
    s: Endpoint,
    ipid_c: u32,
    ipid_s: u32,
    query: Vec<u8>,
    response: Vec<u8>,
    sent: u8,
}

enum FlowKind {
    Tcp(Box<TcpFlow>),
    Dns(Box<DnsFlow>),
}

struct Flow {
    kind: FlowKind,
    /// The NAT client and port to give back when this flow ends.
    nat_port: Option<(usize, u16)>,
    /// Estimated pcap bytes this flow will still produce.
    outstanding: i64,
}

/// Scratch state shared by all flows while emitting packets.
struct Emit<'a> {
    rng: &'a mut Rng,
    corpus: &'a [u8],
    frame: &'a mut Vec<u8>,
    payload: &'a mut Vec<u8>,
}

impl TcpFlow {
    fn hdr_len(&self) -> usize {
        packet::ETH_LEN + if self.v6 { 40 } else { 20 } + 20
    }

    /// Rough pcap byte count of the whole flow (for size planning).
    fn estimate(&self) -> i64 {
        let rec = RECORD_HEADER_LEN as usize;
        let hdr = self.hdr_len();
        let small = rec + hdr.max(packet::MIN_FRAME);
        let mut total = 3 * (small + 12) + 3 * small;
        for m in &self.msgs {
            let segs = m.len().div_ceil(self.mss);
            total += m.len() + segs * (hdr + rec) + (segs / 2 + 1) * small;
        }
        total as i64
    }

    fn send(&mut self, from_client: bool, seg: &TcpSeg<'_>, frame: &mut Vec<u8>) {
        let (src, dst, id) = if from_client {
            (&self.c, &self.s, &mut self.c_ipid)
        } else {
            (&self.s, &self.c, &mut self.s_ipid)
        };
        packet::tcp_frame(frame, src, dst, *id, seg);
        if !self.v6 {
            *id = id.wrapping_add(1) & 0xffff;
        }
    }

    /// A segment from one side carrying the current seq/ack of both sides.
    fn send_flags(&mut self, from_client: bool, flags: u8, payload: &[u8], frame: &mut Vec<u8>) {
        let (seq, ack, win) = if from_client {
            (self.c_next, self.s_next, self.c_win)
        } else {
            (self.s_next, self.c_next, self.s_win)
        };
        let seg = TcpSeg {
            seq,
            ack,
            flags,
            window: win,
            options: &[],
            payload,
        };
        self.send(from_client, &seg, frame);
        let adv = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        if from_client {
            self.c_next = self.c_next.wrapping_add(adv);
        } else {
            self.s_next = self.s_next.wrapping_add(adv);
        }
    }

    fn send_ack_for_unacked(&mut self, frame: &mut Vec<u8>) {
        let from_client = !self.unacked_from_client;
        self.send_flags(from_client, ACK, &[], frame);
        self.unacked = 0;
    }

    /// Emits the next packet of the flow; returns true when the flow is finished.
    fn next_packet(&mut self, e: &mut Emit<'_>) -> bool {
        loop {
            match self.state {
                TcpState::Syn => {
                    let opts = packet::syn_options(self.mss as u16, self.c_wscale);
                    let seg = TcpSeg {
                        seq: self.c_isn,
                        ack: 0,
                        flags: SYN,
                        window: if self.c.ttl == 128 { 65_535 } else { 64_240 },
                        options: &opts,
                        payload: &[],
                    };
                    self.send(true, &seg, e.frame);
                    self.c_next = self.c_isn.wrapping_add(1);
                    self.state = TcpState::SynAck;
                    return false;
                }
                TcpState::SynAck => {
                    let server_mss = if self.v6 { 1440 } else { 1460 };
                    let opts = packet::syn_options(server_mss, self.s_wscale);
                    let seg = TcpSeg {
                        seq: self.s_isn,
                        ack: self.c_next,
                        flags: SYN | ACK,
                        window: 65_160,
                        options: &opts,
                        payload: &[],
                    };
                    self.send(false, &seg, e.frame);
                    self.s_next = self.s_isn.wrapping_add(1);
                    self.state = TcpState::HandshakeAck;
                    return false;
                }
                TcpState::HandshakeAck => {
                    self.send_flags(true, ACK, &[], e.frame);
                    self.state = TcpState::Data;
                    return false;
                }
                TcpState::Data => {
                    if self.unacked >= 2 {
                        self.send_ack_for_unacked(e.frame);
                        return false;
                    }
                    let Some(m) = self.msgs.front_mut() else {
                        if self.unacked > 0 {
                            self.send_ack_for_unacked(e.frame);
                            return false;
                        }
                        self.state = match self.close {
                            Close::Fin { .. } => TcpState::Fin1,
                            Close::Rst { .. } => TcpState::Rst,
                        };
                        continue;
                    };
                    if m.is_empty() {
                        self.msgs.pop_front();
                        let next_same_dir = self
                            .msgs
                            .front()
                            .is_none_or(|n| n.from_client == self.unacked_from_client);
                        if self.unacked > 0 && next_same_dir {
                            self.send_ack_for_unacked(e.frame);
                            return false;
                        }
                        continue;
                    }
                    let from_client = m.from_client;
                    // Keep the last segment of a message at least MIN_TAIL bytes long
                    // (tshark's SSH dissector throws on short opaque segments).
                    let mut n = self.mss.min(m.len());
                    if m.len() > n && m.len() - n < MIN_TAIL {
                        n = m.len() - MIN_TAIL;
                    }
                    m.take(n, e.payload, e.rng, e.corpus);
                    let last = m.is_empty();
                    if self.unacked > 0 && self.unacked_from_client != from_client {
                        // The data segment acknowledges everything received so far.
                        self.unacked = 0;
                    }
                    let flags = if last { ACK | PSH } else { ACK };
                    let payload = std::mem::take(e.payload);
                    self.send_flags(from_client, flags, &payload, e.frame);
                    *e.payload = payload;
                    self.unacked += 1;
                    self.unacked_from_client = from_client;
                    return false;
                }
                TcpState::Fin1 | TcpState::Fin2 | TcpState::Fin3 => {
                    let Close::Fin { client_first } = self.close else {
                        unreachable!()
                    };
                    let (from_client, flags, next) = match self.state {
                        TcpState::Fin1 => (client_first, FIN | ACK, TcpState::Fin2),
                        TcpState::Fin2 => (!client_first, FIN | ACK, TcpState::Fin3),
                        _ => (client_first, ACK, TcpState::Done),
                    };
                    self.send_flags(from_client, flags, &[], e.frame);
                    self.state = next;
                    return next == TcpState::Done;
                }
                TcpState::Rst => {
                    let Close::Rst { from_client } = self.close else {
                        unreachable!()
                    };
                    self.send_flags(from_client, RST | ACK, &[], e.frame);
                    self.state = TcpState::Done;
                    return true;
                }
                TcpState::Done => unreachable!("finished flow scheduled"),
            }
        }
    }
}

impl DnsFlow {
    fn next_packet(&mut self, e: &mut Emit<'_>) -> bool {
        if self.sent == 0 {
            packet::udp_frame(e.frame, &self.c, &self.s, self.ipid_c, &self.query);
            self.sent = 1;
            false
        } else {
            packet::udp_frame(e.frame, &self.s, &self.c, self.ipid_s, &self.response);
            self.sent = 2;
            true
        }
    }

    fn estimate(&self) -> i64 {
        let hdr = packet::ETH_LEN + if self.c.ip.is_ipv6() { 40 } else { 20 } + 8;
        (2 * (RECORD_HEADER_LEN as usize + hdr) + self.query.len() + self.response.len()) as i64
    }
}

impl Flow {
    fn next_packet(&mut self, e: &mut Emit<'_>) -> bool {
        match &mut self.kind {
            FlowKind::Tcp(t) => t.next_packet(e),
            FlowKind::Dns(d) => d.next_packet(e),
        }
    }
}

// ---------------------------------------------------------------- planning

const DNS_PERCENT: u64 = 30;
const DNS_SHARE: f64 = DNS_PERCENT as f64 / 100.0;

struct Planner {
    rng: Rng,
    world: World,
    /// Multiplier applied to bulk transfer sizes to hit the flow-count target.
    scale: f64,
}

/// Most clients offer HTTP/2 and HTTP/1.1 via ALPN, some only HTTP/1.1.
fn rng_h2(rng: &mut Rng) -> bool {
    rng.chance(0.8)
}

fn scaled(rng: &mut Rng, scale: f64, lo: f64, hi: f64) -> usize {
    (rng.log_uniform(lo, hi) * scale).clamp(64.0, 4.0 * 1024.0 * 1024.0) as usize
}

impl Planner {
    fn new_tcp(&mut self, v6: bool, server: usize, port: u16) -> TcpFlow {
        let rng = &mut self.rng;
        let c = self.world.client_endpoint(rng, v6);
        let s = server_endpoint(&self.world.servers[server], v6, port);
        let mss = match (v6, rng.below(100)) {
            (false, 0..=84) => 1460,
            (false, 85..=92) => 1400,
            (false, _) => 1380,
            (true, 0..=89) => 1440,
            (true, _) => 1380,
        };
        let close = if rng.chance(0.03) {
            Close::Rst {
                from_client: rng.chance(0.6),
            }
        } else {
            Close::Fin {
                client_first: rng.chance(0.6),
            }
        };
        let c_isn = rng.next_u32();
        let s_isn = rng.next_u32();
        TcpFlow {
            c,
            s,
            c_isn,
            s_isn,
            c_next: c_isn,
            s_next: s_isn,
            c_ipid: if v6 {
                rng.below(1 << 20) as u32
            } else {
                u32::from(rng.next_u16())
            },
            s_ipid: if v6 {
                rng.below(1 << 20) as u32
            } else {
                u32::from(rng.next_u16())
            },
            v6,
            c_win: 502,
            s_win: 501,
            c_wscale: 7,
            s_wscale: 7,
            mss,
            state: TcpState::Syn,
            msgs: VecDeque::new(),
            unacked: 0,
            unacked_from_client: false,
            close,
        }
    }

    fn plan_http(&mut self, v6: bool, now_us: u64) -> TcpFlow {
        let server = self.world.pick_server(&mut self.rng);
        let mut f = self.new_tcp(v6, server, 80);
        let rng = &mut self.rng;
        let host = &self.world.servers[server].name;
        let exchanges = match rng.below(100) {
            0..=69 => 1,
            70..=89 => 2,
            _ => rng.range(3, 5),
        };
        for _ in 0..exchanges {
            let post = rng.chance(0.15);
            let mut req = MsgBuilder::new();
            req.bytes(content::http_request(rng, host, post, false));
            f.msgs.push_back(req.build(true));
            let body = scaled(rng, self.scale, 2.0 * 1024.0, 100.0 * 1024.0);
            let kind = match rng.below(10) {
                0..=4 => BodyKind::Html,
                5..=6 => BodyKind::Script,
                _ => BodyKind::Binary,
            };
            let resp = content::http_response(
                rng,
                now_us / 1_000_000,
                body,
                kind,
                self.world.corpus.len(),
                false,
            );
            f.msgs.push_back(resp.build(false));
        }
        f
    }

    /// One `Connection: close` request from a NAT client to its upstream;
    /// the server closes first, as servers do after `Connection: close`.
    /// Returns the flow, the client and port to free at its end, and whether
    /// the 4-tuple is a reused one.
    fn plan_http_nat(&mut self, now_us: u64) -> (TcpFlow, (usize, u16), bool) {
        let k = self.rng.index(self.world.nat.len());
        let server = self.world.nat[k].upstream;
        let mut f = self.new_tcp(false, server, 80);
        let (port, reused) = self.world.nat[k].take_port();
        let n = &self.world.nat[k];
        f.c = Endpoint {
            mac: n.mac,
            ip: n.ip,
            port,
            ttl: 64,
        };
        f.close = Close::Fin {
            client_first: false,
        };
        let rng = &mut self.rng;
        let host = &self.world.servers[server].name;
        let mut req = MsgBuilder::new();
        req.bytes(content::http_request(rng, host, false, true));
        f.msgs.push_back(req.build(true));
        let body = scaled(rng, self.scale, 512.0, 16.0 * 1024.0);
        let resp = content::http_response(
            rng,
            now_us / 1_000_000,
            body,
            BodyKind::Html,
            self.world.corpus.len(),
            true,
        );
        f.msgs.push_back(resp.build(false));
        (f, (k, port), reused)
    }

    fn plan_tls(&mut self, v6: bool) -> TcpFlow {
        let server = self.world.pick_server(&mut self.rng);
        let mut f = self.new_tcp(v6, server, 443);
        let rng = &mut self.rng;
        let sni = &self.world.servers[server].name;
        let offer_h2 = rng_h2(rng);
        let (ch, sid) = content::tls_client_hello(rng, sni, offer_h2);
        let mut m = MsgBuilder::new();
        m.bytes(ch);
        f.msgs.push_back(m.build(true));
        // ServerHello + CCS + encrypted EncryptedExtensions/Certificate/CertificateVerify/Finished.
        let mut m = MsgBuilder::new();
        m.bytes(content::tls_server_hello(rng, &sid));
        content::tls_app_data(&mut m, rng.range(2_400, 5_200) as usize);
        f.msgs.push_back(m.build(false));
        // Client CCS + Finished, then the first request.
        let mut m = MsgBuilder::new();
        m.bytes(content::tls_change_cipher_spec());
        content::tls_app_data(&mut m, 53);
        content::tls_app_data(&mut m, rng.range(90, 900) as usize);
        f.msgs.push_back(m.build(true));
        let exchanges = match rng.below(100) {
            0..=59 => 1,
            60..=84 => 2,
            _ => rng.range(3, 6),
        };
        for i in 0..exchanges {
            if i > 0 {
                let mut m = MsgBuilder::new();
                content::tls_app_data(&mut m, rng.range(60, 1_200) as usize);
                f.msgs.push_back(m.build(true));
            }
            let mut m = MsgBuilder::new();
            if i == 0 {
                // NewSessionTicket records.
                content::tls_app_data(&mut m, rng.range(230, 280) as usize);
                content::tls_app_data(&mut m, rng.range(230, 280) as usize);
            }
            let total = scaled(rng, self.scale, 1024.0, 100.0 * 1024.0);
            content::tls_app_data(&mut m, total);
            f.msgs.push_back(m.build(false));
        }
        if matches!(f.close, Close::Fin { client_first: true }) {
            let mut m = MsgBuilder::new();
            content::tls_app_data(&mut m, 19); // encrypted close_notify alert
            f.msgs.push_back(m.build(true));
        }
        f
    }

    fn plan_ssh(&mut self, v6: bool) -> TcpFlow {
        let server = *self.rng.pick(&self.world.ssh_servers);
        let mut f = self.new_tcp(v6, server, 22);
        let rng = &mut self.rng;
        let one = |from_client: bool, v: Vec<u8>| {
            let mut m = MsgBuilder::new();
            m.bytes(v);
            m.build(from_client)
        };
        f.msgs.push_back(one(false, content::SSH_BANNER.to_vec()));
        f.msgs.push_back(one(true, content::SSH_BANNER.to_vec()));
        f.msgs.push_back(one(true, content::ssh_kexinit(rng, true)));
        f.msgs
            .push_back(one(false, content::ssh_kexinit(rng, false)));
        f.msgs.push_back(one(true, content::ssh_ecdh_init(rng)));
        f.msgs
            .push_back(one(false, content::ssh_ecdh_reply_newkeys(rng)));
        let mut m = MsgBuilder::new();
        m.bytes(content::ssh_newkeys(rng));
        content::ssh_encrypted(&mut m, 17); // SERVICE_REQUEST ssh-userauth
        f.msgs.push_back(m.build(true));
        // EXT_INFO + SERVICE_ACCEPT, userauth exchange.
        let enc = |rng: &mut Rng, from_client: bool, lo: u64, hi: u64, n: usize| {
            let mut m = MsgBuilder::new();
            for _ in 0..n {
                content::ssh_encrypted(&mut m, rng.range(lo, hi) as usize);
            }
            m.build(from_client)
        };
        f.msgs.push_back(enc(rng, false, 100, 300, 2));
        f.msgs.push_back(enc(rng, true, 60, 80, 1));
        f.msgs.push_back(enc(rng, false, 40, 60, 1));
        f.msgs.push_back(enc(rng, true, 380, 700, 1));
        f.msgs.push_back(enc(rng, false, 10, 30, 1));
        // Channel open / session setup.
        f.msgs.push_back(enc(rng, true, 30, 120, 2));
        f.msgs.push_back(enc(rng, false, 30, 600, 3));
        if rng.chance(0.6) {
            // Interactive session: keystrokes and echoes / command output.
            let rounds = (rng.range(10, 120) as f64 * self.scale.sqrt()).max(2.0) as usize;
            for _ in 0..rounds {
                f.msgs.push_back(enc(rng, true, 1, 12, 1));
                let out = if rng.chance(0.85) {
                    1
                } else {
                    rng.range(2, 12) as usize
                };
                f.msgs.push_back(enc(rng, false, 1, 400, out));
            }
        } else {
            // Bulk transfer (scp/sftp download).
            f.msgs.push_back(enc(rng, true, 40, 120, 2));
            let mut total = scaled(rng, self.scale, 8.0 * 1024.0, 200.0 * 1024.0);
            let mut m = MsgBuilder::new();
            while total > 0 {
                let n = total.min(32_768);
                content::ssh_encrypted(&mut m, n);
                total -= n;
            }
            f.msgs.push_back(m.build(false));
        }
        f.msgs.push_back(enc(rng, true, 20, 60, 2)); // channel close / disconnect
        f
    }

    fn plan_dns(&mut self, v6: bool) -> DnsFlow {
        let rng = &mut self.rng;
        let c = self.world.client_endpoint(rng, v6);
        let res = &self.world.resolvers[rng.index(self.world.resolvers.len())];
        let s = server_endpoint(res, v6, 53);
        let target = self.world.pick_server(rng);
        let id = rng.next_u16();
        let qtype = if rng.chance(0.7) {
            content::DNS_A
        } else {
            content::DNS_AAAA
        };
        let ttl = *rng.pick(&[60u32, 300, 600, 3600, 86_400]);
        let (name, response);
        if rng.chance(0.03) {
            name = format!("{}.{}", rng.pick(SYLLABLES), host_name(rng));
            response = content::dns_response(id, &name, qtype, 3, 0, &[]);
        } else {
            name = self.world.servers[target].name.clone();
            let mut addrs: Vec<Vec<u8>> = Vec::new();
            let n = if rng.chance(0.7) {
                1
            } else {
                rng.range(2, 4) as usize
            };
            for k in 0..n {
                let srv = if k == 0 {
                    &self.world.servers[target]
                } else {
                    &self.world.servers[rng.index(self.world.servers.len())]
                };
                addrs.push(if qtype == content::DNS_A {
                    srv.v4.to_vec()
                } else {
                    srv.v6.to_vec()
                });
            }
            let cname = format!(
                "{}.edge.{}",
                rng.pick(SYLLABLES),
                rng.pick(&["cdnnet.net", "fastedge.com"])
            );
            let mut answers = Vec::new();
            if rng.chance(0.25) {
                answers.push(DnsAnswer::Cname(&cname));
            }
            answers.extend(addrs.iter().map(|a| DnsAnswer::Addr(a)));
            response = content::dns_response(id, &name, qtype, 0, ttl, &answers);
        }
        let query = content::dns_query(id, &name, qtype);
        DnsFlow {
            c,
            s,
            ipid_c: if v6 {
                rng.below(1 << 20) as u32
            } else {
                u32::from(rng.next_u16())
            },
            ipid_s: if v6 {
                rng.below(1 << 20) as u32
            } else {
                u32::from(rng.next_u16())
            },
            query,
            response,
            sent: 0,
        }
    }

    /// Picks a protocol (by flow count: 30% DNS, 31% HTTP (a fifth of it
    /// through NAT clients), 32% TLS, 7% SSH) and plans a flow; the flag
    /// says whether it reuses a closed flow's 4-tuple.
    fn plan(&mut self, now_us: u64) -> (Proto, bool, Flow, bool) {
        let r = self.rng.below(100);
        let v6 = self.rng.chance(0.05);
        let (mut nat_port, mut reused) = (None, false);
        let (proto, kind) = match r {
            0..DNS_PERCENT => (Proto::Dns, FlowKind::Dns(Box::new(self.plan_dns(v6)))),
            30..=60 if self.rng.chance(0.2) => {
                let (f, port, again) = self.plan_http_nat(now_us);
                (nat_port, reused) = (Some(port), again);
                (Proto::Http, FlowKind::Tcp(Box::new(f)))
            }
            30..=60 => (
                Proto::Http,
                FlowKind::Tcp(Box::new(self.plan_http(v6, now_us))),
            ),
            61..=92 => (Proto::Tls, FlowKind::Tcp(Box::new(self.plan_tls(v6)))),
            _ => (Proto::Ssh, FlowKind::Tcp(Box::new(self.plan_ssh(v6)))),
        };
        let outstanding = match &kind {
            FlowKind::Tcp(t) => t.estimate(),
            FlowKind::Dns(d) => d.estimate(),
        };
        let flow = Flow {
            kind,
            outstanding,
            nat_port,
        };
        (proto, v6 && nat_port.is_none(), flow, reused)
    }
}

// ---------------------------------------------------------------- driver

/// Writes the bench mix to `w` as a pcap stream.
pub fn generate<W: Write>(w: W, cfg: &BenchConfig) -> io::Result<BenchSummary> {
    let mut rng = Rng::new(cfg.seed);
    let mut world_rng = rng.fork();
    let world = World::new(&mut world_rng);
    let mut planner = Planner {
        rng: rng.fork(),
        world,
        scale: 1.0,
    };
    let mut emit_rng = rng.fork();
    let corpus = planner.world.corpus.clone();

    let mut out = PcapWriter::new(w)?;
    let mut sum = BenchSummary::default();
    let mut active: Vec<Flow> = Vec::with_capacity(cfg.active + 1);
    let mut outstanding: i64 = 0;
    // Running means used to size bulk transfers so that about `cfg.flows` flows
    // fill the size budget: DNS flows are fixed-size, TCP bulk sizes scale.
    // Aim a little above the requested count so that it is reliably reached.
    let flow_goal = cfg.flows + cfg.flows / 25;
    let mut ema_dns = 300.0f64;
    let mut ema_tcp_unit = 40_000.0f64;
    let mut ts = START_US;
    let mut frame = Vec::with_capacity(2048);
    let mut payload = Vec::with_capacity(2048);

    loop {
        // Start flows while the size budget (bytes written plus the estimated
        // remainder of the active flows) allows; finishing flows release the
        // slack of their estimates, so the file ends close to the target size.
        while active.len() < cfg.active.max(1) {
            if out.file_bytes as i64 + outstanding >= cfg.size_bytes as i64 {
                break;
            }
            if sum.flows < flow_goal {
                let budget_left =
                    cfg.size_bytes as f64 - out.file_bytes as f64 - outstanding as f64;
                let need = budget_left / (flow_goal - sum.flows) as f64;
                let tcp_need = (need - DNS_SHARE * ema_dns) / (1.0 - DNS_SHARE);
                planner.scale = (tcp_need / ema_tcp_unit).clamp(0.05, 8.0);
            }
            let (proto, v6, flow, reused) = planner.plan(ts);
            sum.reused_tuples += u64::from(reused);
            if proto == Proto::Dns {
                ema_dns = 0.99 * ema_dns + 0.01 * flow.outstanding as f64;
            } else {
                ema_tcp_unit = 0.99 * ema_tcp_unit + 0.01 * flow.outstanding as f64 / planner.scale;
            }
            outstanding += flow.outstanding;
            sum.flows += 1;
            sum.by_proto[proto as usize] += 1;
            sum.ipv6_flows += u64::from(v6);
            if let FlowKind::Tcp(t) = &flow.kind {
                sum.rst_flows += u64::from(matches!(t.close, Close::Rst { .. }));
            }
            active.push(flow);
        }
        if active.is_empty() {
            break;
        }
        let i = emit_rng.index(active.len());
        let mut e = Emit {
            rng: &mut emit_rng,
            corpus: &corpus,
            frame: &mut frame,
            payload: &mut payload,
        };
        let done = active[i].next_packet(&mut e);
        ts += 1 + emit_rng.exp((cfg.mean_gap_us - 1.0).max(0.0)) as u64;
        out.write_packet(ts, &frame)?;
        if sum.packets == 0 {
            sum.first_ts_us = ts;
        }
        sum.packets += 1;
        let cost = (RECORD_HEADER_LEN as usize + frame.len()) as i64;
        let f = &mut active[i];
        f.outstanding -= cost;
        outstanding -= cost;
        if done {
            outstanding -= f.outstanding;
            if let Some((k, port)) = f.nat_port {
                planner.world.nat[k].free.push_back(port);
            }
            active.swap_remove(i);
        }
    }
    sum.last_ts_us = ts;
    sum.file_bytes = out.file_bytes;
    sum.frame_bytes = out.frame_bytes;
    out.finish()?;
    Ok(sum)
}
