//! The report page: hand-written inline SVG (stacked bars over time, horizontal bar
//! rankings) and tables, one file, no script, no external style, font or image. Hand
//! written rather than a charting crate: five simple chart shapes cost less than a
//! dependency tree and its build time, and the output stays small and reviewable.

use serde_json::Value;
use std::fmt::Write;

/// Severity colours (1 most severe).
const SEVERITY_COLOURS: [&str; 4] = ["#c0392b", "#e67e22", "#f1c40f", "#7f8c8d"];

/// Text made safe for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Stacked bars of alerts per time bucket, one colour per severity.
fn time_chart(buckets: &[Value]) -> String {
    let (w, h, left, bottom) = (760.0, 220.0, 50.0, 30.0);
    let totals: Vec<u64> = buckets
        .iter()
        .map(|b| {
            (1..=4)
                .map(|s| b[format!("severity_{s}")].as_u64().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        r#"<svg class="chart" id="chart-time" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="alerts over time by severity">"#
    );
    let plot_h = h - bottom - 10.0;
    let bar_w = ((w - left) / buckets.len().max(1) as f64).max(1.0);
    for (i, b) in buckets.iter().enumerate() {
        let x = left + i as f64 * bar_w;
        let mut y = h - bottom;
        for s in 1..=4 {
            let n = b[format!("severity_{s}")].as_u64().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let bh = n as f64 / max * plot_h;
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} severity {s}: {n}</title></rect>"#,
                (bar_w - 1.0).max(0.5),
                SEVERITY_COLOURS[s - 1],
                esc(&text(&b["start"]))
            );
        }
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{0}" x2="{w}" y2="{0}" stroke="#333"/><text x="4" y="20" font-size="11">{max}</text><text x="4" y="{0}" font-size="11">0</text>"##,
        h - bottom
    );
    if let (Some(f), Some(l)) = (buckets.first(), buckets.last()) {
        let _ = write!(
            svg,
            r#"<text x="{left}" y="{}" font-size="11">{}</text><text x="{w}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            h - 10.0,
            esc(&text(&f["start"])),
            h - 10.0,
            esc(&text(&l["start"]))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars of a ranking (`label_key`, `count`).
fn bar_chart(id: &str, rows: &[Value], label_key: &str, colour: &str) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">none</p>".into();
    }
    let (w, row_h, label_w) = (760.0, 22.0, 330.0);
    let h = row_h * rows.len() as f64 + 4.0;
    let max = rows
        .iter()
        .filter_map(|r| r["count"].as_u64())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut svg = format!(
        r#"<svg class="chart" id="chart-{id}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{id}">"#
    );
    for (i, r) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 2.0;
        let n = r["count"].as_u64().unwrap_or(0);
        let bw = (n as f64 / max * (w - label_w - 60.0)).max(1.0);
        let mut label = text(&r[label_key]);
        if label.chars().count() > 48 {
            label = label.chars().take(47).collect::<String>() + "…";
        }
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{:.1}" font-size="12" text-anchor="end">{}</text><rect x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="12">{n}</text>"#,
            label_w - 6.0,
            y + 15.0,
            esc(&label),
            row_h - 6.0,
            label_w + bw + 4.0,
            y + 15.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn table(rows: &[Value], cols: &[&str]) -> String {
    if rows.is_empty() {
        return "<p class=\"empty\">none</p>".into();
    }
    let mut t = String::from("<table><tr>");
    for c in cols {
        let _ = write!(t, "<th>{}</th>", esc(c));
    }
    t.push_str("</tr>");
    for r in rows {
        t.push_str("<tr>");
        for c in cols {
            let v = match &r[*c] {
                Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
                v => text(v),
            };
            let _ = write!(t, "<td>{}</td>", esc(&v));
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

fn list(d: &Value, key: &str) -> Vec<Value> {
    d[key].as_array().cloned().unwrap_or_default()
}

/// The whole page for the report data (as written to report.json).
pub fn page(d: &Value) -> String {
    let scope = match d["scope"]["tenant"].as_str() {
        Some(t) => format!("tenant {}", esc(t)),
        None => "all tenants".to_string(),
    };
    let legend: String = SEVERITY_COLOURS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                r#"<span class="key" style="background:{c}"></span>severity {} "#,
                i + 1
            )
        })
        .collect();
    let sensors = list(d, "sensors");
    let drops: Vec<Value> = sensors
        .iter()
        .map(|s| serde_json::json!({"sensor": s["sensor"], "count": s["dropped"]}))
        .collect();
    let mut p = String::new();
    let _ = write!(
        p,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>zonewatch report: {scope}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}h2{{margin-top:1.6em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:left}}.key{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}}.empty{{color:#888}}</style></head><body>
<h1>zonewatch report: {scope}</h1><p>{} events, {} alerts, {} incidents{}.</p>"#,
        d["totals"]["events"],
        d["totals"]["alerts"],
        d["totals"]["incidents"],
        match d["totals"]["skipped_lines"].as_u64() {
            Some(n) if n > 0 => format!(", {n} unreadable lines skipped"),
            _ => String::new(),
        }
    );
    let _ = write!(
        p,
        "<h2>Alerts over time</h2><p>{} minute buckets. {legend}</p>{}",
        d["alerts_over_time"]["bucket_minutes"],
        time_chart(&list(&d["alerts_over_time"], "buckets"))
    );
    for (title, key, label, colour) in [
        ("Top signatures", "top_signatures", "signature", "#2980b9"),
        (
            "Top categories (detectors)",
            "top_categories",
            "category",
            "#16a085",
        ),
        ("Top sources", "top_sources", "ip", "#8e44ad"),
        ("Top targets", "top_targets", "ip", "#2c3e50"),
        ("Zones", "zones", "zone", "#27ae60"),
    ] {
        let _ = write!(
            p,
            "<h2>{title}</h2>{}",
            bar_chart(key, &list(d, key), label, colour)
        );
    }
    let _ = write!(
        p,
        "<h2>Incidents</h2>{}",
        table(
            &list(d, "incidents"),
            &[
                "kind",
                "state",
                "severity",
                "src_ip",
                "tenants",
                "other_tenants",
                "alert_count",
                "first_seen",
                "last_seen",
                "id"
            ]
        )
    );
    let _ = write!(
        p,
        "<h2>Sensor health</h2>{}{}",
        bar_chart("drops", &drops, "sensor", "#c0392b"),
        table(
            &sensors,
            &[
                "sensor",
                "tenant",
                "last_seen",
                "stats_events",
                "packets",
                "dropped",
                "spool_backlog_bytes",
                "kafka_latency_p99_us"
            ]
        )
    );
    p.push_str("</body></html>\n");
    p
}
