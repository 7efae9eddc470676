//! The simulation's event loop in virtual time, in quinn's test style: a
//! [`Sim`] holds the link and every [`Flow`]'s pair of endpoints;
//! [`Sim::step`] lets each endpoint handle what is due at the current
//! instant and then moves the clock to the next thing that can happen;
//! [`Sim::drive`] steps until every flow is done or the run's time is up.
//! No real clock or socket: `Instant`s are an origin plus virtual offsets.

use std::time::{Duration, Instant};

use super::flow::{drain_receiver_events, Flow, Source};
use super::link::Link;
use super::rng::Rng;
use super::{FlowSpec, SimConfig, SimResult, Snapshot, TailEvent};
use crate::proto::control::ControlMsg;
use crate::proto::layout::{LayoutConfig, IPV4_UDP_OVERHEAD, MAX_DATAGRAM};
use crate::proto::sender::Event as TxEvent;

/// A run in progress.
pub struct Sim<'c> {
    config: &'c SimConfig,
    t0: Instant,
    now: Instant,
    end: Instant,
    /// Decides which feedback messages the control channel loses.
    rng: Rng,
    link: Link,
    flows: Vec<Flow>,
    buf: Vec<u8>,
    /// Where arriving blocks are decrypted, as the real driver does it
    /// (`handle_datagram_into`, into its write batch).
    plain: Vec<u8>,
    /// Per bucket: sum and max of the queueing delay datagrams met at the
    /// bottleneck, and their count.
    queue_delay: Vec<(Duration, Duration, u64)>,
}

impl<'c> Sim<'c> {
    /// The flows of `specs` on `config`'s link, at virtual time zero.
    pub fn new(config: &'c SimConfig, specs: Vec<FlowSpec>) -> Sim<'c> {
        let t0 = Instant::now();
        let layout_config = LayoutConfig {
            ip_overhead: IPV4_UDP_OVERHEAD,
            ..LayoutConfig::default()
        };
        let flows = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| Flow::new(i, spec, config, layout_config, t0))
            .collect();
        Sim {
            config,
            t0,
            now: t0,
            end: t0 + config.max_time,
            rng: Rng::new(config.seed ^ 0x5EED),
            link: Link::new(config.link.clone(), config.seed, t0),
            flows,
            buf: vec![0u8; MAX_DATAGRAM],
            plain: vec![0u8; MAX_DATAGRAM],
            queue_delay: Vec::new(),
        }
    }

    /// Steps until every flow is done (or the run's time is up) and
    /// reports.
    pub fn drive(mut self) -> SimResult {
        while self.step() {}
        self.finish()
    }

    /// Whether a flow still has work: its receiver has not completed or
    /// its sender has not finished.
    fn busy(&self) -> bool {
        self.now < self.end
            && self
                .flows
                .iter()
                .any(|f| f.result.completed.is_none() || !f.result.sender_done)
    }

    /// One instant: senders transmit and take due control messages,
    /// datagrams due on the link arrive, receivers send feedback; then the
    /// clock moves on. False when the run is over (nothing was done).
    pub fn step(&mut self) -> bool {
        if !self.busy() {
            return false;
        }
        let mut progress = false;
        for i in 0..self.flows.len() {
            if self.now < self.flows[i].start(self.t0) {
                continue;
            }
            progress |= self.poll_sender(i);
            progress |= self.carry_control(i);
        }
        progress |= self.arrivals();
        progress |= self.poll_receivers();
        self.advance(progress);
        true
    }

    /// The goodput bucket `t` falls in.
    fn bucket_of(&self, t: Instant) -> usize {
        (t.saturating_duration_since(self.t0).as_nanos() / self.config.bucket.as_nanos().max(1))
            as usize
    }

    /// Flow `i`'s sender: a snapshot per bucket, its timer, every datagram
    /// it will send now onto the link, its control messages onto the
    /// channel.
    fn poll_sender(&mut self, i: usize) -> bool {
        let (now, t0, config) = (self.now, self.t0, self.config);
        let mut progress = false;
        let bucket_now = self.bucket_of(now);
        let f = &mut self.flows[i];
        let start = f.start(t0);
        let Some(s) = f.sender.as_mut() else {
            return false;
        };
        let link = &mut self.link;
        let since = now.saturating_duration_since(start);
        let bucket = |d: Duration| d.as_nanos() / config.bucket.as_nanos().max(1);
        if f.result
            .timeline
            .last()
            .is_none_or(|l| bucket(l.at) < bucket(since))
        {
            f.result.timeline.push(Snapshot {
                at: since,
                sender: s.stats(),
                receiver: f.receiver.stats(),
                queue_delay: link.queue_delay(now),
                in_flight: link.in_flight(),
                link: link.stats.clone(),
            });
        }
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        while let Some(len) = s
            .poll_transmit(now, f.source.block_source(), &mut self.buf)
            .expect("sim source never fails")
        {
            let q = link.queue_delay(now);
            if self.queue_delay.len() <= bucket_now {
                self.queue_delay
                    .resize(bucket_now + 1, (Duration::ZERO, Duration::ZERO, 0));
            }
            let e = &mut self.queue_delay[bucket_now];
            e.0 += q;
            e.1 = e.1.max(q);
            e.2 += 1;
            progress = true;
            let decoded = crate::proto::wire::Header::decode(&self.buf[..len]);
            if let Some(block) = decoded.ok().and_then(|h| h.block()) {
                // New blocks go out in order: the last one's first
                // copy ends the stream's first pass.
                if block + 1 == f.layout.block_count() && f.result.last_new.is_none() {
                    f.result.last_new = Some(now.saturating_duration_since(start));
                }
                if f.result.last_new.is_some() {
                    f.result.tail.push(TailEvent {
                        at: now.saturating_duration_since(start),
                        block,
                        delivered: false,
                    });
                }
                if config.drop_first_copy.contains(&block) && !f.first_copy_dropped.contains(&block)
                {
                    f.first_copy_dropped.push(block);
                    continue;
                }
            }
            link.send(now, i, self.buf[..len].to_vec());
        }
        while let Some(msg) = s.poll_control(now) {
            let bytes = msg.encode().expect("sender messages encode");
            f.to_receiver.push_back((now + config.control.delay, bytes));
        }
        while let Some(ev) = s.poll_event() {
            match ev {
                TxEvent::Complete | TxEvent::TimedOut => f.result.sender_done = true,
            }
        }
        if s.is_done() {
            f.result.sender = s.stats();
            f.result.sender_done = true;
            f.sender = None;
        }
        progress
    }

    /// Flow `i`'s control channel, both ways: messages due now are handled.
    fn carry_control(&mut self, i: usize) -> bool {
        let now = self.now;
        let f = &mut self.flows[i];
        let mut progress = false;
        while f.to_receiver.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, bytes)) = f.to_receiver.pop_front() {
                let msg = ControlMsg::decode(&bytes).expect("control decodes");
                f.receiver.handle_control(now, msg);
                progress = true;
            }
        }
        while f.to_sender.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, bytes)) = f.to_sender.pop_front() {
                let msg = ControlMsg::decode(&bytes).expect("control decodes");
                if let Some(s) = f.sender.as_mut() {
                    s.handle_control(now, msg);
                    while let Some(ev) = s.poll_event() {
                        match ev {
                            TxEvent::Complete | TxEvent::TimedOut => f.result.sender_done = true,
                        }
                    }
                }
                progress = true;
            }
        }
        progress
    }

    /// Datagrams the link delivers now, to their receivers (behind a slow
    /// disk's write queue when the flow has one).
    fn arrivals(&mut self) -> bool {
        let (now, t0, config) = (self.now, self.t0, self.config);
        let bucket = self.bucket_of(now);
        let mut progress = false;
        while let Some((i, data)) = self.link.arrive(now) {
            progress = true;
            let f = &mut self.flows[i];
            f.result.arrived += 1;
            // Slow disk: drain the write queue, drop if it cannot take more.
            if let Some(d) = f.spec.disk {
                f.drain_disk(d.rate, now);
                if f.disk_queue + data.len() as f64 > d.queue_bytes as f64 {
                    f.result.backpressure_drops += 1;
                    continue;
                }
            }
            if let Ok(Some(p)) = f.receiver.handle_datagram_into(now, &data, &mut self.plain) {
                let bytes = &self.plain[..p.len];
                f.deliver(now, t0, bucket, p.block, p.stream_offset, bytes);
            }
            let mut rebuilt = false;
            while let Some(r) = f.receiver.poll_recovered() {
                f.deliver(now, t0, bucket, r.block, r.stream_offset, &r.data);
                rebuilt = true;
            }
            if rebuilt {
                // Decoding takes real time the virtual clock does not
                // have; it starts once earlier decoding is done.
                let decoded = f.receiver.stats().decoded_bytes;
                let secs = (decoded - f.decoded) as f64 * config.coding_secs_per_byte.1;
                f.decoded = decoded;
                let from = f.decoding_until.map_or(now, |t| t.max(now));
                f.decoding_until = Some(from + Duration::from_secs_f64(secs));
            }
            drain_receiver_events(f, now, t0, config.coding_secs_per_byte.0);
        }
        progress
    }

    /// Receivers' timers, their disks' progress, and their feedback onto
    /// the control channel (where the configured share of it is lost).
    fn poll_receivers(&mut self) -> bool {
        let (now, t0, config) = (self.now, self.t0, self.config);
        let mut progress = false;
        for f in self.flows.iter_mut() {
            if now < f.start(t0) {
                continue;
            }
            if f.receiver.poll_timeout().is_some_and(|t| t <= now) {
                f.receiver.handle_timeout(now);
            }
            if let Some(d) = f.spec.disk {
                f.drain_disk(d.rate, now);
                let fill = (f.disk_queue / d.queue_bytes as f64 * 1000.0) as u16;
                f.receiver.handle_sink(now, fill, f.disk_written);
            }
            while let Some(msg) = f.receiver.poll_feedback(now) {
                progress = true;
                if matches!(msg, ControlMsg::Feedback(_))
                    && self.rng.chance(config.control.feedback_loss)
                {
                    continue;
                }
                let bytes = msg.encode().expect("feedback encodes");
                f.to_sender.push_back((now + config.control.delay, bytes));
            }
            drain_receiver_events(f, now, t0, config.coding_secs_per_byte.0);
        }
        progress
    }

    /// Moves the clock to the next thing that can happen: an arrival, a
    /// flow's start, an endpoint's timer, a control message.
    fn advance(&mut self, progress: bool) {
        let mut next = self.end;
        if let Some(t) = self.link.next_arrival() {
            next = next.min(t);
        }
        for f in &self.flows {
            let start = f.start(self.t0);
            if self.now < start {
                next = next.min(start);
                continue;
            }
            let timers = [
                f.sender.as_ref().and_then(|s| s.poll_timeout()),
                f.receiver.poll_timeout(),
                f.to_receiver.front().map(|&(t, _)| t),
                f.to_sender.front().map(|&(t, _)| t),
            ];
            for t in timers.into_iter().flatten() {
                next = next.min(t);
            }
        }
        self.now = if next > self.now || progress {
            next.max(self.now)
        } else {
            self.now + Duration::from_micros(1)
        };
    }

    /// The run's outcome. Datagrams still on the link when every transfer
    /// is done reach their receiver too, so its counters account for every
    /// datagram the link delivered (a corrupted one among them must be
    /// dropped like the rest).
    fn finish(mut self) -> SimResult {
        if self.flows.iter().all(|f| f.result.completed.is_some()) {
            while let Some(t) = self.link.next_arrival() {
                let Some((i, mut data)) = self.link.arrive(t) else {
                    break;
                };
                let f = &mut self.flows[i];
                f.result.arrived += 1;
                let _ = f.receiver.handle_datagram(t, &mut data);
            }
        }
        for f in self.flows.iter_mut() {
            if let Some(s) = &f.sender {
                f.result.sender = s.stats();
            }
            f.result.receiver = f.receiver.stats();
            if let (Some(spool), Source::Memory(src)) = (&f.spool, &f.source) {
                if spool[..] != src.0[..] {
                    f.result.data_ok = false;
                }
            }
            if f.result.completed.is_none() {
                f.result.data_ok = false;
            }
        }
        SimResult {
            seed: self.config.seed,
            flows: self.flows.into_iter().map(|f| f.result).collect(),
            link: self.link.stats.clone(),
            queue_delay: self
                .queue_delay
                .into_iter()
                .map(|(sum, max, n)| {
                    (
                        if n == 0 {
                            Duration::ZERO
                        } else {
                            sum / n as u32
                        },
                        max,
                    )
                })
                .collect(),
            elapsed: self.now.saturating_duration_since(self.t0),
        }
    }
}
