//! The failover chart of `make demo`: the takeover's phases as a Gantt lane over the client's
//! commits per bucket, drawn with the library's SVG writer (`ferroha::report::svg`).

use ferroha::report::svg::{Anchor, Svg, ticks};

/// One phase of a takeover, in ms from the failure: a span when its duration is known, a
/// point (`start == end`) otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub label: String,
    pub start_ms: f64,
    pub end_ms: f64,
}

/// What the failover chart shows; every time in ms from the failure (negative: before it).
#[derive(Clone, Debug, Default)]
pub struct FailoverChart {
    /// The headline.
    pub title: String,
    /// The takeover's phases, in order.
    pub phases: Vec<Phase>,
    /// When each of the client's commits was acknowledged.
    pub commits_ms: Vec<f64>,
    /// The client-visible outage: the last commit before the failure and the first after.
    pub outage_ms: Option<(f64, f64)>,
    /// The commits' time range to draw.
    pub window_ms: (f64, f64),
    /// The width of one bucket of commits.
    pub bucket_ms: f64,
}

/// The number of `times` in each `width`-wide bucket of [`from`, `to`): bucket i holds
/// from + i·width <= t < from + (i+1)·width. Times outside the range are not counted.
pub fn buckets(times: &[f64], (from, to): (f64, f64), width: f64) -> Vec<u32> {
    let usable = width > 0.0 && to > from;
    if !usable {
        return vec![];
    }
    // Bounded, so that an absurd window cannot take all memory.
    let n = (((to - from) / width).ceil() as usize).min(1_000_000);
    let mut counts = vec![0; n];
    for &t in times {
        let i = ((t - from) / width).floor();
        if i >= 0.0 && (i as usize) < n && t < to {
            counts[i as usize] += 1;
        }
    }
    counts
}

/// A linear map from the times [`from`, `to`] onto the x coordinates [`left`, `right`].
#[derive(Clone, Copy)]
struct Scale {
    from: f64,
    to: f64,
    left: f64,
    right: f64,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        let span = (self.to - self.from).max(f64::MIN_POSITIVE);
        self.left + (t - self.from) / span * (self.right - self.left)
    }

    /// Tick lines from `top` to `bottom` with their labels in ms below.
    fn axis(&self, svg: &mut Svg, top: f64, bottom: f64) {
        for t in ticks((self.from, self.to), 10.0) {
            let x = self.x(t);
            let colour = if t == 0.0 { "#555555" } else { "#dddddd" };
            svg.line((x, top), (x, bottom), colour, "");
            svg.text(
                (x, bottom + 14.0),
                Anchor::Middle,
                11.0,
                false,
                &format!("{t}"),
            );
        }
        svg.text(
            (self.right, bottom + 28.0),
            Anchor::End,
            11.0,
            false,
            "ms after the failure",
        );
    }
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 500.0;
const LEFT: f64 = 250.0;
const RIGHT: f64 = WIDTH - 40.0;
const ROW: f64 = 24.0;
const GANTT_TOP: f64 = 56.0;
const CHART_TOP: f64 = 300.0;
const CHART_BOTTOM: f64 = 450.0;
const PHASE_COLOUR: &str = "#3b6fb6";
const COMMIT_COLOUR: &str = "#4a9a5b";
const OUTAGE_COLOUR: &str = "#f3d3d0";

/// Whole ms, truncated as `Duration::as_millis` does, so that the picture's numbers are the
/// ones printed beside it.
fn whole_ms(ms: f64) -> i64 {
    ms.trunc() as i64
}

/// How long a phase took, and when it ended unless it started at the failure; or when it
/// happened. For its label beside the bar.
fn phase_note(p: &Phase) -> String {
    let took = whole_ms(p.end_ms) - whole_ms(p.start_ms);
    if p.end_ms <= p.start_ms {
        format!("at {} ms", whole_ms(p.start_ms))
    } else if p.start_ms == 0.0 {
        format!("{took} ms")
    } else {
        format!("{took} ms (to {})", whole_ms(p.end_ms))
    }
}

/// The chart as an SVG document: the phases as a Gantt lane on top, the commits per bucket
/// below with the outage shaded. Empty parts say "no data" instead.
pub fn failover_svg(chart: &FailoverChart) -> String {
    let mut svg = Svg::new(WIDTH, HEIGHT);
    svg.text((20.0, 28.0), Anchor::Start, 16.0, true, &chart.title);
    gantt(&mut svg, &chart.phases);
    commits(&mut svg, chart);
    svg.finish()
}

fn no_data(svg: &mut Svg, y: f64, what: &str) {
    svg.text(
        ((LEFT + RIGHT) / 2.0, y),
        Anchor::Middle,
        13.0,
        false,
        &format!("no data: {what}"),
    );
}

/// The phases, one row each, on a time axis from the failure to the last phase's end.
fn gantt(svg: &mut Svg, phases: &[Phase]) {
    let top = GANTT_TOP;
    if phases.is_empty() {
        no_data(svg, top + 60.0, "no takeover phases were logged");
        return;
    }
    let end = phases
        .iter()
        .map(|p| p.end_ms.max(p.start_ms))
        .fold(0.0, f64::max);
    // Room on the right for the last phase's note.
    let scale = Scale {
        from: 0.0,
        to: (end * 1.25).max(1.0),
        left: LEFT,
        right: RIGHT,
    };
    let bottom = top + ROW * phases.len() as f64 + 6.0;
    scale.axis(svg, top, bottom);
    for (i, p) in phases.iter().enumerate() {
        let y = top + 6.0 + ROW * i as f64;
        svg.text((LEFT - 10.0, y + 14.0), Anchor::End, 12.0, false, &p.label);
        let (x0, x1) = (scale.x(p.start_ms), scale.x(p.end_ms.max(p.start_ms)));
        if x1 - x0 >= 1.0 {
            svg.rect(x0, y + 3.0, x1 - x0, ROW - 8.0, PHASE_COLOUR);
        } else {
            // A point in time, or too short to see as a bar: a fixed-width mark.
            svg.rect(x0 - 1.5, y + 1.0, 3.0, ROW - 4.0, "#c0392b");
        }
        svg.text(
            (x1 + 6.0, y + 14.0),
            Anchor::Start,
            11.0,
            false,
            &phase_note(p),
        );
    }
}

/// The commits per bucket across the window, the outage shaded and its length written in it.
fn commits(svg: &mut Svg, chart: &FailoverChart) {
    let counts = buckets(&chart.commits_ms, chart.window_ms, chart.bucket_ms);
    let label = format!("commits / {} ms", chart.bucket_ms);
    svg.text(
        (LEFT - 10.0, CHART_TOP + 4.0),
        Anchor::End,
        12.0,
        true,
        "client commits",
    );
    svg.text(
        (LEFT - 10.0, CHART_TOP + 20.0),
        Anchor::End,
        11.0,
        false,
        &label,
    );
    if counts.iter().all(|c| *c == 0) {
        no_data(
            svg,
            (CHART_TOP + CHART_BOTTOM) / 2.0,
            "no commits in the window",
        );
        return;
    }
    let scale = Scale {
        from: chart.window_ms.0,
        to: chart.window_ms.1,
        left: LEFT,
        right: RIGHT,
    };
    let top = CHART_TOP;
    let height = CHART_BOTTOM - top;
    if let Some((last, first)) = chart.outage_ms {
        let (x0, x1) = (scale.x(last), scale.x(first));
        svg.rect(x0, top, x1 - x0, height, OUTAGE_COLOUR);
        svg.text(
            ((x0 + x1) / 2.0, top + 16.0),
            Anchor::Middle,
            12.0,
            true,
            &format!("no commits for {} ms", whole_ms(first - last)),
        );
    }
    scale.axis(svg, top, CHART_BOTTOM);
    let most = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    // Leave room above the tallest bar for the outage's note.
    let y = |c: f64| CHART_BOTTOM - c / most * (height - 26.0);
    for c in ticks((0.0, most), 4.0) {
        svg.line((LEFT - 4.0, y(c)), (LEFT, y(c)), "#555555", "");
        svg.text(
            (LEFT - 6.0, y(c) + 4.0),
            Anchor::End,
            10.0,
            false,
            &format!("{c}"),
        );
    }
    let bar = (scale.x(chart.bucket_ms) - scale.x(0.0)).max(0.5);
    for (i, c) in counts.iter().enumerate() {
        if *c > 0 {
            let x = scale.x(chart.window_ms.0 + i as f64 * chart.bucket_ms);
            svg.rect(
                x,
                y(*c as f64),
                bar * 0.85,
                CHART_BOTTOM - y(*c as f64),
                COMMIT_COLOUR,
            );
        }
    }
    svg.line((LEFT, CHART_BOTTOM), (RIGHT, CHART_BOTTOM), "#555555", "");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> FailoverChart {
        FailoverChart {
            title: "n1 powered off <at> t=0 & n2 took over".to_string(),
            phases: vec![
                Phase {
                    label: "heartbeat lost".to_string(),
                    start_ms: 0.0,
                    end_ms: 105.0,
                },
                Phase {
                    label: "DRBD promote".to_string(),
                    start_ms: 140.0,
                    end_ms: 180.0,
                },
                Phase {
                    label: "first client write".to_string(),
                    start_ms: 480.0,
                    end_ms: 480.0,
                },
            ],
            commits_ms: vec![-20.0, -12.0, -3.0, 481.0, 485.0, 497.0],
            outage_ms: Some((-3.0, 481.9)),
            window_ms: (-1000.0, 1500.0),
            bucket_ms: 10.0,
        }
    }

    /// Parses as XML with an `svg` root, or panics with the document.
    fn parse(svg: &str) -> roxmltree::Document<'_> {
        let doc = roxmltree::Document::parse(svg)
            .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc
    }

    /// Every text element's content, unescaped.
    fn texts(doc: &roxmltree::Document) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn commits_are_counted_in_the_bucket_they_fall_in() {
        assert_eq!(buckets(&[3.0, 7.0, 12.0], (0.0, 20.0), 10.0), [2, 1]);
        // A bucket's start is in it, its end in the next; negative times count too.
        assert_eq!(
            buckets(&[-10.0, -0.5, 0.0, 10.0, 19.99], (-10.0, 20.0), 10.0),
            [2, 1, 2]
        );
        // Outside the window: not counted; a last, partial bucket still counts.
        assert_eq!(
            buckets(&[-1.0, 4.0, 22.0, 25.0, 30.0], (0.0, 25.0), 10.0),
            [1, 0, 1]
        );
        assert_eq!(buckets(&[1.0], (0.0, 0.0), 10.0), Vec::<u32>::new());
        assert_eq!(buckets(&[1.0], (0.0, 10.0), 0.0), Vec::<u32>::new());
    }

    #[test]
    fn the_chart_is_well_formed_svg_with_every_phase_and_the_outage() {
        let svg = failover_svg(&chart());
        let doc = parse(&svg);
        let texts = texts(&doc);
        for label in ["heartbeat lost", "DRBD promote", "first client write"] {
            assert!(
                texts.iter().any(|t| t == label),
                "{label} missing: {texts:?}"
            );
        }
        assert!(texts.contains(&"n1 powered off <at> t=0 & n2 took over".to_string()));
        assert!(
            texts.contains(&"no commits for 484 ms".to_string()),
            "{texts:?}"
        );
        assert!(texts.contains(&"105 ms".to_string()), "{texts:?}");
        assert!(texts.contains(&"40 ms (to 180)".to_string()), "{texts:?}");
        assert!(texts.contains(&"at 480 ms".to_string()), "{texts:?}");
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn one_bar_per_non_empty_bucket_as_tall_as_its_count() {
        let svg = failover_svg(&chart());
        let doc = parse(&svg);
        let bars: Vec<f64> = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(COMMIT_COLOUR))
            .map(|n| n.attribute("height").unwrap().parse().unwrap())
            .collect();
        // [-20, -10) holds two commits, [-10, 0) one, [480, 490) two, [490, 500) one.
        assert_eq!(bars.len(), 4, "{bars:?}");
        let tallest = bars.iter().copied().fold(0.0, f64::max);
        let relative: Vec<f64> = bars
            .iter()
            .map(|h| (h / tallest * 20.0).round() / 10.0)
            .collect();
        assert_eq!(relative, [2.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn no_input_gives_a_valid_picture_saying_so() {
        let svg = failover_svg(&FailoverChart::default());
        let doc = parse(&svg);
        let notes: Vec<String> = texts(&doc)
            .into_iter()
            .filter(|t| t.starts_with("no data"))
            .collect();
        assert_eq!(notes.len(), 2, "{svg}");
    }
}
