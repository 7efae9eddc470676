//! Puts a TUN device into the caller's network namespace and configures it,
//! by running `ip` (iproute2): move, rename, MTU, ring length, address, up,
//! and `lo` up. It never creates or deletes a namespace (the caller owns
//! those) and never touches a device it did not create, nor any route or
//! address outside the two namespaces.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// How one end is set up inside its namespace.
#[derive(Debug, Clone)]
pub struct EndSetup<'a> {
    pub ns: &'a str,
    pub dev: &'a str,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
    pub txqueuelen: u32,
}

/// Runs `ip ARGS`, turning a failure into an error that quotes it.
fn ip(args: &[&str]) -> Result<String> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip").args(args).output().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (is iproute2 installed?)"
        } else {
            ""
        };
        Error::io(format!("cannot run `{command}`{hint}"), e)
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::Command { command, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails unless `ns` is a namespace created with `ip netns add`.
pub fn check_namespace(ns: &str) -> Result<()> {
    let valid = !ns.is_empty() && !ns.contains('/') && ns != "." && ns != "..";
    if valid && Path::new("/run/netns").join(ns).exists() {
        Ok(())
    } else {
        Err(Error::NoNamespace(ns.to_string()))
    }
}

/// Moves device `tmp_name` (just created in our namespace) into `end.ns`,
/// renames it `end.dev` there and brings it up with its address.
pub fn move_and_configure(tmp_name: &str, end: &EndSetup<'_>) -> Result<()> {
    let ns = end.ns;
    ip(&["link", "set", "dev", tmp_name, "netns", ns])?;
    if tmp_name != end.dev {
        ip(&["-n", ns, "link", "set", "dev", tmp_name, "name", end.dev])?;
    }
    let (mtu, qlen) = (end.mtu.to_string(), end.txqueuelen.to_string());
    ip(&[
        "-n",
        ns,
        "link",
        "set",
        "dev",
        end.dev,
        "mtu",
        &mtu,
        "txqueuelen",
        &qlen,
    ])?;
    let cidr = format!("{}/{}", end.addr, end.prefix);
    ip(&["-n", ns, "addr", "add", &cidr, "dev", end.dev])?;
    ip(&["-n", ns, "link", "set", "dev", end.dev, "up"])?;
    ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
    Ok(())
}

/// The device's transmit drops (what its ring lost before wanem read it),
/// from `ip -s -j link show`; `None` if it cannot be read.
pub fn tx_dropped(ns: &str, dev: &str) -> Option<u64> {
    let json = ip(&["-n", ns, "-s", "-j", "link", "show", "dev", dev]).ok()?;
    let value: serde_json::Value = serde_json::from_str(&json).ok()?;
    value
        .get(0)?
        .get("stats64")?
        .get("tx")?
        .get("dropped")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_namespace_is_a_clear_error() {
        let e = check_namespace("wanem-test-no-such-namespace").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("ip netns add wanem-test-no-such-namespace"),
            "{msg}"
        );
        assert!(check_namespace("../etc").is_err());
        assert!(check_namespace("").is_err());
    }
}
