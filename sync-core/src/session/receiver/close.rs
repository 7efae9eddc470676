//! The end of the receiving half: the sender's last word (files that
//! vanished, its figures) and the report sent back, its lists in messages
//! of bounded size. Nothing here plans, writes, or decides what the report
//! says beyond the sender's figures.

use std::collections::BTreeSet;

use crate::error::{Error, ProtocolError, Result};
use crate::session::msg::{batches, size, Msg};
use crate::session::{LinkFigures, SyncReport, Transport};

/// Sends the report, its lists first in messages of bounded size.
pub(super) fn send_report(t: &mut dyn Transport, report: &SyncReport) -> Result<()> {
    let mut theirs = report.clone();
    for part in batches(std::mem::take(&mut theirs.changes), size::change) {
        t.send(&Msg::ReportLines {
            changes: part,
            warnings: Vec::new(),
            errors: Vec::new(),
        })?;
    }
    for part in batches(std::mem::take(&mut theirs.warnings), |w| {
        size::bytes(w.as_bytes())
    }) {
        t.send(&Msg::ReportLines {
            changes: Vec::new(),
            warnings: part,
            errors: Vec::new(),
        })?;
    }
    for part in batches(std::mem::take(&mut theirs.errors), size::error) {
        t.send(&Msg::ReportLines {
            changes: Vec::new(),
            warnings: Vec::new(),
            errors: part,
        })?;
    }
    t.send(&Msg::Report(Box::new(theirs)))
}

/// What the sender's last word said ([`Msg::Vanished`]…, [`Msg::SenderDone`]).
pub(super) struct SenderDone {
    pub(super) wire_bytes_sent: u64,
    /// Source entries that vanished during the run, in all.
    vanished: u64,
    /// Files the sender found gone when it came to read their chunks.
    gone: BTreeSet<String>,
    link: Option<LinkFigures>,
}

impl SenderDone {
    /// Puts the sender's figures in the report. A file gone from the source
    /// is no error (rsync's exit 24, not 23): its error, from the chunks
    /// the sender could not supply, becomes a warning.
    pub(super) fn settle(self, report: &mut SyncReport) {
        report.vanished = self.vanished;
        report.loss_pct = self.link.and_then(|l| l.loss_pct());
        report.rtt_ms = self.link.and_then(|l| l.rtt_ms());
        report.errors.retain(|e| !self.gone.contains(&e.path));
        report.warnings.extend(
            self.gone
                .into_iter()
                .map(|p| format!("{p}: vanished from the source during the transfer; not synced")),
        );
    }
}

/// Reads the sender's last word; `entries`, the manifest's length, bounds
/// the files it may say were gone.
pub(super) fn expect_sender_done(t: &mut dyn Transport, entries: usize) -> Result<SenderDone> {
    let mut gone = BTreeSet::new();
    loop {
        match t.recv()? {
            Msg::Vanished(paths) => {
                gone.extend(paths);
                if gone.len() > entries {
                    return Err(
                        ProtocolError::over_limit("Vanished: files", gone.len(), entries).into(),
                    );
                }
            }
            Msg::SenderDone {
                wire_bytes_sent,
                vanished,
                link,
            } => {
                return Ok(SenderDone {
                    wire_bytes_sent,
                    vanished,
                    gone,
                    link,
                })
            }
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("SenderDone", other.name()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ApplyError;
    use crate::session::transport::MemoryTransport;

    fn done(wire_bytes_sent: u64) -> Msg {
        Msg::SenderDone {
            wire_bytes_sent,
            vanished: 2,
            link: None,
        }
    }

    /// A file the sender found gone is a warning, not an error; other
    /// errors stay.
    #[test]
    fn files_gone_from_the_source_become_warnings() {
        let (mut tx, mut rx) = MemoryTransport::pair(8);
        tx.send(&Msg::Vanished(vec!["a".into()])).unwrap();
        tx.send(&done(7)).unwrap();
        let last = expect_sender_done(&mut rx, 3).unwrap();
        assert_eq!(last.wire_bytes_sent, 7);
        let error = |path: &str| ApplyError {
            path: path.into(),
            message: "chunk unavailable".into(),
        };
        let mut report = SyncReport {
            errors: vec![error("a"), error("b")],
            ..SyncReport::default()
        };
        last.settle(&mut report);
        assert_eq!(report.vanished, 2);
        assert_eq!(
            report
                .errors
                .iter()
                .map(|e| &e.path[..])
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].starts_with("a: vanished"));
    }

    #[test]
    fn more_files_gone_than_the_manifest_listed_is_refused() {
        let (mut tx, mut rx) = MemoryTransport::pair(8);
        tx.send(&Msg::Vanished(vec!["a".into(), "b".into()]))
            .unwrap();
        tx.send(&done(0)).unwrap();
        match expect_sender_done(&mut rx, 1) {
            Err(Error::Protocol(ProtocolError::OverLimit { value, limit, .. })) => {
                assert_eq!((value, limit), (2, 1))
            }
            other => panic!("accepted: {:?}", other.map(|d| d.gone)),
        }
    }

    /// The report's lists go ahead of it; the report itself carries none.
    #[test]
    fn the_report_goes_after_its_lists() {
        let (mut tx, mut rx) = MemoryTransport::pair(16);
        let report = SyncReport {
            warnings: vec!["w1".into(), "w2".into()],
            files_total: 5,
            ..SyncReport::default()
        };
        send_report(&mut tx, &report).unwrap();
        let mut warnings = Vec::new();
        let sent = loop {
            match rx.recv().unwrap() {
                Msg::ReportLines { warnings: w, .. } => warnings.extend(w),
                Msg::Report(r) => break r,
                other => panic!("unexpected {}", other.name()),
            }
        };
        assert_eq!(warnings, report.warnings);
        assert!(sent.warnings.is_empty() && sent.changes.is_empty());
        assert_eq!(sent.files_total, 5);
    }
}
