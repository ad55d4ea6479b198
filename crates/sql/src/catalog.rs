//! Name resolution that accepts Athena's table references unchanged.
//!
//! Athena queries name tables as `events`, `"events"`, `"<database>"."events"`, `db.events` or
//! `AwsDataCatalog.db.events`, and the database is whatever the deployment called it. A local
//! lake has one set of tables, so every catalog name and every database name resolves to it:
//! the qualifiers are accepted and ignored. `information_schema` keeps its DataFusion meaning
//! (`SHOW TABLES`, `SHOW COLUMNS`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};

/// The catalog name shown by `SHOW TABLES` (Athena's default catalog, lower-cased as SQL
/// identifiers are).
pub const CATALOG: &str = "awsdatacatalog";
/// The database name shown by `SHOW TABLES`.
pub const DATABASE: &str = "lakewatch";

/// The lake's tables by name.
#[derive(Debug)]
pub struct LakeSchema {
    tables: Vec<(&'static str, Arc<dyn TableProvider>)>,
}

impl LakeSchema {
    pub fn new(tables: Vec<(&'static str, Arc<dyn TableProvider>)>) -> Self {
        LakeSchema { tables }
    }

    /// Table names match ignoring case, as Athena's do (Glue stores them lower-case).
    fn find(&self, name: &str) -> Option<&Arc<dyn TableProvider>> {
        self.tables
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
    }
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|(n, _)| n.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(self.find(name).cloned())
    }

    fn table_exist(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

/// Every database name is the lake.
#[derive(Debug)]
struct AnyDatabase(Arc<LakeSchema>);

impl CatalogProvider for AnyDatabase {
    fn schema_names(&self) -> Vec<String> {
        vec![DATABASE.to_string()]
    }

    fn schema(&self, _name: &str) -> Option<Arc<dyn SchemaProvider>> {
        Some(self.0.clone())
    }
}

/// Every catalog name is the lake.
#[derive(Debug)]
pub struct AnyCatalog(Arc<AnyDatabase>);

impl AnyCatalog {
    pub fn new(schema: Arc<LakeSchema>) -> Self {
        AnyCatalog(Arc::new(AnyDatabase(schema)))
    }
}

impl CatalogProviderList for AnyCatalog {
    /// The lake's tables are fixed; a registered catalog is not kept.
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        vec![CATALOG.to_string()]
    }

    fn catalog(&self, _name: &str) -> Option<Arc<dyn CatalogProvider>> {
        Some(self.0.clone())
    }
}
