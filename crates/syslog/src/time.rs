//! Timestamp recognition: RFC 3339 / ISO 8601, BSD (`Mmm dd hh:mm:ss`, optional year) and a few
//! vendor variants (`YYYY/MM/DD hh:mm:ss`, Cisco's leading `*`/`.`). Nothing here panics.

use zonewatch_types::Timestamp;

/// A timestamp as written, before year/zone inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: Option<i32>,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub nanos: u32,
    /// Offset east of UTC in seconds, if the text had one.
    pub offset: Option<i32>,
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month) of a timestamp seen at `offset`. The last day asked is cached per thread:
/// consecutive records nearly always share their reference day.
pub(crate) fn year_month(t: Timestamp, offset: i32) -> (i32, u32) {
    use std::cell::Cell;
    thread_local! {
        static LAST: Cell<(i64, i32, u32)> = const { Cell::new((i64::MIN, 0, 0)) };
    }
    let days = (t.secs() + offset as i64).div_euclid(86_400);
    let (d, y, m) = LAST.with(Cell::get);
    if d == days {
        return (y, m);
    }
    let (y, m) = year_month_of_days(days);
    LAST.with(|c| c.set((days, y, m)));
    (y, m)
}

fn year_month_of_days(days: i64) -> (i32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m)
}

impl Civil {
    /// Converts, inferring the year from `reference` (a record more than a month in the future
    /// belongs to the previous year) and the zone from `sensor_offset`.
    pub fn resolve(&self, reference: Timestamp, sensor_offset: i32) -> (Timestamp, bool, bool) {
        let offset = self.offset.unwrap_or(sensor_offset);
        let (year, inferred) = match self.year {
            Some(y) => (y, false),
            None => {
                let (ry, rm) = year_month(reference, offset);
                let y = if self.month > rm + 1 {
                    ry - 1
                } else if self.month + 11 <= rm {
                    ry + 1
                } else {
                    ry
                };
                (y, true)
            }
        };
        let days = days_from_civil(year as i64, self.month, self.day);
        let secs =
            days * 86_400 + (self.hour as i64) * 3600 + (self.min as i64) * 60 + self.sec as i64
                - offset as i64;
        (
            Timestamp::from_parts(secs, self.nanos),
            inferred,
            self.offset.is_none(),
        )
    }
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let b = s.get(at..at + n)?;
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// `.123456` → (nanos, bytes consumed incl. the dot). Accepts `.` or `,`.
fn fraction(s: &[u8], at: usize) -> (u32, usize) {
    match s.get(at) {
        Some(b'.') | Some(b',') => {}
        _ => return (0, 0),
    }
    let mut n = 0u32;
    let mut scale = 100_000_000u32;
    let mut i = at + 1;
    while let Some(c) = s.get(i).filter(|c| c.is_ascii_digit()) {
        n += (c - b'0') as u32 * scale;
        scale /= 10;
        i += 1;
    }
    if i == at + 1 {
        return (0, 0);
    }
    (n, i - at)
}

fn valid(c: &Civil) -> bool {
    (1..=12).contains(&c.month)
        && (1..=31).contains(&c.day)
        && c.hour < 24
        && c.min < 60
        && c.sec <= 60
        && c.year.is_none_or(|y| (1970..=9999).contains(&y))
}

/// `HH:MM:SS[.frac]` at `at`.
fn clock(s: &[u8], at: usize) -> Option<(u32, u32, u32, u32, usize)> {
    let h = digits(s, at, 2)?;
    if s.get(at + 2) != Some(&b':') {
        return None;
    }
    let m = digits(s, at + 3, 2)?;
    if s.get(at + 5) != Some(&b':') {
        return None;
    }
    let sec = digits(s, at + 6, 2)?;
    let (nanos, n) = fraction(s, at + 8);
    Some((h, m, sec, nanos, at + 8 + n))
}

/// `Z`, `+09:00`, `+0900` at `at` → (offset, consumed).
fn zone(s: &[u8], at: usize) -> (Option<i32>, usize) {
    match s.get(at) {
        Some(b'Z') | Some(b'z') => (Some(0), 1),
        Some(&c @ (b'+' | b'-')) => {
            let sign = if c == b'-' { -1 } else { 1 };
            let Some(h) = digits(s, at + 1, 2) else {
                return (None, 0);
            };
            let (m, n) = if s.get(at + 3) == Some(&b':') {
                (digits(s, at + 4, 2), 6)
            } else {
                (digits(s, at + 3, 2), 5)
            };
            match m {
                Some(m) if h <= 14 && m < 60 => (Some(sign * (h as i32 * 3600 + m as i32 * 60)), n),
                _ => (None, 0),
            }
        }
        _ => (None, 0),
    }
}

/// ISO 8601 / RFC 3339: `YYYY-MM-DD[T ]HH:MM:SS[.frac][zone]`, also `YYYY/MM/DD`.
pub(crate) fn parse_iso(s: &[u8]) -> Option<(Civil, usize)> {
    let year = digits(s, 0, 4)?;
    let sep = *s.get(4)?;
    if sep != b'-' && sep != b'/' {
        return None;
    }
    let month = digits(s, 5, 2)?;
    if s.get(7) != Some(&sep) {
        return None;
    }
    let day = digits(s, 8, 2)?;
    match s.get(10) {
        Some(b'T') | Some(b't') | Some(b' ') => {}
        _ => return None,
    }
    let (hour, min, sec, nanos, mut end) = clock(s, 11)?;
    let (offset, n) = zone(s, end);
    end += n;
    let c = Civil {
        year: Some(year as i32),
        month,
        day,
        hour,
        min,
        sec,
        nanos,
        offset,
    };
    valid(&c).then_some((c, end))
}

fn month_of(s: &[u8]) -> Option<u32> {
    const M: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let b = s.get(..3)?;
    let l = [
        b[0].to_ascii_lowercase(),
        b[1].to_ascii_lowercase(),
        b[2].to_ascii_lowercase(),
    ];
    M.iter().position(|m| **m == l).map(|i| i as u32 + 1)
}

/// BSD: `Mmm dd hh:mm:ss`, `Mmm d hh:mm:ss`, `Mmm dd yyyy hh:mm:ss`, optional fraction and a
/// trailing `:`; Cisco's leading `*` or `.` is skipped.
pub(crate) fn parse_bsd(s: &[u8]) -> Option<(Civil, usize)> {
    let mut i = 0;
    if matches!(s.first(), Some(b'*') | Some(b'.')) {
        i = 1;
    }
    let month = month_of(s.get(i..)?)?;
    i += 3;
    if s.get(i) != Some(&b' ') {
        return None;
    }
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    let day = if let Some(d) = digits(s, i, 2) {
        i += 2;
        d
    } else {
        let d = digits(s, i, 1)?;
        i += 1;
        d
    };
    if s.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let mut year = None;
    if let (Some(y), Some(b' ')) = (digits(s, i, 4), s.get(i + 4)) {
        year = Some(y as i32);
        i += 5;
    }
    let (hour, min, sec, nanos, mut end) = clock(s, i)?;
    let (offset, n) = zone(s, end);
    end += n;
    if s.get(end) == Some(&b':') {
        end += 1;
    }
    let c = Civil {
        year,
        month,
        day,
        hour,
        min,
        sec,
        nanos,
        offset,
    };
    valid(&c).then_some((c, end))
}

/// Apache error log / ctime style: `[Tue Jul 22 06:48:30 2008]`, `[Sun Jun 09 07:57:47.123 2013]`
/// (also without brackets: `Tue Jul 22 06:48:30 2008`).
pub(crate) fn parse_ctime(s: &[u8]) -> Option<(Civil, usize)> {
    let bracket = s.first() == Some(&b'[');
    let mut i = usize::from(bracket);
    let wd = s.get(i..i + 4)?;
    if !wd[..3].iter().all(u8::is_ascii_alphabetic) || wd[3] != b' ' {
        return None;
    }
    i += 4;
    let (mut c, n) = parse_bsd(s.get(i..)?)?;
    if c.year.is_some() {
        return None;
    }
    i += n;
    if s.get(i) != Some(&b' ') {
        return None;
    }
    c.year = Some(digits(s, i + 1, 4)? as i32);
    i += 5;
    if bracket {
        if s.get(i) != Some(&b']') {
            return None;
        }
        i += 1;
    }
    valid(&c).then_some((c, i))
}

/// Any recognised timestamp at the start of `s`.
pub(crate) fn parse_any(s: &[u8]) -> Option<(Civil, usize)> {
    parse_iso(s)
        .or_else(|| parse_bsd(s))
        .or_else(|| parse_ctime(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_math() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let t = Timestamp::from_parts(1_795_606_245, 0); // 2026-11-25T11:30:45Z
        assert_eq!(year_month(t, 0), (2026, 11));
    }

    #[test]
    fn iso_with_zone() {
        let (c, n) = parse_iso(b"2003-10-11T22:14:15.003Z rest").unwrap();
        assert_eq!(n, 24);
        let (t, inf, zinf) = c.resolve(Timestamp(0), 32400);
        assert!(!inf && !zinf);
        assert_eq!(t.secs(), 1_065_910_455);
        assert_eq!(t.subsec_nanos(), 3_000_000);
        let (c, _) = parse_iso(b"2026-07-23T09:30:45.123+02:00").unwrap();
        assert_eq!(c.offset, Some(7200));
    }

    #[test]
    fn bsd_variants_and_year_inference() {
        for s in [
            &b"Mar  7 19:06:53 x"[..],
            b"Mar 7 19:06:53 x",
            b"Mar 7 2008 19:06:53: x",
            b"*Mar 07 19:06:53.123: x",
        ] {
            let (c, _) = parse_bsd(s).unwrap_or_else(|| panic!("{s:?}"));
            assert_eq!((c.month, c.day, c.hour, c.min, c.sec), (3, 7, 19, 6, 53));
        }
        // Reference: 2026-01-10 (JST). A December record belongs to 2025.
        let reference = Timestamp::from_parts(days_from_civil(2026, 1, 10) * 86_400, 0);
        let (c, _) = parse_bsd(b"Dec 31 23:59:59").unwrap();
        let (t, inferred, zone_inferred) = c.resolve(reference, 32400);
        assert!(inferred && zone_inferred);
        assert_eq!(
            t.secs(),
            days_from_civil(2025, 12, 31) * 86_400 + 86_399 - 32400
        );
        assert!(parse_bsd(b"Foo  7 19:06:53").is_none());
        let (c, n) = parse_ctime(b"[Sun Jun 09 07:57:47.123 2013] [error]").unwrap();
        assert_eq!(
            (c.year, c.month, c.day, c.nanos, n),
            (Some(2013), 6, 9, 123_000_000, 30)
        );
        assert!(parse_ctime(b"[Sun Jun 09 07:57:47 13]").is_none());
        assert!(parse_bsd(b"Mar 32 19:06:53").is_none());
        assert!(parse_bsd(b"Mar 7 19:06").is_none());
    }
}
