//! Times for `sluice log`: unix nanoseconds shown in UTC as ISO 8601
//! (`2026-12-07T17:23:03Z`), and `--since` read in the same form or as an
//! age (`2h`, `3d`). UTC needs no time-zone database, and the `Z` says
//! which zone it is. The calendar arithmetic is Howard Hinnant's
//! `days_from_civil` / `civil_from_days` (proleptic Gregorian).

const NS: i64 = 1_000_000_000;

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format(ns: i64) -> String {
    let secs = ns.div_euclid(NS);
    let (days, s) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// A `--since` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// Unix seconds.
    At(i64),
    /// This many seconds before now.
    Ago(i64),
}

impl Since {
    /// The unix nanoseconds it stands for, `now_ns` being now.
    pub fn to_ns(self, now_ns: i64) -> i64 {
        match self {
            Since::At(s) => s.saturating_mul(NS),
            Since::Ago(s) => now_ns.saturating_sub(s.saturating_mul(NS)),
        }
    }
}

/// Reads `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC), or a whole
/// number of s, m, h, d or w ago (`30m`, `2h`, `3d`).
pub fn parse_since(s: &str) -> Result<Since, String> {
    let bad =
        || format!("{s:?}: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or an age like 2h or 3d");
    let last = s.chars().last().map_or(0, char::len_utf8);
    let (digits, unit) = s.split_at(s.len() - last);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = digits.parse().map_err(|_| bad())?;
        let per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        return Ok(Since::Ago(i64::from(n) * per));
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').unwrap_or(t))),
        None => (s, None),
    };
    let num = |p: &str, width: usize| -> Result<i64, String> {
        if p.len() == width && p.bytes().all(|b| b.is_ascii_digit()) {
            Ok(p.parse().expect("digits"))
        } else {
            Err(bad())
        }
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, m, d] = d[..] else {
        return Err(bad());
    };
    let (y, m, d) = (num(y, 4)?, num(m, 2)?, num(d, 2)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let t: Vec<&str> = t.split(':').collect();
        let (h, min, sec) = match t[..] {
            [h, min] => (num(h, 2)?, num(min, 2)?, 0),
            [h, min, sec] => (num(h, 2)?, num(min, 2)?, num(sec, 2)?),
            _ => return Err(bad()),
        };
        if h > 23 || min > 59 || sec > 59 {
            return Err(bad());
        }
        secs += h * 3600 + min * 60 + sec;
    }
    Ok(Since::At(secs))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12; // March is 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        assert_eq!(format(951_782_400 * NS), "2000-02-29T00:00:00Z");
        assert_eq!(format(1_765_127_023 * NS + 999), "2025-12-07T17:03:43Z");
        assert_eq!(format(4_102_444_799 * NS), "2099-12-31T23:59:59Z");
        assert_eq!(format(-NS), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn reads_dates_times_and_ages() {
        assert_eq!(parse_since("2000-02-29"), Ok(Since::At(951_782_400)));
        assert_eq!(
            parse_since("2025-12-07T17:03"),
            Ok(Since::At(1_765_127_023 - 43))
        );
        assert_eq!(
            parse_since("2025-12-07T17:03:43Z"),
            Ok(Since::At(1_765_127_023))
        );
        assert_eq!(
            parse_since("2025-12-07 17:03:43"),
            Ok(Since::At(1_765_127_023))
        );
        assert_eq!(parse_since("2h"), Ok(Since::Ago(7200)));
        assert_eq!(parse_since("3d"), Ok(Since::Ago(3 * 86_400)));
        assert_eq!(parse_since("1w"), Ok(Since::Ago(7 * 86_400)));
        assert_eq!(Since::Ago(2).to_ns(10 * NS), 8 * NS);
        for bad in [
            "",
            "h",
            "2y",
            "-",
            "2025-13-01",
            "2025-02-29",
            "2025-1-01",
            "2025-12-07T24:00",
            "2025-12-07T",
            "yesterday",
            "-2h",
            "2é",
        ] {
            assert!(parse_since(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn every_day_round_trips() {
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert!(d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
