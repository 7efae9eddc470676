//! The progress display: drawn under a terminal (a pseudo-terminal made
//! by util-linux `script`) or with `--progress`, never with `-q` or
//! `--json`; the bar never shows more than 100 % and a successful run
//! ends at 100 %.
//!
//! Without `script` (or a pty), the terminal test fails under `CI=true`
//! and is skipped elsewhere.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use crate::util::{noise, unavailable, write, Dir};

/// 16 files of 256 KiB in 3 folders (20 entries with the root): 4 MiB,
/// which `--rate 20M` spreads over ~1.7 s, so that frames are drawn
/// mid-transfer.
fn tree(root: &Path) {
    for i in 0..16 {
        write(&root.join(format!("d{}/f{i}", i % 3)), &noise(i, 256 << 10));
    }
}

/// Escape sequences out; each `\r`- or `\n`-separated piece is a line of
/// a frame.
fn frame_lines(raw: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `7.25 MiB` → bytes (indicatif's binary units).
fn bytes(num: &str, unit: &str) -> f64 {
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("unknown unit {other:?}"),
    };
    num.parse::<f64>().expect("a number") * scale
}

/// One drawn bar: its percent, and done / total as printed.
#[derive(Debug)]
struct Bar {
    percent: u32,
    done: String,
    total: String,
    done_bytes: f64,
    total_bytes: f64,
}

/// The byte bars among `lines`: "███░░  57% 781.25 KiB/1.34 MiB 2.12 MiB/s ETA 0s".
fn bars(lines: &[String]) -> Vec<Bar> {
    lines
        .iter()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            let at = t.iter().position(|w| {
                w.strip_suffix('%')
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })?;
            let (percent, num, mid, unit) = (t[at], t.get(at + 1)?, t.get(at + 2)?, t.get(at + 3)?);
            let (done_unit, total_num) = mid.split_once('/')?;
            Some(Bar {
                percent: percent.trim_end_matches('%').parse().ok()?,
                done: format!("{num} {done_unit}"),
                total: format!("{total_num} {unit}"),
                done_bytes: bytes(num, done_unit),
                total_bytes: bytes(total_num, unit),
            })
        })
        .collect()
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn bar_under_a_terminal_reaches_100_percent_and_never_more() {
    let d = Dir::new();
    let (src, dst) = (d.path("src"), d.path("dst"));
    tree(&src);
    let cmd = format!(
        "{} sync --no-history --transport udp --rate 20M --policy fixed {} {}",
        shell_quote(crate::util::sluice_bin()),
        shell_quote(&src),
        shell_quote(&dst)
    );
    let out = match Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("XDG_STATE_HOME", d.path("state"))
        .env("TERM", "xterm")
        // Planned window by window: the byte total grows during the run.
        .env("SLUICE_TEST_WINDOW", "4")
        .env_remove("SLUICE_LOG")
        .output()
    {
        Ok(out) => out,
        Err(e) => return unavailable(&format!("cannot run script: {e}")),
    };
    let raw = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && raw.trim().is_empty() {
        return unavailable(&format!(
            "script made no terminal: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    assert!(out.status.success(), "sync failed:\n{raw}");
    crate::util::assert_same_tree(&src, &dst);

    let lines = frame_lines(&raw);
    let bars = bars(&lines);
    assert!(bars.len() > 1, "no bar drawn mid-run:\n{raw}");
    for b in &bars {
        assert!(b.percent <= 100, "over 100 %: {b:?}");
        assert!(b.done_bytes <= b.total_bytes, "done past total: {b:?}");
    }
    assert!(
        bars.iter().any(|b| b.percent < 100),
        "only full bars:\n{raw}"
    );
    let last = bars.last().expect("a bar");
    assert_eq!(
        (last.percent, &last.done),
        (100, &last.total),
        "last frame: {last:?}"
    );
    assert_eq!(last.total, "4.00 MiB");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("planned ") && l.contains(" of 20 entries")),
        "no \"planned N of M entries\" line:\n{raw}"
    );
    // A UDP sender shows the link it measures.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("loss ") && l.contains(" %, rtt ") && l.contains(" ms")),
        "no loss and rtt on the bar:\n{raw}"
    );
    // The summary starts on its own line, after the last frame.
    assert!(
        lines.iter().any(|l| l.starts_with("source: 16 files")),
        "{raw}"
    );
}

#[test]
fn progress_flag_draws_off_a_terminal_and_quiet_or_json_never_draw() {
    let d = Dir::new();
    let src = d.path("src");
    tree(&src);
    let run = |dst: &str, extra: &[&str]| {
        let dst = d.path(dst);
        let mut args: Vec<&OsStr> = vec!["sync".as_ref(), "--no-history".as_ref()];
        args.extend(extra.iter().map(OsStr::new));
        args.extend([src.as_os_str(), dst.as_os_str()]);
        let out = d.sluice(&args);
        crate::util::assert_exit(&out, 0);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let drawn = run("forced", &["--progress"]);
    let bars = bars(&frame_lines(&drawn));
    let last = bars
        .last()
        .unwrap_or_else(|| panic!("--progress drew no bar:\n{drawn}"));
    assert_eq!((last.percent, &last.done), (100, &last.total), "{drawn}");

    // stderr is a pipe here: nothing without --progress, and never with
    // -q or --json.
    for (dst, extra) in [
        ("plain", &[][..]),
        ("quiet", &["-q", "--progress"][..]),
        ("json", &["--json", "--progress"][..]),
    ] {
        let stderr = run(dst, extra);
        assert!(
            !stderr.contains('\u{1b}') && !stderr.contains('%') && !stderr.contains("scanning"),
            "{extra:?} drew progress:\n{stderr}"
        );
    }
}

/// A push's receiver is remote: the bar counts the chunk bytes the sender
/// ships, over the control connection and over UDP, and ends at 100 %.
#[test]
fn a_push_draws_the_bytes_it_ships() {
    let d = Dir::new();
    let src = d.path("src");
    tree(&src);
    let rsh = crate::util::local_rsh(&d, "");
    let remote = crate::util::sluice_bin().display().to_string();
    for transport in ["tcp", "udp"] {
        let dst = format!("127.0.0.1:{}", d.path(transport).display());
        let out = d.sluice(&[
            "sync".as_ref(),
            "--no-history".as_ref(),
            "--progress".as_ref(),
            "--transport".as_ref(),
            transport.as_ref(),
            "--rsh".as_ref(),
            rsh.as_ref(),
            "--remote-sluice".as_ref(),
            remote.as_ref(),
            src.as_os_str(),
            dst.as_ref(),
        ]);
        crate::util::assert_exit(&out, 0);
        let drawn = String::from_utf8_lossy(&out.stderr);
        let bars = bars(&frame_lines(&drawn));
        let last = bars
            .last()
            .unwrap_or_else(|| panic!("{transport}: no bar:\n{drawn}"));
        assert_eq!(
            (last.percent, last.total.as_str()),
            (100, "4.00 MiB"),
            "{transport}: {drawn}"
        );
        assert!(
            bars.iter().all(|b| b.percent <= 100),
            "{transport}: {drawn}"
        );
        crate::util::assert_same_tree(&src, &d.path(transport));
    }
}
