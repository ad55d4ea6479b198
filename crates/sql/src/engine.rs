//! [`LocalEngine`]: Athena SQL over a local lake directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::DataFusionError;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, SelectItem, SetExpr, Statement as SqlStatement,
};
use lakewatch_lake::schema::{EVENTS, EXTRACT, TABLES, Table};

use crate::catalog::{AnyCatalog, CATALOG, DATABASE, LakeSchema};
use crate::error::{QueryError, unsupported_function};
use crate::reader::{ScanCounters, ScanStats};
use crate::table::{LakeTable, Shared};
use lakewatch_lake::partitions::Partition;

/// The embedded engine of local mode: the lake's tables (`events`, `alerts`) and Athena's
/// functions, on DataFusion. Cheap to clone the results of, safe to share between tasks;
/// queries must run inside a Tokio runtime.
pub struct LocalEngine {
    ctx: SessionContext,
    lake: PathBuf,
    /// The lake's tables by name, for [`LocalEngine::share`].
    tables: Vec<(&'static str, Arc<LakeTable>)>,
}

/// At most this many compressed bytes of a table are held in memory by [`LocalEngine::share`]
/// (about ten times as much once decoded): beyond it, queries read the files themselves.
pub const SHARED_BYTES_MAX: u64 = 64 << 20;

/// A query's answer: the rows as Arrow batches, and what the scans read.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub stats: ScanStats,
}

impl LocalEngine {
    /// The engine over the lake in `lake` (the directory holding `events/` and `alerts/`).
    pub fn open(lake: impl AsRef<Path>) -> Result<Self, QueryError> {
        Self::open_tables(lake, TABLES)
    }

    /// The engine over the detection extract of the lake in `lake` (`LAKE/extract/events/`, in
    /// quarter-hour partitions) as its `events` table: what the rules' queries read.
    pub fn open_extract(lake: impl AsRef<Path>) -> Result<Self, QueryError> {
        Self::open_tables(
            lake,
            &[Table {
                name: EVENTS.name,
                ..EXTRACT
            }],
        )
    }

    fn open_tables(lake: impl AsRef<Path>, tables: &[Table]) -> Result<Self, QueryError> {
        let lake = lake.as_ref().to_path_buf();
        let lake_error = |reason: String| QueryError::Lake {
            path: lake.clone(),
            reason,
        };
        match std::fs::metadata(&lake) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(lake_error("not a directory".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(lake_error(
                    "does not exist (create a lake with `lakewatch ingest --lake DIR FILES`)"
                        .into(),
                ));
            }
            Err(e) => return Err(lake_error(e.to_string())),
        }
        let tables: Vec<(&'static str, Arc<LakeTable>)> = tables
            .iter()
            .map(|t| (t.name, Arc::new(LakeTable::new(*t, &lake))))
            .collect();
        let providers = tables
            .iter()
            .map(|(name, table)| (*name, table.clone() as Arc<dyn TableProvider>))
            .collect();
        let catalog = AnyCatalog::new(Arc::new(LakeSchema::new(providers)));
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, DATABASE);
        let parser = &mut config.options_mut().sql_parser;
        // `CAST(x AS VARCHAR)` stays `Utf8`, the one string type of the lake's columns.
        parser.map_string_types_to_utf8view = false;
        // Positions of planning errors (unknown column, unknown function) for the messages.
        parser.collect_spans = true;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_catalog_list(Arc::new(catalog))
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        crate::functions::register_all(&ctx);
        Ok(LocalEngine { ctx, lake, tables })
    }

    /// Reads the files of `table`'s partitions `partitions` once into memory, so that the
    /// queries that follow take them from there instead of reading them again (and counting
    /// their bytes again); replaces what was held before ([`LakeTable::share`]), at most
    /// [`SHARED_BYTES_MAX`] of it.
    pub fn share<P: Partition>(&self, table: &str, partitions: &[P]) -> Result<Shared, QueryError> {
        let (_, lake_table) = self
            .tables
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(table))
            .ok_or_else(|| QueryError::UnknownTable {
                name: table.to_string(),
                tables: self.table_names(),
            })?;
        let batch_size = self.ctx.state().config().batch_size();
        lake_table
            .share(partitions, SHARED_BYTES_MAX, batch_size)
            .map_err(|e| QueryError::Execution(without_prefix(&e)))
    }

    fn table_names(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// The lake directory.
    pub fn lake(&self) -> &Path {
        &self.lake
    }

    /// The DataFusion context, e.g. to register more functions.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs one SQL statement (Athena's dialect) and collects its rows.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        let counters = Arc::new(ScanCounters::default());
        let mut state = self.ctx.state();
        // Each query counts its own scans: the tables find the counters in the session.
        state.config_mut().set_extension(counters.clone());

        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(|e| QueryError::syntax(&e, sql))?;
        if !reads_only(&statement) {
            let keyword = sql.split_whitespace().next().unwrap_or_default();
            return Err(QueryError::NotAllowed {
                what: keyword.to_ascii_uppercase(),
            });
        }

        for reference in state
            .resolve_table_references(&statement)
            .map_err(|e| QueryError::plan(e, sql))?
        {
            let system = reference
                .schema()
                .is_some_and(|s| s.eq_ignore_ascii_case("information_schema"));
            if !system
                && !self
                    .tables
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case(reference.table()))
            {
                return Err(QueryError::UnknownTable {
                    name: reference.to_string(),
                    tables: self.table_names(),
                });
            }
        }

        let known = |name: &str| {
            state.scalar_functions().contains_key(name)
                || state.aggregate_functions().contains_key(name)
                || state.window_functions().contains_key(name)
                || state.higher_order_functions().contains_key(name)
        };
        if let Some(error) = unsupported_function(&statement, &known, sql) {
            return Err(error);
        }

        let unnamed = unnamed_columns(&statement);
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| QueryError::plan(e, sql))?;

        let frame = DataFrame::new(state, plan);
        let schema = athena_names(frame.schema().as_arrow(), &unnamed);
        let batches = frame
            .collect()
            .await
            .map_err(|e| QueryError::Execution(without_prefix(&e)))?
            .into_iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueryError::Execution(e.to_string()))?;
        Ok(QueryResult {
            schema,
            batches,
            stats: counters.snapshot(),
        })
    }
}

/// The positions of the select list's expressions that have no name of their own (not a
/// column, no alias): Athena calls those columns `_col0`, `_col1`… by position, and rules
/// written against Athena's results expect those names. Empty when the list has a `*`.
fn unnamed_columns(statement: &Statement) -> Vec<usize> {
    let Statement::Statement(s) = statement else {
        return Vec::new();
    };
    let SqlStatement::Query(query) = s.as_ref() else {
        return Vec::new();
    };
    let mut body = query.body.as_ref();
    // A set operation's columns are named by its first SELECT.
    while let SetExpr::SetOperation { left, .. } = body {
        body = left;
    }
    let SetExpr::Select(select) = body else {
        return Vec::new();
    };
    if select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    }) {
        return Vec::new();
    }
    select
        .projection
        .iter()
        .enumerate()
        .filter(|(_, item)| {
            matches!(item, SelectItem::UnnamedExpr(e)
                if !matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)))
        })
        .map(|(i, _)| i)
        .collect()
}

/// The result schema with Athena's `_colN` names at the `unnamed` positions.
fn athena_names(schema: &Schema, unnamed: &[usize]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if unnamed.contains(&i) {
                f.as_ref().clone().with_name(format!("_col{i}"))
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Whether the statement only reads: a query, or `SHOW`/`DESCRIBE`/`EXPLAIN` of one. The
/// local engine never writes (no `CREATE`, `INSERT`, `COPY`, `SET`).
fn reads_only(statement: &Statement) -> bool {
    match statement {
        Statement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_)
            | SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. }
            | SqlStatement::ShowFunctions { .. }
            | SqlStatement::ExplainTable { .. } => true,
            SqlStatement::Explain { statement, .. } => {
                matches!(statement.as_ref(), SqlStatement::Query(_))
            }
            _ => false,
        },
        Statement::Explain(explain) => reads_only(&explain.statement),
        _ => false,
    }
}

/// DataFusion's message without its category prefix ("Execution error: ").
fn without_prefix(error: &DataFusionError) -> String {
    let text = error.find_root().strip_backtrace();
    for prefix in [
        "Execution error: ",
        "Error during planning: ",
        "External error: ",
        "This feature is not implemented: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    text
}
