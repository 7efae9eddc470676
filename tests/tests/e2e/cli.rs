//! The command line itself: `--help` texts against snapshots, the shell
//! completion scripts and the man page.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::util::{assert_exit, sluice_bin};

/// Runs sluice with `args` as a user's terminal of 100 columns would:
/// clap wraps help to the terminal's width, else to $COLUMNS. Standard
/// input is not a terminal either (clap asks stdout, stderr, then stdin),
/// and colour is off whatever the caller's environment says.
fn sluice(args: &[&str]) -> Output {
    sluice_columns(args, "100")
}

fn sluice_columns(args: &[&str], columns: &str) -> Output {
    Command::new(sluice_bin())
        .args(args)
        .env("COLUMNS", columns)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null())
        .output()
        .expect("run sluice")
}

fn stdout(out: &Output) -> String {
    assert_exit(out, 0);
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// Compares `actual` with tests/e2e/snapshots/`name`, a plain text file
/// committed beside this test. With `SLUICE_BLESS=1` in the environment it
/// writes `actual` there instead (to accept a changed help text: run
/// `SLUICE_BLESS=1 cargo test -p sluice-e2e --test e2e cli::`, then review
/// the snapshots' diff). Spaces at line ends (clap indents its blank lines)
/// are left out on both sides, so that editors and `git diff --check` leave
/// the files alone.
fn snapshot(name: &str, actual: &str) {
    let actual: String = actual
        .lines()
        .map(|l| l.trim_end().to_owned() + "\n")
        .collect();
    let actual = actual.as_str();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e/snapshots")
        .join(name);
    if std::env::var_os("SLUICE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SLUICE_BLESS=1 writes it)", path.display()));
    if expected == actual {
        return;
    }
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    panic!(
        "{} differs from the output from line {} on:\n\
         expected: {:?}\n\
         actual:   {:?}\n\
         whole output:\n{actual}\n\
         If the change is intended, run again with SLUICE_BLESS=1 and review the diff.",
        path.display(),
        line + 1,
        expected.lines().nth(line),
        actual.lines().nth(line),
    );
}

#[test]
fn help_top() {
    snapshot("help.txt", &stdout(&sluice(&["--help"])));
}

#[test]
fn help_sync() {
    snapshot("sync-help.txt", &stdout(&sluice(&["sync", "--help"])));
}

#[test]
fn help_watch() {
    snapshot("watch-help.txt", &stdout(&sluice(&["watch", "--help"])));
}

#[test]
fn help_log() {
    snapshot("log-help.txt", &stdout(&sluice(&["log", "--help"])));
}

/// The snapshots hold because the width is fixed: a narrower $COLUMNS
/// wraps the same help differently, so COLUMNS=100 is what is in force.
#[test]
fn help_wraps_to_columns() {
    let wide = stdout(&sluice(&["sync", "--help"]));
    let narrow = stdout(&sluice_columns(&["sync", "--help"], "60"));
    assert!(wide.lines().any(|l| l.chars().count() > 60));
    assert!(narrow.lines().all(|l| l.chars().count() <= 60), "{narrow}");
}

#[test]
fn completions_bash() {
    let script = stdout(&sluice(&["completions", "bash"]));
    assert!(script.contains("sync"), "{script}");
    assert!(script.contains("--delete"), "{script}");
    assert!(script.contains("complete "), "{script}");
}

#[test]
fn completions_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&sluice(&["completions", shell]));
        assert!(script.contains("--delete"), "{shell}: {script}");
    }
}

/// An unknown shell is refused like any bad command line, naming the
/// shells there are.
#[test]
fn completions_unknown_shell() {
    let out = sluice(&["completions", "tcsh"]);
    let bad_flag = sluice(&["--no-such-flag"]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), bad_flag.status.code());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
    assert!(err.contains("bash, elvish, fish, powershell, zsh"), "{err}");
}

#[test]
fn manpage() {
    let page = stdout(&sluice(&["manpage"]));
    assert!(page.starts_with(".TH SLUICE 1 "), "{page}");
    assert!(page.contains("watch"));
    // One page for every command, nested ones included, with their options
    // (roff writes a dash as \-).
    for section in ["sync", "watch", "log show", "completions", "manpage"] {
        assert!(
            page.contains(&format!(".SS \"sluice {section}\"")),
            "{section}"
        );
    }
    assert!(page.contains(r"\fB\-\-delete\fR"));
    assert!(page.contains(r#".SH "EXIT STATUS""#));
}

/// `sluice sync` of the sample tree into a new folder, in a temp folder of
/// its own: stdout.
fn sync_sample(extra: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/sample");
    let out = Command::new(sluice_bin())
        .arg("sync")
        .args(extra)
        .arg(&sample)
        .arg(tmp.path().join("copy"))
        .env("XDG_STATE_HOME", tmp.path().join("state"))
        .env_remove("SLUICE_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run sluice");
    stdout(&out)
}

/// The summary of a first sync (its time and rate, which vary, left out).
#[test]
fn summary() {
    let text = sync_sample(&[]);
    let fixed: String = text
        .lines()
        .map(|l| match l.strip_prefix("time: ") {
            Some(rest) => format!(
                "time: (varies), {}\n",
                rest.rsplit(", ").next().unwrap_or("")
            ),
            None => format!("{l}\n"),
        })
        .collect();
    snapshot("sync-summary.txt", &fixed);
}

/// The keys of `--json` (the values are checked by the other tests), and
/// the ones a script reads first.
#[test]
fn json_keys() {
    let v: serde_json::Value = serde_json::from_str(&sync_sample(&["--json"])).unwrap();
    let o = v.as_object().expect("one object");
    let keys: Vec<&str> = o.keys().map(|k| k.as_str()).collect();
    snapshot("sync-json-keys.txt", &keys.join("\n"));
    assert_eq!(o["exit_code"], 0);
    assert!(o["history_id"].as_i64().is_some_and(|id| id >= 1), "{v}");
    assert!(o["rate_bps"].as_u64().is_some(), "{v}");
}
