//! A subject report (`privacy.rs`) as one printable HTML page: its facts as a list, each list of
//! rows as a table. No scripts, no outside resources; every value escaped.

use std::fmt::Write as _;

use serde_json::Value;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => escape(text),
        Value::Null => String::new(),
        Value::Object(map) if map.contains_key("type") && map.contains_key("time") => {
            // An event: its main fields, the rest in the JSON export.
            let field = |name: &str| map.get(name).and_then(Value::as_str).unwrap_or("");
            escape(&format!(
                "{} {} ({}) by {}",
                field("time"),
                field("type"),
                field("action"),
                map["actor"]["id"].as_str().unwrap_or("")
            ))
        }
        other => escape(&other.to_string()),
    }
}

fn table(out: &mut String, title: &str, rows: &[Value]) {
    let _ = write!(out, "<h2>{} ({})</h2>", escape(title), rows.len());
    let Some(Value::Object(first)) = rows.first() else {
        out.push_str("<p>None.</p>");
        return;
    };
    let columns: Vec<&String> = first.keys().collect();
    out.push_str("<table><tr>");
    for column in &columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for column in &columns {
            let _ = write!(out, "<td>{}</td>", cell(&row[column.as_str()]));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// The page.
pub fn page(report: &Value) -> String {
    let kind = report["kind"].as_str().unwrap_or("");
    let subject = report["subject"].as_str().unwrap_or("");
    let title = format!("{kind} report for subject {subject}");
    let mut out = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}\
         td,th{{border:1px solid #999;padding:4px;text-align:left;vertical-align:top;font-size:90%}}\
         pre{{white-space:pre-wrap}}</style></head><body><h1>{}</h1><dl>",
        escape(&title),
        escape(&title)
    );
    let Some(fields) = report.as_object() else { return out };
    for (name, value) in fields.iter().filter(|(_, v)| !v.is_array() && !v.is_object()) {
        let value = if name == "checkpoint" { format!("<pre>{}</pre>", cell(value)) } else { cell(value) };
        let _ = write!(out, "<dt>{}</dt><dd>{value}</dd>", escape(name));
    }
    out.push_str("</dl>");
    for (name, value) in fields {
        if let Value::Array(rows) = value {
            table(&mut out, name, rows);
        }
    }
    let _ = write!(
        out,
        "<p>Check it offline: export the events of this search filter with <code>evident export</code> and run \
         <code>evident verify</code> on the bundle: {}</p></body></html>",
        cell(&report["bundle_filter"])
    );
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn values_are_escaped_and_rows_become_tables() {
        let page = super::page(&json!({
            "kind": "access", "subject": "<cust>", "checkpoint": "origin\n1\n",
            "accesses": [{"time": "t", "purpose": "<script>alert(1)</script>"}], "events": []
        }));
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"), "{page}");
        assert!(page.contains("<h2>accesses (1)</h2><table><tr><th>purpose</th><th>time</th>"), "{page}");
        assert!(page.contains("<h2>events (0)</h2><p>None.</p>"), "{page}");
    }
}
