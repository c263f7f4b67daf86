//! STUB (replaced by the layout branch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayoutKind { #[default] Grid, Speaker, Screen }
impl LayoutKind { pub fn as_str(&self) -> &'static str { match self { LayoutKind::Grid => "grid", LayoutKind::Speaker => "speaker", LayoutKind::Screen => "screen" } } }
impl std::fmt::Display for LayoutKind { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) } }
impl std::str::FromStr for LayoutKind { type Err = String; fn from_str(s: &str) -> Result<Self, String> { match s { "grid" => Ok(LayoutKind::Grid), "speaker" => Ok(LayoutKind::Speaker), "screen" => Ok(LayoutKind::Screen), o => Err(format!("unknown layout {o:?}")) } } }
#[derive(Debug, Clone, Copy, PartialEq, Eq)] pub struct Rect { pub x: i32, pub y: i32, pub width: i32, pub height: i32 }
#[derive(Debug, Clone, PartialEq, Eq)] pub struct Tile { pub id: u64, pub size: Option<(u32, u32)>, pub screen: bool }
#[derive(Debug, Clone, PartialEq, Eq)] pub struct Placement { pub id: u64, pub cell: Rect, pub picture: Rect, pub zorder: u32 }
pub const MAX_TILES: usize = 16;
pub fn layout(_kind: LayoutKind, canvas: (u32, u32), tiles: &[Tile], _focus: Option<u64>) -> Vec<Placement> {
    let n = tiles.len().min(MAX_TILES); if n == 0 { return vec![]; }
    let cols = (n as f64).sqrt().ceil() as i32; let rows = (n as i32 + cols - 1) / cols;
    let (w, h) = (canvas.0 as i32 / cols, canvas.1 as i32 / rows);
    tiles.iter().take(n).enumerate().map(|(i, t)| { let r = Rect { x: (i as i32 % cols) * w, y: (i as i32 / cols) * h, width: w & !1, height: h & !1 }; Placement { id: t.id, cell: r, picture: r, zorder: 1 } }).collect()
}
