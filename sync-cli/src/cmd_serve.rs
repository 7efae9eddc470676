//! `sluice serve --stdio`: the remote end of a sync over ssh.

use sync_core::session::serve::serve_stdio;

use crate::args::ServeArgs;
use crate::exit::Code;

pub fn run(a: ServeArgs) -> anyhow::Result<Code> {
    // stdout carries the protocol: nothing else may be printed there.
    let input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin());
    let output = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    let report = serve_stdio(input, output, a.threads)?;
    Ok(if report.partial() {
        Code::Partial
    } else {
        Code::Ok
    })
}
