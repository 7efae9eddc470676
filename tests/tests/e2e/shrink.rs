//! Issue 26, fewer bytes for shipped chunks: zstd compression and fine
//! deltas against the destination's old version, through every transport.
//!
//! What the report says is checked against what must hold: text shrinks,
//! random data travels raw (`chunk_bytes_encoded == chunk_bytes_sent`),
//! with compression off nothing shrinks but deltas, and an edited file
//! ships a small fraction of its changed chunks.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::{keygen, module, start_in, Daemon};
use crate::util::*;

/// Deterministic text that compresses, though not trivially: numbered
/// lines of words from a small vocabulary, every third with a random
/// number (zstd -3 takes it to about a third of its size).
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
        "lambda", "mu", "nu", "xi", "omicron", "pi",
    ];
    let rnd = noise(seed, len / 4 + 64);
    let mut r = rnd.iter().copied().cycle();
    let mut next = || r.next().expect("cycles");
    let mut out = Vec::with_capacity(len + 128);
    let mut line = 0u32;
    while out.len() < len {
        out.extend_from_slice(format!("{line:06}").as_bytes());
        for j in 0..8 {
            out.push(b' ');
            out.extend_from_slice(WORDS[usize::from(next() % 16)].as_bytes());
            if j % 3 == 0 {
                let n = u16::from_le_bytes([next(), next()]);
                out.extend_from_slice(format!("={n}").as_bytes());
            }
        }
        out.push(b'\n');
        line += 1;
    }
    out.truncate(len);
    out
}

/// `data` with `count` edits spread over it, an insertion, a deletion
/// and a replacement in turn (deterministic).
fn edited(data: &[u8], count: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    // From the end, so that each offset still points into the original.
    for k in (0..count).rev() {
        let at = (2 * k + 1) * data.len() / (2 * count);
        match k % 3 {
            0 => {
                let line = format!("an inserted line, number {k}\n");
                out.splice(at..at, line.bytes());
            }
            1 => {
                out.drain(at..at + 40);
            }
            _ => out[at..at + 16].copy_from_slice(b"REPLACED-16BYTES"),
        }
    }
    out
}

/// Bytes of a source tree by kind, for what the report must say.
struct Mix {
    text: u64,
    random: u64,
}

/// The round trips' source: text files of 100 KB and more (chunks of
/// 64 KiB or so), one over 1 MiB, random files, empty files, a small one.
fn mixed_tree(root: &Path) -> Mix {
    let put = |rel: &str, data: Vec<u8>| {
        write(&root.join(rel), &data);
        data.len() as u64
    };
    put("empty/e1", Vec::new());
    put("empty/deep/e2", Vec::new());
    Mix {
        text: put("text/a.txt", text(1, 300_000))
            + put("text/b.txt", text(2, 180_000))
            + put("text/deep/c.txt", text(3, 120_000))
            + put("text/big.log", text(4, 1_500_000))
            + put("text/small.txt", text(5, 3_000)),
        random: put("bin/r1.bin", noise(6, 200_000)) + put("bin/r2.bin", noise(7, 70_000)),
    }
}

/// How a test reaches the remote end of its syncs.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// Two local folders.
    Local,
    /// `host:PATH` through [`local_rsh`].
    Ssh,
    /// A daemon whose read-write module `rw` is the folder given.
    Daemon(&'a Daemon, &'a Path),
}

/// A daemon on 127.0.0.1 with a read-write module `rw` at `store`, and
/// the client key `keys/client` it allows.
fn start_daemon(d: &Dir, store: &Path) -> Daemon {
    let client = keygen(d, "keys/client");
    std::fs::create_dir_all(store).unwrap();
    start_in(
        d,
        &module("rw", store, "read-write", &[&client]),
        &[],
        "127.0.0.1",
    )
}

/// `sluice sync --json EXTRA... SRC DST`, DST (or SRC with `pull`) reached
/// through `via`; asserts exit 0 and returns the report.
fn sync_via(d: &Dir, via: Via, src: &Path, dst: &Path, pull: bool, extra: &[&str]) -> Value {
    let what = format!("{extra:?} pull={pull}");
    let (code, report, stderr) = match via {
        Via::Local => d.sync(src, dst, extra),
        Via::Ssh => {
            let (rsh, bin) = (local_rsh(d, ""), sluice_bin().display().to_string());
            let mut args = vec!["--rsh", rsh.as_str(), "--remote-sluice", bin.as_str()];
            args.extend(extra);
            match pull {
                true => d.sync_from(&format!("host:{}", src.display()), dst, &args),
                false => d.sync_to(src, &format!("host:{}", dst.display()), &args),
            }
        }
        Via::Daemon(daemon, store) => {
            let remote = if pull { src } else { dst };
            let rel = remote.strip_prefix(store).expect("below the module");
            let url = daemon.url(&format!("rw/{}", rel.display()));
            let (local, url) = (if pull { dst } else { src }, url.as_str());
            let (from, to) = match pull {
                true => (url.as_ref(), local.as_os_str()),
                false => (local.as_os_str(), url.as_ref()),
            };
            let (code, out, err) = daemon.sync(d, "keys/client", from, to, extra);
            let report = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("{what}: no JSON ({e}): {out:?}; {err}"));
            (code, report, format!("{err}\n{}", daemon.log_text()))
        }
    };
    assert_eq!(code, 0, "{what}: {stderr}");
    report
}

/// What a first sync of a [`mixed_tree`] must report: every byte shipped
/// once; with compression, the random bytes raw and the text at most
/// half its size; without, every byte as it is.
fn assert_shipped(report: &Value, mix: &Mix, compress: bool, what: &str) {
    let (sent, encoded) = (
        n(report, "chunk_bytes_sent"),
        n(report, "chunk_bytes_encoded"),
    );
    assert_eq!(sent, mix.text + mix.random, "{what}: {report}");
    assert_eq!(n(report, "delta_chunks"), 0, "{what}: {report}");
    if compress {
        assert!(
            encoded >= mix.random && encoded < mix.random + mix.text / 2,
            "{what}: {encoded} encoded bytes for {} random and {} text: {report}",
            mix.random,
            mix.text
        );
    } else {
        assert_eq!(encoded, sent, "{what}: {report}");
    }
}

/// Local folders, in-process and over UDP, with compression on and off:
/// trees equal, text shrinks and random data goes raw with it on,
/// nothing shrinks with it off.
#[test]
fn local_round_trips_with_compression_on_and_off() {
    let d = Dir::new();
    let src = d.path("src");
    let mix = mixed_tree(&src);
    let cases: [(&[&str], bool); 5] = [
        (&["--compress", "on", "--no-whole-file"], true),
        (&["--compress", "off"], false),
        // Auto compression is off for two local folders.
        (&[], false),
        (&["--transport", "udp", "--compress", "on"], true),
        (&["--transport", "udp", "--compress", "off"], false),
    ];
    for (i, (extra, compress)) in cases.into_iter().enumerate() {
        let dst = d.path(&format!("dst{i}"));
        let report = sync_via(&d, Via::Local, &src, &dst, false, extra);
        assert_same_tree(&src, &dst);
        let path = match extra.contains(&"udp") {
            true => "udp",
            false => "control connection",
        };
        assert_eq!(report["data_path"], path, "{extra:?}: {report}");
        assert_shipped(&report, &mix, compress, &format!("{extra:?}"));
    }
}

/// Through the ssh path (the real remote sluice behind a fake `--rsh`),
/// pushed with one setting and pulled back with the other, so that either
/// end compresses: on the control connection (`--transport tcp`) and with
/// auto, whose UDP phase finds no address for the host and falls back.
/// Auto compression is on: the host is not known to be this one.
#[test]
fn ssh_round_trips_with_compression_on_and_off() {
    let d = Dir::new();
    let src = d.path("src");
    let mix = mixed_tree(&src);
    let (tcp, on, off): (&[&str], &[&str], &[&str]) = (
        &["--transport", "tcp"],
        &["--compress", "on"],
        &["--compress", "off"],
    );
    let cases = [
        (tcp, on, off, true),
        (tcp, off, on, false),
        (&[][..], &[][..], off, true),
    ];
    for (i, (transport, push, pull, pushed_compressed)) in cases.into_iter().enumerate() {
        let (dst, back) = (d.path(&format!("dst{i}")), d.path(&format!("back{i}")));
        let args = [transport, push].concat();
        let report = sync_via(&d, Via::Ssh, &src, &dst, false, &args);
        assert_same_tree(&src, &dst);
        assert_eq!(report["data_path"], "control connection", "{report}");
        assert_shipped(&report, &mix, pushed_compressed, &format!("push {args:?}"));

        let args = [transport, pull].concat();
        let report = sync_via(&d, Via::Ssh, &dst, &back, true, &args);
        assert_same_tree(&src, &back);
        assert_eq!(report["data_path"], "control connection", "{report}");
        assert_shipped(&report, &mix, !pushed_compressed, &format!("pull {args:?}"));
    }
}

/// To and from a daemon on loopback, over its connection and over UDP
/// (auto compression is off there: loopback), each direction with
/// compression on once and off once.
#[test]
fn daemon_round_trips_with_compression_on_and_off() {
    let d = Dir::new();
    let store = d.path("store");
    let daemon = start_daemon(&d, &store);
    let via = Via::Daemon(&daemon, &store);
    let src = d.path("src");
    let mix = mixed_tree(&src);
    let cases: [(&str, &str, &str, bool); 4] = [
        ("tcp", "on", "off", true),
        ("tcp", "off", "on", false),
        ("udp", "on", "off", true),
        ("udp", "off", "on", false),
    ];
    for (i, (transport, push, pull, pushed_compressed)) in cases.into_iter().enumerate() {
        let (dst, back) = (store.join(format!("tree{i}")), d.path(&format!("back{i}")));
        let path = match transport {
            "udp" => "udp",
            _ => "control connection",
        };
        let args = ["--transport", transport, "--compress", push];
        let report = sync_via(&d, via, &src, &dst, false, &args);
        assert_same_tree(&src, &dst);
        assert_eq!(report["data_path"], path, "{args:?}: {report}");
        assert_shipped(&report, &mix, pushed_compressed, &format!("push {args:?}"));

        let args = ["--transport", transport, "--compress", pull];
        let report = sync_via(&d, via, &dst, &back, true, &args);
        assert_same_tree(&src, &back);
        assert_eq!(report["data_path"], path, "{args:?}: {report}");
        assert_shipped(&report, &mix, !pushed_compressed, &format!("pull {args:?}"));
    }
}

/// The edited files of the delta test: name, first version.
fn delta_sources() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.txt", text(11, 200_000)),
        ("b.txt", text(12, 300_000)),
        ("sub/big.log", text(13, 1_200_000)),
        // Under the smallest chunk (16 KiB): one chunk, fine deltas still.
        ("small.txt", text(14, 6_000)),
    ]
}

/// One way to sync the delta test's trees, with what its reports must show.
struct DeltaCase<'a> {
    name: &'static str,
    via: Via<'a>,
    /// The destination pulls from the source (else the source pushes).
    pull: bool,
    dst: std::path::PathBuf,
    extra: &'static [&'static str],
    /// Deltas expected (else `-W`: none).
    deltas: bool,
    compress: bool,
}

/// Fine deltas: after a first sync, a one-line edit in a 200 KB file and
/// then edits at many offsets of several files (one under the smallest
/// chunk) ship a small fraction of the changed chunks, as deltas, over the
/// control connection and beside UDP, with and without zstd; `-W` ships
/// whole chunks.
#[test]
fn edited_files_ship_as_fine_deltas() {
    let d = Dir::new();
    let store = d.path("store");
    let daemon = start_daemon(&d, &store);
    let src = d.path("src");
    let untouched = noise(15, 400_000);
    write(&src.join("untouched.bin"), &untouched);
    for (name, data) in delta_sources() {
        write(&src.join(name), &data);
    }
    let cases = [
        DeltaCase {
            name: "in-process",
            via: Via::Local,
            pull: false,
            dst: d.path("local"),
            extra: &["--no-whole-file", "--compress", "on"],
            deltas: true,
            compress: true,
        },
        DeltaCase {
            name: "local udp",
            via: Via::Local,
            pull: false,
            dst: d.path("local-udp"),
            extra: &["--no-whole-file", "--compress", "on", "--transport", "udp"],
            deltas: true,
            compress: true,
        },
        DeltaCase {
            name: "in-process, zstd off",
            via: Via::Local,
            pull: false,
            dst: d.path("local-raw"),
            extra: &["--no-whole-file", "--compress", "off"],
            deltas: true,
            compress: false,
        },
        DeltaCase {
            name: "ssh tcp",
            via: Via::Ssh,
            pull: false,
            dst: d.path("ssh"),
            extra: &["--transport", "tcp"],
            deltas: true,
            compress: true,
        },
        // Auto: a UDP phase that cannot run (nor is needed: deltas only),
        // and compression (the host is not known to be this one).
        DeltaCase {
            name: "ssh auto",
            via: Via::Ssh,
            pull: false,
            dst: d.path("ssh-auto"),
            extra: &[],
            deltas: true,
            compress: true,
        },
        // The remote end sends the deltas, this one the bases.
        DeltaCase {
            name: "ssh pull",
            via: Via::Ssh,
            pull: true,
            dst: d.path("ssh-pull"),
            extra: &["--transport", "tcp"],
            deltas: true,
            compress: true,
        },
        DeltaCase {
            name: "daemon udp, zstd off",
            via: Via::Daemon(&daemon, &store),
            pull: false,
            dst: store.join("tree"),
            extra: &["--transport", "udp"],
            deltas: true,
            compress: false,
        },
        DeltaCase {
            name: "ssh -W",
            via: Via::Ssh,
            pull: false,
            dst: d.path("ssh-whole"),
            extra: &["--transport", "tcp", "-W", "--compress", "off"],
            deltas: false,
            compress: false,
        },
    ];
    for c in &cases {
        sync_via(&d, c.via, &src, &c.dst, c.pull, c.extra);
        assert_same_tree(&src, &c.dst);
    }

    // One line of a 200 KB file: one or two changed chunks of 16-256 KiB.
    let mut a = text(11, 200_000);
    a[100_000..100_006].copy_from_slice(b"EDITED");
    write(&src.join("a.txt"), &a);
    for c in &cases {
        let report = sync_via(&d, c.via, &src, &c.dst, c.pull, c.extra);
        assert_same_tree(&src, &c.dst);
        let (sent, encoded) = (
            n(&report, "chunk_bytes_sent"),
            n(&report, "chunk_bytes_encoded"),
        );
        let what = format!("one line, {}: {report}", c.name);
        assert!(sent >= 16 << 10, "{what}");
        if c.deltas {
            assert!(n(&report, "delta_chunks") >= 1, "{what}");
            let bound = if c.compress { 2_000 } else { 4_000 };
            assert!(encoded < bound, "{what}");
        } else {
            assert_eq!(n(&report, "delta_chunks"), 0, "{what}");
            assert_eq!(encoded, sent, "{what}");
        }
    }

    // A file under the smallest chunk is one chunk: a delta too.
    let mut small = text(14, 6_000);
    small[3_000..3_006].copy_from_slice(b"EDITED");
    write(&src.join("small.txt"), &small);
    for c in &cases {
        let report = sync_via(&d, c.via, &src, &c.dst, c.pull, c.extra);
        assert_same_tree(&src, &c.dst);
        let what = format!("small file, {}: {report}", c.name);
        assert_eq!(n(&report, "chunk_bytes_sent"), 6_000, "{what}");
        let encoded = n(&report, "chunk_bytes_encoded");
        if c.deltas {
            assert_eq!(n(&report, "delta_chunks"), 1, "{what}");
            assert!(encoded < 1_000, "{what}");
        } else {
            assert_eq!(encoded, 6_000, "{what}");
        }
    }

    // Insertions, deletions and replacements at many offsets.
    let mut edits = 0;
    for (k, (name, data)) in delta_sources().into_iter().enumerate() {
        let count = [12, 20, 40, 3][k];
        let data = match name {
            "a.txt" => a.clone(),
            "small.txt" => small.clone(),
            _ => data,
        };
        write(&src.join(name), &edited(&data, count));
        edits += count as u64;
    }
    for c in &cases {
        let report = sync_via(&d, c.via, &src, &c.dst, c.pull, c.extra);
        assert_same_tree(&src, &c.dst);
        let (sent, encoded, saved) = (
            n(&report, "chunk_bytes_sent"),
            n(&report, "chunk_bytes_encoded"),
            n(&report, "delta_bytes_saved"),
        );
        let what = format!("{edits} edits, {}: {report}", c.name);
        // Every edited file changed in most of its chunks.
        assert!(sent > 1_000_000, "{what}");
        if c.deltas {
            assert!(n(&report, "delta_chunks") >= 4, "{what}");
            assert!(encoded * 10 < sent, "{what}");
            if !c.compress {
                // Raw copy/literal deltas: what they saved is all that was saved.
                assert_eq!(saved, sent - encoded, "{what}");
            }
        } else {
            assert_eq!(n(&report, "delta_chunks"), 0, "{what}");
            assert_eq!(saved, 0, "{what}");
            assert_eq!(encoded, sent, "{what}");
        }
    }
    assert_eq!(std::fs::read(src.join("untouched.bin")).unwrap(), untouched);
}

/// Random data with compression on: detected as incompressible and sent
/// as it is, on the control connection and over UDP.
#[test]
fn incompressible_data_is_sent_raw() {
    let d = Dir::new();
    let src = d.path("src");
    write(&src.join("random.bin"), &noise(21, 4 << 20));
    let cases: [&[&str]; 2] = [
        &["--compress", "on", "--no-whole-file"],
        &["--compress", "on", "--transport", "udp"],
    ];
    for (i, extra) in cases.into_iter().enumerate() {
        let dst = d.path(&format!("dst{i}"));
        let report = sync_via(&d, Via::Local, &src, &dst, false, extra);
        assert_same_tree(&src, &dst);
        let what = format!("{extra:?}: {report}");
        assert_eq!(n(&report, "chunk_bytes_sent"), 4 << 20, "{what}");
        assert_eq!(n(&report, "chunk_bytes_encoded"), 4 << 20, "{what}");
    }
}

/// Chunk bytes the journals in `dst` record as arrived in temporary
/// files (48-byte records: offset, length, hash).
fn journaled(dst: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dst) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .flat_map(|j| {
            j.chunks_exact(48)
                .map(|r| u64::from(u32::from_le_bytes(r[8..12].try_into().unwrap())))
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Names in `dst` that are whole files of the source (the `f{i}` of
/// `files`); panics on anything else but a hidden temporary.
fn whole_files(dst: &Path, files: &[Vec<u8>]) -> usize {
    let mut whole = 0;
    for e in std::fs::read_dir(dst).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.starts_with(".sluice-tmp.") {
            continue;
        }
        let i: usize = name[1..].parse().unwrap();
        assert!(
            std::fs::read(dst.join(&name)).unwrap() == files[i],
            "{name} is visible half-written"
        );
        whole += 1;
    }
    whole
}

/// A slow UDP sync of compressed chunks killed (SIGKILL) with files
/// whole, one partly arrived and compressed data in flight: only whole
/// files and hidden temporaries are visible; the next run completes the
/// tree without shipping again what arrived.
#[test]
fn a_killed_compressed_sync_resumes() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    let files: Vec<Vec<u8>> = (0..8).map(|i| text(30 + i, 1 << 20)).collect();
    for (i, f) in files.iter().enumerate() {
        write(&src.join(format!("f{i}")), f);
    }
    // About 2.6 MB compressed at 8 Mbit/s: over 2.5 s.
    let mut child = std::process::Command::new(sluice_bin())
        .args(["sync", "-q", "--transport", "udp", "--compress", "on"])
        .args(["--rate", "8M", "--policy", "fixed"])
        .arg(&src)
        .arg(&dst)
        .env("XDG_STATE_HOME", d.path("state"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a file is whole and the next has journaled chunks.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let whole = std::fs::read_dir(&dst).map_or(0, |rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        });
        if whole >= 1 && journaled(&dst) >= 2 * (16 << 10) {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "the transfer never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let whole = whole_files(&dst, &files);
    let arrived = journaled(&dst);
    assert!((1..8).contains(&whole), "{whole} whole files");
    assert!(arrived > 0);

    let extra = ["--transport", "udp", "--compress", "on"];
    let report = sync_via(&d, Via::Local, &src, &dst, false, &extra);
    assert_same_tree(&src, &dst);
    let total = 8u64 << 20;
    let sent = n(&report, "chunk_bytes_sent");
    assert!(
        sent + (whole as u64) * (1 << 20) + arrived <= total,
        "resent {sent} of {total} with {whole} files whole and {arrived} bytes journaled: {report}"
    );
    assert!(n(&report, "chunk_bytes_encoded") < sent, "{report}");
}

/// When auto's UDP phase cannot run (here the ssh host resolves to no
/// address; a firewall does the same after 5 s), the round is asked for
/// again on the control connection. The chunks that already came as
/// deltas before the phase must not travel again, whole: the run ships
/// what `--transport tcp` ships.
#[test]
fn deltas_are_not_shipped_again_when_udp_falls_back() {
    let d = Dir::new();
    let src = d.path("src");
    let a = text(41, 200_000);
    write(&src.join("a.txt"), &a);
    let transports: [&[&str]; 2] = [&["--transport", "tcp"], &[]];
    for (i, transport) in transports.into_iter().enumerate() {
        let dst = d.path(&format!("dst{i}"));
        write(&src.join("a.txt"), &a);
        let _ = std::fs::remove_file(src.join("new.bin"));
        sync_via(&d, Via::Ssh, &src, &dst, false, transport);
        // One line of a.txt edited (a delta), and a random file that has
        // to take the stream: the UDP phase is tried.
        let mut edited = a.clone();
        edited[100_000..100_006].copy_from_slice(b"EDITED");
        write(&src.join("a.txt"), &edited);
        write(&src.join("new.bin"), &noise(42 + i as u64, 100_000));
        let report = sync_via(&d, Via::Ssh, &src, &dst, false, transport);
        assert_same_tree(&src, &dst);
        let what = format!("{transport:?}: {report}");
        assert_eq!(n(&report, "delta_chunks"), 1, "{what}");
        assert!(
            n(&report, "chunk_bytes_sent") > 100_000 + (16 << 10),
            "{what}"
        );
        // The random file raw, and a delta of a few hundred bytes.
        assert!(
            n(&report, "chunk_bytes_encoded") < 100_000 + 2_000,
            "{what}"
        );
        assert!(n(&report, "wire_bytes_sent") < 100_000 + 6_000, "{what}");
        // The fallback is told as what it was: no 5 s wait for datagrams.
        if transport.is_empty() {
            let warnings = report["warnings"].to_string();
            assert!(warnings.contains("could not send over UDP"), "{what}");
        }
    }
}

/// A UDP run whose every chunk came as a delta on the control
/// connection (no UDP phase ran) says so: `data_path` is "control
/// connection", as `loss_pct` (null: no chunk went by UDP) implies.
#[test]
fn chunks_that_all_came_as_deltas_did_not_go_by_udp() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    let mut a = text(51, 200_000);
    write(&src.join("a.txt"), &a);
    let extra = ["--transport", "udp", "--no-whole-file"];
    sync_via(&d, Via::Local, &src, &dst, false, &extra);
    a[100_000..100_006].copy_from_slice(b"EDITED");
    write(&src.join("a.txt"), &a);
    let report = sync_via(&d, Via::Local, &src, &dst, false, &extra);
    assert_same_tree(&src, &dst);
    assert_eq!(n(&report, "delta_chunks"), 1, "{report}");
    assert!(report["loss_pct"].is_null(), "{report}");
    assert_eq!(report["data_path"], "control connection", "{report}");
}

/// A folder renamed and a file in it edited, with `--delete`: the edited
/// file's changed chunk travels as a delta against the old file of the
/// same name that the source no longer has (rsync's `--fuzzy`), the rest
/// of it is copied at the destination.
#[test]
fn a_file_in_a_renamed_folder_ships_its_edit_as_a_delta() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    let mut a = text(61, 20_000);
    write(&src.join("old/a.txt"), &a);
    write(&src.join("old/b.txt"), &text(62, 30_000));
    let extra = ["--no-whole-file", "--compress", "off", "--delete"];
    sync_via(&d, Via::Local, &src, &dst, false, &extra);
    std::fs::rename(src.join("old"), src.join("new")).unwrap();
    a[10_000..10_006].copy_from_slice(b"EDITED");
    write(&src.join("new/a.txt"), &a);
    let report = sync_via(&d, Via::Local, &src, &dst, false, &extra);
    assert_same_tree(&src, &dst);
    assert_eq!(n(&report, "delta_chunks"), 1, "{report}");
    assert!(n(&report, "chunk_bytes_encoded") < 2_000, "{report}");
}

/// `--dry-run` reports what compression and deltas would make of the
/// chunks, and writes nothing: exactly (the same bytes as the real run
/// that follows) when the chunks to ship fit in the sample, through the
/// ssh path both ways and in-process; and an estimate from a sample of
/// part of them when they do not, close to what the real run then takes.
#[test]
fn a_dry_run_estimates_what_compression_and_deltas_make_of_the_chunks() {
    let d = Dir::new();
    let src = d.path("src");
    for (name, data) in delta_sources() {
        write(&src.join(name), &data);
    }
    let flags: &[&str] = &["--no-whole-file", "--compress", "on", "--transport", "tcp"];
    for (i, (via, pull)) in [(Via::Local, false), (Via::Ssh, false), (Via::Ssh, true)]
        .into_iter()
        .enumerate()
    {
        let (old, dst) = (d.path(&format!("old{i}")), d.path(&format!("dst{i}")));
        sync_via(&d, Via::Local, &src, &dst, false, &[]);
        // The destination's version is the old one: a copy of it with
        // the source edited afterwards is compared against it.
        sync_via(&d, Via::Local, &src, &old, false, &[]);
        for (name, data) in delta_sources() {
            write(&old.join(name), &edited(&data, 12));
        }
        let before = snapshot(&dst);
        let mut dry = flags.to_vec();
        dry.push("--dry-run");
        let guess = sync_via(&d, via, &old, &dst, pull, &dry);
        assert_eq!(snapshot(&dst), before, "case {i}: the dry run wrote");
        let real = sync_via(&d, via, &old, &dst, pull, flags);
        assert_same_tree(&old, &dst);
        let sent = n(&real, "chunk_bytes_sent");
        assert_eq!(n(&guess, "chunk_bytes_sent"), sent, "case {i}: {guess}");
        assert_eq!(n(&guess, "encoded_sample_bytes"), sent, "case {i}: {guess}");
        assert_eq!(n(&real, "encoded_sample_bytes"), 0, "case {i}: {real}");
        for key in ["chunk_bytes_encoded", "delta_chunks", "delta_bytes_saved"] {
            assert_eq!(
                n(&guess, key),
                n(&real, key),
                "case {i}, {key}: {guess} {real}"
            );
        }
        assert!(n(&real, "delta_chunks") > 0, "case {i}: {real}");
        assert!(
            n(&real, "chunk_bytes_encoded") < sent / 4,
            "case {i}: {real}"
        );
    }

    // 24 MB of new text: the sample is a third of it.
    let big = d.path("big");
    for k in 0..24u64 {
        write(&big.join(format!("f{k:02}.txt")), &text(100 + k, 1_000_000));
    }
    let dst = d.path("big-dst");
    let guess = sync_via(
        &d,
        Via::Local,
        &big,
        &dst,
        false,
        &["--compress", "on", "--dry-run"],
    );
    assert!(!dst.join("f00.txt").exists());
    let real = sync_via(&d, Via::Local, &big, &dst, false, &["--compress", "on"]);
    let (sample, sent) = (
        n(&guess, "encoded_sample_bytes"),
        n(&guess, "chunk_bytes_sent"),
    );
    assert!(sample > 0 && sample < sent / 2, "{guess}");
    let (est, took) = (
        n(&guess, "chunk_bytes_encoded"),
        n(&real, "chunk_bytes_encoded"),
    );
    assert!(
        est.abs_diff(took) < took / 5,
        "estimated {est} encoded bytes, the real run took {took}"
    );
}
