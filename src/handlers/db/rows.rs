//! A query's rows as JSON, each charged to the request's share of the host's memory
//! budget as it arrives: a result too large to hold now fails the statement instead of
//! taking the host past its budget.

use std::pin::pin;

use futures_lite::StreamExt;
use serde_json::Value;
use tokio_postgres::Column;
use tokio_postgres::RowStream;

use super::{error, types};
use crate::budget::Charge;
use crate::envelope::Payload;
use crate::envelope::weight::{TEXT_COPIES, VALUE_COST};
use crate::handler::HandlerError;

/// Rows are charged in batches of about this many bytes: one budget round trip per row
/// would cost a statement of many small rows more than its rows.
const BATCH: u64 = 64 * 1024;

/// Reads every row of `rows` into JSON objects, charging them to `charge`.
pub(super) async fn collect(rows: RowStream, charge: &Charge) -> Result<Vec<Value>, HandlerError> {
    let mut rows = pin!(rows);
    let (mut out, mut unpaid) = (Vec::new(), 0u64);
    while let Some(row) = rows.next().await {
        let row = row.map_err(error::db_error)?;
        let mut object = Payload::new();
        for (index, column) in row.columns().iter().enumerate() {
            let value = types::column(&row, index).ok_or_else(|| {
                HandlerError::execution(format!(
                    "column '{}' has type {}, which the db handler does not map; cast it in SQL, e.g. {}::text",
                    column.name(),
                    column.type_(),
                    column.name()
                ))
            })?;
            let value = value.map_err(|error| unreadable(column, error))?;
            unpaid += column.name().len() as u64 * TEXT_COPIES + weight(&value);
            object.insert(column.name().to_owned(), value);
        }
        out.push(Value::Object(object));
        if unpaid >= BATCH {
            pay(charge, &mut unpaid)?;
        }
    }
    pay(charge, &mut unpaid)?;
    Ok(out)
}

/// A value of `column` the type mapping cannot hold (a `numeric` NaN or past 28 digits, a
/// date or timestamp beyond year 9999 or infinite): which column, why, and what to do.
fn unreadable(column: &Column, error: tokio_postgres::Error) -> HandlerError {
    HandlerError::Execution {
        message: format!(
            "column '{name}' holds a {type_} value the db handler cannot read ({reason}); cast it in SQL, e.g. {name}::text",
            name = column.name(),
            type_ = column.type_(),
            reason = error::failure_reason(&error),
        ),
        source: Some(Box::new(error)),
    }
}

fn pay(charge: &Charge, unpaid: &mut u64) -> Result<(), HandlerError> {
    if !charge.try_grow(*unpaid) {
        return Err(HandlerError::execution(
            "the query's result is larger than the host can hold now (its memory budget is spent): select fewer rows or columns, or retry",
        ));
    }
    *unpaid = 0;
    Ok(())
}

/// What `value` takes in memory until its response has left: its text as held and as
/// written, and [`VALUE_COST`] for each value.
fn weight(value: &Value) -> u64 {
    VALUE_COST
        + match value {
            Value::String(text) => text.len() as u64 * TEXT_COPIES,
            Value::Array(items) => items.iter().map(weight).sum(),
            Value::Object(entries) => entries
                .iter()
                .map(|(key, value)| key.len() as u64 * TEXT_COPIES + weight(value))
                .sum(),
            Value::Number(_) | Value::Bool(_) | Value::Null => 0,
        }
}
