//! The opening of the receiving half: what the sender says before its
//! first window (paths to protect, its scan's warnings, then
//! [`Msg::Source`]), and the destination's scan, which runs meanwhile.
//! Nothing here plans or writes to the destination's tree.

use crate::error::{Error, ProtocolError, Result};
use crate::index::Index;
use crate::path::RelPath;
use crate::scan::ScanReport;
use crate::session::msg::{Msg, SourceInfo};
use crate::session::{index_skips, open_index, SessionOptions, Side, Transport};

/// What the sender said before its first window.
pub(super) struct Head {
    pub(super) info: SourceInfo,
    pub(super) protect: Vec<RelPath>,
    pub(super) warnings: Vec<String>,
}

/// The sender's paths to protect and its scan warnings, then [`Msg::Source`].
pub(super) fn receive_head(t: &mut dyn Transport) -> Result<Head> {
    let mut protect = Vec::new();
    let mut warnings = Vec::new();
    loop {
        match t.recv()? {
            Msg::Protect(paths) => protect.extend(
                paths
                    .into_iter()
                    .filter_map(|p| RelPath::new(p.into_vec()).ok()),
            ),
            Msg::Warnings(w) => warnings.extend(w),
            Msg::Source(info) => {
                info.params.validate().map_err(|e| {
                    ProtocolError::invalid("Source: chunk parameters", e.to_string())
                })?;
                return Ok(Head {
                    info,
                    protect,
                    warnings,
                });
            }
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("Source", other.name()).into()),
        }
    }
}

pub(super) fn scan_destination(
    side: &Side,
    opts: &SessionOptions,
    exists: bool,
) -> Result<(Index, ScanReport)> {
    let (mut index, index_path) = open_index(side)?;
    if !exists {
        // Dry run into a folder that does not exist yet: it is empty.
        return Ok((index, ScanReport::default()));
    }
    let mut scan_opts = opts.scan_options(side);
    scan_opts.skip = index_skips(&index_path);
    let report = match &opts.scopes {
        Some(scopes) => crate::scan::scan_scopes(&side.root, &mut index, &scan_opts, scopes)?,
        None => crate::scan::scan(&side.root, &mut index, &scan_opts)?,
    };
    Ok((index, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkParams;
    use crate::session::transport::MemoryTransport;

    fn source(params: ChunkParams) -> Msg {
        Msg::Source(SourceInfo {
            params,
            partial: false,
            entries: 3,
        })
    }

    /// Paths to protect and warnings gather until the source's
    /// description; a path that is not a safe relative one is dropped.
    #[test]
    fn the_head_gathers_until_the_source() {
        let (mut tx, mut rx) = MemoryTransport::pair(8);
        let protect = ["keep", "../out"].map(|p| serde_bytes::ByteBuf::from(p.as_bytes()));
        tx.send(&Msg::Protect(protect.to_vec())).unwrap();
        tx.send(&Msg::Warnings(vec!["w".into()])).unwrap();
        tx.send(&source(ChunkParams::default())).unwrap();
        let head = receive_head(&mut rx).unwrap();
        assert_eq!(head.info.entries, 3);
        assert_eq!(head.protect, [RelPath::new(b"keep".to_vec()).unwrap()]);
        assert_eq!(head.warnings, ["w"]);
    }

    #[test]
    fn a_source_with_bad_chunk_parameters_is_refused() {
        let (mut tx, mut rx) = MemoryTransport::pair(8);
        let bad = ChunkParams {
            min: 100,
            avg: 10,
            max: 1,
        };
        tx.send(&source(bad)).unwrap();
        match receive_head(&mut rx) {
            Err(Error::Protocol(ProtocolError::Invalid { message, .. })) => {
                assert!(message.contains("chunk parameters"), "{message}")
            }
            other => panic!("accepted: {:?}", other.map(|h| h.info.entries)),
        }
        tx.send(&Msg::WantDone).unwrap();
        assert!(matches!(
            receive_head(&mut rx),
            Err(Error::Protocol(ProtocolError::Unexpected { .. }))
        ));
    }
}
