//! Renders events as EVE JSON lines — Suricata's field names, so a SIEM that
//! reads Suricata reads zonewatch — and hands them to every [`EventSink`]:
//! the JSON-lines file or stdout here ([`LineSink`]), others (Kafka) from
//! the crates that implement the trait.
//!
//! The writer adds what belongs to the sensor rather than to the packet:
//! `event_id`, `host`, `tenant`, `src_zone`/`dest_zone`, and the timestamp in
//! the sensor's UTC offset. The schema of each event type is documented in
//! `docs/events.md` with a JSON Schema per type in `docs/schema/`.
#![deny(missing_docs)]

mod eve;

pub use eve::{EveContext, EventIdSource};

use std::io::{self, Write};
use zonewatch_types::Event;

/// One rendered event and the fields sinks key or route by.
#[derive(Debug, Clone, Copy)]
pub struct Rendered<'a> {
    /// `event_type`.
    pub event_type: &'static str,
    /// `event_id`.
    pub event_id: &'a str,
    /// The JSON object, exactly as written to `--output` (no newline).
    pub json: &'a str,
    /// The event, for keys such as the source address or flow id.
    pub event: &'a Event,
}

/// Where rendered events go.
///
/// The contract that keeps a run from losing events silently: an `Err` from
/// [`EventSink::write_event`] or [`EventSink::flush`] means the sink is
/// broken for good (a full disk under the EVE file, a closed pipe) and the
/// run must stop and exit non-zero. A sink that can lose single events and
/// go on (Kafka rejecting one message for good, a spool that is full) does
/// not return an error for them: it logs each loss, counts it in its stats
/// and in [`EventSink::lost`], and the run's exit status reports it.
pub trait EventSink: Send {
    /// A short name for messages (`eve-file`, `kafka`).
    fn name(&self) -> &'static str;
    /// Writes one rendered event.
    fn write_event(&mut self, ev: &Rendered<'_>) -> io::Result<()>;
    /// Pushes buffered events out.
    fn flush(&mut self) -> io::Result<()>;
    /// The sink's own counters for the `stats` event, under a section name
    /// (e.g. `kafka`); every value a counter.
    fn stats(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
    /// Delivers or stores everything accepted so far (waiting for a broker's
    /// acknowledgements up to the sink's own timeout), so that its counters
    /// are final for those events. Called by the output thread just before
    /// the final `stats` event is built; that event is then written to every
    /// sink, and [`EventSink::close`] follows.
    fn settle(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// Ends the sink after the final `stats` event: delivers or stores what
    /// it still holds and stops its threads. Called once; no write follows.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// Events this sink accepted and then lost (neither delivered nor
    /// kept), logged and counted by the sink itself.
    fn lost(&self) -> u64 {
        0
    }
    /// Reopens the sink's file after log rotation (SIGHUP): what was
    /// written stays where it is, the next events go to the path anew.
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that failed for good, and why.
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {source}")]
pub struct SinkError {
    /// The sink's [`EventSink::name`].
    pub sink: &'static str,
    /// What failed.
    #[source]
    pub source: io::Error,
}

/// JSON lines to a file or stdout, buffered.
pub struct LineSink {
    out: io::BufWriter<Box<dyn Write + Send>>,
    path: String,
}

impl LineSink {
    /// `-` is stdout; anything else is a file, created or truncated now (so it
    /// exists even if no event is ever written).
    pub fn open(path: &str) -> io::Result<LineSink> {
        let w: Box<dyn Write + Send> = if path == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(std::fs::File::create(path)?)
        };
        Ok(LineSink {
            out: io::BufWriter::with_capacity(1 << 16, w),
            path: path.to_string(),
        })
    }
}

impl LineSink {
    /// The error with the output's path in it, so the operator knows which
    /// file or pipe failed.
    fn named(&self, e: io::Error) -> io::Error {
        let what = if self.path == "-" {
            "stdout"
        } else {
            &self.path
        };
        io::Error::new(e.kind(), format!("writing {what}: {e}"))
    }
}

impl EventSink for LineSink {
    fn name(&self) -> &'static str {
        "eve-file"
    }
    fn write_event(&mut self, ev: &Rendered<'_>) -> io::Result<()> {
        self.out
            .write_all(ev.json.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| self.named(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| self.named(e))
    }
    /// Appends to the path (created if logrotate moved the file away);
    /// stdout stays stdout.
    fn reopen(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.path == "-" {
            return Ok(());
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.named(e))?;
        self.out = io::BufWriter::with_capacity(1 << 16, Box::new(f));
        Ok(())
    }
}

/// Renders events and hands them to every sink; counts what it wrote.
pub struct EventWriter {
    ctx: EveContext,
    sinks: Vec<Box<dyn EventSink>>,
    buf: String,
    /// Events written, by type.
    pub written: std::collections::BTreeMap<&'static str, u64>,
    /// Events dropped because their type is switched off.
    pub filtered: u64,
}

impl EventWriter {
    /// A writer with the sensor's context and its sinks.
    pub fn new(ctx: EveContext, sinks: Vec<Box<dyn EventSink>>) -> Self {
        EventWriter {
            ctx,
            sinks,
            buf: String::with_capacity(1024),
            written: Default::default(),
            filtered: 0,
        }
    }

    /// Renders and writes one event (unless its type is switched off).
    /// Every sink gets the event even when another has failed: one broken
    /// sink never starves the others. The first failure is returned.
    pub fn write(&mut self, ev: &Event) -> Result<(), SinkError> {
        let et = ev.body.event_type();
        if !self.ctx.type_enabled(et) {
            self.filtered += 1;
            return Ok(());
        }
        self.buf.clear();
        let id = self.ctx.event_id(ev.key.pos, ev.key.sub);
        self.ctx.render_with_id(ev, &id, &mut self.buf);
        let r = Rendered {
            event_type: et,
            event_id: &id,
            json: &self.buf,
            event: ev,
        };
        let mut first = Ok(());
        for s in &mut self.sinks {
            if let Err(source) = s.write_event(&r) {
                if first.is_ok() {
                    first = Err(SinkError {
                        sink: s.name(),
                        source,
                    });
                }
            }
        }
        *self.written.entry(et).or_default() += 1;
        first
    }

    /// Every sink's own counters, by section name.
    pub fn sink_stats(&self) -> Vec<(&'static str, serde_json::Value)> {
        self.sinks.iter().filter_map(|s| s.stats()).collect()
    }

    /// Flushes every sink (all of them, even after one failed).
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.each(|s| s.flush())
    }

    /// Settles every sink (see [`EventSink::settle`]); the first failure.
    pub fn settle(&mut self) -> Result<(), SinkError> {
        self.each(|s| s.settle())
    }

    /// Reopens every sink's file (see [`EventSink::reopen`]); the first
    /// failure.
    pub fn reopen(&mut self) -> Result<(), SinkError> {
        self.each(|s| s.reopen())
    }

    /// Closes every sink (see [`EventSink::close`]); the first failure.
    pub fn close(&mut self) -> Result<(), SinkError> {
        self.each(|s| s.close())
    }

    /// Calls `f` on every sink, even after one failed; the first failure.
    fn each(
        &mut self,
        mut f: impl FnMut(&mut dyn EventSink) -> io::Result<()>,
    ) -> Result<(), SinkError> {
        let mut first = Ok(());
        for s in &mut self.sinks {
            if let Err(source) = f(s.as_mut()) {
                if first.is_ok() {
                    first = Err(SinkError {
                        sink: s.name(),
                        source,
                    });
                }
            }
        }
        first
    }

    /// Events the sinks accepted and lost, in all.
    pub fn lost(&self) -> u64 {
        self.sinks.iter().map(|s| s.lost()).sum()
    }
}
