//! Fault tests: syslog.
