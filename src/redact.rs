//! The one way razar shows a URL in a message, a log line, a file or its output: the userinfo
//! (`user:password@`) becomes `***@`, a query string becomes `?…`, a fragment is dropped —
//! each may carry a credential (DESIGN §12). Works on text that is not a valid URL too, since
//! invalid URLs are exactly the ones error messages print.
//!
//! Values built from `${VAR}` are shown as written (the template), never expanded: that is
//! for the code that expands them to choose, with [`url`] applied to the template.

/// `text` (a URL, or something meant to be one) as it may be shown.
pub fn url(text: &str) -> String {
    // A `://` counts as the scheme's end only before any `/?#@`: in `u:p@h/x://y` it is path.
    let (scheme, rest) = match text.find("://") {
        Some(i) if !text[..i].contains(['/', '?', '#', '@']) => text.split_at(i + 3),
        _ => ("", text),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let tail = tail.split('#').next().unwrap_or_default();
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?…"),
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// `message` with every occurrence of the URL `raw` shown through [`url`] (for error texts of
/// libraries that embed the URL they were given).
pub fn url_in(message: &str, raw: &str) -> String {
    if raw.is_empty() { message.to_owned() } else { message.replace(raw, &url(raw)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_query_and_fragment_never_show() {
        let cases = [
            ("wss://u:p@crown.example:8443/ws?token=x", "wss://***@crown.example:8443/ws?…"),
            ("http://admin:pw@127.0.0.1:15672/api/health", "http://***@127.0.0.1:15672/api/health"),
            ("https://h:1/x?k=s#f", "https://h:1/x?…"),
            ("https://h/x#frag", "https://h/x"),
            ("u:p@h/x?k=s", "***@h/x?…"),
            ("ws://127.0.0.1:9/", "ws://127.0.0.1:9/"),
            ("ws://h", "ws://h"),
            ("ws://u:p@[bad/x?token=t", "ws://***@[bad/x?…"),
            ("http://h?a=b@c", "http://h?…"),
            (":pw@/://?q", "***@/://?…"),
            ("", ""),
        ];
        for (raw, shown) in cases {
            assert_eq!(url(raw), shown, "{raw}");
        }
        assert_eq!(
            url_in("error sending request for url (https://u:p@h/?k=s)", "https://u:p@h/?k=s"),
            "error sending request for url (https://***@h/?…)"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]
        #[test]
        fn userinfo_and_query_never_survive(
            scheme in "[a-z]{0,5}",
            user in "[^@/?#]{0,8}",
            host in "[^@/?#]{0,12}",
            path in "(/[^?#]{0,10}){0,2}",
            query in "[^#]{0,12}",
            fragment in "\\PC{0,8}",
        ) {
            let raw = format!("{scheme}://{user}:PW-SECRET@{host}{path}?QS-SECRET{query}#FR-SECRET{fragment}");
            let shown = url(&raw);
            proptest::prop_assert!(!shown.contains("PW-SECRET") && !shown.contains("QS-SECRET") && !shown.contains("FR-SECRET"), "{} -> {}", raw, shown);
            let shown = url(&raw[scheme.len() + 3..]);
            proptest::prop_assert!(!shown.contains("SECRET"), "{} -> {}", raw, shown);
        }
    }

    #[test]
    fn no_secret_part_survives_any_input() {
        // Whatever surrounds them, the password and the query value never show.
        for raw in
            ["ws://u:SECRET@h/?q=SECRET", "SECRET@h?SECRET", "x://a@b@SECRET@h#SECRET", "h/p?SECRET#x", "::SECRET@?"]
        {
            let shown = url(raw);
            assert!(!shown.contains("SECRET"), "{raw} -> {shown}");
        }
    }
}
