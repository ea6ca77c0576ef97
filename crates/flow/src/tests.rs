use super::*;
use zonewatch_decode::tcp_flags::*;

fn tuple(a: &str, sp: u16, b: &str, dp: u16, proto: u8) -> FlowTuple {
    FlowTuple {
        src: a.parse().unwrap(),
        dst: b.parse().unwrap(),
        sport: sp,
        dport: dp,
        proto,
        vlan: [0; 2],
    }
}

fn tcp(flags: u8) -> TcpInfo {
    TcpInfo {
        flags,
        ..TcpInfo::default()
    }
}

fn secs(s: i64) -> Timestamp {
    Timestamp::from_parts(1_700_000_000 + s, 0)
}

fn flow_of(e: &Event) -> &FlowRecord {
    match &e.body {
        EventBody::Flow(f) => f,
        other => panic!("not a flow event: {other:?}"),
    }
}

#[test]
fn both_directions_share_a_flow_and_handshake_closes() {
    let mut t = FlowTable::new(FlowConfig::default());
    let c2s = tuple("10.0.0.1", 40000, "93.184.216.34", 80, 6);
    let s2c = c2s.reversed();
    let mut out = Vec::new();
    let steps = [
        (c2s, SYN),
        (s2c, SYN | ACK),
        (c2s, ACK),
        (c2s, PSH | ACK),
        (s2c, ACK),
        (c2s, FIN | ACK),
        (s2c, FIN | ACK),
        (c2s, ACK),
    ];
    for (i, (tp, fl)) in steps.iter().enumerate() {
        let r = t.packet(i as u64, secs(0), 0, tp, 60, 1, Some(&tcp(*fl)), &mut out);
        assert_eq!(r.created, i == 0);
    }
    assert_eq!(t.len(), 1);
    // Closed flows time out after the closed timeout (60 s), not before.
    t.expire(100, secs(59), &mut out);
    assert!(out.is_empty());
    t.expire(101, secs(60), &mut out);
    assert_eq!(out.len(), 1);
    let f = flow_of(&out[0]);
    assert_eq!((f.pkts_toserver, f.pkts_toclient), (5, 3));
    assert_eq!((f.bytes_toserver, f.bytes_toclient), (300, 180));
    assert_eq!(f.state, "closed");
    assert_eq!(f.reason, "timeout");
    let tcp = f.tcp.unwrap();
    assert_eq!(tcp.state, "closed");
    assert_eq!(tcp.flags_ts, SYN | ACK | PSH | FIN);
    let a = out[0].addr.unwrap();
    assert_eq!(a.src_ip, c2s.src);
    assert_eq!(a.dest_port, Some(80));
    assert!(t.is_empty());
}

#[test]
fn udp_timeouts_depend_on_state() {
    let mut t = FlowTable::new(FlowConfig::default());
    let one_way = tuple("10.0.0.1", 5000, "10.0.0.2", 53, 17);
    let two_way = tuple("10.0.0.3", 5000, "10.0.0.2", 53, 17);
    let mut out = Vec::new();
    t.packet(0, secs(0), 0, &one_way, 80, 1, None, &mut out);
    t.packet(1, secs(0), 0, &two_way, 80, 1, None, &mut out);
    t.packet(2, secs(0), 0, &two_way.reversed(), 120, 1, None, &mut out);
    t.expire(3, secs(30), &mut out);
    assert_eq!(out.len(), 1, "only the unanswered flow times out at 30 s");
    assert_eq!(flow_of(&out[0]).state, "new");
    t.expire(4, secs(300), &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(flow_of(&out[1]).state, "established");
}

#[test]
fn shutdown_reports_open_flows_in_start_order() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    for i in 0..50u16 {
        let tp = tuple("10.0.0.1", 1000 + i, "10.0.0.2", 80, 6);
        t.packet(
            i as u64 * 3,
            secs(0),
            0,
            &tp,
            60,
            1,
            Some(&tcp(SYN)),
            &mut out,
        );
    }
    t.shutdown(1000, secs(1), &mut out);
    assert_eq!(out.len(), 50);
    let keys: Vec<u64> = out.iter().map(|e| e.key.flow_first_pos()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(out.iter().all(|e| flow_of(e).reason == "shutdown"));
}

#[test]
fn memcap_bounds_flows_and_counts_evictions() {
    let cfg = FlowConfig {
        memcap_bytes: FLOW_COST_BYTES * 100,
        ..FlowConfig::default()
    };
    let mut t = FlowTable::new(cfg);
    let mut out = Vec::new();
    for i in 0..10_000u32 {
        let src = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        let tp = tuple(&src, 1234, "198.51.100.10", 80, 6);
        t.packet(i as u64, secs(0), 0, &tp, 60, 1, Some(&tcp(SYN)), &mut out);
        assert!(t.len() <= 100);
    }
    let c = t.counters();
    assert_eq!(c.total, 10_000);
    assert_eq!(c.end_forced as usize, out.len());
    assert_eq!(c.end_forced + c.end_timeout, 10_000 - t.len() as u64);
    assert!(c.emerg_mode_entered >= 1);
    // Every packet is still counted in exactly one flow.
    t.shutdown(20_000, secs(1), &mut out);
    let pkts: u64 = out.iter().map(|e| flow_of(e).pkts_toserver).sum();
    assert_eq!(pkts, 10_000);
}

#[test]
fn tcp_state_machine() {
    use Direction::*;
    let s = TcpState::None
        .next(ToServer, SYN)
        .next(ToClient, SYN | ACK)
        .next(ToServer, ACK);
    assert_eq!(s, TcpState::Established);
    assert_eq!(s.next(ToClient, RST), TcpState::Closed);
    assert_eq!(s.next(ToClient, FIN | ACK), TcpState::CloseWait);
    // A SYN/ACK without a SYN is no handshake.
    assert_eq!(TcpState::None.next(ToClient, SYN | ACK), TcpState::None);
}

/// suricata-verify smb1-03-midstream: a session picked up midstream is
/// established, so its FIN exchange ends in `closed` (it stayed `none`).
#[test]
fn midstream_pickup_is_established_and_closes() {
    use Direction::*;
    let s = TcpState::None.next(ToServer, ACK | PSH);
    assert_eq!(s, TcpState::None);
    let s = s.picked_up();
    assert_eq!(s, TcpState::Established);
    let s = s
        .next(ToClient, FIN | ACK)
        .next(ToServer, FIN | ACK)
        .next(ToClient, ACK);
    assert_eq!(s, TcpState::Closed);
    // A handshake already seen is not touched.
    assert_eq!(TcpState::FinWait1.picked_up(), TcpState::FinWait1);
}

#[test]
fn flow_ids_are_deterministic_and_distinct() {
    let mut a = FlowTable::new(FlowConfig::default());
    let mut b = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    let tp = tuple("10.0.0.1", 1, "10.0.0.2", 2, 17);
    let ra = a.packet(7, secs(0), 0, &tp, 60, 1, None, &mut out);
    let rb = b.packet(7, secs(0), 0, &tp.reversed(), 60, 1, None, &mut out);
    let ida = a.get_mut(ra.slot).unwrap().flow_id;
    let idb = b.get_mut(rb.slot).unwrap().flow_id;
    assert_eq!(ida, idb);
    let rc = a.packet(
        8,
        secs(0),
        0,
        &tuple("10.0.0.1", 1, "10.0.0.3", 2, 17),
        60,
        1,
        None,
        &mut out,
    );
    assert_ne!(a.get_mut(rc.slot).unwrap().flow_id, ida);
}

/// A new connection on the tuple of a finished one (the client's port came
/// round again) is a new flow, as Suricata's TCP session reuse; a
/// retransmitted first SYN, or a SYN on a session still open, is not.
#[test]
fn a_syn_on_a_finished_session_starts_a_new_flow() {
    let mut t = FlowTable::new(FlowConfig::default());
    let c2s = tuple("10.0.0.1", 40000, "93.184.216.34", 80, 6);
    let s2c = c2s.reversed();
    let mut out = Vec::new();
    let syn = |seq| TcpInfo {
        flags: SYN,
        seq,
        ..TcpInfo::default()
    };
    let mut pos = 0;
    let mut step = |t: &mut FlowTable, tp: &FlowTuple, info: TcpInfo, out: &mut Vec<Event>| {
        pos += 1;
        t.packet(pos, secs(0), 0, tp, 60, 1, Some(&info), out)
    };
    // A SYN retransmitted before the answer is the same connection.
    assert!(step(&mut t, &c2s, syn(1000), &mut out).created);
    assert!(!step(&mut t, &c2s, syn(1000), &mut out).created);
    for (tp, fl) in [
        (s2c, SYN | ACK),
        (c2s, ACK),
        (c2s, FIN | ACK),
        (s2c, FIN | ACK),
    ] {
        assert!(!step(&mut t, &tp, tcp(fl), &mut out).created);
    }
    // In TIME_WAIT (waiting for the last ACK) Suricata does not reuse.
    assert!(!step(&mut t, &c2s, syn(5000), &mut out).created);
    assert!(out.is_empty());
    assert!(!step(&mut t, &c2s, tcp(ACK), &mut out).created);
    // Closed: the next SYN, with another sequence number, is a new flow;
    // the old one is written.
    let r = step(&mut t, &c2s, syn(9000), &mut out);
    assert!(r.created);
    assert_eq!(out.len(), 1, "the old flow ends");
    let old = flow_of(&out[0]);
    assert_eq!(old.reason, "timeout");
    assert_eq!(old.state, "closed");
    assert_eq!(t.len(), 1);
    assert_eq!(t.counters().tcp_reuse, 1);
    // The new connection is open: its own SYN retransmitted stays in it.
    assert!(!step(&mut t, &c2s, syn(9000), &mut out).created);
    // An established connection is not cut by a stray SYN.
    step(&mut t, &s2c, tcp(SYN | ACK), &mut out);
    step(&mut t, &c2s, tcp(ACK), &mut out);
    assert!(!step(&mut t, &c2s, syn(12345), &mut out).created);
    assert_eq!(t.counters().tcp_reuse, 1);
}
