//! Capability names: normalisation and the required-capabilities check. Pure functions.
//!
//! Crown servers spell the same capability differently (`GLM-4.1V`, `glm4v`, `GLM4V_OFFLINE`),
//! so names are compared after [`normalize`]: uppercase, non-alphanumerics stripped, and every
//! spelling of the GLM-4.1V family folded to [`GLM4V`].

/// The canonical name of the GLM-4.1V capability.
pub const GLM4V: &str = "GLM4V";
/// The model name recorded in `launched_models` when the launcher succeeds.
pub const GLM4V_MODEL: &str = "GLM-4.1V";
/// The capability reported in offline mode.
pub const GLM4V_OFFLINE: &str = "GLM4V_OFFLINE";

/// Uppercase, only ASCII letters and digits, GLM-4.1V spellings folded to `GLM4V`.
pub fn normalize(name: &str) -> String {
    let squashed: String = name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect();
    match squashed.as_str() {
        "GLM41V" | "GLM4V" | "GLM4VOFFLINE" | "GLM41VOFFLINE" => GLM4V.to_owned(),
        _ => squashed,
    }
}

/// True when some capability normalises to GLM4V.
pub fn glm4v_present(capabilities: &[String]) -> bool {
    capabilities.iter().any(|c| normalize(c) == GLM4V)
}

/// The required capabilities (flags first, then config), deduplicated by normalised name,
/// blanks dropped.
pub fn required(flags: &[String], config: &[String]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    flags
        .iter()
        .chain(config)
        .filter(|c| !c.trim().is_empty())
        .filter(|c| seen.insert(normalize(c)))
        .map(|c| c.trim().to_owned())
        .collect()
}

/// The entries of `required` that no capability in `offered` matches (after normalisation).
pub fn missing(required: &[String], offered: &[String]) -> Vec<String> {
    let offered: Vec<String> = offered.iter().map(|c| normalize(c)).collect();
    required.iter().filter(|r| !offered.contains(&normalize(r))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn glm_spellings_fold_together() {
        for name in ["GLM-4.1V", "glm4v", "GLM4V_OFFLINE", "glm-4.1v-offline", "GLM4V", " Glm 4.1 V "] {
            assert_eq!(normalize(name), GLM4V, "{name}");
        }
        for name in ["GLM-4", "GLM5V", "GLM4VX", "vision"] {
            assert_ne!(normalize(name), GLM4V, "{name}");
        }
        assert_eq!(normalize("code-review_2"), "CODEREVIEW2");
    }

    #[test]
    fn presence_and_missing() {
        assert!(glm4v_present(&strings(&["x", "GLM-4.1V"])));
        assert!(!glm4v_present(&strings(&["x"])));
        assert!(!glm4v_present(&[]));
        let offered = strings(&["Code-Review", "GLM4V_OFFLINE"]);
        assert_eq!(missing(&strings(&["code_review", "glm-4.1v", "vision"]), &offered), strings(&["vision"]));
    }

    #[test]
    fn required_merges_flags_and_config() {
        let got = required(&strings(&["vision", " "]), &strings(&["VISION", "glm4v"]));
        assert_eq!(got, strings(&["vision", "glm4v"]));
    }
}
