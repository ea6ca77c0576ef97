//! Fault tests: kafka.
