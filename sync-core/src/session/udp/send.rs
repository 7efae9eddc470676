//! The sending half of a UDP data phase: binds a socket towards the
//! receiver's offer, picks the congestion controller from the user's
//! options, and runs the sending driver over the round's stream.
//!
//! It never chooses or reads the chunks itself: the round's [`BlockSource`]
//! serves the stream's bytes.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Instant;

use super::link::{with_link, Gauge};
use super::{cipher, offer_layout, SOCKET_BUFFER};
use crate::error::{Error, ProtocolError, Result};
use crate::net;
use crate::proto::congestion::{CongestionConfig, FairConfig, FixedConfig};
use crate::proto::crypto::SessionSecret;
use crate::proto::sender::{Sender, SenderConfig, SenderStats};
use crate::proto::source::BlockSource;
use crate::session::msg::{Need, UdpOffer};
use crate::session::transport::Transport;
use crate::session::{DataOptions, Policy, Side};

/// Runs the sending side of a UDP round; returns the sender's stats at its
/// end (`bytes`: the datagram bytes sent), or `Ok(None)` when the receiver
/// gave up on UDP (the round is repeated on the control connection).
/// `shipped`: the chunk bytes the round ships, counted into a push's
/// progress as its blocks are confirmed (0: a bulk run, not counted).
#[allow(clippy::too_many_arguments)]
pub fn send(
    t: &mut dyn Transport,
    offer: &UdpOffer,
    needs: &[Need],
    data: &DataOptions,
    side: &Side,
    source: &mut dyn BlockSource,
    shipped: u64,
) -> Result<Option<SenderStats>> {
    let (socket, sender, to, blocks) = match start_sender(offer, needs, data, side) {
        Ok(x) => x,
        Err(e) => {
            // The receiver has begun its phase: end ours at once, so both
            // sides meet again after the DataDone messages.
            let _ = with_link(t, None, |_| Err::<(), _>(io::Error::other(e.to_string())))?;
            return Err(e);
        }
    };
    let gauge = side.progress.as_deref().map(|p| Gauge {
        progress: p,
        shipped: if p.count_shipped { shipped } else { 0 },
        done_before: p.bytes_done.load(std::sync::atomic::Ordering::Relaxed),
        blocks,
    });
    let result = with_link(t, gauge, |link| {
        net::run_sender(&socket, to, sender, source, link)
    })?;
    match result {
        Ok(stats) => {
            tracing::info!(?stats, "UDP data phase complete");
            Ok(Some(stats))
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => Ok(None),
        Err(e) => Err(Error::Peer(format!("UDP transfer failed: {e}"))),
    }
}

/// The socket and state machine of a sending phase, where to send, and
/// how many blocks the phase's stream has.
fn start_sender(
    offer: &UdpOffer,
    needs: &[Need],
    data: &DataOptions,
    side: &Side,
) -> Result<(UdpSocket, Sender, SocketAddr, u64)> {
    let Some(peer) = side.udp.peer else {
        return Err(ProtocolError::invalid(
            "UDP offer",
            "this side does not know the peer's address",
        )
        .into());
    };
    let layout = offer_layout(needs, offer)?;
    let blocks = layout.block_count();
    let bind: IpAddr = if peer.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = net::bind_in_range(bind, 0..=0).map_err(|e| Error::io("<udp socket>", e))?;
    net::set_buffers(&socket, SOCKET_BUFFER).map_err(|e| Error::io("<udp socket>", e))?;
    let config = SenderConfig {
        cipher: cipher(offer.encrypt),
        congestion: congestion(data),
        ..SenderConfig::default()
    };
    let sender = Sender::new(config, layout, &SessionSecret(offer.secret), Instant::now());
    Ok((socket, sender, SocketAddr::new(peer, offer.port), blocks))
}

/// The congestion controller for the user's options (rates in bytes/s).
pub fn congestion(data: &DataOptions) -> CongestionConfig {
    match (data.policy, data.rate) {
        (Policy::Fixed, Some(rate)) => CongestionConfig::Fixed(FixedConfig { rate: rate / 8 }),
        _ => {
            let mut f = FairConfig::default();
            if let Some(r) = data.rate {
                f.max_rate = r / 8;
                f.initial_rate = f.initial_rate.min(f.max_rate);
            }
            if let Some(r) = data.min_rate {
                f.min_rate = r / 8;
                f.initial_rate = f.initial_rate.max(f.min_rate);
            }
            CongestionConfig::Fair(f)
        }
    }
}
