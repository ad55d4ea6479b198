//! Fixture lakes and the DuckDB runner, shared by the integration tests and the benchmark
//! (`#[path]`-included there), so both write and read lakes the same way.
#![allow(dead_code)] // each including target uses a part

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lakewatch_sql::LocalEngine;
use serde_json::{Value, json};

/// A lake written as the ingest path writes it: gzip NDJSON under
/// `events/year=/month=/day=/hour=/`.
pub struct Lake {
    root: PathBuf,
    /// Removes a temporary lake when dropped.
    _temp: Option<tempfile::TempDir>,
}

impl Lake {
    /// A lake in a new temporary directory.
    pub fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        Lake {
            root: temp.path().to_path_buf(),
            _temp: Some(temp),
        }
    }

    /// A lake kept at `root` (the benchmark's, reused between runs).
    pub fn at(root: PathBuf) -> Self {
        Lake { root, _temp: None }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Writes `lines` into the partition of `hour` (`YYYY-MM-DDTHH`) as file `name`.
    pub fn write(&self, table: &str, hour: &str, name: &str, lines: &[String]) -> PathBuf {
        let dir = self.path().join(table).join(partition(hour));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        for line in lines {
            gz.write_all(line.as_bytes()).unwrap();
            gz.write_all(b"\n").unwrap();
        }
        gz.finish().unwrap();
        path
    }

    /// Writes each event into the partition of its own `utctimestamp`, one file per hour.
    pub fn write_events(&self, name: &str, events: &[Value]) {
        let mut by_hour: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for event in events {
            let hour = event["utctimestamp"].as_str().unwrap()[..13].to_string();
            by_hour.entry(hour).or_default().push(event.to_string());
        }
        for (hour, lines) in by_hour {
            self.write("events", &hour, name, &lines);
        }
    }

    pub fn engine(&self) -> LocalEngine {
        LocalEngine::open(self.path()).unwrap()
    }
}

pub fn partition(hour: &str) -> String {
    format!(
        "year={}/month={}/day={}/hour={}",
        &hour[0..4],
        &hour[5..7],
        &hour[8..10],
        &hour[11..13]
    )
}

/// An event shell as the pipeline writes it.
pub fn event(time: &str, source: &str, summary: &str, tags: &[&str], details: Value) -> Value {
    json!({
        "utctimestamp": format!("{time}.000000Z"),
        "receivedtimestamp": format!("{time}.500000Z"),
        "eventid": format!("{source}-{time}-{summary}"),
        "summary": summary,
        "category": if source == "cloudtrail" { "authentication" } else { "unknown" },
        "source": source,
        "hostname": "",
        "severity": "INFO",
        "tags": tags,
        "plugins": ["lowercase_keys"],
        "details": details,
    })
}

/// The python with DuckDB that the differential test and the benchmark use.
pub fn lakewatch_python() -> String {
    std::env::var("LAKEWATCH_PYTHON").unwrap_or_else(|_| {
        panic!(
            "LAKEWATCH_PYTHON is not set: the differential test and the benchmark run DuckDB through Python. \
             Install it with `python3 -m venv .venv && .venv/bin/pip install -r .ci/requirements.txt` \
             and set LAKEWATCH_PYTHON=$PWD/.venv/bin/python"
        )
    })
}

/// Runs `queries` once each on DuckDB over `lake`.
pub fn duckdb(lake: &Path, queries: &[&str]) -> Vec<Value> {
    duckdb_request(lake, &json!({"queries": queries}))
}

/// Runs a request (see `scripts/duckdb_lake.py`) on DuckDB over `lake`.
pub fn duckdb_request(lake: &Path, request: &Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/duckdb_lake.py");
    let python = lakewatch_python();
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(lake)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run LAKEWATCH_PYTHON={python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "DuckDB script failed (is duckdb==2.0.0 installed for {python}? pip install -r .ci/requirements.txt):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
}
