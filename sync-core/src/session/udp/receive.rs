//! The receiving half of a UDP data phase: binds the socket and makes the
//! offer before `NeedDone`, then runs the receiving driver until every
//! chunk arrived (or, in `auto`, until it gives up on UDP).
//!
//! It never writes files itself: verified chunks go to the apply engine
//! through [`super::assembly`], or to any other [`BlockSink`].

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::assembly::{ChunkSink, ASSEMBLY_MEMORY};
use super::link::with_link;
use super::{cipher, offer_layout, AUTO_FALLBACK, SOCKET_BUFFER};
use crate::apply::tree::Tree;
use crate::apply::Feed;
use crate::error::{Error, ProtocolError, Result};
use crate::net::{self, BlockSink};
use crate::proto::crypto::SessionSecret;
use crate::proto::layout::{Layout, IPV4_UDP_OVERHEAD, IPV6_UDP_OVERHEAD};
use crate::proto::receiver::{Receiver, ReceiverConfig};
use crate::session::msg::{Need, UdpOffer};
use crate::session::transport::Transport;
use crate::session::{DataOptions, Side, TransportChoice};

/// A receiver's socket and offer, made before `NeedDone` is sent.
pub struct Prepared {
    socket: UdpSocket,
    offer: UdpOffer,
}

/// Binds the receiving socket and makes the offer.
pub fn prepare(data: &DataOptions, side: &Side) -> Result<Prepared> {
    let socket = net::bind_in_range(side.udp.bind, side.udp.ports.clone()).map_err(|e| {
        Error::Usage(format!(
            "cannot bind a UDP port in {}-{} on {}: {e}",
            side.udp.ports.start(),
            side.udp.ports.end(),
            side.udp.bind
        ))
    })?;
    net::set_buffers(&socket, SOCKET_BUFFER).map_err(|e| Error::io("<udp socket>", e))?;
    let port = socket
        .local_addr()
        .map_err(|e| Error::io("<udp socket>", e))?
        .port();
    let secret = SessionSecret::generate()
        .map_err(|_| Error::Usage("no randomness for the session secret".into()))?;
    let ip_overhead = if side.udp.bind.is_ipv4() {
        IPV4_UDP_OVERHEAD
    } else {
        IPV6_UDP_OVERHEAD
    } as u16;
    Ok(Prepared {
        socket,
        offer: UdpOffer {
            port,
            secret: secret.0,
            packet_size: data.packet_size,
            ip_overhead,
            encrypt: data.encrypt,
        },
    })
}

impl Prepared {
    pub fn offer(&self) -> &UdpOffer {
        &self.offer
    }
}

/// Runs the receiving side, handing chunks to `feed` as they complete;
/// `Ok(true)` when every chunk arrived, `Ok(false)` when `auto` gave up on
/// UDP.
///
/// `wire` are the requests with their lengths in the stream (shorter than
/// in `needs` for chunks that come compressed; see [`Msg::Sizes`]).
///
/// [`Msg::Sizes`]: crate::session::msg::Msg::Sizes
pub fn receive(
    t: &mut dyn Transport,
    prepared: Prepared,
    (needs, wire): (&[Need], &[Need]),
    data: &DataOptions,
    side: &Side,
    feed: &mut Feed,
) -> Result<bool> {
    let layout = offer_layout(wire, &prepared.offer)?;
    let tree = Tree::open(&side.root).map_err(|e| Error::io(&side.root, e))?;
    let failure = Mutex::new(None);
    // `wire` is `needs` less the chunks that came as deltas, in order.
    let mut own = needs.iter();
    let stream_needs: Vec<Need> = wire
        .iter()
        .filter_map(|w| own.find(|n| n.idx == w.idx).copied())
        .collect();
    if stream_needs.len() != wire.len() {
        return Err(ProtocolError::invalid(
            "Sizes",
            "the stream's chunks are not among those asked for",
        )
        .into());
    }
    let sink = ChunkSink::new(
        feed,
        &stream_needs,
        &layout,
        ASSEMBLY_MEMORY,
        tree,
        &failure,
    );
    let result = receive_into(t, prepared, layout, data, sink).map(|sink| sink.is_some());
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    result
}

/// Runs the receiving side of a phase over `layout` into `sink`; returns
/// the sink when every chunk arrived, `None` when `auto` gave up on UDP.
pub fn receive_into<S: BlockSink + Send>(
    t: &mut dyn Transport,
    prepared: Prepared,
    layout: Arc<Layout>,
    data: &DataOptions,
    sink: S,
) -> Result<Option<S>> {
    let config = ReceiverConfig {
        cipher: cipher(prepared.offer.encrypt),
        idle_timeout: if data.transport == TransportChoice::Auto {
            AUTO_FALLBACK
        } else {
            ReceiverConfig::default().idle_timeout
        },
        ..ReceiverConfig::default()
    };
    let receiver = Receiver::new(
        config,
        Arc::clone(&layout),
        &SessionSecret(prepared.offer.secret),
        Instant::now(),
    );
    let socket = prepared.socket;
    let result = with_link(t, None, |link| {
        net::run_receiver(&socket, receiver, layout, sink, link)
    })?;
    match result {
        Ok((sink, report)) => {
            tracing::info!(?report, "UDP data phase complete");
            Ok(Some(sink))
        }
        Err(e) if data.transport == TransportChoice::Auto => {
            tracing::warn!("UDP data phase failed ({e}); falling back to the control connection");
            Ok(None)
        }
        Err(e) => Err(Error::Peer(format!("UDP transfer failed: {e}"))),
    }
}
