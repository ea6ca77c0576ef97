//! Compares what the parsers extract with tshark on the shared captures:
//! DNS query names, HTTP Host + request URI, TLS SNI. Our side runs the real
//! capture reader, decoder and TCP reassembler (midstream pickup on, like
//! tshark) and feeds the app layer exactly as a worker would.
//!
//! Uses the repository's `fixtures/` and, when present, `../shared/data/pcaps`;
//! skips cleanly when tshark is missing.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use zonewatch_applayer::{AppConfig, AppOutput, AppState, Buffer, Direction};
use zonewatch_capture::{Next, PacketSource};
use zonewatch_decode::{decode, Decoded, LinkType, Transport};
use zonewatch_defrag::{DefragConfig, Defragmenter};
use zonewatch_stream::{Reassembler, StreamConfig, TcpSession};

struct Pkt<'a> {
    data: &'a [u8],
}

type Key = (IpAddr, u16, IpAddr, u16, u8, [u16; 2]);

struct Flow {
    first_src: (IpAddr, u16),
    sess: Option<TcpSession>,
    app: AppState,
    next: [u64; 2],
    /// A FIN or RST was seen: a new SYN on the tuple is a new connection
    /// (the sensor's TCP session reuse, simplified).
    ended: bool,
}

/// Ends a flow: what its session still holds goes to the app layer, then
/// the app layer's close; the outputs are collected.
fn close_flow(
    r: &mut Reassembler,
    key: Key,
    mut fl: Flow,
    outs: &mut Vec<AppOutput>,
    seen_tls: &mut std::collections::HashSet<(Key, u64)>,
    found: &mut Found,
) {
    outs.clear();
    if let Some(sess) = fl.sess.take() {
        let mut ev = Vec::new();
        let app = &mut fl.app;
        let next = &mut fl.next;
        r.close(sess, &mut ev, &mut |dd, off, bytes| {
            let i = usize::from(dd == Direction::ToClient);
            if off > next[i] {
                app.on_gap(dd, off - next[i], outs);
            }
            next[i] = off + bytes.len() as u64;
            app.on_stream(dd, bytes, outs);
        });
    }
    fl.app.on_close(outs);
    outs.retain(|o| match o {
        AppOutput::Tx(tx) if tx.proto == zonewatch_applayer::AppProto::Tls => {
            seen_tls.insert((key, tx.id))
        }
        _ => true,
    });
    collect(outs, found);
}

#[derive(Default, Debug)]
struct Found {
    dns: Vec<String>,
    http: Vec<String>,
    sni: Vec<String>,
    /// DNS names with non-printable bytes (tunnels): tshark and we escape
    /// them differently, so they are counted, not compared.
    binary: usize,
    panics: usize,
}

fn pcaps_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pcaps");
    p.is_dir().then_some(p)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    for p in v {
        if p.is_dir() {
            files(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng" | "cap")
        ) {
            out.push(p);
        }
    }
}

fn collect(outs: &[AppOutput], f: &mut Found) {
    for o in outs {
        let AppOutput::Tx(tx) = o else { continue };
        match tx.proto {
            zonewatch_applayer::AppProto::Dns => {
                for d in [Direction::ToServer, Direction::ToClient] {
                    for q in tx.buffers_in(Buffer::DnsQuery, d) {
                        if !q.iter().all(|c| c.is_ascii_graphic()) {
                            f.binary += 1;
                            continue;
                        }
                        let s = if q.is_empty() {
                            "<Root>".to_string()
                        } else {
                            String::from_utf8_lossy(q).into_owned()
                        };
                        f.dns.push(s);
                    }
                }
            }
            zonewatch_applayer::AppProto::Http if tx.complete => {
                if let Some(u) = tx.buffer(Buffer::HttpUriRaw) {
                    let h = tx.buffer(Buffer::HttpHostRaw).unwrap_or(b"");
                    f.http.push(format!(
                        "{} {}",
                        String::from_utf8_lossy(h),
                        String::from_utf8_lossy(u)
                    ));
                }
            }
            zonewatch_applayer::AppProto::Tls if !tx.complete => {
                if let Some(s) = tx.buffer(Buffer::TlsSni) {
                    f.sni.push(String::from_utf8_lossy(s).into_owned());
                }
            }
            zonewatch_applayer::AppProto::Tls => {
                // The complete output repeats the SNI; count each handshake once
                // (a transaction first output complete has no earlier output).
            }
            _ => {}
        }
    }
}

fn ours(path: &Path) -> Option<Found> {
    let mut src = PacketSource::open_file(path, None).ok()?;
    let link = LinkType::from_dlt(src.datalink())?;
    let scfg = StreamConfig {
        midstream: true,
        async_oneside: true,
        ..StreamConfig::default()
    };
    let mut r = Reassembler::new(scfg);
    let mut flows: HashMap<Key, Flow> = HashMap::new();
    let mut found = Found::default();
    let acfg = AppConfig::default();
    let mut outs = Vec::new();
    let mut seen_tls: std::collections::HashSet<(Key, u64)> = Default::default();
    let mut defrag = Defragmenter::new(DefragConfig::default());
    let mut pending: Vec<(Decoded, Vec<u8>)> = Vec::new();
    loop {
        let (d, data) = if let Some(x) = pending.pop() {
            x
        } else {
            let p = match src.next_packet() {
                Next::Packet(p) => p,
                _ => break,
            };
            let d = decode(link, p.data, p.wire_len as usize);
            if d.ip.is_some_and(|ip| ip.frag.is_some()) && !d.invalid {
                let mut ev = Vec::new();
                if let Some(buf) = defrag.push(p.ts, &d, p.data, &mut ev) {
                    let mut d2 = decode(LinkType::Raw, &buf, buf.len());
                    d2.vlan = d.vlan;
                    pending.push((d2, buf));
                }
                continue;
            }
            (d, p.data.to_vec())
        };
        let p = Pkt { data: &data };
        let Some(ip) = d.ip else { continue };
        if d.invalid || ip.frag.is_some() {
            continue;
        }
        let (sport, dport, proto, payload, tcp) = match d.transport {
            Transport::Tcp(t) => {
                let o = t.payload_offset as usize;
                let pl = p.data.get(o..o + t.payload_len as usize).unwrap_or(&[]);
                (t.sport, t.dport, 6u8, pl, Some(t))
            }
            Transport::Udp {
                sport,
                dport,
                payload_offset,
                payload_len,
            } => {
                let o = payload_offset as usize;
                let pl = p.data.get(o..o + payload_len as usize).unwrap_or(&[]);
                (sport, dport, 17u8, pl, None)
            }
            _ => continue,
        };
        let a = (ip.src, sport);
        let b = (ip.dst, dport);
        let key: Key = if a <= b {
            (a.0, a.1, b.0, b.1, proto, d.vlan)
        } else {
            (b.0, b.1, a.0, a.1, proto, d.vlan)
        };
        let syn = tcp.is_some_and(|t| t.flags & 0x17 == 0x02);
        if syn && flows.get(&key).is_some_and(|f| f.ended) {
            let old = flows.remove(&key).expect("checked");
            close_flow(&mut r, key, old, &mut outs, &mut seen_tls, &mut found);
        }
        let fl = flows.entry(key).or_insert_with(|| Flow {
            first_src: a,
            sess: (proto == 6).then(|| r.new_session()),
            app: AppState::new(acfg, proto, dport).with_src_port(sport),
            next: [0; 2],
            ended: false,
        });
        fl.ended |= tcp.is_some_and(|t| t.flags & 0x05 != 0);
        let dir = if fl.first_src == a {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        outs.clear();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let (Some(t), Some(sess)) = (tcp, fl.sess.as_mut()) {
                let mut ev = Vec::new();
                let app = &mut fl.app;
                let next = &mut fl.next;
                let outs = &mut outs;
                r.segment(sess, dir, &t, payload, &mut ev, &mut |dd, off, bytes| {
                    let i = usize::from(dd == Direction::ToClient);
                    if off > next[i] {
                        app.on_gap(dd, off - next[i], outs);
                    }
                    next[i] = off + bytes.len() as u64;
                    app.on_stream(dd, bytes, outs);
                });
            } else if proto == 17 {
                fl.app.on_datagram(dir, payload, &mut outs);
            }
        }));
        if res.is_err() {
            found.panics += 1;
        }
        // A TLS handshake's SNI is counted at its first output.
        outs.retain(|o| match o {
            AppOutput::Tx(tx) if tx.proto == zonewatch_applayer::AppProto::Tls => {
                seen_tls.insert((key, tx.id))
            }
            _ => true,
        });
        collect(&outs, &mut found);
    }
    let keys: Vec<Key> = flows.keys().copied().collect();
    for key in keys {
        if let Some(fl) = flows.remove(&key) {
            close_flow(&mut r, key, fl, &mut outs, &mut seen_tls, &mut found);
        }
    }
    Some(found)
}

fn theirs(path: &Path) -> Option<Found> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-Y",
            "(dns and not icmp and not icmpv6) or (tcp and http.request) or tls.handshake.type == 1",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=\u{1f}",
            "-e",
            "dns.qry.name",
            "-e",
            "http.host",
            "-e",
            "http.request.uri",
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "http.request",
            "-e",
            "tls.handshake.type",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = Found::default();
    for line in text.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 6 {
            continue;
        }
        let split = |s: &str| -> Vec<String> {
            if s.is_empty() {
                Vec::new()
            } else {
                s.split('\u{1f}').map(str::to_string).collect()
            }
        };
        for n in split(c[0]) {
            if n.bytes().all(|c| c.is_ascii_graphic()) {
                f.dns.push(n);
            } else {
                f.binary += 1;
            }
        }
        let uris = split(c[2]);
        let hosts = split(c[1]);
        for (i, u) in uris.iter().enumerate() {
            let h = hosts.get(i).cloned().unwrap_or_default();
            f.http.push(format!("{h} {u}"));
        }
        f.sni.extend(split(c[3]));
    }
    Some(f)
}

/// (matched, ours only, tshark only)
fn compare(a: &[String], b: &[String]) -> (usize, Vec<String>, Vec<String>) {
    let mut m: BTreeMap<&str, i64> = BTreeMap::new();
    for x in a {
        *m.entry(x).or_default() += 1;
    }
    let mut matched = 0;
    let mut theirs_only = Vec::new();
    for x in b {
        match m.get_mut(x.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                matched += 1;
            }
            _ => theirs_only.push(x.clone()),
        }
    }
    let ours_only = m
        .into_iter()
        .flat_map(|(k, n)| std::iter::repeat_n(k.to_string(), n.max(0) as usize))
        .collect();
    (matched, ours_only, theirs_only)
}

#[test]
fn agrees_with_tshark_on_shared_captures() {
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("skipped: tshark absent");
        return;
    }
    // The repository's fixtures always; the shared corpus when present.
    let mut list = Vec::new();
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
        &mut list,
    );
    match pcaps_dir() {
        Some(dir) => files(&dir, &mut list),
        None => eprintln!("../shared/data/pcaps absent: fixtures only"),
    }
    let mut tot = [[0usize; 3]; 3];
    let mut panics = 0;
    let mut binary = [0usize; 2];
    let mut shown = 0;
    for p in &list {
        let Some(o) = ours(p) else { continue };
        let Some(t) = theirs(p) else { continue };
        panics += o.panics;
        binary[0] += o.binary;
        binary[1] += t.binary;
        for (i, (a, b, what)) in [
            (&o.dns, &t.dns, "dns"),
            (&o.http, &t.http, "http"),
            (&o.sni, &t.sni, "sni"),
        ]
        .into_iter()
        .enumerate()
        {
            let (m, oo, to) = compare(a, b);
            tot[i][0] += m;
            tot[i][1] += oo.len();
            tot[i][2] += to.len();
            if (!oo.is_empty() || !to.is_empty()) && shown < 40 {
                shown += 1;
                eprintln!(
                    "{} {what}: matched {m}, ours only {:?}, tshark only {:?}",
                    p.display(),
                    &oo[..oo.len().min(4)],
                    &to[..to.len().min(4)]
                );
            }
        }
    }
    for (i, what) in ["dns query names", "http host+uri", "tls sni"]
        .iter()
        .enumerate()
    {
        let [m, oo, to] = tot[i];
        eprintln!(
            "AGREEMENT {what}: {m} matched, {oo} only ours, {to} only tshark ({:.1}% of tshark's)",
            if m + to == 0 {
                100.0
            } else {
                100.0 * m as f64 / (m + to) as f64
            }
        );
    }
    eprintln!(
        "binary DNS names (not compared): ours {}, tshark {}",
        binary[0], binary[1]
    );
    assert_eq!(panics, 0, "parser panicked");
    // The bulk must agree; see the printed numbers for details.
    for (i, what) in ["dns", "http", "sni"].iter().enumerate() {
        let [m, _, to] = tot[i];
        assert!(
            m + to == 0 || m * 100 >= (m + to) * 98,
            "{what}: only {m} of {} tshark values found",
            m + to
        );
    }
}
