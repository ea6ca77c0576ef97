//! Rule configuration for zonewatch's signature engine, read as Suricata 7
//! reads it:
//!
//! - [`addr`] and [`port`]: address and port groups from rule headers and
//!   `vars` (`any`, CIDR, ranges, lists, negation, `$VARS`), compiled to
//!   [`AddressSet`] / [`PortSet`] matchers (sorted ranges, binary search);
//!   [`group`]: the bracketed-list syntax and errors both share.
//! - [`vars`]: the [`Vars`] table with Suricata's `suricata.yaml` defaults,
//!   overridable from configuration.
//! - [`classification`] and [`reference`](mod@reference): `classification.config` and
//!   `reference.config`, with Suricata's standard files built in.
//! - [`threshold`]: the `threshold:`/`detection_filter:` rule keywords and
//!   `threshold.config`; [`engine`]: the [`ThresholdEngine`] that decides,
//!   per candidate alert, whether it is written (packet time only, bounded
//!   state, deterministic).
//!
//! Nothing here panics on hostile input: parse errors name the token and
//! column (groups) or file and line (config files); bad config lines are
//! skipped and all of them reported.
#![deny(missing_docs)]

pub mod addr;
pub mod classification;
mod conffile;
pub mod engine;
pub mod group;
pub mod port;
pub mod reference;
mod set;
pub mod threshold;
pub mod vars;

pub use addr::AddressSet;
pub use classification::{Classification, Classifications};
pub use conffile::{ConfigError, LoadError};
pub use engine::{Decision, ThresholdEngine, ThresholdStats, DEFAULT_MAX_ENTRIES};
pub use group::{GroupError, GroupErrorKind};
pub use port::PortSet;
pub use reference::References;
pub use threshold::{
    parse_detection_filter_keyword, parse_threshold_keyword, FilterKind, KeywordError, NewAction,
    RuleThreshold, SuppressTrack, ThresholdConfig, ThresholdEntry, Track,
};
pub use vars::{VarError, VarKind, Vars};
