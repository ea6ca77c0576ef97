//! A veth pair whose far end sits in a network namespace made by the test:
//! `10.250.<octet>.1/30` on the host end, `.2` in the namespace, no default
//! route, so traffic never leaves the pair. Each test binary uses its own
//! octet, so that tests running at once do not share a subnet.

use super::process::sh;

pub struct Veth {
    /// The namespace (the far end lives there).
    pub ns: String,
    /// The host end, where zonewatch captures.
    pub host_if: String,
    /// `10.250.<octet>.1`, the host end's address.
    pub host_ip: String,
}

impl Veth {
    /// Makes the pair (`tag` and the process id name it); `None` if any
    /// step failed (no root, no iproute2), with what was made removed.
    pub fn create(tag: &str, octet: u8) -> Option<Veth> {
        let id = std::process::id() % 100_000;
        let ns = format!("zw{tag}{id}");
        let host_if = format!("zw{tag}h{id}");
        let peer_if = format!("zw{tag}p{id}");
        let v = Veth {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host_ip: format!("10.250.{octet}.1"),
        };
        let ok = sh(&["ip", "netns", "add", &ns])
            && sh(&[
                "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
            ])
            && sh(&["ip", "link", "set", &peer_if, "netns", &ns])
            && sh(&[
                "ip",
                "addr",
                "add",
                &format!("{}/30", v.host_ip),
                "dev",
                &host_if,
            ])
            && sh(&["ip", "link", "set", &host_if, "up"])
            && sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.250.{octet}.2/30"),
                "dev",
                &peer_if,
            ])
            && sh(&["ip", "-n", &ns, "link", "set", &peer_if, "up"])
            && sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        ok.then_some(v)
    }

    /// Runs a Python program in the namespace; whether it succeeded.
    pub fn python(&self, program: &str) -> bool {
        sh(&["ip", "netns", "exec", &self.ns, "python3", "-c", program])
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        sh(&["ip", "link", "del", &self.host_if]);
        sh(&["ip", "netns", "del", &self.ns]);
    }
}
