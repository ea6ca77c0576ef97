//! YAML to a flat list of `dotted.key = value` settings, each with the line it
//! came from, so that every later error can name the key and the line. The file
//! is read by zonewatch's bounded YAML reader: aliases give the anchored value
//! (within its expansion budget), every error names a line.

use zonewatch_yamlread::{Event, Receiver};

/// A leaf value: a scalar or a list of scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar, as written (YAML `~`/`null`/empty give an empty string).
    Scalar(String),
    /// A sequence of scalars (nested structures inside lists are flattened to
    /// their scalar text; lists of maps are reported by the caller).
    List(Vec<String>),
    /// A sequence holding mappings (e.g. Suricata's `outputs:` list).
    ListOfMaps,
}

/// One setting found in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Dotted path, e.g. `flow-timeouts.tcp.established`.
    pub key: String,
    /// The value.
    pub value: Value,
    /// 1-based line number.
    pub line: usize,
}

#[derive(Default)]
struct Flattener {
    /// Path of mapping keys down to the current node.
    path: Vec<String>,
    /// For each open mapping: whether the next scalar is a key.
    expect_key: Vec<bool>,
    /// Open containers: true = mapping, false = sequence.
    stack: Vec<bool>,
    /// Sequence being collected (at the sequence's own depth).
    seq: Option<(String, usize, Vec<String>, bool, usize)>,
    out: Vec<Setting>,
    key_line: usize,
}

impl Flattener {
    fn dotted(&self) -> String {
        self.path.join(".")
    }

    /// After a value completes inside a mapping, drop its key.
    fn value_done(&mut self) {
        if let Some(true) = self.stack.last() {
            self.path.pop();
            if let Some(k) = self.expect_key.last_mut() {
                *k = true;
            }
        }
    }
}

impl Receiver for Flattener {
    fn event(&mut self, ev: Event, line: usize) -> Result<(), zonewatch_yamlread::Error> {
        if let Some((_, _, items, has_map, depth)) = &mut self.seq {
            match ev {
                Event::Scalar(s, ..) if *depth == 1 => items.push(s),
                Event::MappingStart(..) => {
                    *has_map = true;
                    *depth += 1;
                }
                Event::SequenceStart(..) => *depth += 1,
                Event::MappingEnd => *depth -= 1,
                Event::SequenceEnd => {
                    *depth -= 1;
                    if *depth == 0 {
                        let (key, l, items, has_map, _) = self.seq.take().expect("in a sequence");
                        self.out.push(Setting {
                            key,
                            value: if has_map {
                                Value::ListOfMaps
                            } else {
                                Value::List(items)
                            },
                            line: l,
                        });
                        self.value_done();
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        match ev {
            Event::MappingStart(..) => {
                self.stack.push(true);
                self.expect_key.push(true);
            }
            Event::MappingEnd => {
                self.stack.pop();
                self.expect_key.pop();
                self.value_done();
            }
            Event::SequenceStart(..) => {
                self.seq = Some((self.dotted(), self.key_line, Vec::new(), false, 1));
            }
            Event::Scalar(s, ..) => {
                if self.expect_key.last() == Some(&true) {
                    self.path.push(s);
                    self.key_line = line;
                    *self.expect_key.last_mut().expect("in a mapping") = false;
                } else if !self.path.is_empty() {
                    self.out.push(Setting {
                        key: self.dotted(),
                        value: Value::Scalar(s),
                        line: self.key_line,
                    });
                    self.value_done();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses YAML text into settings; the error names the line. Only the first
/// document is read (a configuration is one document).
pub fn flatten(text: &str) -> Result<Vec<Setting>, zonewatch_yamlread::Error> {
    let mut f = Flattener::default();
    let mut docs = 0;
    zonewatch_yamlread::read(text, &zonewatch_yamlread::LIMITS, &mut |ev, line| {
        if ev == Event::DocumentStart {
            docs += 1;
        }
        if docs <= 1 {
            f.event(ev, line)?;
        }
        Ok(())
    })?;
    Ok(f.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_maps_lists_and_lines() {
        let s = flatten("a:\n  b: 1\n  c:\n    d: x\nzones:\n  lan: [10.0.0.0/8, 192.168.0.0/16]\n  dmz:\n    - 172.16.0.0/12\nouts:\n  - eve: {x: 1}\n").unwrap();
        let keys: Vec<_> = s.iter().map(|s| (s.key.as_str(), s.line)).collect();
        assert_eq!(
            keys,
            [
                ("a.b", 2),
                ("a.c.d", 4),
                ("zones.lan", 6),
                ("zones.dmz", 7),
                ("outs", 9)
            ]
        );
        assert_eq!(
            s[2].value,
            Value::List(vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()])
        );
        assert_eq!(s[4].value, Value::ListOfMaps);
    }

    #[test]
    fn syntax_error_names_line() {
        let e = flatten("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
        assert!(e.message.starts_with("YAML syntax error"), "{e}");
    }

    #[test]
    fn aliases_give_the_anchored_value_within_a_budget() {
        let s = flatten("sensor:\n  name: &n city-a\n  tenant: *n\n  timezone: \"+09:00\"\nzones:\n  a: &z [10.0.0.0/8]\n  b: *z\n").unwrap();
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.key.as_str(), &s.value, s.line))
            .collect();
        let sc = |v: &str| Value::Scalar(v.into());
        let list = Value::List(vec!["10.0.0.0/8".into()]);
        assert_eq!(
            got,
            [
                ("sensor.name", &sc("city-a"), 2),
                ("sensor.tenant", &sc("city-a"), 3),
                ("sensor.timezone", &sc("+09:00"), 4),
                ("zones.a", &list, 6),
                ("zones.b", &list, 7),
            ]
        );
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let e = flatten(&bomb).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("alias *a2"), "{e}");
    }
}
