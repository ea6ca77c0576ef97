//! Renders events as EVE JSON lines — Suricata's field names, so a SIEM that
//! reads Suricata reads zonewatch — and writes them to a file or stdout.
//!
//! The writer adds what belongs to the sensor rather than to the packet:
//! `event_id`, `host`, `tenant`, `src_zone`/`dest_zone`, and the timestamp in
//! the sensor's UTC offset. The schema of each event type is documented in
//! `docs/events.md` with a JSON Schema per type in `docs/schema/`.
#![deny(missing_docs)]

mod eve;

pub use eve::{EveContext, EventIdSource, Zones};

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
pub trait EventSink: Send {
    /// Writes one rendered event.
    fn write_event(&mut self, ev: &Rendered<'_>) -> io::Result<()>;
    /// Pushes buffered events out.
    fn flush(&mut self) -> io::Result<()>;
    /// The sink's own counters for the `stats` event, under a section name
    /// (e.g. `kafka`); every value a counter.
    fn stats(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
}

/// JSON lines to a file or stdout, buffered.
pub struct LineSink {
    out: io::BufWriter<Box<dyn Write + Send>>,
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
        })
    }
}

impl EventSink for LineSink {
    fn write_event(&mut self, ev: &Rendered<'_>) -> io::Result<()> {
        self.out.write_all(ev.json.as_bytes())?;
        self.out.write_all(b"\n")
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
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
    pub fn write(&mut self, ev: &Event) -> io::Result<()> {
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
        for s in &mut self.sinks {
            s.write_event(&r)?;
        }
        *self.written.entry(et).or_default() += 1;
        Ok(())
    }

    /// Every sink's own counters, by section name.
    pub fn sink_stats(&self) -> Vec<(&'static str, serde_json::Value)> {
        self.sinks.iter().filter_map(|s| s.stats()).collect()
    }

    /// Flushes every sink.
    pub fn flush(&mut self) -> io::Result<()> {
        for s in &mut self.sinks {
            s.flush()?;
        }
        Ok(())
    }
}
