//! Fault injection: outages, hangs, refused connections and 429 storms, in timed windows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::watch;

/// How the stub misbehaves while a fault window is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Behave normally.
    #[default]
    None,
    /// Answer every API request 503.
    Unavailable,
    /// Answer every API request 502.
    BadGateway,
    /// Answer every API request 504.
    GatewayTimeout,
    /// Stop listening (connections are refused) and listen on the same port
    /// again when the window ends; open connections are dropped.
    Refuse,
    /// Accept requests but answer none until the window ends.
    Hang,
}

/// A fault setting: `PUT /admin/faults`, `set_faults`, or `STUB_FAULTS` at start.
///
/// Every field is optional in JSON; `{}` means "no faults".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// What the stub does while the window is open.
    pub mode: FaultMode,
    /// How long the window stays open; then everything returns to normal by
    /// itself. `None`: until the next setting.
    pub duration_ms: Option<u64>,
    /// Share (0.0–1.0) of API requests answered 503 at random while open.
    pub error_rate: f64,
    /// Added to every API answer while open, in milliseconds.
    pub latency_ms: u64,
    /// Answer every API request 429 with Retry-After for this long from when
    /// the setting takes effect, spending no budget.
    pub storm_429_ms: Option<u64>,
    /// Wait this long before the setting takes effect (until then: no faults).
    pub start_after_ms: Option<u64>,
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Self {
        Faults::default()
    }
    /// `mode` for `duration_ms` (or until changed, when `None`).
    pub fn mode(mode: FaultMode, duration_ms: Option<u64>) -> Self {
        Faults { mode, duration_ms, ..Faults::default() }
    }
    /// Checks the values a JSON body may get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("error_rate {} is not between 0 and 1", self.error_rate));
        }
        Ok(())
    }
}

/// The faults in force right now, as the gate and the accept loop see them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Active {
    pub faults: Faults,
    /// When the storm of 429s ends, if one was asked for.
    pub storm_until: Option<Instant>,
}

impl Active {
    /// Whether any fault is in force: requests arriving now are "dark calls".
    pub fn is_dark(&self, now: Instant) -> bool {
        let f = &self.faults;
        f.mode != FaultMode::None || f.error_rate > 0.0 || f.latency_ms > 0 || self.storm_left(now).is_some()
    }
    /// Time left in the 429 storm, if one is raging.
    pub fn storm_left(&self, now: Instant) -> Option<Duration> {
        self.storm_until.filter(|&u| u > now).map(|u| u - now)
    }
}

/// Holds the current faults and ends timed windows by itself.
pub(crate) struct FaultSwitch {
    tx: watch::Sender<Active>,
    /// The configured setting (what the admin endpoint reports).
    configured: std::sync::Mutex<Faults>,
    /// Bumped on every setting, so a stale timer never undoes a newer one.
    generation: AtomicU64,
    rt: Handle,
}

impl FaultSwitch {
    /// A switch with no faults; call [`FaultSwitch::set`] for the start setting.
    pub fn new(rt: Handle) -> Arc<Self> {
        let (tx, _) = watch::channel(Active::default());
        Arc::new(FaultSwitch {
            tx,
            configured: std::sync::Mutex::new(Faults::none()),
            generation: AtomicU64::new(0),
            rt,
        })
    }

    /// The faults in force now.
    pub fn active(&self) -> Active {
        self.tx.borrow().clone()
    }

    /// A receiver that wakes whenever the faults in force change.
    pub fn subscribe(&self) -> watch::Receiver<Active> {
        self.tx.subscribe()
    }

    /// The last setting given (including its timing fields).
    pub fn configured(&self) -> Faults {
        crate::util::lock(&self.configured).clone()
    }

    /// Replaces the current setting; timers apply and end it as it asks.
    pub fn set(self: &Arc<Self>, f: Faults) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *crate::util::lock(&self.configured) = f.clone();
        match f.start_after_ms {
            Some(ms) if ms > 0 => {
                // Until the delayed setting starts, the stub behaves normally.
                self.publish(generation, Active::default());
                let me = Arc::clone(self);
                self.rt.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    me.apply(generation, f);
                });
            }
            _ => self.apply(generation, f),
        }
    }

    fn apply(self: &Arc<Self>, generation: u64, f: Faults) {
        let now = Instant::now();
        let storm_until = f.storm_429_ms.map(|ms| now + Duration::from_millis(ms));
        let duration = f.duration_ms.map(Duration::from_millis);
        if !self.publish(generation, Active { faults: f, storm_until }) {
            return;
        }
        if let Some(d) = duration {
            let me = Arc::clone(self);
            self.rt.spawn(async move {
                tokio::time::sleep(d).await;
                // The window is over; a storm asked for separately runs its own course.
                me.publish(generation, Active { faults: Faults::none(), storm_until });
            });
        }
    }

    /// Publishes `a` unless a newer setting has replaced this generation.
    fn publish(&self, generation: u64, a: Active) -> bool {
        if self.generation.load(Ordering::SeqCst) != generation {
            return false;
        }
        self.tx.send_replace(a);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_partial_json_and_reject_typos() {
        let f: Faults = serde_json::from_str(r#"{"mode":"bad_gateway","duration_ms":500}"#).expect("valid");
        assert_eq!(f.mode, FaultMode::BadGateway);
        assert_eq!(f.duration_ms, Some(500));
        assert_eq!(serde_json::from_str::<Faults>("{}").expect("empty is none"), Faults::none());
        assert!(serde_json::from_str::<Faults>(r#"{"mdoe":"hang"}"#).is_err());
        assert!(Faults { error_rate: 1.5, ..Faults::none() }.validate().is_err());
    }

    #[tokio::test]
    async fn a_timed_window_ends_by_itself_and_a_newer_setting_wins() {
        let sw = FaultSwitch::new(Handle::current());
        sw.set(Faults::mode(FaultMode::Unavailable, Some(50)));
        assert_eq!(sw.active().faults.mode, FaultMode::Unavailable);
        let mut rx = sw.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|a| a.faults.mode == FaultMode::None))
            .await
            .expect("the window ends within its duration")
            .expect("the switch is alive");
        sw.set(Faults::mode(FaultMode::Hang, Some(30)));
        sw.set(Faults::mode(FaultMode::BadGateway, None));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(sw.active().faults.mode, FaultMode::BadGateway, "the stale timer changed nothing");
    }
}
