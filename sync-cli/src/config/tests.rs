//! The config file: every kind of option, every error with its file, line
//! and key, and which of command line, job and `[defaults]` wins.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::*;
use crate::args::{Cli, Command, SyncArgs, WatchArgs};
use crate::data_args::{CipherArg, PolicyArg, TransportArg};

const FILE: &str = "/home/me/.config/sluice/config.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(FILE))
}

/// `sluice ARGS...` with `config` as the config file.
fn run(config: &Config, args: &[&str]) -> Result<Cli, ConfigError> {
    let argv = std::iter::once("sluice").chain(args.iter().copied());
    let matches = Cli::command().try_get_matches_from(argv).unwrap();
    config.resolve(&matches)
}

fn sync(config: &Config, args: &[&str]) -> SyncArgs {
    match run(config, args).unwrap().command {
        Command::Sync(a) | Command::Diff(a) => a,
        other => panic!("not a sync: {other:?}"),
    }
}

fn watch(config: &Config, args: &[&str]) -> WatchArgs {
    match run(config, args).unwrap().command {
        Command::Watch(a) => a,
        other => panic!("not a watch: {other:?}"),
    }
}

const EVERY_KIND: &str = r#"
[job.all]
src = "/data"
dst = "backup:/srv/data"
delete = true
checksum = true
gitignore = true
hard_links = true
allow-empty-source = false
rate = "200M"
min_rate = 1_000_000
max_delete = 100
threads = 4
transport = "udp"
policy = "fixed"
packet-size = 9000
cipher = "none"
rsh = "ssh -p 2222"
udp_ports = "33001-33016"
exclude = ["*.tmp", ".cache/"]
exclude_from = "ignore.txt"
src_index = "/var/idx/src.db"
key = "~/keys/id"
debounce = 50
rescan_interval = 600
"#;

#[test]
fn every_kind_of_option_reaches_the_sync_args() {
    let config = parse(EVERY_KIND).unwrap();
    let a = sync(&config, &["sync", "--job", "all"]);
    assert_eq!(a.src, Path::new("/data"));
    assert_eq!(a.dst, Path::new("backup:/srv/data"));
    assert!(a.delete && a.scan.checksum && a.scan.gitignore && a.hard_links);
    assert!(!a.allow_empty_source);
    assert_eq!(a.data.rate, Some(200_000_000));
    assert_eq!(a.data.min_rate, Some(1_000_000));
    assert_eq!(a.max_delete, Some(100));
    assert_eq!(a.scan.threads, 4);
    assert!(matches!(a.data.transport, TransportArg::Udp));
    assert!(matches!(a.data.policy, PolicyArg::Fixed));
    assert!(matches!(a.data.cipher, CipherArg::None));
    assert_eq!(a.data.packet_size, 9000);
    assert_eq!(a.rsh, "ssh -p 2222");
    assert_eq!(a.udp_ports, 33001..=33016);
    assert_eq!(a.scan.exclude, ["*.tmp", ".cache/"]);
    // Relative paths start at the file's folder, `~/` at the home folder.
    assert_eq!(
        a.scan.exclude_from,
        [PathBuf::from("/home/me/.config/sluice/ignore.txt")]
    );
    assert_eq!(a.src_index.as_deref(), Some(Path::new("/var/idx/src.db")));
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        assert_eq!(a.key, Some(PathBuf::from(home).join("keys/id")));
    }
    // watch's own options reach watch, and sync does without them.
    let w = watch(&config, &["watch", "--job", "all"]);
    assert_eq!((w.debounce, w.rescan_interval), (50, 600));
    assert_eq!(w.sync.data.rate, Some(200_000_000));
}

#[test]
fn a_flag_with_an_optional_value_takes_true() {
    let config = parse("[job.j]\nsrc = \"/a\"\ndst = \"/b\"\nwait_lock = true\n").unwrap();
    assert_eq!(sync(&config, &["sync", "--job", "j"]).wait_lock, 86400);
    let config = parse("[job.j]\nsrc = \"/a\"\ndst = \"/b\"\nwait_lock = 60\n").unwrap();
    assert_eq!(sync(&config, &["sync", "--job", "j"]).wait_lock, 60);
    // Typed without its value, it stays so.
    assert_eq!(
        sync(&config, &["sync", "--job", "j", "--wait-lock"]).wait_lock,
        86400
    );
}

#[test]
fn relative_places_start_at_the_file_and_remote_ones_stay() {
    let config = parse("[job.j]\nsrc = \"photos\"\ndst = \"nas:photos\"\n").unwrap();
    let job = config.job("j").unwrap();
    assert_eq!(job.src, "/home/me/.config/sluice/photos");
    assert_eq!(job.dst, "nas:photos");
    assert_eq!(job.line, 1);
}

const LAYERED: &str = r#"
[defaults]
rate = "1M"
delete = true
exclude = ["*.log"]
checksum = true
debounce = 99

[job.j]
src = "/data"
dst = "/mirror"
rate = "2M"
delete = false
exclude = ["*.tmp"]
"#;

#[test]
fn the_command_line_wins_over_the_job_and_the_job_over_defaults() {
    let config = parse(LAYERED).unwrap();
    let a = sync(&config, &["sync", "--job", "j"]);
    assert_eq!(a.data.rate, Some(2_000_000), "the job's over [defaults]");
    assert!(!a.delete, "the job's false over [defaults]' true");
    assert_eq!(a.scan.exclude, ["*.tmp"], "a list replaces the one below");
    assert!(a.scan.checksum, "[defaults] where the job says nothing");
    assert_eq!(
        (a.src.as_path(), a.dst.as_path()),
        (Path::new("/data"), Path::new("/mirror"))
    );

    let typed = [
        "sync",
        "--job",
        "j",
        "--rate",
        "3M",
        "--exclude=x",
        "--exclude",
        "y",
        "--delete",
        "/other",
    ];
    let a = sync(&config, &typed);
    assert_eq!(a.data.rate, Some(3_000_000));
    assert_eq!(a.scan.exclude, ["x", "y"]);
    assert!(a.delete);
    assert_eq!(a.src, Path::new("/other"), "SRC typed");
    assert_eq!(a.dst, Path::new("/mirror"), "DST still the job's");

    let a = sync(&config, &["diff", "--job", "j", "/a", "/b"]);
    assert_eq!(
        (a.src.as_path(), a.dst.as_path()),
        (Path::new("/a"), Path::new("/b"))
    );

    let w = watch(&config, &["watch", "--job", "j", "--debounce", "7"]);
    assert_eq!(w.debounce, 7);
    assert_eq!(watch(&config, &["watch", "--job", "j"]).debounce, 99);

    // Global flags survive, before the subcommand or after it.
    let cli = run(
        &config,
        &["-v", "--config", FILE, "sync", "--job", "j", "-q"],
    )
    .unwrap();
    assert_eq!((cli.verbose, cli.quiet), (1, true));
    assert_eq!(cli.config.as_deref(), Some(Path::new(FILE)));
}

#[test]
fn the_job_as_a_command_line() {
    let config = parse(LAYERED).unwrap();
    let m = Cli::command()
        .try_get_matches_from(["sluice", "sync", "--job", "j", "--rate", "3M"])
        .unwrap();
    let argv: Vec<String> = config
        .command_line(&m)
        .unwrap()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        argv,
        [
            "sluice",
            "sync",
            "--job=j",
            "--exclude=*.tmp",
            "--checksum",
            "--rate=3M",
            "--",
            "/data",
            "/mirror"
        ]
    );
    let job = config.job("j").unwrap();
    let flags: Vec<String> = config
        .settings_of(job)
        .iter()
        .map(|s| s.flag.clone())
        .collect();
    assert_eq!(flags, ["checksum", "debounce", "delete", "exclude", "rate"]);
}

#[test]
fn an_unknown_job_names_the_known_ones() {
    let text =
        "[job.backup]\nsrc = \"/a\"\ndst = \"/b\"\n[job.photos]\nsrc = \"/c\"\ndst = \"/d\"\n";
    let config = parse(text).unwrap();
    let e = run(&config, &["sync", "--job", "bakup"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(r#"{FILE}: no job "bakup" (did you mean "backup"?); the jobs are: backup, photos"#)
    );
    let e = config.job("zzz").unwrap_err().to_string();
    assert!(
        e.ends_with(r#"no job "zzz"; the jobs are: backup, photos"#),
        "{e}"
    );
    let none = Config::empty(PathBuf::from(FILE), false);
    assert!(none
        .job("x")
        .unwrap_err()
        .what
        .contains("the file does not exist"));
    let empty = parse("[defaults]\ndelete = true\n").unwrap();
    assert!(empty
        .job("x")
        .unwrap_err()
        .what
        .contains("no [job.NAME] tables"));
}

#[test]
fn a_missing_config_flag_file_is_an_error() {
    let e = Config::load(Some(Path::new("/nonexistent/sluice.toml"))).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/sluice.toml: cannot read it"),
        "{e}"
    );
}

#[test]
fn every_error_names_the_file_the_line_and_the_key() {
    let job = "[job.b]\nsrc = \"/a\"\ndst = \"/b\"\n";
    let cases: Vec<(String, usize, &str)> = vec![
        (format!("{job}delet = true\n"), 4, r#"job.b: unknown key "delet" (did you mean "delete"?)"#),
        (format!("{job}max_delet = 1\n"), 4, r#"job.b: unknown key "max_delet" (did you mean "max_delete"?)"#),
        (format!("{job}sorce = \"/a\"\n"), 4, r#"(did you mean "src"?)"#),
        (format!("{job}job = \"c\"\n"), 4, r#"job.b: unknown key "job""#),
        ("[defaults]\nrate = \"fast\"\n".into(), 2, r#"defaults.rate: not a rate: "fast""#),
        ("[defaults]\ntransport = \"quic\"\n".into(), 2, r#"defaults.transport: "quic" is not one of auto, udp, tcp"#),
        ("[defaults]\npacket_size = 100\n".into(), 2, "defaults.packet_size: 100 is not in 576..=9000"),
        ("[defaults]\ndelete = \"yes\"\n".into(), 2, "defaults.delete: expected true or false, found a string"),
        ("[defaults]\nthreads = true\n".into(), 2, "defaults.threads: expected a string or a number, found a boolean"),
        ("[defaults]\nthreads = \"many\"\n".into(), 2, r#"defaults.threads: "many": invalid digit"#),
        ("[defaults]\nrate = [\"1M\"]\n".into(), 2, "defaults.rate: takes one value, not a list"),
        ("[defaults]\nexclude = [\n  \"a\",\n  1979-05-27,\n]\n".into(), 4, "defaults.exclude: expected a string or a number, found a date-time"),
        ("[defaults]\nsrc = \"/a\"\n".into(), 2, r#"defaults: "src" belongs in a [job.NAME] table"#),
        ("\n\n[defaults]\nudp-ports = \"9-1\"\n".into(), 4, r#"defaults.udp-ports: not a port range: "9-1""#),
        ("[defaults]\nmax_delete = 1\nmax-delete = 2\n".into(), 3, r#"defaults: "max-delete" sets --max-delete a second time"#),
        ("defaults = 3\n".into(), 1, "defaults: expected a table, found an integer"),
        ("jobs.x.src = \"/a\"\n".into(), 1, r#"unknown key "jobs" (did you mean "job"?)"#),
        ("[job.b]\nsrc = \"/a\"\n".into(), 1, r#"job.b: no "dst""#),
        ("[job.\"a b\"]\nsrc = \"/a\"\ndst = \"/b\"\n".into(), 1, "job.a b: a job name is letters"),
        ("[job.b]\nsrc = 3\ndst = \"/b\"\n".into(), 2, "job.b.src: expected a folder"),
        ("[job.b]\nsrc = \"\"\ndst = \"/b\"\n".into(), 2, "job.b.src: expected a folder (a path, host:path or sluice://...), found an empty string"),
        (format!("{job}\n[job.c\nsrc = 1\n"), 5, "not valid TOML: "),
        (format!("{job}rate = \n"), 4, "not valid TOML: "),
    ];
    for (text, line, needle) in cases {
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{FILE} line {line}: ")) && e.contains(needle),
            "{text:?}:\n  got  {e}\n  want line {line}: {needle}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

#[test]
fn suggestions_need_a_near_name() {
    assert_eq!(
        did_you_mean("delet", ["delete", "dst"]).as_deref(),
        Some(r#" (did you mean "delete"?)"#)
    );
    assert_eq!(did_you_mean("frobnicate", ["delete", "dst"]), None);
    assert_eq!(did_you_mean("x", ["s"]), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
}
