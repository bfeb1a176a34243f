//! `ssl.principal.mapping.rules`: how a client certificate's distinguished name becomes a
//! principal's name, as Kafka's `SslPrincipalMapper`: a comma-separated list of `DEFAULT` (the
//! name is the DN itself) and `RULE:<regex>/<replacement>/[L|U]` (when the regex matches the
//! whole DN, the name is the replacement, with `$1`... for its groups, lower- or upper-cased
//! with `L` or `U`). The first rule that applies decides; if none does, the client is refused.

use regex::Regex;

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Map { pattern: Regex, replacement: String, case: Case },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Parsed rules; `Default` is Kafka's default (`DEFAULT`).
#[derive(Clone, Debug)]
pub struct PrincipalRules {
    rules: Vec<Rule>,
    text: String,
}

impl Default for PrincipalRules {
    fn default() -> PrincipalRules {
        PrincipalRules { rules: vec![Rule::Default], text: "DEFAULT".into() }
    }
}

impl PrincipalRules {
    /// Parses the rules, or says what is wrong with them.
    pub fn parse(text: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let (rule, after) = if let Some(after) = rest.strip_prefix("DEFAULT") {
                (Rule::Default, after)
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after).ok_or_else(|| format!("`{rest}`: a RULE is RULE:<regex>/<replacement>/[L|U]"))?;
                let (replacement, after) = until_slash(after).ok_or_else(|| format!("`{rest}`: a RULE is RULE:<regex>/<replacement>/[L|U]"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                // Anchored: Kafka applies a rule only when its regex matches the whole DN.
                let compiled = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("`{pattern}` is not a valid regular expression: {e}"))?;
                let replacement = rust_replacement(&replacement, compiled.captures_len() - 1);
                (Rule::Map { pattern: compiled, replacement, case }, after)
            } else {
                return Err(format!("invalid rule `{rest}`: rules are DEFAULT or RULE:<regex>/<replacement>/[L|U], separated by commas"));
            };
            rules.push(rule);
            let after = after.trim_start();
            rest = match after.strip_prefix(',') {
                Some(next) => next.trim_start(),
                None if after.is_empty() => after,
                None => return Err(format!("unexpected `{after}` after a rule")),
            };
        }
        Ok(PrincipalRules { rules, text: text.trim().to_string() })
    }

    /// The principal name for `dn` (RFC 2253 form, most specific attribute first), or `None`
    /// when no rule applies (Kafka then fails the connection's authentication).
    pub fn name(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|r| match r {
            Rule::Default => Some(dn.to_string()),
            Rule::Map { pattern, replacement, case } => {
                let caps = pattern.captures(dn)?;
                let mut out = String::new();
                caps.expand(replacement, &mut out);
                Some(match case {
                    Case::Keep => out,
                    Case::Lower => out.to_lowercase(),
                    Case::Upper => out.to_uppercase(),
                })
            }
        })
    }
}

impl std::fmt::Display for PrincipalRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The text up to the next `/` not escaped by `\`, and what follows that slash.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '/' => return Some((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

/// Java's replacement syntax in the `regex` crate's: `$12` means group 12 if there are that
/// many groups, else group 1 followed by `2` (Java's rule), a reference to a group that does not
/// exist is literal text, `\x` is a literal `x`, and a literal `$` is `$$`.
fn rust_replacement(java: &str, groups: usize) -> String {
    let mut out = String::new();
    let chars: Vec<char> = java.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                if chars[i + 1] == '$' {
                    out.push_str("$$");
                } else {
                    out.push(chars[i + 1]);
                }
                i += 2;
            }
            '$' => {
                let digits: String = chars[i + 1..].iter().take_while(|c| c.is_ascii_digit()).collect();
                let mut n = digits.len();
                while n > 0 && digits[..n].parse::<usize>().map_or(true, |g| g > groups) {
                    n -= 1;
                }
                if n == 0 {
                    out.push_str("$$");
                    i += 1;
                } else {
                    out.push_str(&format!("${{{}}}", &digits[..n]));
                    i += 1 + n;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_documentation_examples() {
        let r = PrincipalRules::parse("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT").unwrap();
        assert_eq!(r.name("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").as_deref(), Some("serviceuser"));
        assert_eq!(r.name("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").as_deref(), Some("adminuser@admin"));
        // The third rule's class stops at `-`.
        assert_eq!(r.name("CN=Kafka-Broker.Example").as_deref(), Some("kafka"));
        assert_eq!(PrincipalRules::default().name("CN=alice,O=x").as_deref(), Some("CN=alice,O=x"));
    }

    #[test]
    fn no_rule_no_principal_and_bad_rules_are_named() {
        let r = PrincipalRules::parse("RULE:^CN=([a-z]+)$/$1/U").unwrap();
        assert_eq!(r.name("CN=alice").as_deref(), Some("ALICE"));
        assert_eq!(r.name("CN=alice,O=x"), None);
        for bad in ["RULE:^CN=(.*)", "RULE:(/x/", "NOPE", "DEFAULT junk"] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad}");
        }
        // An escaped slash is part of the regex; `\$` and a missing group are literal.
        let r = PrincipalRules::parse(r"RULE:^CN=(a\/b)$/x\$$1$2/").unwrap();
        assert_eq!(r.name("CN=a/b").as_deref(), Some("x$a/b$2"));
    }
}
