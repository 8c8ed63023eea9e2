//! Listing with RTR's query language (filters, order, paging, `q`, totals),
//! turned into one parameterised SQL statement. Field names come only from
//! each resource's whitelist, values only travel as bind parameters.

use crate::read::{Arg, Cols, Row};

use crate::{Db, Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Int,
    Text,
    Time,
    Bool,
    /// A JSON array of strings in a TEXT column (e.g. `domainNames`): `eq`
    /// matches an element, `like` matches the text.
    JsonArray,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The wire name.
    pub name: &'static str,
    /// The SQL expression.
    pub column: &'static str,
    pub ty: FieldType,
}

#[derive(Debug)]
pub struct Resource {
    /// `FROM` clause (a table or a join).
    pub from: &'static str,
    /// Column holding the owning customer's id.
    pub scope: &'static str,
    /// Always-applied condition (e.g. not deleted); may be empty.
    pub base_where: &'static str,
    pub fields: &'static [Field],
    /// Columns searched by `q`.
    pub q_columns: &'static [&'static str],
    /// Columns of the row; `SELECT` list.
    pub select: &'static str,
    pub default_order: &'static str,
    /// The `customer_counts` kind that holds this list's unfiltered total
    /// per customer (kept by triggers, migration 0008); None: COUNT(*).
    pub counted: Option<&'static str>,
}

impl Resource {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Like,
    NotLike,
    Gt,
    Lt,
    Gte,
    Lte,
    Null,
    NotNull,
    In,
    NotIn,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "like" => Op::Like,
            "not_like" => Op::NotLike,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            "gte" => Op::Gte,
            "lte" => Op::Lte,
            "null" => Op::Null,
            "not_null" => Op::NotNull,
            "in" => Op::In,
            "not_in" => Op::NotIn,
            _ => return None,
        })
    }
}

/// A typed filter value (already validated by the caller).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub field: &'static Field,
    pub op: Op,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub limit: i64,
    pub offset: i64,
    pub order: Vec<(&'static Field, bool)>,
    pub filters: Vec<Filter>,
    pub q: Option<String>,
    pub total: bool,
    pub export: bool,
}

pub struct Page {
    pub rows: Vec<Row>,
    pub total: Option<i64>,
}

impl Db {
    /// Runs a list query scoped to one customer (or to all, for the operator).
    pub async fn list(
        &self,
        res: &Resource,
        customer_id: Option<i64>,
        q: &ListQuery,
    ) -> Result<Page> {
        let mut where_sql = String::from(" WHERE 1=1");
        let mut binds: Vec<Arg> = Vec::new();
        if let Some(c) = customer_id {
            where_sql.push_str(&format!(" AND {} = ?", res.scope));
            binds.push(Arg::Int(c));
        }
        if !res.base_where.is_empty() {
            where_sql.push_str(&format!(" AND ({})", res.base_where));
        }
        for f in &q.filters {
            push_filter(&mut where_sql, &mut binds, f);
        }
        if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
            let parts: Vec<String> = res
                .q_columns
                .iter()
                .map(|c| format!("LOWER({c}) LIKE ?"))
                .collect();
            where_sql.push_str(&format!(" AND ({})", parts.join(" OR ")));
            for _ in res.q_columns {
                binds.push(Arg::Text(format!("%{}%", text.to_lowercase())));
            }
        }
        let order_sql = if q.order.is_empty() {
            res.default_order.to_string()
        } else {
            let mut parts: Vec<String> = q
                .order
                .iter()
                .map(|(f, desc)| format!("{} {}", f.column, if *desc { "DESC" } else { "ASC" }))
                .collect();
            parts.push(res.default_order.to_string());
            parts.join(", ")
        };
        let mut sql = format!(
            "SELECT {} FROM {}{} ORDER BY {}",
            res.select, res.from, where_sql, order_sql
        );
        // The page bounds are parameters, not text: paging through a list
        // then reuses one prepared statement instead of one per offset.
        let mut page_args = binds.clone();
        if !q.export {
            sql.push_str(" LIMIT ? OFFSET ?");
            page_args.extend([Arg::Int(q.limit.max(0)), Arg::Int(q.offset.max(0))]);
        }
        let rows = if q.limit == 0 && !q.export {
            Vec::new()
        } else {
            self.read_all_dyn(&sql, &page_args).await?
        };
        let unfiltered = q.filters.is_empty() && q.q.as_deref().is_none_or(str::is_empty);
        let total = if q.total
            && unfiltered
            && let Some(kind) = res.counted
        {
            Some(self.counted_total(kind, customer_id).await?)
        } else if q.total {
            let count_sql = format!("SELECT COUNT(*) FROM {}{}", res.from, where_sql);
            let rows = self.read_all_dyn(&count_sql, &binds).await?;
            let row = rows
                .first()
                .ok_or(StoreError::Db(sqlx::Error::RowNotFound))?;
            Some(row.col_at::<i64>(0)?)
        } else {
            None
        };
        Ok(Page { rows, total })
    }

    /// A list's unfiltered total from the trigger-kept counters: one row
    /// per customer, so the cost does not grow with the customer's data.
    async fn counted_total(&self, kind: &str, customer_id: Option<i64>) -> Result<i64> {
        let row = match customer_id {
            Some(c) => {
                self.read_optional(
                    "SELECT n FROM customer_counts WHERE customer_id = ? AND kind = ?",
                    &[Arg::Int(c), Arg::from(kind)],
                )
                .await?
            }
            None => {
                self.read_optional(
                    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM customer_counts WHERE kind = ?",
                    &[Arg::from(kind)],
                )
                .await?
            }
        };
        let n: Option<i64> = row.map(|r| r.col("n")).transpose()?;
        Ok(n.unwrap_or(0))
    }
}

fn push_filter(sql: &mut String, binds: &mut Vec<Arg>, f: &Filter) {
    let col = f.field.column;
    let bind = |binds: &mut Vec<Arg>, v: &Value| {
        binds.push(match v {
            Value::Int(i) => Arg::Int(*i),
            Value::Text(t) => Arg::Text(t.clone()),
        })
    };
    if f.field.ty == FieldType::JsonArray {
        // Element match on the JSON text: `"name"` appears as an element.
        let (neg, like_raw) = match f.op {
            Op::Ne | Op::NotIn => (true, false),
            Op::Like => (false, true),
            Op::NotLike => (true, true),
            Op::Null => {
                sql.push_str(&format!(" AND ({col} IS NULL OR {col} = '[]')"));
                return;
            }
            Op::NotNull => {
                sql.push_str(&format!(" AND ({col} IS NOT NULL AND {col} <> '[]')"));
                return;
            }
            _ => (false, false),
        };
        let mut parts = Vec::new();
        for v in &f.values {
            let Value::Text(t) = v else { continue };
            parts.push(format!("{col} LIKE ?"));
            let pat = if like_raw {
                t.clone()
            } else {
                format!("%\"{}\"%", t.replace('%', ""))
            };
            binds.push(Arg::Text(pat));
        }
        if parts.is_empty() {
            return;
        }
        let joined = parts.join(" OR ");
        sql.push_str(&if neg {
            format!(" AND NOT ({joined})")
        } else {
            format!(" AND ({joined})")
        });
        return;
    }
    match f.op {
        Op::Null => sql.push_str(&format!(" AND {col} IS NULL")),
        Op::NotNull => sql.push_str(&format!(" AND {col} IS NOT NULL")),
        Op::In | Op::NotIn => {
            let marks = vec!["?"; f.values.len().max(1)].join(", ");
            let not = if f.op == Op::NotIn { "NOT " } else { "" };
            if f.values.is_empty() {
                sql.push_str(if f.op == Op::In { " AND 1=0" } else { "" });
                return;
            }
            sql.push_str(&format!(" AND {col} {not}IN ({marks})"));
            for v in &f.values {
                bind(binds, v);
            }
        }
        op => {
            let sym = match op {
                Op::Eq => "=",
                Op::Ne => "<>",
                Op::Like => "LIKE",
                Op::NotLike => "NOT LIKE",
                Op::Gt => ">",
                Op::Lt => "<",
                Op::Gte => ">=",
                _ => "<=",
            };
            // Repeated params on one field AND together (RTR listing rules).
            for v in &f.values {
                sql.push_str(&format!(" AND {col} {sym} ?"));
                bind(binds, v);
            }
        }
    }
}
