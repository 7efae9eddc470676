//! Starting and stopping a link: creates the two TUN devices, hands them to
//! the caller's namespaces (`netns`), and runs one [`Forwarder`] thread per
//! direction until stopped. The devices vanish when the handle is stopped
//! or dropped, since their descriptors close with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::config::LinkConfig;
use crate::counters::{Counters, DirectionCounters};
use crate::error::{Error, Result};
use crate::forward::Forwarder;
use crate::netns::{self, EndSetup};
use crate::path::Path;
use crate::tun::Tun;

/// Entry point of the library: `Link::start(config)`.
pub struct Link;

/// A running link. Stop it with [`LinkHandle::stop`] to get its counters;
/// dropping it also stops it.
pub struct LinkHandle {
    config: LinkConfig,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Latest counters of A->B and B->A, refreshed every 100 ms.
    shared: [Arc<Mutex<DirectionCounters>>; 2],
    /// Held so the devices outlive the threads' use of them.
    tuns: [Arc<Tun>; 2],
    started: Instant,
    finished: Option<Counters>,
}

impl Link {
    /// Creates, moves and configures both devices, then starts forwarding.
    /// When this returns `Ok`, packets sent in one namespace to the other's
    /// address cross the link. The namespaces must already exist.
    pub fn start(config: LinkConfig) -> Result<LinkHandle> {
        config.validate()?;
        netns::check_namespace(&config.ns_a)?;
        netns::check_namespace(&config.ns_b)?;
        let tun_a = Arc::new(Tun::create("wanem%d")?);
        let tun_b = Arc::new(Tun::create("wanem%d")?);
        let c = &config;
        let end_a = EndSetup {
            ns: &c.ns_a,
            dev: &c.dev_a,
            addr: c.addr_a,
            prefix: c.prefix,
            mtu: c.mtu,
            txqueuelen: c.txqueuelen,
        };
        let end_b = EndSetup {
            ns: &c.ns_b,
            dev: &c.dev_b,
            addr: c.addr_b,
            prefix: c.prefix,
            mtu: c.mtu,
            txqueuelen: c.txqueuelen,
        };
        netns::move_and_configure(tun_a.name(), &end_a)?;
        netns::move_and_configure(tun_b.name(), &end_b)?;

        let stop = Arc::new(AtomicBool::new(false));
        let shared = [Arc::default(), Arc::default()];
        let started = Instant::now();
        let directions = [
            ("wanem-ab", &tun_a, &tun_b, &config.a_to_b, 0),
            ("wanem-ba", &tun_b, &tun_a, &config.b_to_a, 1),
        ];
        let mut threads = Vec::new();
        for (name, src, dst, path, stream) in directions {
            let forwarder = Forwarder {
                src: Arc::clone(src),
                dst: Arc::clone(dst),
                path: Path::new(path, config.seed, stream),
                buf_len: config.mtu as usize + 64,
                shared: Arc::clone(&shared[stream as usize]),
                stop: Arc::clone(&stop),
                epoch: started,
            };
            let spawned = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || forwarder.run(name));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    threads
                        .into_iter()
                        .for_each(|t: JoinHandle<()>| drop(t.join()));
                    return Err(Error::io("cannot start a forwarding thread", e));
                }
            }
        }
        Ok(LinkHandle {
            config,
            stop,
            threads,
            shared,
            tuns: [tun_a, tun_b],
            started,
            finished: None,
        })
    }
}

impl LinkHandle {
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// The counters so far (up to 100 ms old while running).
    pub fn counters(&self) -> Counters {
        if let Some(done) = &self.finished {
            return done.clone();
        }
        let read =
            |m: &Mutex<DirectionCounters>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Counters {
            seed: self.config.seed,
            elapsed_secs: self.started.elapsed().as_secs_f64(),
            a_to_b: read(&self.shared[0]),
            b_to_a: read(&self.shared[1]),
        }
    }

    /// False once a direction has stopped on its own (its device failed,
    /// e.g. because its namespace was deleted under it).
    pub fn is_running(&self) -> bool {
        self.finished.is_none() && self.threads.iter().all(|t| !t.is_finished())
    }

    /// Stops forwarding, removes the devices and returns the final counters.
    pub fn stop(mut self) -> Counters {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Counters {
        if let Some(done) = &self.finished {
            return done.clone();
        }
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            // A forwarder that panicked has still published its counters.
            let _ = thread.join();
        }
        let mut counters = self.counters();
        counters.a_to_b.dev_tx_dropped = netns::tx_dropped(&self.config.ns_a, &self.config.dev_a);
        counters.b_to_a.dev_tx_dropped = netns::tx_dropped(&self.config.ns_b, &self.config.dev_b);
        self.finished = Some(counters.clone());
        counters
    }

    /// The names the kernel gave the devices before they were moved.
    pub fn created_names(&self) -> [&str; 2] {
        [self.tuns[0].name(), self.tuns[1].name()]
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
