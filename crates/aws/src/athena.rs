//! Athena as the rules' query engine: `StartQueryExecution` in a workgroup, `GetQueryExecution`
//! polled with exponential backoff until the query ends or its timeout (then
//! `StopQueryExecution`, so a runaway query stops costing money), and `GetQueryResults` read
//! page by page into rows of text.
//!
//! The workgroup decides where Athena writes its result files (and may cap bytes scanned), so
//! none is passed here. Every query's duration, row count and bytes scanned are recorded
//! ([`AthenaEngine::take_metrics`]) so the detector can log them per rule.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_athena::error::DisplayErrorContext;
use aws_sdk_athena::operation::get_query_results::GetQueryResultsOutput;
use aws_sdk_athena::types::{QueryExecution, QueryExecutionContext, QueryExecutionState};
use lakewatch_detect::{QueryEngine, Row};

/// The largest page `GetQueryResults` returns (its `MaxResults` limit).
pub const MAX_PAGE_SIZE: i32 = 1000;

/// Where and how queries run.
#[derive(Debug, Clone)]
pub struct AthenaSettings {
    pub workgroup: String,
    /// The Glue database unqualified table names (`events`, `alerts`) resolve in.
    pub database: String,
    /// First wait between two `GetQueryExecution` calls; doubled after each, up to `max_poll`.
    /// Short queries finish within a second, so starting small keeps a run of many rules quick,
    /// and the cap keeps a long query from being polled thousands of times.
    pub first_poll: Duration,
    pub max_poll: Duration,
    /// How long a query may stay queued or running before it is stopped and its rule fails.
    pub timeout: Duration,
    /// Rows per `GetQueryResults` page (1 to [`MAX_PAGE_SIZE`]).
    pub page_size: i32,
}

impl AthenaSettings {
    /// Defaults for the detector: polls from 200 ms up to 5 s, pages of 1000 rows.
    pub fn new(
        workgroup: impl Into<String>,
        database: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        AthenaSettings {
            workgroup: workgroup.into(),
            database: database.into(),
            first_poll: Duration::from_millis(200),
            max_poll: Duration::from_secs(5),
            timeout,
            page_size: MAX_PAGE_SIZE,
        }
    }
}

/// What one query cost, for the per-rule log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMetrics {
    pub query_execution_id: String,
    /// From start to the end of reading its results.
    pub duration: Duration,
    pub rows: usize,
    /// Athena's `DataScannedInBytes` (what a query is billed by); 0 when not reported.
    pub bytes_scanned: i64,
}

/// Runs SQL on Athena; see the module docs.
#[derive(Debug)]
pub struct AthenaEngine {
    client: aws_sdk_athena::Client,
    settings: AthenaSettings,
    metrics: Mutex<Vec<QueryMetrics>>,
    /// Bytes scanned since [`QueryEngine::take_bytes_read`] last took them.
    scanned_since_taken: AtomicU64,
    deadline: Mutex<Option<Instant>>,
}

/// Time kept back before an invocation's deadline: enough to stop a query, save the rule's
/// state and log.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// How long one query may take, and whether the invocation's deadline or the timeout set it.
#[derive(Debug, Clone, Copy)]
struct Budget {
    limit: Duration,
    by_deadline: bool,
}

impl Budget {
    fn timeout(limit: Duration) -> Self {
        Budget {
            limit,
            by_deadline: false,
        }
    }

    fn describe(self, timeout: Duration) -> String {
        if self.by_deadline {
            format!(
                "the {:?} left in this invocation (the query timeout is {timeout:?}); the window \
                 stays due for the next run",
                self.limit
            )
        } else {
            format!("the timeout of {timeout:?} (LAKEWATCH_QUERY_TIMEOUT_SECONDS)")
        }
    }
}

impl AthenaEngine {
    pub fn new(client: aws_sdk_athena::Client, settings: AthenaSettings) -> Self {
        AthenaEngine {
            client,
            settings,
            metrics: Mutex::new(Vec::new()),
            scanned_since_taken: AtomicU64::new(0),
            deadline: Mutex::new(None),
        }
    }

    /// Sets when the current invocation must end: queries then get at most the time left
    /// (minus [`DEADLINE_MARGIN`] to stop the query and save what is done), and none starts
    /// when too little is left, so a run out of time ends cleanly and its rules' remaining
    /// windows stay due for the next run.
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
    }

    /// How long a query starting now may take.
    fn budget(&self, now: Instant) -> Result<Budget, String> {
        let deadline = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        let Some(deadline) = deadline else {
            return Ok(Budget::timeout(self.settings.timeout));
        };
        let left = deadline.saturating_duration_since(now);
        match left.checked_sub(DEADLINE_MARGIN) {
            Some(usable) if !usable.is_zero() => Ok(if usable < self.settings.timeout {
                Budget {
                    limit: usable,
                    by_deadline: true,
                }
            } else {
                Budget::timeout(self.settings.timeout)
            }),
            _ => Err(format!(
                "no query started: {:.1}s left in this invocation; the window stays due for \
                 the next run",
                left.as_secs_f64()
            )),
        }
    }

    /// The metrics of the queries run since the last call (successful or not), oldest first.
    pub fn take_metrics(&self) -> Vec<QueryMetrics> {
        std::mem::take(&mut self.metrics.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn record(&self, metrics: QueryMetrics) {
        self.scanned_since_taken
            .fetch_add(metrics.bytes_scanned.max(0) as u64, Ordering::Relaxed);
        self.metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(metrics);
    }

    /// Runs one query to the end and returns its rows.
    pub async fn run(&self, sql: &str) -> Result<Vec<Row>, String> {
        let started = Instant::now();
        let budget = self.budget(started)?;
        let id = self.start(sql).await?;
        let outcome = self.wait(&id, started, budget).await;
        let bytes_scanned = outcome
            .as_ref()
            .map(bytes_scanned)
            .unwrap_or_else(|(_, scanned)| *scanned);
        let result = match outcome {
            Ok(_) => self.results(&id).await,
            Err((error, _)) => Err(error),
        };
        self.record(QueryMetrics {
            query_execution_id: id,
            duration: started.elapsed(),
            rows: result.as_ref().map_or(0, Vec::len),
            bytes_scanned,
        });
        result
    }

    async fn start(&self, sql: &str) -> Result<String, String> {
        let output = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.settings.workgroup)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database(&self.settings.database)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                format!(
                    "StartQueryExecution in workgroup {} failed: {}",
                    self.settings.workgroup,
                    DisplayErrorContext(&e)
                )
            })?;
        output
            .query_execution_id()
            .map(str::to_string)
            .ok_or_else(|| "StartQueryExecution returned no QueryExecutionId".to_string())
    }

    /// Polls until the query succeeded (its execution), or fails with an error naming the
    /// state and Athena's reason (and the bytes it scanned anyway).
    async fn wait(
        &self,
        id: &str,
        started: Instant,
        budget: Budget,
    ) -> Result<QueryExecution, (String, i64)> {
        let mut delay = self.settings.first_poll;
        loop {
            let output = self
                .client
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .map_err(|e| {
                    (
                        format!("GetQueryExecution {id} failed: {}", DisplayErrorContext(&e)),
                        0,
                    )
                })?;
            let execution = output
                .query_execution()
                .cloned()
                .ok_or_else(|| (format!("GetQueryExecution {id} returned no execution"), 0))?;
            match ended(id, &execution) {
                Some(Ok(())) => return Ok(execution),
                Some(Err(error)) => return Err((error, bytes_scanned(&execution))),
                None => {}
            }
            let elapsed = started.elapsed();
            if elapsed >= budget.limit {
                let stop = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(id)
                    .send()
                    .await;
                let stopped = match stop {
                    Ok(_) => "it was stopped".to_string(),
                    Err(e) => format!("stopping it failed too: {}", DisplayErrorContext(&e)),
                };
                let state = execution
                    .status()
                    .and_then(|s| s.state())
                    .map_or_else(|| "in no state".to_string(), |s| s.to_string());
                return Err((
                    format!(
                        "Athena query {id} still {state} after {:.1}s, past {}; {stopped}",
                        elapsed.as_secs_f64(),
                        budget.describe(self.settings.timeout),
                    ),
                    bytes_scanned(&execution),
                ));
            }
            tokio::time::sleep(delay.min(budget.limit - elapsed)).await;
            delay = (delay * 2).min(self.settings.max_poll);
        }
    }

    async fn results(&self, id: &str) -> Result<Vec<Row>, String> {
        read_pages(|token| {
            self.client
                .get_query_results()
                .query_execution_id(id)
                .max_results(self.settings.page_size.clamp(1, MAX_PAGE_SIZE))
                .set_next_token(token)
                .send()
        })
        .await
        .map_err(|e| format!("GetQueryResults {id}: {e}"))
    }
}

impl QueryEngine for AthenaEngine {
    async fn query(&self, sql: &str) -> Result<Vec<Row>, String> {
        self.run(sql).await
    }

    /// Athena's `DataScannedInBytes` of the queries since the last call ([`Self::take_metrics`]
    /// keeps the per-query figures apart).
    fn take_bytes_read(&self) -> Option<u64> {
        Some(self.scanned_since_taken.swap(0, Ordering::Relaxed))
    }
}

/// `None` while the query is queued or running; `Ok` when it succeeded; the error naming the
/// state and Athena's reason when it failed or was cancelled.
fn ended(id: &str, execution: &QueryExecution) -> Option<Result<(), String>> {
    let status = execution.status();
    match status.and_then(|s| s.state())? {
        QueryExecutionState::Succeeded => Some(Ok(())),
        state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled) => {
            let mut reason = status
                .and_then(|s| s.state_change_reason())
                .unwrap_or("Athena gave no reason")
                .to_string();
            if let Some(message) = status
                .and_then(|s| s.athena_error())
                .and_then(|e| e.error_message())
                .filter(|m| !reason.contains(m))
            {
                reason.push_str(&format!(" ({message})"));
            }
            Some(Err(format!("Athena query {id} ended {state}: {reason}")))
        }
        _ => None,
    }
}

fn bytes_scanned(execution: &QueryExecution) -> i64 {
    execution
        .statistics()
        .and_then(|s| s.data_scanned_in_bytes())
        .unwrap_or(0)
}

/// Reads every page of a query's results: `fetch(next_token)` returns one page. Column names
/// come from the result set metadata; the first row of the first page is Athena's header row
/// (the column labels) and is skipped. A value without `VarCharValue` is NULL.
pub async fn read_pages<F, Fut, E>(mut fetch: F) -> Result<Vec<Row>, String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<GetQueryResultsOutput, E>>,
    E: std::error::Error,
{
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    let mut token = None;
    let mut page_number = 0usize;
    loop {
        page_number += 1;
        let page = fetch(token.take())
            .await
            .map_err(|e| format!("page {page_number}: {}", error_chain(&e)))?;
        let set = page.result_set();
        let mut page_rows = set.map(|s| s.rows()).unwrap_or_default();
        if page_number == 1 {
            columns = set
                .and_then(|s| s.result_set_metadata())
                .map(|m| {
                    m.column_info()
                        .iter()
                        .map(|c| c.name().to_string())
                        .collect()
                })
                .unwrap_or_default();
            page_rows = page_rows.get(1..).unwrap_or_default();
        }
        for (index, row) in page_rows.iter().enumerate() {
            let data = row.data();
            if data.len() != columns.len() {
                return Err(format!(
                    "page {page_number} row {}: {} values for {} columns ({}); the results are \
                     malformed",
                    index + 1,
                    data.len(),
                    columns.len(),
                    columns.join(", ")
                ));
            }
            rows.push(
                columns
                    .iter()
                    .cloned()
                    .zip(data.iter().map(|d| d.var_char_value().map(str::to_string)))
                    .collect(),
            );
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(rows),
        }
    }
}

/// An SDK error with its sources, which hold the useful part (the service's message).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_athena::types::{
        ColumnInfo, Datum, ResultSet, ResultSetMetadata, Row as AthenaRow,
    };

    fn row(values: &[Option<&str>]) -> AthenaRow {
        let mut row = AthenaRow::builder();
        for value in values {
            row = row.data(
                Datum::builder()
                    .set_var_char_value(value.map(String::from))
                    .build(),
            );
        }
        row.build()
    }

    fn page(rows: Vec<AthenaRow>, columns: &[&str], next: Option<&str>) -> GetQueryResultsOutput {
        let mut metadata = ResultSetMetadata::builder();
        for name in columns {
            metadata = metadata.column_info(
                ColumnInfo::builder()
                    .name(*name)
                    .r#type("varchar")
                    .build()
                    .unwrap(),
            );
        }
        GetQueryResultsOutput::builder()
            .result_set(
                ResultSet::builder()
                    .set_rows(Some(rows))
                    .result_set_metadata(metadata.build())
                    .build(),
            )
            .set_next_token(next.map(String::from))
            .build()
    }

    /// Serves `pages` in order, checking each request carries the previous page's token.
    async fn read(pages: Vec<GetQueryResultsOutput>) -> Result<Vec<Row>, String> {
        let expected: Vec<Option<String>> = std::iter::once(None)
            .chain(pages.iter().map(|p| p.next_token().map(String::from)))
            .collect();
        let mut served = pages.into_iter().enumerate();
        read_pages(|token| {
            let (index, page) = served.next().expect("no request after the last page");
            assert_eq!(token, expected[index], "token of request {index}");
            async move { Ok::<_, std::io::Error>(page) }
        })
        .await
    }

    fn as_pairs(rows: &[Row]) -> Vec<Vec<(&str, Option<&str>)>> {
        rows.iter()
            .map(|r| r.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect())
            .collect()
    }

    #[tokio::test]
    async fn reads_every_page_and_skips_only_the_first_header_row() {
        let columns = ["user", "ip"];
        let rows = read(vec![
            page(
                vec![
                    row(&[Some("user"), Some("ip")]),
                    row(&[Some("alice"), Some("192.0.2.1")]),
                ],
                &columns,
                Some("t1"),
            ),
            // Later pages carry no header row, though they may repeat the metadata.
            page(
                vec![row(&[Some("bob"), None]), row(&[Some("carol"), Some("")])],
                &columns,
                Some("t2"),
            ),
            page(vec![row(&[Some("dave"), Some("192.0.2.4")])], &[], None),
        ])
        .await
        .unwrap();
        assert_eq!(
            as_pairs(&rows),
            [
                vec![("ip", Some("192.0.2.1")), ("user", Some("alice"))],
                vec![("ip", None), ("user", Some("bob"))],
                vec![("ip", Some("")), ("user", Some("carol"))],
                vec![("ip", Some("192.0.2.4")), ("user", Some("dave"))],
            ]
        );
    }

    #[tokio::test]
    async fn an_empty_result_has_no_rows() {
        assert!(
            read(vec![page(vec![], &[], None)])
                .await
                .unwrap()
                .is_empty()
        );
        let header_only = page(vec![row(&[Some("user")])], &["user"], Some(""));
        assert!(read(vec![header_only]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_row_with_the_wrong_number_of_values_is_an_error() {
        let error = read(vec![
            page(vec![row(&[Some("user")])], &["user"], Some("t1")),
            page(vec![row(&[Some("alice"), Some("extra")])], &["user"], None),
        ])
        .await
        .unwrap_err();
        assert_eq!(
            error,
            "page 2 row 1: 2 values for 1 columns (user); the results are malformed"
        );
    }

    fn execution(
        state: QueryExecutionState,
        reason: Option<&str>,
        athena_message: Option<&str>,
    ) -> QueryExecution {
        use aws_sdk_athena::types::{AthenaError, QueryExecutionStatus};
        QueryExecution::builder()
            .status(
                QueryExecutionStatus::builder()
                    .state(state)
                    .set_state_change_reason(reason.map(String::from))
                    .set_athena_error(
                        athena_message.map(|m| AthenaError::builder().error_message(m).build()),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_failed_or_cancelled_query_is_an_error_naming_its_state_and_reason() {
        use QueryExecutionState::*;
        let cases = [
            (Succeeded, None, None, Some(Ok(()))),
            (Queued, None, None, None),
            (Running, None, None, None),
            (
                Failed,
                Some("COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved"),
                Some("Column 'x' cannot be resolved"),
                Some(Err(
                    "Athena query q ended FAILED: COLUMN_NOT_FOUND: line 1:8: Column 'x' \
                          cannot be resolved",
                )),
            ),
            (
                Failed,
                Some("Query exhausted resources at this scale factor"),
                Some("EXCEEDED_MEMORY_LIMIT"),
                Some(Err(
                    "Athena query q ended FAILED: Query exhausted resources at this scale \
                          factor (EXCEEDED_MEMORY_LIMIT)",
                )),
            ),
            (
                Cancelled,
                None,
                None,
                Some(Err("Athena query q ended CANCELLED: Athena gave no reason")),
            ),
        ];
        for (state, reason, message, expected) in cases {
            let verdict = ended("q", &execution(state.clone(), reason, message));
            assert_eq!(
                verdict,
                expected.map(|r| r.map_err(String::from)),
                "{state}"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_page_names_its_number_and_cause() {
        let mut calls = 0;
        let error = read_pages(|_| {
            calls += 1;
            let call = calls;
            async move {
                if call == 1 {
                    Ok(page(vec![row(&[Some("user")])], &["user"], Some("t1")))
                } else {
                    Err(std::io::Error::other("throttled"))
                }
            }
        })
        .await
        .unwrap_err();
        assert_eq!(error, "page 2: throttled");
    }
}
