//! The sending half: scan the source, send its manifest, ship chunks.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use super::bulk::{self, BulkPath};

use crossbeam_channel as chan;

use super::msg::{batches, size, Msg, Need, Role, SourceInfo, WireEntry, MAX_CHUNKS};
use super::udp;
use super::{
    index_skips, open_index, LinkFigures, Opening, Side, SyncReport, Transport, PARTIAL_MARK,
};
use crate::apply::Tree;
use crate::chunk::Hash;
use crate::entry::Entry;
use crate::error::{Error, ProtocolError, Result};
use crate::index::Index;
use crate::manifest::ChunkLocation;
use crate::path::RelPath;
use crate::scope::Scopes;

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
            beats = Some(super::alive::beats(t, &negotiated.options));
            let scanned = scan_source(side, &negotiated.options);
            (Ok(negotiated), scanned)
        }
    };
    let negotiated = negotiated?;
    let _beats = beats.unwrap_or_else(|| super::alive::beats(t, &negotiated.options));
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
    let mut reader = ChunkReader {
        tree: &mut tree,
        open: None,
        buf: Vec::new(),
        vanished: BTreeSet::new(),
    };
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

/// One window of the source manifest, read and encoded ahead.
struct Window {
    /// The entries with their index row ids.
    entries: Vec<(i64, Entry)>,
    /// The messages that send them (ending with [`Msg::WindowEnd`]).
    run: Vec<Msg>,
    last: bool,
}

/// Reads the index in windows of `window` entries, in path order, until
/// the last one (or the session stops taking them). With `scopes`, only
/// the entries they cover (a watch round's, few, read at once).
fn read_windows(
    index: &Index,
    scopes: Option<&Scopes>,
    window: usize,
    out: &chan::Sender<Result<Window>>,
) {
    let mut scoped = match scopes.map(|s| index.reads().scope_entries(s)) {
        Some(Ok(entries)) => Some(entries.into_iter().peekable()),
        Some(Err(e)) => {
            let _ = out.send(Err(e));
            return;
        }
        None => None,
    };
    let mut after: Option<RelPath> = None;
    loop {
        let (entries, last) = match &mut scoped {
            Some(rest) => {
                let entries: Vec<_> = rest.by_ref().take(window).collect();
                (entries, rest.peek().is_none())
            }
            None => {
                // One entry more than the window says whether another follows.
                let mut entries = match index.reads().entries(after.as_ref(), None, window + 1) {
                    Ok(entries) => entries,
                    Err(e) => {
                        let _ = out.send(Err(e));
                        return;
                    }
                };
                let last = entries.len() <= window;
                entries.truncate(window);
                (entries, last)
            }
        };
        after = entries.last().map(|(_, e)| e.path.clone());
        let mut run: Vec<Msg> = batches(
            entries
                .iter()
                .map(|(_, e)| WireEntry::without_chunks(e))
                .collect(),
            size::entry,
        )
        .into_iter()
        .map(Msg::Entries)
        .collect();
        run.push(Msg::WindowEnd { last });
        if out.send(Ok(Window { entries, run, last })).is_err() || last {
            return;
        }
    }
}

/// Ships one window's chunks, round by round, until the receiver's empty
/// round; returns the datagram bytes sent. What its UDP phases measured is
/// added to `link`.
fn ship_window(
    t: &mut dyn Transport,
    page: &[(i64, Entry)],
    listed: &[(Hash, u32)],
    opts: &super::SessionOptions,
    side: &Side,
    reader: &mut ChunkReader<'_>,
    link: &mut Option<LinkFigures>,
) -> Result<u64> {
    let mut datagram_bytes = 0;
    // Where each chunk is in the source; built on the first request (a
    // no-change sync never needs it).
    let mut locations = HashMap::new();
    // Deltas and compression for what goes on the control connection.
    let mut shrink = super::shrink::Shrink::new(opts.data.compress);
    loop {
        let mut needs = Vec::new();
        let (round, count, udp_offer) = loop {
            match t.recv()? {
                Msg::Need(runs) => {
                    for r in runs {
                        if needs.len() + r.count as usize > MAX_CHUNKS {
                            return Err(ProtocolError::over_limit(
                                "chunks asked for",
                                needs.len() + r.count as usize,
                                MAX_CHUNKS,
                            )
                            .into());
                        }
                        for k in 0..r.count {
                            let (hash, length) = r
                                .ordinal
                                .checked_add(k)
                                .and_then(|o| listed.get(o as usize))
                                .ok_or_else(|| {
                                    ProtocolError::unknown(
                                        "chunk list position",
                                        r.ordinal.saturating_add(k),
                                        "listed",
                                    )
                                })?;
                            needs.push(Need {
                                idx: r.idx.wrapping_add(k),
                                hash: *hash,
                                length: *length,
                            });
                        }
                    }
                }
                Msg::Base { chunks, sig } => shrink.base(chunks, sig)?,
                Msg::NeedDone { round, count, udp } => break (round, count, udp),
                Msg::Error(e) => return Err(Error::Peer(e)),
                other => return Err(ProtocolError::unexpected("Need", other.name()).into()),
            }
        };
        if needs.len() != count as usize {
            return Err(ProtocolError::mismatch("chunks of a round", count, needs.len()).into());
        }
        if count == 0 {
            return Ok(datagram_bytes);
        }
        // A push's progress: chunk bytes shipped of chunk bytes asked for.
        let shipped = side.progress.as_deref().filter(|p| p.count_shipped);
        let round_bytes: u64 = needs.iter().map(|n| u64::from(n.length)).sum();
        let done_before = shipped.map_or(0, |p| {
            p.phase.store(super::PHASE_TRANSFER, Ordering::Relaxed);
            p.bytes_total.fetch_add(round_bytes, Ordering::Relaxed);
            p.bytes_done.load(Ordering::Relaxed)
        });
        if locations.is_empty() {
            locations = crate::manifest::chunk_locations(page.iter().map(|(_, e)| e));
        }
        if let Some(offer) = udp_offer {
            // Compressed chunks: their lengths make the stream's layout,
            // so the round is compressed before its phase starts.
            let (needs, packed) = if super::shrink::sized(&opts.data) {
                let Packed { sizes, packed } =
                    pack_round(t, &needs, &locations, reader, &mut shrink)?;
                let wire = super::shrink::wire_needs(&needs, &sizes)?;
                for part in batches(sizes, |_| 5) {
                    t.send(&Msg::Sizes(part))?;
                }
                (wire, packed)
            } else {
                (needs, Vec::new())
            };
            if needs.is_empty() {
                // Every chunk went as a delta: no phase (the receiver agrees).
                continue;
            }
            let inner = StreamSource::new(&needs, &locations, reader);
            let mut source = PackedSource::new(inner, &needs, packed);
            match udp::send(
                t,
                &offer,
                &needs,
                &opts.data,
                side,
                &mut source,
                round_bytes,
            ) {
                Ok(Some(stats)) => {
                    if let Some(p) = shipped {
                        p.bytes_done
                            .store(done_before + round_bytes, Ordering::Relaxed);
                    }
                    datagram_bytes += stats.bytes;
                    link.get_or_insert_with(LinkFigures::default)
                        .add_phase(&stats);
                }
                Ok(None) => {}
                // The receiver decides: it repeats the round on the control
                // connection, or gives up and says why.
                Err(e) => tracing::warn!("UDP data phase failed: {e}"),
            }
            continue;
        }
        for need in needs {
            match locations
                .get(&need.hash)
                .filter(|l| l.length == need.length)
            {
                Some(loc) => match reader.read(loc) {
                    Some(bytes) => {
                        t.send(&shrink.encode(need.idx, bytes)?)?;
                        if let Some(p) = shipped {
                            p.bytes_done
                                .fetch_add(u64::from(need.length), Ordering::Relaxed);
                        }
                    }
                    None => t.send(&Msg::Unavailable { idx: need.idx })?,
                },
                None => t.send(&Msg::Unavailable { idx: need.idx })?,
            }
        }
        t.send(&Msg::RoundDone { round })?;
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
    opts: &super::SessionOptions,
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

/// Answers the receiver's requests for one window's chunk lists; returns
/// every chunk listed, in the order sent (the receiver names needed chunks
/// by their position there), and the datagram bytes sent.
///
/// Lists are read from the index only for the files asked for, so a sync
/// where little changed does not load or ship every list.
fn send_chunk_lists(
    t: &mut dyn Transport,
    page: &mut [(i64, Entry)],
    index: &Index,
    path: &BulkPath,
) -> Result<(Vec<(Hash, u32)>, u64)> {
    let mut wanted: Vec<u32> = Vec::new();
    loop {
        match t.recv()? {
            Msg::WantChunks(spans) => {
                for s in spans {
                    if wanted.len() + s.count as usize > page.len() {
                        return Err(ProtocolError::invalid(
                            "WantChunks",
                            "more chunk lists than the window has entries",
                        )
                        .into());
                    }
                    wanted.extend((0..s.count).map(|k| s.start.saturating_add(k)));
                }
            }
            Msg::WantDone => break,
            Msg::Error(e) => return Err(Error::Peer(e)),
            other => return Err(ProtocolError::unexpected("WantChunks", other.name()).into()),
        }
    }
    let reads = index.reads();
    let mut listed = Vec::new();
    let mut msgs = Vec::new();
    for at in wanted {
        let (id, e) = page
            .get_mut(at as usize)
            .ok_or_else(|| ProtocolError::unknown("manifest entry", at, "listed"))?;
        if e.chunks.is_empty() && e.meta.size > 0 {
            e.chunks = reads.chunks_of(*id)?;
        }
        listed.extend(e.chunks.iter().map(|c| (c.hash, c.length)));
        for part in batches(e.chunks.clone(), |_| size::chunk()) {
            msgs.push(Msg::FileChunks {
                index: at,
                chunks: part,
            });
        }
    }
    msgs.push(Msg::ChunksDone);
    let bytes = bulk::send_run(t, &msgs, path)?;
    Ok((listed, bytes))
}

/// Reads chunks from source files, keeping the last file open (chunks are
/// requested in file order).
struct ChunkReader<'a> {
    tree: &'a mut Tree,
    open: Option<(RelPath, File)>,
    buf: Vec<u8>,
    /// Files gone when their chunks were to be read (printable paths).
    vanished: BTreeSet<String>,
}

impl ChunkReader<'_> {
    /// The chunk's bytes, or `None` if the file is gone (then noted in
    /// `vanished`) or shorter now. The receiver checks the hash: a file
    /// changed since the scan is caught there.
    fn read(&mut self, loc: &ChunkLocation) -> Option<&[u8]> {
        if !matches!(&self.open, Some((p, _)) if *p == loc.path) {
            let file = match self.tree.open_read(&loc.path) {
                Ok(f) => f,
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        self.vanished.insert(loc.path.display());
                    }
                    return None;
                }
            };
            self.open = Some((loc.path.clone(), file));
        }
        let (_, f) = self.open.as_ref()?;
        self.buf.resize(loc.length as usize, 0);
        f.read_exact_at(&mut self.buf, loc.offset).ok()?;
        Some(&self.buf)
    }
}

/// Prepares a UDP round's chunks ahead of its phase (the stream's layout
/// needs their lengths): sends those that have a base as deltas on the
/// control connection, and compresses the others when asked to. Returns
/// each chunk's size in the stream (0: sent as a delta) and the bytes of
/// those that shrank, in stream order (held in memory, up to
/// [`super::shrink::PACK_MEMORY`]; the rest go as they are, read again
/// during the phase).
fn pack_round(
    t: &mut dyn Transport,
    needs: &[super::msg::Need],
    locations: &HashMap<Hash, ChunkLocation>,
    reader: &mut ChunkReader<'_>,
    shrink: &mut super::shrink::Shrink,
) -> Result<Packed> {
    let mut held = 0u64;
    let mut sizes = Vec::with_capacity(needs.len());
    let mut packed = Vec::new();
    // Whether each file's data compresses, judged by the first of its
    // chunks seen: a video or an archive is not read twice.
    let mut verdicts: HashMap<RelPath, bool> = HashMap::new();
    for n in needs {
        let loc = locations.get(&n.hash).filter(|l| l.length == n.length);
        let judged = loc.and_then(|l| verdicts.get(&l.path).copied());
        let may_pack =
            shrink.compresses() && held < super::shrink::PACK_MEMORY && judged != Some(false);
        let read = match loc {
            Some(l) if may_pack || shrink.has_base(n.idx) => reader.read(l).map(|b| (l, b)),
            _ => None,
        };
        let Some((l, bytes)) = read else {
            // As it is (or gone: the phase's read reports it).
            sizes.push(n.length);
            packed.push(None);
            continue;
        };
        let pack = may_pack
            && judged.unwrap_or_else(|| {
                let v = crate::delta::compress::looks_compressible(bytes);
                verdicts.insert(l.path.clone(), v);
                v
            });
        if let Some(m) = shrink.delta(n.idx, bytes)? {
            t.send(&m)?;
            // Not in the stream, so no entry in `packed`.
            sizes.push(0);
            continue;
        }
        let shrunk = if pack { shrink.pack(bytes) } else { None };
        held += shrunk.as_ref().map_or(0, |b| b.len() as u64);
        sizes.push(shrunk.as_ref().map_or(n.length, |b| b.len() as u32));
        packed.push(shrunk);
    }
    Ok(Packed { sizes, packed })
}

/// A UDP round prepared by [`pack_round`].
struct Packed {
    /// Each chunk's size in the stream (0: sent as a delta).
    sizes: Vec<u32>,
    /// The compressed bytes of each chunk that shrank.
    packed: Vec<Option<Vec<u8>>>,
}

/// A UDP round's stream with compressed chunks served from memory and the
/// others from the source files.
struct PackedSource<S> {
    inner: S,
    starts: Vec<u64>,
    packed: Vec<Option<Vec<u8>>>,
    /// The chunk the last block was in: blocks come mostly in order.
    hint: usize,
}

impl<S> PackedSource<S> {
    /// `needs` with their stream lengths; `packed` empty when nothing was
    /// compressed.
    fn new(inner: S, needs: &[super::msg::Need], packed: Vec<Option<Vec<u8>>>) -> Self {
        let mut at = 0;
        let starts = needs
            .iter()
            .map(|n| {
                let s = at;
                at += u64::from(n.length);
                s
            })
            .collect();
        // Nothing compressed (random data, say): every read goes straight
        // to the files, without a lookup per block.
        let packed = if packed.iter().all(Option::is_none) {
            Vec::new()
        } else {
            packed
        };
        PackedSource {
            inner,
            starts,
            packed,
            hint: 0,
        }
    }

    /// The position of the chunk holding stream byte `at`: the last one
    /// looked up, else found by bisection.
    fn chunk_at(&mut self, at: u64) -> usize {
        let end = self.starts.get(self.hint + 1).copied().unwrap_or(u64::MAX);
        if !(self.starts.get(self.hint).is_some_and(|&s| s <= at) && at < end) {
            self.hint = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        }
        self.hint
    }

    /// The compressed chunk holding stream byte `at`, by its position.
    fn packed_at(&mut self, at: u64) -> Option<usize> {
        if self.packed.is_empty() {
            return None;
        }
        let k = self.chunk_at(at);
        self.packed.get(k)?.as_ref().map(|_| k)
    }

    /// Where the chunk holding stream byte `at` ends.
    fn end_of(&mut self, at: u64) -> Option<u64> {
        let k = self.chunk_at(at);
        self.starts.get(k + 1).copied()
    }
}

impl<S: crate::proto::sender::BlockSource> crate::proto::sender::BlockSource for PackedSource<S> {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = stream_offset + done as u64;
            let n = if let Some(k) = self.packed_at(at) {
                let bytes = self.packed[k].as_deref().unwrap_or_default();
                let from = (at - self.starts[k]) as usize;
                let n = (bytes.len() - from).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&bytes[from..from + n]);
                n
            } else {
                let end = self.end_of(at).unwrap_or(u64::MAX);
                let n = ((end - at) as usize).min(buf.len() - done);
                self.inner.read(at, &mut buf[done..done + n])?;
                n
            };
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }

    fn lend(&mut self, stream_offset: u64, len: usize) -> Option<&[u8]> {
        match self.packed_at(stream_offset) {
            Some(k) => {
                let from = (stream_offset - self.starts[k]) as usize;
                self.packed[k].as_deref()?.get(from..from.checked_add(len)?)
            }
            None => self.inner.lend(stream_offset, len),
        }
    }
}

/// The stream of requested chunks, read from the source files, as the UDP
/// sender wants it: any byte range by stream offset.
struct StreamSource<'a, 'b> {
    needs: &'a [super::msg::Need],
    /// Stream offset where each need starts.
    starts: Vec<u64>,
    locations: &'a HashMap<Hash, ChunkLocation>,
    reader: &'a mut ChunkReader<'b>,
    /// The chunk whose bytes are in `reader.buf`.
    cached: Option<usize>,
}

impl<'a, 'b> StreamSource<'a, 'b> {
    fn new(
        needs: &'a [super::msg::Need],
        locations: &'a HashMap<Hash, ChunkLocation>,
        reader: &'a mut ChunkReader<'b>,
    ) -> Self {
        let mut at = 0;
        let starts = needs
            .iter()
            .map(|n| {
                let s = at;
                at += n.length as u64;
                s
            })
            .collect();
        StreamSource {
            needs,
            starts,
            locations,
            reader,
            cached: None,
        }
    }
}

impl StreamSource<'_, '_> {
    /// Brings the chunk holding stream byte `at` into the reader's buffer;
    /// returns its index in `needs`.
    fn load(&mut self, at: u64) -> std::io::Result<usize> {
        // Blocks come in stream order, mostly from the chunk already read.
        if let Some(k) = self.cached {
            if (self.starts[k]..self.starts[k] + u64::from(self.needs[k].length)).contains(&at) {
                return Ok(k);
            }
        }
        let k = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        let need = self.needs.get(k).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        if self.cached != Some(k) {
            self.cached = None;
            let loc = self
                .locations
                .get(&need.hash)
                .filter(|l| l.length == need.length)
                .ok_or_else(|| std::io::Error::other("a requested chunk is not in the source"))?;
            self.reader
                .read(loc)
                .ok_or_else(|| std::io::Error::other("a source file changed or vanished"))?;
            self.cached = Some(k);
        }
        Ok(k)
    }
}

impl crate::proto::sender::BlockSource for StreamSource<'_, '_> {
    fn read(&mut self, stream_offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = stream_offset + done as u64;
            let k = self.load(at)?;
            let within = (at - self.starts[k]) as usize;
            let chunk = &self.reader.buf[..self.needs[k].length as usize];
            let n = (chunk.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk[within..within + n]);
            done += n;
        }
        Ok(())
    }

    /// A block inside one chunk is lent from the reader's buffer; one
    /// spanning two chunks (or a read error, which `read` then reports) is
    /// left to `read`.
    fn lend(&mut self, stream_offset: u64, len: usize) -> Option<&[u8]> {
        let k = self.load(stream_offset).ok()?;
        let within = (stream_offset - self.starts[k]) as usize;
        let chunk = &self.reader.buf[..self.needs[k].length as usize];
        chunk.get(within..within.checked_add(len)?)
    }
}
