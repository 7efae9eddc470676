//! What a link did, per direction: packets and bytes in and out, and where
//! the others went. Enough for a test to tell the link's losses from the
//! endpoints': `packets_in = packets_out + lost + queue_dropped - duplicated
//! (+ in flight at stop)`. Serialised to JSON by `--stats`.

use std::fmt;

/// One direction's counters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DirectionCounters {
    /// Packets read from the sending end's device.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets written to the receiving end's device.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Dropped by the loss models (before the queue).
    pub lost_packets: u64,
    pub lost_bytes: u64,
    /// Dropped because the queue was full.
    pub queue_dropped_packets: u64,
    pub queue_dropped_bytes: u64,
    /// Extra copies sent by duplication.
    pub duplicated: u64,
    /// The largest backlog seen, in bytes and in milliseconds at the rate.
    pub max_queue_bytes: u64,
    pub max_queue_ms: f64,
    /// Packets still in the queue or in flight when the link stopped.
    pub in_flight_at_stop: u64,
    /// Writes to the receiving device that failed (each packet lost).
    pub write_errors: u64,
    /// The sending device's own drops (its ring overflowed before wanem
    /// read it): the emulator's losses, not the model's. `None` if unread.
    pub dev_tx_dropped: Option<u64>,
}

impl DirectionCounters {
    /// Packets the model lost or dropped, as a share of those offered.
    pub fn drop_share(&self) -> f64 {
        let dropped = self.lost_packets + self.queue_dropped_packets;
        dropped as f64 / self.packets_in.max(1) as f64
    }
}

/// Both directions of a link, and the seed that drove it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub seed: u64,
    /// Seconds from start to stop.
    pub elapsed_secs: f64,
    pub a_to_b: DirectionCounters,
    pub b_to_a: DirectionCounters,
}

impl Counters {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("counters serialise")
    }
}

fn mbit(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs.max(1e-9) / 1e6
}

impl fmt::Display for Counters {
    /// Two lines, one per direction, for people reading stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed_secs;
        for (name, c) in [("A->B", &self.a_to_b), ("B->A", &self.b_to_a)] {
            writeln!(
                f,
                "{name}: in {} pkts {} B, out {} pkts {} B ({:.1} Mbit/s over {secs:.1} s), \
                 lost {}, queue-dropped {}, duplicated {}, max queue {} B / {:.1} ms, \
                 write errors {}, device drops {}",
                c.packets_in,
                c.bytes_in,
                c.packets_out,
                c.bytes_out,
                mbit(c.bytes_out, secs),
                c.lost_packets,
                c.queue_dropped_packets,
                c.duplicated,
                c.max_queue_bytes,
                c.max_queue_ms,
                c.write_errors,
                c.dev_tx_dropped.map_or("?".to_string(), |d| d.to_string()),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips() {
        let mut c = Counters {
            seed: 42,
            elapsed_secs: 1.5,
            ..Counters::default()
        };
        c.a_to_b.packets_in = 100;
        c.a_to_b.lost_packets = 3;
        c.b_to_a.dev_tx_dropped = Some(2);
        let back: Counters = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(back, c);
        assert!((c.a_to_b.drop_share() - 0.03).abs() < 1e-12);
    }

    #[test]
    fn summary_names_both_directions() {
        let text = Counters::default().to_string();
        assert!(
            text.contains("A->B: in 0") && text.contains("B->A: in 0"),
            "{text}"
        );
    }
}
