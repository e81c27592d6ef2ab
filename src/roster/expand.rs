//! `${VAR}` expansion of roster values (`endpoint`, `auth.token`, `auth.key`). Pure: the
//! environment comes in as an [`Env`]. Only the braced form expands; a `$` not followed by `{`
//! is kept as written. An unset or blank variable is a problem, never an empty string.

use crate::config::Env;

/// A value with every reference replaced.
#[derive(Clone, PartialEq, Eq)]
pub struct Expanded {
    pub value: String,
    /// The variables referenced, in order of appearance.
    pub variables: Vec<String>,
    /// Whether the text holds anything besides references (a literal part).
    pub literal: bool,
}

// The value may be a secret: never print it.
impl std::fmt::Debug for Expanded {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Expanded")
            .field("value", &"***")
            .field("variables", &self.variables)
            .field("literal", &self.literal)
            .finish()
    }
}

/// Why a value could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `${NAME}` names a variable that is unset or blank.
    Unset(String),
    /// `${` without a closing `}`.
    Unclosed,
    /// `${…}` holding something that is not a variable name.
    BadName(String),
}

/// Expands every `${VAR}` in `text`, collecting every problem rather than stopping at the first.
pub fn expand(text: &str, env: &dyn Env) -> Result<Expanded, Vec<Problem>> {
    let mut value = String::with_capacity(text.len());
    let mut variables = Vec::new();
    let mut problems = Vec::new();
    let mut literal = false;
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        literal |= start > 0;
        value.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            problems.push(Problem::Unclosed);
            rest = "";
            break;
        };
        let name = &after[..end];
        rest = &after[end + 1..];
        if !is_var_name(name) {
            problems.push(Problem::BadName(name.to_owned()));
            continue;
        }
        variables.push(name.to_owned());
        match env.var(name).filter(|v| !v.trim().is_empty()) {
            Some(v) => value.push_str(&v),
            None => problems.push(Problem::Unset(name.to_owned())),
        }
    }
    literal |= !rest.is_empty();
    value.push_str(rest);
    if problems.is_empty() { Ok(Expanded { value, variables, literal }) } else { Err(problems) }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the portable shell variable name.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::tests::MapEnv;

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv::of(pairs)
    }

    #[test]
    fn expands_every_reference_and_records_what_it_used() {
        let e = env(&[("HOST", "api.example"), ("PORT", "8443")]);
        let got = expand("https://${HOST}:${PORT}/v1", &e).unwrap();
        assert_eq!(got.value, "https://api.example:8443/v1");
        assert_eq!(got.variables, ["HOST", "PORT"]);
        assert!(got.literal);
        let whole = expand("${HOST}", &e).unwrap();
        assert_eq!(whole.value, "api.example");
        assert!(!whole.literal);
        let plain = expand("DEMO_TOKEN", &e).unwrap();
        assert_eq!((plain.value.as_str(), plain.literal), ("DEMO_TOKEN", true));
        assert!(plain.variables.is_empty());
    }

    #[test]
    fn a_bare_dollar_is_kept() {
        let got = expand("pa$$word$X", &env(&[])).unwrap();
        assert_eq!(got.value, "pa$$word$X");
    }

    #[test]
    fn unset_blank_and_malformed_references_are_all_reported() {
        let e = env(&[("BLANK", "  ")]);
        let got = expand("${A}-${BLANK}-${1x}-${", &e).unwrap_err();
        assert_eq!(
            got,
            vec![
                Problem::Unset("A".into()),
                Problem::Unset("BLANK".into()),
                Problem::BadName("1x".into()),
                Problem::Unclosed
            ]
        );
        assert_eq!(expand("${}", &e).unwrap_err(), vec![Problem::BadName(String::new())]);
    }

    #[test]
    fn debug_hides_the_value() {
        let got = expand("${S}", &env(&[("S", "canary-secret")])).unwrap();
        assert!(!format!("{got:?}").contains("canary-secret"));
    }
}
