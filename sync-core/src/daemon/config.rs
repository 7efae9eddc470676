//! The daemon's configuration file (TOML), parsed and validated.
//!
//! Parsing happens in two stages (ripgrep's flags do the same): serde reads
//! what the file says into `RawConfig`, then [`Config::parse`] checks every
//! value and builds the types the server uses. Every error names the file and
//! the field. Rates and port ranges are read by the parsers the command
//! line uses ([`crate::units`]), so they accept the same forms. This module
//! reads no key files and opens no sockets.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::keys::PublicKey;
use crate::error::{Error, Result};
use crate::units::{parse_ports, parse_rate};

/// What clients may do with a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    WriteOnly,
    ReadWrite,
}

impl Access {
    pub fn can_read(self) -> bool {
        matches!(self, Access::ReadOnly | Access::ReadWrite)
    }

    pub fn can_write(self) -> bool {
        matches!(self, Access::WriteOnly | Access::ReadWrite)
    }
}

/// A named folder the daemon serves.
#[derive(Clone, Debug)]
pub struct Module {
    pub name: String,
    pub path: PathBuf,
    pub access: Access,
    pub allowed_keys: HashSet<PublicKey>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from, for messages.
    pub file: PathBuf,
    /// The server's private key file.
    pub key: PathBuf,
    pub listen: Option<SocketAddr>,
    pub max_connections: usize,
    /// Seconds a client may take for the handshake and its request.
    pub idle_timeout_secs: u64,
    /// The UDP ports a receiving session may bind for the block transport
    /// (port 0: any free port).
    pub udp_ports: Option<RangeInclusive<u16>>,
    /// Total send and receive rate of all connections, in bits per second.
    pub max_rate: Option<u64>,
    pub modules: BTreeMap<String, Module>,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    key: PathBuf,
    listen: Option<String>,
    max_connections: Option<i64>,
    idle_timeout_secs: Option<i64>,
    udp_ports: Option<String>,
    max_rate: Option<String>,
    #[serde(default)]
    modules: BTreeMap<String, RawModule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    path: PathBuf,
    access: String,
    #[serde(default)]
    allowed_keys: Vec<String>,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;

impl Config {
    /// Reads and validates `file`.
    pub fn load(file: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        Config::parse(&text, file)
    }

    /// Validates the text of a config file (`file` is for messages and for
    /// resolving relative paths).
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let err =
            |field: &str, why: String| Error::Config(format!("{}: {field}: {why}", file.display()));
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| Error::Config(format!("{}: {}", file.display(), e.to_string().trim())))?;
        let base = file.parent().unwrap_or(Path::new("."));
        let listen = match &raw.listen {
            Some(s) => Some(
                s.parse::<SocketAddr>()
                    .map_err(|_| err("listen", format!("{s:?} is not ADDRESS:PORT")))?,
            ),
            None => None,
        };
        let max_connections = match raw.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n) if (1..=65536).contains(&n) => n as usize,
            Some(n) => return Err(err("max_connections", format!("{n} is not in 1..=65536"))),
        };
        let idle_timeout_secs = match raw.idle_timeout_secs {
            None => DEFAULT_IDLE_TIMEOUT_SECS,
            Some(n) if (1..=86400).contains(&n) => n as u64,
            Some(n) => return Err(err("idle_timeout_secs", format!("{n} is not in 1..=86400"))),
        };
        let udp_ports = match &raw.udp_ports {
            Some(s) => Some(parse_ports(s).map_err(|why| err("udp_ports", why))?),
            None => None,
        };
        let max_rate = match &raw.max_rate {
            Some(s) => Some(parse_rate(s).map_err(|why| err("max_rate", why))?),
            None => None,
        };
        let mut modules = BTreeMap::new();
        for (name, m) in raw.modules {
            let field = |f: &str| format!("modules.{name}.{f}");
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(err(
                    &format!("modules.{name:?}"),
                    "a module name must be a single path component".into(),
                ));
            }
            let access = match m.access.as_str() {
                "read-only" => Access::ReadOnly,
                "write-only" => Access::WriteOnly,
                "read-write" => Access::ReadWrite,
                other => {
                    return Err(err(
                        &field("access"),
                        format!("{other:?} is not read-only, write-only or read-write"),
                    ))
                }
            };
            let mut allowed_keys = HashSet::new();
            for (i, k) in m.allowed_keys.iter().enumerate() {
                let key = PublicKey::from_hex(k)
                    .map_err(|e| err(&format!("{}[{i}]", field("allowed_keys")), e.to_string()))?;
                allowed_keys.insert(key);
            }
            let path = if m.path.is_absolute() {
                m.path
            } else {
                base.join(m.path)
            };
            modules.insert(
                name.clone(),
                Module {
                    name,
                    path,
                    access,
                    allowed_keys,
                },
            );
        }
        let key = if raw.key.is_absolute() {
            raw.key
        } else {
            base.join(raw.key)
        };
        Ok(Config {
            file: file.to_path_buf(),
            key,
            listen,
            max_connections,
            idle_timeout_secs,
            udp_ports,
            max_rate,
            modules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/sluice/serve.toml"))
    }

    #[test]
    fn full_config() {
        let c = parse(&format!(
            r#"
key = "server.key"
listen = "127.0.0.1:7000"
max_connections = 4
idle_timeout_secs = 5
udp_ports = "40000-40100"
max_rate = "1G"
[modules.backups]
path = "/srv/backups"
access = "read-write"
allowed_keys = ["{KEY}"]
[modules.pub]
path = "public"
access = "read-only"
"#
        ))
        .unwrap();
        assert_eq!(c.key, Path::new("/etc/sluice/server.key"));
        assert_eq!(c.listen, Some("127.0.0.1:7000".parse().unwrap()));
        assert_eq!((c.max_connections, c.idle_timeout_secs), (4, 5));
        assert_eq!(c.udp_ports, Some(40000..=40100));
        assert_eq!(c.max_rate, Some(1_000_000_000));
        let b = &c.modules["backups"];
        assert_eq!(b.access, Access::ReadWrite);
        assert!(b.allowed_keys.contains(&PublicKey::from_hex(KEY).unwrap()));
        assert_eq!(c.modules["pub"].path, Path::new("/etc/sluice/public"));
        assert!(c.modules["pub"].allowed_keys.is_empty());
    }

    #[test]
    fn defaults() {
        let c = parse("key = \"/k\"").unwrap();
        assert_eq!(c.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.idle_timeout_secs, DEFAULT_IDLE_TIMEOUT_SECS);
        assert!(c.listen.is_none() && c.udp_ports.is_none() && c.max_rate.is_none());
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let cases = [
            ("key = \"/k\"\nudp_ports = \"9-1\"", "udp_ports"),
            ("key = \"/k\"\nmax_rate = \"fast\"", "max_rate"),
            ("key = \"/k\"\nmax_connections = 0", "max_connections"),
            ("key = \"/k\"\nidle_timeout_secs = -1", "idle_timeout_secs"),
            ("key = \"/k\"\nlisten = \"nowhere\"", "listen"),
            ("key = \"/k\"\n[modules.m]\npath = \"/x\"\naccess = \"all\"", "modules.m.access"),
            (
                "key = \"/k\"\n[modules.m]\npath = \"/x\"\naccess = \"read-only\"\nallowed_keys = [\"xx\"]",
                "modules.m.allowed_keys[0]",
            ),
            ("key = \"/k\"\nbogus = 1", "bogus"),
            ("listen = \"127.0.0.1:1\"", "key"),
        ];
        for (text, field) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains("/etc/sluice/serve.toml") && e.contains(field),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn rates_and_ports_take_the_command_line_forms() {
        let c = parse("key = \"/k\"\nmax_rate = \"1.5G\"\nudp_ports = \"33001\"").unwrap();
        assert_eq!(c.max_rate, Some(1_500_000_000));
        assert_eq!(c.udp_ports, Some(33001..=33001));
        let c = parse("key = \"/k\"\nmax_rate = \"64000\"\nudp_ports = \"0\"").unwrap();
        assert_eq!((c.max_rate, c.udp_ports), (Some(64_000), Some(0..=0)));
        let e = parse("key = \"/k\"\nmax_rate = \"0\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_rate: not a rate: \"0\""), "{e}");
        let e = parse("key = \"/k\"\nudp_ports = \"1-70000\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("udp_ports: not a port range: \"1-70000\""),
            "{e}"
        );
    }
}
