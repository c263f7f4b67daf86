//! Where each tile of the room composite goes (sans-IO: rectangles in, rectangles out).
//!
//! This module owns the geometry of the three layouts ([`LayoutKind`]): given the
//! canvas size, the tiles in the caller's order and the focused tile, [`layout`]
//! returns for each placed tile its cell, the picture inside the cell and its
//! z-order. It knows nothing about GStreamer; the pipeline applies the rectangles
//! to compositor pads.
//!
//! Decisions:
//! - **Even numbers everywhere.** Every x, y, width and height is even (video
//!   scalers and 4:2:0 chroma like even sizes). Odd canvas sizes lose their last
//!   column/row.
//! - **Cells never overlap and stay inside the canvas.** Between cells there is a
//!   gap of `canvas width / 320` px, rounded down to even, at least 2 (4 px at
//!   1280 wide; none on a canvas under 64 px); there is no outer margin, so one
//!   tile fills the whole canvas.
//! - **Pictures keep their aspect**, fitted inside the cell and centred
//!   (letterboxed or pillarboxed). A tile whose size is unknown (not decoded yet,
//!   or an audio-only name card) is treated as 16:9.
//! - **At most [`MAX_TILES`] tiles** are placed: the first 16 of the caller's
//!   order; the rest get no placement (the caller hides them). The focus is
//!   looked up among those 16.
//! - **grid**: `cols = ceil(sqrt(n))`, `rows = ceil(n / cols)`, equal cells; a last
//!   row that is not full is centred horizontally; the whole grid is centred.
//! - **speaker**: the focused tile (the first tile if the focus is `None` or not
//!   among the tiles) large in the top area, the others, in the caller's order,
//!   in a strip along the bottom whose height is 1/5 of the canvas. Strip cells
//!   have equal width, at most 16:9 of the strip height (so two strip tiles do
//!   not become two very wide cells), centred as a row. At most
//!   [`MAX_STRIP_TILES`] (6) strip cells are shown: more would make pictures too
//!   small to recognise anyone or read a name (at 1280x720 six cells are
//!   206x144). The strip shows the first six others in the caller's order. A
//!   lone tile takes the whole canvas.
//! - **screen**: the first tile with `screen: true` large, every other tile
//!   (cameras and further screens) in the strip. If the focus (the active
//!   speaker) is a strip tile that would be cut off by the six-cell limit, it
//!   takes the last shown strip cell, so the person speaking is always visible.
//!   Without a screen tile the layout is `speaker`.
//! - **z-order**: the large tile 0, strip tiles 1 (drawn above); grid tiles 0.

use std::fmt;
use std::str::FromStr;

/// Which layout the composite uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind {
    /// Every tile the same size, in a near-square grid.
    #[default]
    Grid,
    /// The active speaker large, the others in a strip along the bottom.
    Speaker,
    /// The screen share large, the cameras in a strip along the bottom.
    Screen,
}

impl LayoutKind {
    /// Every layout, in the order the choices are listed.
    pub const ALL: [LayoutKind; 3] = [LayoutKind::Grid, LayoutKind::Speaker, LayoutKind::Screen];

    /// The name used in configuration, on the command line and in file names.
    pub fn as_str(&self) -> &'static str {
        match self {
            LayoutKind::Grid => "grid",
            LayoutKind::Speaker => "speaker",
            LayoutKind::Screen => "screen",
        }
    }
}

impl fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LayoutKind {
    type Err = String;

    /// `grid`, `speaker` or `screen` (exactly); the error lists the choices.
    fn from_str(s: &str) -> Result<Self, String> {
        LayoutKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let choices: Vec<&str> = LayoutKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown layout {s:?} (choices: {})", choices.join(", "))
        })
    }
}

/// A rectangle on the canvas, in pixels (x to the right, y down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl Rect {
    fn new(x: i32, y: i32, width: i32, height: i32) -> Rect {
        Rect { x, y, width, height }
    }
}

/// One tile to place: an id the caller chooses, the picture's size if known
/// (`None`: not yet decoded / audio-only name card → treated as 16:9), whether
/// it is a screen share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    pub id: u64,
    pub size: Option<(u32, u32)>,
    pub screen: bool,
}

/// Where one tile goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The tile's id.
    pub id: u64,
    /// The cell given to the tile.
    pub cell: Rect,
    /// The picture inside it, aspect kept (letterboxed/pillarboxed, centred), even sizes.
    pub picture: Rect,
    /// Drawn above the others when higher (large tile 0, strip 1, grid 0).
    pub zorder: u32,
}

/// At most this many tiles are placed (the first ones in the caller's order).
pub const MAX_TILES: usize = 16;

/// At most this many tiles are shown in the strip of `speaker` and `screen`.
pub const MAX_STRIP_TILES: usize = 6;

/// The aspect assumed for a tile of unknown size.
const DEFAULT_ASPECT: (i64, i64) = (16, 9);

/// Places the tiles on a canvas of `canvas` (width, height) pixels. See the
/// module docs for each layout; tiles beyond [`MAX_TILES`] (and strip tiles
/// beyond [`MAX_STRIP_TILES`]) get no placement. The result follows the
/// caller's order of the placed tiles.
pub fn layout(kind: LayoutKind, canvas: (u32, u32), tiles: &[Tile], focus: Option<u64>) -> Vec<Placement> {
    let tiles = &tiles[..tiles.len().min(MAX_TILES)];
    if tiles.is_empty() {
        return Vec::new();
    }
    let canvas = Canvas::new(canvas);
    match kind {
        LayoutKind::Grid => grid(&canvas, tiles),
        LayoutKind::Speaker => {
            let large = focus.and_then(|f| tiles.iter().position(|t| t.id == f)).unwrap_or(0);
            large_and_strip(&canvas, tiles, large, None)
        }
        LayoutKind::Screen => match tiles.iter().position(|t| t.screen) {
            Some(large) => large_and_strip(&canvas, tiles, large, focus),
            None => layout(LayoutKind::Speaker, (canvas.width as u32, canvas.height as u32), tiles, focus),
        },
    }
}

/// The usable canvas: even width and height, and the gap between cells.
struct Canvas {
    width: i32,
    height: i32,
    gap: i32,
}

impl Canvas {
    fn new((width, height): (u32, u32)) -> Canvas {
        let width = even_down(i32::try_from(width).unwrap_or(i32::MAX));
        let height = even_down(i32::try_from(height).unwrap_or(i32::MAX));
        // No gap on a canvas too small to spare one (a degenerate case, kept inside the canvas).
        let gap = if width < 64 || height < 64 { 0 } else { even_down(width / 320).max(2) };
        Canvas { width, height, gap }
    }
}

fn grid(canvas: &Canvas, tiles: &[Tile]) -> Vec<Placement> {
    let n = tiles.len() as i32;
    let cols = ceil_sqrt(n);
    let rows = (n + cols - 1) / cols;
    let gap = canvas.gap;
    let cell_w = even_down((canvas.width - gap * (cols - 1)) / cols).max(0);
    let cell_h = even_down((canvas.height - gap * (rows - 1)) / rows).max(0);
    let grid_h = rows * cell_h + (rows - 1) * gap;
    let y0 = even_down((canvas.height - grid_h) / 2).max(0);
    tiles
        .chunks(cols as usize)
        .enumerate()
        .flat_map(|(row, row_tiles)| {
            let y = y0 + row as i32 * (cell_h + gap);
            row_cells(canvas.width, y, row_tiles.len() as i32, cell_w, cell_h, gap)
                .into_iter()
                .zip(row_tiles)
                .map(|(cell, tile)| place(tile, cell, 0))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One tile large on top, up to [`MAX_STRIP_TILES`] of the others in a strip at
/// the bottom. `focus`: a strip tile that must be shown if the strip is full.
fn large_and_strip(canvas: &Canvas, tiles: &[Tile], large: usize, focus: Option<u64>) -> Vec<Placement> {
    if tiles.len() == 1 {
        return vec![place(&tiles[0], Rect::new(0, 0, canvas.width, canvas.height), 0)];
    }
    let gap = canvas.gap;
    let strip_h = even_down(canvas.height / 5);
    let strip_y = canvas.height - strip_h;
    let large_h = (strip_y - gap).max(0);
    let large_cell = Rect::new(0, 0, canvas.width, large_h);

    let others: Vec<usize> = (0..tiles.len()).filter(|&i| i != large).collect();
    let mut shown: Vec<usize> = others.iter().copied().take(MAX_STRIP_TILES).collect();
    if let Some(f) = focus.and_then(|f| others.iter().copied().find(|&i| tiles[i].id == f)) {
        if !shown.contains(&f) {
            *shown.last_mut().expect("the strip has at least one tile") = f;
        }
    }
    let k = shown.len() as i32;
    let fair_w = even_down((canvas.width - gap * (k - 1)) / k);
    let cell_w = fair_w.min(even_down(strip_h * 16 / 9)).max(0);
    let mut strip = row_cells(canvas.width, strip_y, k, cell_w, strip_h, gap).into_iter().zip(shown.iter().copied());

    let mut out = Vec::with_capacity(1 + shown.len());
    for (i, tile) in tiles.iter().enumerate() {
        if i == large {
            out.push(place(tile, large_cell, 0));
        } else if shown.contains(&i) {
            // `shown` is in caller order, so the strip cells are consumed in order.
            let (cell, j) = strip.next().expect("one strip cell per shown tile");
            debug_assert_eq!(i, j);
            out.push(place(tile, cell, 1));
        }
    }
    out
}

/// `count` cells of `cell_w` x `cell_h` with `gap` between them, in a row at
/// `y`, centred on a canvas `width` wide.
fn row_cells(width: i32, y: i32, count: i32, cell_w: i32, cell_h: i32, gap: i32) -> Vec<Rect> {
    let row_w = count * cell_w + (count - 1).max(0) * gap;
    let x0 = even_down((width - row_w) / 2).max(0);
    (0..count).map(|c| Rect::new(x0 + c * (cell_w + gap), y, cell_w, cell_h)).collect()
}

fn place(tile: &Tile, cell: Rect, zorder: u32) -> Placement {
    Placement { id: tile.id, cell, picture: fit(cell, aspect(tile)), zorder }
}

/// The tile's aspect (width, height), 16:9 when unknown or degenerate.
fn aspect(tile: &Tile) -> (i64, i64) {
    match tile.size {
        Some((w, h)) if w > 0 && h > 0 => (i64::from(w), i64::from(h)),
        _ => DEFAULT_ASPECT,
    }
}

/// The largest even-sized rectangle of aspect `aw:ah` inside `cell`, centred.
fn fit(cell: Rect, (aw, ah): (i64, i64)) -> Rect {
    let (cw, ch) = (i64::from(cell.width), i64::from(cell.height));
    let (w, h) = if aw * ch >= ah * cw {
        // Wider than the cell: full width, letterboxed.
        (cw, round_even(cw * ah, aw).clamp(2.min(ch), ch))
    } else {
        // Taller than the cell: full height, pillarboxed.
        (round_even(ch * aw, ah).clamp(2.min(cw), cw), ch)
    };
    let (w, h) = (w as i32, h as i32);
    Rect::new(cell.x + even_down((cell.width - w) / 2), cell.y + even_down((cell.height - h) / 2), w, h)
}

/// `num / den` rounded to the nearest even integer (den > 0, num >= 0).
fn round_even(num: i64, den: i64) -> i64 {
    (num + den) / (2 * den) * 2
}

fn even_down(v: i32) -> i32 {
    v & !1
}

/// The smallest c with c * c >= n (n >= 1).
fn ceil_sqrt(n: i32) -> i32 {
    let mut c = 1;
    while c * c < n {
        c += 1;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANVASES: [(u32, u32); 3] = [(1280, 720), (640, 480), (1920, 1080)];

    /// A mix of picture shapes: unknown, 16:9, 4:3, portrait phone, odd sizes, a wide screen share.
    fn tiles(n: usize) -> Vec<Tile> {
        let sizes = [None, Some((1280, 720)), Some((640, 480)), Some((720, 1280)), Some((641, 359)), Some((2560, 1080))];
        (0..n).map(|i| Tile { id: 100 + i as u64, size: sizes[i % sizes.len()], screen: i == 2 }).collect()
    }

    fn inside(r: Rect, outer: Rect) -> bool {
        r.x >= outer.x && r.y >= outer.y && r.x + r.width <= outer.x + outer.width && r.y + r.height <= outer.y + outer.height
    }

    fn overlap(a: Rect, b: Rect) -> bool {
        a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    }

    fn even(r: Rect) -> bool {
        r.x % 2 == 0 && r.y % 2 == 0 && r.width % 2 == 0 && r.height % 2 == 0
    }

    /// Every invariant every layout keeps, for one result.
    fn check(kind: LayoutKind, canvas: (u32, u32), tiles: &[Tile], placed: &[Placement]) {
        let ctx = format!("{kind} {canvas:?} n={}", tiles.len());
        let whole = Rect::new(0, 0, canvas.0 as i32, canvas.1 as i32);
        for (i, p) in placed.iter().enumerate() {
            let tile = tiles.iter().find(|t| t.id == p.id).unwrap_or_else(|| panic!("{ctx}: unknown id {}", p.id));
            assert!(p.cell.width > 0 && p.cell.height > 0, "{ctx}: empty cell {p:?}");
            assert!(inside(p.cell, whole), "{ctx}: cell outside the canvas {p:?}");
            assert!(inside(p.picture, p.cell), "{ctx}: picture outside its cell {p:?}");
            assert!(even(p.cell) && even(p.picture), "{ctx}: odd numbers {p:?}");
            for q in &placed[i + 1..] {
                assert!(!overlap(p.cell, q.cell), "{ctx}: cells overlap {p:?} {q:?}");
                assert_ne!(p.id, q.id, "{ctx}: placed twice");
            }
            // Fitted: the picture fills the cell's width or its height.
            assert!(p.picture.width == p.cell.width || p.picture.height == p.cell.height, "{ctx}: not fitted {p:?}");
            // Aspect within 1 % or 2 px of the tile's.
            let (aw, ah) = aspect(tile);
            let (pw, ph) = (f64::from(p.picture.width), f64::from(p.picture.height));
            let want_h = pw * ah as f64 / aw as f64;
            let want_w = ph * aw as f64 / ah as f64;
            let ok = (ph - want_h).abs() <= 2.0
                || (pw - want_w).abs() <= 2.0
                || ((pw / ph) / (aw as f64 / ah as f64) - 1.0).abs() <= 0.01;
            assert!(ok, "{ctx}: aspect of {p:?} is not {aw}:{ah}");
            // Centred: the margins on each side differ by at most 2 px (evenness).
            let left = p.picture.x - p.cell.x;
            let right = p.cell.x + p.cell.width - p.picture.x - p.picture.width;
            let top = p.picture.y - p.cell.y;
            let bottom = p.cell.y + p.cell.height - p.picture.y - p.picture.height;
            assert!((left - right).abs() <= 2 && (top - bottom).abs() <= 2, "{ctx}: not centred {p:?}");
        }
        // Caller order kept.
        let order: Vec<usize> = placed.iter().map(|p| tiles.iter().position(|t| t.id == p.id).unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{ctx}: order changed {order:?}");
    }

    #[test]
    fn every_layout_keeps_the_invariants_for_1_to_16_tiles_on_several_canvases() {
        for kind in LayoutKind::ALL {
            for canvas in CANVASES {
                for n in 1..=MAX_TILES {
                    let tiles = tiles(n);
                    for focus in [None, Some(100 + n as u64 - 1), Some(9999)] {
                        let placed = layout(kind, canvas, &tiles, focus);
                        check(kind, canvas, &tiles, &placed);
                        let expected = match kind {
                            LayoutKind::Grid => n,
                            _ => n.min(1 + MAX_STRIP_TILES),
                        };
                        assert_eq!(placed.len(), expected, "{kind} {canvas:?} n={n}");
                    }
                }
            }
        }
    }

    #[test]
    fn zero_tiles_place_nothing_and_more_than_16_place_the_first_16() {
        for kind in LayoutKind::ALL {
            assert!(layout(kind, (1280, 720), &[], None).is_empty());
        }
        let many = tiles(20);
        let placed = layout(LayoutKind::Grid, (1280, 720), &many, None);
        let ids: Vec<u64> = placed.iter().map(|p| p.id).collect();
        assert_eq!(ids, (100..116).collect::<Vec<_>>());
        check(LayoutKind::Grid, (1280, 720), &many, &placed);
    }

    /// (cells per row, from the top) of a grid result.
    fn rows(placed: &[Placement]) -> Vec<usize> {
        let mut rows: Vec<(i32, usize)> = Vec::new();
        for p in placed {
            match rows.last_mut() {
                Some((y, count)) if *y == p.cell.y => *count += 1,
                _ => rows.push((p.cell.y, 1)),
            }
        }
        rows.into_iter().map(|(_, c)| c).collect()
    }

    #[test]
    fn grid_shapes() {
        let canvas = (1280, 720);
        let one = layout(LayoutKind::Grid, canvas, &tiles(1), None);
        assert_eq!(one[0].cell, Rect::new(0, 0, 1280, 720));
        assert_eq!(one[0].picture, Rect::new(0, 0, 1280, 720), "an unknown size is 16:9 and fills 16:9");

        let two = layout(LayoutKind::Grid, canvas, &tiles(2), None);
        assert_eq!(rows(&two), [2]);
        assert!(two[0].cell.x < two[1].cell.x && two[0].cell.width == two[1].cell.width);
        assert_eq!(two[0].cell.width * 2 + 4, 1280, "side by side, a 4 px gap");

        let four = layout(LayoutKind::Grid, canvas, &tiles(4), None);
        assert_eq!(rows(&four), [2, 2]);
        assert_eq!(four[0].cell.x, four[2].cell.x);
        assert_eq!(four[1].cell.x, four[3].cell.x);

        let five = layout(LayoutKind::Grid, canvas, &tiles(5), None);
        assert_eq!(rows(&five), [3, 2]);
        // The last row centred: equal space left of its first and right of its last cell.
        let (a, b) = (five[3].cell, five[4].cell);
        let left = a.x;
        let right = 1280 - (b.x + b.width);
        assert!((left - right).abs() <= 2, "last row not centred: {left} vs {right}");
        assert!(left > 100, "last row starts at the left edge");
        assert_eq!(a.width, five[0].cell.width, "cells equal");

        let nine = layout(LayoutKind::Grid, canvas, &tiles(9), None);
        assert_eq!(rows(&nine), [3, 3, 3]);

        let ten = layout(LayoutKind::Grid, canvas, &tiles(10), None);
        assert_eq!(rows(&ten), [4, 4, 2]);
        let sixteen = layout(LayoutKind::Grid, canvas, &tiles(16), None);
        assert_eq!(rows(&sixteen), [4, 4, 4, 4]);
    }

    #[test]
    fn picture_is_letterboxed_or_pillarboxed_in_its_cell() {
        // A 4:3 picture in a 1280x720 cell: pillarboxed 960x720, centred.
        let t = [Tile { id: 1, size: Some((640, 480)), screen: false }];
        let p = &layout(LayoutKind::Grid, (1280, 720), &t, None)[0];
        assert_eq!(p.picture, Rect::new(160, 0, 960, 720));
        // A portrait phone in a 640x480 canvas.
        let t = [Tile { id: 1, size: Some((720, 1280)), screen: false }];
        let p = &layout(LayoutKind::Grid, (640, 480), &t, None)[0];
        assert_eq!(p.picture, Rect::new(184, 0, 270, 480));
        // A very wide picture: letterboxed.
        let t = [Tile { id: 1, size: Some((2560, 720)), screen: false }];
        let p = &layout(LayoutKind::Grid, (1280, 720), &t, None)[0];
        assert_eq!(p.picture, Rect::new(0, 180, 1280, 360));
    }

    fn large(placed: &[Placement]) -> &Placement {
        let zero: Vec<&Placement> = placed.iter().filter(|p| p.zorder == 0).collect();
        assert_eq!(zero.len(), 1, "one large tile: {placed:?}");
        zero[0]
    }

    #[test]
    fn speaker_puts_the_focus_large_on_top_and_the_others_in_the_bottom_strip() {
        let canvas = (1280, 720);
        let t = tiles(4);
        let placed = layout(LayoutKind::Speaker, canvas, &t, Some(102));
        let big = large(&placed);
        assert_eq!(big.id, 102);
        assert_eq!(big.cell, Rect::new(0, 0, 1280, 572));
        let strip: Vec<&Placement> = placed.iter().filter(|p| p.zorder == 1).collect();
        assert_eq!(strip.iter().map(|p| p.id).collect::<Vec<_>>(), [100, 101, 103]);
        for p in &strip {
            assert_eq!((p.cell.y, p.cell.height), (576, 144), "strip is the bottom fifth");
            assert!(p.cell.y >= big.cell.y + big.cell.height);
        }
        // No focus, or an unknown one: the first tile.
        assert_eq!(large(&layout(LayoutKind::Speaker, canvas, &t, None)).id, 100);
        assert_eq!(large(&layout(LayoutKind::Speaker, canvas, &t, Some(7))).id, 100);
        // Alone: the whole canvas.
        let alone = layout(LayoutKind::Speaker, canvas, &t[..1], None);
        assert_eq!(alone[0].cell, Rect::new(0, 0, 1280, 720));
        // Two: the strip cell is 16:9 of the strip height, centred, not half the width.
        let two = layout(LayoutKind::Speaker, canvas, &t[..2], None);
        assert_eq!(two[1].cell, Rect::new(512, 576, 256, 144));
    }

    #[test]
    fn speaker_strip_shows_at_most_six() {
        let t = tiles(12);
        let placed = layout(LayoutKind::Speaker, (1280, 720), &t, Some(111));
        assert_eq!(large(&placed).id, 111);
        let strip: Vec<u64> = placed.iter().filter(|p| p.zorder == 1).map(|p| p.id).collect();
        assert_eq!(strip, [100, 101, 102, 103, 104, 105]);
    }

    #[test]
    fn screen_puts_the_first_screen_tile_large() {
        let canvas = (1920, 1080);
        let mut t = tiles(5);
        t[3].screen = true; // tiles 102 and 103 are screens; 102 comes first
        let placed = layout(LayoutKind::Screen, canvas, &t, Some(104));
        assert_eq!(large(&placed).id, 102, "the first screen, whoever speaks");
        assert_eq!(placed.iter().filter(|p| p.zorder == 1).map(|p| p.id).collect::<Vec<_>>(), [100, 101, 103, 104]);
        // No screen: the same as speaker.
        let cams: Vec<Tile> = t.iter().map(|x| Tile { screen: false, ..x.clone() }).collect();
        assert_eq!(layout(LayoutKind::Screen, canvas, &cams, Some(104)), layout(LayoutKind::Speaker, canvas, &cams, Some(104)));
        assert_eq!(large(&layout(LayoutKind::Screen, canvas, &cams, Some(104))).id, 104);
    }

    #[test]
    fn screen_strip_keeps_the_speaker_visible_when_full() {
        let t = tiles(12); // 102 is the screen
        let placed = layout(LayoutKind::Screen, (1280, 720), &t, Some(110));
        assert_eq!(large(&placed).id, 102);
        let strip: Vec<u64> = placed.iter().filter(|p| p.zorder == 1).map(|p| p.id).collect();
        assert_eq!(strip, [100, 101, 103, 104, 105, 110]);
        let strip: Vec<u64> =
            layout(LayoutKind::Screen, (1280, 720), &t, Some(101)).iter().filter(|p| p.zorder == 1).map(|p| p.id).collect();
        assert_eq!(strip, [100, 101, 103, 104, 105, 106]);
    }

    #[test]
    fn odd_and_tiny_canvases_do_not_panic_and_stay_inside() {
        for canvas in [(641, 481), (2, 2), (0, 0), (1, 1), (33, 17)] {
            for kind in LayoutKind::ALL {
                for n in [1, 2, 5, 16] {
                    let placed = layout(kind, canvas, &tiles(n), None);
                    let whole = Rect::new(0, 0, canvas.0 as i32, canvas.1 as i32);
                    for p in &placed {
                        assert!(inside(p.cell, whole) && inside(p.picture, p.cell), "{kind} {canvas:?} {p:?}");
                        assert!(even(p.cell) && even(p.picture));
                    }
                }
            }
        }
        check(LayoutKind::Grid, (641, 481), &tiles(5), &layout(LayoutKind::Grid, (641, 481), &tiles(5), None));
    }

    #[test]
    fn layout_kind_names() {
        for kind in LayoutKind::ALL {
            assert_eq!(kind.as_str().parse::<LayoutKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        let err = "Grid".parse::<LayoutKind>().unwrap_err();
        assert!(err.contains("grid, speaker, screen"), "{err}");
        assert_eq!(LayoutKind::default(), LayoutKind::Grid);
    }
}
