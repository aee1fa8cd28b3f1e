//! Replays the committed fuzz corpus (`host/fuzz/corpus/<target>/`) through the same
//! entry points the fuzz targets use, so every CI run checks the seeds and every crash
//! input ever added to the corpus.

use wasmflo_host::fuzzing;

use crate::support::repo;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = repo().join("host/fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        check(&data);
        // Truncations too: a corpus of whole files says little about half-read ones.
        for cut in [
            1,
            data.len() / 3,
            data.len() / 2,
            data.len().saturating_sub(1),
        ] {
            check(&data[..cut.min(data.len())]);
        }
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}

#[test]
fn fbp_graph_corpus() {
    replay("fbp_graph", fuzzing::fbp_graph);
}

#[test]
fn json_graph_corpus() {
    replay("json_graph", fuzzing::json_graph);
}

#[test]
fn library_corpus() {
    replay("library", fuzzing::library);
}

#[test]
fn protocol_corpus() {
    replay("protocol", fuzzing::protocol);
}

#[test]
fn component_corpus() {
    replay("component", fuzzing::component);
}

#[test]
fn discovery_corpus() {
    replay("discovery", fuzzing::discovery);
}

#[test]
fn guv_config_corpus() {
    replay("guv_config", fuzzing::guv_config);
}

#[test]
fn canvas_corpus() {
    replay("canvas", fuzzing::canvas);
}
