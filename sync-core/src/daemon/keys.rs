//! Curve25519 key pairs for the daemon's Noise handshake, as hex files.
//!
//! A key is 32 bytes written as 64 hex digits. A private key file holds one
//! such line (mode 0600); `FILE.pub` beside it holds the public key. This
//! module only generates, parses, derives and stores keys; every use of them
//! is `snow`'s (see [`super::noise`]).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};

use crate::error::{Error, Result};

/// Length of a Curve25519 key.
pub const KEY_LEN: usize = 32;

/// A public key: what a server's config lists and a client pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; KEY_LEN]);

/// A private key (never printed).
#[derive(Clone)]
pub struct PrivateKey(pub [u8; KEY_LEN]);

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PublicKey {
    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<PublicKey> {
        parse_hex(s).map(PublicKey)
    }
}

impl PrivateKey {
    /// Parses 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(s: &str) -> Result<PrivateKey> {
        parse_hex(s).map(PrivateKey)
    }

    /// The matching public key.
    pub fn public(&self) -> Result<PublicKey> {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .ok_or_else(|| Error::Config("no Curve25519 implementation".into()))?;
        dh.set(&self.0);
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(&dh.pubkey()[..KEY_LEN]);
        Ok(PublicKey(out))
    }

    /// Reads a private key file (one hex line).
    pub fn load(path: &Path) -> Result<PrivateKey> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        PrivateKey::from_hex(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

/// A fresh key pair from the operating system's random source.
pub fn generate() -> Result<(PrivateKey, PublicKey)> {
    let kp = snow::Builder::new(super::noise::PATTERN.parse().expect("valid pattern"))
        .generate_keypair()
        .map_err(|e| Error::Config(format!("cannot generate a key: {e}")))?;
    let (mut private, mut public) = ([0u8; KEY_LEN], [0u8; KEY_LEN]);
    private.copy_from_slice(&kp.private[..KEY_LEN]);
    public.copy_from_slice(&kp.public[..KEY_LEN]);
    Ok((PrivateKey(private), PublicKey(public)))
}

/// `$XDG_CONFIG_HOME/sluice/id`, else `~/.config/sluice/id`.
pub fn default_key_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                return Err(Error::Usage(
                    "neither XDG_CONFIG_HOME nor HOME is set; pass the key file".into(),
                ))
            }
        },
    };
    Ok(base.join("sluice").join("id"))
}

/// `FILE.pub`.
pub fn public_path(private: &Path) -> PathBuf {
    let mut p = private.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Writes a new key pair to `path` (mode 0600) and `path.pub`; refuses to
/// replace an existing private key unless `force`.
pub fn write_pair(
    path: &Path,
    private: &PrivateKey,
    public: &PublicKey,
    force: bool,
) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    if !force && std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::Usage(format!(
            "{} exists; pass --force to replace it",
            path.display()
        )));
    }
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{}", to_hex(&private.0)).map_err(|e| Error::io(path, e))?;
    let pub_path = public_path(path);
    std::fs::write(&pub_path, format!("{public}\n")).map_err(|e| Error::io(&pub_path, e))?;
    Ok(())
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_hex(s: &str) -> Result<[u8; KEY_LEN]> {
    let s = s.trim().as_bytes();
    let bad = || Error::Config(format!("a key must be {} hex digits", KEY_LEN * 2));
    if s.len() != KEY_LEN * 2 {
        return Err(bad());
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; KEY_LEN];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = (digit(pair[0]).ok_or_else(bad)? << 4) | digit(pair[1]).ok_or_else(bad)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_public_derivation() {
        let (private, public) = generate().unwrap();
        assert_eq!(private.public().unwrap(), public);
        assert_eq!(PublicKey::from_hex(&public.to_string()).unwrap(), public);
        assert!(PublicKey::from_hex("abc").is_err());
        assert!(PublicKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn key_files_are_private_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/id");
        let (private, public) = generate().unwrap();
        write_pair(&path, &private, &public, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(PrivateKey::load(&path).unwrap().public().unwrap(), public);
        let text = std::fs::read_to_string(public_path(&path)).unwrap();
        assert_eq!(PublicKey::from_hex(&text).unwrap(), public);
        assert!(write_pair(&path, &private, &public, false).is_err());
        write_pair(&path, &private, &public, true).unwrap();
    }
}
