//! What keeps a flood from writing the log: repeats of one event within a short window
//! are one line and, when the window closes, a `repeated` line with their count; routine
//! lines past a rate limit are counted and summarised in an `events_suppressed` line.
//! Evidence (detections, blocks, lookalikes gone live, the agent's own state) is never
//! limited; a dropped answer's repeats (TCP retransmissions) are folded all the same,
//! since the first copy is the evidence and the count says the rest.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, Instant, SystemTime},
};

use crate::output::{clock::rfc3339, schema::Event};

/// Most repeat windows open at once; past it the oldest closes early (its line written).
pub const MAX_WINDOWS: usize = 4096;
/// Seconds of the rate limit a burst may use at once.
pub const BURST_SECS: u32 = 10;
/// How often an `events_suppressed` line is written while lines are being suppressed.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The limits.
#[derive(Debug, Clone, Copy)]
pub struct GateSettings {
    /// Routine lines per second.
    pub rate_limit: u32,
    /// Repeats within this window are folded (zero: never).
    pub repeat_window: Duration,
}

/// What to do with one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write it.
    Write,
    /// A repeat inside its window: counted, written later as part of a `repeated` line.
    Folded,
    /// Over the rate limit: counted.
    Suppressed,
}

struct Window {
    opened: Instant,
    generation: u64,
    count: u64,
    first_ts: SystemTime,
    last_ts: SystemTime,
    kept: bool,
}

/// The repeat windows, the token bucket and the suppression tally.
pub struct Gate {
    settings: GateSettings,
    /// Keyed by the event's JSON (without time and host): equal lines are repeats.
    windows: HashMap<String, Window>,
    /// Window keys in the order they opened, with their generation (stale entries skipped).
    order: VecDeque<(String, u64)>,
    generation: u64,
    tokens: f64,
    refilled: Instant,
    suppressed: BTreeMap<&'static str, u64>,
    suppressed_since: Option<SystemTime>,
    summarised: Instant,
}

impl Gate {
    /// A gate with `settings`, full of tokens.
    pub fn new(settings: GateSettings, now: Instant) -> Self {
        Self {
            settings,
            windows: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            tokens: f64::from(settings.rate_limit.max(1) * BURST_SECS),
            refilled: now,
            suppressed: BTreeMap::new(),
            suppressed_since: None,
            summarised: now,
        }
    }

    /// Decides on `event` (stamped `ts`); lines for windows it closed go to `out`.
    pub fn admit(
        &mut self,
        event: &Event,
        ts: SystemTime,
        now: Instant,
        out: &mut Vec<Event>,
    ) -> Admit {
        // Over the limit, a routine line is suppressed before anything else is spent on
        // it (serialising it to find its repeats is most of a flood's cost here).
        let routine = !event.kept();
        if routine && !self.take_token(now) {
            *self.suppressed.entry(event.name()).or_default() += 1;
            self.suppressed_since.get_or_insert(ts);
            return Admit::Suppressed;
        }
        let fold = event.folds_repeats() && !self.settings.repeat_window.is_zero();
        let key = if fold {
            serde_json::to_string(event).ok()
        } else {
            None
        };
        if let Some(k) = &key
            && let Some(w) = self.windows.get_mut(k)
        {
            if now.duration_since(w.opened) < self.settings.repeat_window {
                w.count += 1;
                if w.count == 1 {
                    w.first_ts = ts;
                }
                w.last_ts = ts;
                if routine {
                    self.tokens += 1.0; // a folded repeat costs no line
                }
                return Admit::Folded;
            }
            self.close(k, out);
        }
        if let Some(k) = key {
            if self.windows.len() >= MAX_WINDOWS {
                self.close_oldest(out);
            }
            self.generation += 1;
            self.order.push_back((k.clone(), self.generation));
            self.windows.insert(
                k,
                Window {
                    opened: now,
                    generation: self.generation,
                    count: 0,
                    first_ts: ts,
                    last_ts: ts,
                    kept: event.kept(),
                },
            );
        }
        Admit::Write
    }

    fn take_token(&mut self, now: Instant) -> bool {
        let rate = f64::from(self.settings.rate_limit.max(1));
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate * f64::from(BURST_SECS));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Closes the window of `key`, with a `repeated` line if anything repeated.
    fn close(&mut self, key: &str, out: &mut Vec<Event>) {
        let Some(w) = self.windows.remove(key) else {
            return;
        };
        if w.count > 0 {
            out.push(Event::Repeated {
                of: serde_json::from_str(key).unwrap_or_default(),
                count: w.count,
                first_ts: rfc3339(w.first_ts),
                last_ts: rfc3339(w.last_ts),
                window_secs: self.settings.repeat_window.as_secs(),
                kept: w.kept,
            });
        }
    }

    fn close_oldest(&mut self, out: &mut Vec<Event>) {
        while let Some((k, generation)) = self.order.pop_front() {
            if self
                .windows
                .get(&k)
                .is_some_and(|w| w.generation == generation)
            {
                self.close(&k, out);
                return;
            }
        }
    }

    /// Closes the windows that ran out and, every [`SUMMARY_EVERY`], says what was
    /// suppressed; `all` closes everything (the agent is stopping).
    pub fn due(&mut self, now: Instant, all: bool, out: &mut Vec<Event>) {
        while let Some((k, generation)) = self.order.front().cloned() {
            let current = self.windows.get(&k).filter(|w| w.generation == generation);
            match current {
                Some(w) if !all && now.duration_since(w.opened) < self.settings.repeat_window => {
                    break;
                }
                Some(_) => self.close(&k, out),
                None => {}
            }
            self.order.pop_front();
        }
        if !self.suppressed.is_empty()
            && (all || now.duration_since(self.summarised) >= SUMMARY_EVERY)
        {
            out.push(Event::EventsSuppressed {
                counts: std::mem::take(&mut self.suppressed),
                since: self
                    .suppressed_since
                    .take()
                    .map(rfc3339)
                    .unwrap_or_default(),
                rate_limit: self.settings.rate_limit,
            });
            self.summarised = now;
        }
    }
}
