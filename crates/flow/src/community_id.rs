//! Community ID v1 (corelight/community-id-spec): a flow hash that every tool
//! computes alike, so a SIEM can join zonewatch's events with Zeek's or
//! Suricata's.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::net::IpAddr;
use zonewatch_types::{ipproto, FlowTuple};

fn addr_bytes(a: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (b, 4)
        }
        IpAddr::V6(v6) => {
            b.copy_from_slice(&v6.octets());
            (b, 16)
        }
    }
}

/// Community ID v1 of a flow tuple. For ICMP the tuple's ports must already
/// hold Community ID's type/code mapping (as [`zonewatch_decode::icmp_ports`]
/// makes them).
pub fn community_id_v1(seed: u16, t: &FlowTuple) -> String {
    let has_ports = matches!(
        t.proto,
        ipproto::TCP | ipproto::UDP | ipproto::SCTP | ipproto::ICMP | ipproto::ICMPV6
    );
    let (sa, sl) = addr_bytes(&t.src);
    let (da, dl) = addr_bytes(&t.dst);
    let (mut s, mut d, mut sp, mut dp) = ((sa, sl), (da, dl), t.sport, t.dport);
    let one_way = match t.proto {
        ipproto::ICMP => zonewatch_decode::icmp_is_one_way(4, t.sport as u8),
        ipproto::ICMPV6 => zonewatch_decode::icmp_is_one_way(6, t.sport as u8),
        _ => false,
    };
    let ordered = (&s.0[..s.1], sp) <= (&d.0[..d.1], dp);
    if !one_way && !ordered {
        std::mem::swap(&mut s, &mut d);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&s.0[..s.1]);
    h.update(&d.0[..d.1]);
    h.update([t.proto, 0]);
    if has_ports {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> FlowTuple {
        FlowTuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport,
            dport,
            proto,
            vlan: [0; 2],
        }
    }

    /// The examples published with the spec and its reference implementations.
    #[test]
    fn spec_examples() {
        let cases = [
            (
                t("128.232.110.120", "66.35.250.204", 6, 34855, 80),
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                t("66.35.250.204", "128.232.110.120", 6, 80, 34855),
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                t("192.168.1.52", "8.8.8.8", 17, 54585, 53),
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                t("192.168.170.8", "192.168.170.56", 132, 7, 7),
                "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            ),
            (
                t(
                    "2001:470:e5bf:dead:4957:2174:e82c:4887",
                    "2607:f8b0:400c:c03::1a",
                    6,
                    63943,
                    25,
                ),
                "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            ),
        ];
        for (tuple, want) in cases {
            assert_eq!(community_id_v1(0, &tuple), want, "{tuple:?}");
        }
    }

    #[test]
    fn icmp_examples_use_type_mapping() {
        let (sp, dp) = zonewatch_decode::icmp_ports(4, 8, 0);
        let echo = t("192.168.0.89", "192.168.0.1", 1, sp, dp);
        assert_eq!(community_id_v1(0, &echo), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
        // The reply hashes the same.
        let (sp, dp) = zonewatch_decode::icmp_ports(4, 0, 0);
        let reply = t("192.168.0.1", "192.168.0.89", 1, sp, dp);
        assert_eq!(community_id_v1(0, &reply), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
        let (sp, dp) = zonewatch_decode::icmp_ports(6, 134, 0);
        let ra = t("fe80::260:97ff:fe07:69ea", "ff02::1", 58, sp, dp);
        assert_eq!(community_id_v1(0, &ra), "1:pkvHqCL88/tg1k4cPigmZXUtL00=");
    }

    #[test]
    fn seed_changes_the_hash() {
        let a = t("10.0.0.1", "10.0.0.2", 6, 1, 2);
        assert_ne!(community_id_v1(0, &a), community_id_v1(1, &a));
    }
}
