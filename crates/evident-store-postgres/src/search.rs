//! The SQL of a search: the given filters, ordered by (time, index) in either direction, after
//! a position.

use evident_core::store::{Column, Condition, SearchPlan};
use tokio_postgres::types::ToSql;

/// Columns of a [`evident_core::store::StoredEvent`], in the order `db::stored_event` reads them.
pub(crate) const EVENT_COLUMNS: &str = "e.idx, e.event_id, e.time, e.entry, e.seal_subject, e.sealed";

/// A parameter of a search.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// Builds the SQL of a search and its parameters after the first: `$1` is the tenant's id, which
/// the caller looks up and puts first. With a target filter the walk goes through `event_targets`
/// (ordered by time there); otherwise through the index of a given column.
///
/// A prefix is `starts_with` (no wildcard characters, whatever the prefix holds); where the
/// database orders text by code point (`code_point_order`) it is also the range
/// `[prefix, prefix_end)`, which the type index serves. Under another collation that range could
/// leave out matches, so it is not used there.
pub(crate) fn search_sql(plan: &SearchPlan, code_point_order: bool) -> (String, Vec<Param>) {
    let mut params: Vec<Param> = Vec::new();
    let mut conditions = vec!["e.tid = $1".to_owned()];
    let (from, time_column, index_column) = if let Some((target_type, target_id)) = plan.target() {
        params.push(Box::new(target_type.to_owned()));
        params.push(Box::new(target_id.to_owned()));
        conditions.push("t.tid = $1 AND t.type = $2 AND t.id = $3".to_owned());
        (
            "event_targets t JOIN events e ON e.tid = t.tid AND e.idx = t.idx AND e.recorded_at = t.recorded_at",
            "t.time",
            "t.idx",
        )
    } else {
        ("events e", "e.time", "e.idx")
    };
    let (direction, comparison) = if plan.descending() { ("DESC", "<") } else { ("ASC", ">") };
    for condition in plan.conditions() {
        let n = params.len() + 2;
        conditions.push(match condition {
            Condition::Equals(column, value) => {
                params.push(Box::new(value.to_owned()));
                format!("{} = ${n}", column_name(column))
            }
            Condition::Prefix(column, prefix) => {
                let column = column_name(column);
                params.push(Box::new(prefix.to_owned()));
                match evident_core::store::prefix_end(prefix).filter(|_| code_point_order) {
                    Some(end) => {
                        params.push(Box::new(end));
                        format!("{column} >= ${n} AND {column} < ${} AND starts_with({column}, ${n})", n + 1)
                    }
                    None => format!("starts_with({column}, ${n})"),
                }
            }
            Condition::TimeAtLeast(time) => {
                params.push(Box::new(time.0));
                format!("{time_column} >= ${n}")
            }
            Condition::TimeBefore(time) => {
                params.push(Box::new(time.0));
                format!("{time_column} < ${n}")
            }
            Condition::After(position) => {
                params.push(Box::new(position.time.0));
                params.push(Box::new(i64::try_from(position.index).unwrap_or(i64::MAX)));
                format!("({time_column}, {index_column}) {comparison} (${n}, ${})", n + 1)
            }
        });
    }
    params.push(Box::new(i64::try_from(plan.limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM {from} WHERE {} \
         ORDER BY {time_column} {direction}, {index_column} {direction} LIMIT ${}",
        conditions.join(" AND "),
        params.len() + 1
    );
    (sql, params)
}

/// The `events` column an equality condition compares.
fn column_name(column: Column) -> &'static str {
    match column {
        Column::Actor => "e.actor",
        Column::Subject => "e.subject",
        Column::EventType => "e.type",
        Column::Action => "e.action",
        Column::Outcome => "e.outcome",
        Column::Source => "e.source",
    }
}

#[cfg(test)]
mod tests {
    use evident_wire::filter::{Filter, Order};

    use super::*;

    /// Under a collation that does not order text by code point, a prefix is `starts_with` alone
    /// (the test database is `C.UTF-8`, so the conformance suite runs the range form).
    #[test]
    fn a_prefix_is_a_range_only_in_code_point_order() {
        let filter = Filter::from_pairs([("type", "customer.*")]).unwrap();
        let plan = SearchPlan { filter: &filter, order: Order::NewestFirst, after: None, limit: 10 };
        let (ranged, params) = search_sql(&plan, true);
        assert!(ranged.contains("e.type >= $2 AND e.type < $3 AND starts_with(e.type, $2)"), "{ranged}");
        assert_eq!(params.len(), 3, "prefix, its end, the limit");
        let (plain, params) = search_sql(&plan, false);
        assert!(plain.contains("starts_with(e.type, $2)") && !plain.contains("e.type >="), "{plain}");
        assert_eq!(params.len(), 2, "prefix, the limit");
    }
}
