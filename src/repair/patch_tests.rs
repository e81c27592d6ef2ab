use super::*;

const DIFF_U: &str = "--- svc/app.sh\t2026-12-05 06:00:00.000000000 +0000
+++ svc/app.sh\t2026-12-05 06:01:00.000000000 +0000
@@ -1,3 +1,3 @@
 #!/bin/sh
-echo helo
+echo hello
 exit 0
";

const GIT: &str = "diff --git a/svc/app.sh b/svc/app.sh
index 1111111..2222222 100755
--- a/svc/app.sh
+++ b/svc/app.sh
@@ -2 +2 @@
-echo helo
+echo hello
diff --git a/svc/new.txt b/svc/new.txt
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/svc/new.txt
@@ -0,0 +1,2 @@
+line one
+--- not a header
diff --git a/svc/old.txt b/svc/old.txt
deleted file mode 100644
index 4444444..0000000
--- a/svc/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-gone
diff --git a/svc/a.txt b/svc/b.txt
similarity index 100%
rename from svc/a.txt
rename to svc/b.txt
";

#[test]
fn parses_diff_u_with_timestamps() {
    let p = parse(DIFF_U).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].path.to_str().unwrap(), &p[0].change), ("svc/app.sh", &Change::Modify));
    assert_eq!(apply(&p[0], "#!/bin/sh\necho helo\nexit 0\n").unwrap(), "#!/bin/sh\necho hello\nexit 0\n");
}

#[test]
fn parses_git_diff_with_new_deleted_and_renamed_files() {
    let p = parse(GIT).unwrap();
    let summary: Vec<(&str, Change)> = p.iter().map(|f| (f.path.to_str().unwrap(), f.change.clone())).collect();
    assert_eq!(
        summary,
        [
            ("svc/app.sh", Change::Modify),
            ("svc/new.txt", Change::Create),
            ("svc/old.txt", Change::Delete),
            ("svc/b.txt", Change::Rename { from: "svc/a.txt".into() }),
        ]
    );
    // A removed or added line that looks like a header stays inside its hunk.
    assert_eq!(apply(&p[1], "").unwrap(), "line one\n--- not a header\n");
    assert_eq!(apply(&p[2], "gone\n").unwrap(), "");
    assert_eq!(apply(&p[3], "same\n").unwrap(), "same\n");
    assert_eq!(p[3].paths().len(), 2);
}

#[test]
fn a_hunk_that_does_not_match_fails_to_apply() {
    let p = parse(DIFF_U).unwrap();
    assert!(apply(&p[0], "something else\n").is_err());
}

#[test]
fn rejects_empty_oversized_and_malformed_input() {
    assert_eq!(parse(""), Err(ParseError::Empty));
    assert_eq!(parse("hello\nworld\n"), Err(ParseError::Empty));
    assert!(matches!(parse(&"x".repeat(MAX_PATCH_BYTES + 1)), Err(ParseError::TooLarge(_))));
    assert!(matches!(parse("--- a\n+++ a\n"), Err(ParseError::Malformed { .. })));
    assert!(matches!(parse("--- a\n+++ a\n@@ -1 +1 @@\n-x\n+y\n+z\n"), Err(ParseError::Malformed { .. })));
    assert!(matches!(
        parse("diff --git a/x b/x\nold mode 100644\nnew mode 100755\n"),
        Err(ParseError::Malformed { .. })
    ));
}

/// Fuzz-style: random bytes, and random mutations of valid patches, never panic the parser or
/// the applier.
#[test]
fn never_panics_on_garbage() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[u8] = b"-+ @,0123456789\n\tab/\\dev/null diff --git";
    for round in 0..3000 {
        let text: String = if round % 2 == 0 {
            let len = (next() % 200) as usize;
            (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char).collect()
        } else {
            let base = if round % 4 == 1 { GIT } else { DIFF_U };
            let mut bytes: Vec<char> = base.chars().collect();
            for _ in 0..(next() % 6 + 1) {
                let at = (next() % bytes.len() as u64) as usize;
                match next() % 3 {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[(next() % alphabet.len() as u64) as usize] as char),
                    _ => bytes.truncate(at),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            bytes.into_iter().collect()
        };
        if let Ok(files) = parse(&text) {
            for f in &files {
                let _ = apply(f, "#!/bin/sh\necho helo\nexit 0\n");
                let _ = apply(f, "");
            }
        }
    }
}

#[test]
fn strips_a_and_b_only_when_both_sides_carry_them() {
    let plain = "--- a/x.txt\t2026-12-05\n+++ a/x.txt\t2026-12-05\n@@ -1 +1 @@\n-1\n+2\n";
    assert_eq!(parse(plain).unwrap()[0].path, PathBuf::from("a/x.txt"), "a directory named `a` is kept");
    let styled = "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-1\n+2\n";
    assert_eq!(parse(styled).unwrap()[0].path, PathBuf::from("x.txt"));
    let tree =
        "diff -ruN old/svc/x new/svc/x\n--- old/svc/x\t2026-12-05\n+++ new/svc/x\t2026-12-05\n@@ -1 +1 @@\n-1\n+2\n";
    let p = parse(tree).unwrap();
    assert_eq!((p.len(), p[0].path.to_str(), &p[0].change), (1, Some("new/svc/x"), &Change::Modify));
}

#[test]
fn keeps_the_no_newline_at_end_of_file_marker() {
    let p = parse(
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n\\ No newline at end of file\n+new\n\\ No newline at end of file\n",
    )
    .unwrap();
    assert_eq!(apply(&p[0], "old").unwrap(), "new");
}
