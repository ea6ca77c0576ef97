//! Fuzzes `zonewatch_decode::decode`: every link type, the input taken as a
//! whole packet (`wire_len = len`) and as a snapped one (`wire_len = len +
//! 100`). It must not panic, and every offset it returns must stay inside
//! the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_decode::{decode, DecodeEvent, Decoded, LinkType, Transport};

const LINKS: [LinkType; 7] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
];

fn check(d: &Decoded, len: usize, link: LinkType, wire_len: usize) {
    if let Some(ip) = d.ip {
        assert!(
            ip.offset as usize + ip.header_len as usize <= len,
            "{link:?} wire_len {wire_len}: IP header past the end: {ip:?} (len {len})"
        );
        assert!(ip.version == 4 || ip.version == 6);
    }
    let (off, plen) = d.payload_range();
    assert!(
        off + plen <= len,
        "{link:?} wire_len {wire_len}: payload past the end: {:?} (len {len})",
        d.transport
    );
    if let (Some(ip), Transport::Tcp(_) | Transport::Udp { .. } | Transport::Icmp { .. }) =
        (d.ip, d.transport)
    {
        // The transport header follows the innermost IP header.
        assert!(
            off >= ip.offset as usize + ip.header_len as usize,
            "{link:?} wire_len {wire_len}: payload before the IP header ends: {d:?}"
        );
    }
    // A flow tuple only for packets that are usable.
    if d.invalid {
        assert!(d.flow_tuple().is_none());
    }
    // A packet the snap length cut raises the truncation event but is
    // decoded on (flows of short-snaplen captures are kept): the one
    // invalidating event that leaves the packet usable.
    let snapped = wire_len > len;
    let cut_by_capture = |e: &DecodeEvent| {
        snapped && matches!(e, DecodeEvent::Ipv4TruncPkt | DecodeEvent::Ipv6TruncPkt)
    };
    if d.events.iter().any(|e| e.invalidates() && !cut_by_capture(&e)) {
        assert!(
            d.invalid,
            "{link:?}: invalidating event without invalid: {d:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    for link in LINKS {
        for wire_len in [data.len(), data.len() + 100] {
            let d = decode(link, data, wire_len);
            check(&d, data.len(), link, wire_len);
        }
    }
});
