//! Sigma condition expressions: `and`, `or`, `not`, parentheses, `1 of X*`, `all of X*`,
//! `1 of them`, `all of them`. Precedence: `not` > `and` > `or`.

/// A compiled condition over search identifiers (indices into the rule's searches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A search identifier.
    Search(usize),
    /// All must hold.
    And(Vec<Expr>),
    /// Any must hold.
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
}

impl Expr {
    /// Evaluates with `eval(search_index)`.
    pub fn eval(&self, eval: &mut dyn FnMut(usize) -> bool) -> bool {
        match self {
            Expr::Search(i) => eval(*i),
            Expr::And(v) => v.iter().all(|e| e.eval(eval)),
            Expr::Or(v) => v.iter().any(|e| e.eval(eval)),
            Expr::Not(e) => !e.eval(eval),
        }
    }
}

const MAX_DEPTH: usize = 64;
const MAX_TOKENS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    Word(String),
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut w = String::new();
    for c in s.chars() {
        match c {
            '(' | ')' | ' ' | '\t' | '\n' | '\r' => {
                if !w.is_empty() {
                    out.push(Tok::Word(std::mem::take(&mut w)));
                }
                match c {
                    '(' => out.push(Tok::Open),
                    ')' => out.push(Tok::Close),
                    _ => {}
                }
            }
            '|' => return Err("aggregation (`|`) in condition is not supported (Sigma 1 syntax; use a correlation rule)".into()),
            _ => w.push(c),
        }
        if out.len() > MAX_TOKENS {
            return Err("condition too long".into());
        }
    }
    if !w.is_empty() {
        out.push(Tok::Word(w));
    }
    Ok(out)
}

/// Whether `name` matches a glob with `*` (and `?`).
pub fn glob(pat: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8], budget: &mut u32) -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                rec(&p[1..], n, budget) || (!n.is_empty() && rec(p, &n[1..], budget))
            }
            (Some(b'?'), Some(_)) => rec(&p[1..], &n[1..], budget),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &n[1..], budget),
            _ => false,
        }
    }
    let mut budget = 100_000;
    rec(pat.as_bytes(), name.as_bytes(), &mut budget)
}

struct P<'a> {
    toks: Vec<Tok>,
    pos: usize,
    names: &'a [String],
}

impl P<'_> {
    fn peek_word(&self) -> Option<&str> {
        match self.toks.get(self.pos) {
            Some(Tok::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }
    fn or(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_DEPTH {
            return Err("condition nested too deeply".into());
        }
        let mut v = vec![self.and(depth)?];
        while self
            .peek_word()
            .is_some_and(|w| w.eq_ignore_ascii_case("or"))
        {
            self.pos += 1;
            v.push(self.and(depth)?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }
    fn and(&mut self, depth: usize) -> Result<Expr, String> {
        let mut v = vec![self.not(depth)?];
        while self
            .peek_word()
            .is_some_and(|w| w.eq_ignore_ascii_case("and"))
        {
            self.pos += 1;
            v.push(self.not(depth)?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }
    fn not(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_DEPTH {
            return Err("condition nested too deeply".into());
        }
        if self
            .peek_word()
            .is_some_and(|w| w.eq_ignore_ascii_case("not"))
        {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not(depth + 1)?)));
        }
        self.primary(depth)
    }
    fn primary(&mut self, depth: usize) -> Result<Expr, String> {
        match self.toks.get(self.pos).cloned() {
            None => Err("condition ends unexpectedly".into()),
            Some(Tok::Close) => Err("unexpected `)`".into()),
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or(depth + 1)?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(w)) => {
                let quant = if w == "all" {
                    Some(None)
                } else if w == "any" {
                    Some(Some(1))
                } else {
                    w.parse::<usize>().ok().map(Some)
                };
                if let (Some(q), Some(Tok::Word(of))) = (quant, self.toks.get(self.pos + 1)) {
                    if of == "of" {
                        let target = match self.toks.get(self.pos + 2) {
                            Some(Tok::Word(t)) => t.clone(),
                            _ => return Err(format!("`{w} of` needs a name pattern or `them`")),
                        };
                        self.pos += 3;
                        let ids: Vec<usize> = self
                            .names
                            .iter()
                            .enumerate()
                            .filter(|(_, n)| {
                                if target == "them" {
                                    !n.starts_with('_')
                                } else {
                                    glob(&target, n)
                                }
                            })
                            .map(|(i, _)| i)
                            .collect();
                        if ids.is_empty() {
                            return Err(format!("`{w} of {target}` matches no search identifier"));
                        }
                        let es: Vec<Expr> = ids.into_iter().map(Expr::Search).collect();
                        return Ok(match q {
                            None => Expr::And(es),
                            Some(1) => Expr::Or(es),
                            Some(n) => at_least(n, es),
                        });
                    }
                }
                if ["and", "or", "not", "of"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
                {
                    return Err(format!("unexpected `{w}`"));
                }
                self.pos += 1;
                match self.names.iter().position(|n| *n == w) {
                    Some(i) => Ok(Expr::Search(i)),
                    None => Err(format!("unknown search identifier `{w}` in condition")),
                }
            }
        }
    }
}

/// "at least n of" as an OR of ANDs would explode; instead n > len is false, n == len is AND,
/// otherwise an OR over the (bounded) combinations.
fn at_least(n: usize, es: Vec<Expr>) -> Expr {
    if n == 0 {
        return Expr::And(vec![]);
    }
    if n >= es.len() {
        return if n == es.len() {
            Expr::And(es)
        } else {
            Expr::Or(vec![])
        };
    }
    // Bounded: small n over few searches only.
    let mut combos = Vec::new();
    let idx: Vec<usize> = (0..es.len()).collect();
    fn walk(
        start: usize,
        n: usize,
        idx: &[usize],
        cur: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if out.len() > 1024 {
            return;
        }
        if cur.len() == n {
            out.push(cur.clone());
            return;
        }
        for i in start..idx.len() {
            cur.push(idx[i]);
            walk(i + 1, n, idx, cur, out);
            cur.pop();
        }
    }
    walk(0, n, &idx, &mut Vec::new(), &mut combos);
    Expr::Or(
        combos
            .into_iter()
            .map(|c| Expr::And(c.into_iter().map(|i| es[i].clone()).collect()))
            .collect(),
    )
}

/// Parses a condition given the rule's search identifier names.
pub fn parse(cond: &str, names: &[String]) -> Result<Expr, String> {
    let toks = lex(cond)?;
    if toks.is_empty() {
        return Err("empty condition".into());
    }
    let mut p = P {
        toks,
        pos: 0,
        names,
    };
    let e = p.or(0)?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "trailing tokens in condition after position {}",
            p.pos
        ));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn ev(c: &str, n: &[&str], truth: &[bool]) -> bool {
        parse(c, &names(n)).unwrap().eval(&mut |i| truth[i])
    }

    #[test]
    fn precedence_and_quantifiers() {
        let n = ["sel", "filter_a", "filter_b"];
        assert!(ev("sel and not 1 of filter_*", &n, &[true, false, false]));
        assert!(!ev("sel and not 1 of filter_*", &n, &[true, false, true]));
        assert!(ev(
            "sel or filter_a and filter_b",
            &n,
            &[true, false, false]
        ));
        assert!(!ev(
            "(sel or filter_a) and filter_b",
            &n,
            &[true, false, false]
        ));
        assert!(ev("all of filter_*", &n, &[false, true, true]));
        assert!(ev("1 of them", &n, &[false, false, true]));
        assert!(!ev("all of them", &n, &[true, true, false]));
        assert!(ev("not not sel", &n, &[true, false, false]));
    }

    #[test]
    fn errors() {
        let n = names(&["sel"]);
        for bad in [
            "",
            "sel and",
            "(sel",
            "sel)",
            "nope",
            "1 of x*",
            "sel | count() > 5",
            "and",
        ] {
            assert!(parse(bad, &n).is_err(), "{bad}");
        }
        let deep = "(".repeat(500) + "sel" + &")".repeat(500);
        assert!(parse(&deep, &n).is_err());
    }
}
