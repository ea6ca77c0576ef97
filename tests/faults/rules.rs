//! Fault tests: rules.
