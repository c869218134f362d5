//! How a load run is shown: a progress bar while it runs (indicatif), then a text summary,
//! `--json`, or a self-contained HTML page with charts drawn by plotters as inline SVG.
use std::fmt::Write as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

use super::stats::{Percentiles, ALL_STEPS};
use super::{LoadReport, Model, Until};

/// The progress bar of a run (nothing when disabled).
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    until: Until,
}

impl Progress {
    /// A bar for a run that ends as `until` says.
    pub fn new(enabled: bool, until: Until) -> Self {
        let bar = enabled.then(|| {
            let length = match until {
                Until::Duration(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                Until::Logons(m) => m,
            };
            let bar = ProgressBar::new(length);
            if let Ok(style) =
                ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {percent:>3}% {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self { bar, until }
    }

    /// Shows the counts so far.
    pub fn update(&self, completed: u64, failed: u64, elapsed: Duration) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(match self.until {
            Until::Duration(_) => u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            Until::Logons(_) => completed + failed,
        });
        let rate = completed as f64 / elapsed.as_secs_f64().max(1e-9);
        bar.set_message(format!("{completed} logons ({rate:.0}/s), {failed} failed"));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn percentile_row(name: &str, p: &Percentiles) -> String {
    format!(
        "{name:<18} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        p.count,
        ms(p.p50_us),
        ms(p.p90_us),
        ms(p.p99_us),
        ms(p.p999_us),
        ms(p.max_us)
    )
}

/// The rows of the latency table: the whole logon, each method's when there are several, the
/// endpoint session, then every step recorded.
fn latency_rows(report: &LoadReport) -> Vec<(String, &Percentiles)> {
    let mut rows = vec![("logon".to_owned(), &report.summary.logon)];
    if report.summary.methods.len() > 1 {
        rows.extend(
            report
                .summary
                .methods
                .iter()
                .map(|(method, m)| (format!("logon {method}"), &m.logon)),
        );
    }
    rows.extend(
        std::iter::once("endpoint session")
            .chain(ALL_STEPS)
            .filter_map(|name| report.summary.steps.get(name).map(|p| (name.to_owned(), p))),
    );
    rows
}

/// `50 on U2F:1, 50 on FIDO2:1`.
fn population_text(report: &LoadReport) -> String {
    report
        .users_by_method
        .iter()
        .map(|(method, users)| format!("{users} on {method}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `U2F:1 600 logons, 0 failed; FIDO2:1 …`.
fn by_method_text(report: &LoadReport) -> String {
    report
        .summary
        .methods
        .iter()
        .map(|(method, m)| format!("{method} {} logons, {} failed", m.completed, m.failed))
        .collect::<Vec<_>>()
        .join("; ")
}

fn model_text(model: Model) -> String {
    match model {
        Model::Concurrency(c) => format!("closed model, {c} in flight"),
        Model::Rate(r) => format!("open model, {r} started per second"),
    }
}

impl LoadReport {
    /// The summary for people.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "vu2f load: {} tokens ({}) against {} ({})",
            self.tokens,
            population_text(self),
            self.server,
            model_text(self.model)
        );
        let _ = writeln!(
            text,
            "{} logons in {:.1} s: {:.0}/s achieved, {:.0}/s offered; {} failed (setup {:.1} s)",
            self.completed,
            self.elapsed_s,
            self.logons_per_s,
            self.offered_per_s,
            self.failed,
            self.setup_s
        );
        if self.summary.methods.len() > 1 {
            let _ = writeln!(text, "by method: {}", by_method_text(self));
        }
        let _ = writeln!(
            text,
            "\n{:<18} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, p) in latency_rows(self) {
            let _ = writeln!(text, "{}", percentile_row(&name, p));
        }
        if !self.summary.errors.is_empty() {
            let _ = writeln!(text, "\nerrors:");
            for (kind, count) in &self.summary.errors {
                let _ = writeln!(text, "  {count:>8}  {kind}");
            }
        }
        text
    }

    /// A self-contained HTML page: the summary and three charts.
    pub fn to_html(&self) -> String {
        let mut page = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>vu2f load report</title>\
             <style>body{font-family:sans-serif;margin:2em;max-width:1000px}\
             table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}\
             td:first-child,th:first-child{text-align:left}figure{margin:1em 0}</style></head><body>\n",
        );
        let _ = writeln!(page, "<h1>vu2f load report</h1>");
        let _ = writeln!(
            page,
            "<p>{} tokens ({}) against {} ({}).<br>{} logons in {:.1} s: <b>{:.0}/s</b> achieved, {:.0}/s offered; {} failed.{}</p>",
            self.tokens,
            html_escape(&population_text(self)),
            html_escape(&self.server),
            model_text(self.model),
            self.completed,
            self.elapsed_s,
            self.logons_per_s,
            self.offered_per_s,
            self.failed,
            if self.summary.methods.len() > 1 {
                format!("<br>By method: {}.", html_escape(&by_method_text(self)))
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            page,
            "<table><tr><th>latency (ms)</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>"
        );
        for (name, p) in latency_rows(self) {
            let name = html_escape(&name);
            let _ = writeln!(
                page,
                "<tr><td>{name}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                p.count, ms(p.p50_us), ms(p.p90_us), ms(p.p99_us), ms(p.p999_us), ms(p.max_us)
            );
        }
        page.push_str("</table>\n");
        if !self.summary.errors.is_empty() {
            page.push_str("<h2>Errors</h2><ul>");
            for (kind, count) in &self.summary.errors {
                let _ = write!(page, "<li>{count} × {}</li>", html_escape(kind));
            }
            page.push_str("</ul>\n");
        }
        for (title, svg) in [
            ("Latency over time", self.latency_chart()),
            ("Throughput over time", self.throughput_chart()),
            ("Latency histogram", self.histogram_chart()),
        ] {
            let _ = writeln!(page, "<h2>{title}</h2><figure>{svg}</figure>");
        }
        page.push_str("</body></html>\n");
        page
    }

    fn latency_chart(&self) -> String {
        let timeline = &self.summary.timeline;
        let p50: Vec<(f64, f64)> = timeline
            .iter()
            .enumerate()
            .filter(|(_, s)| s.completed > 0)
            .map(|(i, s)| (i as f64, ms(s.p50_us)))
            .collect();
        let p99: Vec<(f64, f64)> = timeline
            .iter()
            .enumerate()
            .filter(|(_, s)| s.completed > 0)
            .map(|(i, s)| (i as f64, ms(s.p99_us)))
            .collect();
        line_chart(
            "latency (ms)",
            &[("p50", BLUE, p50), ("p99", RED, p99)],
            timeline.len(),
        )
    }

    fn throughput_chart(&self) -> String {
        let timeline = &self.summary.timeline;
        let completed = timeline
            .iter()
            .enumerate()
            .map(|(i, s)| (i as f64, s.completed as f64))
            .collect();
        let started = timeline
            .iter()
            .enumerate()
            .map(|(i, s)| (i as f64, s.started as f64))
            .collect();
        line_chart(
            "logons per second",
            &[("completed", BLUE, completed), ("started", GREEN, started)],
            timeline.len(),
        )
    }

    fn histogram_chart(&self) -> String {
        let buckets = &self.latency_buckets;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
            let _ = root.fill(&WHITE);
            let top = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1);
            let upper = buckets.last().map(|b| b.0).unwrap_or(1.0).max(0.001);
            let width = upper / buckets.len().max(1) as f64;
            if let Ok(mut chart) = ChartBuilder::on(&root)
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(0.0..upper, 0u64..top + top / 10 + 1)
            {
                let _ = chart
                    .configure_mesh()
                    .x_desc("latency (ms)")
                    .y_desc("logons")
                    .draw();
                let _ = chart.draw_series(buckets.iter().map(|(upper_ms, count)| {
                    Rectangle::new([(upper_ms - width, 0), (*upper_ms, *count)], BLUE.filled())
                }));
            }
            let _ = root.present();
        }
        svg
    }
}

/// A named line of a chart: its label, its colour, its points (second, value).
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// A chart of series over the seconds of the run.
fn line_chart(y_desc: &str, series: &[Series<'_>], seconds: usize) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = series
            .iter()
            .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(1.0);
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..(seconds.max(1) as f64), 0.0..top * 1.1)
        {
            let _ = chart
                .configure_mesh()
                .x_desc("seconds")
                .y_desc(y_desc)
                .draw();
            for (name, color, points) in series {
                let color = *color;
                if let Ok(drawn) = chart.draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                )) {
                    drawn.label(*name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
            }
            let _ = chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw();
        }
        let _ = root.present();
    }
    svg
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
