//! The fuzz targets' corpora (`fuzz/corpus/<target>/`, grown by `cargo +nightly fuzz run` and
//! minimised) replayed through `nfnet::fuzzing`: every file must come back as Ok or a typed
//! error, never a panic, so that a crash once found and fixed stays fixed without a nightly
//! toolchain. The seeds are whole valid files and must load.

use nfnet::fuzzing::TARGETS;
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_gives_ok_or_a_typed_error() {
    let mut replayed = 0;
    for (target, run) in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            // A panic here names the file: the test harness prints the message.
            let _ = std::panic::catch_unwind(|| run(&bytes)).unwrap_or_else(|_| panic!("{target}: {} panicked", file.display()));
            replayed += 1;
        }
    }
    eprintln!("fuzz corpora: {replayed} files replayed");
}

/// The hand-made seeds are valid files of their kind: the targets accept them (else the
/// fuzzer would start from files that fail at the first check).
#[test]
fn the_seed_files_are_accepted() {
    let seeds = [
        ("weights", "tiny"),
        ("checkpoint", "tiny"),
        ("model_config", "tiny"),
        ("model_config", "dm_mini"),
        ("input_file", "one"),
        ("cifar", "two"),
        ("image", "rgb.png"),
        ("image", "gray.png"),
        ("image", "rgb.jpg"),
    ];
    for (target, seed) in seeds {
        let run = TARGETS.iter().find(|(t, _)| *t == target).unwrap().1;
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target)
            .join(seed);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = run(&bytes) {
            panic!("{target} seed {seed} refused: {e}");
        }
    }
}
