//! The pipeline's output on the bench corpus stays byte for byte what it was when
//! `tests/corpus/output.digests` was made: optimisations of the hot path must not change a
//! single event. The bench checks the whole corpus before timing it; this test checks its
//! first [`TEST_RECORDS`] records (every sample of every source, several times over with
//! varied fields), which is quick enough in a debug build.
//!
//! When the output is *meant* to change (a new enrichment, a fixed parser), regenerate the
//! digests in the same commit: `LAKEWATCH_UPDATE_OUTPUT_DIGESTS=1 cargo test -p
//! lakewatch-plugins --test output_digest`.

mod corpus;

use corpus::{CHUNK, Corpus, Digests, UPDATE_ENV};
use lakewatch_plugins::{PluginConfig, builtin_pipeline};

/// Records checked by this test: whole chunks, many rounds of the samples.
const TEST_RECORDS: usize = 20 * CHUNK;

#[test]
fn pipeline_output_on_the_bench_corpus_is_unchanged() {
    let corpus = Corpus::build();
    let pipeline = builtin_pipeline(&PluginConfig::default()).unwrap();
    if std::env::var_os(UPDATE_ENV).is_some() {
        let digests = Digests::compute(&pipeline, &corpus, corpus.records);
        digests.store();
        eprintln!(
            "stored the digests of {} records in {}",
            digests.records,
            corpus::DIGESTS_FILE
        );
        return;
    }
    assert!(
        corpus.samples <= TEST_RECORDS,
        "the checked slice must hold every sample at least once: raise TEST_RECORDS"
    );
    let computed = Digests::compute(&pipeline, &corpus, TEST_RECORDS.min(corpus.records));
    Digests::check(&computed, &corpus);
}
