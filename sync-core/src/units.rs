//! Values users write with units: data rates and UDP port ranges.
//!
//! Owns the one parser for each such value, shared by the command line
//! (as clap value parsers) and the daemon's config file, so `--rate 1.5G`
//! and `max_rate = "1.5G"` mean the same, as do `--udp-ports 33001` and
//! `udp_ports = "33001"`. A parser takes the text as the user wrote it and
//! returns the value, or a one-line message that quotes the text and names
//! the forms expected; it never knows which flag or field the text came
//! from (callers add that).

use std::ops::RangeInclusive;

/// Bits per second: a decimal number with an optional unit K, M, G or T
/// (powers of 1000, as network rates are quoted, either case), e.g. `200M`,
/// `1.5G`, `64000`. At least 1 bit/s; fractions of a bit are dropped.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!("not a rate: {s:?} ({why}; expected bits per second, a number with an optional K, M, G or T, e.g. 200M or 1.5G)")
    };
    let t = s.trim();
    let (num, mult): (&str, u64) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1_000,
                'M' => 1_000_000,
                'G' => 1_000_000_000,
                'T' => 1_000_000_000_000,
                _ => return Err(bad(&format!("unknown unit {c:?}"))),
            };
            (t[..i].trim_end(), mult)
        }
        _ => (t, 1),
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + frac.len() == 0 || !digits(whole) || !digits(frac) {
        return Err(bad("not a number"));
    }
    let too_large = || bad("too large");
    let whole: u64 = match whole {
        "" => 0,
        w => w.parse().map_err(|_| too_large())?,
    };
    // Digits past the 18th are below a bit per second even in T.
    let frac = &frac[..frac.len().min(18)];
    let frac_bits = match frac {
        "" => 0,
        f => {
            let scale = 10u128.pow(f.len() as u32);
            let f: u128 = f.parse().expect("at most 18 digits");
            (f * u128::from(mult) / scale) as u64
        }
    };
    let rate = whole
        .checked_mul(mult)
        .and_then(|r| r.checked_add(frac_bits))
        .ok_or_else(too_large)?;
    if rate == 0 {
        return Err(bad("below 1 bit/s"));
    }
    Ok(rate)
}

/// UDP ports: `LOW-HIGH` (inclusive, LOW <= HIGH) or a single port; port
/// `0` asks the system for any free port.
pub fn parse_ports(s: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || {
        format!("not a port range: {s:?} (expected LOW-HIGH such as 33001-33016, one port, or 0 for any free port)")
    };
    let port = |p: &str| p.trim().parse::<u16>().map_err(|_| bad());
    let (low, high) = match s.split_once('-') {
        Some((low, high)) => (port(low)?, port(high)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if low > high {
        return Err(bad());
    }
    Ok(low..=high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_decimals_and_units() {
        for (given, bits) in [
            ("64000", 64_000),
            ("500k", 500_000),
            ("800K", 800_000),
            ("200M", 200_000_000),
            ("1G", 1_000_000_000),
            ("1.5g", 1_500_000_000),
            ("2.3M", 2_300_000),
            ("0.5k", 500),
            (".5M", 500_000),
            ("2.T", 2_000_000_000_000),
            (" 100 M ", 100_000_000),
            ("1.0000000000000000000009G", 1_000_000_000),
            ("1.5", 1),
        ] {
            assert_eq!(parse_rate(given), Ok(bits), "{given:?}");
        }
    }

    #[test]
    fn bad_rates_say_what_was_expected() {
        for (given, why) in [
            ("", "not a number"),
            ("fast", "not a number"),
            ("G", "not a number"),
            ("1X", "unknown unit 'X'"),
            ("-1M", "not a number"),
            ("1e3", "not a number"),
            ("1.2.3M", "not a number"),
            ("inf", "unknown unit 'f'"),
            ("0", "below 1 bit/s"),
            ("0.0001", "below 1 bit/s"),
            ("99999999999999G", "too large"),
            ("99999999999999999999", "too large"),
        ] {
            let e = parse_rate(given).unwrap_err();
            assert!(
                e.starts_with(&format!("not a rate: {given:?} ({why}"))
                    && e.contains("K, M, G or T, e.g. 200M or 1.5G"),
                "{given:?}: {e}"
            );
        }
    }

    #[test]
    fn ports_are_a_range_or_one_port() {
        assert_eq!(parse_ports("33001-33016"), Ok(33001..=33016));
        assert_eq!(parse_ports(" 40000 - 40100 "), Ok(40000..=40100));
        assert_eq!(parse_ports("1-1"), Ok(1..=1));
        assert_eq!(parse_ports("7000"), Ok(7000..=7000));
        assert_eq!(parse_ports("0"), Ok(0..=0));
        assert_eq!(parse_ports("65535"), Ok(65535..=65535));
    }

    #[test]
    fn bad_ports_say_what_was_expected() {
        for given in [
            "", "x", "9-1", "1-70000", "70000", "-5", "5-", "1-2-3", "1.5",
        ] {
            let e = parse_ports(given).unwrap_err();
            assert_eq!(
                e,
                format!("not a port range: {given:?} (expected LOW-HIGH such as 33001-33016, one port, or 0 for any free port)")
            );
        }
    }
}
