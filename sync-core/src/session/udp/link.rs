//! The control link of a UDP phase over the session's split transport: a
//! reader thread forwards the peer's messages up to its `DataDone`, a
//! writer thread sends ours through the [`Mailbox`], and [`with_link`]
//! exchanges the `DataDone` messages that put the connection back in
//! request/response order.
//!
//! It never touches the socket: the drivers see it as a [`ControlLink`].

use std::io;

use crossbeam_channel as chan;

use super::mailbox::Mailbox;
use crate::error::{ProtocolError, Result};
use crate::net::ControlLink;
use crate::proto::control::ControlMsg;
use crate::session::msg::Msg;
use crate::session::transport::{MsgRead, Transport};

/// What the reader thread passes on.
enum Event {
    Control(ControlMsg),
    PeerDone(bool),
    Failed(String),
}

/// The drivers' control link over a split session transport.
struct SplitLink<'a> {
    mailbox: &'a Mailbox,
    events: chan::Receiver<Event>,
    peer_done: bool,
    /// Where the sending driver's figures go, for a progress display.
    gauge: Option<Gauge<'a>>,
}

/// A sending phase's progress display: the link's figures, and for a push
/// the round's chunk bytes in proportion to the blocks confirmed.
#[derive(Clone, Copy)]
pub(super) struct Gauge<'a> {
    pub(super) progress: &'a crate::session::Progress,
    pub(super) shipped: u64,
    pub(super) done_before: u64,
    pub(super) blocks: u64,
}

impl ControlLink for SplitLink<'_> {
    fn send(&mut self, msg: &ControlMsg) -> io::Result<()> {
        let bytes = msg
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.mailbox
            .put(Msg::Proto(serde_bytes::ByteBuf::from(bytes)))
    }

    fn peer_done(&self) -> bool {
        self.peer_done
    }

    fn observe(&mut self, stats: &crate::proto::sender::SenderStats) {
        let Some(g) = self.gauge else {
            return;
        };
        g.progress.link.set(stats);
        if g.shipped > 0 && g.blocks > 0 {
            let confirmed = stats.blocks_confirmed.min(g.blocks);
            let part = g.shipped as u128 * u128::from(confirmed) / u128::from(g.blocks);
            g.progress.bytes_done.store(
                g.done_before + part as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    fn try_recv(&mut self) -> io::Result<Option<ControlMsg>> {
        if self.peer_done {
            return Ok(None);
        }
        match self.events.try_recv() {
            Ok(Event::Control(m)) => Ok(Some(m)),
            Ok(Event::PeerDone(true)) => {
                self.peer_done = true;
                Ok(None)
            }
            Ok(Event::PeerDone(false)) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer stopped the UDP transfer",
            )),
            Ok(Event::Failed(e)) => Err(io::Error::other(e)),
            Err(chan::TryRecvError::Empty) => Ok(None),
            Err(chan::TryRecvError::Disconnected) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

/// Forwards the peer's messages until its `DataDone`, which it always reads:
/// the connection must be back in request/response order afterwards. Once
/// our side's phase is over (the link dropped) or a message was bad, what
/// still arrives before `DataDone` (late feedback) is read and dropped.
fn read_until_done(reader: &mut dyn MsgRead, events: chan::Sender<Event>) {
    let mut forwarding = true;
    loop {
        let ev = match reader.recv() {
            Ok(Msg::Proto(bytes)) if forwarding => match ControlMsg::decode(&bytes) {
                Ok(m) => Event::Control(m),
                Err(e) => Event::Failed(format!("bad control message: {e}")),
            },
            Ok(Msg::Proto(_)) => continue,
            Ok(Msg::DataDone { ok }) => {
                let _ = events.send(Event::PeerDone(ok));
                return;
            }
            // The connection itself is unusable: stop reading.
            Ok(Msg::Error(e)) => {
                let _ = events.send(Event::Failed(format!("peer: {e}")));
                return;
            }
            Ok(other) => {
                let what = format!("unexpected {} during the UDP phase", other.name());
                let _ = events.send(Event::Failed(what));
                return;
            }
            Err(e) => {
                let _ = events.send(Event::Failed(e.to_string()));
                return;
            }
        };
        let bad = matches!(ev, Event::Failed(_));
        if events.send(ev).is_err() || bad {
            forwarding = false;
        }
    }
}

/// Runs `phase` with a control link over `t`, then exchanges `DataDone`.
pub(super) fn with_link<T>(
    t: &mut dyn Transport,
    gauge: Option<Gauge<'_>>,
    phase: impl FnOnce(&mut dyn ControlLink) -> io::Result<T>,
) -> Result<io::Result<T>> {
    let Some((mut reader, mut writer)) = t.split() else {
        return Err(ProtocolError::invalid(
            "UDP offer",
            "this connection cannot carry a UDP data phase",
        )
        .into());
    };
    let (tx, events) = chan::unbounded();
    let mailbox = Mailbox::default();
    std::thread::scope(|s| {
        let forward = s.spawn(move || read_until_done(&mut *reader, tx));
        let mailbox = &mailbox;
        let write = s.spawn(move || mailbox.write_all(&mut *writer));
        let mut link = SplitLink {
            mailbox,
            events,
            peer_done: false,
            gauge,
        };
        let out = phase(&mut link);
        mailbox.finish(Msg::DataDone { ok: out.is_ok() });
        // Drop our end so a failed reader cannot block; wait for the peer's DataDone.
        drop(link);
        let sent = write.join().unwrap_or_else(|_| {
            Err(ProtocolError::invalid("UDP data phase", "the control writer panicked").into())
        });
        let _ = forward.join();
        sent.map(|()| out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The peer's feedback that arrives after our phase ended is read and
    /// dropped up to its `DataDone`, so the next message is what follows it
    /// (this once surfaced as "expected SenderDone, got DataDone").
    #[test]
    fn late_peer_messages_are_drained_up_to_its_data_done() {
        use crate::session::transport::MemoryTransport;
        let (mut ours, mut peer) = MemoryTransport::pair(64);
        let keepalive = || {
            Msg::Proto(serde_bytes::ByteBuf::from(
                ControlMsg::Keepalive.encode().unwrap(),
            ))
        };
        let peer_side = std::thread::spawn(move || {
            peer.send(&keepalive()).unwrap();
            // Our DataDone: our phase is over before these arrive.
            let ours_done = peer.recv().unwrap();
            // (Give our side time to drop its link, the old failure's trigger.)
            std::thread::sleep(Duration::from_millis(20));
            for _ in 0..10 {
                peer.send(&keepalive()).unwrap();
            }
            peer.send(&Msg::DataDone { ok: true }).unwrap();
            peer.send(&Msg::SenderDone {
                wire_bytes_sent: 7,
                vanished: 0,
                link: None,
            })
            .unwrap();
            ours_done
        });
        let out = with_link(&mut ours, None, |link| {
            // Wait for the first message, then end the phase at once.
            while link.try_recv()?.is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(5)
        })
        .unwrap()
        .unwrap();
        assert_eq!(out, 5);
        assert!(matches!(
            ours.recv().unwrap(),
            Msg::SenderDone {
                wire_bytes_sent: 7,
                ..
            }
        ));
        assert!(matches!(
            peer_side.join().unwrap(),
            Msg::DataDone { ok: true }
        ));
    }
}
