//! The text of `sluice job NAME --systemd`: a service and a timer, and the
//! crontab line that runs as often; the `--every` and `--on-calendar`
//! values; quoting for systemd and sh.

use std::fmt;

/// An `--every` timer first runs this long after boot, or after its
/// interval if shorter: soon enough that a machine booted each day still
/// syncs each day, late enough for the network to come up.
const FIRST_AFTER_BOOT_SECS: u64 = 15 * 60;

/// When a timer runs its job.
pub(super) enum When {
    Every(Every),
    /// A systemd calendar spec (`OnCalendar=`).
    Calendar(String),
}

/// The service and timer that run `command` (`sluice ... sync --job NAME`)
/// `when`, then the crontab line that does the same.
pub(super) fn units(name: &str, command: &[String], when: &When) -> String {
    let unit = format!("sluice-{name}");
    let exec: Vec<String> = command.iter().map(|a| systemd_word(a)).collect();
    let (timer, how_often, cron) = match when {
        When::Every(every) => {
            let boot = Every {
                secs: every.secs.min(FIRST_AFTER_BOOT_SECS),
            };
            (
                format!("OnBootSec={boot}\nOnUnitActiveSec={every}\n"),
                format!("every {every}"),
                every.cron(),
            )
        }
        When::Calendar(spec) => (
            format!("OnCalendar={spec}\n"),
            format!("at {spec}"),
            calendar_cron(spec),
        ),
    };
    // cron mails whatever a job prints: only errors, then.
    let cron_command: Vec<String> = command
        .iter()
        .map(String::as_str)
        .chain(["--quiet"])
        .map(|a| shell_word(a).replace('%', "\\%"))
        .collect();
    let cron = match cron {
        Ok(schedule) => format!("# {schedule} {}", cron_command.join(" ")),
        Err(why) => format!("# (no crontab line: {why})"),
    };
    format!(
        "\
# {unit}.service
# Put it and {unit}.timer in ~/.config/systemd/user/ (or, to run as root,
# /etc/systemd/system/ and drop --user), then:
#   systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer
[Unit]
Description=sluice job {name}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={exec}

# {unit}.timer
[Unit]
Description=Run sluice job {name} {how_often}

[Timer]
{timer}Persistent=true

[Install]
WantedBy=timers.target

# The same schedule with cron (crontab -e):
{cron}
",
        exec = exec.join(" "),
        how_often = how_often.replace('%', "%%"),
    )
}

/// The interval of `--every`, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Every {
    secs: u64,
}

/// Units of a time span, largest first, as systemd writes them.
const SPAN_UNITS: [(u64, &str); 5] = [
    (7 * 86400, "w"),
    (86400, "d"),
    (3600, "h"),
    (60, "min"),
    (1, "s"),
];

/// `15m`, `1h`, `1d`: a whole number of s, m (or min), h, d or w.
pub fn parse_every(s: &str) -> Result<Every, String> {
    let bad = || format!("not an interval: {s:?} (e.g. 15m, 1h, 1d)");
    let t = s.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let size = match unit.trim() {
        "s" | "sec" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(bad()),
    };
    match n.checked_mul(size) {
        Some(secs) if secs > 0 => Ok(Every { secs }),
        _ => Err(bad()),
    }
}

impl fmt::Display for Every {
    /// In the largest unit that divides it: `15min`, `1h`, `36h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = self.span();
        write!(f, "{n}{unit}")
    }
}

impl Every {
    /// The interval as a count of the largest unit that divides it.
    fn span(self) -> (u64, &'static str) {
        let (size, unit) = SPAN_UNITS
            .iter()
            .find(|(size, _)| self.secs.is_multiple_of(*size))
            .expect("seconds divide any span");
        (self.secs / size, unit)
    }

    /// The crontab schedule that runs as often, if there is one: cron's
    /// steps restart each hour, day and month, so only the intervals that
    /// divide them map.
    fn cron(self) -> Result<String, String> {
        let none = |why: &str| Err(format!("cron cannot run every {self}: {why}"));
        Ok(match self.span() {
            (_, "s") => return none("it counts whole minutes"),
            (1, "min") => "* * * * *".to_string(),
            (n, "min") if 60 % n == 0 => format!("*/{n} * * * *"),
            (_, "min") => return none("its minute steps restart each hour"),
            (1, "h") => "0 * * * *".to_string(),
            (n, "h") if 24 % n == 0 => format!("0 */{n} * * *"),
            (_, "h") => return none("its hour steps restart each day"),
            (1, "d") => "0 0 * * *".to_string(),
            (1, "w") => "0 0 * * 0".to_string(),
            _ => return none("its day steps restart each month"),
        })
    }
}

/// `--on-calendar`: passed to systemd as it is; only what would break the
/// unit file is refused.
pub fn parse_calendar(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().any(char::is_control) {
        return Err(format!(
            "not a calendar spec: {s:?} (e.g. daily, 'Mon..Fri 02:00')"
        ));
    }
    Ok(t.to_string())
}

/// The crontab schedule of the common calendar specs: the shorthands
/// (systemd.time(7) lists what they mean) and a time each day.
fn calendar_cron(spec: &str) -> Result<String, String> {
    let shorthand = match spec.to_ascii_lowercase().as_str() {
        "minutely" => "* * * * *",
        "hourly" => "0 * * * *",
        "daily" => "0 0 * * *",
        "weekly" => "0 0 * * 1",
        "monthly" => "0 0 1 * *",
        "quarterly" => "0 0 1 1,4,7,10 *",
        "semiannually" => "0 0 1 1,7 *",
        "yearly" | "annually" => "0 0 1 1 *",
        _ => "",
    };
    if !shorthand.is_empty() {
        return Ok(shorthand.to_string());
    }
    let time = spec.strip_prefix("*-*-* ").unwrap_or(spec);
    let parts: Vec<&str> = time.split(':').collect();
    let field = |p: &str, max: u32| p.parse::<u32>().ok().filter(|&n| n <= max);
    if let [h, m] | [h, m, "00"] = parts.as_slice() {
        if let (Some(h), Some(m)) = (field(h, 23), field(m, 59)) {
            return Ok(format!("{m} {h} * * *"));
        }
    }
    Err(format!(
        "none worked out for OnCalendar={spec}; `systemd-analyze calendar '{spec}'` shows its times"
    ))
}

/// Characters no quoting language here gives a meaning.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)
}

/// An `ExecStart=` word: specifiers (`%`) and variables (`$`) escaped,
/// quoted unless plain.
fn systemd_word(a: &str) -> String {
    let escaped = a.replace('%', "%%").replace('$', "$$");
    if !a.is_empty() && a.chars().all(plain) {
        return escaped;
    }
    format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A word for sh, single-quoted unless plain.
fn shell_word(a: &str) -> String {
    if !a.is_empty() && a.chars().all(plain) {
        return a.to_string();
    }
    format!("'{}'", a.replace('\'', r"'\''"))
}

/// `--flag=value` for sh, with only the value quoted.
pub(super) fn shell_flag(a: &str) -> String {
    match a.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => format!("{flag}={}", shell_word(value)),
        _ => shell_word(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_print_as_systemd_spans() {
        for (given, secs, shown) in [
            ("15m", 900, "15min"),
            ("15min", 900, "15min"),
            ("1h", 3600, "1h"),
            ("90m", 5400, "90min"),
            ("36h", 129_600, "36h"),
            ("1d", 86400, "1d"),
            ("7d", 604_800, "1w"),
            ("2w", 1_209_600, "2w"),
            ("45s", 45, "45s"),
        ] {
            let every = parse_every(given).unwrap();
            assert_eq!(
                (every.secs, every.to_string().as_str()),
                (secs, shown),
                "{given}"
            );
        }
        for bad in [
            "",
            "1",
            "h",
            "0m",
            "1y",
            "-1h",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert!(parse_every(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn intervals_map_to_cron_where_cron_can() {
        let cron = |s: &str| parse_every(s).unwrap().cron();
        assert_eq!(cron("1m").unwrap(), "* * * * *");
        assert_eq!(cron("15m").unwrap(), "*/15 * * * *");
        assert_eq!(cron("60m").unwrap(), "0 * * * *");
        assert_eq!(cron("1h").unwrap(), "0 * * * *");
        assert_eq!(cron("6h").unwrap(), "0 */6 * * *");
        assert_eq!(cron("1d").unwrap(), "0 0 * * *");
        assert_eq!(cron("1w").unwrap(), "0 0 * * 0");
        for (no, why) in [
            ("90s", "whole minutes"),
            ("7m", "each hour"),
            ("90m", "each hour"),
            ("5h", "each day"),
            ("36h", "each day"),
            ("2d", "each month"),
        ] {
            let e = cron(no).unwrap_err();
            assert!(
                e.contains(why) && e.contains("cannot run every"),
                "{no}: {e}"
            );
        }
    }

    #[test]
    fn calendar_specs_map_to_cron_where_simple() {
        assert_eq!(calendar_cron("daily").unwrap(), "0 0 * * *");
        assert_eq!(calendar_cron("Weekly").unwrap(), "0 0 * * 1");
        assert_eq!(calendar_cron("02:30").unwrap(), "30 2 * * *");
        assert_eq!(calendar_cron("*-*-* 23:05:00").unwrap(), "5 23 * * *");
        assert!(calendar_cron("Mon..Fri 02:00").is_err());
        assert!(calendar_cron("25:00").is_err());
        assert!(parse_calendar("daily\n[Service]").is_err() && parse_calendar(" ").is_err());
    }

    #[test]
    fn units_run_the_job_on_its_schedule() {
        let command = [
            "/opt/my sluice/sluice",
            "--config",
            "/etc/50%.toml",
            "sync",
            "--job",
            "b",
        ]
        .map(String::from);
        let text = units("b", &command, &When::Every(parse_every("1h").unwrap()));
        for line in [
            "# sluice-b.service",
            "Type=oneshot",
            "ExecStart=\"/opt/my sluice/sluice\" --config \"/etc/50%%.toml\" sync --job b",
            "# sluice-b.timer",
            "OnBootSec=15min",
            "OnUnitActiveSec=1h",
            "Persistent=true",
            "WantedBy=timers.target",
            "# 0 * * * * '/opt/my sluice/sluice' --config '/etc/50\\%.toml' sync --job b --quiet",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        let text = units("b", &command, &When::Every(parse_every("5m").unwrap()));
        assert!(
            text.contains("OnBootSec=5min\nOnUnitActiveSec=5min\n"),
            "{text}"
        );
        let text = units("b", &command, &When::Calendar("Mon..Fri 02:00".into()));
        assert!(text.contains("\nOnCalendar=Mon..Fri 02:00\n") && !text.contains("OnBootSec"));
        assert!(
            text.contains("# (no crontab line: none worked out"),
            "{text}"
        );
    }

    #[test]
    fn words_are_quoted_for_systemd_and_sh() {
        assert_eq!(systemd_word("/usr/bin/sluice"), "/usr/bin/sluice");
        assert_eq!(
            systemd_word("a \"b\" \\c $HOME"),
            "\"a \\\"b\\\" \\\\c $$HOME\""
        );
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_flag("--exclude=*.tmp"), "--exclude='*.tmp'");
        assert_eq!(shell_flag("--rate=200M"), "--rate=200M");
    }
}
