//! The alert every detector raises.

use std::net::IpAddr;
use zonewatch_types::Timestamp;

/// `alert.category`: exactly one of these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// `Port Scan`
    PortScan,
    /// `Flood`
    Flood,
    /// `DNS Tunnel`
    DnsTunnel,
    /// `Beaconing`
    Beaconing,
    /// `Volume Anomaly`
    VolumeAnomaly,
    /// `Protocol Anomaly`
    ProtocolAnomaly,
    /// `Zone Policy Violation`
    ZonePolicyViolation,
    /// `Denial of Service`
    DenialOfService,
}

impl Category {
    /// The text written in `alert.category`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::PortScan => "Port Scan",
            Category::Flood => "Flood",
            Category::DnsTunnel => "DNS Tunnel",
            Category::Beaconing => "Beaconing",
            Category::VolumeAnomaly => "Volume Anomaly",
            Category::ProtocolAnomaly => "Protocol Anomaly",
            Category::ZonePolicyViolation => "Zone Policy Violation",
            Category::DenialOfService => "Denial of Service",
        }
    }
}

/// An alert from a detector.
///
/// `signature_id` is stable per detector and sub-type (9 000 000 – 9 000 999, see
/// `docs/detectors.md`); `severity` is Suricata's 1 (highest) – 4. An ongoing scan or flood
/// gives one alert (`update == false`) and then periodic updates (`update == true`, same
/// signature id, same src/dst) carrying the evidence so far.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyAlert {
    /// Time of the observation (or tick) that raised it.
    pub ts: Timestamp,
    /// Detector name (`portscan`, `flood`, `dns-tunnel`, `beaconing`, `volume`,
    /// `protocol-anomaly`, `zone-policy`).
    pub detector: &'static str,
    /// Category.
    pub category: Category,
    /// Signature text (`ZW SCAN TCP SYN vertical port scan`).
    pub signature: String,
    /// Stable signature id.
    pub signature_id: u32,
    /// Severity 1–4 (1 highest).
    pub severity: u8,
    /// The actor: scanner, flood/reflection victim's attacker side, DNS client, beacon
    /// source, host with the anomalous volume, flow client.
    pub src_ip: IpAddr,
    /// The target, when there is one.
    pub dest_ip: Option<IpAddr>,
    /// Source port, when the alert is about one flow.
    pub src_port: Option<u16>,
    /// Destination port, when meaningful.
    pub dest_port: Option<u16>,
    /// IP protocol, when meaningful.
    pub proto: Option<u8>,
    /// Whether this is a periodic update of an alert raised before.
    pub update: bool,
    /// Evidence: counts, window, samples, baseline vs observed.
    pub evidence: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_the_exact_strings() {
        assert_eq!(
            Category::ZonePolicyViolation.as_str(),
            "Zone Policy Violation"
        );
        assert_eq!(Category::DnsTunnel.as_str(), "DNS Tunnel");
        assert_eq!(Category::VolumeAnomaly.as_str(), "Volume Anomaly");
    }
}
