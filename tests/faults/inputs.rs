//! Fault tests: inputs.
