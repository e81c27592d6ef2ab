//! Python layers built through the library (`razar::layers`) with the real `python3` and pip:
//! a layer installs, is skipped when its stamp matches, and a failed install carries pip's
//! message. Needs `python3` with `venv` and access to PyPI; set `RAZAR_TEST_OFFLINE=1` to skip.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use razar::layers::{self, BuildOptions, STAMP_FILE, Step};
use razar::paths::Paths;

#[test]
fn layer_installs_then_is_skipped_and_a_bad_requirement_fails_with_pips_output() {
    if std::env::var_os("RAZAR_TEST_OFFLINE").is_some() {
        eprintln!("RAZAR_TEST_OFFLINE set: python layer test skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let options = BuildOptions { timeout: Duration::from_secs(180), ..BuildOptions::default() };
    let wanted = BTreeMap::from([
        ("good".to_owned(), vec!["six".to_owned()]),
        ("bad".to_owned(), vec!["razar-no-such-package-xyz".to_owned()]),
    ]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let built = rt.block_on(layers::build_all_with(&paths, &wanted, &options));
    let good = built["good"].as_ref().expect("good layer builds");
    assert!(!good.skipped);
    assert_eq!(good.venv, dir.path().join(".razar_venv/good"));
    assert_eq!(good.bin, good.venv.join("bin"));
    let import = Command::new(good.bin.join("python")).args(["-c", "import six"]).output().unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    let stamp = good.venv.join(STAMP_FILE);
    assert_eq!(std::fs::read_to_string(&stamp).unwrap().trim(), layers::requirements_digest(&["six".to_owned()]));

    let bad = built["bad"].as_ref().expect_err("bad layer fails");
    assert_eq!(bad.layer, "bad");
    assert_eq!(bad.step, Step::Install);
    assert!(bad.reason.contains("exited with status"), "{}", bad.reason);
    assert!(bad.output.contains("razar-no-such-package-xyz"), "{}", bad.output);
    assert!(bad.output.contains("No matching distribution"), "{}", bad.output);
    assert!(bad.to_string().contains("No matching distribution"), "the error shown for its components: {bad}");
    assert!(!dir.path().join(".razar_venv/bad").join(STAMP_FILE).exists(), "no stamp after a failed install");

    // Second run: the good layer is not touched.
    let mtime = std::fs::metadata(&stamp).unwrap().modified().unwrap();
    let only_good = BTreeMap::from([("good".to_owned(), vec!["six".to_owned()])]);
    let again = rt.block_on(layers::build_all_with(&paths, &only_good, &options));
    let good = again["good"].as_ref().unwrap();
    assert!(good.skipped, "stamp matched, install skipped");
    assert_eq!(std::fs::metadata(&stamp).unwrap().modified().unwrap(), mtime);
}
