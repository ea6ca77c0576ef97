//! Synthetic pcap generator for zonewatch benchmarks and memory tests.
//!
//! Writes classic pcap files (little-endian, microsecond timestamps, Ethernet
//! link type) of hand-built Ethernet/IPv4/IPv6/TCP/UDP frames with correct
//! lengths and checksums. Output is fully deterministic for a given seed.

pub mod bench;
pub mod content;
pub mod floods;
pub mod packet;
pub mod pcap;
pub mod rng;
pub mod verify;

#[cfg(test)]
mod tests;
