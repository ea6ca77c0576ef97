//! The engine: loading rule files, compiling them in parallel, ordering the
//! rules as Suricata evaluates them, and the indexes that pick a packet's
//! or transaction's candidate rules.

use crate::addrindex::AddrIndex;
use crate::compile::{compile, err, tx_fast_pattern, Compiled, FlowbitNames};
use crate::groups::{Groups, Member};
use crate::prefilter::{Prefilter, RulePattern};
use crate::rule::{proto_in_class, FastPattern, Proto, Rule, RuleMeta, CLASSES};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zonewatch_applayer::{AppProto, Buffer};
use zonewatch_ruleconf::{Classifications, ThresholdConfig, Vars};
use zonewatch_rules::{ErrorKind, Origin, RuleError};

/// Stream bytes kept per direction when the configuration says 0.
const DEFAULT_STREAM_WINDOW: usize = 1024;

/// Where the engine's site configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct DetectConfig {
    /// Address-group overrides (`HOME_NET` → `[10.0.0.0/8]`).
    pub address_groups: Vec<(String, String)>,
    /// Port-group overrides.
    pub port_groups: Vec<(String, String)>,
    /// `classification.config` to use instead of the built-in one.
    pub classification_file: Option<PathBuf>,
    /// `threshold.config`, if any.
    pub threshold_file: Option<PathBuf>,
    /// Bytes of already inspected stream kept per direction so that a
    /// pattern split across segments still matches.
    pub stream_window: usize,
}

/// What loading found: counts, reasons, every skipped rule, time taken.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Rule files read.
    pub files: Vec<PathBuf>,
    /// Rules loaded.
    pub loaded: usize,
    /// Rules skipped.
    pub skipped: usize,
    /// Of those, rules that need the app-layer parsers (an app-layer
    /// protocol, buffer, transform or keyword).
    pub skipped_app_layer: usize,
    /// Those by what they wait for: the app-layer protocol zonewatch does
    /// not parse (`smtp`, `smb`, ...) or the app-layer keyword family.
    pub waiting: BTreeMap<String, usize>,
    /// Skip reasons with their counts.
    pub reasons: BTreeMap<String, usize>,
    /// Every skipped rule.
    pub errors: Vec<RuleError>,
    /// Problems in classification/threshold files.
    pub config_warnings: Vec<String>,
    /// Time to read, parse and compile.
    pub load_time: Duration,
    /// Loaded rules without a fast pattern, checked on every packet of
    /// their protocol: tcp, udp, icmp, other.
    pub no_fast_pattern: [usize; 4],
    /// Rules run per packet and stream (the rest run per transaction).
    pub packet_rules: usize,
    /// Of those, IP-only rules (first packet of each flow direction).
    pub ip_only: usize,
    /// Signature groups the packet rules are split into.
    pub groups: usize,
    /// Distinct fast patterns in the largest group.
    pub largest_group_patterns: usize,
}

impl LoadReport {
    fn skip(&mut self, e: RuleError) {
        self.skipped += 1;
        if needs_app_layer(&e) {
            self.skipped_app_layer += 1;
            *self.waiting.entry(waiting_for(&e)).or_default() += 1;
        }
        *self.reasons.entry(e.reason()).or_default() += 1;
        self.errors.push(e);
    }
}

/// What a rule that [`needs_app_layer`] waits for: the protocol of an
/// `alert <protocol>` header zonewatch does not parse, or the family of
/// the app-layer keyword (`http`, `dns`, ..., or the keyword itself).
pub fn waiting_for(e: &RuleError) -> String {
    let ErrorKind::Unsupported { keyword, detail } = &e.kind else {
        return "other".into();
    };
    if keyword == "protocol" {
        let p = detail.split_whitespace().next().unwrap_or("other");
        return p.to_string();
    }
    let family = keyword
        .split(['.', '_'])
        .next()
        .filter(|f| ["http", "dns", "tls", "ssh", "ja3", "ja4", "file"].contains(f));
    family.unwrap_or(keyword).to_string()
}

/// Whether a skipped rule needs the app-layer parsers (for the share of
/// packet-level rules that load).
pub fn needs_app_layer(e: &RuleError) -> bool {
    match &e.kind {
        ErrorKind::Unsupported { keyword, detail } => {
            zonewatch_rules::APP_LAYER_KEYWORDS.contains(&keyword.as_str())
                || detail.contains("app-layer")
                || keyword.starts_with("http")
                || keyword.starts_with("dns")
                || keyword.starts_with("tls")
                || keyword.starts_with("ssh")
                || keyword.starts_with("ja3")
                || keyword.starts_with("ja4")
                || keyword == "file.data"
        }
        _ => false,
    }
}

/// The compiled rule set, shared read-only by all workers.
pub struct Engine {
    /// The rules in evaluation order; a rule's engine index is its place here.
    pub(crate) rules: Vec<Rule>,
    /// Packet rules grouped by protocol class, direction and server port,
    /// each group with its prefilter.
    pub(crate) groups: Groups,
    /// Rules on decode events of packets without IP (`alert pkthdr`).
    pub(crate) no_ip: Vec<u32>,
    /// Rules without a fast pattern that need an app-layer event: candidates
    /// only for packets that raised one.
    pub(crate) app_event_rules: Vec<u32>,
    /// Rules without a fast pattern but with a narrow address side,
    /// found by the packet's addresses.
    pub(crate) by_addr: AddrIndex,
    /// Some rule is IP-only (flows then remember which directions were checked).
    pub(crate) has_iponly: bool,
    /// Transaction rules: prefilter per (buffer, rules inspect the
    /// to_client side), and rules without a fast pattern by app-layer
    /// protocol. Split by side because a transaction's request is
    /// inspected twice (its to_server rules when the request is complete,
    /// its to_client rules when the response is): the second time only
    /// the few to_client rules' patterns are scanned for.
    pub(crate) tx_prefilter: TxPrefilters,
    pub(crate) tx_always: hashbrown::HashMap<AppProto, Vec<u32>>,
    /// Distinct flowbit names (bits per flow).
    pub(crate) flowbit_count: usize,
    /// Flowbit names by id: a reload carries each flow's bits over to the
    /// new engine's ids by name.
    pub(crate) flowbit_names: Vec<String>,
    pub(crate) threshold_cfg: Arc<ThresholdConfig>,
    /// Stream bytes kept per direction (`DetectConfig::stream_window`).
    pub(crate) stream_window: usize,
    /// The load report.
    pub report: LoadReport,
    /// Set by [`Engine::enable_profiling`]: detectors then profile the rules.
    pub(crate) profiler: Option<crate::profile::Collector>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// Signature files under the given paths, by the walk all rule loaders share
/// (`zonewatch_rulefiles`: files as given, directories searched recursively in
/// name order, symbolic link loops ended, each file once), and what the walk
/// skipped (one line each, naming the path).
fn rule_files(paths: &[PathBuf]) -> std::io::Result<(Vec<PathBuf>, Vec<String>)> {
    let w = zonewatch_rulefiles::collect(paths)?;
    let skipped = w.skipped.iter().map(|s| s.to_string()).collect();
    Ok((w.of(zonewatch_rulefiles::Kind::Signatures), skipped))
}

/// The site configuration rules are compiled against.
struct Site {
    vars: Vars,
    classes: Classifications,
    thresholds: ThresholdConfig,
}

impl Site {
    /// Reads the configuration's variables, classification and threshold
    /// files; problems become warnings in `report` and defaults are used.
    fn load(cfg: &DetectConfig, report: &mut LoadReport) -> Site {
        let (vars, var_errors) = Vars::build(
            cfg.address_groups
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str())),
            cfg.port_groups
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str())),
        );
        for e in var_errors {
            report.config_warnings.push(format!("vars: {e}"));
        }
        let classes = match &cfg.classification_file {
            Some(p) => match Classifications::load(p) {
                Ok((c, errs)) => {
                    report
                        .config_warnings
                        .extend(errs.iter().map(|e| e.to_string()));
                    c
                }
                Err(e) => {
                    report.config_warnings.push(e.to_string());
                    Classifications::builtin()
                }
            },
            None => Classifications::builtin(),
        };
        let thresholds = match &cfg.threshold_file {
            Some(p) => match ThresholdConfig::load(p, &vars) {
                Ok((t, errs)) => {
                    report
                        .config_warnings
                        .extend(errs.iter().map(|e| e.to_string()));
                    t
                }
                Err(e) => {
                    report.config_warnings.push(e.to_string());
                    ThresholdConfig::empty()
                }
            },
            None => ThresholdConfig::empty(),
        };
        Site {
            vars,
            classes,
            thresholds,
        }
    }
}

/// What the merge needs of one parsed signature: its identity, and the
/// compiled rule or why it was skipped. (Holding the parsed signatures of
/// all files at once cost ~80 MB with ET Open.)
struct CompiledSig {
    gid: u32,
    sid: u64,
    origin: Origin,
    compiled: Result<Compiled, RuleError>,
}

/// One file's parse errors and signatures.
struct CompiledFile {
    errors: Vec<RuleError>,
    sigs: Vec<CompiledSig>,
}

/// One thread's files, with flowbit ids numbered by that thread.
struct CompiledRun {
    files: Vec<CompiledFile>,
    flowbits: FlowbitNames,
}

/// A loaded rule before ordering: its load order and fast pattern.
struct Loaded {
    rule: Rule,
    fast: Option<FastPattern>,
    load_order: usize,
}

/// Parses and compiles the files. Parsing and compiling (regexes above all)
/// are most of the load time: files are spread over the cores in contiguous
/// runs, and the runs come back in file order, so that merging them gives
/// the engine and report of a sequential load.
fn compile_in_parallel(texts: &[(&str, &str)], site: &Site) -> Vec<CompiledRun> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, texts.len().max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = split_runs(texts, threads)
            .into_iter()
            .map(|run| scope.spawn(move || compile_run(run, site)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("rule compilation does not panic"))
            .collect()
    })
}

/// Contiguous runs of files of about equal text size, at most `threads`.
fn split_runs<'a, 'b>(
    texts: &'a [(&'b str, &'b str)],
    threads: usize,
) -> Vec<&'a [(&'b str, &'b str)]> {
    let total: usize = texts.iter().map(|(_, t)| t.len()).sum();
    let mut runs = Vec::new();
    let (mut from, mut size) = (0, 0);
    for (i, (_, t)) in texts.iter().enumerate() {
        size += t.len();
        if size * threads >= total * (runs.len() + 1) && runs.len() + 1 < threads {
            runs.push(&texts[from..=i]);
            from = i + 1;
        }
    }
    runs.push(&texts[from..]);
    runs
}

/// Parses and compiles one run of files on one thread.
fn compile_run(run: &[(&str, &str)], site: &Site) -> CompiledRun {
    let mut flowbits = FlowbitNames::default();
    let files = run
        .iter()
        .map(|(file, text)| {
            let (sigs, errors) = zonewatch_rules::parse_file(text, file);
            let sigs = sigs
                .into_iter()
                .map(|s| {
                    let compiled = compile(&s, &site.vars, &site.classes, &mut flowbits);
                    CompiledSig {
                        gid: s.gid,
                        sid: s.sid,
                        origin: s.origin,
                        compiled,
                    }
                })
                .collect();
            CompiledFile { errors, sigs }
        })
        .collect();
    CompiledRun { files, flowbits }
}

/// Merges the runs in file order: skips duplicate (gid, sid) pairs, reports
/// errors, and gives each flowbit name one engine-wide id. Returns the rules
/// in load order and the flowbit names.
fn merge(runs: Vec<CompiledRun>, report: &mut LoadReport) -> (Vec<Loaded>, FlowbitNames) {
    let mut flowbits = FlowbitNames::default();
    let mut rules: Vec<Loaded> = Vec::new();
    let mut seen: hashbrown::HashMap<(u32, u64), Origin> = hashbrown::HashMap::new();
    for run in runs {
        // The run's id → the engine's, given on first use.
        let mut global: Vec<Option<u32>> = vec![None; run.flowbits.len()];
        let mut renumber = |b: &mut u32| {
            *b = *global[*b as usize].get_or_insert_with(|| flowbits.intern(run.flowbits.name(*b)));
        };
        for file in run.files {
            for e in file.errors {
                report.skip(e);
            }
            for sig in file.sigs {
                if let Some(first) = seen.get(&(sig.gid, sig.sid)) {
                    let first = first.to_string();
                    report.skip(err(
                        &sig.origin,
                        sig.sid,
                        "sid",
                        format!("duplicate of {first}"),
                        false,
                    ));
                    continue;
                }
                match sig.compiled {
                    Ok(Compiled { mut rule, fast }) => {
                        rule.fb_cmds.iter_mut().for_each(|c| renumber(c.bit_mut()));
                        for c in &mut rule.fb_checks {
                            c.bits_mut().iter_mut().for_each(&mut renumber);
                        }
                        seen.insert((sig.gid, sig.sid), sig.origin);
                        let load_order = rules.len();
                        rules.push(Loaded {
                            rule,
                            fast,
                            load_order,
                        });
                        report.loaded += 1;
                    }
                    Err(e) => report.skip(e),
                }
            }
        }
    }
    (rules, flowbits)
}

/// Sorts rules into Suricata's evaluation order: action (pass, drop,
/// reject, alert), flowbit setters before checkers, priority, then load
/// order.
fn sort_for_evaluation(rules: &mut [Loaded]) {
    rules.sort_by_key(|l| {
        let r = &l.rule;
        let flowbit_rank = match (r.fb_cmds.is_empty(), r.fb_checks.is_empty()) {
            (false, true) => 0,
            (false, false) => 1,
            (true, false) => 2,
            (true, true) => 3,
        };
        (r.action, flowbit_rank, r.meta.severity, l.load_order)
    });
}

/// The candidate indexes over the rules in evaluation order.
#[derive(Default)]
struct Indexes {
    /// Packet rules for grouping, with their fast patterns.
    members: Vec<Member>,
    no_ip: Vec<u32>,
    /// Rules without a fast pattern that need an app-layer event.
    app_events: Vec<u32>,
    /// Rules indexed by address: (rule, its source side is the narrow one).
    by_addr: Vec<(u32, bool)>,
    no_fast_pattern: [usize; CLASSES],
    tx_patterns: hashbrown::HashMap<(Buffer, bool), Vec<RulePattern>>,
    tx_always: hashbrown::HashMap<AppProto, Vec<u32>>,
}

impl Indexes {
    /// Files rule `i` under the index that finds it.
    fn add(&mut self, i: u32, r: &Rule, fast: Option<FastPattern>) {
        if !r.app_progs.is_empty() {
            // A transaction rule: prefiltered on its buffers.
            match tx_fast_pattern(r) {
                Some((buf, fp)) => self
                    .tx_patterns
                    .entry((buf, r.tx_to_client))
                    .or_default()
                    .push((fp.bytes, fp.nocase, i)),
                None => self
                    .tx_always
                    .entry(r.app.expect("transaction rules have an app protocol"))
                    .or_default()
                    .push(i),
            }
            return;
        }
        if fast.is_none() {
            if r.proto == Proto::Any && !r.decode_events.is_empty() {
                self.no_ip.push(i);
            }
            if !r.app_events.is_empty() {
                // Candidates only on packets that raised an app-layer event.
                self.app_events.push(i);
                return;
            }
            if crate::addrindex::narrow(&r.src) {
                self.by_addr.push((i, true));
                return;
            }
            if crate::addrindex::narrow(&r.dst) {
                self.by_addr.push((i, false));
                return;
            }
            for (c, n) in self.no_fast_pattern.iter_mut().enumerate() {
                if proto_in_class(r.proto, c) {
                    *n += 1;
                }
            }
        }
        self.members.push(Member { rule: i, fast });
    }
}

impl Engine {
    /// Reads and compiles every `.rules` file under `paths`. Fails only when
    /// a path cannot be read at all.
    pub fn load(paths: &[PathBuf], cfg: &DetectConfig) -> std::io::Result<Engine> {
        let t0 = Instant::now();
        let (files, skipped) = rule_files(paths)?;
        let mut texts = Vec::with_capacity(files.len());
        for f in &files {
            let bytes = std::fs::read(f)?;
            texts.push((
                f.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        let refs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let mut e = Engine::from_texts(&refs, cfg);
        e.report.config_warnings.extend(skipped);
        e.report.files = files;
        e.report.load_time = t0.elapsed();
        Ok(e)
    }

    /// Compiles rules given as (file label, text) pairs.
    pub fn from_texts(texts: &[(&str, &str)], cfg: &DetectConfig) -> Engine {
        let t0 = Instant::now();
        let mut report = LoadReport::default();
        let site = Site::load(cfg, &mut report);
        let runs = compile_in_parallel(texts, &site);
        let (mut loaded, flowbits) = merge(runs, &mut report);
        sort_for_evaluation(&mut loaded);
        let mut index = Indexes::default();
        let mut rules = Vec::with_capacity(loaded.len());
        for (i, l) in loaded.into_iter().enumerate() {
            index.add(i as u32, &l.rule, l.fast);
            rules.push(l.rule);
        }
        let groups = Groups::build(&rules, &index.members);
        report.packet_rules = rules.iter().filter(|r| r.app_progs.is_empty()).count();
        report.ip_only = rules.iter().filter(|r| r.iponly).count();
        report.groups = groups.len();
        report.largest_group_patterns = groups.largest_prefilter();
        report.no_fast_pattern = index.no_fast_pattern;
        for (p, list) in &index.tx_always {
            tracing::info!("{} rules without a fast pattern: {}", p.name(), list.len());
        }
        let by_addr = AddrIndex::build(
            &index
                .by_addr
                .iter()
                .map(|&(i, src)| {
                    let r = &rules[i as usize];
                    (i, if src { &r.src } else { &r.dst })
                })
                .collect::<Vec<_>>(),
        );
        let mut tx_prefilter = TxPrefilters::default();
        for ((b, to_client), items) in index.tx_patterns {
            tx_prefilter.insert(b, to_client, Prefilter::build(&items));
        }
        report.load_time = t0.elapsed();
        Engine {
            has_iponly: rules.iter().any(|r| r.iponly),
            rules,
            groups,
            no_ip: index.no_ip,
            app_event_rules: index.app_events,
            by_addr,
            tx_prefilter,
            tx_always: index.tx_always,
            flowbit_count: flowbits.len(),
            flowbit_names: flowbits.into_names(),
            threshold_cfg: Arc::new(site.thresholds),
            stream_window: if cfg.stream_window == 0 {
                DEFAULT_STREAM_WINDOW
            } else {
                cfg.stream_window
            },
            report,
            profiler: None,
        }
    }

    /// Makes the detectors made from now on count, per rule and signature
    /// group, candidates, evaluations, matches and CPU ticks (see
    /// [`Engine::profile`]). Without it detection pays nothing for this.
    pub fn enable_profiling(&mut self) {
        self.profiler = Some(crate::profile::Collector::new());
    }

    /// The profile of the detectors that were dropped so far (a run's
    /// workers drop theirs when they end), when profiling is enabled.
    pub fn profile(&self) -> Option<crate::RuleProfile> {
        self.profiler
            .as_ref()
            .map(|c| c.report(self.rules.len(), self.groups.labels()))
    }

    /// Number of rules loaded.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule loaded.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A rule's metadata by its engine index (from [`crate::Hit`]).
    pub fn meta(&self, rule: u32) -> &RuleMeta {
        &self.rules[rule as usize].meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flowbit names get one engine-wide id each, however the files were
    /// spread over threads, and only distinct names count (the interning
    /// is a map: thousands of names load in linear time).
    #[test]
    fn flowbit_names_are_numbered_once_across_files() {
        let file = |from: usize, to: usize| -> String {
            (from..to)
                .map(|i| {
                    format!(
                        "alert tcp any any -> any any (content:\"x{i}\"; flowbits:set,bit{i}; \
                         flowbits:isset,bit{}; sid:{};)\n",
                        i / 2,
                        from * 10 + i + 1
                    )
                })
                .collect()
        };
        let (a, b) = (file(0, 3000), file(2000, 5000));
        let e = Engine::from_texts(
            &[("a.rules", &a), ("b.rules", &b)],
            &DetectConfig::default(),
        );
        assert_eq!(e.report.skipped, 0, "{:?}", e.report.errors.first());
        assert_eq!(e.flowbit_count, 5000);
    }
}

/// The transaction prefilters by (buffer, side): a flat table, because a
/// transaction looks one up for each of its tens of buffers and hashing
/// the key cost more than the lookup.
#[derive(Default)]
pub(crate) struct TxPrefilters(Vec<Option<Prefilter>>);

impl TxPrefilters {
    fn slot(b: Buffer, to_client: bool) -> usize {
        b as usize * 2 + usize::from(to_client)
    }

    fn insert(&mut self, b: Buffer, to_client: bool, p: Prefilter) {
        let i = Self::slot(b, to_client);
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || None);
        }
        self.0[i] = Some(p);
    }

    /// The prefilter of the rules of side `to_client` that read buffer `b`.
    #[inline]
    pub(crate) fn get(&self, b: Buffer, to_client: bool) -> Option<&Prefilter> {
        self.0.get(Self::slot(b, to_client))?.as_ref()
    }
}
