//! Sigma (specification 2.x) log detections for zonewatch, compiled onto zonewatch's own
//! matcher (see `docs/sigma.md` for why not rsigma, and the measurements).
//!
//! Contract:
//! - [`RuleSet::load_paths`] loads every `.yml`/`.yaml` under the given paths. A rule that
//!   cannot be compiled is skipped and reported as a [`RuleLoadError`] (file:line, rule id,
//!   reason, also logged with `tracing::warn!`); loading never stops at a bad rule.
//! - Detection: field modifiers `contains startswith endswith all re (i m s) cidr base64
//!   base64offset wide/utf16le windash exists lt lte gt gte cased`; case-insensitive unless
//!   `|cased`; wildcards `*` `?` with `\` escapes; `null`; keyword lists (the **message only**,
//!   never derived fields such as the timestamp); conditions with `and or not`, parentheses,
//!   `1 of`/`all of`/`N of` with wildcards and `them`.
//! - `logsource` is mapped onto syslog (APP-NAME/program, facility, message markers, extracted
//!   fields) by [`LogsourceMapping`]; Sigma field names onto record attributes and extracted
//!   `key=value`/JSON fields by [`FieldMapping`]. Both are configurable.
//! - Correlation (`event_count`, `value_count`, `temporal`, `temporal_ordered`, `group-by`,
//!   `timespan`) runs on record time in [`Engine`]; [`Engine::flush`] closes open windows at end
//!   of input. State is bounded by [`CorrelationLimits`]; evictions are counted.
//! - Alerts are [`SigmaMatch`] with the Sigma level mapped onto Suricata's 1 (highest)–4
//!   severity by [`Level::severity`]: critical 1, high 2, medium 3, low/informational 4.
//! - Hostile rules cannot exhaust memory: regexes are size-limited, conditions depth-limited,
//!   files size-limited, value expansion capped.

#![deny(missing_docs)]

mod cond;
mod config;
mod engine;
mod matcher;
mod rules;

pub use config::{
    CorrelationLimits, FieldMapping, FieldRef, LogsourceMapping, SigmaConfig, SourceCond,
};
pub use engine::{field_value, CorrelationInfo, Engine, EngineStats, SigmaMatch};
pub use rules::{
    parse_timespan, CorrelationRule, CorrelationType, DetectionRule, Level, LoadReport,
    RuleLoadError, RuleMeta, RuleSet, Threshold, MAX_RULE_FILE_BYTES, MODIFIERS,
};
