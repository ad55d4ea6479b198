//! A lake table (`events`, `alerts`) as a DataFusion table: Hive-style partition directories
//! (`year=YYYY/month=MM/day=DD/hour=HH`) pruned by predicates before any file is opened, and
//! files read in parallel by [`crate::reader`].

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::{RecordBatchReceiverStream, RecordBatchStreamAdapter};
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use lakewatch_lake::partitions::Partition;
use lakewatch_lake::schema::{ColumnType, Table};

use crate::reader::{BatchBuilder, LakeFile, MAX_FILE_COLUMNS, ScanCounters, Source};

/// One table of a local lake: `LAKE/<prefix>/year=…/month=…/day=…/hour=…/<files>`.
#[derive(Debug)]
pub struct LakeTable {
    table: Table,
    dir: PathBuf,
    schema: SchemaRef,
    names: Arc<[&'static str]>,
    /// Files read into memory once for the queries that follow ([`LakeTable::share`]), by
    /// path: a scan takes them from here instead of opening them again.
    shared: Mutex<HashMap<PathBuf, SharedFile>>,
}

/// A file held in memory: all its columns (partition keys included), and its size when read,
/// so that a file rewritten since is read again from disk.
#[derive(Debug)]
struct SharedFile {
    size: u64,
    batches: Vec<RecordBatch>,
}

/// What [`LakeTable::share`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shared {
    /// Files now held in memory.
    pub files: u64,
    /// Compressed bytes read for this call (files already held are not read again).
    pub bytes_read: u64,
    /// Files of the hours asked for that were left on disk: holding them would pass the
    /// memory limit (their queries read them).
    pub files_left: u64,
}

/// The Arrow schema of a lake table: its columns as the lake schema defines them (`string` as
/// `Utf8`, `array<string>` as a list of `Utf8`), then the partition keys as `Utf8`, as Athena
/// shows them.
pub fn arrow_schema(table: &Table) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .columns
        .iter()
        .map(|c| Field::new(c.name, arrow_type(c.kind), true))
        .collect();
    fields.extend(
        table
            .partition_keys
            .iter()
            .map(|k| Field::new(*k, DataType::Utf8, true)),
    );
    Arc::new(Schema::new(fields))
}

fn arrow_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::String => DataType::Utf8,
        ColumnType::ArrayOfString => {
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        }
    }
}

impl LakeTable {
    /// The table under `lake_dir`. Its directory may not exist yet (no data): the table is
    /// then empty.
    pub fn new(table: Table, lake_dir: &Path) -> Self {
        assert!(
            table.columns.len() <= MAX_FILE_COLUMNS,
            "the reader keeps at most {MAX_FILE_COLUMNS} columns per line"
        );
        LakeTable {
            dir: lake_dir.join(table.prefix),
            schema: arrow_schema(&table),
            names: table.columns.iter().map(|c| c.name).collect(),
            shared: Mutex::new(HashMap::new()),
            table,
        }
    }

    /// Holds the files of the partitions `partitions` (hours, or the extract's quarter hours) in
    /// memory (all columns) for the queries
    /// that follow, replacing what was held: files held already and still asked for are kept
    /// without being read again, the others are read once (their compressed bytes are in the
    /// answer, not in any query's). At most `max_bytes` of compressed files are held; the rest
    /// stay on disk, where queries read them as before. Queries give the same answers either
    /// way: only where the bytes come from changes.
    pub fn share<P: Partition>(
        &self,
        partitions: &[P],
        max_bytes: u64,
        batch_size: usize,
    ) -> Result<Shared> {
        let mut held = std::mem::take(&mut *self.shared.lock().expect("not poisoned"));
        let mut kept = HashMap::new();
        let mut outcome = Shared::default();
        let mut total = 0;
        let counters = Arc::new(ScanCounters::default());
        let sources: Vec<Source> = (0..self.schema.fields().len())
            .map(|i| match self.table.columns.get(i) {
                Some(column) => Source::File(i, column.kind),
                None => Source::Partition(i - self.table.columns.len()),
            })
            .collect();
        let mut builder = BatchBuilder::new(
            self.schema.clone(),
            self.names.clone(),
            sources,
            batch_size,
            counters.clone(),
        );
        for partition in partitions {
            let dir = self.dir.join(partition.to_string());
            let values: Arc<[String]> = partition.partition_values().into();
            debug_assert_eq!(values.len(), self.table.partition_keys.len());
            for entry in read_dir_sorted(&dir)? {
                let name = entry.file_name();
                if !lakewatch_lake::layout::is_data_file_name(&name.to_string_lossy()) {
                    continue;
                }
                let meta = entry.metadata().map_err(|e| io_error(&entry.path(), e))?;
                if !meta.is_file() {
                    continue;
                }
                if total + meta.len() > max_bytes {
                    outcome.files_left += 1;
                    continue;
                }
                total += meta.len();
                let path = entry.path();
                let file = match held.remove(&path) {
                    Some(file) if file.size == meta.len() => file,
                    _ => {
                        let mut batches = Vec::new();
                        let lake_file = LakeFile {
                            path: path.clone(),
                            size: meta.len(),
                            partition_values: values.clone(),
                        };
                        builder
                            .read_file(&lake_file, &mut |batch| {
                                batches.push(batch);
                                true
                            })
                            .map_err(|e| DataFusionError::Execution(e.to_string()))?;
                        if builder.has_rows() {
                            batches.push(builder.finish()?);
                        }
                        SharedFile {
                            size: meta.len(),
                            batches,
                        }
                    }
                };
                kept.insert(path, file);
            }
        }
        outcome.files = kept.len() as u64;
        outcome.bytes_read = counters.snapshot().bytes_read;
        *self.shared.lock().expect("not poisoned") = kept;
        Ok(outcome)
    }

    /// Whether `filter` only reads partition columns, so it can be decided per directory.
    fn is_partition_filter(&self, filter: &Expr) -> bool {
        !filter.is_volatile()
            && filter
                .column_refs()
                .iter()
                .all(|c| self.table.partition_keys.contains(&c.name.as_str()))
    }

    /// The files of every partition directory that the filters (all partition filters) allow,
    /// walking one level at a time so that a level's filters prune before the next is listed.
    fn list_files(&self, session: &dyn Session, filters: &[Expr]) -> Result<Vec<LakeFile>> {
        let keys = self.table.partition_keys;
        // Each filter is decided at the deepest level it mentions.
        let level_of = |f: &Expr| {
            f.column_refs()
                .iter()
                .filter_map(|c| keys.iter().position(|k| *k == c.name))
                .max()
                .unwrap_or(0)
        };
        let mut dirs: Vec<(PathBuf, Vec<String>)> = vec![(self.dir.clone(), Vec::new())];
        for (level, key) in keys.iter().enumerate() {
            let mut next = Vec::new();
            for (dir, values) in &dirs {
                for (path, value) in partition_dirs(dir, key)? {
                    let mut values = values.clone();
                    values.push(value);
                    next.push((path, values));
                }
            }
            let here: Vec<&Expr> = filters.iter().filter(|f| level_of(f) == level).collect();
            if !here.is_empty() && !next.is_empty() {
                let keep = evaluate(session, &keys[..=level], &next, &here)?;
                next = next
                    .into_iter()
                    .zip(keep)
                    .filter_map(|(d, k)| k.then_some(d))
                    .collect();
            }
            dirs = next;
        }
        let mut files = Vec::new();
        for (dir, values) in dirs {
            let values: Arc<[String]> = values.into();
            for entry in read_dir_sorted(&dir)? {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                // Writers' temporaries and other non-data files: the lake's one convention.
                if !lakewatch_lake::layout::is_data_file_name(&name) {
                    continue;
                }
                let meta = entry.metadata().map_err(|e| io_error(&entry.path(), e))?;
                if meta.is_file() {
                    files.push(LakeFile {
                        path: entry.path(),
                        size: meta.len(),
                        partition_values: values.clone(),
                    });
                }
            }
        }
        Ok(files)
    }
}

fn io_error(path: &Path, e: std::io::Error) -> DataFusionError {
    DataFusionError::Execution(format!(
        "cannot list lake directory {}: {e}",
        path.display()
    ))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let mut entries = match fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| io_error(dir, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(dir, e)),
    };
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// The `key=value` subdirectories of `dir`, with their values. Other entries are ignored, as
/// Athena only sees partitions.
fn partition_dirs(dir: &Path, key: &str) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for entry in read_dir_sorted(dir)? {
        let name = entry.file_name();
        let Some(value) = name
            .to_str()
            .and_then(|n| n.strip_prefix(key))
            .and_then(|n| n.strip_prefix('='))
        else {
            continue;
        };
        if entry.path().is_dir() {
            out.push((entry.path(), value.to_string()));
        }
    }
    Ok(out)
}

/// Evaluates the filters over one row per directory (its partition values so far); returns
/// whether each directory passes all of them.
fn evaluate(
    session: &dyn Session,
    keys: &[&str],
    dirs: &[(PathBuf, Vec<String>)],
    filters: &[&Expr],
) -> Result<Vec<bool>> {
    let schema = Arc::new(Schema::new(
        keys.iter()
            .map(|k| Field::new(*k, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns = (0..keys.len())
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                dirs.iter().map(|(_, v)| v[i].as_str()),
            )) as _
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let df_schema = DFSchema::try_from(schema)?;
    let mut keep = vec![true; dirs.len()];
    for filter in filters {
        // Filters arrive qualified (`events.year`, `db.events.year`); the batch is not.
        let unqualified = (*filter)
            .clone()
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) if c.relation.is_some() => {
                        Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                    }
                    other => Transformed::no(other),
                })
            })?
            .data;
        let physical = session.create_physical_expr(unqualified, &df_schema)?;
        let result = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
        let result = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                DataFusionError::Plan(format!("partition filter {filter} is not a boolean"))
            })?;
        for (i, k) in keep.iter_mut().enumerate() {
            *k &= result.is_valid(i) && result.value(i);
        }
    }
    Ok(keep)
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Partition-only filters are applied exactly, by pruning directories; the others are left
    /// to DataFusion, row by row.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.is_partition_filter(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let counters = session
            .config()
            .get_extension::<ScanCounters>()
            .unwrap_or_default();
        let partition_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| self.is_partition_filter(f))
            .cloned()
            .collect();
        let files = self.list_files(session, &partition_filters)?;

        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        let schema = Arc::new(self.schema.project(projection)?);
        let file_columns = self.table.columns.len();
        let sources: Arc<[Source]> = projection
            .iter()
            .map(|&i| {
                if i < file_columns {
                    Source::File(i, self.table.columns[i].kind)
                } else {
                    Source::Partition(i - file_columns)
                }
            })
            .collect();

        // Files held in memory are not opened (nor counted) again.
        let mut in_memory = Vec::new();
        let mut on_disk = Vec::new();
        {
            let shared = self.shared.lock().expect("not poisoned");
            for file in files {
                match shared.get(&file.path) {
                    Some(held) if held.size == file.size => {
                        for batch in &held.batches {
                            in_memory.push(batch.project(projection)?);
                        }
                    }
                    _ => on_disk.push(file),
                }
            }
        }
        // Held batches are dealt over as many streams as the session has target partitions,
        // with no empty group of files beside them: one stream of held batches next to an
        // empty file group looked parallel to the planner, which then added no repartition, and
        // the filters and JSON paths above the scan ran on one core.
        let target = session.config().target_partitions().max(1);
        let groups = if on_disk.is_empty() && !in_memory.is_empty() {
            Vec::new()
        } else {
            split_by_size(on_disk, target)
        };
        let mut partitions: Vec<Arc<dyn PartitionStream>> = groups
            .into_iter()
            .map(|files| {
                Arc::new(FileGroup {
                    schema: schema.clone(),
                    names: self.names.clone(),
                    sources: sources.clone(),
                    files,
                    counters: counters.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let streams = target.min(in_memory.len());
        let mut dealt: Vec<Vec<RecordBatch>> = vec![Vec::new(); streams];
        for (i, batch) in in_memory.into_iter().enumerate() {
            dealt[i % streams].push(batch);
        }
        partitions.extend(dealt.into_iter().map(|batches| {
            Arc::new(HeldBatches {
                schema: schema.clone(),
                batches,
            }) as Arc<dyn PartitionStream>
        }));
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            None,
            [],
            false,
            limit,
        )?))
    }
}

/// Deals the files into at most `n` groups of about equal compressed size (largest first,
/// each to the lightest group), so the parallel readers finish together. Always at least one
/// group, possibly empty.
fn split_by_size(mut files: Vec<LakeFile>, n: usize) -> Vec<Vec<LakeFile>> {
    let n = n.clamp(1, files.len().max(1));
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let mut groups: Vec<(u64, Vec<LakeFile>)> = vec![(0, Vec::new()); n];
    for file in files {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(size, _)| *size)
            .expect("n >= 1");
        lightest.0 += file.size;
        lightest.1.push(file);
    }
    groups.into_iter().map(|(_, files)| files).collect()
}

/// One parallel reader: its files, read on a blocking thread, batches sent as they fill.
#[derive(Debug)]
struct FileGroup {
    schema: SchemaRef,
    names: Arc<[&'static str]>,
    sources: Arc<[Source]>,
    files: Vec<LakeFile>,
    counters: Arc<ScanCounters>,
}

impl PartitionStream for FileGroup {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut stream = RecordBatchReceiverStream::builder(self.schema.clone(), 2);
        let tx = stream.tx();
        let mut batches = BatchBuilder::new(
            self.schema.clone(),
            self.names.clone(),
            self.sources.to_vec(),
            ctx.session_config().batch_size(),
            self.counters.clone(),
        );
        let files = self.files.clone();
        stream.spawn_blocking(move || {
            // A failed send means the consumer stopped (LIMIT reached, query cancelled).
            let mut emit = |batch| tx.blocking_send(Ok(batch)).is_ok();
            for file in &files {
                let more = batches
                    .read_file(file, &mut emit)
                    .map_err(|e| DataFusionError::Execution(e.to_string()))?;
                if !more {
                    return Ok(());
                }
            }
            if batches.has_rows() {
                emit(batches.finish()?);
            }
            Ok(())
        });
        stream.build()
    }
}

/// Batches of files held in memory ([`LakeTable::share`]), projected for one scan.
#[derive(Debug)]
struct HeldBatches {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl PartitionStream for HeldBatches {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = self.batches.clone().into_iter().map(Ok);
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(batches),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> LakeFile {
        LakeFile {
            path: PathBuf::from(name),
            size,
            partition_values: Arc::from(Vec::<String>::new()),
        }
    }

    #[test]
    fn files_are_dealt_into_groups_of_similar_size() {
        let files = vec![file("a", 10), file("b", 70), file("c", 30), file("d", 40)];
        let groups = split_by_size(files, 2);
        let sizes: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(|f| f.size).sum())
            .collect();
        assert_eq!(sizes, vec![80, 70]);
    }

    #[test]
    fn no_files_still_make_one_empty_group_and_few_files_no_empty_groups() {
        assert_eq!(split_by_size(Vec::new(), 4).len(), 1);
        assert_eq!(split_by_size(vec![file("a", 1)], 4).len(), 1);
    }

    #[test]
    fn schema_has_the_lake_columns_then_the_partition_keys() {
        let schema = arrow_schema(&lakewatch_lake::schema::EVENTS);
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names.last(), Some(&"hour"));
        assert_eq!(names[names.len() - 5], "details");
        assert!(matches!(
            schema.field_with_name("tags").unwrap().data_type(),
            DataType::List(_)
        ));
    }
}
