//! Fuzzes the MIME decoder behind SMTP (`zonewatch_applayer`): the input
//! is a mail message sent after `DATA` (byte 0 = chunk size, byte 1 bit 0
//! = the message ends with `.`, bit 1 = send it with `BDAT` instead, bit 2
//! = with md5/sha1). Headers, boundaries, base64 and quoted-printable
//! bodies, attachments: must not panic; memory stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch_applayer::{AppConfig, AppProto, AppState, Direction, FileHashes};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let chunk = usize::from(data[0]) + 1;
    let flags = data[1];
    let msg = &data[2..];
    let cfg = AppConfig {
        smtp_max_header_value: 256,
        smtp_max_headers: 16,
        smtp_file_data_depth: 4096,
        smtp_log_subject: true,
        file_hashes: FileHashes {
            md5: flags & 4 != 0,
            sha1: flags & 4 != 0,
        },
        ..AppConfig::default()
    };
    let mut st = AppState::with_proto(cfg, 6, 25, AppProto::Smtp);
    let mut out = Vec::new();
    st.on_stream(Direction::ToClient, b"220 mx\r\n", &mut out);
    let cmd = if flags & 2 != 0 {
        format!("EHLO f\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT {} LAST\r\n", msg.len())
    } else {
        "EHLO f\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_string()
    };
    st.on_stream(Direction::ToServer, cmd.as_bytes(), &mut out);
    for c in msg.chunks(chunk) {
        st.on_stream(Direction::ToServer, c, &mut out);
        assert!(st.mem_bytes() < 1 << 20, "{} bytes held", st.mem_bytes());
        out.clear();
    }
    if flags & 1 != 0 {
        st.on_stream(Direction::ToServer, b"\r\n.\r\n", &mut out);
    }
    st.on_close(&mut out);
});
