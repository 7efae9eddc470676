//! The sending half: scan the source, send its manifest, ship chunks.
//!
//! [`run_sender`] drives a session from the sender's side: it scans the
//! source (while the connection opens, when it initiates), sends the
//! scan's protections, warnings and summary, then goes window by window
//! through the manifest, and finally reports what vanished and reads the
//! receiver's report. The pieces it drives:
//!
//! - [`windows`]: the manifest read from the index a window ahead, and the
//!   chunk lists the receiver asks for;
//! - [`rounds`]: a window's rounds of requested chunks, on the control
//!   connection or in a UDP phase;
//! - [`source`]: chunks read from the source files, and the stream of a
//!   UDP round served from them;
//! - [`pack`]: a UDP round compressed or sent as deltas before its phase.
//!
//! The sender never plans and never writes to the source tree: the
//! receiver decides what is needed, and checks every chunk's hash.

mod pack;
mod rounds;
mod source;
mod windows;

use crossbeam_channel as chan;

use super::bulk::{self, BulkPath};
use super::msg::{batches, size, Msg, Role, SourceInfo};
use super::{index_skips, open_index, Opening, Side, SyncReport, Transport, PARTIAL_MARK};
use crate::apply::Tree;
use crate::error::{Error, ProtocolError, Result};
use crate::index::Index;
use crate::path::RelPath;
use rounds::ship_window;
use source::ChunkReader;
use windows::{read_windows, send_chunk_lists, Window};

/// Runs the sender half of a session.
pub fn run_sender(t: &mut dyn Transport, side: &Side, opening: Opening) -> Result<SyncReport> {
    let result = sender(t, side, opening);
    if let Err(e) = &result {
        if !matches!(e, Error::Peer(_) | Error::Closed(_)) {
            let _ = t.send(&Msg::Error(e.to_string()));
        }
    }
    result
}

fn sender(t: &mut dyn Transport, side: &Side, opening: Opening) -> Result<SyncReport> {
    let started = std::time::Instant::now();
    let mut beats = None;
    // A side that starts the session knows the options already: it scans
    // while the connection opens (an ssh handshake is 15 round trips).
    let (negotiated, scanned) = match &opening {
        Opening::Initiate { options, .. } => {
            let options = options.clone();
            std::thread::scope(|s| {
                let scanning = s.spawn(|| scan_source(side, &options));
                let negotiated = opening.open(t, Role::Sender);
                let scanned = scanning
                    .join()
                    .unwrap_or_else(|_| Err(Error::Usage("the scan thread panicked".into())));
                (negotiated, scanned)
            })
        }
        Opening::Answer(_) => {
            let negotiated = opening.open(t, Role::Sender)?;
            // The initiator waits while this side scans: say it is alive.
            beats = Some(crate::session::alive::beats(t, &negotiated.options));
            let scanned = scan_source(side, &negotiated.options);
            (Ok(negotiated), scanned)
        }
    };
    let negotiated = negotiated?;
    let _beats = beats.unwrap_or_else(|| crate::session::alive::beats(t, &negotiated.options));
    let (index, scan) = scanned?;
    vanish_for_tests(side);
    let opts = negotiated.options.clone();
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "scanned SRC");
    let path = BulkPath {
        data: &opts.data,
        side,
        peer_udp: negotiated.peer_has("udp"),
    };
    let protect = scan
        .unstable
        .iter()
        .map(|p| serde_bytes::ByteBuf::from(p.as_bytes().to_vec()))
        .collect();
    for part in batches(protect, |p| size::bytes(p)) {
        t.send(&Msg::Protect(part))?;
    }
    let warnings = scan
        .warnings
        .iter()
        .map(|w| {
            let mark = if w.io_error { PARTIAL_MARK } else { "" };
            format!("{mark}{}: {}", w.path, w.message)
        })
        .collect();
    for part in batches(warnings, |w| size::bytes(w.as_bytes())) {
        t.send(&Msg::Warnings(part))?;
    }
    t.send(&Msg::Source(SourceInfo {
        params: index.chunk_params()?.unwrap_or_default(),
        partial: scan.partial(),
        entries: scan.entries,
    }))?;

    let window = opts.window_entries() as usize;
    let mut datagram_bytes = 0;
    let mut tree = Tree::open(&side.root).map_err(|e| Error::io(&side.root, e))?;
    let mut reader = ChunkReader::new(&mut tree);
    let mut link = None;
    // The next window is read from the index and encoded while the
    // receiver plans this one: a connection of its own, on its own thread.
    let lists = Index::open_reader(index.path())?;
    std::thread::scope(|s| -> Result<()> {
        let (pages, next) = chan::bounded(1);
        let scopes = opts.scopes.as_ref();
        s.spawn(move || read_windows(&index, scopes, window, &pages));
        loop {
            let Ok(page) = next.recv() else {
                return Err(Error::Usage("the index reader stopped".into()));
            };
            let Window {
                mut entries,
                run,
                last,
            } = page?;
            datagram_bytes += bulk::send_run(t, &run, &path)?;
            drop(run);
            let (listed, bytes) = send_chunk_lists(t, &mut entries, &lists, &path)?;
            datagram_bytes += bytes;
            datagram_bytes +=
                ship_window(t, &entries, &listed, &opts, side, &mut reader, &mut link)?;
            tracing::debug!(entries = entries.len(), last, "sent a window");
            if last {
                return Ok(());
            }
        }
    })?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "sent every window"
    );
    let gone: Vec<String> = std::mem::take(&mut reader.vanished).into_iter().collect();
    let vanished = scan.vanished() + gone.len() as u64;
    for part in batches(gone, |p| size::bytes(p.as_bytes())) {
        t.send(&Msg::Vanished(part))?;
    }
    // Datagrams count as wire bytes too (headers and tags included).
    let wire = t.wire_bytes_sent() + datagram_bytes;
    t.send(&Msg::SenderDone {
        wire_bytes_sent: wire,
        vanished,
        link,
    })?;
    let mut lines = SyncReport::default();
    loop {
        match t.recv()? {
            Msg::ReportLines {
                changes,
                warnings,
                errors,
            } => {
                lines.changes.extend(changes);
                lines.warnings.extend(warnings);
                lines.errors.extend(errors);
            }
            Msg::Report(mut r) => {
                r.wire_bytes_sent = wire;
                r.changes = lines.changes;
                r.warnings = lines.warnings;
                r.errors = lines.errors;
                return Ok(*r);
            }
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("Report", other.name()).into()),
        }
    }
}

/// Test hook, never set outside tests: `SLUICE_TEST_VANISH=PATH` (relative
/// to the source) deletes that file once the scan has listed it, so a test
/// can make a source file vanish mid-run at a known point.
fn vanish_for_tests(side: &Side) {
    let Some(path) = std::env::var_os("SLUICE_TEST_VANISH") else {
        return;
    };
    if let Ok(rel) = RelPath::new(std::os::unix::ffi::OsStringExt::into_vec(path)) {
        let _ = std::fs::remove_file(rel.under(&side.root));
    }
}

/// Scans the source with the session's options, bringing its index up to
/// date; windows of the manifest are read from the index afterwards.
fn scan_source(
    side: &Side,
    opts: &crate::session::SessionOptions,
) -> Result<(Index, crate::scan::ScanReport)> {
    let (mut index, index_path) = open_index(side)?;
    let mut scan_opts = opts.scan_options(side);
    scan_opts.skip = index_skips(&index_path);
    let scan = match &opts.scopes {
        Some(scopes) => crate::scan::scan_scopes(&side.root, &mut index, &scan_opts, scopes)?,
        None => crate::scan::scan(&side.root, &mut index, &scan_opts)?,
    };
    Ok((index, scan))
}
