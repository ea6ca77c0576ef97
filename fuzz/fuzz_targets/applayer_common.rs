// Shared driver for the app-layer fuzz targets (included with `include!`).
//
// Input layout: byte 0 = chunk size (1..=256), byte 1 = how the rest is split
// between directions (to_server gets the first byte1 * len / 255 bytes),
// byte 2 bit 0 = inject a gap in the middle of the to_client side,
// bit 1 = also run protocol detection instead of forcing the protocol.
// The rest is the stream data. Each parser must not panic, and the state's
// memory must stay within a bound set by the configuration.

use zonewatch_applayer::{AppConfig, AppOutput, AppProto, AppState, Direction};

#[allow(dead_code)]
fn drive(data: &[u8], proto: AppProto, ipproto: u8, port: u16) {
    if data.len() < 3 {
        return;
    }
    let chunk = usize::from(data[0]) + 1;
    let split = (usize::from(data[1]) * (data.len() - 3)) / 255;
    let flags = data[2];
    let body = &data[3..];
    let (cs, sc) = body.split_at(split.min(body.len()));
    let cfg = AppConfig {
        http_request_body_limit: 4096,
        http_response_body_limit: 4096,
        http_field_limit: 1024,
        http_max_header_bytes: 8192,
        http_max_pending: 8,
        tls_max_handshake_bytes: 32 * 1024,
        ssh_max_record_bytes: 16 * 1024,
        ..AppConfig::default()
    };
    let mut st = if flags & 2 != 0 {
        AppState::new(cfg, ipproto, port)
    } else {
        AppState::with_proto(cfg, ipproto, port, proto)
    };
    let mut out: Vec<AppOutput> = Vec::new();
    // Generous bound: every cap above, twice, plus per-transaction copies.
    let bound = 1 << 20;
    if ipproto == 17 {
        for c in cs.chunks(chunk) {
            st.on_datagram(Direction::ToServer, c, &mut out);
        }
        for c in sc.chunks(chunk) {
            st.on_datagram(Direction::ToClient, c, &mut out);
        }
        return;
    }
    let mut a = cs.chunks(chunk);
    let mut b = sc.chunks(chunk);
    let mut n = 0usize;
    loop {
        let x = a.next();
        let y = b.next();
        if x.is_none() && y.is_none() {
            break;
        }
        if let Some(x) = x {
            st.on_stream(Direction::ToServer, x, &mut out);
        }
        if let Some(y) = y {
            if flags & 1 != 0 && n == 2 {
                st.on_gap(Direction::ToClient, u64::from(y[0]), &mut out);
            }
            st.on_stream(Direction::ToClient, y, &mut out);
        }
        n += 1;
        assert!(
            st.mem_bytes() < bound,
            "state holds {} bytes",
            st.mem_bytes()
        );
        out.clear();
    }
    st.on_close(&mut out);
    for o in &out {
        if let AppOutput::Tx(t) = o {
            // EVE records must render.
            assert!(!t.eve.to_string().is_empty());
        }
    }
}
