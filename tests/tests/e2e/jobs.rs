//! Named jobs from a config file (`--config FILE`): `sync --job` and
//! `diff --job`, `jobs`, `job NAME --systemd`, and what a broken file says.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::*;

/// The exit code for a bad command line or config file (`exit::Code::Usage`).
const USAGE: i32 = 1;

/// Writes `text` as the config file in `d`.
fn config(d: &Dir, text: &str) -> PathBuf {
    let file = d.path("sluice.toml");
    write(&file, text.as_bytes());
    file
}

/// `sluice --config FILE ARGS...`.
fn sluice(d: &Dir, file: &Path, args: &[&str]) -> Output {
    let mut argv: Vec<&OsStr> = vec!["--config".as_ref(), file.as_os_str()];
    argv.extend(args.iter().map(OsStr::new));
    d.sluice(&argv)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two jobs; `backup` in /x and /y, which no test syncs.
const TWO_JOBS: &str = r#"
[defaults]
rate = "200M"

[job.backup]
src = "/x"
dst = "/y"
delete = true
exclude = ["*.tmp"]

[job.photos]
src = "/p"
dst = "nas:/srv/p"
"#;

#[test]
fn sync_job_mirrors_with_the_jobs_options_and_typed_flags_win() {
    let d = Dir::new();
    write(&d.path("src/keep.txt"), b"keep");
    write(&d.path("src/sub/scratch.tmp"), b"scratch");
    write(&d.path("dst/stale"), b"stale");
    // Relative SRC and DST: from the file's folder, not the working one.
    let file = config(
        &d,
        "[defaults]\ndelete = true\n\n[job.mirror]\nsrc = \"src\"\ndst = \"dst\"\nexclude = [\"*.tmp\"]\n",
    );
    let out = sluice(&d, &file, &["sync", "--job", "mirror", "--json"]);
    assert_exit(&out, 0);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(n(&report, "files_created"), 1, "{report}");
    assert!(d.path("dst/keep.txt").is_file());
    assert!(!d.path("dst/sub/scratch.tmp").exists(), "the job's exclude");
    assert!(!d.path("dst/stale").exists(), "[defaults]' delete");

    // A typed --exclude replaces the job's: diff shows the .tmp file coming.
    let out = sluice(&d, &file, &["diff", "--job", "mirror", "--exclude", "none"]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).lines().any(|l| l == "+ sub/scratch.tmp"),
        "{}",
        stdout(&out)
    );
    assert!(
        !d.path("dst/sub/scratch.tmp").exists(),
        "diff changes nothing"
    );
    let out = sluice(&d, &file, &["sync", "--job", "mirror", "--exclude", "none"]);
    assert_exit(&out, 0);
    assert_same_tree(&d.path("src"), &d.path("dst"));
}

#[test]
fn a_syntax_error_is_one_line_with_its_line_number() {
    let d = Dir::new();
    let file = config(&d, "[job.a]\nsrc = \"/x\"\ndst = \"/y\"\nrate = \n");
    for args in [&["jobs"][..], &["sync", "--job", "a"]] {
        let out = sluice(&d, &file, args);
        assert_exit(&out, USAGE);
        let err = stderr(&out);
        let want = format!("sluice: error: {} line 4: not valid TOML: ", file.display());
        assert!(
            err.starts_with(&want) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn an_unknown_key_is_named_with_its_line_and_a_suggestion() {
    let d = Dir::new();
    let file = config(
        &d,
        "[job.backup]\nsrc = \"/x\"\ndst = \"/y\"\n\ndelet = true\n",
    );
    let out = sluice(&d, &file, &["sync", "--job", "backup"]);
    assert_exit(&out, USAGE);
    assert_eq!(
        stderr(&out),
        format!(
            "sluice: error: {} line 5: job.backup: unknown key \"delet\" (did you mean \"delete\"?)\n",
            file.display()
        )
    );
}

#[test]
fn an_unknown_job_lists_the_known_ones() {
    let d = Dir::new();
    let file = config(&d, TWO_JOBS);
    for args in [
        &["sync", "--job", "bakup"][..],
        &["watch", "--job", "bakup"],
        &["job", "bakup", "--systemd", "--every", "1h"],
    ] {
        let out = sluice(&d, &file, args);
        assert_exit(&out, USAGE);
        let err = stderr(&out);
        assert!(
            err.contains(
                "no job \"bakup\" (did you mean \"backup\"?); the jobs are: backup, photos"
            ),
            "{args:?}: {err}"
        );
    }
    // --config names a file that must exist.
    let out = d.sluice(&[
        "--config".as_ref(),
        d.path("missing.toml").as_os_str(),
        "sync".as_ref(),
        "--job".as_ref(),
        "a".as_ref(),
    ]);
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out).contains("missing.toml: cannot read it"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn jobs_lists_names_places_and_options() {
    let d = Dir::new();
    let file = config(&d, TWO_JOBS);
    let out = sluice(&d, &file, &["jobs", "--json"]);
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"], file.display().to_string());
    let jobs = v["jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["backup", "photos"]);
    assert_eq!(
        (jobs[0]["src"].as_str(), jobs[0]["dst"].as_str()),
        (Some("/x"), Some("/y"))
    );
    assert_eq!(
        jobs[0]["options"],
        serde_json::json!({ "delete": true, "exclude": ["*.tmp"], "rate": "200M" })
    );
    assert_eq!(jobs[1]["dst"], "nas:/srv/p");
    assert_eq!(jobs[1]["options"], serde_json::json!({ "rate": "200M" }));

    let out = sluice(&d, &file, &["jobs"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("backup  /x -> /y\n"), "{text}");
    assert!(
        text.contains("--delete --exclude='*.tmp' --rate=200M"),
        "{text}"
    );
    assert!(text.contains("photos  /p -> nas:/srv/p\n"), "{text}");
}

#[test]
fn job_systemd_prints_a_unit_pair_systemd_accepts() {
    let d = Dir::new();
    let file = config(&d, TWO_JOBS);
    let bin = std::fs::canonicalize(sluice_bin()).unwrap();
    let file_c = std::fs::canonicalize(&file).unwrap();
    for (when, timer_lines, cron) in [
        (
            &["--every", "1h"][..],
            &["OnBootSec=15min", "OnUnitActiveSec=1h"][..],
            "# 0 * * * * ",
        ),
        (
            &["--on-calendar", "daily"][..],
            &["OnCalendar=daily"][..],
            "# 0 0 * * * ",
        ),
    ] {
        let mut args = vec!["job", "backup", "--systemd"];
        args.extend(when);
        let out = sluice(&d, &file, &args);
        assert_exit(&out, 0);
        let text = stdout(&out);
        let (service, timer) = text
            .split_once("# sluice-backup.timer\n")
            .unwrap_or_else(|| panic!("no timer in\n{text}"));
        let exec = format!(
            "ExecStart={} --config {} sync --job backup",
            bin.display(),
            file_c.display()
        );
        for line in ["Type=oneshot", exec.as_str()] {
            assert!(
                service.lines().any(|l| l == line),
                "no {line:?} in\n{service}"
            );
        }
        for line in timer_lines
            .iter()
            .chain(&["Persistent=true", "WantedBy=timers.target"])
        {
            assert!(timer.lines().any(|l| l == *line), "no {line:?} in\n{timer}");
        }
        assert!(
            timer.lines().any(|l| l.starts_with(cron)),
            "no crontab line in\n{timer}"
        );
        verify(&d, service, timer);
    }
}

/// `systemd-analyze verify` on the pair, where the tool exists.
fn verify(d: &Dir, service: &str, timer: &str) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no systemd-analyze: units not verified");
        return;
    }
    let (s, t) = (
        d.path("units/sluice-backup.service"),
        d.path("units/sluice-backup.timer"),
    );
    write(&s, service.as_bytes());
    write(&t, timer.as_bytes());
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args([&s, &t])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        out.status.success() && !err.contains("sluice-backup"),
        "{err}"
    );
}
