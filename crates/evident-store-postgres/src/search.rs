//! The SQL of a search: the given filters, ordered by (time, index) in either direction, after
//! a position.

use evident_core::store::{Filter, Order, Position};
use tokio_postgres::types::ToSql;

/// Columns of a [`evident_core::store::StoredEvent`], in the order `db::stored_event` reads them.
pub(crate) const EVENT_COLUMNS: &str = "e.idx, e.event_id, e.time, e.entry, e.seal_subject, e.sealed";

/// A parameter of a search.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Builds the SQL of a search and its parameters. With a target filter the walk goes through
/// `event_targets` (ordered by time there); otherwise through the index of a given column.
pub(crate) fn search_sql(
    tid: i64,
    filter: &Filter,
    order: Order,
    after: Option<Position>,
    limit: usize,
) -> (String, Vec<Param>) {
    let mut params: Vec<Param> = vec![Box::new(tid)];
    let mut conditions = vec!["e.tid = $1".to_owned()];
    let (from, time_column, index_column) = if let Some((target_type, target_id)) = &filter.target {
        params.push(Box::new(target_type.clone()));
        params.push(Box::new(target_id.clone()));
        conditions.push(format!(
            "t.tid = $1 AND t.type = ${} AND t.id = ${}",
            params.len() - 1,
            params.len()
        ));
        (
            "event_targets t JOIN events e ON e.tid = t.tid AND e.idx = t.idx AND e.recorded_at = t.recorded_at",
            "t.time",
            "t.idx",
        )
    } else {
        ("events e", "e.time", "e.idx")
    };
    let mut equal = |column: &str, value: &Option<String>| {
        if let Some(value) = value {
            params.push(Box::new(value.clone()));
            conditions.push(format!("{column} = ${}", params.len()));
        }
    };
    equal("e.actor", &filter.actor);
    equal("e.subject", &filter.subject);
    equal("e.type", &filter.event_type);
    equal("e.action", &filter.action);
    equal("e.outcome", &filter.outcome);
    equal("e.source", &filter.source);
    if let Some(from) = filter.from {
        params.push(Box::new(from.0));
        conditions.push(format!("{time_column} >= ${}", params.len()));
    }
    if let Some(to) = filter.to {
        params.push(Box::new(to.0));
        conditions.push(format!("{time_column} < ${}", params.len()));
    }
    let (direction, comparison) = match order {
        Order::NewestFirst => ("DESC", "<"),
        Order::OldestFirst => ("ASC", ">"),
    };
    if let Some(after) = after {
        params.push(Box::new(after.time.0));
        params.push(Box::new(i64::try_from(after.index).unwrap_or(i64::MAX)));
        conditions.push(format!(
            "({time_column}, {index_column}) {comparison} (${}, ${})",
            params.len() - 1,
            params.len()
        ));
    }
    params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM {from} WHERE {} \
         ORDER BY {time_column} {direction}, {index_column} {direction} LIMIT ${}",
        conditions.join(" AND "),
        params.len()
    );
    (sql, params)
}
