//! Packet time and its rendering in Suricata's EVE format.

use std::fmt;

/// A point in time as nanoseconds since the Unix epoch (packet time in file
/// mode, capture time in live mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From seconds and nanoseconds.
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(nanos as i64),
        )
    }
    /// Whole seconds since the epoch (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }
    /// Nanoseconds within the second.
    pub fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(1_000_000_000) as u32
    }
    /// `self - other` in whole seconds (floor), never negative.
    pub fn secs_since(self, other: Timestamp) -> i64 {
        (self.0.saturating_sub(other.0)).max(0) / 1_000_000_000
    }
    /// This time plus `secs` seconds.
    pub fn plus_secs(self, secs: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add((secs as i64).saturating_mul(1_000_000_000)),
        )
    }

    /// Renders as Suricata does: `2026-11-25T20:30:45.123456+0900` (microseconds,
    /// local time of `offset`). Hand-formatted: this runs several times per
    /// event and `fmt` machinery would dominate the output thread.
    pub fn write_eve(self, offset: UtcOffset, out: &mut String) {
        let local = self.secs() + offset.0 as i64;
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let mut b = *b"0000-00-00T00:00:00.000000+0000";
        let put = |b: &mut [u8; 31], at: usize, width: usize, mut v: u32| {
            for i in (0..width).rev() {
                b[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(&mut b, 0, 4, y.clamp(0, 9999) as u32);
        put(&mut b, 5, 2, m);
        put(&mut b, 8, 2, d);
        put(&mut b, 11, 2, sod / 3600);
        put(&mut b, 14, 2, (sod / 60) % 60);
        put(&mut b, 17, 2, sod % 60);
        put(&mut b, 20, 6, self.subsec_nanos() / 1000);
        if offset.0 < 0 {
            b[26] = b'-';
        }
        let off = offset.0.unsigned_abs();
        put(&mut b, 27, 2, off / 3600);
        put(&mut b, 29, 2, (off / 60) % 60);
        // Only ASCII digits and separators were written.
        out.push_str(std::str::from_utf8(&b).expect("ASCII"));
    }

    /// [`Timestamp::write_eve`] into a new string.
    pub fn to_eve(self, offset: UtcOffset) -> String {
        let mut s = String::with_capacity(32);
        self.write_eve(offset, &mut s);
        s
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The sensor's offset from UTC, in seconds (Japan: `+09:00` = 32400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UtcOffset(pub i32);

impl UtcOffset {
    /// Parses `+09:00`, `+0900`, `-05:30`, `Z` or `UTC`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
            return Ok(UtcOffset(0));
        }
        let bad = || format!("bad UTC offset {s:?}: expected +HH:MM, e.g. +09:00");
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let h: i32 = digits[..2].parse().map_err(|_| bad())?;
        let m: i32 = digits[2..].parse().map_err(|_| bad())?;
        if h > 14 || m > 59 {
            return Err(bad());
        }
        Ok(UtcOffset(sign * (h * 3600 + m * 60)))
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", a / 3600, (a / 60) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eve_format_with_offset() {
        // 2026-11-25T11:30:45.123456Z
        let t = Timestamp::from_parts(1_795_606_245, 123_456_789);
        let jst = UtcOffset::parse("+09:00").unwrap();
        assert_eq!(t.to_eve(jst), "2026-11-25T20:30:45.123456+0900");
        assert_eq!(t.to_eve(UtcOffset(0)), "2026-11-25T11:30:45.123456+0000");
        let ny = UtcOffset::parse("-05:00").unwrap();
        assert_eq!(t.to_eve(ny), "2026-11-25T06:30:45.123456-0500");
    }

    #[test]
    fn epoch_and_leap_day() {
        assert_eq!(
            Timestamp(0).to_eve(UtcOffset(0)),
            "1970-01-01T00:00:00.000000+0000"
        );
        // 2024-02-29T23:59:59Z
        let t = Timestamp::from_parts(1_709_251_199, 0);
        assert_eq!(t.to_eve(UtcOffset(0)), "2024-02-29T23:59:59.000000+0000");
    }

    #[test]
    fn offsets_parse_and_reject() {
        assert_eq!(UtcOffset::parse("+0930").unwrap().0, 9 * 3600 + 1800);
        assert_eq!(UtcOffset::parse("Z").unwrap().0, 0);
        assert!(UtcOffset::parse("09:00").is_err());
        assert!(UtcOffset::parse("+9").is_err());
        assert_eq!(UtcOffset(32400).to_string(), "+09:00");
    }
}
