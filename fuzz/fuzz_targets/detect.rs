//! Capture + rules -> alerts: arbitrary bytes decoded as a packet and run
//! through an engine holding rules of every kind (payload, pcre, byte_*,
//! header tests, flowbits, stream), as one flow's packets in both
//! directions. Nothing may panic; stream data and transactions are fed too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use zonewatch_decode::{decode, LinkType};
use zonewatch_detect::{DetectConfig, Detector, Engine, FlowView, PacketView, StreamChunk};

const RULES: &str = r#"
alert ip any any -> any any (msg:"ip-only"; sid:1;)
alert tcp any any -> any any (msg:"content"; content:"GET"; nocase; content:"HTTP/1."; distance:0; within:64; sid:2;)
alert tcp any any -> any any (msg:"pcre"; content:"user="; pcre:"/^[a-z0-9]{3,}\d/R"; sid:3;)
alert tcp any any -> any any (msg:"bytes"; content:"|00 01|"; byte_extract:1,0,n,relative; byte_test:2,>,n,0,relative,little; byte_jump:1,0,relative,post_offset -1; isdataat:!10,relative; sid:4;)
alert udp any any -> any any (msg:"dsize"; dsize:>10; content:"|ff|"; offset:2; depth:8; sid:5;)
alert icmp any any -> any any (msg:"icmp"; itype:8; icode:0; icmp_seq:>0; sid:6;)
alert tcp any any -> any any (msg:"flags"; flags:S+,12; tcp.mss:<1400; window:!0; sid:7;)
alert tcp any any -> any any (msg:"fb set"; content:"a"; flowbits:set,x; flowbits:noalert; sid:8;)
alert tcp any any -> any any (msg:"fb isset"; content:"b"; flowbits:isset,x; sid:9;)
alert tcp any any -> any any (msg:"hdr"; tcp.hdr; content:"|02 04|"; sid:10;)
alert ip any any -> any any (msg:"ipv4 hdr"; ipv4.hdr; content:"|45|"; depth:1; ttl:<64; sid:11;)
alert tcp any any -> any any (msg:"stream"; flow:established,to_server; content:"evil"; startswith; sid:12;)
alert http any any -> any any (msg:"uri"; http.uri; content:"/admin"; urilen:>5; sid:13;)
"#;

fn engine() -> &'static Arc<Engine> {
    static E: OnceLock<Arc<Engine>> = OnceLock::new();
    E.get_or_init(|| Arc::new(Engine::from_texts(&[("fuzz.rules", RULES)], &DetectConfig::default())))
}

fuzz_target!(|data: &[u8]| {
    let mut det = Detector::new(engine().clone());
    let mut hits = Vec::new();
    for (i, link) in [LinkType::Ethernet, LinkType::Raw].into_iter().enumerate() {
        let d = decode(link, data, data.len());
        let chunk = [StreamChunk {
            to_server: i == 0,
            offset: data.len() as u64,
            data,
        }];
        let view = PacketView {
            data,
            decoded: &d,
            ts: zonewatch_types::Timestamp::from_parts(1, 0),
            flow: Some(FlowView {
                id: 7,
                to_server: i == 0,
                established: true,
                first_in_dir: i == 0,
                app_proto: None,
                app_proto_acked: false,
                // Some inputs run as an encrypted session's packets.
                payload_inspection: data.len() % 4 != 3,
            }),
            stream: &chunk,
            payload_in_stream: i == 1,
            reassembled: false,
            stream_events: &[],
            app_events: &[],
            stream_sizes: Some([data.len() as u64, 1]),
        };
        det.inspect(&view, &mut hits);
    }
    det.flow_end(7);
});
