//! The `vars` table: address groups and port groups by name, with
//! Suricata 7's defaults from `suricata.yaml`, overridable by
//! `vars.address-groups.NAME` / `vars.port-groups.NAME` pairs.
//!
//! Every variable is compiled once when the table is built (variables may
//! refer to other variables; each is compiled at most once, and cycles are
//! errors), so a rule header costs one parse of its own text.
//!
//! As in Suricata, a variable whose value is invalid is reported but does
//! not stop the others: [`Vars::build`] returns the table together with the
//! errors, and a rule that uses the bad variable gets
//! [`GroupErrorKind::InvalidVar`](crate::GroupErrorKind::InvalidVar).

use std::collections::BTreeMap;
use std::fmt;

use crate::addr::{parse_address_with, AddressSet};
use crate::group::{GroupError, VarRefError, MAX_DEPTH};
use crate::port::{parse_port_with, PortSet};

/// Suricata 7's default `vars.address-groups`.
pub const DEFAULT_ADDRESS_GROUPS: &[(&str, &str)] = &[
    ("HOME_NET", "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"),
    ("EXTERNAL_NET", "!$HOME_NET"),
    ("HTTP_SERVERS", "$HOME_NET"),
    ("SMTP_SERVERS", "$HOME_NET"),
    ("SQL_SERVERS", "$HOME_NET"),
    ("DNS_SERVERS", "$HOME_NET"),
    ("TELNET_SERVERS", "$HOME_NET"),
    ("AIM_SERVERS", "$EXTERNAL_NET"),
    ("DC_SERVERS", "$HOME_NET"),
    ("DNP3_SERVER", "$HOME_NET"),
    ("DNP3_CLIENT", "$HOME_NET"),
    ("MODBUS_CLIENT", "$HOME_NET"),
    ("MODBUS_SERVER", "$HOME_NET"),
    ("ENIP_CLIENT", "$HOME_NET"),
    ("ENIP_SERVER", "$HOME_NET"),
];

/// Suricata 7's default `vars.port-groups`.
pub const DEFAULT_PORT_GROUPS: &[(&str, &str)] = &[
    ("HTTP_PORTS", "80"),
    ("SHELLCODE_PORTS", "!80"),
    ("ORACLE_PORTS", "1521"),
    ("SSH_PORTS", "22"),
    ("DNP3_PORTS", "20000"),
    ("MODBUS_PORTS", "502"),
    ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
    ("FTP_PORTS", "21"),
    ("GENEVE_PORTS", "6081"),
    ("VXLAN_PORTS", "4789"),
    ("TEREDO_PORTS", "3544"),
];

/// Which table a variable belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    /// `vars.address-groups`.
    Address,
    /// `vars.port-groups`.
    Port,
}

impl fmt::Display for VarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VarKind::Address => "vars.address-groups",
            VarKind::Port => "vars.port-groups",
        })
    }
}

/// A variable whose value does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}.{name} = \"{value}\": {error}")]
pub struct VarError {
    /// Address or port group.
    pub kind: VarKind,
    /// Variable name (without `$`).
    pub name: String,
    /// Its value as given.
    pub value: String,
    /// What is wrong with it; the column is in `value`.
    pub error: GroupError,
}

/// Compiled address and port variables.
#[derive(Debug, Clone)]
pub struct Vars {
    address_src: BTreeMap<String, String>,
    port_src: BTreeMap<String, String>,
    address: BTreeMap<String, Option<AddressSet>>,
    port: BTreeMap<String, Option<PortSet>>,
}

impl Default for Vars {
    fn default() -> Self {
        Vars::suricata_defaults()
    }
}

fn norm_name(n: &str) -> String {
    n.trim().trim_start_matches('$').to_string()
}

type ParseFn<S> = fn(&str, &mut dyn FnMut(&str) -> Result<S, VarRefError>) -> Result<S, GroupError>;

struct Compiler<'a, S> {
    kind: VarKind,
    src: &'a BTreeMap<String, String>,
    parse: ParseFn<S>,
    memo: BTreeMap<String, Option<S>>,
    stack: Vec<String>,
    errors: Vec<VarError>,
}

impl<S: Clone> Compiler<'_, S> {
    fn get(&mut self, name: &str) -> Result<S, VarRefError> {
        if let Some(done) = self.memo.get(name) {
            return done.clone().ok_or(VarRefError::Invalid);
        }
        if self.stack.iter().any(|n| n == name) {
            return Err(VarRefError::Cycle);
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(VarRefError::TooDeep);
        }
        let Some(value) = self.src.get(name) else {
            return Err(VarRefError::Unknown);
        };
        self.stack.push(name.to_string());
        let parse = self.parse;
        let result = parse(value, &mut |n| self.get(n));
        self.stack.pop();
        match result {
            Ok(set) => {
                self.memo.insert(name.to_string(), Some(set.clone()));
                Ok(set)
            }
            Err(error) => {
                self.errors.push(VarError {
                    kind: self.kind,
                    name: name.to_string(),
                    value: value.clone(),
                    error,
                });
                self.memo.insert(name.to_string(), None);
                Err(VarRefError::Invalid)
            }
        }
    }

    fn run(mut self) -> (BTreeMap<String, Option<S>>, Vec<VarError>) {
        for name in self.src.keys() {
            let _ = self.get(name);
        }
        (self.memo, self.errors)
    }
}

impl Vars {
    /// Suricata 7's defaults (`HOME_NET` = RFC 1918, `EXTERNAL_NET` =
    /// `!$HOME_NET`, `HTTP_PORTS` = 80, ...).
    pub fn suricata_defaults() -> Vars {
        let (vars, errors) = Vars::build::<&str, &str>([], []);
        debug_assert!(errors.is_empty(), "{errors:?}");
        vars
    }

    /// Suricata's defaults with `address_groups` and `port_groups`
    /// (name, value) pairs added or replacing defaults of the same name (a
    /// leading `$` on a name is ignored). Returns the table and every
    /// variable that failed to compile (those stay unusable; the rest work).
    pub fn build<N, V>(
        address_groups: impl IntoIterator<Item = (N, V)>,
        port_groups: impl IntoIterator<Item = (N, V)>,
    ) -> (Vars, Vec<VarError>)
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut address_src: BTreeMap<String, String> = DEFAULT_ADDRESS_GROUPS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let mut port_src: BTreeMap<String, String> = DEFAULT_PORT_GROUPS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        for (n, v) in address_groups {
            address_src.insert(norm_name(n.as_ref()), v.as_ref().to_string());
        }
        for (n, v) in port_groups {
            port_src.insert(norm_name(n.as_ref()), v.as_ref().to_string());
        }
        let (address, mut errors) = Compiler {
            kind: VarKind::Address,
            src: &address_src,
            parse: |s, v| parse_address_with(s, v),
            memo: BTreeMap::new(),
            stack: Vec::new(),
            errors: Vec::new(),
        }
        .run();
        let (port, port_errors) = Compiler {
            kind: VarKind::Port,
            src: &port_src,
            parse: |s, v| parse_port_with(s, v),
            memo: BTreeMap::new(),
            stack: Vec::new(),
            errors: Vec::new(),
        }
        .run();
        errors.extend(port_errors);
        (
            Vars {
                address_src,
                port_src,
                address,
                port,
            },
            errors,
        )
    }

    /// Parses an address group from a rule header (or a `threshold.config`
    /// `ip` list), resolving `$VARS`. Error columns are in `s`.
    pub fn address(&self, s: &str) -> Result<AddressSet, GroupError> {
        parse_address_with(s, |n| match self.address.get(n) {
            Some(Some(set)) => Ok(set.clone()),
            Some(None) => Err(VarRefError::Invalid),
            None => Err(VarRefError::Unknown),
        })
    }

    /// Parses a port group from a rule header, resolving `$VARS`.
    pub fn port(&self, s: &str) -> Result<PortSet, GroupError> {
        parse_port_with(s, |n| match self.port.get(n) {
            Some(Some(set)) => Ok(set.clone()),
            Some(None) => Err(VarRefError::Invalid),
            None => Err(VarRefError::Unknown),
        })
    }

    /// A compiled address variable (name without `$`); `None` if unknown or
    /// invalid.
    pub fn address_var(&self, name: &str) -> Option<&AddressSet> {
        self.address.get(name).and_then(Option::as_ref)
    }

    /// A compiled port variable (name without `$`); `None` if unknown or
    /// invalid.
    pub fn port_var(&self, name: &str) -> Option<&PortSet> {
        self.port.get(name).and_then(Option::as_ref)
    }

    /// Address variables and their values as given, by name.
    pub fn address_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.address_src
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Port variables and their values as given, by name.
    pub fn port_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.port_src.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupErrorKind;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_compile_and_mean_what_suricata_means() {
        let (_, errors) = Vars::build::<&str, &str>([], []);
        assert!(errors.is_empty(), "{errors:?}");
        let v = Vars::suricata_defaults();
        let home = v.address_var("HOME_NET").unwrap();
        assert!(home.contains(ip("10.1.2.3")) && home.contains(ip("172.20.0.1")));
        assert!(!home.contains(ip("8.8.8.8")));
        let ext = v.address("$EXTERNAL_NET").unwrap();
        assert!(ext.contains(ip("8.8.8.8")) && !ext.contains(ip("192.168.1.1")));
        assert!(ext.contains(ip("2001:db8::1")));
        let aim = v.address_var("AIM_SERVERS").unwrap();
        assert_eq!(aim, &ext);
        for (n, _) in DEFAULT_ADDRESS_GROUPS {
            assert!(v.address_var(n).is_some(), "{n}");
        }
        for (n, _) in DEFAULT_PORT_GROUPS {
            assert!(v.port_var(n).is_some(), "{n}");
        }
        let fdp = v.port("$FILE_DATA_PORTS").unwrap();
        assert!(fdp.contains(80) && fdp.contains(110) && fdp.contains(143) && !fdp.contains(25));
        let sc = v.port("$SHELLCODE_PORTS").unwrap();
        assert!(!sc.contains(80) && sc.contains(81));
        assert_eq!(v.port("$ORACLE_PORTS").unwrap().single(), Some(1521));
        assert_eq!(v.port("$TEREDO_PORTS").unwrap().single(), Some(3544));
    }

    #[test]
    fn rule_header_forms_with_vars() {
        let v = Vars::suricata_defaults();
        let a = v.address("!$HOME_NET").unwrap();
        assert!(a.contains(ip("1.1.1.1")) && !a.contains(ip("10.0.0.1")));
        let a = v.address("[$HOME_NET,!10.0.0.0/8]").unwrap();
        assert!(a.contains(ip("192.168.0.1")) && !a.contains(ip("10.0.0.1")));
        let a = v.address("[$HTTP_SERVERS, 1.2.3.4]").unwrap();
        assert!(a.contains(ip("1.2.3.4")));
        let p = v.port("[$HTTP_PORTS,8080:8090]").unwrap();
        assert!(p.contains(80) && p.contains(8085) && !p.contains(443));
        let p = v.port("!$HTTP_PORTS").unwrap();
        assert!(!p.contains(80));
        // Address variables are not port variables and vice versa.
        let e = v.port("$HOME_NET").unwrap_err();
        assert!(matches!(e.kind, GroupErrorKind::UnknownVar(_)));
        let e = v.address("[1.2.3.4,$NOPE]").unwrap_err();
        assert_eq!((e.column, e.token.as_str()), (10, "$NOPE"));
    }

    #[test]
    fn overrides_replace_defaults_and_flow_through_references() {
        let (v, errors) = Vars::build(
            [
                ("HOME_NET", "[10.20.0.0/16]"),
                ("$DMZ", "[$HOME_NET,192.0.2.0/24]"),
            ],
            [("HTTP_PORTS", "[80,8080]")],
        );
        assert!(errors.is_empty(), "{errors:?}");
        let ext = v.address_var("EXTERNAL_NET").unwrap();
        assert!(ext.contains(ip("10.21.0.1")) && !ext.contains(ip("10.20.0.1")));
        assert!(v.address("$DMZ").unwrap().contains(ip("192.0.2.7")));
        assert!(v.port("$FILE_DATA_PORTS").unwrap().contains(8080));
        assert_eq!(
            v.address_values()
                .find(|(n, _)| *n == "DMZ")
                .map(|(_, x)| x),
            Some("[$HOME_NET,192.0.2.0/24]")
        );
    }

    #[test]
    fn cycles_and_bad_values_are_reported_not_fatal() {
        let (v, errors) = Vars::build(
            [
                ("A", "[$B,1.1.1.1]"),
                ("B", "$A"),
                ("C", "$C"),
                ("BAD", "1.2.3.999"),
            ],
            [("P", "[$P]")],
        );
        let names: Vec<_> = errors.iter().map(|e| e.name.as_str()).collect();
        for n in ["A", "B", "C", "BAD", "P"] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        assert!(errors
            .iter()
            .any(|e| matches!(e.error.kind, GroupErrorKind::VarCycle(_))));
        let bad = errors.iter().find(|e| e.name == "BAD").unwrap();
        assert_eq!(bad.error.column, 1);
        assert!(
            bad.to_string().starts_with("vars.address-groups.BAD"),
            "{bad}"
        );
        // The rest still work; the bad ones are reported at use.
        assert!(v.address("$HOME_NET").is_ok());
        let e = v.address("$BAD").unwrap_err();
        assert!(matches!(e.kind, GroupErrorKind::InvalidVar(_)));
    }

    #[test]
    fn home_net_any_makes_external_net_unusable_like_suricata() {
        let (v, errors) = Vars::build([("HOME_NET", "any")], Vec::<(&str, &str)>::new());
        assert_eq!(errors.len(), 2, "{errors:?}"); // EXTERNAL_NET and AIM_SERVERS
        assert!(v.address("$HOME_NET").unwrap().is_any());
        assert!(v.address("$EXTERNAL_NET").is_err());
    }

    #[test]
    fn deep_reference_chains_compile_once() {
        // Each var doubles the previous one: without memoisation this is 2^40 work.
        let mut pairs = vec![("V0".to_string(), "1.2.3.4".to_string())];
        for i in 1..40 {
            pairs.push((format!("V{i}"), format!("[$V{},$V{}]", i - 1, i - 1)));
        }
        let (v, errors) = Vars::build(pairs, Vec::<(String, String)>::new());
        assert!(errors.is_empty());
        assert!(v.address("$V39").unwrap().contains(ip("1.2.3.4")));
    }
}
