//! Drivers: real sockets and clocks around the sans-IO protocol.
