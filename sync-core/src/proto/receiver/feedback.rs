//! The feedback the sender steers by: when it is due, what it says, and
//! sealing it as a datagram for the data path.
//!
//! The NAK list comes from a cursor that walks the missing blocks
//! round-robin below the reordering limit, and stops where the message
//! would no longer fit one datagram. The delay samples and echo gathered
//! since the last message are drained into it. It never reads datagrams.

use std::time::Instant;

use super::Receiver;
use crate::proto::control::{ControlMsg, Echo, Feedback, OwdSample, MAX_NAK_RANGES};
use crate::proto::control_datagram;

impl Receiver {
    /// Feedback for the sender, when one is due.
    pub fn poll_feedback(&mut self, now: Instant) -> Option<ControlMsg> {
        let due = self.next_feedback?;
        if now < due || self.dead {
            return None;
        }
        if self.complete && !self.dirty {
            // Done and nothing new arrived: the sender has what it needs.
            self.next_feedback = None;
            return None;
        }
        self.next_feedback = Some(now + self.config.feedback_interval);
        self.dirty = false;
        Some(ControlMsg::Feedback(self.build_feedback(now)))
    }

    /// Seals `msg` (from [`poll_feedback`](Self::poll_feedback)) into `out`
    /// as a datagram for the sender; its length, or `None` if it does not
    /// fit one (it then goes by the control connection only).
    pub fn seal_control(
        &mut self,
        now: Instant,
        msg: &ControlMsg,
        out: &mut [u8],
    ) -> Option<usize> {
        control_datagram::seal_next(
            &self.out_key,
            self.session_id,
            &mut self.out_pn,
            now.saturating_duration_since(self.epoch).as_micros() as u32,
            msg,
            self.layout.block_size(),
            out,
        )
    }
    fn build_feedback(&mut self, now: Instant) -> Feedback {
        let n = self.layout.block_count();
        // NAK only below `limit`: gaps near the top may be reordering.
        let limit = if self.sender_all_sent {
            n
        } else {
            self.highest_block
                .map_or(0, |h| (h + 1).saturating_sub(self.config.reorder_threshold))
        };
        let mut start = self.scan_cursor.max(self.cum_ack);
        if start >= limit {
            start = self.cum_ack;
        }
        let start = start.min(limit);
        let mut naks = Vec::new();
        let mut pos = start;
        let mut scan_end = limit;
        // The message must fit one datagram: the NAK list stops where its
        // bytes would overflow, and the scan with it.
        let mut budget = control_datagram::nak_budget(self.layout.block_size());
        while pos < limit {
            let Some(gap) = self.held.next_clear_in(pos..limit) else {
                break;
            };
            let end = self.held.next_set_in(gap..limit).unwrap_or(limit);
            let cost = control_datagram::nak_bytes(pos, gap, end);
            if cost > budget {
                scan_end = gap;
                break;
            }
            budget -= cost;
            naks.push(gap..end);
            pos = end;
            if naks.len() == MAX_NAK_RANGES {
                scan_end = end;
                break;
            }
        }
        self.scan_cursor = if scan_end < limit {
            scan_end
        } else {
            self.cum_ack
        };

        let owd = (self.owd_count > 0).then(|| OwdSample {
            min_us: self.owd_min,
            mean_us: self.owd_sum / self.owd_count,
        });
        self.owd_min = i64::MAX;
        self.owd_sum = 0;
        self.owd_count = 0;
        let echo = self.echo.take().map(|(send_time_us, at)| Echo {
            send_time_us,
            hold_us: now
                .saturating_duration_since(at)
                .as_micros()
                .min(u128::from(u32::MAX)) as u32,
        });
        self.feedback_seq += 1;
        self.stats.feedback_sent += 1;
        Feedback {
            seq: self.feedback_seq,
            cum_ack: self.cum_ack,
            scan: start..scan_end,
            naks,
            blocks_held: self.held.count_ones(),
            packets_received: self.packets_received,
            highest_pn: self.highest_pn,
            recv_rate: self.recv_rate,
            owd,
            echo,
            sink_fill: self.sink_fill,
            sink_rate: self.sink_rate,
            complete: self.complete,
        }
    }
}
