//! sluice through an emulated WAN link: two network namespaces joined by
//! the `wanem` emulator (run in this process), the daemon in one, the
//! client in the other.
//!
//! Needs root, `/dev/net/tun` and iproute2. Without them the test fails
//! under `CI=true` (CI runs as root and installs iproute2) and is skipped
//! elsewhere. Traffic goes only between the two namespaces the test makes
//! (10.199.0.1 and .2 exist only on the emulator's devices inside them);
//! the namespaces are deleted and the daemon killed when the test ends,
//! also on failure.

use std::ffi::OsStr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{keygen, module, start_in};
use crate::util::*;

/// Two network namespaces, deleted on drop.
struct Namespaces([String; 2]);

impl Namespaces {
    fn create(tag: &str) -> Result<Namespaces, String> {
        let names = [0, 1].map(|i| format!("sle2e{}{tag}{i}", std::process::id()));
        let mut made = Namespaces([String::new(), String::new()]);
        for (i, name) in names.iter().enumerate() {
            let out = Command::new("ip").args(["netns", "add", name]).output();
            match out {
                Ok(o) if o.status.success() => made.0[i] = name.clone(),
                Ok(o) => return Err(String::from_utf8_lossy(&o.stderr).into_owned()),
                Err(e) => return Err(format!("cannot run ip: {e}")),
            }
        }
        Ok(made)
    }

    fn exec(&self, i: usize) -> [&str; 4] {
        ["ip", "netns", "exec", self.0[i].as_str()]
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.0.iter().filter(|n| !n.is_empty()) {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// The smoke test: 20 MB pushed to the daemon over a 50 ms round
/// trip with 2 % loss in both directions (so feedback is lost too), UDP
/// data, encryption on: the copy is exact, the link really dropped
/// packets both ways, and the datagrams carried no more than a bounded
/// excess over the file.
#[test]
fn twenty_megabytes_cross_a_lossy_50_ms_link_exactly() {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return unavailable("no /dev/net/tun");
    }
    let ns = match Namespaces::create("w") {
        Ok(ns) => ns,
        Err(e) => return unavailable(&format!("cannot create network namespaces: {e}")),
    };
    let path = wanem::PathConfig {
        rate_bps: Some(100_000_000),
        delay: Duration::from_millis(25),
        loss: 0.02,
        ..wanem::PathConfig::default()
    };
    let config = wanem::LinkConfig::new(&ns.0[0], &ns.0[1]).with_both(path);
    let seed = config.seed;
    let link = match wanem::Link::start(config) {
        Ok(link) => link,
        Err(e) => return unavailable(&format!("cannot start the link emulator: {e}")),
    };
    eprintln!("wanem seed {seed}");

    let d = Dir::new();
    let client = keygen(&d, "keys/client");
    let store = d.path("store");
    std::fs::create_dir_all(&store).unwrap();
    let daemon = start_in(
        &d,
        &module("rw", &store, "read-write", &[&client]),
        &ns.exec(1),
        "10.199.0.2",
    );
    let src = d.path("src");
    let len = 20_000_000;
    write(&src.join("big.bin"), &noise(28, len));
    write(&src.join("small"), b"small");

    let key = d.path("keys/client");
    let server_key = daemon.server_pub().to_string();
    let url = daemon.url("rw/dst");
    let exec = ns.exec(0);
    let mut argv: Vec<&OsStr> = exec.iter().map(OsStr::new).collect();
    argv.push(sluice_bin().as_os_str());
    argv.extend(
        [
            "sync",
            "--json",
            "--transport",
            "udp",
            "--key",
            key.to_str().unwrap(),
            "--server-key",
            &server_key,
            src.to_str().unwrap(),
            &url,
        ]
        .map(OsStr::new),
    );
    let started = Instant::now();
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .env("XDG_STATE_HOME", d.path("state"))
        .env_remove("SLUICE_LOG")
        .output()
        .expect("run sluice in the namespace");
    let took = started.elapsed();
    let counters = link.stop();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "seed {seed}: {stderr}\n{}\n{}",
        daemon.log_text(),
        counters.to_json()
    );
    assert_same_tree(&src, &store.join("dst"));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["data_path"], "udp", "{report}");
    // The link lost packets both ways: data, and feedback coming back.
    let (ab, ba) = (&counters.a_to_b, &counters.b_to_a);
    assert!(ab.lost_packets > 100 && ba.lost_packets > 0, "{counters:?}");
    // Every lost block was sent again, little more: at 2 % loss the data
    // direction carries at most a third more than the file.
    assert!(
        (ab.bytes_in as f64) < len as f64 * 1.33,
        "{} bytes offered to the link for {len}: {counters:?}",
        ab.bytes_in
    );
    eprintln!("20 MB over 100 Mbit/s, 50 ms, 2 % both ways in {took:.1?}; {report}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
