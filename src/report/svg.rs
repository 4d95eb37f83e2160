//! Pictures as hand-written SVG: escaped text, rectangles, lines, and round tick values for
//! axes. Plain SVG 1.1 without scripts or external fonts, so that browsers and GitHub render
//! it alike. The bench charts (`report::chart`) and the demo's failover chart
//! (`tests/util/svg.rs`) both draw with it.

use std::fmt::Write;

pub use crate::xml::escape;

/// Where a text's x coordinate is: its start, middle or end.
#[derive(Clone, Copy, Debug)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn word(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// An SVG document being written; `finish` closes it.
pub struct Svg {
    out: String,
}

impl Svg {
    /// A `width` x `height` picture on a white background.
    pub fn new(width: f64, height: f64) -> Svg {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
        );
        let mut svg = Svg { out };
        svg.rect(0.0, 0.0, width, height, "#ffffff");
        svg
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, fill: &str) {
        let _ = writeln!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
            width.max(0.0),
            height.max(0.0),
            escape(fill)
        );
    }

    /// A straight line; `dash` as in `stroke-dasharray` ("" for solid).
    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str, dash: &str) {
        let _ = write!(
            self.out,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{}""#,
            escape(stroke)
        );
        if !dash.is_empty() {
            let _ = write!(self.out, r#" stroke-dasharray="{}""#, escape(dash));
        }
        self.out.push_str("/>\n");
    }

    /// Text of `size` px at (`x`, `y`) (the baseline), bold if `bold`.
    pub fn text(&mut self, (x, y): (f64, f64), anchor: Anchor, size: f64, bold: bool, text: &str) {
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{}" font-size="{size}"{}>{}</text>"#,
            anchor.word(),
            if bold { r#" font-weight="bold""# } else { "" },
            escape(text)
        );
    }

    /// The document, closed.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// A tick step of 1, 2 or 5 times a power of ten that cuts `span` into at most `most` steps.
pub fn tick_step(span: f64, most: f64) -> f64 {
    let raw = (span / most).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

/// Ticks at multiples of a step across [`from`, `to`], at most about `most` of them.
pub fn ticks((from, to): (f64, f64), most: f64) -> Vec<f64> {
    let step = tick_step(to - from, most);
    let first = (from / step).ceil() as i64;
    let last = (to / step).floor() as i64;
    // A multiple computed as i·step is off by an ulp for steps like 0.1; rounding to the
    // step's own decimals keeps labels such as "0.3" instead of "0.30000000000000004".
    let decimals = (-step.log10().floor()).max(0.0) as i32;
    let unit = 10f64.powi(decimals);
    (first..=last)
        .map(|i| (i as f64 * step * unit).round() / unit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"a<b & "c" > 'd'"#),
            "a&lt;b &amp; &quot;c&quot; &gt; &apos;d&apos;"
        );
    }

    #[test]
    fn ticks_fall_on_round_numbers() {
        assert_eq!(
            ticks((0.0, 600.0), 10.0),
            [0.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
        );
        assert_eq!(ticks((-1000.0, 1500.0), 10.0)[..3], [-1000.0, -500.0, 0.0]);
        assert_eq!(ticks((0.0, 7.0), 4.0), [0.0, 2.0, 4.0, 6.0]);
        assert_eq!(ticks((0.0, 0.35), 4.0), [0.0, 0.1, 0.2, 0.3]);
    }

    #[test]
    fn a_document_is_closed_and_starts_white() {
        let mut svg = Svg::new(10.0, 5.0);
        svg.line((0.0, 0.0), (1.0, 1.0), "#000", "2 2");
        let doc = svg.finish();
        assert!(doc.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(doc.contains(r##"fill="#ffffff""##));
        assert!(doc.contains(r#"stroke-dasharray="2 2""#));
        assert!(doc.ends_with("</svg>\n"));
    }
}
