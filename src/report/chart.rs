//! One figure of a bench as a picture: a horizontal bar per system at its median, a whisker
//! across its spread, ferroha's bar first and coloured apart, and each peer's median as a
//! ratio of ferroha's underneath, so that the picture carries the number people quote.

use super::model::{Figure, Results, Role, Series};
use super::svg::{Anchor, Svg, ticks};

/// ferroha's bars.
pub const FERROHA_COLOUR: &str = "#3b6fb6";
/// Every peer's bars.
pub const PEER_COLOUR: &str = "#b0b0b0";
const WHISKER_COLOUR: &str = "#222222";
const GRID_COLOUR: &str = "#dddddd";

const WIDTH: f64 = 760.0;
const LEFT: f64 = 190.0;
const RIGHT: f64 = WIDTH - 110.0;
const TOP: f64 = 64.0;
const ROW: f64 = 30.0;
const BAR: f64 = 18.0;

/// A value with three significant digits or whole units: what the tables print.
pub fn value_text(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// `peer`'s median over ferroha's, as the charts and the page write it (`21.8×`); None
/// when ferroha's median is not above zero.
pub fn ratio_text(peer: &Series, ferroha: &Series) -> Option<String> {
    if ferroha.median <= 0.0 {
        return None;
    }
    let r = peer.median / ferroha.median;
    Some(if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    })
}

/// The chart of `figure` of `results` as an SVG document.
pub fn figure_svg(results: &Results, figure: &Figure) -> String {
    let rows = figure.systems.len() as f64;
    let ferroha = figure.ferroha();
    let peers: Vec<&Series> = figure
        .systems
        .iter()
        .filter(|s| s.role == Role::Peer)
        .collect();
    let notes = if ferroha.is_some() { peers.len() } else { 0 };
    let axis_y = TOP + rows * ROW + 4.0;
    let height = axis_y + 40.0 + 18.0 * notes as f64 + 26.0;
    let mut svg = Svg::new(WIDTH, height);
    svg.text((20.0, 26.0), Anchor::Start, 16.0, true, &figure.label);
    let spreads: Vec<&str> = {
        let mut words: Vec<&str> = figure.systems.iter().map(|s| s.spread.word()).collect();
        words.dedup();
        words
    };
    svg.text(
        (20.0, 46.0),
        Anchor::Start,
        11.0,
        false,
        &format!(
            "bench {}: bars are medians, whiskers {} ({}); {}",
            results.bench,
            spreads.join(" / "),
            figure.unit,
            results.machine.date
        ),
    );

    let most = figure
        .systems
        .iter()
        .map(|s| s.high.max(s.median))
        .fold(0.0, f64::max);
    let least = figure
        .systems
        .iter()
        .map(|s| s.low.min(s.median))
        .fold(0.0, f64::min);
    let (from, to) = (least, if most > least { most * 1.05 } else { 1.0 });
    let x = |v: f64| LEFT + (v - from) / (to - from) * (RIGHT - LEFT);

    for t in ticks((from, to), 6.0) {
        svg.line((x(t), TOP - 6.0), (x(t), axis_y), GRID_COLOUR, "");
        svg.text(
            (x(t), axis_y + 14.0),
            Anchor::Middle,
            10.0,
            false,
            // Ticks are round already (`svg::ticks`): "0", "20", "0.5".
            &format!("{t}"),
        );
    }
    svg.text(
        (RIGHT, axis_y + 28.0),
        Anchor::End,
        11.0,
        false,
        &figure.unit,
    );

    for (i, s) in figure.systems.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let mid = y + BAR / 2.0;
        svg.text(
            (LEFT - 10.0, mid + 4.0),
            Anchor::End,
            12.0,
            s.role == Role::Ferroha,
            &s.name,
        );
        let fill = match s.role {
            Role::Ferroha => FERROHA_COLOUR,
            Role::Peer => PEER_COLOUR,
        };
        svg.rect(x(0.0), y, x(s.median) - x(0.0), BAR, fill);
        svg.line((x(s.low), mid), (x(s.high), mid), WHISKER_COLOUR, "");
        for end in [s.low, s.high] {
            svg.line((x(end), mid - 5.0), (x(end), mid + 5.0), WHISKER_COLOUR, "");
        }
        let n = if s.samples.is_empty() {
            String::new()
        } else {
            format!(" (n={})", s.samples.len())
        };
        svg.text(
            (x(s.high.max(s.median)) + 6.0, mid + 4.0),
            Anchor::Start,
            11.0,
            false,
            &format!("{} {}{n}", value_text(s.median), figure.unit),
        );
    }

    let mut y = axis_y + 48.0;
    if let Some(ours) = ferroha {
        for peer in &peers {
            if let Some(ratio) = ratio_text(peer, ours) {
                svg.text(
                    (20.0, y),
                    Anchor::Start,
                    12.0,
                    true,
                    &format!("{} / {} = {ratio} (medians)", peer.name, ours.name),
                );
                y += 18.0;
            }
        }
    }
    svg.text(
        (20.0, height - 10.0),
        Anchor::Start,
        10.0,
        false,
        &format!("{}; git {}", results.command, results.machine.git_rev),
    );
    svg.finish()
}
