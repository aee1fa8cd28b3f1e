//! Replays the committed fuzz corpus (`edge-host/fuzz/corpus/component/`) through the
//! fuzz target's entry point, with truncations, so every test run checks the seeds and
//! every crash input ever added to the corpus.

use std::path::Path;

use wasmflo_edge::fuzzing;

#[test]
fn component_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/component");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        fuzzing::component(&data);
        for cut in [
            1,
            data.len() / 3,
            data.len() / 2,
            data.len().saturating_sub(1),
        ] {
            fuzzing::component(&data[..cut.min(data.len())]);
        }
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

/// Every example component the project builds loads and runs through the fuzz entry
/// point unchanged (the seeds in the corpus are some of them).
#[test]
fn built_components_pass_the_fuzz_checks() {
    let dir = wasmflo_host::component::components_dir();
    let mut n = 0;
    for group in std::fs::read_dir(&dir).expect("components dir") {
        let Ok(files) = std::fs::read_dir(group.expect("entry").path()) else {
            continue;
        };
        for file in files {
            let path = file.expect("entry").path();
            if path.extension().is_some_and(|e| e == "wasm") {
                fuzzing::component(&std::fs::read(&path).expect("read"));
                n += 1;
            }
        }
    }
    assert!(n > 0, "no components in {}", dir.display());
}
