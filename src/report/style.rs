//! The report's colors, in one place so the report and the histogram figures match.

use plotters::style::RGBColor;

pub(super) const INK: RGBColor = RGBColor(25, 25, 30);
pub(super) const MUTED: RGBColor = RGBColor(105, 110, 120);
pub(super) const KEY_INK: RGBColor = RGBColor(40, 80, 140);
pub(super) const ACCENT: RGBColor = RGBColor(20, 50, 100);
pub(super) const RULE: RGBColor = RGBColor(210, 214, 222);
pub(super) const PANEL_BG: RGBColor = RGBColor(247, 248, 251);
pub(super) const ALERT: RGBColor = RGBColor(190, 40, 30);

/// tab10: distinguishable and familiar from matplotlib.
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
