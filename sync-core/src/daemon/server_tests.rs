//! Authorization and confinement, without sockets.

use std::collections::{BTreeMap, HashSet};

use super::*;
use crate::daemon::keys::generate;
use crate::session::SessionOptions;

fn module(path: &std::path::Path, access: Access, key: PublicKey) -> Module {
    Module {
        name: "m".into(),
        path: path.to_path_buf(),
        access,
        allowed_keys: HashSet::from([key]),
    }
}

fn config(m: Module) -> Config {
    Config {
        file: "/c.toml".into(),
        key: "/k".into(),
        listen: None,
        max_connections: 1,
        idle_timeout_secs: 1,
        udp_ports: None,
        max_rate: None,
        modules: BTreeMap::from([(m.name.clone(), m)]),
    }
}

fn hello(role: Role, path: &str, dry_run: bool) -> Hello {
    Hello {
        version: 1,
        software: "t".into(),
        role,
        options: SessionOptions {
            dry_run,
            ..SessionOptions::default()
        },
        path: Some(serde_bytes::ByteBuf::from(path.as_bytes().to_vec())),
        capabilities: Vec::new(),
    }
}

#[test]
fn access_modes_keys_and_unknown_modules() {
    let (_, key) = generate().unwrap();
    let (_, other) = generate().unwrap();
    let d = tempfile::tempdir().unwrap();
    let check = |access, role, dry, k: &PublicKey, path: &str| {
        let c = config(module(d.path(), access, key));
        authorize(&c, k, &hello(role, path, dry)).map(|(_, sub)| sub)
    };
    use Access::*;
    use Role::*;
    assert_eq!(
        check(ReadWrite, Sender, false, &key, "m/a/b/"),
        Ok(b"a/b".to_vec())
    );
    assert_eq!(check(ReadWrite, Receiver, false, &key, "m"), Ok(Vec::new()));
    assert!(check(ReadOnly, Receiver, false, &key, "m").is_ok());
    assert!(
        check(ReadOnly, Sender, true, &key, "m").is_ok(),
        "a dry run only reads"
    );
    assert!(check(WriteOnly, Sender, false, &key, "m").is_ok());
    for denied in [
        check(ReadOnly, Sender, false, &key, "m"),
        check(WriteOnly, Receiver, false, &key, "m"),
        check(WriteOnly, Sender, true, &key, "m"),
        check(ReadWrite, Sender, false, &other, "m"),
        check(ReadWrite, Sender, false, &key, "nope/x"),
        check(ReadWrite, Sender, false, &key, ""),
    ] {
        assert!(denied.is_err());
    }
}

#[test]
fn paths_stay_inside_the_module() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("mod");
    std::fs::create_dir_all(root.join("in/deep")).unwrap();
    std::fs::create_dir_all(d.path().join("outside")).unwrap();
    std::fs::write(root.join("file"), b"x").unwrap();
    std::os::unix::fs::symlink("../outside", root.join("out")).unwrap();
    std::os::unix::fs::symlink("deep", root.join("in/alias")).unwrap();
    let (_, key) = generate().unwrap();
    let m = module(&root, Access::ReadWrite, key);
    let canon = std::fs::canonicalize(&root).unwrap();
    assert_eq!(resolve(&m, b"", true).unwrap(), canon);
    assert_eq!(
        resolve(&m, b"in/deep", true).unwrap(),
        canon.join("in/deep")
    );
    assert_eq!(resolve(&m, b"new/x", false).unwrap(), canon.join("new/x"));
    assert!(resolve(&m, b"new/x", true).is_err());
    for bad in [
        &b"../outside"[..],
        b"/etc",
        b"in/../..",
        b"out",
        b"out/x",
        b"in/alias",
        b"file",
        b"file/x",
        b"a//b",
    ] {
        let e = resolve(&m, bad, false).unwrap_err().to_string();
        assert!(
            !e.contains(&d.path().display().to_string()),
            "leaks a server path: {e}"
        );
    }
}
