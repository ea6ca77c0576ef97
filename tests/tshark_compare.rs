//! An independent check of decoding and flow accounting: tshark dissects
//! every capture, this test aggregates its frames into conversations, and
//! the result must equal zonewatch's flow events aggregated the same way.
//!
//! A conversation is keyed direction-free by the innermost IP header:
//! {(addr, port), (addr, port)}, IP protocol and up to two VLAN ids. For each
//! the test compares packets and wire bytes in each direction and the client
//! (the sender of the first packet). Several zonewatch flows with one key
//! (a conversation split by a timeout, ICMP flows of different types) are
//! summed; the client is that of the flow that started first.
//!
//! How the tshark side mirrors zonewatch's documented rules:
//! - reassembly is on (`ip.defragment`/`ipv6.defragment`, two passes): the
//!   fragments of a datagram count, packets and bytes, in the conversation
//!   of the frame that completes it, as zonewatch counts them in the flow of
//!   the reassembled datagram; fragments whose datagram never completes are
//!   in no flow (zonewatch's defrag counters count them);
//! - ICMP and other port-less protocols have ports 0 (zonewatch's ICMP
//!   type/code flow key is not in its flow events);
//! - only TCP, UDP, ICMP, ICMPv6, SCTP, GRE, ESP and IP-in-IP make flows
//!   (Suricata 7's rule): IGMP, OSPF, PIM, ... conversations are left out;
//! - the innermost IP header is the last one before an ICMP layer (the IP
//!   header quoted inside an ICMP error is not the packet's own);
//! - the IP-length TSO heuristic is off (`ip.tso_support`): zonewatch, like
//!   Suricata, treats a zero IPv4 total length as a broken header;
//! - a packet that zonewatch found malformed joins no flow. Such frames are
//!   left out of tshark's side only when both tools agree the frame is broken:
//!   zonewatch wrote a "malformed" anomaly without `flow_id` for it (matched
//!   by time and addresses) and tshark flags it malformed, reports an error,
//!   or the frame was cut short by the snap length.
//!
//! Captures: everything under `fixtures/`, `../shared/data/pcaps` and
//! `../shared/data/suricata-verify` (the latter holds Suricata's own decoder
//! test cases). Skips cleanly without tshark or `../shared`; with `CI=true`
//! a missing tshark is a failure. With mergecap and capinfos (same package
//! as tshark) all captures go through one tshark process, which keeps the
//! test at a few seconds of tshark time.

mod common;
use common::{captures_under, root};

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Captures whose disagreement is understood and accepted for now, by path
/// (relative to `../shared/data`, or `fixtures/...`). At most five. An entry
/// that starts agreeing fails the test so the list stays honest.
const EXCEPTIONS: &[(&str, &str)] = &[
    // The server's SYN/ACK is recorded before the client's SYN (timestamps
    // inverted): the SYN/ACK makes a flow without a TCP session, so the SYN
    // starts a new one, as Suricata's TCP session reuse decides; tshark
    // keeps one conversation.
    (
        "pcaps/zeek/ipv6-http-atomic-frag.pcap",
        "SYN/ACK before its SYN: Suricata's session reuse starts a new flow at the SYN",
    ),
    // Cisco MetaData (ethertype 0x8909) inside GRE is not decoded: 12 inner ICMP/PIM packets count to the outer GRE flow.
    (
        "pcaps/tcpdump/various_gre.pcap",
        "Cisco MetaData (0x8909) in GRE not decoded",
    ),
    // Overlapping IPv6 fragments: zonewatch resolves them with Suricata's
    // default (BSD) policy, tshark with its own; the datagrams differ.
    (
        "suricata-verify/ipv6-evasion/ipv6-malformed-fragments-36/frag-36.pcap",
        "overlapping fragments: Suricata's BSD policy vs tshark's reassembly",
    ),
    // nmap's IP-protocol scan (fixtures/attacks): bare IPIP, 6in4 and GRE
    // headers with nothing inside and ICMPv6 over IPv4 are decoder errors to
    // zonewatch (no flow, an anomaly each), conversations to tshark.
    (
        "fixtures/nmap-ipproto.pcap",
        "empty tunnel payloads in an IP-protocol scan are decoder errors",
    ),
    // Link type PPP (DLT 9) is not decoded: zonewatch skips the file.
    (
        "suricata-verify/defrag/bug-6887-defrag-ppp-ipv6-tcp/frag-ppp-ipv6-tcp.pcap",
        "link type PPP (9) not decoded",
    ),
];

/// Anomaly names (suffixes) that say "this packet is broken"; only packets
/// with one of these may be left out of tshark's side (see the module doc).
const MALFORMED: &[&str] = &[
    "pkt_too_small",
    "trunc_pkt",
    "hlen_too_small",
    "iplen_smaller_than_hlen",
    "len_invalid",
    "trunc_exthdr",
    "wrong_ip_version",
    "header_too_small",
    "invalid_optlen",
    "too_many_layers",
];

/// tshark fields, in column order.
const FIELDS: &[&str] = &[
    "frame.number",
    "ip.reassembled_in",
    "ipv6.reassembled.in",
    "frame.len",
    "frame.cap_len",
    "frame.time_epoch",
    "frame.protocols",
    "_ws.malformed",
    "_ws.expert.severity",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.hopopts.nxt",
    "ipv6.routing.nxt",
    "ipv6.fraghdr.nxt",
    "ipv6.dstopts.nxt",
    "ah.next_header",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "sctp.srcport",
    "sctp.dstport",
    "vlan.id",
    "ieee8021ad.id",
];

/// IPv6 extension headers as tshark names them, with their next-header field.
const EXT: &[(&str, &str)] = &[
    ("ipv6.hopopts", "ipv6.hopopts.nxt"),
    ("ipv6.routing", "ipv6.routing.nxt"),
    ("ipv6.fraghdr", "ipv6.fraghdr.nxt"),
    ("ipv6.dstopts", "ipv6.dstopts.nxt"),
    ("ah", "ah.next_header"),
];

/// `_ws.expert.severity` of an error.
const PI_ERROR: &str = "8388608";

/// (address, port) of one end.
type End = (IpAddr, u16);

/// Direction-free conversation key: ends in order, protocol, VLAN ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    lo: End,
    hi: End,
    proto: u8,
    vlan: Vec<u16>,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let end = |e: &End| match e.0 {
            IpAddr::V4(a) => format!("{a}:{}", e.1),
            IpAddr::V6(a) => format!("[{a}]:{}", e.1),
        };
        write!(
            f,
            "{} <-> {} proto {}",
            end(&self.lo),
            end(&self.hi),
            self.proto
        )?;
        if !self.vlan.is_empty() {
            write!(f, " vlan {:?}", self.vlan)?;
        }
        Ok(())
    }
}

/// Key of a packet or flow, and whether `src` is the key's `lo` end.
fn key(src: End, dst: End, proto: u8, vlan: Vec<u16>) -> (Key, bool) {
    if src <= dst {
        (
            Key {
                lo: src,
                hi: dst,
                proto,
                vlan,
            },
            true,
        )
    } else {
        (
            Key {
                lo: dst,
                hi: src,
                proto,
                vlan,
            },
            false,
        )
    }
}

/// Totals of one conversation: [lo->hi, hi->lo].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Conv {
    pkts: [u64; 2],
    bytes: [u64; 2],
    client: IpAddr,
}

/// A note that shows even though the test harness captures output (skips
/// must be visible).
fn note(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "note: {msg}");
}

/// Microseconds since the epoch of tshark's `frame.time_epoch`.
fn epoch_us(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<6}");
    Some(secs.parse::<i64>().ok()? * 1_000_000 + frac[..6].parse::<i64>().ok()?)
}

/// Microseconds since the epoch of an EVE timestamp
/// (`2026-11-25T20:30:45.123456+0900`).
fn eve_us(s: &str) -> Option<i64> {
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (h, mi, se, us) = (n(11, 13)?, n(14, 16)?, n(17, 19)?, n(20, 26)?);
    let sign = if s.get(26..27)? == "-" { -1 } else { 1 };
    let off = sign * (n(27, 29)? * 3600 + n(29, 31)? * 60);
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + se - off) * 1_000_000 + us)
}

/// One tshark frame: each field's occurrences, in packet order.
struct Frame<'a> {
    cols: HashMap<&'static str, Vec<&'a str>>,
}

impl<'a> Frame<'a> {
    fn parse(line: &'a str) -> Frame<'a> {
        let mut cols = HashMap::new();
        for (i, c) in line.split('\t').enumerate() {
            if let Some(f) = FIELDS.get(i) {
                let v: Vec<&str> = if c.is_empty() {
                    Vec::new()
                } else {
                    c.split(',').collect()
                };
                cols.insert(*f, v);
            }
        }
        Frame { cols }
    }
    fn all(&self, f: &str) -> &[&'a str] {
        self.cols.get(f).map(|v| v.as_slice()).unwrap_or(&[])
    }
    fn nth(&self, f: &str, i: usize) -> Option<&'a str> {
        self.all(f).get(i).copied()
    }
    fn num<T: std::str::FromStr>(&self, f: &str, i: usize) -> Option<T> {
        self.nth(f, i)?.parse().ok()
    }
    fn flag(&self, f: &str, i: usize) -> bool {
        matches!(self.nth(f, i), Some("1") | Some("True") | Some("true"))
    }

    /// The frame's conversation as zonewatch should see it: (src, dst, proto, vlan).
    fn tuple(&self) -> Option<(End, End, u8, Vec<u16>)> {
        let protos = self.nth("frame.protocols", 0)?;
        let toks: Vec<&str> = protos.split(':').collect();
        // Layers after an ICMP header are the quoted offending packet.
        let cut = toks
            .iter()
            .position(|t| *t == "icmp" || *t == "icmpv6")
            .unwrap_or(toks.len());
        let l = (0..cut)
            .rev()
            .find(|&i| toks[i] == "ip" || toks[i] == "ipv6")?;
        let before = |t: &str, upto: usize| toks[..upto].iter().filter(|x| **x == t).count();
        let (src, dst, proto, frag, mut p);
        if toks[l] == "ip" {
            let k = before("ip", l);
            src = self.nth("ip.src", k)?.parse::<IpAddr>().ok()?;
            dst = self.nth("ip.dst", k)?.parse::<IpAddr>().ok()?;
            proto = self.num::<u8>("ip.proto", k)?;
            frag = self.flag("ip.flags.mf", k)
                || self.num::<u32>("ip.frag_offset", k).unwrap_or(0) > 0;
            p = l + 1;
        } else {
            let k = before("ipv6", l);
            src = self.nth("ipv6.src", k)?.parse::<IpAddr>().ok()?;
            dst = self.nth("ipv6.dst", k)?.parse::<IpAddr>().ok()?;
            let mut nh = self.num::<u8>("ipv6.nxt", k)?;
            let mut fr = false;
            p = l + 1;
            // Follow the extension headers to the transport protocol.
            while let Some((t, nxt)) = toks.get(p).and_then(|t| EXT.iter().find(|e| e.0 == *t)) {
                let j = before(t, p);
                let Some(v) = self.num::<u8>(nxt, j) else {
                    break;
                };
                nh = v;
                if *t == "ipv6.fraghdr" {
                    let off = self.num::<u32>("ipv6.fraghdr.offset", j).unwrap_or(0);
                    if off > 0 || self.flag("ipv6.fraghdr.more", j) {
                        fr = true;
                    }
                }
                p += 1;
            }
            proto = nh;
            frag = fr;
        }
        let _ = frag;
        let mut ports = (0, 0);
        // A fragment shows a transport header only in the frame that
        // completes its datagram (reassembly is on): use it there.
        if p < cut && matches!(proto, 6 | 17 | 132) {
            let t = toks[p];
            if matches!(t, "tcp" | "udp" | "sctp") {
                let j = before(t, p);
                let sp = self.num::<u16>(&format!("{t}.srcport"), j);
                let dp = self.num::<u16>(&format!("{t}.dstport"), j);
                if let (Some(a), Some(b)) = (sp, dp) {
                    ports = (a, b);
                }
            }
        }
        // VLAN ids in packet order (802.1ad S-tags and 802.1Q tags), first two.
        let (mut nv, mut na, mut vlan) = (0, 0, Vec::new());
        for t in &toks[..l] {
            let id = match *t {
                "vlan" => {
                    nv += 1;
                    self.num::<u16>("vlan.id", nv - 1)
                }
                "ieee8021ad" => {
                    na += 1;
                    self.num::<u16>("ieee8021ad.id", na - 1)
                }
                _ => continue,
            };
            vlan.push(id.unwrap_or(0));
        }
        vlan.truncate(2);
        vlan.retain(|v| *v != 0);
        Some(((src, ports.0), (dst, ports.1), proto, vlan))
    }

    /// A fragment whose datagram never completed (reassembly is on: a
    /// completing frame shows the protocol after the IP layer, others show
    /// `data` and name the completing frame in `reassembled_in`).
    fn incomplete_fragment(&self) -> bool {
        let Some(protos) = self.nth("frame.protocols", 0) else {
            return false;
        };
        let toks: Vec<&str> = protos.split(':').collect();
        let Some(l) = toks
            .iter()
            .rposition(|t| matches!(*t, "ip" | "ipv6" | "ipv6.fraghdr"))
        else {
            return false;
        };
        let fragment = (toks[l] == "ipv6.fraghdr"
            && (self.num::<u32>("ipv6.fraghdr.offset", 0).unwrap_or(0) > 0
                || self.flag("ipv6.fraghdr.more", 0)))
            || (toks[l] == "ip"
                && (self.flag("ip.flags.mf", 0)
                    || self.num::<u32>("ip.frag_offset", 0).unwrap_or(0) > 0));
        fragment && self.reassembled_in().is_none() && toks.get(l + 1).is_none_or(|t| *t == "data")
    }

    /// The frame that completes this fragment's datagram.
    fn reassembled_in(&self) -> Option<u64> {
        self.num::<u64>("ip.reassembled_in", 0)
            .or_else(|| self.num::<u64>("ipv6.reassembled.in", 0))
    }

    /// tshark itself sees the frame as broken or cut short.
    fn broken(&self) -> bool {
        !self.all("_ws.malformed").is_empty()
            || self.all("_ws.expert.severity").contains(&PI_ERROR)
            || self.num::<u64>("frame.cap_len", 0) < self.num::<u64>("frame.len", 0)
    }
}

/// Packets zonewatch left out as malformed, by (µs, src, dst) as the anomaly
/// event gives them (addresses absent when no IP header was usable).
type Malformed = HashMap<(i64, Option<String>, Option<String>), usize>;

/// zonewatch's flows aggregated by conversation, and its malformed packets.
fn zonewatch_side(lines: &str) -> Result<(BTreeMap<Key, Conv>, Malformed), String> {
    let mut conv: BTreeMap<Key, (Conv, String)> = BTreeMap::new();
    // Events per (µs, src, dst, name): a packet raises a name once, so the
    // most frequent name of a (µs, src, dst) counts the packets.
    let mut names: HashMap<(i64, Option<String>, Option<String>, String), usize> = HashMap::new();
    for l in lines.lines() {
        let e: Value = serde_json::from_str(l).map_err(|x| format!("bad JSON line: {x}"))?;
        match e["event_type"].as_str() {
            Some("anomaly") => {
                let name = e["anomaly"]["event"].as_str().unwrap_or("").to_string();
                if e.get("flow_id").is_none() && MALFORMED.iter().any(|m| name.ends_with(m)) {
                    let us = eve_us(e["timestamp"].as_str().unwrap_or(""))
                        .ok_or("bad anomaly timestamp")?;
                    let s = e["src_ip"].as_str().map(str::to_string);
                    let d = e["dest_ip"].as_str().map(str::to_string);
                    *names.entry((us, s, d, name)).or_default() += 1;
                }
            }
            Some("flow") => {
                let ip = |f: &str| -> Result<IpAddr, String> {
                    e[f].as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or(format!("flow without {f}: {l}"))
                };
                let port = |f: &str| e[f].as_u64().unwrap_or(0) as u16;
                let p = e["proto"].as_str().ok_or("flow without proto")?;
                // zonewatch's own name table (the schema test checks the
                // names); here only the number behind the name matters.
                let proto = match (0..=255u8).position(|n| zonewatch_types::proto_name(n) == p) {
                    Some(n) => n as u8,
                    None => p
                        .parse::<u8>()
                        .map_err(|_| format!("unknown proto {p:?}"))?,
                };
                let vlan: Vec<u16> = e["vlan"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_u64())
                            .map(|v| v as u16)
                            .collect()
                    })
                    .unwrap_or_default();
                let src = (ip("src_ip")?, port("src_port"));
                let dst = (ip("dest_ip")?, port("dest_port"));
                let (k, fwd) = key(src, dst, proto, vlan);
                let f = &e["flow"];
                let g = |n: &str| f[n].as_u64().unwrap_or(0);
                let (ts, tc) = (
                    [g("pkts_toserver"), g("bytes_toserver")],
                    [g("pkts_toclient"), g("bytes_toclient")],
                );
                let (a, b) = if fwd { (ts, tc) } else { (tc, ts) };
                let start = f["start"].as_str().unwrap_or("").to_string();
                let c = conv.entry(k).or_insert_with(|| {
                    (
                        Conv {
                            pkts: [0; 2],
                            bytes: [0; 2],
                            client: src.0,
                        },
                        start.clone(),
                    )
                });
                c.0.pkts[0] += a[0];
                c.0.bytes[0] += a[1];
                c.0.pkts[1] += b[0];
                c.0.bytes[1] += b[1];
                if eve_us(&start) < eve_us(&c.1) {
                    c.0.client = src.0;
                    c.1 = start;
                }
            }
            _ => {}
        }
    }
    let mut malformed: Malformed = HashMap::new();
    for ((us, s, d, _), n) in names {
        let m = malformed.entry((us, s, d)).or_default();
        *m = (*m).max(n);
    }
    Ok((
        conv.into_iter().map(|(k, (c, _))| (k, c)).collect(),
        malformed,
    ))
}

/// The tshark command that prints [`FIELDS`] for every frame of `file`.
fn tshark_cmd(file: &Path) -> Command {
    let mut cmd = Command::new("tshark");
    cmd.arg("-2")
        .arg("-r")
        .arg(file)
        .args(["-n", "-T", "fields", "-E", "separator=/t"]);
    cmd.args(["-E", "occurrence=a", "-E", "aggregator=,"]);
    for o in [
        // Reassembly on, two passes: earlier fragments name the frame that
        // completes their datagram, and count in that frame's conversation,
        // as zonewatch counts a datagram's fragments in its flow.
        "ip.defragment:TRUE",
        "ipv6.defragment:TRUE",
        "ip.tso_support:FALSE",
        "ipv6.tso_support:FALSE",
        // Nothing here needs TCP analysis or reassembly; without them a
        // frame's fields depend on that frame alone.
        "tcp.desegment_tcp_streams:FALSE",
        "tcp.analyze_sequence_numbers:FALSE",
    ] {
        cmd.args(["-o", o]);
    }
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    cmd
}

/// tshark's lines (one per frame) for one capture.
fn tshark_one(file: &Path) -> Result<String, String> {
    let o = tshark_cmd(file)
        .output()
        .map_err(|e| format!("cannot run tshark: {e}"))?;
    if !o.status.success() {
        // tshark reads what it can of a cut-off file and then fails; keep that.
        let err = String::from_utf8_lossy(&o.stderr);
        if !err.contains("cut short") && !err.contains("truncated") {
            return Err(format!("tshark failed: {}", err.trim()));
        }
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// tshark's lines for every capture. tshark takes a quarter of a second to
/// start, so the captures are concatenated with mergecap (frame counts from
/// capinfos) and dissected in one pass; the frames are then split back by
/// count. Captures capinfos complains about (cut short), or everything when
/// the tools are missing or the total does not add up, are read one by one.
fn tshark_many(caps: &[PathBuf], tmp: &Path) -> Vec<Result<String, String>> {
    let mut out: Vec<Option<Result<String, String>>> = vec![None; caps.len()];
    let counts = Command::new("capinfos")
        .args(["-T", "-r", "-c", "-M"])
        .args(caps)
        .output()
        .ok()
        .map(|o| {
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            let by_path: HashMap<String, u64> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| {
                    let (p, n) = l.rsplit_once('\t')?;
                    Some((p.to_string(), n.trim().parse().ok()?))
                })
                .collect();
            caps.iter()
                .map(|c| {
                    let p = c.to_string_lossy().into_owned();
                    by_path
                        .get(&p)
                        .copied()
                        .filter(|_| !err.contains(&format!("\"{p}\"")))
                })
                .collect::<Vec<Option<u64>>>()
        });
    if let Some(counts) = counts {
        let batch: Vec<usize> = (0..caps.len()).filter(|&i| counts[i].is_some()).collect();
        let merged = tmp.join("all.pcapng");
        // Merging is off unless asked for: with reassembly on, fragments of
        // different captures that share addresses and IP ids (the Suricata
        // defrag tests do) would be reassembled together.
        let merge_wanted = std::env::var("ZW_TSHARK_MERGE").as_deref() == Ok("1");
        let merged_ok = merge_wanted
            && batch.len() > 1
            && Command::new("mergecap")
                .args(["-a", "-I", "none", "-F", "pcapng", "-w"])
                .arg(&merged)
                .args(batch.iter().map(|&i| &caps[i]))
                .output()
                .is_ok_and(|o| o.status.success());
        if merged_ok {
            if let Ok(text) = tshark_one(&merged) {
                let lines: Vec<&str> = text.lines().collect();
                let total: u64 = batch.iter().map(|&i| counts[i].unwrap_or(0)).sum();
                if lines.len() as u64 == total {
                    let mut at = 0usize;
                    for &i in &batch {
                        let n = counts[i].unwrap_or(0) as usize;
                        let mut s = lines[at..at + n].join("\n");
                        s.push('\n');
                        out[i] = Some(Ok(s));
                        at += n;
                    }
                } else {
                    note(&format!("merged capture has {} frames, capinfos counted {total}; reading captures one by one", lines.len()));
                }
            }
            let _ = std::fs::remove_file(&merged);
        }
    }
    let rest: Vec<usize> = (0..caps.len()).filter(|&i| out[i].is_none()).collect();
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Result<String, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while let Some(&i) = rest.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let r = tshark_one(&caps[i]);
                    done.lock().unwrap().push((i, r));
                }
            });
        }
    });
    for (i, r) in done.into_inner().unwrap() {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not read".into())))
        .collect()
}

/// tshark's frames aggregated by conversation; `malformed` frames that
/// tshark also sees as broken are left out (and counted).
fn tshark_side(
    text: &str,
    mut malformed: Malformed,
) -> Result<(BTreeMap<Key, Conv>, usize), String> {
    let mut conv: BTreeMap<Key, Conv> = BTreeMap::new();
    let mut left_out = 0;
    // Fragments count in the conversation of the frame that completes their
    // datagram: (packets, bytes) waiting for that frame number.
    let mut pending: HashMap<u64, (u64, u64)> = HashMap::new();
    for line in text.lines() {
        let fr = Frame::parse(line);
        if let (Some(n), Some(len)) = (fr.reassembled_in(), fr.num::<u64>("frame.len", 0)) {
            if fr.num::<u64>("frame.number", 0) != Some(n) {
                let p = pending.entry(n).or_default();
                p.0 += 1;
                p.1 += len;
            }
        }
    }
    for line in text.lines() {
        let fr = Frame::parse(line);
        let own = fr.num::<u64>("frame.number", 0);
        if fr.reassembled_in().is_some_and(|n| Some(n) != own) || fr.incomplete_fragment() {
            continue;
        }
        let Some((src, dst, proto, vlan)) = fr.tuple() else {
            continue;
        };
        let (extra_pkts, extra_bytes) = own
            .and_then(|n| pending.get(&n).copied())
            .unwrap_or_default();
        let len = fr
            .num::<u64>("frame.len", 0)
            .ok_or("frame without frame.len")?
            + extra_bytes;
        if fr.broken() {
            let us = fr
                .nth("frame.time_epoch", 0)
                .and_then(epoch_us)
                .unwrap_or(i64::MIN);
            let with_addrs = (us, Some(src.0.to_string()), Some(dst.0.to_string()));
            let slot = if malformed.get(&with_addrs).is_some_and(|n| *n > 0) {
                Some(with_addrs)
            } else {
                Some((us, None, None)).filter(|k| malformed.get(k).is_some_and(|n| *n > 0))
            };
            if let Some(k) = slot {
                *malformed.get_mut(&k).expect("checked") -= 1;
                left_out += 1;
                continue;
            }
        }
        // As Suricata 7, zonewatch makes flows only for TCP, UDP, ICMP,
        // ICMPv6, SCTP, GRE, ESP and IP-in-IP: IGMP, OSPF, PIM, ... make none.
        let flowed = match proto {
            6 | 17 | 47 | 50 | 132 | 4 | 41 => true,
            1 => src.0.is_ipv4(),
            58 => src.0.is_ipv6(),
            _ => false,
        };
        if !flowed {
            continue;
        }
        let (k, fwd) = key(src, dst, proto, vlan);
        let d = usize::from(!fwd);
        let c = conv.entry(k).or_insert(Conv {
            pkts: [0; 2],
            bytes: [0; 2],
            client: src.0,
        });
        c.pkts[d] += 1 + extra_pkts;
        c.bytes[d] += len;
    }
    Ok((conv, left_out))
}

/// Human-readable differences between the two sides.
fn differences(ts: &BTreeMap<Key, Conv>, zw: &BTreeMap<Key, Conv>) -> Vec<String> {
    let mut keys: Vec<&Key> = ts.keys().chain(zw.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |c: &Conv| {
        format!(
            "pkts {}/{} bytes {}/{} client {}",
            c.pkts[0], c.pkts[1], c.bytes[0], c.bytes[1], c.client
        )
    };
    let mut out = Vec::new();
    for k in keys {
        match (ts.get(k), zw.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                out.push(format!("{k}: tshark {} | zonewatch {}", show(a), show(b)))
            }
            (Some(a), None) => out.push(format!("{k}: only tshark, {}", show(a))),
            (None, Some(b)) => out.push(format!("{k}: only zonewatch, {}", show(b))),
            (None, None) => unreachable!(),
        }
    }
    out
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// zonewatch's flow and anomaly events for one capture.
fn zonewatch_run(cap: &Path, out: &Path) -> Result<String, String> {
    let text = common::run_zonewatch(
        cap,
        &[
            "--set",
            "sensor.timezone=+00:00",
            "--set",
            "output.types=flow,anomaly",
        ],
        out,
    )?;
    let _ = std::fs::remove_file(out);
    Ok(text)
}

/// A capture's differences, tshark's conversation count and the frames left out.
type Outcome = Result<(Vec<String>, usize, usize), String>;

/// Compares one capture's zonewatch output with tshark's lines for it.
fn compare_one(zw_text: &str, ts_text: &str) -> Outcome {
    let (zw, malformed) = zonewatch_side(zw_text)?;
    let (ts, left_out) = tshark_side(ts_text, malformed)?;
    Ok((differences(&ts, &zw), ts.len(), left_out))
}

#[test]
fn flows_agree_with_tshark() {
    if !tshark_available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tshark is missing on CI: install it (apt-get install -y tshark)");
        }
        note("tshark not found; the tshark comparison is skipped");
        return;
    }
    let mut work: Vec<(PathBuf, String)> = captures_under(&root().join("fixtures"))
        .into_iter()
        .map(|p| {
            let n = format!("fixtures/{}", p.file_name().unwrap().to_string_lossy());
            (p, n)
        })
        .collect();
    if work.is_empty() {
        note("no captures under fixtures/ yet");
    }
    let shared = root().join("../shared/data");
    if shared.is_dir() {
        for sub in ["pcaps", "suricata-verify"] {
            for p in captures_under(&shared.join(sub)) {
                let n = p.strip_prefix(&shared).unwrap_or(&p).display().to_string();
                work.push((p, n));
            }
        }
    } else {
        note(&format!(
            "{} is absent; only fixtures/ are compared",
            shared.display()
        ));
    }
    assert!(EXCEPTIONS.len() <= 5, "at most five exceptions");
    let tmp = tempfile::tempdir().expect("temp dir");
    let next = AtomicUsize::new(0);
    let zw: Mutex<Vec<(usize, Result<String, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..2 {
            let (work, next, zw, tmp) = (&work, &next, &zw, tmp.path());
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((cap, _)) = work.get(i) else {
                    break;
                };
                let r = zonewatch_run(cap, &tmp.join(format!("{t}-{i}.json")));
                zw.lock().unwrap().push((i, r));
            });
        }
    });
    let mut zw = zw.into_inner().unwrap();
    zw.sort_by_key(|r| r.0);
    let caps: Vec<PathBuf> = work.iter().map(|w| w.0.clone()).collect();
    let ts = tshark_many(&caps, tmp.path());
    let mut results: Vec<(String, Outcome)> = Vec::new();
    for ((i, z), t) in zw.into_iter().zip(ts) {
        let r = match (z, t) {
            (Ok(z), Ok(t)) => compare_one(&z, &t),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        results.push((work[i].1.clone(), r));
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut convs, mut left_out, mut failures, mut excused) = (0, 0, Vec::new(), Vec::new());
    for (name, r) in &results {
        let exception = EXCEPTIONS.iter().find(|e| e.0 == name);
        match (r, exception) {
            (Err(e), _) => failures.push(format!("{name}: {e}")),
            (Ok((diffs, n, lo)), ex) => {
                convs += n;
                left_out += lo;
                if *lo > 0 {
                    eprintln!("{name}: {lo} frame(s) malformed per both tools, left out");
                }
                let body = || {
                    let mut s = String::new();
                    for d in diffs.iter().take(10) {
                        s.push_str(&format!("\n    {d}"));
                    }
                    if diffs.len() > 10 {
                        s.push_str(&format!("\n    ... and {} more", diffs.len() - 10));
                    }
                    s
                };
                match ex {
                    Some((_, why)) if diffs.is_empty() => failures.push(format!(
                        "{name}: listed as an exception ({why}) but now agrees: remove it from EXCEPTIONS"
                    )),
                    Some((_, why)) => {
                        excused.push(format!("{name} ({why}): {} difference(s){}", diffs.len(), body()))
                    }
                    None if !diffs.is_empty() => failures.push(format!(
                        "{name}: {} conversation(s) differ{}",
                        diffs.len(),
                        body()
                    )),
                    None => {}
                }
            }
        }
    }
    eprintln!(
        "tshark: {} captures, {convs} conversations, {left_out} malformed frame(s) left out",
        results.len()
    );
    for e in &excused {
        eprintln!("exception: {e}");
    }
    assert!(
        failures.is_empty(),
        "zonewatch and tshark disagree on {} capture(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn eve_and_tshark_times_convert() {
    assert_eq!(eve_us("1970-01-01T00:00:00.000001+0000"), Some(1));
    assert_eq!(
        eve_us("2026-11-25T20:30:45.123456+0900"),
        Some(1_795_606_245_123_456)
    );
    assert_eq!(
        eve_us("2026-11-25T06:30:45.123456-0500"),
        Some(1_795_606_245_123_456)
    );
    assert_eq!(
        eve_us("2024-02-29T23:59:59.000000+0000"),
        Some(1_709_251_199_000_000)
    );
    assert_eq!(epoch_us("943755158.548221000"), Some(943_755_158_548_221));
    assert_eq!(epoch_us("12.5"), Some(12_500_000));
}

/// A tshark line with the given fields set (others empty).
fn line(set: &[(&str, &str)]) -> String {
    FIELDS
        .iter()
        .map(|f| set.iter().find(|s| s.0 == *f).map(|s| s.1).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\t")
}

#[test]
fn tshark_frames_map_to_zonewatch_tuples() {
    let t = |set: &[(&str, &str)]| Frame::parse(&line(set)).tuple();
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    let b: IpAddr = "10.0.0.2".parse().unwrap();
    // The IP header quoted in an ICMP error is not the packet's own.
    assert_eq!(
        t(&[
            ("frame.protocols", "eth:ethertype:ip:icmp:ip:udp"),
            ("ip.src", "10.0.0.1,10.0.0.2"),
            ("ip.dst", "10.0.0.2,10.0.0.1"),
            ("ip.proto", "1,17"),
            ("ip.flags.mf", "0,0"),
            ("ip.frag_offset", "0,0"),
            ("udp.srcport", "53"),
            ("udp.dstport", "5353"),
        ]),
        Some(((a, 0), (b, 0), 1, vec![]))
    );
    // Tunnels: the innermost header, its ports, the VLAN ids outside it.
    assert_eq!(
        t(&[
            (
                "frame.protocols",
                "eth:ethertype:vlan:ethertype:ip:gre:ip:tcp"
            ),
            ("vlan.id", "7"),
            ("ip.src", "192.0.2.1,10.0.0.1"),
            ("ip.dst", "192.0.2.2,10.0.0.2"),
            ("ip.proto", "47,6"),
            ("ip.flags.mf", "0,0"),
            ("ip.frag_offset", "0,0"),
            ("tcp.srcport", "1234"),
            ("tcp.dstport", "80"),
        ]),
        Some(((a, 1234), (b, 80), 6, vec![7]))
    );
    // The frame that completes a fragmented datagram (reassembly is on)
    // shows the transport header: its ports count.
    assert_eq!(
        t(&[
            ("frame.protocols", "ip:tcp"),
            ("ip.src", "10.0.0.1"),
            ("ip.dst", "10.0.0.2"),
            ("ip.proto", "6"),
            ("ip.flags.mf", "0"),
            ("ip.frag_offset", "185"),
            ("tcp.srcport", "1234"),
            ("tcp.dstport", "80"),
        ]),
        Some(((a, 1234), (b, 80), 6, vec![]))
    );
    // IPv6: the protocol after the extension headers; an atomic fragment
    // header (offset 0, no M flag) does not make a fragment.
    let (c, d): (IpAddr, IpAddr) = (
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
    );
    assert_eq!(
        t(&[
            (
                "frame.protocols",
                "eth:ethertype:ipv6:ipv6.hopopts:ipv6.fraghdr:udp:dns"
            ),
            ("ipv6.src", "2001:db8::1"),
            ("ipv6.dst", "2001:db8::2"),
            ("ipv6.nxt", "0"),
            ("ipv6.hopopts.nxt", "44"),
            ("ipv6.fraghdr.nxt", "17"),
            ("ipv6.fraghdr.offset", "0"),
            ("ipv6.fraghdr.more", "0"),
            ("udp.srcport", "5353"),
            ("udp.dstport", "53"),
        ]),
        Some(((c, 5353), (d, 53), 17, vec![]))
    );
    assert_eq!(
        t(&[
            ("frame.protocols", "eth:ethertype:ipv6:ipv6.fraghdr:data"),
            ("ipv6.src", "2001:db8::1"),
            ("ipv6.dst", "2001:db8::2"),
            ("ipv6.nxt", "44"),
            ("ipv6.fraghdr.nxt", "58"),
            ("ipv6.fraghdr.offset", "181"),
            ("ipv6.fraghdr.more", "0"),
        ]),
        Some(((c, 0), (d, 0), 58, vec![]))
    );
    // No IP layer: no conversation.
    assert_eq!(t(&[("frame.protocols", "eth:ethertype:arp")]), None);
}
