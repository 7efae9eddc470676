//! `sluice keygen`: a key pair for the daemon or its clients.

use sync_core::daemon::keys::{default_key_path, generate, public_path, write_pair};

use crate::args::KeygenArgs;
use crate::exit::Code;

pub fn run(a: KeygenArgs) -> anyhow::Result<Code> {
    let path = match a.out {
        Some(p) => p,
        None => default_key_path()?,
    };
    let (private, public) = generate()?;
    write_pair(&path, &private, &public, a.force)?;
    eprintln!(
        "sluice: wrote the private key to {} and the public key to {}",
        path.display(),
        public_path(&path).display()
    );
    println!("{public}");
    Ok(Code::Ok)
}
