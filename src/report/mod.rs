//! The bench report. `svg` is the small SVG writer its charts and the demo's failover chart
//! (`tests/util/svg.rs`) draw with.

pub mod svg;
