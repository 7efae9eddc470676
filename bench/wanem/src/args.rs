//! The binary's command line, in two stages (as ripgrep does): clap
//! collects what the user typed as text, then [`Args::link_config`] turns
//! it into a validated [`LinkConfig`], so every bad value gets one clear
//! message naming the flag.
//!
//! Every model setting exists three times: `--X` for both directions,
//! `--ab-X` for A->B only and `--ba-X` for B->A only; the most specific one
//! given wins. The per-direction flags are generated from one table.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, FromArgMatches};
use wanem::config::{GilbertElliottConfig, LinkConfig, PathConfig, QueueLimit};
use wanem::units::{parse_bytes, parse_duration, parse_gilbert_elliott, parse_percent, parse_rate};
use wanem::Error;

/// Emulates a WAN link between two existing network namespaces.
///
/// Creates one TUN device in each namespace (addresses --addr-a/--addr-b),
/// forwards packets between them through a per-direction model (loss ->
/// duplication -> rate-limited drop-tail queue -> delay with jitter),
/// prints `ready` once forwarding, and runs until SIGINT/SIGTERM or
/// --duration. Then writes counters per direction (JSON to --stats, a
/// summary to stderr). Model flags set both directions; --ab-X / --ba-X
/// set one direction (A->B is traffic sent from namespace A) and win over
/// --X. Percentages take an optional %; times need a unit (s, ms, us).
#[derive(Debug, clap::Parser)]
#[command(name = "wanem", version)]
pub struct Args {
    /// Network namespace of end A (create it first: `ip netns add NAME`).
    #[arg(long, value_name = "NS")]
    pub ns_a: String,
    /// Network namespace of end B.
    #[arg(long, value_name = "NS")]
    pub ns_b: String,
    /// Address of end A's device.
    #[arg(long, default_value = "10.199.0.1")]
    pub addr_a: Ipv4Addr,
    /// Address of end B's device.
    #[arg(long, default_value = "10.199.0.2")]
    pub addr_b: Ipv4Addr,
    /// Prefix length of the link's subnet.
    #[arg(long, default_value_t = 30)]
    pub prefix: u8,
    /// Device name inside namespace A.
    #[arg(long, default_value = "wan0")]
    pub dev_a: String,
    /// Device name inside namespace B.
    #[arg(long, default_value = "wan0")]
    pub dev_b: String,
    /// MTU of both devices.
    #[arg(long, default_value_t = 1500)]
    pub mtu: u32,
    /// Transmit ring of both devices, in packets (what a device may hold
    /// between two reads by wanem; overflow shows as device drops).
    #[arg(long, default_value_t = 1000)]
    pub txqueuelen: u32,
    #[command(flatten)]
    pub model: Model,
    /// Seed of the loss, duplication and jitter draws [default: random,
    /// logged on stderr].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the final counters as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    /// Print the counters to stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats_interval: Option<f64>,
    /// Write `ready` to FILE once forwarding (as well as to stdout).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}

/// (name, value name, help); a value name of "" marks a switch.
const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "rate",
        "RATE",
        "Link rate in bits/s of IP packets: 300M, 1G, 800k, unlimited [default: unlimited]",
    ),
    (
        "delay",
        "TIME",
        "One-way delay: 50ms, 0.5ms, 1s [default: 0]",
    ),
    (
        "queue",
        "TIME",
        "Drop-tail queue bound as backlog time at the link rate [default: 100ms]",
    ),
    (
        "queue-bytes",
        "BYTES",
        "Drop-tail queue bound in bytes instead: 1500000, 12.5M, 2MiB",
    ),
    (
        "loss",
        "PERCENT",
        "Random loss, applied before the queue: 1%, 0.1% [default: 0]",
    ),
    (
        "ge",
        "P,R,LG,LB",
        "Gilbert-Elliott burst loss, four percentages: p (good->bad per packet), r (bad->good), \
         loss in the good state, loss in the bad state; e.g. 1%,25%,0,100% [default: off]",
    ),
    (
        "jitter",
        "TIME",
        "Uniform delay variation of +-TIME (at most the delay) [default: 0]",
    ),
    (
        "reorder",
        "",
        "With jitter, let a packet overtake earlier ones (default: held in order)",
    ),
    (
        "dup",
        "PERCENT",
        "Duplicate packets; the copy also uses the link [default: 0]",
    ),
];

const LEVELS: [(&str, &str); 3] = [
    ("", "Link model (both directions)"),
    ("ab-", "A->B only (overrides)"),
    ("ba-", "B->A only (overrides)"),
];

/// The model flags: values kept as typed, per level ("", "ab-", "ba-").
#[derive(Debug, Clone, Default)]
pub struct Model {
    values: Vec<(String, String)>,
}

impl Model {
    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Builds one direction's settings from its prefix ("ab-" or "ba-").
    fn path(&self, prefix: &str) -> Result<PathConfig, Error> {
        let pick = |name: &str| {
            self.get(&format!("{prefix}{name}"))
                .or_else(|| self.get(name))
        };
        let mut path = PathConfig::default();
        if let Some(v) = pick("rate") {
            path.rate_bps = parse_rate(v)?;
        }
        if let Some(v) = pick("delay") {
            path.delay = parse_duration(v)?;
        }
        // The most specific level naming a queue bound wins.
        let queue_at = |p: &str| {
            (
                self.get(&format!("{p}queue")),
                self.get(&format!("{p}queue-bytes")),
            )
        };
        for level in ["", prefix] {
            match queue_at(level) {
                (Some(_), Some(_)) => {
                    return Err(Error::Config(format!(
                        "give --{level}queue or --{level}queue-bytes, not both"
                    )))
                }
                (Some(t), None) => path.queue = QueueLimit::Time(parse_duration(t)?),
                (None, Some(b)) => path.queue = QueueLimit::Bytes(parse_bytes(b)?),
                (None, None) => {}
            }
        }
        if let Some(v) = pick("loss") {
            path.loss = parse_percent(v)?;
        }
        if let Some(v) = pick("ge") {
            let [p, r, loss_good, loss_bad] = parse_gilbert_elliott(v)?;
            path.gilbert_elliott = Some(GilbertElliottConfig {
                p,
                r,
                loss_good,
                loss_bad,
            });
        }
        if let Some(v) = pick("jitter") {
            path.jitter = parse_duration(v)?;
        }
        path.reorder = pick("reorder").is_some();
        if let Some(v) = pick("dup") {
            path.duplicate = parse_percent(v)?;
        }
        Ok(path)
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

impl clap::Args for Model {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for (prefix, heading) in LEVELS {
            for &(name, value_name, help) in SETTINGS {
                let id = leak(format!("{prefix}{name}"));
                let help = if prefix.is_empty() {
                    help.to_string()
                } else {
                    format!("{heading}: see --{name}")
                };
                let mut arg = Arg::new(id).long(id).help(help).help_heading(heading);
                arg = if value_name.is_empty() {
                    arg.action(ArgAction::SetTrue)
                } else {
                    arg.value_name(value_name).action(ArgAction::Set)
                };
                cmd = cmd.arg(arg);
            }
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for Model {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut values = Vec::new();
        for (prefix, _) in LEVELS {
            for &(name, value_name, _) in SETTINGS {
                let id = format!("{prefix}{name}");
                if value_name.is_empty() {
                    if matches.get_flag(&id) {
                        values.push((id, String::new()));
                    }
                } else if let Some(v) = matches.get_one::<String>(&id) {
                    values.push((id, v.clone()));
                }
            }
        }
        Ok(Model { values })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args {
    /// The second stage: parsed, checked settings for the library.
    pub fn link_config(&self) -> Result<LinkConfig, Error> {
        let mut c = LinkConfig::new(&self.ns_a, &self.ns_b);
        (c.addr_a, c.addr_b, c.prefix) = (self.addr_a, self.addr_b, self.prefix);
        (c.dev_a, c.dev_b) = (self.dev_a.clone(), self.dev_b.clone());
        (c.mtu, c.txqueuelen) = (self.mtu, self.txqueuelen);
        c.a_to_b = self.model.path("ab-")?;
        c.b_to_a = self.model.path("ba-")?;
        if let Some(seed) = self.seed {
            c.seed = seed;
        }
        for (flag, secs) in [
            ("--stats-interval", self.stats_interval),
            ("--duration", self.duration),
        ] {
            if secs.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                return Err(Error::Config(format!(
                    "{flag} must be a positive number of seconds"
                )));
            }
        }
        c.validate()?;
        Ok(c)
    }

    pub fn duration(&self) -> Option<Duration> {
        self.duration.map(Duration::from_secs_f64)
    }
}
