//! Compiles a rule into the SQL of one window, in the subset of Athena's dialect that the local
//! engine speaks too, so a rule is tested on a laptop and runs unchanged on Athena.
//!
//! Placeholders: `{{window}}`, `{{history}}` (the `history` before the window) and `{{span}}`
//! (history and window) expand into partition predicates plus a `utctimestamp` range;
//! `{{window:e}}` qualifies the columns with alias `e`. `${name}` is a setting of the rule.

use chrono::TimeDelta;

use crate::rule::{Key, Query, Rule};
use crate::window::Window;
use lakewatch_plugins::shell::format_timestamp;

/// The time ranges a rule's query may refer to for one evaluated window.
#[derive(Debug, Clone, Copy)]
pub struct Ranges {
    pub window: Window,
    pub history: Window,
    pub span: Window,
}

impl Ranges {
    pub fn for_window(rule: &Rule, window: Window) -> Self {
        let history_start = window.start - rule.history;
        Ranges {
            window,
            history: Window::new(history_start, window.start),
            span: Window::new(history_start, window.end),
        }
    }
}

/// A rule's SQL could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule}: {message}")]
pub struct CompileError {
    pub rule: String,
    pub message: String,
}

/// The SQL of one window of a rule.
pub fn compile(rule: &Rule, window: Window) -> Result<String, CompileError> {
    let error = |message: String| CompileError {
        rule: rule.id.clone(),
        message,
    };
    let ranges = Ranges::for_window(rule, window);
    let template = match &rule.query {
        Query::Sql { sql } => sql.clone(),
        Query::Threshold { .. } | Query::Sequence { .. } => {
            counted_template(rule, None).map_err(error)?
        }
        Query::FirstSeen {
            filter,
            entity,
            value,
            learning,
            not_seen_for,
        } => first_seen_sql(filter, entity, value, *learning, *not_seen_for, &ranges),
        Query::Previous {
            filter,
            key,
            fields,
            sql,
        } => previous_sql(
            sql,
            &logins_sql(filter, key, fields, "{{span}}"),
            key,
            fields,
            window,
        ),
        Query::Silence { .. } => {
            return Err(error(
                "a silence rule reads the lake's event counters, not SQL (crate::silence)".into(),
            ));
        }
    };
    let sql = expand_settings(&template, rule).map_err(error)?;
    let sql = expand_ranges(&sql, &ranges).map_err(error)?;
    Ok(apply_ignores(sql, rule))
}

/// The query a first-seen rule runs when it keeps a baseline ([`crate::baseline`]): one row per
/// entity and value over `[from, window.end)`, with the window's evidence (aggregates filtered to
/// the window) and the first and last sighting before the window (`before_first`,
/// `before_last`), which the baseline folds in. `from` is where the baseline ends (usually the
/// window's start: only the window is read) or, to build it, `history` before the window.
/// Every group is returned, alerting or not: the detector decides with the baseline.
pub fn first_seen_baseline_sql(
    rule: &Rule,
    window: Window,
    from: chrono::DateTime<chrono::Utc>,
) -> Result<String, CompileError> {
    let error = |message: String| CompileError {
        rule: rule.id.clone(),
        message,
    };
    let (filter, entity, value) = rule
        .query
        .first_seen_keys()
        .ok_or_else(|| error("only first-seen rules keep a baseline".into()))?;
    let both: Vec<Key> = entity.iter().chain(value).cloned().collect();
    let start = format_timestamp(window.start);
    let in_window = format!("FILTER (WHERE utctimestamp >= '{start}')");
    let before = format!("FILTER (WHERE utctimestamp < '{start}')");
    let template = format!(
        "SELECT {selects}, count(DISTINCT eventid) {in_window} AS event_count, \
         min(utctimestamp) {in_window} AS first_seen, max(utctimestamp) {in_window} AS last_seen, \
         array_join(array_agg(DISTINCT eventid) {in_window}, ',') AS eventids, \
         min(utctimestamp) {before} AS before_first, max(utctimestamp) {before} AS before_last \
         FROM events WHERE {{{{span}}}} AND ({filter}) AND {present} GROUP BY {exprs}",
        selects = key_selects(&both),
        present = keys_present(&both),
        exprs = key_exprs(&both),
    );
    let ranges = Ranges {
        window,
        history: Window::new(from, window.start),
        span: Window::new(from, window.end),
    };
    let sql = expand_settings(&template, rule).map_err(error)?;
    expand_ranges(&sql, &ranges).map_err(error)
}

/// The baselines of several first-seen rules, built for the same `window`, with **one** read of
/// their history: each rule (a part, by its index in `rules`) gets, tagged with its index
/// ([`GROUPED_PART_COLUMN`]), the rows [`first_seen_baseline_sql`] gives for it from `history`
/// before the window, its keys in [`grouped_column`]s (as text) and the other columns by name.
///
/// The events of the union of their spans are read once; each event carries every part's keys,
/// NULL where it is not that part's (outside its span, or not matching its filter), and one
/// `GROUP BY GROUPING SETS` groups them per part (`grouping()` names the part of a row). A
/// `UNION ALL` of the rules' own queries would scan the history once per rule on Athena; a join
/// to a list of the parts would make an engine hold one side in memory, and which side depends
/// on the engine (DataFusion the left, Trino the right): with the events there, a replay of
/// 100,000 events a day peaked at 0.95 GB. A rule whose filter or keys use a placeholder
/// (`{{window}}`…) cannot share the union's ranges: an error, and it builds its baseline with its
/// own query.
pub fn first_seen_bootstrap_sql(rules: &[&Rule], window: Window) -> Result<String, CompileError> {
    let error = |rule: &Rule, message: String| CompileError {
        rule: rule.id.clone(),
        message,
    };
    let mut conditions = Vec::with_capacity(rules.len());
    let mut key_columns: Vec<Vec<String>> = Vec::with_capacity(rules.len());
    let mut selects = Vec::new();
    let mut span = window;
    for (index, rule) in rules.iter().enumerate() {
        let (filter, entity, value) = rule
            .query
            .first_seen_keys()
            .ok_or_else(|| error(rule, "only first-seen rules keep a baseline".into()))?;
        let own = |text: String| -> Result<String, CompileError> {
            if text.contains("{{") {
                return Err(error(
                    rule,
                    "a placeholder in its filter or keys: its history is read by its own query"
                        .into(),
                ));
            }
            expand_settings(&text, rule).map_err(|message| error(rule, message))
        };
        let both: Vec<Key> = entity.iter().chain(value).cloned().collect();
        let from = window.start - rule.history;
        span.start = span.start.min(from);
        let condition = format!(
            "(utctimestamp >= '{}' AND ({}) AND {})",
            format_timestamp(from),
            own(filter.to_string())?,
            own(keys_present(&both))?
        );
        let mut columns = Vec::with_capacity(both.len());
        for (n, key) in both.iter().enumerate() {
            let column = format!("part{index}_{n}");
            selects.push(format!(
                "CASE WHEN {condition} THEN CAST(({}) AS VARCHAR) END AS {column}",
                own(key.expr.clone())?
            ));
            columns.push(column);
        }
        conditions.push(condition);
        key_columns.push(columns);
    }
    if rules.is_empty() {
        return Err(CompileError {
            rule: String::new(),
            message: "a shared bootstrap needs at least one rule".into(),
        });
    }
    // A row of part p: p's keys grouped, every other part's NULL (not in its grouping set).
    let part = key_columns
        .iter()
        .enumerate()
        .map(|(index, columns)| format!("WHEN grouping({}) = 0 THEN {index}", columns[0]))
        .collect::<Vec<_>>()
        .join(" ");
    let width = key_columns.iter().map(Vec::len).max().unwrap_or(0);
    let keys: Vec<String> = (0..width)
        .map(|n| {
            let of_parts: Vec<&str> = key_columns
                .iter()
                .filter_map(|columns| columns.get(n).map(String::as_str))
                .collect();
            format!("COALESCE({}) AS {}", of_parts.join(", "), grouped_column(n))
        })
        .collect();
    let first_keys: Vec<&str> = key_columns.iter().map(|c| c[0].as_str()).collect();
    let sets: Vec<String> = key_columns
        .iter()
        .map(|columns| format!("({})", columns.join(", ")))
        .collect();
    let start = format_timestamp(window.start);
    let in_window = format!("FILTER (WHERE utctimestamp >= '{start}')");
    let before = format!("FILTER (WHERE utctimestamp < '{start}')");
    let template = format!(
        "WITH matched AS (SELECT utctimestamp, eventid, {selects} FROM events \
         WHERE {{{{span}}}} AND ({conditions})) \
         SELECT CASE {part} END AS {GROUPED_PART_COLUMN}, {keys}, \
         count(DISTINCT eventid) {in_window} AS event_count, \
         min(utctimestamp) {in_window} AS first_seen, max(utctimestamp) {in_window} AS last_seen, \
         array_join(array_agg(DISTINCT eventid) {in_window}, ',') AS eventids, \
         min(utctimestamp) {before} AS before_first, max(utctimestamp) {before} AS before_last \
         FROM matched GROUP BY GROUPING SETS ({sets}) HAVING COALESCE({first_keys}) IS NOT NULL",
        selects = selects.join(", "),
        conditions = conditions.join(" OR "),
        keys = keys.join(", "),
        sets = sets.join(", "),
        first_keys = first_keys.join(", "),
    );
    let ranges = Ranges {
        window,
        history: Window::new(span.start, window.start),
        span,
    };
    expand_ranges(&template, &ranges).map_err(|message| error(rules[0], message))
}

/// The column a batched query ([`compile_batch`]) adds to every row: the end of the window the
/// row belongs to (as `utctimestamp` writes times), so the runner splits the rows back per window.
pub const WINDOW_END_COLUMN: &str = "evaluated_window_end";

/// The SQL of several windows of a rule in one query, each row tagged with its window's end
/// ([`WINDOW_END_COLUMN`]); every window's rows are exactly those [`compile`] gives for it
/// alone. Threshold and sequence rules read the events of the windows' union once, joined to
/// the list of windows (`VALUES`), grouped by window; SQL rules are each window's query, tagged
/// and joined by `UNION ALL` (their text is the author's, so each window still reads its own
/// ranges); first-seen rules give the rows [`first_seen_baseline_sql`] gives for a window it
/// reads alone (the baseline reaching the window's start), which is how the runner uses them.
/// `windows` are in time order, each overlapping or adjacent to the next (their union is read).
/// `None` for the kinds whose windows depend on the previous window's result beyond a baseline
/// (pairing rules: the previous event per key) and for silence rules (no SQL).
pub fn compile_batch(rule: &Rule, windows: &[Window]) -> Result<Option<String>, CompileError> {
    let error = |message: String| CompileError {
        rule: rule.id.clone(),
        message,
    };
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return Ok(None);
    };
    let union = Window::new(first.start, last.end);
    let ranges = Ranges {
        window: union,
        history: Window::new(union.start - rule.history, union.start),
        span: Window::new(union.start - rule.history, union.end),
    };
    let template = match &rule.query {
        Query::Sql { .. } => {
            let queries = windows
                .iter()
                .map(|window| Ok((*window, compile(rule, *window)?)))
                .collect::<Result<Vec<_>, CompileError>>()?;
            return Ok(Some(tagged_union(&queries)));
        }
        Query::Threshold { .. } | Query::Sequence { .. } => {
            counted_template(rule, Some(windows)).map_err(error)?
        }
        Query::FirstSeen {
            filter,
            entity,
            value,
            ..
        } => {
            let both: Vec<Key> = entity.iter().chain(value).cloned().collect();
            grouped_sql(filter, &both, None, Some(windows))
        }
        Query::Previous { .. } | Query::Silence { .. } => return Ok(None),
    };
    let sql = expand_settings(&template, rule).map_err(error)?;
    let sql = expand_ranges(&sql, &ranges).map_err(error)?;
    match rule.query {
        // Its rows are decided with the baseline, which applies the ignores itself.
        Query::FirstSeen { .. } => Ok(Some(sql)),
        _ => Ok(Some(apply_ignores(sql, rule))),
    }
}

/// Windows' own queries as one: each one's rows tagged with its window's end
/// ([`WINDOW_END_COLUMN`]), joined by `UNION ALL`.
pub fn tagged_union(queries: &[(Window, String)]) -> String {
    queries
        .iter()
        .map(|(window, sql)| {
            format!(
                "SELECT '{end}' AS {WINDOW_END_COLUMN}, batched.* FROM ({sql}) batched",
                end = format_timestamp(window.end),
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The columns [`compile_batch`] returns for a rule, [`WINDOW_END_COLUMN`] first: what a
/// grouped query ([`grouped_union`]) carries of its rows. `None` for the kinds whose columns
/// are the author's (`kind = "sql"`) or that [`compile_batch`] does not batch.
pub fn batch_columns(rule: &Rule) -> Option<Vec<String>> {
    let (keys, rest): (Vec<&Key>, &[&str]) = match &rule.query {
        Query::Threshold { group, .. } => (group.iter().collect(), &EVIDENCE_COLUMNS),
        Query::FirstSeen { entity, value, .. } => {
            (entity.iter().chain(value).collect(), &EVIDENCE_COLUMNS)
        }
        Query::Sequence { key, .. } => (key.iter().collect(), &SEQUENCE_COLUMNS),
        Query::Sql { .. } | Query::Previous { .. } | Query::Silence { .. } => return None,
    };
    Some(
        [WINDOW_END_COLUMN]
            .into_iter()
            .chain(keys.iter().map(|key| key.name.as_str()))
            .chain(rest.iter().copied())
            .map(String::from)
            .collect(),
    )
}

/// The column of a grouped query ([`grouped_union`]) naming the part each row belongs to (its
/// index in the parts).
pub const GROUPED_PART_COLUMN: &str = "evaluated_part";

/// The name of the `index`-th column of a grouped query ([`grouped_union`]).
pub fn grouped_column(index: usize) -> String {
    format!("grouped_{index}")
}

/// Queries of several rules as one: each part (its SQL and the columns it returns) a branch of
/// a `UNION ALL`, its rows tagged with the part's index ([`GROUPED_PART_COLUMN`]). Branches
/// must have the same number of columns of compatible types (Trino; the local engine takes the
/// first branch's types, so an untyped `NULL` there fails), and rules' columns differ in names,
/// number and type: each part's columns go, in its order, into the same text columns
/// ([`grouped_column`]: `CAST(… AS VARCHAR)`, `NULL` beyond its last), and the runner names
/// them back. Text, numbers of whole values and times come back as the part's own query
/// returns them (Athena's results are text); a non-integer number would come back as the cast
/// writes it (Trino: `1.5E0`), which no built-in kind returns.
pub fn grouped_union(parts: &[(&str, &[String])]) -> String {
    let width = parts
        .iter()
        .map(|(_, columns)| columns.len())
        .max()
        .unwrap_or(0);
    parts
        .iter()
        .enumerate()
        .map(|(index, (sql, columns))| {
            let selects: Vec<String> = (0..width)
                .map(|n| match columns.get(n) {
                    Some(column) => {
                        format!("CAST(grouped.{column} AS VARCHAR) AS {}", grouped_column(n))
                    }
                    None => format!("CAST(NULL AS VARCHAR) AS {}", grouped_column(n)),
                })
                .collect();
            format!(
                "SELECT {index} AS {GROUPED_PART_COLUMN}, {} FROM ({sql}) grouped",
                selects.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The windows as an SQL `VALUES` list (start, end, and with `history` the start of the span
/// each reads), aliased `evaluated`, with the join condition putting each event (its time
/// column `time`) in the windows it falls in.
fn windows_joined(windows: &[Window], history: Option<TimeDelta>, time: &str) -> String {
    let rows: Vec<String> = windows
        .iter()
        .map(|window| {
            let span = history
                .map(|history| format!("'{}', ", format_timestamp(window.start - history)))
                .unwrap_or_default();
            format!(
                "({span}'{}', '{}')",
                format_timestamp(window.start),
                format_timestamp(window.end)
            )
        })
        .collect();
    let span = if history.is_some() {
        "evaluated_span_start, "
    } else {
        ""
    };
    format!(
        "(VALUES {rows}) AS evaluated({span}evaluated_window_start, {WINDOW_END_COLUMN}) \
         ON {time} >= evaluated.evaluated_window_start \
         AND {time} < evaluated.{WINDOW_END_COLUMN}",
        rows = rows.join(", ")
    )
}

/// The matching events of a pairing rule with the columns the pairs carry: its keys,
/// `eventid`, `utctimestamp` and its fields, from the events of `range` (a placeholder).
fn logins_sql(filter: &str, key: &[Key], fields: &[Key], range: &str) -> String {
    format!(
        "SELECT {keys}, eventid, utctimestamp, {fields} FROM events \
         WHERE {range} AND ({filter}) AND {present}",
        keys = key_selects(key),
        fields = key_selects(fields),
        present = keys_present(key),
    )
}

/// A pairing rule's filter, keys, fields and SQL; an error for other kinds.
fn pairing_parts(rule: &Rule) -> Result<(&str, &[Key], &[Key], &str), CompileError> {
    match &rule.query {
        Query::Previous {
            filter,
            key,
            fields,
            sql,
        } => Ok((filter, key, fields, sql)),
        _ => Err(CompileError {
            rule: rule.id.clone(),
            message: "only pairing rules keep previous events".into(),
        }),
    }
}

/// A pairing rule's matching events of `range` with the columns the pairs carry
/// ([`pair_columns`]): what a batch of its windows folds into the previous events per key
/// ([`crate::previous`]).
pub fn previous_events_sql(rule: &Rule, range: Window) -> Result<String, CompileError> {
    let (filter, key, fields, _) = pairing_parts(rule)?;
    let error = |message: String| CompileError {
        rule: rule.id.clone(),
        message,
    };
    let sql =
        expand_settings(&logins_sql(filter, key, fields, "{{window}}"), rule).map_err(error)?;
    expand_ranges(&sql, &Ranges::for_window(rule, range)).map_err(error)
}

/// The columns of a pairing rule's events, in [`logins_sql`]'s order: keys, `eventid`,
/// `utctimestamp`, fields.
pub fn pair_columns<'k>(key: &'k [Key], fields: &'k [Key]) -> Vec<&'k str> {
    key.iter()
        .map(|k| k.name.as_str())
        .chain(["eventid", "utctimestamp"])
        .chain(fields.iter().map(|f| f.name.as_str()))
        .collect()
}

/// A pairing rule's query over `logins` (the events, and for a rule with a baseline the
/// previous event of each key): each event of the window gets the previous one's columns by
/// `lag` in event-time order, then the rule's `sql` selects from those `pairs`.
fn previous_sql(sql: &str, logins: &str, key: &[Key], fields: &[Key], window: Window) -> String {
    let over = format!(
        "OVER (PARTITION BY {} ORDER BY utctimestamp, eventid)",
        key_columns(key, "l")
    );
    let lagged: Vec<String> = [("eventid", "from_eventid"), ("utctimestamp", "from_time")]
        .into_iter()
        .map(|(column, name)| format!("lag(l.{column}) {over} AS {name}"))
        .chain(
            fields
                .iter()
                .map(|f| format!("lag(l.{name}) {over} AS from_{name}", name = f.name)),
        )
        .collect();
    let rest = sql.trim_start();
    let (with, rest) = match rest.get(..5) {
        Some(head) if head.eq_ignore_ascii_case("with ") => (", ", &rest[5..]),
        _ => (" ", rest),
    };
    format!(
        "WITH logins AS ({logins}), paired AS (SELECT l.*, {lagged} FROM logins l), \
         pairs AS (SELECT * FROM paired WHERE utctimestamp >= '{start}' AND utctimestamp < '{end}')\
         {with}{rest}",
        lagged = lagged.join(", "),
        start = format_timestamp(window.start),
        end = format_timestamp(window.end),
    )
}

/// A pairing rule's queries when it keeps its previous events as a baseline
/// ([`crate::previous`]): the events of `[from, window.end)` plus `previous` (one row per key:
/// its columns as [`logins_sql`] names them, text or NULL) stand for the history. Returns the
/// alerts' query and the query of the latest event per key (what the baseline keeps).
pub fn previous_baseline_sql(
    rule: &Rule,
    window: Window,
    from: chrono::DateTime<chrono::Utc>,
    previous: &[Vec<Option<String>>],
) -> Result<(String, String), CompileError> {
    let (filter, key, fields, sql) = pairing_parts(rule)?;
    let error = |message: String| CompileError {
        rule: rule.id.clone(),
        message,
    };
    let mut logins = logins_sql(filter, key, fields, "{{span}}");
    if !previous.is_empty() {
        let rows: Vec<String> = previous
            .iter()
            .map(|row| {
                let values: Vec<String> = row
                    .iter()
                    .map(|value| match value {
                        Some(text) => quote(text),
                        None => "CAST(NULL AS VARCHAR)".to_string(),
                    })
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        logins.push_str(&format!(
            " UNION ALL SELECT * FROM (VALUES {}) AS previous({})",
            rows.join(", "),
            pair_columns(key, fields).join(", ")
        ));
    }
    let ranges = Ranges {
        window,
        history: Window::new(from, window.start),
        span: Window::new(from, window.end),
    };
    let alerts = previous_sql(sql, &logins, key, fields, window);
    let alerts = expand_settings(&alerts, rule).map_err(error)?;
    let alerts = apply_ignores(expand_ranges(&alerts, &ranges).map_err(error)?, rule);
    let latest = format!(
        "WITH logins AS ({logins}), ranked AS (SELECT l.*, row_number() OVER (PARTITION BY {keys} \
         ORDER BY utctimestamp DESC, eventid DESC) AS newest FROM logins l) \
         SELECT {columns} FROM ranked WHERE newest = 1",
        keys = key_columns(key, "l"),
        columns = pair_columns(key, fields).join(", "),
    );
    let latest = expand_settings(&latest, rule).map_err(error)?;
    let latest = expand_ranges(&latest, &ranges).map_err(error)?;
    Ok((alerts, latest))
}

fn key_columns(keys: &[Key], alias: &str) -> String {
    keys.iter()
        .map(|k| format!("{alias}.{}", k.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Qualified key columns named explicitly: engines name an output column `b.user` `_col0`
/// (or read `user` as a function), so every key gets its own name back.
fn key_columns_named(keys: &[Key], alias: &str) -> String {
    keys.iter()
        .map(|k| format!("{alias}.{name} AS {name}", name = k.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_selects(keys: &[Key]) -> String {
    keys.iter()
        .map(|k| format!("{} AS {}", k.expr, k.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_exprs(keys: &[Key]) -> String {
    keys.iter()
        .map(|k| k.expr.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn keys_present(keys: &[Key]) -> String {
    keys.iter()
        .map(|k| format!("({}) IS NOT NULL", k.expr))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn keys_equal(keys: &[Key], left: &str, right: &str) -> String {
    keys.iter()
        .map(|k| format!("{left}.{name} = {right}.{name}", name = k.name))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Columns every compiled kind returns about the events behind a row. Events are counted by
/// `eventid`: a record sent twice (a retried delivery, a file ingested again) keeps its id, so
/// it is one event, not two.
const EVIDENCE: &str = "count(DISTINCT eventid) AS event_count, min(utctimestamp) AS first_seen, \
     max(utctimestamp) AS last_seen, array_join(array_agg(DISTINCT eventid), ',') AS eventids";

/// The names of [`EVIDENCE`]'s columns, in order.
const EVIDENCE_COLUMNS: [&str; 4] = ["event_count", "first_seen", "last_seen", "eventids"];

/// The columns [`sequence_sql`] returns after the keys, in order.
const SEQUENCE_COLUMNS: [&str; 5] = [
    "last_seen",
    "first_seen",
    "first_count",
    "then_eventid",
    "eventids",
];

/// A threshold rule's query, of one window or (`windows`) of a batch ([`grouped_sql`]).
fn threshold_sql(
    filter: &str,
    group: &[Key],
    min_count: &str,
    windows: Option<&[Window]>,
) -> String {
    let having = format!("count(DISTINCT eventid) >= {min_count}");
    grouped_sql(filter, group, Some(&having), windows)
}

/// The events matching `filter` grouped by `keys`, with the evidence columns: a threshold rule's
/// query, or a first-seen rule's window rows. With `windows` (a batch, [`compile_batch`]): the
/// events of their union (`{{window}}`) joined to the windows they fall in, grouped by window
/// too; without, the events of `{{window}}`.
fn grouped_sql(
    filter: &str,
    keys: &[Key],
    having: Option<&str>,
    windows: Option<&[Window]>,
) -> String {
    let having = having
        .map(|condition| format!(" HAVING {condition}"))
        .unwrap_or_default();
    let selects = key_selects(keys);
    let matching = format!(
        "FROM events WHERE {{{{window}}}} AND ({filter}) AND {present}",
        present = keys_present(keys)
    );
    match windows {
        None => format!(
            "SELECT {selects}, {EVIDENCE} {matching} GROUP BY {exprs}{having}",
            exprs = key_exprs(keys),
        ),
        // The keys are worked out per event before the join, which then carries narrow rows:
        // joined first, every event's whole `details` was copied into each window it falls in.
        Some(windows) => format!(
            "SELECT evaluated.{WINDOW_END_COLUMN} AS {WINDOW_END_COLUMN}, {named}, {EVIDENCE} \
             FROM (SELECT {selects}, utctimestamp, eventid {matching}) matched \
             JOIN {joined} GROUP BY evaluated.{WINDOW_END_COLUMN}, {columns}{having}",
            named = key_columns_named(keys, "matched"),
            joined = windows_joined(windows, None, "matched.utctimestamp"),
            columns = key_columns(keys, "matched"),
        ),
    }
}

fn first_seen_sql(
    filter: &str,
    entity: &[Key],
    value: &[Key],
    learning: Option<TimeDelta>,
    not_seen_for: Option<TimeDelta>,
    ranges: &Ranges,
) -> String {
    match not_seen_for {
        None => new_value_sql(filter, entity, value, learning, ranges),
        Some(recent) => dormant_value_sql(filter, entity, value, learning, recent, ranges),
    }
}

/// The query both first-seen variants share, built so that it reads the events **once** (engines
/// inline a CTE at each reference, so a CTE read three times is scanned three times): `seen`, the
/// matching events of history and window (`{{span}}`); `grouped`, one row per entity and value
/// with the window's evidence (aggregates filtered to the window), `seen_before` (the aggregate
/// `sighting` over the history alone) and `value_first_seen`; each row also gets
/// `entity_first_seen` (over the history alone with `entity_before_window`) by a window function
/// over the groups. `condition` picks the alerting rows.
fn first_seen_query(
    filter: &str,
    entity: &[Key],
    value: &[Key],
    ranges: &Ranges,
    sighting: &str,
    entity_before_window: bool,
    condition: &str,
) -> String {
    let both: Vec<Key> = entity.iter().chain(value).cloned().collect();
    let start = format_timestamp(ranges.window.start);
    let in_window = format!("FILTER (WHERE utctimestamp >= '{start}')");
    let before = format!("FILTER (WHERE utctimestamp < '{start}')");
    let entity_first = if entity_before_window {
        format!("min(utctimestamp) {before}")
    } else {
        "min(utctimestamp)".to_string()
    };
    format!(
        "WITH seen AS (SELECT {selects}, utctimestamp, eventid FROM events \
         WHERE {{{{span}}}} AND ({filter}) AND {present}), \
         grouped AS (SELECT {s_named}, \
         count(DISTINCT eventid) {in_window} AS event_count, \
         min(utctimestamp) {in_window} AS first_seen, \
         max(utctimestamp) {in_window} AS last_seen, \
         array_join(array_agg(DISTINCT eventid) {in_window}, ',') AS eventids, \
         min(utctimestamp) AS value_first_seen, {sighting}(utctimestamp) {before} AS seen_before, \
         min({entity_first}) OVER (PARTITION BY {s_entity}) AS entity_first_seen \
         FROM seen s GROUP BY {s_keys}) \
         SELECT {g_named}, g.event_count AS event_count, g.first_seen AS first_seen, \
         g.last_seen AS last_seen, g.eventids AS eventids FROM grouped g \
         WHERE g.event_count > 0 AND {condition}",
        selects = key_selects(&both),
        present = keys_present(&both),
        s_named = key_columns_named(&both, "s"),
        s_keys = key_columns(&both, "s"),
        s_entity = key_columns(entity, "s"),
        g_named = key_columns_named(&both, "g"),
    )
}

/// New terms in event-time order: a value is new at its first event in the span (history and
/// window), when that event lies in the window and comes after the entity's first event (the
/// entity's very first value is what it starts with, not a change). So of four logins within one
/// window from countries A, B, C, B of a known user, B and C are new even though the user's
/// first login of the window came earlier. With `learning`, a value first seen less than that
/// long after the entity's own first sighting is still being learned.
fn new_value_sql(
    filter: &str,
    entity: &[Key],
    value: &[Key],
    learning: Option<TimeDelta>,
    ranges: &Ranges,
) -> String {
    let mut condition = format!(
        "g.value_first_seen >= '{}' AND g.value_first_seen > g.entity_first_seen",
        format_timestamp(ranges.window.start)
    );
    if let Some(learning) = learning {
        condition.push_str(&format!(
            " AND from_iso8601_timestamp(g.value_first_seen) >= \
             from_iso8601_timestamp(g.entity_first_seen) + INTERVAL '{}' SECOND",
            learning.num_seconds()
        ));
    }
    first_seen_query(filter, entity, value, ranges, "min", false, &condition)
}

/// Values seen for the entity before `recent`, but not within it ("not seen for"): the last
/// sighting before the window is older than `recent`. With `learning`, the entity must have been
/// first seen at least that long before the window.
fn dormant_value_sql(
    filter: &str,
    entity: &[Key],
    value: &[Key],
    learning: Option<TimeDelta>,
    recent: TimeDelta,
    ranges: &Ranges,
) -> String {
    let mut condition = format!(
        "g.seen_before < '{}'",
        format_timestamp(ranges.window.start - recent)
    );
    if let Some(learning) = learning {
        condition.push_str(&format!(
            " AND g.entity_first_seen <= '{}'",
            format_timestamp(ranges.window.start - learning)
        ));
    }
    first_seen_query(filter, entity, value, ranges, "max", true, &condition)
}

/// A sequence rule's query: each `then` event of the window with the `first` events of the
/// span before it, within `within`. With `windows` (a batch, [`compile_batch`], `history` the
/// rule's): the `then` events of their union joined to the windows they fall in, each paired
/// with the `first` events of its own window's span, grouped by window too.
///
/// Engines join on equal columns and filter the pairs afterwards, so joining on the key alone
/// paired every `then` event with every `first` event of its key in the span: a user with
/// thousands of failures a day made millions of pairs, most of them hours apart. Each event
/// also gets its slot, the number of whole `within` periods since the epoch; a `first` event
/// within `within` before a `then` event lies in the same slot or the one before, so `first`
/// events are offered to their own slot and the next (`pairs_slot`) and the join is on the key
/// and the slot. Every pair the time conditions keep is still made, exactly once.
fn sequence_sql(
    first: &str,
    then: &str,
    key: &[Key],
    within: TimeDelta,
    min_count: &str,
    batch: Option<(&[Window], TimeDelta)>,
) -> String {
    let selects = key_selects(key);
    let present = keys_present(key);
    let seconds = within.num_seconds().max(1);
    // Times are parsed once per event here, not once per pair in the join's condition.
    let times = format!(
        "utctimestamp AS t, eventid, from_iso8601_timestamp(utctimestamp) AS ts, \
         floor(to_unixtime(from_iso8601_timestamp(utctimestamp)) / {seconds}) AS sequence_slot"
    );
    let then_events = format!(
        "SELECT {selects}, {times} FROM events WHERE {{{{window}}}} AND ({then}) AND {present}"
    );
    let (b, tag, in_span, by_window) = match batch {
        // As in `grouped_sql`: narrow rows joined to the windows, not whole events.
        Some((windows, history)) => (
            format!(
                "SELECT evaluated.evaluated_span_start, evaluated.{WINDOW_END_COLUMN}, matched.* \
                 FROM ({then_events}) matched JOIN {}",
                windows_joined(windows, Some(history), "matched.t")
            ),
            format!("b.{WINDOW_END_COLUMN} AS {WINDOW_END_COLUMN}, "),
            " AND a.t >= b.evaluated_span_start".to_string(),
            format!("b.{WINDOW_END_COLUMN}, "),
        ),
        None => (then_events, String::new(), String::new(), String::new()),
    };
    format!(
        "WITH a AS (SELECT f.*, f.sequence_slot + shift.slots AS pairs_slot \
         FROM (SELECT {selects}, {times} FROM events WHERE {{{{span}}}} AND ({first}) AND {present}) f \
         CROSS JOIN (VALUES (0), (1)) AS shift(slots)), \
         b AS ({b}) \
         SELECT {tag}{b_named}, b.t AS last_seen, min(a.t) AS first_seen, count(DISTINCT a.eventid) AS first_count, \
         b.eventid AS then_eventid, concat(array_join(array_agg(DISTINCT a.eventid), ','), ',', b.eventid) AS eventids \
         FROM b JOIN a ON {join_keys} AND a.pairs_slot = b.sequence_slot AND a.t < b.t{in_span} \
         AND a.ts >= b.ts - INTERVAL '{seconds}' SECOND \
         GROUP BY {by_window}{b_keys}, b.t, b.eventid HAVING count(DISTINCT a.eventid) >= {min_count}",
        b_keys = key_columns(key, "b"),
        b_named = key_columns_named(key, "b"),
        join_keys = keys_equal(key, "a", "b"),
    )
}

/// The columns of a sequence rule's events ([`sequence_events_sql`]), after its keys.
pub const SEQUENCE_EVENT_COLUMNS: [&str; 4] = ["t", "eventid", "is_first", "is_then"];

/// A sequence rule's `first` and `then` events of `range`, narrow: its keys (by name),
/// `utctimestamp` as `t`, `eventid`, and whether each is a `first` and a `then` event (`1` or
/// `0`). What a sequence rule that keeps its events reads ([`crate::sequence`]): the detector
/// pairs them itself, with the events it kept from before the range.
pub fn sequence_events_sql(rule: &Rule, range: Window) -> Result<String, CompileError> {
    let error = |message: String| CompileError {
        rule: rule.id.clone(),
        message,
    };
    let Query::Sequence {
        first, then, key, ..
    } = &rule.query
    else {
        return Err(error(
            "only sequence rules pair first and then events".into(),
        ));
    };
    let template = format!(
        "SELECT {selects}, utctimestamp AS t, eventid, \
         CASE WHEN ({first}) THEN 1 ELSE 0 END AS is_first, \
         CASE WHEN ({then}) THEN 1 ELSE 0 END AS is_then \
         FROM events WHERE {{{{window}}}} AND (({first}) OR ({then})) AND {present}",
        selects = key_selects(key),
        present = keys_present(key),
    );
    let sql = expand_settings(&template, rule).map_err(error)?;
    expand_ranges(&sql, &Ranges::for_window(rule, range)).map_err(error)
}

/// A sequence rule's `min_count` as a number (a `${setting}` resolved): the `first` events a
/// `then` event needs before it.
pub fn sequence_min_count(rule: &Rule) -> Result<u64, CompileError> {
    let error = |message: String| CompileError {
        rule: rule.id.clone(),
        message,
    };
    let Query::Sequence { min_count, .. } = &rule.query else {
        return Err(error(
            "only sequence rules have a sequence's min_count".into(),
        ));
    };
    let text = min_count.as_ref().map_or(Ok("1".to_string()), count_text);
    let text = expand_settings(&text.map_err(error)?, rule).map_err(error)?;
    text.parse::<u64>()
        .ok()
        .filter(|count| *count >= 1)
        .ok_or_else(|| {
            error(format!(
                "min_count {text} must be a whole number of at least 1"
            ))
        })
}
/// Replaces `${name}` with the rule's setting as an SQL literal.
fn expand_settings(sql: &str, rule: &Rule) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or("an unclosed ${ in the query: write ${setting_name}")?;
        let name = &after[..end];
        let value = rule
            .settings
            .get(name)
            .ok_or_else(|| format!("the query uses ${{{name}}} but [settings] has no {name}"))?;
        out.push_str(&setting_literal(value)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A count in a rule: a whole number, or `${setting}` resolved with the other settings.
fn count_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::Integer(n) if *n >= 1 => Ok(n.to_string()),
        toml::Value::String(s) if s.starts_with("${") && s.ends_with('}') => Ok(s.clone()),
        other => Err(format!(
            "min_count {other} must be a whole number of at least 1, or \"${{setting}}\""
        )),
    }
}

/// The template of a threshold or sequence rule (the kinds with a `min_count`), of one window
/// or (`windows`) of a batch.
fn counted_template(rule: &Rule, windows: Option<&[Window]>) -> Result<String, String> {
    match &rule.query {
        Query::Threshold {
            filter,
            group,
            min_count,
        } => Ok(threshold_sql(
            filter,
            group,
            &count_text(min_count)?,
            windows,
        )),
        Query::Sequence {
            first,
            then,
            key,
            within,
            min_count,
        } => {
            let min_count = min_count.as_ref().map_or(Ok("1".to_string()), count_text)?;
            let batch = windows.map(|windows| (windows, rule.history));
            Ok(sequence_sql(first, then, key, *within, &min_count, batch))
        }
        _ => Err("only threshold and sequence rules count events".into()),
    }
}

/// A setting as an SQL literal: numbers as they are, strings quoted with `'` doubled.
fn setting_literal(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::String(s) => Ok(quote(s)),
        other => Err(format!(
            "setting {other} must be a number, boolean or string (lists belong in [ignore])"
        )),
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Expands `{{window}}`, `{{history}}`, `{{span}}` (with an optional `:alias`).
fn expand_ranges(sql: &str, ranges: &Ranges) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len() * 2);
    let mut rest = sql;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or("an unclosed {{ in the query: write {{window}}")?;
        let (name, alias) = match after[..end].split_once(':') {
            Some((name, alias)) => (name.trim(), Some(alias.trim())),
            None => (after[..end].trim(), None),
        };
        let range = match name {
            "window" => ranges.window,
            "history" => ranges.history,
            "span" => ranges.span,
            other => {
                return Err(format!(
                    "unknown placeholder {{{{{other}}}}}: use {{{{window}}}}, {{{{history}}}} or {{{{span}}}}"
                ));
            }
        };
        out.push_str(&format!("({})", range.predicate(alias)));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if !sql.contains("{{") {
        return Err(
            "the query has no {{window}} (or {{span}}): without it every run scans the whole lake"
                .into(),
        );
    }
    Ok(out)
}

/// Wraps the query so that rows whose column holds an ignored value are left out.
fn apply_ignores(sql: String, rule: &Rule) -> String {
    let conditions: Vec<String> = rule
        .ignore
        .iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(column, values)| {
            let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
            format!(
                "(r.{column} IS NULL OR r.{column} NOT IN ({}))",
                list.join(", ")
            )
        })
        .collect();
    if conditions.is_empty() {
        return sql;
    }
    format!(
        "SELECT r.* FROM ({sql}) r WHERE {}",
        conditions.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn rule(query: &str, extra: &str) -> Rule {
        let text = format!(
            "id = \"r\"\ntitle = \"t\"\ndescription = \"d\"\nseverity = \"high\"\ninterval = \"5m\"\n\
             window = \"15m\"\nhistory = \"1d\"\nsummary = \"s\"\n{extra}\n[query]\n{query}"
        );
        toml::from_str(&text).unwrap()
    }

    fn window() -> Window {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        Window::new(t("2026-11-23T10:00:00Z"), t("2026-11-23T10:15:00Z"))
    }

    #[test]
    fn grouped_parts_share_one_shape_of_text_columns_tagged_with_their_part() {
        let (first, second) = (
            vec!["u".to_string(), "n".to_string()],
            vec!["ip".to_string()],
        );
        let sql = grouped_union(&[("SELECT a", &first), ("SELECT b", &second)]);
        assert_eq!(
            sql,
            "SELECT 0 AS evaluated_part, CAST(grouped.u AS VARCHAR) AS grouped_0, \
             CAST(grouped.n AS VARCHAR) AS grouped_1 FROM (SELECT a) grouped UNION ALL \
             SELECT 1 AS evaluated_part, CAST(grouped.ip AS VARCHAR) AS grouped_0, \
             CAST(NULL AS VARCHAR) AS grouped_1 FROM (SELECT b) grouped"
        );
    }

    #[test]
    fn baselines_built_together_read_the_union_of_their_histories_once_with_their_own_settings() {
        let mut users = rule(
            "kind = \"first-seen\"\nwhere = \"source = ${src}\"\n\
             entity = [{ name = \"user\", expr = \"u\" }]\n\
             value = [{ name = \"country\", expr = \"c\" }]",
            "[settings]\nsrc = \"it's\"",
        );
        users.history = TimeDelta::days(30);
        let mut hosts = rule(
            "kind = \"first-seen\"\nwhere = \"true\"\n\
             entity = [{ name = \"host\", expr = \"h\" }, { name = \"port\", expr = \"p\" }]\n\
             value = [{ name = \"process\", expr = \"x\" }]",
            "",
        );
        hosts.history = TimeDelta::days(2);
        let sql = first_seen_bootstrap_sql(&[&users, &hosts], window()).unwrap();
        // The events read once, with no join to hold in memory.
        assert_eq!(sql.matches(" events ").count(), 1, "{sql}");
        assert!(!sql.contains("JOIN"), "{sql}");
        // The union's partitions and times: 30 days before the window to its end.
        assert!(
            sql.contains("utctimestamp >= '2026-10-24T10:00:00.000000Z'"),
            "{sql}"
        );
        assert!(
            sql.contains("utctimestamp < '2026-11-23T10:15:00.000000Z'"),
            "{sql}"
        );
        // Each part's keys only for its own span and filter, with its own settings.
        let users_part = "CASE WHEN (utctimestamp >= '2026-10-24T10:00:00.000000Z' \
             AND (source = 'it''s') AND (u) IS NOT NULL AND (c) IS NOT NULL)";
        assert!(
            sql.contains(&format!(
                "{users_part} THEN CAST((c) AS VARCHAR) END AS part0_1"
            )),
            "{sql}"
        );
        let hosts_part = "CASE WHEN (utctimestamp >= '2026-11-21T10:00:00.000000Z' AND (true) \
             AND (h) IS NOT NULL AND (p) IS NOT NULL AND (x) IS NOT NULL)";
        assert!(
            sql.contains(&format!(
                "{hosts_part} THEN CAST((x) AS VARCHAR) END AS part1_2"
            )),
            "{sql}"
        );
        assert!(
            sql.contains(
                "CASE WHEN grouping(part0_0) = 0 THEN 0 WHEN grouping(part1_0) = 0 THEN 1 END \
                 AS evaluated_part, COALESCE(part0_0, part1_0) AS grouped_0, \
                 COALESCE(part0_1, part1_1) AS grouped_1, COALESCE(part1_2) AS grouped_2"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                "GROUP BY GROUPING SETS ((part0_0, part0_1), (part1_0, part1_1, part1_2)) \
                 HAVING COALESCE(part0_0, part1_0) IS NOT NULL"
            ),
            "{sql}"
        );

        let mut placeholder = hosts.clone();
        if let Query::FirstSeen { filter, .. } = &mut placeholder.query {
            *filter = "{{window}}".into();
        }
        let error = first_seen_bootstrap_sql(&[&users, &placeholder], window()).unwrap_err();
        assert!(error.message.contains("its own query"), "{error}");
    }

    #[test]
    fn plain_sql_gets_its_window_and_settings() {
        let rule = rule(
            "kind = \"sql\"\nsql = \"SELECT * FROM events e WHERE {{window:e}} AND e.source = ${src} AND n > ${n}\"",
            "[settings]\nsrc = \"it's\"\nn = 3",
        );
        let sql = compile(&rule, window()).unwrap();
        assert!(sql.contains("e.year = '2026'"), "{sql}");
        assert!(sql.contains("e.utctimestamp < '2026-11-23T10:15:00.000000Z'"));
        assert!(sql.ends_with("AND e.source = 'it''s' AND n > 3"));
    }

    #[test]
    fn a_query_without_a_window_is_refused() {
        let rule = rule("kind = \"sql\"\nsql = \"SELECT * FROM events\"", "");
        assert!(
            compile(&rule, window())
                .unwrap_err()
                .message
                .contains("no {{window}}")
        );
    }

    #[test]
    fn a_missing_setting_is_named() {
        let rule = rule(
            "kind = \"sql\"\nsql = \"SELECT 1 FROM events WHERE {{window}} AND x > ${limit}\"",
            "",
        );
        let error = compile(&rule, window()).unwrap_err();
        assert!(error.message.contains("${limit}"), "{error}");
    }

    #[test]
    fn threshold_groups_filters_and_counts() {
        let rule = rule(
            "kind = \"threshold\"\nwhere = \"category = 'authentication'\"\nmin_count = \"${threshold}\"\n\
             group = [{ name = \"user\", expr = \"json_extract_scalar(details, '$.user')\" }]",
            "[settings]\nthreshold = 5",
        );
        let sql = compile(&rule, window()).unwrap();
        assert!(sql.starts_with(
            "SELECT json_extract_scalar(details, '$.user') AS user, count(DISTINCT eventid) AS event_count"
        ));
        assert!(sql.contains("(json_extract_scalar(details, '$.user')) IS NOT NULL"));
        assert!(sql.ends_with(
            "GROUP BY json_extract_scalar(details, '$.user') HAVING count(DISTINCT eventid) >= 5"
        ));
    }

    #[test]
    fn first_seen_orders_values_by_their_first_event_in_history_and_window() {
        let rule = rule(
            "kind = \"first-seen\"\nwhere = \"category = 'authentication'\"\nlearning = \"1d\"\n\
             entity = [{ name = \"user\", expr = \"u\" }]\nvalue = [{ name = \"country\", expr = \"c\" }]",
            "",
        );
        let sql = compile(&rule, window()).unwrap();
        // One scan of history and window; the window's evidence is filtered inside it.
        assert_eq!(sql.matches("FROM events").count(), 1);
        assert!(sql.contains("utctimestamp >= '2026-11-22T10:00:00.000000Z' AND utctimestamp < '2026-11-23T10:15:00.000000Z'"), "{sql}");
        assert!(sql.contains("count(DISTINCT eventid) FILTER (WHERE utctimestamp >= '2026-11-23T10:00:00.000000Z') AS event_count"));
        assert!(
            sql.contains("min(min(utctimestamp)) OVER (PARTITION BY s.user) AS entity_first_seen")
        );
        assert!(sql.contains(
            "WHERE g.event_count > 0 AND g.value_first_seen >= '2026-11-23T10:00:00.000000Z' AND g.value_first_seen > g.entity_first_seen"
        ));
        // Learning counts from the entity's first sighting, not from the window.
        assert!(sql.contains(
            "from_iso8601_timestamp(g.value_first_seen) >= from_iso8601_timestamp(g.entity_first_seen) + INTERVAL '86400' SECOND"
        ));
    }

    #[test]
    fn dormant_values_were_last_seen_before_the_recent_period() {
        let rule = rule(
            "kind = \"first-seen\"\nwhere = \"true\"\nnot_seen_for = \"6h\"\n\
             entity = [{ name = \"user\", expr = \"u\" }]\nvalue = [{ name = \"country\", expr = \"c\" }]",
            "",
        );
        let sql = compile(&rule, window()).unwrap();
        assert_eq!(sql.matches("FROM events").count(), 1);
        assert!(sql.contains("max(utctimestamp) FILTER (WHERE utctimestamp < '2026-11-23T10:00:00.000000Z') AS seen_before"));
        assert!(
            sql.contains(
                "WHERE g.event_count > 0 AND g.seen_before < '2026-11-23T04:00:00.000000Z'"
            ),
            "{sql}"
        );
    }

    #[test]
    fn sequence_joins_earlier_first_events_within_the_interval() {
        let rule = rule(
            "kind = \"sequence\"\nfirst = \"a = 1\"\nthen = \"b = 1\"\nwithin = \"10m\"\nmin_count = 3\n\
             key = [{ name = \"user\", expr = \"u\" }]",
            "",
        );
        let sql = compile(&rule, window()).unwrap();
        assert!(sql.contains("a.ts >= b.ts - INTERVAL '600' SECOND"));
        assert!(sql.contains("HAVING count(DISTINCT a.eventid) >= 3"));
        assert!(
            sql.contains(
                "FROM b JOIN a ON a.user = b.user AND a.pairs_slot = b.sequence_slot AND a.t < b.t"
            ),
            "{sql}"
        );
        assert!(sql.contains(
            "floor(to_unixtime(from_iso8601_timestamp(utctimestamp)) / 600) AS sequence_slot"
        ));
        assert!(sql.contains("CROSS JOIN (VALUES (0), (1)) AS shift(slots)"));
        assert!(sql.contains("SELECT b.user AS user, b.t AS last_seen"));
        assert!(sql.contains("GROUP BY b.user, b.t, b.eventid"));
    }

    #[test]
    fn pairing_rules_lag_over_history_or_over_the_kept_previous_events() {
        let rule = rule(
            "kind = \"previous\"\nwhere = \"ok\"\nkey = [{ name = \"account\", expr = \"u\" }]\n\
             fields = [{ name = \"ip\", expr = \"i\" }]\n\
             sql = \"WITH m AS (SELECT * FROM pairs WHERE ip <> from_ip) SELECT account FROM m\"",
            "",
        );
        // Without a baseline: the day of history and the window, paired by lag.
        let sql = compile(&rule, window()).unwrap();
        assert!(
            sql.starts_with(
                "WITH logins AS (SELECT u AS account, eventid, utctimestamp, i AS ip FROM events"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("utctimestamp >= '2026-11-22T10:00:00.000000Z'"),
            "{sql}"
        );
        assert!(sql.contains(
            "lag(l.ip) OVER (PARTITION BY l.account ORDER BY utctimestamp, eventid) AS from_ip"
        ));
        assert!(sql.contains(
            "pairs AS (SELECT * FROM paired WHERE utctimestamp >= '2026-11-23T10:00:00.000000Z' \
             AND utctimestamp < '2026-11-23T10:15:00.000000Z'), m AS (SELECT * FROM pairs"
        ));
        // With one: the window's events and the previous event per key as rows.
        let previous = vec![vec![
            Some("o'neil".to_string()),
            Some("e1".to_string()),
            Some("2026-11-23T09:00:00.000000Z".to_string()),
            None,
        ]];
        let (alerts, latest) =
            previous_baseline_sql(&rule, window(), window().start, &previous).unwrap();
        for sql in [&alerts, &latest] {
            assert!(
                sql.contains("utctimestamp >= '2026-11-23T10:00:00.000000Z'"),
                "{sql}"
            );
            assert!(!sql.contains("2026-11-22"), "no history: {sql}");
            assert!(sql.contains(
                " UNION ALL SELECT * FROM (VALUES ('o''neil', 'e1', '2026-11-23T09:00:00.000000Z', \
                 CAST(NULL AS VARCHAR))) AS previous(account, eventid, utctimestamp, ip)"
            ));
        }
        assert!(
            latest.ends_with(
                "SELECT account, eventid, utctimestamp, ip FROM ranked WHERE newest = 1"
            )
        );
    }

    #[test]
    fn a_batch_reads_the_windows_union_once_with_the_window_as_a_column() {
        let threshold = rule(
            "kind = \"threshold\"\nwhere = \"ok\"\nmin_count = 2\n\
             group = [{ name = \"user\", expr = \"u\" }]",
            "[ignore]\nuser = [\"svc\"]",
        );
        let next = Window::new(
            window().start + TimeDelta::minutes(5),
            window().end + TimeDelta::minutes(5),
        );
        let sql = compile_batch(&threshold, &[window(), next])
            .unwrap()
            .unwrap();
        assert_eq!(sql.matches("FROM events").count(), 1, "{sql}");
        assert!(sql.contains(
            "(VALUES ('2026-11-23T10:00:00.000000Z', '2026-11-23T10:15:00.000000Z'), \
             ('2026-11-23T10:05:00.000000Z', '2026-11-23T10:20:00.000000Z')) \
             AS evaluated(evaluated_window_start, evaluated_window_end)"
        ));
        // The union of the windows, 10:00-10:20, is read; each event counts in its windows.
        assert!(sql.contains(
            "utctimestamp >= '2026-11-23T10:00:00.000000Z' AND utctimestamp < '2026-11-23T10:20:00.000000Z'"
        ));
        assert!(sql.contains(
            "GROUP BY evaluated.evaluated_window_end, matched.user HAVING count(DISTINCT eventid) >= 2"
        ));
        assert!(sql.starts_with("SELECT r.* FROM (SELECT evaluated.evaluated_window_end AS evaluated_window_end, matched.user AS user"));
        // The join carries each matching event's key, time and id, not the whole event.
        assert!(sql.contains("FROM (SELECT u AS user, utctimestamp, eventid FROM events WHERE"));
        assert!(sql.contains(") matched JOIN (VALUES ('2026-11-23T10:00:00.000000Z'"));
        assert!(sql.contains("ON matched.utctimestamp >= evaluated.evaluated_window_start"));

        let sequence = rule(
            "kind = \"sequence\"\nfirst = \"a = 1\"\nthen = \"b = 1\"\nwithin = \"10m\"\n\
             key = [{ name = \"user\", expr = \"u\" }]",
            "",
        );
        let sql = compile_batch(&sequence, &[window(), next])
            .unwrap()
            .unwrap();
        // Each window's `then` events pair with the `first` events of its own span.
        assert!(sql.contains("('2026-11-22T10:00:00.000000Z', '2026-11-23T10:00:00.000000Z', '2026-11-23T10:15:00.000000Z')"));
        assert!(sql.contains("a.t < b.t AND a.t >= b.evaluated_span_start"));
        assert!(sql.contains(
            "b AS (SELECT evaluated.evaluated_span_start, evaluated.evaluated_window_end, matched.* \
             FROM (SELECT u AS user, utctimestamp AS t, eventid, from_iso8601_timestamp(utctimestamp) AS ts, \
             floor(to_unixtime(from_iso8601_timestamp(utctimestamp)) / 600) AS sequence_slot FROM events WHERE"
        ));
        assert!(sql.contains("ON matched.t >= evaluated.evaluated_window_start"));

        let plain = rule(
            "kind = \"sql\"\nsql = \"SELECT 1 AS one FROM events WHERE {{window}}\"",
            "",
        );
        let sql = compile_batch(&plain, &[window(), next]).unwrap().unwrap();
        assert_eq!(sql.matches(" UNION ALL ").count(), 1);
        assert!(sql.starts_with(
            "SELECT '2026-11-23T10:15:00.000000Z' AS evaluated_window_end, batched.* FROM (SELECT 1 AS one"
        ));

        let pairing = rule(
            "kind = \"previous\"\nwhere = \"ok\"\nkey = [{ name = \"a\", expr = \"u\" }]\n\
             fields = []\nsql = \"SELECT a FROM pairs\"",
            "",
        );
        assert_eq!(compile_batch(&pairing, &[window(), next]).unwrap(), None);
    }

    #[test]
    fn ignored_values_wrap_the_query() {
        let rule = rule(
            "kind = \"sql\"\nsql = \"SELECT user FROM events WHERE {{window}}\"",
            "[ignore]\nuser = [\"svc@example.com\", \"o'brien\"]\nip = []",
        );
        let sql = compile(&rule, window()).unwrap();
        assert!(sql.starts_with("SELECT r.* FROM (SELECT user FROM events WHERE"));
        assert!(
            sql.ends_with(
                "WHERE (r.user IS NULL OR r.user NOT IN ('svc@example.com', 'o''brien'))"
            )
        );
    }
}
