//! `razar analyze`, `razar completions` and `razar man` through the real binary.

use serde_json::Value;

use crate::harness::Razar;

#[test]
fn analyze_prints_category_evidence_and_remediation() {
    let r = Razar::new();
    r.write(
        "logs/components/api.log",
        "starting api\nTraceback (most recent call last):\n  File \"api.py\", line 1, in <module>\n    import fastapi\nModuleNotFoundError: No module named 'fastapi'\n",
    );
    let out = r.run(&["analyze", "logs/components/api.log"]);
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0], "category: dependency");
    assert_eq!(lines[1], "evidence: ModuleNotFoundError: No module named 'fastapi'");
    assert!(lines[2].starts_with("remediation: ") && lines[2].contains("`fastapi`"), "{}", lines[2]);
}

#[test]
fn analyze_json_is_one_object_on_stdout() {
    let r = Razar::new();
    r.write("fail.log", "GET /v1 -> 502 Bad Gateway\nretrying\nthread 'main' panicked at src/main.rs:9:5:\nboom\n");
    let out = r.run(&["analyze", "--json", "fail.log"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(v["category"], "external", "external beats logic: {v}");
    assert_eq!(v["evidence"], "GET /v1 -> 502 Bad Gateway");
    assert_eq!(v["line"], 1);
    assert!(v["remediation"].as_str().unwrap().contains("502"), "{v}");
    assert_eq!(v["file"], r.path("fail.log").display().to_string());
}

#[test]
fn analyze_reports_unknown_logs_with_success() {
    let r = Razar::new();
    r.write("quiet.log", "all fine\nexit 3\n");
    let out = r.run(&["analyze", "--json", "quiet.log"]);
    out.expect_code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((v["category"].as_str(), v["evidence"].as_str()), (Some("unknown"), Some("exit 3")));
}

#[test]
fn analyze_of_a_missing_file_names_it_and_exits_2() {
    let r = Razar::new();
    let out = r.run(&["analyze", "nope.log"]);
    out.expect_code(2);
    assert!(out.stderr.contains("cannot read log file") && out.stderr.contains("nope.log"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn completions_are_generated_from_the_flags() {
    let r = Razar::new();
    let out = r.run(&["completions", "bash"]);
    out.expect_code(0);
    assert!(out.stdout.contains("_razar"), "{}", out.stdout);
    assert!(out.stdout.contains("analyze") && out.stdout.contains("--root"), "subcommands and flags come from clap");
    for shell in ["zsh", "fish"] {
        let out = r.run(&["completions", shell]);
        out.expect_code(0);
        assert!(out.stdout.contains("analyze"), "{shell}: {}", out.stdout);
    }
    r.run(&["completions", "tcsh"]).expect_code(2);
}

#[test]
fn man_prints_a_roff_page() {
    let r = Razar::new();
    let out = r.run(&["man"]);
    out.expect_code(0);
    assert!(out.stdout.contains(".TH razar"), "{}", out.stdout);
    assert!(out.stdout.contains("analyze"), "subcommands are listed");
}
