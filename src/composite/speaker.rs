//! STUB (replaced by the layout branch).
use std::time::Duration;
#[derive(Debug, Clone)] pub struct SpeakerConfig { pub floor_db: f64, pub margin_db: f64, pub hold: Duration, pub min_dwell: Duration, pub smoothing: Duration }
impl Default for SpeakerConfig { fn default() -> Self { SpeakerConfig { floor_db: -50.0, margin_db: 6.0, hold: Duration::from_secs(1), min_dwell: Duration::from_secs(2), smoothing: Duration::from_millis(300) } } }
#[derive(Debug, Default)] pub struct ActiveSpeaker { current: Option<u64>, changed: bool }
impl ActiveSpeaker {
    pub fn new(_config: SpeakerConfig) -> Self { ActiveSpeaker::default() }
    pub fn on_level(&mut self, id: u64, rms_db: f64, _now: Duration) { if self.current.is_none() && rms_db > -50.0 { self.current = Some(id); self.changed = true; } }
    pub fn remove(&mut self, id: u64) { if self.current == Some(id) { self.current = None; self.changed = true; } }
    pub fn current(&self) -> Option<u64> { self.current }
    pub fn take_changed(&mut self) -> bool { std::mem::take(&mut self.changed) }
}
