//! The load test's chart: completed phones and request latency (p99 per second) over time, as a self-contained SVG.

use std::collections::BTreeMap;
use std::time::Duration;

use provisor_phone::load::{Summary, percentile};

/// The chart of `summary`, titled `title`.
pub fn svg(summary: &Summary, title: &str) -> String {
    let (w, h, m) = (800.0, 400.0, 50.0);
    let end = summary.wall.as_secs_f64().max(1.0);
    let total = summary.completions.len().max(1) as f64;
    let x = |t: f64| m + (t / end) * (w - 2.0 * m);
    let mut done = String::new();
    for (i, t) in summary.completions.iter().enumerate() {
        done.push_str(&format!("{:.1},{:.1} ", x(*t), h - m - ((i + 1) as f64 / total) * (h - 2.0 * m)));
    }
    let mut per_second: BTreeMap<u64, Vec<Duration>> = BTreeMap::new();
    for s in &summary.samples {
        per_second.entry(s.at as u64).or_default().push(s.latency);
    }
    let p99: Vec<(u64, f64)> = per_second
        .into_iter()
        .map(|(sec, mut v)| {
            v.sort();
            (sec, percentile(&v, 0.99).as_secs_f64() * 1e3)
        })
        .collect();
    let max_ms = p99.iter().map(|p| p.1).fold(1.0, f64::max);
    let lat: String = p99
        .iter()
        .map(|(sec, ms)| format!("{:.1},{:.1} ", x(*sec as f64 + 0.5), h - m - (ms / max_ms) * (h - 2.0 * m)))
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{m}" y="20" font-size="14">{title}</text>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="black"/>
<text x="{r}" y="{bl}" text-anchor="end">{end:.1} s</text><text x="{m}" y="{bl}">0 s</text>
<text x="{lx}" y="{ly}" fill="#1f77b4">{n} phones</text><text x="{r}" y="{ly}" text-anchor="end" fill="#d62728">p99 {max_ms:.0} ms</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{done}"/>
<polyline fill="none" stroke="#d62728" stroke-width="1" points="{lat}"/>
<text x="{m}" y="{ll}" fill="#1f77b4">provisioned phones (cumulative)</text>
<text x="{r}" y="{ll}" text-anchor="end" fill="#d62728">request latency, p99 per second</text>
</svg>
"##,
        b = h - m,
        r = w - m,
        bl = h - m + 15.0,
        ll = h - 10.0,
        lx = m + 5.0,
        ly = m - 8.0,
        n = summary.completions.len(),
    )
}
