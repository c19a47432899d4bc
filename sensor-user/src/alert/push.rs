//! A queue of alerts pushed to Alertmanager's v2 API, with retries and backoff.

use std::time::{Duration, SystemTime};

use prometheus::IntCounterVec;
use serde::Serialize;
use tokio::sync::mpsc;

use super::alertmanager::Alertmanager;
use crate::output::{clock::rfc3339, schema::PushResult};

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// alertname, severity, host, target, rule, action.
    pub labels: std::collections::BTreeMap<String, String>,
    /// lookalike, process, explanation.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// When it started.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// When it resolves unless pushed again.
    #[serde(rename = "endsAt")]
    pub ends_at: String,
}

impl Alert {
    /// An alert starting now and resolving after `resolve_after`.
    pub fn new(
        labels: &[(&str, &str)],
        annotations: &[(&str, String)],
        resolve_after: Duration,
    ) -> Self {
        let now = SystemTime::now();
        Self {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            starts_at: rfc3339(now),
            ends_at: rfc3339(now + resolve_after),
        }
    }
}

/// Sends alerts in the background; `send` never blocks the pipeline.
#[derive(Clone)]
pub struct Pusher {
    tx: mpsc::Sender<Alert>,
    /// `mxsentry_alert_pushes_total{result}`.
    pushes: IntCounterVec,
}

/// Queue length: beyond this, alerts are dropped (and counted) rather than delaying events.
const QUEUE: usize = 1024;

impl Pusher {
    /// Starts the background task pushing to `endpoint`.
    pub fn start(
        endpoint: Alertmanager,
        attempts: u32,
        backoff: Duration,
        pushes: IntCounterVec,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Alert>(QUEUE);
        let m = pushes.clone();
        tokio::spawn(async move {
            while let Some(alert) = rx.recv().await {
                let body = match serde_json::to_vec(&[&alert]) {
                    Ok(b) => b,
                    Err(e) => {
                        log::warn!("alert not serialisable: {e}");
                        continue;
                    }
                };
                let mut delay = backoff;
                let mut ok = false;
                for attempt in 1..=attempts.max(1) {
                    match endpoint
                        .post_json("/api/v2/alerts", &body, Duration::from_secs(2))
                        .await
                    {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(e) => {
                            log::warn!(
                                "Alertmanager push attempt {attempt}/{attempts} failed: {e}"
                            );
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(30));
                        }
                    }
                }
                let result = if ok {
                    PushResult::Ok
                } else {
                    PushResult::Failed
                };
                m.with_label_values(&[result.name()]).inc();
            }
        });
        Self { tx, pushes }
    }

    /// Queues an alert; a full queue drops it and counts the drop.
    pub fn send(&self, alert: Alert) {
        if self.tx.try_send(alert).is_err() {
            self.pushes
                .with_label_values(&[PushResult::Dropped.name()])
                .inc();
            log::warn!("Alertmanager queue full: alert dropped (counted)");
        }
    }
}
