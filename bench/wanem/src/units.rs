//! Parsers for the quantities a user types: rates, durations, sizes and
//! percentages. They only turn text into numbers; whether a number makes
//! sense for a link is `config`'s business.
//!
//! Units are decimal for rates (`1G` is 10^9 bit/s, as link speeds are
//! quoted) and for sizes with `k`/`M`/`G`; sizes also take `KiB`/`MiB`/`GiB`.

use std::time::Duration;

/// What was wrong with a value, phrased for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{input}': {expected}")]
pub struct ParseError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

fn err(what: &'static str, input: &str, expected: &'static str) -> ParseError {
    ParseError {
        what,
        input: input.to_string(),
        expected,
    }
}

/// Splits `12.5ms` into `(12.5, "ms")`; the number must be finite and >= 0.
fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let value: f64 = s[..end].parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some((value, s[end..].trim()))
}

/// A link rate in bits per second: `300M`, `1G`, `1.5G`, `800k`, `100000`
/// (an optional `bit`/`bps` after the prefix is accepted). `unlimited`,
/// `none` or `0` mean no rate limit, returned as `None`.
pub fn parse_rate(s: &str) -> Result<Option<u64>, ParseError> {
    const EXPECTED: &str =
        "expected bits per second with an optional k/M/G suffix (e.g. 300M, 1G), or 'unlimited'";
    if matches!(s.trim(), "unlimited" | "none" | "inf") {
        return Ok(None);
    }
    let (value, unit) = split_number(s).ok_or_else(|| err("rate", s, EXPECTED))?;
    let unit = unit
        .strip_suffix("bit")
        .or_else(|| unit.strip_suffix("bps"))
        .unwrap_or(unit);
    let scale = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "m" | "M" => 1e6,
        "g" | "G" => 1e9,
        _ => return Err(err("rate", s, EXPECTED)),
    };
    let bps = (value * scale).round();
    if bps > 1e12 {
        return Err(err("rate", s, "rates above 1 Tbit/s are not supported"));
    }
    Ok((bps >= 1.0).then_some(bps as u64))
}

/// A duration: `50ms`, `0.5ms`, `200us`, `1s`, `1.5s`, or a bare `0`.
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    const EXPECTED: &str = "expected a number with a unit: s, ms or us (e.g. 50ms)";
    let (value, unit) = split_number(s).ok_or_else(|| err("duration", s, EXPECTED))?;
    let secs = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "" if value == 0.0 => 0.0,
        _ => return Err(err("duration", s, EXPECTED)),
    };
    if secs > 3600.0 {
        return Err(err(
            "duration",
            s,
            "durations above one hour are not supported",
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A probability given as a percentage, `1%`, `0.1%` or `5` (the `%` is
/// optional), returned as a fraction in [0, 1].
pub fn parse_percent(s: &str) -> Result<f64, ParseError> {
    const EXPECTED: &str = "expected a percentage between 0 and 100 (e.g. 1% or 0.1%)";
    let (value, unit) = split_number(s).ok_or_else(|| err("percentage", s, EXPECTED))?;
    if !(unit.is_empty() || unit == "%") || value > 100.0 {
        return Err(err("percentage", s, EXPECTED));
    }
    Ok(value / 100.0)
}

/// A size in bytes: `1500000`, `1.5M` (10^6), `2MiB` (2^20); `B` optional.
pub fn parse_bytes(s: &str) -> Result<u64, ParseError> {
    const EXPECTED: &str = "expected bytes with an optional k/M/G or KiB/MiB/GiB suffix";
    let (value, unit) = split_number(s).ok_or_else(|| err("size", s, EXPECTED))?;
    let scale = match unit.strip_suffix('B').unwrap_or(unit) {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err("size", s, EXPECTED)),
    };
    Ok((value * scale).round() as u64)
}

/// Gilbert-Elliott parameters `p,r,loss_good,loss_bad`, each a percentage:
/// `1%,25%,0,100%` enters the bad state after 1 % of packets, stays there
/// for 4 packets on average and loses every packet while in it.
pub fn parse_gilbert_elliott(s: &str) -> Result<[f64; 4], ParseError> {
    const EXPECTED: &str = "expected four percentages p,r,loss_good,loss_bad (e.g. 1%,25%,0,100%)";
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 4 {
        return Err(err("Gilbert-Elliott parameters", s, EXPECTED));
    }
    let mut out = [0.0; 4];
    for (slot, part) in out.iter_mut().zip(parts) {
        *slot = parse_percent(part).map_err(|_| err("Gilbert-Elliott parameters", s, EXPECTED))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("300M"), Ok(Some(300_000_000)));
        assert_eq!(parse_rate("1G"), Ok(Some(1_000_000_000)));
        assert_eq!(parse_rate("1.5Gbit"), Ok(Some(1_500_000_000)));
        assert_eq!(parse_rate("800kbps"), Ok(Some(800_000)));
        assert_eq!(parse_rate("12345"), Ok(Some(12345)));
        assert_eq!(parse_rate("unlimited"), Ok(None));
        assert_eq!(parse_rate("0"), Ok(None));
        for bad in ["", "fast", "300X", "-1M", "1e3M", "M", "2T"] {
            assert!(parse_rate(bad).is_err(), "{bad} accepted");
        }
        let msg = parse_rate("300X").unwrap_err().to_string();
        assert!(msg.contains("'300X'") && msg.contains("300M"), "{msg}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("0.5ms"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("200us"), Ok(Duration::from_micros(200)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["50", "ms", "5 min", "-1ms", "2h", "4000s"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("1%"), Ok(0.01));
        assert_eq!(parse_percent("0.1%"), Ok(0.001));
        assert_eq!(parse_percent("5"), Ok(0.05));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        for bad in ["101%", "x", "1%%", "-1%"] {
            assert!(parse_percent(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1500"), Ok(1500));
        assert_eq!(parse_bytes("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_bytes("2MiB"), Ok(2 << 20));
        assert!(parse_bytes("2XB").is_err());
    }

    #[test]
    fn gilbert_elliott() {
        assert_eq!(
            parse_gilbert_elliott("1%,25%,0,100%"),
            Ok([0.01, 0.25, 0.0, 1.0])
        );
        assert!(parse_gilbert_elliott("1%,25%,0").is_err());
        assert!(parse_gilbert_elliott("1%,25%,0,200%").is_err());
    }
}
