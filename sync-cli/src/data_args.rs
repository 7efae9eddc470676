//! Flags for the data path (`--transport`, `--rate`, ...), shared by sync and diff.

use clap::{Args, ValueEnum};
use sync_core::session::{DataOptions, Policy, TransportChoice};
use sync_core::units::parse_rate;

#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// How chunks travel: udp (paced, encrypted datagrams), tcp (on the
    /// control connection), or auto: UDP between hosts, falling back to the
    /// control connection with a warning if no datagram gets through within
    /// 5 s; a local sync uses an in-process pipe unless --transport udp.
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: TransportArg,
    /// Ceiling for the UDP data rate in bits per second (e.g. 200M, 1G);
    /// default: 100G, in effect none (the path and the CPU limit it first).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// Floor for the fair policy, in bits per second (default 1M).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub min_rate: Option<u64>,
    /// fair: adapt to the path, backing off when its queue grows (not for
    /// random loss); fixed: send at --rate whatever happens.
    #[arg(long, value_enum, default_value = "fair")]
    pub policy: PolicyArg,
    /// Largest IP packet for data datagrams (576-9000; 9000 for jumbo frames).
    #[arg(long, value_name = "BYTES", default_value_t = 1500,
          value_parser = clap::value_parser!(u16).range(576..=9000))]
    pub packet_size: u16,
    /// Datagram protection: aes (AES-256-GCM, the default) or none. `none`
    /// sends file contents in the clear and unauthenticated: only for trusted
    /// networks and benchmarks.
    #[arg(long, value_enum, default_value = "aes")]
    pub cipher: CipherArg,
    /// Compress shipped chunks with zstd: auto (when the other end is
    /// on another host, not for local folders or a remote end reached on
    /// loopback), on, or off. Chunks that do not compress (media,
    /// archives, random data) are recognised cheaply and sent as they
    /// are. A round's chunks for UDP are compressed before it starts.
    #[arg(long, value_enum, default_value = "auto")]
    pub compress: CompressArg,
    /// zstd level for --compress (1 fastest .. 19 smallest).
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(i32).range(1..=19))]
    pub compress_level: i32,
    /// Send changed files' chunks whole, never as deltas against the
    /// destination's old version (the default for two local folders, as
    /// with rsync).
    #[arg(short = 'W', long, overrides_with = "no_whole_file")]
    pub whole_file: bool,
    /// Send only the parts of a changed file's chunks that the
    /// destination's old version lacks (deltas; the default when one end
    /// is remote, and for two local folders with this flag). Deltas travel
    /// on the ssh or daemon connection, beside UDP.
    #[arg(long, overrides_with = "whole_file")]
    pub no_whole_file: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressArg {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TransportArg {
    Auto,
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    Fair,
    Fixed,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CipherArg {
    Aes,
    None,
}

impl DataArgs {
    /// Validates combinations and builds the session's data options.
    /// `remote`: one end is reached over ssh or a daemon (deltas by
    /// default); `far`: and not on this host (auto compression).
    pub fn options(&self, remote: bool, far: bool) -> Result<DataOptions, String> {
        if matches!(self.policy, PolicyArg::Fixed) && self.rate.is_none() {
            return Err("--policy fixed needs --rate".into());
        }
        if let (Some(min), Some(max)) = (self.min_rate, self.rate) {
            if min > max {
                return Err("--min-rate is above --rate".into());
            }
        }
        Ok(DataOptions {
            transport: match self.transport {
                TransportArg::Auto => TransportChoice::Auto,
                TransportArg::Udp => TransportChoice::Udp,
                TransportArg::Tcp => TransportChoice::Tcp,
            },
            rate: self.rate,
            min_rate: self.min_rate,
            policy: match self.policy {
                PolicyArg::Fair => Policy::Fair,
                PolicyArg::Fixed => Policy::Fixed,
            },
            packet_size: self.packet_size,
            encrypt: matches!(self.cipher, CipherArg::Aes),
            compress: match self.compress {
                CompressArg::On => Some(self.compress_level),
                CompressArg::Auto if far => Some(self.compress_level),
                _ => None,
            },
            delta: if self.whole_file {
                false
            } else {
                remote || self.no_whole_file
            },
        })
    }
}
