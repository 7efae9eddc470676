//! `sluice serve`: the remote end of a sync, over ssh (`--stdio`) or as a
//! daemon (`--config FILE [--listen ADDR:PORT]`).

use anyhow::Context;
use sync_core::daemon::config::Config;
use sync_core::daemon::server::Server;
use sync_core::session::serve::serve_stdio;

use crate::args::ServeArgs;
use crate::exit::Code;

pub fn run(a: ServeArgs) -> anyhow::Result<Code> {
    if let Some(file) = &a.config {
        return daemon(file, &a);
    }
    // stdout carries the protocol: nothing else may be printed there.
    let input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin());
    let output = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    let report = serve_stdio(input, output, a.threads, a.udp_ports.clone())?;
    Ok(if report.partial() {
        Code::Partial
    } else {
        Code::Ok
    })
}

fn daemon(file: &std::path::Path, a: &ServeArgs) -> anyhow::Result<Code> {
    let config = Config::load(file)?;
    let Some(listen) = a.listen.or(config.listen) else {
        anyhow::bail!(
            "no address to listen on: pass --listen ADDR:PORT or set listen in {}",
            file.display()
        );
    };
    let modules = config
        .modules
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let server = Server::bind(config, listen, a.threads)
        .with_context(|| format!("cannot start the daemon of {}", file.display()))?;
    tracing::info!(
        "listening on {}; server public key {}; modules: {modules}",
        server.local_addr()?,
        server.public_key()?
    );
    if let Some(addr) = a.metrics {
        crate::metrics_http::start(addr, a.metrics_public, server.metrics())?;
    }
    server.run()?;
    Ok(Code::Ok)
}
