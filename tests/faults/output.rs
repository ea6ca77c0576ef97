//! Fault tests: output.
