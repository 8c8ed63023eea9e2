//! Replays the committed fuzz corpora as ordinary tests, so CI checks every
//! input the fuzzer ever kept (and every crash it ever found) without
//! libFuzzer, and checks the hand-written malformed corpora for the exact
//! refusal each file names.
//!
//! * `fuzz/corpus/<target>/*` and `fuzz/regressions/<target>/*`: each file
//!   through the target function (which asserts its invariants);
//! * `fuzz/malformed/jws/<case>.<problem type>.json`: refused by
//!   `jws::accept` with that ACME problem type;
//! * `fuzz/malformed/csr/<case>.<CsrErrorKind>.<ext>`: refused by
//!   `csr::accept` with that kind.

use std::fs;
use std::path::{Path, PathBuf};

use certhub_fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Regular, non-hidden files of `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

fn replay(kind: &str, require_files: bool) {
    for (name, run) in TARGETS {
        let dir = fuzz_dir().join(kind).join(name);
        let inputs = files(&dir);
        if require_files {
            assert!(
                !inputs.is_empty(),
                "{} is empty: the committed corpus is missing",
                dir.display()
            );
        }
        for path in inputs {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Name the input if the target panics.
            let res = std::panic::catch_unwind(|| run(&data));
            assert!(res.is_ok(), "{name}: {} fails", path.display());
        }
    }
}

#[test]
fn corpora_replay_cleanly() {
    replay("corpus", true);
}

#[test]
fn regressions_replay_cleanly() {
    replay("regressions", false);
}

/// `(case, expected, bytes)` of `fuzz/malformed/<target>/<case>.<expected>.<ext>`.
fn malformed(target: &str) -> Vec<(String, String, Vec<u8>)> {
    let dir = fuzz_dir().join("malformed").join(target);
    let cases: Vec<_> = files(&dir)
        .into_iter()
        .map(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let mut parts = name.splitn(3, '.');
            let case = parts.next().unwrap_or_default().to_string();
            let expected = parts.next().unwrap_or_default().to_string();
            assert!(
                !expected.is_empty(),
                "{name}: no expected refusal in the name"
            );
            (case, expected, fs::read(&p).expect("readable"))
        })
        .collect();
    assert!(cases.len() >= 20, "{}: too few cases", dir.display());
    cases
}

#[test]
fn malformed_jws_is_refused() {
    for (case, expected, data) in malformed("jws") {
        match certhub_fuzz::jws::accept(&data) {
            Ok(_) => panic!("{case}: accepted"),
            Err(e) => assert_eq!(e.acme_type(), expected, "{case}: {e}"),
        }
        certhub_fuzz::jws(&data);
    }
}

#[test]
fn malformed_csr_is_refused() {
    for (case, expected, data) in malformed("csr") {
        match certhub_fuzz::csr::accept(&data) {
            Ok(p) => panic!("{case}: accepted with names {:?}", p.names),
            Err(e) => {
                assert_eq!(format!("{:?}", e.kind), expected, "{case}: {e}");
                // The message is shown to the client as the reason: a blank
                // interpolation ("curve  is not allowed") names nothing.
                let msg = e.to_string();
                assert!(!msg.contains("  "), "{case}: blank detail in {msg:?}");
            }
        }
        certhub_fuzz::csr(&data);
    }
}

/// The corpora are only useful if they keep inputs that pass the checks the
/// fuzzer would otherwise have to guess its way through (signatures, MACs,
/// the key policy); minimisation must not have dropped them all.
#[test]
fn corpora_reach_the_accepting_paths() {
    let corpus = |t: &str| -> Vec<Vec<u8>> {
        files(&fuzz_dir().join("corpus").join(t))
            .iter()
            .map(|p| fs::read(p).expect("readable"))
            .collect()
    };
    let jws = corpus("jws");
    let verified = jws
        .iter()
        .filter(|d| certhub_fuzz::jws::accept(d).is_ok())
        .count();
    assert!(verified >= 5, "only {verified} corpus JWSs verify");
    let csrs = corpus("csr");
    let accepted = csrs
        .iter()
        .filter(|d| certhub_fuzz::csr::accept(d).is_ok())
        .count();
    assert!(accepted >= 3, "only {accepted} corpus CSRs are accepted");
}
