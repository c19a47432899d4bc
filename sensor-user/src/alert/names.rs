//! The alerts the agent pushes itself. Each is named exactly as the PrometheusRule that
//! fires the same alert from the metrics, so Alertmanager groups and deduplicates the
//! push with the rule (a unit test reads both rule files).

use crate::output::Severity;

/// An alert the agent pushes directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertName {
    /// A delivery to a lookalike was attempted (let through).
    LookalikeDeliveryAttempted,
    /// A delivery to a lookalike was refused (connect or DNS answer).
    DeliveryBlocked,
    /// A lookalike that did not resolve before now does.
    LookalikeWentLive,
}

impl AlertName {
    /// Every pushed alert.
    pub const ALL: [AlertName; 3] = [
        AlertName::LookalikeDeliveryAttempted,
        AlertName::DeliveryBlocked,
        AlertName::LookalikeWentLive,
    ];

    /// The `alertname` label, equal to the rule's `alert:` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertName::LookalikeDeliveryAttempted => "MxsentryLookalikeDeliveryAttempted",
            AlertName::DeliveryBlocked => "MxsentryDeliveryBlocked",
            AlertName::LookalikeWentLive => "MxsentryLookalikeWentLive",
        }
    }

    /// The severity the rule gives it.
    pub const fn severity(self) -> Severity {
        match self {
            AlertName::LookalikeDeliveryAttempted | AlertName::DeliveryBlocked => Severity::Warning,
            AlertName::LookalikeWentLive => Severity::Critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AlertName;

    const RULE_FILES: [(&str, &str); 2] = [
        (
            "deploy/prometheus/mxsentry-rules.yml",
            include_str!("../../../deploy/prometheus/mxsentry-rules.yml"),
        ),
        (
            "deploy/kubernetes/base/prometheusrule.yaml",
            include_str!("../../../deploy/kubernetes/base/prometheusrule.yaml"),
        ),
    ];

    /// The `severity:` label of rule `name` in `text`, if the rule is there.
    fn rule_severity(text: &str, name: &str) -> Option<String> {
        let start = text.find(&format!("alert: {name}\n"))?;
        let rest = &text[start..];
        let end = rest[1..].find("alert: ").map_or(rest.len(), |i| i + 1);
        rest[..end]
            .lines()
            .find_map(|l| l.trim().strip_prefix("severity: "))
            .map(|s| s.trim().to_string())
    }

    #[test]
    fn pushed_alerts_match_the_rules() {
        for (file, text) in RULE_FILES {
            for a in AlertName::ALL {
                let severity = rule_severity(text, a.as_str())
                    .unwrap_or_else(|| panic!("{file} has no rule {}", a.as_str()));
                assert_eq!(
                    severity,
                    a.severity().name(),
                    "{file}: severity of {}",
                    a.as_str()
                );
            }
        }
    }
}
